//! Errors of the Redis tier.

use std::fmt;

use crate::error::{Coded, ErrorClass};

/// What went wrong between the cache and Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteError {
    /// The URL could not be parsed (raised by the constructor).
    Url(String),
    /// The server could not be reached or went away; the cache serves L1 only.
    Down(String),
    /// A lookup failed with an error of Redis's own; read as misses.
    Read(String),
    /// Writing entries failed; L1 keeps them.
    Write {
        /// Entries the failed round trip carried.
        entries: usize,
        /// Why.
        reason: String,
    },
    /// A value in Redis is not one this cache wrote (or is damaged); read as a miss.
    Decode {
        /// The cache key.
        key: String,
        /// Why.
        reason: String,
    },
    /// A value is larger than `maxValueBytes`; it stays in L1 only.
    TooLarge {
        /// The cache key.
        key: String,
        /// Its payload bytes.
        bytes: usize,
        /// The limit.
        max_bytes: usize,
    },
    /// An invalidation could not be applied in Redis.
    Invalidate(String),
}

impl Coded for RemoteError {
    fn code(&self) -> &'static str {
        match self {
            RemoteError::Url(_) => "ERR_INVALID_URL",
            RemoteError::Down(_) => "E_REDIS_DOWN",
            RemoteError::Read(_) => "E_REDIS_READ",
            RemoteError::Write { .. } => "E_REDIS_WRITE",
            RemoteError::Decode { .. } => "E_REDIS_DECODE",
            RemoteError::TooLarge { .. } => "E_TOO_LARGE",
            RemoteError::Invalidate(_) => "E_REDIS_INVALIDATE",
        }
    }

    fn class(&self) -> ErrorClass {
        match self {
            RemoteError::Url(_) => ErrorClass::TypeError,
            RemoteError::TooLarge { .. } => ErrorClass::RangeError,
            _ => ErrorClass::Error,
        }
    }
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RemoteError::Url(why) => write!(f, "options.redis.url is not a Redis URL: {why}"),
            RemoteError::Down(why) => write!(f, "Redis is unreachable, serving L1 only: {why}"),
            RemoteError::Read(why) => write!(f, "a Redis lookup failed, read as misses: {why}"),
            RemoteError::Write { entries, reason } => {
                write!(f, "writing {entries} entries to Redis failed: {reason}")
            }
            RemoteError::Decode { key, reason } => {
                write!(f, "the Redis value of \"{key}\" was read as a miss: {reason}")
            }
            RemoteError::TooLarge {
                key,
                bytes,
                max_bytes,
            } => write!(
                f,
                "entry \"{key}\" ({bytes} bytes) is over redis.maxValueBytes {max_bytes}: kept in L1 only"
            ),
            RemoteError::Invalidate(why) => write!(f, "invalidating in Redis failed: {why}"),
        }
    }
}

impl std::error::Error for RemoteError {}
