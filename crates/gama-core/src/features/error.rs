//! Errors of feature extraction.

use std::fmt;

use crate::error::{Coded, ErrorClass};

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
    /// The results would exceed `MAX_OUTPUT_BYTES`.
    TooLarge {
        /// Bytes the results would take.
        bytes: u64,
        /// The limit.
        limit: u64,
    },
    /// Stopped by the caller.
    Cancelled,
    /// `device: 'cuda'` was asked for and no usable GPU (or one of the CUDA
    /// libraries the GPU path loads) is present.
    NoGpu(String),
    /// The GPU path does not compute these options (the CPU path does).
    GpuUnsupported(String),
    /// A CUDA call failed while a batch ran on the GPU.
    Gpu(String),
    /// The GPU budget (or the card) has too little room for the batch.
    GpuBudget(String),
}

impl Coded for ExtractError {
    fn code(&self) -> &'static str {
        match self {
            ExtractError::Empty => "E_EMPTY_AUDIO",
            ExtractError::NotFinite { .. } => "E_NOT_FINITE",
            ExtractError::TooShort { .. } => "E_TOO_SHORT",
            ExtractError::TooLarge { .. } => "E_TOO_LARGE",
            ExtractError::Cancelled => "ABORT_ERR",
            ExtractError::NoGpu(_) => "E_NO_GPU",
            ExtractError::GpuUnsupported(_) => "E_GPU_UNSUPPORTED",
            ExtractError::Gpu(_) => "E_GPU",
            ExtractError::GpuBudget(_) => "E_BUDGET",
        }
    }

    fn class(&self) -> ErrorClass {
        match self {
            ExtractError::Cancelled => ErrorClass::AbortError,
            ExtractError::NoGpu(_) | ExtractError::Gpu(_) | ExtractError::GpuBudget(_) => {
                ErrorClass::Error
            }
            _ => ErrorClass::RangeError,
        }
    }
}

impl fmt::Display for ExtractError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExtractError::Empty => write!(f, "audio is empty"),
            ExtractError::NotFinite { index, value } => write!(
                f,
                "audio holds {} at sample {index}; samples must be finite",
                non_finite_name(*value)
            ),
            ExtractError::TooShort { samples, n_fft } => write!(
                f,
                "audio has {samples} samples, fewer than one frame of nFft = {n_fft} (use center: true to pad it)"
            ),
            ExtractError::TooLarge { bytes, limit } => write!(
                f,
                "the features asked for would take {bytes} bytes, more than the limit of {limit} (use a larger hopLength, fewer features or a shorter clip)"
            ),
            ExtractError::Cancelled => write!(f, "extraction was cancelled"),
            ExtractError::NoGpu(why) => write!(f, "no GPU to extract on: {why}"),
            ExtractError::GpuUnsupported(why) => {
                write!(f, "the GPU path cannot compute this: {why}")
            }
            ExtractError::Gpu(why) => write!(f, "the GPU batch failed: {why}"),
            ExtractError::GpuBudget(why) => write!(f, "no room on the GPU for the batch: {why}"),
        }
    }
}

impl std::error::Error for ExtractError {}

/// How JS writes a value that is not finite: NaN, Infinity or -Infinity.
pub(crate) fn non_finite_name(value: f32) -> &'static str {
    if value.is_nan() {
        "NaN"
    } else if value > 0.0 {
        "Infinity"
    } else {
        "-Infinity"
    }
}
