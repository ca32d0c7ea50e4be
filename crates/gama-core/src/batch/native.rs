//! The built-in operations, run on the pool: EXTRACT_FEATURES (through the
//! feature cache when one is attached), ANALYZE and MEASURE.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use super::item::{
    Analysis, Input, Item, ItemError, ItemErrorKind, Level, Output, Stop, ANALYZE,
    EXTRACT_FEATURES, MEASURE,
};
use crate::cache::{CacheValue, EntryOptions, FeatureCache};
use crate::features::{
    first_non_finite, shared_extractor, ExtractError, Feature, FeatureOptions, Features, Span,
};

/// How a running item is stopped and how it reports progress.
pub struct Control<'a> {
    /// Set when the item is cancelled or the processor force-closed.
    pub stop: &'a Stop,
    /// When the item's batch times out.
    pub deadline: Option<Instant>,
    /// Called with the fraction done, from any of the pool's threads (a
    /// long clip is split over them).
    pub progress: &'a (dyn Fn(f32) + Sync),
}

impl Control<'_> {
    fn stop_reason(&self) -> Option<ItemError> {
        if let Some(error) = self.stop.error() {
            return Some(error);
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Some(timed_out());
        }
        None
    }
}

/// The error of an item whose batch ran past `batchTimeoutMs`.
pub fn timed_out() -> ItemError {
    ItemError::new(
        ItemErrorKind::Failed,
        "E_TIMEOUT",
        "the batch ran past batchTimeoutMs",
    )
}

/// Whether `op` is built in.
pub fn is_native(op: &str) -> bool {
    op == EXTRACT_FEATURES || op == ANALYZE || op == MEASURE
}

/// Bytes a native item is expected to need while it runs.
pub fn estimate(op: &str, samples: usize, options: &FeatureOptions) -> u64 {
    let input = samples as u64 * 4;
    if op == ANALYZE || op == MEASURE {
        return input;
    }
    let frames = (samples / options.hop_length.max(1) + 1) as u64;
    let per_frame = (options.n_fft / 2 + 1 + options.n_mels + options.n_mfcc + 16) as u64 * 4;
    input + frames * per_frame + options.n_fft as u64 * 16
}

/// Runs a native item.
pub fn run(
    item: &Item,
    cache: Option<&FeatureCache>,
    control: &mut Control,
) -> Result<Output, ItemError> {
    let (samples, options, _) = audio_of(item, control)?;
    match &*item.op {
        ANALYZE => analyze(samples, options.sample_rate).map(Output::Analysis),
        MEASURE => measure(samples).map(Output::Level),
        _ => {
            if let Some(features) = from_cache(item, cache) {
                return Ok(Output::Features(features));
            }
            let mut out = vec![0.0; output_len(item)];
            let written = run_into(item, control, &mut out)?;
            let features = Features::own(written.frames, out, written.items);
            Ok(placed(item, cache, features, written.took))
        }
    }
}

/// The samples, options and cache key of a native item that is to run
/// (an error if it was stopped meanwhile).
fn audio_of<'a>(
    item: &'a Item,
    control: &Control,
) -> Result<(&'a [f32], &'a FeatureOptions, Option<&'a str>), ItemError> {
    let Input::Audio {
        samples,
        options,
        cache_key,
    } = &item.input
    else {
        return Err(ItemError::new(
            ItemErrorKind::Failed,
            "E_INTERNAL",
            "a JS item reached the native pool",
        ));
    };
    if let Some(reason) = control.stop_reason() {
        return Err(reason);
    }
    Ok((samples, options, cache_key.as_deref()))
}

/// The output of an EXTRACT_FEATURES item's computed `features` (kept in
/// the processor's cache, if it has one, as costing `took`).
pub(super) fn placed(
    item: &Item,
    cache: Option<&FeatureCache>,
    features: Features,
    took: Duration,
) -> Output {
    if let (
        Some(cache),
        Input::Audio {
            cache_key: Some(key),
            ..
        },
    ) = (cache, &item.input)
    {
        store(cache, key, &features, took);
    }
    Output::Features(features)
}

/// Features an EXTRACT_FEATURES item wrote at the start of its buffer.
pub(super) struct Written {
    /// Frames of every feature.
    pub frames: usize,
    /// Where each feature lies.
    pub items: Vec<(Feature, Span)>,
    /// Time the extraction took.
    pub took: Duration,
}

/// The features of an EXTRACT_FEATURES item from the processor's cache,
/// when every one asked for is there.
pub(super) fn from_cache(item: &Item, cache: Option<&FeatureCache>) -> Option<Features> {
    let (
        cache,
        Input::Audio {
            samples,
            options,
            cache_key: Some(key),
        },
    ) = (cache?, &item.input)
    else {
        return None;
    };
    let frames = shared_extractor(options)
        .ok()?
        .frame_count(samples.len())
        .ok()?;
    cached(cache, key, frames, &options.features)
}

/// Values an EXTRACT_FEATURES item's features take, if its options and
/// length allow an extraction (its error otherwise comes from `run_into`).
pub(super) fn output_len(item: &Item) -> usize {
    match &item.input {
        Input::Audio {
            samples, options, ..
        } => shared_extractor(options)
            .ok()
            .and_then(|e| e.output_len(samples.len()))
            .unwrap_or(0),
        Input::Js => 0,
    }
}

/// Runs an EXTRACT_FEATURES item, writing its features into `out` (zeros,
/// `output_len(item)` values).
pub(super) fn run_into(
    item: &Item,
    control: &mut Control,
    out: &mut [f32],
) -> Result<Written, ItemError> {
    let (samples, options, _) = audio_of(item, control)?;
    let extractor = shared_extractor(options)
        .map_err(|e| ItemError::new(ItemErrorKind::Invalid, "ERR_OUT_OF_RANGE", e.to_string()))?;
    let frames = extractor
        .frame_count(samples.len())
        .map_err(extract_error)?;
    let started = Instant::now();
    let frames = frames.max(1);
    let stopped = OnceLock::new();
    let result = extractor.extract_parallel_into(samples, out, &|done| {
        if let Some(reason) = control.stop_reason() {
            let _ = stopped.set(reason);
            return false;
        }
        (control.progress)(done as f32 / frames as f32);
        true
    });
    match (result, stopped.into_inner()) {
        (Ok((frames, items)), _) => Ok(Written {
            frames,
            items,
            took: started.elapsed(),
        }),
        (Err(_), Some(reason)) => Err(reason),
        (Err(e), None) => Err(extract_error(e)),
    }
}

pub(super) fn extract_error(e: ExtractError) -> ItemError {
    ItemError::from_coded(&e)
}

pub(super) fn feature_key(key: &str, feature: Feature) -> String {
    format!("{key}:{}", feature.name())
}

/// The features of a clip from the cache, when every one asked for is there.
pub(super) fn cached(
    cache: &FeatureCache,
    key: &str,
    frames: usize,
    features: &[Feature],
) -> Option<Features> {
    let mut matrices = Vec::with_capacity(features.len());
    for &feature in features {
        if matrices.iter().any(|(f, _)| *f == feature) {
            continue;
        }
        let values = cache.get_with(&feature_key(key, feature), |value| match value {
            CacheValue::Float32(data) => Some(data.clone()),
            _ => None,
        })??;
        matrices.push((feature, values));
    }
    Features::from_matrices(frames, matrices.iter().map(|(f, v)| (*f, &v[..])))
}

pub(super) fn store(cache: &FeatureCache, key: &str, features: &Features, cost: Duration) {
    let per_feature = cost / features.len().max(1) as u32;
    for (feature, matrix) in features.iter() {
        let options = EntryOptions {
            compute_cost: per_feature,
            ..EntryOptions::default()
        };
        // A value too large for the cache is simply not cached.
        let _ = cache.insert(
            &feature_key(key, feature),
            CacheValue::Float32(Arc::from(matrix.data)),
            options,
        );
    }
}

/// E_NOT_FINITE naming the first NaN or infinite sample, if any.
fn check_finite(samples: &[f32]) -> Result<(), ItemError> {
    match first_non_finite(samples) {
        Some((index, value)) => Err(extract_error(ExtractError::NotFinite { index, value })),
        None => Ok(()),
    }
}

/// Peak, RMS and mean of `samples` in one pass. Eight independent lanes let
/// the compiler vectorise the loop; the sums are kept in f64 (in f32 a
/// minute of DC at 48 kHz came out 0.3% low); non-finite input is looked
/// for only when the sums show some (E_NOT_FINITE), empty input is
/// E_EMPTY_AUDIO.
pub fn measure(samples: &[f32]) -> Result<Level, ItemError> {
    if samples.is_empty() {
        return Err(extract_error(ExtractError::Empty));
    }
    let Lanes { peak, sum, squares } = lanes_dispatch(samples);
    let n = samples.len() as f64;
    let (sum, squares) = (sum.iter().sum::<f64>(), squares.iter().sum::<f64>());
    if !(sum.is_finite() && squares.is_finite()) {
        check_finite(samples)?;
    }
    Ok(Level {
        peak: peak.iter().fold(0f32, |m, &v| m.max(v)) as f64,
        rms: (squares / n).sqrt(),
        mean: sum / n,
    })
}

/// Lanes of `measure`'s one pass.
const LANES: usize = 8;

/// Per-lane peak, sum and sum of squares of a level meter's samples.
struct Lanes {
    peak: [f32; LANES],
    sum: [f64; LANES],
    squares: [f64; LANES],
}

/// `lanes` in the fastest build this CPU runs.
fn lanes_dispatch(samples: &[f32]) -> Lanes {
    #[cfg(target_arch = "x86_64")]
    if crate::simd::has_avx2() {
        // SAFETY: the CPU supports every feature the function is compiled for.
        return unsafe { lanes_avx2(samples) };
    }
    lanes(samples)
}

/// `lanes` compiled for AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn lanes_avx2(samples: &[f32]) -> Lanes {
    lanes(samples)
}

/// The pass itself: eight independent lanes the compiler vectorises. A
/// NaN never raises a peak (the sums catch it).
#[inline(always)]
fn lanes(samples: &[f32]) -> Lanes {
    let mut l = Lanes {
        peak: [0.0; LANES],
        sum: [0.0; LANES],
        squares: [0.0; LANES],
    };
    let chunks = samples.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        add(&mut l, chunk.try_into().expect("chunks of LANES samples"));
    }
    // The tail padded with zeros, which change no lane.
    let mut last = [0f32; LANES];
    last[..tail.len()].copy_from_slice(tail);
    add(&mut l, &last);
    l
}

/// Adds one sample to each lane.
#[inline(always)]
fn add(l: &mut Lanes, samples: &[f32; LANES]) {
    let lanes = l.peak.iter_mut().zip(&mut l.sum).zip(&mut l.squares);
    for (((peak, sum), squares), &x) in lanes.zip(samples) {
        *peak = peak.max(x.abs());
        let x = f64::from(x);
        *sum += x;
        *squares += x * x;
    }
}

/// Frames of 20 ms quieter than this (-60 dBFS) count as silent.
const SILENCE_RMS: f64 = 1e-3;

fn db(x: f64) -> f64 {
    20.0 * x.max(1e-10).log10()
}

/// Duration, peak, RMS and loudness, silence ratio, mean spectral centroid and ZCR.
pub fn analyze(samples: &[f32], sample_rate: f64) -> Result<Analysis, ItemError> {
    if samples.is_empty() {
        return Err(extract_error(ExtractError::Empty));
    }
    check_finite(samples)?;
    let peak = samples.iter().fold(0f32, |m, x| m.max(x.abs())) as f64;
    let energy: f64 = samples.iter().map(|&x| (x as f64) * (x as f64)).sum();
    let rms = (energy / samples.len() as f64).sqrt();
    let crossings = samples
        .windows(2)
        .filter(|w| (w[0] >= 0.0) != (w[1] >= 0.0))
        .count();
    let frame = ((sample_rate * 0.02) as usize).max(1);
    let (mut frames, mut silent) = (0usize, 0usize);
    for chunk in samples.chunks(frame) {
        let e: f64 = chunk.iter().map(|&x| (x as f64) * (x as f64)).sum();
        frames += 1;
        silent += usize::from((e / chunk.len() as f64).sqrt() < SILENCE_RMS);
    }
    let mut options = FeatureOptions::new(sample_rate);
    options.n_fft = 512;
    options.win_length = 512;
    options.hop_length = 256;
    options.features = vec![Feature::SpectralCentroid];
    let centroid = shared_extractor(&options)
        .map_err(|e| ItemError::new(ItemErrorKind::Invalid, "ERR_OUT_OF_RANGE", e.to_string()))?
        .extract(samples)
        .map_err(extract_error)?;
    let values = centroid
        .get(Feature::SpectralCentroid)
        .expect("the centroid was asked for")
        .data;
    Ok(Analysis {
        duration: samples.len() as f64 / sample_rate,
        peak,
        peak_db: db(peak),
        rms,
        rms_db: db(rms),
        silence_ratio: silent as f64 / frames as f64,
        spectral_centroid_mean: values.iter().map(|&v| v as f64).sum::<f64>()
            / values.len().max(1) as f64,
        zero_crossing_rate: crossings as f64 / samples.len() as f64,
    })
}
