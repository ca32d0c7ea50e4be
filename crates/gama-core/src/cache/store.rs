//! The single-threaded heart of the cache: entries in a slot table, a hash
//! index over their keys, an expiry index, a tag index and an eviction
//! policy. `FeatureCache` wraps it in a lock.
//!
//! Invariants: `bytes` is the sum of live entries' weights and never exceeds
//! `max_bytes` after an insert returns; the number of live entries never
//! exceeds `max_entries`; every live slot is in the hash index, the policy,
//! and (if it expires) the expiry index.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use compact_str::CompactString;
use hashbrown::{HashMap, HashSet, HashTable};

use super::config::{CacheConfig, EntryOptions, Invalidation, Ttl, ENTRY_OVERHEAD, TAG_OVERHEAD};
use super::error::CacheError;
use super::policy::{EntryInfo, Policy, Slot};
use super::stats::{CacheStats, Counters};
use super::value::CacheValue;

/// How much of each value `get_many` prefetches before copying.
const PREFETCH_VALUE_BYTES: usize = 1024;

/// Asks the CPU to start loading the cache line at `p` (a hint; no effect elsewhere).
#[inline(always)]
fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch(p.cast::<i8>(), std::arch::x86_64::_MM_HINT_T0)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Hash of a key, shared by the index and the frequency sketch.
pub fn hash_key(key: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key.as_bytes())
}

struct Entry {
    key: CompactString,
    hash: u64,
    value: CacheValue,
    weight: u64,
    expires_at: Option<Instant>,
    tags: Box<[Box<str>]>,
    compute_cost: Duration,
}

impl Entry {
    fn is_expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }
}

/// Why an entry left the cache.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Removal {
    Explicit,
    Evicted,
    Expired,
}

/// Entries, indexes and counters of one cache.
pub struct Store {
    config: CacheConfig,
    index: HashTable<Slot>,
    slots: Vec<Option<Entry>>,
    free: Vec<Slot>,
    policy: Box<dyn Policy>,
    expiry: BTreeSet<(Instant, Slot)>,
    tags: HashMap<Box<str>, HashSet<Slot>>,
    bytes: u64,
    counters: Counters,
}

impl Store {
    /// An empty store with these limits.
    pub fn new(config: CacheConfig) -> Self {
        Store {
            policy: config.policy.build(config.max_entries, config.max_bytes),
            config,
            index: HashTable::new(),
            slots: Vec::new(),
            free: Vec::new(),
            expiry: BTreeSet::new(),
            tags: HashMap::new(),
            bytes: 0,
            counters: Counters::default(),
        }
    }

    /// The limits this store enforces.
    pub fn config(&self) -> &CacheConfig {
        &self.config
    }

    fn entry(&self, slot: Slot) -> &Entry {
        self.slots[slot as usize]
            .as_ref()
            .expect("indexed slot holds an entry")
    }

    fn find(&self, hash: u64, key: &str) -> Option<Slot> {
        let slots = &self.slots;
        self.index
            .find(hash, |&s| {
                slots[s as usize].as_ref().is_some_and(|e| e.key == key)
            })
            .copied()
    }

    /// Reads `key`, counting a hit or a miss. An entry whose TTL has passed
    /// is removed and counts as a miss.
    pub fn get(&mut self, key: &str) -> Option<CacheValue> {
        self.get_with(key, CacheValue::clone)
    }

    /// Reads `key` like `get`, but lends the value to `f` instead of cloning it.
    pub fn get_with<R>(&mut self, key: &str, f: impl FnOnce(&CacheValue) -> R) -> Option<R> {
        let hash = hash_key(key);
        let slot = self.find(hash, key);
        self.read(slot, hash, f)
    }

    /// Reads many keys, as `get` does for each. The lookups are split in
    /// phases that prefetch every key's entry, then every value, so the
    /// memory latency of one key overlaps with the others'.
    pub fn get_many(&mut self, keys: &[&str]) -> Vec<Option<CacheValue>> {
        let hashes: Vec<u64> = keys.iter().map(|k| hash_key(k)).collect();
        for &hash in &hashes {
            for &slot in self.index.iter_hash(hash) {
                prefetch(self.slots.as_ptr().wrapping_add(slot as usize));
            }
        }
        let slots: Vec<Option<Slot>> = keys
            .iter()
            .zip(&hashes)
            .map(|(key, &hash)| {
                let slot = self.find(hash, key);
                if let Some(s) = slot {
                    let value = &self.entry(s).value;
                    let bytes = value.typed_bytes().unwrap_or_default();
                    for offset in (0..bytes.len().min(PREFETCH_VALUE_BYTES)).step_by(64) {
                        prefetch(bytes.as_ptr().wrapping_add(offset));
                    }
                }
                slot
            })
            .collect();
        slots
            .into_iter()
            .zip(hashes)
            .map(|(slot, hash)| self.read(slot, hash, CacheValue::clone))
            .collect()
    }

    /// Counts and returns the read of `slot` (a miss when `None` or expired).
    fn read<R>(
        &mut self,
        slot: Option<Slot>,
        hash: u64,
        f: impl FnOnce(&CacheValue) -> R,
    ) -> Option<R> {
        let Some(slot) = slot else {
            self.counters.misses += 1;
            return None;
        };
        let entry = self.entry(slot);
        if entry.expires_at.is_some() && entry.is_expired(Instant::now()) {
            self.remove_slot(slot, Removal::Expired);
            self.counters.misses += 1;
            return None;
        }
        let value = f(&entry.value);
        let saved = entry.compute_cost;
        self.counters.hits += 1;
        self.counters.time_saved += saved;
        self.policy.on_access(slot, hash);
        Some(value)
    }

    /// Whether `key` holds a live entry, without counting a read.
    pub fn contains(&self, key: &str) -> bool {
        self.find(hash_key(key), key)
            .is_some_and(|slot| !self.entry(slot).is_expired(Instant::now()))
    }

    /// Bytes an entry with this key, value and tags counts against the limit.
    pub fn weight_of(key: &str, value: &CacheValue, tags: &[String]) -> u64 {
        let tag_bytes: u64 = tags.iter().map(|t| t.len() as u64 + TAG_OVERHEAD).sum();
        ENTRY_OVERHEAD + key.len() as u64 + value.byte_len() as u64 + tag_bytes
    }

    /// Stores `value` under `key`, replacing any entry there, then evicts
    /// (expired entries first, then the policy's victims, never the entry just
    /// stored unless the policy's admission filter rejects it) until the limits
    /// hold. A value that could never fit is refused and nothing is evicted for
    /// it. Returns the entry's expiry time.
    pub fn insert(
        &mut self,
        key: &str,
        value: CacheValue,
        options: EntryOptions,
    ) -> Result<Option<Instant>, CacheError> {
        self.insert_at(key, value, options, Instant::now())
    }

    /// `insert` as of `now` (one clock read for many inserts).
    pub fn insert_at(
        &mut self,
        key: &str,
        value: CacheValue,
        options: EntryOptions,
        now: Instant,
    ) -> Result<Option<Instant>, CacheError> {
        let weight = Self::weight_of(key, &value, &options.tags);
        if weight > self.config.max_bytes {
            return Err(CacheError::TooLarge {
                key: key.to_string(),
                bytes: weight,
                max_bytes: self.config.max_bytes,
            });
        }
        let ttl = match options.ttl {
            Ttl::Default => self.config.default_ttl,
            Ttl::Never => None,
            Ttl::After(d) => Some(d),
        };
        let expires_at = ttl.map(|d| now + d);
        let hash = hash_key(key);
        let tags: Box<[Box<str>]> = options.tags.into_iter().map(Into::into).collect();
        let info = EntryInfo {
            hash,
            weight,
            expires_at,
        };
        let slot = match self.find(hash, key) {
            Some(slot) => {
                self.unindex_extras(slot);
                let entry = self.slots[slot as usize].as_mut().expect("live slot");
                self.bytes = self.bytes - entry.weight + weight;
                entry.value = value;
                entry.weight = weight;
                entry.expires_at = expires_at;
                entry.tags = tags;
                entry.compute_cost = options.compute_cost;
                self.policy.on_update(slot, info);
                slot
            }
            None => {
                let entry = Entry {
                    key: CompactString::from(key),
                    hash,
                    value,
                    weight,
                    expires_at,
                    tags,
                    compute_cost: options.compute_cost,
                };
                let slot = match self.free.pop() {
                    Some(slot) => {
                        self.slots[slot as usize] = Some(entry);
                        slot
                    }
                    None => {
                        self.slots.push(Some(entry));
                        (self.slots.len() - 1) as Slot
                    }
                };
                let slots = &self.slots;
                self.index.insert_unique(hash, slot, |&s| {
                    slots[s as usize].as_ref().map_or(0, |e| e.hash)
                });
                self.bytes += weight;
                self.policy.on_insert(slot, info);
                slot
            }
        };
        self.index_extras(slot);
        self.counters.inserts += 1;
        self.enforce_limits(now, slot);
        Ok(expires_at)
    }

    fn over_limits(&self) -> bool {
        self.len() as u64 > self.config.max_entries || self.bytes > self.config.max_bytes
    }

    fn enforce_limits(&mut self, now: Instant, newest: Slot) {
        if !self.over_limits() {
            return;
        }
        self.purge_expired(now);
        while self.over_limits() {
            let Some(victim) = self.policy.victim(newest) else {
                break;
            };
            self.remove_slot(victim, Removal::Evicted);
        }
    }

    /// Adds `slot` to the expiry and tag indexes.
    fn index_extras(&mut self, slot: Slot) {
        let entry = self.slots[slot as usize].as_ref().expect("live slot");
        if let Some(t) = entry.expires_at {
            self.expiry.insert((t, slot));
        }
        for tag in entry.tags.iter() {
            self.tags.entry(tag.clone()).or_default().insert(slot);
        }
    }

    /// Takes `slot` out of the expiry and tag indexes.
    fn unindex_extras(&mut self, slot: Slot) {
        let entry = self.slots[slot as usize].as_ref().expect("live slot");
        if let Some(t) = entry.expires_at {
            self.expiry.remove(&(t, slot));
        }
        for tag in entry.tags.iter() {
            if let Some(set) = self.tags.get_mut(&**tag) {
                set.remove(&slot);
                if set.is_empty() {
                    self.tags.remove(&**tag);
                }
            }
        }
    }

    fn remove_slot(&mut self, slot: Slot, why: Removal) {
        self.unindex_extras(slot);
        let entry = self.slots[slot as usize].take().expect("live slot");
        if let Ok(found) = self.index.find_entry(entry.hash, |&s| s == slot) {
            found.remove();
        }
        self.policy.on_remove(slot);
        self.bytes -= entry.weight;
        self.free.push(slot);
        match why {
            Removal::Explicit => {}
            Removal::Evicted => self.counters.evictions += 1,
            Removal::Expired => self.counters.expirations += 1,
        }
    }

    /// Removes `key`; true if it held an entry.
    pub fn remove(&mut self, key: &str) -> bool {
        match self.find(hash_key(key), key) {
            Some(slot) => {
                let expired = self.entry(slot).is_expired(Instant::now());
                let why = if expired {
                    Removal::Expired
                } else {
                    Removal::Explicit
                };
                self.remove_slot(slot, why);
                !expired
            }
            None => false,
        }
    }

    /// Removes every entry (counters are kept).
    pub fn clear(&mut self) {
        self.index.clear();
        self.slots.clear();
        self.free.clear();
        self.expiry.clear();
        self.tags.clear();
        self.policy.clear();
        self.bytes = 0;
    }

    /// Removes the entries an invalidation names; returns how many.
    pub fn invalidate(&mut self, what: &Invalidation) -> usize {
        let mut doomed: Vec<Slot> = match what {
            Invalidation::Tag(tag) => self
                .tags
                .get(tag.as_str())
                .map(|set| set.iter().copied().collect())
                .unwrap_or_default(),
            Invalidation::Prefix(prefix) => self
                .live_slots()
                .filter(|&(_, e)| e.key.starts_with(prefix.as_str()))
                .map(|(s, _)| s)
                .collect(),
            Invalidation::Keys(keys) => keys
                .iter()
                .filter_map(|k| self.find(hash_key(k), k))
                .collect(),
        };
        doomed.sort_unstable();
        doomed.dedup();
        let now = Instant::now();
        let mut removed = 0;
        for slot in doomed {
            if self.entry(slot).is_expired(now) {
                self.remove_slot(slot, Removal::Expired);
            } else {
                self.remove_slot(slot, Removal::Explicit);
                removed += 1;
            }
        }
        removed
    }

    /// Removes every entry whose TTL has passed by `now`; returns how many.
    pub fn purge_expired(&mut self, now: Instant) -> usize {
        let mut purged = 0;
        while let Some(&(t, slot)) = self.expiry.first() {
            if t > now {
                break;
            }
            self.remove_slot(slot, Removal::Expired);
            purged += 1;
        }
        purged
    }

    /// When the next entry expires.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.expiry.first().map(|&(t, _)| t)
    }

    fn live_slots(&self) -> impl Iterator<Item = (Slot, &Entry)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.as_ref().map(|e| (i as Slot, e)))
    }

    /// Keys of the live entries.
    pub fn keys(&self) -> Vec<String> {
        let now = Instant::now();
        self.live_slots()
            .filter(|(_, e)| !e.is_expired(now))
            .map(|(_, e)| e.key.to_string())
            .collect()
    }

    /// Number of entries held (expired ones not yet reclaimed included).
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether the store holds no entry.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Bytes counted against the limit.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Adds one sampled read duration to the statistics.
    pub fn record_access_time(&mut self, elapsed: Duration) {
        self.counters.access_time += elapsed;
        self.counters.access_samples += 1;
    }

    /// A snapshot of counters and occupancy.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            counters: self.counters.clone(),
            entries: self.len() as u64,
            bytes: self.bytes,
            max_bytes: self.config.max_bytes,
            max_entries: self.config.max_entries,
        }
    }

    /// Zeroes the counters.
    pub fn reset_stats(&mut self) {
        self.counters = Counters::default();
    }
}
