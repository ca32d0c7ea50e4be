//! Conversion between JS values and batch items: reading the input of a
//! native operation, the priority and similarity group, and turning outputs
//! and errors into JS values.

use std::ffi::CStr;
use std::ops::Range;
use std::sync::Arc;

use napi::bindgen_prelude::Unknown;
use napi::{sys, Env, JsValue, Result, ValueType};

use crate::features::{
    audio_into, extract_params, resolve_params, view_into, Buffers, FeatureObjects, Laid,
};
use crate::js::errors::{
    coded_value, error_value, range_error, type_error, INVALID_ARG_TYPE, OUT_OF_RANGE,
};
use crate::js::fields::{describe, is_array, Fields};
use crate::js::napi::{convert, to_value, Js};
use crate::js::raw::clear_exception;
use crate::js::raw::Persistent;
use crate::js::value::{new_float64_array, TypedArrayView};
use gama_core::batch::{Analysis, Event, ItemError, Level, Output, MAX_PRIORITY};
use gama_core::cache::content_key;
use gama_core::error::ErrorClass;
use gama_core::features::{ExtractParams, FeatureOptions};

/// Named priorities and their numbers (critical and high are above 8, where
/// orchestrators' task routers draw the line for urgent work).
const NAMED: [(&str, u8); 4] = [("critical", 10), ("high", 8), ("normal", 5), ("low", 1)];

/// Default priority.
pub const NORMAL: u8 = 5;

/// Reads `priority`: a whole number 0-10 or 'critical' | 'high' | 'normal' | 'low'.
pub fn priority(env: &Env, value: Option<&Unknown>) -> Result<u8> {
    let Some(value) = value else {
        return Ok(NORMAL);
    };
    match value.get_type()? {
        ValueType::Undefined => Ok(NORMAL),
        ValueType::Number => {
            let n = convert::<f64>(env, value.raw())?;
            if n.fract() != 0.0 || !(0.0..=MAX_PRIORITY as f64).contains(&n) {
                return Err(range_error(
                    env,
                    OUT_OF_RANGE,
                    format!(
                        "options.priority must be a whole number from 0 to 10 or 'critical' | 'high' | 'normal' | 'low'; got {}",
                        crate::js::fields::number_text(n)
                    ),
                ));
            }
            Ok(n as u8)
        }
        ValueType::String => {
            let name = convert::<String>(env, value.raw())?;
            NAMED.iter().find(|(n, _)| *n == name).map(|(_, p)| *p).ok_or_else(|| {
                range_error(
                    env,
                    OUT_OF_RANGE,
                    format!("priority must be 0-10 or 'critical' | 'high' | 'normal' | 'low', got '{name}'"),
                )
            })
        }
        _ => Err(type_error(
            env,
            INVALID_ARG_TYPE,
            "priority must be a number from 0 to 10 or a priority name",
        )),
    }
}

/// The extraction parameters items fall back to (the processor's
/// `featureOptions`), resolved once.
pub struct Defaults {
    /// The parameters as given.
    pub params: ExtractParams,
    /// Resolved.
    pub options: Arc<FeatureOptions>,
    /// Their hash, for similarity groups.
    pub hash: u64,
    /// Their JSON, the parameter part of cache keys.
    pub key: Option<serde_json::Value>,
}

impl Defaults {
    /// Resolves `params` (a RangeError naming `path.parameter` when bad).
    pub fn new(env: &Env, params: ExtractParams, path: &str) -> Result<Defaults> {
        let options = resolve_params(env, &params, path)?;
        Ok(Defaults {
            hash: options.fingerprint(),
            key: params.to_json(),
            options: Arc::new(options),
            params,
        })
    }
}

/// The input of a native item: where its audio was copied to, its
/// extraction options, their hash and the parameter JSON of its cache key.
pub struct NativeInput {
    /// Mono samples: their range in the intake buffer they were copied into.
    pub samples: Range<usize>,
    /// Parameters (the processor's when the item gives none).
    pub options: Arc<FeatureOptions>,
    /// Hash of `options`, for similarity groups.
    pub hash: u64,
    /// The merged parameters as given, for `AudioFeatureCache.keyFor`.
    pub key: Option<serde_json::Value>,
}

/// Reads `data` of a native operation: a Float32Array, or `{ audio:
/// Float32Array, options?: ExtractOptions, sampleRate?: number }`. The
/// item's options are laid over the processor's and resolved afterwards,
/// so derived defaults (fmax = sampleRate / 2, hopLength = nFft / 4, ...)
/// follow the item's values. The samples are appended to `into`.
pub fn native_input(
    env: &Env,
    op: &str,
    data: &Unknown,
    path: &dyn Fn() -> String,
    defaults: &Defaults,
    into: &mut Vec<f32>,
) -> Result<NativeInput> {
    let view = TypedArrayView::of(Js::new(env), data.raw())?;
    if view.is_some() {
        return Ok(NativeInput {
            samples: view_into(env, path, data, view, into)?,
            options: defaults.options.clone(),
            hash: defaults.hash,
            key: defaults.key.clone(),
        });
    }
    let path = &path();
    let shape = || {
        type_error(
            env,
            INVALID_ARG_TYPE,
            format!(
                "{path} of {op} must be a Float32Array or {{ audio: Float32Array, options?, sampleRate? }}; got {}",
                describe(env, data)
            ),
        )
    };
    if data.get_type()? != ValueType::Object || is_array(env, data)? {
        return Err(shape());
    }
    let fields = Fields::read(env, Some(*data), path, &["audio", "options", "sampleRate"])?
        .ok_or_else(shape)?;
    let audio = fields.value("audio")?.ok_or_else(shape)?;
    let samples = audio_into(env, &fields.path("audio"), &audio, into)?;
    let mut params = extract_params(env, fields.value("options")?, &fields.path("options"))?;
    if let Some(rate) = fields.number("sampleRate")? {
        params.sample_rate = Some(rate);
    }
    if params == ExtractParams::default() {
        return Ok(NativeInput {
            samples,
            options: defaults.options.clone(),
            hash: defaults.hash,
            key: defaults.key.clone(),
        });
    }
    let merged = params.over(&defaults.params);
    let options = resolve_params(env, &merged, path)?;
    Ok(NativeInput {
        samples,
        hash: options.fingerprint(),
        options: Arc::new(options),
        key: merged.to_json(),
    })
}

/// Byte length of a typed array, or 0 for any other value (a JS item's estimate).
pub fn byte_length(env: &Env, data: &Unknown) -> u64 {
    match TypedArrayView::of(Js::new(env), data.raw()) {
        Ok(Some(view)) => view.byte_len() as u64,
        _ => 0,
    }
}

/// The cache key of a clip, as `AudioFeatureCache.keyFor(audio, options)` makes it.
pub fn cache_key(samples: &[f32], params: Option<&serde_json::Value>) -> Arc<str> {
    // SAFETY: the clip's own memory, borrowed for this call: f32 has no
    // padding and u8 no alignment, so its bytes are a valid &[u8] of
    // size_of_val(samples). Hashed in place: no copy of the clip.
    let bytes = unsafe {
        std::slice::from_raw_parts(
            samples.as_ptr().cast::<u8>(),
            std::mem::size_of_val(samples),
        )
    };
    content_key("f32", bytes, params).into()
}

/// Keys of an ANALYZE result, in the order of `analysis_values`.
const ANALYSIS_KEYS: [&CStr; 8] = [
    c"duration",
    c"peak",
    c"peakDb",
    c"rms",
    c"rmsDb",
    c"silenceRatio",
    c"spectralCentroidMean",
    c"zeroCrossingRate",
];

fn analysis_values(a: &Analysis) -> [f64; 8] {
    [
        a.duration,
        a.peak,
        a.peak_db,
        a.rms,
        a.rms_db,
        a.silence_ratio,
        a.spectral_centroid_mean,
        a.zero_crossing_rate,
    ]
}

/// Keys of a MEASURE result, in the order of `level_values`.
const LEVEL_KEYS: [&CStr; 3] = [c"peak", c"rms", c"mean"];

fn level_values(l: &Level) -> [f64; 3] {
    [l.peak, l.rms, l.mean]
}

/// Builds plain number objects many at a time through `numbers.js`; one
/// per JS environment, kept in the addon's instance data.
pub struct NumberObjects(Persistent);

impl NumberObjects {
    /// Compiles the maker for `env` (at load).
    pub fn new(env: &Env) -> Result<Self> {
        let maker: Unknown = env.run_script(include_str!("numbers.js"))?;
        Ok(NumberObjects(Persistent::new(env, maker.raw())?))
    }

    /// The maker of `env`, when installed.
    pub fn of(env: &Env) -> Option<&'static NumberObjects> {
        crate::js::module::Scripts::of(env).ok().map(|s| &s.numbers)
    }

    /// The objects of the ANALYZE and MEASURE results among `events`, one
    /// call per kind; `None` where an event is anything else. An object
    /// with a slot in `slots` goes straight into it (`Made::Placed`).
    pub fn of_events(
        &self,
        env: &Env,
        events: &[Event],
        slots: &Slots,
    ) -> Result<Vec<Option<Made>>> {
        let mut out = vec![None; events.len()];
        let mut kinds = [Kind::new(&LEVEL_KEYS), Kind::new(&ANALYSIS_KEYS)];
        for (i, event) in events.iter().enumerate() {
            let (kind, values) = match event {
                Event::Done {
                    result: Ok(Output::Level(l)),
                    ..
                } => (&mut kinds[0], &level_values(l)[..]),
                Event::Done {
                    result: Ok(Output::Analysis(a)),
                    ..
                } => (&mut kinds[1], &analysis_values(a)[..]),
                _ => continue,
            };
            kind.values.extend_from_slice(values);
            let (target, index) = slots.at[i].map_or((-1.0, -1.0), |(t, k)| (t as f64, k as f64));
            kind.slots.extend([target, index]);
            kind.at.push(i);
        }
        if kinds.iter().all(|k| k.at.is_empty()) {
            return Ok(out);
        }
        let js = Js::new(env);
        let targets = js.array()?;
        for (i, target) in slots.targets.iter().enumerate() {
            js.set_element(targets, i as u32, *target)?;
        }
        for kind in kinds {
            if kind.at.is_empty() {
                continue;
            }
            let objects = self.make(env, &kind, targets)?;
            for (k, i) in kind.at.into_iter().enumerate() {
                out[i] = Some(match slots.at[i] {
                    Some(_) => Made::Placed,
                    None => Made::Value(js.element(objects, k as u32)?),
                });
            }
        }
        Ok(out)
    }

    /// One object per `keys.len()` values, placed in its slot or returned.
    fn make(&self, env: &Env, kind: &Kind, targets: sys::napi_value) -> Result<sys::napi_value> {
        let js = Js::new(env);
        let names = js.array()?;
        for (i, key) in kind.keys.iter().enumerate() {
            let name = key.to_str().expect("the keys are ASCII");
            js.set_element(names, i as u32, to_value(env, name)?)?;
        }
        let values = new_float64_array(js, &kind.values)?;
        let slots = new_float64_array(js, &kind.slots)?;
        js.call(
            js.undefined()?,
            self.0.get(env),
            &[names, values, targets, slots],
        )
    }
}

/// The results of one kind among drained events, for `numbers.js`.
struct Kind {
    keys: &'static [&'static CStr],
    values: Vec<f64>,
    /// Two per result: its target in `Slots::targets` and its index there, or -1, -1.
    slots: Vec<f64>,
    /// Each result's index among the events.
    at: Vec<usize>,
}

impl Kind {
    fn new(keys: &'static [&'static CStr]) -> Self {
        Kind {
            keys,
            values: Vec::new(),
            slots: Vec::new(),
            at: Vec::new(),
        }
    }
}

/// Where drained results of `addItems` members go: per event, the index of
/// its call's results array in `targets` and its index in that array.
pub struct Slots {
    /// Per event; `None` for a result with a promise of its own.
    pub at: Vec<Option<(u32, u32)>>,
    /// The results arrays of the calls.
    pub targets: Vec<sys::napi_value>,
}

/// A result object made in bulk (`NumberObjects`, `feature_objects`).
#[derive(Clone, Copy)]
pub enum Made {
    /// The object, for its own promise.
    Value(sys::napi_value),
    /// Already in its slot of its call's results array.
    Placed,
    /// It could not be made: the error its promise rejects with.
    Failed(sys::napi_value),
}

/// Makes the objects of the EXTRACT_FEATURES results among `events` into
/// `out` (one per event), in one JS call (their values are taken out of
/// the events). Should that call fail, each is made on its own.
pub fn feature_objects(env: &Env, events: &mut [Event], out: &mut [Option<Made>]) {
    let js = Js::new(env);
    let failed = |e: napi::Error| {
        clear_exception(env);
        Made::Failed(error_value(env, ErrorClass::Error, "E_CONVERT", &e.reason))
    };
    // The results laid out for the maker, and each one's event.
    let (mut laid, mut at) = (Vec::new(), Vec::new());
    let mut buffers = Buffers::default();
    for (i, event) in events.iter_mut().enumerate() {
        if let Event::Done {
            result: Ok(Output::Features(features)),
            ..
        } = event
        {
            match Laid::new(js, std::mem::take(features), &mut buffers) {
                Ok(l) => {
                    laid.push(l);
                    at.push(i);
                }
                Err(e) => out[i] = Some(failed(e)),
            }
        }
    }
    if laid.is_empty() {
        return;
    }
    let objects = FeatureObjects::make(env, &laid).map_err(|_| {
        clear_exception(env);
    });
    for (k, (i, l)) in at.into_iter().zip(&laid).enumerate() {
        let object = match objects {
            Ok(objects) => js.element(objects, k as u32),
            Err(()) => FeatureObjects::make_one(env, l),
        };
        out[i] = Some(object.map_or_else(failed, Made::Value));
    }
}

/// The JS value of a native result.
pub fn output_to_js(env: &Env, output: Output) -> Result<sys::napi_value> {
    match output {
        Output::Features(f) => FeatureObjects::one(env, f),
        Output::Analysis(a) => one_object(env, &ANALYSIS_KEYS, &analysis_values(&a)),
        Output::Level(l) => one_object(env, &LEVEL_KEYS, &level_values(&l)),
    }
}

/// A plain object of numbers, made by N-API calls.
fn one_object(env: &Env, keys: &[&CStr], values: &[f64]) -> Result<sys::napi_value> {
    let js = Js::new(env);
    let object = js.object()?;
    for (key, value) in keys.iter().zip(values) {
        js.set_named(object, key, js.number(*value)?)?;
    }
    Ok(object)
}

/// The JS error of a failed item.
pub fn error_to_js(env: &Env, e: &ItemError) -> sys::napi_value {
    coded_value(env, e)
}
