//! Time to live: evicts the entry closest to its expiry; entries without a
//! TTL go last, oldest first.

use std::collections::BTreeSet;
use std::time::Instant;

use super::{EntryInfo, Policy, Slot};

/// Entries ordered by (deadline, insertion order).
pub struct TtlOrder {
    origin: Instant,
    /// Per slot: its key in `order`.
    meta: Vec<(u64, u64)>,
    order: BTreeSet<(u64, u64, Slot)>,
    seq: u64,
}

impl Default for TtlOrder {
    fn default() -> Self {
        TtlOrder {
            origin: Instant::now(),
            meta: Vec::new(),
            order: BTreeSet::new(),
            seq: 0,
        }
    }
}

impl TtlOrder {
    fn place(&mut self, slot: Slot, info: EntryInfo) {
        let deadline = info.expires_at.map_or(u64::MAX, |t| {
            t.saturating_duration_since(self.origin).as_nanos() as u64
        });
        self.seq += 1;
        let i = slot as usize;
        if i >= self.meta.len() {
            self.meta.resize(i + 1, (0, 0));
        }
        self.meta[i] = (deadline, self.seq);
        self.order.insert((deadline, self.seq, slot));
    }
}

impl Policy for TtlOrder {
    fn on_insert(&mut self, slot: Slot, info: EntryInfo) {
        self.place(slot, info);
    }

    fn on_access(&mut self, _slot: Slot, _hash: u64) {}

    fn on_update(&mut self, slot: Slot, info: EntryInfo) {
        self.on_remove(slot);
        self.place(slot, info);
    }

    fn on_remove(&mut self, slot: Slot) {
        let (deadline, seq) = self.meta[slot as usize];
        self.order.remove(&(deadline, seq, slot));
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
