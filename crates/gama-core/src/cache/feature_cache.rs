//! `FeatureCache`: the thread-safe cache that JS and Rust worker threads share.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{json, Value};

use super::config::{CacheConfig, EntryOptions, Invalidation, Ttl};
use super::error::CacheError;
use super::remote::{
    Events, Found, Local, Remote, RemoteConfig, RemoteError, RemoteState, RemoteStats,
};
use super::stats::CacheStats;
use super::store::Store;
use super::value::CacheValue;
use crate::metrics::{self, exposition::Gauge, Gauges};
use crate::reaper::{self, Expiring};

/// Latency series of the cache's reads and writes.
static GET: metrics::Handle = metrics::Handle::new("cache", "get");
static GET_MANY: metrics::Handle = metrics::Handle::new("cache", "getMany");
static SET: metrics::Handle = metrics::Handle::new("cache", "set");

/// One read in this many is timed for `averageAccessTime`.
const ACCESS_SAMPLE_EVERY: u32 = 16;

struct Shared {
    store: Mutex<Store>,
    reads: AtomicU32,
    /// The Redis tier, when the cache has one.
    remote: Option<Remote>,
}

impl Shared {
    /// Stores in L1 only; returns the entry's expiry.
    fn insert_local(
        &self,
        key: &str,
        value: CacheValue,
        options: EntryOptions,
    ) -> Result<Option<Instant>, CacheError> {
        let started = Instant::now();
        let mut store = self.store.lock();
        let expires_at = store.insert(key, value, options)?;
        let earliest = expires_at.is_some() && store.next_expiry() == expires_at;
        drop(store);
        SET.record_since(started);
        if earliest {
            reaper::wake_by(expires_at.expect("checked above"));
        }
        Ok(expires_at)
    }
}

impl Local for Shared {
    fn fill(&self, found: Vec<Found<'_>>) {
        if found.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut earliest = None;
        let mut store = self.store.lock();
        for f in found {
            let options = EntryOptions {
                ttl: f.ttl.map_or(Ttl::Default, Ttl::After),
                tags: f.tags,
                compute_cost: Duration::ZERO,
            };
            // A value larger than this cache's limit is still the reader's result.
            if let Ok(Some(t)) = store.insert_at(f.key, f.value, options, now) {
                earliest = Some(earliest.map_or(t, |e: Instant| e.min(t)));
            }
        }
        let wake = earliest.filter(|&t| store.next_expiry() == Some(t));
        drop(store);
        if let Some(t) = wake {
            reaper::wake_by(t);
        }
    }

    fn invalidate_local(&self, what: &Invalidation) {
        self.store.lock().invalidate(what);
    }

    fn clear_local(&self) {
        self.store.lock().clear();
    }
}

impl Expiring for Shared {
    fn purge_expired(&self, now: Instant) -> Option<Instant> {
        let mut store = self.store.lock();
        store.purge_expired(now);
        store.next_expiry()
    }
}

/// A memory-bounded cache of feature values, cheap to clone and safe to use
/// from any thread. Clones share the same entries.
#[derive(Clone)]
pub struct FeatureCache {
    shared: Arc<Shared>,
}

impl FeatureCache {
    /// A cache with these limits; expired entries are reclaimed in the background.
    pub fn new(config: CacheConfig) -> Self {
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::new(config)),
            reads: AtomicU32::new(0),
            remote: None,
        });
        Self::watched(shared)
    }

    /// A cache whose entries are also kept in Redis (a second tier shared
    /// by every process with the same server and prefix). It connects in
    /// the background; `events` hears of failures and of the tier going idle.
    pub fn with_remote(
        config: CacheConfig,
        remote: RemoteConfig,
        events: Events,
    ) -> Result<Self, RemoteError> {
        let client = Remote::client(&remote)?;
        let mut failed = None;
        let shared = Arc::new_cyclic(|weak: &Weak<Shared>| {
            let local: Weak<dyn Local> = weak.clone();
            let remote = Remote::start(remote, client, local, events)
                .map_err(|e| failed = Some(e))
                .ok();
            Shared {
                store: Mutex::new(Store::new(config)),
                reads: AtomicU32::new(0),
                remote,
            }
        });
        match failed {
            Some(e) => Err(e),
            None => Ok(Self::watched(shared)),
        }
    }

    fn watched(shared: Arc<Shared>) -> Self {
        let weak: Weak<dyn Expiring> = Arc::downgrade(&shared) as Weak<dyn Expiring>;
        reaper::watch(weak);
        FeatureCache { shared }
    }

    /// The Redis tier, when the cache has one.
    pub fn remote(&self) -> Option<&Remote> {
        self.shared.remote.as_ref()
    }

    /// Looks keys up in Redis (see `Remote::get`); all misses at once
    /// when the cache has no Redis tier.
    pub fn get_remote(&self, lookups: Vec<super::remote::Lookup>) {
        match &self.shared.remote {
            Some(remote) => remote.get(lookups),
            None => {
                for lookup in lookups {
                    let n = lookup.keys.len();
                    lookup.answer(vec![None; n]);
                }
            }
        }
    }

    /// The Redis tier's state and counters, when the cache has one.
    pub fn remote_stats(&self) -> Option<(RemoteState, RemoteStats)> {
        let remote = self.shared.remote.as_ref()?;
        Some((remote.state(), remote.stats()))
    }

    /// The cache's limits.
    pub fn config(&self) -> CacheConfig {
        self.shared.store.lock().config().clone()
    }

    /// Reads one key, counting a hit or a miss.
    pub fn get(&self, key: &str) -> Option<CacheValue> {
        self.get_with(key, CacheValue::clone)
    }

    /// Reads one key like `get`, lending the value to `f` under the lock
    /// instead of cloning it (keep `f` short: it blocks other threads).
    pub fn get_with<R>(&self, key: &str, f: impl FnOnce(&CacheValue) -> R) -> Option<R> {
        let sampled = self
            .shared
            .reads
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(ACCESS_SAMPLE_EVERY);
        if !sampled {
            return self.shared.store.lock().get_with(key, f);
        }
        let started = Instant::now();
        let mut store = self.shared.store.lock();
        let value = store.get_with(key, f);
        let elapsed = started.elapsed();
        store.record_access_time(elapsed);
        drop(store);
        GET.record(elapsed);
        value
    }

    /// Reads many keys under one lock; `None` where a key missed.
    pub fn get_many(&self, keys: &[&str]) -> Vec<Option<CacheValue>> {
        let started = Instant::now();
        let mut store = self.shared.store.lock();
        let values = store.get_many(keys);
        if !values.is_empty() {
            let per_read = started.elapsed() / values.len() as u32;
            store.record_access_time(per_read);
        }
        drop(store);
        GET_MANY.record_since(started);
        values
    }

    /// Whether `key` holds a live entry; not counted as a read.
    pub fn contains(&self, key: &str) -> bool {
        self.shared.store.lock().contains(key)
    }

    /// Stores a value, evicting by policy to stay within the limits, and
    /// writes it behind to Redis when the cache has a Redis tier (with the
    /// entry's TTL, or the tier's own for entries without one).
    pub fn insert(
        &self,
        key: &str,
        value: CacheValue,
        options: EntryOptions,
    ) -> Result<(), CacheError> {
        let Some(remote) = &self.shared.remote else {
            self.shared.insert_local(key, value, options)?;
            return Ok(());
        };
        let tags = options.tags.clone();
        let ttl = match options.ttl {
            Ttl::After(d) => Some(d),
            Ttl::Never => None,
            Ttl::Default => self.shared.store.lock().config().default_ttl,
        }
        .or(remote.config().ttl);
        self.shared.insert_local(key, value.clone(), options)?;
        remote.write(key, value, ttl, &tags);
        Ok(())
    }

    /// Stores every entry or none: when one alone is larger than the byte
    /// limit, nothing is stored and its error is returned. The count stored
    /// otherwise.
    pub fn insert_many(
        &self,
        entries: Vec<(String, CacheValue)>,
        options: EntryOptions,
    ) -> Result<usize, CacheError> {
        let max_bytes = self.shared.store.lock().config().max_bytes;
        for (key, value) in &entries {
            let bytes = Store::weight_of(key, value, &options.tags);
            if bytes > max_bytes {
                return Err(CacheError::TooLarge {
                    key: key.clone(),
                    bytes,
                    max_bytes,
                });
            }
        }
        let count = entries.len();
        for (key, value) in entries {
            self.insert(&key, value, options.clone())?;
        }
        Ok(count)
    }

    /// Removes one key (from Redis and the other processes too, with a
    /// Redis tier); true if it held a live entry here.
    pub fn remove(&self, key: &str) -> bool {
        if let Some(remote) = &self.shared.remote {
            remote.remove(vec![key.to_string()]);
        }
        self.shared.store.lock().remove(key)
    }

    /// Removes every entry.
    pub fn clear(&self) {
        self.shared.store.lock().clear();
    }

    /// Removes the entries with a tag, a key prefix or the keys listed
    /// (from Redis and the other processes too, with a Redis tier);
    /// returns how many were removed here.
    pub fn invalidate(&self, what: &Invalidation) -> usize {
        if let Some(remote) = &self.shared.remote {
            remote.invalidate(what.clone());
        }
        self.shared.store.lock().invalidate(what)
    }

    /// Number of entries held.
    pub fn len(&self) -> usize {
        self.shared.store.lock().len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.shared.store.lock().is_empty()
    }

    /// Keys of the live entries, in no particular order.
    pub fn keys(&self) -> Vec<String> {
        self.shared.store.lock().keys()
    }

    /// Counters and occupancy.
    pub fn stats(&self) -> CacheStats {
        self.shared.store.lock().stats()
    }

    /// Zeroes the counters (the Redis tier's too).
    pub fn reset_stats(&self) {
        self.shared.store.lock().reset_stats();
        if let Some(remote) = &self.shared.remote {
            remote.reset_stats();
        }
    }

    /// Removes what has expired now, as the background reaper does.
    pub fn purge_expired(&self) -> usize {
        self.shared.store.lock().purge_expired(Instant::now())
    }
}

impl Gauges for FeatureCache {
    fn gauges(&self) -> Vec<Gauge> {
        let s = self.stats();
        let mut gauges = vec![
            (
                "gama_cache_hit_ratio",
                "Share of cache lookups that hit.",
                s.hit_rate(),
            ),
            (
                "gama_cache_entries",
                "Entries in the feature cache.",
                s.entries as f64,
            ),
            (
                "gama_cache_bytes",
                "Bytes held by the feature cache.",
                s.bytes as f64,
            ),
        ];
        if let Some((state, r)) = self.remote_stats() {
            let lookups = (r.hits + r.misses).max(1) as f64;
            gauges.extend([
                (
                    "gama_cache_redis_up",
                    "1 while the Redis tier is reachable, else 0.",
                    f64::from(u8::from(state == RemoteState::Up)),
                ),
                (
                    "gama_cache_redis_hit_ratio",
                    "Share of Redis lookups that hit.",
                    r.hits as f64 / lookups,
                ),
                (
                    "gama_cache_redis_hits",
                    "Redis lookups that found a value.",
                    r.hits as f64,
                ),
                (
                    "gama_cache_redis_misses",
                    "Redis lookups that found nothing, timed out or were skipped.",
                    r.misses as f64,
                ),
                (
                    "gama_cache_redis_round_trip_p99_seconds",
                    "99th percentile of Redis round trips.",
                    r.latency.p99 / 1000.0,
                ),
                (
                    "gama_cache_redis_bytes_sent",
                    "Value bytes written to Redis.",
                    r.bytes_sent as f64,
                ),
                (
                    "gama_cache_redis_bytes_received",
                    "Value bytes read from Redis.",
                    r.bytes_received as f64,
                ),
                (
                    "gama_cache_redis_compression_ratio",
                    "Raw over stored bytes of the values compressed.",
                    r.compression_ratio(),
                ),
                (
                    "gama_cache_redis_errors",
                    "Failed Redis round trips, undecodable values and refused invalidations.",
                    r.errors as f64,
                ),
            ]);
        }
        gauges
    }

    /// `hit_rate` is a percentage from 0 to 100.
    fn section(&self) -> Value {
        let s = self.stats();
        let mut section = json!({
            "hit_rate": (s.hit_rate() * 1000.0).round() / 10.0,
            "hits": s.counters.hits,
            "misses": s.counters.misses,
            "entries": s.entries,
            "bytes": s.bytes,
        });
        if let Some((state, r)) = self.remote_stats() {
            section["redis"] = json!({
                "state": state.as_str(),
                "hits": r.hits,
                "misses": r.misses,
                "timeouts": r.timeouts,
                "round_trips": r.round_trips,
                "p50_ms": r.latency.p50,
                "p95_ms": r.latency.p95,
                "p99_ms": r.latency.p99,
                "bytes_sent": r.bytes_sent,
                "bytes_received": r.bytes_received,
                "compression_ratio": r.compression_ratio(),
                "errors": r.errors,
            });
        }
        section
    }
}
