//! What the parts of the system report about their state now: gauges for
//! the Prometheus exposition and a section of the stats snapshot. The cache,
//! the memory manager and the batch processor implement `Gauges`; this
//! module knows none of them.

use serde_json::{json, Map, Value};

use super::exposition::{render, Gauge};
use super::registry::{global, Summary};

/// A part whose state is read as gauges and as a snapshot section.
pub trait Gauges {
    /// Its gauges now.
    fn gauges(&self) -> Vec<Gauge>;
    /// Its section of the stats snapshot: a JSON object.
    fn section(&self) -> Value;
}

impl Summary {
    /// The summary as JS sees it (`OperationSummary`).
    pub fn to_json(&self) -> Value {
        json!({
            "component": self.component,
            "operation": self.operation,
            "count": self.count,
            "meanMs": self.mean_ms,
            "p50Ms": self.p50_ms,
            "p95Ms": self.p95_ms,
            "p99Ms": self.p99_ms,
            "maxMs": self.max_ms,
            "totalMs": self.total_ms,
            "share": self.share,
        })
    }
}

/// The stats snapshot: each named section (null where its part is not
/// watched), then `operations`, the latency summary of every series.
pub fn snapshot(sections: &[(&str, Option<&dyn Gauges>)]) -> Value {
    let mut out = Map::new();
    for (name, part) in sections {
        out.insert((*name).into(), part.map_or(Value::Null, |p| p.section()));
    }
    let operations = global().summaries(None, None);
    out.insert(
        "operations".into(),
        Value::Array(operations.iter().map(Summary::to_json).collect()),
    );
    Value::Object(out)
}

/// Every series and the gauges of `parts`, in the Prometheus text format.
pub fn exposition(parts: &[&dyn Gauges]) -> String {
    let gauges: Vec<Gauge> = parts.iter().flat_map(|p| p.gauges()).collect();
    render(&global().summaries(None, None), &gauges)
}

/// Bytes in GiB, rounded to two decimals.
pub fn gib(bytes: u64) -> f64 {
    (bytes as f64 / (1u64 << 30) as f64 * 100.0).round() / 100.0
}

/// A ratio as a percentage rounded to one decimal.
pub fn percent(part: f64, whole: f64) -> f64 {
    (part * 1000.0 / whole.max(1.0)).round() / 10.0
}
