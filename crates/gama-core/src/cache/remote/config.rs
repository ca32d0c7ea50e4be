//! Settings of the Redis tier.

use std::time::Duration;

/// How payloads above the threshold are compressed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compression {
    /// LZ4 (the default): fast, a modest ratio.
    #[default]
    Lz4,
    /// Zstandard at level 1: a better ratio at more CPU.
    Zstd,
    /// Stored as they are.
    None,
}

/// Where and how the second tier stores entries.
#[derive(Clone, Debug)]
pub struct RemoteConfig {
    /// `redis://[user:password@]host:port[/db]` (or `redis+unix:///path`).
    pub url: String,
    /// Prefix of every Redis key and channel this cache uses.
    pub key_prefix: String,
    /// TTL in Redis of entries that have none of their own; `None` keeps them.
    pub ttl: Option<Duration>,
    /// Payloads of at least this many bytes are compressed.
    pub compression_threshold: usize,
    /// How they are compressed.
    pub compression: Compression,
    /// Bound of every Redis round trip; a read that takes longer is a miss.
    pub timeout: Duration,
    /// Whether `url` names a node of a Redis Cluster.
    pub cluster: bool,
    /// Largest value payload written to or read from Redis.
    pub max_value_bytes: usize,
}

impl RemoteConfig {
    /// Defaults for a server at `url`: prefix `gama`, no TTL of its own,
    /// LZ4 above 1 KiB, 500 ms round trips, values up to 64 MiB.
    pub fn new(url: impl Into<String>) -> Self {
        RemoteConfig {
            url: url.into(),
            key_prefix: "gama".into(),
            ttl: None,
            compression_threshold: 1024,
            compression: Compression::Lz4,
            timeout: Duration::from_millis(500),
            cluster: false,
            max_value_bytes: 64 << 20,
        }
    }

    /// The Redis key of a cache key.
    pub fn value_key(&self, key: &str) -> String {
        // Built by hand: `format!` cost more than the rest of a key's lookup.
        let mut out = String::with_capacity(self.key_prefix.len() + 3 + key.len());
        out.push_str(&self.key_prefix);
        out.push_str(":v:");
        out.push_str(key);
        out
    }

    /// The Redis set that lists the keys carrying `tag`.
    pub fn tag_key(&self, tag: &str) -> String {
        format!("{}:t:{tag}", self.key_prefix)
    }

    /// The channel invalidations are published on.
    pub fn channel(&self) -> String {
        format!("{}:invalidate", self.key_prefix)
    }

    /// A SCAN pattern for the value keys that start with `prefix` (glob
    /// characters in either prefix are escaped).
    pub fn prefix_pattern(&self, prefix: &str) -> String {
        let mut pattern = String::new();
        for c in self.value_key(prefix).chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('*');
        pattern
    }
}
