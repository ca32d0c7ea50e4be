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
use rayon::prelude::*;
use serde_json::{json, Value};

use super::item::{
    Event, Input, Item, ItemError, ItemErrorKind, ItemId, OpName, Output, ResourceStrategy, Sink,
    Stage, Stop,
};
use super::native::{self, Control};
use super::queue::Queue;
use super::stats::{Recorder, Snapshot};
use crate::cache::FeatureCache;
use crate::error::Coded;
use crate::memory::{Device, MemoryManager, Reservation};
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

struct RunningJs {
    op: OpName,
    ids: Vec<ItemId>,
    deadline: Option<Instant>,
    started: Instant,
    _reservation: Option<Reservation>,
}

struct State {
    queue: Queue,
    /// Items accepted while the queue was full (`wait_when_full`), oldest
    /// first; they move into the queue as it gets room.
    overflow: VecDeque<Item>,
    running_batches: usize,
    running_native: usize,
    running_items: HashMap<ItemId, Arc<Stop>>,
    js_batches: HashMap<u64, RunningJs>,
    js_ops: HashSet<OpName>,
    next_batch: u64,
    closing: bool,
    stopped: bool,
    dispatcher_asleep: bool,
    stats: Recorder,
}

struct Shared {
    config: Config,
    state: Mutex<State>,
    wake: Condvar,
    pool: RwLock<Option<rayon::ThreadPool>>,
    sink: Arc<dyn Sink>,
    memory: Option<Arc<MemoryManager>>,
    cache: Option<FeatureCache>,
}

/// A batch processor; see the module documentation.
pub struct Processor {
    shared: Arc<Shared>,
    dispatcher: Mutex<Option<JoinHandle<()>>>,
}

/// Re-check interval while a batch waits for memory to free up.
const MEMORY_RETRY: Duration = Duration::from_millis(5);
/// Smallest progress step reported from inside a native item.
const PROGRESS_STEP: f32 = 0.1;

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
        let shared = Arc::new(Shared {
            config,
            state: Mutex::new(State {
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
        state
            .stats
            .record_op(&running.op, true, running.ids.iter().map(|_| ran));
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

/// A started native batch.
struct NativeBatch {
    items: Vec<Item>,
    reservation: Option<Reservation>,
    deadline: Option<Instant>,
}

/// Samples in a batch from which its items are spread over the workers
/// (below it, splitting costs more than it saves).
const PARALLEL_SAMPLES: usize = 1 << 16;

impl crate::metrics::registry::Source for Shared {
    fn summaries(&self, now: u64, last_minutes: Option<u64>) -> Vec<crate::metrics::Summary> {
        self.state.lock().stats.op_summaries(now, last_minutes)
    }

    fn clear(&self) {
        self.state.lock().stats.clear_ops();
    }
}

enum Admission {
    Go(Vec<Item>, Option<Reservation>),
    Wait(Vec<Item>),
}

impl Shared {
    /// Handles what is due by time: partial batches that waited
    /// `max_wait`, batches waiting for memory, JS batches past their timeout,
    /// and the end of a close. Arrivals and completions start batches
    /// themselves (`pump`), so steady work never waits for this thread.
    fn dispatch_loop(self: Arc<Self>) {
        let mut state = self.state.lock();
        loop {
            if state.stopped {
                break;
            }
            let now = Instant::now();
            self.expire_js(&mut state, now);
            if state.closing && state.queue.is_empty() && state.running_batches == 0 {
                break;
            }
            let retry_at = self.pump(&mut state, now, None);
            let deadline = [
                retry_at,
                state
                    .queue
                    .next_deadline(self.config.max_batch_size, self.config.max_wait),
                state.js_batches.values().filter_map(|b| b.deadline).min(),
            ]
            .into_iter()
            .flatten()
            .min();
            state.dispatcher_asleep = true;
            match deadline {
                Some(t) => {
                    self.wake.wait_until(&mut state, t);
                }
                None => self.wake.wait(&mut state),
            }
            state.dispatcher_asleep = false;
        }
        drop(state);
        self.pool.write().take();
    }

    /// Starts batches while a slot is free and a batch is ready (native
    /// batches only while a worker is free: more would just queue inside the
    /// pool and cut batches too early); returns when to try again if a batch
    /// is waiting for memory. With `inline`, the first native batch is
    /// handed back for the calling worker to run instead of spawned.
    fn pump(
        self: &Arc<Self>,
        state: &mut State,
        now: Instant,
        mut inline: Option<&mut Option<NativeBatch>>,
    ) -> Option<Instant> {
        while state.running_batches < self.config.max_concurrent_batches {
            self.refill(state);
            let size = self.batch_size();
            let native_ok = state.running_native < self.config.threads;
            // Closing flushes partial batches at once instead of letting them fill.
            let max_wait = if state.closing {
                Duration::ZERO
            } else {
                self.config.max_wait
            };
            let js_ops = &state.js_ops;
            let batch = state
                .queue
                .next_batch(size, now, max_wait, |op| js_ops.contains(op) || native_ok)?;
            match self.admit(state, batch) {
                Admission::Go(batch, reservation) if !batch.is_empty() => {
                    if let Some(native) = self.start(state, batch, reservation) {
                        match inline.as_mut().filter(|slot| slot.is_none()) {
                            Some(slot) => **slot = Some(native),
                            None => self.spawn(native),
                        }
                    }
                }
                Admission::Go(..) => {}
                Admission::Wait(batch) => {
                    for item in batch {
                        state.queue.push(item);
                    }
                    return Some(now + MEMORY_RETRY);
                }
            }
        }
        self.refill(state);
        None
    }

    /// Moves overflow into the queue while it has room.
    fn refill(&self, state: &mut State) {
        let max = self.config.max_queue_size.unwrap_or(usize::MAX);
        while state.queue.len() < max {
            let Some(item) = state.overflow.pop_front() else {
                break;
            };
            state.queue.push(item);
        }
    }

    /// Starts what can start, and wakes the dispatcher when something timed
    /// may now be due (waiting batches, timeouts, a close to finish).
    fn pump_and_wake(
        self: &Arc<Self>,
        state: &mut State,
        inline: Option<&mut Option<NativeBatch>>,
    ) {
        let retry = self.pump(state, Instant::now(), inline);
        let timed = retry.is_some()
            || !self.config.max_wait.is_zero()
            || self.config.batch_timeout.is_some()
            || state.closing;
        if timed && state.dispatcher_asleep {
            self.wake.notify_one();
        }
    }

    /// The batch size now: the maximum below the memory threshold, halved
    /// at it and shrinking towards 1 as usage approaches 100%.
    fn batch_size(&self) -> usize {
        let max = self.config.max_batch_size.max(1);
        let Some(memory) = &self.memory else {
            return max;
        };
        let threshold = memory.config().threshold_percent;
        let used = memory.percentage(Device::Host);
        if used < threshold {
            return max;
        }
        let excess = ((used - threshold) / (100.0 - threshold).max(1e-9)).clamp(0.0, 1.0);
        ((max as f64 * (1.0 - excess) * 0.5).ceil() as usize).max(1)
    }

    /// Reserves memory for the longest prefix of `batch` that fits; items
    /// that could never fit fail with E_BUDGET; nothing fitting now waits.
    fn admit(&self, state: &mut State, batch: Vec<Item>) -> Admission {
        let Some(memory) = &self.memory else {
            return Admission::Go(batch, None);
        };
        let capacity = memory.capacity(Device::Host);
        let (fits, never): (Vec<Item>, Vec<Item>) =
            batch.into_iter().partition(|i| i.estimate <= capacity);
        for item in never {
            state.stats.finished(false, false, None);
            self.sink.deliver(Event::Done {
                id: item.id,
                result: Err(ItemError::new(
                    ItemErrorKind::Refused,
                    "E_BUDGET",
                    format!(
                        "the item needs about {} bytes, more than the memory manager's usable {} bytes",
                        item.estimate, capacity
                    ),
                )),
            });
        }
        if fits.is_empty() {
            return Admission::Go(fits, None);
        }
        let op = fits[0].op.clone();
        let mut take = fits.len();
        while take > 0 {
            let bytes: u64 = fits[..take].iter().map(|i| i.estimate).sum();
            if let Ok(reservation) = memory.reserve(Device::Host, bytes, &op) {
                let mut fits = fits;
                for item in fits.split_off(take) {
                    state.queue.push(item);
                }
                return Admission::Go(fits, Some(reservation));
            }
            take /= 2;
        }
        Admission::Wait(fits)
    }

    fn start(
        self: &Arc<Self>,
        state: &mut State,
        batch: Vec<Item>,
        reservation: Option<Reservation>,
    ) -> Option<NativeBatch> {
        let now = Instant::now();
        state.running_batches += 1;
        state.stats.batch_started(
            batch
                .iter()
                .map(|i| now.saturating_duration_since(i.enqueued)),
        );
        state.stats.record_op(
            &batch[0].op,
            false,
            batch
                .iter()
                .map(|i| now.saturating_duration_since(i.enqueued)),
        );
        for item in &batch {
            state.running_items.insert(item.id, item.stop.clone());
            if item.wants_progress {
                self.sink.deliver(Event::Progress {
                    id: item.id,
                    stage: Stage::Running,
                    fraction: 0.0,
                });
            }
        }
        let deadline = self.config.batch_timeout.map(|t| now + t);
        let op = batch[0].op.clone();
        if state.js_ops.contains(&op) {
            state.next_batch += 1;
            let id = state.next_batch;
            let ids: Vec<ItemId> = batch.iter().map(|i| i.id).collect();
            let strategy = ResourceStrategy {
                device: "host",
                batch_size: ids.len(),
                memory_budget: reservation.as_ref().map_or(0, |r| r.bytes()),
                threads: self.config.threads,
            };
            state.js_batches.insert(
                id,
                RunningJs {
                    op: op.clone(),
                    ids: ids.clone(),
                    deadline,
                    started: now,
                    _reservation: reservation,
                },
            );
            self.sink.deliver(Event::RunJs {
                batch: id,
                op,
                ids,
                strategy,
            });
            return None;
        }
        state.running_native += 1;
        Some(NativeBatch {
            items: batch,
            reservation,
            deadline,
        })
    }

    /// Runs a native batch on the pool.
    fn spawn(self: &Arc<Self>, batch: NativeBatch) {
        let shared = self.clone();
        let pool = self.pool.read();
        let pool = pool
            .as_ref()
            .expect("the pool lives until the dispatcher stops");
        pool.spawn(move || shared.run_native(batch));
    }

    /// Runs a native batch, then (on this worker) the next ones it starts.
    fn run_native(self: Arc<Self>, batch: NativeBatch) {
        let mut next = Some(batch);
        while let Some(NativeBatch {
            items,
            reservation,
            deadline,
        }) = next.take()
        {
            let run = |item: &Item| {
                let started = Instant::now();
                let result = self.run_item(item, deadline);
                (item.id, result, started.elapsed())
            };
            let samples: usize = items
                .iter()
                .map(|i| match &i.input {
                    Input::Audio { samples, .. } => samples.len(),
                    Input::Js => 0,
                })
                .sum();
            let mut outcomes: Vec<(ItemId, Result<Output, ItemError>, Duration)> =
                if samples >= PARALLEL_SAMPLES && items.len() > 1 {
                    items.par_iter().map(run).collect()
                } else {
                    items.iter().map(run).collect()
                };
            drop(reservation);
            let mut state = self.state.lock();
            state.running_batches -= 1;
            state.running_native -= 1;
            if let Some(first) = items.first() {
                state
                    .stats
                    .record_op(&first.op, true, outcomes.iter().map(|(_, _, ran)| *ran));
            }
            for (id, result, ran) in &mut outcomes {
                // A stop asked for before this point was acknowledged by
                // `cancel`/`close` (which take this lock): it wins over a
                // result the item reached meanwhile.
                if let Some(stopped) = state.running_items.remove(id).and_then(|s| s.error()) {
                    *result = Err(stopped);
                }
                let cancelled = matches!(result, Err(e) if e.is_stop());
                state.stats.finished(result.is_ok(), cancelled, Some(*ran));
                state.stats.busy(*ran);
            }
            self.pump_and_wake(&mut state, Some(&mut next));
            drop(state);

            self.sink.deliver_all(
                outcomes
                    .into_iter()
                    .map(|(id, result, _)| Event::Done { id, result })
                    .collect(),
            );
        }
    }

    /// Runs one native item, turning a panic into an error.
    fn run_item(&self, item: &Item, deadline: Option<Instant>) -> Result<Output, ItemError> {
        let mut last = 0.0f32;
        let mut progress = |fraction: f32| {
            if item.wants_progress && fraction - last >= PROGRESS_STEP && fraction < 1.0 {
                last = fraction;
                self.sink.deliver(Event::Progress {
                    id: item.id,
                    stage: Stage::Running,
                    fraction,
                });
            }
        };
        let mut control = Control {
            stop: &item.stop,
            deadline,
            progress: &mut progress,
        };
        catch_unwind(AssertUnwindSafe(|| {
            native::run(item, self.cache.as_ref(), &mut control)
        }))
        .unwrap_or_else(|_| {
            Err(ItemError::new(
                ItemErrorKind::Failed,
                "E_PANIC",
                format!(
                    "the native '{}' operation panicked; the processor goes on",
                    item.op
                ),
            ))
        })
    }

    fn expire_js(&self, state: &mut State, now: Instant) {
        let expired: Vec<u64> = state
            .js_batches
            .iter()
            .filter(|(_, b)| b.deadline.is_some_and(|d| d <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            let batch = state.js_batches.remove(&id).expect("listed above");
            state.running_batches -= 1;
            for item in batch.ids {
                if state.running_items.remove(&item).is_some() {
                    state
                        .stats
                        .finished(false, false, Some(now - batch.started));
                    self.sink.deliver(Event::Done {
                        id: item,
                        result: Err(native::timed_out()),
                    });
                }
            }
        }
    }
}
