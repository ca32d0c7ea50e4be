//! Errors of feature extraction.

use std::fmt;

use crate::error::{panic_message, Coded, ErrorClass};

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
    /// The extraction panicked (a bug): the clip gets this error instead
    /// of the process aborting; its message is the panic's.
    Panicked(String),
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
            ExtractError::Panicked(_) => "E_PANIC",
        }
    }

    fn class(&self) -> ErrorClass {
        match self {
            ExtractError::Cancelled => ErrorClass::AbortError,
            ExtractError::NoGpu(_)
            | ExtractError::Gpu(_)
            | ExtractError::GpuBudget(_)
            | ExtractError::Panicked(_) => ErrorClass::Error,
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
            ExtractError::Panicked(why) => write!(
                f,
                "feature extraction failed unexpectedly (a bug, please report it): {why}"
            ),
        }
    }
}

impl std::error::Error for ExtractError {}

/// Runs `work`, turning a panic into `ExtractError::Panicked`: on a pool
/// or libuv thread a panic would otherwise abort the process and leave
/// its waiters waiting.
pub(crate) fn unwinding<T>(
    work: impl FnOnce() -> Result<T, ExtractError>,
) -> Result<T, ExtractError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
        .unwrap_or_else(|panic| Err(ExtractError::Panicked(panic_message(&*panic))))
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_e_panic_error_carrying_its_message() {
        let of = |r: Result<(), ExtractError>| r.unwrap_err().to_string();
        assert!(of(unwinding(|| panic!("a literal"))).ends_with(": a literal"));
        assert!(of(unwinding(|| panic!("formatted {}", 7))).ends_with(": formatted 7"));
        let e = unwinding::<()>(|| panic!("x")).unwrap_err();
        assert_eq!((e.code(), e.class()), ("E_PANIC", ErrorClass::Error));
        assert_eq!(unwinding(|| Ok(3)), Ok(3));
        assert_eq!(
            unwinding::<()>(|| Err(ExtractError::Empty)),
            Err(ExtractError::Empty)
        );
    }
}
