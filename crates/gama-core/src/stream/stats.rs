//! What the streams did: counters, frame rate, push-to-frames latency.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use parking_lot::Mutex;

use super::registry::EndReason;
use crate::metrics;
use crate::metrics::{histogram, latency, Latency};

/// Push-to-frames latency, as the profiler sees it.
static PUSH_TO_FRAMES: metrics::Handle = metrics::Handle::new("streams", "push_to_frames");

/// A snapshot of a `Streams`' statistics.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StreamStats {
    /// Streams open now.
    pub open: usize,
    /// Streams started.
    pub started: u64,
    /// Streams ended by `finalize`.
    pub finalized: u64,
    /// Streams ended for being idle.
    pub idle_closed: u64,
    /// Streams ended by closing the streams.
    pub closed: u64,
    /// Streams aborted.
    pub aborted: u64,
    /// Streams whose audio could not be extracted (e.g. none pushed).
    pub failed: u64,
    /// Frames computed.
    pub frames: u64,
    /// Frames computed per second since the streams were made.
    pub frames_per_second: f64,
    /// From the push of a chunk to its frames reaching their consumer.
    pub latency: Latency,
    /// Bytes the open streams' buffers hold.
    pub pooled_bytes: u64,
}

/// Counters shared by the streams' threads.
pub(super) struct Counters {
    pub started: AtomicU64,
    pub aborted: AtomicU64,
    pub frames: AtomicU64,
    finalized: AtomicU64,
    idle_closed: AtomicU64,
    closed: AtomicU64,
    failed: AtomicU64,
    latency: Mutex<Histogram<u64>>,
    created: Instant,
}

impl Counters {
    pub fn new() -> Self {
        Counters {
            started: AtomicU64::new(0),
            aborted: AtomicU64::new(0),
            frames: AtomicU64::new(0),
            finalized: AtomicU64::new(0),
            idle_closed: AtomicU64::new(0),
            closed: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            latency: Mutex::new(histogram()),
            created: Instant::now(),
        }
    }

    /// Counts a stream that ended for `reason` (none: it failed).
    pub fn ended(&self, reason: Option<EndReason>) {
        let counter = match reason {
            Some(EndReason::Finalized) => &self.finalized,
            Some(EndReason::Idle) => &self.idle_closed,
            Some(EndReason::Closed) => &self.closed,
            None => &self.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_latency(&self, elapsed: Duration) {
        let us = (elapsed.as_micros() as u64).clamp(1, 3_600_000_000);
        let _ = self.latency.lock().record(us);
        PUSH_TO_FRAMES.record(elapsed);
    }

    pub fn snapshot(&self, open: usize, pooled_bytes: u64) -> StreamStats {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let frames = load(&self.frames);
        let seconds = self.created.elapsed().as_secs_f64().max(1e-9);
        StreamStats {
            open,
            started: load(&self.started),
            finalized: load(&self.finalized),
            idle_closed: load(&self.idle_closed),
            closed: load(&self.closed),
            aborted: load(&self.aborted),
            failed: load(&self.failed),
            frames,
            frames_per_second: frames as f64 / seconds,
            latency: latency(&self.latency.lock()),
            pooled_bytes,
        }
    }
}
