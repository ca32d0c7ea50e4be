//! Errors of feature extraction.

use std::fmt;

/// Why audio could not be analysed.
#[derive(Clone, Debug, PartialEq)]
pub enum ExtractError {
    /// No samples.
    Empty,
    /// A sample is NaN or infinite.
    NotFinite {
        /// Its position.
        index: usize,
        /// Its value.
        value: f32,
    },
    /// Without centring, the input must hold at least one full frame.
    TooShort {
        /// Samples given.
        samples: usize,
        /// Samples one frame needs.
        n_fft: usize,
    },
    /// Stopped by the caller.
    Cancelled,
}

impl ExtractError {
    /// Stable code for JS (`err.code`).
    pub fn code(&self) -> &'static str {
        match self {
            ExtractError::Empty => "E_EMPTY_AUDIO",
            ExtractError::NotFinite { .. } => "E_NOT_FINITE",
            ExtractError::TooShort { .. } => "E_TOO_SHORT",
            ExtractError::Cancelled => "ABORT_ERR",
        }
    }
}

impl fmt::Display for ExtractError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExtractError::Empty => write!(f, "audio is empty"),
            ExtractError::NotFinite { index, value } => {
                let shown = if value.is_nan() {
                    "NaN"
                } else if *value > 0.0 {
                    "Infinity"
                } else {
                    "-Infinity"
                };
                write!(f, "audio holds {shown} at sample {index}; samples must be finite")
            }
            ExtractError::TooShort { samples, n_fft } => write!(
                f,
                "audio has {samples} samples, fewer than one frame of nFft = {n_fft} (use center: true to pad it)"
            ),
            ExtractError::Cancelled => write!(f, "extraction was cancelled"),
        }
    }
}

impl std::error::Error for ExtractError {}
