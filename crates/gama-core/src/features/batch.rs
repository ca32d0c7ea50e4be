//! A batch of extractions started on the rayon pool from any thread (JS's
//! included: the work starts at once, without waiting for a libuv thread),
//! collected in order by one waiter. Clips go in groups whose results
//! share buffers (`arena`), each group one job whose clips spread over the
//! pool.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use super::arena::ARENA_VALUES;
use super::error::{unwinding, ExtractError};
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

    /// Starts every clip of `clips` (their results at indices from 0), in
    /// groups whose results share buffers of about `ARENA_VALUES` values.
    pub fn start(extractor: Arc<Extractor>, clips: Vec<Vec<f32>>) -> Self {
        let mut run = BatchRun::new(extractor, clips.len());
        let (mut group, mut values, mut first) = (Vec::new(), 0, 0);
        for clip in clips {
            let len = run.extractor.output_len(clip.len()).unwrap_or(0);
            if !group.is_empty() && values + len > ARENA_VALUES {
                let n = group.len();
                run.push(first, std::mem::take(&mut group));
                (values, first) = (0, first + n);
            }
            values += len;
            group.push(clip);
        }
        if !group.is_empty() {
            run.push(first, group);
        }
        run
    }

    /// Starts `clips` as one job of the pool (their clips spread over its
    /// threads, long ones split into pieces), their results sharing
    /// buffers, at indices `first..`. Clips pushed again at the same index
    /// replace the earlier results, whichever finishes last; an index past
    /// the batch's room panics.
    pub fn push(&mut self, first: usize, clips: Vec<Vec<f32>>) {
        let extractor = self.extractor.clone();
        self.spawn(first, clips.len(), move |keep_going| {
            extractor.extract_many_shared(&clips, keep_going)
        });
    }

    /// Runs `job` on the pool for the `count` clips at `first..`: it gets
    /// whether to go on (false once the batch is abandoned) and returns
    /// their results. A panic gives each of them `ExtractError::Panicked`
    /// (unwinding out of a pool job would abort the process and leave the
    /// waiter waiting).
    fn spawn<J>(&mut self, first: usize, count: usize, job: J)
    where
        J: FnOnce(&(dyn Fn(usize) -> bool + Sync)) -> Vec<ClipResult> + Send + 'static,
    {
        {
            let mut so_far = self.shared.results.lock();
            assert!(
                first + count <= so_far.results.len(),
                "clips {first}..{} are outside the batch",
                first + count
            );
            so_far.left += count;
        }
        let shared = self.shared.clone();
        rayon::spawn(move || {
            let keep_going = |_| !shared.abandoned.load(Ordering::Relaxed);
            let results = unwinding(|| Ok(job(&keep_going)))
                .unwrap_or_else(|panicked| vec![Err(panicked); count]);
            let mut so_far = shared.results.lock();
            so_far.left -= count;
            for (slot, result) in so_far.results[first..first + count].iter_mut().zip(results) {
                *slot = Some(result);
            }
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
            // The first two clips as one group, the others one by one.
            run.push(0, clips[..2].to_vec());
            for (i, clip) in clips.iter().enumerate().skip(2) {
                run.push(i, vec![clip.clone()]);
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
    fn a_started_batch_gives_each_clip_its_own_result_in_buffers_its_group_shares() {
        let mut o = FeatureOptions::new(16_000.0);
        o.features = vec![Feature::LogMel, Feature::Mfcc];
        let extractor = Arc::new(Extractor::new(o).unwrap());
        let mut clips: Vec<Vec<f32>> = (0..40)
            .map(|k| {
                (0..8_000 + 111 * k)
                    .map(|i| (i as f32 * 0.003 * k as f32).cos())
                    .collect()
            })
            .collect();
        clips[7] = vec![f32::INFINITY; 100];
        let results = BatchRun::start(extractor.clone(), clips.clone()).wait();
        assert_eq!(results.len(), clips.len());
        for (clip, result) in clips.iter().zip(&results) {
            assert_eq!(*result, extractor.extract(clip));
        }
        let arena = |i: usize| match results[i].clone().unwrap().into_parts().0 {
            crate::features::Values::Shared { arena, .. } => Arc::as_ptr(&arena),
            crate::features::Values::Own(_) => panic!("clip {i} owns its values"),
        };
        assert_eq!(arena(0), arena(39), "small clips share one buffer");
    }

    #[test]
    fn a_job_that_panics_gives_its_clips_an_error_and_the_others_their_results() {
        let extractor = Arc::new(Extractor::new(FeatureOptions::new(16_000.0)).unwrap());
        let clip = vec![0.25; 4_000];
        let mut run = BatchRun::new(extractor.clone(), 4);
        run.push(0, vec![clip.clone()]);
        run.spawn(1, 2, |_| panic!("a bug in a job"));
        run.push(3, vec![clip.clone()]);
        let results = run.wait();
        let panicked = Err(ExtractError::Panicked("a bug in a job".into()));
        assert_eq!(results[1..3], [panicked.clone(), panicked]);
        for i in [0, 3] {
            assert_eq!(results[i], extractor.extract(&clip), "clip {i}");
        }
        let e = results[1].clone().unwrap_err();
        assert_eq!(crate::error::Coded::code(&e), "E_PANIC");
    }

    #[test]
    fn a_batch_dropped_unfinished_lets_its_jobs_end() {
        let extractor = Arc::new(Extractor::new(FeatureOptions::new(16_000.0)).unwrap());
        let mut run = BatchRun::new(extractor, 64);
        for i in 0..64 {
            run.push(i, vec![vec![0.25; 50_000]]);
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
