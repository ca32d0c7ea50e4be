//! The process-wide latency registry: one series per (component,
//! operation), each an HDR histogram of everything recorded plus one per
//! minute for the last hour, so summaries can cover "the last N minutes".
//! Native operations record here on their own; `profileOperation` records
//! user code.
//!
//! Invariant: a series' `total` holds every sample of its minute histograms
//! and every older one.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use hashbrown::{Equivalent, HashMap};
use hdrhistogram::Histogram;
use parking_lot::Mutex;

/// Minutes of history kept per series.
const MINUTES_KEPT: u64 = 60;

/// Microseconds recorded at most (one hour); longer samples are clamped.
const MAX_MICROS: u64 = 3_600_000_000;

fn histogram() -> Histogram<u32> {
    Histogram::new_with_bounds(1, MAX_MICROS, 2).expect("valid bounds")
}

#[derive(Hash, PartialEq, Eq)]
struct Key(Box<str>, Box<str>);

#[derive(Hash)]
struct KeyRef<'a>(&'a str, &'a str);

impl Equivalent<Key> for KeyRef<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        *key.0 == *self.0 && *key.1 == *self.1
    }
}

struct Series {
    total: Histogram<u32>,
    total_time: Duration,
    minutes: Vec<(u64, Histogram<u32>, Duration)>,
}

/// Statistics of one series over a window.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// Component, e.g. `cache`, `batch`, `features`, `memory`, or the user's.
    pub component: String,
    /// Operation within the component.
    pub operation: String,
    /// Samples.
    pub count: u64,
    /// Mean in ms.
    pub mean_ms: f64,
    /// Median in ms.
    pub p50_ms: f64,
    /// 95th percentile in ms.
    pub p95_ms: f64,
    /// 99th percentile in ms.
    pub p99_ms: f64,
    /// Largest in ms.
    pub max_ms: f64,
    /// Total time in ms.
    pub total_ms: f64,
    /// Share of all measured time in the window (0 to 1).
    pub share: f64,
}

/// All series.
pub struct Registry {
    series: Mutex<HashMap<Key, Series>>,
    epoch: Instant,
}

/// The registry every native operation records into.
pub fn global() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Registry::new)
}

/// Records one sample in the global registry.
pub fn record(component: &str, operation: &str, elapsed: Duration) {
    global().record(component, operation, elapsed);
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry {
            series: Mutex::new(HashMap::new()),
            epoch: Instant::now(),
        }
    }

    fn minute(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_secs() / 60
    }

    /// Records one sample of `component`/`operation`.
    pub fn record(&self, component: &str, operation: &str, elapsed: Duration) {
        self.record_many(component, operation, std::iter::once(elapsed));
    }

    /// Records several samples of one series under one lock.
    pub fn record_many(
        &self,
        component: &str,
        operation: &str,
        samples: impl Iterator<Item = Duration>,
    ) {
        let minute = self.minute(Instant::now());
        let mut all = self.series.lock();
        let series = match all.get_mut(&KeyRef(component, operation)) {
            Some(series) => series,
            None => all
                .entry(Key(component.into(), operation.into()))
                .or_insert_with(|| Series {
                    total: histogram(),
                    total_time: Duration::ZERO,
                    minutes: Vec::new(),
                }),
        };
        if series.minutes.last().is_none_or(|(m, _, _)| *m != minute) {
            series.minutes.retain(|(m, _, _)| m + MINUTES_KEPT > minute);
            series.minutes.push((minute, histogram(), Duration::ZERO));
        }
        let (_, current, current_time) = series.minutes.last_mut().expect("pushed above");
        for elapsed in samples {
            let micros = (elapsed.as_micros() as u64).clamp(1, MAX_MICROS);
            series.total.saturating_record(micros);
            current.saturating_record(micros);
            series.total_time += elapsed;
            *current_time += elapsed;
        }
    }

    /// Summaries of every series (or one component's), over the last
    /// `last_minutes` minutes or everything, largest total time first.
    pub fn summaries(&self, component: Option<&str>, last_minutes: Option<u64>) -> Vec<Summary> {
        let now = self.minute(Instant::now());
        let all = self.series.lock();
        let mut out: Vec<Summary> = all
            .iter()
            .filter(|(k, _)| component.is_none_or(|c| *k.0 == *c))
            .filter_map(|(k, s)| {
                let (h, time) = match last_minutes {
                    None => (s.total.clone(), s.total_time),
                    Some(n) => {
                        let mut h = histogram();
                        let mut time = Duration::ZERO;
                        for (m, minute, t) in &s.minutes {
                            if m + n > now {
                                h.add(minute).ok()?;
                                time += *t;
                            }
                        }
                        (h, time)
                    }
                };
                if h.is_empty() {
                    return None;
                }
                let ms = |us: u64| us as f64 / 1000.0;
                Some(Summary {
                    component: k.0.to_string(),
                    operation: k.1.to_string(),
                    count: h.len(),
                    mean_ms: time.as_secs_f64() * 1000.0 / h.len() as f64,
                    p50_ms: ms(h.value_at_quantile(0.5)),
                    p95_ms: ms(h.value_at_quantile(0.95)),
                    p99_ms: ms(h.value_at_quantile(0.99)),
                    max_ms: ms(h.max()),
                    total_ms: time.as_secs_f64() * 1000.0,
                    share: 0.0,
                })
            })
            .collect();
        let total: f64 = out.iter().map(|s| s.total_ms).sum();
        for s in &mut out {
            s.share = if total > 0.0 { s.total_ms / total } else { 0.0 };
        }
        out.sort_by(|a, b| b.total_ms.total_cmp(&a.total_ms));
        out
    }

    /// Forgets every series.
    pub fn clear(&self) {
        self.series.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summarises_series_with_percentiles_and_shares() {
        let registry = Registry::new();
        for ms in 1..=100 {
            registry.record("model", "inference", Duration::from_millis(ms));
        }
        registry.record_many("cache", "get", (0..10).map(|_| Duration::from_micros(5)));
        let all = registry.summaries(None, None);
        assert_eq!(all.len(), 2);
        let inference = &all[0];
        assert_eq!(
            (inference.component.as_str(), inference.count),
            ("model", 100)
        );
        assert!((inference.p50_ms - 50.0).abs() < 1.0, "{inference:?}");
        assert!((inference.p95_ms - 95.0).abs() < 1.5);
        assert!((inference.max_ms - 100.0).abs() < 1.0);
        assert!((inference.mean_ms - 50.5).abs() < 0.01);
        assert!(inference.share > 0.99);
        assert_eq!(registry.summaries(Some("cache"), Some(5))[0].count, 10);
        assert!(registry.summaries(Some("none"), None).is_empty());
        registry.clear();
        assert!(registry.summaries(None, None).is_empty());
    }
}
