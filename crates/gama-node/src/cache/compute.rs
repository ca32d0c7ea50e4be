//! `getOrCompute` and `warm`: user callbacks whose results fill the cache.
//!
//! Both run entirely on the JS thread by chaining onto the callbacks' own
//! promises, so nothing here holds the event loop open: a compute or loader
//! that never settles leaves a pending promise, as plain JS would, and Node
//! still exits when nothing else is left to do.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::ptr;
use std::rc::Rc;
use std::time::Instant;

use hashbrown::HashMap;
use napi::bindgen_prelude::{CallbackContext, FunctionRef, PromiseRaw, ToNapiValue, Unknown};
use napi::{sys, Env, Error, JsValue, Result};

use super::{js_value, WarmFailure, WarmResult};
use gama_core::cache::{EntryOptions, FeatureCache};

use crate::js::errors::check_status as check;

fn is_promise(env: &Env, value: &Unknown) -> Result<bool> {
    let mut result = false;
    check(
        unsafe { sys::napi_is_promise(env.raw(), value.raw(), &mut result) },
        "napi_is_promise",
    )?;
    Ok(result)
}

/// Promises of `getOrCompute` calls in flight, by key (JS thread only).
#[derive(Clone, Default)]
pub struct Flights {
    pending: Rc<RefCell<HashMap<String, sys::napi_ref>>>,
}

impl Flights {
    /// The promise in flight for `key`, if any.
    pub fn get<'env>(&self, env: &'env Env, key: &str) -> Result<Option<Unknown<'env>>> {
        let Some(&reference) = self.pending.borrow().get(key) else {
            return Ok(None);
        };
        let mut value = ptr::null_mut();
        check(
            unsafe { sys::napi_get_reference_value(env.raw(), reference, &mut value) },
            "napi_get_reference_value",
        )?;
        Ok(Some(unsafe {
            Unknown::from_raw_unchecked(env.raw(), value)
        }))
    }

    fn start(&self, env: &Env, key: &str, promise: &Unknown) -> Result<()> {
        let mut reference = ptr::null_mut();
        check(
            unsafe { sys::napi_create_reference(env.raw(), promise.raw(), 1, &mut reference) },
            "napi_create_reference",
        )?;
        self.pending.borrow_mut().insert(key.to_string(), reference);
        Ok(())
    }

    fn finish(&self, env: &Env, key: &str) {
        if let Some(reference) = self.pending.borrow_mut().remove(key) {
            unsafe { sys::napi_delete_reference(env.raw(), reference) };
        }
    }
}

/// The cached value of `key`, or what `compute()` gives, shared by
/// concurrent callers (see `AudioFeatureCache::get_or_compute`).
pub fn get_or_compute<'env>(
    env: &'env Env,
    cache: &FeatureCache,
    flights: &Flights,
    key: String,
    compute: impl FnOnce() -> Result<Unknown<'env>>,
    mut options: EntryOptions,
) -> Result<Unknown<'env>> {
    if let Some(shared) = flights.get(env, &key)? {
        return Ok(shared);
    }
    let started = Instant::now();
    let produced = match compute() {
        Ok(v) => v,
        Err(e) => {
            return PromiseRaw::<()>::reject(env, e)
                .map(|p| unsafe { Unknown::from_raw_unchecked(env.raw(), p.raw()) })
        }
    };
    if !is_promise(env, &produced)? {
        let settled = match js_value(env, produced) {
            Ok(value) => {
                options.compute_cost = started.elapsed();
                // A value too large to cache is still the caller's result.
                let _ = cache.insert(&key, value, options);
                PromiseRaw::resolve(env, produced)?.raw()
            }
            Err(e) => PromiseRaw::<()>::reject(env, e)?.raw(),
        };
        return Ok(unsafe { Unknown::from_raw_unchecked(env.raw(), settled) });
    }
    let promise: PromiseRaw<Unknown> = unsafe { produced.cast()? };
    let (on_ok, on_err) = (flights.clone(), flights.clone());
    let (ok_key, err_key) = (key.clone(), key.clone());
    let cache = cache.clone();
    let stored = promise.then(move |ctx: CallbackContext<Unknown>| {
        on_ok.finish(&ctx.env, &ok_key);
        match js_value(&ctx.env, ctx.value) {
            Ok(value) => {
                options.compute_cost = started.elapsed();
                // A value too large to cache is still the caller's result.
                let _ = cache.insert(&ok_key, value, options);
                Ok(ctx.value)
            }
            // Adopting a rejected promise keeps the TypeError's class.
            Err(refused) => {
                let rejected = PromiseRaw::<()>::reject(&ctx.env, refused)?;
                Ok(unsafe { Unknown::from_raw_unchecked(ctx.env.raw(), rejected.raw()) })
            }
        }
    })?;
    let shared = stored.catch(move |ctx: CallbackContext<Unknown>| -> Result<Unknown> {
        on_err.finish(&ctx.env, &err_key);
        // Re-reject with the very value the compute rejected with.
        let rejected = PromiseRaw::<()>::reject(&ctx.env, ctx.value)?;
        Ok(unsafe { Unknown::from_raw_unchecked(ctx.env.raw(), rejected.raw()) })
    })?;
    let shared = unsafe { Unknown::from_raw_unchecked(env.raw(), shared.raw()) };
    flights.start(env, &key, &shared)?;
    Ok(shared)
}

/// Progress of one `warm` call.
struct Warm {
    cache: FeatureCache,
    loader: FunctionRef<String, Unknown<'static>>,
    options: EntryOptions,
    queue: VecDeque<String>,
    concurrency: usize,
    active: usize,
    loaded: u32,
    skipped: u32,
    errors: Vec<WarmFailure>,
    started: Instant,
    deferred: sys::napi_deferred,
}

type WarmState = Rc<RefCell<Warm>>;

/// Starts loading `keys` not yet cached with `loader`, `concurrency` at a
/// time; the returned promise resolves with what was done.
pub fn warm<'env>(
    env: &'env Env,
    cache: &FeatureCache,
    keys: Vec<String>,
    loader: FunctionRef<String, Unknown<'static>>,
    concurrency: usize,
    options: EntryOptions,
) -> Result<Unknown<'env>> {
    let started = Instant::now();
    let mut unique = hashbrown::HashSet::new();
    let keys: Vec<String> = keys
        .into_iter()
        .filter(|k| unique.insert(k.clone()))
        .collect();
    let total = keys.len();
    let queue: VecDeque<String> = keys.into_iter().filter(|k| !cache.contains(k)).collect();
    let mut deferred = ptr::null_mut();
    let mut promise = ptr::null_mut();
    check(
        unsafe { sys::napi_create_promise(env.raw(), &mut deferred, &mut promise) },
        "napi_create_promise",
    )?;
    let state = Rc::new(RefCell::new(Warm {
        cache: cache.clone(),
        loader,
        options,
        skipped: (total - queue.len()) as u32,
        queue,
        concurrency,
        active: 0,
        loaded: 0,
        errors: Vec::new(),
        started,
        deferred,
    }));
    pump(env, &state);
    Ok(unsafe { Unknown::from_raw_unchecked(env.raw(), promise) })
}

/// Stores a loaded value or records why it failed.
fn record(
    state: &WarmState,
    key: String,
    outcome: std::result::Result<gama_core::cache::CacheValue, String>,
) {
    let mut s = state.borrow_mut();
    let stored = outcome.and_then(|value| {
        let options = s.options.clone();
        s.cache
            .insert(&key, value, options)
            .map_err(|e| e.to_string())
    });
    match stored {
        Ok(()) => s.loaded += 1,
        Err(message) => s.errors.push(WarmFailure { key, message }),
    }
}

/// Calls the loader for `key`. A value given directly is recorded now; a
/// promise is recorded when it settles (and starts the next loads). Returns
/// whether the load is still pending.
fn start_load(env: &Env, state: &WarmState, key: &str) -> Result<bool> {
    let produced = state
        .borrow()
        .loader
        .borrow_back(env)?
        .call(key.to_string())?;
    if !is_promise(env, &produced)? {
        record(
            state,
            key.to_string(),
            js_value(env, produced).map_err(|e| e.reason.clone()),
        );
        return Ok(false);
    }
    let promise: PromiseRaw<Unknown> = unsafe { produced.cast()? };
    let (on_ok, on_err) = (Rc::clone(state), Rc::clone(state));
    let (ok_key, err_key) = (key.to_string(), key.to_string());
    promise
        .then(move |ctx: CallbackContext<Unknown>| {
            record(
                &on_ok,
                ok_key,
                js_value(&ctx.env, ctx.value).map_err(|e| e.reason.clone()),
            );
            finish_load(&ctx.env, &on_ok);
            Ok(())
        })?
        .catch(move |ctx: CallbackContext<Unknown>| {
            record(&on_err, err_key, Err(Error::from(ctx.value).reason.clone()));
            finish_load(&ctx.env, &on_err);
            Ok(())
        })?;
    Ok(true)
}

/// One pending load ended: start the next ones.
fn finish_load(env: &Env, state: &WarmState) {
    state.borrow_mut().active -= 1;
    pump(env, state);
}

/// Starts loads while there is room, and resolves the promise when all are
/// done. Every started load ends in `record`, so the promise always settles.
fn pump(env: &Env, state: &WarmState) {
    loop {
        let key = {
            let mut s = state.borrow_mut();
            if s.active >= s.concurrency {
                return;
            }
            match s.queue.pop_front() {
                Some(key) => {
                    s.active += 1;
                    key
                }
                None if s.active == 0 => break,
                None => return,
            }
        };
        match start_load(env, state, &key) {
            Ok(true) => {}
            Ok(false) => state.borrow_mut().active -= 1,
            Err(e) => {
                record(state, key, Err(e.reason.clone()));
                state.borrow_mut().active -= 1;
            }
        }
    }
    let s = state.borrow();
    let result = WarmResult {
        enabled: true,
        loaded: s.loaded,
        skipped: s.skipped,
        failed: s.errors.len() as u32,
        errors: s
            .errors
            .iter()
            .map(|e| WarmFailure {
                key: e.key.clone(),
                message: e.message.clone(),
            })
            .collect(),
        duration_ms: s.started.elapsed().as_secs_f64() * 1000.0,
    };
    // SAFETY: on the JS thread of `env`; the deferred is settled exactly once,
    // since the queue is empty and nothing is active from here on.
    unsafe {
        if let Ok(value) = WarmResult::to_napi_value(env.raw(), result) {
            sys::napi_resolve_deferred(env.raw(), s.deferred, value);
        }
    }
}
