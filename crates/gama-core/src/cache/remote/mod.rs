//! The second tier: entries shared through Redis by every process and
//! machine that uses the same server and key prefix.
//!
//! L1 (the in-process `Store`) stays authoritative for what this process
//! holds; Redis is written behind it and read on an L1 miss. Everything
//! here runs on one process-wide tokio runtime (`link::runtime`): callers
//! on the JS thread or the pool only queue work and are called back, so a
//! slow or dead server never blocks them. Four tasks serve each cache: the
//! reader (`reads`), the writer (`writes`), the prober that reconnects
//! (`link::probe`) and the subscriber that applies other processes'
//! invalidations (`subscriber`). They end when the `Remote` is closed or
//! dropped.

mod codec;
mod config;
mod error;
mod link;
mod node_codec;
mod reads;
mod stats;
mod subscriber;
mod writes;

#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use tokio::sync::watch;

pub use codec::{decode, encode, Decoded, Encoded};
pub use config::{Compression, RemoteConfig};
pub use error::RemoteError;
pub use reads::{Lookup, ReadDone, MGET_KEYS};
pub use stats::{RemoteState, RemoteStats};

use super::{CacheValue, Invalidation};
use link::Link;
use writes::{Job, Settle};

/// What the tier tells its owner, from its own thread.
#[derive(Debug)]
pub enum RemoteEvent {
    /// Something failed; the cache carried on with L1.
    Error(RemoteError),
    /// Every queued write, removal, invalidation and flush is done.
    Idle,
}

/// Where events go (called on the tier's thread: keep it short).
pub type Events = Arc<dyn Fn(RemoteEvent) + Send + Sync>;

/// What the tier does to the first tier (L1) it sits behind.
pub trait Local: Send + Sync {
    /// Stores values read from Redis (one round trip's, under one lock),
    /// without writing them back.
    fn fill(&self, found: Vec<Found<'_>>);
    /// Applies an invalidation another process published.
    fn invalidate_local(&self, what: &Invalidation);
    /// Drops every entry: invalidations may have been missed.
    fn clear_local(&self);
}

/// A value read from Redis, for L1.
pub struct Found<'a> {
    /// The cache key.
    pub key: &'a str,
    /// The decoded value.
    pub value: CacheValue,
    /// The time it has left in Redis (`None`: no expiry).
    pub ttl: Option<Duration>,
    /// Its tags.
    pub tags: Vec<String>,
}

/// The Redis tier of one cache.
pub struct Remote {
    link: Arc<Link>,
    reads: UnboundedSender<Vec<Lookup>>,
    jobs: UnboundedSender<Job>,
    /// Set by `close`, dropped with the tier: either ends the tasks.
    closed: Arc<watch::Sender<bool>>,
}

impl Remote {
    /// Checks the URL in `config`; the client to start a tier with.
    pub fn client(config: &RemoteConfig) -> Result<redis::Client, RemoteError> {
        redis::Client::open(config.url.as_str()).map_err(|e| RemoteError::Url(e.to_string()))
    }

    /// Starts the tier's tasks; it connects in the background.
    pub fn start(
        config: RemoteConfig,
        client: redis::Client,
        local: Weak<dyn Local>,
        events: Events,
    ) -> Result<Remote, RemoteError> {
        let link = Arc::new(Link::new(config, client, local, events)?);
        let (reads, read_rx) = unbounded_channel();
        let (jobs, job_rx) = unbounded_channel();
        let (closed, closed_rx) = watch::channel(false);
        let runtime = link::runtime();
        runtime.spawn(reads::serve(Arc::clone(&link), read_rx, closed_rx.clone()));
        runtime.spawn(writes::serve(Arc::clone(&link), job_rx));
        runtime.spawn(link::probe(Arc::clone(&link), closed_rx.clone()));
        runtime.spawn(subscriber::listen(Arc::clone(&link), closed_rx));
        Ok(Remote {
            link,
            reads,
            jobs,
            closed: Arc::new(closed),
        })
    }

    /// The tier's settings.
    pub fn config(&self) -> &RemoteConfig {
        &self.link.config
    }

    /// Runs lookups made together; each one's `done` gets one value or
    /// `None` per key, in order, after the values found have filled L1.
    /// Never waits longer than the timeout; while the tier is down it
    /// answers at once with misses.
    pub fn get(&self, lookups: Vec<Lookup>) {
        if let Err(refused) = self.reads.send(lookups) {
            for read in refused.0 {
                let n = read.keys.len();
                read.answer(vec![None; n]);
            }
        }
    }

    fn queue(&self, job: Job) {
        self.link.pending.fetch_add(1, Ordering::AcqRel);
        if let Err(refused) = self.jobs.send(job) {
            if let Job::Flush(done) | Job::Close(done) = refused.0 {
                done.call();
            }
            self.link.job_done(1);
        }
    }

    /// Writes a value behind L1, expiring after `ttl`.
    pub fn write(&self, key: &str, value: CacheValue, ttl: Option<Duration>, tags: &[String]) {
        self.queue(Job::Write {
            key: key.to_string(),
            value,
            ttl,
            tags: tags.to_vec(),
        });
    }

    /// Removes keys from Redis and from the other processes' L1.
    pub fn remove(&self, keys: Vec<String>) {
        self.queue(Job::Remove(keys));
    }

    /// Removes what `what` names from Redis and from the other processes' L1.
    pub fn invalidate(&self, what: Invalidation) {
        self.queue(Job::Invalidate(what));
    }

    /// Calls `done` once every write, removal and invalidation queued
    /// before it has been sent (or has failed).
    pub fn flush(&self, done: Box<dyn FnOnce() + Send>) {
        self.queue(Job::Flush(Settle::new(done)));
    }

    /// Sends what was queued before it, then closes the tier for good:
    /// its tasks end and its connections go; `done` is called then. Later
    /// lookups miss and later writes are dropped (the cache serves L1).
    pub fn close(&self, done: Box<dyn FnOnce() + Send>) {
        let link = Arc::clone(&self.link);
        let closed = Arc::downgrade(&self.closed);
        self.queue(Job::Close(Settle::new(Box::new(move || {
            link.close();
            if let Some(closed) = closed.upgrade() {
                closed.send_replace(true);
            }
            done();
        }))));
    }

    /// The count of jobs queued and not yet done, shared (it stays
    /// readable without keeping the tier alive).
    pub fn pending_counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.link.pending)
    }

    /// Whether Redis is reachable.
    pub fn state(&self) -> RemoteState {
        self.link.state()
    }

    /// The tier's counters.
    pub fn stats(&self) -> RemoteStats {
        self.link.counters.snapshot()
    }

    /// Zeroes the counters.
    pub fn reset_stats(&self) {
        self.link.counters.reset();
    }
}
