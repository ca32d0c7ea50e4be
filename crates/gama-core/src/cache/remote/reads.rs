//! Lookups in Redis: requests that arrive together share one MGET, and up
//! to `IN_FLIGHT` MGETs run at once on the shared connection. A value found
//! fills L1 (with the TTL it has left and its tags) before the caller hears
//! of it.

use std::sync::Arc;

use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::Semaphore;

use super::codec;
use super::error::RemoteError;
use super::link::{unix_ms, Failure, Link};
use super::stats::Counters;
use crate::cache::CacheValue;

/// MGETs in flight at once.
const IN_FLIGHT: usize = 4;
/// Requests gathered into one MGET at most.
const GATHER: usize = 256;

/// Called with one value or `None` per key, in order.
pub type ReadDone = Box<dyn FnOnce(Vec<Option<CacheValue>>) + Send>;

/// One lookup of one or more keys.
pub(super) struct Read {
    pub keys: Vec<String>,
    pub done: ReadDone,
}

/// Serves lookups until the cache is dropped.
pub(super) async fn serve(link: Arc<Link>, mut requests: UnboundedReceiver<Read>) {
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut batch = Vec::new();
    while requests.recv_many(&mut batch, GATHER).await > 0 {
        let reads = std::mem::take(&mut batch);
        if !link.usable() {
            miss_all(&link, reads);
            continue;
        }
        let permit = Arc::clone(&permits)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let link = Arc::clone(&link);
        tokio::spawn(async move {
            lookup(&link, reads).await;
            drop(permit);
        });
    }
}

fn miss_all(link: &Link, reads: Vec<Read>) {
    for read in reads {
        Counters::add(&link.counters.misses, read.keys.len() as u64);
        let n = read.keys.len();
        (read.done)(vec![None; n]);
    }
}

/// One MGET for every key of `reads`.
async fn lookup(link: &Link, reads: Vec<Read>) {
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
    for read in reads {
        let values = read
            .keys
            .iter()
            .map(|key| value_of(link, key, found.next().flatten(), now))
            .collect();
        (read.done)(values);
    }
}

/// Decodes one answer, fills L1 with it and counts the hit or miss.
fn value_of(link: &Link, key: &str, bytes: Option<Vec<u8>>, now: u64) -> Option<CacheValue> {
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
    if let Some(local) = link.local.upgrade() {
        local.fill(key, decoded.value.clone(), left, decoded.tags);
    }
    Some(decoded.value)
}
