//! Writes, removals and invalidations, in the order the cache made them,
//! sent in pipelined batches by one task: a batch's SETs, tag-set updates
//! and one PUBLISH naming its keys (so other processes drop their L1
//! copies) go in one round trip. Invalidations by tag or prefix need reads
//! of their own (SMEMBERS, SCAN), so they end the batch before them.

use std::sync::Arc;
use std::time::Duration;

use redis::Pipeline;
use serde_json::json;
use tokio::sync::mpsc::UnboundedReceiver;

use super::codec;
use super::error::RemoteError;
use super::link::{unix_ms, Failure, Link};
use super::stats::Counters;
use crate::cache::{CacheValue, Invalidation};

/// Jobs gathered into one round trip at most.
const GATHER: usize = 512;
/// Keys deleted per UNLINK while invalidating.
const UNLINK_CHUNK: usize = 1000;

/// Work for the writer, in cache order.
pub(super) enum Job {
    /// Store a value.
    Write {
        key: String,
        value: CacheValue,
        ttl: Option<Duration>,
        tags: Vec<String>,
    },
    /// Remove keys.
    Remove(Vec<String>),
    /// Remove by tag or prefix.
    Invalidate(Invalidation),
    /// Call back once every job before it is done.
    Flush(Settle),
    /// Call back once every job before it is done, and serve no more.
    Close(Settle),
}

/// A job's callback, called exactly once: by `call`, or by its `Drop` when
/// the job is dropped uncalled (its task ended by a panic, or the runtime
/// shut down), so no `flush()` or `close()` waits forever.
pub(super) struct Settle(Option<Box<dyn FnOnce() + Send>>);

impl Settle {
    /// A callback that runs `done`.
    pub(super) fn new(done: Box<dyn FnOnce() + Send>) -> Self {
        Settle(Some(done))
    }

    /// Calls it.
    pub(super) fn call(mut self) {
        if let Some(done) = self.0.take() {
            done();
        }
    }
}

impl Drop for Settle {
    fn drop(&mut self) {
        if let Some(done) = self.0.take() {
            done();
        }
    }
}

/// A batch being assembled.
struct Batch {
    pipe: Pipeline,
    /// Cache keys written or removed, for the PUBLISH.
    keys: Vec<String>,
    writes: u64,
    jobs: u64,
}

impl Batch {
    fn new() -> Self {
        Batch {
            pipe: redis::pipe(),
            keys: Vec::new(),
            writes: 0,
            jobs: 0,
        }
    }
}

/// Runs jobs until the tier is closed or dropped.
pub(super) async fn serve(link: Arc<Link>, mut jobs: UnboundedReceiver<Job>) {
    let mut gathered = Vec::new();
    while jobs.recv_many(&mut gathered, GATHER).await > 0 {
        let mut batch = Batch::new();
        let mut jobs_left = gathered.drain(..);
        while let Some(job) = jobs_left.next() {
            match job {
                Job::Write {
                    key,
                    value,
                    ttl,
                    tags,
                } => {
                    batch.jobs += 1;
                    add_write(&link, &mut batch, key, &value, ttl, &tags);
                }
                Job::Remove(keys) => {
                    batch.jobs += 1;
                    let redis_keys: Vec<String> =
                        keys.iter().map(|k| link.config.value_key(k)).collect();
                    batch.pipe.cmd("UNLINK").arg(redis_keys).ignore();
                    batch.keys.extend(keys);
                }
                Job::Invalidate(what) => {
                    commit(&link, std::mem::replace(&mut batch, Batch::new())).await;
                    invalidate(&link, &what).await;
                    link.job_done(1);
                }
                Job::Flush(done) => {
                    commit(&link, std::mem::replace(&mut batch, Batch::new())).await;
                    done.call();
                    link.job_done(1);
                }
                Job::Close(done) => {
                    commit(&link, batch).await;
                    done.call();
                    link.job_done(1);
                    // Whatever follows is refused from now on, or dropped here.
                    let after: Vec<Job> = jobs_left.collect();
                    jobs.close();
                    while let Ok(job) = jobs.try_recv() {
                        drop_job(&link, job);
                    }
                    after.into_iter().for_each(|job| drop_job(&link, job));
                    return;
                }
            }
        }
        commit(&link, batch).await;
    }
}

/// Settles a job that came after `Close` without doing it.
fn drop_job(link: &Link, job: Job) {
    if let Job::Flush(done) | Job::Close(done) = job {
        done.call();
    }
    link.job_done(1);
}

fn add_write(
    link: &Link,
    batch: &mut Batch,
    key: String,
    value: &CacheValue,
    ttl: Option<Duration>,
    tags: &[String],
) {
    let counters = &link.counters;
    if !link.usable() {
        Counters::add(&counters.writes_skipped, 1);
        return;
    }
    let config = &link.config;
    let expires_at = ttl.map(|d| unix_ms() + d.as_millis() as u64);
    let encoded = codec::encode(
        value,
        expires_at,
        tags,
        config.compression,
        config.compression_threshold,
    );
    if encoded.raw_len > config.max_value_bytes {
        Counters::add(&counters.writes_skipped, 1);
        link.error(RemoteError::TooLarge {
            key,
            bytes: encoded.raw_len,
            max_bytes: config.max_value_bytes,
        });
        return;
    }
    if encoded.compressed {
        Counters::add(&counters.raw_bytes_compressed, encoded.raw_len as u64);
        Counters::add(&counters.compressed_bytes, encoded.bytes.len() as u64);
    }
    Counters::add(&counters.bytes_sent, encoded.bytes.len() as u64);
    let redis_key = config.value_key(&key);
    let set = batch.pipe.cmd("SET").arg(&redis_key).arg(encoded.bytes);
    if let Some(d) = ttl {
        set.arg("PX").arg(d.as_millis().max(1) as u64);
    }
    set.ignore();
    for tag in tags {
        let tag_key = config.tag_key(tag);
        batch
            .pipe
            .cmd("SADD")
            .arg(&tag_key)
            .arg(&redis_key)
            .ignore();
        match ttl {
            // The set lives as long as its longest-lived member.
            Some(d) => {
                let ms = d.as_millis().max(1) as u64;
                batch
                    .pipe
                    .cmd("PEXPIRE")
                    .arg(&tag_key)
                    .arg(ms)
                    .arg("NX")
                    .ignore();
                batch
                    .pipe
                    .cmd("PEXPIRE")
                    .arg(&tag_key)
                    .arg(ms)
                    .arg("GT")
                    .ignore();
            }
            None => {
                batch.pipe.cmd("PERSIST").arg(&tag_key).ignore();
            }
        }
    }
    batch.keys.push(key);
    batch.writes += 1;
}

/// The message that tells other caches to drop what `what` names.
fn message(link: &Link, what: &Invalidation) -> String {
    let origin = &link.origin;
    match what {
        Invalidation::Tag(tag) => json!({ "o": origin, "t": tag }),
        Invalidation::Prefix(prefix) => json!({ "o": origin, "p": prefix }),
        Invalidation::Keys(keys) => json!({ "o": origin, "k": keys }),
    }
    .to_string()
}

/// Sends a batch's commands and its PUBLISH in one round trip.
async fn commit(link: &Link, mut batch: Batch) {
    if !batch.keys.is_empty() {
        let note = message(link, &Invalidation::Keys(std::mem::take(&mut batch.keys)));
        batch
            .pipe
            .cmd("PUBLISH")
            .arg(link.config.channel())
            .arg(note)
            .ignore();
        match link.send(&batch.pipe).await {
            Ok(()) => {
                Counters::add(&link.counters.writes, batch.writes);
                Counters::add(&link.counters.invalidations_sent, 1);
            }
            // Going down was reported once, when it happened.
            Err(Failure::Down) => Counters::add(&link.counters.writes_skipped, batch.writes),
            Err(failure) => {
                Counters::add(&link.counters.write_errors, batch.writes);
                link.error(RemoteError::Write {
                    entries: batch.writes as usize,
                    reason: failure.reason(),
                });
            }
        }
    }
    link.job_done(batch.jobs);
}

/// Removes what `what` names from Redis, then tells the other caches.
async fn invalidate(link: &Link, what: &Invalidation) {
    let config = &link.config;
    let doomed: Result<Vec<String>, String> = match what {
        Invalidation::Keys(keys) => Ok(keys.iter().map(|k| config.value_key(k)).collect()),
        Invalidation::Tag(tag) => link
            .query(redis::cmd("SMEMBERS").arg(config.tag_key(tag)))
            .await
            .map_err(|f| f.reason()),
        Invalidation::Prefix(prefix) => scan(link, &config.prefix_pattern(prefix)).await,
    };
    let doomed = match doomed {
        Ok(keys) => keys,
        Err(reason) => return link.error(RemoteError::Invalidate(reason)),
    };
    let mut chunks = doomed.chunks(UNLINK_CHUNK).peekable();
    loop {
        let mut pipe = redis::pipe();
        if let Some(chunk) = chunks.next() {
            pipe.cmd("UNLINK").arg(chunk).ignore();
            if let Invalidation::Tag(tag) = what {
                // Members added since SMEMBERS stay listed.
                pipe.cmd("SREM")
                    .arg(config.tag_key(tag))
                    .arg(chunk)
                    .ignore();
            }
        }
        let last = chunks.peek().is_none();
        if last {
            pipe.cmd("PUBLISH")
                .arg(config.channel())
                .arg(message(link, what))
                .ignore();
        }
        if let Err(failure) = link.send(&pipe).await {
            return link.error(RemoteError::Invalidate(failure.reason()));
        }
        if last {
            Counters::add(&link.counters.invalidations_sent, 1);
            return;
        }
    }
}

/// Every key matching `pattern`, by SCAN on every primary.
async fn scan(link: &Link, pattern: &str) -> Result<Vec<String>, String> {
    let mut keys = Vec::new();
    for node in link.primaries().await.map_err(|f| f.reason())? {
        let mut cursor = 0u64;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000);
            let (next, found): (u64, Vec<String>) =
                link.query_on(&scan, &node).await.map_err(|f| f.reason())?;
            keys.extend(found);
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    Ok(keys)
}
