//! The JS side of a cache's Redis tier: the `redis` option, promises of
//! lookups, flushes and the close settled from one mailbox, `onError`, and holding
//! Node's event loop open while Redis work is outstanding (every round
//! trip is bounded by `timeoutMs`, so the hold always ends).
//!
//! Lookups made in one turn of the JS thread are gathered and sent
//! together from a microtask, so `Promise.all(keys.map(getAsync))`, or
//! many callers resuming after one drain, share MGETs, not one each.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hashbrown::HashMap;
use napi::bindgen_prelude::Function;
use napi::{sys, Env, JsValue, Result};
use parking_lot::Mutex;

use crate::js::errors::{coded_value, type_error, INVALID_ARG_TYPE};
use crate::js::fields::Fields;
use crate::js::mailbox::{hold_loop, Inbox, Mailbox};
use crate::js::napi::Js;
use crate::js::raw::{call_reporting, Deferred, Persistent};
use crate::js::value::to_js;
use gama_core::cache::remote::{
    Compression, Events, Lookup, Remote, RemoteConfig, RemoteError, RemoteEvent,
};
use gama_core::cache::{CacheValue, FeatureCache};

/// Keys of the `redis` option.
const KNOWN: [&str; 9] = [
    "url",
    "keyPrefix",
    "ttl",
    "compressionThreshold",
    "compression",
    "timeoutMs",
    "cluster",
    "maxValueBytes",
    "onError",
];

/// What the tier's thread tells the JS thread.
pub enum TierEvent {
    /// A lookup ended: one value or `None` per key.
    Read(u64, Vec<Option<CacheValue>>),
    /// A flush (or the close) ended.
    Flushed(u64),
    /// An error, for `onError`.
    Error(RemoteError),
    /// No Redis work is queued.
    Idle,
}

/// Called on the JS thread with a lookup's values.
pub type Then = Box<dyn FnOnce(&Env, Vec<Option<CacheValue>>)>;

/// Who waits for a request.
enum Waiting {
    /// `getAsync` callers of one key (they share the lookup).
    Get(String, Vec<Deferred>),
    /// A `flush` caller.
    Flush(Deferred),
    /// The `close` caller.
    Close(Deferred),
    /// Native code on the JS thread (`getOrCompute`, `warm`).
    Then(Then),
}

/// The JS thread's side of one cache's tier (clones share it).
#[derive(Clone)]
pub struct Tier {
    mailbox: Arc<Mailbox<TierEvent>>,
    state: Rc<RefCell<Waiters>>,
}

struct Waiters {
    next: u64,
    waiting: HashMap<u64, Waiting>,
    /// The lookup in flight for a key, shared by its `getAsync` callers.
    flights: HashMap<String, u64>,
    on_error: Option<Persistent>,
    inbox: Inbox<TierEvent>,
    tsfn: sys::napi_threadsafe_function,
    held: bool,
    /// Redis jobs the cache has queued and not finished (not the cache
    /// itself: that would keep it alive through the mailbox).
    pending: Option<Arc<AtomicU64>>,
    /// Lookups of this turn not yet sent: request ids and their keys.
    gathered: Vec<(u64, Vec<String>)>,
    /// The cache to send them through, while a send is scheduled (held
    /// only then: always, it would keep the cache alive through the mailbox).
    sender: Option<FeatureCache>,
}

/// Reads the `redis` option: the tier's settings and its `onError`.
pub fn read_options(env: &Env, o: &Fields) -> Result<Option<(RemoteConfig, Option<Persistent>)>> {
    let Some(r) = o.fields("redis", &KNOWN)? else {
        return Ok(None);
    };
    let url = r.string("url")?.ok_or_else(|| {
        type_error(
            env,
            INVALID_ARG_TYPE,
            "options.redis.url is required (e.g. 'redis://127.0.0.1:6379')",
        )
    })?;
    let mut config = RemoteConfig::new(url);
    if let Some(prefix) = r.string("keyPrefix")? {
        config.key_prefix = prefix;
    }
    if let Some(ttl) = r.millis("ttl")? {
        config.ttl = (!ttl.is_zero()).then_some(ttl);
    }
    if let Some(n) = r.integer("compressionThreshold", 0.0, 4_294_967_295.0)? {
        config.compression_threshold = n as usize;
    }
    if let Some(c) = r.choice(
        "compression",
        &[
            ("lz4", Compression::Lz4),
            ("zstd", Compression::Zstd),
            ("none", Compression::None),
        ],
    )? {
        config.compression = c;
    }
    if let Some(t) = r.integer("timeoutMs", 1.0, 600_000.0)? {
        config.timeout = Duration::from_millis(t);
    }
    if let Some(n) = r.integer("maxValueBytes", 1.0, 512.0 * 1024.0 * 1024.0)? {
        config.max_value_bytes = n as usize;
    }
    if let Some(cluster) = r.boolean("cluster")? {
        config.cluster = cluster;
    }
    let on_error = match r.value("onError")? {
        Some(f) if f.get_type()? == napi::ValueType::Function => {
            Some(Persistent::new(env, f.raw())?)
        }
        Some(_) => {
            return Err(type_error(
                env,
                INVALID_ARG_TYPE,
                "options.redis.onError must be a function",
            ))
        }
        None => None,
    };
    Ok(Some((config, on_error)))
}

impl Tier {
    /// A tier whose events settle promises on this env's JS thread; the
    /// second value is what the core calls from its thread.
    pub fn new(env: &Env, on_error: Option<Persistent>) -> Result<(Tier, Events)> {
        let inbox: Inbox<TierEvent> = Arc::new(Mutex::new(Vec::new()));
        let state = Rc::new(RefCell::new(Waiters {
            next: 0,
            waiting: HashMap::new(),
            flights: HashMap::new(),
            on_error,
            inbox: Arc::clone(&inbox),
            tsfn: std::ptr::null_mut(),
            held: false,
            pending: None,
            gathered: Vec::new(),
            sender: None,
        }));
        let drain_state = Rc::clone(&state);
        let mailbox = Arc::new(Mailbox::new(env, inbox, move |env| {
            drain(env, &drain_state)
        })?);
        state.borrow_mut().tsfn = mailbox.raw();
        let poster = Arc::clone(&mailbox);
        let events: Events = Arc::new(move |event| {
            poster.post_all([match event {
                RemoteEvent::Error(e) => TierEvent::Error(e),
                RemoteEvent::Idle => TierEvent::Idle,
            }])
        });
        Ok((Tier { mailbox, state }, events))
    }

    /// Binds the tier to the cache it serves (made after the tier).
    pub fn attach(&self, cache: &FeatureCache) {
        self.state.borrow_mut().pending = cache.remote().map(|r| r.pending_counter());
    }

    fn enqueue(&self, env: &Env, waiting: Waiting) -> u64 {
        let mut s = self.state.borrow_mut();
        let id = s.next;
        s.next += 1;
        s.waiting.insert(id, waiting);
        hold(env, &mut s, true);
        id
    }

    /// Queues a lookup for this turn's batch, scheduling its send first.
    fn lookup(&self, env: &Env, cache: &FeatureCache, id: u64, keys: Vec<String>) {
        let mut s = self.state.borrow_mut();
        s.gathered.push((id, keys));
        if s.sender.is_some() {
            return;
        }
        s.sender = Some(cache.clone());
        drop(s);
        if self.schedule_send(env).is_err() {
            self.send();
        }
    }

    /// Runs `send` from a microtask.
    fn schedule_send(&self, env: &Env) -> Result<()> {
        let tier = self.clone();
        let send: Function<(), ()> =
            env.create_function_from_closure("sendLookups", move |_| {
                tier.send();
                Ok(())
            })?;
        let js = Js::new(env);
        let queue = js.named(js.global()?, c"queueMicrotask")?;
        js.call(js.undefined()?, queue, &[send.raw()])?;
        Ok(())
    }

    /// Sends the gathered lookups together.
    fn send(&self) {
        let mut s = self.state.borrow_mut();
        let Some(cache) = s.sender.take() else { return };
        let gathered = std::mem::take(&mut s.gathered);
        drop(s);
        let lookups = gathered
            .into_iter()
            .map(|(id, keys)| {
                let mailbox = Arc::clone(&self.mailbox);
                Lookup::new(
                    keys,
                    Box::new(move |values| mailbox.post_all([TierEvent::Read(id, values)])),
                )
            })
            .collect();
        cache.get_remote(lookups);
    }

    /// A promise of `key`'s value in Redis (shared with other callers
    /// waiting for the same key).
    pub fn get(&self, env: &Env, cache: &FeatureCache, key: String) -> Result<sys::napi_value> {
        let (deferred, promise) = Deferred::new(env)?;
        let mut s = self.state.borrow_mut();
        if let Some(id) = s.flights.get(&key).copied() {
            if let Some(Waiting::Get(_, deferreds)) = s.waiting.get_mut(&id) {
                deferreds.push(deferred);
                return Ok(promise);
            }
        }
        drop(s);
        let id = self.enqueue(env, Waiting::Get(key.clone(), vec![deferred]));
        self.state.borrow_mut().flights.insert(key.clone(), id);
        self.lookup(env, cache, id, vec![key]);
        Ok(promise)
    }

    /// Looks `keys` up and calls `then` on the JS thread with the values.
    pub fn get_then(&self, env: &Env, cache: &FeatureCache, keys: Vec<String>, then: Then) {
        let id = self.enqueue(env, Waiting::Then(then));
        self.lookup(env, cache, id, keys);
    }

    /// A promise that resolves once every Redis write queued so far is done.
    pub fn flush(&self, env: &Env, cache: &FeatureCache) -> Result<sys::napi_value> {
        self.when_done(env, cache, Waiting::Flush, Remote::flush)
    }

    /// A promise that resolves once the tier has sent what was queued and
    /// closed; `onError` is let go then.
    pub fn close(&self, env: &Env, cache: &FeatureCache) -> Result<sys::napi_value> {
        self.when_done(env, cache, Waiting::Close, Remote::close)
    }

    /// Starts a job of the tier's writer (`start`) and returns a promise
    /// settled when it calls back.
    fn when_done(
        &self,
        env: &Env,
        cache: &FeatureCache,
        waiting: fn(Deferred) -> Waiting,
        start: fn(&Remote, Box<dyn FnOnce() + Send>),
    ) -> Result<sys::napi_value> {
        let (deferred, promise) = Deferred::new(env)?;
        let id = self.enqueue(env, waiting(deferred));
        let mailbox = Arc::clone(&self.mailbox);
        let remote = cache.remote().expect("a tier has a remote");
        start(
            remote,
            Box::new(move || mailbox.post_all([TierEvent::Flushed(id)])),
        );
        Ok(promise)
    }

    /// Keeps Node running while the writes just queued are outstanding.
    /// With none outstanding it does nothing; else the `Idle` event that
    /// follows the last of them lets go (in `drain`).
    pub fn wrote(&self, env: &Env) {
        let mut s = self.state.borrow_mut();
        if s.pending
            .as_ref()
            .is_some_and(|p| p.load(Ordering::Acquire) > 0)
        {
            hold(env, &mut s, true);
        }
    }
}

fn hold(env: &Env, s: &mut Waiters, on: bool) {
    if s.held != on {
        s.held = on;
        hold_loop(env, s.tsfn, on);
    }
}

/// Settles what the tier's thread reported.
fn drain(env: &Env, state: &Rc<RefCell<Waiters>>) {
    let events = std::mem::take(&mut *state.borrow().inbox.lock());
    let js = Js::new(env);
    for event in events {
        match event {
            TierEvent::Read(id, values) => {
                let waiting = {
                    let mut s = state.borrow_mut();
                    let w = s.waiting.remove(&id);
                    if let Some(Waiting::Get(key, _)) = &w {
                        s.flights.remove(key);
                    }
                    w
                };
                match waiting {
                    Some(Waiting::Get(_, deferreds)) => {
                        let value = values.into_iter().next().flatten();
                        for d in deferreds {
                            settle(env, d, value.as_ref().map(|v| to_js(js, v)));
                        }
                    }
                    Some(Waiting::Then(then)) => then(env, values),
                    Some(Waiting::Flush(_) | Waiting::Close(_)) | None => {}
                }
            }
            TierEvent::Flushed(id) => {
                let waiting = state.borrow_mut().waiting.remove(&id);
                match waiting {
                    Some(Waiting::Flush(d)) => settle(env, d, None),
                    Some(Waiting::Close(d)) => {
                        let on_error = state.borrow_mut().on_error.take();
                        if let Some(f) = on_error {
                            f.delete(env);
                        }
                        settle(env, d, None);
                    }
                    _ => {}
                }
            }
            TierEvent::Error(e) => {
                let callback = state.borrow().on_error.as_ref().map(|f| f.get(env));
                if let Some(f) = callback {
                    call_reporting(env, f, &[coded_value(env, &e)]);
                }
            }
            TierEvent::Idle => {}
        }
    }
    let mut s = state.borrow_mut();
    let busy = s
        .pending
        .as_ref()
        .is_some_and(|p| p.load(Ordering::Acquire) > 0);
    if s.waiting.is_empty() && !busy {
        hold(env, &mut s, false);
    }
}

/// Resolves with a value (`None`: undefined), or rejects if making it failed.
pub fn settle(env: &Env, d: Deferred, value: Option<Result<sys::napi_value>>) {
    let js = Js::new(env);
    match value.unwrap_or_else(|| js.undefined()) {
        Ok(v) => d.resolve(env, v),
        Err(e) => d.reject(
            env,
            crate::js::errors::error_value(
                env,
                gama_core::error::ErrorClass::Error,
                "E_CONVERT",
                &e.reason,
            ),
        ),
    }
}
