//! The connection to Redis and its state: one multiplexed connection
//! shared by every task of a cache, on one tokio runtime for the whole
//! process. For one server it is redis-rs's `ConnectionManager`, which
//! reconnects by itself; for a Redis Cluster, redis-rs's cluster
//! connection, which routes each command to the node that owns its keys
//! (splitting MGET and UNLINK by slot), follows slot moves and reconnects
//! to nodes by itself.
//!
//! State machine: `Connecting` until the first round trip ends; `Up` while
//! round trips succeed; `Down` from the first connection-level failure
//! until the prober's PING succeeds again (it retries with exponential
//! backoff from 100 ms to 5 s). While `Down`, reads miss and writes are
//! skipped at once, so a dead server costs the cache nothing but counts.
//! `Closed`, set by `close`, is final: the connection is let go.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use std::future::Future;

use futures_util::future::try_join_all;
use parking_lot::RwLock;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, ErrorKind, FromRedisValue, Pipeline, RedisError, Value};
use tokio::runtime::Runtime;
use tokio::sync::{watch, Notify, OnceCell};

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

/// A primary node of a cluster, by address; `None` is the one server.
pub(super) type Node = Option<(String, u16)>;

/// The connection commands go through.
enum Conn {
    /// One server.
    Single(ConnectionManager),
    /// A cluster: connected on first use, again after a failed attempt.
    Cluster(Box<ClusterClient>, OnceCell<ClusterConnection>),
}

impl Conn {
    /// The cluster connection, made now if no attempt has succeeded yet.
    async fn cluster(
        client: &ClusterClient,
        conn: &OnceCell<ClusterConnection>,
    ) -> Result<ClusterConnection, RedisError> {
        conn.get_or_try_init(|| client.get_async_connection())
            .await
            .cloned()
    }

    /// Sends `cmd` where its keys route (PING: to every node), or to `node`.
    async fn request(&self, cmd: &Cmd, node: Option<&(String, u16)>) -> Result<Value, RedisError> {
        match (self, node) {
            (Conn::Single(c), _) => c.clone().req_packed_command(cmd).await,
            (Conn::Cluster(client, conn), None) => {
                Conn::cluster(client, conn)
                    .await?
                    .req_packed_command(cmd)
                    .await
            }
            (Conn::Cluster(client, conn), Some((host, port))) => {
                let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                    host: host.clone(),
                    port: *port,
                });
                Conn::cluster(client, conn)
                    .await?
                    .route_command(cmd.clone(), route)
                    .await
            }
        }
    }

    /// Sends every command of `pipe`, ignoring their answers.
    async fn send(&self, pipe: &Pipeline) -> Result<(), RedisError> {
        match self {
            Conn::Single(c) => pipe.query_async::<()>(&mut c.clone()).await,
            Conn::Cluster(client, conn) => {
                let conn = Conn::cluster(client, conn).await?;
                try_join_all(pipe.cmd_iter().map(|cmd| {
                    let mut conn = conn.clone();
                    async move { conn.req_packed_command(cmd).await }
                }))
                .await
                .map(drop)
            }
        }
    }
}

/// Whether `e` means the server (or every node) cannot be reached, not
/// that a command failed.
fn unreachable(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_refusal()
        || e.is_connection_dropped()
        || e.kind() == ErrorKind::ClusterConnectionNotFound
}

/// What every task of one cache's tier shares.
pub(super) struct Link {
    pub config: RemoteConfig,
    /// For the subscriber: in a cluster, the node `url` names (a PUBLISH
    /// on any node reaches the subscribers of every node).
    pub client: redis::Client,
    /// `None` once closed (requests in flight keep their clone).
    conn: RwLock<Option<Arc<Conn>>>,
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
        let connect_timeout = config.timeout.max(Duration::from_secs(1));
        let conn = if config.cluster {
            let cluster = ClusterClient::builder([client.get_connection_info().clone()])
                .connection_timeout(connect_timeout)
                .response_timeout(config.timeout)
                .retries(1)
                .build()
                .map_err(|e| RemoteError::Url(e.to_string()))?;
            Conn::Cluster(Box::new(cluster), OnceCell::new())
        } else {
            let manager = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(connect_timeout))
                .set_number_of_retries(1)
                .set_min_delay(Duration::from_millis(50))
                .set_max_delay(Duration::from_millis(200))
                .set_pipeline_buffer_size(4096);
            Conn::Single(
                ConnectionManager::new_lazy_with_config(client.clone(), manager)
                    .map_err(|e| RemoteError::Url(e.to_string()))?,
            )
        };
        let origin = format!(
            "{:016x}",
            xxhash_rust::xxh3::xxh3_64(
                format!("{}:{:?}:{}", std::process::id(), Instant::now(), unix_ms()).as_bytes()
            )
        );
        Ok(Link {
            config,
            client,
            conn: RwLock::new(Some(Arc::new(conn))),
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
            s if s == RemoteState::Closed as u8 => RemoteState::Closed,
            _ => RemoteState::Connecting,
        }
    }

    /// Whether round trips are worth trying now.
    pub fn usable(&self) -> bool {
        !matches!(self.state(), RemoteState::Down | RemoteState::Closed)
    }

    /// Moves to `Closed` for good and lets the connection go.
    pub fn close(&self) {
        self.state
            .store(RemoteState::Closed as u8, Ordering::Release);
        self.conn.write().take();
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
        let _ = self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                (s != RemoteState::Closed as u8).then_some(RemoteState::Up as u8)
            });
    }

    /// Moves to `Down` after a connection-level failure and wakes the prober.
    fn mark_down(&self, reason: String) {
        let was = self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                (s != RemoteState::Closed as u8).then_some(RemoteState::Down as u8)
            });
        if was.is_ok_and(|s| s != RemoteState::Down as u8) {
            Counters::add(&self.counters.disconnects, 1);
            self.error(RemoteError::Down(reason));
            self.probe.notify_one();
        }
    }

    /// Runs one command (its keys may span cluster slots: MGET and UNLINK
    /// are split by slot and their answers joined) within the timeout.
    pub async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, Failure> {
        let conn = self.conn()?;
        let value = self.bounded(conn.request(cmd, None)).await?;
        redis::from_redis_value(value).map_err(|e| Failure::Redis(e.into()))
    }

    /// Runs `cmd` on `node` (a cluster's primary; `None`: where it routes).
    pub async fn query_on<T: FromRedisValue>(&self, cmd: &Cmd, node: &Node) -> Result<T, Failure> {
        let conn = self.conn()?;
        let value = self.bounded(conn.request(cmd, node.as_ref())).await?;
        redis::from_redis_value(value).map_err(|e| Failure::Redis(e.into()))
    }

    /// Sends the commands of `pipe` (whose answers are not needed) within
    /// the timeout: one round trip to one server; to a cluster, each
    /// command to its node, all at once.
    pub async fn send(&self, pipe: &Pipeline) -> Result<(), Failure> {
        let conn = self.conn()?;
        self.bounded(conn.send(pipe)).await
    }

    /// The connection, unless closed.
    fn conn(&self) -> Result<Arc<Conn>, Failure> {
        self.conn.read().clone().ok_or(Failure::Down)
    }

    /// The primaries a key-space scan must visit.
    pub async fn primaries(&self) -> Result<Vec<Node>, Failure> {
        if let Conn::Single(_) = *self.conn()? {
            return Ok(vec![None]);
        }
        let nodes: String = self.query(redis::cmd("CLUSTER").arg("NODES")).await?;
        Ok(parse_primaries(&nodes))
    }

    /// Awaits `request` within the timeout; a failure of the connection
    /// (not a command's own error) takes the tier down.
    async fn bounded<T>(
        &self,
        request: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, Failure> {
        if !self.usable() {
            return Err(Failure::Down);
        }
        let started = Instant::now();
        match tokio::time::timeout(self.config.timeout, request).await {
            Err(_) => {
                Counters::add(&self.counters.timeouts, 1);
                Err(Failure::Timeout)
            }
            Ok(Err(e)) => {
                if unreachable(&e) {
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
        let Ok(conn) = link.conn() else { return };
        let wait = link.config.timeout.max(Duration::from_secs(1));
        match tokio::time::timeout(wait, conn.request(&redis::cmd("PING"), None)).await {
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

/// The primaries listed in a `CLUSTER NODES` answer (`id host:port@bus
/// flags ...` per line), skipping those flagged as failed.
fn parse_primaries(nodes: &str) -> Vec<Node> {
    nodes
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let address = fields.nth(1)?;
            let flags = fields.next()?;
            if !flags.split(',').any(|f| f == "master") || flags.contains("fail") {
                return None;
            }
            let host_port = address.split(['@', ',']).next()?;
            let (host, port) = host_port.rsplit_once(':')?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            Some(Some((host.to_string(), port.parse().ok()?)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::parse_primaries;

    #[test]
    fn primaries_are_read_from_cluster_nodes() {
        let nodes = "\
a1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460
b2 127.0.0.1:7001@17001,host-b master - 0 1 2 connected 5461-10922
c3 ::1:7002@17002 master,fail - 0 1 3 disconnected
d4 127.0.0.1:7003@17003 slave a1 0 1 1 connected
e5 [::1]:7004@17004 master - 0 1 4 connected 10923-16383
";
        assert_eq!(
            parse_primaries(nodes),
            vec![
                Some(("127.0.0.1".into(), 7000)),
                Some(("127.0.0.1".into(), 7001)),
                Some(("::1".into(), 7004)),
            ]
        );
    }
}
