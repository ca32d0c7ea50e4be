//! The `AudioFeatureCache` class as JS sees it: argument checks, value
//! conversion and error mapping around `FeatureCache`.

use std::time::Duration;

use napi::bindgen_prelude::{Array, JsObjectValue, Object, PromiseRaw, Unknown};
use napi::{Env, JsValue, Result};
use napi_derive::napi;

mod compute;
mod fast_path;
mod remote;

use crate::js::errors::{coded, range_error, type_error, INVALID_ARG_TYPE, OUT_OF_RANGE};
use crate::js::fields::{describe, element, is_array, Fields};
use crate::js::keys::{key_arg, read_keys};
use crate::js::napi::convert;
use crate::js::napi::{to_value, unknown, Js};
use crate::js::options::{function_arg, SizeInput};
use crate::js::raw::Deferred;
use crate::js::value::{
    from_js, new_float32_array, CachedValueOut, MaybeCached, RawValue, TypedArrayView,
};
use gama_core::cache::{
    content_key, pack_rows, packed_width, CacheConfig, CacheValue, EntryOptions, FeatureCache,
    Invalidation, PolicyKind, Ttl,
};

/// Eviction policy of an `AudioFeatureCache`.
#[napi(string_enum = "lowercase")]
pub enum CachePolicy {
    /// Least recently used.
    Lru,
    /// Least frequently used.
    Lfu,
    /// Soonest to expire first.
    Ttl,
    /// Window TinyLFU (the default): admits by frequency, evicts by recency.
    Tinylfu,
    /// Same as `tinylfu`.
    Hybrid,
}

/// Options of `new AudioFeatureCache(options)`.
#[napi(object)]
pub struct AudioFeatureCacheOptions {
    /// Most entries held (default 10000).
    pub max_entries: Option<f64>,
    /// Most bytes held, values plus per-entry overhead: a number of bytes or
    /// a string such as "512MB" (default: a quarter of the machine's memory).
    #[napi(ts_type = "number | string")]
    pub max_memory: Option<SizeInput>,
    /// Default time to live of an entry in ms; 0 or absent keeps entries until evicted.
    pub ttl: Option<f64>,
    /// Eviction policy (default 'tinylfu').
    pub policy: Option<CachePolicy>,
    /// Whether `warm` loads anything (default true).
    pub enable_warming: Option<bool>,
    /// A second tier in Redis, shared by every process that uses the same server and prefix.
    pub redis: Option<RedisOptions>,
}

/// The `redis` option of `new AudioFeatureCache(options)`.
#[napi(object)]
pub struct RedisOptions {
    /// `redis://[user:password@]host:port[/db]` (also `redis+unix:///path`).
    pub url: String,
    /// Prefix of every Redis key and channel (default 'gama'): caches share entries when it matches.
    pub key_prefix: Option<String>,
    /// TTL in Redis, in ms, of entries with no TTL of their own (default: none).
    pub ttl: Option<f64>,
    /// Values of at least this many bytes are compressed (default 1024).
    pub compression_threshold: Option<f64>,
    /// 'lz4' (default), 'zstd' or 'none'.
    #[napi(ts_type = "'lz4' | 'zstd' | 'none'")]
    pub compression: Option<String>,
    /// Bound of every Redis round trip in ms (default 500); a slower read is a miss.
    pub timeout_ms: Option<f64>,
    /// Whether `url` names a node of a Redis Cluster (default false): the others are discovered, each key goes to the node that owns its slot, and lookups and removals spanning slots are split by node.
    pub cluster: Option<bool>,
    /// Largest value written to or read from Redis, in bytes (default 64 MiB); larger ones stay in L1.
    pub max_value_bytes: Option<f64>,
    /// Hears every Redis failure (an Error with a `code`: E_REDIS_DOWN, E_REDIS_WRITE, E_REDIS_READ, E_REDIS_DECODE, E_REDIS_INVALIDATE, E_TOO_LARGE); the cache carries on with L1.
    #[napi(ts_type = "(error: Error & { code: string }) => void")]
    pub on_error: Option<()>,
}

/// Options of one stored entry.
#[napi(object)]
pub struct SetOptions {
    /// Time to live in ms for this entry; 0 keeps it until evicted. Absent: the cache's default.
    pub ttl: Option<f64>,
    /// Tags for `invalidate({ tag })`.
    pub tags: Option<Vec<String>>,
}

/// What `invalidate` removes.
#[napi(object)]
pub struct InvalidateOptions {
    /// Remove entries carrying this tag.
    pub tag: Option<String>,
    /// Remove entries whose key starts with this text.
    pub prefix: Option<String>,
    /// Remove these keys.
    pub keys: Option<Vec<String>>,
}

/// Options of `warm`.
#[napi(object)]
pub struct WarmOptions {
    /// How many loader calls may be pending at once (default 4).
    pub concurrency: Option<f64>,
    /// TTL in ms of the loaded entries (default: the cache's).
    pub ttl: Option<f64>,
    /// Tags of the loaded entries.
    pub tags: Option<Vec<String>>,
}

/// One key `warm` could not load.
#[napi(object)]
pub struct WarmFailure {
    /// The key.
    pub key: String,
    /// Why the loader failed or its value was refused.
    pub message: String,
}

/// What `warm` did.
#[napi(object)]
pub struct WarmResult {
    /// False when the cache was built with `enableWarming: false` (nothing is loaded).
    pub enabled: bool,
    /// Keys loaded and stored.
    pub loaded: u32,
    /// Keys already cached (or all keys, when warming is disabled).
    pub skipped: u32,
    /// Keys found in Redis (the second tier) and stored here without calling the loader.
    pub from_redis: u32,
    /// Keys whose loader threw or rejected, or whose value was refused.
    pub failed: u32,
    /// Why each failed key failed.
    pub errors: Vec<WarmFailure>,
    /// Wall time of the whole warm-up.
    pub duration_ms: f64,
}

/// Rows read by `getManyPacked`.
#[napi(object, object_from_js = false)]
pub struct PackedRows {
    /// keys.length rows of `width` floats, row-major; rows of missed keys are zero.
    #[napi(ts_type = "Float32Array")]
    pub data: RawValue,
    /// Floats per row (length of the cached vectors; 0 if every key missed).
    pub width: u32,
    /// Positions in `keys` that missed.
    pub missing: Vec<u32>,
}

/// Statistics of an `AudioFeatureCache`.
#[napi(object)]
pub struct AudioFeatureCacheStats {
    /// Reads that found a live entry.
    pub hits: f64,
    /// Reads that found nothing or an expired entry.
    pub misses: f64,
    /// hits / (hits + misses), 0 before any read.
    pub hit_rate: f64,
    /// Values stored.
    pub sets: f64,
    /// Entries removed to respect maxEntries or maxMemory.
    pub evictions: f64,
    /// Entries removed because their TTL passed.
    pub expirations: f64,
    /// Live entries.
    pub entries: f64,
    /// Bytes counted against maxMemory (values, keys, tags and per-entry overhead).
    pub bytes: f64,
    /// The byte limit.
    pub max_bytes: f64,
    /// The entry limit.
    pub max_entries: f64,
    /// Mean time of a read inside the native cache, in ms.
    pub average_access_time_ms: f64,
    /// Compute time avoided by hits on values `getOrCompute` computed, in ms.
    pub estimated_time_saved_ms: f64,
    /// The Redis tier: 'up', 'down' (serving L1 only, reconnecting), 'connecting', 'closed' (by `close()`), or 'off' without one.
    #[napi(ts_type = "'up' | 'down' | 'connecting' | 'closed' | 'off'")]
    pub redis: String,
    /// The Redis tier's counters, with a `redis` option.
    pub l2: Option<RedisTierStats>,
}

/// Counters of the Redis tier (`getStats().l2`).
#[napi(object)]
pub struct RedisTierStats {
    /// Lookups in Redis that found a value.
    pub hits: f64,
    /// Lookups that found nothing, timed out, failed, or were skipped while down.
    pub misses: f64,
    /// Lookups that took longer than timeoutMs (counted in misses too).
    pub timeouts: f64,
    /// hits / (hits + misses), 0 before any lookup.
    pub hit_rate: f64,
    /// Round trips completed.
    pub round_trips: f64,
    /// Round-trip latency percentiles in ms.
    pub latency_p50_ms: f64,
    /// 95th percentile.
    pub latency_p95_ms: f64,
    /// 99th percentile.
    pub latency_p99_ms: f64,
    /// Entries written.
    pub writes: f64,
    /// Entries whose write failed.
    pub write_errors: f64,
    /// Entries not written: Redis was down, or they were over maxValueBytes.
    pub writes_skipped: f64,
    /// Value bytes sent (after compression).
    pub bytes_sent: f64,
    /// Value bytes received.
    pub bytes_received: f64,
    /// Raw over compressed bytes of the values compressed (1 when none was).
    pub compression_ratio: f64,
    /// Errors of every kind (each also went to onError).
    pub errors: f64,
    /// Invalidations published to other processes (one per write batch, tag, prefix or key list).
    pub invalidations_sent: f64,
    /// Invalidations received from other processes.
    pub invalidations_received: f64,
    /// Times Redis became unreachable.
    pub disconnects: f64,
}

/// A memory-bounded, off-heap cache of audio features.
#[napi]
pub struct AudioFeatureCache {
    cache: FeatureCache,
    flights: compute::Flights,
    /// The Redis tier's JS side, with a `redis` option.
    tier: Option<remote::Tier>,
}

impl AudioFeatureCache {
    /// The core, for the batch processor.
    pub fn core(&self) -> &FeatureCache {
        &self.cache
    }
}

/// Loader calls `warm` keeps pending at once unless told otherwise.
const DEFAULT_WARM_CONCURRENCY: usize = 4;

fn ttl_of(duration: Option<Duration>) -> Ttl {
    match duration {
        None => Ttl::Default,
        Some(Duration::ZERO) => Ttl::Never,
        Some(d) => Ttl::After(d),
    }
}

/// Options of one stored entry (`set`, `setMany`, `getOrCompute`); `extra`
/// names keys the caller reads itself (`warm`'s `concurrency`).
fn entry_fields<'env>(
    env: &Env,
    options: Option<Unknown<'env>>,
    extra: &[&str],
) -> Result<(EntryOptions, Option<Fields<'env>>)> {
    let mut known = vec!["ttl", "tags"];
    known.extend_from_slice(extra);
    let Some(o) = Fields::read(env, options, "options", &known)? else {
        return Ok((EntryOptions::default(), None));
    };
    let entry = EntryOptions {
        ttl: ttl_of(o.millis("ttl")?),
        tags: o.strings("tags")?.unwrap_or_default(),
        compute_cost: Duration::ZERO,
    };
    Ok((entry, Some(o)))
}

fn entry_options(env: &Env, options: Option<Unknown>) -> Result<EntryOptions> {
    Ok(entry_fields(env, options, &[])?.0)
}

/// A key argument (a well-formed string); `name` appears in the error.
fn key_of(env: &Env, name: &str, key: &Unknown) -> Result<String> {
    key_arg(env, name, key.raw())
}

pub(super) fn js_value(env: &Env, value: Unknown) -> Result<CacheValue> {
    js_value_at(env, value, "value")
}

/// A value to store; `path` names it in the error of a refused value.
pub(super) fn js_value_at(env: &Env, value: Unknown, path: &str) -> Result<CacheValue> {
    if value.get_type()? == napi::ValueType::Undefined {
        return Err(type_error(
            env,
            INVALID_ARG_TYPE,
            format!("{path} must not be undefined: a read could not tell it from a miss"),
        ));
    }
    let read = from_js(Js::new(env), value.raw(), path)?;
    read.map_err(|why| type_error(env, INVALID_ARG_TYPE, why))
}

#[napi]
impl AudioFeatureCache {
    /// Creates a cache. Every option has a default; bad values throw a RangeError.
    #[napi(
        constructor,
        catch_unwind,
        ts_args_type = "options?: AudioFeatureCacheOptions | undefined | null"
    )]
    pub fn new(env: Env, options: Option<Unknown>) -> Result<Self> {
        const KNOWN: [&str; 6] = [
            "maxEntries",
            "maxMemory",
            "ttl",
            "policy",
            "enableWarming",
            "redis",
        ];
        let mut config = CacheConfig::with_system_defaults();
        let mut redis = None;
        if let Some(o) = Fields::read(&env, options, "options", &KNOWN)? {
            redis = remote::read_options(&env, &o)?;
            if let Some(n) = o.integer("maxEntries", 1.0, 4_294_967_295.0)? {
                config.max_entries = n;
            }
            if let Some(bytes) = o.size("maxMemory")? {
                if bytes == 0 {
                    return Err(range_error(
                        &env,
                        OUT_OF_RANGE,
                        "options.maxMemory must be greater than 0",
                    ));
                }
                config.max_bytes = bytes;
            }
            if let Some(d) = o.millis("ttl")? {
                config.default_ttl = (!d.is_zero()).then_some(d);
            }
            if let Some(p) = o.choice(
                "policy",
                &[
                    ("tinylfu", PolicyKind::TinyLfu),
                    ("hybrid", PolicyKind::TinyLfu),
                    ("lru", PolicyKind::Lru),
                    ("lfu", PolicyKind::Lfu),
                    ("ttl", PolicyKind::Ttl),
                ],
            )? {
                config.policy = p;
            }
            if let Some(w) = o.boolean("enableWarming")? {
                config.enable_warming = w;
            }
        }
        let Some((remote, on_error)) = redis else {
            return Ok(AudioFeatureCache {
                cache: FeatureCache::new(config),
                flights: compute::Flights::default(),
                tier: None,
            });
        };
        let (tier, events) = remote::Tier::new(&env, on_error)?;
        let cache =
            FeatureCache::with_remote(config, remote, events).map_err(|e| coded(&env, &e))?;
        tier.attach(&cache);
        Ok(AudioFeatureCache {
            cache,
            flights: compute::Flights::default(),
            tier: Some(tier),
        })
    }

    /// Keeps Node running until the Redis writes just queued are done.
    fn wrote(&self, env: &Env) {
        if let Some(tier) = &self.tier {
            tier.wrote(env);
        }
    }

    /// The value under `key`, as a fresh copy, or undefined (missing or expired).
    #[napi(
        catch_unwind,
        ts_generic_types = "T extends CacheValue = CacheValue",
        ts_args_type = "key: string",
        ts_return_type = "T | undefined"
    )]
    pub fn get(&self, env: Env, key: Unknown) -> Result<MaybeCached> {
        Ok(MaybeCached(self.cache.get(&key_of(&env, "key", &key)?)))
    }

    /// Stores a copy of `value` under `key`, evicting by policy to stay
    /// within maxEntries and maxMemory. A value that alone exceeds maxMemory
    /// throws a RangeError with code 'E_TOO_LARGE' and evicts nothing.
    #[napi(
        catch_unwind,
        ts_args_type = "key: string, value: CacheValue, options?: SetOptions | undefined | null"
    )]
    pub fn set(
        &self,
        env: Env,
        key: Unknown,
        value: Unknown,
        options: Option<Unknown>,
    ) -> Result<()> {
        let key = key_of(&env, "key", &key)?;
        let value = js_value(&env, value)?;
        let options = entry_options(&env, options)?;
        self.cache
            .insert(&key, value, options)
            .map_err(|e| coded(&env, &e))?;
        self.wrote(&env);
        Ok(())
    }

    /// Whether `key` holds a live entry (not counted as a read).
    #[napi(catch_unwind, ts_args_type = "key: string")]
    pub fn has(&self, env: Env, key: Unknown) -> Result<bool> {
        Ok(self.cache.contains(&key_of(&env, "key", &key)?))
    }

    /// Removes `key`; true if it held a live entry.
    #[napi(catch_unwind, ts_args_type = "key: string")]
    pub fn delete(&self, env: Env, key: Unknown) -> Result<bool> {
        let removed = self.cache.remove(&key_of(&env, "key", &key)?);
        self.wrote(&env);
        Ok(removed)
    }

    /// Removes every entry (statistics are kept).
    #[napi(catch_unwind)]
    pub fn clear(&self) {
        self.cache.clear();
    }

    /// Number of entries held.
    #[napi(getter, catch_unwind)]
    pub fn size(&self) -> u32 {
        self.cache.len() as u32
    }

    /// Keys of the live entries.
    #[napi(catch_unwind)]
    pub fn keys(&self) -> Vec<String> {
        self.cache.keys()
    }

    /// Values of many keys (undefined where missing), read under one lock.
    #[napi(
        catch_unwind,
        ts_args_type = "keys: string[]",
        ts_generic_types = "T extends CacheValue = CacheValue",
        ts_return_type = "Array<T | undefined>"
    )]
    pub fn get_many(
        &self,
        env: Env,
        keys: Unknown,
        joined: Option<String>,
    ) -> Result<Vec<MaybeCached>> {
        let keys = read_keys(&env, keys.raw(), joined, "keys")?;
        Ok(self
            .cache
            .get_many(&keys.as_strs())
            .into_iter()
            .map(MaybeCached)
            .collect())
    }

    /// Reads Float32 vectors of equal length into one row-major
    /// Float32Array, the shape a model's input batch wants; missed keys get
    /// zero rows and are listed in `missing`.
    #[napi(catch_unwind, ts_args_type = "keys: string[]")]
    pub fn get_many_packed(
        &self,
        env: Env,
        keys: Unknown,
        joined: Option<String>,
    ) -> Result<PackedRows> {
        let keys = read_keys(&env, keys.raw(), joined, "keys")?;
        let values = self.cache.get_many(&keys.as_strs());
        let width =
            packed_width(&values).map_err(|e| type_error(&env, INVALID_ARG_TYPE, e.to_string()))?;
        let mut missing = Vec::new();
        let data = new_float32_array(Js::new(&env), width * values.len(), |out| {
            missing = pack_rows(&values, width, out);
        })?;
        Ok(PackedRows {
            data: RawValue(data),
            width: width as u32,
            missing,
        })
    }

    /// Stores many `[key, value]` pairs with shared options. Every value is
    /// checked first: if one is refused, none is stored. Returns the count stored.
    #[napi(
        catch_unwind,
        ts_args_type = "entries: Array<[string, CacheValue]>, options?: SetOptions | undefined | null"
    )]
    pub fn set_many(&self, env: Env, entries: Unknown, options: Option<Unknown>) -> Result<u32> {
        let options = entry_options(&env, options)?;
        if !is_array(&env, &entries)? {
            return Err(type_error(
                &env,
                INVALID_ARG_TYPE,
                format!(
                    "entries must be an array of [key, value] pairs; got {}",
                    describe(&env, &entries)
                ),
            ));
        }
        // SAFETY: a live handle of this call, checked to be an array.
        let entries = convert::<Array>(&env, entries.raw())?;
        // Grown as pairs are read: a sparse array's length is not trusted.
        let mut parsed = Vec::new();
        for i in 0..entries.len() {
            let pair = element(&env, &entries, i)?;
            let pair = match pair {
                Some(p) if is_array(&env, &p)? => convert::<Object>(&env, p.raw())?,
                _ => {
                    return Err(type_error(
                        &env,
                        INVALID_ARG_TYPE,
                        format!("entries[{i}] must be a [key, value] pair"),
                    ))
                }
            };
            if pair.get_array_length()? < 2 {
                return Err(type_error(
                    &env,
                    INVALID_ARG_TYPE,
                    format!("entries[{i}] must be a [key, value] pair"),
                ));
            }
            let key = key_of(&env, &format!("entries[{i}][0]"), &pair.get_element(0)?)?;
            let value = js_value_at(&env, pair.get_element(1)?, &format!("entries[{i}][1]"))?;
            parsed.push((key, value));
        }
        let count = self
            .cache
            .insert_many(parsed, options)
            .map_err(|e| coded(&env, &e))?;
        self.wrote(&env);
        Ok(count as u32)
    }

    /// The cached value of `key`, or the value `compute()` returns (sync or
    /// async), stored with `options`. Concurrent calls for one missing key
    /// share one `compute` call: they get the same promise, so its result or
    /// its rejection; a rejection is not cached. The compute time counts
    /// towards `estimatedTimeSavedMs`.
    #[napi(
        catch_unwind,
        ts_generic_types = "T extends CacheValue = CacheValue",
        ts_args_type = "key: string, compute: () => T | Promise<T>, options?: SetOptions | undefined | null",
        ts_return_type = "Promise<T>"
    )]
    pub fn get_or_compute<'env>(
        &self,
        env: &'env Env,
        key: Unknown<'env>,
        compute: Unknown<'env>,
        options: Option<Unknown<'env>>,
    ) -> Result<Unknown<'env>> {
        let key = key_of(env, "key", &key)?;
        let compute = function_arg::<(), Unknown>(env, "compute", compute)?;
        let options = entry_options(env, options)?;
        if let Some(value) = self.cache.get(&key) {
            let resolved = PromiseRaw::resolve(env, CachedValueOut(value))?;
            return Ok(unknown(env, resolved.raw()));
        }
        match &self.tier {
            Some(tier) => compute::get_or_compute_tiered(
                env,
                tier,
                &self.cache,
                &self.flights,
                key,
                compute,
                options,
            ),
            None => compute::get_or_compute(
                env,
                &self.cache,
                &self.flights,
                key,
                || compute.call(()),
                options,
                None,
            ),
        }
    }

    /// Loads the keys not yet cached with `loader(key)` (sync or async), at
    /// most `concurrency` at a time. Failures are reported, not thrown. With
    /// `enableWarming: false` nothing is loaded and `enabled` is false.
    #[napi(
        catch_unwind,
        ts_args_type = "keys: string[], loader: (key: string) => CacheValue | Promise<CacheValue>, options?: WarmOptions | undefined | null",
        ts_return_type = "Promise<WarmResult>"
    )]
    pub fn warm<'env>(
        &self,
        env: &'env Env,
        keys: Unknown<'env>,
        loader: Unknown<'env>,
        options: Option<Unknown<'env>>,
    ) -> Result<Unknown<'env>> {
        let (entry, fields) = entry_fields(env, options, &["concurrency"])?;
        let concurrency = match &fields {
            Some(o) => o.integer("concurrency", 1.0, 1024.0)?.map(|c| c as usize),
            None => None,
        }
        .unwrap_or(DEFAULT_WARM_CONCURRENCY);
        let keys: Vec<String> = read_keys(env, keys.raw(), None, "keys")?
            .as_strs()
            .into_iter()
            .map(String::from)
            .collect();
        let loader = function_arg::<String, Unknown<'static>>(env, "loader", loader)?;
        if !self.cache.config().enable_warming {
            let unique: hashbrown::HashSet<&String> = keys.iter().collect();
            let result = WarmResult {
                enabled: false,
                loaded: 0,
                skipped: unique.len() as u32,
                from_redis: 0,
                failed: 0,
                errors: vec![],
                duration_ms: 0.0,
            };
            let resolved = PromiseRaw::resolve(env, result)?;
            return Ok(unknown(env, resolved.raw()));
        }
        compute::warm(
            env,
            &self.cache,
            self.tier.as_ref(),
            keys,
            loader,
            concurrency,
            entry,
        )
    }

    /// Removes every entry with `tag`, whose key starts with `prefix`, or
    /// listed in `keys`; returns how many were removed here. With a Redis
    /// tier they also leave Redis and the other processes' caches (in the
    /// background: `await flush()` to know it is done).
    #[napi(catch_unwind, ts_args_type = "options: InvalidateOptions")]
    pub fn invalidate(&self, env: Env, options: Option<Unknown>) -> Result<u32> {
        let o = Fields::read(&env, options, "options", &["tag", "prefix", "keys"])?;
        let (tag, prefix, keys) = match &o {
            Some(o) => (o.string("tag")?, o.string("prefix")?, o.value("keys")?),
            None => (None, None, None),
        };
        let what = match (tag, prefix, keys) {
            (Some(tag), None, None) => Invalidation::Tag(tag),
            (None, Some(prefix), None) => Invalidation::Prefix(prefix),
            (None, None, Some(keys)) => Invalidation::Keys(
                read_keys(&env, keys.raw(), None, "options.keys")?
                    .as_strs()
                    .into_iter()
                    .map(String::from)
                    .collect(),
            ),
            _ => {
                return Err(type_error(
                    &env,
                    INVALID_ARG_TYPE,
                    "invalidate needs exactly one of { tag }, { prefix } or { keys }",
                ))
            }
        };
        let removed = self.cache.invalidate(&what) as u32;
        self.wrote(&env);
        Ok(removed)
    }

    /// The value under `key`: from this process (L1), else from Redis (the
    /// second tier, which then fills L1), else undefined. Concurrent calls
    /// for one key share one Redis lookup. A lookup slower than
    /// `redis.timeoutMs`, or made while Redis is down, is a miss. Without
    /// a `redis` option it is `get` as a promise.
    #[napi(
        catch_unwind,
        ts_generic_types = "T extends CacheValue = CacheValue",
        ts_args_type = "key: string",
        ts_return_type = "Promise<T | undefined>"
    )]
    pub fn get_async<'env>(&self, env: &'env Env, key: Unknown<'env>) -> Result<Unknown<'env>> {
        let key = key_of(env, "key", &key)?;
        let local = self.cache.get(&key);
        let promise = match (&self.tier, local) {
            (Some(tier), None) => tier.get(env, &self.cache, key)?,
            (_, local) => PromiseRaw::resolve(env, MaybeCached(local))?.raw(),
        };
        Ok(unknown(env, promise))
    }

    /// The values of many keys (undefined where missing): from L1, and the
    /// keys L1 lacks from Redis in one round trip.
    #[napi(
        catch_unwind,
        ts_generic_types = "T extends CacheValue = CacheValue",
        ts_args_type = "keys: string[]",
        ts_return_type = "Promise<Array<T | undefined>>"
    )]
    pub fn get_many_async<'env>(
        &self,
        env: &'env Env,
        keys: Unknown<'env>,
    ) -> Result<Unknown<'env>> {
        let keys = read_keys(env, keys.raw(), None, "keys")?;
        let keys = keys.as_strs();
        let mut values = self.cache.get_many(&keys);
        let missing: Vec<usize> = (0..values.len()).filter(|&i| values[i].is_none()).collect();
        let tier = match &self.tier {
            Some(tier) if !missing.is_empty() => tier,
            _ => {
                let out: Vec<MaybeCached> = values.into_iter().map(MaybeCached).collect();
                return Ok(unknown(env, PromiseRaw::resolve(env, out)?.raw()));
            }
        };
        let (deferred, promise) = Deferred::new(env)?;
        let wanted = missing.iter().map(|&i| keys[i].to_string()).collect();
        tier.get_then(
            env,
            &self.cache,
            wanted,
            Box::new(move |env, found| {
                for (i, value) in missing.into_iter().zip(found) {
                    values[i] = value;
                }
                let out: Vec<MaybeCached> = values.into_iter().map(MaybeCached).collect();
                remote::settle(env, deferred, Some(to_value(env, out)));
            }),
        );
        Ok(unknown(env, promise))
    }

    /// Resolves once every Redis write, removal and invalidation made so far
    /// has been sent (or has failed: see `onError` and `getStats().l2`). At
    /// once without a `redis` option.
    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
    pub fn flush<'env>(&self, env: &'env Env) -> Result<Unknown<'env>> {
        let promise = match &self.tier {
            Some(tier) => tier.flush(env, &self.cache)?,
            None => PromiseRaw::resolve(env, ())?.raw(),
        };
        Ok(unknown(env, promise))
    }

    /// Sends the Redis writes, removals and invalidations made so far, then
    /// closes the Redis tier for good: its connections and tasks end and
    /// `onError` is let go. The cache keeps serving L1 (`getStats().redis`
    /// is 'closed'): later lookups miss Redis and later writes stay here.
    /// Resolves once closed; at once without a `redis` option.
    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
    pub fn close<'env>(&self, env: &'env Env) -> Result<Unknown<'env>> {
        let promise = match &self.tier {
            Some(tier) => tier.close(env, &self.cache)?,
            None => PromiseRaw::resolve(env, ())?.raw(),
        };
        Ok(unknown(env, promise))
    }

    /// Hit, miss, eviction and memory statistics.
    #[napi(catch_unwind)]
    pub fn get_stats(&self) -> AudioFeatureCacheStats {
        let s = self.cache.stats();
        let c = &s.counters;
        AudioFeatureCacheStats {
            hits: c.hits as f64,
            misses: c.misses as f64,
            hit_rate: s.hit_rate(),
            sets: c.inserts as f64,
            evictions: c.evictions as f64,
            expirations: c.expirations as f64,
            entries: s.entries as f64,
            bytes: s.bytes as f64,
            max_bytes: s.max_bytes as f64,
            max_entries: s.max_entries as f64,
            average_access_time_ms: s.average_access_time().as_secs_f64() * 1000.0,
            estimated_time_saved_ms: c.time_saved.as_secs_f64() * 1000.0,
            redis: self
                .cache
                .remote_stats()
                .map_or("off", |(state, _)| state.as_str())
                .to_string(),
            l2: self.cache.remote_stats().map(|(_, r)| RedisTierStats {
                hits: r.hits as f64,
                misses: r.misses as f64,
                timeouts: r.timeouts as f64,
                hit_rate: match r.hits + r.misses {
                    0 => 0.0,
                    n => r.hits as f64 / n as f64,
                },
                round_trips: r.round_trips as f64,
                latency_p50_ms: r.latency.p50,
                latency_p95_ms: r.latency.p95,
                latency_p99_ms: r.latency.p99,
                writes: r.writes as f64,
                write_errors: r.write_errors as f64,
                writes_skipped: r.writes_skipped as f64,
                bytes_sent: r.bytes_sent as f64,
                bytes_received: r.bytes_received as f64,
                compression_ratio: r.compression_ratio(),
                errors: r.errors as f64,
                invalidations_sent: r.invalidations_sent as f64,
                invalidations_received: r.invalidations_received as f64,
                disconnects: r.disconnects as f64,
            }),
        }
    }

    /// Zeroes the counters of `getStats` (entries are kept).
    #[napi(catch_unwind)]
    pub fn reset_stats(&self) {
        self.cache.reset_stats();
    }

    /// A stable content key for audio samples and the parameters used on
    /// them: 32 hex digits, independent of the order of object keys.
    #[napi(
        catch_unwind,
        ts_args_type = "audio: Float32Array | Float64Array | Int16Array | Uint8Array | Buffer, params?: Record<string, unknown>"
    )]
    pub fn key_for(env: Env, audio: Unknown, params: Option<Unknown>) -> Result<String> {
        let params = match params {
            Some(p) if p.get_type()? != napi::ValueType::Undefined => {
                let node = crate::js::structured::read(Js::new(&env), p.raw(), "params")?
                    .map_err(|why| type_error(&env, INVALID_ARG_TYPE, why))?;
                Some(gama_core::cache::structured::to_json(&node))
            }
            _ => None,
        };
        let view = TypedArrayView::of(Js::new(&env), audio.raw())?.ok_or_else(|| {
            type_error(
                &env,
                INVALID_ARG_TYPE,
                "audio must be a typed array such as Float32Array",
            )
        })?;
        // Hashed in place, before JS runs again.
        Ok(content_key(view.element().0, view.bytes(), params.as_ref()))
    }
}

/// Installs the fast read path over `exports.AudioFeatureCache`.
pub(crate) fn install(env: &Env, exports: &Object) -> Result<()> {
    fast_path::install(env, exports)
}
