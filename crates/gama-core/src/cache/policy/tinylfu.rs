//! Window TinyLFU, after Caffeine: new entries enter a small LRU window; an
//! entry leaving the window joins the main space only if the frequency sketch
//! says it is used more often than the main space's eviction victim. The main
//! space is a segmented LRU (probation, then protected once read again).
//!
//! Invariant: every slot is in exactly one of the three lists, and the weight
//! and count totals per segment match the slots in it.

use super::list::{Links, List};
use super::sketch::FrequencySketch;
use super::{EntryInfo, Policy, Slot};

/// Share of the capacity given to the admission window, in percent.
const WINDOW_PERCENT: u64 = 1;
/// Share of the main space kept for entries read twice or more, in percent.
const PROTECTED_PERCENT: u64 = 80;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Segment {
    Window = 0,
    Probation = 1,
    Protected = 2,
}

#[derive(Clone, Copy)]
struct Meta {
    segment: Segment,
    hash: u64,
    weight: u64,
}

/// Count and weight limits of one part of the cache.
#[derive(Clone, Copy, Default)]
struct Quota {
    entries: u64,
    weight: u64,
}

#[derive(Default)]
struct Usage {
    entries: u64,
    weight: u64,
}

impl Usage {
    fn exceeds(&self, quota: Quota) -> bool {
        self.entries > quota.entries || self.weight > quota.weight
    }
}

/// The W-TinyLFU policy.
pub struct TinyLfu {
    sketch: FrequencySketch,
    links: Links,
    meta: Vec<Meta>,
    /// Recency lists indexed by `Segment`.
    lists: [List; 3],
    window_usage: Usage,
    main_usage: Usage,
    protected_usage: Usage,
    window_quota: Quota,
    main_quota: Quota,
    protected_quota: Quota,
}

impl TinyLfu {
    /// A policy for a cache bounded by `max_entries` and `max_weight`.
    pub fn new(max_entries: u64, max_weight: u64) -> Self {
        let share = |total: u64, percent: u64| (total.saturating_mul(percent) / 100).max(1);
        let window_quota = Quota {
            entries: share(max_entries, WINDOW_PERCENT),
            weight: share(max_weight, WINDOW_PERCENT),
        };
        let main_quota = Quota {
            entries: max_entries.saturating_sub(window_quota.entries),
            weight: max_weight.saturating_sub(window_quota.weight),
        };
        TinyLfu {
            sketch: FrequencySketch::new(max_entries.min(1 << 24) as usize),
            links: Links::default(),
            meta: Vec::new(),
            lists: Default::default(),
            window_usage: Usage::default(),
            main_usage: Usage::default(),
            protected_usage: Usage::default(),
            window_quota,
            main_quota,
            protected_quota: Quota {
                entries: main_quota.entries.saturating_mul(PROTECTED_PERCENT) / 100,
                weight: main_quota.weight.saturating_mul(PROTECTED_PERCENT) / 100,
            },
        }
    }

    fn usage_of(&mut self, segment: Segment) -> &mut Usage {
        match segment {
            Segment::Window => &mut self.window_usage,
            Segment::Probation => &mut self.main_usage,
            Segment::Protected => &mut self.protected_usage,
        }
    }

    fn add_usage(&mut self, segment: Segment, weight: u64) {
        let usage = self.usage_of(segment);
        usage.entries += 1;
        usage.weight += weight;
        if segment == Segment::Protected {
            self.main_usage.entries += 1;
            self.main_usage.weight += weight;
        }
    }

    fn sub_usage(&mut self, segment: Segment, weight: u64) {
        let usage = self.usage_of(segment);
        usage.entries -= 1;
        usage.weight -= weight;
        if segment == Segment::Protected {
            self.main_usage.entries -= 1;
            self.main_usage.weight -= weight;
        }
    }

    /// Unlinks `slot` from its segment, keeping totals right.
    fn detach(&mut self, slot: Slot) -> Meta {
        let meta = self.meta[slot as usize];
        self.lists[meta.segment as usize].remove(&mut self.links, slot);
        self.sub_usage(meta.segment, meta.weight);
        meta
    }

    /// Links `slot` at the front of `segment`.
    fn attach(&mut self, slot: Slot, segment: Segment) {
        let weight = self.meta[slot as usize].weight;
        self.meta[slot as usize].segment = segment;
        self.lists[segment as usize].push_front(&mut self.links, slot);
        self.add_usage(segment, weight);
    }

    /// Demotes protected entries to probation while protected is over its share.
    fn rebalance_protected(&mut self) {
        while self.protected_usage.exceeds(self.protected_quota) {
            let Some(slot) = self.lists[Segment::Protected as usize].back() else {
                break;
            };
            self.detach(slot);
            self.attach(slot, Segment::Probation);
        }
    }

    /// The main space's least valuable entry.
    fn main_victim(&self) -> Option<Slot> {
        self.lists[Segment::Probation as usize]
            .back()
            .or_else(|| self.lists[Segment::Protected as usize].back())
    }
}

impl Policy for TinyLfu {
    fn on_insert(&mut self, slot: Slot, info: EntryInfo) {
        self.sketch.increment(info.hash);
        let i = slot as usize;
        let meta = Meta {
            segment: Segment::Window,
            hash: info.hash,
            weight: info.weight,
        };
        if i >= self.meta.len() {
            self.meta.resize(i + 1, meta);
        }
        self.meta[i] = meta;
        self.attach(slot, Segment::Window);
    }

    fn on_access(&mut self, slot: Slot, hash: u64) {
        self.sketch.increment(hash);
        match self.meta[slot as usize].segment {
            Segment::Window => {
                self.lists[Segment::Window as usize].move_to_front(&mut self.links, slot)
            }
            Segment::Probation => {
                self.detach(slot);
                self.attach(slot, Segment::Protected);
                self.rebalance_protected();
            }
            Segment::Protected => {
                self.lists[Segment::Protected as usize].move_to_front(&mut self.links, slot)
            }
        }
    }

    fn on_update(&mut self, slot: Slot, info: EntryInfo) {
        let meta = self.detach(slot);
        self.meta[slot as usize].weight = info.weight;
        self.attach(slot, meta.segment);
        self.on_access(slot, info.hash);
    }

    fn on_remove(&mut self, slot: Slot) {
        self.detach(slot);
    }

    fn victim(&mut self, _newest: Slot) -> Option<Slot> {
        while self.window_usage.exceeds(self.window_quota) {
            let Some(candidate) = self.lists[Segment::Window as usize].back() else {
                break;
            };
            self.detach(candidate);
            self.attach(candidate, Segment::Probation);
            if !self.main_usage.exceeds(self.main_quota) {
                continue;
            }
            let victim = self.main_victim().unwrap_or(candidate);
            if victim == candidate {
                return Some(candidate);
            }
            let candidate_freq = self.sketch.frequency(self.meta[candidate as usize].hash);
            let victim_freq = self.sketch.frequency(self.meta[victim as usize].hash);
            return Some(if candidate_freq > victim_freq {
                victim
            } else {
                candidate
            });
        }
        self.main_victim()
            .or_else(|| self.lists[Segment::Window as usize].back())
    }

    fn clear(&mut self) {
        self.sketch.clear();
        self.links.clear();
        self.meta.clear();
        for list in &mut self.lists {
            list.clear();
        }
        self.window_usage = Usage::default();
        self.main_usage = Usage::default();
        self.protected_usage = Usage::default();
    }
}
