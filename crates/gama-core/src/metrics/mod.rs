//! Metrics: the process-wide latency registry every native operation
//! records into, alert rules, the gauges the parts report, and the
//! Prometheus exposition.

pub mod alerts;
pub mod exposition;
pub mod gauges;
pub mod latency;
pub mod registry;
pub(crate) mod sharded;

pub use gauges::{exposition, snapshot, Gauges};
pub use latency::{histogram, latency, Latency};
pub use registry::{enabled, global, set_enabled, Handle, Registry, Summary};
