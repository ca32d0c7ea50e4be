//! What runs once when the addon loads: the cache's fast read path, the
//! batch drain's bulk result maker and the guard that makes the exported
//! classes require `new` (constructors.js).

use napi::bindgen_prelude::{Function, Object, Unknown};
use napi::{Env, Result};

/// Patches the freshly made exports.
pub fn install(env: &Env, exports: Object) -> Result<()> {
    crate::cache::install(env, &exports)?;
    crate::batch::install(env)?;
    let guard: Function<Object, Unknown> = env.run_script(include_str!("constructors.js"))?;
    guard.call(exports)?;
    Ok(())
}
