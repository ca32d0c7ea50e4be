//! EXTRACT_FEATURES batches on the GPU (`Config::feature_device`): a
//! batch's stopped items and cache hits settle first, the rest go to the
//! GPU in one call per set of options (device memory from the processor's
//! memory manager, so within its GPU budget), and whatever the GPU does not
//! take runs on the workers as any batch does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::item::{Input, Item, ItemError, ItemErrorKind, ItemId, Output, EXTRACT_FEATURES};
use super::native::{self, cached, extract_error, store};
use super::processor::Engine;
use crate::features::gpu::{auto_prefers_gpu, extract_batch_gpu, FeatureDevice};
use crate::features::{shared_extractor, ExtractError, FeatureOptions};
use crate::memory::MemoryManager;

/// One item's outcome and the time it took.
pub(super) type Outcome = (ItemId, Result<Output, ItemError>, Duration);

impl Engine {
    /// The outcomes of `items` when they are an EXTRACT_FEATURES batch meant
    /// for the GPU (and the memory manager has one); `None` otherwise.
    /// Items the GPU does not take are run by `on_cpu`.
    pub(super) fn run_on_gpu(
        &self,
        items: &[Item],
        deadline: Option<Instant>,
        on_cpu: &(dyn Fn(&Item) -> Outcome + Sync),
    ) -> Option<Vec<Outcome>> {
        if self.config.feature_device == FeatureDevice::Cpu
            || &*items.first()?.op != EXTRACT_FEATURES
        {
            return None;
        }
        let manager = self.memory.as_ref().filter(|m| m.has_gpu())?;
        let mut outcomes: Vec<Option<Outcome>> = items.iter().map(|_| None).collect();
        let mut groups: Vec<(&FeatureOptions, Vec<usize>)> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let Input::Audio {
                samples,
                options,
                cache_key,
            } = &item.input
            else {
                outcomes[i] = Some(on_cpu(item));
                continue;
            };
            let stopped = item.stop.error().or_else(|| {
                deadline
                    .is_some_and(|d| Instant::now() >= d)
                    .then(native::timed_out)
            });
            let hit = || {
                let (key, cache) = cache_key.as_deref().zip(self.cache.as_ref())?;
                let frames = shared_extractor(options)
                    .ok()?
                    .frame_count(samples.len())
                    .ok()?;
                cached(cache, key, frames, &options.features)
            };
            if let Some(reason) = stopped {
                outcomes[i] = Some((item.id, Err(reason), Duration::ZERO));
            } else if let Some(features) = hit() {
                outcomes[i] = Some((item.id, Ok(Output::Features(features)), Duration::ZERO));
            } else {
                match groups.iter_mut().find(|(o, _)| *o == &**options) {
                    Some((_, members)) => members.push(i),
                    None => groups.push((&**options, vec![i])),
                }
            }
        }
        for (options, members) in groups {
            self.run_group(items, options, &members, manager, on_cpu, &mut outcomes);
        }
        Some(
            outcomes
                .into_iter()
                .map(|o| o.expect("every item has an outcome"))
                .collect(),
        )
    }

    /// Runs the items `members` of `items`, which share `options`, on the
    /// GPU when it takes them, else on the workers.
    fn run_group(
        &self,
        items: &[Item],
        options: &FeatureOptions,
        members: &[usize],
        manager: &Arc<MemoryManager>,
        on_cpu: &(dyn Fn(&Item) -> Outcome + Sync),
        outcomes: &mut [Option<Outcome>],
    ) {
        let samples = |i: usize| match &items[i].input {
            Input::Audio { samples, .. } => &samples[..],
            Input::Js => &[],
        };
        let extractor = match shared_extractor(options) {
            Ok(e) => e,
            Err(e) => {
                let error =
                    ItemError::new(ItemErrorKind::Invalid, "ERR_OUT_OF_RANGE", e.to_string());
                for &i in members {
                    outcomes[i] = Some((items[i].id, Err(error.clone()), Duration::ZERO));
                }
                return;
            }
        };
        let frames: u64 = members
            .iter()
            .map(|&i| extractor.frame_count(samples(i).len()).unwrap_or(0) as u64)
            .sum();
        let device = self.config.feature_device;
        let cpu = |outcomes: &mut [Option<Outcome>]| {
            for &i in members {
                outcomes[i] = Some(on_cpu(&items[i]));
            }
        };
        if device == FeatureDevice::Auto && !auto_prefers_gpu(options, frames) {
            return cpu(outcomes);
        }
        let clips: Vec<&[f32]> = members.iter().map(|&i| samples(i)).collect();
        let started = Instant::now();
        match extract_batch_gpu(&extractor, &clips, Some(manager)) {
            Ok(batch) => {
                self.state.lock().stats.gpu_batch(batch.timing);
                let share = started.elapsed() / members.len().max(1) as u32;
                for (&i, result) in members.iter().zip(batch.results) {
                    let item = &items[i];
                    if let (
                        Ok(features),
                        Input::Audio {
                            cache_key: Some(key),
                            ..
                        },
                    ) = (&result, &item.input)
                    {
                        if let Some(cache) = &self.cache {
                            store(cache, key, features, share);
                        }
                    }
                    let result = result.map(Output::Features).map_err(extract_error);
                    outcomes[i] = Some((item.id, result, share));
                }
            }
            // 'cuda' asked for the GPU: its failures are the items' (but a
            // batch too large for the GPU budget still runs, on the workers).
            Err(e) if device == FeatureDevice::Cuda && !matches!(e, ExtractError::GpuBudget(_)) => {
                for &i in members {
                    outcomes[i] =
                        Some((items[i].id, Err(extract_error(e.clone())), Duration::ZERO));
                }
            }
            Err(_) => {
                self.state.lock().stats.gpu_fallback();
                cpu(outcomes);
            }
        }
    }
}
