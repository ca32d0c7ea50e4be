//! Errors of cache operations.

use std::fmt;

use crate::error::{Coded, ErrorClass};

/// Why a cache refused an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheError {
    /// The entry alone is larger than the cache's byte limit.
    TooLarge {
        /// The key it was stored under.
        key: String,
        /// Bytes it would count.
        bytes: u64,
        /// The cache's limit.
        max_bytes: u64,
    },
}

impl Coded for CacheError {
    fn code(&self) -> &'static str {
        match self {
            CacheError::TooLarge { .. } => "E_TOO_LARGE",
        }
    }

    fn class(&self) -> ErrorClass {
        ErrorClass::RangeError
    }
}

impl fmt::Display for CacheError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CacheError::TooLarge {
                key,
                bytes,
                max_bytes,
            } => write!(
                f,
                "entry \"{key}\" needs {bytes} bytes (value, key and overhead), more than maxMemory {max_bytes}"
            ),
        }
    }
}

impl std::error::Error for CacheError {}
