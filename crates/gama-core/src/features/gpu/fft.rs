//! Batched real-to-complex FFT plans (cuFFT, double precision) for the
//! frames of a batch, kept for reuse. A plan transforms a fixed number of
//! frames, so batches are rounded up to a few sizes per power of two (at
//! most an eighth more frames than asked) and a handful of plans serve a
//! stream of batches of varying size. Plans never allocate: their work
//! area is part of each batch's GPU memory.

use cudarc::cufft::{result, sys};
use cudarc::driver::CudaStream;

use super::failed;
use crate::features::ExtractError;

/// Plans kept at once.
const KEPT: usize = 4;

/// One plan: `batch` transforms of `n_fft` real values.
pub(super) struct Plan {
    handle: sys::cufftHandle,
    n_fft: usize,
    /// Frames it transforms.
    pub batch: usize,
    /// Bytes of work area it needs.
    pub work_bytes: u64,
}

impl Drop for Plan {
    fn drop(&mut self) {
        // SAFETY: the handle came from `cufftCreate` and is destroyed once.
        let _ = unsafe { result::destroy(self.handle) };
    }
}

impl Plan {
    /// Transforms `frames` (`batch * n_fft` doubles) into `spectrum`
    /// (`batch * (n_fft / 2 + 1)` complex doubles), using `work` as scratch.
    ///
    /// # Safety
    /// The three addresses are device memory of at least those sizes
    /// (`work_bytes` for `work`), alive until the stream has run the transform.
    pub unsafe fn run(&self, frames: u64, spectrum: u64, work: u64) -> Result<(), ExtractError> {
        // SAFETY: the caller vouches for the memory; the handle is live.
        unsafe {
            result::set_work_area(self.handle, work as *mut std::ffi::c_void)
                .map_err(|e| failed("cufftSetWorkArea", e))?;
            result::exec_d2z(
                self.handle,
                frames as *mut sys::cufftDoubleReal,
                spectrum as *mut sys::cufftDoubleComplex,
            )
            .map_err(|e| failed("cufftExecD2Z", e))
        }
    }
}

/// Frames a plan is made for when `frames` are asked for: `frames` rounded
/// up to a multiple of an eighth of the power of two at or below it (at
/// least 64), so at most an eighth more.
pub(super) fn bucket(frames: usize) -> usize {
    let below = 1usize << (usize::BITS - 1 - frames.max(1).leading_zeros());
    let step = (below / 8).max(64);
    frames.div_ceil(step) * step
}

/// The plans kept, most recently used last.
#[derive(Default)]
pub(super) struct Plans {
    kept: Vec<Plan>,
}

impl Plans {
    /// A plan for at least `frames` frames of `n_fft`, on `stream`.
    pub fn get(
        &mut self,
        n_fft: usize,
        frames: usize,
        stream: &CudaStream,
    ) -> Result<&Plan, ExtractError> {
        let batch = bucket(frames);
        if let Some(i) = self
            .kept
            .iter()
            .position(|p| p.n_fft == n_fft && p.batch == batch)
        {
            let plan = self.kept.remove(i);
            self.kept.push(plan);
        } else {
            let plan = make(n_fft, batch, stream)?;
            if self.kept.len() == KEPT {
                self.kept.remove(0);
            }
            self.kept.push(plan);
        }
        Ok(self.kept.last().expect("just pushed"))
    }
}

fn make(n_fft: usize, batch: usize, stream: &CudaStream) -> Result<Plan, ExtractError> {
    let (n, count) = match (i32::try_from(n_fft), i32::try_from(batch)) {
        (Ok(n), Ok(count)) => (n, count),
        _ => {
            return Err(ExtractError::GpuUnsupported(format!(
                "{batch} frames of {n_fft} in one batch (cuFFT counts them in 32 bits)"
            )))
        }
    };
    let handle = result::create().map_err(|e| failed("cufftCreate", e))?;
    let mut plan = Plan {
        handle,
        n_fft,
        batch,
        work_bytes: 0,
    };
    // SAFETY: a fresh handle; the stream outlives the plan (both belong to
    // the engine, which drops plans first).
    unsafe {
        result::set_auto_allocation(handle, false)
            .map_err(|e| failed("cufftSetAutoAllocation", e))?;
        result::set_stream(handle, stream.cu_stream() as _)
            .map_err(|e| failed("cufftSetStream", e))?;
        let work = result::make_plan_1d(handle, n, sys::cufftType::CUFFT_D2Z, count)
            .map_err(|e| failed("cufftMakePlan1d", e))?;
        plan.work_bytes = work as u64;
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::bucket;

    #[test]
    fn buckets_cover_the_request_with_little_waste() {
        for frames in [1, 63, 64, 65, 1000, 6464, 103_424, 1 << 20, (1 << 20) + 1] {
            let b = bucket(frames);
            assert!(b >= frames, "{frames} -> {b}");
            assert!(b - frames < (frames / 8).max(64), "{frames} -> {b}");
        }
        // Few sizes: every batch from 65,537 to 131,072 frames gets one of 8.
        let sizes: std::collections::BTreeSet<usize> = (65_537..=131_072).map(bucket).collect();
        assert_eq!(sizes.len(), 8);
    }
}
