//! The GPU pool: device memory from the CUDA driver (through `cudarc`,
//! loaded at run time), handed out in blocks placed by the sub-allocator.
//! Chunks are allocated with `cuMemAlloc` as the sub-allocator grows and
//! returned with `cuMemFree` by `trim` or on drop.
//!
//! Safety rule: no CUDA function is called before `open` has checked that
//! the driver library can be loaded (`is_culib_present`), because cudarc
//! panics instead of returning an error when it cannot load the library.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use cudarc::driver::{result, sys, CudaContext};
use parking_lot::Mutex;

use super::suballoc::{AllocError, Block, Config, Stats, SubAllocator};

/// Why the GPU could not serve a request.
#[derive(Clone, Debug, PartialEq)]
pub enum GpuError {
    /// No CUDA driver library, or no device.
    Unavailable(String),
    /// The pool's limit or the device is exhausted.
    OutOfMemory(String),
    /// A CUDA call failed.
    Driver(String),
}

impl fmt::Display for GpuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GpuError::Unavailable(m) | GpuError::OutOfMemory(m) | GpuError::Driver(m) => {
                f.write_str(m)
            }
        }
    }
}

impl std::error::Error for GpuError {}

/// The device a pool serves.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceInfo {
    /// Device name as the driver reports it.
    pub name: String,
    /// Ordinal of the device.
    pub ordinal: usize,
    /// Bytes of device memory.
    pub total: u64,
    /// Bytes the driver reports free now.
    pub free: u64,
}

struct Chunks {
    allocator: SubAllocator,
    /// Device address of each chunk (0 once freed), by chunk index.
    addresses: Vec<sys::CUdeviceptr>,
}

/// A pool of device memory on one GPU; thread-safe.
pub struct GpuPool {
    context: Arc<CudaContext>,
    chunks: Mutex<Chunks>,
}

/// Whether the CUDA driver library can be loaded (never panics).
pub fn driver_present() -> bool {
    // SAFETY: only tries to open the library; calls no CUDA function.
    unsafe { sys::is_culib_present() }
}

fn check_range(block: &Block, offset: u64, len: usize) -> Result<(), GpuError> {
    if offset.saturating_add(len as u64) > block.size {
        return Err(GpuError::Driver(format!(
            "a copy of {len} bytes at offset {offset} passes the end of a {} byte block",
            block.size
        )));
    }
    Ok(())
}

fn driver_error(what: &str, err: impl fmt::Debug) -> GpuError {
    GpuError::Driver(format!("{what} failed: {err:?}"))
}

impl GpuPool {
    /// Opens GPU `ordinal`, or explains why there is none.
    pub fn open(ordinal: usize, config: Config) -> Result<GpuPool, GpuError> {
        if !driver_present() {
            return Err(GpuError::Unavailable(
                "no CUDA driver library (libcuda) could be loaded".into(),
            ));
        }
        let context = CudaContext::new(ordinal).map_err(|e| {
            GpuError::Unavailable(format!("no usable CUDA device {ordinal}: {e:?}"))
        })?;
        Ok(GpuPool {
            context,
            chunks: Mutex::new(Chunks {
                allocator: SubAllocator::new(config),
                addresses: Vec::new(),
            }),
        })
    }

    /// Name, ordinal and memory of the device.
    pub fn device_info(&self) -> Result<DeviceInfo, GpuError> {
        self.bind()?;
        let (free, total) = self
            .context
            .mem_get_info()
            .map_err(|e| driver_error("cuMemGetInfo", e))?;
        Ok(DeviceInfo {
            name: self.context.name().unwrap_or_else(|_| "CUDA device".into()),
            ordinal: self.context.ordinal(),
            total: total as u64,
            free: free as u64,
        })
    }

    fn bind(&self) -> Result<(), GpuError> {
        self.context
            .bind_to_thread()
            .map_err(|e| driver_error("binding the CUDA context", e))
    }

    /// A block of at least `size` bytes, growing the pool by a chunk if needed.
    pub fn allocate(&self, size: u64) -> Result<Block, GpuError> {
        let mut chunks = self.chunks.lock();
        let block = chunks.allocator.allocate(size).map_err(|e| match e {
            AllocError::ZeroSize => GpuError::Driver(e.to_string()),
            AllocError::OutOfMemory { .. } => GpuError::OutOfMemory(e.to_string()),
        })?;
        let sizes = chunks.allocator.chunks().to_vec();
        if chunks.addresses.len() < sizes.len() {
            self.bind()?;
            // SAFETY: the context is bound to this thread; the size is non-zero.
            match unsafe { result::malloc_sync(sizes[block.chunk] as usize) } {
                Ok(address) => chunks.addresses.push(address),
                Err(e) => {
                    chunks.addresses.push(0);
                    chunks.allocator.free(block);
                    self.release_free_chunks(&mut chunks);
                    return Err(GpuError::OutOfMemory(format!(
                        "cuMemAlloc of a {} byte chunk failed: {e:?}",
                        sizes[block.chunk]
                    )));
                }
            }
        }
        Ok(block)
    }

    /// Returns a block to the pool (the memory stays with the pool until `trim`).
    pub fn free(&self, block: Block) {
        self.chunks.lock().allocator.free(block);
    }

    /// Device address of a live block.
    pub(crate) fn address(&self, block: &Block) -> sys::CUdeviceptr {
        self.chunks.lock().addresses[block.chunk] + block.offset
    }

    /// Copies `bytes` from host memory into `block` at `offset`.
    pub fn copy_in(&self, block: &Block, offset: u64, bytes: &[u8]) -> Result<(), GpuError> {
        check_range(block, offset, bytes.len())?;
        let address = self.address(block) + offset;
        self.bind()?;
        // SAFETY: the range lies inside a live block of a live chunk.
        unsafe { result::memcpy_htod_sync(address, bytes) }
            .map_err(|e| driver_error("cuMemcpyHtoD", e))
    }

    /// Copies `out.len()` bytes from `block` at `offset` into host memory.
    pub fn copy_out(&self, block: &Block, offset: u64, out: &mut [u8]) -> Result<(), GpuError> {
        check_range(block, offset, out.len())?;
        let address = self.address(block) + offset;
        self.bind()?;
        // SAFETY: as in `copy_in`.
        unsafe { result::memcpy_dtoh_sync(out, address) }
            .map_err(|e| driver_error("cuMemcpyDtoH", e))
    }

    /// Returns every wholly free chunk to the driver; the bytes returned.
    pub fn trim(&self) -> u64 {
        let mut chunks = self.chunks.lock();
        self.release_free_chunks(&mut chunks)
    }

    fn release_free_chunks(&self, chunks: &mut Chunks) -> u64 {
        let released = chunks.allocator.trim();
        if released.is_empty() || self.bind().is_err() {
            return 0;
        }
        let mut bytes = 0;
        for (chunk, size) in released {
            let address = std::mem::take(&mut chunks.addresses[chunk]);
            if address != 0 {
                // SAFETY: the chunk came from cuMemAlloc and holds no live block.
                let _ = unsafe { result::free_sync(address) };
                bytes += size;
            }
        }
        bytes
    }

    /// Occupancy, fragmentation and allocation latency of the pool.
    pub fn stats(&self) -> Stats {
        self.chunks.lock().allocator.stats()
    }

    /// Times `pairs` raw `cuMemAlloc`/`cuMemFree` pairs of `size` bytes
    /// (the baseline the pool is measured against); mean ns per pair.
    pub fn time_raw_pairs(&self, size: u64, pairs: u32) -> Result<f64, GpuError> {
        self.bind()?;
        let started = Instant::now();
        for _ in 0..pairs {
            // SAFETY: context bound; each allocation is freed at once.
            unsafe {
                let address = result::malloc_sync(size as usize)
                    .map_err(|e| driver_error("cuMemAlloc", e))?;
                result::free_sync(address).map_err(|e| driver_error("cuMemFree", e))?;
            }
        }
        Ok(started.elapsed().as_nanos() as f64 / pairs.max(1) as f64)
    }
}

impl Drop for GpuPool {
    fn drop(&mut self) {
        let chunks = self.chunks.get_mut();
        if self.context.bind_to_thread().is_err() {
            return;
        }
        for address in chunks.addresses.drain(..).filter(|&a| a != 0) {
            // SAFETY: every non-zero address came from cuMemAlloc; the pool is going away.
            let _ = unsafe { result::free_sync(address) };
        }
    }
}
