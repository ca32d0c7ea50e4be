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
use napi::bindgen_prelude::{Function, JsObjectValue, Object, ToNapiValue};
use napi::{sys, Env, JsValue, Result};
use parking_lot::Mutex;

use super::convert::{error_to_js, output_to_js};
use crate::js::errors::{error_value, range_error, OUT_OF_RANGE};
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
    pub this: Option<sys::napi_ref>,
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
        let (deferred, promise) = unsafe { Deferred::new(env.raw())? };
        // Sized up front only up to a bound: a declared length is not trusted
        // (a larger array grows as results arrive).
        let array = env.create_array(len.min(1 << 24) as u32)?;
        let results = unsafe { Persistent::new(env.raw(), array.raw())? };
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
            unsafe {
                if let Some(d) = g.deferred {
                    d.resolve(env.raw(), undefined(env));
                }
                g.results.delete(env.raw());
            }
        }
    }

    /// The AbortSignal of a watch, if it is still active.
    pub fn signal_value(&self, env: &Env, key: u64) -> Option<sys::napi_value> {
        // SAFETY: called on the JS thread; the reference lives as long as the watch.
        self.signals
            .get(&key)
            .map(|w| unsafe { w.signal.get(env.raw()) })
    }

    /// Forgets a group that got no items after all (its promise settles now).
    pub fn resolve_empty_group(&mut self, env: &Env, group: u64) {
        if let Some(g) = self.groups.remove(&group) {
            unsafe {
                let array = g.results.get(env.raw());
                if let Some(d) = g.deferred {
                    d.resolve(env.raw(), array);
                }
                g.results.delete(env.raw());
            }
        }
    }

    /// Holds the event loop and the processor object while work is pending.
    pub fn update_hold(&mut self, env: &Env) {
        let busy = !self.pending.is_empty();
        if busy == self.held {
            return;
        }
        self.held = busy;
        unsafe {
            if busy {
                sys::napi_ref_threadsafe_function(env.raw(), self.tsfn);
            } else {
                sys::napi_unref_threadsafe_function(env.raw(), self.tsfn);
            }
            if let Some(this) = self.this {
                let mut count = 0;
                if busy {
                    sys::napi_reference_ref(env.raw(), this, &mut count);
                } else {
                    sys::napi_reference_unref(env.raw(), this, &mut count);
                }
            }
        }
    }

    /// A promise that resolves once nothing is pending.
    pub fn idle_promise(&mut self, env: &Env) -> Result<sys::napi_value> {
        let (deferred, promise) = unsafe { Deferred::new(env.raw())? };
        if self.pending.is_empty() {
            unsafe { deferred.resolve(env.raw(), undefined(env)) };
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
    let raw = env.raw();
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
                    // SAFETY: the reference lives as long as the group.
                    Ok(_) => slot = Some((unsafe { g.results.get(raw) }, *index)),
                    Err(_) => reject_group = g.deferred.take(),
                }
                if g.remaining == 0 {
                    group_done = s.groups.remove(group);
                }
            }
        }
        (pending, group_done, slot, reject_group)
    };
    unsafe {
        if let (Some((array, index)), Ok(value)) = (slot, outcome) {
            sys::napi_set_element(raw, array, index, value);
            clear_exception(env);
        }
        if let (Some(d), Err(error)) = (reject_group, outcome) {
            d.reject(raw, error);
        }
    }
    unsafe {
        if let Some(g) = group_done {
            if let Some(d) = g.deferred {
                d.resolve(raw, g.results.get(raw));
            }
            g.results.delete(raw);
        }
        if let Settle::Single(deferred) = pending.settle {
            match outcome {
                Ok(value) => deferred.resolve(raw, value),
                Err(error) => deferred.reject(raw, error),
            }
        }
        if let Some(key) = pending.signal {
            unwatch_signal(env, state, key, id);
        }
        if let Some(callback) = pending.on_progress {
            let _ = call_progress(env, callback.get(raw), Stage::Done, 1.0);
            callback.delete(raw);
        }
        for r in [pending.data, pending.metadata].into_iter().flatten() {
            r.delete(raw);
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
    let raw = env.raw();
    {
        let s = state.borrow();
        for (key, watch) in &s.signals {
            let mut same = false;
            // SAFETY: JS-thread handles; strict equality runs no JS.
            unsafe { sys::napi_strict_equals(raw, watch.signal.get(raw), signal, &mut same) };
            if same {
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
    // SAFETY: live handles of this call; `signal` has addEventListener
    // (checked when the options were read). No borrow is held: it may run JS.
    unsafe {
        let mut add = ptr::null_mut();
        crate::js::errors::check_status(
            sys::napi_get_named_property(raw, signal, c"addEventListener".as_ptr(), &mut add),
            "signal.addEventListener",
        )?;
        let name = <&str as ToNapiValue>::to_napi_value(raw, "abort")?;
        let args = [name, listener.raw()];
        let mut ignored = ptr::null_mut();
        crate::js::errors::check_status(
            sys::napi_call_function(raw, signal, add, 2, args.as_ptr(), &mut ignored),
            "signal.addEventListener",
        )?;
        let watch = SignalWatch {
            signal: Persistent::new(raw, signal)?,
            listener: Persistent::new(raw, listener.raw())?,
            ids: targets,
        };
        let mut s = state.borrow_mut();
        s.next_signal += 1;
        let key = s.next_signal;
        s.signals.insert(key, watch);
        Ok(key)
    }
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
        let raw = env.raw();
        // SAFETY: JS-thread handles owned by the watch, deleted once.
        unsafe {
            remove_abort_listener(env, watch.signal.get(raw), watch.listener.get(raw));
            watch.signal.delete(raw);
            watch.listener.delete(raw);
        }
    }
}

unsafe fn remove_abort_listener(env: &Env, signal: sys::napi_value, listener: sys::napi_value) {
    let raw = env.raw();
    let mut remove = ptr::null_mut();
    if sys::napi_get_named_property(raw, signal, c"removeEventListener".as_ptr(), &mut remove)
        != sys::Status::napi_ok
    {
        return;
    }
    let name = <&str as ToNapiValue>::to_napi_value(raw, "abort").unwrap_or(ptr::null_mut());
    let mut result = ptr::null_mut();
    let args = [name, listener];
    sys::napi_call_function(raw, signal, remove, 2, args.as_ptr(), &mut result);
    clear_exception(env);
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
                        .map(|c| unsafe { c.get(env.raw()) })
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
            s.listeners
                .iter()
                .map(|(_, l)| unsafe { l.get(env.raw()) })
                .collect()
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
            unsafe { w.resolve(env.raw(), undefined(env)) };
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
                .map(|p| unsafe { p.get(env.raw()) })
                .ok_or_else(|| napi::Error::from_reason("processor unregistered"))?;
            let get = |r: &Option<Persistent>| r.as_ref().map(|r| unsafe { r.get(env.raw()) });
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
    let mut result = ptr::null_mut();
    let args = [items, resources];
    unsafe {
        sys::napi_call_function(
            env.raw(),
            undefined(env),
            processor,
            2,
            args.as_ptr(),
            &mut result,
        )
    };
    if let Some(error) = clear_exception(env) {
        finish_batch(env, state, batch, &ids, Err(error));
        return;
    }
    let mut is_promise = false;
    unsafe { sys::napi_is_promise(env.raw(), result, &mut is_promise) };
    if !is_promise {
        finish_batch(env, state, batch, &ids, Ok(result));
        return;
    }
    let ids = Rc::new(ids);
    let attached = (|| -> Result<()> {
        let on_ok = batch_handler(env, state, batch, ids.clone(), true)?;
        let on_err = batch_handler(env, state, batch, ids.clone(), false)?;
        let mut then = ptr::null_mut();
        unsafe {
            sys::napi_get_named_property(env.raw(), result, c"then".as_ptr(), &mut then);
            let args = [on_ok.raw(), on_err.raw()];
            let mut ignored = ptr::null_mut();
            sys::napi_call_function(env.raw(), result, then, 2, args.as_ptr(), &mut ignored);
        }
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
            .map(|c| unsafe { c.get(env.raw()) })
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
    let raw = env.raw();
    let results: std::result::Result<Vec<sys::napi_value>, sys::napi_value> = match outcome {
        Err(cause) => Err(wrap_cause(
            env,
            "E_PROCESSOR_FAILED",
            "the processor threw or rejected",
            cause,
        )),
        Ok(value) => {
            let mut is_array = false;
            unsafe { sys::napi_is_array(raw, value, &mut is_array) };
            let mut len = 0u32;
            if is_array {
                unsafe { sys::napi_get_array_length(raw, value, &mut len) };
            }
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
                Ok((0..len)
                    .map(|i| {
                        let mut element = ptr::null_mut();
                        unsafe { sys::napi_get_element(raw, value, i, &mut element) };
                        element
                    })
                    .collect())
            }
        }
    };
    let outcomes: Vec<std::result::Result<sys::napi_value, sys::napi_value>> = match results {
        Ok(values) => {
            let promised = values.iter().any(|v| {
                let mut is_promise = false;
                // SAFETY: a live handle of this callback.
                unsafe { sys::napi_is_promise(raw, *v, &mut is_promise) };
                is_promise
            });
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
    let raw = env.raw();
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
                let outcomes = (0..handler_ids.len() as u32)
                    .map(|i| -> Result<_> {
                        // SAFETY: allSettled's array of { status, value | reason }.
                        unsafe {
                            let mut entry = ptr::null_mut();
                            sys::napi_get_element(env.raw(), settled, i, &mut entry);
                            let field = |name: &std::ffi::CStr| {
                                let mut v = ptr::null_mut();
                                sys::napi_get_named_property(
                                    env.raw(),
                                    entry,
                                    name.as_ptr(),
                                    &mut v,
                                );
                                v
                            };
                            let mut fulfilled = false;
                            let status = field(c"status");
                            let expected =
                                <&str as ToNapiValue>::to_napi_value(env.raw(), "fulfilled")?;
                            sys::napi_strict_equals(env.raw(), status, expected, &mut fulfilled);
                            Ok(if fulfilled {
                                Ok(field(c"value"))
                            } else {
                                Err(field(c"reason"))
                            })
                        }
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
        // SAFETY: live handles of this callback; the global Promise is Node's own.
        unsafe {
            let mut global = ptr::null_mut();
            sys::napi_get_global(raw, &mut global);
            let mut promise_class = ptr::null_mut();
            sys::napi_get_named_property(raw, global, c"Promise".as_ptr(), &mut promise_class);
            let mut all_settled = ptr::null_mut();
            sys::napi_get_named_property(
                raw,
                promise_class,
                c"allSettled".as_ptr(),
                &mut all_settled,
            );
            let mut combined = ptr::null_mut();
            crate::js::errors::check_status(
                sys::napi_call_function(
                    raw,
                    promise_class,
                    all_settled,
                    1,
                    [array.raw()].as_ptr(),
                    &mut combined,
                ),
                "Promise.allSettled",
            )?;
            let mut then = ptr::null_mut();
            sys::napi_get_named_property(raw, combined, c"then".as_ptr(), &mut then);
            let mut ignored = ptr::null_mut();
            crate::js::errors::check_status(
                sys::napi_call_function(
                    raw,
                    combined,
                    then,
                    1,
                    [on_settled.raw()].as_ptr(),
                    &mut ignored,
                ),
                "then",
            )?;
        }
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

fn wrap_cause(env: &Env, code: &str, message: &str, cause: sys::napi_value) -> sys::napi_value {
    let raw = env.raw();
    let detail = unsafe {
        let mut text = ptr::null_mut();
        let mut message_value = ptr::null_mut();
        if sys::napi_get_named_property(raw, cause, c"message".as_ptr(), &mut message_value)
            == sys::Status::napi_ok
        {
            text = message_value;
        }
        let mut buf = vec![0u8; 512];
        let mut len = 0usize;
        if !text.is_null()
            && sys::napi_get_value_string_utf8(
                raw,
                text,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut len,
            ) == sys::Status::napi_ok
        {
            String::from_utf8_lossy(&buf[..len]).into_owned()
        } else {
            String::new()
        }
    };
    clear_exception(env);
    let full = if detail.is_empty() {
        message.to_string()
    } else {
        format!("{message}: {detail}")
    };
    let error = error_value(env, ErrorClass::Error, code, &full);
    unsafe { sys::napi_set_named_property(raw, error, c"cause".as_ptr(), cause) };
    error
}

/// Rejects an item that never reached the core (aborted before queueing,
/// overflow dropped by a forced close).
pub fn reject_now(env: &Env, state: &State, id: ItemId, error: &ItemError) {
    settle(env, state, id, Err(error_to_js(env, error)));
}
