//! A sub-allocator over address ranges ("chunks") obtained from a backing
//! allocator (device memory, in the GPU pool): best-fit, first-fit and
//! worst-fit over address-ordered free lists that split on allocation and
//! merge adjacent free blocks on release, or a binary buddy system. Pure
//! bookkeeping: it hands out (chunk, offset, size) and never touches memory.
//!
//! Invariants: live blocks never overlap and start at multiples of the
//! alignment; a chunk's free blocks and live blocks tile it exactly; freeing
//! every block leaves one free block per chunk.

mod buddy;
mod free_list;

use std::fmt;
use std::time::{Duration, Instant};

use buddy::Buddy;
use free_list::FreeLists;

/// How a free block is chosen for a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// The smallest free block that fits.
    BestFit,
    /// The free block at the lowest address that fits.
    FirstFit,
    /// The largest free block.
    WorstFit,
    /// Power-of-two blocks split in halves and merged with their buddy.
    Buddy,
}

/// A region handed out by `SubAllocator::allocate`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Block {
    /// Index of the chunk (in growth order).
    pub chunk: usize,
    /// Offset of the block in its chunk.
    pub offset: u64,
    /// Bytes reserved for it (the request rounded up to the alignment or power of two).
    pub size: u64,
}

/// Limits of a sub-allocator.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// Block placement strategy.
    pub strategy: Strategy,
    /// Every block starts at a multiple of this (a power of two).
    pub alignment: u64,
    /// Bytes of each new chunk (larger requests get a chunk of their own size).
    pub chunk_size: u64,
    /// Most bytes of chunks held at once.
    pub max_bytes: u64,
}

/// Why a request could not be served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllocError {
    /// Size 0.
    ZeroSize,
    /// Nothing fits and growing would pass `max_bytes`.
    OutOfMemory {
        /// Bytes asked for.
        requested: u64,
        /// Bytes free in the chunks held.
        free: u64,
        /// Bytes that could still be reserved.
        growable: u64,
    },
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllocError::ZeroSize => write!(f, "size must be greater than 0"),
            AllocError::OutOfMemory {
                requested,
                free,
                growable,
            } => write!(
                f,
                "cannot allocate {requested} bytes: {free} bytes free in the pool (largest block too small) and {growable} bytes left to grow"
            ),
        }
    }
}

impl std::error::Error for AllocError {}

/// Occupancy and performance of a sub-allocator.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// Bytes in live blocks.
    pub allocated: u64,
    /// Bytes of chunks held.
    pub reserved: u64,
    /// Largest free block.
    pub largest_free: u64,
    /// 1 - largest free / total free (0 when nothing is free).
    pub fragmentation: f64,
    /// Live blocks.
    pub blocks: u64,
    /// Chunks held.
    pub chunks: u64,
    /// Allocations served.
    pub allocations: u64,
    /// Total time spent in `allocate`.
    pub allocation_time: Duration,
}

/// Free-block bookkeeping of one family of strategies.
trait Placer: Send {
    /// A new chunk, entirely free.
    fn add_chunk(&mut self, chunk: usize, size: u64);
    /// A free block for `need` bytes (already rounded), split as needed.
    fn take(&mut self, need: u64) -> Option<Block>;
    /// Returns a block, merging it with free neighbours.
    fn give_back(&mut self, block: Block);
    /// Removes chunk `chunk` if it is one whole free block of `size` bytes.
    fn take_whole_chunk(&mut self, chunk: usize, size: u64) -> bool;
    /// (largest free block, total free bytes).
    fn free_summary(&self) -> (u64, u64);
    /// Free blocks in address order.
    fn blocks(&self) -> Vec<Block>;
}

/// Hands out blocks of chunks, growing by chunks up to a limit.
pub struct SubAllocator {
    config: Config,
    placement: Box<dyn Placer>,
    /// Size of each chunk held (0 once released by `trim`).
    chunks: Vec<u64>,
    stats: Stats,
}

impl SubAllocator {
    /// An empty allocator; `alignment` is rounded up to a power of two.
    pub fn new(mut config: Config) -> Self {
        config.alignment = config.alignment.max(1).next_power_of_two();
        let placement: Box<dyn Placer> = match config.strategy {
            Strategy::Buddy => Box::new(Buddy::new(config.alignment)),
            s => Box::new(FreeLists::new(s)),
        };
        SubAllocator {
            config,
            placement,
            chunks: Vec::new(),
            stats: Stats::default(),
        }
    }

    /// The limits in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Bytes a request of `size` reserves.
    fn rounded(&self, size: u64) -> u64 {
        match self.config.strategy {
            Strategy::Buddy => size.max(self.config.alignment).next_power_of_two(),
            _ => size.div_ceil(self.config.alignment) * self.config.alignment,
        }
    }

    /// Reserves a block of at least `size` bytes, adding a chunk (visible
    /// in `chunks`, for the owner to back with memory) when no free block fits.
    pub fn allocate(&mut self, size: u64) -> Result<Block, AllocError> {
        if size == 0 {
            return Err(AllocError::ZeroSize);
        }
        let started = Instant::now();
        let need = self.rounded(size);
        let block = match self.placement.take(need) {
            Some(block) => block,
            None => {
                let chunk_bytes = match self.config.strategy {
                    Strategy::Buddy => self.config.chunk_size.max(need).next_power_of_two(),
                    _ => self.config.chunk_size.max(need),
                };
                let growable = self.config.max_bytes.saturating_sub(self.stats.reserved);
                if chunk_bytes > growable {
                    return Err(AllocError::OutOfMemory {
                        requested: size,
                        free: self.stats.reserved - self.stats.allocated,
                        growable,
                    });
                }
                let chunk = self.chunks.len();
                self.chunks.push(chunk_bytes);
                self.stats.reserved += chunk_bytes;
                self.stats.chunks += 1;
                self.placement.add_chunk(chunk, chunk_bytes);
                self.placement
                    .take(need)
                    .expect("a fresh chunk fits the request")
            }
        };
        self.stats.allocated += block.size;
        self.stats.blocks += 1;
        self.stats.allocations += 1;
        self.stats.allocation_time += started.elapsed();
        Ok(block)
    }

    /// Returns a block; it must come from this allocator and be live.
    pub fn free(&mut self, block: Block) {
        self.placement.give_back(block);
        self.stats.allocated -= block.size;
        self.stats.blocks -= 1;
    }

    /// Releases every chunk that is entirely free; returns their indices and sizes.
    pub fn trim(&mut self) -> Vec<(usize, u64)> {
        let mut released = Vec::new();
        for (chunk, size) in self.chunks.iter_mut().enumerate() {
            if *size > 0 && self.placement.take_whole_chunk(chunk, *size) {
                released.push((chunk, *size));
                self.stats.reserved -= *size;
                self.stats.chunks -= 1;
                *size = 0;
            }
        }
        released
    }

    /// Occupancy, fragmentation and allocation time.
    pub fn stats(&self) -> Stats {
        let (largest, total_free) = self.placement.free_summary();
        Stats {
            largest_free: largest,
            fragmentation: if total_free == 0 {
                0.0
            } else {
                1.0 - largest as f64 / total_free as f64
            },
            ..self.stats.clone()
        }
    }

    /// Size of every chunk added so far, by index (0 for a released chunk).
    pub fn chunks(&self) -> &[u64] {
        &self.chunks
    }

    /// Free blocks in address order.
    pub fn free_blocks(&self) -> Vec<Block> {
        self.placement.blocks()
    }
}

#[cfg(test)]
mod tests;
