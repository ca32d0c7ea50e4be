//! A value per shard of recording threads: a thread works on its own
//! shard, under that shard's lock and on that shard's cache line, so
//! threads recording at once do not wait on or move memory between one
//! another; readers visit every shard and merge.

use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_utils::CachePadded;
use parking_lot::{Mutex, MutexGuard};

/// `T` per shard; threads take shards in turn.
pub(crate) struct Sharded<T> {
    shards: Box<[CachePadded<Mutex<T>>]>,
}

impl<T: Default> Default for Sharded<T> {
    fn default() -> Self {
        Sharded {
            shards: (0..shard_count())
                .map(|_| CachePadded::new(Mutex::new(T::default())))
                .collect(),
        }
    }
}

impl<T> Sharded<T> {
    /// The calling thread's shard, locked.
    pub(crate) fn local(&self) -> MutexGuard<'_, T> {
        self.shards[shard_index() % self.shards.len()].lock()
    }

    /// Every shard, each locked in turn.
    pub(crate) fn each(&self) -> impl Iterator<Item = MutexGuard<'_, T>> {
        self.shards.iter().map(|shard| shard.lock())
    }
}

/// The shard index of the calling thread (threads take shards in turn).
fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    INDEX.with(|i| *i)
}

/// Shards: four per core (at most 256), since more threads than cores
/// record (the workers, the dispatcher, the JS thread, Redis's) and threads
/// take shards in turn: two workers sharing a shard would move its memory
/// between their cores at every sample.
pub(crate) fn shard_count() -> usize {
    std::thread::available_parallelism().map_or(16, |n| (n.get() * 4).clamp(4, 256))
}
