//! The `GAMAMemoryManager` class as JS sees it: option checks, conversion
//! of snapshots into plain objects, and error mapping around `MemoryManager`.

mod block;
mod fast_path;
mod types;

pub use block::MemoryBlock;
pub use types::*;

use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use napi::bindgen_prelude::{Function, Null, This, Unknown};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Either, Env, JsValue, Result, Status};
use napi_derive::napi;
use parking_lot::Mutex;

use crate::js::errors::{coded, range_error, INVALID_ARG_VALUE, OUT_OF_RANGE};
use crate::js::fields::{size_value, Fields};
use crate::js::module::Scripts;
use crate::js::napi::Js;
use crate::js::options::function_arg;
use crate::js::value::RawValue;
use block::{Blocks, Lease};
pub use fast_path::install;
use gama_core::memory::advice::opportunities;
use gama_core::memory::manager::ManagerConfig;
use gama_core::memory::suballoc::Strategy;
use gama_core::memory::{Device, DeviceChoice, MemoryError, MemoryManager, PressureEvent};

type Listener = ThreadsafeFunction<PressureEventJs, (), PressureEventJs, Status, false, true>;

#[derive(Default)]
struct Listeners {
    next_id: AtomicU64,
    list: Mutex<Vec<(u64, Arc<Listener>)>>,
}

/// A memory budget for host and GPU memory with pooled, reference-counted
/// blocks, usage analytics, optimisation suggestions and batch sizing.
#[napi(js_name = "GAMAMemoryManager")]
pub struct GAMAMemoryManager {
    manager: Arc<MemoryManager>,
    listeners: Arc<Listeners>,
    blocks: Rc<Blocks>,
}

impl GAMAMemoryManager {
    /// The core, for the batch processor.
    pub fn core(&self) -> &Arc<MemoryManager> {
        &self.manager
    }
}

/// `device` of a block or a recommendation: 'host' (default) or 'gpu'
/// ('cpu' and 'cuda' are accepted as their synonyms).
fn device_field(o: &Fields) -> Result<Device> {
    Ok(o.choice(
        "device",
        &[
            ("host", Device::Host),
            ("gpu", Device::Gpu),
            ("cpu", Device::Host),
            ("cuda", Device::Gpu),
        ],
    )?
    .unwrap_or(Device::Host))
}

fn memory_error(env: &Env, err: MemoryError) -> napi::Error {
    coded(env, &err)
}

/// Names of `MemoryManagerOptions`.
const MANAGER_OPTIONS: [&str; 9] = [
    "maxMemory",
    "reservedMemory",
    "optimizationThreshold",
    "device",
    "gpuMaxMemory",
    "allocationStrategy",
    "alignment",
    "gpuChunkSize",
    "idleTrimMs",
];

fn config_from(env: &Env, options: Option<Unknown>) -> Result<ManagerConfig> {
    let mut config = ManagerConfig::default();
    let Some(o) = Fields::read(env, options, "options", &MANAGER_OPTIONS)? else {
        return Ok(config);
    };
    let positive = |key: &str, v: u64| -> Result<u64> {
        if v == 0 {
            return Err(range_error(
                env,
                OUT_OF_RANGE,
                format!("{} must be greater than 0", o.path(key)),
            ));
        }
        Ok(v)
    };
    if let Some(v) = o.size("maxMemory")? {
        config.max_memory = positive("maxMemory", v)?;
        config.reserved_memory = config.max_memory / 8;
    }
    if let Some(v) = o.size("reservedMemory")? {
        config.reserved_memory = v;
        if config.reserved_memory >= config.max_memory {
            return Err(range_error(
                env,
                OUT_OF_RANGE,
                format!(
                    "options.reservedMemory ({}) must be less than maxMemory ({})",
                    config.reserved_memory, config.max_memory
                ),
            ));
        }
    }
    if let Some(t) = o.number("optimizationThreshold")? {
        if !(t.is_finite() && (1.0..=100.0).contains(&t)) {
            let hint = if t > 0.0 && t < 1.0 {
                format!(" (a percentage: did you mean {}?)", t * 100.0)
            } else {
                String::new()
            };
            return Err(range_error(
                env,
                OUT_OF_RANGE,
                format!(
                    "options.optimizationThreshold must be a percentage from 1 to 100; got {}{hint}",
                    crate::js::fields::number_text(t)
                ),
            ));
        }
        config.threshold_percent = t;
    }
    if o.string("device")?.as_deref() == Some("gpu") {
        return Err(range_error(
            env,
            INVALID_ARG_VALUE,
            "options.device must be 'auto' | 'cpu' | 'cuda'; got 'gpu' (use 'cuda' to require a GPU)",
        ));
    }
    config.device = o
        .choice(
            "device",
            &[
                ("auto", DeviceChoice::Auto),
                ("cpu", DeviceChoice::Cpu),
                ("cuda", DeviceChoice::Cuda),
            ],
        )?
        .unwrap_or(DeviceChoice::Auto);
    if let Some(v) = o.size("gpuMaxMemory")? {
        config.gpu_max_memory = Some(positive("gpuMaxMemory", v)?);
    }
    config.strategy = o
        .choice(
            "allocationStrategy",
            &[
                ("best-fit", Strategy::BestFit),
                ("first-fit", Strategy::FirstFit),
                ("worst-fit", Strategy::WorstFit),
                ("buddy", Strategy::Buddy),
            ],
        )?
        .unwrap_or(Strategy::BestFit);
    if let Some(a) = o.integer("alignment", 1.0, (1u64 << 30) as f64)? {
        if !a.is_power_of_two() {
            return Err(range_error(
                env,
                OUT_OF_RANGE,
                format!("options.alignment must be a power of two; got {a}"),
            ));
        }
        config.alignment = a;
    }
    if let Some(v) = o.size("gpuChunkSize")? {
        config.gpu_chunk_size = positive("gpuChunkSize", v)?;
    }
    if let Some(t) = o.millis("idleTrimMs")? {
        config.idle_trim = t;
    }
    Ok(config)
}

#[napi]
impl GAMAMemoryManager {
    /// A manager. Throws E_NO_GPU when `device: 'cuda'` finds no usable GPU.
    #[napi(
        catch_unwind,
        constructor,
        ts_args_type = "options?: MemoryManagerOptions"
    )]
    pub fn new(env: Env, options: Option<Unknown>) -> Result<Self> {
        let config = config_from(&env, options)?;
        let manager = MemoryManager::new(config).map_err(|e| memory_error(&env, e))?;
        let listeners = Arc::new(Listeners::default());
        let sink = listeners.clone();
        manager.set_pressure_listener(Some(Arc::new(move |event: PressureEvent| {
            for (_, listener) in sink.list.lock().iter() {
                listener.call(
                    PressureEventJs {
                        device: event.device.name().into(),
                        direction: if event.rising { "rising" } else { "falling" }.into(),
                        percentage: event.percentage,
                        threshold: event.threshold,
                    },
                    ThreadsafeFunctionCallMode::NonBlocking,
                );
            }
        })));
        let blocks = Rc::new(Blocks::new(manager.clone()));
        Ok(GAMAMemoryManager {
            manager,
            listeners,
            blocks,
        })
    }

    /// Checks `size` and `options`, then allocates; the block is made by
    /// `fast_path.js` (which calls this only for arguments it does not
    /// take itself: sizes as strings, unusual options and every bad input).
    fn allocate_block(
        &self,
        env: &Env,
        this: &This,
        size: &Unknown,
        options: Option<Unknown>,
    ) -> Result<std::result::Result<RawValue, MemoryError>> {
        let bytes = size_value(env, "size", size)?;
        if bytes == 0 {
            return Err(range_error(
                env,
                OUT_OF_RANGE,
                "size must be greater than 0",
            ));
        }
        let (operation, device, tag) =
            match Fields::read(env, options, "options", &["operation", "device", "tag"])? {
                Some(o) => (o.string("operation")?, device_field(&o)?, o.string("tag")?),
                None => (None, Device::Host, None),
            };
        let operation = operation.unwrap_or_else(|| "general".into());
        let lease = match device {
            Device::Host => self
                .manager
                .allocate_host(bytes, &operation)
                .map(|l| Lease::Host(Arc::new(l))),
            Device::Gpu => self.manager.allocate_gpu(bytes, &operation).map(Lease::Gpu),
        };
        let lease = match lease {
            Ok(lease) => lease,
            Err(e) => return Ok(Err(e)),
        };
        let key = self.blocks.insert(lease, bytes);
        let js = Js::new(env);
        let made = (|| {
            let args = [
                this.raw(),
                js.number(key)?,
                js.number(bytes as f64)?,
                js.boolean(device == Device::Gpu)?,
                js.string(&operation)?,
                match &tag {
                    Some(tag) => js.string(tag)?,
                    None => js.null()?,
                },
            ];
            let adopt = Scripts::of(env)?.blocks.get(env);
            js.call(js.undefined()?, adopt, &args)
        })();
        if made.is_err() {
            self.blocks.release(key);
        }
        Ok(Ok(RawValue(made?)))
    }

    /// A block of `size` bytes (a number or a string such as "4MB"). Over
    /// budget it first gives idle pooled memory back, then throws an Error
    /// with code E_BUDGET naming the request and what is free.
    #[napi(
        catch_unwind,
        ts_args_type = "size: number | string, options?: AllocateOptions",
        ts_return_type = "MemoryBlock"
    )]
    pub fn allocate(
        &self,
        env: Env,
        this: This,
        size: Unknown,
        options: Option<Unknown>,
    ) -> Result<RawValue> {
        self.allocate_block(&env, &this, &size, options)?
            .map_err(|e| memory_error(&env, e))
    }

    /// Like `allocate`, but returns null when the budget has no room.
    #[napi(
        catch_unwind,
        ts_args_type = "size: number | string, options?: AllocateOptions",
        ts_return_type = "MemoryBlock | null"
    )]
    pub fn try_allocate(
        &self,
        env: Env,
        this: This,
        size: Unknown,
        options: Option<Unknown>,
    ) -> Result<RawValue> {
        match self.allocate_block(&env, &this, &size, options)? {
            Ok(block) => Ok(block),
            Err(e) if e.is_over_budget() => Ok(RawValue(Js::new(&env).null()?)),
            Err(e) => Err(memory_error(&env, e)),
        }
    }

    /// Usage of the budgets, per operation, of the GPU (or null) and of the machine.
    #[napi(catch_unwind)]
    pub fn get_memory_usage(&self) -> MemoryUsage {
        let u = self.manager.usage();
        MemoryUsage {
            used: u.all.used as f64,
            total: u.all.total as f64,
            available: u.all.available as f64,
            percentage: u.all.percentage,
            peak: u.all.peak as f64,
            reserved: u.all.reserved as f64,
            by_operation: u
                .by_operation
                .iter()
                .map(|(name, op)| {
                    (
                        name.clone(),
                        OperationUsageJs {
                            current: op.current as f64,
                            peak: op.peak as f64,
                            allocations: op.reservations as f64,
                            mean_request: if op.reservations == 0 {
                                0.0
                            } else {
                                op.total_requested as f64 / op.reservations as f64
                            },
                        },
                    )
                })
                .collect(),
            host: (&u.host).into(),
            gpu: match &u.gpu {
                Some(g) => Either::A(g.into()),
                None => Either::B(Null),
            },
            system: SystemUsageJs {
                total: u.system.total as f64,
                available: u.system.available as f64,
                process_rss: u.system.process_rss as f64,
            },
        }
    }

    /// Concrete findings, each with an estimated saving in bytes, largest first.
    #[napi(catch_unwind)]
    pub fn get_optimization_opportunities(&self) -> Vec<OptimizationOpportunity> {
        let usage = self.manager.usage();
        let stats = self.manager.stats();
        opportunities(&usage, &stats, self.manager.config().threshold_percent)
            .into_iter()
            .map(|o| OptimizationOpportunity {
                kind: o.kind.into(),
                device: o.device.into(),
                operation: o.operation,
                message: o.message,
                estimated_saving: o.estimated_saving as f64,
                severity: o.severity.into(),
            })
            .collect()
    }

    /// How many items of `bytesPerItem` fit below the threshold now, using
    /// this operation's mean past request when larger, within `min..max`.
    #[napi(
        catch_unwind,
        ts_args_type = "operation: string, bytesPerItem: number | string, options?: RecommendOptions"
    )]
    pub fn recommend_batch_size(
        &self,
        env: Env,
        operation: Unknown,
        bytes_per_item: Unknown,
        options: Option<Unknown>,
    ) -> Result<u32> {
        let operation = crate::js::fields::string_value(&env, "operation", &operation)?;
        let per_item = size_value(&env, "bytesPerItem", &bytes_per_item)?;
        if per_item == 0 {
            return Err(range_error(
                &env,
                OUT_OF_RANGE,
                "bytesPerItem must be greater than 0",
            ));
        }
        let (min, max, device) =
            match Fields::read(&env, options, "options", &["min", "max", "device"])? {
                Some(o) => (
                    o.integer("min", 1.0, u32::MAX as f64)?,
                    o.integer("max", 1.0, u32::MAX as f64)?,
                    device_field(&o)?,
                ),
                None => (None, None, Device::Host),
            };
        let (min, max) = (min.unwrap_or(1), max.unwrap_or(1024));
        if min > max {
            return Err(range_error(
                &env,
                OUT_OF_RANGE,
                format!("min ({min}) must not exceed max ({max})"),
            ));
        }
        Ok(self
            .manager
            .recommend_batch_size(device, &operation, per_item, min, max) as u32)
    }

    /// Calls `listener` when usage crosses the threshold upwards and back
    /// down; returns a function that removes it. Listeners do not keep Node alive.
    #[napi(
        catch_unwind,
        ts_args_type = "listener: (event: PressureEvent) => void",
        ts_return_type = "() => void"
    )]
    pub fn on_pressure<'env>(
        &self,
        env: &'env Env,
        listener: Unknown<'env>,
    ) -> Result<Function<'env, (), ()>> {
        let listener: Function<PressureEventJs, ()> = function_arg(env, "listener", listener)?;
        let tsfn = listener
            .build_threadsafe_function::<PressureEventJs>()
            .callee_handled::<false>()
            .weak::<true>()
            .build()?;
        let id = self.listeners.next_id.fetch_add(1, Ordering::Relaxed);
        self.listeners.list.lock().push((id, Arc::new(tsfn)));
        let listeners = Arc::downgrade(&self.listeners);
        env.create_function_from_closure("removePressureListener", move |_ctx| {
            if let Some(listeners) = listeners.upgrade() {
                listeners.list.lock().retain(|(i, _)| *i != id);
            }
            Ok(())
        })
    }

    /// Pool hits and misses, GPU fragmentation and latency, leaks and failures.
    #[napi(catch_unwind)]
    pub fn get_stats(&self) -> MemoryStats {
        let s = self.manager.stats();
        let requests = s.host_pool.hits + s.host_pool.misses;
        MemoryStats {
            host_pool: HostPoolStats {
                hits: s.host_pool.hits as f64,
                misses: s.host_pool.misses as f64,
                hit_rate: if requests == 0 {
                    0.0
                } else {
                    s.host_pool.hits as f64 / requests as f64
                },
                pooled_bytes: s.host_pool.pooled_bytes as f64,
                trimmed_bytes: s.host_pool.trimmed_bytes as f64,
            },
            gpu_pool: match s.gpu_pool {
                Some(g) => Either::A(GpuPoolStats {
                    allocated: g.allocated as f64,
                    reserved: g.reserved as f64,
                    largest_free_block: g.largest_free as f64,
                    fragmentation: g.fragmentation,
                    blocks: g.blocks as f64,
                    chunks: g.chunks as f64,
                    allocations: g.allocations as f64,
                    mean_allocation_ns: if g.allocations == 0 {
                        0.0
                    } else {
                        g.allocation_time.as_nanos() as f64 / g.allocations as f64
                    },
                }),
                None => Either::B(Null),
            },
            allocations: s.allocations as f64,
            failures: s.failures as f64,
            leaks: s.leaks as f64,
            leaked_bytes: s.leaked_bytes as f64,
            mean_host_allocation_ns: if s.allocations == 0 {
                0.0
            } else {
                s.host_allocation_time.as_nanos() as f64 / s.allocations as f64
            },
        }
    }

    /// Starts the peak figures again from current use.
    #[napi(catch_unwind)]
    pub fn reset_peak(&self) {
        self.manager.reset_peak();
    }

    /// Gives all pooled host memory back to the system and free GPU chunks
    /// back to the driver; returns the bytes given back.
    #[napi(catch_unwind)]
    pub fn trim(&self) -> TrimResult {
        let (host, gpu) = self.manager.trim();
        TrimResult {
            host: host as f64,
            gpu: gpu as f64,
        }
    }

    /// Whether a GPU is in use.
    #[napi(catch_unwind, getter)]
    pub fn has_gpu(&self) -> bool {
        self.manager.has_gpu()
    }
}

/// Whether a CUDA driver library can be loaded on this machine (never throws).
#[napi(catch_unwind)]
pub fn cuda_available() -> bool {
    gama_core::memory::gpu::driver_present()
}
