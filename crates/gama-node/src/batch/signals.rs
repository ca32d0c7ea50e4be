//! AbortSignal wiring: one `abort` listener per signal, shared by every
//! pending item given it, removed with its last item.

use std::cell::RefCell;
use std::rc::Rc;

use hashbrown::HashSet;
use napi::bindgen_prelude::Function;
use napi::{sys, Env, JsValue, Result};

use super::state::{SignalWatch, StateCell};
use crate::js::napi::Js;
use crate::js::raw::{clear_exception, Persistent};
use gama_core::batch::ItemId;

/// Cancels `ids` when `signal` aborts, through the signal's one listener
/// (added on first use, shared after); returns the watch's key.
pub fn watch_signal(
    env: &Env,
    state: &StateCell,
    signal: sys::napi_value,
    ids: &[ItemId],
    cancel: fn(&Env, &StateCell, ItemId) -> bool,
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
pub fn unwatch_signal(env: &Env, state: &StateCell, key: u64, id: ItemId) {
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
