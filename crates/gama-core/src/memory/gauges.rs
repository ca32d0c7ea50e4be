//! The memory section of the stats snapshot and the manager's gauges: the
//! machine and this process always, the manager's budget and GPU pool when
//! a manager is watched.

use serde_json::{json, Value};

use super::manager::MemoryManager;
use super::system::system_memory;
use crate::metrics::exposition::Gauge;
use crate::metrics::gauges::{gib, percent};
use crate::metrics::Gauges;

/// Memory as a profiler watches it: the machine, and a manager if any.
pub struct MemoryGauges<'a>(pub Option<&'a MemoryManager>);

impl Gauges for MemoryGauges<'_> {
    fn gauges(&self) -> Vec<Gauge> {
        let Some(m) = self.0 else {
            return Vec::new();
        };
        let u = m.usage();
        vec![
            (
                "gama_memory_used_bytes",
                "Bytes in use in the memory manager.",
                u.all.used as f64,
            ),
            (
                "gama_memory_usage_percent",
                "Memory manager usage in percent.",
                u.all.percentage,
            ),
            (
                "gama_memory_allocation_failures",
                "Allocations refused.",
                m.stats().failures as f64,
            ),
        ]
    }

    /// `{ system, managed, gpu }`, the last two null without a manager.
    fn section(&self) -> Value {
        let s = system_memory();
        let used = s.total - s.available;
        let system = json!({
            "total_gb": gib(s.total),
            "used_gb": gib(used),
            "percent": percent(used as f64, s.total as f64),
            "process_rss_gb": gib(s.process_rss),
        });
        let Some(m) = self.0 else {
            return json!({ "system": system, "managed": null, "gpu": null });
        };
        let u = m.usage();
        let gpu = u.gpu.as_ref().map(|g| {
            json!({
                "allocated_gb": gib(g.budget.used),
                "reserved_gb": gib(g.budget.used + g.budget.pooled),
                "fragmentation": g.fragmentation,
            })
        });
        json!({
            "system": system,
            "managed": {
                "used_gb": gib(u.all.used),
                "total_gb": gib(u.all.total),
                "percent": (u.all.percentage * 10.0).round() / 10.0,
                "peak_gb": gib(u.all.peak),
                "failures": m.stats().failures,
            },
            "gpu": gpu,
        })
    }
}
