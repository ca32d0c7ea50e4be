//! gama-core: the capabilities of gama-native as plain Rust, with no
//! JavaScript in sight. `gama-node` binds them to Node.js; anything else
//! (a Rust service, a test, a benchmark) can use them directly.
//!
//! Dependencies inside the crate run one way: `batch` uses `cache`,
//! `features` and `memory`; `features` uses `memory` (its GPU path draws
//! device memory from a manager); `stream` uses `features`, `memory` and
//! `batch`'s latency percentiles; `cache`, `features` and `memory` record
//! into `metrics`; `metrics` knows none of them (they report through its
//! `Source` and `Gauges` traits).

pub mod batch;
pub mod cache;
pub mod copy;
pub mod error;
pub mod features;
pub mod memory;
pub mod metrics;
mod reaper;
mod simd;
pub mod stream;
pub mod suggest;
