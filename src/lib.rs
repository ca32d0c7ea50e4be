//! gama-native: the native performance core for TypeScript audio-AI
//! orchestration. Each capability is a plain Rust module; its `js` submodule
//! is the thin napi-rs binding.

#![deny(clippy::all)]

use napi::bindgen_prelude::Object;
use napi::{Env, Result};
use napi_derive::napi;

pub mod batch;
pub mod cache;
pub mod features;
mod js;
pub mod memory;
pub mod metrics;
mod reaper;
mod suggest;

/// Runs when the addon loads (see `js::module`).
#[napi(module_exports)]
pub fn init(exports: Object, env: Env) -> Result<()> {
    js::module::install(&env, exports)
}
