//! A pool of host buffers in size classes (four per power of two, so a
//! request wastes at most a fifth of its class): a released buffer is kept
//! for reuse by the next request of its class, and buffers left unused
//! longer than the idle time go back to the system on `trim_idle`.
//!
//! Invariant: `pooled_bytes` is the sum of the capacities of the buffers
//! held in the free lists, and every buffer in class `c` holds `class_size(c)`
//! bytes.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Smallest class: 4 KiB.
const MIN_CLASS_SHIFT: u32 = 12;
/// Largest pooled class: 1 GiB; larger requests are not pooled.
const MAX_CLASS_SHIFT: u32 = 30;
/// Classes per power of two.
const STEPS: usize = 4;
const CLASSES: usize = (MAX_CLASS_SHIFT - MIN_CLASS_SHIFT) as usize * STEPS + 1;

/// A buffer lent by the pool; give it back with `HostPool::release`.
#[derive(Debug)]
pub struct HostBuffer {
    bytes: Box<[u8]>,
}

impl HostBuffer {
    /// The buffer's memory (its whole class size; contents are unspecified on reuse).
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.bytes
    }

    /// Bytes the buffer holds.
    pub fn capacity(&self) -> usize {
        self.bytes.len()
    }
}

/// Hits, misses and holdings of a pool.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Requests served from a free list.
    pub hits: u64,
    /// Requests that allocated.
    pub misses: u64,
    /// Bytes held in free lists.
    pub pooled_bytes: u64,
    /// Bytes returned to the system by trimming.
    pub trimmed_bytes: u64,
    /// Bytes allocated fresh on misses.
    pub missed_bytes: u64,
}

struct Inner {
    free: Vec<Vec<(HostBuffer, Instant)>>,
    stats: PoolStats,
}

/// Power-of-two size classes of reusable host buffers; thread-safe.
pub struct HostPool {
    inner: Mutex<Inner>,
    idle_after: Duration,
}

/// The class serving `size` bytes, or None when too large to pool.
fn class_of(size: usize) -> Option<usize> {
    if size <= 1 << MIN_CLASS_SHIFT {
        return Some(0);
    }
    let shift = usize::BITS - 1 - (size - 1).leading_zeros();
    let base = 1usize << shift;
    let step = base / STEPS;
    let sub = (size - base).div_ceil(step);
    let index = (shift - MIN_CLASS_SHIFT) as usize * STEPS + sub;
    (index < CLASSES).then_some(index)
}

/// Bytes of a buffer of class `class`.
fn class_size(class: usize) -> usize {
    let base = 1usize << (MIN_CLASS_SHIFT as usize + class / STEPS);
    base + (class % STEPS) * (base / STEPS)
}

impl HostPool {
    /// A pool that lets `trim_idle` free buffers unused for `idle_after`.
    pub fn new(idle_after: Duration) -> Self {
        HostPool {
            inner: Mutex::new(Inner {
                free: (0..CLASSES).map(|_| Vec::new()).collect(),
                stats: PoolStats::default(),
            }),
            idle_after,
        }
    }

    /// Bytes a request of `size` occupies (its class size, or `size` when unpooled).
    pub fn footprint(size: usize) -> usize {
        class_of(size).map_or(size, class_size)
    }

    /// A buffer of at least `size` bytes, reused when one of its class is free.
    pub fn acquire(&self, size: usize) -> HostBuffer {
        let Some(class) = class_of(size) else {
            let mut inner = self.inner.lock();
            inner.stats.misses += 1;
            inner.stats.missed_bytes += size as u64;
            return HostBuffer {
                bytes: vec![0u8; size].into_boxed_slice(),
            };
        };
        {
            let mut inner = self.inner.lock();
            if let Some((buffer, _)) = inner.free[class].pop() {
                inner.stats.hits += 1;
                inner.stats.pooled_bytes -= buffer.capacity() as u64;
                return buffer;
            }
            inner.stats.misses += 1;
            inner.stats.missed_bytes += class_size(class) as u64;
        }
        HostBuffer {
            bytes: vec![0u8; class_size(class)].into_boxed_slice(),
        }
    }

    /// Takes a buffer back for reuse (an unpooled size is simply freed).
    pub fn release(&self, buffer: HostBuffer) {
        let Some(class) =
            class_of(buffer.capacity()).filter(|&c| class_size(c) == buffer.capacity())
        else {
            return;
        };
        let mut inner = self.inner.lock();
        inner.stats.pooled_bytes += buffer.capacity() as u64;
        inner.free[class].push((buffer, Instant::now()));
    }

    /// Frees buffers unused since `now - idle_after`; returns the bytes freed.
    pub fn trim_idle(&self, now: Instant) -> u64 {
        self.trim_where(|since| now.saturating_duration_since(since) >= self.idle_after)
    }

    /// Frees every pooled buffer; returns the bytes freed.
    pub fn trim_all(&self) -> u64 {
        self.trim_where(|_| true)
    }

    /// Frees pooled buffers, largest class first, until at most `limit` bytes
    /// stay pooled; returns the bytes freed.
    pub fn trim_to(&self, limit: u64) -> u64 {
        let mut inner = self.inner.lock();
        let mut freed = 0u64;
        for class in (0..CLASSES).rev() {
            while inner.stats.pooled_bytes - freed > limit && !inner.free[class].is_empty() {
                inner.free[class].pop();
                freed += class_size(class) as u64;
            }
        }
        inner.stats.pooled_bytes -= freed;
        inner.stats.trimmed_bytes += freed;
        freed
    }

    /// When the oldest pooled buffer becomes idle, if any buffer is pooled.
    pub fn next_idle_deadline(&self) -> Option<Instant> {
        let inner = self.inner.lock();
        inner
            .free
            .iter()
            .filter_map(|list| list.iter().map(|(_, since)| *since).min())
            .min()
            .map(|since| since + self.idle_after)
    }

    fn trim_where(&self, stale: impl Fn(Instant) -> bool) -> u64 {
        let mut inner = self.inner.lock();
        let mut freed = 0u64;
        for list in inner.free.iter_mut() {
            list.retain(|(buffer, since)| {
                let drop_it = stale(*since);
                if drop_it {
                    freed += buffer.capacity() as u64;
                }
                !drop_it
            });
        }
        inner.stats.pooled_bytes -= freed;
        inner.stats.trimmed_bytes += freed;
        freed
    }

    /// Hits, misses and bytes held.
    pub fn stats(&self) -> PoolStats {
        self.inner.lock().stats.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_round_up_to_quarter_power_of_two_classes() {
        assert_eq!(HostPool::footprint(1), 4096);
        assert_eq!(HostPool::footprint(4096), 4096);
        assert_eq!(HostPool::footprint(4097), 5120);
        assert_eq!(HostPool::footprint(8192), 8192);
        assert_eq!(HostPool::footprint(8193), 10240);
        assert_eq!(HostPool::footprint(3 << 20), 3 << 20);
        assert_eq!(HostPool::footprint(56 << 20), 56 << 20);
        assert_eq!(HostPool::footprint((56 << 20) + 1), 64 << 20);
        assert_eq!(HostPool::footprint(1 << 30), 1 << 30);
        for size in [4097usize, 10_000, 70_000, 3_000_000, 900_000_000] {
            let class = HostPool::footprint(size);
            assert!(
                class >= size && (class - size) * 5 <= class,
                "{size} -> {class}"
            );
        }
        assert_eq!(
            HostPool::footprint((1 << 30) + 1),
            (1 << 30) + 1,
            "too large to pool"
        );
    }

    #[test]
    fn released_buffers_are_reused_by_their_class() {
        let pool = HostPool::new(Duration::from_secs(60));
        let mut a = pool.acquire(64 * 1024);
        a.as_mut_slice()[0] = 7;
        let address = a.as_mut_slice().as_ptr();
        pool.release(a);
        assert_eq!(pool.stats().pooled_bytes, 64 * 1024);
        let mut b = pool.acquire(60_000);
        assert_eq!(
            b.as_mut_slice().as_ptr(),
            address,
            "same class, same buffer"
        );
        let c = pool.acquire(64 * 1024);
        assert_eq!(c.capacity(), 64 * 1024);
        let stats = pool.stats();
        assert_eq!((stats.hits, stats.misses, stats.pooled_bytes), (1, 2, 0));
        pool.release(b);
        pool.release(c);
        assert_eq!(pool.stats().pooled_bytes, 128 * 1024);
    }

    #[test]
    fn idle_buffers_are_trimmed_and_fresh_ones_kept() {
        let pool = HostPool::new(Duration::from_millis(50));
        pool.release(pool.acquire(4096));
        let later = Instant::now() + Duration::from_millis(60);
        pool.release(pool.acquire(1 << 20));
        assert_eq!(pool.trim_idle(Instant::now()), 0, "nothing is idle yet");
        assert_eq!(pool.trim_idle(later), 4096 + (1 << 20));
        assert_eq!(pool.stats().pooled_bytes, 0);
        pool.release(pool.acquire(8192));
        assert_eq!(pool.trim_all(), 8192);
        assert_eq!(pool.stats().trimmed_bytes, 4096 + (1 << 20) + 8192);
    }

    #[test]
    fn trim_to_frees_largest_classes_first() {
        let pool = HostPool::new(Duration::from_secs(60));
        let buffers: Vec<_> = [4096, 4096, 1 << 20].map(|s| pool.acquire(s)).into();
        buffers.into_iter().for_each(|b| pool.release(b));
        assert!(pool.next_idle_deadline().is_some());
        assert_eq!(pool.trim_to(10_000), 1 << 20);
        assert_eq!(pool.stats().pooled_bytes, 8192);
        assert_eq!(pool.trim_to(0), 8192);
        assert_eq!(pool.next_idle_deadline(), None);
    }

    #[test]
    fn buffers_of_foreign_sizes_are_not_pooled() {
        let pool = HostPool::new(Duration::from_secs(1));
        pool.release(HostBuffer {
            bytes: vec![0u8; 5000].into_boxed_slice(),
        });
        assert_eq!(pool.stats().pooled_bytes, 0);
    }
}
