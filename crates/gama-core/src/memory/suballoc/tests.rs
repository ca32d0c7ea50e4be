//! Placement rules of each strategy and a randomized check of the invariants.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::*;

const ALL: [Strategy; 4] = [
    Strategy::BestFit,
    Strategy::FirstFit,
    Strategy::WorstFit,
    Strategy::Buddy,
];

fn allocator(strategy: Strategy, chunk_size: u64, max_bytes: u64) -> SubAllocator {
    SubAllocator::new(Config {
        strategy,
        alignment: 256,
        chunk_size,
        max_bytes,
    })
}

/// Live blocks must not overlap, must be aligned and lie inside their chunk;
/// with the free blocks they must tile every chunk exactly.
fn check(a: &SubAllocator, live: &[Block]) {
    let align = a.config().alignment;
    for b in live {
        assert_eq!(b.offset % align, 0, "{b:?} is not aligned");
        assert!(
            b.offset + b.size <= a.chunks()[b.chunk],
            "{b:?} overruns its chunk"
        );
    }
    let mut all: Vec<(Block, bool)> = live.iter().map(|b| (*b, true)).collect();
    all.extend(a.free_blocks().into_iter().map(|b| (b, false)));
    all.sort_by_key(|(b, _)| (b.chunk, b.offset));
    for (chunk, &size) in a.chunks().iter().enumerate().filter(|(_, &s)| s > 0) {
        let mut at = 0;
        for (b, _) in all.iter().filter(|(b, _)| b.chunk == chunk) {
            assert_eq!(
                b.offset, at,
                "gap or overlap in chunk {chunk} at {at}: {b:?}"
            );
            at += b.size;
        }
        assert_eq!(at, size, "chunk {chunk} is not tiled exactly");
    }
    let allocated: u64 = live.iter().map(|b| b.size).sum();
    assert_eq!(a.stats().allocated, allocated);
}

#[test]
fn randomized_operations_keep_every_invariant() {
    for strategy in ALL {
        let mut a = allocator(strategy, 1 << 20, 64 << 20);
        let mut rng = SmallRng::seed_from_u64(11);
        let mut live: Vec<Block> = Vec::new();
        for step in 0..4_000 {
            if live.is_empty() || rng.random_bool(0.55) {
                let size = 1u64 << rng.random_range(0..19u32);
                let size = size + rng.random_range(0..size);
                match a.allocate(size) {
                    Ok(b) => {
                        assert!(b.size >= size);
                        live.push(b);
                    }
                    Err(AllocError::OutOfMemory { .. }) => {}
                    Err(e) => panic!("{strategy:?}: {e}"),
                }
            } else {
                let i = rng.random_range(0..live.len());
                a.free(live.swap_remove(i));
            }
            if step % 97 == 0 {
                check(&a, &live);
            }
        }
        check(&a, &live);
        for b in live.drain(..) {
            a.free(b);
        }
        check(&a, &live);
        let frees = a.free_blocks();
        let chunks = a.chunks().iter().filter(|&&s| s > 0).count();
        assert_eq!(
            frees.len(),
            chunks,
            "{strategy:?}: freeing everything leaves one free block per chunk"
        );
        assert_eq!(
            a.stats().fragmentation,
            1.0 - a.stats().largest_free as f64 / a.stats().reserved as f64
        );
        assert_eq!(a.trim().len(), chunks);
        assert_eq!(a.stats().reserved, 0);
    }
}

#[test]
fn strategies_choose_as_named() {
    // Free blocks of 4, 1 and 2 KiB (in that address order), separated by live ones.
    let layout = |strategy| {
        let mut a = allocator(strategy, 16 * 1024, 1 << 20);
        let blocks: Vec<Block> = [4096, 256, 1024, 256, 2048, 256]
            .iter()
            .map(|&s| a.allocate(s).unwrap())
            .collect();
        for i in [0, 2, 4] {
            a.free(blocks[i]);
        }
        (a, blocks)
    };
    let (mut best, b) = layout(Strategy::BestFit);
    assert_eq!(best.allocate(1000).unwrap().offset, b[2].offset);
    let (mut first, b) = layout(Strategy::FirstFit);
    assert_eq!(first.allocate(1000).unwrap().offset, b[0].offset);
    let (mut worst, _) = layout(Strategy::WorstFit);
    let tail = worst
        .free_blocks()
        .into_iter()
        .max_by_key(|f| f.size)
        .unwrap();
    assert_eq!(worst.allocate(1000).unwrap().offset, tail.offset);
}

#[test]
fn freed_neighbours_merge_and_buddies_recombine() {
    for strategy in ALL {
        let mut a = allocator(strategy, 64 * 1024, 1 << 20);
        let x = a.allocate(1024).unwrap();
        let y = a.allocate(1024).unwrap();
        let z = a.allocate(1024).unwrap();
        a.free(x);
        a.free(z);
        a.free(y);
        assert_eq!(a.free_blocks().len(), 1, "{strategy:?}");
        assert_eq!(a.stats().largest_free, a.stats().reserved);
        assert_eq!(a.stats().fragmentation, 0.0);
    }
}

#[test]
fn grows_by_chunks_up_to_the_limit_then_refuses() {
    let mut a = allocator(Strategy::BestFit, 1 << 20, 3 << 20);
    let blocks: Vec<Block> = (0..3).map(|_| a.allocate(1 << 20).unwrap()).collect();
    assert_eq!(a.stats().chunks, 3);
    let err = a.allocate(1).unwrap_err();
    assert!(matches!(
        err,
        AllocError::OutOfMemory {
            requested: 1,
            free: 0,
            growable: 0
        }
    ));
    assert!(err.to_string().contains("cannot allocate 1 bytes"));
    a.free(blocks[1]);
    assert_eq!(
        a.allocate(512 * 1024).unwrap().chunk,
        1,
        "reuses the freed chunk"
    );
    // A request larger than a chunk gets a chunk of its own size when the limit allows.
    let mut big = allocator(Strategy::FirstFit, 1 << 20, 8 << 20);
    assert_eq!(big.allocate(5 << 20).unwrap().size, 5 << 20);
    assert_eq!(big.stats().reserved, 5 << 20);
    assert_eq!(big.allocate(0), Err(AllocError::ZeroSize));
}

#[test]
fn buddy_rounds_to_powers_of_two() {
    let mut a = allocator(Strategy::Buddy, 1 << 20, 1 << 22);
    assert_eq!(a.allocate(3000).unwrap().size, 4096);
    assert_eq!(a.allocate(1).unwrap().size, 256);
    assert_eq!(a.allocate(600 * 1024).unwrap().size, 1 << 20);
    assert_eq!(a.stats().chunks, 2);
}
