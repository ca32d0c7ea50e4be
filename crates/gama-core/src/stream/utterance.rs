//! One utterance's framing: samples arrive in chunks of any size, and each
//! frame is computed as soon as its last sample is in, from a window that
//! keeps only what later frames still need.
//!
//! Invariant: `window` holds samples `base..received` of the utterance;
//! frames `0..next` have been handed out, `next` is even until `finish`.
//! Frames come in even-sized runs from an even first frame, so they pair up
//! in FFTs as in a whole-clip extraction and are bit-identical to it.

use std::sync::Arc;

use crate::features::{first_non_finite, ExtractError, Extractor, Features, Floor, Signal};

/// How a stream applies librosa's `top_db` to log-mel values (and the
/// MFCCs computed from them), which offline needs the whole clip's peak.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TopDbReference {
    /// No floor: frames equal offline extraction with `topDb: null`.
    #[default]
    None,
    /// Each frame is floored at the highest log-mel value of it and every
    /// frame before it, minus `top_db`.
    Running,
}

/// Frames `first..first + features.frames` of an utterance.
#[derive(Debug)]
pub struct Block {
    /// Index of the block's first frame in the utterance.
    pub first: usize,
    /// The frames' features.
    pub features: Features,
}

/// The framing state of one utterance.
pub struct Utterance {
    extractor: Arc<Extractor>,
    window: Vec<f32>,
    base: usize,
    next: usize,
    floor: Floor,
    /// With `keeping_whole`: what `whole` joins.
    kept: Option<Kept>,
}

/// A copy of every block an utterance handed out, and the log-mel rows
/// `Extractor::join_runs` needs.
///
/// Invariant: `values` counts the values of every run.
#[derive(Default)]
struct Kept {
    runs: Vec<Features>,
    log_mel: Vec<f32>,
    values: usize,
}

impl Utterance {
    /// An utterance with no samples yet, extracted with `extractor`.
    pub fn new(extractor: Arc<Extractor>, reference: TopDbReference) -> Self {
        let floor = match (reference, extractor.options().top_db) {
            (TopDbReference::Running, Some(top_db)) => Floor::Running {
                top_db: top_db as f32,
                peak: f32::NEG_INFINITY,
            },
            _ => Floor::Fixed(f32::NEG_INFINITY),
        };
        Utterance {
            extractor,
            window: Vec::new(),
            base: 0,
            next: 0,
            floor,
            kept: None,
        }
    }

    /// The same, keeping a copy of its frames for `whole`.
    pub fn keeping_whole(mut self) -> Self {
        self.kept = Some(Kept::default());
        self
    }

    /// With `keeping_whole`, once finished: the whole utterance's features
    /// as offline extraction of all its samples gives them (the `top_db`
    /// floor at the whole utterance's peak, whatever the reference).
    pub fn whole(&mut self) -> Option<Features> {
        let kept = self.kept.take()?;
        Some(self.extractor.join_runs(&kept.runs, kept.log_mel))
    }

    /// Samples received so far.
    pub fn received(&self) -> usize {
        self.base + self.window.len()
    }

    /// Frames handed out so far.
    pub fn frames_done(&self) -> usize {
        self.next
    }

    /// Bytes the window and the kept frames hold allocated.
    pub fn window_bytes(&self) -> usize {
        let kept = self
            .kept
            .as_ref()
            .map_or(0, |k| k.values + k.log_mel.capacity());
        (self.window.capacity() + kept) * std::mem::size_of::<f32>()
    }

    /// Appends samples (finite ones: a NaN or infinity is refused with its
    /// index in the utterance, and nothing is appended).
    pub fn push(&mut self, samples: &[f32]) -> Result<(), ExtractError> {
        if let Some((i, value)) = first_non_finite(samples) {
            return Err(ExtractError::NotFinite {
                index: self.received() + i,
                value,
            });
        }
        self.window.extend_from_slice(samples);
        Ok(())
    }

    /// The frames whose samples are all in and not yet handed out (an even
    /// number of them), if any.
    pub fn ready(&mut self) -> Result<Option<Block>, ExtractError> {
        let count = self.complete_frames().saturating_sub(self.next) & !1;
        self.compute(count)
    }

    /// Every frame not yet handed out, the last ones padded as the end of
    /// a clip is; fails as offline extraction of the utterance would (no
    /// samples, or too few without centring).
    pub fn finish(&mut self) -> Result<Option<Block>, ExtractError> {
        if self.received() == 0 {
            return Err(ExtractError::Empty);
        }
        let total = self.extractor.frame_count(self.received())?;
        self.compute(total.saturating_sub(self.next))
    }

    /// Frames whose last sample is in. With centring, the first frames
    /// also need `n_fft / 2 + 1` samples in: their reflected padding
    /// mirrors that many.
    fn complete_frames(&self) -> usize {
        let o = self.extractor.options();
        let offset = if o.center { o.n_fft / 2 } else { 0 };
        let received = self.received();
        if received + offset < o.n_fft || received <= offset {
            return 0;
        }
        (received + offset - o.n_fft) / o.hop_length + 1
    }

    fn compute(&mut self, count: usize) -> Result<Option<Block>, ExtractError> {
        if count == 0 {
            return Ok(None);
        }
        let signal = Signal {
            samples: &self.window,
            base: self.base,
        };
        let rows = self.kept.as_mut().map(|k| &mut k.log_mel);
        let features =
            self.extractor
                .extract_range(signal, self.next, count, &mut self.floor, rows)?;
        if let Some(kept) = &mut self.kept {
            kept.values += features.iter().map(|(_, m)| m.data.len()).sum::<usize>();
            kept.runs.push(features.clone());
        }
        let block = Block {
            first: self.next,
            features,
        };
        self.next += count;
        self.trim();
        Ok(Some(block))
    }

    /// Drops samples no later frame needs: those before the next frame's
    /// start, less `n_fft` more (what the last frames' reflected padding
    /// mirrors). Done once they are half the window, so the copy is paid
    /// for by as many samples pushed.
    fn trim(&mut self) {
        let o = self.extractor.options();
        let offset = if o.center { o.n_fft / 2 } else { 0 };
        let keep_from = (self.next * o.hop_length).saturating_sub(offset + o.n_fft);
        let surplus = keep_from.saturating_sub(self.base);
        if surplus > 0 && surplus >= self.window.len() / 2 {
            self.window.drain(..surplus);
            self.base += surplus;
        }
    }
}
