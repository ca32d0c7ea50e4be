//! A small process-wide cache of planned extractors, so repeated calls with
//! the same options reuse the FFT plan, window and filterbanks.

use std::sync::{Arc, Mutex, OnceLock};

use super::extract::Extractor;
use super::options::{FeatureOptions, OptionError};

/// Distinct option sets kept planned.
const CAPACITY: usize = 16;

/// The extractor for `options`, planned once and shared.
pub fn shared_extractor(options: &FeatureOptions) -> Result<Arc<Extractor>, OptionError> {
    static PLANS: OnceLock<Mutex<Vec<Arc<Extractor>>>> = OnceLock::new();
    let plans = PLANS.get_or_init(|| Mutex::new(Vec::new()));
    let mut plans = plans.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(i) = plans.iter().position(|e| e.options() == options) {
        let hit = plans.remove(i);
        plans.push(Arc::clone(&hit));
        return Ok(hit);
    }
    let planned = Arc::new(Extractor::new(options.clone())?);
    if plans.len() == CAPACITY {
        plans.remove(0);
    }
    plans.push(Arc::clone(&planned));
    Ok(planned)
}
