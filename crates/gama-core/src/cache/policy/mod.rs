//! Eviction policies. A policy only orders slots; the store owns the entries
//! and asks the policy which slot to evict when a limit is exceeded.

mod lfu;
mod list;
mod lru;
mod ranked;
mod sketch;
mod tinylfu;
mod ttl;

use std::time::Instant;

pub use lfu::Lfu;
pub use lru::Lru;
pub use tinylfu::TinyLfu;
pub use ttl::TtlOrder;

/// Index of an entry in the store's slot table.
pub type Slot = u32;

/// What a policy may know about an entry when it is inserted or replaced.
#[derive(Clone, Copy, Debug)]
pub struct EntryInfo {
    /// 64-bit hash of the key.
    pub hash: u64,
    /// Bytes the entry counts against the memory limit.
    pub weight: u64,
    /// When the entry expires, if ever.
    pub expires_at: Option<Instant>,
}

/// The ordering an eviction policy keeps over the store's slots.
pub trait Policy: Send {
    /// A new entry was stored in `slot`.
    fn on_insert(&mut self, slot: Slot, info: EntryInfo);
    /// The entry in `slot` was read.
    fn on_access(&mut self, slot: Slot, hash: u64);
    /// The entry in `slot` got a new value.
    fn on_update(&mut self, slot: Slot, info: EntryInfo);
    /// The entry in `slot` was removed for any reason.
    fn on_remove(&mut self, slot: Slot);
    /// The slot to evict next, other than `newest` (the entry just stored)
    /// unless an admission filter rejects it; the store then removes it and
    /// calls `on_remove`.
    fn victim(&mut self, newest: Slot) -> Option<Slot>;
    /// Forgets every entry.
    fn clear(&mut self);
}

/// The eviction policies a cache can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PolicyKind {
    /// Least recently used.
    Lru,
    /// Least frequently used.
    Lfu,
    /// Soonest to expire.
    Ttl,
    /// Window TinyLFU: frequency-gated admission over a segmented LRU (the default).
    #[default]
    TinyLfu,
}

impl PolicyKind {
    /// Builds the policy for a cache with these limits.
    pub fn build(self, max_entries: u64, max_bytes: u64) -> Box<dyn Policy> {
        match self {
            PolicyKind::Lru => Box::new(Lru::default()),
            PolicyKind::Lfu => Box::new(Lfu::default()),
            PolicyKind::Ttl => Box::new(TtlOrder::default()),
            PolicyKind::TinyLfu => Box::new(TinyLfu::new(max_entries, max_bytes)),
        }
    }
}
