//! Cost of recording one latency sample (`cargo bench --bench record`):
//! nanoseconds per `metrics::Handle::record` with one thread and with every
//! core recording into the same series at once (the batch workers' case).
//! Prints one JSON object per thread count.

use std::time::{Duration, Instant};

use gama_core::metrics::Handle;

static SERIES: Handle = Handle::new("bench", "record");

/// Samples each thread records.
const SAMPLES: u32 = 2_000_000;

fn main() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    for threads in [1, cores] {
        let started = Instant::now();
        std::thread::scope(|s| {
            for t in 0..threads {
                s.spawn(move || {
                    for i in 0..SAMPLES {
                        SERIES.record(Duration::from_nanos(u64::from(i % 4096 + t as u32)));
                    }
                });
            }
        });
        let per_record = started.elapsed().as_nanos() as f64 / f64::from(SAMPLES);
        println!("{{\"threads\":{threads},\"nsPerRecord\":{per_record:.1}}}");
    }
}
