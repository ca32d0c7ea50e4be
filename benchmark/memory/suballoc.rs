//! Sub-allocator benchmark (`cargo bench --bench suballoc`): per strategy, a
//! fixed-seed trace of 1,000,000 operations, sizes log-uniform from 256 B to
//! 64 MiB, about half of them frees. Prints one JSON object per strategy:
//! mean and p99 allocation latency (ns) and the fragmentation at the end.
//! Then, where a CUDA GPU is usable, pooled GPU allocate/free pairs against
//! raw cuMemAlloc/cuMemFree pairs for 1 MiB and 64 MiB (one JSON object each).

use std::time::Instant;

use gama_core::memory::gpu::{driver_present, GpuPool};
use gama_core::memory::suballoc::{Config, Strategy, SubAllocator};

/// xorshift64*: a small fixed-seed generator, so every strategy sees one trace.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Pooled vs raw device allocation pairs, or why they were skipped.
fn gpu_pairs() {
    if !driver_present() {
        println!("{{\"gpu\":\"skipped\",\"reason\":\"no CUDA driver library\"}}");
        return;
    }
    let pool = match GpuPool::open(
        0,
        Config {
            strategy: Strategy::BestFit,
            alignment: 256,
            chunk_size: 64 << 20,
            max_bytes: 1 << 30,
        },
    ) {
        Ok(pool) => pool,
        Err(e) => {
            println!("{{\"gpu\":\"skipped\",\"reason\":\"{e}\"}}");
            return;
        }
    };
    for (label, size, pairs) in [
        ("1 MiB", 1u64 << 20, 20_000u32),
        ("64 MiB", 64 << 20, 2_000),
    ] {
        pool.free(pool.allocate(size).expect("warm-up"));
        let started = Instant::now();
        for _ in 0..pairs {
            pool.free(pool.allocate(size).expect("the pool has room"));
        }
        let pool_ns = started.elapsed().as_nanos() as f64 / pairs as f64;
        let raw_ns = pool
            .time_raw_pairs(size, pairs / 10)
            .expect("cuMemAlloc works");
        println!("{{\"gpuSize\":\"{label}\",\"poolNs\":{pool_ns:.1},\"rawNs\":{raw_ns:.1}}}");
    }
}

fn main() {
    const OPERATIONS: usize = 1_000_000;
    let (min, max) = (256f64.ln(), (64.0 * 1024.0 * 1024.0f64).ln());
    for (name, strategy) in [
        ("best-fit", Strategy::BestFit),
        ("first-fit", Strategy::FirstFit),
        ("worst-fit", Strategy::WorstFit),
        ("buddy", Strategy::Buddy),
    ] {
        let mut pool = SubAllocator::new(Config {
            strategy,
            alignment: 256,
            chunk_size: 256 << 20,
            max_bytes: 1 << 40,
        });
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut live = Vec::new();
        let mut latencies = Vec::with_capacity(OPERATIONS / 2 + 1);
        for _ in 0..OPERATIONS {
            if !live.is_empty() && rng.unit() < 0.5 {
                let i = (rng.next() % live.len() as u64) as usize;
                pool.free(live.swap_remove(i));
            } else {
                let size = (min + (max - min) * rng.unit()).exp() as u64;
                let started = Instant::now();
                let block = pool
                    .allocate(size)
                    .expect("the trace stays within the limit");
                latencies.push(started.elapsed().as_nanos() as u64);
                live.push(block);
            }
        }
        latencies.sort_unstable();
        let mean = latencies.iter().sum::<u64>() as f64 / latencies.len() as f64;
        let p99 = latencies[latencies.len() * 99 / 100];
        let stats = pool.stats();
        println!(
            "{{\"strategy\":\"{name}\",\"allocations\":{},\"meanNs\":{mean:.1},\"p99Ns\":{p99},\"fragmentation\":{:.4},\"liveBlocks\":{},\"reservedBytes\":{}}}",
            latencies.len(),
            stats.fragmentation,
            stats.blocks,
            stats.reserved
        );
    }
    gpu_pairs();
}
