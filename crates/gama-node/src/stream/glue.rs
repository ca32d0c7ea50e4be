//! The JS side of feature streams (`streams.js`), compiled once per
//! environment: the functions the native side calls on the JS thread.

use napi::bindgen_prelude::{ClassInstance, Function, Object, Unknown};
use napi::{sys, Env, JsValue, Result};

use super::FeatureStream;
use crate::js::module::Scripts;
use crate::js::napi::Js;
use crate::js::raw::{call_reporting, Persistent};

/// `streams.js`'s functions for one environment.
pub struct StreamGlue {
    init: Persistent,
    deliver: Persistent,
    end: Persistent,
    settled: Persistent,
    drain: Persistent,
}

impl StreamGlue {
    /// Runs `streams.js` over the exports (it patches the stream classes)
    /// and keeps the functions it returns.
    pub fn new(env: &Env, exports: &Object) -> Result<Self> {
        let installer: Unknown = env.run_script(include_str!("streams.js"))?;
        // `consumed(stream, frames)`: a reader took queued frames.
        let consumed: Function<Unknown, ()> =
            env.create_function_from_closure("consumed", |ctx| {
                let stream: ClassInstance<FeatureStream> = ctx.get(0)?;
                let frames: f64 = ctx.get(1)?;
                stream.consumed(ctx.env, frames as usize);
                Ok(())
            })?;
        let js = Js::new(env);
        let args = [exports.raw(), consumed.raw()];
        let glue = js.call(js.undefined()?, installer.raw(), &args)?;
        let take = |name: &std::ffi::CStr| -> Result<Persistent> {
            Persistent::new(env, js.named(glue, name)?)
        };
        Ok(StreamGlue {
            init: take(c"init")?,
            deliver: take(c"deliver")?,
            end: take(c"end")?,
            settled: take(c"settled")?,
            drain: take(c"drain")?,
        })
    }

    /// The glue of `env`.
    pub fn of(env: &Env) -> Result<&'static StreamGlue> {
        Scripts::of(env).map(|s| &s.streams)
    }

    /// Sets up a new stream object's JS state: `[stream, utteranceId,
    /// layout, onFrames, cache, cacheKey]`.
    pub fn init(&self, env: &Env, args: &[sys::napi_value; 6]) -> Result<()> {
        let js = Js::new(env);
        js.call(js.undefined()?, self.init.get(env), args)?;
        Ok(())
    }

    /// Hands a frame block to the stream's consumer (or its queue):
    /// `[stream, buffer, offset, firstFrame, frames]`.
    pub fn deliver(&self, env: &Env, args: &[sys::napi_value; 5]) {
        call_reporting(env, self.deliver.get(env), args);
    }

    /// Ends the stream with a summary or an error; `whole` holds the
    /// whole utterance's features for a stream with a `cacheKey`.
    pub fn end(
        &self,
        env: &Env,
        stream: sys::napi_value,
        summary: sys::napi_value,
        error: sys::napi_value,
        whole: sys::napi_value,
    ) {
        call_reporting(env, self.end.get(env), &[stream, summary, error, whole]);
    }

    /// The promise of the stream's summary.
    pub fn settled(&self, env: &Env, stream: sys::napi_value) -> Result<sys::napi_value> {
        let js = Js::new(env);
        js.call(js.undefined()?, self.settled.get(env), &[stream])
    }

    /// Emits 'drain' on the stream.
    pub fn drain(&self, env: &Env, stream: sys::napi_value) {
        call_reporting(env, self.drain.get(env), &[stream]);
    }
}
