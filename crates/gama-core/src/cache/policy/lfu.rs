//! Least frequently used: evicts the entry read the fewest times, the least
//! recently used among equals.

use super::ranked::Ranked;
use super::{EntryInfo, Policy, Slot};

/// Exact per-entry access counts, ranked in a B-tree (O(log n) per access);
/// among equal counts, the one read longest ago goes first.
#[derive(Default)]
pub struct Lfu {
    ranked: Ranked,
}

impl Lfu {
    fn bump(&mut self, slot: Slot) {
        let count = self.ranked.remove(slot);
        self.ranked.place(slot, count.saturating_add(1));
    }
}

impl Policy for Lfu {
    fn on_insert(&mut self, slot: Slot, _info: EntryInfo) {
        self.ranked.place(slot, 1);
    }

    fn on_access(&mut self, slot: Slot, _hash: u64) {
        self.bump(slot);
    }

    fn on_update(&mut self, slot: Slot, _info: EntryInfo) {
        self.bump(slot);
    }

    fn on_remove(&mut self, slot: Slot) {
        self.ranked.remove(slot);
    }

    fn victim(&mut self, newest: Slot) -> Option<Slot> {
        self.ranked.first_except(newest)
    }

    fn clear(&mut self) {
        self.ranked.clear();
    }
}
