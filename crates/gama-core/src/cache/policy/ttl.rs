//! Time to live: evicts the entry closest to its expiry; entries without a
//! TTL go last, oldest first.

use std::time::Instant;

use super::ranked::Ranked;
use super::{EntryInfo, Policy, Slot};

/// Entries ranked by deadline (ns after `origin`; none ranks last), then
/// insertion order.
pub struct TtlOrder {
    origin: Instant,
    ranked: Ranked,
}

impl Default for TtlOrder {
    fn default() -> Self {
        TtlOrder {
            origin: Instant::now(),
            ranked: Ranked::default(),
        }
    }
}

impl TtlOrder {
    fn place(&mut self, slot: Slot, info: EntryInfo) {
        let deadline = info.expires_at.map_or(u64::MAX, |t| {
            t.saturating_duration_since(self.origin).as_nanos() as u64
        });
        self.ranked.place(slot, deadline);
    }
}

impl Policy for TtlOrder {
    fn on_insert(&mut self, slot: Slot, info: EntryInfo) {
        self.place(slot, info);
    }

    fn on_access(&mut self, _slot: Slot, _hash: u64) {}

    fn on_update(&mut self, slot: Slot, info: EntryInfo) {
        self.ranked.remove(slot);
        self.place(slot, info);
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
