//! The connection to Redis and its state: one multiplexed connection
//! (redis-rs's `ConnectionManager`, which reconnects by itself) shared by
//! every task of a cache, on one tokio runtime for the whole process.
//!
//! State machine: `Connecting` until the first round trip ends; `Up` while
//! round trips succeed; `Down` from the first connection-level failure
//! until the prober's PING succeeds again (it retries with exponential
//! backoff from 100 ms to 5 s). While `Down`, reads miss and writes are
//! skipped at once, so a dead server costs the cache nothing but counts.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{FromRedisValue, Pipeline, RedisError};
use tokio::runtime::Runtime;
use tokio::sync::{watch, Notify};

use super::config::RemoteConfig;
use super::error::RemoteError;
use super::stats::{Counters, RemoteState};
use super::{Events, Local, RemoteEvent};

/// First and longest wait between reconnection attempts.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));

/// The runtime every Redis tier of the process runs on: one worker thread
/// is plenty for I/O that is mostly waiting.
pub(super) fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("gama-redis")
            .enable_all()
            .build()
            .expect("a tokio runtime can be built")
    })
}

/// Milliseconds since the Unix epoch.
pub(super) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Why a round trip gave no answer.
pub(super) enum Failure {
    /// It took longer than the configured timeout.
    Timeout,
    /// Redis or the connection failed.
    Redis(RedisError),
    /// The tier is down; nothing was sent.
    Down,
}

impl Failure {
    pub fn reason(&self) -> String {
        match self {
            Failure::Timeout => "timed out".into(),
            Failure::Redis(e) => e.to_string(),
            Failure::Down => "Redis is down".into(),
        }
    }
}

/// What every task of one cache's tier shares.
pub(super) struct Link {
    pub config: RemoteConfig,
    pub client: redis::Client,
    conn: ConnectionManager,
    state: AtomicU8,
    probe: Notify,
    pub counters: Counters,
    /// Jobs queued and not yet done (writes, removals, invalidations, flushes).
    pub pending: Arc<AtomicU64>,
    pub local: Weak<dyn Local>,
    pub events: Events,
    /// This cache's id in published invalidations, to skip its own.
    pub origin: String,
}

impl Link {
    /// A link to the server `client` names; connects lazily.
    pub fn new(
        config: RemoteConfig,
        client: redis::Client,
        local: Weak<dyn Local>,
        events: Events,
    ) -> Result<Link, RemoteError> {
        let _entered = runtime().enter();
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout.max(Duration::from_secs(1))))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(200))
            .set_pipeline_buffer_size(4096);
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), manager)
            .map_err(|e| RemoteError::Url(e.to_string()))?;
        let origin = format!(
            "{:016x}",
            xxhash_rust::xxh3::xxh3_64(
                format!("{}:{:?}:{}", std::process::id(), Instant::now(), unix_ms()).as_bytes()
            )
        );
        Ok(Link {
            config,
            client,
            conn,
            state: AtomicU8::new(RemoteState::Connecting as u8),
            probe: Notify::new(),
            counters: Counters::new(),
            pending: Arc::new(AtomicU64::new(0)),
            local,
            events,
            origin,
        })
    }

    /// The current state.
    pub fn state(&self) -> RemoteState {
        match self.state.load(Ordering::Acquire) {
            s if s == RemoteState::Up as u8 => RemoteState::Up,
            s if s == RemoteState::Down as u8 => RemoteState::Down,
            _ => RemoteState::Connecting,
        }
    }

    /// Whether round trips are worth trying now.
    pub fn usable(&self) -> bool {
        self.state() != RemoteState::Down
    }

    pub fn emit(&self, event: RemoteEvent) {
        (self.events)(event);
    }

    /// Reports an error to the events and counts it.
    pub fn error(&self, error: RemoteError) {
        Counters::add(&self.counters.errors, 1);
        self.emit(RemoteEvent::Error(error));
    }

    fn mark_up(&self) {
        self.state.store(RemoteState::Up as u8, Ordering::Release);
    }

    /// Moves to `Down` after a connection-level failure and wakes the prober.
    fn mark_down(&self, reason: String) {
        let was = self.state.swap(RemoteState::Down as u8, Ordering::AcqRel);
        if was != RemoteState::Down as u8 {
            Counters::add(&self.counters.disconnects, 1);
            self.error(RemoteError::Down(reason));
            self.probe.notify_one();
        }
    }

    /// Sends `pipe` and reads its answer within the timeout. A failure of
    /// the connection (not a command's own error) takes the tier down.
    pub async fn round_trip<T: FromRedisValue>(&self, pipe: &Pipeline) -> Result<T, Failure> {
        if !self.usable() {
            return Err(Failure::Down);
        }
        let started = Instant::now();
        let mut conn = self.conn.clone();
        match tokio::time::timeout(self.config.timeout, pipe.query_async::<T>(&mut conn)).await {
            Err(_) => {
                Counters::add(&self.counters.timeouts, 1);
                Err(Failure::Timeout)
            }
            Ok(Err(e)) => {
                if e.is_io_error() || e.is_connection_refusal() || e.is_connection_dropped() {
                    self.mark_down(e.to_string());
                }
                Err(Failure::Redis(e))
            }
            Ok(Ok(v)) => {
                self.counters.round_trip(started.elapsed());
                if self.state() == RemoteState::Connecting {
                    self.mark_up();
                }
                Ok(v)
            }
        }
    }

    /// Counts one finished job; the last one tells the events the tier is idle.
    pub fn job_done(&self, jobs: u64) {
        if jobs > 0 && self.pending.fetch_sub(jobs, Ordering::AcqRel) == jobs {
            self.emit(RemoteEvent::Idle);
        }
    }
}

/// Connects at start and after every failure, with exponential backoff,
/// until `closed` ends.
pub(super) async fn probe(link: Arc<Link>, mut closed: watch::Receiver<bool>) {
    let mut delay = BACKOFF.0;
    loop {
        while link.state() == RemoteState::Up {
            tokio::select! {
                _ = link.probe.notified() => {}
                _ = closed.changed() => return,
            }
        }
        let mut conn = link.conn.clone();
        let ping = redis::cmd("PING");
        let wait = link.config.timeout.max(Duration::from_secs(1));
        match tokio::time::timeout(wait, ping.query_async::<String>(&mut conn)).await {
            Ok(Ok(_)) => {
                link.mark_up();
                delay = BACKOFF.0;
                continue;
            }
            Ok(Err(e)) => link.mark_down(e.to_string()),
            Err(_) => link.mark_down(format!("no answer to PING within {wait:?}")),
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = closed.changed() => return,
        }
        delay = (delay * 2).min(BACKOFF.1);
    }
}

/// The backoff the subscriber uses between attempts.
pub(super) fn next_backoff(delay: Duration) -> Duration {
    (delay * 2).min(BACKOFF.1)
}

/// The first backoff delay.
pub(super) fn first_backoff() -> Duration {
    BACKOFF.0
}
