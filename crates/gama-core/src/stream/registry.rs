//! The open streams of a `Streams`: intake on the caller's thread, frames
//! computed on the rayon pool, events out through a sink, idle streams
//! ended by the process's reaper.
//!
//! Streams with new work wait in one ready queue that a few pump jobs
//! drain (at most one per pool thread, started only when the queue holds
//! more streams than pumps run): a push to a busy set wakes no thread, and
//! the JS thread is not preempted for every 20 ms chunk.
//!
//! Invariant: a stream is in `open` exactly while its phase is not
//! `Ended`; `scheduled` is true exactly while it is in the ready queue or
//! a pump runs it (one pump at a time, so its frames come in order), and
//! only that pump holds its `Utterance` (taken out of the state while it
//! computes).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use hashbrown::HashMap;
use parking_lot::Mutex;

use super::error::StreamError;
use super::stats::{Counters, StreamStats};
use super::utterance::{Block, TopDbReference, Utterance};
use crate::features::{first_non_finite, unwinding, ExtractError, Extractor, Features};
use crate::memory::{Device, MemoryManager, Reservation};
use crate::reaper::{self, Expiring};

/// Limits of a `Streams`.
#[derive(Clone, Debug)]
pub struct StreamsConfig {
    /// Most streams open at once.
    pub max_concurrent: usize,
    /// A stream not pushed to for this long is finalized (none: never).
    pub idle_timeout: Option<Duration>,
    /// Frames computed or pending but not yet consumed above which `push`
    /// reports backpressure.
    pub high_water_frames: usize,
}

impl Default for StreamsConfig {
    fn default() -> Self {
        StreamsConfig {
            max_concurrent: 100,
            idle_timeout: Some(Duration::from_secs(5)),
            high_water_frames: 1000,
        }
    }
}

/// Why a stream ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// `finalize` was called.
    Finalized,
    /// Not pushed to for the idle timeout.
    Idle,
    /// The streams were closed.
    Closed,
}

/// What a stream's whole run gave.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// Frames handed out.
    pub frames: usize,
    /// Samples received.
    pub samples: usize,
    /// Why it ended.
    pub reason: EndReason,
    /// For a stream started keeping its whole utterance: its features as
    /// offline extraction of all its samples gives them.
    pub whole: Option<Features>,
}

/// What the streams tell their owner, in order per stream.
#[derive(Debug)]
pub enum StreamEvent {
    /// New frames of stream `serial`.
    Frames {
        /// The stream.
        serial: u64,
        /// The frames.
        block: Block,
        /// When the last chunk the frames needed was pushed.
        pushed: Instant,
    },
    /// Stream `serial` ended (its last frames were sent before this).
    Ended {
        /// The stream.
        serial: u64,
        /// Its summary, or why its audio could not be extracted.
        outcome: Result<Summary, ExtractError>,
    },
}

/// Where a `Streams` sends its events; called from pool threads.
pub trait StreamSink: Send + Sync {
    /// Takes one event.
    fn deliver(&self, event: StreamEvent);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Open,
    Ending(EndReason),
    Ended,
}

struct SlotState {
    phase: Phase,
    /// Samples pushed and not yet taken by the job.
    inbox: Vec<f32>,
    /// The job's emptied inbox, reused for the next one.
    spare: Vec<f32>,
    /// Absent while the job computes.
    utterance: Option<Utterance>,
    scheduled: bool,
    last_push: Instant,
    /// Push time of the newest chunk not yet taken by the job.
    newest_push: Option<Instant>,
    /// Frames sent and not yet consumed.
    undelivered: usize,
    samples: usize,
    window_bytes: usize,
    /// Host budget counted for the buffers: grown by adding to it (never
    /// replaced, so growing never counts the same bytes twice).
    reservations: Vec<Reservation>,
}

impl SlotState {
    fn buffer_bytes(&self) -> usize {
        (self.inbox.capacity() + self.spare.capacity()) * std::mem::size_of::<f32>()
            + self.window_bytes
    }
}

struct Slot {
    serial: u64,
    id: Arc<str>,
    hop: usize,
    state: Mutex<SlotState>,
}

/// Streams waiting for a pump, and the pumps running.
struct Ready {
    queue: VecDeque<Arc<Slot>>,
    pumps: usize,
}

struct Shared {
    /// This, for jobs the reaper starts (it holds `Shared` by reference).
    me: Weak<Shared>,
    config: StreamsConfig,
    sink: Arc<dyn StreamSink>,
    memory: Option<Arc<MemoryManager>>,
    open: Mutex<HashMap<Arc<str>, Arc<Slot>>>,
    closed: AtomicBool,
    next_serial: AtomicU64,
    counters: Counters,
    ready: Mutex<Ready>,
}

/// A set of feature streams sharing limits, a sink and statistics.
pub struct Streams {
    shared: Arc<Shared>,
}

/// One open stream (a handle: the stream lives on in its `Streams` until
/// it ends, whether the handle is kept or not).
#[derive(Clone)]
pub struct Stream {
    slot: Arc<Slot>,
    shared: Arc<Shared>,
}

impl Streams {
    /// Streams sending their events to `sink`; buffers are counted
    /// against `memory`'s host budget when given.
    pub fn new(
        config: StreamsConfig,
        sink: Arc<dyn StreamSink>,
        memory: Option<Arc<MemoryManager>>,
    ) -> Self {
        let shared = Arc::new_cyclic(|me| Shared {
            me: me.clone(),
            config,
            sink,
            memory,
            open: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
            next_serial: AtomicU64::new(1),
            counters: Counters::new(),
            ready: Mutex::new(Ready {
                queue: VecDeque::new(),
                pumps: 0,
            }),
        });
        let weak: Weak<dyn Expiring> = Arc::downgrade(&shared) as Weak<Shared>;
        reaper::watch(weak);
        Streams { shared }
    }

    /// Opens a stream for `id`, extracted with `extractor`; with
    /// `keep_whole`, its summary holds the whole utterance's features (see
    /// `Summary::whole`).
    pub fn start(
        &self,
        id: &str,
        extractor: Arc<Extractor>,
        reference: TopDbReference,
        keep_whole: bool,
    ) -> Result<Stream, StreamError> {
        let shared = &self.shared;
        let hop = extractor.options().hop_length;
        let mut open = shared.open.lock();
        if shared.closed.load(Ordering::Acquire) {
            return Err(StreamError::ShutDown);
        }
        if open.contains_key(id) {
            return Err(StreamError::Duplicate(id.to_string()));
        }
        if open.len() >= shared.config.max_concurrent {
            return Err(StreamError::TooMany {
                limit: shared.config.max_concurrent,
            });
        }
        let now = Instant::now();
        let id: Arc<str> = id.into();
        let slot = Arc::new(Slot {
            serial: shared.next_serial.fetch_add(1, Ordering::Relaxed),
            id: id.clone(),
            hop,
            state: Mutex::new(SlotState {
                phase: Phase::Open,
                inbox: Vec::new(),
                spare: Vec::new(),
                utterance: Some({
                    let utterance = Utterance::new(extractor, reference);
                    if keep_whole {
                        utterance.keeping_whole()
                    } else {
                        utterance
                    }
                }),
                scheduled: false,
                last_push: now,
                newest_push: None,
                undelivered: 0,
                samples: 0,
                window_bytes: 0,
                reservations: Vec::new(),
            }),
        });
        open.insert(id, slot.clone());
        drop(open);
        shared.counters.started.fetch_add(1, Ordering::Relaxed);
        if let Some(idle) = shared.config.idle_timeout {
            reaper::wake_by(now + idle);
        }
        Ok(Stream {
            slot,
            shared: shared.clone(),
        })
    }

    /// The open stream of `id`.
    pub fn get(&self, id: &str) -> Result<Stream, StreamError> {
        let slot = self.shared.open.lock().get(id).cloned();
        slot.map(|slot| Stream {
            slot,
            shared: self.shared.clone(),
        })
        .ok_or_else(|| StreamError::Unknown(id.to_string()))
    }

    /// Refuses new streams and ends every open one as `finalize` would
    /// (their last frames and `Ended` events follow); returns how many.
    pub fn close(&self) -> usize {
        self.shared.closed.store(true, Ordering::Release);
        let slots: Vec<Arc<Slot>> = self.shared.open.lock().values().cloned().collect();
        for slot in &slots {
            self.shared.end(slot, EndReason::Closed);
        }
        slots.len()
    }

    /// Records that frames pushed at `pushed` reached their consumer now.
    pub fn record_delivery(&self, pushed: Instant) {
        self.shared.counters.record_latency(pushed.elapsed());
    }

    /// Counters, rates and latency percentiles.
    pub fn stats(&self) -> StreamStats {
        let slots: Vec<Arc<Slot>> = self.shared.open.lock().values().cloned().collect();
        let bytes = slots
            .iter()
            .map(|s| s.state.lock().buffer_bytes() as u64)
            .sum();
        self.shared.counters.snapshot(slots.len(), bytes)
    }
}

impl Stream {
    /// The stream's utterance id.
    pub fn id(&self) -> &str {
        &self.slot.id
    }

    /// A number no other stream of the process has.
    pub fn serial(&self) -> u64 {
        self.slot.serial
    }

    /// Whether the stream still takes samples.
    pub fn is_open(&self) -> bool {
        self.slot.state.lock().phase == Phase::Open
    }

    /// Copies `samples` in and has their frames computed on the pool;
    /// false when the frames sent or pending but not consumed exceed the
    /// high-water mark (the samples are taken all the same).
    pub fn push(&self, samples: &[f32]) -> Result<bool, StreamError> {
        if samples.is_empty() {
            return Err(StreamError::EmptyChunk);
        }
        if let Some((index, value)) = first_non_finite(samples) {
            return Err(StreamError::NotFinite { index, value });
        }
        let slot = &self.slot;
        let mut st = slot.state.lock();
        if st.phase != Phase::Open {
            return Err(StreamError::Closed(slot.id.to_string()));
        }
        if let Some(memory) = &self.shared.memory {
            let needed = st.buffer_bytes() + st.inbox.len().max(samples.len()) * 4;
            let held: usize = st.reservations.iter().map(|r| r.bytes() as usize).sum();
            if needed > held {
                let more = (needed + needed / 2 - held) as u64;
                let reservation = memory
                    .reserve(Device::Host, more, "streams")
                    .map_err(StreamError::Budget)?;
                st.reservations.push(reservation);
            }
        }
        st.inbox.extend_from_slice(samples);
        let now = Instant::now();
        st.last_push = now;
        st.newest_push = Some(now);
        st.samples += samples.len();
        let backlog = st.undelivered + st.inbox.len() / slot.hop;
        let start = !st.scheduled;
        st.scheduled = true;
        drop(st);
        if start {
            self.shared.schedule(slot.clone());
        }
        Ok(backlog <= self.shared.config.high_water_frames)
    }

    /// Ends the stream once the samples pushed so far are framed: its last
    /// frames (padded as a clip's end) and an `Ended` event follow. Does
    /// nothing when it is ending already.
    pub fn finalize(&self) {
        self.shared.end(&self.slot, EndReason::Finalized);
    }

    /// Ends the stream at once: no more events for it. False when it had
    /// ended already.
    pub fn abort(&self) -> bool {
        let mut st = self.slot.state.lock();
        if st.phase == Phase::Ended {
            return false;
        }
        st.phase = Phase::Ended;
        st.utterance = None;
        st.reservations = Vec::new();
        st.inbox = Vec::new();
        st.spare = Vec::new();
        drop(st);
        self.shared.forget(&self.slot);
        self.shared.counters.aborted.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Marks `frames` sent frames as consumed (for backpressure); true
    /// when the backlog is now at or below the high-water mark.
    pub fn consumed(&self, frames: usize) -> bool {
        let mut st = self.slot.state.lock();
        st.undelivered = st.undelivered.saturating_sub(frames);
        st.undelivered + st.inbox.len() / self.slot.hop <= self.shared.config.high_water_frames
    }
}

impl Shared {
    /// Queues a stream that has work (its `scheduled` flag just set), and
    /// starts a pump when the queue outgrows the pumps running.
    fn schedule(self: &Arc<Self>, slot: Arc<Slot>) {
        let mut ready = self.ready.lock();
        ready.queue.push_back(slot);
        if ready.pumps < rayon::current_num_threads() && ready.queue.len() > ready.pumps {
            ready.pumps += 1;
            drop(ready);
            let shared = self.clone();
            rayon::spawn(move || shared.pump());
        }
    }

    /// Runs queued streams until the queue is empty.
    fn pump(&self) {
        loop {
            let mut ready = self.ready.lock();
            let Some(slot) = ready.queue.pop_front() else {
                ready.pumps -= 1;
                return;
            };
            drop(ready);
            self.run(slot);
        }
    }

    /// Starts ending `slot` for `reason`, unless it is ending already.
    fn end(self: &Arc<Self>, slot: &Arc<Slot>, reason: EndReason) {
        let mut st = slot.state.lock();
        if st.phase != Phase::Open {
            return;
        }
        st.phase = Phase::Ending(reason);
        let start = !st.scheduled;
        st.scheduled = true;
        drop(st);
        if start {
            self.schedule(slot.clone());
        }
    }

    fn forget(&self, slot: &Slot) {
        let mut open = self.open.lock();
        if open.get(&slot.id).is_some_and(|s| s.serial == slot.serial) {
            open.remove(&slot.id);
        }
    }

    /// One turn of a stream: frames what was pushed and sends it, ends the
    /// stream when asked to, and queues it again behind the others when
    /// more arrived meanwhile.
    fn run(&self, slot: Arc<Slot>) {
        let mut st = slot.state.lock();
        let Some(mut utterance) = st.utterance.take().filter(|_| st.phase != Phase::Ended) else {
            st.scheduled = false;
            return;
        };
        let spare = std::mem::take(&mut st.spare);
        let mut chunk = std::mem::replace(&mut st.inbox, spare);
        let pushed = st.newest_push.take().unwrap_or(st.last_push);
        let ending = match st.phase {
            Phase::Ending(reason) => Some(reason),
            _ => None,
        };
        drop(st);

        let mut events = Vec::with_capacity(2);
        let mut outcome = None;
        let mut frames = 0;
        // A panic ends the stream with E_PANIC (unwinding out of the pool's
        // job would abort the process).
        let last = unwinding(|| {
            let block = utterance.push(&chunk).and_then(|()| utterance.ready())?;
            match ending {
                None => Ok((block, None)),
                Some(_) => utterance.finish().map(|tail| (block, tail)),
            }
        });
        match last {
            Ok((block, tail)) => {
                for block in [block, tail].into_iter().flatten() {
                    frames += block.features.frames;
                    events.push(StreamEvent::Frames {
                        serial: slot.serial,
                        block,
                        pushed,
                    });
                }
                if let Some(reason) = ending {
                    outcome = Some(Ok(reason));
                }
            }
            Err(e) => outcome = Some(Err(e)),
        }
        chunk.clear();
        // Joined here, not under the stream's lock.
        let whole = match outcome {
            Some(Ok(_)) => utterance.whole(),
            _ => None,
        };

        let mut st = slot.state.lock();
        if st.phase == Phase::Ended {
            // Aborted while computing: nothing more is sent.
            st.scheduled = false;
            return;
        }
        st.spare = chunk;
        st.undelivered += frames;
        st.window_bytes = utterance.window_bytes();
        let summary = outcome.map(|o| {
            o.map(|reason| Summary {
                frames: utterance.frames_done(),
                samples: st.samples,
                reason,
                whole,
            })
        });
        if summary.is_some() {
            st.phase = Phase::Ended;
            st.reservations = Vec::new();
            st.inbox = Vec::new();
            st.spare = Vec::new();
        } else {
            st.utterance = Some(utterance);
        }
        drop(st);
        self.counters
            .frames
            .fetch_add(frames as u64, Ordering::Relaxed);
        for event in events {
            self.sink.deliver(event);
        }
        if let Some(outcome) = summary {
            self.forget(&slot);
            self.counters.ended(outcome.as_ref().ok().map(|s| s.reason));
            self.sink.deliver(StreamEvent::Ended {
                serial: slot.serial,
                outcome,
            });
            slot.state.lock().scheduled = false;
            return;
        }
        let mut st = slot.state.lock();
        let more = !st.inbox.is_empty() || matches!(st.phase, Phase::Ending(_));
        if !more {
            st.scheduled = false;
            return;
        }
        drop(st);
        self.ready.lock().queue.push_back(slot);
    }
}

impl Expiring for Shared {
    fn purge_expired(&self, now: Instant) -> Option<Instant> {
        let idle = self.config.idle_timeout?;
        let slots: Vec<Arc<Slot>> = self.open.lock().values().cloned().collect();
        let mut next: Option<Instant> = None;
        for slot in slots {
            let mut st = slot.state.lock();
            if st.phase != Phase::Open {
                continue;
            }
            let deadline = st.last_push + idle;
            if deadline > now {
                next = Some(next.map_or(deadline, |t| t.min(deadline)));
                continue;
            }
            st.phase = Phase::Ending(EndReason::Idle);
            let start = !st.scheduled;
            st.scheduled = true;
            drop(st);
            if let (true, Some(shared)) = (start, self.me.upgrade()) {
                shared.schedule(slot.clone());
            }
        }
        next
    }
}
