//! The processor: a dispatcher thread cuts batches from the queue only when
//! one of `max_concurrent_batches` slots is free, reserves their memory,
//! and starts them: native batches on a work-stealing pool (rayon, built on
//! crossbeam's per-worker deques: a batch's items spread over idle workers),
//! JS batches by an event to the owner. Every item ends in exactly one
//! `Event::Done` (native items, and JS items the core ends: timeout, cancel,
//! close) or in `finish_js_batch`.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hashbrown::{HashMap, HashSet};
use parking_lot::{Condvar, Mutex, RwLock};
use serde_json::{json, Value};

use super::item::{Event, Item, ItemError, ItemErrorKind, ItemId, OpName, Sink, Stage, Stop};
use super::native::{self};
use super::op_series::{OpSeries, Phase};
use super::queue::Queue;
use super::stats::{Recorder, Snapshot};
use crate::cache::FeatureCache;
use crate::error::Coded;
use crate::features::gpu::FeatureDevice;
use crate::memory::{MemoryManager, Reservation};
use crate::metrics::exposition::Gauge;
use crate::metrics::Gauges;

/// Limits of a processor.
#[derive(Clone, Debug)]
pub struct Config {
    /// Most items per batch.
    pub max_batch_size: usize,
    /// Most batches running at once.
    pub max_concurrent_batches: usize,
    /// How long a partial batch may wait to fill (0: start as soon as a slot is free).
    pub max_wait: Duration,
    /// How long a batch may run before its items fail with E_TIMEOUT.
    pub batch_timeout: Option<Duration>,
    /// Worker threads for native operations.
    pub threads: usize,
    /// Most items queued at once.
    pub max_queue_size: Option<usize>,
    /// What `submit` does when the queue is full: refuse with E_QUEUE_FULL
    /// (false) or accept and hold the items in an overflow, in order, until
    /// the queue has room (true: `queueFullBehavior: 'wait'`).
    pub wait_when_full: bool,
    /// Where EXTRACT_FEATURES batches run when the memory manager has a
    /// GPU: the workers (`Cpu`), the GPU (`Cuda`), or the GPU for batches
    /// large enough to gain (`Auto`). A batch the GPU cannot take (no room
    /// in its budget, options it does not run) runs on the workers.
    pub feature_device: FeatureDevice,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_batch_size: 8,
            max_concurrent_batches: 4,
            max_wait: Duration::ZERO,
            batch_timeout: None,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            max_queue_size: None,
            wait_when_full: false,
            feature_device: FeatureDevice::Cpu,
        }
    }
}

/// Why an item was not accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubmitError {
    /// The queue holds `max_queue_size` items.
    QueueFull(usize),
    /// `close` was called.
    Closed,
    /// Neither a native operation nor a registered JS processor.
    NoProcessor(String),
}

impl std::error::Error for SubmitError {}

impl From<&SubmitError> for ItemError {
    /// The error of each item a refused `submit` held.
    fn from(e: &SubmitError) -> Self {
        ItemError::new(ItemErrorKind::Refused, e.code(), e.to_string())
    }
}

impl Coded for SubmitError {
    fn code(&self) -> &'static str {
        match self {
            SubmitError::QueueFull(_) => "E_QUEUE_FULL",
            SubmitError::Closed => "E_CLOSED",
            SubmitError::NoProcessor(_) => "E_NO_PROCESSOR",
        }
    }
}

impl std::fmt::Display for SubmitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SubmitError::QueueFull(n) => write!(f, "the queue is full ({n} items waiting)"),
            SubmitError::Closed => write!(f, "the batch processor is closed"),
            SubmitError::NoProcessor(op) => {
                write!(f, "no processor is registered for operation type '{op}'")
            }
        }
    }
}

/// Counts for a progress bar.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Items waiting.
    pub queued: u64,
    /// Items in started batches.
    pub running: u64,
    /// Items that succeeded.
    pub completed: u64,
    /// Items that failed.
    pub failed: u64,
    /// Items cancelled.
    pub cancelled: u64,
}

pub(super) struct RunningJs {
    pub(super) op: OpName,
    pub(super) ids: Vec<ItemId>,
    pub(super) deadline: Option<Instant>,
    pub(super) started: Instant,
    pub(super) _reservation: Option<Reservation>,
}

/// The processor's books, under one lock: what waits, what runs, and the
/// statistics.
pub(super) struct Ledger {
    pub(super) queue: Queue,
    /// Items accepted while the queue was full (`wait_when_full`), oldest
    /// first; they move into the queue as it gets room.
    pub(super) overflow: VecDeque<Item>,
    pub(super) running_batches: usize,
    pub(super) running_native: usize,
    pub(super) running_items: HashMap<ItemId, Arc<Stop>>,
    pub(super) js_batches: HashMap<u64, RunningJs>,
    pub(super) js_ops: HashSet<OpName>,
    pub(super) next_batch: u64,
    pub(super) closing: bool,
    pub(super) stopped: bool,
    pub(super) dispatcher_asleep: bool,
    pub(super) stats: Recorder,
}

/// What the processor's handle, its dispatcher thread and its workers share.
pub(super) struct Engine {
    pub(super) config: Config,
    pub(super) state: Mutex<Ledger>,
    pub(super) wake: Condvar,
    pub(super) pool: RwLock<Option<rayon::ThreadPool>>,
    pub(super) sink: Arc<dyn Sink>,
    pub(super) memory: Option<Arc<MemoryManager>>,
    pub(super) cache: Option<FeatureCache>,
    /// The profiler's per-operation series (outside `state`: see `OpSeries`).
    pub(super) ops: OpSeries,
}

/// A batch processor; see the module documentation.
pub struct Processor {
    shared: Arc<Engine>,
    dispatcher: Mutex<Option<JoinHandle<()>>>,
}

impl Processor {
    /// Starts a processor delivering events to `sink`.
    pub fn new(
        config: Config,
        sink: Arc<dyn Sink>,
        memory: Option<Arc<MemoryManager>>,
        cache: Option<FeatureCache>,
    ) -> std::io::Result<Processor> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(config.threads.max(1))
            .thread_name(|i| format!("gama-batch-{i}"))
            .build()
            .map_err(std::io::Error::other)?;
        let shared = Arc::new(Engine {
            config,
            state: Mutex::new(Ledger {
                queue: Queue::default(),
                overflow: VecDeque::new(),
                running_batches: 0,
                running_native: 0,
                running_items: HashMap::new(),
                js_batches: HashMap::new(),
                js_ops: HashSet::new(),
                next_batch: 0,
                closing: false,
                stopped: false,
                dispatcher_asleep: false,
                stats: Recorder::default(),
            }),
            wake: Condvar::new(),
            pool: RwLock::new(Some(pool)),
            sink,
            memory,
            cache,
            ops: OpSeries::default(),
        });
        let source: std::sync::Weak<dyn crate::metrics::registry::Source> =
            Arc::downgrade(&shared) as std::sync::Weak<dyn crate::metrics::registry::Source>;
        crate::metrics::global().add_source(source);
        let runner = shared.clone();
        let dispatcher = std::thread::Builder::new()
            .name("gama-batch-dispatch".into())
            // A panic in the dispatcher restarts it: the queue and the
            // running items live in the shared state, not in the loop.
            .spawn(move || {
                while catch_unwind(AssertUnwindSafe(|| runner.clone().dispatch_loop())).is_err() {}
            })?;
        Ok(Processor {
            shared,
            dispatcher: Mutex::new(Some(dispatcher)),
        })
    }

    /// The limits in force.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Routes `op` to the owner's JS processor from now on.
    pub fn register_js(&self, op: OpName) {
        self.shared.state.lock().js_ops.insert(op);
    }

    /// Whether `op` goes to a JS processor.
    pub fn is_js(&self, op: &str) -> bool {
        self.shared.state.lock().js_ops.contains(op)
    }

    /// Whether `op` can be served (natively or by a JS processor).
    pub fn serves(&self, op: &str) -> bool {
        native::is_native(op) || self.is_js(op)
    }

    /// Queues items; all or none are accepted.
    pub fn submit(&self, items: Vec<Item>) -> Result<(), SubmitError> {
        let mut state = self.shared.state.lock();
        if state.closing {
            return Err(SubmitError::Closed);
        }
        if let Some(item) = items
            .iter()
            .find(|i| !native::is_native(&i.op) && !state.js_ops.contains(&i.op))
        {
            return Err(SubmitError::NoProcessor(item.op.to_string()));
        }
        let max = self.shared.config.max_queue_size;
        if let Some(max) = max.filter(|_| !self.shared.config.wait_when_full) {
            if state.queue.len() + items.len() > max {
                return Err(SubmitError::QueueFull(state.queue.len()));
            }
        }
        for item in items {
            if item.wants_progress {
                self.shared.sink.deliver(Event::Progress {
                    id: item.id,
                    stage: Stage::Queued,
                    fraction: 0.0,
                });
            }
            let full = max.is_some_and(|max| state.queue.len() >= max);
            if full || !state.overflow.is_empty() {
                state.overflow.push_back(item);
            } else {
                state.queue.push(item);
            }
        }
        self.shared.pump_and_wake(&mut state, None);
        Ok(())
    }

    /// Cancels an item: a queued one ends at once, a running native one at
    /// its next frame block, a running JS one at once (its result is ignored).
    /// False when the item is unknown or already finished.
    pub fn cancel(&self, id: ItemId) -> bool {
        let mut state = self.shared.state.lock();
        let overflowed = state.overflow.iter().position(|i| i.id == id);
        if overflowed.and_then(|p| state.overflow.remove(p)).is_some()
            || state.queue.remove(id).is_some()
        {
            state.stats.finished(false, true, None);
            self.shared.sink.deliver(Event::Done {
                id,
                result: Err(ItemError::aborted()),
            });
            return true;
        }
        let Some(stop) = state.running_items.get(&id).cloned() else {
            return false;
        };
        stop.cancel();
        let in_js = state.js_batches.values().any(|b| b.ids.contains(&id));
        if in_js {
            state.running_items.remove(&id);
            state.stats.finished(false, true, None);
            self.shared.sink.deliver(Event::Done {
                id,
                result: Err(ItemError::aborted()),
            });
        }
        true
    }

    /// Ends a JS batch the owner ran: `ok` items succeeded, the rest failed.
    /// False when the core already ended it (timeout or forced close).
    pub fn finish_js_batch(&self, batch: u64, ok: &[ItemId], failed: &[ItemId]) -> bool {
        let mut state = self.shared.state.lock();
        let Some(running) = state.js_batches.remove(&batch) else {
            return false;
        };
        state.running_batches -= 1;
        let ran = running.started.elapsed();
        self.shared.ops.record(
            &running.op,
            Phase::Run,
            running.started,
            running.ids.iter().map(|_| ran),
        );
        for (ids, success) in [(ok, true), (failed, false)] {
            for id in ids {
                if state.running_items.remove(id).is_some() {
                    state.stats.finished(success, false, Some(ran));
                }
            }
        }
        for id in &running.ids {
            if state.running_items.remove(id).is_some() {
                state.stats.finished(false, false, Some(ran));
            }
        }
        self.shared.pump_and_wake(&mut state, None);
        true
    }

    /// Counts for a progress bar.
    pub fn counts(&self) -> Counts {
        let state = self.shared.state.lock();
        let (completed, failed, cancelled) = state.stats.outcomes();
        Counts {
            queued: (state.queue.len() + state.overflow.len()) as u64,
            running: state.running_items.len() as u64,
            completed,
            failed,
            cancelled,
        }
    }

    /// Counters, latencies and utilisation.
    pub fn stats(&self) -> Snapshot {
        let state = self.shared.state.lock();
        state.stats.snapshot(
            (state.queue.len() + state.overflow.len()) as u64,
            state.running_items.len() as u64,
            self.shared.config.threads,
        )
    }

    /// Stops accepting items. Queued and running items finish first, unless
    /// `force`: then they end with E_CLOSED (running native items at their
    /// next frame block).
    pub fn close(&self, force: bool) {
        let mut state = self.shared.state.lock();
        state.closing = true;
        if !force {
            // Queued partial batches start now rather than after maxWaitMs.
            self.shared.pump_and_wake(&mut state, None);
        }
        if force {
            let overflow: Vec<Item> = state.overflow.drain(..).collect();
            for item in state.queue.drain().into_iter().chain(overflow) {
                state.stats.finished(false, true, None);
                self.shared.sink.deliver(Event::Done {
                    id: item.id,
                    result: Err(ItemError::closed()),
                });
            }
            let js: Vec<_> = state.js_batches.drain().collect();
            for (_, batch) in js {
                state.running_batches -= 1;
                for id in batch.ids {
                    if state.running_items.remove(&id).is_some() {
                        state.stats.finished(false, true, None);
                        self.shared.sink.deliver(Event::Done {
                            id,
                            result: Err(ItemError::closed()),
                        });
                    }
                }
            }
            for stop in state.running_items.values() {
                stop.close();
            }
        }
        drop(state);
        self.shared.wake.notify_one();
    }
}

impl Gauges for Processor {
    fn gauges(&self) -> Vec<Gauge> {
        let s = self.stats();
        vec![
            (
                "gama_batch_queued",
                "Items waiting in the batch processor.",
                s.queued as f64,
            ),
            (
                "gama_batch_running",
                "Items running in the batch processor.",
                s.running as f64,
            ),
            (
                "gama_batch_completed",
                "Items completed by the batch processor.",
                s.completed as f64,
            ),
        ]
    }

    fn section(&self) -> Value {
        let s = self.stats();
        json!({
            "queued": s.queued,
            "running": s.running,
            "completed": s.completed,
            "failed": s.failed,
            "batches": s.batches,
            "avg_batch_size": s.average_batch_size,
            "throughput_per_sec": s.throughput,
            "p95_wait_ms": s.wait.p95,
            "p95_run_ms": s.run.p95,
        })
    }
}

impl Drop for Processor {
    fn drop(&mut self) {
        self.close(true);
        self.shared.state.lock().stopped = true;
        self.shared.wake.notify_one();
        if let Some(handle) = self.dispatcher.lock().take() {
            let _ = handle.join();
        }
    }
}
