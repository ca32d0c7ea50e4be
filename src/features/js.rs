//! `extractFeatures` and `extractFeaturesBatch` as JS sees them.

use napi::bindgen_prelude::{AsyncTask, Float32Array, JsObjectValue, Null, Object};
use napi::{Either, Env, JsValue, Result, Task};
use napi_derive::napi;
use rayon::prelude::*;

use super::plans::shared_extractor;
use std::path::Path;

use super::{
    load_wav, AudioError, DecodedAudio, ExtractError, Feature, FeatureOptions, Features, PadMode,
    WindowKind,
};
use crate::js::errors::{coded_error, range_error, type_error, INVALID_ARG_TYPE, OUT_OF_RANGE};
use crate::js::options::integer_option;
use crate::js::value::{new_float32_array, RawValue};

/// Options of `extractFeatures`, named as librosa's parameters in camelCase.
#[napi(object)]
pub struct ExtractOptions {
    /// Samples per second of the input (required).
    pub sample_rate: f64,
    /// Features to compute (default ['logMel', 'mfcc']).
    #[napi(ts_type = "FeatureName[]")]
    pub features: Option<Vec<String>>,
    /// FFT size (default 2048).
    pub n_fft: Option<f64>,
    /// Samples between frames (default nFft / 4).
    pub hop_length: Option<f64>,
    /// Window length, zero-padded to nFft (default nFft).
    pub win_length: Option<f64>,
    /// 'hann' (default), 'hamming' or 'rectangular'.
    pub window: Option<String>,
    /// Centre frames by padding nFft / 2 each side (default true).
    pub center: Option<bool>,
    /// 'constant' (default) or 'reflect'.
    pub pad_mode: Option<String>,
    /// Mel bands (default 128).
    pub n_mels: Option<f64>,
    /// Lowest mel frequency in Hz (default 0).
    pub fmin: Option<f64>,
    /// Highest mel frequency in Hz (default sampleRate / 2).
    pub fmax: Option<f64>,
    /// HTK mel scale instead of Slaney's (default false).
    pub htk: Option<bool>,
    /// 'slaney' (default) or null for unnormalised mel filters.
    #[napi(ts_type = "'slaney' | null")]
    pub norm: Option<Either<String, Null>>,
    /// Exponent of the magnitude fed to the mel filters (default 2).
    pub power: Option<f64>,
    /// MFCC coefficients (default 20).
    pub n_mfcc: Option<f64>,
    /// Range kept below the log-mel maximum, in dB (default 80; null keeps all).
    #[napi(ts_type = "number | null")]
    pub top_db: Option<Either<f64, Null>>,
}

pub(crate) fn feature_options(env: &Env, o: &ExtractOptions) -> Result<FeatureOptions> {
    if !(o.sample_rate.is_finite() && o.sample_rate > 0.0) {
        return Err(range_error(
            env,
            OUT_OF_RANGE,
            format!(
                "sampleRate must be a positive number of Hz, got {}",
                o.sample_rate
            ),
        ));
    }
    let mut f = FeatureOptions::new(o.sample_rate);
    let int = |name, v: Option<f64>, min: f64, max: f64| -> Result<Option<usize>> {
        v.map(|v| integer_option(env, name, v, min, max).map(|n| n as usize))
            .transpose()
    };
    if let Some(n) = int("nFft", o.n_fft, 2.0, (1 << 20) as f64)? {
        f.n_fft = n;
        f.win_length = n;
        f.hop_length = (n / 4).max(1);
    }
    if let Some(n) = int("hopLength", o.hop_length, 1.0, u32::MAX as f64)? {
        f.hop_length = n;
    }
    if let Some(n) = int("winLength", o.win_length, 1.0, u32::MAX as f64)? {
        f.win_length = n;
    }
    if let Some(n) = int("nMels", o.n_mels, 1.0, 4096.0)? {
        f.n_mels = n;
    }
    if let Some(n) = int("nMfcc", o.n_mfcc, 1.0, 4096.0)? {
        f.n_mfcc = n;
    }
    f.window = match o.window.as_deref() {
        None | Some("hann") => WindowKind::Hann,
        Some("hamming") => WindowKind::Hamming,
        Some("rectangular" | "boxcar" | "ones") => WindowKind::Rectangular,
        Some(other) => {
            return Err(range_error(
                env,
                OUT_OF_RANGE,
                format!("window must be 'hann', 'hamming' or 'rectangular', got '{other}'"),
            ))
        }
    };
    f.pad_mode = match o.pad_mode.as_deref() {
        None | Some("constant") => PadMode::Constant,
        Some("reflect") => PadMode::Reflect,
        Some(other) => {
            return Err(range_error(
                env,
                OUT_OF_RANGE,
                format!("padMode must be 'constant' or 'reflect', got '{other}'"),
            ))
        }
    };
    f.center = o.center.unwrap_or(true);
    f.fmin = o.fmin.unwrap_or(0.0);
    f.fmax = o.fmax.unwrap_or(o.sample_rate / 2.0);
    f.htk = o.htk.unwrap_or(false);
    f.slaney_norm = match &o.norm {
        None => true,
        Some(Either::B(_)) => false,
        Some(Either::A(s)) if s == "slaney" => true,
        Some(Either::A(other)) => {
            return Err(range_error(
                env,
                OUT_OF_RANGE,
                format!("norm must be 'slaney' or null, got '{other}'"),
            ))
        }
    };
    if let Some(p) = o.power {
        f.power = p;
    }
    f.top_db = match o.top_db {
        None => Some(80.0),
        Some(Either::B(_)) => None,
        Some(Either::A(db)) => Some(db),
    };
    if let Some(names) = &o.features {
        f.features = names
            .iter()
            .map(|name| {
                Feature::from_name(name).ok_or_else(|| {
                    let known: Vec<&str> = Feature::ALL.iter().map(|f| f.name()).collect();
                    range_error(
                        env,
                        OUT_OF_RANGE,
                        format!(
                            "features: unknown feature '{name}'; known: {}",
                            known.join(", ")
                        ),
                    )
                })
            })
            .collect::<Result<_>>()?;
    }
    f.validate()
        .map_err(|e| range_error(env, OUT_OF_RANGE, e.to_string()))?;
    Ok(f)
}

/// The JS error for `e`; `clip` names the batch position it happened at.
pub(crate) fn extract_error(env: &Env, e: ExtractError, clip: Option<usize>) -> napi::Error {
    let message = match clip {
        Some(i) => format!("clips[{i}]: {e}"),
        None => e.to_string(),
    };
    match e {
        ExtractError::Empty | ExtractError::NotFinite { .. } | ExtractError::TooShort { .. } => {
            range_error(env, e.code(), message)
        }
        ExtractError::Cancelled => coded_error(env, e.code(), message),
    }
}

/// Builds the JS result object: `{ name: { data, frames, bins } }`, or a
/// bare Float32Array for per-frame scalar features.
pub(crate) fn to_js(env: &Env, features: Features) -> Result<RawValue> {
    let mut object = Object::new(env)?;
    for (feature, matrix) in features.items {
        let data = unsafe {
            new_float32_array(env.raw(), matrix.data.len(), |out| {
                out.copy_from_slice(&matrix.data)
            })?
        };
        if feature.is_scalar() {
            object.set_named_property(feature.name(), RawValue(data))?;
        } else {
            let mut entry = Object::new(env)?;
            entry.set_named_property("data", RawValue(data))?;
            entry.set_named_property("frames", matrix.frames as u32)?;
            entry.set_named_property("bins", matrix.bins as u32)?;
            object.set_named_property(feature.name(), entry)?;
        }
    }
    Ok(RawValue(object.raw()))
}

/// Computes features of one clip on the calling thread. Every spectral
/// feature asked for shares one STFT; results match librosa for the same
/// parameters. Throws a RangeError naming the bad parameter or input.
#[napi(catch_unwind, ts_return_type = "ExtractedFeatures")]
pub fn extract_features(
    env: Env,
    audio: Float32Array,
    options: ExtractOptions,
) -> Result<RawValue> {
    let o = feature_options(&env, &options)?;
    let extractor =
        shared_extractor(&o).map_err(|e| range_error(&env, OUT_OF_RANGE, e.to_string()))?;
    let started = std::time::Instant::now();
    let features = extractor
        .extract(&audio)
        .map_err(|e| extract_error(&env, e, None))?;
    crate::metrics::record("features", "extract", started.elapsed());
    to_js(&env, features)
}

/// Work of `extractFeaturesBatch`, run on the libuv pool and fanned out to
/// the Rust (rayon) pool.
pub struct BatchExtract {
    clips: Vec<Float32Array>,
    options: FeatureOptions,
}

impl Task for BatchExtract {
    type Output = Vec<std::result::Result<Features, ExtractError>>;
    type JsValue = RawValue;

    fn compute(&mut self) -> Result<Self::Output> {
        let extractor =
            shared_extractor(&self.options).map_err(|e| napi::Error::from_reason(e.to_string()))?;
        Ok(self
            .clips
            .par_iter()
            .map(|clip| {
                let started = std::time::Instant::now();
                let result = extractor.extract(clip);
                crate::metrics::record("features", "extract", started.elapsed());
                result
            })
            .collect())
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> Result<RawValue> {
        let mut array = env.create_array(output.len() as u32)?;
        for (i, result) in output.into_iter().enumerate() {
            let features = result.map_err(|e| extract_error(&env, e, Some(i)))?;
            array.set(i as u32, to_js(&env, features)?)?;
        }
        Ok(RawValue(array.raw()))
    }
}

/// Computes features of many clips in parallel on the Rust thread pool.
/// The arrays are read in place: do not modify them until the promise settles.
#[napi(catch_unwind, ts_return_type = "Promise<ExtractedFeatures[]>")]
pub fn extract_features_batch(
    env: Env,
    clips: Vec<Float32Array>,
    options: ExtractOptions,
) -> Result<AsyncTask<BatchExtract>> {
    let options = feature_options(&env, &options)?;
    if clips.is_empty() {
        return Err(type_error(
            &env,
            INVALID_ARG_TYPE,
            "clips must hold at least one Float32Array",
        ));
    }
    Ok(AsyncTask::new(BatchExtract { clips, options }))
}

/// Options of `loadAudio`.
#[napi(object)]
pub struct LoadAudioOptions {
    /// Resample to this rate (default: the file's own).
    pub sample_rate: Option<f64>,
    /// Average the channels into one (default true).
    pub mono: Option<bool>,
}

/// Samples read by `loadAudio`.
#[napi(object, object_from_js = false)]
pub struct LoadedAudio {
    /// Samples in [-1, 1]; interleaved when `channels > 1`.
    #[napi(ts_type = "Float32Array")]
    pub samples: RawValue,
    /// Samples per second per channel.
    pub sample_rate: u32,
    /// Channels in `samples`.
    pub channels: u32,
    /// Length in seconds.
    pub duration_sec: f64,
}

fn load_request(env: &Env, options: Option<LoadAudioOptions>) -> Result<(Option<u32>, bool)> {
    let options = options.unwrap_or(LoadAudioOptions {
        sample_rate: None,
        mono: None,
    });
    let rate = match options.sample_rate {
        None => None,
        Some(r) => Some(integer_option(env, "sampleRate", r, 1.0, 768_000.0)? as u32),
    };
    Ok((rate, options.mono.unwrap_or(true)))
}

fn audio_error(env: &Env, e: AudioError) -> napi::Error {
    coded_error(env, e.code(), e.to_string())
}

fn loaded_to_js(env: &Env, audio: DecodedAudio) -> Result<LoadedAudio> {
    let duration_sec = audio.duration_secs();
    let samples = unsafe {
        new_float32_array(env.raw(), audio.samples.len(), |out| {
            out.copy_from_slice(&audio.samples)
        })?
    };
    Ok(LoadedAudio {
        samples: RawValue(samples),
        sample_rate: audio.sample_rate,
        channels: audio.channels as u32,
        duration_sec,
    })
}

/// Reads a WAV file (PCM 8/16/24/32-bit or 32-bit float) on the calling
/// thread; see `loadAudio`.
#[napi(catch_unwind)]
pub fn load_audio_sync(
    env: Env,
    path: String,
    options: Option<LoadAudioOptions>,
) -> Result<LoadedAudio> {
    let (rate, mono) = load_request(&env, options)?;
    let started = std::time::Instant::now();
    let audio = load_wav(Path::new(&path), rate, mono).map_err(|e| audio_error(&env, e))?;
    crate::metrics::record("features", "load_wav", started.elapsed());
    loaded_to_js(&env, audio)
}

/// Reading and decoding of `loadAudio`, off the JS thread.
pub struct LoadAudio {
    path: String,
    rate: Option<u32>,
    mono: bool,
}

impl Task for LoadAudio {
    type Output = std::result::Result<DecodedAudio, AudioError>;
    type JsValue = LoadedAudio;

    fn compute(&mut self) -> Result<Self::Output> {
        let started = std::time::Instant::now();
        let audio = load_wav(Path::new(&self.path), self.rate, self.mono);
        crate::metrics::record("features", "load_wav", started.elapsed());
        Ok(audio)
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> Result<LoadedAudio> {
        let audio = output.map_err(|e| audio_error(&env, e))?;
        loaded_to_js(&env, audio)
    }
}

/// Reads a WAV file off the JS thread: `{ samples, sampleRate, channels,
/// durationSec }`. `mono` (default true) averages the channels, otherwise
/// samples are interleaved; `sampleRate` resamples with a band-limited FFT
/// resampler. Missing files reject with code 'ENOENT', directories 'EISDIR',
/// corrupt or truncated files 'E_BAD_WAV'.
#[napi(catch_unwind, ts_return_type = "Promise<LoadedAudio>")]
pub fn load_audio(
    env: Env,
    path: String,
    options: Option<LoadAudioOptions>,
) -> Result<AsyncTask<LoadAudio>> {
    let (rate, mono) = load_request(&env, options)?;
    Ok(AsyncTask::new(LoadAudio { path, rate, mono }))
}
