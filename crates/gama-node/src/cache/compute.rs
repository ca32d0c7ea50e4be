//! `getOrCompute` and `warm`: user callbacks whose results fill the cache.
//!
//! Both run entirely on the JS thread by chaining onto the callbacks' own
//! promises, so nothing here holds the event loop open: a compute or loader
//! that never settles leaves a pending promise, as plain JS would, and Node
//! still exits when nothing else is left to do.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Instant;

use hashbrown::HashMap;
use napi::bindgen_prelude::{CallbackContext, Function, PromiseRaw, Unknown};
use napi::{Env, Error, JsValue, Result};

use super::remote::Tier;
use super::{js_value, WarmFailure, WarmResult};
use gama_core::cache::{EntryOptions, FeatureCache};
use gama_core::error::ErrorClass;

use crate::js::errors::error_value;
use crate::js::napi::{to_value, unknown, Js};
use crate::js::raw::{Deferred, Persistent};
use crate::js::value::RawValue;

fn is_promise(env: &Env, value: &Unknown) -> Result<bool> {
    Js::new(env).is_promise(value.raw())
}

/// `value`, known to be a promise, as one to chain onto.
fn as_promise(value: Unknown<'_>) -> Result<PromiseRaw<'_, Unknown<'_>>> {
    // SAFETY: the callers checked that `value` is a promise.
    unsafe { value.cast() }
}

/// Promises of `getOrCompute` calls in flight, by key (JS thread only).
#[derive(Clone, Default)]
pub struct Flights {
    pending: Rc<RefCell<HashMap<String, Persistent>>>,
}

impl Flights {
    /// The promise in flight for `key`, if any.
    pub fn get<'env>(&self, env: &'env Env, key: &str) -> Option<Unknown<'env>> {
        let pending = self.pending.borrow();
        Some(unknown(env, pending.get(key)?.get(env)))
    }

    fn start(&self, env: &Env, key: &str, promise: &Unknown) -> Result<()> {
        let reference = Persistent::new(env, promise.raw())?;
        if let Some(old) = self.pending.borrow_mut().insert(key.to_string(), reference) {
            old.delete(env);
        }
        Ok(())
    }

    fn finish(&self, env: &Env, key: &str) {
        if let Some(reference) = self.pending.borrow_mut().remove(key) {
            reference.delete(env);
        }
    }
}

/// As `get_or_compute`, looking in Redis before computing: a value found
/// there has filled L1 already, so it is not stored (nor written back).
pub fn get_or_compute_tiered<'env>(
    env: &'env Env,
    tier: &Tier,
    cache: &FeatureCache,
    flights: &Flights,
    key: String,
    compute: Function<(), Unknown>,
    options: EntryOptions,
) -> Result<Unknown<'env>> {
    if let Some(shared) = flights.get(env, &key) {
        return Ok(shared);
    }
    let compute = Persistent::new(env, compute.raw())?;
    // Shared with getAsync callers of the same key; undefined is a miss
    // (undefined is never stored).
    let looked_up = tier.get(env, cache, key.clone())?;
    let found = Rc::new(Cell::new(false));
    let hit = Rc::clone(&found);
    let chained = as_promise(unknown(env, looked_up))?.then(
        move |ctx: CallbackContext<Unknown>| -> Result<RawValue> {
            let f = compute.get(&ctx.env);
            compute.delete(&ctx.env);
            if ctx.value.get_type()? != napi::ValueType::Undefined {
                hit.set(true);
                return Ok(RawValue(ctx.value.raw()));
            }
            let js = Js::new(&ctx.env);
            match js.call(js.undefined()?, f, &[]) {
                Ok(v) => Ok(RawValue(v)),
                // Adopting a rejected promise rejects with what compute threw.
                Err(e) => {
                    let rejected = match js.take_exception() {
                        Some(thrown) => {
                            PromiseRaw::<()>::reject(&ctx.env, unknown(&ctx.env, thrown))?
                        }
                        None => PromiseRaw::<()>::reject(&ctx.env, e)?,
                    };
                    Ok(RawValue(rejected.raw()))
                }
            }
        },
    )?;
    let chained = unknown(env, chained.raw());
    let tiered = Tiered {
        tier: tier.clone(),
        found,
    };
    get_or_compute(
        env,
        cache,
        flights,
        key,
        || Ok(chained),
        options,
        Some(tiered),
    )
}

/// What `get_or_compute` needs of a Redis tier.
pub struct Tiered {
    tier: Tier,
    /// Set when Redis had the value (it filled L1; nothing to store).
    found: Rc<Cell<bool>>,
}

/// The cached value of `key`, or what `compute()` gives, shared by
/// concurrent callers (see `AudioFeatureCache::get_or_compute`); with a
/// tier, not stored when Redis had it.
pub fn get_or_compute<'env>(
    env: &'env Env,
    cache: &FeatureCache,
    flights: &Flights,
    key: String,
    compute: impl FnOnce() -> Result<Unknown<'env>>,
    mut options: EntryOptions,
    tiered: Option<Tiered>,
) -> Result<Unknown<'env>> {
    if let Some(shared) = flights.get(env, &key) {
        return Ok(shared);
    }
    let started = Instant::now();
    let produced = match compute() {
        Ok(v) => v,
        Err(e) => return PromiseRaw::<()>::reject(env, e).map(|p| unknown(env, p.raw())),
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
        return Ok(unknown(env, settled));
    }
    let promise = as_promise(produced)?;
    let (on_ok, on_err) = (flights.clone(), flights.clone());
    let (ok_key, err_key) = (key.clone(), key.clone());
    let cache = cache.clone();
    let settled = promise.then(move |ctx: CallbackContext<Unknown>| {
        on_ok.finish(&ctx.env, &ok_key);
        if tiered.as_ref().is_some_and(|t| t.found.get()) {
            return Ok(RawValue(ctx.value.raw()));
        }
        match js_value(&ctx.env, ctx.value) {
            Ok(value) => {
                options.compute_cost = started.elapsed();
                // A value too large to cache is still the caller's result.
                let _ = cache.insert(&ok_key, value, options);
                if let Some(t) = &tiered {
                    t.tier.wrote(&ctx.env);
                }
                Ok(RawValue(ctx.value.raw()))
            }
            // Adopting a rejected promise keeps the TypeError's class.
            Err(refused) => {
                let rejected = PromiseRaw::<()>::reject(&ctx.env, refused)?;
                Ok(RawValue(rejected.raw()))
            }
        }
    })?;
    let shared = settled.catch(move |ctx: CallbackContext<Unknown>| -> Result<RawValue> {
        on_err.finish(&ctx.env, &err_key);
        // Re-reject with the very value the compute rejected with.
        let rejected = PromiseRaw::<()>::reject(&ctx.env, ctx.value)?;
        Ok(RawValue(rejected.raw()))
    })?;
    let shared = unknown(env, shared.raw());
    flights.start(env, &key, &shared)?;
    Ok(shared)
}

/// Progress of one `warm` call.
struct Warm {
    cache: FeatureCache,
    /// The Redis tier, told of every value stored.
    tier: Option<Tier>,
    /// The loader, until the last load ends.
    loader: Option<Persistent>,
    options: EntryOptions,
    queue: VecDeque<String>,
    concurrency: usize,
    active: usize,
    loaded: u32,
    skipped: u32,
    from_redis: u32,
    errors: Vec<WarmFailure>,
    started: Instant,
    /// Settled once, when the last load ends.
    deferred: Option<Deferred>,
}

type WarmState = Rc<RefCell<Warm>>;

/// Starts loading `keys` not yet cached with `loader`, `concurrency` at a
/// time, after one Redis lookup of them all when the cache has a tier; the
/// returned promise resolves with what was done.
pub fn warm<'env>(
    env: &'env Env,
    cache: &FeatureCache,
    tier: Option<&Tier>,
    keys: Vec<String>,
    loader: Function<String, Unknown>,
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
    let (deferred, promise) = Deferred::new(env)?;
    let state = Rc::new(RefCell::new(Warm {
        cache: cache.clone(),
        tier: tier.cloned(),
        loader: Some(Persistent::new(env, loader.raw())?),
        options,
        skipped: (total - queue.len()) as u32,
        queue,
        concurrency,
        active: 0,
        loaded: 0,
        from_redis: 0,
        errors: Vec::new(),
        started,
        deferred: Some(deferred),
    }));
    let wanted: Vec<String> = state.borrow().queue.iter().cloned().collect();
    match tier {
        Some(tier) if !wanted.is_empty() => {
            let state = Rc::clone(&state);
            tier.get_then(
                env,
                cache,
                wanted,
                Box::new(move |env, found| {
                    let mut s = state.borrow_mut();
                    let before = s.queue.len();
                    let mut found = found.into_iter();
                    s.queue.retain(|_| found.next().flatten().is_none());
                    s.from_redis = (before - s.queue.len()) as u32;
                    drop(s);
                    pump(env, &state);
                }),
            );
        }
        _ => pump(env, &state),
    }
    Ok(unknown(env, promise))
}

/// Stores a loaded value or records why it failed.
fn record(
    env: &Env,
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
        Ok(()) => {
            s.loaded += 1;
            if let Some(tier) = &s.tier {
                tier.wrote(env);
            }
        }
        Err(message) => s.errors.push(WarmFailure { key, message }),
    }
}

/// Calls the loader for `key`. A value given directly is recorded now; a
/// promise is recorded when it settles (and starts the next loads). Returns
/// whether the load is still pending.
fn start_load(env: &Env, state: &WarmState, key: &str) -> Result<bool> {
    let js = Js::new(env);
    let loader = match &state.borrow().loader {
        Some(loader) => loader.get(env),
        None => return Ok(false),
    };
    let produced = match js.call(js.undefined()?, loader, &[js.string(key)?]) {
        Ok(value) => unknown(env, value),
        // A loader that throws fails its key with what it threw.
        Err(e) => {
            let reason = match js.take_exception() {
                Some(thrown) => Error::from(unknown(env, thrown)).reason.clone(),
                None => e.reason.clone(),
            };
            record(env, state, key.to_string(), Err(reason));
            return Ok(false);
        }
    };
    if !is_promise(env, &produced)? {
        record(
            env,
            state,
            key.to_string(),
            js_value(env, produced).map_err(|e| e.reason.clone()),
        );
        return Ok(false);
    }
    let promise = as_promise(produced)?;
    let (on_ok, on_err) = (Rc::clone(state), Rc::clone(state));
    let (ok_key, err_key) = (key.to_string(), key.to_string());
    promise
        .then(move |ctx: CallbackContext<Unknown>| {
            record(
                &ctx.env,
                &on_ok,
                ok_key,
                js_value(&ctx.env, ctx.value).map_err(|e| e.reason.clone()),
            );
            finish_load(&ctx.env, &on_ok);
            Ok(())
        })?
        .catch(move |ctx: CallbackContext<Unknown>| {
            record(
                &ctx.env,
                &on_err,
                err_key,
                Err(Error::from(ctx.value).reason.clone()),
            );
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
                record(env, state, key, Err(e.reason.clone()));
                state.borrow_mut().active -= 1;
            }
        }
    }
    let mut s = state.borrow_mut();
    let result = WarmResult {
        enabled: true,
        loaded: s.loaded,
        skipped: s.skipped,
        from_redis: s.from_redis,
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
    // The queue is empty and nothing is active: this is the end (once).
    if let Some(loader) = s.loader.take() {
        loader.delete(env);
    }
    if let Some(deferred) = s.deferred.take() {
        match to_value(env, result) {
            Ok(value) => deferred.resolve(env, value),
            Err(e) => deferred.reject(
                env,
                error_value(env, ErrorClass::Error, "E_CONVERT", &e.reason),
            ),
        }
    }
}
