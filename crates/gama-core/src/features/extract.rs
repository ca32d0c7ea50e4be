//! The extractor: one planned FFT, window and filterbanks per set of options,
//! then a single pass over the frames that feeds every spectral feature asked
//! for from the same spectrum. Frames are transformed two at a time, one as
//! the real and one as the imaginary part of a complex FFT, which halves the
//! FFT work; the frame loop allocates nothing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use rayon::prelude::*;

use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};

use super::chroma::{chroma_filters, N_CHROMA};
use super::dct::Dct;
use super::error::ExtractError;
use super::math::{dot, first_non_finite, ln, sum};
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

/// Where one feature lies in a result buffer: `frames * bins` values,
/// frame-major, from `offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// First value's index in the buffer.
    pub offset: usize,
    /// Values per frame (1 for scalar features).
    pub bins: usize,
}

/// The samples of a signal from `base` on: all of it (`base` 0) for a
/// clip, the part still needed for a stream. The signal ends where the
/// samples end; frames asked of a window must not start before `base`
/// (nor need left padding unless `base` is 0).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Signal<'a> {
    /// Samples `base..base + samples.len()` of the signal.
    pub samples: &'a [f32],
    /// Index of the first sample in the signal.
    pub base: usize,
}

impl Signal<'_> {
    /// Samples in the whole signal up to the window's end.
    fn total(&self) -> usize {
        self.base + self.samples.len()
    }
}

/// How the log-mel values of a range of frames are floored (librosa's
/// `top_db`).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Floor {
    /// One floor for every frame (the whole clip's peak minus `top_db`).
    Fixed(f32),
    /// Each frame floored at the highest value of it and every frame
    /// before it (`peak`, carried from range to range) minus `top_db`.
    Running {
        /// Range kept below the running peak, in dB.
        top_db: f32,
        /// Highest log-mel value so far.
        peak: f32,
    },
}

/// One computed feature: `frames` rows of `bins` values, frame-major.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FeatureMatrix<'a> {
    /// Rows.
    pub frames: usize,
    /// Values per row (1 for scalar features).
    pub bins: usize,
    /// `frames * bins` values.
    pub data: &'a [f32],
}

/// What one extraction produced: every feature in one buffer (so a result
/// is one allocation, handed on whole), in the order they were asked for.
///
/// Invariant: the spans lie inside `data`, in order, without overlapping.
/// The default is the empty result (no frames, no features).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Features {
    /// Frames of every feature.
    pub frames: usize,
    data: Values,
    items: Vec<(Feature, Span)>,
}

/// Where a result's values live. Equal values are equal wherever they live.
#[derive(Clone, Debug)]
pub enum Values {
    /// A buffer of the result's own, exactly its values.
    Own(Vec<f32>),
    /// `len` values at `offset` of a buffer the results of one batch share
    /// (they reach JS as one ArrayBuffer instead of one each).
    Shared {
        /// The batch's buffer.
        arena: Arc<Vec<f32>>,
        /// Index of the result's first value in it.
        offset: usize,
        /// Values of the result.
        len: usize,
    },
}

impl PartialEq for Values {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Default for Values {
    fn default() -> Self {
        Values::Own(Vec::new())
    }
}

impl Values {
    /// The result's values.
    pub fn as_slice(&self) -> &[f32] {
        match self {
            Values::Own(data) => data,
            Values::Shared { arena, offset, len } => &arena[*offset..*offset + *len],
        }
    }

    /// The values in a vector of their own (copied when shared).
    pub fn into_vec(self) -> Vec<f32> {
        match self {
            Values::Own(data) => data,
            shared => shared.as_slice().to_vec(),
        }
    }
}

impl Features {
    /// Zeros for `frames` frames of each `(feature, bins)`, laid out in order.
    fn zeros(frames: usize, layout: &[(Feature, usize)]) -> Self {
        let values: usize = layout.iter().map(|(_, bins)| frames * bins).sum();
        Features::laid_out(frames, vec![0.0; values], layout)
    }

    /// `data` read as `frames` frames of each `(feature, bins)`, one
    /// feature after another; `data` holds exactly that many values.
    pub(crate) fn laid_out(frames: usize, data: Vec<f32>, layout: &[(Feature, usize)]) -> Self {
        let (items, values) = spans(frames, layout);
        assert_eq!(values, data.len(), "a result buffer fits its layout");
        Features {
            frames,
            data: Values::Own(data),
            items,
        }
    }

    /// The result `Extractor::extract_parallel_into` wrote into `data`
    /// (`frames` frames, features where `items` says).
    pub fn own(frames: usize, data: Vec<f32>, items: Vec<(Feature, Span)>) -> Self {
        let len: usize = items.iter().map(|(_, s)| frames * s.bins).sum();
        assert_eq!(len, data.len(), "a result buffer fits its layout");
        Features {
            frames,
            data: Values::Own(data),
            items,
        }
    }

    /// The result `Extractor::extract_parallel_into` wrote at `offset` of
    /// `arena` (`frames` frames, features where `items` says).
    pub fn shared(
        arena: Arc<Vec<f32>>,
        offset: usize,
        frames: usize,
        items: Vec<(Feature, Span)>,
    ) -> Self {
        let len = items.iter().map(|(_, s)| frames * s.bins).sum();
        assert!(
            offset
                .checked_add(len)
                .is_some_and(|end| end <= arena.len()),
            "a shared result lies inside its arena"
        );
        Features {
            frames,
            data: Values::Shared { arena, offset, len },
            items,
        }
    }

    /// Features gathered from separate matrices of `frames` rows each
    /// (e.g. read back from a cache); `None` when a matrix's length is not
    /// a whole number of rows.
    pub fn from_matrices<'a>(
        frames: usize,
        matrices: impl IntoIterator<Item = (Feature, &'a [f32])>,
    ) -> Option<Self> {
        let mut data = Vec::new();
        let mut items = Vec::new();
        for (feature, values) in matrices {
            if frames == 0 || values.len() % frames != 0 {
                return None;
            }
            let span = Span {
                offset: data.len(),
                bins: values.len() / frames,
            };
            data.extend_from_slice(values);
            items.push((feature, span));
        }
        Some(Features {
            frames,
            data: Values::Own(data),
            items,
        })
    }

    /// The matrix of `feature`, if it was computed.
    pub fn get(&self, feature: Feature) -> Option<FeatureMatrix<'_>> {
        self.iter().find(|(f, _)| *f == feature).map(|(_, m)| m)
    }

    /// Every feature with its matrix, in the order asked for.
    pub fn iter(&self) -> impl Iterator<Item = (Feature, FeatureMatrix<'_>)> {
        let data = self.data.as_slice();
        self.items.iter().map(move |(feature, span)| {
            let len = self.frames * span.bins;
            let matrix = FeatureMatrix {
                frames: self.frames,
                bins: span.bins,
                data: &data[span.offset..span.offset + len],
            };
            (*feature, matrix)
        })
    }

    /// Features computed.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether no feature was computed.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The values and where each feature lies in them, to hand the memory
    /// on without a copy.
    pub fn into_parts(self) -> (Values, Vec<(Feature, Span)>) {
        (self.data, self.items)
    }
}

/// Where each `(feature, bins)` of `frames` frames lies, one after
/// another, and the values they take in all.
fn spans(frames: usize, layout: &[(Feature, usize)]) -> (Vec<(Feature, Span)>, usize) {
    let mut offset = 0;
    let items = layout
        .iter()
        .map(|&(feature, bins)| {
            let span = Span { offset, bins };
            offset += frames * bins;
            (feature, span)
        })
        .collect();
    (items, offset)
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

/// Frames per piece when a long clip is split over the pool. Even, so the
/// two-frames-one-FFT pairs are those of an unsplit run and results do not
/// depend on the split.
const PIECE_FRAMES: usize = 256;

/// Clips of at least this many frames are split into pieces by
/// `extract_parallel` (shorter ones cost less than a split saves).
const SPLIT_FRAMES: usize = 2 * PIECE_FRAMES;

/// Reports frames done to the caller's `keep_going` from any piece.
struct Progress<'a> {
    done: AtomicUsize,
    keep_going: &'a (dyn Fn(usize) -> bool + Sync),
    /// Whether the clip is split (each piece then reports its last frames).
    split: bool,
}

impl Progress<'_> {
    /// Counts `frames` more as done and asks whether to go on.
    fn advance(&self, frames: usize) -> bool {
        (self.keep_going)(self.done.fetch_add(frames, Ordering::Relaxed) + frames)
    }
}

/// The output rows of one range of frames: per feature (indexed by
/// `Feature as usize`) its rows in the result buffer, and the log-mel rows
/// MFCCs are computed from (logMel's own rows, or scratch).
///
/// Invariant: `rows[i]` holds `frames * bins[i]` values (`bins[i]` is 0 for
/// features not computed and for logMel, which lives in `log_mel`).
struct Piece<'a> {
    first: usize,
    frames: usize,
    rows: [&'a mut [f32]; Feature::ALL.len()],
    bins: [usize; Feature::ALL.len()],
    log_mel: &'a mut [f32],
    n_mels: usize,
}

impl<'a> Piece<'a> {
    /// The rows of every feature in `features`; log-mel rows go to
    /// `scratch` unless logMel itself was asked for.
    fn of(
        frames: usize,
        data: &'a mut [f32],
        items: &[(Feature, Span)],
        scratch: &'a mut [f32],
        n_mels: usize,
    ) -> Self {
        let mut rows: [&mut [f32]; Feature::ALL.len()] = Default::default();
        let mut bins = [0; Feature::ALL.len()];
        let mut log_mel = scratch;
        let mut rest: &mut [f32] = data;
        for (feature, span) in items.iter() {
            let (head, tail) = std::mem::take(&mut rest).split_at_mut(frames * span.bins);
            rest = tail;
            if *feature == Feature::LogMel {
                log_mel = head;
            } else {
                rows[*feature as usize] = head;
                bins[*feature as usize] = span.bins;
            }
        }
        Piece {
            first: 0,
            frames,
            rows,
            bins,
            n_mels: if log_mel.is_empty() { 0 } else { n_mels },
            log_mel,
        }
    }

    /// Row `frame` (counted from the clip's start) of `feature`.
    #[inline(always)]
    fn row(&mut self, feature: Feature, frame: usize) -> &mut [f32] {
        let bins = self.bins[feature as usize];
        let at = (frame - self.first) * bins;
        &mut self.rows[feature as usize][at..at + bins]
    }

    /// Log-mel row `frame`.
    #[inline(always)]
    fn log_mel_row(&mut self, frame: usize) -> &mut [f32] {
        let at = (frame - self.first) * self.n_mels;
        &mut self.log_mel[at..at + self.n_mels]
    }

    /// Splits the piece after its first `frames` frames.
    fn split(self, frames: usize) -> (Piece<'a>, Piece<'a>) {
        let mut head: [&mut [f32]; Feature::ALL.len()] = Default::default();
        let mut tail: [&mut [f32]; Feature::ALL.len()] = Default::default();
        for (i, rows) in self.rows.into_iter().enumerate() {
            (head[i], tail[i]) = rows.split_at_mut(frames * self.bins[i]);
        }
        let (log_head, log_tail) = self.log_mel.split_at_mut(frames * self.n_mels);
        let piece = |first, count, rows, log_mel| Piece {
            first,
            frames: count,
            rows,
            bins: self.bins,
            log_mel,
            n_mels: self.n_mels,
        };
        (
            piece(self.first, frames, head, log_head),
            piece(self.first + frames, self.frames - frames, tail, log_tail),
        )
    }

    /// Pieces of at most `PIECE_FRAMES` frames.
    fn pieces(self) -> Vec<Piece<'a>> {
        let mut out = Vec::with_capacity(self.frames.div_ceil(PIECE_FRAMES));
        let mut rest = self;
        while rest.frames > PIECE_FRAMES {
            let (head, tail) = rest.split(PIECE_FRAMES);
            out.push(head);
            rest = tail;
        }
        out.push(rest);
        out
    }
}

/// Scratch rows reused for every frame.
#[derive(Default)]
struct Rows {
    magnitude: Vec<f32>,
    mel_source: Vec<f32>,
    mel: Vec<f32>,
}

/// The working buffers of `per_frame`, kept per thread so that a short
/// range of frames (a stream's few new ones) allocates nothing.
#[derive(Default)]
struct Scratch {
    buffer: Vec<Complex<f64>>,
    fft: Vec<Complex<f64>>,
    pow_a: Vec<f32>,
    pow_b: Vec<f32>,
    rows: Rows,
    edge_a: Vec<f32>,
    edge_b: Vec<f32>,
}

thread_local! {
    static SCRATCH: std::cell::Cell<Option<Box<Scratch>>> = const { std::cell::Cell::new(None) };
}

impl Scratch {
    /// This thread's buffers (new ones the first time).
    fn take() -> Box<Scratch> {
        SCRATCH.with(|s| s.take()).unwrap_or_default()
    }

    /// Keeps the buffers for this thread's next call.
    fn put(self: Box<Self>) {
        SCRATCH.with(|s| s.set(Some(self)));
    }
}

/// Makes `v` exactly `len` long (its values are overwritten before use).
fn fit<T: Clone>(v: &mut Vec<T>, len: usize, zero: T) {
    v.resize(len, zero);
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

    /// Checks `audio` as an extraction does before any work (not empty,
    /// every sample finite, results within `MAX_OUTPUT_BYTES`, at least one
    /// frame); the frames it yields.
    pub(crate) fn check_input(&self, audio: &[f32]) -> Result<usize, ExtractError> {
        if audio.is_empty() {
            return Err(ExtractError::Empty);
        }
        if let Some((index, value)) = first_non_finite(audio) {
            return Err(ExtractError::NotFinite { index, value });
        }
        self.check_size(audio.len())?;
        self.frame_count(audio.len())
    }

    /// Computes the requested features of `audio` on the calling thread.
    pub fn extract(&self, audio: &[f32]) -> Result<Features, ExtractError> {
        self.extract_with(audio, &|_| true)
    }

    /// Like `extract`, calling `keep_going(frames_done)` every 256 frames
    /// and at the end; when it returns false the extraction stops with
    /// `ExtractError::Cancelled`. Its time is recorded as `features.extract`.
    pub fn extract_with(
        &self,
        audio: &[f32],
        keep_going: &(dyn Fn(usize) -> bool + Sync),
    ) -> Result<Features, ExtractError> {
        self.run(audio, keep_going, false)
    }

    /// `extract_with` that splits a long clip into pieces of frames run in
    /// parallel on the rayon pool it is called from (results are the same
    /// as unsplit); `keep_going` may then be called from any of its threads.
    pub fn extract_parallel(
        &self,
        audio: &[f32],
        keep_going: &(dyn Fn(usize) -> bool + Sync),
    ) -> Result<Features, ExtractError> {
        self.run(audio, keep_going, true)
    }

    fn run(
        &self,
        audio: &[f32],
        keep_going: &(dyn Fn(usize) -> bool + Sync),
        parallel: bool,
    ) -> Result<Features, ExtractError> {
        let started = Instant::now();
        let result = self.check_input(audio).and_then(|frames| {
            let mut features = Features::zeros(frames, &self.layout());
            let Values::Own(data) = &mut features.data else {
                unreachable!("zeros are a buffer of their own")
            };
            self.fill(audio, frames, data, &features.items, keep_going, parallel)?;
            Ok(features)
        });
        EXTRACT.record_since(started);
        result
    }

    /// Values `extract` makes for a clip of `samples` samples; None where
    /// the extraction would fail on its length (the error comes from
    /// extracting it).
    pub fn output_len(&self, samples: usize) -> Option<usize> {
        self.check_size(samples).ok()?;
        let frames = self.frame_count(samples).ok()?;
        Some(frames * self.layout().iter().map(|(_, bins)| bins).sum::<usize>())
    }

    /// `extract_parallel` writing into `out` (zeros, exactly
    /// `output_len(audio.len())` values): the frames, and where each
    /// feature lies in `out` (see `Features::shared`).
    pub fn extract_parallel_into(
        &self,
        audio: &[f32],
        out: &mut [f32],
        keep_going: &(dyn Fn(usize) -> bool + Sync),
    ) -> Result<(usize, Vec<(Feature, Span)>), ExtractError> {
        let started = Instant::now();
        let result = self.check_input(audio).and_then(|frames| {
            let (items, values) = spans(frames, &self.layout());
            assert_eq!(values, out.len(), "the output fits the clip's results");
            self.fill(audio, frames, out, &items, keep_going, true)?;
            Ok((frames, items))
        });
        EXTRACT.record_since(started);
        result
    }

    /// Fills `data` (zeros laid out as `items` says) with the features of
    /// `audio` (checked: `frames` frames), piece by piece: every per-frame
    /// feature first, then (once the clip's loudest log-mel value is known)
    /// the `top_db` floor and the MFCCs.
    fn fill(
        &self,
        audio: &[f32],
        frames: usize,
        data: &mut [f32],
        items: &[(Feature, Span)],
        keep_going: &(dyn Fn(usize) -> bool + Sync),
        parallel: bool,
    ) -> Result<(), ExtractError> {
        let o = &self.options;
        let mut scratch = self.scratch(frames);
        let whole = Piece::of(frames, data, items, &mut scratch, o.n_mels);
        let mut pieces = if parallel && frames >= SPLIT_FRAMES {
            whole.pieces()
        } else {
            vec![whole]
        };
        let progress = Progress {
            done: AtomicUsize::new(0),
            keep_going,
            split: pieces.len() > 1,
        };
        let signal = Signal {
            samples: audio,
            base: 0,
        };
        let peak = |piece: &mut Piece| self.per_frame_dispatch(signal, piece, &progress);
        let peak_db = if pieces.len() > 1 {
            pieces
                .par_iter_mut()
                .map(peak)
                .try_reduce(|| f32::NEG_INFINITY, |a, b| Ok(a.max(b)))?
        } else {
            pieces
                .iter_mut()
                .map(peak)
                .try_fold(f32::NEG_INFINITY, |a, b| b.map(|b| a.max(b)))?
        };
        if !keep_going(frames) {
            return Err(ExtractError::Cancelled);
        }
        if self.stages.log_mel {
            // power_to_db's top_db floor needs the peak of the whole matrix.
            let floor = Floor::Fixed(
                o.top_db
                    .map_or(f32::NEG_INFINITY, |top| peak_db - top as f32),
            );
            let finish = |piece: &mut Piece| {
                self.finish_dispatch(piece, floor);
            };
            if pieces.len() > 1 {
                pieces.par_iter_mut().for_each(finish);
            } else {
                pieces.iter_mut().for_each(finish);
            }
        }
        drop(pieces);
        Ok(())
    }

    /// The scratch log-mel rows of `frames` frames MFCCs need when logMel
    /// itself was not asked for.
    fn scratch(&self, frames: usize) -> Vec<f32> {
        if self.stages.log_mel && !self.stages.wants(Feature::LogMel) {
            vec![0f32; frames * self.options.n_mels]
        } else {
            Vec::new()
        }
    }

    /// How a result buffer is laid out: each feature asked for (once, in
    /// the order asked) with its values per frame; feature `i` starts at
    /// `frames` times the values per frame of those before it.
    pub fn layout(&self) -> Vec<(Feature, usize)> {
        let mut seen: Vec<(Feature, usize)> = Vec::with_capacity(self.options.features.len());
        for &f in &self.options.features {
            if !seen.iter().any(|(s, _)| *s == f) {
                seen.push((f, self.bins(f)));
            }
        }
        seen
    }

    /// Values per frame of `feature`.
    fn bins(&self, feature: Feature) -> usize {
        let o = &self.options;
        match feature {
            Feature::Stft | Feature::Power => o.n_fft / 2 + 1,
            Feature::Mel | Feature::LogMel => o.n_mels,
            Feature::Mfcc => o.n_mfcc,
            Feature::Chroma => N_CHROMA,
            _ => 1,
        }
    }

    /// Frames `first..first + frames` of a signal seen through a window
    /// (see `Signal`), computed on the calling thread; their log-mel values
    /// floored as `floor` says (a running floor carries its peak on). The
    /// frames must lie in the window and `first` must be even, so the
    /// frames pair up in FFTs as in a whole-clip run (results are then
    /// bit-identical to it). `log_mel`, when given, gets the frames'
    /// log-mel rows appended when MFCCs are computed from rows not part of
    /// the result (logMel itself not asked for); see `join_runs`.
    pub(crate) fn extract_range(
        &self,
        signal: Signal,
        first: usize,
        frames: usize,
        floor: &mut Floor,
        log_mel: Option<&mut Vec<f32>>,
    ) -> Result<Features, ExtractError> {
        debug_assert!(first.is_multiple_of(2));
        let o = &self.options;
        let bytes = self.output_bytes(frames);
        if bytes > MAX_OUTPUT_BYTES {
            return Err(ExtractError::TooLarge {
                bytes,
                limit: MAX_OUTPUT_BYTES,
            });
        }
        let mut features = Features::zeros(frames, &self.layout());
        let mut scratch = self.scratch(frames);
        {
            let Values::Own(data) = &mut features.data else {
                unreachable!("zeros are a buffer of their own")
            };
            let mut piece = Piece::of(frames, data, &features.items, &mut scratch, o.n_mels);
            piece.first = first;
            let progress = Progress {
                done: AtomicUsize::new(0),
                keep_going: &|_| true,
                split: false,
            };
            self.per_frame_dispatch(signal, &mut piece, &progress)?;
            if self.stages.log_mel {
                *floor = self.finish_dispatch(&mut piece, *floor);
            }
        }
        if let Some(rows) = log_mel {
            rows.extend_from_slice(&scratch);
        }
        Ok(features)
    }

    /// A whole clip's result from its frames computed in consecutive runs
    /// by `extract_range` (a stream's blocks, in order), as `extract` of
    /// the whole clip gives it: joined, the log-mel values floored at the
    /// whole clip's peak minus `top_db`, the MFCCs computed from the
    /// floored rows. `log_mel` holds what `extract_range` appended for
    /// every run. Exact whether the runs were floored against a running
    /// peak or not at all: the running floor never exceeds the final one,
    /// and flooring never raises the peak.
    pub(crate) fn join_runs(&self, runs: &[Features], mut log_mel: Vec<f32>) -> Features {
        let frames = runs.iter().map(|r| r.frames).sum();
        let layout = self.layout();
        let mut whole = Features::zeros(frames, &layout);
        let Values::Own(data) = &mut whole.data else {
            unreachable!("zeros are a buffer of their own")
        };
        let mut at = 0;
        for (feature, _) in &layout {
            for run in runs {
                let part = run.get(*feature).map_or(&[][..], |m| m.data);
                data[at..at + part.len()].copy_from_slice(part);
                at += part.len();
            }
        }
        if let (true, Some(top_db)) = (self.stages.log_mel, self.options.top_db) {
            let mut piece = Piece::of(
                frames,
                data,
                &whole.items,
                &mut log_mel,
                self.options.n_mels,
            );
            let peak = piece
                .log_mel
                .iter()
                .fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            self.finish_dispatch(&mut piece, Floor::Fixed(peak - top_db as f32));
        }
        whole
    }

    /// `per_frame` in the fastest build this CPU runs.
    fn per_frame_dispatch(
        &self,
        signal: Signal,
        piece: &mut Piece,
        progress: &Progress,
    ) -> Result<f32, ExtractError> {
        #[cfg(target_arch = "x86_64")]
        if crate::simd::has_avx2() {
            // SAFETY: the CPU supports every feature the function is compiled for.
            return unsafe { self.per_frame_avx2(signal, piece, progress) };
        }
        self.per_frame(signal, piece, progress)
    }

    /// `per_frame` compiled for AVX2 and FMA: the same code, with the
    /// kernels inlined into it vectorised eight lanes wide.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn per_frame_avx2(
        &self,
        signal: Signal,
        piece: &mut Piece,
        progress: &Progress,
    ) -> Result<f32, ExtractError> {
        self.per_frame(signal, piece, progress)
    }

    /// Every per-frame feature of the piece's frames (spectral ones from a
    /// shared FFT, RMS and ZCR from the samples); returns the highest
    /// log-mel dB value among them.
    #[inline(always)]
    fn per_frame(
        &self,
        signal: Signal,
        piece: &mut Piece,
        progress: &Progress,
    ) -> Result<f32, ExtractError> {
        let mut scratch = Scratch::take();
        let result = self.per_frame_with(signal, piece, progress, &mut scratch);
        scratch.put();
        result
    }

    /// `per_frame` with this thread's working buffers.
    #[inline(always)]
    fn per_frame_with(
        &self,
        signal: Signal,
        piece: &mut Piece,
        progress: &Progress,
        scratch: &mut Scratch,
    ) -> Result<f32, ExtractError> {
        let o = &self.options;
        let st = self.stages;
        let (n, bins) = (o.n_fft, o.n_fft / 2 + 1);
        let framer = Framer {
            audio: signal.samples,
            base: signal.base,
            offset: if o.center { n / 2 } else { 0 },
            n,
            hop: o.hop_length,
            mode: o.pad_mode,
        };
        let (first, end) = (piece.first, piece.first + piece.frames);
        let mut peak_db = f32::NEG_INFINITY;
        if st.spectrum {
            let Scratch {
                buffer,
                fft,
                pow_a,
                pow_b,
                rows,
                edge_a,
                edge_b,
            } = scratch;
            let zero = Complex::new(0f64, 0f64);
            fit(buffer, n, zero);
            fit(fft, self.fft.get_inplace_scratch_len(), zero);
            for row in [
                &mut *pow_a,
                &mut *pow_b,
                &mut rows.magnitude,
                &mut rows.mel_source,
            ] {
                fit(row, bins, 0.0);
            }
            fit(&mut rows.mel, o.n_mels, 0.0);
            fit(edge_a, n, 0.0);
            fit(edge_b, n, 0.0);
            let mut since = 0;
            let mut f = first;
            while f < end {
                if since >= CHECK_EVERY {
                    if !progress.advance(since) {
                        return Err(ExtractError::Cancelled);
                    }
                    since = 0;
                }
                let a = framer.frame(f, edge_a);
                let b = (f + 1 < end).then(|| framer.frame(f + 1, edge_b));
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
                // A frame that is silent through its window (no sound, or
                // sound only where the window is zero, as in the padding
                // of a winLength shorter than nFft) gets exact zeros, as
                // librosa's own FFT of it does: not the ~1e-24 of its
                // partner's power that the shared FFT leaves in it, which
                // spectral centroid, bandwidth, rolloff and chroma would
                // normalise into values of their own.
                let silent_a = buffer.iter().all(|z| z.re == 0.0);
                let silent_b = b.is_some() && buffer.iter().all(|z| z.im == 0.0);
                self.fft.process_with_scratch(buffer, fft);
                split_powers(buffer, pow_a, pow_b);
                if silent_a {
                    pow_a.fill(0.0);
                }
                if silent_b {
                    pow_b.fill(0.0);
                }
                peak_db = peak_db.max(self.frame_features(f, pow_a, rows, piece));
                if b.is_some() {
                    peak_db = peak_db.max(self.frame_features(f + 1, pow_b, rows, piece));
                }
                f += 2;
                since += 2;
            }
            if progress.split && !progress.advance(since) {
                return Err(ExtractError::Cancelled);
            }
        }
        if st.wants(Feature::Rms) {
            let edge = &mut scratch.edge_a;
            fit(edge, n, 0.0);
            for f in first..end {
                let frame = framer.frame(f, edge);
                piece.row(Feature::Rms, f)[0] = (dot(frame, frame) / n as f32).sqrt();
            }
        }
        if st.wants(Feature::Zcr) {
            zero_crossing_rate(signal, o, piece);
        }
        Ok(peak_db)
    }

    /// `finish` in the fastest build this CPU runs.
    fn finish_dispatch(&self, piece: &mut Piece, floor: Floor) -> Floor {
        #[cfg(target_arch = "x86_64")]
        if crate::simd::has_avx2() {
            // SAFETY: the CPU supports every feature the function is compiled for.
            return unsafe { self.finish_avx2(piece, floor) };
        }
        self.finish(piece, floor)
    }

    /// `finish` compiled for AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn finish_avx2(&self, piece: &mut Piece, floor: Floor) -> Floor {
        self.finish(piece, floor)
    }

    /// Raises the piece's log-mel values to the floor and computes its
    /// MFCCs from the floored rows; returns the floor as it stands after
    /// the piece (a running one has seen its frames).
    #[inline(always)]
    fn finish(&self, piece: &mut Piece, mut floor: Floor) -> Floor {
        let wants_mfcc = self.stages.wants(Feature::Mfcc);
        for f in piece.first..piece.first + piece.frames {
            let row = piece.log_mel_row(f);
            let low = match &mut floor {
                Floor::Fixed(low) => *low,
                Floor::Running { top_db, peak } => {
                    *peak = row.iter().fold(*peak, |m, &v| m.max(v));
                    *peak - *top_db
                }
            };
            row.iter_mut().for_each(|v| *v = v.max(low));
            if let (true, Some(dct)) = (wants_mfcc, &self.dct) {
                let at = (f - piece.first) * piece.n_mels;
                let bins = piece.bins[Feature::Mfcc as usize];
                let mfcc_at = (f - piece.first) * bins;
                dct.apply(
                    &piece.log_mel[at..at + piece.n_mels],
                    &mut piece.rows[Feature::Mfcc as usize][mfcc_at..mfcc_at + bins],
                );
            }
        }
        floor
    }

    /// Every per-frame spectral feature of frame `f`, from its power
    /// spectrum; returns the frame's highest log-mel dB value.
    #[inline(always)]
    fn frame_features(&self, f: usize, pow: &[f32], rows: &mut Rows, piece: &mut Piece) -> f32 {
        let st = &self.stages;
        let o = &self.options;
        let mut peak_db = f32::NEG_INFINITY;
        let mag = &mut rows.magnitude;
        if st.magnitude {
            for (m, p) in mag.iter_mut().zip(pow) {
                *m = p.sqrt();
            }
        }
        if st.wants(Feature::Stft) {
            piece.row(Feature::Stft, f).copy_from_slice(mag);
        }
        if st.wants(Feature::Power) {
            piece.row(Feature::Power, f).copy_from_slice(pow);
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
                piece.row(Feature::Mel, f).copy_from_slice(&rows.mel);
            }
            if st.log_mel {
                // A separate pass over the row so the logarithm vectorises.
                let db_per_neper = 10.0 / std::f32::consts::LN_10;
                let db = piece.log_mel_row(f);
                for (d, v) in db.iter_mut().zip(&rows.mel) {
                    *d = db_per_neper * ln(v.max(AMIN));
                }
                peak_db = db.iter().fold(peak_db, |m, &v| m.max(v));
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
                piece.row(Feature::SpectralCentroid, f)[0] = c;
            }
            if st.wants(Feature::SpectralBandwidth) {
                let spread: f32 = mag
                    .iter()
                    .zip(&self.freqs)
                    .map(|(m, fr)| (m / norm) * (fr - c) * (fr - c))
                    .sum();
                piece.row(Feature::SpectralBandwidth, f)[0] = spread.sqrt();
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
            piece.row(Feature::SpectralRolloff, f)[0] = self.freqs[at];
        }
        if st.wants(Feature::SpectralFlatness) {
            let (mut log_sum, mut total) = (0f64, 0f64);
            for p in pow {
                let p = p.max(AMIN) as f64;
                log_sum += p.ln();
                total += p;
            }
            let bins = pow.len() as f64;
            piece.row(Feature::SpectralFlatness, f)[0] =
                ((log_sum / bins).exp() / (total / bins)) as f32;
        }
        if st.wants(Feature::Chroma) {
            let bins = pow.len();
            let row = piece.row(Feature::Chroma, f);
            for (c, value) in row.iter_mut().enumerate() {
                *value = dot(&self.chroma[c * bins..(c + 1) * bins], pow);
            }
            let peak = row.iter().fold(0f32, |m, v| m.max(v.abs()));
            if peak > f32::MIN_POSITIVE {
                row.iter_mut().for_each(|v| *v /= peak);
            }
        }
        peak_db
    }
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
/// that overlap an edge are assembled in a scratch buffer. `audio` holds
/// the signal's samples from `base` on, up to its end.
struct Framer<'a> {
    audio: &'a [f32],
    base: usize,
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
        let base = self.base as isize;
        let start = (f * self.hop) as isize - self.offset as isize;
        let len = self.audio.len() as isize;
        let at = start - base;
        if at >= 0 && at + self.n as isize <= len {
            return &self.audio[at as usize..at as usize + self.n];
        }
        if self.mode == PadMode::Constant {
            // Zeros around the part of the frame that lies inside the signal.
            let total = base + len;
            let from = start.clamp(0, total);
            let to = (start + self.n as isize).clamp(0, total);
            let at = (from - start) as usize;
            edge.fill(0.0);
            edge[at..at + (to - from) as usize]
                .copy_from_slice(&self.audio[(from - base) as usize..(to - base) as usize]);
        } else {
            for (i, value) in edge.iter_mut().enumerate() {
                *value = self.sample(start + i as isize);
            }
        }
        edge
    }

    /// The padded signal at position `t` (negative or past the end: padding).
    fn sample(&self, t: isize) -> f32 {
        let base = self.base as isize;
        let total = base + self.audio.len() as isize;
        if (0..total).contains(&t) {
            return self.audio[(t - base) as usize];
        }
        match self.mode {
            PadMode::Constant => 0.0,
            // numpy's "reflect": mirror around the edge samples, repeating
            // the reflection when the padding is longer than the signal.
            PadMode::Reflect if total == 1 => self.audio[0],
            PadMode::Reflect => {
                let period = 2 * (total - 1);
                let t = t.rem_euclid(period);
                self.audio[((if t < total { t } else { period - t }) - base) as usize]
            }
        }
    }
}

/// librosa's `zero_crossing_rate` for the piece's frames: frames of the
/// edge-padded signal (when centred), crossings where the sign bit
/// changes, values within 1e-10 of zero counting as +0. Sign flags and
/// crossings are computed once per sample in branch-free passes, then
/// summed per frame.
#[inline(always)]
fn zero_crossing_rate(signal: Signal, o: &FeatureOptions, piece: &mut Piece) {
    let (audio, base) = (signal.samples, signal.base);
    let (n, hop) = (o.n_fft, o.hop_length);
    let offset = if o.center { n / 2 } else { 0 };
    // The edge-padded signal from the piece's first frame to the end of its
    // last: padded position p holds audio[p - offset], clamped to the ends.
    let from = piece.first * hop;
    let to = (piece.first + piece.frames - 1) * hop + n;
    // (A frame starts at most at the clip's end, so `from <= offset + len`.)
    // (`first` is the signal's first sample only when the window starts
    // there, the one case it is needed.)
    let (first, last) = (audio[0], audio[audio.len() - 1]);
    let end = offset + signal.total();
    let (lo, hi) = (from.clamp(offset, end), to.clamp(offset, end));
    let mut padded = Vec::with_capacity(to - from);
    padded.resize(lo - from, first);
    padded.extend_from_slice(&audio[lo - offset - base..hi - offset - base]);
    padded.resize(to - from, last);
    let negative: Vec<u8> = padded
        .iter()
        .map(|x| (x.abs() > ZC_THRESHOLD && x.is_sign_negative()) as u8)
        .collect();
    // crossing[t] = 1 when the sign changes between samples t and t + 1.
    let crossing: Vec<u8> = negative.windows(2).map(|w| w[0] ^ w[1]).collect();
    for f in piece.first..piece.first + piece.frames {
        let start = f * hop - from;
        let count: u32 = crossing[start..start + n - 1]
            .iter()
            .map(|&c| c as u32)
            .sum();
        piece.row(Feature::Zcr, f)[0] = count as f32 / n as f32;
    }
}
