//! The waiting room: items grouped by (operation, similarity group), each
//! group ordered by priority then submission. A batch is cut from the group
//! whose best item ranks highest, only when a slot is free, so nothing is
//! ever committed to a batch ahead of a later, more urgent item.
//!
//! Invariant: `index` holds exactly the queued items, and `len` their count.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hashbrown::HashMap;
use xxhash_rust::xxh3::{xxh3_64, Xxh3};

use super::item::{Item, ItemId, OpName};

/// The similarity group of an item: its `similarity_key` when given, else
/// its parameters' fingerprint with its size bucket (the next power of two
/// of its size in bytes), so items batched together cost alike.
pub fn similarity_group(similarity_key: Option<&str>, fingerprint: u64, bytes: u64) -> u64 {
    match similarity_key {
        Some(key) => xxh3_64(key.as_bytes()),
        None => {
            let mut h = Xxh3::new();
            h.update(&fingerprint.to_le_bytes());
            h.update(&bytes.max(1).next_power_of_two().to_le_bytes());
            h.digest()
        }
    }
}

type Rank = (Reverse<u8>, u64);
type GroupKey = (OpName, u64);

#[derive(Default)]
struct Group {
    items: BTreeMap<Rank, Item>,
    /// Enqueue time of the oldest item, tracked exactly while the group is
    /// smaller than a batch (when it decides readiness).
    oldest: Option<Instant>,
}

/// Queued items by group.
#[derive(Default)]
pub struct Queue {
    groups: HashMap<GroupKey, Group>,
    index: HashMap<ItemId, (GroupKey, Rank)>,
    next_seq: u64,
}

impl Queue {
    /// Items waiting.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Queues an item (stamping its submission order unless it has one).
    pub fn push(&mut self, mut item: Item) {
        if item.seq == 0 {
            self.next_seq += 1;
            item.seq = self.next_seq;
        }
        let rank = (Reverse(item.priority), item.seq);
        let key = (item.op.clone(), item.group);
        let group = self.groups.entry(key.clone()).or_default();
        group.oldest = Some(group.oldest.map_or(item.enqueued, |t| t.min(item.enqueued)));
        self.index.insert(item.id, (key, rank));
        group.items.insert(rank, item);
    }

    /// Takes a queued item out.
    pub fn remove(&mut self, id: ItemId) -> Option<Item> {
        let (key, rank) = self.index.remove(&id)?;
        let group = self.groups.get_mut(&key)?;
        let item = group.items.remove(&rank);
        if group.items.is_empty() {
            self.groups.remove(&key);
        }
        item
    }

    fn ready(group: &Group, size: usize, now: Instant, max_wait: Duration) -> bool {
        group.items.len() >= size
            || max_wait.is_zero()
            || group.oldest.is_some_and(|t| t + max_wait <= now)
    }

    /// Up to `size` items of the ready group (of an `eligible` operation)
    /// whose best item ranks highest (a group is ready when full, or when
    /// its oldest item waited `max_wait`).
    pub fn next_batch(
        &mut self,
        size: usize,
        now: Instant,
        max_wait: Duration,
        eligible: impl Fn(&str) -> bool,
    ) -> Option<Vec<Item>> {
        let size = size.max(1);
        let key = self
            .groups
            .iter()
            .filter(|((op, _), g)| eligible(op) && Self::ready(g, size, now, max_wait))
            .filter_map(|(k, g)| g.items.keys().next().map(|rank| (rank, k)))
            .min_by_key(|(rank, _)| **rank)
            .map(|(_, k)| k.clone())?;
        let group = self.groups.get_mut(&key).expect("chosen above");
        let mut batch = Vec::with_capacity(size.min(group.items.len()));
        while batch.len() < size {
            let Some((_, item)) = group.items.pop_first() else {
                break;
            };
            self.index.remove(&item.id);
            batch.push(item);
        }
        if group.items.is_empty() {
            self.groups.remove(&key);
        } else if group.items.len() < size {
            group.oldest = group.items.values().map(|i| i.enqueued).min();
        }
        Some(batch)
    }

    /// When the next partial group becomes ready by waiting.
    pub fn next_deadline(&self, size: usize, max_wait: Duration) -> Option<Instant> {
        if max_wait.is_zero() {
            return None;
        }
        self.groups
            .values()
            .filter(|g| g.items.len() < size)
            .filter_map(|g| g.oldest)
            .min()
            .map(|t| t + max_wait)
    }

    /// Takes every queued item out.
    pub fn drain(&mut self) -> Vec<Item> {
        self.index.clear();
        self.groups
            .drain()
            .flat_map(|(_, g)| g.items.into_values())
            .collect()
    }
}
