//! The JS-thread side of a `BatchProcessor`: the promise of every accepted
//! item, callbacks and references, and the drain that turns the core's
//! events into settled promises, progress calls and JS processor batches.
//!
//! Rule: no `RefCell` borrow of the state is held while JS code runs
//! (callbacks may call back into the processor).
//!
//! Invariant: every id in `pending` belongs to an accepted item whose
//! promise (or group promise) has not settled; it leaves `pending` exactly
//! once, when it settles.

use std::cell::RefCell;
use std::ptr;
use std::rc::{Rc, Weak};
use std::sync::Arc;

use hashbrown::{HashMap, HashSet};
use napi::bindgen_prelude::{Function, JsObjectValue, Object};
use napi::{sys, Env, JsValue, Result};
use parking_lot::Mutex;

use super::convert::{error_to_js, output_to_js};
use crate::js::errors::{error_value, range_error, OUT_OF_RANGE};
use crate::js::napi::Js;
use crate::js::raw::{call_reporting, clear_exception, undefined, Deferred, Persistent};
use crate::js::value::RawValue;
use gama_core::batch::{
    settle_order, Event, ItemError, ItemId, OpName, Processor, ResourceStrategy, Stage,
};
use gama_core::error::ErrorClass;

/// How an item's outcome reaches JS.
pub enum Settle {
    /// Its own promise (`addItem`).
    Single(Deferred),
    /// Slot `index` of the group promise `group` (`addItems`).
    Member { group: u64, index: u32 },
}

/// What the JS side keeps for an item until it settles.
pub struct Pending {
    /// Where the outcome goes.
    pub settle: Settle,
    /// `onProgress` of the item.
    pub on_progress: Option<Persistent>,
    /// The JS value given as data (JS processors only).
    pub data: Option<Persistent>,
    /// `metadata` of the item.
    pub metadata: Option<Persistent>,
    /// The key of the item's AbortSignal in `JsState::signals`.
    pub signal: Option<u64>,
    /// The `id` the user gave, for `cancel(id)`.
    pub user_id: Option<String>,
    /// The item's priority: outcomes of urgent items settle first.
    pub priority: u8,
}

struct Group {
    deferred: Option<Deferred>,
    results: Persistent,
    remaining: usize,
}

/// The one abort listener of an AbortSignal, shared by every pending item
/// given that signal (so any number of items add a single listener).
pub struct SignalWatch {
    signal: Persistent,
    listener: Persistent,
    /// Pending items to cancel on abort; the watch ends when it empties.
    ids: Rc<RefCell<HashSet<ItemId>>>,
}

/// Events from the core, waiting for the JS thread.
pub type Inbox = Arc<Mutex<Vec<Event>>>;

/// Everything the JS thread keeps for one processor.
pub struct JsState {
    pub core: Option<Arc<Processor>>,
    pub pending: HashMap<ItemId, Pending>,
    groups: HashMap<u64, Group>,
    signals: HashMap<u64, SignalWatch>,
    next_signal: u64,
    pub user_ids: HashMap<String, ItemId>,
    idle_waiters: Vec<Deferred>,
    pub listeners: Vec<(u64, Persistent)>,
    pub processors: HashMap<OpName, Persistent>,
    pub next_id: ItemId,
    pub next_listener: u64,
    next_group: u64,
    /// The drain's threadsafe function, referenced while items are pending.
    pub tsfn: sys::napi_threadsafe_function,
    /// A reference to the processor object, strong while items are pending.
    pub this: Option<Persistent>,
    held: bool,
    pub inbox: Inbox,
}

/// Shared handle to the state.
pub type State = Rc<RefCell<JsState>>;

impl JsState {
    /// Empty state draining `inbox`.
    pub fn new(inbox: Inbox) -> Self {
        JsState {
            core: None,
            pending: HashMap::new(),
            groups: HashMap::new(),
            signals: HashMap::new(),
            next_signal: 0,
            user_ids: HashMap::new(),
            idle_waiters: Vec::new(),
            listeners: Vec::new(),
            processors: HashMap::new(),
            next_id: 0,
            next_listener: 0,
            next_group: 0,
            tsfn: ptr::null_mut(),
            this: None,
            held: false,
            inbox,
        }
    }

    /// The core; present from construction on.
    pub fn core(&self) -> Arc<Processor> {
        self.core.clone().expect("set at construction")
    }

    /// A new group promise for `len` results.
    pub fn new_group(&mut self, env: &Env, len: usize) -> Result<(u64, sys::napi_value)> {
        let (deferred, promise) = Deferred::new(env)?;
        // Sized up front only up to a bound: a declared length is not trusted
        // (a larger array grows as results arrive).
        let array = env.create_array(len.min(1 << 24) as u32)?;
        let results = Persistent::new(env, array.raw())?;
        self.next_group += 1;
        self.groups.insert(
            self.next_group,
            Group {
                deferred: Some(deferred),
                results,
                remaining: len,
            },
        );
        Ok((self.next_group, promise))
    }

    /// Drops a group whose promise was never handed out.
    pub fn discard_group(&mut self, env: &Env, group: u64) {
        if let Some(g) = self.groups.remove(&group) {
            if let Some(d) = g.deferred {
                d.resolve(env, undefined(env));
            }
            g.results.delete(env);
        }
    }

    /// The AbortSignal of a watch, if it is still active.
    pub fn signal_value(&self, env: &Env, key: u64) -> Option<sys::napi_value> {
        self.signals.get(&key).map(|w| w.signal.get(env))
    }

    /// Forgets a group that got no items after all (its promise settles now).
    pub fn resolve_empty_group(&mut self, env: &Env, group: u64) {
        if let Some(g) = self.groups.remove(&group) {
            let array = g.results.get(env);
            if let Some(d) = g.deferred {
                d.resolve(env, array);
            }
            g.results.delete(env);
        }
    }

    /// Holds the event loop and the processor object while work is pending.
    pub fn update_hold(&mut self, env: &Env) {
        let busy = !self.pending.is_empty();
        if busy == self.held {
            return;
        }
        self.held = busy;
        // SAFETY: the live env of this call; `tsfn` is the drain's function,
        // which the core's sink owns and which lives as long as this state
        // (the state owns the core).
        let status = unsafe {
            if busy {
                sys::napi_ref_threadsafe_function(env.raw(), self.tsfn)
            } else {
                sys::napi_unref_threadsafe_function(env.raw(), self.tsfn)
            }
        };
        let _ = crate::js::errors::check_status(status, "napi_ref_threadsafe_function");
        if let Some(this) = &self.this {
            this.hold(env, busy);
        }
    }

    /// A promise that resolves once nothing is pending.
    pub fn idle_promise(&mut self, env: &Env) -> Result<sys::napi_value> {
        let (deferred, promise) = Deferred::new(env)?;
        if self.pending.is_empty() {
            deferred.resolve(env, undefined(env));
        } else {
            self.idle_waiters.push(deferred);
        }
        Ok(promise)
    }
}

/// Settles item `id` with a value (Ok) or an error (Err); false when it was
/// not pending (already settled).
pub fn settle(
    env: &Env,
    state: &State,
    id: ItemId,
    outcome: std::result::Result<sys::napi_value, sys::napi_value>,
) -> bool {
    // Everything is taken out under the borrow; JS (setters on arrays,
    // promise settling) runs only after it is released.
    let (pending, group_done, slot, reject_group) = {
        let mut s = state.borrow_mut();
        let Some(pending) = s.pending.remove(&id) else {
            return false;
        };
        if let Some(user_id) = &pending.user_id {
            s.user_ids.remove(user_id);
        }
        let (mut group_done, mut slot, mut reject_group) = (None, None, None);
        if let Settle::Member { group, index } = &pending.settle {
            if let Some(g) = s.groups.get_mut(group) {
                g.remaining -= 1;
                match outcome {
                    Ok(_) => slot = Some((g.results.get(env), *index)),
                    Err(_) => reject_group = g.deferred.take(),
                }
                if g.remaining == 0 {
                    group_done = s.groups.remove(group);
                }
            }
        }
        (pending, group_done, slot, reject_group)
    };
    if let (Some((array, index)), Ok(value)) = (slot, outcome) {
        // A setter on the results array may throw: the drain goes on.
        if Js::new(env).set_element(array, index, value).is_err() {
            clear_exception(env);
        }
    }
    if let (Some(d), Err(error)) = (reject_group, outcome) {
        d.reject(env, error);
    }
    {
        if let Some(g) = group_done {
            if let Some(d) = g.deferred {
                d.resolve(env, g.results.get(env));
            }
            g.results.delete(env);
        }
        if let Settle::Single(deferred) = pending.settle {
            match outcome {
                Ok(value) => deferred.resolve(env, value),
                Err(error) => deferred.reject(env, error),
            }
        }
        if let Some(key) = pending.signal {
            unwatch_signal(env, state, key, id);
        }
        if let Some(callback) = pending.on_progress {
            let _ = call_progress(env, callback.get(env), Stage::Done, 1.0);
            callback.delete(env);
        }
        for r in [pending.data, pending.metadata].into_iter().flatten() {
            r.delete(env);
        }
    }
    true
}

/// Cancels `ids` when `signal` aborts, through the signal's one listener
/// (added on first use, shared after); returns the watch's key.
pub fn watch_signal(
    env: &Env,
    state: &State,
    signal: sys::napi_value,
    ids: &[ItemId],
    cancel: fn(&Env, &State, ItemId) -> bool,
) -> Result<u64> {
    let js = Js::new(env);
    {
        let s = state.borrow();
        for (key, watch) in &s.signals {
            // Strict equality runs no JS.
            if js.strict_equals(watch.signal.get(env), signal)? {
                watch.ids.borrow_mut().extend(ids.iter().copied());
                return Ok(*key);
            }
        }
    }
    let targets = Rc::new(RefCell::new(ids.iter().copied().collect::<HashSet<_>>()));
    let weak_state = Rc::downgrade(state);
    let weak_targets = Rc::downgrade(&targets);
    let listener: Function<(), ()> = env.create_function_from_closure("onAbort", move |ctx| {
        if let (Some(state), Some(targets)) = (weak_state.upgrade(), weak_targets.upgrade()) {
            // Copied first: cancelling settles items, which edits the set.
            let ids: Vec<ItemId> = targets.borrow().iter().copied().collect();
            for id in ids {
                cancel(ctx.env, &state, id);
            }
        }
        Ok(())
    })?;
    // `signal` has addEventListener (checked when the options were read).
    // No borrow is held: it may run JS.
    let add = js.named(signal, c"addEventListener")?;
    js.call(signal, add, &[js.string("abort")?, listener.raw()])?;
    let watch = SignalWatch {
        signal: Persistent::new(env, signal)?,
        listener: Persistent::new(env, listener.raw())?,
        ids: targets,
    };
    let mut s = state.borrow_mut();
    s.next_signal += 1;
    let key = s.next_signal;
    s.signals.insert(key, watch);
    Ok(key)
}

/// Forgets item `id` of watch `key`; the last item removes the listener.
pub fn unwatch_signal(env: &Env, state: &State, key: u64, id: ItemId) {
    let ended = {
        let mut s = state.borrow_mut();
        let Some(watch) = s.signals.get(&key) else {
            return;
        };
        let empty = {
            let mut ids = watch.ids.borrow_mut();
            ids.remove(&id);
            ids.is_empty()
        };
        if empty {
            s.signals.remove(&key)
        } else {
            None
        }
    };
    if let Some(watch) = ended {
        remove_abort_listener(env, watch.signal.get(env), watch.listener.get(env));
        watch.signal.delete(env);
        watch.listener.delete(env);
    }
}

/// `signal.removeEventListener('abort', listener)`; what it throws is dropped.
fn remove_abort_listener(env: &Env, signal: sys::napi_value, listener: sys::napi_value) {
    let js = Js::new(env);
    let removed = (|| {
        let remove = js.named(signal, c"removeEventListener")?;
        js.call(signal, remove, &[js.string("abort")?, listener])
    })();
    if removed.is_err() {
        clear_exception(env);
    }
}

/// Calls `callback({ stage, progress })`; an exception it throws is reported
/// as an uncaught exception, as an EventEmitter listener's would be.
fn call_progress(env: &Env, callback: sys::napi_value, stage: Stage, fraction: f32) -> Result<()> {
    let mut event = Object::new(env)?;
    event.set_named_property(
        "stage",
        match stage {
            Stage::Queued => "queued",
            Stage::Running => "running",
            Stage::Done => "done",
        },
    )?;
    event.set_named_property("progress", fraction as f64)?;
    call_reporting(env, callback, &[event.raw()]);
    Ok(())
}

/// Runs on the JS thread whenever the core has delivered events.
pub fn drain(env: &Env, state: &State) {
    let events = {
        let inbox = state.borrow().inbox.clone();
        let mut inbox = inbox.lock();
        std::mem::take(&mut *inbox)
    };
    let events = {
        let s = state.borrow();
        settle_order(events, |id| {
            s.pending.get(&id).map_or(u8::MAX, |p| p.priority)
        })
    };
    let handled = !events.is_empty();
    for event in events {
        match event {
            Event::Done { id, result } => {
                let outcome = match result {
                    Ok(output) => output_to_js(env, output)
                        .map_err(|e| error_value(env, ErrorClass::Error, "E_CONVERT", &e.reason)),
                    Err(e) => Err(error_to_js(env, &e)),
                };
                settle(env, state, id, outcome);
            }
            Event::Progress {
                id,
                stage,
                fraction,
            } => {
                let callback = {
                    let s = state.borrow();
                    s.pending
                        .get(&id)
                        .and_then(|p| p.on_progress.as_ref())
                        .map(|c| c.get(env))
                };
                if let Some(callback) = callback {
                    let _ = call_progress(env, callback, stage, fraction);
                }
            }
            Event::RunJs {
                batch,
                op,
                ids,
                strategy,
            } => run_js_batch(env, state, batch, &op, ids, &strategy),
        }
    }
    after_change(env, state, handled);
}

/// Tells progress listeners, resolves idle waiters and lets go of the event
/// loop when nothing is pending.
pub fn after_change(env: &Env, state: &State, changed: bool) {
    let core = state.borrow().core();
    let listeners: Vec<sys::napi_value> = {
        let s = state.borrow();
        if changed {
            s.listeners.iter().map(|(_, l)| l.get(env)).collect()
        } else {
            Vec::new()
        }
    };
    if !listeners.is_empty() {
        if let Ok(counts) = counts_object(env, &core) {
            for listener in listeners {
                call_reporting(env, listener, &[counts]);
            }
        }
    }
    let mut s = state.borrow_mut();
    if s.pending.is_empty() {
        let waiters = std::mem::take(&mut s.idle_waiters);
        s.update_hold(env);
        drop(s);
        for w in waiters {
            w.resolve(env, undefined(env));
        }
    } else {
        s.update_hold(env);
    }
}

fn counts_object(env: &Env, core: &Processor) -> Result<sys::napi_value> {
    let c = core.counts();
    let mut o = Object::new(env)?;
    let total = c.queued + c.running + c.completed + c.failed + c.cancelled;
    for (name, value) in [
        ("queued", c.queued),
        ("running", c.running),
        ("completed", c.completed),
        ("failed", c.failed),
        ("cancelled", c.cancelled),
        ("total", total),
    ] {
        o.set_named_property(name, value as f64)?;
    }
    Ok(o.raw())
}

/// Calls the JS processor of `op` with a batch and settles its items with
/// what it returns (or throws, or rejects with).
fn run_js_batch(
    env: &Env,
    state: &State,
    batch: u64,
    op: &OpName,
    ids: Vec<ItemId>,
    strategy: &ResourceStrategy,
) {
    let prepared = (|| -> Result<(sys::napi_value, sys::napi_value, sys::napi_value)> {
        // What the items carry is read under the borrow; the objects are built
        // after it is released (their setters may call back into the processor).
        let (processor, carried) = {
            let s = state.borrow();
            let processor = s
                .processors
                .get(op)
                .map(|p| p.get(env))
                .ok_or_else(|| napi::Error::from_reason("processor unregistered"))?;
            let get = |r: &Option<Persistent>| r.as_ref().map(|r| r.get(env));
            let carried: Vec<_> = ids
                .iter()
                .map(|id| {
                    s.pending.get(id).map(|p| {
                        (
                            p.user_id.clone(),
                            get(&p.data),
                            get(&p.metadata),
                            p.signal.and_then(|key| s.signal_value(env, key)),
                        )
                    })
                })
                .collect();
            (processor, carried)
        };
        let mut items = env.create_array(ids.len() as u32)?;
        for (i, (id, carried)) in ids.iter().zip(carried).enumerate() {
            let mut item = Object::new(env)?;
            if let Some((user_id, data, metadata, signal)) = carried {
                let or_undefined =
                    |v: Option<sys::napi_value>| RawValue(v.unwrap_or_else(|| undefined(env)));
                match &user_id {
                    Some(u) => item.set_named_property("id", u.as_str())?,
                    None => item.set_named_property("id", *id as f64)?,
                }
                item.set_named_property("data", or_undefined(data))?;
                item.set_named_property("metadata", or_undefined(metadata))?;
                item.set_named_property("signal", or_undefined(signal))?;
            }
            let weak = Rc::downgrade(state);
            let id = *id;
            let report: Function<f64, ()> =
                env.create_function_from_closure("reportProgress", move |ctx| {
                    match ctx.get::<f64>(0) {
                        Ok(fraction) if (0.0..=1.0).contains(&fraction) => {
                            report_progress(ctx.env, &weak, id, fraction);
                            Ok(())
                        }
                        _ => Err(range_error(
                            ctx.env,
                            OUT_OF_RANGE,
                            "reportProgress(fraction) takes a number from 0 to 1",
                        )),
                    }
                })?;
            item.set_named_property("reportProgress", report)?;
            items.set(i as u32, item)?;
        }
        let mut resources = Object::new(env)?;
        resources.set_named_property("device", strategy.device)?;
        resources.set_named_property("batchSize", strategy.batch_size as f64)?;
        resources.set_named_property("memoryBudget", strategy.memory_budget as f64)?;
        resources.set_named_property("threads", strategy.threads as f64)?;
        Ok((processor, items.raw(), resources.raw()))
    })();
    let (processor, items, resources) = match prepared {
        Ok(p) => p,
        Err(e) => {
            let error = error_value(env, ErrorClass::Error, "E_PROCESSOR_FAILED", &e.reason);
            finish_batch(env, state, batch, &ids, Err(error));
            return;
        }
    };
    let js = Js::new(env);
    let result = match js.call(undefined(env), processor, &[items, resources]) {
        Ok(result) => result,
        Err(e) => {
            let error = clear_exception(env).unwrap_or_else(|| {
                error_value(env, ErrorClass::Error, "E_PROCESSOR_FAILED", &e.reason)
            });
            finish_batch(env, state, batch, &ids, Err(error));
            return;
        }
    };
    if !js.is_promise(result).unwrap_or(false) {
        finish_batch(env, state, batch, &ids, Ok(result));
        return;
    }
    let ids = Rc::new(ids);
    let attached = (|| -> Result<()> {
        let on_ok = batch_handler(env, state, batch, ids.clone(), true)?;
        let on_err = batch_handler(env, state, batch, ids.clone(), false)?;
        let then = js.named(result, c"then")?;
        js.call(result, then, &[on_ok.raw(), on_err.raw()])?;
        Ok(())
    })();
    if let Err(e) = attached {
        let error = error_value(env, ErrorClass::Error, "E_PROCESSOR_FAILED", &e.reason);
        finish_batch(env, state, batch, &ids, Err(error));
    }
}

/// The `then` callback that ends JS batch `batch` with its promise's value
/// (`fulfilled`) or reason.
fn batch_handler<'env>(
    env: &'env Env,
    state: &State,
    batch: u64,
    ids: Rc<Vec<ItemId>>,
    fulfilled: bool,
) -> Result<Function<'env, RawValue, ()>> {
    let weak = Rc::downgrade(state);
    env.create_function_from_closure("onBatchSettled", move |ctx| {
        if let Some(state) = weak.upgrade() {
            let value = ctx
                .get::<RawValue>(0)
                .map(|v| v.0)
                .unwrap_or_else(|_| undefined(ctx.env));
            let outcome = if fulfilled { Ok(value) } else { Err(value) };
            finish_batch(ctx.env, &state, batch, &ids, outcome);
        }
        Ok(())
    })
}

fn report_progress(env: &Env, state: &Weak<RefCell<JsState>>, id: ItemId, fraction: f64) {
    let Some(state) = state.upgrade() else { return };
    let callback = {
        let s = state.borrow();
        s.pending
            .get(&id)
            .and_then(|p| p.on_progress.as_ref())
            .map(|c| c.get(env))
    };
    if let Some(callback) = callback {
        let _ = call_progress(env, callback, Stage::Running, fraction as f32);
    }
}

/// Ends a JS batch: results (an array of one result per item) or an error.
fn finish_batch(
    env: &Env,
    state: &State,
    batch: u64,
    ids: &[ItemId],
    outcome: std::result::Result<sys::napi_value, sys::napi_value>,
) {
    let js = Js::new(env);
    let results: std::result::Result<Vec<sys::napi_value>, sys::napi_value> = match outcome {
        Err(cause) => Err(wrap_cause(
            env,
            "E_PROCESSOR_FAILED",
            "the processor threw or rejected",
            cause,
        )),
        Ok(value) => {
            let is_array = js.is_array(value).unwrap_or(false);
            let len = if is_array {
                js.array_length(value).unwrap_or(0)
            } else {
                0
            };
            if !is_array || len as usize != ids.len() {
                let message = if is_array {
                    format!(
                        "the processor returned {len} results for {} items",
                        ids.len()
                    )
                } else {
                    format!(
                        "the processor must return an array of {} results",
                        ids.len()
                    )
                };
                Err(error_value(
                    env,
                    ErrorClass::TypeError,
                    "E_PROCESSOR_RESULT",
                    &message,
                ))
            } else {
                // A getter on the array may throw: that result is its error.
                Ok((0..len)
                    .map(|i| {
                        js.element(value, i)
                            .unwrap_or_else(|_| clear_exception(env).unwrap_or(undefined(env)))
                    })
                    .collect())
            }
        }
    };
    let outcomes: Vec<std::result::Result<sys::napi_value, sys::napi_value>> = match results {
        Ok(values) => {
            let promised = values.iter().any(|v| js.is_promise(*v).unwrap_or(false));
            if promised {
                await_results(env, state, batch, ids, &values);
                return;
            }
            values.into_iter().map(Ok).collect()
        }
        Err(error) => ids.iter().map(|_| Err(error)).collect(),
    };
    finish_items(env, state, batch, ids, outcomes);
}

/// Ends a JS batch with one outcome per item: the core counts each as it
/// ended (a rejected result counts as failed), then the items settle.
fn finish_items(
    env: &Env,
    state: &State,
    batch: u64,
    ids: &[ItemId],
    outcomes: Vec<std::result::Result<sys::napi_value, sys::napi_value>>,
) {
    let core = state.borrow().core();
    let (mut ok, mut failed) = (Vec::new(), Vec::new());
    for (id, outcome) in ids.iter().zip(&outcomes) {
        if outcome.is_ok() {
            ok.push(*id);
        } else {
            failed.push(*id);
        }
    }
    if !core.finish_js_batch(batch, &ok, &failed) {
        return;
    }
    for (id, outcome) in ids.iter().zip(outcomes) {
        settle(env, state, *id, outcome);
    }
    after_change(env, state, true);
}

/// A processor returned promises among its results: the batch ends once
/// every one has settled (`Promise.allSettled`), each item with its own.
fn await_results(env: &Env, state: &State, batch: u64, ids: &[ItemId], values: &[sys::napi_value]) {
    let js = Js::new(env);
    let ids = Rc::new(ids.to_vec());
    let attached = (|| -> Result<()> {
        let mut array = env.create_array(values.len() as u32)?;
        for (i, v) in values.iter().enumerate() {
            array.set(i as u32, RawValue(*v))?;
        }
        let weak = Rc::downgrade(state);
        let handler_ids = ids.clone();
        let on_settled: Function<RawValue, ()> =
            env.create_function_from_closure("onResultsSettled", move |ctx| {
                let Some(state) = weak.upgrade() else {
                    return Ok(());
                };
                let settled = ctx.get::<RawValue>(0)?.0;
                let env = ctx.env;
                let js = Js::new(env);
                // allSettled's array of { status, value | reason }.
                let outcomes = (0..handler_ids.len() as u32)
                    .map(|i| -> Result<_> {
                        let entry = js.element(settled, i)?;
                        let fulfilled =
                            js.strict_equals(js.named(entry, c"status")?, js.string("fulfilled")?)?;
                        Ok(if fulfilled {
                            Ok(js.named(entry, c"value")?)
                        } else {
                            Err(js.named(entry, c"reason")?)
                        })
                    })
                    .collect::<Result<Vec<_>>>()
                    .unwrap_or_else(|e| {
                        // Every item still ends: with the reason reading failed.
                        let error =
                            error_value(env, ErrorClass::Error, "E_PROCESSOR_RESULT", &e.reason);
                        handler_ids.iter().map(|_| Err(error)).collect()
                    });
                finish_items(env, &state, batch, &handler_ids, outcomes);
                Ok(())
            })?;
        let promise_class = js.named(js.global()?, c"Promise")?;
        let all_settled = js.named(promise_class, c"allSettled")?;
        let combined = js.call(promise_class, all_settled, &[array.raw()])?;
        let then = js.named(combined, c"then")?;
        js.call(combined, then, &[on_settled.raw()])?;
        Ok(())
    })();
    if let Err(e) = attached {
        clear_exception(env);
        let error = error_value(env, ErrorClass::Error, "E_PROCESSOR_FAILED", &e.reason);
        finish_items(
            env,
            state,
            batch,
            &ids,
            ids.iter().map(|_| Err(error)).collect(),
        );
    }
}

/// An Error with `code` and `message`, its `cause` the value thrown, and
/// the cause's own message (up to 512 bytes) appended.
fn wrap_cause(env: &Env, code: &str, message: &str, cause: sys::napi_value) -> sys::napi_value {
    let js = Js::new(env);
    let mut buf = vec![0u8; 512];
    let detail = js
        .named(cause, c"message")
        .and_then(|text| js.utf8_into(text, &mut buf))
        .map(|len| String::from_utf8_lossy(&buf[..len]).into_owned())
        .unwrap_or_default();
    clear_exception(env);
    let full = if detail.is_empty() {
        message.to_string()
    } else {
        format!("{message}: {detail}")
    };
    let error = error_value(env, ErrorClass::Error, code, &full);
    if js.set_named(error, c"cause", cause).is_err() {
        clear_exception(env);
    }
    error
}

/// Rejects an item that never reached the core (aborted before queueing,
/// overflow dropped by a forced close).
pub fn reject_now(env: &Env, state: &State, id: ItemId, error: &ItemError) {
    settle(env, state, id, Err(error_to_js(env, error)));
}
