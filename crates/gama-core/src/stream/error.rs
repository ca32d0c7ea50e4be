//! Errors of feature streams.

use std::fmt;

use crate::error::{Coded, ErrorClass};
use crate::features::non_finite_name;
use crate::memory::MemoryError;

/// Why a stream call was refused.
#[derive(Debug)]
pub enum StreamError {
    /// `max_concurrent` streams are open already.
    TooMany {
        /// The limit.
        limit: usize,
    },
    /// A stream with this utterance id is open already.
    Duplicate(String),
    /// No open stream has this utterance id.
    Unknown(String),
    /// The stream was finalized, aborted or closed for idleness.
    Closed(String),
    /// The streams were closed: no new stream starts.
    ShutDown,
    /// A pushed chunk holds no samples.
    EmptyChunk,
    /// A pushed chunk holds NaN or an infinity (the chunk is refused; the
    /// stream goes on).
    NotFinite {
        /// Index of the sample in the chunk.
        index: usize,
        /// Its value.
        value: f32,
    },
    /// The memory manager's budget cannot hold the stream's buffers.
    Budget(MemoryError),
}

impl Coded for StreamError {
    fn code(&self) -> &'static str {
        match self {
            StreamError::TooMany { .. } => "E_TOO_MANY_STREAMS",
            StreamError::Duplicate(_) => "E_DUPLICATE_STREAM",
            StreamError::Unknown(_) => "E_UNKNOWN_STREAM",
            StreamError::Closed(_) => "E_STREAM_CLOSED",
            StreamError::ShutDown => "E_CLOSED",
            StreamError::EmptyChunk => "E_EMPTY_CHUNK",
            StreamError::NotFinite { .. } => "E_NOT_FINITE",
            StreamError::Budget(e) => e.code(),
        }
    }

    fn class(&self) -> ErrorClass {
        match self {
            StreamError::EmptyChunk | StreamError::NotFinite { .. } => ErrorClass::RangeError,
            _ => ErrorClass::Error,
        }
    }
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamError::TooMany { limit } => write!(
                f,
                "{limit} streams are open, the maxConcurrent limit: finalize or abort one first"
            ),
            StreamError::Duplicate(id) => {
                write!(f, "a stream for utterance '{id}' is open already")
            }
            StreamError::Unknown(id) => write!(f, "no open stream has utterance id '{id}'"),
            StreamError::Closed(id) => write!(
                f,
                "the stream of utterance '{id}' is closed (finalized, aborted or idle)"
            ),
            StreamError::ShutDown => write!(f, "the streams were closed"),
            StreamError::EmptyChunk => write!(f, "chunk holds no samples"),
            StreamError::NotFinite { index, value } => write!(
                f,
                "chunk holds {} at sample {index}; samples must be finite (the chunk was not taken, the stream goes on)",
                non_finite_name(*value)
            ),
            StreamError::Budget(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for StreamError {}
