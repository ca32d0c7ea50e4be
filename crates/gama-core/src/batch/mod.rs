//! The batch processor: items queued by priority and grouped by similarity,
//! cut into batches only when a slot frees up (so a more urgent item never
//! waits behind a queued batch), with memory reserved through the memory
//! manager, run natively on a work-stealing pool or by JS processors, with
//! timeouts, cancellation, progress and statistics.

mod dispatch;
mod gpu;
mod item;
mod native;
mod op_series;
mod processor;
mod queue;
mod recycle;
mod samples;
mod stats;
#[cfg(test)]
mod tests;

pub use crate::metrics::Latency;
pub use item::{
    settle_order, Analysis, Event, Input, Item, ItemError, ItemErrorKind, ItemId, Level, OpName,
    Output, ResourceStrategy, Sink, Stage, Stop, ANALYZE, EXTRACT_FEATURES, MAX_PRIORITY, MEASURE,
};
pub use native::{analyze, estimate, is_native, measure};
pub use op_series::{OpSeries, Phase};
pub use processor::{Config, Counts, Processor, SubmitError};
pub use queue::similarity_group;
pub use samples::{SampleBuffer, Samples};
pub use stats::Snapshot;
