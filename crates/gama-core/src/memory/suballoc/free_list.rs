//! Best-, first- and worst-fit placement over free blocks kept twice: by
//! address (to find neighbours to merge with) and by size (to choose).

use std::collections::{BTreeMap, BTreeSet};

use super::{Block, Placer, Strategy};

/// Free blocks of every chunk.
pub struct FreeLists {
    strategy: Strategy,
    /// (chunk, offset) -> size.
    by_address: BTreeMap<(usize, u64), u64>,
    /// (size, chunk, offset).
    by_size: BTreeSet<(u64, usize, u64)>,
    total_free: u64,
}

impl FreeLists {
    /// Empty lists choosing by `strategy` (not `Buddy`).
    pub fn new(strategy: Strategy) -> Self {
        FreeLists {
            strategy,
            by_address: BTreeMap::new(),
            by_size: BTreeSet::new(),
            total_free: 0,
        }
    }

    fn insert(&mut self, chunk: usize, offset: u64, size: u64) {
        self.by_address.insert((chunk, offset), size);
        self.by_size.insert((size, chunk, offset));
        self.total_free += size;
    }

    fn remove(&mut self, chunk: usize, offset: u64, size: u64) {
        self.by_address.remove(&(chunk, offset));
        self.by_size.remove(&(size, chunk, offset));
        self.total_free -= size;
    }
}

impl Placer for FreeLists {
    fn add_chunk(&mut self, chunk: usize, size: u64) {
        self.insert(chunk, 0, size);
    }

    fn take(&mut self, need: u64) -> Option<Block> {
        let (size, chunk, offset) = match self.strategy {
            Strategy::BestFit => self.by_size.range((need, 0, 0)..).next().copied()?,
            Strategy::WorstFit => self
                .by_size
                .last()
                .copied()
                .filter(|&(s, _, _)| s >= need)?,
            Strategy::FirstFit | Strategy::Buddy => self
                .by_address
                .iter()
                .find(|(_, &s)| s >= need)
                .map(|(&(c, o), &s)| (s, c, o))?,
        };
        self.remove(chunk, offset, size);
        if size > need {
            self.insert(chunk, offset + need, size - need);
        }
        Some(Block {
            chunk,
            offset,
            size: need,
        })
    }

    fn give_back(&mut self, block: Block) {
        let (chunk, mut offset, mut size) = (block.chunk, block.offset, block.size);
        let before = self
            .by_address
            .range(..(chunk, offset))
            .next_back()
            .map(|(&(c, o), &s)| (c, o, s));
        if let Some((c, o, s)) = before {
            if c == chunk && o + s == offset {
                self.remove(c, o, s);
                offset = o;
                size += s;
            }
        }
        if let Some(&s) = self.by_address.get(&(chunk, offset + size)) {
            self.remove(chunk, offset + size, s);
            size += s;
        }
        self.insert(chunk, offset, size);
    }

    fn take_whole_chunk(&mut self, chunk: usize, size: u64) -> bool {
        let whole = self.by_address.get(&(chunk, 0)) == Some(&size);
        if whole {
            self.remove(chunk, 0, size);
        }
        whole
    }

    fn free_summary(&self) -> (u64, u64) {
        (
            self.by_size.last().map_or(0, |&(s, _, _)| s),
            self.total_free,
        )
    }

    fn blocks(&self) -> Vec<Block> {
        self.by_address
            .iter()
            .map(|(&(chunk, offset), &size)| Block {
                chunk,
                offset,
                size,
            })
            .collect()
    }
}
