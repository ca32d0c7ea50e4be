//! The `BatchProcessor` class as JS sees it: option checks, item intake and
//! the bridge (one weak threadsafe function) that brings the core's events
//! back to the JS thread in batches.

mod convert;
mod state;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use napi::bindgen_prelude::{ClassInstance, Function, JsObjectValue, Object, Unknown};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{sys, Env, JsValue, Result, Status, ValueType};
use napi_derive::napi;
use parking_lot::Mutex;

use self::convert::{byte_length, cache_key, native_input, priority};
use self::state::{after_change, drain, reject_now, JsState, Pending, Settle, State};
use crate::cache::AudioFeatureCache;
use crate::features::extract_params;
use crate::js::errors::{
    coded_error, coded_value, range_error, type_error, INVALID_ARG_TYPE, OUT_OF_RANGE,
};
use crate::js::fields::{describe, Fields};
use crate::js::napi::{convert, unknown, Js};
use crate::js::options::function_arg;
use crate::js::raw::{Deferred, Persistent};
use crate::js::value::RawValue;
use crate::memory::GAMAMemoryManager;
use gama_core::batch::{
    similarity_group, Config, Event, Input, Item, ItemError, ItemId, OpName, Processor, Sink,
    SubmitError,
};
use gama_core::error::Coded;
use gama_core::features::ExtractParams;

/// Operation types. PROCESS has no built-in processor (register one);
/// EXTRACT_FEATURES, ANALYZE and MEASURE run natively unless a JS processor
/// is registered for them. Any other string names a custom type.
#[napi(string_enum)]
#[allow(non_camel_case_types, clippy::upper_case_acronyms)]
pub enum BatchOperationType {
    /// Generic processing by a registered JS processor.
    PROCESS,
    /// Feature extraction (`data`: Float32Array or `{ audio, options }`), native.
    EXTRACT_FEATURES,
    /// Per-clip summary: duration, peak, RMS and dB, silence ratio, spectral centroid, ZCR; native.
    ANALYZE,
    /// One-pass level meter: peak, RMS and mean; native.
    MEASURE,
}

/// Names of `BatchProcessorOptions`.
const PROCESSOR_OPTIONS: [&str; 10] = [
    "maxBatchSize",
    "maxConcurrentBatches",
    "maxWaitMs",
    "batchTimeoutMs",
    "threads",
    "maxQueueSize",
    "queueFullBehavior",
    "memoryManager",
    "featureCache",
    "featureOptions",
];

/// Options of `new BatchProcessor(options)`.
#[napi(object, object_to_js = false, object_from_js = false)]
pub struct BatchProcessorOptions {
    /// Most items per batch (default 8).
    pub max_batch_size: Option<f64>,
    /// Most batches running at once (default 4).
    pub max_concurrent_batches: Option<f64>,
    /// How long (ms) a partial batch may wait for more similar items before
    /// it starts (default 0: start as soon as a slot is free; batches then
    /// fill while all slots are busy).
    pub max_wait_ms: Option<f64>,
    /// How long (ms) one batch may run before its items reject with E_TIMEOUT (default: no limit).
    pub batch_timeout_ms: Option<f64>,
    /// Worker threads for native operations (default: the machine's cores).
    pub threads: Option<f64>,
    /// Most items waiting (default: no limit).
    pub max_queue_size: Option<f64>,
    /// With a full queue, 'reject' (default: E_QUEUE_FULL) or 'wait' for room.
    #[napi(ts_type = "'reject' | 'wait'")]
    pub queue_full_behavior: Option<String>,
    /// Batches reserve their estimated memory here and shrink under pressure.
    #[napi(ts_type = "GAMAMemoryManager")]
    pub memory_manager: Option<()>,
    /// EXTRACT_FEATURES results are looked up and stored here, under
    /// `AudioFeatureCache.keyFor(audio, options) + ':' + featureName`.
    #[napi(ts_type = "AudioFeatureCache")]
    pub feature_cache: Option<()>,
    /// Extraction options for items that give none (default: librosa's at 22050 Hz).
    #[napi(ts_type = "ExtractOptions")]
    pub feature_options: Option<()>,
}

/// Options of `addItem` / `addItems`.
#[napi(object, object_to_js = false, object_from_js = false)]
pub struct AddItemOptions {
    /// 0 (lowest) to 10, or 'critical' (10) | 'high' (8) | 'normal' (5, default) | 'low' (1).
    #[napi(ts_type = "number | 'critical' | 'high' | 'normal' | 'low'")]
    pub priority: Option<()>,
    /// Passed to the processor with the item.
    #[napi(ts_type = "unknown")]
    pub metadata: Option<()>,
    /// Called with `{ stage: 'queued' | 'running' | 'done', progress }`.
    #[napi(ts_type = "(progress: ItemProgress) => void")]
    pub on_progress: Option<()>,
    /// Aborting it removes a queued item or stops a running one (rejects with an AbortError).
    #[napi(ts_type = "AbortSignal")]
    pub signal: Option<()>,
    /// Items with equal keys may share a batch (default: operation options and length bucket).
    pub similarity_key: Option<String>,
    /// A name for `cancel(id)` (addItem only).
    pub id: Option<String>,
}

/// Progress of one item.
#[napi(object, object_from_js = false)]
pub struct ItemProgress {
    /// Where the item is.
    #[napi(ts_type = "'queued' | 'running' | 'done'")]
    pub stage: String,
    /// 0 to 1.
    pub progress: f64,
}

/// Counts for a progress bar, given to `onProgress` listeners.
#[napi(object, object_from_js = false)]
pub struct BatchCounts {
    /// Items waiting.
    pub queued: f64,
    /// Items in started batches.
    pub running: f64,
    /// Items that succeeded.
    pub completed: f64,
    /// Items that failed.
    pub failed: f64,
    /// Items cancelled.
    pub cancelled: f64,
    /// All of the above.
    pub total: f64,
}

/// One item as a JS processor receives it.
#[napi(object, object_from_js = false)]
pub struct BatchItem {
    /// The item's id (the one given to addItem, else a number).
    #[napi(ts_type = "string | number")]
    pub id: String,
    /// The data given to addItem.
    #[napi(ts_type = "unknown")]
    pub data: String,
    /// The metadata given to addItem.
    #[napi(ts_type = "unknown")]
    pub metadata: String,
    /// The item's AbortSignal, if one was given.
    #[napi(ts_type = "AbortSignal | undefined")]
    pub signal: String,
    /// Reports the item's progress (0 to 1) to its onProgress.
    #[napi(ts_type = "(fraction: number) => void")]
    pub report_progress: String,
}

/// What a JS processor is told about the resources of its batch.
#[napi(object, object_from_js = false)]
pub struct ResourceStrategy {
    /// 'host' or 'gpu'.
    pub device: String,
    /// Items in this batch.
    pub batch_size: f64,
    /// Bytes reserved for the batch in the memory manager (0 without one).
    pub memory_budget: f64,
    /// Worker threads of the processor.
    pub threads: f64,
}

/// Latency percentiles in milliseconds.
#[napi(object)]
pub struct LatencyStats {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

/// What `getStats()` returns.
#[napi(object)]
pub struct BatchStats {
    /// Items waiting.
    pub queued: f64,
    /// Items in started batches.
    pub running: f64,
    /// Items that succeeded.
    pub completed: f64,
    /// Items that failed.
    pub failed: f64,
    /// Items cancelled.
    pub cancelled: f64,
    /// Batches started.
    pub batches: f64,
    /// Mean items per batch.
    pub average_batch_size: f64,
    /// Items finished per second since the processor started.
    pub throughput_per_second: f64,
    /// Time from submission to start.
    pub wait_latency: LatencyStats,
    /// Time from start to finish.
    pub run_latency: LatencyStats,
    /// Share of worker time spent on native items (0 to 1).
    pub worker_utilisation: f64,
}

/// Options of `close`.
#[napi(object)]
pub struct CloseOptions {
    /// Reject everything pending with E_CLOSED instead of finishing it.
    pub force: Option<bool>,
}

struct JsSink {
    inbox: state::Inbox,
    wake: ThreadsafeFunction<(), (), (), Status, false, true>,
}

impl Sink for JsSink {
    fn deliver(&self, event: Event) {
        let mut inbox = self.inbox.lock();
        let was_empty = inbox.is_empty();
        inbox.push(event);
        drop(inbox);
        if was_empty {
            self.wake.call((), ThreadsafeFunctionCallMode::NonBlocking);
        }
    }

    fn deliver_all(&self, events: Vec<Event>) {
        let mut inbox = self.inbox.lock();
        let was_empty = inbox.is_empty();
        inbox.extend(events);
        drop(inbox);
        if was_empty {
            self.wake.call((), ThreadsafeFunctionCallMode::NonBlocking);
        }
    }
}

/// Dynamic batching of work items on a Rust thread pool, with priorities,
/// progress, cancellation and memory-aware scheduling. Every promise it
/// returns settles; an idle processor does not keep Node running.
#[napi]
pub struct BatchProcessor {
    state: State,
    defaults: convert::Defaults,
    with_cache: bool,
}

/// Per-call item options, read once for `addItem` and `addItems`.
struct ItemOptions {
    priority: u8,
    metadata: Option<sys::napi_value>,
    on_progress: Option<sys::napi_value>,
    signal: Option<sys::napi_value>,
    similarity_key: Option<String>,
    id: Option<String>,
}

fn item_options(env: &Env, options: Option<Unknown>) -> Result<ItemOptions> {
    const KNOWN: [&str; 6] = [
        "priority",
        "metadata",
        "onProgress",
        "signal",
        "similarityKey",
        "id",
    ];
    let Some(o) = Fields::read(env, options, "options", &KNOWN)? else {
        return Ok(ItemOptions {
            priority: convert::NORMAL,
            metadata: None,
            on_progress: None,
            signal: None,
            similarity_key: None,
            id: None,
        });
    };
    let on_progress = match o.value("onProgress")? {
        None => None,
        Some(f) => Some(function_arg::<(), ()>(env, "options.onProgress", f)?.raw()),
    };
    let signal = match o.value("signal")? {
        None => None,
        Some(s) => {
            let is_signal = s.get_type()? == ValueType::Object && {
                // SAFETY: a live handle of this call, checked to be an object.
                let object = convert::<Object>(env, s.raw())?;
                let add: Unknown = object.get_named_property("addEventListener")?;
                add.get_type()? == ValueType::Function
            };
            if !is_signal {
                return Err(type_error(
                    env,
                    INVALID_ARG_TYPE,
                    format!(
                        "options.signal must be an AbortSignal; got {}",
                        describe(env, &s)
                    ),
                ));
            }
            Some(s.raw())
        }
    };
    Ok(ItemOptions {
        priority: priority(env, o.value("priority")?.as_ref())?,
        metadata: o.value("metadata")?.map(|m| m.raw()),
        on_progress,
        signal,
        similarity_key: o.string("similarityKey")?,
        id: o.string("id")?,
    })
}

fn is_aborted(env: &Env, signal: sys::napi_value) -> Result<bool> {
    let signal = convert::<Object>(env, signal)?;
    Ok(signal
        .get_named_property::<Option<bool>>("aborted")?
        .unwrap_or(false))
}

impl BatchProcessor {
    /// The core, for the profiler.
    pub fn core(&self) -> Arc<Processor> {
        self.state.borrow().core()
    }

    /// Builds one item (no promise yet); `data` is the caller's value.
    fn build_item(
        &self,
        env: &Env,
        op: &OpName,
        is_js: bool,
        data: &Unknown,
        path: &str,
        o: &ItemOptions,
    ) -> Result<(Item, Option<Persistent>)> {
        let id = {
            let mut s = self.state.borrow_mut();
            s.next_id += 1;
            s.next_id
        };
        let (input, estimate, group_id, kept) = if is_js {
            let bytes = byte_length(env, data);
            let kept = Persistent::new(env, data.raw())?;
            (
                Input::Js,
                bytes,
                similarity_group(o.similarity_key.as_deref(), 0, bytes),
                Some(kept),
            )
        } else {
            let n = native_input(env, op, data, path, &self.defaults)?;
            let key = (self.with_cache && &**op == gama_core::batch::EXTRACT_FEATURES)
                .then(|| cache_key(&n.samples, n.key.as_ref()));
            let estimate = gama_core::batch::estimate(op, n.samples.len(), &n.options);
            let group_id = similarity_group(
                o.similarity_key.as_deref(),
                n.hash,
                n.samples.len() as u64 * 4,
            );
            (
                Input::Audio {
                    samples: n.samples,
                    options: n.options,
                    cache_key: key,
                },
                estimate,
                group_id,
                None,
            )
        };
        Ok((
            Item {
                id,
                op: op.clone(),
                priority: o.priority,
                group: group_id,
                estimate,
                input,
                wants_progress: o.on_progress.is_some(),
                stop: Arc::default(),
                enqueued: Instant::now(),
                seq: 0,
            },
            kept,
        ))
    }

    /// Records the JS side of an accepted item.
    fn track(
        &self,
        env: &Env,
        item: &Item,
        settle: Settle,
        kept: Option<Persistent>,
        o: &ItemOptions,
        with_user_id: bool,
    ) -> Result<()> {
        let keep = |v: Option<sys::napi_value>| -> Result<Option<Persistent>> {
            v.map(|v| Persistent::new(env, v)).transpose()
        };
        let signal = match (o.signal, &settle) {
            (Some(signal), Settle::Single(_)) => Some(state::watch_signal(
                env,
                &self.state,
                signal,
                &[item.id],
                cancel_item,
            )?),
            _ => None,
        };
        let user_id = if with_user_id { o.id.clone() } else { None };
        let mut s = self.state.borrow_mut();
        if let Some(u) = &user_id {
            s.user_ids.insert(u.clone(), item.id);
        }
        s.pending.insert(
            item.id,
            Pending {
                settle,
                on_progress: keep(o.on_progress)?,
                data: kept,
                metadata: keep(o.metadata)?,
                signal,
                user_id,
                priority: item.priority,
            },
        );
        Ok(())
    }

    /// The operation and whether a JS processor serves it; the inner error
    /// is the refusal the item's promise rejects with.
    fn op_name(
        &self,
        env: &Env,
        kind: &Unknown,
    ) -> Result<std::result::Result<(OpName, bool), SubmitError>> {
        if kind.get_type()? != ValueType::String {
            return Err(type_error(
                env,
                INVALID_ARG_TYPE,
                "type must be a BatchOperationType or string",
            ));
        }
        let name: String = convert::<String>(env, kind.raw())?;
        let is_js = self.state.borrow().processors.contains_key(name.as_str());
        if !is_js && !gama_core::batch::is_native(&name) {
            return Ok(Err(SubmitError::NoProcessor(name)));
        }
        Ok(Ok((name.into(), is_js)))
    }

    /// A promise already rejected with `e`.
    fn rejected(env: &Env, e: &dyn Coded) -> Result<RawValue> {
        let (deferred, promise) = Deferred::new(env)?;
        deferred.reject(env, coded_value(env, e));
        Ok(RawValue(promise))
    }

    /// Takes back the items of an `addItems` call that failed part-way
    /// (its promise was never returned, so nothing settles).
    fn abandon(&self, env: &Env, group: u64, ids: &[ItemId]) {
        let core = self.core();
        for id in ids {
            let pending = self.state.borrow_mut().pending.remove(id);
            if let Some(p) = pending {
                for r in [p.on_progress, p.data, p.metadata].into_iter().flatten() {
                    r.delete(env);
                }
                if let Some(key) = p.signal {
                    state::unwatch_signal(env, &self.state, key, *id);
                }
            }
            core.cancel(*id);
        }
        self.state.borrow_mut().discard_group(env, group);
        self.state.borrow_mut().update_hold(env);
    }

    /// Hands accepted items to the core; on refusal rejects them.
    fn enqueue(&self, env: &Env, items: Vec<Item>) {
        let ids: Vec<ItemId> = items.iter().map(|i| i.id).collect();
        if let Err(e) = self.core().submit(items) {
            let error = ItemError::from(&e);
            for id in ids {
                reject_now(env, &self.state, id, &error);
            }
        }
    }
}

/// Items an `addItems` call hands to the workers at a time while reading the rest.
const INTAKE_CHUNK: usize = 64;

/// Cancels an item wherever it is; false when it already settled.
fn cancel_item(_env: &Env, state: &State, id: ItemId) -> bool {
    let core = state.borrow().core();
    core.cancel(id)
}

#[napi]
impl BatchProcessor {
    /// A processor; see `BatchProcessorOptions` for every option and its default.
    #[napi(
        catch_unwind,
        constructor,
        ts_args_type = "options?: BatchProcessorOptions"
    )]
    pub fn new(env: Env, options: Option<Unknown>) -> Result<Self> {
        let mut config = Config::default();
        let mut memory = None;
        let mut cache = None;
        let mut params = ExtractParams::default();
        if let Some(o) = Fields::read(&env, options, "options", &PROCESSOR_OPTIONS)? {
            if let Some(v) = o.integer("maxBatchSize", 1.0, 65536.0)? {
                config.max_batch_size = v as usize;
            }
            if let Some(v) = o.integer("maxConcurrentBatches", 1.0, 4096.0)? {
                config.max_concurrent_batches = v as usize;
            }
            if let Some(v) = o.integer("threads", 1.0, 1024.0)? {
                config.threads = v as usize;
            }
            if let Some(v) = o.integer("maxQueueSize", 1.0, (1u64 << 32) as f64)? {
                config.max_queue_size = Some(v as usize);
            }
            if let Some(t) = o.millis("maxWaitMs")? {
                config.max_wait = t;
            }
            if let Some(t) = o.millis("batchTimeoutMs")? {
                if t.is_zero() {
                    return Err(range_error(
                        &env,
                        OUT_OF_RANGE,
                        "options.batchTimeoutMs must be greater than 0",
                    ));
                }
                config.batch_timeout = Some(t);
            }
            config.wait_when_full = o
                .choice("queueFullBehavior", &[("reject", false), ("wait", true)])?
                .unwrap_or(false);
            let manager: Option<ClassInstance<GAMAMemoryManager>> =
                o.instance("memoryManager", "a GAMAMemoryManager")?;
            memory = manager.map(|m| m.core().clone());
            let instance: Option<ClassInstance<AudioFeatureCache>> =
                o.instance("featureCache", "an AudioFeatureCache")?;
            cache = instance.map(|c| c.core().clone());
            params = extract_params(&env, o.value("featureOptions")?, "options.featureOptions")?;
        }
        let defaults = convert::Defaults::new(&env, params, "options.featureOptions")?;
        let with_cache = cache.is_some();
        let inbox: state::Inbox = Arc::new(Mutex::new(Vec::new()));
        let state: State = Rc::new(RefCell::new(JsState::new(inbox.clone())));
        let drain_state = state.clone();
        let noop: Function<(), ()> =
            env.create_function_from_closure("drainBatchEvents", |_| Ok(()))?;
        let wake = noop
            .build_threadsafe_function::<()>()
            .callee_handled::<false>()
            .weak::<true>()
            .build_callback(move |ctx| {
                drain(&ctx.env, &drain_state);
                Ok(())
            })?;
        state.borrow_mut().tsfn = wake.raw();
        let core = Processor::new(config, Arc::new(JsSink { inbox, wake }), memory, cache)
            .map_err(|e| {
                coded_error(
                    &env,
                    "E_THREADS",
                    format!("could not start the worker threads: {e}"),
                )
            })?;
        state.borrow_mut().core = Some(Arc::new(core));
        Ok(BatchProcessor {
            state,
            defaults,
            with_cache,
        })
    }

    /// Sends batches of `type` to `processor(items, resourceStrategy)`, on the
    /// JS thread; it returns (or resolves to) one result per item, in order.
    /// Replaces the native processor of a built-in type.
    #[napi(
        catch_unwind,
        ts_generic_types = "T = unknown",
        ts_args_type = "type: BatchOperationType | string, processor: (items: BatchItem[], resourceStrategy: ResourceStrategy) => T[] | Promise<T[]>"
    )]
    pub fn register_processor(&self, env: Env, kind: Unknown, processor: Unknown) -> Result<()> {
        if kind.get_type()? != ValueType::String {
            return Err(type_error(
                &env,
                INVALID_ARG_TYPE,
                "type must be a BatchOperationType or string",
            ));
        }
        let name: String = convert::<String>(&env, kind.raw())?;
        let f = function_arg::<(), ()>(&env, "processor", processor)?;
        let kept = Persistent::new(&env, f.raw())?;
        let op: OpName = name.into();
        if let Some(old) = self.state.borrow_mut().processors.insert(op.clone(), kept) {
            old.delete(&env);
        }
        self.core().register_js(op);
        Ok(())
    }

    /// Queues one item; the promise settles with its result or error.
    #[napi(
        catch_unwind,
        ts_generic_types = "T = never, K extends string = string",
        ts_args_type = "type: K, data: unknown, options?: AddItemOptions",
        ts_return_type = "Promise<BatchResult<K, T>>"
    )]
    pub fn add_item(
        &self,
        env: Env,
        this: napi::bindgen_prelude::This,
        kind: Unknown,
        data: Unknown,
        options: Option<Unknown>,
    ) -> Result<RawValue> {
        self.hold_this(&env, &this)?;
        let o = item_options(&env, options)?;
        let (op, is_js) = match self.op_name(&env, &kind)? {
            Ok(v) => v,
            Err(refusal) => return Self::rejected(&env, &refusal),
        };
        if let Some(signal) = o.signal {
            if is_aborted(&env, signal)? {
                return Self::rejected(&env, &ItemError::aborted());
            }
        }
        if let Some(user_id) = &o.id {
            if self.state.borrow().user_ids.contains_key(user_id) {
                return Err(range_error(
                    &env,
                    OUT_OF_RANGE,
                    format!("an item with id '{user_id}' is already pending"),
                ));
            }
        }
        let (item, kept) = self.build_item(&env, &op, is_js, &data, "data", &o)?;
        let (deferred, promise) = Deferred::new(&env)?;
        self.track(&env, &item, Settle::Single(deferred), kept, &o, true)?;
        self.enqueue(&env, vec![item]);
        let mut s = self.state.borrow_mut();
        s.update_hold(&env);
        Ok(RawValue(promise))
    }

    /// Queues many items of one type with the same options; one promise for
    /// all results in order (rejects with the first error, like Promise.all).
    #[napi(
        catch_unwind,
        ts_generic_types = "T = never, K extends string = string",
        ts_args_type = "type: K, data: unknown[], options?: AddItemOptions",
        ts_return_type = "Promise<Array<BatchResult<K, T>>>"
    )]
    pub fn add_items(
        &self,
        env: Env,
        this: napi::bindgen_prelude::This,
        kind: Unknown,
        data: Unknown,
        options: Option<Unknown>,
    ) -> Result<RawValue> {
        self.hold_this(&env, &this)?;
        let o = item_options(&env, options)?;
        if o.id.is_some() {
            return Err(type_error(
                &env,
                INVALID_ARG_TYPE,
                "id applies to addItem only",
            ));
        }
        let js = Js::new(&env);
        if !js.is_array(data.raw())? {
            return Err(type_error(&env, INVALID_ARG_TYPE, "data must be an array"));
        }
        let (op, is_js) = match self.op_name(&env, &kind)? {
            Ok(v) => v,
            Err(refusal) => return Self::rejected(&env, &refusal),
        };
        if let Some(signal) = o.signal {
            if is_aborted(&env, signal)? {
                return Self::rejected(&env, &ItemError::aborted());
            }
        }
        let len = js.array_length(data.raw())?;
        let (group_id, promise) = self.state.borrow_mut().new_group(&env, len as usize)?;
        if len == 0 {
            self.state.borrow_mut().resolve_empty_group(&env, group_id);
            return Ok(RawValue(promise));
        }
        // Items go to the workers in chunks while the rest are still being
        // read, so a large call keeps the pool busy from its first chunk.
        let mut ids = Vec::new();
        let mut chunk = Vec::with_capacity(INTAKE_CHUNK);
        for i in 0..len {
            if !js.has_element(data.raw(), i)? {
                self.abandon(&env, group_id, &ids);
                return Err(type_error(
                    &env,
                    INVALID_ARG_TYPE,
                    format!("data[{i}] must be an item; got a hole"),
                ));
            }
            let built = js
                .element(data.raw(), i)
                .map(|element| unknown(&env, element))
                .and_then(|element| {
                    self.build_item(&env, &op, is_js, &element, &format!("data[{i}]"), &o)
                })
                .and_then(|(item, kept)| {
                    let settle = Settle::Member {
                        group: group_id,
                        index: i,
                    };
                    self.track(&env, &item, settle, kept, &o, false)?;
                    Ok(item)
                });
            match built {
                Ok(item) => {
                    ids.push(item.id);
                    chunk.push(item);
                    if chunk.len() == INTAKE_CHUNK {
                        self.enqueue(&env, std::mem::take(&mut chunk));
                    }
                }
                Err(e) => {
                    self.abandon(&env, group_id, &ids);
                    return Err(e);
                }
            }
        }
        if let Some(signal) = o.signal {
            // Items refused at submission already settled: watch the rest.
            let live: Vec<ItemId> = {
                let s = self.state.borrow();
                ids.iter()
                    .copied()
                    .filter(|id| s.pending.contains_key(id))
                    .collect()
            };
            if !live.is_empty() {
                match state::watch_signal(&env, &self.state, signal, &live, cancel_item) {
                    Ok(key) => {
                        let mut s = self.state.borrow_mut();
                        for id in &live {
                            if let Some(p) = s.pending.get_mut(id) {
                                p.signal = Some(key);
                            }
                        }
                    }
                    Err(e) => {
                        self.abandon(&env, group_id, &ids);
                        return Err(e);
                    }
                }
            }
        }
        self.enqueue(&env, chunk);
        self.state.borrow_mut().update_hold(&env);
        Ok(RawValue(promise))
    }

    fn hold_this(&self, env: &Env, this: &napi::bindgen_prelude::This) -> Result<()> {
        let mut s = self.state.borrow_mut();
        if s.this.is_none() {
            s.this = Some(Persistent::weak(env, this.object.raw())?);
        }
        Ok(())
    }

    /// Cancels the item added with `{ id }`: a queued one is removed, a
    /// running native one stops at its next frame block; its promise rejects
    /// with an AbortError. False when no such item is pending.
    #[napi(catch_unwind, ts_args_type = "id: string")]
    pub fn cancel(&self, env: Env, id: Unknown) -> Result<bool> {
        let id = crate::js::fields::string_value(&env, "id", &id)?;
        let internal = self.state.borrow().user_ids.get(&id).copied();
        Ok(internal.is_some_and(|i| cancel_item(&env, &self.state, i)))
    }

    /// Calls `listener` with counts (queued, running, completed, failed,
    /// cancelled, total) as items move; returns a function that removes it.
    #[napi(
        catch_unwind,
        ts_args_type = "listener: (counts: BatchCounts) => void",
        ts_return_type = "() => void"
    )]
    pub fn on_progress<'env>(
        &self,
        env: &'env Env,
        listener: Unknown<'env>,
    ) -> Result<Function<'env, (), ()>> {
        let f = function_arg::<(), ()>(env, "listener", listener)?;
        let kept = Persistent::new(env, f.raw())?;
        let id = {
            let mut s = self.state.borrow_mut();
            s.next_listener += 1;
            let id = s.next_listener;
            s.listeners.push((id, kept));
            id
        };
        let weak = Rc::downgrade(&self.state);
        env.create_function_from_closure("removeProgressListener", move |ctx| {
            if let Some(state) = weak.upgrade() {
                let mut s = state.borrow_mut();
                if let Some(p) = s.listeners.iter().position(|(i, _)| *i == id) {
                    let (_, l) = s.listeners.remove(p);
                    l.delete(ctx.env);
                }
            }
            Ok(())
        })
    }

    /// Resolves once nothing is queued or running.
    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
    pub fn on_idle(&self, env: Env) -> Result<RawValue> {
        Ok(RawValue(self.state.borrow_mut().idle_promise(&env)?))
    }

    /// Same as `onIdle()`.
    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
    pub fn drain(&self, env: Env) -> Result<RawValue> {
        self.on_idle(env)
    }

    /// Counters, batch sizes, throughput, wait and run latency percentiles, utilisation.
    #[napi(catch_unwind)]
    pub fn get_stats(&self) -> BatchStats {
        let s = self.core().stats();
        let latency = |l: gama_core::batch::Latency| LatencyStats {
            p50: l.p50,
            p95: l.p95,
            p99: l.p99,
            max: l.max,
        };
        BatchStats {
            queued: s.queued as f64,
            running: s.running as f64,
            completed: s.completed as f64,
            failed: s.failed as f64,
            cancelled: s.cancelled as f64,
            batches: s.batches as f64,
            average_batch_size: s.average_batch_size,
            throughput_per_second: s.throughput,
            wait_latency: latency(s.wait),
            run_latency: latency(s.run),
            worker_utilisation: s.utilisation,
        }
    }

    /// Stops accepting items; resolves when everything pending has settled
    /// and the threads stop. `{ force: true }` rejects what is pending with E_CLOSED.
    #[napi(
        catch_unwind,
        ts_args_type = "options?: CloseOptions | undefined | null",
        ts_return_type = "Promise<void>"
    )]
    pub fn close(&self, env: Env, options: Option<Unknown>) -> Result<RawValue> {
        let force = match Fields::read(&env, options, "options", &["force"])? {
            Some(o) => o.boolean("force")?.unwrap_or(false),
            None => false,
        };
        let core = self.core();
        core.close(force);
        let promise = self.state.borrow_mut().idle_promise(&env)?;
        after_change(&env, &self.state, false);
        Ok(RawValue(promise))
    }
}

impl Drop for BatchProcessor {
    fn drop(&mut self) {
        if let Some(core) = self.state.borrow().core.as_ref() {
            core.close(true);
        }
    }
}
