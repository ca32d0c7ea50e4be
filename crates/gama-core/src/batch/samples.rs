//! An item's samples: a range of one buffer that the items of an intake
//! chunk share, so taking in a chunk of small items costs one allocation,
//! not one per item (per-item buffers, allocated on the JS thread and freed
//! on the workers, were measured contending for the allocator's lock).
//! A buffer whose last item is done goes back to its pool: fresh memory
//! costs the thread that fills it a page fault per 4 KiB (measured as about
//! a third of the JS thread's time per one-second clip).

use std::ops::{Deref, Range};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

/// Samples of an intake buffer (6 MiB: whatever its alignment, at least
/// 4 MiB of it are whole 2 MiB pages, room for 64 one-second clips at 16 kHz).
pub const CHUNK_SAMPLES: usize = 3 << 19;

/// Samples a pool of intake buffers keeps for reuse (32 MiB).
pub const POOL_SAMPLES: usize = 32 << 18;

/// Intake buffers kept for reuse, up to a total capacity.
#[derive(Debug)]
pub struct BufferPool {
    free: Mutex<Vec<Vec<f32>>>,
    /// Samples the pool may keep, all buffers together.
    keep: usize,
}

impl BufferPool {
    /// A pool keeping buffers of up to `keep` samples in all.
    pub fn new(keep: usize) -> Arc<Self> {
        Arc::new(BufferPool {
            free: Mutex::new(Vec::new()),
            keep,
        })
    }

    /// An empty buffer with room for at least `samples` (a kept one when
    /// one is large enough).
    pub fn take(&self, samples: usize) -> Vec<f32> {
        let mut free = self.free.lock();
        match free.iter().position(|b| b.capacity() >= samples) {
            Some(i) => free.swap_remove(i),
            None => {
                drop(free);
                let buffer = Vec::with_capacity(samples);
                advise_huge_pages(&buffer);
                buffer
            }
        }
    }

    /// Keeps `buffer` for reuse while the pool has room; frees it otherwise.
    fn give(&self, mut buffer: Vec<f32>) {
        let mut free = self.free.lock();
        let kept: usize = free.iter().map(Vec::capacity).sum();
        if kept + buffer.capacity() <= self.keep {
            buffer.clear();
            free.push(buffer);
        }
    }

    /// Samples of the buffers kept now.
    pub fn kept(&self) -> usize {
        self.free.lock().iter().map(Vec::capacity).sum()
    }
}

/// Asks the kernel to back the whole 2 MiB pages inside `buffer`'s
/// capacity with huge pages (where it does transparent huge pages on
/// request): filling the buffer then faults once per 2 MiB.
fn advise_huge_pages(buffer: &Vec<f32>) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = buffer.as_ptr() as usize;
        let end = start + buffer.capacity() * std::mem::size_of::<f32>();
        let first = start.next_multiple_of(HUGE);
        let last = end / HUGE * HUGE;
        if first < last {
            // SAFETY: [first, last) lies inside the buffer's own allocation;
            // the advice changes how the kernel backs it, not its contents.
            unsafe {
                libc::madvise(
                    first as *mut libc::c_void,
                    last - first,
                    libc::MADV_HUGEPAGE,
                );
            }
        }
    }
}

/// A buffer the items of a chunk share; it goes back to its pool (if it
/// has one) when the last of them is done.
#[derive(Debug)]
pub struct SharedBuffer {
    samples: Vec<f32>,
    pool: Option<Arc<BufferPool>>,
}

impl SharedBuffer {
    /// Shares `samples`, returning them to `pool` at the end.
    pub fn new(samples: Vec<f32>, pool: Option<Arc<BufferPool>>) -> Arc<Self> {
        Arc::new(SharedBuffer { samples, pool })
    }
}

impl Drop for SharedBuffer {
    fn drop(&mut self) {
        if let Some(pool) = &self.pool {
            pool.give(std::mem::take(&mut self.samples));
        }
    }
}

/// Samples of one item.
///
/// Invariant: `start <= end <= buffer.samples.len()`.
#[derive(Clone, Debug)]
pub struct Samples {
    buffer: Arc<SharedBuffer>,
    start: usize,
    end: usize,
}

impl Samples {
    /// `range` of `buffer`; `None` when the range is not inside it.
    pub fn new(buffer: Arc<SharedBuffer>, range: Range<usize>) -> Option<Self> {
        (range.start <= range.end && range.end <= buffer.samples.len()).then_some(Samples {
            buffer,
            start: range.start,
            end: range.end,
        })
    }

    /// No samples (shares one empty buffer: allocates nothing).
    pub fn empty() -> Self {
        static EMPTY: OnceLock<Arc<SharedBuffer>> = OnceLock::new();
        Samples {
            buffer: EMPTY
                .get_or_init(|| SharedBuffer::new(Vec::new(), None))
                .clone(),
            start: 0,
            end: 0,
        }
    }
}

impl From<Vec<f32>> for Samples {
    fn from(samples: Vec<f32>) -> Self {
        Samples {
            end: samples.len(),
            buffer: SharedBuffer::new(samples, None),
            start: 0,
        }
    }
}

impl Deref for Samples {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        &self.buffer.samples[self.start..self.end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_of_a_chunk_read_their_own_range_of_the_shared_buffer() {
        let buffer = SharedBuffer::new((0..10).map(|i| i as f32).collect(), None);
        let a = Samples::new(buffer.clone(), 0..4).unwrap();
        let b = Samples::new(buffer.clone(), 4..10).unwrap();
        assert_eq!(&*a, &[0.0, 1.0, 2.0, 3.0]);
        assert_eq!(b.len(), 6);
        assert!(Samples::new(buffer.clone(), 8..11).is_none());
        #[allow(clippy::reversed_empty_ranges)]
        let reversed = 5..3;
        assert!(Samples::new(buffer, reversed).is_none());
        assert!(Samples::empty().is_empty());
        assert_eq!(&*Samples::from(vec![1.0, 2.0]), &[1.0, 2.0]);
    }

    #[test]
    fn a_buffer_returns_to_its_pool_when_its_last_item_is_done() {
        let pool = BufferPool::new(1000);
        let mut filled = pool.take(600);
        let at = filled.as_ptr();
        filled.extend((0..600).map(|i| i as f32));
        let buffer = SharedBuffer::new(filled, Some(pool.clone()));
        let a = Samples::new(buffer.clone(), 0..300).unwrap();
        let b = Samples::new(buffer, 300..600).unwrap();
        drop(a);
        assert_eq!(pool.kept(), 0, "still in use by b");
        assert_eq!(b[0], 300.0);
        drop(b);
        assert!(pool.kept() >= 600);
        let again = pool.take(500);
        assert!(
            again.is_empty() && again.as_ptr() == at,
            "the same memory, emptied"
        );
        assert_eq!(pool.kept(), 0);
        let larger = pool.take(2000);
        assert!(
            larger.capacity() >= 2000,
            "none kept is large enough: a new one"
        );
        drop(SharedBuffer::new(larger, Some(pool.clone())));
        assert_eq!(pool.kept(), 0, "beyond what the pool keeps: freed");
    }
}
