//! What flows through the processor: items in, outcomes and progress out.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::samples::Samples;
use crate::error::{Coded, ErrorClass};
use crate::features::{FeatureOptions, Features};

/// Identity of an item, unique per processor.
pub type ItemId = u64;

/// Name of an operation type (`PROCESS`, `EXTRACT_FEATURES`, `ANALYZE`,
/// `MEASURE`, or any name a JS processor was registered for).
pub type OpName = Arc<str>;

/// Feature extraction, run natively.
pub const EXTRACT_FEATURES: &str = "EXTRACT_FEATURES";
/// Per-clip summary, run natively.
pub const ANALYZE: &str = "ANALYZE";
/// One-pass level meter (peak, RMS, mean), run natively.
pub const MEASURE: &str = "MEASURE";

/// Highest priority (`'critical'`).
pub const MAX_PRIORITY: u8 = 10;

/// The input of an item.
#[derive(Clone, Debug)]
pub enum Input {
    /// Audio for a native operation.
    Audio {
        /// Mono samples.
        samples: Samples,
        /// Extraction parameters (EXTRACT_FEATURES; ANALYZE uses the sample rate).
        options: Arc<FeatureOptions>,
        /// Cache key of the result (EXTRACT_FEATURES with a feature cache).
        cache_key: Option<Arc<str>>,
    },
    /// A JS value the binding keeps; the core knows its size estimate only.
    Js,
}

/// One queued unit of work.
#[derive(Debug)]
pub struct Item {
    /// Identity.
    pub id: ItemId,
    /// Operation type.
    pub op: OpName,
    /// 0 (lowest) to 10 (critical).
    pub priority: u8,
    /// Items of one group may share a batch.
    pub group: u64,
    /// Bytes the item is expected to need while it runs.
    pub estimate: u64,
    /// The input.
    pub input: Input,
    /// Whether progress events are wanted.
    pub wants_progress: bool,
    /// Set to stop the item (cancel or forced close).
    pub stop: Arc<Stop>,
    /// When it was queued.
    pub enqueued: Instant,
    /// Submission order (set by the queue).
    pub seq: u64,
}

/// Per-clip summary computed by ANALYZE.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Analysis {
    /// Seconds of audio.
    pub duration: f64,
    /// Largest absolute sample.
    pub peak: f64,
    /// Peak in dBFS.
    pub peak_db: f64,
    /// Root mean square.
    pub rms: f64,
    /// RMS in dBFS (loudness).
    pub rms_db: f64,
    /// Share of 20 ms frames quieter than -60 dBFS.
    pub silence_ratio: f64,
    /// Mean spectral centroid in Hz over frames.
    pub spectral_centroid_mean: f64,
    /// Zero crossings per sample.
    pub zero_crossing_rate: f64,
}

/// Levels computed by MEASURE in one pass.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Level {
    /// Largest absolute sample.
    pub peak: f64,
    /// Root mean square.
    pub rms: f64,
    /// Mean sample (DC offset).
    pub mean: f64,
}

/// A native item's result.
#[derive(Debug)]
pub enum Output {
    /// EXTRACT_FEATURES.
    Features(Features),
    /// ANALYZE.
    Analysis(Analysis),
    /// MEASURE.
    Level(Level),
}

/// What ended an item without a result; decides how it is counted and
/// which class of JS error it becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItemErrorKind {
    /// Cancelled by its signal or `cancel(id)` (ABORT_ERR).
    Cancelled,
    /// Ended by a forced `close` (E_CLOSED).
    Closed,
    /// Its input or options are out of range (a RangeError).
    Invalid,
    /// Refused before it ran: no room, no memory, no processor.
    Refused,
    /// It ran and failed (a timeout, a panic, a JS processor's error).
    Failed,
}

/// Why an item failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemError {
    /// What ended it.
    pub kind: ItemErrorKind,
    /// The code JS sees (`E_TIMEOUT`, `ABORT_ERR`, `E_CLOSED`, `E_BUDGET`, ...).
    pub code: &'static str,
    /// What happened.
    pub message: String,
}

impl ItemError {
    /// An error of `kind` with `code`.
    pub fn new(kind: ItemErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        ItemError {
            kind,
            code,
            message: message.into(),
        }
    }

    /// The item was cancelled (signal or `cancel(id)`).
    pub fn aborted() -> Self {
        ItemError::new(
            ItemErrorKind::Cancelled,
            "ABORT_ERR",
            "the item was cancelled",
        )
    }

    /// The processor was closed with `force`.
    pub fn closed() -> Self {
        ItemError::new(
            ItemErrorKind::Closed,
            "E_CLOSED",
            "the batch processor was closed",
        )
    }

    /// Whether a cancel or close ended it (counted as cancelled, not failed).
    pub fn is_stop(&self) -> bool {
        matches!(self.kind, ItemErrorKind::Cancelled | ItemErrorKind::Closed)
    }

    /// The item's error for a core error: its code, and `Invalid` for a
    /// RangeError, `Cancelled` for an abort, `Failed` otherwise.
    pub fn from_coded(e: &dyn Coded) -> Self {
        let kind = match e.class() {
            ErrorClass::RangeError | ErrorClass::TypeError => ItemErrorKind::Invalid,
            ErrorClass::AbortError => ItemErrorKind::Cancelled,
            ErrorClass::Error => ItemErrorKind::Failed,
        };
        ItemError::new(kind, e.code(), e.to_string())
    }
}

impl std::fmt::Display for ItemError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ItemError {}

impl Coded for ItemError {
    fn code(&self) -> &'static str {
        self.code
    }

    fn class(&self) -> ErrorClass {
        match self.kind {
            ItemErrorKind::Cancelled => ErrorClass::AbortError,
            ItemErrorKind::Invalid => ErrorClass::RangeError,
            _ => ErrorClass::Error,
        }
    }
}

/// Why a running item is to stop: set once from any thread (the first
/// reason wins), read by the worker between frame blocks.
#[derive(Debug, Default)]
pub struct Stop(AtomicU8);

impl Stop {
    const RUNNING: u8 = 0;
    const CANCELLED: u8 = 1;
    const CLOSED: u8 = 2;

    /// Asks the item to stop with ABORT_ERR.
    pub fn cancel(&self) {
        self.set(Self::CANCELLED);
    }

    /// Asks the item to stop with E_CLOSED.
    pub fn close(&self) {
        self.set(Self::CLOSED);
    }

    fn set(&self, reason: u8) {
        let _ =
            self.0
                .compare_exchange(Self::RUNNING, reason, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Whether a stop was asked for.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed) != Self::RUNNING
    }

    /// The error the item ends with, when a stop was asked for.
    pub fn error(&self) -> Option<ItemError> {
        match self.0.load(Ordering::Relaxed) {
            Self::CANCELLED => Some(ItemError::aborted()),
            Self::CLOSED => Some(ItemError::closed()),
            _ => None,
        }
    }
}

/// Where an item is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Waiting in the queue.
    Queued,
    /// In a started batch.
    Running,
    /// Finished.
    Done,
}

/// How a batch should use resources, as JS processors are told.
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceStrategy {
    /// `host` or `gpu`.
    pub device: &'static str,
    /// Items in this batch.
    pub batch_size: usize,
    /// Bytes reserved for it.
    pub memory_budget: u64,
    /// Worker threads of the pool.
    pub threads: usize,
}

/// What the processor tells its owner.
#[derive(Debug)]
pub enum Event {
    /// An item finished (for JS items, only failures the core decides: timeout, cancel, close).
    Done {
        /// The item.
        id: ItemId,
        /// Result or error.
        result: Result<Output, ItemError>,
    },
    /// An item moved on or made progress.
    Progress {
        /// The item.
        id: ItemId,
        /// Its stage.
        stage: Stage,
        /// 0 to 1.
        fraction: f32,
    },
    /// A batch of JS items is to be run by the JS processor of `op`.
    RunJs {
        /// Batch identity, for `finish_js_batch`.
        batch: u64,
        /// Operation type.
        op: OpName,
        /// Items in order.
        ids: Vec<ItemId>,
        /// Resources granted.
        strategy: ResourceStrategy,
    },
}

impl Event {
    /// The item the event is about (None for a batch of JS items).
    pub fn item(&self) -> Option<ItemId> {
        match self {
            Event::Done { id, .. } | Event::Progress { id, .. } => Some(*id),
            Event::RunJs { .. } => None,
        }
    }
}

/// Orders a delivery of events for settling: JS batches first (so their
/// processors start at once), then items by `priority` (highest first). The
/// sort is stable, so each item's events keep their order; `priority` is
/// asked once per event, and nothing moves when all ranks agree.
pub fn settle_order(events: Vec<Event>, priority: impl Fn(ItemId) -> u8) -> Vec<Event> {
    if events.len() < 2 {
        return events;
    }
    let ranks: Vec<u8> = events
        .iter()
        .map(|e| e.item().map_or(u8::MAX, &priority))
        .collect();
    if ranks.windows(2).all(|w| w[0] == w[1]) {
        return events;
    }
    let mut order: Vec<usize> = (0..events.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(ranks[i]));
    let mut slots: Vec<Option<Event>> = events.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

/// Receives events, from any thread.
pub trait Sink: Send + Sync {
    /// Takes one event.
    fn deliver(&self, event: Event);

    /// Takes several events at once.
    fn deliver_all(&self, events: Vec<Event>) {
        events.into_iter().for_each(|e| self.deliver(e));
    }
}
