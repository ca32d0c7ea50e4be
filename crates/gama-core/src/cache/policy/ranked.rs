//! Slots kept in order of a rank: the shared structure of the LFU and TTL
//! policies (a B-tree of `(rank, sequence, slot)`; O(log n) per change).

use std::collections::BTreeSet;

use super::Slot;

/// Slots ordered by `(rank, sequence)`, lowest first; the sequence breaks
/// ties in the order ranks were given.
#[derive(Default)]
pub struct Ranked {
    /// Per slot: its current `(rank, sequence)`.
    meta: Vec<(u64, u64)>,
    order: BTreeSet<(u64, u64, Slot)>,
    seq: u64,
}

impl Ranked {
    /// Places `slot` at `rank` (after every slot already at that rank); the
    /// slot must not be placed already.
    pub fn place(&mut self, slot: Slot, rank: u64) {
        self.seq += 1;
        let i = slot as usize;
        if i >= self.meta.len() {
            self.meta.resize(i + 1, (0, 0));
        }
        self.meta[i] = (rank, self.seq);
        self.order.insert((rank, self.seq, slot));
    }

    /// Takes `slot` out of the order; returns the rank it had.
    pub fn remove(&mut self, slot: Slot) -> u64 {
        let (rank, seq) = self.meta[slot as usize];
        self.order.remove(&(rank, seq, slot));
        rank
    }

    /// The lowest-ranked slot other than `newest`.
    pub fn first_except(&self, newest: Slot) -> Option<Slot> {
        self.order
            .iter()
            .map(|&(_, _, slot)| slot)
            .find(|&slot| slot != newest)
    }

    /// Forgets every slot.
    pub fn clear(&mut self) {
        self.meta.clear();
        self.order.clear();
    }
}
