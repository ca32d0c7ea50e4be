//! Metrics: the process-wide latency registry every native operation
//! records into, alert rules, the Prometheus exposition, and the
//! `PerformanceProfiler` binding.

pub mod alerts;
pub mod exposition;
pub mod registry;

pub use registry::{enabled, global, record, record_many, set_enabled, Registry, Summary};
