//! Counters and latency histograms of a processor.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::features::gpu::GpuTiming;
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
    /// EXTRACT_FEATURES batches run on the GPU.
    pub gpu_batches: u64,
    /// Batches meant for the GPU that ran on the workers (no room in the
    /// GPU budget, or a GPU failure under `Auto`).
    pub gpu_fallbacks: u64,
    /// Device time of the GPU batches' kernels.
    pub gpu_time: Duration,
    /// Device time of their copies in and out.
    pub gpu_copy_time: Duration,
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
    gpu_batches: u64,
    gpu_fallbacks: u64,
    gpu_time: Duration,
    gpu_copy_time: Duration,
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
            gpu_batches: 0,
            gpu_fallbacks: 0,
            gpu_time: Duration::ZERO,
            gpu_copy_time: Duration::ZERO,
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

    /// Worker time spent on native items.
    pub fn busy(&mut self, time: Duration) {
        self.busy += time;
    }

    /// A batch ran on the GPU, taking `timing` there.
    pub fn gpu_batch(&mut self, timing: GpuTiming) {
        self.gpu_batches += 1;
        self.gpu_time += timing.compute;
        self.gpu_copy_time += timing.copy_in + timing.copy_out;
    }

    /// A batch meant for the GPU ran on the workers.
    pub fn gpu_fallback(&mut self) {
        self.gpu_fallbacks += 1;
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
            gpu_batches: self.gpu_batches,
            gpu_fallbacks: self.gpu_fallbacks,
            gpu_time: self.gpu_time,
            gpu_copy_time: self.gpu_copy_time,
        }
    }
}
