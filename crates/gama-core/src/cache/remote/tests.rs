//! The Redis tier against a real `redis-server` (the Debian package), one
//! per test on a free local port. Without the binary the tests say so and
//! pass without checking anything.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::*;
use crate::cache::{CacheConfig, EntryOptions, FeatureCache, PolicyKind, Ttl};

/// A redis-server of a test's own, stopped when dropped.
struct Server {
    port: u16,
    dir: std::path::PathBuf,
    child: Option<Child>,
    /// Arguments beyond the port, the directory and no persistence.
    extra: Vec<String>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    /// A server on a free port, or None (with a line saying why) when
    /// redis-server is not installed.
    fn start() -> Option<Server> {
        Server::start_with(&[])
    }

    /// As `start`, with more arguments for redis-server.
    fn start_with(extra: &[&str]) -> Option<Server> {
        let mut server = Server {
            port: free_port(),
            dir: std::env::temp_dir().join(format!(
                "gama-redis-{}-{}",
                std::process::id(),
                free_port()
            )),
            child: None,
            extra: extra.iter().map(|a| a.to_string()).collect(),
        };
        std::fs::create_dir_all(&server.dir).unwrap();
        if !server.run() {
            eprintln!(
                "redis tests skipped: redis-server is not installed (apt-get install redis-server)"
            );
            return None;
        }
        Some(server)
    }

    /// Starts the process on this server's port; false if there is no binary.
    fn run(&mut self) -> bool {
        let spawned = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(child) = spawned else { return false };
        self.child = Some(child);
        until("the server accepts connections", || {
            TcpStream::connect(("127.0.0.1", self.port)).is_ok()
        });
        true
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Redis Cluster of three primaries (no replicas) of a test's own.
struct Cluster {
    nodes: Vec<Server>,
}

impl Cluster {
    /// A cluster whose slots are all served, or None (with a line saying
    /// why) without redis-server or redis-cli.
    fn start() -> Option<Cluster> {
        let mode = [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            "2000",
        ];
        let nodes: Vec<Server> = (0..3)
            .map(|_| Server::start_with(&mode))
            .collect::<Option<_>>()?;
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !created.is_ok_and(|s| s.success()) {
            eprintln!("redis cluster tests skipped: `redis-cli --cluster create` failed (apt-get install redis-tools)");
            return None;
        }
        until("every node serves every slot", || {
            nodes.iter().all(|n| {
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query(&mut n.connection())
                    .unwrap();
                info.contains("cluster_state:ok")
            })
        });
        Some(Cluster { nodes })
    }
}

impl Server {
    /// A plain connection of the test's own.
    fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection()
            .unwrap()
    }
}

/// Waits for `ready` to hold, failing the test after 10 s.
fn until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A cache with a Redis tier and the events it reported.
fn cache(url: &str, prefix: &str) -> (FeatureCache, Arc<Mutex<Vec<String>>>) {
    let mut remote = RemoteConfig::new(url);
    remote.key_prefix = prefix.into();
    cache_with(remote)
}

/// A cache whose tier is a Redis Cluster that `url` is a node of.
fn cluster_cache(url: &str, prefix: &str) -> (FeatureCache, Arc<Mutex<Vec<String>>>) {
    let mut remote = RemoteConfig::new(url);
    remote.key_prefix = prefix.into();
    remote.cluster = true;
    cache_with(remote)
}

fn cache_with(remote: RemoteConfig) -> (FeatureCache, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let events: Events = Arc::new(move |e| {
        if let RemoteEvent::Error(e) = e {
            sink.lock()
                .unwrap()
                .push(format!("{}: {e}", crate::error::Coded::code(&e)));
        }
    });
    let config = CacheConfig {
        policy: PolicyKind::Lru,
        max_bytes: 64 << 20,
        ..CacheConfig::with_system_defaults()
    };
    (
        FeatureCache::with_remote(config, remote, events).unwrap(),
        seen,
    )
}

fn read(cache: &FeatureCache, keys: &[&str]) -> Receiver<Vec<Option<CacheValue>>> {
    let (tx, rx) = channel();
    cache.get_remote(vec![Lookup::new(
        keys.iter().map(|k| k.to_string()).collect(),
        Box::new(move |v| tx.send(v).unwrap()),
    )]);
    rx
}

#[test]
fn a_lookup_dropped_unanswered_answers_with_misses() {
    // As when its task ends by a panic or the runtime shuts down: the
    // caller gets misses instead of waiting forever.
    let (tx, rx) = channel();
    let lookup = Lookup::new(
        vec!["a".into(), "b".into()],
        Box::new(move |v| tx.send(v).unwrap()),
    );
    drop(lookup);
    assert_eq!(rx.recv().unwrap(), vec![None, None]);
    let (tx, rx) = channel();
    let lookup = Lookup::new(vec!["a".into()], Box::new(move |v| tx.send(v).unwrap()));
    lookup.answer(vec![Some(CacheValue::Float32(vec![1.0f32].into()))]);
    assert_eq!(rx.recv().unwrap().len(), 1);
    assert!(rx.recv().is_err(), "answered once");
}

fn flush(cache: &FeatureCache) {
    let (tx, rx) = channel();
    cache
        .remote()
        .unwrap()
        .flush(Box::new(move || tx.send(()).unwrap()));
    rx.recv_timeout(Duration::from_secs(10)).unwrap();
}

/// Waits until `n` caches listen for invalidations under `prefix` on
/// `server` (subscriptions are made in the background).
fn subscribed(server: &Server, prefix: &str, n: usize) {
    let mut conn = server.connection();
    until("the subscriptions are up", || {
        let (_, count): (String, usize) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(format!("{prefix}:invalidate"))
            .query(&mut conn)
            .unwrap();
        count >= n
    });
}

/// Waits until `listener` has heard every invalidation `sender` published
/// (a write's own message may reach it after it read the new value, and
/// drop its copy then).
fn heard(sender: &FeatureCache, listener: &FeatureCache) {
    let sent = sender.remote_stats().unwrap().1.invalidations_sent;
    until("the listener heard the sender", || {
        listener.remote_stats().unwrap().1.invalidations_received >= sent
    });
}

fn vector(seed: f32, n: usize) -> CacheValue {
    CacheValue::Float32((0..n).map(|i| seed + i as f32).collect())
}

fn tagged(tags: &[&str]) -> EntryOptions {
    EntryOptions {
        tags: tags.iter().map(|t| t.to_string()).collect(),
        ..EntryOptions::default()
    }
}

#[test]
fn a_write_in_one_cache_is_read_by_another_and_fills_its_l1() {
    let Some(server) = Server::start() else {
        return;
    };
    let (a, _) = cache(&server.url(), "t1");
    let (b, _) = cache(&server.url(), "t1");
    // b hears a's writes before it reads: a write's own invalidation
    // arriving after b filled its L1 would drop that copy (harmless for
    // users, but this test checks the copy).
    subscribed(&server, "t1", 2);
    // Log-mel-like: few distinct values, so it compresses.
    let big = CacheValue::Float32((0..10_000).map(|i| (i % 50) as f32 * -0.5).collect());
    a.insert("k", big.clone(), tagged(&["speaker:1"])).unwrap();
    a.insert("small", vector(1.0, 3), EntryOptions::default())
        .unwrap();
    flush(&a);
    heard(&a, &b);
    let got = read(&b, &["k", "missing", "small"]).recv().unwrap();
    assert_eq!(got, vec![Some(big.clone()), None, Some(vector(1.0, 3))]);
    assert_eq!(b.get("k"), Some(big), "an L2 hit fills L1");
    let (_, stats) = b.remote_stats().unwrap();
    assert_eq!((stats.hits, stats.misses), (2, 1));
    let (state, written) = a.remote_stats().unwrap();
    assert_eq!(state, RemoteState::Up);
    assert_eq!(written.writes, 2);
    assert!(written.compression_ratio() > 2.0, "{written:?}");
    // The tags came along: a local tag invalidation finds the filled entry.
    assert_eq!(b.invalidate(&Invalidation::Tag("speaker:1".into())), 1);
}

#[test]
fn invalidations_reach_redis_and_the_other_caches_l1() {
    let Some(server) = Server::start() else {
        return;
    };
    let (a, _) = cache(&server.url(), "t2");
    let (b, _) = cache(&server.url(), "t2");
    subscribed(&server, "t2", 2);
    // Odd keys: glob characters, spaces, non-ASCII.
    let keys = ["take*1", "take?2", "take[3]", "take\\4 ✓", "other"];
    for (i, k) in keys.iter().enumerate() {
        a.insert(k, vector(i as f32, 4), tagged(&["batch"]))
            .unwrap();
    }
    flush(&a);
    heard(&a, &b);
    assert!(read(&b, &keys).recv().unwrap().iter().all(Option::is_some));
    assert_eq!(b.len(), 5);
    a.invalidate(&Invalidation::Prefix("take*".into()));
    flush(&a);
    until("b drops take*1", || !b.contains("take*1"));
    assert!(b.contains("take?2"), "a prefix is matched literally");
    let after = read(&a, &keys).recv().unwrap();
    assert!(after[0].is_none() && after[1].is_some());
    a.invalidate(&Invalidation::Tag("batch".into()));
    flush(&a);
    until("b drops the tagged keys", || b.is_empty());
    assert!(read(&a, &keys).recv().unwrap().iter().all(Option::is_none));
    // An overwrite drops the other cache's stale copy; a removal too.
    a.insert("v", vector(1.0, 2), EntryOptions::default())
        .unwrap();
    flush(&a);
    heard(&a, &b);
    read(&b, &["v"]).recv().unwrap();
    a.insert("v", vector(2.0, 2), EntryOptions::default())
        .unwrap();
    until("b drops its stale copy", || !b.contains("v"));
    assert_eq!(read(&b, &["v"]).recv().unwrap(), vec![Some(vector(2.0, 2))]);
    a.remove("v");
    until("b drops the removed key", || !b.contains("v"));
    assert!(b.remote_stats().unwrap().1.invalidations_received >= 4);
}

#[test]
fn ttls_carry_to_redis_and_to_the_filled_l1() {
    let Some(server) = Server::start() else {
        return;
    };
    let (a, _) = cache(&server.url(), "t3");
    let (b, _) = cache(&server.url(), "t3");
    let short = EntryOptions {
        ttl: Ttl::After(Duration::from_millis(300)),
        ..EntryOptions::default()
    };
    let inserted = Instant::now();
    a.insert("brief", vector(1.0, 2), short).unwrap();
    flush(&a);
    let found = read(&b, &["brief"]).recv().unwrap()[0].is_some();
    // Only meaningful if the write and the read took less than the TTL.
    if inserted.elapsed() < Duration::from_millis(300) {
        assert!(found, "b reads the live entry from Redis");
    }
    until("the filled entry expires in b", || !b.contains("brief"));
    until("redis forgets it", || {
        read(&b, &["brief"]).recv().unwrap()[0].is_none()
    });
}

#[test]
fn down_at_start_then_up_and_down_again_never_blocks_and_recovers() {
    let Some(mut server) = Server::start() else {
        return;
    };
    server.stop();
    let (a, errors) = cache(&server.url(), "t4");
    // The state turns Down first, then the event is sent.
    until("the event says the tier is down", || {
        !errors.lock().unwrap().is_empty()
    });
    assert!(errors.lock().unwrap()[0].starts_with("E_REDIS_DOWN"));
    assert_eq!(a.remote().unwrap().state(), RemoteState::Down);
    let started = Instant::now();
    a.insert("k", vector(1.0, 2), EntryOptions::default())
        .unwrap();
    assert_eq!(read(&a, &["k"]).recv().unwrap(), vec![None]);
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "down answers at once"
    );
    assert_eq!(a.get("k"), Some(vector(1.0, 2)), "L1 keeps serving");
    flush(&a);
    assert_eq!(a.remote_stats().unwrap().1.writes_skipped, 1);

    server.run();
    until("the tier is up", || {
        a.remote().unwrap().state() == RemoteState::Up
    });
    a.insert("k2", vector(2.0, 2), EntryOptions::default())
        .unwrap();
    flush(&a);
    let (b, _) = cache(&server.url(), "t4");
    assert_eq!(
        read(&b, &["k2"]).recv().unwrap(),
        vec![Some(vector(2.0, 2))]
    );

    server.stop();
    until("a read notices", || {
        read(&a, &["k2"]).recv().unwrap();
        a.remote().unwrap().state() == RemoteState::Down
    });
    assert_eq!(a.get("k2"), Some(vector(2.0, 2)));
    server.run();
    until("the tier is up again", || {
        a.remote().unwrap().state() == RemoteState::Up
    });
    a.insert("k3", vector(3.0, 2), EntryOptions::default())
        .unwrap();
    flush(&a);
    until("k3 is readable", || {
        read(&b, &["k3"]).recv().unwrap()[0].is_some()
    });
    assert!(a.remote_stats().unwrap().1.disconnects >= 2);
}

#[test]
fn a_slow_server_is_a_miss_after_the_timeout() {
    let Some(server) = Server::start() else {
        return;
    };
    let mut remote = RemoteConfig::new(server.url());
    remote.timeout = Duration::from_millis(100);
    let cache = FeatureCache::with_remote(
        CacheConfig::with_system_defaults(),
        remote,
        Arc::new(|_| {}),
    )
    .unwrap();
    cache
        .insert("k", vector(1.0, 2), EntryOptions::default())
        .unwrap();
    flush(&cache);
    // Every client's commands wait 1.5 s from the moment this answers.
    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(1500)
        .arg("ALL")
        .query(&mut conn)
        .unwrap();
    let started = Instant::now();
    assert_eq!(read(&cache, &["k"]).recv().unwrap(), vec![None]);
    assert!(started.elapsed() < Duration::from_millis(900));
    let (state, stats) = cache.remote_stats().unwrap();
    assert!(stats.timeouts >= 1);
    assert_eq!(state, RemoteState::Up, "a slow server is not a dead one");
}

#[test]
fn foreign_and_oversized_values_are_reported_not_read() {
    let Some(server) = Server::start() else {
        return;
    };
    let mut remote = RemoteConfig::new(server.url());
    remote.key_prefix = "t6".into();
    remote.max_value_bytes = 1000;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let events: Events = Arc::new(move |e| {
        if let RemoteEvent::Error(e) = e {
            sink.lock().unwrap().push(crate::error::Coded::code(&e));
        }
    });
    let cache =
        FeatureCache::with_remote(CacheConfig::with_system_defaults(), remote, events).unwrap();
    cache
        .insert("big", vector(0.0, 1000), EntryOptions::default())
        .unwrap();
    flush(&cache);
    assert_eq!(cache.get("big"), Some(vector(0.0, 1000)), "kept in L1");
    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let exists: bool = redis::cmd("EXISTS")
        .arg("t6:v:big")
        .query(&mut conn)
        .unwrap();
    assert!(!exists);
    let _: () = redis::cmd("SET")
        .arg("t6:v:foreign")
        .arg("hello")
        .query(&mut conn)
        .unwrap();
    assert_eq!(read(&cache, &["foreign"]).recv().unwrap(), vec![None]);
    assert_eq!(*seen.lock().unwrap(), vec!["E_TOO_LARGE", "E_REDIS_DECODE"]);
}

#[test]
fn a_malformed_url_is_refused() {
    let err = FeatureCache::with_remote(
        CacheConfig::with_system_defaults(),
        RemoteConfig::new("http://nope"),
        Arc::new(|_| {}),
    )
    .err()
    .unwrap();
    assert_eq!(crate::error::Coded::code(&err), "ERR_INVALID_URL");
}

#[test]
fn a_cluster_shares_entries_and_invalidations_across_its_nodes() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let url = cluster.nodes[0].url();
    let (a, errors) = cluster_cache(&url, "c1");
    let (b, _) = cluster_cache(&url, "c1");
    subscribed(&cluster.nodes[0], "c1", 2);
    let keys: Vec<String> = (0..200).map(|i| format!("clip:{i}")).collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    for (i, k) in keys.iter().enumerate() {
        let parity = if i % 2 == 0 { "even" } else { "odd" };
        a.insert(k, vector(i as f32, 8), tagged(&[parity])).unwrap();
    }
    flush(&a);
    heard(&a, &b);
    for node in &cluster.nodes {
        let held: u64 = redis::cmd("DBSIZE").query(&mut node.connection()).unwrap();
        assert!(held > 10, "every primary holds some of the entries");
    }
    // One lookup spans every slot: split by node, answered in order.
    let got = read(&b, &keys).recv().unwrap();
    for (i, value) in got.iter().enumerate() {
        assert_eq!(value, &Some(vector(i as f32, 8)), "{}", keys[i]);
    }
    assert_eq!(b.len(), 200);

    // The tag's set and its members live on different nodes.
    a.invalidate(&Invalidation::Tag("even".into()));
    flush(&a);
    until("b drops the even keys", || b.len() == 100);
    let after = read(&a, &keys).recv().unwrap();
    assert!(after.iter().step_by(2).all(Option::is_none));
    assert!(after.iter().skip(1).step_by(2).all(Option::is_some));

    // A prefix is looked for on every primary.
    a.invalidate(&Invalidation::Prefix("clip:1".into()));
    flush(&a);
    until("b drops clip:1*", || !b.contains("clip:13"));
    let after = read(&a, &keys).recv().unwrap();
    for (i, value) in after.iter().enumerate() {
        let gone = i % 2 == 0 || keys[i].starts_with("clip:1");
        assert_eq!(value.is_none(), gone, "{}", keys[i]);
    }
    a.remove("clip:3");
    until("b drops the removed key", || !b.contains("clip:3"));
    assert_eq!(read(&b, &["clip:3"]).recv().unwrap(), vec![None]);
    assert!(errors.lock().unwrap().is_empty(), "{:?}", errors.lock());
    assert_eq!(a.remote().unwrap().state(), RemoteState::Up);
}

#[test]
fn a_cluster_that_cannot_be_reached_is_down_and_misses_at_once() {
    let (a, errors) = cluster_cache(&format!("redis://127.0.0.1:{}", free_port()), "c2");
    until("the event says the tier is down", || {
        !errors.lock().unwrap().is_empty()
    });
    assert!(errors.lock().unwrap()[0].starts_with("E_REDIS_DOWN"));
    a.insert("k", vector(1.0, 2), EntryOptions::default())
        .unwrap();
    assert_eq!(read(&a, &["k"]).recv().unwrap(), vec![None]);
    assert_eq!(a.get("k"), Some(vector(1.0, 2)), "L1 keeps serving");
}

#[test]
fn close_sends_what_was_queued_then_lets_its_connections_go() {
    let Some(server) = Server::start() else {
        return;
    };
    let (a, errors) = cache(&server.url(), "t8");
    let (b, _) = cache(&server.url(), "t8");
    let keys: Vec<String> = (0..100).map(|i| format!("k{i}")).collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    for (i, k) in keys.iter().enumerate() {
        a.insert(k, vector(i as f32, 4), EntryOptions::default())
            .unwrap();
    }
    let (tx, rx) = channel();
    a.remote()
        .unwrap()
        .close(Box::new(move || tx.send(()).unwrap()));
    rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(a.remote().unwrap().state(), RemoteState::Closed);
    assert!(
        read(&b, &keys).recv().unwrap().iter().all(Option::is_some),
        "what was queued before close was sent"
    );
    // b's two connections and this one remain.
    let mut conn = server.connection();
    until("a's connections are closed", || {
        let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut conn).unwrap();
        list.lines().count() == 3
    });
    a.insert("late", vector(1.0, 2), EntryOptions::default())
        .unwrap();
    flush(&a);
    assert_eq!(read(&a, &["k1", "late"]).recv().unwrap(), vec![None, None]);
    assert_eq!(a.get("late"), Some(vector(1.0, 2)), "L1 keeps serving");
    assert_eq!(read(&b, &["late"]).recv().unwrap(), vec![None]);
    assert_eq!(a.remote_stats().unwrap().1.writes, 100);
    assert!(errors.lock().unwrap().is_empty(), "{:?}", errors.lock());
}

#[test]
fn l1_is_cleared_when_the_invalidation_channel_comes_back() {
    let Some(mut server) = Server::start() else {
        return;
    };
    let (a, _) = cache(&server.url(), "t9");
    subscribed(&server, "t9", 1);
    a.insert("k", vector(1.0, 2), EntryOptions::default())
        .unwrap();
    flush(&a);
    server.stop();
    assert!(a.contains("k"), "L1 serves through the outage");
    server.run();
    // Invalidations published while it was away are lost: nothing in L1
    // can be trusted when it listens again.
    until("L1 is cleared", || !a.contains("k"));
    a.insert("k2", vector(2.0, 2), EntryOptions::default())
        .unwrap();
    subscribed(&server, "t9", 1);
    assert!(a.contains("k2"), "only once");
}

#[test]
fn a_flush_or_close_callback_runs_exactly_once_even_when_dropped_uncalled() {
    use super::writes::Settle;
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = || {
        let calls = Arc::clone(&calls);
        Box::new(move || {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }) as Box<dyn FnOnce() + Send>
    };
    drop(Settle::new(counted()));
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "dropped uncalled"
    );
    Settle::new(counted()).call();
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "called once"
    );
}
