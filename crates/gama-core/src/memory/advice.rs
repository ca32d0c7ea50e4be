//! Optimisation opportunities: findings drawn from a usage snapshot and the
//! counters, each with an estimated saving in bytes, largest saving first.

use super::manager::{ManagerStats, MemoryUsage};

/// One finding.
#[derive(Clone, Debug, PartialEq)]
pub struct Opportunity {
    /// Kind of finding: `dominant-operation`, `over-threshold`,
    /// `fragmentation`, `leaked-blocks`, `low-pool-hit-rate` or `idle-pool-memory`.
    pub kind: &'static str,
    /// `host` or `gpu`.
    pub device: &'static str,
    /// The operation concerned, if one.
    pub operation: Option<String>,
    /// What was found and what to do.
    pub message: String,
    /// Bytes the suggested action would free or avoid allocating.
    pub estimated_saving: u64,
    /// `high`, `medium` or `low`.
    pub severity: &'static str,
}

/// An operation holding more than this share of the usable budget dominates it.
const DOMINANT_SHARE: f64 = 0.5;
/// Fragmentation above this is worth a trim or a different strategy.
const FRAGMENTATION: f64 = 0.3;
/// Pool hit rates below this (after enough requests) mean little reuse.
const LOW_HIT_RATE: f64 = 0.5;
const MIN_REQUESTS_FOR_HIT_RATE: u64 = 20;

fn severity(saving: u64, total: u64) -> &'static str {
    let share = saving as f64 / total.max(1) as f64;
    if share >= 0.25 {
        "high"
    } else if share >= 0.05 {
        "medium"
    } else {
        "low"
    }
}

/// Findings for a manager whose threshold is `threshold` percent.
pub fn opportunities(
    usage: &MemoryUsage,
    stats: &ManagerStats,
    threshold: f64,
) -> Vec<Opportunity> {
    let mut found = Vec::new();
    let total = usage.all.total;
    let mut add = |kind, device, operation, message, saving: u64| {
        found.push(Opportunity {
            kind,
            device,
            operation,
            message,
            estimated_saving: saving,
            severity: severity(saving, total),
        })
    };
    if let Some((name, op)) = usage.by_operation.first() {
        if op.current as f64 > total as f64 * DOMINANT_SHARE {
            add(
                "dominant-operation",
                "host",
                Some(name.clone()),
                format!(
                    "'{name}' holds {} of {} usable bytes; halve its batch size or release its blocks sooner",
                    op.current, total
                ),
                op.current / 2,
            );
        }
    }
    let threshold_bytes = (total as f64 * threshold / 100.0) as u64;
    if usage.all.used > threshold_bytes {
        add(
            "over-threshold",
            "host",
            None,
            format!(
                "usage is {:.1}%, above the {threshold}% threshold; batches shrink until it falls",
                usage.all.percentage
            ),
            usage.all.used - threshold_bytes,
        );
    }
    if let (Some(gpu), Some(pool)) = (&usage.gpu, &stats.gpu_pool) {
        let free = pool.reserved - pool.allocated;
        if gpu.fragmentation > FRAGMENTATION && free > 0 {
            add(
                "fragmentation",
                "gpu",
                None,
                format!(
                    "GPU pool fragmentation is {:.0}% (largest free block {} of {free} free bytes); call trim() or use the 'buddy' strategy",
                    gpu.fragmentation * 100.0,
                    gpu.largest_free
                ),
                free - gpu.largest_free,
            );
        }
        if gpu.budget.pooled > 0 {
            add(
                "idle-pool-memory",
                "gpu",
                None,
                format!("the GPU pool holds {} free bytes; trim() returns whole free chunks to the driver", gpu.budget.pooled),
                gpu.budget.pooled,
            );
        }
    }
    if stats.leaks > 0 {
        add(
            "leaked-blocks",
            "host",
            None,
            format!(
                "{} blocks ({} bytes) were dropped without release() and waited for the garbage collector; release blocks when done",
                stats.leaks, stats.leaked_bytes
            ),
            stats.leaked_bytes,
        );
    }
    let pool = &stats.host_pool;
    let requests = pool.hits + pool.misses;
    if requests >= MIN_REQUESTS_FOR_HIT_RATE {
        let hit_rate = pool.hits as f64 / requests as f64;
        if hit_rate < LOW_HIT_RATE {
            add(
                "low-pool-hit-rate",
                "host",
                None,
                format!(
                    "the host pool served {:.0}% of {requests} requests from reuse; keep blocks of recurring sizes and release them promptly",
                    hit_rate * 100.0
                ),
                pool.missed_bytes / 2,
            );
        }
    }
    if usage.host.pooled > 0 {
        add(
            "idle-pool-memory",
            "host",
            None,
            format!(
                "the host pool holds {} bytes for reuse; trim() returns them to the system now (idle buffers go back on their own)",
                usage.host.pooled
            ),
            usage.host.pooled,
        );
    }
    found.sort_by_key(|o| std::cmp::Reverse(o.estimated_saving));
    found
}
