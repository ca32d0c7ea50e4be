//! The waiting room: items grouped by (operation, similarity group), each
//! group ordered by priority then submission. A batch is cut from the group
//! whose best item ranks highest, only when a slot is free, so nothing is
//! ever committed to a batch ahead of a later, more urgent item.
//!
//! Invariants: `index` holds exactly the queued items; a group's `len`
//! counts its items; no lane is empty and each lane's front is an item.

use std::cmp::Reverse;
use std::collections::{BTreeMap, VecDeque};
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

/// Items of one priority in submission order, each under its sequence
/// number. A removed item leaves a hole (`None`) so that removal never
/// shifts the lane; holes go once they reach the front, so a lane's front
/// is always an item and no lane is empty.
type Lane = VecDeque<(u64, Option<Item>)>;

#[derive(Default)]
struct Group {
    /// Lanes by priority, most urgent first.
    lanes: BTreeMap<Reverse<u8>, Lane>,
    /// Items queued (holes not counted).
    len: usize,
    /// Enqueue time of the oldest item, tracked exactly while the group is
    /// smaller than a batch (when it decides readiness).
    oldest: Option<Instant>,
}

impl Group {
    /// Adds an item at its place by sequence (at the back for a new one,
    /// at the front for one taken out and put back).
    fn insert(&mut self, item: Item) {
        self.oldest = Some(self.oldest.map_or(item.enqueued, |t| t.min(item.enqueued)));
        let seq = item.seq;
        let lane = self.lanes.entry(Reverse(item.priority)).or_default();
        if lane.back().is_none_or(|(last, _)| *last < seq) {
            lane.push_back((seq, Some(item)));
        } else {
            let at = lane.partition_point(|(s, _)| *s < seq);
            lane.insert(at, (seq, Some(item)));
        }
        self.len += 1;
    }

    /// The rank of the best item.
    fn best(&self) -> Option<Rank> {
        let (priority, lane) = self.lanes.first_key_value()?;
        lane.front().map(|(seq, _)| (*priority, *seq))
    }

    /// Takes the best item out.
    fn pop(&mut self) -> Option<Item> {
        let mut lane = self.lanes.first_entry()?;
        let item = lane.get_mut().pop_front().and_then(|(_, item)| item);
        Self::trim(lane.get_mut());
        if lane.get().is_empty() {
            lane.remove();
        }
        self.len -= usize::from(item.is_some());
        item
    }

    /// Takes out the item of `priority` with sequence number `seq`.
    fn remove(&mut self, priority: u8, seq: u64) -> Option<Item> {
        let lane = self.lanes.get_mut(&Reverse(priority))?;
        let at = lane.binary_search_by_key(&seq, |(s, _)| *s).ok()?;
        let item = lane[at].1.take()?;
        Self::trim(lane);
        if lane.is_empty() {
            self.lanes.remove(&Reverse(priority));
        }
        self.len -= 1;
        Some(item)
    }

    /// Drops the holes at the front of a lane.
    fn trim(lane: &mut Lane) {
        while lane.front().is_some_and(|(_, item)| item.is_none()) {
            lane.pop_front();
        }
    }

    /// The queued items, in no particular order.
    fn items(&self) -> impl Iterator<Item = &Item> {
        self.lanes
            .values()
            .flatten()
            .filter_map(|(_, item)| item.as_ref())
    }
}

/// Queued items by group.
#[derive(Default)]
pub struct Queue {
    groups: HashMap<GroupKey, Group>,
    /// Where each queued item is: its group, priority and sequence number.
    /// Ordered by id: items mostly come and go in id order, so the index
    /// is touched at its ends, which stay in cache (a hash map misses the
    /// cache once per item).
    index: BTreeMap<ItemId, (GroupKey, u8, u64)>,
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
        let key = (item.op.clone(), item.group);
        self.index
            .insert(item.id, (key.clone(), item.priority, item.seq));
        self.groups.entry(key).or_default().insert(item);
    }

    /// Takes a queued item out.
    pub fn remove(&mut self, id: ItemId) -> Option<Item> {
        let (key, priority, seq) = self.index.remove(&id)?;
        let group = self.groups.get_mut(&key)?;
        let item = group.remove(priority, seq);
        if group.len == 0 {
            self.groups.remove(&key);
        }
        item
    }

    fn ready(group: &Group, size: usize, now: Instant, max_wait: Duration) -> bool {
        group.len >= size || max_wait.is_zero() || group.oldest.is_some_and(|t| t + max_wait <= now)
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
            .filter_map(|(k, g)| g.best().map(|rank| (rank, k)))
            .min_by_key(|(rank, _)| *rank)
            .map(|(_, k)| k.clone())?;
        let group = self.groups.get_mut(&key).expect("chosen above");
        let mut batch = Vec::with_capacity(size.min(group.len));
        while batch.len() < size {
            let Some(item) = group.pop() else {
                break;
            };
            self.index.remove(&item.id);
            batch.push(item);
        }
        if group.len == 0 {
            self.groups.remove(&key);
        } else if group.len < size {
            group.oldest = group.items().map(|i| i.enqueued).min();
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
            .filter(|g| g.len < size)
            .filter_map(|g| g.oldest)
            .min()
            .map(|t| t + max_wait)
    }

    /// Takes every queued item out.
    pub fn drain(&mut self) -> Vec<Item> {
        self.index.clear();
        self.groups
            .drain()
            .flat_map(|(_, g)| g.lanes.into_values().flatten())
            .filter_map(|(_, item)| item)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::batch::item::Input;

    fn item(id: ItemId, priority: u8, group: u64) -> Item {
        Item {
            id,
            op: "MEASURE".into(),
            priority,
            group,
            estimate: 0,
            input: Input::Js,
            wants_progress: false,
            stop: Arc::default(),
            enqueued: Instant::now(),
            seq: 0,
        }
    }

    fn ids(batch: Option<Vec<Item>>) -> Vec<ItemId> {
        batch.unwrap_or_default().iter().map(|i| i.id).collect()
    }

    fn next(q: &mut Queue, size: usize) -> Vec<ItemId> {
        ids(q.next_batch(size, Instant::now(), Duration::ZERO, |_| true))
    }

    #[test]
    fn batches_come_by_priority_then_submission_order() {
        let mut q = Queue::default();
        for (id, priority) in [(1, 5), (2, 5), (3, 9), (4, 5), (5, 9), (6, 1)] {
            q.push(item(id, priority, 7));
        }
        assert_eq!(q.len(), 6);
        assert_eq!(next(&mut q, 3), [3, 5, 1]);
        assert_eq!(next(&mut q, 10), [2, 4, 6]);
        assert!(
            q.is_empty()
                && q.next_batch(1, Instant::now(), Duration::ZERO, |_| true)
                    .is_none()
        );
    }

    #[test]
    fn the_group_with_the_best_item_goes_first() {
        let mut q = Queue::default();
        q.push(item(1, 5, 1));
        q.push(item(2, 5, 2));
        q.push(item(3, 8, 2));
        assert_eq!(next(&mut q, 10), [3, 2]);
        assert_eq!(next(&mut q, 10), [1]);
    }

    #[test]
    fn removal_anywhere_keeps_the_order_of_the_rest() {
        let mut q = Queue::default();
        for id in 1..=8 {
            q.push(item(id, 5, 1));
        }
        for id in [1, 4, 5, 8] {
            assert_eq!(q.remove(id).map(|i| i.id), Some(id));
        }
        assert!(q.remove(4).is_none(), "an item leaves once");
        assert!(q.remove(99).is_none());
        assert_eq!(q.len(), 4);
        assert_eq!(next(&mut q, 3), [2, 3, 6]);
        assert_eq!(q.remove(7).map(|i| i.id), Some(7));
        assert!(
            q.is_empty() && q.groups.is_empty(),
            "the emptied group goes"
        );
    }

    #[test]
    fn items_put_back_regain_their_place_ahead_of_later_ones() {
        let mut q = Queue::default();
        for id in 1..=6 {
            q.push(item(id, 5, 1));
        }
        let mut batch = q
            .next_batch(4, Instant::now(), Duration::ZERO, |_| true)
            .unwrap();
        q.push(item(7, 5, 1));
        for back in batch.split_off(1) {
            q.push(back);
        }
        assert_eq!(next(&mut q, 10), [2, 3, 4, 5, 6, 7]);
    }

    #[test]
    fn a_partial_group_waits_for_its_oldest_item() {
        let mut q = Queue::default();
        let wait = Duration::from_secs(60);
        let t0 = Instant::now();
        q.push(item(1, 5, 1));
        q.push(item(2, 5, 1));
        assert!(
            q.next_batch(4, t0, wait, |_| true).is_none(),
            "not full, not due"
        );
        assert!(q.next_deadline(4, wait).is_some_and(|d| d >= t0 + wait));
        assert_eq!(ids(q.next_batch(4, t0 + wait * 2, wait, |_| true)), [1, 2]);
        q.push(item(3, 5, 1));
        assert_eq!(q.drain().len(), 1);
        assert!(q.is_empty() && q.next_deadline(4, wait).is_none());
    }
}
