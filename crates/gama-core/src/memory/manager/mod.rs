//! The memory manager: a budget per device, the host buffer pool, the GPU
//! pool when a GPU is there, leases that give their memory back when
//! dropped, usage analytics and pressure notifications. `GAMAMemoryManager`
//! wraps it for JS, and the batch processor reserves memory through it.
//!
//! Invariants: a lease's bytes are counted in its device's budget from
//! creation until drop; host memory held by the pool plus host memory in
//! use never exceeds the host budget's usable total.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::RwLock;

pub use super::budget::DeviceUsage;
use super::budget::{Budget, OperationUsage, OverBudget, Pressure};
use super::gpu::{DeviceInfo, GpuError, GpuPool};
use super::host_pool::{HostBuffer, HostPool, PoolStats};
use super::suballoc::{self, Block, Strategy};
use crate::metrics::Handle;

/// Latency series of host and GPU allocations.
static ALLOCATE_HOST: Handle = Handle::new("memory", "allocate_host");
static ALLOCATE_GPU: Handle = Handle::new("memory", "allocate_gpu");
use super::system::{system_memory, SystemMemory};
use crate::error::Coded;
use crate::reaper::{self, Expiring};

/// Which devices a manager may use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceChoice {
    /// The GPU when one is usable, else host memory only.
    #[default]
    Auto,
    /// Host memory only.
    Cpu,
    /// Host memory and the GPU; construction fails without one.
    Cuda,
}

/// Where a block lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Device {
    /// Host (CPU) memory.
    Host,
    /// GPU device memory.
    Gpu,
}

impl Device {
    /// Lowercase name, as JS sees it.
    pub fn name(self) -> &'static str {
        match self {
            Device::Host => "host",
            Device::Gpu => "gpu",
        }
    }
}

/// Settings of a manager.
#[derive(Clone, Debug)]
pub struct ManagerConfig {
    /// Host budget in bytes.
    pub max_memory: u64,
    /// Part of `max_memory` never handed out.
    pub reserved_memory: u64,
    /// Usage percentage at which pressure is reported and batches shrink.
    pub threshold_percent: f64,
    /// Devices to use.
    pub device: DeviceChoice,
    /// GPU budget in bytes (default: 90% of the device's memory).
    pub gpu_max_memory: Option<u64>,
    /// How the GPU pool places blocks.
    pub strategy: Strategy,
    /// Alignment of GPU blocks.
    pub alignment: u64,
    /// Bytes the GPU pool grows by.
    pub gpu_chunk_size: u64,
    /// Pooled host memory unused this long goes back to the system.
    pub idle_trim: Duration,
}

impl Default for ManagerConfig {
    /// Half the machine's memory with an eighth of that held in reserve,
    /// threshold 70%, GPU when present, best-fit, 256-byte alignment, 64 MiB
    /// GPU chunks, 30 s idle trim.
    fn default() -> Self {
        let max_memory = (system_memory().total / 2).max(64 << 20);
        ManagerConfig {
            max_memory,
            reserved_memory: max_memory / 8,
            threshold_percent: 70.0,
            device: DeviceChoice::Auto,
            gpu_max_memory: None,
            strategy: Strategy::BestFit,
            alignment: 256,
            gpu_chunk_size: 64 << 20,
            idle_trim: Duration::from_secs(30),
        }
    }
}

/// Why memory could not be had.
#[derive(Clone, Debug, PartialEq)]
pub enum MemoryError {
    /// The device's budget has too little room.
    OverBudget(Device, OverBudget),
    /// A GPU was asked for and there is none.
    NoGpu(String),
    /// The GPU pool or driver refused.
    Gpu(GpuError),
}

impl MemoryError {
    /// Whether there was too little room (the budget's, or the device's).
    pub fn is_over_budget(&self) -> bool {
        matches!(
            self,
            MemoryError::OverBudget(..) | MemoryError::Gpu(GpuError::OutOfMemory(_))
        )
    }
}

impl Coded for MemoryError {
    fn code(&self) -> &'static str {
        match self {
            MemoryError::OverBudget(..) | MemoryError::Gpu(GpuError::OutOfMemory(_)) => "E_BUDGET",
            MemoryError::NoGpu(_) | MemoryError::Gpu(GpuError::Unavailable(_)) => "E_NO_GPU",
            MemoryError::Gpu(GpuError::Driver(_)) => "E_GPU",
        }
    }
}

impl std::fmt::Display for MemoryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MemoryError::OverBudget(device, over) => write!(f, "{} memory: {over}", device.name()),
            MemoryError::NoGpu(why) => write!(f, "no GPU: {why}"),
            MemoryError::Gpu(err) => write!(f, "GPU: {err}"),
        }
    }
}

impl std::error::Error for MemoryError {}

/// A crossing of the threshold, for pressure listeners.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PressureEvent {
    /// Device whose budget crossed.
    pub device: Device,
    /// True when usage rose to the threshold, false when it fell below.
    pub rising: bool,
    /// Usage percentage after the crossing.
    pub percentage: f64,
    /// The threshold in percent.
    pub threshold: f64,
}

/// A pressure listener.
pub type PressureListener = Arc<dyn Fn(PressureEvent) + Send + Sync>;

/// Usage of the GPU.
#[derive(Clone, Debug, PartialEq)]
pub struct GpuUsage {
    /// The GPU budget.
    pub budget: DeviceUsage,
    /// The device.
    pub device: DeviceInfo,
    /// Pool fragmentation: 1 - largest free block / free bytes.
    pub fragmentation: f64,
    /// Largest free block in the pool.
    pub largest_free: u64,
}

/// What `usage` reports.
#[derive(Clone, Debug, PartialEq)]
pub struct MemoryUsage {
    /// Host and GPU together (`peak` is the sum of each device's peak).
    pub all: DeviceUsage,
    /// Usage per operation, both devices summed, largest first.
    pub by_operation: Vec<(String, OperationUsage)>,
    /// The host budget.
    pub host: DeviceUsage,
    /// The GPU, when one is in use.
    pub gpu: Option<GpuUsage>,
    /// The machine and this process.
    pub system: SystemMemory,
}

/// Counters of a manager.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ManagerStats {
    /// The host pool's hits, misses and holdings.
    pub host_pool: PoolStats,
    /// The GPU pool's occupancy and latency.
    pub gpu_pool: Option<suballoc::Stats>,
    /// Blocks handed out.
    pub allocations: u64,
    /// Requests refused.
    pub failures: u64,
    /// Blocks reclaimed by the garbage collector without `release`.
    pub leaks: u64,
    /// Bytes of those blocks.
    pub leaked_bytes: u64,
    /// Total time spent allocating host blocks.
    pub host_allocation_time: Duration,
}

#[derive(Default)]
struct Counters {
    allocations: AtomicU64,
    failures: AtomicU64,
    leaks: AtomicU64,
    leaked_bytes: AtomicU64,
    host_allocation_ns: AtomicU64,
}

struct GpuSide {
    budget: Budget,
    pool: GpuPool,
}

/// Budgets, pools and analytics for host and GPU memory; thread-safe.
pub struct MemoryManager {
    config: ManagerConfig,
    host: Budget,
    pool: HostPool,
    gpu: Option<GpuSide>,
    counters: Counters,
    listener: RwLock<Option<PressureListener>>,
    sweep_scheduled: AtomicBool,
    this: Weak<MemoryManager>,
}

impl MemoryManager {
    /// A manager; fails only when `device` is `Cuda` and no GPU is usable.
    pub fn new(config: ManagerConfig) -> Result<Arc<MemoryManager>, MemoryError> {
        let gpu = match config.device {
            DeviceChoice::Cpu => None,
            DeviceChoice::Auto => open_gpu(&config).ok(),
            DeviceChoice::Cuda => Some(open_gpu(&config)?),
        };
        let manager = Arc::new_cyclic(|this| MemoryManager {
            host: Budget::new(
                config.max_memory,
                config.reserved_memory,
                config.threshold_percent,
            ),
            pool: HostPool::new(config.idle_trim),
            gpu,
            counters: Counters::default(),
            listener: RwLock::new(None),
            sweep_scheduled: AtomicBool::new(false),
            this: this.clone(),
            config,
        });
        let weak: Weak<dyn Expiring> = Arc::downgrade(&manager) as Weak<dyn Expiring>;
        reaper::watch(weak);
        Ok(manager)
    }

    /// The settings in force.
    pub fn config(&self) -> &ManagerConfig {
        &self.config
    }

    /// Whether a GPU is in use.
    pub fn has_gpu(&self) -> bool {
        self.gpu.is_some()
    }

    fn arc(&self) -> Arc<MemoryManager> {
        self.this
            .upgrade()
            .expect("a live manager is held by an Arc")
    }

    fn budget(&self, device: Device) -> Result<&Budget, MemoryError> {
        match device {
            Device::Host => Ok(&self.host),
            Device::Gpu => self.gpu.as_ref().map(|g| &g.budget).ok_or_else(no_gpu),
        }
    }

    /// Calls the pressure listener, if any, on a crossing.
    fn notify(&self, device: Device, change: Option<Pressure>) {
        let Some(change) = change else { return };
        let Some(listener) = self.listener.read().clone() else {
            return;
        };
        let percentage = self.budget(device).map_or(0.0, |b| b.percentage());
        listener(PressureEvent {
            device,
            rising: change == Pressure::Rising,
            percentage,
            threshold: self.config.threshold_percent,
        });
    }

    fn refused(&self, err: MemoryError) -> MemoryError {
        self.counters.failures.fetch_add(1, Ordering::Relaxed);
        err
    }

    /// Host memory of at least `size` bytes for `operation`, from the pool.
    pub fn allocate_host(&self, size: u64, operation: &str) -> Result<HostLease, MemoryError> {
        let started = Instant::now();
        let footprint = HostPool::footprint(size as usize) as u64;
        let change = match self.host.reserve(footprint, operation) {
            Ok(change) => change,
            Err(over) => {
                self.pool.trim_all();
                return Err(self.refused(MemoryError::OverBudget(Device::Host, over)));
            }
        };
        let used = self.host.used();
        let room_for_pool = self.host.total().saturating_sub(used);
        if self.pool.stats().pooled_bytes > room_for_pool {
            self.pool.trim_to(room_for_pool);
        }
        let mut buffer = self.pool.acquire(size as usize);
        let ptr = buffer.as_mut_slice().as_mut_ptr();
        self.counters.allocations.fetch_add(1, Ordering::Relaxed);
        let elapsed = ALLOCATE_HOST.record_since(started);
        self.counters
            .host_allocation_ns
            .fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
        self.notify(Device::Host, change);
        Ok(HostLease {
            manager: self.arc(),
            buffer: Some(buffer),
            ptr,
            len: size as usize,
            footprint,
            operation: operation.into(),
        })
    }

    fn return_host(&self, buffer: HostBuffer, footprint: u64, operation: &str) {
        self.pool.release(buffer);
        let change = self.host.release(footprint, operation);
        if !self.sweep_scheduled.swap(true, Ordering::AcqRel) {
            reaper::wake_by(Instant::now() + self.config.idle_trim);
        }
        self.notify(Device::Host, change);
    }

    /// GPU memory of at least `size` bytes for `operation`, from the GPU pool.
    pub fn allocate_gpu(&self, size: u64, operation: &str) -> Result<GpuLease, MemoryError> {
        let started = Instant::now();
        let gpu = self.gpu.as_ref().ok_or_else(|| self.refused(no_gpu()))?;
        let change = gpu
            .budget
            .reserve(size, operation)
            .map_err(|over| self.refused(MemoryError::OverBudget(Device::Gpu, over)))?;
        let block = match gpu.pool.allocate(size) {
            Ok(block) => block,
            Err(err) => {
                let change = gpu.budget.release(size, operation);
                self.notify(Device::Gpu, change);
                return Err(self.refused(MemoryError::Gpu(err)));
            }
        };
        self.counters.allocations.fetch_add(1, Ordering::Relaxed);
        ALLOCATE_GPU.record_since(started);
        self.notify(Device::Gpu, change);
        Ok(GpuLease {
            manager: self.arc(),
            block,
            len: size,
            operation: operation.into(),
        })
    }

    /// Counts `bytes` against `device`'s budget until the reservation drops,
    /// without handing out memory (the batch processor's estimates).
    pub fn reserve(
        &self,
        device: Device,
        bytes: u64,
        operation: &str,
    ) -> Result<Reservation, MemoryError> {
        let change = self
            .budget(device)?
            .reserve(bytes, operation)
            .map_err(|over| MemoryError::OverBudget(device, over))?;
        self.notify(device, change);
        Ok(Reservation {
            manager: self.arc(),
            device,
            bytes,
            operation: operation.into(),
        })
    }

    /// Usable bytes of `device`'s budget (what no request may exceed).
    pub fn capacity(&self, device: Device) -> u64 {
        self.budget(device).map_or(0, |b| b.total())
    }

    /// Usage of `device` in percent of its usable budget.
    pub fn percentage(&self, device: Device) -> f64 {
        self.budget(device).map_or(0.0, |b| b.percentage())
    }

    /// Sets (or clears) the pressure listener.
    pub fn set_pressure_listener(&self, listener: Option<PressureListener>) {
        *self.listener.write() = listener;
    }

    /// Counts a block the garbage collector reclaimed without `release`.
    pub fn record_leak(&self, bytes: u64) {
        self.counters.leaks.fetch_add(1, Ordering::Relaxed);
        self.counters
            .leaked_bytes
            .fetch_add(bytes, Ordering::Relaxed);
    }

    /// A snapshot of every budget, the pools and the machine.
    pub fn usage(&self) -> MemoryUsage {
        let host_budget = self.host.usage();
        let host = DeviceUsage {
            pooled: self.pool.stats().pooled_bytes,
            ..host_budget.device
        };
        let mut by_operation = host_budget.by_operation;
        let gpu = self.gpu.as_ref().map(|g| {
            let budget = g.budget.usage();
            for (name, op) in budget.by_operation.iter() {
                match by_operation.iter_mut().find(|(n, _)| n == name) {
                    Some((_, sum)) => {
                        sum.current += op.current;
                        sum.peak += op.peak;
                        sum.reservations += op.reservations;
                        sum.total_requested += op.total_requested;
                    }
                    None => by_operation.push((name.clone(), op.clone())),
                }
            }
            let stats = g.pool.stats();
            GpuUsage {
                budget: DeviceUsage {
                    pooled: stats.reserved - stats.allocated,
                    ..budget.device
                },
                device: g.pool.device_info().unwrap_or_else(|_| DeviceInfo {
                    name: "CUDA device".into(),
                    ordinal: 0,
                    total: 0,
                    free: 0,
                }),
                fragmentation: stats.fragmentation,
                largest_free: stats.largest_free,
            }
        });
        by_operation.sort_by(|a, b| b.1.current.cmp(&a.1.current).then(a.0.cmp(&b.0)));
        let all = match &gpu {
            None => host.clone(),
            Some(g) => {
                let (h, d) = (&host, &g.budget);
                let total = h.total + d.total;
                DeviceUsage {
                    used: h.used + d.used,
                    total,
                    available: h.available + d.available,
                    percentage: percent(h.used + d.used, total),
                    peak: h.peak + d.peak,
                    reserved: h.reserved + d.reserved,
                    pooled: h.pooled + d.pooled,
                }
            }
        };
        MemoryUsage {
            all,
            by_operation,
            host,
            gpu,
            system: system_memory(),
        }
    }

    /// Counters of the pools and of blocks handed out, refused and leaked.
    pub fn stats(&self) -> ManagerStats {
        ManagerStats {
            host_pool: self.pool.stats(),
            gpu_pool: self.gpu.as_ref().map(|g| g.pool.stats()),
            allocations: self.counters.allocations.load(Ordering::Relaxed),
            failures: self.counters.failures.load(Ordering::Relaxed),
            leaks: self.counters.leaks.load(Ordering::Relaxed),
            leaked_bytes: self.counters.leaked_bytes.load(Ordering::Relaxed),
            host_allocation_time: Duration::from_nanos(
                self.counters.host_allocation_ns.load(Ordering::Relaxed),
            ),
        }
    }

    /// Items of `bytes_per_item` that fit below the threshold on `device`.
    pub fn recommend_batch_size(
        &self,
        device: Device,
        operation: &str,
        bytes_per_item: u64,
        min: u64,
        max: u64,
    ) -> u64 {
        self.budget(device).map_or(min, |b| {
            b.recommend_batch_size(operation, bytes_per_item, min, max)
        })
    }

    /// Starts every peak again from current use.
    pub fn reset_peak(&self) {
        self.host.reset_peak();
        if let Some(g) = &self.gpu {
            g.budget.reset_peak();
        }
    }

    /// Returns all pooled host memory and every free GPU chunk; (host, gpu) bytes.
    pub fn trim(&self) -> (u64, u64) {
        (
            self.pool.trim_all(),
            self.gpu.as_ref().map_or(0, |g| g.pool.trim()),
        )
    }
}

impl Expiring for MemoryManager {
    fn purge_expired(&self, now: Instant) -> Option<Instant> {
        self.pool.trim_idle(now);
        let next = self.pool.next_idle_deadline();
        self.sweep_scheduled
            .store(next.is_some(), Ordering::Release);
        next
    }
}

fn open_gpu(config: &ManagerConfig) -> Result<GpuSide, MemoryError> {
    let unlimited = suballoc::Config {
        strategy: config.strategy,
        alignment: config.alignment,
        chunk_size: config.gpu_chunk_size,
        max_bytes: u64::MAX,
    };
    let probe = GpuPool::open(0, unlimited).map_err(|e| MemoryError::NoGpu(e.to_string()))?;
    let info = probe.device_info().map_err(MemoryError::Gpu)?;
    drop(probe);
    let max = config
        .gpu_max_memory
        .unwrap_or(info.total / 10 * 9)
        .min(info.total);
    let pool = GpuPool::open(
        0,
        suballoc::Config {
            max_bytes: max,
            ..unlimited
        },
    )
    .map_err(|e| MemoryError::NoGpu(e.to_string()))?;
    Ok(GpuSide {
        budget: Budget::new(max, 0, config.threshold_percent),
        pool,
    })
}

fn no_gpu() -> MemoryError {
    MemoryError::NoGpu("this manager has no GPU (device 'cpu', or none was found)".into())
}

fn percent(used: u64, total: u64) -> f64 {
    if total == 0 {
        100.0
    } else {
        used as f64 * 100.0 / total as f64
    }
}

/// Host memory lent by the manager; returns to the pool when dropped.
pub struct HostLease {
    manager: Arc<MemoryManager>,
    buffer: Option<HostBuffer>,
    ptr: *mut u8,
    len: usize,
    footprint: u64,
    operation: Box<str>,
}

// SAFETY: the lease owns its buffer; `ptr` points into that heap allocation,
// which does not move, and is only dereferenced by callers through the
// documented access rules of `as_ptr`.
unsafe impl Send for HostLease {}
// SAFETY: as above; `&HostLease` gives no access to the bytes by itself.
unsafe impl Sync for HostLease {}

impl HostLease {
    /// Start of the memory. Whoever writes through it must be its only
    /// writer and reader at that time (JS, in `GAMAMemoryManager`).
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr
    }

    /// Bytes requested.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether zero bytes were requested (never: size 0 is refused).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The memory, for a unique owner.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        let len = self.len;
        &mut self
            .buffer
            .as_mut()
            .expect("live until drop")
            .as_mut_slice()[..len]
    }

    /// The operation it was allocated for.
    pub fn operation(&self) -> &str {
        &self.operation
    }
}

impl Drop for HostLease {
    fn drop(&mut self) {
        if let Some(buffer) = self.buffer.take() {
            self.manager
                .return_host(buffer, self.footprint, &self.operation);
        }
    }
}

/// GPU memory lent by the manager; returns to the GPU pool when dropped.
pub struct GpuLease {
    manager: Arc<MemoryManager>,
    block: Block,
    len: u64,
    operation: Box<str>,
}

impl GpuLease {
    fn pool(&self) -> &GpuPool {
        &self
            .manager
            .gpu
            .as_ref()
            .expect("a GPU lease has a GPU")
            .pool
    }

    /// Bytes requested.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether zero bytes were requested (never: size 0 is refused).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Device address of the block's first byte (valid while the lease
    /// lives), for kernels and CUDA libraries that write into it.
    pub fn device_address(&self) -> u64 {
        self.pool().address(&self.block)
    }

    /// Copies host bytes into the block at `offset`.
    pub fn copy_in(&self, offset: u64, bytes: &[u8]) -> Result<(), MemoryError> {
        self.pool()
            .copy_in(&self.block, offset, bytes)
            .map_err(MemoryError::Gpu)
    }

    /// Copies bytes of the block at `offset` out to host memory.
    pub fn copy_out(&self, offset: u64, out: &mut [u8]) -> Result<(), MemoryError> {
        self.pool()
            .copy_out(&self.block, offset, out)
            .map_err(MemoryError::Gpu)
    }
}

impl Drop for GpuLease {
    fn drop(&mut self) {
        if let Some(gpu) = &self.manager.gpu {
            gpu.pool.free(self.block);
            let change = gpu.budget.release(self.len, &self.operation);
            self.manager.notify(Device::Gpu, change);
        }
    }
}

/// Budget counted for an operation without memory handed out; given back on drop.
pub struct Reservation {
    manager: Arc<MemoryManager>,
    device: Device,
    bytes: u64,
    operation: Box<str>,
}

impl Reservation {
    /// Bytes counted.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The budget they are counted in.
    pub fn device(&self) -> Device {
        self.device
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Ok(budget) = self.manager.budget(self.device) {
            let change = budget.release(self.bytes, &self.operation);
            self.manager.notify(self.device, change);
        }
    }
}

#[cfg(test)]
mod tests;
