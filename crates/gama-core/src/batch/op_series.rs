//! The profiler's per-operation wait and run series of one processor,
//! sharded by recording thread like the global registry: a worker records
//! into its own shard (its own lock and memory, on its own cache line),
//! never under the processor's lock, and reading merges the shards. Kept
//! under the processor's lock, two workers finishing batches moved the
//! histograms' memory between their cores at every batch (measured: 4-5%
//! of the CPU time of tiny items).

use std::time::{Duration, Instant};

use hashbrown::HashMap;

use super::item::OpName;
use crate::metrics::registry::{minute_of, Series, Summary};
use crate::metrics::sharded::Sharded;

/// Which of an operation's two series.
#[derive(Clone, Copy)]
pub enum Phase {
    /// Time from submission to start.
    Wait,
    /// Time from start to finish.
    Run,
}

/// Wait and run series per operation type, reported by the profiler.
#[derive(Default)]
pub struct OpSeries {
    shards: Sharded<HashMap<OpName, [Series; 2]>>,
}

impl OpSeries {
    /// Records `samples` of `op`'s `phase`, taken in the minute of `at`
    /// (an instant the caller has: no clock read here), when native
    /// measurement is on.
    pub fn record(
        &self,
        op: &OpName,
        phase: Phase,
        at: Instant,
        samples: impl Iterator<Item = Duration>,
    ) {
        self.with_series(op, at, |series, minute| {
            series[phase as usize].record_many(minute, samples)
        });
    }

    /// Records a native batch's `waits` and `runs` at once (one shard
    /// lock and lookup for both), taken in the minute of `at`.
    pub fn record_batch(
        &self,
        op: &OpName,
        at: Instant,
        waits: impl Iterator<Item = Duration>,
        runs: impl Iterator<Item = Duration>,
    ) {
        self.with_series(op, at, |[wait, run], minute| {
            wait.record_many(minute, waits);
            run.record_many(minute, runs);
        });
    }

    /// Runs `record` on `op`'s series in the calling thread's shard, with
    /// the minute of `at`, when native measurement is on.
    fn with_series(&self, op: &OpName, at: Instant, record: impl FnOnce(&mut [Series; 2], u64)) {
        if crate::metrics::enabled() {
            let minute = minute_of(at);
            record(self.shards.local().entry_ref(op).or_default(), minute);
        }
    }

    /// The series as profiler summaries (component `batch`, `OP.wait` and `OP.run`).
    pub fn summaries(&self, now: u64, last_minutes: Option<u64>) -> Vec<Summary> {
        let mut merged: HashMap<OpName, [Series; 2]> = HashMap::new();
        for shard in self.shards.each() {
            for (op, series) in shard.iter() {
                let into = merged.entry_ref(op).or_default();
                into[0].absorb(&series[0]);
                into[1].absorb(&series[1]);
            }
        }
        let mut out = Vec::new();
        for (op, [wait, run]) in &merged {
            out.extend(wait.summary("batch", &format!("{op}.wait"), now, last_minutes));
            out.extend(run.summary("batch", &format!("{op}.run"), now, last_minutes));
        }
        out
    }

    /// Forgets every sample.
    pub fn clear(&self) {
        for mut shard in self.shards.each() {
            shard.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_from_more_threads_than_shards_merge_per_operation_and_phase() {
        let series = OpSeries::default();
        let (a, b): (OpName, OpName) = ("A".into(), "B".into());
        let threads = crate::metrics::sharded::shard_count() + 3;
        let at = Instant::now();
        std::thread::scope(|s| {
            for t in 0..threads as u64 {
                let (series, a, b) = (&series, a.clone(), b.clone());
                s.spawn(move || {
                    let waits = (0..8).map(|i| Duration::from_micros(10 + i % 2));
                    series.record(&a, Phase::Wait, at, waits);
                    series.record(
                        &b,
                        Phase::Run,
                        at,
                        std::iter::once(Duration::from_millis(t + 1)),
                    );
                });
            }
        });
        let now = crate::metrics::registry::minute_now();
        let found = |name: &str| {
            let all = series.summaries(now, None);
            all.into_iter().find(|s| s.operation == name)
        };
        let wait = found("A.wait").expect("A's waits");
        assert_eq!(
            (wait.component.as_str(), wait.count),
            ("batch", 8 * threads as u64)
        );
        assert!((wait.mean_ms - 0.0105).abs() < 1e-9, "{}", wait.mean_ms);
        let run = found("B.run").expect("B's runs");
        assert_eq!(run.count, threads as u64);
        assert!((run.max_ms - threads as f64).abs() / (threads as f64) < 0.01);
        assert!(found("A.run").is_none() && found("B.wait").is_none());
        series.clear();
        assert!(series.summaries(now, None).is_empty());
    }
}
