//! gama-native: the native performance core for TypeScript audio-AI
//! orchestration. Each capability is a plain Rust module; its `js` submodule
//! is the thin napi-rs binding.

#![deny(clippy::all)]

pub mod batch;
pub mod cache;
pub mod features;
mod js;
pub mod memory;
pub mod metrics;
mod reaper;
mod suggest;
