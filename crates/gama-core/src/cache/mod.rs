//! The audio feature cache: memory-bounded, policy-driven, TTL- and
//! tag-aware, shared by JS and Rust worker threads.

mod config;
mod content_key;
mod error;
mod feature_cache;
mod pack;
pub mod policy;
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
