//! What the profiler's recording costs the batch processor
//! (`cargo bench --bench recording`), two ways, for the batch benchmark's
//! tiny work (MEASURE over 1,000 floats) and its EXTRACT_FEATURES (logMel +
//! mfcc of one-second clips):
//!
//! - measured: the same items run with native measurement on and off in
//!   many short runs (about 10 ms each) on every core, in ABBA order (on,
//!   off, off, on, ...) so that a drift in the machine's load cancels; a
//!   run's cost is the CPU time of all the process's threads (Linux
//!   schedstat, in ns; wall time elsewhere), which other processes disturb
//!   far less than wall time; the ratio of the two sides' total costs (a
//!   few long pairs scattered by several percent either way on a shared
//!   machine, more than the cost measured);
//! - derived: what the recording a batch does costs (its items' wait and
//!   run samples into the processor's `OpSeries`, with every core recording
//!   at once, plus one `features.extract` sample per clip), per item,
//!   against the CPU time an item takes with recording off.
//!
//! Prints one JSON object per workload.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Sender};
use gama_core::batch::{
    estimate, Config, Event, Input, Item, OpName, OpSeries, Processor, SampleBuffer, Samples, Sink,
    EXTRACT_FEATURES, MEASURE,
};
use gama_core::features::{Feature, FeatureOptions};
use gama_core::metrics::{self, Handle};

/// Items per batch (the processor's default, and the batch benchmark's).
const BATCH: usize = 8;

/// Counts finished items and says when a run's last one is done.
struct Finish {
    left: AtomicUsize,
    done: Sender<()>,
}

impl Sink for Finish {
    fn deliver(&self, event: Event) {
        if let Event::Done { result, .. } = event {
            assert!(result.is_ok(), "an item failed: {result:?}");
            if self.left.fetch_sub(1, Ordering::AcqRel) == 1 {
                let _ = self.done.send(());
            }
        }
    }
}

/// CPU ns of every thread of this process so far (None off Linux).
fn cpu_ns() -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

/// Cost of one run in ns: CPU time where the OS tells it, else wall time.
fn cost_of(run: impl FnOnce()) -> u64 {
    let (cpu0, wall0) = (cpu_ns(), Instant::now());
    run();
    match (cpu0, cpu_ns()) {
        (Some(a), Some(b)) => b - a,
        _ => wall0.elapsed().as_nanos() as u64,
    }
}

/// CPU ns of the calling thread so far (None off Linux).
fn thread_cpu_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    stat.split_whitespace().next()?.parse().ok()
}

/// Mean ns of one `record()` call with every core calling at once: each
/// thread's own CPU time where the OS tells it (time a thread spends
/// descheduled by a neighbour is not counted), else wall time.
fn cost_per_call(threads: usize, record: impl Fn() + Sync) -> f64 {
    const CALLS: u32 = 500_000;
    let spent: u64 = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let (cpu0, wall0) = (thread_cpu_ns(), Instant::now());
                    for _ in 0..CALLS {
                        record();
                    }
                    match (cpu0, thread_cpu_ns()) {
                        (Some(a), Some(b)) => b - a,
                        _ => wall0.elapsed().as_nanos() as u64,
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("a recorder"))
            .sum()
    });
    spent as f64 / (threads as f64 * f64::from(CALLS))
}

/// ns of one `OpSeries::record_batch` of a batch's waits and runs (each
/// worker into its own shard, as in a processor).
fn batch_record_ns(threads: usize) -> f64 {
    let series = OpSeries::default();
    let op: OpName = MEASURE.into();
    let samples = |base: u64| -> Vec<Duration> {
        (0..BATCH as u64)
            .map(|i| Duration::from_nanos(base + 700 * i))
            .collect()
    };
    let (waits, runs) = (samples(40_000), samples(1_500));
    let at = Instant::now();
    cost_per_call(threads, || {
        series.record_batch(&op, at, waits.iter().copied(), runs.iter().copied())
    })
}

/// ns of one `features.extract`-style sample (`Handle::record_since`).
fn sample_record_ns(threads: usize) -> f64 {
    static SERIES: Handle = Handle::new("bench", "recording");
    let at = Instant::now();
    cost_per_call(threads, || {
        SERIES.record_since(at);
    })
}

/// Runs `n` items of `op` over `clip` per run, `runs` runs (a multiple
/// of 4: ABBA); `recorded_ns` is what recording costs per item (derived).
fn workload(
    name: &str,
    op: &str,
    clip: &[f32],
    options: FeatureOptions,
    (n, runs): (usize, usize),
    recorded_ns: f64,
) {
    let options = Arc::new(options);
    let buffer = Arc::new(SampleBuffer::from(clip.to_vec()));
    let (tx, rx) = bounded(1);
    let sink = Arc::new(Finish {
        left: AtomicUsize::new(0),
        done: tx,
    });
    let processor =
        Processor::new(Config::default(), sink.clone(), None, None).expect("a processor");
    let mut next_id = 0;
    let mut run = || {
        let items = (0..n)
            .map(|_| {
                next_id += 1;
                Item {
                    id: next_id,
                    op: op.into(),
                    priority: 5,
                    group: clip.len().next_power_of_two() as u64,
                    estimate: estimate(op, clip.len(), &options),
                    input: Input::Audio {
                        samples: Samples::new(buffer.clone(), 0..clip.len()).expect("in range"),
                        options: options.clone(),
                        cache_key: None,
                    },
                    wants_progress: false,
                    stop: Arc::default(),
                    enqueued: Instant::now(),
                    seq: next_id,
                }
            })
            .collect();
        sink.left.store(n, Ordering::Release);
        processor.submit(items).expect("accepted");
        rx.recv().expect("the run finishes");
    };
    run();
    // Total cost with recording off, on.
    let mut cost = [0u64; 2];
    for r in 0..runs {
        let recording = matches!(r % 4, 0 | 3);
        metrics::set_enabled(recording);
        cost[usize::from(recording)] += cost_of(&mut run);
    }
    metrics::set_enabled(true);
    let per_item = |c: u64| c as f64 / (n * runs / 2) as f64;
    let (on, off) = (per_item(cost[1]), per_item(cost[0]));
    println!(
        "{{\"workload\":\"{name}\",\"items\":{n},\"runs\":{runs},\"onNsPerItem\":{on:.1},\"offNsPerItem\":{off:.1},\"measuredPercent\":{:.2},\"recordedNsPerItem\":{recorded_ns:.2},\"derivedPercent\":{:.3}}}",
        (on / off - 1.0) * 100.0,
        recorded_ns / off * 100.0,
    );
}

fn main() {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_batch = batch_record_ns(threads);
    let per_sample = sample_record_ns(threads);
    // A batch records its items' waits and runs in one call.
    let batch_share = per_batch / BATCH as f64;
    let tone =
        |len: usize| -> Vec<f32> { (0..len).map(|i| (i as f32 * 0.05).sin() * 0.5).collect() };
    let tiny = FeatureOptions::new(16000.0);
    workload(
        "tiny",
        MEASURE,
        &tone(1000),
        tiny,
        (10_000, 400),
        batch_share,
    );
    let mut options = FeatureOptions::new(16000.0);
    options.n_fft = 512;
    options.win_length = 512;
    options.hop_length = 160;
    options.n_mels = 64;
    options.n_mfcc = 13;
    options.features = vec![Feature::LogMel, Feature::Mfcc];
    // Each clip also records one features.extract sample.
    workload(
        "extract",
        EXTRACT_FEATURES,
        &tone(16000),
        options,
        (128, 240),
        batch_share + per_sample,
    );
}
