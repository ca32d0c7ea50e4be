//! The extractor: one planned FFT, window and filterbanks per set of options,
//! then a single pass over the frames that feeds every spectral feature asked
//! for from the same spectrum. Frames are transformed two at a time, one as
//! the real and one as the imaginary part of a complex FFT, which halves the
//! FFT work; the frame loop allocates nothing.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use rayon::prelude::*;

use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};

use super::chroma::{chroma_filters, N_CHROMA};
use super::dct::Dct;
use super::error::ExtractError;
use super::math::{all_finite, dot, ln, sum};
use super::mel::{mel_filters, Filter};
use super::options::{Feature, FeatureOptions, OptionError, PadMode};
use super::window::window;
use crate::metrics;

/// Latency series of one extraction.
static EXTRACT: metrics::Handle = metrics::Handle::new("features", "extract");

/// Floor of `power_to_db` (librosa's `amin`).
const AMIN: f32 = 1e-10;
/// Most bytes the results of one extraction (or one `extractFeaturesBatch`
/// call) may take: 2 GiB. Larger requests fail with `E_TOO_LARGE` before
/// anything is allocated.
pub const MAX_OUTPUT_BYTES: u64 = 2 << 30;

/// Share of spectral energy below the rolloff frequency.
const ROLL_PERCENT: f32 = 0.85;
/// Values this close to zero count as zero for zero crossings (librosa's threshold).
const ZC_THRESHOLD: f32 = 1e-10;
/// Frames between two calls of the progress / cancellation callback.
const CHECK_EVERY: usize = 256;

/// One computed feature: `frames` rows of `bins` values, frame-major.
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureMatrix {
    /// Rows.
    pub frames: usize,
    /// Values per row (1 for scalar features).
    pub bins: usize,
    /// `frames * bins` values.
    pub data: Vec<f32>,
}

impl FeatureMatrix {
    fn zeros(frames: usize, bins: usize) -> Self {
        FeatureMatrix {
            frames,
            bins,
            data: vec![0.0; frames * bins],
        }
    }

    fn row_mut(&mut self, f: usize) -> &mut [f32] {
        &mut self.data[f * self.bins..(f + 1) * self.bins]
    }
}

/// What one extraction produced, in the order the features were asked for.
#[derive(Clone, Debug, PartialEq)]
pub struct Features {
    /// Frames of every feature.
    pub frames: usize,
    /// The features.
    pub items: Vec<(Feature, FeatureMatrix)>,
}

impl Features {
    /// The matrix of `feature`, if it was computed.
    pub fn get(&self, feature: Feature) -> Option<&FeatureMatrix> {
        self.items
            .iter()
            .find(|(f, _)| *f == feature)
            .map(|(_, m)| m)
    }
}

fn planner() -> &'static Mutex<FftPlanner<f64>> {
    static PLANNER: OnceLock<Mutex<FftPlanner<f64>>> = OnceLock::new();
    PLANNER.get_or_init(|| Mutex::new(FftPlanner::new()))
}

/// Which stages the requested features need.
#[derive(Clone, Copy)]
struct Stages {
    asked: [bool; Feature::ALL.len()],
    mel: bool,
    log_mel: bool,
    spectrum: bool,
    magnitude: bool,
}

impl Stages {
    fn of(o: &FeatureOptions) -> Self {
        let mut asked = [false; Feature::ALL.len()];
        for f in &o.features {
            asked[*f as usize] = true;
        }
        let wants = |f: Feature| asked[f as usize];
        let mel = wants(Feature::Mel) || wants(Feature::LogMel) || wants(Feature::Mfcc);
        let centroid = wants(Feature::SpectralCentroid) || wants(Feature::SpectralBandwidth);
        let magnitude = wants(Feature::Stft)
            || centroid
            || wants(Feature::SpectralRolloff)
            || (mel && o.power != 2.0);
        let spectrum = magnitude
            || mel
            || wants(Feature::Power)
            || wants(Feature::SpectralFlatness)
            || wants(Feature::Chroma);
        Stages {
            asked,
            mel,
            log_mel: wants(Feature::LogMel) || wants(Feature::Mfcc),
            spectrum,
            magnitude,
        }
    }

    fn wants(&self, f: Feature) -> bool {
        self.asked[f as usize]
    }
}

/// Everything planned for one set of options; shareable across threads.
pub struct Extractor {
    options: FeatureOptions,
    stages: Stages,
    /// Planned in f64, as librosa's numpy FFT computes: in f32 a bin 60 dB
    /// below its frame's peak carries ~1e-3 dB of rounding error, past the
    /// logMel tolerance on drums; f64 keeps it near 1e-5 dB.
    fft: Arc<dyn Fft<f64>>,
    window: Vec<f64>,
    mel: Vec<Filter>,
    dct: Option<Dct>,
    chroma: Vec<f32>,
    /// Centre frequency of each FFT bin (Hz).
    freqs: Vec<f32>,
}

/// Per-frame outputs of the spectral features being computed.
struct SpectralOutputs {
    stft: FeatureMatrix,
    power: FeatureMatrix,
    mel: FeatureMatrix,
    /// Log-mel in dB before the `top_db` floor (needed by logMel and mfcc).
    log_mel: FeatureMatrix,
    /// Highest dB value seen so far.
    peak_db: f32,
    chroma: FeatureMatrix,
    centroid: FeatureMatrix,
    bandwidth: FeatureMatrix,
    rolloff: FeatureMatrix,
    flatness: FeatureMatrix,
}

/// Scratch rows reused for every frame.
struct Rows {
    magnitude: Vec<f32>,
    mel_source: Vec<f32>,
    mel: Vec<f32>,
}

impl Extractor {
    /// Plans an extraction; fails on invalid options.
    pub fn new(options: FeatureOptions) -> Result<Self, OptionError> {
        options.validate()?;
        let o = &options;
        let stages = Stages::of(o);
        let fft = planner()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .plan_fft_forward(o.n_fft);
        Ok(Extractor {
            fft,
            window: window(o.window, o.win_length, o.n_fft),
            mel: if stages.mel {
                mel_filters(o)
            } else {
                Vec::new()
            },
            dct: stages
                .wants(Feature::Mfcc)
                .then(|| Dct::new(o.n_mels, o.n_mfcc)),
            chroma: if stages.wants(Feature::Chroma) {
                chroma_filters(o)
            } else {
                Vec::new()
            },
            freqs: (0..=o.n_fft / 2)
                .map(|i| (i as f64 * o.sample_rate / o.n_fft as f64) as f32)
                .collect(),
            stages,
            options,
        })
    }

    /// The options this extractor was planned for.
    pub fn options(&self) -> &FeatureOptions {
        &self.options
    }

    /// Frames an input of `len` samples yields.
    pub fn frame_count(&self, len: usize) -> Result<usize, ExtractError> {
        let o = &self.options;
        let padded = if o.center {
            len + 2 * (o.n_fft / 2)
        } else {
            len
        };
        if padded < o.n_fft {
            return Err(ExtractError::TooShort {
                samples: len,
                n_fft: o.n_fft,
            });
        }
        Ok(1 + (padded - o.n_fft) / o.hop_length)
    }

    /// Bytes the results for `frames` frames take (every feature asked for).
    pub fn output_bytes(&self, frames: usize) -> u64 {
        let o = &self.options;
        let bins = o.n_fft as u64 / 2 + 1;
        let per_frame: u64 = Feature::ALL
            .iter()
            .filter(|f| self.stages.wants(**f))
            .map(|f| match f {
                Feature::Stft | Feature::Power => bins,
                Feature::Mel | Feature::LogMel => o.n_mels as u64,
                Feature::Mfcc => o.n_mfcc as u64,
                Feature::Chroma => N_CHROMA as u64,
                _ => 1,
            })
            .sum::<u64>()
            // The log-mel rows MFCCs are computed from, kept even when not asked for.
            + if self.stages.log_mel && !self.stages.wants(Feature::LogMel) {
                o.n_mels as u64
            } else {
                0
            };
        (frames as u64).saturating_mul(per_frame).saturating_mul(4)
    }

    /// Refuses an input whose results would exceed `MAX_OUTPUT_BYTES`,
    /// before anything is allocated for them.
    pub fn check_size(&self, len: usize) -> Result<u64, ExtractError> {
        let bytes = self.output_bytes(self.frame_count(len)?);
        if bytes > MAX_OUTPUT_BYTES {
            return Err(ExtractError::TooLarge {
                bytes,
                limit: MAX_OUTPUT_BYTES,
            });
        }
        Ok(bytes)
    }

    /// Computes the requested features of `audio`.
    pub fn extract(&self, audio: &[f32]) -> Result<Features, ExtractError> {
        self.extract_with(audio, &mut |_| true)
    }

    /// `extract` of every clip, spread over the rayon pool it runs in; one
    /// result per clip, in order.
    pub fn extract_all(&self, clips: &[Vec<f32>]) -> Vec<Result<Features, ExtractError>> {
        clips.par_iter().map(|clip| self.extract(clip)).collect()
    }

    /// Like `extract`, calling `keep_going(frames_done)` every 256 frames and
    /// at the end; when it returns false the extraction stops with
    /// `ExtractError::Cancelled`. Its time is recorded as `features.extract`.
    pub fn extract_with(
        &self,
        audio: &[f32],
        keep_going: &mut dyn FnMut(usize) -> bool,
    ) -> Result<Features, ExtractError> {
        let started = Instant::now();
        let result = self.extract_dispatch(audio, keep_going);
        EXTRACT.record(started.elapsed());
        result
    }

    /// The fastest build of the extraction loop this CPU runs.
    fn extract_dispatch(
        &self,
        audio: &[f32],
        keep_going: &mut dyn FnMut(usize) -> bool,
    ) -> Result<Features, ExtractError> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports every feature the function is compiled for.
            return unsafe { self.extract_avx2(audio, keep_going) };
        }
        self.extract_portable(audio, keep_going)
    }

    /// `extract_portable` compiled for AVX2 and FMA: the same code, with the
    /// kernels inlined into it vectorised eight lanes wide.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn extract_avx2(
        &self,
        audio: &[f32],
        keep_going: &mut dyn FnMut(usize) -> bool,
    ) -> Result<Features, ExtractError> {
        self.extract_portable(audio, keep_going)
    }

    #[inline(always)]
    fn extract_portable(
        &self,
        audio: &[f32],
        keep_going: &mut dyn FnMut(usize) -> bool,
    ) -> Result<Features, ExtractError> {
        if audio.is_empty() {
            return Err(ExtractError::Empty);
        }
        if !all_finite(audio) {
            let index = audio.iter().position(|x| !x.is_finite()).unwrap_or(0);
            return Err(ExtractError::NotFinite {
                index,
                value: audio[index],
            });
        }
        let o = &self.options;
        let st = self.stages;
        self.check_size(audio.len())?;
        let frames = self.frame_count(audio.len())?;
        let (n, hop, bins) = (o.n_fft, o.hop_length, o.n_fft / 2 + 1);
        let framer = Framer {
            audio,
            offset: if o.center { n / 2 } else { 0 },
            n,
            hop,
            mode: o.pad_mode,
        };

        let matrix =
            |on: bool, width: usize| FeatureMatrix::zeros(if on { frames } else { 0 }, width);
        let mut out = SpectralOutputs {
            stft: matrix(st.wants(Feature::Stft), bins),
            power: matrix(st.wants(Feature::Power), bins),
            mel: matrix(st.wants(Feature::Mel), o.n_mels),
            log_mel: matrix(st.log_mel, o.n_mels),
            peak_db: f32::NEG_INFINITY,
            chroma: matrix(st.wants(Feature::Chroma), N_CHROMA),
            centroid: matrix(st.wants(Feature::SpectralCentroid), 1),
            bandwidth: matrix(st.wants(Feature::SpectralBandwidth), 1),
            rolloff: matrix(st.wants(Feature::SpectralRolloff), 1),
            flatness: matrix(st.wants(Feature::SpectralFlatness), 1),
        };
        if st.spectrum {
            let mut buffer = vec![Complex::new(0f64, 0f64); n];
            let mut scratch = vec![Complex::new(0f64, 0f64); self.fft.get_inplace_scratch_len()];
            let (mut pow_a, mut pow_b) = (vec![0f32; bins], vec![0f32; bins]);
            let mut rows = Rows {
                magnitude: vec![0f32; bins],
                mel_source: vec![0f32; bins],
                mel: vec![0f32; o.n_mels],
            };
            let (mut edge_a, mut edge_b) = (vec![0f32; n], vec![0f32; n]);
            let mut f = 0;
            while f < frames {
                if f % CHECK_EVERY < 2 && f > 0 && !keep_going(f) {
                    return Err(ExtractError::Cancelled);
                }
                let a = framer.frame(f, &mut edge_a);
                let b = (f + 1 < frames).then(|| framer.frame(f + 1, &mut edge_b));
                match b {
                    Some(b) => {
                        for (((z, x), y), w) in buffer.iter_mut().zip(a).zip(b).zip(&self.window) {
                            *z = Complex::new(f64::from(*x) * w, f64::from(*y) * w);
                        }
                    }
                    None => {
                        for ((z, x), w) in buffer.iter_mut().zip(a).zip(&self.window) {
                            *z = Complex::new(f64::from(*x) * w, 0.0);
                        }
                    }
                }
                // A silent frame gets exact zeros, not the ~1e-24 of its
                // partner's power that the shared FFT leaves in it.
                let silent_a = is_silent(a);
                let silent_b = b.is_some_and(is_silent);
                self.fft.process_with_scratch(&mut buffer, &mut scratch);
                split_powers(&buffer, &mut pow_a, &mut pow_b);
                if silent_a {
                    pow_a.fill(0.0);
                }
                if silent_b {
                    pow_b.fill(0.0);
                }
                self.frame_features(f, &pow_a, &mut rows, &mut out);
                if b.is_some() {
                    self.frame_features(f + 1, &pow_b, &mut rows, &mut out);
                }
                f += 2;
            }
        }
        if !keep_going(frames) {
            return Err(ExtractError::Cancelled);
        }

        let rms = st.wants(Feature::Rms).then(|| frame_rms(&framer, frames));
        let zcr = st
            .wants(Feature::Zcr)
            .then(|| zero_crossing_rate(audio, frames, o));
        // power_to_db's top_db floor needs the peak of the whole matrix, so
        // it (and the MFCCs of the floored rows) come in one pass afterwards.
        let mut mfcc = st
            .wants(Feature::Mfcc)
            .then(|| FeatureMatrix::zeros(frames, o.n_mfcc));
        if st.log_mel {
            let floor = o
                .top_db
                .map_or(f32::NEG_INFINITY, |top| out.peak_db - top as f32);
            for f in 0..frames {
                let row = out.log_mel.row_mut(f);
                row.iter_mut().for_each(|v| *v = v.max(floor));
                if let (Some(m), Some(dct)) = (mfcc.as_mut(), &self.dct) {
                    dct.apply(row, m.row_mut(f));
                }
            }
        }
        let log_mel = st.wants(Feature::LogMel).then_some(out.log_mel);

        let mut slots = [
            (Feature::Stft, Some(out.stft)),
            (Feature::Power, Some(out.power)),
            (Feature::Mel, Some(out.mel)),
            (Feature::LogMel, log_mel),
            (Feature::Mfcc, mfcc),
            (Feature::Rms, rms),
            (Feature::Zcr, zcr),
            (Feature::SpectralCentroid, Some(out.centroid)),
            (Feature::SpectralBandwidth, Some(out.bandwidth)),
            (Feature::SpectralRolloff, Some(out.rolloff)),
            (Feature::SpectralFlatness, Some(out.flatness)),
            (Feature::Chroma, Some(out.chroma)),
        ];
        let mut items = Vec::with_capacity(o.features.len());
        for &feature in &o.features {
            if items.iter().any(|(f, _)| *f == feature) {
                continue;
            }
            let slot = slots
                .iter_mut()
                .find(|(f, _)| *f == feature)
                .expect("every feature has a slot");
            items.push((
                feature,
                slot.1.take().expect("each feature is computed once"),
            ));
        }
        Ok(Features { frames, items })
    }

    /// Every per-frame spectral feature of frame `f`, from its power spectrum.
    #[inline(always)]
    fn frame_features(&self, f: usize, pow: &[f32], rows: &mut Rows, out: &mut SpectralOutputs) {
        let st = &self.stages;
        let o = &self.options;
        let mag = &mut rows.magnitude;
        if st.magnitude {
            for (m, p) in mag.iter_mut().zip(pow) {
                *m = p.sqrt();
            }
        }
        if st.wants(Feature::Stft) {
            out.stft.row_mut(f).copy_from_slice(mag);
        }
        if st.wants(Feature::Power) {
            out.power.row_mut(f).copy_from_slice(pow);
        }
        if st.mel {
            let source: &[f32] = if o.power == 2.0 {
                pow
            } else if o.power == 1.0 {
                mag
            } else {
                let exponent = o.power as f32;
                for (s, m) in rows.mel_source.iter_mut().zip(mag.iter()) {
                    *s = m.powf(exponent);
                }
                &rows.mel_source
            };
            for (value, filter) in rows.mel.iter_mut().zip(&self.mel) {
                *value = filter.apply(source);
            }
            if st.wants(Feature::Mel) {
                out.mel.row_mut(f).copy_from_slice(&rows.mel);
            }
            if st.log_mel {
                // A separate pass over the row so the logarithm vectorises.
                let db_per_neper = 10.0 / std::f32::consts::LN_10;
                let db = out.log_mel.row_mut(f);
                for (d, v) in db.iter_mut().zip(&rows.mel) {
                    *d = db_per_neper * ln(v.max(AMIN));
                }
                out.peak_db = db.iter().fold(out.peak_db, |m, &v| m.max(v));
            }
        }
        if st.wants(Feature::SpectralCentroid) || st.wants(Feature::SpectralBandwidth) {
            let total = sum(mag);
            let norm = if total > f32::MIN_POSITIVE {
                total
            } else {
                1.0
            };
            let c = dot(mag, &self.freqs) / norm;
            if st.wants(Feature::SpectralCentroid) {
                out.centroid.data[f] = c;
            }
            if st.wants(Feature::SpectralBandwidth) {
                let spread: f32 = mag
                    .iter()
                    .zip(&self.freqs)
                    .map(|(m, fr)| (m / norm) * (fr - c) * (fr - c))
                    .sum();
                out.bandwidth.data[f] = spread.sqrt();
            }
        }
        if st.wants(Feature::SpectralRolloff) {
            let threshold = ROLL_PERCENT * mag.iter().sum::<f32>();
            let mut cumulative = 0f32;
            let mut at = 0;
            for (i, m) in mag.iter().enumerate() {
                cumulative += m;
                if cumulative >= threshold {
                    at = i;
                    break;
                }
            }
            out.rolloff.data[f] = self.freqs[at];
        }
        if st.wants(Feature::SpectralFlatness) {
            let (mut log_sum, mut total) = (0f64, 0f64);
            for p in pow {
                let p = p.max(AMIN) as f64;
                log_sum += p.ln();
                total += p;
            }
            let bins = pow.len() as f64;
            out.flatness.data[f] = ((log_sum / bins).exp() / (total / bins)) as f32;
        }
        if st.wants(Feature::Chroma) {
            let bins = pow.len();
            let row = out.chroma.row_mut(f);
            for (c, value) in row.iter_mut().enumerate() {
                *value = dot(&self.chroma[c * bins..(c + 1) * bins], pow);
            }
            let peak = row.iter().fold(0f32, |m, v| m.max(v.abs()));
            if peak > f32::MIN_POSITIVE {
                row.iter_mut().for_each(|v| *v /= peak);
            }
        }
    }
}

/// Whether every sample of a frame is zero (stops at the first that is not).
#[inline(always)]
fn is_silent(frame: &[f32]) -> bool {
    frame.iter().all(|&x| x == 0.0)
}

/// Power spectra of the two real frames packed into one complex FFT `z`:
/// X_a[k] = (Z[k] + conj Z[N-k]) / 2 and X_b[k] = (Z[k] - conj Z[N-k]) / 2i.
#[inline(always)]
fn split_powers(z: &[Complex<f64>], pow_a: &mut [f32], pow_b: &mut [f32]) {
    let n = z.len();
    let split = |p: Complex<f64>, q: Complex<f64>| {
        let (a_re, a_im) = (0.5 * (p.re + q.re), 0.5 * (p.im - q.im));
        let (b_re, b_im) = (0.5 * (p.im + q.im), 0.5 * (q.re - p.re));
        (
            (a_re * a_re + a_im * a_im) as f32,
            (b_re * b_re + b_im * b_im) as f32,
        )
    };
    (pow_a[0], pow_b[0]) = split(z[0], z[0]);
    for k in 1..pow_a.len() {
        (pow_a[k], pow_b[k]) = split(z[k], z[n - k]);
    }
}

/// Frames of the signal as if it were padded by `offset` samples on each
/// side: frames inside the signal are slices of it (no copy); only frames
/// that overlap an edge are assembled in a scratch buffer.
struct Framer<'a> {
    audio: &'a [f32],
    offset: usize,
    n: usize,
    hop: usize,
    mode: PadMode,
}

impl<'a> Framer<'a> {
    /// Frame `f`, borrowed from the signal or built in `edge` (n samples).
    #[inline(always)]
    fn frame<'b>(&self, f: usize, edge: &'b mut [f32]) -> &'b [f32]
    where
        'a: 'b,
    {
        let start = (f * self.hop) as isize - self.offset as isize;
        let len = self.audio.len() as isize;
        if start >= 0 && start + self.n as isize <= len {
            return &self.audio[start as usize..start as usize + self.n];
        }
        if self.mode == PadMode::Constant {
            // Zeros around the part of the frame that lies inside the signal.
            let from = start.clamp(0, len) as usize;
            let to = (start + self.n as isize).clamp(0, len) as usize;
            let at = (from as isize - start) as usize;
            edge.fill(0.0);
            edge[at..at + (to - from)].copy_from_slice(&self.audio[from..to]);
        } else {
            for (i, value) in edge.iter_mut().enumerate() {
                *value = self.sample(start + i as isize);
            }
        }
        edge
    }

    /// The padded signal at position `t` (negative or past the end: padding).
    fn sample(&self, t: isize) -> f32 {
        let len = self.audio.len() as isize;
        if (0..len).contains(&t) {
            return self.audio[t as usize];
        }
        match self.mode {
            PadMode::Constant => 0.0,
            // numpy's "reflect": mirror around the edge samples, repeating
            // the reflection when the padding is longer than the signal.
            PadMode::Reflect if len == 1 => self.audio[0],
            PadMode::Reflect => {
                let period = 2 * (len - 1);
                let t = t.rem_euclid(period);
                self.audio[(if t < len { t } else { period - t }) as usize]
            }
        }
    }
}

/// Root mean square of each frame of the (padded) signal.
#[inline(always)]
fn frame_rms(framer: &Framer, frames: usize) -> FeatureMatrix {
    let mut edge = vec![0f32; framer.n];
    let mut out = FeatureMatrix::zeros(frames, 1);
    for (f, value) in out.data.iter_mut().enumerate() {
        let frame = framer.frame(f, &mut edge);
        *value = (dot(frame, frame) / framer.n as f32).sqrt();
    }
    out
}

/// librosa's `zero_crossing_rate`: frames of the edge-padded signal (when
/// centred), crossings where the sign bit changes, values within 1e-10 of
/// zero counting as +0. Sign flags and crossings are computed once per
/// sample in branch-free passes, then summed per frame.
#[inline(always)]
fn zero_crossing_rate(audio: &[f32], frames: usize, o: &FeatureOptions) -> FeatureMatrix {
    let n = o.n_fft;
    let offset = if o.center { n / 2 } else { 0 };
    let span = (frames - 1) * o.hop_length + n;
    let (first, last) = (audio[0], audio[audio.len() - 1]);
    let mut edge_padded = Vec::with_capacity(span);
    edge_padded.resize(offset, first);
    edge_padded.extend_from_slice(&audio[..audio.len().min(span - offset)]);
    edge_padded.resize(span, last);
    let negative: Vec<u8> = edge_padded
        .iter()
        .map(|x| (x.abs() > ZC_THRESHOLD && x.is_sign_negative()) as u8)
        .collect();
    // crossing[t] = 1 when the sign changes between samples t and t + 1.
    let crossing: Vec<u8> = negative.windows(2).map(|w| w[0] ^ w[1]).collect();
    let mut out = FeatureMatrix::zeros(frames, 1);
    for (f, value) in out.data.iter_mut().enumerate() {
        let start = f * o.hop_length;
        let count: u32 = crossing[start..start + n - 1]
            .iter()
            .map(|&c| c as u32)
            .sum();
        *value = count as f32 / n as f32;
    }
    out
}
