//! Hit, miss and eviction counters and the snapshot users read.

use std::time::Duration;

/// Running counters of one cache; reset by `reset_stats`.
#[derive(Clone, Debug, Default)]
pub struct Counters {
    /// Reads that found a live entry.
    pub hits: u64,
    /// Reads that found nothing (or an expired entry).
    pub misses: u64,
    /// Values stored, new or replacing.
    pub inserts: u64,
    /// Entries removed to respect a limit.
    pub evictions: u64,
    /// Entries removed because their TTL passed.
    pub expirations: u64,
    /// Sum of sampled read durations.
    pub access_time: Duration,
    /// Number of sampled reads.
    pub access_samples: u64,
    /// Compute time avoided by hits on entries whose compute cost is known.
    pub time_saved: Duration,
}

/// A snapshot of a cache's counters and occupancy.
#[derive(Clone, Debug)]
pub struct CacheStats {
    /// Counters since creation or the last reset.
    pub counters: Counters,
    /// Live entries.
    pub entries: u64,
    /// Bytes counted against the limit.
    pub bytes: u64,
    /// The byte limit.
    pub max_bytes: u64,
    /// The entry limit.
    pub max_entries: u64,
}

impl CacheStats {
    /// Hits over reads, 0 when nothing was read.
    pub fn hit_rate(&self) -> f64 {
        let reads = self.counters.hits + self.counters.misses;
        if reads == 0 {
            0.0
        } else {
            self.counters.hits as f64 / reads as f64
        }
    }

    /// Mean duration of a read (lookup and copy-out), from sampled reads.
    pub fn average_access_time(&self) -> Duration {
        match self.counters.access_samples {
            0 => Duration::ZERO,
            n => Duration::from_nanos((self.counters.access_time.as_nanos() / n as u128) as u64),
        }
    }
}
