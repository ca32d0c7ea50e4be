//! Single flight: concurrent requests for one key share a single
//! computation. The first caller starts it; later callers join it until it
//! completes, after which the key is free again (a failure is not remembered).

use std::future::Future;
use std::sync::Arc;

use futures::future::{BoxFuture, FutureExt, Shared};
use hashbrown::HashMap;
use parking_lot::Mutex;

/// A shared computation's handle; every clone yields the same output.
pub type Flight<T> = Shared<BoxFuture<'static, T>>;

/// Computations in flight, by key.
pub struct SingleFlight<T: Clone> {
    inflight: Arc<Mutex<HashMap<String, Flight<T>>>>,
}

impl<T: Clone> Default for SingleFlight<T> {
    fn default() -> Self {
        SingleFlight {
            inflight: Arc::new(Mutex::new(HashMap::new())),
        }
    }
}

impl<T: Clone + Send + Sync + 'static> SingleFlight<T> {
    /// The computation in flight for `key`, or the one `start` returns, which
    /// is registered for later callers until it completes.
    pub fn join_or_start<F>(&self, key: &str, start: impl FnOnce() -> F) -> (Flight<T>, bool)
    where
        F: Future<Output = T> + Send + 'static,
    {
        let mut inflight = self.inflight.lock();
        if let Some(flight) = inflight.get(key) {
            return (flight.clone(), false);
        }
        let registry = Arc::clone(&self.inflight);
        let owned_key = key.to_string();
        let work = start();
        let flight = async move {
            let output = work.await;
            registry.lock().remove(&owned_key);
            output
        }
        .boxed()
        .shared();
        inflight.insert(key.to_string(), flight.clone());
        (flight, true)
    }

    /// The computation in flight for `key`, if any.
    pub fn get(&self, key: &str) -> Option<Flight<T>> {
        self.inflight.lock().get(key).cloned()
    }

    /// How many keys are being computed.
    pub fn len(&self) -> usize {
        self.inflight.lock().len()
    }

    /// Whether nothing is being computed.
    pub fn is_empty(&self) -> bool {
        self.inflight.lock().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn concurrent_callers_share_one_computation() {
        let flights = SingleFlight::<Result<u32, String>>::default();
        let runs = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = futures::channel::oneshot::channel::<u32>();
        let start = |runs: Arc<AtomicUsize>, rx: futures::channel::oneshot::Receiver<u32>| {
            move || {
                runs.fetch_add(1, Ordering::SeqCst);
                async move { rx.await.map_err(|e| e.to_string()) }
            }
        };
        let (a, first) = flights.join_or_start("k", start(runs.clone(), rx));
        let (_, rx2) = futures::channel::oneshot::channel::<u32>();
        let (b, second) = flights.join_or_start("k", start(runs.clone(), rx2));
        assert!(first && !second);
        assert_eq!(flights.len(), 1);
        tx.send(7).unwrap();
        assert_eq!(block_on(a), Ok(7));
        assert_eq!(block_on(b), Ok(7));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(flights.is_empty());
    }

    #[test]
    fn a_failure_frees_the_key() {
        let flights = SingleFlight::<Result<u32, String>>::default();
        let (f, _) = flights.join_or_start("k", || async { Err("boom".to_string()) });
        assert_eq!(block_on(f), Err("boom".to_string()));
        let (g, started) = flights.join_or_start("k", || async { Ok(1) });
        assert!(started);
        assert_eq!(block_on(g), Ok(1));
    }
}
