//! Which CUDA libraries can be loaded. cudarc panics when a library it was
//! asked to use cannot be loaded, so nothing calls into one before it is
//! found here.

use crate::features::ExtractError;

/// Ok when the driver, NVRTC and cuFFT can all be loaded; otherwise the
/// error names the first one missing.
pub(super) fn check() -> Result<(), ExtractError> {
    let missing = |library: &str, what: &str| {
        Err(ExtractError::NoGpu(format!(
            "{library} could not be loaded ({what}); it is looked up on LD_LIBRARY_PATH"
        )))
    };
    // SAFETY: only tries to open the library; calls no CUDA function.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return missing("libcuda.so", "the NVIDIA driver");
    }
    // SAFETY: as above.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return missing(
            "libnvrtc.so",
            "CUDA's run-time compiler, needed for the kernels",
        );
    }
    // SAFETY: as above.
    if !unsafe { cudarc::cufft::sys::is_culib_present() } {
        return missing("libcufft.so", "CUDA's FFT library");
    }
    Ok(())
}

/// Whether NVRTC alone can be loaded (the kernels compile without a GPU).
#[cfg(test)]
pub(super) fn nvrtc_present() -> bool {
    // SAFETY: only tries to open the library; calls no CUDA function.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}
