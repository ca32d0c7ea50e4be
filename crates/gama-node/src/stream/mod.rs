//! `FeatureStreams` and `FeatureStream` as JS sees them: option checks,
//! chunk intake and the bridge (one weak threadsafe function) that brings
//! the pool's frames back to the JS thread in batches. The JS-shaped parts
//! (EventEmitter, Readable, Transform, async iteration) are `streams.js`.

mod glue;
mod state;
mod types;

pub use glue::StreamGlue;
pub use types::*;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use napi::bindgen_prelude::{ClassInstance, JavaScriptClassExt, ObjectFinalize, Unknown};
use napi::{sys, Env, JsValue, Result, ValueType};
use napi_derive::napi;
use parking_lot::Mutex;

use self::state::{after_change, drain, Cell, Entry, JsStreams};
use crate::cache::AudioFeatureCache;
use crate::features::{extract_params, resolve_params};
use crate::js::errors::{coded, range_error, type_error, INVALID_ARG_TYPE, OUT_OF_RANGE};
use crate::js::fields::{describe, string_value, Fields};
use crate::js::mailbox::{Inbox, Mailbox};
use crate::js::napi::Js;
use crate::js::raw::Persistent;
use crate::js::value::{RawValue, TypedArrayView};
use crate::memory::GAMAMemoryManager;
use gama_core::features::{shared_extractor, ExtractParams, Extractor};
use gama_core::stream::{
    Stream, StreamError, StreamEvent, StreamSink, Streams, StreamsConfig, TopDbReference,
};

/// Keys of `new FeatureStreams(options)`.
const STREAMS_OPTIONS: [&str; 7] = [
    "options",
    "maxConcurrent",
    "idleTimeoutMs",
    "highWaterMark",
    "memoryManager",
    "featureCache",
    "topDbReference",
];

/// Keys of `start(utteranceId, options)`.
const START_OPTIONS: [&str; 4] = ["onFrames", "options", "topDbReference", "cacheKey"];

const REFERENCES: [(&str, TopDbReference); 2] = [
    ("none", TopDbReference::None),
    ("running", TopDbReference::Running),
];

/// Live feature streams, one per utterance: audio pushed in chunks of any
/// size comes back as frames computed on the Rust pool, equal to
/// `extractFeatures` on the whole audio. While a stream is open it keeps
/// Node running; an idle one is finalized after `idleTimeoutMs`.
#[napi(custom_finalize)]
pub struct FeatureStreams {
    state: Cell,
    defaults: ExtractParams,
    reference: TopDbReference,
    /// The `featureCache` given, which finalized streams with a `cacheKey` fill.
    cache: Option<Persistent>,
}

#[napi]
impl FeatureStreams {
    /// Streams extracting with `options.options`; see `FeatureStreamsOptions`.
    #[napi(
        catch_unwind,
        constructor,
        ts_args_type = "options: FeatureStreamsOptions"
    )]
    pub fn new(env: Env, options: Unknown) -> Result<Self> {
        let o =
            Fields::read(&env, Some(options), "options", &STREAMS_OPTIONS)?.ok_or_else(|| {
                type_error(
                    &env,
                    INVALID_ARG_TYPE,
                    "options must be an object: { options: { sampleRate, ... } }",
                )
            })?;
        let defaults = extract_params(&env, o.value("options")?, "options.options")?;
        if defaults.sample_rate.is_none() {
            return Err(type_error(
                &env,
                INVALID_ARG_TYPE,
                "options.options.sampleRate is required: streams extract with { sampleRate, ...ExtractOptions }",
            ));
        }
        resolve_params(&env, &defaults, "options.options")?;
        let mut config = StreamsConfig::default();
        if let Some(n) = o.integer("maxConcurrent", 1.0, 1_000_000.0)? {
            config.max_concurrent = n as usize;
        }
        if o.is_null("idleTimeoutMs")? {
            config.idle_timeout = None;
        } else if let Some(t) = o.millis("idleTimeoutMs")? {
            if t.is_zero() {
                return Err(range_error(
                    &env,
                    OUT_OF_RANGE,
                    "options.idleTimeoutMs must be greater than 0 (null: never)",
                ));
            }
            config.idle_timeout = Some(t);
        }
        if let Some(n) = o.integer("highWaterMark", 1.0, (1u64 << 32) as f64)? {
            config.high_water_frames = n as usize;
        }
        let reference = o.choice("topDbReference", &REFERENCES)?.unwrap_or_default();
        let manager: Option<ClassInstance<GAMAMemoryManager>> =
            o.instance("memoryManager", "a GAMAMemoryManager")?;
        let memory = manager.map(|m| m.core().clone());
        let cache: Option<ClassInstance<AudioFeatureCache>> =
            o.instance("featureCache", "an AudioFeatureCache")?;
        let cache = cache.map(|c| Persistent::new(&env, c.raw())).transpose()?;

        let inbox: Inbox<StreamEvent> = Arc::new(Mutex::new(Vec::new()));
        let state: Cell = Rc::new(RefCell::new(JsStreams::new(inbox.clone())));
        let drain_state = state.clone();
        let mailbox = Mailbox::new(&env, inbox, move |env| drain(env, &drain_state))?;
        state.borrow_mut().tsfn = mailbox.raw();
        let core = Streams::new(config, Arc::new(Sink(mailbox)), memory);
        state.borrow_mut().core = Some(Arc::new(core));

        Ok(FeatureStreams {
            state,
            defaults,
            reference,
            cache,
        })
    }

    /// Opens the stream of `utteranceId`: push audio to it, read frames
    /// through `onFrames`, `for await` or `readable()`, then `finalize()`.
    /// Throws E_TOO_MANY_STREAMS past `maxConcurrent` and
    /// E_DUPLICATE_STREAM for an id that is open already.
    #[napi(
        catch_unwind,
        ts_args_type = "utteranceId: string, options?: StreamStartOptions",
        ts_return_type = "FeatureStream"
    )]
    pub fn start(
        &self,
        env: Env,
        utterance_id: Unknown,
        options: Option<Unknown>,
    ) -> Result<RawValue> {
        let id = string_value(&env, "utteranceId", &utterance_id)?;
        if id.is_empty() {
            return Err(range_error(
                &env,
                OUT_OF_RANGE,
                "utteranceId must not be empty",
            ));
        }
        let mut params = self.defaults.clone();
        let mut reference = self.reference;
        let mut on_frames: Option<Unknown> = None;
        let mut cache_key = None;
        if let Some(o) = Fields::read(&env, options, "options", &START_OPTIONS)? {
            cache_key = o.string("cacheKey")?;
            if cache_key.is_some() && self.cache.is_none() {
                return Err(type_error(
                    &env,
                    INVALID_ARG_TYPE,
                    "options.cacheKey needs the streams' featureCache option",
                ));
            }
            if let Some(f) = o.value("onFrames")? {
                if f.get_type()? != ValueType::Function {
                    return Err(type_error(
                        &env,
                        INVALID_ARG_TYPE,
                        format!(
                            "options.onFrames must be a function; got {}",
                            describe(&env, &f)
                        ),
                    ));
                }
                on_frames = Some(f);
            }
            params = extract_params(&env, o.value("options")?, "options.options")?.over(&params);
            if let Some(r) = o.choice("topDbReference", &REFERENCES)? {
                reference = r;
            }
        }
        let resolved = resolve_params(&env, &params, "options.options")?;
        let sample_rate = resolved.sample_rate;
        let extractor = shared_extractor(&resolved)
            .map_err(|e| range_error(&env, OUT_OF_RANGE, format!("options.options.{e}")))?;
        let core = self.state.borrow().core();
        let stream = core
            .start(&id, extractor.clone(), reference, cache_key.is_some())
            .map_err(|e| coded(&env, &e))?;
        let object = FeatureStream {
            stream: stream.clone(),
            state: self.state.clone(),
        }
        .into_instance(&env)?
        .raw();
        let js = Js::new(&env);
        let callback = match &on_frames {
            Some(f) => f.raw(),
            None => js.null()?,
        };
        let layout = layout_value(&env, &extractor)?;
        let glue = StreamGlue::of(&env)?;
        let (cache, key) = match (&self.cache, &cache_key) {
            (Some(cache), Some(key)) => (cache.get(&env), js.string(key)?),
            _ => (js.null()?, js.null()?),
        };
        let args = [object, js.string(&id)?, layout, callback, cache, key];
        if let Err(e) = glue.init(&env, &args) {
            stream.abort();
            return Err(e);
        }
        let entry = Entry {
            object: Persistent::new(&env, object)?,
            stream: stream.clone(),
            at_once: on_frames.is_some(),
            sample_rate,
        };
        self.state.borrow_mut().open.insert(stream.serial(), entry);
        after_change(&env, &self.state);
        Ok(RawValue(object))
    }

    /// The open stream of `utteranceId` (E_UNKNOWN_STREAM when none is).
    #[napi(
        catch_unwind,
        ts_args_type = "utteranceId: string",
        ts_return_type = "FeatureStream"
    )]
    pub fn get(&self, env: Env, utterance_id: Unknown) -> Result<RawValue> {
        let stream = self.find(&env, &utterance_id)?;
        Ok(RawValue(self.object_of(&env, &stream)?))
    }

    /// `get(utteranceId).push(chunk)`.
    #[napi(
        catch_unwind,
        ts_args_type = "utteranceId: string, chunk: Float32Array | Int16Array"
    )]
    pub fn push(&self, env: Env, utterance_id: Unknown, chunk: Unknown) -> Result<bool> {
        let stream = self.find(&env, &utterance_id)?;
        push_chunk(&env, &self.state, &stream, &chunk)
    }

    /// `get(utteranceId).finalize()`.
    #[napi(
        catch_unwind,
        ts_args_type = "utteranceId: string",
        ts_return_type = "Promise<StreamSummary>"
    )]
    pub fn finalize(&self, env: Env, utterance_id: Unknown) -> Result<RawValue> {
        let stream = self.find(&env, &utterance_id)?;
        let object = self.object_of(&env, &stream)?;
        stream.finalize();
        finalize_object(&env, object)
    }

    /// `get(utteranceId).abort()`.
    #[napi(catch_unwind, ts_args_type = "utteranceId: string")]
    pub fn abort(&self, env: Env, utterance_id: Unknown) -> Result<()> {
        let stream = self.find(&env, &utterance_id)?;
        abort_stream(&env, &self.state, &stream);
        Ok(())
    }

    /// Streams open now.
    #[napi(getter)]
    pub fn open(&self) -> u32 {
        self.state.borrow().open.len() as u32
    }

    /// Counters, frame rate, push-to-frames latency and pooled bytes.
    #[napi(catch_unwind)]
    pub fn get_stats(&self) -> StreamsStats {
        StreamsStats::from(self.state.borrow().core().stats())
    }

    /// Refuses new streams and finalizes every open one (their last frames
    /// and summaries follow); resolves once all have ended.
    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
    pub fn close(&self, env: Env) -> Result<RawValue> {
        let core = self.state.borrow().core();
        core.close();
        let promise = self.state.borrow_mut().closed_promise(&env)?;
        Ok(RawValue(promise))
    }
}

impl ObjectFinalize for FeatureStreams {
    fn finalize(self, env: Env) -> Result<()> {
        if let Some(cache) = self.cache {
            cache.delete(&env);
        }
        Ok(())
    }
}

impl FeatureStreams {
    /// The core handle of the open stream `id`.
    fn find(&self, env: &Env, id: &Unknown) -> Result<Stream> {
        let id = string_value(env, "utteranceId", id)?;
        let core = self.state.borrow().core();
        core.get(&id).map_err(|e| coded(env, &e))
    }

    /// The JS object of an open stream.
    fn object_of(&self, env: &Env, stream: &Stream) -> Result<sys::napi_value> {
        let s = self.state.borrow();
        match s.open.get(&stream.serial()) {
            Some(entry) => Ok(entry.object.get(env)),
            None => Err(coded(env, &StreamError::Unknown(stream.id().to_string()))),
        }
    }
}

/// One utterance's stream (made by `FeatureStreams.start`). It is also an
/// EventEmitter ('error', 'drain', 'end'), an async iterable of frame
/// blocks and the source of `readable()` (the `FeatureStream` interface
/// merged with this class declares them).
#[napi]
pub struct FeatureStream {
    stream: Stream,
    state: Cell,
}

#[napi]
impl FeatureStream {
    /// The utterance id it was started with.
    #[napi(getter)]
    pub fn utterance_id(&self) -> String {
        self.stream.id().to_string()
    }

    /// Whether it no longer takes audio (finalized, aborted, idle or closed).
    #[napi(getter)]
    pub fn closed(&self) -> bool {
        !self.stream.is_open()
    }

    /// Copies the chunk (Float32Array, or Int16Array PCM scaled by 1/32768)
    /// and returns at once; its frames are computed on the Rust pool. False
    /// when frames not yet consumed exceed `highWaterMark` (the chunk is
    /// taken all the same): wait for 'drain'. E_STREAM_CLOSED after
    /// finalize or abort; a NaN or infinite sample is an E_NOT_FINITE
    /// RangeError naming its index, the chunk is not taken and the stream
    /// goes on.
    #[napi(catch_unwind, ts_args_type = "chunk: Float32Array | Int16Array")]
    pub fn push(&self, env: Env, chunk: Unknown) -> Result<bool> {
        push_chunk(&env, &self.state, &self.stream, &chunk)
    }

    /// Ends the stream once what was pushed is framed; resolves with its
    /// summary after the last frames (padded as a clip's end) were
    /// delivered. Rejects as `extractFeatures` would on the whole audio
    /// (E_EMPTY_AUDIO when nothing was pushed), with E_CALLBACK when an
    /// `onFrames` callback threw and no 'error' listener took it, and with
    /// an AbortError after `abort()`.
    #[napi(catch_unwind, ts_return_type = "Promise<StreamSummary>")]
    pub fn finalize(&self, env: Env, this: napi::bindgen_prelude::This) -> Result<RawValue> {
        self.stream.finalize();
        finalize_object(&env, this.object.raw())
    }

    /// Ends the stream at once: frames not yet delivered are dropped, and
    /// `finalize()` and readers reject with an AbortError.
    #[napi(catch_unwind)]
    pub fn abort(&self, env: Env) {
        abort_stream(&env, &self.state, &self.stream);
    }
}

impl FeatureStream {
    /// A reader took `frames` queued frames.
    fn consumed(&self, env: &Env, frames: usize) {
        self.stream.consumed(frames);
        after_change(env, &self.state);
    }
}

/// Reads a chunk argument and pushes it.
fn push_chunk(env: &Env, state: &Cell, stream: &Stream, chunk: &Unknown) -> Result<bool> {
    let view = TypedArrayView::of(Js::new(env), chunk.raw())?;
    let result = match view.as_ref().map(|v| v.kind()) {
        Some(sys::TypedarrayType::float32_array) => {
            // Copied by `push` before this call returns.
            let samples = view.as_ref().expect("matched").elements::<f32>()?;
            stream.push(samples)
        }
        Some(sys::TypedarrayType::int16_array) => {
            let pcm = view.as_ref().expect("matched").elements::<i16>()?;
            let samples: Vec<f32> = pcm.iter().map(|&s| f32::from(s) / 32768.0).collect();
            stream.push(&samples)
        }
        _ => {
            return Err(type_error(
                env,
                INVALID_ARG_TYPE,
                format!(
                    "chunk must be a Float32Array or an Int16Array; got {}",
                    describe(env, chunk)
                ),
            ))
        }
    };
    let ok = result.map_err(|e| coded(env, &e))?;
    if !ok {
        state.borrow_mut().need_drain.insert(stream.serial());
    }
    Ok(ok)
}

/// `[[name, bins, scalar], ...]`: how the stream's block buffers are laid out.
fn layout_value(env: &Env, extractor: &Extractor) -> Result<sys::napi_value> {
    let js = Js::new(env);
    let layout = js.array()?;
    for (i, (feature, bins)) in extractor.layout().into_iter().enumerate() {
        let entry = js.array()?;
        js.set_element(entry, 0, js.string(feature.name())?)?;
        js.set_element(entry, 1, js.number(bins as f64)?)?;
        js.set_element(entry, 2, js.boolean(feature.is_scalar())?)?;
        js.set_element(layout, i as u32, entry)?;
    }
    Ok(layout)
}

fn finalize_object(env: &Env, object: sys::napi_value) -> Result<RawValue> {
    Ok(RawValue(StreamGlue::of(env)?.settled(env, object)?))
}

/// Aborts a stream that has not ended as JS sees it: even when the pool
/// has just ended it (its end still on the way), `finalize()` and readers
/// reject with an AbortError and nothing more is delivered.
fn abort_stream(env: &Env, state: &Cell, stream: &Stream) {
    stream.abort();
    let open = state.borrow().open.contains_key(&stream.serial());
    if open {
        state::aborted(env, state, stream.serial());
    }
}

/// The core's sink of a set of streams: the drain's mailbox.
struct Sink(Mailbox<StreamEvent>);

impl StreamSink for Sink {
    fn deliver(&self, event: StreamEvent) {
        self.0.post_all([event]);
    }
}
