//! The audio feature cache: memory-bounded, policy-driven, TTL- and
//! tag-aware, shared by JS and Rust worker threads.
//!
//! Why not moka: its bounds are enforced by maintenance that runs after
//! writes (`run_pending_tasks`), so entries and weight may exceed the limit
//! for a while, and its policy is W-TinyLFU (or LRU) only. This cache holds
//! its byte and entry limits at every `insert` (a set that would not fit
//! evicts first, under the same lock), offers exact LRU (to match
//! lru-cache, which users compare it with), LFU, TTL-order and TinyLFU
//! (`policy/`), weighs keys, tags and overhead with the value, invalidates
//! by tag or prefix, and expires entries from one shared reaper thread.

mod config;
mod content_key;
mod error;
mod feature_cache;
mod pack;
pub mod policy;
pub mod remote;
mod stats;
mod store;
pub mod structured;
mod value;

pub use config::{
    default_max_bytes, CacheConfig, EntryOptions, Invalidation, Ttl, DEFAULT_MAX_ENTRIES,
    ENTRY_OVERHEAD,
};
pub use content_key::content_key;
pub use error::CacheError;
pub use feature_cache::FeatureCache;
pub use pack::{pack_rows, packed_width, PackError};
pub use policy::PolicyKind;
pub use stats::{CacheStats, Counters};
pub use store::Store;
pub use value::CacheValue;

#[cfg(test)]
mod tests;
