//! Least frequently used: evicts the entry read the fewest times, the least
//! recently used among equals.

use std::collections::BTreeSet;

use super::{EntryInfo, Policy, Slot};

/// Exact per-entry access counts, ordered in a B-tree (O(log n) per access).
#[derive(Default)]
pub struct Lfu {
    /// Per slot: (access count, tick of last access).
    meta: Vec<(u32, u64)>,
    order: BTreeSet<(u32, u64, Slot)>,
    tick: u64,
}

impl Lfu {
    fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    fn bump(&mut self, slot: Slot) {
        let (count, tick) = self.meta[slot as usize];
        self.order.remove(&(count, tick, slot));
        let entry = (count.saturating_add(1), self.next_tick());
        self.meta[slot as usize] = entry;
        self.order.insert((entry.0, entry.1, slot));
    }
}

impl Policy for Lfu {
    fn on_insert(&mut self, slot: Slot, _info: EntryInfo) {
        let i = slot as usize;
        if i >= self.meta.len() {
            self.meta.resize(i + 1, (0, 0));
        }
        let entry = (1, self.next_tick());
        self.meta[i] = entry;
        self.order.insert((entry.0, entry.1, slot));
    }

    fn on_access(&mut self, slot: Slot, _hash: u64) {
        self.bump(slot);
    }

    fn on_update(&mut self, slot: Slot, _info: EntryInfo) {
        self.bump(slot);
    }

    fn on_remove(&mut self, slot: Slot) {
        let (count, tick) = self.meta[slot as usize];
        self.order.remove(&(count, tick, slot));
    }

    fn victim(&mut self, newest: Slot) -> Option<Slot> {
        self.order
            .iter()
            .map(|&(_, _, slot)| slot)
            .find(|&slot| slot != newest)
    }

    fn clear(&mut self) {
        self.meta.clear();
        self.order.clear();
    }
}
