//! Counters and latency histograms of a processor.

use std::time::{Duration, Instant};

use hashbrown::HashMap;
use hdrhistogram::Histogram;

use super::item::OpName;
use crate::metrics::registry::{minute_now, Series, Summary};
use crate::metrics::{histogram, latency, Latency};

/// A snapshot of `Recorder`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// Items waiting.
    pub queued: u64,
    /// Items in started batches.
    pub running: u64,
    /// Items that succeeded.
    pub completed: u64,
    /// Items that failed (errors, timeouts, budget).
    pub failed: u64,
    /// Items cancelled or dropped by a forced close.
    pub cancelled: u64,
    /// Batches started.
    pub batches: u64,
    /// Mean items per batch.
    pub average_batch_size: f64,
    /// Items finished per second since the processor started.
    pub throughput: f64,
    /// Time from submission to start.
    pub wait: Latency,
    /// Time from start to finish.
    pub run: Latency,
    /// Share of worker time spent running native items (0 to 1).
    pub utilisation: f64,
}

/// Records what the processor did; kept under the processor's lock.
pub struct Recorder {
    started: Instant,
    completed: u64,
    failed: u64,
    cancelled: u64,
    batches: u64,
    batched_items: u64,
    busy: Duration,
    wait: Histogram<u64>,
    run: Histogram<u64>,
    /// Wait and run series per operation type, reported by the profiler.
    by_op: HashMap<OpName, (Series, Series)>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            started: Instant::now(),
            completed: 0,
            failed: 0,
            cancelled: 0,
            batches: 0,
            batched_items: 0,
            busy: Duration::ZERO,
            wait: histogram(),
            run: histogram(),
            by_op: HashMap::new(),
        }
    }
}

impl Recorder {
    /// A batch of `items` started; `waits` are their queue times.
    pub fn batch_started(&mut self, waits: impl Iterator<Item = Duration>) {
        self.batches += 1;
        for wait in waits {
            self.batched_items += 1;
            self.wait.saturating_record(wait.as_micros().max(1) as u64);
        }
    }

    /// An item finished after running for `ran`.
    pub fn finished(&mut self, ok: bool, cancelled: bool, ran: Option<Duration>) {
        match (ok, cancelled) {
            (true, _) => self.completed += 1,
            (false, true) => self.cancelled += 1,
            (false, false) => self.failed += 1,
        }
        if let Some(ran) = ran {
            self.run.saturating_record(ran.as_micros().max(1) as u64);
        }
    }

    /// Per-operation wait (`run == false`) or run samples, for the profiler
    /// (nothing when native measurement is off).
    pub fn record_op(&mut self, op: &OpName, run: bool, samples: impl Iterator<Item = Duration>) {
        if !crate::metrics::enabled() {
            return;
        }
        let minute = minute_now();
        let (wait_series, run_series) = self.by_op.entry_ref(op).or_default();
        if run {
            run_series.record_many(minute, samples);
        } else {
            wait_series.record_many(minute, samples);
        }
    }

    /// The per-operation series as profiler summaries (component `batch`).
    pub fn op_summaries(&self, now: u64, last_minutes: Option<u64>) -> Vec<Summary> {
        let mut out = Vec::new();
        for (op, (wait, run)) in &self.by_op {
            out.extend(wait.summary("batch", &format!("{op}.wait"), now, last_minutes));
            out.extend(run.summary("batch", &format!("{op}.run"), now, last_minutes));
        }
        out
    }

    /// Forgets the per-operation series.
    pub fn clear_ops(&mut self) {
        self.by_op.clear();
    }

    /// Worker time spent on native items.
    pub fn busy(&mut self, time: Duration) {
        self.busy += time;
    }

    /// Items completed, failed and cancelled so far.
    pub fn outcomes(&self) -> (u64, u64, u64) {
        (self.completed, self.failed, self.cancelled)
    }

    /// Counts with the given queue and running figures.
    pub fn snapshot(&self, queued: u64, running: u64, threads: usize) -> Snapshot {
        let elapsed = self.started.elapsed().as_secs_f64().max(1e-9);
        Snapshot {
            queued,
            running,
            completed: self.completed,
            failed: self.failed,
            cancelled: self.cancelled,
            batches: self.batches,
            average_batch_size: if self.batches == 0 {
                0.0
            } else {
                self.batched_items as f64 / self.batches as f64
            },
            throughput: (self.completed + self.failed) as f64 / elapsed,
            wait: latency(&self.wait),
            run: latency(&self.run),
            utilisation: (self.busy.as_secs_f64() / (elapsed * threads.max(1) as f64)).min(1.0),
        }
    }
}
