//! What runs once when the addon loads: the cache's fast read path, the
//! scripts kept per environment (the bulk makers of batch and feature
//! results, the feature streams' JS side, the memory blocks) and the guard
//! that makes the exported classes require `new` (constructors.js).

use napi::bindgen_prelude::{Function, Object, Unknown};
use napi::{Env, Result};

use crate::batch::NumberObjects;
use crate::features::FeatureObjects;
use crate::js::raw::Persistent;
use crate::stream::StreamGlue;

/// The scripts of one JS environment, kept as the addon's instance data
/// (N-API gives an addon one slot per environment).
pub struct Scripts {
    /// Makes MEASURE and ANALYZE result objects in bulk.
    pub numbers: NumberObjects,
    /// Makes feature result objects in bulk.
    pub features: FeatureObjects,
    /// The JS side of feature streams.
    pub streams: StreamGlue,
    /// Makes the JS `MemoryBlock` of a key in a manager's table (`adopt`
    /// in `memory/fast_path.js`).
    pub blocks: Persistent,
}

impl Scripts {
    /// The scripts of `env`; an error before they are installed.
    pub fn of(env: &Env) -> Result<&'static Scripts> {
        env.get_instance_data::<Scripts>()
            .ok()
            .flatten()
            .map(|s| &*s)
            .ok_or_else(|| napi::Error::from_reason("gama-native's scripts are not installed"))
    }
}

/// Patches the freshly made exports.
pub fn install(env: &Env, exports: Object) -> Result<()> {
    crate::cache::install(env, &exports)?;
    let scripts = Scripts {
        numbers: NumberObjects::new(env)?,
        features: FeatureObjects::new(env)?,
        streams: StreamGlue::new(env, &exports)?,
        blocks: crate::memory::install(env, &exports)?,
    };
    // The environment's teardown frees its references itself.
    env.set_instance_data(scripts, (), |_| {})?;
    let guard: Function<Object, Unknown> = env.run_script(include_str!("constructors.js"))?;
    guard.call(exports)?;
    Ok(())
}
