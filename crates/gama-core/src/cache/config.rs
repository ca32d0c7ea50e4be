//! Cache limits and per-entry options.

use std::time::Duration;

use super::policy::PolicyKind;

/// Bytes every entry counts beyond its value and key: the slot, the hash
/// table cell, the policy's links and the shared value header.
pub const ENTRY_OVERHEAD: u64 = 192;

/// Bytes each tag of an entry counts beyond its text.
pub const TAG_OVERHEAD: u64 = 24;

/// Default entry limit (a medium deployment's working set of clips).
pub const DEFAULT_MAX_ENTRIES: u64 = 10_000;

/// Limits and behaviour of one cache.
#[derive(Clone, Debug)]
pub struct CacheConfig {
    /// Most entries held at once.
    pub max_entries: u64,
    /// Most bytes held at once: values, keys, tags and `ENTRY_OVERHEAD` each.
    pub max_bytes: u64,
    /// TTL of entries stored without one of their own; `None` keeps them until evicted.
    pub default_ttl: Option<Duration>,
    /// Which entry to evict when a limit is reached.
    pub policy: PolicyKind,
    /// Whether `warm` loads anything.
    pub enable_warming: bool,
}

impl CacheConfig {
    /// A configuration with the defaults: 10,000 entries, a quarter of the
    /// machine's memory, no TTL, TinyLFU, warming on.
    pub fn with_system_defaults() -> Self {
        CacheConfig {
            max_entries: DEFAULT_MAX_ENTRIES,
            max_bytes: default_max_bytes(),
            default_ttl: None,
            policy: PolicyKind::default(),
            enable_warming: true,
        }
    }
}

/// A quarter of the machine's physical memory: room for the models and the
/// rest of the process beside the cache.
pub fn default_max_bytes() -> u64 {
    let mut system = sysinfo::System::new();
    system.refresh_memory();
    (system.total_memory() / 4).max(64 << 20)
}

/// How long one entry lives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Ttl {
    /// The cache's default TTL.
    #[default]
    Default,
    /// Never expires.
    Never,
    /// Expires this long after it is stored.
    After(Duration),
}

/// Options of one stored entry.
#[derive(Clone, Debug, Default)]
pub struct EntryOptions {
    /// How long the entry lives.
    pub ttl: Ttl,
    /// Tags for `invalidate_tag`.
    pub tags: Vec<String>,
    /// What computing the value cost, counted as time saved on every hit.
    pub compute_cost: Duration,
}

/// Entries removed together by an invalidation.
#[derive(Clone, Debug)]
pub enum Invalidation {
    /// Every entry carrying this tag.
    Tag(String),
    /// Every entry whose key starts with this text.
    Prefix(String),
    /// These keys.
    Keys(Vec<String>),
}
