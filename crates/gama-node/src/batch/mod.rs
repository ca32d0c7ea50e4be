//! The `BatchProcessor` class as JS sees it: option checks, item intake and
//! the bridge (one weak threadsafe function) that brings the core's events
//! back to the JS thread in batches.

mod convert;
mod drain;
mod intake;
mod js_batch;
mod signals;
mod state;
mod types;

pub use types::*;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use napi::bindgen_prelude::{ClassInstance, Function, Unknown};
use napi::{Env, JsValue, Result, ValueType};
use napi_derive::napi;
use parking_lot::Mutex;

use self::drain::{after_change, drain};
use self::intake::{cancel_item, item_options, Intake, INTAKE_CHUNK};
use self::state::{JsState, Settle, StateCell};
use crate::cache::AudioFeatureCache;
use crate::features::extract_params;
use crate::js::errors::{
    coded_at, coded_error, range_error, type_error, INVALID_ARG_TYPE, OUT_OF_RANGE,
};
use crate::js::fields::Fields;
use crate::js::mailbox::{Inbox, Mailbox};
use crate::js::napi::{convert, unknown, Js};
use crate::js::options::function_arg;
use crate::js::raw::{Deferred, Persistent};
use crate::js::value::RawValue;
use crate::memory::GAMAMemoryManager;
use gama_core::batch::{Config, Event, ItemId, OpName, Processor};
use gama_core::features::gpu::{gpu_status, FeatureDevice};
use gama_core::features::ExtractParams;

pub(crate) use convert::NumberObjects;

/// Dynamic batching of work items on a Rust thread pool, with priorities,
/// progress, cancellation and memory-aware scheduling. Every promise it
/// returns settles; an idle processor does not keep Node running.
#[napi]
pub struct BatchProcessor {
    state: StateCell,
    defaults: convert::Defaults,
    with_cache: bool,
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
            config.feature_device = o
                .choice("featureDevice", &FeatureDevice::NAMES)?
                .unwrap_or_default();
        }
        if config.feature_device == FeatureDevice::Cuda
            && !memory.as_ref().is_some_and(|m| m.has_gpu())
        {
            return Err(coded_error(
                &env,
                "E_NO_GPU",
                "options.featureDevice 'cuda' needs a memoryManager with a GPU (new GAMAMemoryManager({ device: 'cuda' }))",
            ));
        }
        if config.feature_device == FeatureDevice::Cuda {
            // The GPU path itself (NVRTC, cuFFT, the kernels) must work too:
            // say so now rather than failing every batch.
            gpu_status().map_err(|e| coded_at(&env, "options.featureDevice 'cuda'", &e))?;
        }
        let defaults = convert::Defaults::new(&env, params, "options.featureOptions")?;
        let with_cache = cache.is_some();
        let inbox: Inbox<Event> = Arc::new(Mutex::new(Vec::new()));
        let state: StateCell = Rc::new(RefCell::new(JsState::new(inbox.clone())));
        let drain_state = state.clone();
        let mailbox = Mailbox::new(&env, inbox, move |env| drain(env, &drain_state))?;
        state.borrow_mut().tsfn = mailbox.raw();
        let core = Processor::new(config, Arc::new(Sink(mailbox)), memory, cache).map_err(|e| {
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
        let (op, is_js) = match self.admit(&env, &kind, &o)? {
            Ok(v) => v,
            Err(rejected) => return Ok(rejected),
        };
        if let Some(user_id) = &o.id {
            if self.state.borrow().user_ids.contains_key(user_id) {
                return Err(range_error(
                    &env,
                    OUT_OF_RANGE,
                    format!("an item with id '{user_id}' is already pending"),
                ));
            }
        }
        let mut intake = Intake::single();
        let path = || "data".to_string();
        let id = {
            let mut s = self.state.borrow_mut();
            s.next_id += 1;
            s.next_id
        };
        let (item, kept) =
            self.build_item(&env, id, (&op, is_js), &data, &path, &o, &mut intake)?;
        let mut items = vec![item];
        intake.take(&mut items);
        let (deferred, promise) = Deferred::new(&env)?;
        self.track(&env, &items[0], Settle::Single(deferred), kept, &o, true)?;
        self.enqueue(&env, items);
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
        let (op, is_js) = match self.admit(&env, &kind, &o)? {
            Ok(v) => v,
            Err(rejected) => return Ok(rejected),
        };
        let len = js.array_length(data.raw())?;
        let (first, promise) = self.state.borrow_mut().new_group(&env, len, o.priority)?;
        if len == 0 {
            self.state.borrow_mut().resolve_empty_group(&env, first);
            return Ok(RawValue(promise));
        }
        // Items go to the workers in chunks while the rest are still being
        // read, so a large call keeps the pool busy from its first chunk.
        // Member `i` has the id `first + i`.
        let mut chunk = Vec::with_capacity(INTAKE_CHUNK);
        let mut intake = Intake::chunked();
        for i in 0..len {
            // A hole reads as undefined: only then is it told apart.
            let element = js.element(data.raw(), i).and_then(|element| {
                let element = unknown(&env, element);
                if element.get_type()? == ValueType::Undefined && !js.has_element(data.raw(), i)? {
                    return Err(type_error(
                        &env,
                        INVALID_ARG_TYPE,
                        format!("data[{i}] must be an item; got a hole"),
                    ));
                }
                Ok(element)
            });
            let built = element
                .and_then(|element| {
                    let path = || format!("data[{i}]");
                    let id = first + u64::from(i);
                    self.build_item(&env, id, (&op, is_js), &element, &path, &o, &mut intake)
                })
                .and_then(|(item, kept)| {
                    let settle = Settle::Member {
                        group: first,
                        index: i,
                    };
                    self.track(&env, &item, settle, kept, &o, false)?;
                    Ok(item)
                });
            match built {
                Ok(item) => {
                    chunk.push(item);
                    if chunk.len() == INTAKE_CHUNK || intake.is_full() {
                        intake.take(&mut chunk);
                        self.enqueue(&env, std::mem::take(&mut chunk));
                    }
                }
                Err(e) => {
                    self.abandon(&env, first, first..first + u64::from(i));
                    return Err(e);
                }
            }
        }
        let ids = first..first + u64::from(len);
        if let Some(signal) = o.signal {
            // Items refused at submission already settled: watch the rest.
            let live: Vec<ItemId> = {
                let s = self.state.borrow();
                ids.clone().filter(|id| s.is_pending(*id)).collect()
            };
            if !live.is_empty() {
                match signals::watch_signal(&env, &self.state, signal, &live, cancel_item) {
                    Ok(key) => self.state.borrow_mut().watch_group(first, key),
                    Err(e) => {
                        self.abandon(&env, first, ids);
                        return Err(e);
                    }
                }
            }
        }
        intake.take(&mut chunk);
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
        BatchStats {
            queued: s.queued as f64,
            running: s.running as f64,
            completed: s.completed as f64,
            failed: s.failed as f64,
            cancelled: s.cancelled as f64,
            batches: s.batches as f64,
            average_batch_size: s.average_batch_size,
            throughput_per_second: s.throughput,
            wait_latency: s.wait.into(),
            run_latency: s.run.into(),
            worker_utilisation: s.utilisation,
            gpu_batches: s.gpu_batches as f64,
            gpu_fallbacks: s.gpu_fallbacks as f64,
            gpu_time_ms: s.gpu_time.as_secs_f64() * 1e3,
            gpu_copy_time_ms: s.gpu_copy_time.as_secs_f64() * 1e3,
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

/// The core's sink of a processor: the drain's mailbox.
struct Sink(Mailbox<Event>);

impl gama_core::batch::Sink for Sink {
    fn deliver(&self, event: Event) {
        self.0.post_all([event]);
    }

    fn deliver_all(&self, events: Vec<Event>) {
        self.0.post_all(events);
    }
}
