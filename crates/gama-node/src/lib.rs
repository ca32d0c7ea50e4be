//! gama-native's Node.js binding: the napi-rs skin over `gama-core`. Each
//! module binds one capability (`cache`, `memory`, `batch`, `features`,
//! `profiler`); `js` holds the helpers they share (coded errors, option
//! readers, value conversion). Logic lives in the core; what is here turns
//! JS values into core calls and core results into JS values.

use napi::bindgen_prelude::Object;
use napi::{Env, Result};
use napi_derive::napi;

mod batch;
mod cache;
mod features;
mod js;
mod memory;
mod profiler;

/// Runs when the addon loads (see `js::module`).
#[napi(module_exports)]
pub fn init(exports: Object, env: Env) -> Result<()> {
    js::module::install(&env, exports)
}
