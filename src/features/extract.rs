//! The extractor: one planned FFT, window and filterbanks per set of options,
//! then a single pass over the frames that feeds every spectral feature asked
//! for from the same spectrum. The frame loop allocates nothing.

use std::sync::{Arc, Mutex, OnceLock};

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

use super::chroma::{chroma_filters, N_CHROMA};
use super::dct::dct2_ortho;
use super::error::ExtractError;
use super::math::{all_finite, dot, ln, sum};
use super::mel::{mel_filters, Filter};
use super::options::{Feature, FeatureOptions, OptionError, PadMode};
use super::window::window;

/// Floor of `power_to_db` (librosa's `amin`).
const AMIN: f32 = 1e-10;
/// Share of spectral energy below the rolloff frequency.
const ROLL_PERCENT: f32 = 0.85;
/// Values this close to zero count as zero for zero crossings (librosa's threshold).
const ZC_THRESHOLD: f32 = 1e-10;

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

fn planner() -> &'static Mutex<RealFftPlanner<f32>> {
    static PLANNER: OnceLock<Mutex<RealFftPlanner<f32>>> = OnceLock::new();
    PLANNER.get_or_init(|| Mutex::new(RealFftPlanner::new()))
}

/// Everything planned for one set of options; shareable across threads.
pub struct Extractor {
    options: FeatureOptions,
    fft: Arc<dyn RealToComplex<f32>>,
    window: Vec<f32>,
    mel: Vec<Filter>,
    dct: Vec<f32>,
    chroma: Vec<f32>,
    /// Centre frequency of each FFT bin (Hz).
    freqs: Vec<f32>,
}

impl Extractor {
    /// Plans an extraction; fails on invalid options.
    pub fn new(options: FeatureOptions) -> Result<Self, OptionError> {
        options.validate()?;
        let o = &options;
        let fft = planner()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .plan_fft_forward(o.n_fft);
        let needs_mel = o.wants(Feature::Mel) || o.wants(Feature::LogMel) || o.wants(Feature::Mfcc);
        Ok(Extractor {
            fft,
            window: window(o.window, o.win_length, o.n_fft),
            mel: if needs_mel {
                mel_filters(o)
            } else {
                Vec::new()
            },
            dct: if o.wants(Feature::Mfcc) {
                dct2_ortho(o.n_mels, o.n_mfcc)
            } else {
                Vec::new()
            },
            chroma: if o.wants(Feature::Chroma) {
                chroma_filters(o)
            } else {
                Vec::new()
            },
            freqs: (0..=o.n_fft / 2)
                .map(|i| (i as f64 * o.sample_rate / o.n_fft as f64) as f32)
                .collect(),
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

    /// Computes the requested features of `audio`.
    pub fn extract(&self, audio: &[f32]) -> Result<Features, ExtractError> {
        self.extract_with(audio, &mut |_| true)
    }

    /// Like `extract`, calling `keep_going(frames_done)` every 256 frames;
    /// when it returns false the extraction stops with `ExtractError::Cancelled`.
    pub fn extract_with(
        &self,
        audio: &[f32],
        keep_going: &mut dyn FnMut(usize) -> bool,
    ) -> Result<Features, ExtractError> {
        if audio.is_empty() {
            return Err(ExtractError::Empty);
        }
        let bad = (!all_finite(audio)).then(|| audio.iter().position(|x| !x.is_finite()));
        if let Some(Some(index)) = bad {
            return Err(ExtractError::NotFinite {
                index,
                value: audio[index],
            });
        }
        let o = &self.options;
        let frames = self.frame_count(audio.len())?;
        let (n, hop, bins) = (o.n_fft, o.hop_length, o.n_fft / 2 + 1);
        let padded = pad(audio, if o.center { n / 2 } else { 0 }, o.pad_mode);

        let mut asked = [false; Feature::ALL.len()];
        for f in &o.features {
            asked[*f as usize] = true;
        }
        let wants = |f: Feature| asked[f as usize];
        let needs_mel = wants(Feature::Mel) || wants(Feature::LogMel) || wants(Feature::Mfcc);
        let needs_spectrum = needs_mel
            || [
                Feature::Stft,
                Feature::Power,
                Feature::SpectralCentroid,
                Feature::SpectralBandwidth,
                Feature::SpectralRolloff,
                Feature::SpectralFlatness,
                Feature::Chroma,
            ]
            .into_iter()
            .any(wants);
        let matrix =
            |on: bool, width: usize| FeatureMatrix::zeros(if on { frames } else { 0 }, width);
        let mut stft = matrix(wants(Feature::Stft), bins);
        let mut power = matrix(wants(Feature::Power), bins);
        let mut mel = matrix(needs_mel, o.n_mels);
        let mut chroma = matrix(wants(Feature::Chroma), N_CHROMA);
        let mut centroid = matrix(wants(Feature::SpectralCentroid), 1);
        let mut bandwidth = matrix(wants(Feature::SpectralBandwidth), 1);
        let mut rolloff = matrix(wants(Feature::SpectralRolloff), 1);
        let mut flatness = matrix(wants(Feature::SpectralFlatness), 1);

        let mut input = self.fft.make_input_vec();
        let mut spectrum: Vec<Complex<f32>> = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut pow_row = vec![0f32; bins];
        let mut mag_row = vec![0f32; bins];
        let mut mel_source = vec![0f32; bins];
        let needs_magnitude = wants(Feature::Stft)
            || wants(Feature::SpectralCentroid)
            || wants(Feature::SpectralBandwidth)
            || wants(Feature::SpectralRolloff)
            || (needs_mel && o.power != 2.0);

        for f in 0..frames {
            if f % 256 == 0 && f > 0 && !keep_going(f) {
                return Err(ExtractError::Cancelled);
            }
            if !needs_spectrum {
                continue;
            }
            let frame = &padded[f * hop..f * hop + n];
            for ((x, s), w) in input.iter_mut().zip(frame).zip(&self.window) {
                *x = s * w;
            }
            self.fft
                .process_with_scratch(&mut input, &mut spectrum, &mut scratch)
                .expect("buffers come from the plan");
            for (p, c) in pow_row.iter_mut().zip(&spectrum) {
                *p = c.re * c.re + c.im * c.im;
            }
            if needs_magnitude {
                for (m, p) in mag_row.iter_mut().zip(&pow_row) {
                    *m = p.sqrt();
                }
            }
            let row = f * bins..(f + 1) * bins;
            if wants(Feature::Stft) {
                stft.data[row.clone()].copy_from_slice(&mag_row);
            }
            if wants(Feature::Power) {
                power.data[row].copy_from_slice(&pow_row);
            }
            if needs_mel {
                let source: &[f32] = if o.power == 2.0 {
                    &pow_row
                } else if o.power == 1.0 {
                    &mag_row
                } else {
                    let exponent = o.power as f32;
                    for (s, m) in mel_source.iter_mut().zip(&mag_row) {
                        *s = m.powf(exponent);
                    }
                    &mel_source
                };
                for (out, filter) in mel.data[f * o.n_mels..(f + 1) * o.n_mels]
                    .iter_mut()
                    .zip(&self.mel)
                {
                    *out = filter.apply(source);
                }
            }
            if wants(Feature::SpectralCentroid) || wants(Feature::SpectralBandwidth) {
                let total = sum(&mag_row);
                let norm = if total > f32::MIN_POSITIVE {
                    total
                } else {
                    1.0
                };
                let c = dot(&mag_row, &self.freqs) / norm;
                if wants(Feature::SpectralCentroid) {
                    centroid.data[f] = c;
                }
                if wants(Feature::SpectralBandwidth) {
                    let spread: f32 = mag_row
                        .iter()
                        .zip(&self.freqs)
                        .map(|(m, fr)| (m / norm) * (fr - c) * (fr - c))
                        .sum();
                    bandwidth.data[f] = spread.sqrt();
                }
            }
            if wants(Feature::SpectralRolloff) {
                let total: f32 = mag_row.iter().sum();
                let threshold = ROLL_PERCENT * total;
                let mut cumulative = 0f32;
                let mut at = 0;
                for (i, m) in mag_row.iter().enumerate() {
                    cumulative += m;
                    if cumulative >= threshold {
                        at = i;
                        break;
                    }
                }
                rolloff.data[f] = self.freqs[at];
            }
            if wants(Feature::SpectralFlatness) {
                let (mut log_sum, mut sum) = (0f64, 0f64);
                for p in &pow_row {
                    let p = p.max(AMIN) as f64;
                    log_sum += p.ln();
                    sum += p;
                }
                flatness.data[f] = ((log_sum / bins as f64).exp() / (sum / bins as f64)) as f32;
            }
            if wants(Feature::Chroma) {
                let out = &mut chroma.data[f * N_CHROMA..(f + 1) * N_CHROMA];
                for (c, value) in out.iter_mut().enumerate() {
                    *value = dot(&self.chroma[c * bins..(c + 1) * bins], &pow_row);
                }
                let peak = out.iter().fold(0f32, |m, v| m.max(v.abs()));
                if peak > f32::MIN_POSITIVE {
                    out.iter_mut().for_each(|v| *v /= peak);
                }
            }
        }
        if !keep_going(frames) {
            return Err(ExtractError::Cancelled);
        }

        let rms = wants(Feature::Rms).then(|| frame_rms(&padded, frames, o));
        let zcr = wants(Feature::Zcr).then(|| zero_crossing_rate(audio, frames, o));
        let log_mel =
            (wants(Feature::LogMel) || wants(Feature::Mfcc)).then(|| power_to_db(&mel, o.top_db));
        let mfcc = wants(Feature::Mfcc).then(|| {
            let log_mel = log_mel.as_ref().expect("computed for mfcc");
            let mut out = FeatureMatrix::zeros(frames, o.n_mfcc);
            for f in 0..frames {
                let row = &log_mel.data[f * o.n_mels..(f + 1) * o.n_mels];
                for k in 0..o.n_mfcc {
                    out.data[f * o.n_mfcc + k] =
                        dot(&self.dct[k * o.n_mels..(k + 1) * o.n_mels], row);
                }
            }
            out
        });

        let mut slots = [
            (Feature::Stft, Some(stft)),
            (Feature::Power, Some(power)),
            (Feature::Mel, Some(mel)),
            (Feature::LogMel, log_mel),
            (Feature::Mfcc, mfcc),
            (Feature::Rms, rms),
            (Feature::Zcr, zcr),
            (Feature::SpectralCentroid, Some(centroid)),
            (Feature::SpectralBandwidth, Some(bandwidth)),
            (Feature::SpectralRolloff, Some(rolloff)),
            (Feature::SpectralFlatness, Some(flatness)),
            (Feature::Chroma, Some(chroma)),
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
}

/// The signal padded by `width` samples on each side.
fn pad(audio: &[f32], width: usize, mode: PadMode) -> Vec<f32> {
    let mut out = Vec::with_capacity(audio.len() + 2 * width);
    match mode {
        PadMode::Constant => {
            out.resize(width, 0.0);
            out.extend_from_slice(audio);
            out.resize(audio.len() + 2 * width, 0.0);
        }
        PadMode::Reflect => {
            // numpy's "reflect": mirror around the edge samples, repeating
            // the reflection when the padding is longer than the signal.
            let len = audio.len() as isize;
            let at = |t: isize| -> f32 {
                if len == 1 {
                    return audio[0];
                }
                let period = 2 * (len - 1);
                let t = t.rem_euclid(period);
                audio[(if t < len { t } else { period - t }) as usize]
            };
            let w = width as isize;
            out.extend((-w..0).map(at));
            out.extend_from_slice(audio);
            out.extend((len..len + w).map(at));
        }
    }
    out
}

/// Root mean square of each frame of the (padded) signal.
fn frame_rms(padded: &[f32], frames: usize, o: &FeatureOptions) -> FeatureMatrix {
    let n = o.n_fft;
    let mut out = FeatureMatrix::zeros(frames, 1);
    for (f, value) in out.data.iter_mut().enumerate() {
        let frame = &padded[f * o.hop_length..f * o.hop_length + n];
        *value = (dot(frame, frame) / n as f32).sqrt();
    }
    out
}

/// librosa's `zero_crossing_rate`: frames of the edge-padded signal (when
/// centred), crossings where the sign bit changes, values within 1e-10 of
/// zero counting as +0. Sign flags and crossings are computed once per
/// sample in branch-free passes, then summed per frame.
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

/// `power_to_db(S, ref=1, amin=1e-10, top_db)` over the whole matrix.
fn power_to_db(mel: &FeatureMatrix, top_db: Option<f64>) -> FeatureMatrix {
    let mut out = mel.clone();
    let db_per_neper = 10.0 / std::f32::consts::LN_10;
    for v in out.data.iter_mut() {
        *v = db_per_neper * ln(v.max(AMIN));
    }
    let peak = out.data.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    if let Some(top) = top_db {
        let floor = peak - top as f32;
        out.data.iter_mut().for_each(|v| *v = v.max(floor));
    }
    out
}
