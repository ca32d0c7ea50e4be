//! The option and result types of the `GAMAMemoryManager` API as
//! `index.d.ts` declares them, and their conversions from the core's.

use std::collections::HashMap;

use napi::bindgen_prelude::Null;
use napi::Either;
use napi_derive::napi;

use crate::js::options::SizeInput;
use gama_core::memory::manager::{DeviceUsage, GpuUsage};

/// Options of `new GAMAMemoryManager(options)`. Every one has a default
/// taken from the machine.
#[napi(object)]
pub struct MemoryManagerOptions {
    /// Host memory budget: bytes or a string such as "4GB" (default: half the machine's memory).
    #[napi(ts_type = "number | string")]
    pub max_memory: Option<SizeInput>,
    /// Part of maxMemory never handed out (default: an eighth of maxMemory).
    #[napi(ts_type = "number | string")]
    pub reserved_memory: Option<SizeInput>,
    /// Usage percentage (1-100) at which pressure is reported and batches shrink (default 70).
    pub optimization_threshold: Option<f64>,
    /// 'auto' uses a GPU when one is usable (default), 'cpu' never does, 'cuda' requires one.
    #[napi(ts_type = "'auto' | 'cpu' | 'cuda'")]
    pub device: Option<String>,
    /// GPU budget (default: 90% of the device's memory).
    #[napi(ts_type = "number | string")]
    pub gpu_max_memory: Option<SizeInput>,
    /// How the GPU pool places blocks (default 'best-fit').
    #[napi(ts_type = "'best-fit' | 'first-fit' | 'worst-fit' | 'buddy'")]
    pub allocation_strategy: Option<String>,
    /// Alignment of GPU blocks in bytes, a power of two (default 256).
    pub alignment: Option<f64>,
    /// Bytes the GPU pool grows by (default "64MB").
    #[napi(ts_type = "number | string")]
    pub gpu_chunk_size: Option<SizeInput>,
    /// Pooled host memory unused this many ms goes back to the system (default 30000).
    pub idle_trim_ms: Option<f64>,
}

/// Options of `allocate`.
#[napi(object)]
pub struct AllocateOptions {
    /// What the memory is for; usage is reported per operation (default 'general').
    pub operation: Option<String>,
    /// 'host' (default) or 'gpu'.
    #[napi(ts_type = "'host' | 'gpu'")]
    pub device: Option<String>,
    /// A label kept on the block.
    pub tag: Option<String>,
}

/// Usage of one budget.
#[napi(object, js_name = "DeviceMemoryUsage")]
pub struct DeviceUsageJs {
    /// Bytes in use.
    pub used: f64,
    /// Usable bytes: the budget less the reserve.
    pub total: f64,
    /// `total - used`.
    pub available: f64,
    /// `used / total` in percent.
    pub percentage: f64,
    /// Most bytes in use at once since creation or `resetPeak()`.
    pub peak: f64,
    /// Bytes held in reserve.
    pub reserved: f64,
    /// Bytes the pool keeps for reuse (not in use, not counted in `used`).
    pub pooled: f64,
}

impl From<&DeviceUsage> for DeviceUsageJs {
    fn from(u: &DeviceUsage) -> Self {
        DeviceUsageJs {
            used: u.used as f64,
            total: u.total as f64,
            available: u.available as f64,
            percentage: u.percentage,
            peak: u.peak as f64,
            reserved: u.reserved as f64,
            pooled: u.pooled as f64,
        }
    }
}

/// Usage of the GPU.
#[napi(object, js_name = "GpuMemoryUsage")]
pub struct GpuUsageJs {
    /// Device name.
    pub name: String,
    /// Device ordinal.
    pub ordinal: u32,
    /// Bytes of device memory.
    pub device_total: f64,
    /// Bytes the driver reports free.
    pub device_free: f64,
    /// The GPU budget.
    pub budget: DeviceUsageJs,
    /// Pool fragmentation: 1 - largest free block / free bytes.
    pub fragmentation: f64,
    /// Largest free block in the pool.
    pub largest_free_block: f64,
}

impl From<&GpuUsage> for GpuUsageJs {
    fn from(g: &GpuUsage) -> Self {
        GpuUsageJs {
            name: g.device.name.clone(),
            ordinal: g.device.ordinal as u32,
            device_total: g.device.total as f64,
            device_free: g.device.free as f64,
            budget: (&g.budget).into(),
            fragmentation: g.fragmentation,
            largest_free_block: g.largest_free as f64,
        }
    }
}

/// Usage of one operation.
#[napi(object, js_name = "OperationMemoryUsage")]
pub struct OperationUsageJs {
    /// Bytes it holds now.
    pub current: f64,
    /// Most bytes it held at once.
    pub peak: f64,
    /// Allocations and reservations it made.
    pub allocations: f64,
    /// Mean bytes per request.
    pub mean_request: f64,
}

/// The machine and this process.
#[napi(object, js_name = "SystemMemoryUsage")]
pub struct SystemUsageJs {
    /// Physical memory.
    pub total: f64,
    /// Memory available to new allocations.
    pub available: f64,
    /// Resident set size of this process.
    pub process_rss: f64,
}

/// What `getMemoryUsage()` returns. The top-level figures cover host and
/// GPU budgets together (`peak` is the sum of each device's peak).
#[napi(object)]
pub struct MemoryUsage {
    /// Bytes in use.
    pub used: f64,
    /// Usable bytes.
    pub total: f64,
    /// `total - used`.
    pub available: f64,
    /// `used / total` in percent (what a router compares with its limits).
    pub percentage: f64,
    /// Most bytes in use at once.
    pub peak: f64,
    /// Bytes held in reserve.
    pub reserved: f64,
    /// Usage per operation name.
    pub by_operation: HashMap<String, OperationUsageJs>,
    /// The host budget.
    pub host: DeviceUsageJs,
    /// The GPU, or null without one.
    #[napi(ts_type = "GpuMemoryUsage | null")]
    pub gpu: Either<GpuUsageJs, Null>,
    /// The machine and this process.
    pub system: SystemUsageJs,
}

/// One finding of `getOptimizationOpportunities()`.
#[napi(object)]
pub struct OptimizationOpportunity {
    /// 'dominant-operation', 'over-threshold', 'fragmentation', 'leaked-blocks', 'low-pool-hit-rate' or 'idle-pool-memory'.
    pub kind: String,
    /// 'host' or 'gpu'.
    pub device: String,
    /// The operation concerned, if one.
    pub operation: Option<String>,
    /// What was found and what to do.
    pub message: String,
    /// Bytes the suggested action would free or avoid allocating.
    pub estimated_saving: f64,
    /// 'high', 'medium' or 'low'.
    pub severity: String,
}

/// Host pool counters.
#[napi(object)]
pub struct HostPoolStats {
    /// Requests served from pooled memory.
    pub hits: f64,
    /// Requests that allocated fresh memory.
    pub misses: f64,
    /// `hits / (hits + misses)`, 0 before any request.
    pub hit_rate: f64,
    /// Bytes pooled for reuse now.
    pub pooled_bytes: f64,
    /// Bytes given back to the system by trimming.
    pub trimmed_bytes: f64,
}

/// GPU pool counters.
#[napi(object)]
pub struct GpuPoolStats {
    /// Bytes in live blocks.
    pub allocated: f64,
    /// Bytes of device memory the pool holds.
    pub reserved: f64,
    /// Largest free block.
    pub largest_free_block: f64,
    /// 1 - largest free block / free bytes.
    pub fragmentation: f64,
    /// Live blocks.
    pub blocks: f64,
    /// Chunks held.
    pub chunks: f64,
    /// Allocations served.
    pub allocations: f64,
    /// Mean time to place a block, in ns.
    pub mean_allocation_ns: f64,
}

/// What `getStats()` returns.
#[napi(object)]
pub struct MemoryStats {
    /// Host pool counters.
    pub host_pool: HostPoolStats,
    /// GPU pool counters, or null without a GPU.
    #[napi(ts_type = "GpuPoolStats | null")]
    pub gpu_pool: Either<GpuPoolStats, Null>,
    /// Blocks handed out.
    pub allocations: f64,
    /// Requests refused (over budget, no GPU).
    pub failures: f64,
    /// Blocks the garbage collector reclaimed without `release()`.
    pub leaks: f64,
    /// Bytes of those blocks.
    pub leaked_bytes: f64,
    /// Mean time of a host allocation inside the manager, in ns.
    pub mean_host_allocation_ns: f64,
}

/// Bytes `trim()` gave back.
#[napi(object)]
pub struct TrimResult {
    /// Host bytes returned to the system.
    pub host: f64,
    /// GPU bytes returned to the driver.
    pub gpu: f64,
}

/// Options of `recommendBatchSize`.
#[napi(object)]
pub struct RecommendOptions {
    /// Smallest size returned (default 1).
    pub min: Option<f64>,
    /// Largest size returned (default 1024).
    pub max: Option<f64>,
    /// Budget to size against: 'host' (default) or 'gpu'.
    #[napi(ts_type = "'host' | 'gpu'")]
    pub device: Option<String>,
}

/// A crossing of the optimisation threshold.
#[napi(object, js_name = "PressureEvent")]
pub struct PressureEventJs {
    /// 'host' or 'gpu'.
    pub device: String,
    /// 'rising' when usage reached the threshold, 'falling' when it dropped below.
    #[napi(ts_type = "'rising' | 'falling'")]
    pub direction: String,
    /// Usage percentage after the crossing.
    pub percentage: f64,
    /// The threshold.
    pub threshold: f64,
}
