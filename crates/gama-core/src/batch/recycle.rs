//! Intake buffers kept for reuse. An `addItems` call copies its items'
//! samples into 1 MiB buffers on the JS thread; the workers free them as
//! batches finish. Freed to the allocator, a large batch's buffers (tens of
//! MiB) went back to the OS, so the next call wrote into fresh pages: a
//! page fault and a zeroed page every 4 KiB, measured as half the JS
//! thread's time per EXTRACT_FEATURES clip. Kept here instead, up to
//! `MAX_IDLE_BYTES`, they are handed to the next intake; the reaper frees
//! those left idle for `IDLE`.
//!
//! Invariant: every buffer held has capacity `BUFFER_FLOATS` and length 0.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::reaper::{self, Expiring};

/// Floats of a pooled buffer (1 MiB).
pub const BUFFER_FLOATS: usize = 1 << 18;
/// Bytes of idle buffers kept at most.
const MAX_IDLE_BYTES: usize = 256 << 20;
/// How long an idle buffer is kept.
const IDLE: Duration = Duration::from_secs(2);

/// Idle buffers, the most recently returned last, each with when it came back.
struct Pool {
    idle: Mutex<Vec<(Vec<f32>, Instant)>>,
}

impl Expiring for Pool {
    fn purge_expired(&self, now: Instant) -> Option<Instant> {
        let mut idle = self.idle.lock();
        idle.retain(|(_, since)| *since + IDLE > now);
        idle.first().map(|(_, since)| *since + IDLE)
    }
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Arc<Pool>> = OnceLock::new();
    POOL.get_or_init(|| {
        let pool = Arc::new(Pool {
            idle: Mutex::new(Vec::new()),
        });
        let weak = Arc::downgrade(&pool);
        reaper::watch(weak);
        pool
    })
}

/// An empty buffer with room for `BUFFER_FLOATS` floats: an idle one (its
/// pages already mapped) where there is one.
pub fn take() -> Vec<f32> {
    match pool().idle.lock().pop() {
        Some((buffer, _)) => buffer,
        None => Vec::with_capacity(BUFFER_FLOATS),
    }
}

/// Keeps `buffer` for a later `take` if it is a pool buffer and there is
/// room; frees it otherwise.
pub fn give_back(mut buffer: Vec<f32>) {
    if buffer.capacity() != BUFFER_FLOATS {
        return;
    }
    buffer.clear();
    let now = Instant::now();
    let mut idle = pool().idle.lock();
    if (idle.len() + 1) * BUFFER_FLOATS * 4 > MAX_IDLE_BYTES {
        return;
    }
    let was_empty = idle.is_empty();
    idle.push((buffer, now));
    drop(idle);
    if was_empty {
        reaper::wake_by(now + IDLE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idle_buffers() -> usize {
        pool().idle.lock().len()
    }

    /// The only test that makes buffers of the pool's size: the pool is
    /// the process's, so no other test may take or return them meanwhile.
    #[test]
    fn a_returned_buffer_is_reused_emptied_and_freed_once_idle() {
        let mut buffer = take();
        assert_eq!((buffer.len(), buffer.capacity()), (0, BUFFER_FLOATS));
        buffer.extend_from_slice(&[1.0, 2.0]);
        let at = buffer.as_ptr();
        give_back(buffer);
        let again = take();
        assert_eq!(
            (again.as_ptr(), again.len()),
            (at, 0),
            "the same memory, emptied"
        );
        give_back(again);
        give_back(Vec::with_capacity(10));
        assert_eq!(idle_buffers(), 1, "other sizes are not kept");
        let now = Instant::now();
        let deadline = pool()
            .purge_expired(now)
            .expect("an idle buffer's deadline");
        assert!(deadline > now && deadline <= now + IDLE);
        assert_eq!(idle_buffers(), 1, "kept until idle for IDLE");
        assert_eq!(pool().purge_expired(deadline), None);
        assert_eq!(idle_buffers(), 0);
    }
}
