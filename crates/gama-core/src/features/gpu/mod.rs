//! Feature extraction on an NVIDIA GPU for whole batches of clips, through
//! cudarc with CUDA loaded at run time: kernels compiled by NVRTC, frames
//! transformed by one batched double-precision cuFFT plan, device memory
//! from a `MemoryManager`'s GPU pool and pinned staging buffers kept
//! between batches. Results equal the CPU extractor's within librosa's
//! tolerances; the CPU path stays the default.
//!
//! Without a driver, NVRTC or cuFFT nothing here calls into CUDA (cudarc
//! panics on a missing library): `gpu_status` says which is missing.

mod engine;
mod fft;
mod libs;
mod run;
mod staging;
mod tables;
#[cfg(test)]
mod tests;

use std::sync::Arc;

pub use run::{GpuBatch, GpuTiming};

use super::error::unwinding;
use super::{ExtractError, Extractor, FeatureOptions};
use crate::memory::MemoryManager;

/// The error of a CUDA call (`what`) that failed with `e`.
fn failed(what: &str, e: impl std::fmt::Debug) -> ExtractError {
    ExtractError::Gpu(format!("{what} failed: {e:?}"))
}

/// Largest `nFft` the GPU path takes (a frame's spectrum is held in a
/// block's shared memory).
pub const GPU_MAX_N_FFT: usize = 8192;

/// Frames from which `FeatureDevice::Auto` sends a batch to the GPU (about
/// 20 s of 16 kHz audio at hop 160): below it, launching and copying cost
/// more than the CPU spends.
pub const AUTO_MIN_FRAMES: u64 = 2048;

/// Where a batch of extractions runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FeatureDevice {
    /// The CPU thread pool.
    #[default]
    Cpu,
    /// The GPU; fails with `E_NO_GPU` without one.
    Cuda,
    /// The GPU when one is usable, the options suit it and the batch is
    /// large enough to gain; otherwise the CPU.
    Auto,
}

impl FeatureDevice {
    /// Every device, with the name JS uses.
    pub const NAMES: [(&'static str, FeatureDevice); 3] = [
        ("cpu", FeatureDevice::Cpu),
        ("cuda", FeatureDevice::Cuda),
        ("auto", FeatureDevice::Auto),
    ];

    /// The name JS uses.
    pub fn name(self) -> &'static str {
        match self {
            FeatureDevice::Cpu => "cpu",
            FeatureDevice::Cuda => "cuda",
            FeatureDevice::Auto => "auto",
        }
    }
}

/// Whether the GPU path computes `options` (every feature is supported;
/// frames larger than `GPU_MAX_N_FFT` are not).
pub fn gpu_supports(options: &FeatureOptions) -> Result<(), ExtractError> {
    if options.n_fft > GPU_MAX_N_FFT {
        return Err(ExtractError::GpuUnsupported(format!(
            "nFft {} is above {GPU_MAX_N_FFT}; use device 'cpu'",
            options.n_fft
        )));
    }
    Ok(())
}

/// Ok when this process can extract on a GPU (the driver, NVRTC and cuFFT
/// load and device 0 opens, with the kernels compiled); otherwise why not.
/// The first call opens the GPU (tens of milliseconds to seconds).
pub fn gpu_status() -> Result<(), ExtractError> {
    engine::engine().map(|_| ())
}

/// Whether `Auto` sends a batch of `frames` frames with these options to the GPU.
pub fn auto_prefers_gpu(options: &FeatureOptions, frames: u64) -> bool {
    frames >= AUTO_MIN_FRAMES && gpu_supports(options).is_ok() && gpu_status().is_ok()
}

/// Extracts every clip with `extractor`'s options on the GPU, drawing
/// device memory from `manager` (a process-wide one on the GPU when
/// `None`). A clip the CPU path would reject gets the same error in its
/// place; an error of the whole batch (no GPU, no room, a CUDA failure,
/// a panic) is returned instead.
pub fn extract_batch_gpu<C: AsRef<[f32]>>(
    extractor: &Extractor,
    clips: &[C],
    manager: Option<&Arc<MemoryManager>>,
) -> Result<GpuBatch, ExtractError> {
    gpu_supports(extractor.options())?;
    unwinding(|| {
        let engine = engine::engine()?;
        let manager = match manager {
            Some(m) if m.has_gpu() => m.clone(),
            Some(_) => {
                return Err(ExtractError::NoGpu(
                    "the memory manager given has no GPU (device 'cpu')".into(),
                ))
            }
            None => engine::shared_manager()?,
        };
        run::run(&mut engine.lock(), &manager, extractor, clips)
    })
}
