//! The process-wide latency registry: one series per (component,
//! operation), each an HDR histogram per minute for the last hour (so
//! summaries can cover "the last N minutes") and one of everything older;
//! a sample is recorded once, into its minute.
//! Series are kept per shard of recording threads and merged when read;
//! a name is resolved to a series index once (`Handle`), so recording a
//! sample allocates nothing and looks nothing up. Native operations record
//! here on their own; `profileOperation` records user code.
//!
//! Invariant: every sample of a series is in exactly one of its histograms:
//! its minute's while that minute is kept, then `older`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{OnceLock, Weak};
use std::time::{Duration, Instant};

use hashbrown::{Equivalent, HashMap};
use hdrhistogram::Histogram;
use parking_lot::Mutex;

use super::sharded::Sharded;

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

/// Series names and their indices (an index, once given, never changes).
#[derive(Default)]
struct Names {
    ids: HashMap<Key, usize>,
    list: Vec<Key>,
}

/// A series of the global registry named once: the first sample resolves
/// the name to an index, later ones record by index alone.
pub struct Handle {
    component: &'static str,
    operation: &'static str,
    id: OnceLock<usize>,
}

impl Handle {
    /// The series `component`/`operation` (resolved on first use).
    pub const fn new(component: &'static str, operation: &'static str) -> Self {
        Handle {
            component,
            operation,
            id: OnceLock::new(),
        }
    }

    /// Records one sample (when recording is enabled).
    pub fn record(&self, elapsed: Duration) {
        if enabled() {
            self.record_in(minute_now(), elapsed);
        }
    }

    /// Records the time since `started` (when recording is enabled) and
    /// returns it, reading the clock once.
    pub fn record_since(&self, started: Instant) -> Duration {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(started);
        if enabled() {
            self.record_in(minute_of(now), elapsed);
        }
        elapsed
    }

    fn record_in(&self, minute: u64, elapsed: Duration) {
        let registry = global();
        let id = *self
            .id
            .get_or_init(|| registry.resolve(self.component, self.operation));
        registry.record_at(id, minute, std::iter::once(elapsed));
    }
}

/// The samples of one operation: per minute for the last hour, and
/// everything older.
pub struct Series {
    older: Histogram<u32>,
    older_time: Duration,
    minutes: Vec<(u64, Histogram<u32>, Duration)>,
}

/// Minutes since the process-wide epoch (what series are bucketed by).
pub fn minute_now() -> u64 {
    minute_of(Instant::now())
}

/// The minute of `instant` since the process-wide epoch.
pub(crate) fn minute_of(instant: Instant) -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    instant
        .saturating_duration_since(*EPOCH.get_or_init(Instant::now))
        .as_secs()
        / 60
}

impl Default for Series {
    fn default() -> Self {
        Series {
            older: histogram(),
            older_time: Duration::ZERO,
            minutes: Vec::new(),
        }
    }
}

impl Series {
    /// Records samples taken in `minute`.
    pub fn record_many(&mut self, minute: u64, samples: impl Iterator<Item = Duration>) {
        if self.minutes.last().is_none_or(|(m, _, _)| *m != minute) {
            let (older, older_time) = (&mut self.older, &mut self.older_time);
            self.minutes.retain(|(m, h, time)| {
                let kept = m + MINUTES_KEPT > minute;
                if !kept {
                    // Same bounds on both sides: adding cannot fail.
                    let _ = older.add(h);
                    *older_time += *time;
                }
                kept
            });
            self.minutes.push((minute, histogram(), Duration::ZERO));
        }
        let (_, current, current_time) = self.minutes.last_mut().expect("pushed above");
        // Equal neighbours (a batch's items often wait and run alike, to
        // the microsecond) are recorded as one count.
        let mut put = |micros: u64, n: u32| current.saturating_record_n(micros, n);
        let mut time = Duration::ZERO;
        let mut run: Option<(u64, u32)> = None;
        for elapsed in samples {
            time += elapsed;
            let micros = (elapsed.as_micros() as u64).clamp(1, MAX_MICROS);
            match &mut run {
                Some((value, n)) if *value == micros && *n < u32::MAX => *n += 1,
                _ => {
                    if let Some((value, n)) = run.replace((micros, 1)) {
                        put(value, n);
                    }
                }
            }
        }
        if let Some((value, n)) = run {
            put(value, n);
        }
        *current_time += time;
    }

    /// Adds `other`'s samples (a shard's series of the same operation).
    pub(crate) fn absorb(&mut self, other: &Series) {
        // Same bounds on both sides: adding cannot fail.
        let _ = self.older.add(&other.older);
        self.older_time += other.older_time;
        for (minute, h, time) in &other.minutes {
            match self.minutes.iter_mut().find(|(m, _, _)| m == minute) {
                Some((_, mine, my_time)) => {
                    let _ = mine.add(h);
                    *my_time += *time;
                }
                None => self.minutes.push((*minute, h.clone(), *time)),
            }
        }
    }

    /// Statistics over the last `last_minutes` minutes (or everything);
    /// `share` is left 0 for the caller to fill in.
    pub fn summary(
        &self,
        component: &str,
        operation: &str,
        now: u64,
        last_minutes: Option<u64>,
    ) -> Option<Summary> {
        let (mut h, mut time) = match last_minutes {
            None => (self.older.clone(), self.older_time),
            Some(_) => (histogram(), Duration::ZERO),
        };
        for (m, minute, t) in &self.minutes {
            if last_minutes.is_none_or(|n| m + n > now) {
                h.add(minute).ok()?;
                time += *t;
            }
        }
        if h.is_empty() {
            return None;
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Some(Summary {
            component: component.to_string(),
            operation: operation.to_string(),
            count: h.len(),
            mean_ms: time.as_secs_f64() * 1000.0 / h.len() as f64,
            p50_ms: ms(h.value_at_quantile(0.5)),
            p95_ms: ms(h.value_at_quantile(0.95)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
            total_ms: time.as_secs_f64() * 1000.0,
            share: 0.0,
        })
    }
}

/// Something that keeps its own series (under its own lock, so hot paths
/// pay no second lock) and reports them with the registry's.
pub trait Source: Send + Sync {
    /// Its summaries over the window.
    fn summaries(&self, now: u64, last_minutes: Option<u64>) -> Vec<Summary>;
    /// Forgets its samples.
    fn clear(&self);
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

/// All series, sharded by recording thread: each thread records under its
/// own shard's lock, so worker threads never wait on one another to record;
/// reading merges the shards. A shard holds its series by index (`None`
/// until the shard records it).
pub struct Registry {
    names: Mutex<Names>,
    shards: Sharded<Vec<Option<Series>>>,
    sources: Mutex<Vec<Weak<dyn Source>>>,
}

/// The registry every native operation records into.
pub fn global() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Registry::new)
}

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Turns recording into the global registry on or off (on by default).
pub fn set_enabled(enabled: bool) {
    ENABLED.store(enabled, Ordering::Relaxed);
}

/// Whether native operations record into the global registry.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
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
            names: Mutex::new(Names::default()),
            shards: Sharded::default(),
            sources: Mutex::new(Vec::new()),
        }
    }

    /// Adds a source; it is dropped from the list once gone.
    pub fn add_source(&self, source: Weak<dyn Source>) {
        self.sources.lock().push(source);
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
        self.record_at(self.resolve(component, operation), minute_now(), samples);
    }

    /// The index of series `component`/`operation`, given on first use.
    fn resolve(&self, component: &str, operation: &str) -> usize {
        let mut names = self.names.lock();
        if let Some(&id) = names.ids.get(&KeyRef(component, operation)) {
            return id;
        }
        let id = names.list.len();
        names.list.push(Key(component.into(), operation.into()));
        names
            .ids
            .insert(Key(component.into(), operation.into()), id);
        id
    }

    /// Records samples of series `id` in `minute` in the calling thread's shard.
    fn record_at(&self, id: usize, minute: u64, samples: impl Iterator<Item = Duration>) {
        let mut shard = self.shards.local();
        if shard.len() <= id {
            shard.resize_with(id + 1, || None);
        }
        shard[id]
            .get_or_insert_with(Series::default)
            .record_many(minute, samples);
    }

    /// Summaries of every series and source (or one component's), over
    /// the last `last_minutes` minutes or everything, largest total time first.
    pub fn summaries(&self, component: Option<&str>, last_minutes: Option<u64>) -> Vec<Summary> {
        let now = minute_now();
        let mut merged: Vec<Series> = Vec::new();
        for shard in self.shards.each() {
            for (id, series) in shard.iter().enumerate() {
                if let Some(series) = series {
                    if merged.len() <= id {
                        merged.resize_with(id + 1, Series::default);
                    }
                    merged[id].absorb(series);
                }
            }
        }
        let mut out: Vec<Summary> = {
            let names = self.names.lock();
            merged
                .iter()
                .zip(&names.list)
                .filter_map(|(s, Key(c, o))| s.summary(c, o, now, last_minutes))
                .collect()
        };
        let sources: Vec<_> = {
            let mut list = self.sources.lock();
            list.retain(|s| s.strong_count() > 0);
            list.iter().filter_map(Weak::upgrade).collect()
        };
        for source in sources {
            out.extend(source.summaries(now, last_minutes));
        }
        out.retain(|s| component.is_none_or(|c| s.component == c));
        let total: f64 = out.iter().map(|s| s.total_ms).sum();
        for s in &mut out {
            s.share = if total > 0.0 { s.total_ms / total } else { 0.0 };
        }
        out.sort_by(|a, b| b.total_ms.total_cmp(&a.total_ms));
        out
    }

    /// Forgets every series, the sources' included.
    pub fn clear(&self) {
        for mut shard in self.shards.each() {
            shard.clear();
        }
        let sources: Vec<_> = self
            .sources
            .lock()
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        for source in sources {
            source.clear();
        }
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

    #[test]
    fn equal_neighbours_are_counted_as_many_samples() {
        let mut series = Series::default();
        let micros = [3, 3, 3, 7, 7, 3, 1_000];
        series.record_many(5, micros.iter().map(|&us| Duration::from_micros(us)));
        let s = series.summary("c", "o", 5, None).expect("samples");
        assert_eq!(s.count, 7);
        assert_eq!(s.p50_ms, 0.003);
        assert!((s.max_ms - 1.0).abs() < 0.01);
        assert!((s.total_ms - 1.026).abs() < 1e-9);
        let last = series.summary("c", "o", 5, Some(1)).expect("this minute");
        assert_eq!((last.count, last.p95_ms), (7, s.p95_ms));
    }

    #[test]
    fn minutes_past_the_hour_stay_in_everything_but_leave_the_windows() {
        let mut series = Series::default();
        series.record_many(0, std::iter::once(Duration::from_millis(4)));
        series.record_many(2, std::iter::once(Duration::from_millis(2)));
        series.record_many(MINUTES_KEPT + 1, std::iter::once(Duration::from_millis(1)));
        let now = MINUTES_KEPT + 1;
        let all = series.summary("c", "o", now, None).expect("samples");
        assert_eq!(all.count, 3);
        assert!((all.total_ms - 7.0).abs() < 1e-9);
        let hour = series
            .summary("c", "o", now, Some(MINUTES_KEPT))
            .expect("the hour");
        assert_eq!((hour.count, hour.total_ms), (2, 3.0));
        let mut merged = Series::default();
        merged.absorb(&series);
        merged.absorb(&series);
        assert_eq!(
            merged.summary("c", "o", now, None).map(|s| s.count),
            Some(6)
        );
    }

    #[test]
    fn a_handle_records_into_its_global_series_from_any_thread() {
        static SERIES: Handle = Handle::new("registry-test", "handle");
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| (0..25).for_each(|_| SERIES.record(Duration::from_micros(7))));
            }
        });
        let all = global().summaries(Some("registry-test"), None);
        assert_eq!(all.len(), 1, "{all:?}");
        assert_eq!((all[0].operation.as_str(), all[0].count), ("handle", 100));
        // Recording by name reaches the same series.
        global().record("registry-test", "handle", Duration::from_micros(7));
        assert_eq!(
            global().summaries(Some("registry-test"), None)[0].count,
            101
        );
    }

    #[test]
    fn samples_recorded_on_many_threads_merge_into_one_series() {
        let registry = std::sync::Arc::new(Registry::new());
        let threads: Vec<_> = (0..8u64)
            .map(|t| {
                let registry = registry.clone();
                std::thread::spawn(move || {
                    for i in 0..1000u64 {
                        registry.record(
                            "batch",
                            "run",
                            Duration::from_micros(1 + (t * 1000 + i) % 100),
                        );
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let all = registry.summaries(None, None);
        assert_eq!(all.len(), 1, "one series, whichever threads recorded it");
        assert_eq!(all[0].count, 8000);
        assert!((all[0].max_ms - 0.1).abs() < 0.001, "{:?}", all[0]);
        assert_eq!(registry.summaries(None, Some(5))[0].count, 8000);
    }
}
