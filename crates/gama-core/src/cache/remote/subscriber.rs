//! Invalidations from other processes: a pub/sub connection of its own
//! listens on the cache's channel and applies what others publish to L1.
//! It reconnects with backoff. Messages published while it was away are
//! not replayed, so when it listens again after losing the channel it
//! clears L1 (as Redis's client-side caching advises): a stale copy lives
//! at most as long as the outage.

use std::sync::Arc;

use futures_util::StreamExt;
use serde_json::Value;
use tokio::sync::watch;

use super::link::{first_backoff, next_backoff, Link};
use super::stats::Counters;
use crate::cache::Invalidation;

/// Listens until `closed` ends.
pub(super) async fn listen(link: Arc<Link>, mut closed: watch::Receiver<bool>) {
    let mut delay = first_backoff();
    let mut listened = false;
    loop {
        let connect = async {
            let mut pubsub = link.client.get_async_pubsub().await?;
            pubsub.subscribe(link.config.channel()).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let wait = link.config.timeout.max(std::time::Duration::from_secs(1));
        if let Ok(Ok(mut pubsub)) = tokio::time::timeout(wait, connect).await {
            delay = first_backoff();
            if listened {
                if let Some(local) = link.local.upgrade() {
                    local.clear_local();
                }
            }
            listened = true;
            let mut messages = pubsub.on_message();
            loop {
                tokio::select! {
                    message = messages.next() => match message {
                        Some(m) => apply(&link, m.get_payload_bytes()),
                        None => break,
                    },
                    _ = closed.changed() => return,
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = closed.changed() => return,
        }
        delay = next_backoff(delay);
    }
}

/// Applies one published invalidation, unless this cache sent it.
fn apply(link: &Link, payload: &[u8]) {
    let Ok(Value::Object(message)) = serde_json::from_slice::<Value>(payload) else {
        return;
    };
    if message.get("o").and_then(Value::as_str) == Some(link.origin.as_str()) {
        return;
    }
    let what = if let Some(Value::Array(keys)) = message.get("k") {
        Invalidation::Keys(
            keys.iter()
                .filter_map(|k| k.as_str().map(String::from))
                .collect(),
        )
    } else if let Some(tag) = message.get("t").and_then(Value::as_str) {
        Invalidation::Tag(tag.to_string())
    } else if let Some(prefix) = message.get("p").and_then(Value::as_str) {
        Invalidation::Prefix(prefix.to_string())
    } else {
        return;
    };
    Counters::add(&link.counters.invalidations_received, 1);
    if let Some(local) = link.local.upgrade() {
        local.invalidate_local(&what);
    }
}
