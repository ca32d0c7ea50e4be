//! Batches run by a JS processor: calling it with the items and a resource
//! strategy, and settling each item with what it returns, throws or rejects
//! with (results may be promises: the batch ends when all have settled).

use std::rc::Rc;

use napi::bindgen_prelude::{Function, JsObjectValue, Object};
use napi::{sys, Env, JsValue, Result};

use super::drain::{after_change, report_progress};
use super::state::{settle, StateCell};
use crate::js::errors::{error_value, range_error, OUT_OF_RANGE};
use crate::js::napi::Js;
use crate::js::raw::{clear_exception, undefined, Persistent};
use crate::js::value::RawValue;
use gama_core::batch::{ItemId, OpName, ResourceStrategy, Stage};
use gama_core::error::ErrorClass;

/// Calls the JS processor of `op` with a batch and settles its items with
/// what it returns (or throws, or rejects with).
pub fn run_js_batch(
    env: &Env,
    state: &StateCell,
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
                    s.pending.get(id).map(|p| match p.extras.as_deref() {
                        Some(e) => (
                            e.user_id.clone(),
                            get(&e.data),
                            get(&e.metadata),
                            e.signal
                                .or_else(|| s.group_signal(*id))
                                .and_then(|key| s.signal_value(env, key)),
                        ),
                        None => (None, None, None, None),
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
                            if let Some(state) = weak.upgrade() {
                                report_progress(
                                    ctx.env,
                                    &state,
                                    id,
                                    Stage::Running,
                                    fraction as f32,
                                );
                            }
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
    state: &StateCell,
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

/// Ends a JS batch: results (an array of one result per item) or an error.
fn finish_batch(
    env: &Env,
    state: &StateCell,
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
    state: &StateCell,
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
fn await_results(
    env: &Env,
    state: &StateCell,
    batch: u64,
    ids: &[ItemId],
    values: &[sys::napi_value],
) {
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
