//! `extractFeatures` and `extractFeaturesBatch` as JS sees them.

mod objects;

pub use objects::{Buffers, FeatureObjects, Laid};

use napi::bindgen_prelude::{Array, AsyncTask, Null, Unknown};
use napi::{Either, Env, JsValue, Result, Task};
use napi_derive::napi;

use gama_core::error::panic_message;
use gama_core::features::shared_extractor;
use std::path::Path;

use crate::js::errors::{
    coded, coded_at, coded_error, range_error, type_error, INVALID_ARG_TYPE, INVALID_ARG_VALUE,
    OUT_OF_RANGE,
};
use crate::js::fields::{describe, element, is_array, string_value, Fields};
use crate::js::napi::convert;
use crate::js::napi::Js;
use crate::js::value::{new_float32_array, RawValue, TypedArrayView};
use gama_core::features::gpu::{
    extract_batch_gpu, gpu_supports, FeatureDevice, GpuTiming, AUTO_MIN_FRAMES,
};
use gama_core::features::{
    load_wav, AudioError, BatchRun, ClipResult, DecodedAudio, ExtractError, ExtractParams,
    Extractor, Feature, FeatureOptions, Features, PadMode, WindowKind, MAX_OUTPUT_BYTES,
};
use std::sync::Arc;

use crate::memory::GAMAMemoryManager;
use gama_core::memory::MemoryManager;
use napi::bindgen_prelude::ClassInstance;

/// Options of `extractFeatures`, named as librosa's parameters in camelCase
/// (the declared type; `extract_params` reads them).
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

/// Reads extraction parameters from the options object at `path`; unknown
/// keys and values of the wrong type are errors naming them.
pub(crate) fn extract_params(
    env: &Env,
    value: Option<Unknown>,
    path: &str,
) -> Result<ExtractParams> {
    match Fields::read(env, value, path, &ExtractParams::NAMES)? {
        Some(f) => params_of(env, &f),
        None => Ok(ExtractParams::default()),
    }
}

/// The extraction parameters of an options object already read.
fn params_of(env: &Env, f: &Fields) -> Result<ExtractParams> {
    let count = |key, max: f64| -> Result<Option<usize>> {
        Ok(f.integer(key, 1.0, max)?.map(|n| n as usize))
    };
    let features = match f.strings("features")? {
        None => None,
        Some(names) => Some(
            names
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    Feature::from_name(name).ok_or_else(|| {
                        let known: Vec<&str> = Feature::ALL.iter().map(|f| f.name()).collect();
                        let hint = gama_core::suggest::nearest(name, &known)
                            .map(|k| format!("did you mean '{k}'? "))
                            .unwrap_or_default();
                        range_error(
                            env,
                            INVALID_ARG_VALUE,
                            format!(
                                "{}[{i}]: unknown feature '{}'; {hint}known: {}",
                                f.path("features"),
                                name.chars().take(40).collect::<String>(),
                                known.join(", ")
                            ),
                        )
                    })
                })
                .collect::<Result<Vec<_>>>()?,
        ),
    };
    const WINDOWS: [(&str, WindowKind); 5] = [
        ("hann", WindowKind::Hann),
        ("hamming", WindowKind::Hamming),
        ("rectangular", WindowKind::Rectangular),
        ("boxcar", WindowKind::Rectangular),
        ("ones", WindowKind::Rectangular),
    ];
    const PADS: [(&str, PadMode); 2] = [
        ("constant", PadMode::Constant),
        ("reflect", PadMode::Reflect),
    ];
    Ok(ExtractParams {
        sample_rate: f.number("sampleRate")?,
        features,
        // Whole numbers here; their ranges are the core's (`FeatureOptions::validate`).
        n_fft: count("nFft", u32::MAX as f64)?,
        hop_length: count("hopLength", u32::MAX as f64)?,
        win_length: count("winLength", (1 << 20) as f64)?,
        window: f.choice("window", &WINDOWS)?,
        center: f.boolean("center")?,
        pad_mode: f.choice("padMode", &PADS)?,
        n_mels: count("nMels", 4096.0)?,
        fmin: f.number("fmin")?,
        fmax: f.number("fmax")?,
        htk: f.boolean("htk")?,
        slaney_norm: if f.is_null("norm")? {
            Some(false)
        } else {
            f.choice("norm", &[("slaney", true)])?
        },
        power: f.number("power")?,
        n_mfcc: count("nMfcc", 4096.0)?,
        top_db: if f.is_null("topDb")? {
            Some(None)
        } else {
            f.number("topDb")?.map(Some)
        },
    })
}

/// Resolves parameters into options; a bad value is a RangeError naming
/// `path.parameter`.
pub(crate) fn resolve_params(
    env: &Env,
    params: &ExtractParams,
    path: &str,
) -> Result<FeatureOptions> {
    params
        .resolve()
        .map_err(|e| range_error(env, OUT_OF_RANGE, format!("{path}.{e}")))
}

/// The options of `extractFeatures`, where `sampleRate` is required.
fn required_options(env: &Env, value: Option<Unknown>) -> Result<FeatureOptions> {
    required(env, extract_params(env, value, "options")?)
}

/// What `extractFeaturesBatch` reads from its options.
struct BatchOptions {
    options: FeatureOptions,
    /// `device` ('cpu' unless given).
    device: FeatureDevice,
    /// `memoryManager`, whose GPU budget a GPU batch draws on.
    manager: Option<Arc<MemoryManager>>,
}

/// The options of `extractFeaturesBatch`: those of `extractFeatures`,
/// `device` and `memoryManager`.
fn batch_options(env: &Env, value: Option<Unknown>) -> Result<BatchOptions> {
    let mut known = ExtractParams::NAMES.to_vec();
    known.extend(["device", "memoryManager"]);
    let Some(f) = Fields::read(env, value, "options", &known)? else {
        return Ok(BatchOptions {
            options: required(env, ExtractParams::default())?,
            device: FeatureDevice::Cpu,
            manager: None,
        });
    };
    let device = f
        .choice("device", &FeatureDevice::NAMES)?
        .unwrap_or_default();
    let manager: Option<ClassInstance<GAMAMemoryManager>> =
        f.instance("memoryManager", "a GAMAMemoryManager")?;
    Ok(BatchOptions {
        options: required(env, params_of(env, &f)?)?,
        device,
        manager: manager.map(|m| m.core().clone()),
    })
}

/// Resolves `params`, which must name `sampleRate`.
fn required(env: &Env, params: ExtractParams) -> Result<FeatureOptions> {
    if params.sample_rate.is_none() {
        return Err(type_error(
            env,
            INVALID_ARG_TYPE,
            "options.sampleRate is required: extraction options are { sampleRate, ...ExtractOptions }",
        ));
    }
    resolve_params(env, &params, "options")
}

/// Appends the samples of a Float32Array argument to `into` (Rust memory,
/// so no native thread ever reads memory JS can detach or free) and
/// returns where they lie; `path` names the argument.
pub(crate) fn audio_into(
    env: &Env,
    path: &str,
    value: &Unknown,
    into: &mut Vec<f32>,
) -> Result<std::ops::Range<usize>> {
    let view = TypedArrayView::of(Js::new(env), value.raw())?;
    view_into(env, &|| path.to_string(), value, view, into)
}

/// `audio_into` for a `value` already looked at: `view` is the typed array
/// it is, if any; `path` makes its name, for errors only.
pub(crate) fn view_into(
    env: &Env,
    path: &dyn Fn() -> String,
    value: &Unknown,
    view: Option<TypedArrayView>,
    into: &mut Vec<f32>,
) -> Result<std::ops::Range<usize>> {
    match view.filter(|v| v.kind() == napi::sys::TypedarrayType::float32_array) {
        Some(v) => {
            let start = into.len();
            into.extend_from_slice(v.elements::<f32>()?);
            Ok(start..into.len())
        }
        None => Err(type_error(
            env,
            INVALID_ARG_TYPE,
            format!(
                "{} must be a Float32Array; got {}",
                path(),
                describe(env, value)
            ),
        )),
    }
}

/// The JS error for `e`; `clip` names the batch position it happened at.
pub(crate) fn extract_error(env: &Env, e: ExtractError, clip: Option<usize>) -> napi::Error {
    match clip {
        Some(i) => coded_at(env, &format!("clips[{i}]"), &e),
        None => coded(env, &e),
    }
}

/// Computes features of one clip on the calling thread. Every spectral
/// feature asked for shares one STFT; results match librosa for the same
/// parameters. Throws a RangeError naming the bad parameter or input.
#[napi(
    catch_unwind,
    ts_args_type = "audio: Float32Array, options: ExtractOptions",
    ts_return_type = "ExtractedFeatures"
)]
pub fn extract_features(env: Env, audio: Unknown, options: Option<Unknown>) -> Result<RawValue> {
    let o = required_options(&env, options)?;
    let view = TypedArrayView::of(Js::new(&env), audio.raw())?
        .filter(|v| v.kind() == napi::sys::TypedarrayType::float32_array)
        .ok_or_else(|| {
            type_error(
                &env,
                INVALID_ARG_TYPE,
                format!(
                    "audio must be a Float32Array; got {}",
                    describe(&env, &audio)
                ),
            )
        })?;
    // Read in place: extraction runs on this thread and ends before JS runs again.
    let samples = view.elements::<f32>()?;
    let extractor = shared_extractor(&o)
        .map_err(|e| range_error(&env, OUT_OF_RANGE, format!("options.{e}")))?;
    let features = extractor
        .extract(samples)
        .map_err(|e| extract_error(&env, e, None))?;
    FeatureObjects::one(&env, features).map(RawValue)
}

/// Where `extractFeaturesBatch`'s clips run.
enum Work {
    /// Started on the rayon pool at the call; the task waits for them.
    Cpu(BatchRun),
    /// Run from the task, on the GPU; `auto` falls back to the CPU pool
    /// when the GPU cannot take the batch.
    Gpu {
        extractor: Arc<Extractor>,
        clips: Vec<Vec<f32>>,
        auto: bool,
        manager: Option<Arc<MemoryManager>>,
    },
}

/// What a batch produced and where.
pub struct Extracted {
    results: std::result::Result<Vec<ClipResult>, ExtractError>,
    device: FeatureDevice,
    timing: Option<GpuTiming>,
}

/// The wait for `extractFeaturesBatch`'s clips, on the libuv pool (CPU
/// clips run on the rayon pool, each from the moment it is copied in).
pub struct BatchExtract {
    work: Option<Work>,
}

impl Task for BatchExtract {
    type Output = Extracted;
    type JsValue = RawValue;

    fn compute(&mut self) -> Result<Self::Output> {
        let work = self
            .work
            .take()
            .ok_or_else(|| napi::Error::from_reason("the batch was already awaited"))?;
        Ok(match work {
            Work::Cpu(run) => Extracted {
                results: Ok(run.wait()),
                device: FeatureDevice::Cpu,
                timing: None,
            },
            Work::Gpu {
                extractor,
                clips,
                auto,
                manager,
            } => match extract_batch_gpu(&extractor, &clips, manager.as_ref()) {
                Ok(batch) => Extracted {
                    results: Ok(batch.results),
                    device: FeatureDevice::Cuda,
                    timing: Some(batch.timing),
                },
                Err(_) if auto => Extracted {
                    results: Ok(BatchRun::start(extractor, clips).wait()),
                    device: FeatureDevice::Cpu,
                    timing: None,
                },
                Err(e) => Extracted {
                    results: Err(e),
                    device: FeatureDevice::Cuda,
                    timing: None,
                },
            },
        })
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> Result<RawValue> {
        let results = output.results.map_err(|e| coded(&env, &e))?;
        let results = results
            .into_iter()
            .enumerate()
            .map(|(i, result)| result.map_err(|e| extract_error(&env, e, Some(i))))
            .collect::<Result<Vec<Features>>>()?;
        let js = Js::new(&env);
        let raw = FeatureObjects::many(&env, results)?;
        js.define_hidden(raw, "device", js.string(output.device.name())?)?;
        if let Some(t) = output.timing {
            let time = js.object()?;
            let ms = |d: std::time::Duration| js.number(d.as_secs_f64() * 1e3);
            js.set_named(time, c"copyInMs", ms(t.copy_in)?)?;
            js.set_named(time, c"computeMs", ms(t.compute)?)?;
            js.set_named(time, c"copyOutMs", ms(t.copy_out)?)?;
            js.define_hidden(raw, "gpuTime", time)?;
        }
        Ok(RawValue(raw))
    }
}

/// Computes features of many clips in parallel on the Rust thread pool,
/// or on the GPU (`device: 'cuda'`, or `'auto'` for a batch large enough
/// to gain). The clips are copied first: the arrays may be changed or
/// transferred as soon as the call returns. The array it resolves to says
/// where the batch ran (`device`) and, on the GPU, what the device spent
/// (`gpuTime`).
#[napi(
    catch_unwind,
    ts_args_type = "clips: Float32Array[], options: BatchExtractOptions",
    ts_return_type = "Promise<ExtractedBatch>"
)]
pub fn extract_features_batch(
    env: Env,
    clips: Unknown,
    options: Option<Unknown>,
) -> Result<AsyncTask<BatchExtract>> {
    let BatchOptions {
        options,
        device,
        manager,
    } = batch_options(&env, options)?;
    if !is_array(&env, &clips)? {
        return Err(type_error(
            &env,
            INVALID_ARG_TYPE,
            format!(
                "clips must be an array of Float32Array; got {}",
                describe(&env, &clips)
            ),
        ));
    }
    // SAFETY: a live handle of this call, checked to be an array.
    let array = convert::<Array>(&env, clips.raw())?;
    if array.len() == 0 {
        return Err(type_error(
            &env,
            INVALID_ARG_TYPE,
            "clips must hold at least one Float32Array",
        ));
    }
    // Grown as elements are read (a sparse array's length is not trusted):
    // the first hole or non-Float32Array is an error naming its index.
    let is_clip = |value: &Unknown| -> Result<bool> {
        Ok(TypedArrayView::of(Js::new(&env), value.raw())?
            .is_some_and(|v| v.kind() == napi::sys::TypedarrayType::float32_array))
    };
    let mut values = Vec::new();
    for i in 0..array.len() {
        let clip = element(&env, &array, i)?;
        match clip {
            Some(clip) if is_clip(&clip)? => values.push(clip),
            _ => {
                let got = clip.map_or_else(|| "a hole".to_string(), |c| describe(&env, &c));
                return Err(type_error(
                    &env,
                    INVALID_ARG_TYPE,
                    format!("clips[{i}] must be a Float32Array; got {got}"),
                ));
            }
        }
    }
    // The clips' memory is looked up only now, once every element was
    // read: reading one can run JS (a getter), which could detach a clip
    // read before it. From here on no JS runs until the copies are made.
    let views = values
        .iter()
        .map(|v| TypedArrayView::of(Js::new(&env), v.raw()))
        .collect::<Result<Vec<_>>>()?;
    // The results of the whole call must fit the limit, checked before any work.
    let extractor = shared_extractor(&options)
        .map_err(|e| range_error(&env, OUT_OF_RANGE, format!("options.{e}")))?;
    let clips = views
        .iter()
        .map(|v| v.as_ref().map_or(Ok(&[][..]), |v| v.elements::<f32>()))
        .collect::<Result<Vec<_>>>()?;
    let (mut total, mut frames) = (0u64, 0u64);
    for (i, clip) in clips.iter().enumerate() {
        match extractor.check_size(clip.len()) {
            Ok(bytes) => total = total.saturating_add(bytes),
            Err(e @ ExtractError::TooLarge { .. }) => return Err(extract_error(&env, e, Some(i))),
            // Other problems of a clip are reported when it is extracted.
            Err(_) => {}
        }
        frames += extractor.frame_count(clip.len()).unwrap_or(0) as u64;
    }
    if total > MAX_OUTPUT_BYTES {
        let e = ExtractError::TooLarge {
            bytes: total,
            limit: MAX_OUTPUT_BYTES,
        };
        return Err(coded_at(&env, "clips", &e));
    }
    if device == FeatureDevice::Cuda {
        gpu_supports(&options).map_err(|e| coded_at(&env, "options", &e))?;
    }
    // Copies first (JS may change or detach the arrays once the call
    // returns), on every core for a large batch: JS cannot run until this
    // call returns, so the arrays stay put meanwhile. Copying and starting
    // clip by clip was measured: the JS thread then competes with the
    // workers for cores, and the batch took longer.
    let copies = gama_core::copy::copy_all(&clips);
    // 'auto' considers the GPU only for a batch large enough to gain
    // (opening the GPU, on first use, happens off this thread).
    let gpu = match device {
        FeatureDevice::Cpu => false,
        FeatureDevice::Cuda => true,
        FeatureDevice::Auto => frames >= AUTO_MIN_FRAMES && gpu_supports(&options).is_ok(),
    };
    let work = if gpu {
        Work::Gpu {
            extractor,
            clips: copies,
            auto: device == FeatureDevice::Auto,
            manager,
        }
    } else {
        Work::Cpu(BatchRun::start(extractor, copies))
    };
    Ok(AsyncTask::new(BatchExtract { work: Some(work) }))
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

fn load_request(
    env: &Env,
    path: &Unknown,
    options: Option<Unknown>,
) -> Result<(String, Option<u32>, bool)> {
    let path = string_value(env, "path", path)?;
    let Some(o) = Fields::read(env, options, "options", &["sampleRate", "mono"])? else {
        return Ok((path, None, true));
    };
    let rate = o.integer("sampleRate", 1.0, 768_000.0)?.map(|r| r as u32);
    Ok((path, rate, o.boolean("mono")?.unwrap_or(true)))
}

fn audio_error(env: &Env, e: AudioError) -> napi::Error {
    coded(env, &e)
}

fn loaded_to_js(env: &Env, audio: DecodedAudio) -> Result<LoadedAudio> {
    let duration_sec = audio.duration_secs();
    let samples = new_float32_array(Js::new(env), audio.samples.len(), |out| {
        out.copy_from_slice(&audio.samples)
    })?;
    Ok(LoadedAudio {
        samples: RawValue(samples),
        sample_rate: audio.sample_rate,
        channels: audio.channels as u32,
        duration_sec,
    })
}

/// Reads a WAV file (PCM 8 to 32-bit, 32 or 64-bit float, A-law or µ-law)
/// on the calling thread; see `loadAudio`.
#[napi(
    catch_unwind,
    ts_args_type = "path: string, options?: LoadAudioOptions"
)]
pub fn load_audio_sync(env: Env, path: Unknown, options: Option<Unknown>) -> Result<LoadedAudio> {
    let (path, rate, mono) = load_request(&env, &path, options)?;
    let audio = load_wav(Path::new(&path), rate, mono).map_err(|e| audio_error(&env, e))?;
    loaded_to_js(&env, audio)
}

/// Reading and decoding of `loadAudio`, off the JS thread.
pub struct LoadAudio {
    path: String,
    rate: Option<u32>,
    mono: bool,
}

impl Task for LoadAudio {
    /// The decoded audio or its error; `Err` outside: a panic's message.
    type Output = std::result::Result<std::result::Result<DecodedAudio, AudioError>, String>;
    type JsValue = LoadedAudio;

    fn compute(&mut self) -> Result<Self::Output> {
        // A panic cannot unwind out of libuv's worker (Node would abort):
        // it rejects with E_PANIC instead.
        let load = || load_wav(Path::new(&self.path), self.rate, self.mono);
        Ok(
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(load)).map_err(|panic| {
                let why = panic_message(&*panic);
                format!("loading '{}' failed unexpectedly: {why}", self.path)
            }),
        )
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> Result<LoadedAudio> {
        let audio = output
            .map_err(|why| coded_error(&env, "E_PANIC", why))?
            .map_err(|e| audio_error(&env, e))?;
        loaded_to_js(&env, audio)
    }
}

/// Reads a WAV file (PCM 8 to 32-bit, 32 or 64-bit float, A-law or µ-law,
/// any channel count) off the JS thread: `{ samples, sampleRate, channels,
/// durationSec }`. `mono` (default true) averages the channels, otherwise
/// samples are interleaved; `sampleRate` resamples with a band-limited FFT
/// resampler. Missing files reject with code 'ENOENT', directories 'EISDIR',
/// corrupt, truncated or other-format files 'E_BAD_WAV', resampling a file
/// that holds NaN or infinite samples 'E_NOT_FINITE'.
#[napi(
    catch_unwind,
    ts_args_type = "path: string, options?: LoadAudioOptions",
    ts_return_type = "Promise<LoadedAudio>"
)]
pub fn load_audio(
    env: Env,
    path: Unknown,
    options: Option<Unknown>,
) -> Result<AsyncTask<LoadAudio>> {
    let (path, rate, mono) = load_request(&env, &path, options)?;
    Ok(AsyncTask::new(LoadAudio { path, rate, mono }))
}
