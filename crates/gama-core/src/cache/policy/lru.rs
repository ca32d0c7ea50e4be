//! Least recently used: evicts the entry read or written longest ago.

use super::list::{Links, List};
use super::{EntryInfo, Policy, Slot};

/// LRU eviction over one recency list.
#[derive(Default)]
pub struct Lru {
    links: Links,
    list: List,
}

impl Policy for Lru {
    fn on_insert(&mut self, slot: Slot, _info: EntryInfo) {
        self.list.push_front(&mut self.links, slot);
    }

    fn on_access(&mut self, slot: Slot, _hash: u64) {
        self.list.move_to_front(&mut self.links, slot);
    }

    fn on_update(&mut self, slot: Slot, _info: EntryInfo) {
        self.list.move_to_front(&mut self.links, slot);
    }

    fn on_remove(&mut self, slot: Slot) {
        self.list.remove(&mut self.links, slot);
    }

    fn victim(&mut self, _newest: Slot) -> Option<Slot> {
        // The newest entry is at the front: it is the back only when alone.
        self.list.back()
    }

    fn clear(&mut self) {
        self.list.clear();
        self.links.clear();
    }
}
