//! The dispatcher's side of a processor: cutting batches when a slot frees
//! up, reserving their memory, starting them (native batches on the pool,
//! JS batches by an event to the owner), running native items, and
//! expiring timed-out JS batches.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rayon::prelude::*;

use super::gpu::Outcome;
use super::item::{
    Event, Input, Item, ItemError, ItemErrorKind, ItemId, Output, ResourceStrategy, Stage,
    EXTRACT_FEATURES,
};
use super::native::{self, Control};
use super::op_series::Phase;
use super::processor::{Engine, Ledger, RunningJs};
use crate::features::gpu::FeatureDevice;
use crate::features::{ArenaLayout, Features};
use crate::memory::{Device, Reservation};

/// Re-check interval while a batch waits for memory to free up.
const MEMORY_RETRY: Duration = Duration::from_millis(5);
/// Smallest progress step reported from inside a native item.
const PROGRESS_STEP: f32 = 0.1;

/// A started native batch.
pub(super) struct NativeBatch {
    items: Vec<Item>,
    /// When it started (its run samples are recorded in that minute).
    started: Instant,
    reservation: Option<Reservation>,
    deadline: Option<Instant>,
}

/// How long each of `items` waited for a batch that started `at`.
fn waits(items: &[Item], at: Instant) -> impl Iterator<Item = Duration> + '_ {
    items
        .iter()
        .map(move |i| at.saturating_duration_since(i.enqueued))
}

/// Samples in a batch from which its items are spread over the workers
/// (below it, splitting costs more than it saves).
const PARALLEL_SAMPLES: usize = 1 << 16;

impl crate::metrics::registry::Source for Engine {
    fn summaries(&self, now: u64, last_minutes: Option<u64>) -> Vec<crate::metrics::Summary> {
        self.ops.summaries(now, last_minutes)
    }

    fn clear(&self) {
        self.ops.clear();
    }
}

enum Admission {
    Go(Vec<Item>, Option<Reservation>),
    Wait(Vec<Item>),
}

impl Engine {
    /// Handles what is due by time: partial batches that waited
    /// `max_wait`, batches waiting for memory, JS batches past their timeout,
    /// and the end of a close. Arrivals and completions start batches
    /// themselves (`pump`), so steady work never waits for this thread.
    pub(super) fn dispatch_loop(self: Arc<Self>) {
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
        state: &mut Ledger,
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
            let mut batch = state
                .queue
                .next_batch(size, now, max_wait, |op| js_ops.contains(op) || native_ok)?;
            if let Some(room) = self.gpu_room(state, &batch) {
                for item in batch.split_off(room) {
                    state.queue.push(item);
                }
            }
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
    fn refill(&self, state: &mut Ledger) {
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
    pub(super) fn pump_and_wake(
        self: &Arc<Self>,
        state: &mut Ledger,
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

    /// Whether batches may use the manager's GPU (`feature_device` is not
    /// `Cpu` and the manager has one).
    fn uses_gpu(&self) -> bool {
        self.config.feature_device != FeatureDevice::Cpu
            && self.memory.as_ref().is_some_and(|m| m.has_gpu())
    }

    /// How many items of `batch` to run when its features go to the GPU:
    /// what the GPU budget has room for below its threshold
    /// (`recommend_batch_size` on the GPU, at the largest item's estimate),
    /// at least 1. `None` for batches that do not use the GPU.
    fn gpu_room(&self, state: &Ledger, batch: &[Item]) -> Option<usize> {
        let first = batch.first()?;
        if &*first.op != EXTRACT_FEATURES || state.js_ops.contains(&first.op) || !self.uses_gpu() {
            return None;
        }
        let memory = self.memory.as_ref()?;
        let per_item = batch.iter().map(|i| i.estimate).max()?;
        let room =
            memory.recommend_batch_size(Device::Gpu, &first.op, per_item, 1, batch.len() as u64);
        Some(room as usize)
    }

    /// The batch size now: the maximum below the memory threshold, halved
    /// at it and shrinking towards 1 as usage approaches 100% (of the host
    /// budget, or of the GPU's when batches use it and it is fuller).
    fn batch_size(&self) -> usize {
        let max = self.config.max_batch_size.max(1);
        let Some(memory) = &self.memory else {
            return max;
        };
        let threshold = memory.config().threshold_percent;
        let mut used = memory.percentage(Device::Host);
        if self.uses_gpu() {
            used = used.max(memory.percentage(Device::Gpu));
        }
        if used < threshold {
            return max;
        }
        let excess = ((used - threshold) / (100.0 - threshold).max(1e-9)).clamp(0.0, 1.0);
        ((max as f64 * (1.0 - excess) * 0.5).ceil() as usize).max(1)
    }

    /// Reserves memory for the longest prefix of `batch` that fits; items
    /// that could never fit fail with E_BUDGET; nothing fitting now waits.
    fn admit(&self, state: &mut Ledger, batch: Vec<Item>) -> Admission {
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
        // A JS processor's batch gets GPU memory when the processor uses
        // the GPU and its budget has room (`resourceStrategy.device` says
        // which); native batches count their host memory (the GPU path
        // allocates its own from the GPU budget).
        let gpu_first = self.uses_gpu() && state.js_ops.contains(&op);
        let mut take = fits.len();
        while take > 0 {
            let bytes: u64 = fits[..take].iter().map(|i| i.estimate).sum();
            let reserved = gpu_first
                .then(|| memory.reserve(Device::Gpu, bytes, &op).ok())
                .flatten()
                .map_or_else(|| memory.reserve(Device::Host, bytes, &op), Ok);
            if let Ok(reservation) = reserved {
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
        state: &mut Ledger,
        batch: Vec<Item>,
        reservation: Option<Reservation>,
    ) -> Option<NativeBatch> {
        let now = Instant::now();
        state.running_batches += 1;
        state.stats.batch_started(waits(&batch, now));
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
            self.ops.record(&op, Phase::Wait, now, waits(&batch, now));
            state.next_batch += 1;
            let id = state.next_batch;
            let ids: Vec<ItemId> = batch.iter().map(|i| i.id).collect();
            let strategy = ResourceStrategy {
                device: match reservation.as_ref().map(Reservation::device) {
                    Some(Device::Gpu) => "gpu",
                    _ => "host",
                },
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
            started: now,
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
            started: batch_started,
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
            let parallel = samples >= PARALLEL_SAMPLES && items.len() > 1;
            let extract = items.len() > 1 && &*items[0].op == EXTRACT_FEATURES;
            let mut outcomes: Vec<Outcome> = match self.run_on_gpu(&items, deadline, &run) {
                Some(outcomes) => outcomes,
                None if extract => self.run_in_arena(&items, deadline, parallel),
                None if parallel => items.par_iter().map(run).collect(),
                None => items.iter().map(run).collect(),
            };
            drop(reservation);
            // Waits are recorded here, not in `start`: under the
            // processor's lock it made the other workers wait (and spin).
            if let Some(first) = items.first() {
                let ran = outcomes.iter().map(|(_, _, ran)| *ran);
                let waits = waits(&items, batch_started);
                self.ops.record_batch(&first.op, batch_started, waits, ran);
            }
            let mut state = self.state.lock();
            state.running_batches -= 1;
            state.running_native -= 1;
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

    /// Runs EXTRACT_FEATURES `items` with their results in shared buffers
    /// (`features::ArenaLayout`): each clip is extracted straight into its
    /// range. Cache hits take no range.
    fn run_in_arena(
        &self,
        items: &[Item],
        deadline: Option<Instant>,
        parallel: bool,
    ) -> Vec<Outcome> {
        let cache = self.cache.as_ref();
        let hits: Vec<Option<Features>> =
            items.iter().map(|i| native::from_cache(i, cache)).collect();
        let lens: Vec<usize> = items
            .iter()
            .zip(&hits)
            .map(|(item, hit)| {
                if hit.is_some() {
                    0
                } else {
                    native::output_len(item)
                }
            })
            .collect();
        let layout = ArenaLayout::new(&lens);
        let mut arenas = layout.zeroed();
        let outs = layout.split(&mut arenas, &lens);
        let run = |((item, hit), out): ((&Item, &Option<Features>), &mut [f32])| {
            let started = Instant::now();
            let written = match hit {
                Some(_) => None,
                None => Some(self.guarded(item, deadline, |c| native::run_into(item, c, out))),
            };
            (written, started.elapsed())
        };
        let written: Vec<_> = if parallel {
            items.par_iter().zip(&hits).zip(outs).map(run).collect()
        } else {
            items.iter().zip(&hits).zip(outs).map(run).collect()
        };
        let arenas: Vec<Arc<Vec<f32>>> = arenas.into_iter().map(Arc::new).collect();
        let mut outcomes = Vec::with_capacity(items.len());
        for (i, ((item, hit), (written, ran))) in items.iter().zip(hits).zip(written).enumerate() {
            let result = match (hit, written) {
                (Some(features), _) => Ok(Output::Features(features)),
                (None, Some(Ok(w))) => {
                    let (arena, at) = layout.place(i, &arenas);
                    let features = Features::shared(arena, at, w.frames, w.items);
                    Ok(native::placed(item, cache, features, w.took))
                }
                (None, Some(Err(e))) => Err(e),
                (None, None) => unreachable!("every item without a cache hit ran"),
            };
            outcomes.push((item.id, result, ran));
        }
        outcomes
    }

    /// Runs one native item, turning a panic into an error.
    fn run_item(&self, item: &Item, deadline: Option<Instant>) -> Result<Output, ItemError> {
        self.guarded(item, deadline, |control| {
            native::run(item, self.cache.as_ref(), control)
        })
    }

    /// Runs `body` for native item `item` with its control (stop, deadline
    /// and progress), turning a panic into an error.
    fn guarded<T>(
        &self,
        item: &Item,
        deadline: Option<Instant>,
        body: impl FnOnce(&mut Control) -> Result<T, ItemError>,
    ) -> Result<T, ItemError> {
        // Held while reporting, so reports from the pieces of a split clip
        // reach JS in rising order.
        let last = parking_lot::Mutex::new(0.0f32);
        let progress = |fraction: f32| {
            if !item.wants_progress || fraction >= 1.0 {
                return;
            }
            let mut last = last.lock();
            if fraction - *last >= PROGRESS_STEP {
                *last = fraction;
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
            progress: &progress,
        };
        catch_unwind(AssertUnwindSafe(|| body(&mut control))).unwrap_or_else(|_| {
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

    fn expire_js(&self, state: &mut Ledger, now: Instant) {
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
