//! One background thread per process that reclaims what has expired (cache
//! entries past their TTL, pooled memory idle too long) without waiting for
//! the next call. It sleeps until the earliest deadline anything reported (or
//! until woken by an earlier one) and holds what it watches weakly, so a
//! dropped cache or memory manager is simply forgotten.

use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

/// Something whose expired contents the reaper reclaims.
pub trait Expiring: Send + Sync {
    /// Removes what expired by `now`; returns the next deadline, if any.
    fn purge_expired(&self, now: Instant) -> Option<Instant>;
}

/// Shortest time between two sweeps, so many close deadlines share one wake-up.
const MIN_SWEEP_INTERVAL: Duration = Duration::from_millis(5);

struct State {
    watched: Vec<Weak<dyn Expiring>>,
    next_wake: Option<Instant>,
}

struct Reaper {
    state: Mutex<State>,
    wake: Condvar,
}

fn reaper() -> &'static Reaper {
    static REAPER: OnceLock<&'static Reaper> = OnceLock::new();
    REAPER.get_or_init(|| {
        let reaper: &'static Reaper = Box::leak(Box::new(Reaper {
            state: Mutex::new(State {
                watched: Vec::new(),
                next_wake: None,
            }),
            wake: Condvar::new(),
        }));
        std::thread::Builder::new()
            .name("gama-reaper".into())
            .spawn(move || reaper.run())
            .expect("spawn the reaper thread");
        reaper
    })
}

impl Reaper {
    fn run(&self) {
        let mut state = self.state.lock();
        loop {
            match state.next_wake {
                None => self.wake.wait(&mut state),
                Some(t) if t > Instant::now() => {
                    self.wake.wait_until(&mut state, t);
                }
                Some(_) => {
                    state.next_wake = None;
                    state.watched.retain(|w| w.strong_count() > 0);
                    let watched: Vec<Arc<dyn Expiring>> =
                        state.watched.iter().filter_map(Weak::upgrade).collect();
                    let next = parking_lot::MutexGuard::unlocked(&mut state, || {
                        let now = Instant::now();
                        watched
                            .iter()
                            // A panic in one cache's purge must not end the
                            // thread every cache relies on.
                            .filter_map(|c| {
                                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                    c.purge_expired(now)
                                }))
                                .ok()
                                .flatten()
                            })
                            .min()
                            .map(|t| t.max(now + MIN_SWEEP_INTERVAL))
                    });
                    state.next_wake = earliest(state.next_wake, next);
                }
            }
        }
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Puts something under the reaper's watch.
pub fn watch(item: Weak<dyn Expiring>) {
    reaper().state.lock().watched.push(item);
}

/// Makes sure the reaper wakes by `deadline`.
pub fn wake_by(deadline: Instant) {
    let reaper = reaper();
    let mut state = reaper.state.lock();
    if state.next_wake.is_none_or(|t| deadline < t) {
        state.next_wake = Some(deadline);
        reaper.wake.notify_one();
    }
}
