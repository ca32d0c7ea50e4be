//! The drain: on the JS thread, turns the core's events into settled
//! promises (urgent items first), progress calls and JS processor batches,
//! then tells listeners and lets go of the event loop when idle.

use napi::bindgen_prelude::{JsObjectValue, Object};
use napi::{sys, Env, JsValue, Result};

use super::convert::{error_to_js, feature_objects, output_to_js, Made, NumberObjects};
use super::js_batch::run_js_batch;
use super::state::{settle, settle_placed, StateCell};
use crate::js::errors::error_value;
use crate::js::raw::{call_reporting, clear_exception, undefined};
use gama_core::batch::{settle_order, Event, ItemId, Processor, Stage};
use gama_core::error::ErrorClass;

/// Calls `callback({ stage, progress })`; an exception it throws is reported
/// as an uncaught exception, as an EventEmitter listener's would be.
pub fn call_progress(
    env: &Env,
    callback: sys::napi_value,
    stage: Stage,
    fraction: f32,
) -> Result<()> {
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
pub fn drain(env: &Env, state: &StateCell) {
    let events = {
        let inbox = state.borrow().inbox.clone();
        let mut inbox = inbox.lock();
        std::mem::take(&mut *inbox)
    };
    let mut events = {
        let s = state.borrow();
        settle_order(events, |id| s.priority_of(id).unwrap_or(u8::MAX))
    };
    let handled = !events.is_empty();
    // MEASURE and ANALYZE results are made in one JS call per kind.
    // Should that call fail, each is made by N-API calls instead.
    let slots = state.borrow().slots(env, &events);
    let mut made = NumberObjects::of(env)
        .and_then(|n| {
            n.of_events(env, &events, &slots)
                .inspect_err(|_| {
                    clear_exception(env);
                })
                .ok()
        })
        .unwrap_or_else(|| vec![None; events.len()]);
    // Feature results too, in one call (taking their values out of the events).
    feature_objects(env, &mut events, &mut made);
    for (event, made) in events.into_iter().zip(made) {
        match event {
            Event::Done { id, result } => {
                let outcome = match (result, made) {
                    (Ok(_), Some(Made::Placed)) => {
                        settle_placed(env, state, id);
                        continue;
                    }
                    (Ok(_), Some(Made::Value(object))) => Ok(object),
                    (Ok(_), Some(Made::Failed(error))) => Err(error),
                    (Ok(output), None) => output_to_js(env, output)
                        .map_err(|e| error_value(env, ErrorClass::Error, "E_CONVERT", &e.reason)),
                    (Err(e), _) => Err(error_to_js(env, &e)),
                };
                settle(env, state, id, outcome);
            }
            Event::Progress {
                id,
                stage,
                fraction,
            } => report_progress(env, state, id, stage, fraction),
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

/// Calls item `id`'s `onProgress`, if it has one and is still pending.
pub fn report_progress(env: &Env, state: &StateCell, id: ItemId, stage: Stage, fraction: f32) {
    let callback = {
        let s = state.borrow();
        s.pending
            .get(&id)
            .and_then(|p| p.extras.as_ref()?.on_progress.as_ref())
            .map(|c| c.get(env))
    };
    if let Some(callback) = callback {
        let _ = call_progress(env, callback, stage, fraction);
    }
}

/// Tells progress listeners, resolves idle waiters and lets go of the event
/// loop when nothing is pending.
pub fn after_change(env: &Env, state: &StateCell, changed: bool) {
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
    if s.is_idle() {
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
