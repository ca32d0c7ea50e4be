//! Buffers that the feature results of many clips share. Each result
//! handed to JS as an ArrayBuffer of its own costs the JS thread about
//! 4 µs (a Buffer, a weak reference and a finaliser): a fifth of its time
//! per clip in a batch. Results written into ranges of a few shared
//! buffers reach JS as one ArrayBuffer per buffer instead.
//!
//! Consecutive results share a buffer up to `ARENA_VALUES` values (a
//! larger one has its own), so a result kept alive holds little more than
//! its own values.

use std::sync::Arc;

use super::extract::{Extractor, Features};
use super::ClipResult;

/// Values (4 MiB) up to which consecutive results share one buffer.
pub(crate) const ARENA_VALUES: usize = 1 << 20;

/// Where each of a run of results lies: its buffer and its offset there.
///
/// Invariant: results placed in one buffer do not overlap and end within
/// `sizes[buffer]`.
pub(crate) struct ArenaLayout {
    sizes: Vec<usize>,
    places: Vec<(usize, usize)>,
}

impl ArenaLayout {
    /// Places results of `lens` values, in order.
    pub(crate) fn new(lens: &[usize]) -> Self {
        let (mut sizes, mut places) = (vec![0usize], Vec::with_capacity(lens.len()));
        for &len in lens {
            if sizes[sizes.len() - 1] > 0 && sizes[sizes.len() - 1] + len > ARENA_VALUES {
                sizes.push(0);
            }
            let last = sizes.len() - 1;
            places.push((last, sizes[last]));
            sizes[last] += len;
        }
        ArenaLayout { sizes, places }
    }

    /// The buffers, zeroed.
    pub(crate) fn zeroed(&self) -> Vec<Vec<f32>> {
        self.sizes.iter().map(|&n| vec![0.0; n]).collect()
    }

    /// Each result's range of `buffers` (made by `zeroed`), in order; `lens`
    /// as given to `new`.
    pub(crate) fn split<'a>(
        &self,
        buffers: &'a mut [Vec<f32>],
        lens: &[usize],
    ) -> Vec<&'a mut [f32]> {
        let mut rests: Vec<&mut [f32]> = buffers.iter_mut().map(Vec::as_mut_slice).collect();
        lens.iter()
            .zip(&self.places)
            .map(|(&len, &(buffer, _))| {
                let (out, tail) = std::mem::take(&mut rests[buffer]).split_at_mut(len);
                rests[buffer] = tail;
                out
            })
            .collect()
    }

    /// Result `i`'s buffer (of `buffers`, shared once written) and offset.
    pub(crate) fn place(&self, i: usize, buffers: &[Arc<Vec<f32>>]) -> (Arc<Vec<f32>>, usize) {
        let (buffer, offset) = self.places[i];
        (Arc::clone(&buffers[buffer]), offset)
    }
}

impl Extractor {
    /// Extracts every clip of `clips` on the rayon pool it is called from
    /// (clips spread over its threads, long ones split into pieces), each
    /// straight into its range of buffers the results share (see the
    /// module); results in order. `keep_going` as for `extract_parallel`.
    pub fn extract_many_shared<C: AsRef<[f32]> + Sync>(
        &self,
        clips: &[C],
        keep_going: &(dyn Fn(usize) -> bool + Sync),
    ) -> Vec<ClipResult> {
        use rayon::prelude::*;
        let lens: Vec<usize> = clips
            .iter()
            .map(|c| self.output_len(c.as_ref().len()).unwrap_or(0))
            .collect();
        let layout = ArenaLayout::new(&lens);
        let mut buffers = layout.zeroed();
        let outs = layout.split(&mut buffers, &lens);
        let written: Vec<_> = clips
            .par_iter()
            .zip(outs)
            .map(|(clip, out)| self.extract_parallel_into(clip.as_ref(), out, keep_going))
            .collect();
        let buffers: Vec<Arc<Vec<f32>>> = buffers.into_iter().map(Arc::new).collect();
        written
            .into_iter()
            .enumerate()
            .map(|(i, w)| {
                let (frames, items) = w?;
                let (buffer, offset) = layout.place(i, &buffers);
                Ok(Features::shared(buffer, offset, frames, items))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::{ExtractError, Feature, FeatureOptions, Values};

    #[test]
    fn consecutive_results_share_buffers_up_to_the_limit() {
        let lens = [10, 0, ARENA_VALUES - 10, 1, ARENA_VALUES + 5, 3];
        let layout = ArenaLayout::new(&lens);
        assert_eq!(layout.sizes, [ARENA_VALUES, 1, ARENA_VALUES + 5, 3]);
        assert_eq!(
            layout.places,
            [(0, 0), (0, 10), (0, 10), (1, 0), (2, 0), (3, 0)]
        );
        let mut buffers = layout.zeroed();
        let outs = layout.split(&mut buffers, &lens);
        let got: Vec<usize> = outs.iter().map(|o| o.len()).collect();
        assert_eq!(got, lens);
    }

    #[test]
    fn clips_extracted_together_share_buffers_and_each_equals_its_own_extraction() {
        let mut o = FeatureOptions::new(16_000.0);
        o.features = vec![Feature::LogMel, Feature::Mfcc, Feature::Rms];
        let extractor = Extractor::new(o).unwrap();
        let clip = |len: usize, k: usize| -> Vec<f32> {
            (0..len)
                .map(|i| ((i * (k + 3)) as f32 * 0.001).sin() * 0.4)
                .collect()
        };
        let mut clips: Vec<Vec<f32>> = (0..12).map(|k| clip(16_000 + 997 * k, k)).collect();
        clips.insert(5, Vec::new());
        // A clip whose results alone exceed a shared buffer.
        let mut long = 100_000;
        while extractor.output_len(long).unwrap() <= ARENA_VALUES {
            long *= 2;
        }
        clips.push(clip(long, 99));
        let results = extractor.extract_many_shared(&clips, &|_| true);
        assert_eq!(results.len(), clips.len());
        assert_eq!(results[5], Err(ExtractError::Empty));
        let arena = |r: &ClipResult| match r.clone().unwrap().into_parts().0 {
            Values::Shared { arena, .. } => Arc::as_ptr(&arena),
            Values::Own(_) => panic!("a result of a shared extraction owns its values"),
        };
        let last = clips.len() - 1;
        assert_eq!(arena(&results[0]), arena(&results[12]), "short clips share");
        assert_ne!(
            arena(&results[0]),
            arena(&results[last]),
            "a long clip's results are a buffer of their own"
        );
        for (clip, result) in clips.iter().zip(&results) {
            assert_eq!(*result, extractor.extract(clip));
        }
    }
}
