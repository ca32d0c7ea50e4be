//! The `PerformanceProfiler` class: user code timing, summaries,
//! bottlenecks, alerts, a stats snapshot and Prometheus text.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use napi::bindgen_prelude::{ClassInstance, Function, JsObjectValue, Object, Unknown};
use napi::{sys, Env, JsValue, Result};
use napi_derive::napi;

use crate::batch::BatchProcessor;
use crate::cache::AudioFeatureCache;
use crate::js::errors::{range_error, OUT_OF_RANGE};
use crate::js::fields::{string_value, Fields};
use crate::js::napi::{convert, to_value, Js};
use crate::js::options::function_arg;
use crate::js::raw::{call_reporting, Persistent};
use crate::js::value::RawValue;
use crate::memory::GAMAMemoryManager;
use gama_core::batch::Processor;
use gama_core::cache::FeatureCache;
use gama_core::memory::{MemoryGauges, MemoryManager};
use gama_core::metrics::alerts::{Alert, AlertState, Readings, Thresholds};
use gama_core::metrics::registry::{global, Summary};
use gama_core::metrics::Gauges;

/// Shortest alert check interval (a shorter one would poll the machine
/// needlessly often).
const MIN_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_millis(10);

/// Alert thresholds; each has a default (see `Thresholds::default`).
#[napi(object)]
pub struct AlertThresholds {
    /// p95 latency of any operation over the last minute, in ms (default 500).
    pub p95_ms: Option<f64>,
    /// Memory manager usage in percent (default 80).
    pub memory_percent: Option<f64>,
    /// Cache hit rate floor, 0 to 1 (default 0.7).
    pub cache_hit_rate: Option<f64>,
    /// Allocation failures since the last check that raise an alert (default 1).
    pub allocation_failures: Option<f64>,
}

/// Options of `new PerformanceProfiler(options)`.
#[napi(object, object_to_js = false, object_from_js = false)]
pub struct ProfilerOptions {
    /// Watched for memory alerts and included in `getStats()`.
    #[napi(ts_type = "GAMAMemoryManager")]
    pub memory_manager: Option<()>,
    /// Watched for hit-rate alerts and included in `getStats()`.
    #[napi(ts_type = "AudioFeatureCache")]
    pub feature_cache: Option<()>,
    /// Included in `getStats()`.
    #[napi(ts_type = "BatchProcessor")]
    pub batch_processor: Option<()>,
    /// When alerts fire.
    #[napi(ts_type = "AlertThresholds")]
    pub alert_thresholds: Option<()>,
    /// How often alerts are checked while a listener is attached, in ms (10 or more; default 5000).
    pub check_interval_ms: Option<f64>,
}

/// Latency statistics of one operation.
#[napi(object)]
pub struct OperationSummary {
    /// Component: 'cache', 'batch', 'features', 'memory' or your own.
    pub component: String,
    /// Operation within it.
    pub operation: String,
    /// Samples.
    pub count: f64,
    /// Mean in ms.
    pub mean_ms: f64,
    /// Median in ms.
    pub p50_ms: f64,
    /// 95th percentile in ms.
    pub p95_ms: f64,
    /// 99th percentile in ms.
    pub p99_ms: f64,
    /// Largest in ms.
    pub max_ms: f64,
    /// Total time in ms.
    pub total_ms: f64,
    /// Share of all measured time in the window (0 to 1).
    pub share: f64,
}

impl From<Summary> for OperationSummary {
    fn from(s: Summary) -> Self {
        OperationSummary {
            component: s.component,
            operation: s.operation,
            count: s.count as f64,
            mean_ms: s.mean_ms,
            p50_ms: s.p50_ms,
            p95_ms: s.p95_ms,
            p99_ms: s.p99_ms,
            max_ms: s.max_ms,
            total_ms: s.total_ms,
            share: s.share,
        }
    }
}

/// Which measurements a summary covers.
#[napi(object)]
pub struct SummaryOptions {
    /// Only this component.
    pub component: Option<String>,
    /// Only the last N minutes (1-60; default: everything).
    pub last_minutes: Option<f64>,
}

/// An alert.
#[napi(object, js_name = "PerformanceAlert")]
pub struct AlertJs {
    /// 'high-latency', 'memory-pressure', 'cache-degradation' or 'allocation-failures'.
    pub kind: String,
    /// What crossed the line, e.g. 'batch/EXTRACT_FEATURES.run'.
    pub subject: String,
    /// The measured value.
    pub value: f64,
    /// The threshold it crossed.
    pub threshold: f64,
    /// A sentence for logs.
    pub message: String,
}

impl From<Alert> for AlertJs {
    fn from(a: Alert) -> Self {
        AlertJs {
            kind: a.kind.into(),
            subject: a.subject,
            value: a.value,
            threshold: a.threshold,
            message: a.message,
        }
    }
}

struct Watch {
    thresholds: Thresholds,
    memory: Option<Arc<MemoryManager>>,
    cache: Option<FeatureCache>,
    batch: Option<Arc<Processor>>,
    alerts: AlertState,
    listeners: Vec<(u64, Persistent)>,
    next_listener: u64,
    interval_ms: f64,
    timer: Option<Persistent>,
}

/// The parts a profiler watches, taken out of its state for one snapshot
/// (shared handles: no borrow of the state is held while they are read).
struct Watched {
    memory: Option<Arc<MemoryManager>>,
    cache: Option<FeatureCache>,
    batch: Option<Arc<Processor>>,
}

/// Measures operations (every native operation on its own, user code
/// through `profileOperation`), finds bottlenecks, raises alerts and
/// exports a stats snapshot and Prometheus metrics.
#[napi]
pub struct PerformanceProfiler {
    watch: Rc<RefCell<Watch>>,
}

fn readings(w: &Watch) -> Readings {
    Readings {
        recent: global().summaries(None, Some(1)),
        memory_percent: w.memory.as_ref().map(|m| m.usage().all.percentage),
        cache: w.cache.as_ref().map(|c| {
            let s = c.stats();
            (s.hit_rate(), s.counters.hits + s.counters.misses)
        }),
        allocation_failures: w.memory.as_ref().map(|m| m.stats().failures),
    }
}

fn check(env: &Env, watch: &Rc<RefCell<Watch>>) -> Vec<Alert> {
    let (now, fresh, listeners) = {
        let mut w = watch.borrow_mut();
        let r = readings(&w);
        let thresholds = w.thresholds.clone();
        let (now, fresh) = w.alerts.check(&thresholds, &r);
        let listeners: Vec<sys::napi_value> = w.listeners.iter().map(|(_, l)| l.get(env)).collect();
        (now, fresh, listeners)
    };
    for alert in fresh {
        for listener in &listeners {
            if let Ok(value) = to_value::<AlertJs>(env, alert.clone().into()) {
                call_reporting(env, *listener, &[value]);
            }
        }
    }
    now
}

impl PerformanceProfiler {
    fn watched(&self) -> Watched {
        let w = self.watch.borrow();
        Watched {
            memory: w.memory.clone(),
            cache: w.cache.clone(),
            batch: w.batch.clone(),
        }
    }
}

#[napi]
impl PerformanceProfiler {
    /// A profiler; see `ProfilerOptions`.
    #[napi(catch_unwind, constructor, ts_args_type = "options?: ProfilerOptions")]
    pub fn new(env: Env, options: Option<Unknown>) -> Result<Self> {
        let mut watch = Watch {
            thresholds: Thresholds::default(),
            memory: None,
            cache: None,
            batch: None,
            alerts: AlertState::default(),
            listeners: Vec::new(),
            next_listener: 0,
            interval_ms: 5000.0,
            timer: None,
        };
        const KNOWN: [&str; 5] = [
            "memoryManager",
            "featureCache",
            "batchProcessor",
            "alertThresholds",
            "checkIntervalMs",
        ];
        const THRESHOLDS: [&str; 4] = [
            "p95Ms",
            "memoryPercent",
            "cacheHitRate",
            "allocationFailures",
        ];
        if let Some(o) = Fields::read(&env, options, "options", &KNOWN)? {
            let manager: Option<ClassInstance<GAMAMemoryManager>> =
                o.instance("memoryManager", "a GAMAMemoryManager")?;
            watch.memory = manager.map(|m| m.core().clone());
            let cache: Option<ClassInstance<AudioFeatureCache>> =
                o.instance("featureCache", "an AudioFeatureCache")?;
            watch.cache = cache.map(|c| c.core().clone());
            let batch: Option<ClassInstance<BatchProcessor>> =
                o.instance("batchProcessor", "a BatchProcessor")?;
            watch.batch = batch.map(|b| b.core());
            if let Some(t) = o.fields("alertThresholds", &THRESHOLDS)? {
                let th = &mut watch.thresholds;
                if let Some(v) = t.millis("p95Ms")? {
                    th.p95_ms = v.as_secs_f64() * 1000.0;
                }
                if let Some(v) = t.number_in("memoryPercent", 0.0, 100.0)? {
                    th.memory_percent = v;
                }
                if let Some(v) = t.number_in("cacheHitRate", 0.0, 1.0)? {
                    th.cache_hit_rate = v;
                }
                if let Some(v) = t.integer("allocationFailures", 1.0, u32::MAX as f64)? {
                    th.allocation_failures = v;
                }
            }
            if let Some(t) = o.millis("checkIntervalMs")? {
                if t < MIN_CHECK_INTERVAL {
                    return Err(range_error(
                        &env,
                        OUT_OF_RANGE,
                        format!(
                            "options.checkIntervalMs must be at least {} ms; got {}",
                            MIN_CHECK_INTERVAL.as_millis(),
                            t.as_secs_f64() * 1000.0
                        ),
                    ));
                }
                watch.interval_ms = t.as_secs_f64() * 1000.0;
            }
        }
        Ok(PerformanceProfiler {
            watch: Rc::new(RefCell::new(watch)),
        })
    }

    /// Runs `fn()` and records how long it took (until its promise settles,
    /// if it returns one) under `component`/`operation`; returns what it
    /// returns and throws what it throws.
    #[napi(
        catch_unwind,
        ts_args_type = "component: string, operation: string, fn: () => T",
        ts_generic_types = "T",
        ts_return_type = "T"
    )]
    pub fn profile_operation(
        &self,
        env: Env,
        component: Unknown,
        operation: Unknown,
        f: Unknown,
    ) -> Result<RawValue> {
        let component = string_value(&env, "component", &component)?;
        let operation = string_value(&env, "operation", &operation)?;
        let f: Function<(), ()> = function_arg(&env, "fn", f)?;
        let started = Instant::now();
        let js = Js::new(&env);
        let result = match js.call(js.undefined()?, f.raw(), &[]) {
            Ok(result) => result,
            Err(e) => {
                // A throw stays pending: napi-rs rethrows it to the caller.
                global().record(&component, &operation, started.elapsed());
                return Err(e);
            }
        };
        if !js.is_promise(result)? {
            global().record(&component, &operation, started.elapsed());
            return Ok(RawValue(result));
        }
        let done: Function<(), ()> =
            env.create_function_from_closure("recordOperation", move |_| {
                global().record(&component, &operation, started.elapsed());
                Ok(())
            })?;
        let promise = convert::<Object>(&env, result)?;
        let finally: Function<RawValue, RawValue> = promise.get_named_property("finally")?;
        finally.apply(promise, RawValue(done.raw()))
    }

    /// Statistics per operation (largest total time first), optionally of
    /// one component and of the last N minutes.
    #[napi(
        catch_unwind,
        ts_args_type = "options?: SummaryOptions | undefined | null"
    )]
    pub fn get_performance_summary(
        &self,
        env: Env,
        options: Option<Unknown>,
    ) -> Result<Vec<OperationSummary>> {
        let (component, minutes) =
            match Fields::read(&env, options, "options", &["component", "lastMinutes"])? {
                Some(o) => (o.string("component")?, o.number("lastMinutes")?),
                None => (None, None),
            };
        let minutes = match minutes {
            None => None,
            Some(m) if m > 0.0 && m <= 60.0 => Some(m.ceil() as u64),
            Some(m) => {
                return Err(range_error(
                    &env,
                    OUT_OF_RANGE,
                    format!(
                        "options.lastMinutes must be a number of minutes in (0, 60]; got {}",
                        crate::js::fields::number_text(m)
                    ),
                ))
            }
        };
        Ok(global()
            .summaries(component.as_deref(), minutes)
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// Operations that took more than 20% of all measured time.
    #[napi(
        catch_unwind,
        ts_args_type = "options?: SummaryOptions | undefined | null"
    )]
    pub fn get_bottlenecks(
        &self,
        env: Env,
        options: Option<Unknown>,
    ) -> Result<Vec<OperationSummary>> {
        Ok(self
            .get_performance_summary(env, options)?
            .into_iter()
            .filter(|s| s.share > 0.2)
            .collect())
    }

    /// Checks the alert rules now; returns every alert that holds and
    /// tells listeners about new ones.
    #[napi(catch_unwind)]
    pub fn check_alerts(&self, env: Env) -> Vec<AlertJs> {
        check(&env, &self.watch)
            .into_iter()
            .map(Into::into)
            .collect()
    }

    /// Calls `listener` with each new alert (checked every checkIntervalMs
    /// on an unref'd timer while a listener is attached); returns a function
    /// that removes it.
    #[napi(
        catch_unwind,
        ts_args_type = "listener: (alert: PerformanceAlert) => void",
        ts_return_type = "() => void"
    )]
    pub fn on_alert<'env>(
        &self,
        env: &'env Env,
        listener: Unknown<'env>,
    ) -> Result<Function<'env, (), ()>> {
        let f: Function<(), ()> = function_arg(env, "listener", listener)?;
        let kept = Persistent::new(env, f.raw())?;
        let id = {
            let mut w = self.watch.borrow_mut();
            w.next_listener += 1;
            let id = w.next_listener;
            w.listeners.push((id, kept));
            id
        };
        if self.watch.borrow().timer.is_none() {
            let weak = Rc::downgrade(&self.watch);
            let tick: Function<(), ()> =
                env.create_function_from_closure("checkAlerts", move |ctx| {
                    if let Some(watch) = weak.upgrade() {
                        check(ctx.env, &watch);
                    }
                    Ok(())
                })?;
            let interval = self.watch.borrow().interval_ms;
            let js = Js::new(env);
            let global_object = js.global()?;
            let set_interval = js.named(global_object, c"setInterval")?;
            let timer = RawValue(js.call(
                global_object,
                set_interval,
                &[tick.raw(), js.number(interval)?],
            )?);
            let timer_object = convert::<Object>(env, timer.0)?;
            let unref: Function<(), RawValue> = timer_object.get_named_property("unref")?;
            unref.apply(timer_object, ())?;
            self.watch.borrow_mut().timer = Some(Persistent::new(env, timer.0)?);
        }
        let weak = Rc::downgrade(&self.watch);
        env.create_function_from_closure("removeAlertListener", move |ctx| {
            let Some(watch) = weak.upgrade() else {
                return Ok(());
            };
            let mut w = watch.borrow_mut();
            if let Some(p) = w.listeners.iter().position(|(i, _)| *i == id) {
                let (_, l) = w.listeners.remove(p);
                l.delete(ctx.env);
            }
            if w.listeners.is_empty() {
                if let Some(timer) = w.timer.take() {
                    drop(w);
                    let global_object = ctx.env.get_global()?;
                    let clear: Function<RawValue, RawValue> =
                        global_object.get_named_property("clearInterval")?;
                    clear.call(RawValue(timer.get(ctx.env)))?;
                    timer.delete(ctx.env);
                }
            }
            Ok(())
        })
    }

    /// One snapshot: cache, memory (system and GPU), batch, and every
    /// operation's latency.
    #[napi(catch_unwind, ts_return_type = "PerformanceStats")]
    pub fn get_stats(&self) -> serde_json::Value {
        let w = self.watched();
        gama_core::metrics::snapshot(&[
            ("cache", w.cache.as_ref().map(|c| c as &dyn Gauges)),
            ("memory", Some(&MemoryGauges(w.memory.as_deref()))),
            ("batch", w.batch.as_deref().map(|b| b as &dyn Gauges)),
        ])
    }

    /// Every measurement and gauge in the Prometheus text exposition format.
    #[napi(catch_unwind)]
    pub fn metrics(&self) -> String {
        let w = self.watched();
        let memory = MemoryGauges(w.memory.as_deref());
        let mut parts: Vec<&dyn Gauges> = vec![&memory];
        if let Some(c) = &w.cache {
            parts.insert(0, c);
        }
        if let Some(b) = &w.batch {
            parts.push(&**b);
        }
        gama_core::metrics::exposition(&parts)
    }

    /// Whether native operations are measured (process-wide; on by default).
    #[napi(catch_unwind, getter)]
    pub fn enabled(&self) -> bool {
        gama_core::metrics::registry::enabled()
    }

    /// Turns the measurement of native operations on or off, process-wide.
    #[napi(catch_unwind, setter, ts_args_type = "enabled: boolean")]
    pub fn set_enabled(&self, env: Env, enabled: Unknown) -> Result<()> {
        if enabled.get_type()? != napi::ValueType::Boolean {
            return Err(crate::js::errors::type_error(
                &env,
                crate::js::errors::INVALID_ARG_TYPE,
                format!(
                    "enabled must be a boolean; got {}",
                    crate::js::fields::describe(&env, &enabled)
                ),
            ));
        }
        // SAFETY: a live handle of this call, checked to be a boolean.
        gama_core::metrics::registry::set_enabled(convert::<bool>(&env, enabled.raw())?);
        Ok(())
    }

    /// Forgets every measurement (of this process: the registry is shared).
    #[napi(catch_unwind)]
    pub fn reset(&self) {
        global().clear();
    }
}
