//! A batch of extractions started clip by clip on the rayon pool from any
//! thread (JS's included: the work starts at once, without waiting for a
//! libuv thread), collected in order by one waiter.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use super::error::ExtractError;
use super::extract::{Extractor, Features};

/// One clip's result.
pub type ClipResult = Result<Features, ExtractError>;

/// The results so far.
///
/// Invariant: `left` counts the clips pushed whose result is not yet in.
struct Results {
    results: Vec<Option<ClipResult>>,
    left: usize,
}

/// What the pool's jobs and the waiter share.
struct Shared {
    results: Mutex<Results>,
    done: Condvar,
    /// Set when the batch is dropped unfinished: jobs not yet started skip
    /// their clip.
    abandoned: AtomicBool,
}

/// A batch of extractions in flight on the rayon pool.
pub struct BatchRun {
    extractor: Arc<Extractor>,
    shared: Arc<Shared>,
    waited: bool,
}

impl BatchRun {
    /// A batch with room for `clips` clips, extracted with `extractor`.
    pub fn new(extractor: Arc<Extractor>, clips: usize) -> Self {
        BatchRun {
            extractor,
            shared: Arc::new(Shared {
                results: Mutex::new(Results {
                    results: (0..clips).map(|_| None).collect(),
                    left: 0,
                }),
                done: Condvar::new(),
                abandoned: AtomicBool::new(false),
            }),
            waited: false,
        }
    }

    /// Starts clip `index` on the pool (a long clip is split into pieces of
    /// frames there). A clip pushed again at the same index replaces the
    /// earlier result, whichever finishes last; an index past the batch's
    /// room panics.
    pub fn push(&mut self, index: usize, clip: Vec<f32>) {
        {
            let mut so_far = self.shared.results.lock();
            assert!(
                index < so_far.results.len(),
                "clip {index} is outside the batch"
            );
            so_far.left += 1;
        }
        let shared = self.shared.clone();
        let extractor = self.extractor.clone();
        rayon::spawn(move || {
            let result = if shared.abandoned.load(Ordering::Relaxed) {
                Err(ExtractError::Cancelled)
            } else {
                extractor.extract_parallel(&clip, &|_| true)
            };
            drop(clip);
            let mut so_far = shared.results.lock();
            so_far.results[index] = Some(result);
            so_far.left -= 1;
            if so_far.left == 0 {
                shared.done.notify_all();
            }
        });
    }

    /// Waits for every clip pushed and returns the results in order (a
    /// clip never pushed gets `ExtractError::Cancelled`).
    pub fn wait(mut self) -> Vec<ClipResult> {
        self.waited = true;
        let mut so_far = self.shared.results.lock();
        while so_far.left > 0 {
            self.shared.done.wait(&mut so_far);
        }
        std::mem::take(&mut so_far.results)
            .into_iter()
            .map(|r| r.unwrap_or(Err(ExtractError::Cancelled)))
            .collect()
    }
}

impl Drop for BatchRun {
    fn drop(&mut self) {
        if !self.waited {
            self.shared.abandoned.store(true, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::{Feature, FeatureOptions};

    #[test]
    fn results_come_back_in_clip_order_whatever_finishes_first() {
        let mut o = FeatureOptions::new(16_000.0);
        o.features = vec![Feature::LogMel, Feature::Rms];
        let extractor = Arc::new(Extractor::new(o).unwrap());
        let clips: Vec<Vec<f32>> = [400_000, 3_000, 90_000, 10]
            .iter()
            .map(|&len| (0..len).map(|i| (i as f32 * 0.01).sin()).collect())
            .collect();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let results = pool.install(|| {
            let mut run = BatchRun::new(extractor.clone(), clips.len() + 1);
            for (i, clip) in clips.iter().enumerate() {
                run.push(i, clip.clone());
            }
            run.wait()
        });
        assert_eq!(results.len(), clips.len() + 1);
        for (clip, result) in clips.iter().zip(&results) {
            assert!(*result == extractor.extract(clip));
        }
        assert_eq!(
            results[clips.len()],
            Err(ExtractError::Cancelled),
            "never pushed"
        );
    }

    #[test]
    fn a_batch_dropped_unfinished_lets_its_jobs_end() {
        let extractor = Arc::new(Extractor::new(FeatureOptions::new(16_000.0)).unwrap());
        let mut run = BatchRun::new(extractor, 64);
        for i in 0..64 {
            run.push(i, vec![0.25; 50_000]);
        }
        let shared = run.shared.clone();
        drop(run);
        // Every job still ends (skipping its clip once it sees the batch
        // abandoned) and lets go of the shared state.
        let mut so_far = shared.results.lock();
        while so_far.left > 0 {
            shared.done.wait(&mut so_far);
        }
    }
}
