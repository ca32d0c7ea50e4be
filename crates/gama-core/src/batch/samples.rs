//! An item's samples: a range of one buffer that the items of an intake
//! chunk share, so taking in a chunk of small items costs one allocation,
//! not one per item (per-item buffers, allocated on the JS thread and freed
//! on the workers, were measured contending for the allocator's lock).

use std::ops::{Deref, Range};
use std::sync::{Arc, OnceLock};

use super::recycle;

/// A buffer of samples that items share; a pool-sized one goes back to
/// the intake pool (`recycle`) when the last item lets go of it.
#[derive(Debug)]
pub struct SampleBuffer(Vec<f32>);

impl SampleBuffer {
    /// An empty buffer for an intake chunk, reused from the pool where it can be.
    pub fn recycled() -> Vec<f32> {
        recycle::take()
    }
}

impl From<Vec<f32>> for SampleBuffer {
    fn from(samples: Vec<f32>) -> Self {
        SampleBuffer(samples)
    }
}

impl Deref for SampleBuffer {
    type Target = Vec<f32>;

    fn deref(&self) -> &Vec<f32> {
        &self.0
    }
}

impl Drop for SampleBuffer {
    fn drop(&mut self) {
        recycle::give_back(std::mem::take(&mut self.0));
    }
}

/// Samples of one item.
///
/// Invariant: `start <= end <= buffer.len()`.
#[derive(Clone, Debug)]
pub struct Samples {
    buffer: Arc<SampleBuffer>,
    start: usize,
    end: usize,
}

impl Samples {
    /// `range` of `buffer`; `None` when the range is not inside it.
    pub fn new(buffer: Arc<SampleBuffer>, range: Range<usize>) -> Option<Self> {
        (range.start <= range.end && range.end <= buffer.len()).then_some(Samples {
            buffer,
            start: range.start,
            end: range.end,
        })
    }

    /// No samples (shares one empty buffer: allocates nothing).
    pub fn empty() -> Self {
        static EMPTY: OnceLock<Arc<SampleBuffer>> = OnceLock::new();
        Samples {
            buffer: EMPTY
                .get_or_init(|| Arc::new(SampleBuffer(Vec::new())))
                .clone(),
            start: 0,
            end: 0,
        }
    }
}

impl From<Vec<f32>> for Samples {
    fn from(samples: Vec<f32>) -> Self {
        Samples {
            end: samples.len(),
            buffer: Arc::new(SampleBuffer(samples)),
            start: 0,
        }
    }
}

impl Deref for Samples {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        &self.buffer[self.start..self.end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_of_a_chunk_read_their_own_range_of_the_shared_buffer() {
        let buffer = Arc::new(SampleBuffer::from(
            (0..10).map(|i| i as f32).collect::<Vec<_>>(),
        ));
        let a = Samples::new(buffer.clone(), 0..4).unwrap();
        let b = Samples::new(buffer.clone(), 4..10).unwrap();
        assert_eq!(&*a, &[0.0, 1.0, 2.0, 3.0]);
        assert_eq!(b.len(), 6);
        assert!(Samples::new(buffer.clone(), 8..11).is_none());
        #[allow(clippy::reversed_empty_ranges)]
        let reversed = 5..3;
        assert!(Samples::new(buffer, reversed).is_none());
        assert!(Samples::empty().is_empty());
        assert_eq!(&*Samples::from(vec![1.0, 2.0]), &[1.0, 2.0]);
    }
}
