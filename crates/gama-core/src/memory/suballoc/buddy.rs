//! Binary buddy placement: power-of-two blocks, split in halves on the way
//! down and merged with their buddy (offset XOR size) on the way back.

use std::collections::{BTreeMap, BTreeSet};

use super::{Block, Placer};

/// Free blocks by size, then by (chunk, offset).
pub struct Buddy {
    smallest: u64,
    free: BTreeMap<u64, BTreeSet<(usize, u64)>>,
    chunk_sizes: Vec<u64>,
    total_free: u64,
}

impl Buddy {
    /// No chunks yet; no block is smaller than `smallest` (a power of two).
    pub fn new(smallest: u64) -> Self {
        Buddy {
            smallest,
            free: BTreeMap::new(),
            chunk_sizes: Vec::new(),
            total_free: 0,
        }
    }

    fn insert(&mut self, chunk: usize, offset: u64, size: u64) {
        self.free.entry(size).or_default().insert((chunk, offset));
        self.total_free += size;
    }

    fn remove(&mut self, chunk: usize, offset: u64, size: u64) -> bool {
        let removed = self
            .free
            .get_mut(&size)
            .is_some_and(|set| set.remove(&(chunk, offset)));
        if removed {
            self.total_free -= size;
            if self.free.get(&size).is_some_and(BTreeSet::is_empty) {
                self.free.remove(&size);
            }
        }
        removed
    }
}

impl Placer for Buddy {
    fn add_chunk(&mut self, chunk: usize, size: u64) {
        if self.chunk_sizes.len() <= chunk {
            self.chunk_sizes.resize(chunk + 1, 0);
        }
        self.chunk_sizes[chunk] = size;
        self.insert(chunk, 0, size);
    }

    fn take(&mut self, need: u64) -> Option<Block> {
        let (&size, set) = self.free.range(need..).next()?;
        let &(chunk, offset) = set.iter().next()?;
        self.remove(chunk, offset, size);
        let mut size = size;
        while size > need.max(self.smallest) {
            size /= 2;
            self.insert(chunk, offset + size, size);
        }
        Some(Block {
            chunk,
            offset,
            size,
        })
    }

    fn give_back(&mut self, block: Block) {
        let (chunk, mut offset, mut size) = (block.chunk, block.offset, block.size);
        while size < self.chunk_sizes[chunk] && self.remove(chunk, offset ^ size, size) {
            offset = offset.min(offset ^ size);
            size *= 2;
        }
        self.insert(chunk, offset, size);
    }

    fn take_whole_chunk(&mut self, chunk: usize, size: u64) -> bool {
        self.remove(chunk, 0, size)
    }

    fn free_summary(&self) -> (u64, u64) {
        (
            self.free.keys().next_back().copied().unwrap_or(0),
            self.total_free,
        )
    }

    fn blocks(&self) -> Vec<Block> {
        let mut out: Vec<Block> = self
            .free
            .iter()
            .flat_map(|(&size, set)| {
                set.iter().map(move |&(chunk, offset)| Block {
                    chunk,
                    offset,
                    size,
                })
            })
            .collect();
        out.sort_by_key(|b| (b.chunk, b.offset));
        out
    }
}
