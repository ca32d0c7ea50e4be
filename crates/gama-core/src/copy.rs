//! Owned copies of borrowed samples, made on every core when there is
//! enough to gain. A caller's memory is only lent for a call (JS may change
//! or free it once the call returns), so a batch's inputs are copied before
//! the call returns; one thread copying them was the serial part of a
//! batch on many cores (about 7 µs per one-second clip, against under
//! 10 µs of extraction per clip on 16 cores).
//!
//! The copies run on a pool of their own that does nothing else, so they
//! never queue behind extraction work: the caller waits for the copy only.

use std::sync::OnceLock;

use rayon::prelude::*;

/// Total bytes from which copies are spread over the cores (below it,
/// waking the pool costs more than it saves).
const PARALLEL_BYTES: usize = 4 << 20;

/// Samples per piece a long source is copied in (each piece on any thread).
const PIECE: usize = 1 << 18;

/// The copy pool: one thread per core; `None` on one core or when its
/// threads could not be started (copies then run on the caller).
fn pool() -> Option<&'static rayon::ThreadPool> {
    static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        (threads > 1)
            .then(|| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(|i| format!("gama-copy-{i}"))
                    .build()
                    .ok()
            })
            .flatten()
    })
    .as_ref()
}

/// Owned copies of `sources`, in order.
pub fn copy_all(sources: &[&[f32]]) -> Vec<Vec<f32>> {
    let bytes: usize = sources.iter().map(|s| std::mem::size_of_val(*s)).sum();
    let Some(pool) = pool().filter(|_| bytes >= PARALLEL_BYTES) else {
        return sources.iter().map(|s| s.to_vec()).collect();
    };
    // Allocated here, on the caller's thread: memory allocated on the
    // pool's threads came from their own malloc arenas, which gave it back
    // to the OS between calls, so every call faulted every page in again
    // (measured: the parallel copy took twice the serial one).
    let mut copies: Vec<Vec<f32>> = sources
        .iter()
        .map(|s| Vec::with_capacity(s.len()))
        .collect();
    pool.install(|| {
        copies
            .par_iter_mut()
            .zip(sources.par_iter())
            .for_each(|(to, from)| fill(to, from));
    });
    copies
}

/// Copies `from` into `to`'s spare capacity (at least `from.len()`), a
/// long source in pieces on the pool's threads.
fn fill(to: &mut Vec<f32>, from: &[f32]) {
    debug_assert!(to.is_empty() && to.capacity() >= from.len());
    let spare = &mut to.spare_capacity_mut()[..from.len()];
    spare
        .par_chunks_mut(PIECE)
        .zip(from.par_chunks(PIECE))
        .for_each(|(to, from)| {
            // SAFETY: `to` and `from` have the same length (equal pieces
            // of equal-length slices) and do not overlap (`to` is memory of
            // a vector of ours); f32 is Copy, so writing it initialises.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    from.as_ptr(),
                    to.as_mut_ptr().cast::<f32>(),
                    from.len(),
                )
            }
        });
    // SAFETY: the first `from.len()` elements were written above.
    unsafe { to.set_len(from.len()) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_equal_their_sources_in_order_whatever_their_sizes() {
        let lengths = [0, 1, 1000, PIECE - 1, 2 * PIECE, 5 * PIECE + 3, 16000];
        let sources: Vec<Vec<f32>> = lengths
            .iter()
            .enumerate()
            .map(|(k, &n)| (0..n).map(|i| (i * 7 + k) as f32).collect())
            .collect();
        let borrowed: Vec<&[f32]> = sources.iter().map(Vec::as_slice).collect();
        assert!(borrowed.iter().map(|s| s.len() * 4).sum::<usize>() >= PARALLEL_BYTES);
        assert_eq!(copy_all(&borrowed), sources);
        // Below the parallel threshold too.
        assert_eq!(copy_all(&borrowed[..3]), sources[..3]);
        assert!(copy_all(&[]).is_empty());
    }
}
