//! The process's GPU engine: the CUDA context and stream, the kernels
//! (compiled once by NVRTC), FFT plans, tables per set of options, pinned
//! staging buffers and timing events. One batch runs at a time (the engine
//! sits behind a mutex): batches queue for the one GPU instead of
//! contending for its memory.

use std::sync::{Arc, OnceLock};

use cudarc::driver::{result, sys, CudaContext, CudaFunction, CudaStream};
use cudarc::nvrtc::{compile_ptx_with_opts, CompileOptions};
use parking_lot::Mutex;

use super::failed;
use super::fft::Plans;
use super::libs;
use super::staging::Staging;
use super::tables::DeviceTables;
use crate::features::{ExtractError, FeatureOptions};
use crate::memory::{DeviceChoice, ManagerConfig, MemoryManager};

/// The kernels' CUDA source.
pub(super) const SOURCE: &str = include_str!("kernels.cu");

/// Sets of options whose tables stay on the device.
const TABLES_KEPT: usize = 8;

/// The compiled kernels.
pub(super) struct Kernels {
    pub fill: CudaFunction,
    pub frame_signal: CudaFunction,
    pub spectral: CudaFunction,
    pub finish: CudaFunction,
    pub time_domain: CudaFunction,
}

/// Everything a GPU batch uses that outlives it.
///
/// Field order is drop order: plans, tables and staging go before the
/// stream and the context they were made in.
pub(super) struct Engine {
    pub plans: Plans,
    tables: Vec<Arc<DeviceTables>>,
    pub staging: Staging,
    pub kernels: Kernels,
    /// Marks around the copies and kernels of a batch, for its timing.
    pub events: [sys::CUevent; 4],
    pub stream: Arc<CudaStream>,
    pub context: Arc<CudaContext>,
}

// SAFETY: the raw events are only used by whoever holds the engine's
// mutex, with its context bound; CUDA handles have no thread affinity.
unsafe impl Send for Engine {}

/// Compiles the kernels to PTX (no GPU needed, only NVRTC).
pub(super) fn compile() -> Result<cudarc::nvrtc::Ptx, ExtractError> {
    compile_ptx_with_opts(
        SOURCE,
        CompileOptions {
            name: Some("gama_features.cu".into()),
            ..CompileOptions::default()
        },
    )
    .map_err(|e| ExtractError::Gpu(format!("NVRTC could not compile the kernels: {e}")))
}

impl Engine {
    fn open() -> Result<Engine, ExtractError> {
        libs::check()?;
        let context = CudaContext::new(0)
            .map_err(|e| ExtractError::NoGpu(format!("no usable CUDA device 0: {e:?}")))?;
        let stream = context
            .new_stream()
            .map_err(|e| failed("cuStreamCreate", e))?;
        let module = context
            .load_module(compile()?)
            .map_err(|e| failed("loading the kernels", e))?;
        let function = |name: &str| {
            module
                .load_function(name)
                .map_err(|e| failed(&format!("finding kernel {name}"), e))
        };
        let kernels = Kernels {
            fill: function("fill")?,
            frame_signal: function("frame_signal")?,
            spectral: function("spectral")?,
            finish: function("finish")?,
            time_domain: function("time_domain")?,
        };
        let mut events = [std::ptr::null_mut(); 4];
        for event in &mut events {
            *event = result::event::create(sys::CUevent_flags::CU_EVENT_DEFAULT)
                .map_err(|e| failed("cuEventCreate", e))?;
        }
        Ok(Engine {
            plans: Plans::default(),
            tables: Vec::new(),
            staging: Staging::default(),
            kernels,
            events,
            stream,
            context,
        })
    }

    /// The device tables of `options`, uploaded on first use.
    pub fn tables(&mut self, options: &FeatureOptions) -> Result<Arc<DeviceTables>, ExtractError> {
        if let Some(i) = self.tables.iter().position(|t| &t.options == options) {
            let hit = self.tables.remove(i);
            self.tables.push(hit.clone());
            return Ok(hit);
        }
        let made = Arc::new(DeviceTables::upload(&self.context, options)?);
        if self.tables.len() == TABLES_KEPT {
            self.tables.remove(0);
        }
        self.tables.push(made.clone());
        Ok(made)
    }
}

/// The engine, opened on first use; the reason when this process has no
/// usable GPU (decided once: CUDA libraries do not appear later).
pub(super) fn engine() -> Result<&'static Mutex<Engine>, ExtractError> {
    static ENGINE: OnceLock<Result<Mutex<Engine>, ExtractError>> = OnceLock::new();
    ENGINE
        .get_or_init(|| Engine::open().map(Mutex::new))
        .as_ref()
        .map_err(Clone::clone)
}

/// The memory manager GPU batches draw from when none is given: one per
/// process, on the GPU, with the default budget.
pub(super) fn shared_manager() -> Result<Arc<MemoryManager>, ExtractError> {
    static SHARED: OnceLock<Result<Arc<MemoryManager>, ExtractError>> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            MemoryManager::new(ManagerConfig {
                device: DeviceChoice::Cuda,
                ..ManagerConfig::default()
            })
            .map_err(|e| ExtractError::NoGpu(e.to_string()))
        })
        .clone()
}
