//! Lookups in Redis: lookups that arrive together share MGETs of about
//! `MGET_KEYS` keys, and up to `IN_FLIGHT` MGETs run at once on the shared
//! connection, so callers whose values came back resume while the others
//! are still in flight. A value found fills L1 (with the TTL it has left
//! and its tags) before the caller hears of it.

use std::sync::Arc;

use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::{watch, Semaphore};

use super::codec;
use super::error::RemoteError;
use super::link::{unix_ms, Failure, Link};
use super::stats::Counters;
use super::Found;
use crate::cache::CacheValue;

/// MGETs in flight at once.
const IN_FLIGHT: usize = 16;
/// Lookups that arrived together join one MGET until it has this many keys
/// (a larger lookup is one MGET of its own). Callers that can split their
/// keys should send lookups of about this size: each is answered as soon
/// as its own MGET is.
pub const MGET_KEYS: usize = 32;
/// Messages taken from the queue at once.
const GATHER: usize = 256;

/// Called with one value or `None` per key, in order.
pub type ReadDone = Box<dyn FnOnce(Vec<Option<CacheValue>>) + Send>;

/// One lookup of one or more keys, answered as a whole, exactly once: a
/// lookup dropped unanswered (its task ended by a panic, or the runtime
/// shut down) answers with misses, so no caller waits forever.
pub struct Lookup {
    /// The cache keys, in the order the answer gives their values.
    pub keys: Vec<String>,
    /// Taken by the answer.
    done: Option<ReadDone>,
}

impl Lookup {
    /// A lookup of `keys` whose answer goes to `done`.
    pub fn new(keys: Vec<String>, done: ReadDone) -> Self {
        Lookup {
            keys,
            done: Some(done),
        }
    }

    /// Answers with one value or `None` per key.
    pub fn answer(mut self, values: Vec<Option<CacheValue>>) {
        if let Some(done) = self.done.take() {
            done(values);
        }
    }
}

impl Drop for Lookup {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            done(vec![None; self.keys.len()]);
        }
    }
}

/// Serves lookups until the tier is closed or dropped; each message holds
/// the lookups made together.
pub(super) async fn serve(
    link: Arc<Link>,
    mut requests: UnboundedReceiver<Vec<Lookup>>,
    mut closed: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut batch = Vec::new();
    loop {
        tokio::select! {
            n = requests.recv_many(&mut batch, GATHER) => if n == 0 { return },
            _ = closed.changed() => {
                // Lookups already queued miss; later ones are refused.
                requests.close();
                while let Ok(reads) = requests.try_recv() {
                    miss_all(&link, reads);
                }
                return;
            }
        }
        let reads: Vec<Lookup> = batch.drain(..).flatten().collect();
        if !link.usable() {
            miss_all(&link, reads);
            continue;
        }
        for group in groups(reads) {
            let permit = Arc::clone(&permits)
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            let link = Arc::clone(&link);
            tokio::spawn(async move {
                lookup(&link, group).await;
                drop(permit);
            });
        }
    }
}

/// Lookups in MGET-sized groups, in order.
fn groups(reads: Vec<Lookup>) -> Vec<Vec<Lookup>> {
    let mut groups = Vec::new();
    let mut group = Vec::new();
    let mut keys = 0;
    for read in reads {
        keys += read.keys.len();
        group.push(read);
        if keys >= MGET_KEYS {
            groups.push(std::mem::take(&mut group));
            keys = 0;
        }
    }
    if !group.is_empty() {
        groups.push(group);
    }
    groups
}

fn miss_all(link: &Link, reads: Vec<Lookup>) {
    for read in reads {
        Counters::add(&link.counters.misses, read.keys.len() as u64);
        let n = read.keys.len();
        read.answer(vec![None; n]);
    }
}

/// One MGET for every key of `reads`.
async fn lookup(link: &Link, reads: Vec<Lookup>) {
    let keys: Vec<String> = reads
        .iter()
        .flat_map(|r| r.keys.iter().map(|k| link.config.value_key(k)))
        .collect();
    let found: Vec<Option<Vec<u8>>> = match link.query(redis::cmd("MGET").arg(&keys)).await {
        Ok(found) => found,
        Err(failure) => {
            // Timeouts and lost connections are counted where they happen.
            if let Failure::Redis(e) = &failure {
                if !(e.is_io_error() || e.is_connection_refusal() || e.is_connection_dropped()) {
                    link.error(RemoteError::Read(failure.reason()));
                }
            }
            return miss_all(link, reads);
        }
    };
    let mut found = found.into_iter();
    let now = unix_ms();
    let mut fills = Vec::new();
    let answers: Vec<Vec<Option<CacheValue>>> = reads
        .iter()
        .map(|read| {
            read.keys
                .iter()
                .map(|key| value_of(link, key, found.next().flatten(), now, &mut fills))
                .collect()
        })
        .collect();
    if let Some(local) = link.local.upgrade() {
        local.fill(fills);
    }
    for (read, values) in reads.into_iter().zip(answers) {
        read.answer(values);
    }
}

/// Decodes one answer, counts the hit or miss, and queues a hit for L1.
fn value_of<'a>(
    link: &Link,
    key: &'a str,
    bytes: Option<Vec<u8>>,
    now: u64,
    fills: &mut Vec<Found<'a>>,
) -> Option<CacheValue> {
    let Some(bytes) = bytes else {
        Counters::add(&link.counters.misses, 1);
        return None;
    };
    Counters::add(&link.counters.bytes_received, bytes.len() as u64);
    let decoded = match codec::decode(&bytes, link.config.max_value_bytes) {
        Ok(d) => d,
        Err(reason) => {
            Counters::add(&link.counters.misses, 1);
            link.error(RemoteError::Decode {
                key: key.to_string(),
                reason,
            });
            return None;
        }
    };
    let left = match decoded.expires_at_ms {
        Some(t) if t <= now => {
            Counters::add(&link.counters.misses, 1);
            return None;
        }
        Some(t) => Some(std::time::Duration::from_millis(t - now)),
        None => None,
    };
    Counters::add(&link.counters.hits, 1);
    fills.push(Found {
        key,
        value: decoded.value.clone(),
        ttl: left,
        tags: decoded.tags,
    });
    Some(decoded.value)
}
