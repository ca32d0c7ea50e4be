//! Alert rules with these defaults: p95 latency over 500 ms, memory
//! over 80%, cache hit rate under 70%, allocation failures. An alert is
//! reported when its condition becomes true, and again only after it
//! cleared.

use hashbrown::HashSet;

use super::registry::Summary;

/// When alerts fire.
#[derive(Clone, Debug, PartialEq)]
pub struct Thresholds {
    /// p95 latency of any operation over the last minute, in ms.
    pub p95_ms: f64,
    /// Memory manager usage in percent.
    pub memory_percent: f64,
    /// Cache hit rate (0 to 1) below which the cache is degraded.
    pub cache_hit_rate: f64,
    /// Lookups before the hit rate is judged.
    pub min_cache_lookups: u64,
    /// New allocation failures since the last check.
    pub allocation_failures: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            p95_ms: 500.0,
            memory_percent: 80.0,
            cache_hit_rate: 0.7,
            min_cache_lookups: 100,
            allocation_failures: 1,
        }
    }
}

/// One alert.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    /// `high-latency`, `memory-pressure`, `cache-degradation` or `allocation-failures`.
    pub kind: &'static str,
    /// What crossed the line, e.g. `batch/EXTRACT_FEATURES.run`.
    pub subject: String,
    /// The measured value.
    pub value: f64,
    /// The threshold it crossed.
    pub threshold: f64,
    /// A sentence for logs.
    pub message: String,
}

/// What the rules look at.
#[derive(Clone, Debug, Default)]
pub struct Readings {
    /// Summaries of the last minute.
    pub recent: Vec<Summary>,
    /// Memory manager usage in percent.
    pub memory_percent: Option<f64>,
    /// Cache (hit rate, lookups).
    pub cache: Option<(f64, u64)>,
    /// Allocation failures so far.
    pub allocation_failures: Option<u64>,
}

/// What was active at the last check.
#[derive(Default)]
pub struct AlertState {
    active: HashSet<String>,
    failures_seen: u64,
}

impl AlertState {
    /// Every alert whose condition holds now, and the ones among them that are new.
    pub fn check(&mut self, t: &Thresholds, r: &Readings) -> (Vec<Alert>, Vec<Alert>) {
        let mut now = Vec::new();
        for s in &r.recent {
            if s.p95_ms > t.p95_ms {
                now.push(Alert {
                    kind: "high-latency",
                    subject: format!("{}/{}", s.component, s.operation),
                    value: s.p95_ms,
                    threshold: t.p95_ms,
                    message: format!(
                        "{}/{} p95 is {:.1} ms over the last minute (limit {} ms)",
                        s.component, s.operation, s.p95_ms, t.p95_ms
                    ),
                });
            }
        }
        if let Some(p) = r.memory_percent.filter(|&p| p > t.memory_percent) {
            now.push(Alert {
                kind: "memory-pressure",
                subject: "memory".into(),
                value: p,
                threshold: t.memory_percent,
                message: format!("memory usage is {p:.1}% (limit {}%)", t.memory_percent),
            });
        }
        if let Some((rate, lookups)) = r.cache {
            if lookups >= t.min_cache_lookups && rate < t.cache_hit_rate {
                now.push(Alert {
                    kind: "cache-degradation",
                    subject: "cache".into(),
                    value: rate,
                    threshold: t.cache_hit_rate,
                    message: format!(
                        "cache hit rate is {:.1}% over {lookups} lookups (floor {:.0}%)",
                        rate * 100.0,
                        t.cache_hit_rate * 100.0
                    ),
                });
            }
        }
        if let Some(failures) = r.allocation_failures {
            let new = failures.saturating_sub(self.failures_seen);
            self.failures_seen = failures;
            if new >= t.allocation_failures {
                now.push(Alert {
                    kind: "allocation-failures",
                    subject: "memory".into(),
                    value: new as f64,
                    threshold: t.allocation_failures as f64,
                    message: format!("{new} allocations were refused since the last check"),
                });
            }
        }
        let keys: HashSet<String> = now
            .iter()
            .map(|a| format!("{}:{}", a.kind, a.subject))
            .collect();
        let fresh = now
            .iter()
            .filter(|a| {
                a.kind == "allocation-failures"
                    || !self.active.contains(&format!("{}:{}", a.kind, a.subject))
            })
            .cloned()
            .collect();
        self.active = keys;
        (now, fresh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slow(p95: f64) -> Summary {
        Summary {
            component: "model".into(),
            operation: "inference".into(),
            count: 10,
            mean_ms: p95,
            p50_ms: p95,
            p95_ms: p95,
            p99_ms: p95,
            max_ms: p95,
            total_ms: p95 * 10.0,
            share: 1.0,
        }
    }

    #[test]
    fn alerts_fire_once_per_episode_with_the_defaults() {
        let t = Thresholds::default();
        let mut state = AlertState::default();
        let bad = Readings {
            recent: vec![slow(800.0)],
            memory_percent: Some(85.0),
            cache: Some((0.5, 1000)),
            allocation_failures: Some(2),
        };
        let (now, fresh) = state.check(&t, &bad);
        assert_eq!(now.len(), 4);
        assert_eq!(fresh.len(), 4);
        let (now, fresh) = state.check(&t, &bad);
        assert_eq!(
            (now.len(), fresh.len()),
            (3, 0),
            "ongoing alerts are not repeated; no new failures"
        );
        let good = Readings {
            recent: vec![slow(100.0)],
            memory_percent: Some(50.0),
            cache: Some((0.9, 1000)),
            allocation_failures: Some(2),
        };
        assert!(state.check(&t, &good).0.is_empty());
        assert_eq!(
            state.check(&t, &bad).1.len(),
            3,
            "a new episode alerts again"
        );
        let few = Readings {
            cache: Some((0.1, 5)),
            ..Readings::default()
        };
        assert!(
            state.check(&t, &few).0.is_empty(),
            "too few lookups to judge"
        );
    }
}
