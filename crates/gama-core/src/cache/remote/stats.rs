//! Counters of the Redis tier: updated with relaxed atomics by its tasks,
//! read as one snapshot.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use hdrhistogram::Histogram;
use parking_lot::Mutex;

use crate::metrics::{histogram, latency, Handle, Latency};

/// Round trips to Redis, for the profiler.
static ROUND_TRIP: Handle = Handle::new("cache", "redis.roundTrip");

/// The tier's state as users see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemoteState {
    /// Not yet connected since the cache was made.
    Connecting,
    /// Connected: reads and writes go to Redis.
    Up,
    /// Unreachable: the cache serves L1 only and retries with backoff.
    Down,
    /// Closed by its owner: the cache serves L1 only, for good.
    Closed,
}

impl RemoteState {
    /// `"connecting"`, `"up"`, `"down"` or `"closed"`.
    pub fn as_str(self) -> &'static str {
        match self {
            RemoteState::Connecting => "connecting",
            RemoteState::Up => "up",
            RemoteState::Down => "down",
            RemoteState::Closed => "closed",
        }
    }
}

/// A snapshot of the tier's counters.
#[derive(Clone, Debug, Default)]
pub struct RemoteStats {
    /// L2 lookups that found a value.
    pub hits: u64,
    /// L2 lookups that found nothing, timed out, failed or were skipped while down.
    pub misses: u64,
    /// Lookups that timed out (counted as misses too).
    pub timeouts: u64,
    /// Round trips completed.
    pub round_trips: u64,
    /// Latency of the round trips.
    pub latency: Latency,
    /// Entries written.
    pub writes: u64,
    /// Entries whose write failed.
    pub write_errors: u64,
    /// Entries not written because Redis was down or they were too large.
    pub writes_skipped: u64,
    /// Bytes of values sent (after compression).
    pub bytes_sent: u64,
    /// Bytes of values received.
    pub bytes_received: u64,
    /// Payload bytes before compression, of the values compressed.
    pub raw_bytes_compressed: u64,
    /// Bytes those values took after compression.
    pub compressed_bytes: u64,
    /// Errors of every kind (failed round trips, undecodable values, refused invalidations).
    pub errors: u64,
    /// Invalidations published to other processes.
    pub invalidations_sent: u64,
    /// Invalidations received from other processes.
    pub invalidations_received: u64,
    /// Times the tier went down.
    pub disconnects: u64,
}

impl RemoteStats {
    /// Raw over compressed bytes of the values compressed (1 when none was).
    pub fn compression_ratio(&self) -> f64 {
        if self.compressed_bytes == 0 {
            1.0
        } else {
            self.raw_bytes_compressed as f64 / self.compressed_bytes as f64
        }
    }
}

/// The live counters.
pub(super) struct Counters {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub timeouts: AtomicU64,
    pub round_trips: AtomicU64,
    pub writes: AtomicU64,
    pub write_errors: AtomicU64,
    pub writes_skipped: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub bytes_received: AtomicU64,
    pub raw_bytes_compressed: AtomicU64,
    pub compressed_bytes: AtomicU64,
    pub errors: AtomicU64,
    pub invalidations_sent: AtomicU64,
    pub invalidations_received: AtomicU64,
    pub disconnects: AtomicU64,
    latency: Mutex<Histogram<u64>>,
}

impl Counters {
    pub fn new() -> Self {
        let zero = || AtomicU64::new(0);
        Counters {
            hits: zero(),
            misses: zero(),
            timeouts: zero(),
            round_trips: zero(),
            writes: zero(),
            write_errors: zero(),
            writes_skipped: zero(),
            bytes_sent: zero(),
            bytes_received: zero(),
            raw_bytes_compressed: zero(),
            compressed_bytes: zero(),
            errors: zero(),
            invalidations_sent: zero(),
            invalidations_received: zero(),
            disconnects: zero(),
            latency: Mutex::new(histogram()),
        }
    }

    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    /// Records one completed round trip.
    pub fn round_trip(&self, elapsed: Duration) {
        self.round_trips.fetch_add(1, Relaxed);
        let _ = self
            .latency
            .lock()
            .record((elapsed.as_micros() as u64).max(1));
        ROUND_TRIP.record(elapsed);
    }

    pub fn snapshot(&self) -> RemoteStats {
        let get = |c: &AtomicU64| c.load(Relaxed);
        RemoteStats {
            hits: get(&self.hits),
            misses: get(&self.misses),
            timeouts: get(&self.timeouts),
            round_trips: get(&self.round_trips),
            latency: latency(&self.latency.lock()),
            writes: get(&self.writes),
            write_errors: get(&self.write_errors),
            writes_skipped: get(&self.writes_skipped),
            bytes_sent: get(&self.bytes_sent),
            bytes_received: get(&self.bytes_received),
            raw_bytes_compressed: get(&self.raw_bytes_compressed),
            compressed_bytes: get(&self.compressed_bytes),
            errors: get(&self.errors),
            invalidations_sent: get(&self.invalidations_sent),
            invalidations_received: get(&self.invalidations_received),
            disconnects: get(&self.disconnects),
        }
    }

    pub fn reset(&self) {
        for c in [
            &self.hits,
            &self.misses,
            &self.timeouts,
            &self.round_trips,
            &self.writes,
            &self.write_errors,
            &self.writes_skipped,
            &self.bytes_sent,
            &self.bytes_received,
            &self.raw_bytes_compressed,
            &self.compressed_bytes,
            &self.errors,
            &self.invalidations_sent,
            &self.invalidations_received,
            &self.disconnects,
        ] {
            c.store(0, Relaxed);
        }
        self.latency.lock().reset();
    }
}
