//! gama-native's Node.js binding: the napi-rs skin over `gama-core`. Each
//! module binds one capability (`cache`, `memory`, `batch`, `features`,
//! `stream`, `profiler`); `js` holds the helpers they share (coded errors, option
//! readers, value conversion). Logic lives in the core; what is here turns
//! JS values into core calls and core results into JS values.

use napi::bindgen_prelude::Object;
use napi::{Env, Result};
use napi_derive::napi;

// Public so that the option and result types that exist only for
// `index.d.ts` count as exported.
pub mod batch;
pub mod cache;
pub mod features;
mod js;
pub mod memory;
pub mod profiler;
pub mod stream;

/// Runs when the addon loads (see `js::module`).
#[napi(module_exports)]
pub fn init(exports: Object, env: Env) -> Result<()> {
    js::module::install(&env, exports)
}
