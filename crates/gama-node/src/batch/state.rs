//! The JS-thread side of a `BatchProcessor`: the promise of every accepted
//! item, callbacks and references, and the drain that turns the core's
//! events into settled promises, progress calls and JS processor batches.
//!
//! Rule: no `RefCell` borrow of the state is held while JS code runs
//! (callbacks may call back into the processor).
//!
//! Invariant: every accepted item whose promise (or group promise) has not
//! settled is either in `pending` or a plain member of its group (a set bit
//! of `Group::plain`), never both; it leaves exactly once, when it settles.
//! An `addItems` call's members have the ids `first + index`, so a plain
//! member costs one bit, not a map entry.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ptr;
use std::rc::Rc;
use std::sync::Arc;

use hashbrown::{HashMap, HashSet};
use napi::{sys, Env, JsValue, Result};

use super::convert::{error_to_js, Slots};
use super::drain::call_progress;
use super::signals::unwatch_signal;
use crate::js::mailbox::{hold_loop, Inbox};
use crate::js::napi::Js;
use crate::js::raw::{clear_exception, resolved_when, undefined, Deferred, Persistent};
use gama_core::batch::{Event, ItemError, ItemId, OpName, Output, Processor, Stage};

/// How an item's outcome reaches JS.
pub enum Settle {
    /// Its own promise (`addItem`).
    Single(Deferred),
    /// Slot `index` of the group promise `group` (`addItems`).
    Member { group: u64, index: u32 },
}

/// What the JS side keeps for an item until it settles: small, since a
/// large `addItems` call keeps one per item.
pub struct Pending {
    /// Where the outcome goes.
    pub settle: Settle,
    /// The item's priority: outcomes of urgent items settle first.
    pub priority: u8,
    /// What only some items carry.
    pub extras: Option<Box<Extras>>,
}

/// What an item carries besides its settling, when it has any of it.
#[derive(Default)]
pub struct Extras {
    /// `onProgress` of the item.
    pub on_progress: Option<Persistent>,
    /// The JS value given as data (JS processors only).
    pub data: Option<Persistent>,
    /// `metadata` of the item.
    pub metadata: Option<Persistent>,
    /// The key of the item's AbortSignal in `JsState::signals`.
    pub signal: Option<u64>,
    /// The `id` the user gave, for `cancel(id)`.
    pub user_id: Option<String>,
}

impl Extras {
    /// `Some` when the item carries anything.
    pub fn boxed(self) -> Option<Box<Extras>> {
        let empty = self.on_progress.is_none()
            && self.data.is_none()
            && self.metadata.is_none()
            && self.signal.is_none()
            && self.user_id.is_none();
        (!empty).then(|| Box::new(self))
    }

    /// Lets go of the JS values kept.
    pub fn delete(self, env: &Env) {
        for r in [self.on_progress, self.data, self.metadata]
            .into_iter()
            .flatten()
        {
            r.delete(env);
        }
    }
}

/// The promise of an `addItems` call, kept under the id of its first
/// member: members have the ids `first + index`, `index < len`.
struct Group {
    deferred: Option<Deferred>,
    results: Persistent,
    remaining: usize,
    len: u64,
    /// Priority of every member.
    priority: u8,
    /// The call's AbortSignal watch, if it gave one.
    signal: Option<u64>,
    /// Members that carry nothing else (not in `pending`), not yet settled:
    /// one bit per index, grown as members are taken in.
    plain: Vec<u64>,
}

impl Group {
    /// Marks member `index` as a plain pending member.
    fn hold(&mut self, index: u64) {
        let (word, bit) = ((index / 64) as usize, index % 64);
        if self.plain.len() <= word {
            self.plain.resize(word + 1, 0);
        }
        self.plain[word] |= 1 << bit;
    }

    /// Whether member `index` is a plain pending member.
    fn holds(&self, index: u64) -> bool {
        let (word, bit) = ((index / 64) as usize, index % 64);
        self.plain.get(word).is_some_and(|w| w & (1 << bit) != 0)
    }

    /// Takes member `index` out of the plain pending members; false when
    /// it was not one.
    fn release(&mut self, index: u64) -> bool {
        let held = self.holds(index);
        if held {
            self.plain[(index / 64) as usize] &= !(1 << (index % 64));
        }
        held
    }
}

/// The one abort listener of an AbortSignal, shared by every pending item
/// given that signal (so any number of items add a single listener).
pub struct SignalWatch {
    pub(super) signal: Persistent,
    pub(super) listener: Persistent,
    /// Pending items to cancel on abort; the watch ends when it empties.
    pub(super) ids: Rc<RefCell<HashSet<ItemId>>>,
}

/// Everything the JS thread keeps for one processor.
pub struct JsState {
    pub core: Option<Arc<Processor>>,
    pub pending: HashMap<ItemId, Pending>,
    /// `addItems` calls not yet settled, by the id of their first member.
    groups: BTreeMap<ItemId, Group>,
    pub(super) signals: HashMap<u64, SignalWatch>,
    pub(super) next_signal: u64,
    pub user_ids: HashMap<String, ItemId>,
    pub(super) idle_waiters: Vec<Deferred>,
    pub listeners: Vec<(u64, Persistent)>,
    pub processors: HashMap<OpName, Persistent>,
    pub next_id: ItemId,
    pub next_listener: u64,
    /// The drain's threadsafe function, referenced while items are pending.
    pub tsfn: sys::napi_threadsafe_function,
    /// A reference to the processor object, strong while items are pending.
    pub this: Option<Persistent>,
    pub(super) held: bool,
    pub inbox: Inbox<Event>,
}

/// The JS thread's handle to a processor's `JsState`.
pub type StateCell = Rc<RefCell<JsState>>;

impl JsState {
    /// Empty state draining `inbox`.
    pub fn new(inbox: Inbox<Event>) -> Self {
        JsState {
            core: None,
            pending: HashMap::new(),
            groups: BTreeMap::new(),
            signals: HashMap::new(),
            next_signal: 0,
            user_ids: HashMap::new(),
            idle_waiters: Vec::new(),
            listeners: Vec::new(),
            processors: HashMap::new(),
            next_id: 0,
            next_listener: 0,
            tsfn: ptr::null_mut(),
            this: None,
            held: false,
            inbox,
        }
    }

    /// The core; present from construction on.
    pub fn core(&self) -> Arc<Processor> {
        self.core.clone().expect("set at construction")
    }

    /// A new group promise for `len` results of `priority`; its members
    /// get the ids `first + index`, returned as `first` (the group's key).
    pub fn new_group(
        &mut self,
        env: &Env,
        len: u32,
        priority: u8,
    ) -> Result<(ItemId, sys::napi_value)> {
        let (deferred, promise) = Deferred::new(env)?;
        // Sized up front only up to a bound: a declared length is not trusted
        // (a larger array grows as results arrive).
        let array = env.create_array(len.min(1 << 24))?;
        let results = Persistent::new(env, array.raw())?;
        let first = self.next_id + 1;
        self.next_id += u64::from(len).max(1);
        self.groups.insert(
            first,
            Group {
                deferred: Some(deferred),
                results,
                remaining: len as usize,
                len: u64::from(len),
                priority,
                signal: None,
                plain: Vec::new(),
            },
        );
        Ok((first, promise))
    }

    /// The group item `id` belongs to (the id of its first member) and
    /// its index there.
    fn member(&self, id: ItemId) -> Option<(ItemId, u64)> {
        let (first, group) = self.groups.range(..=id).next_back()?;
        let index = id - first;
        (index < group.len).then_some((*first, index))
    }

    /// Where the values of drained `events` go: the slot in its call's
    /// results array of each MEASURE or ANALYZE result of a pending
    /// `addItems` member (settled afterwards by `settle_placed`).
    pub fn slots(&self, env: &Env, events: &[Event]) -> Slots {
        let mut slots = Slots {
            at: Vec::with_capacity(events.len()),
            targets: Vec::new(),
        };
        let mut target_of: HashMap<ItemId, u32> = HashMap::new();
        for event in events {
            let slot = match event {
                Event::Done {
                    id,
                    result: Ok(Output::Level(_) | Output::Analysis(_)),
                } => self.slot_of(*id),
                _ => None,
            };
            slots.at.push(slot.map(|(group, index)| {
                let target = *target_of.entry(group).or_insert_with(|| {
                    slots.targets.push(self.groups[&group].results.get(env));
                    slots.targets.len() as u32 - 1
                });
                (target, index)
            }));
        }
        slots
    }

    /// The group and index of pending `addItems` member `id`.
    fn slot_of(&self, id: ItemId) -> Option<(ItemId, u32)> {
        let (group, index) = match self.pending.get(&id) {
            Some(Pending {
                settle: Settle::Member { group, index },
                ..
            }) => (*group, *index),
            Some(_) => return None,
            None => {
                let (first, index) = self.member(id)?;
                self.groups[&first].holds(index).then_some(())?;
                (first, index as u32)
            }
        };
        self.groups.contains_key(&group).then_some((group, index))
    }

    /// Records member `index` of group `first` as a plain pending member
    /// (one that carries nothing but its slot).
    pub fn hold_plain(&mut self, first: ItemId, index: u32) {
        if let Some(g) = self.groups.get_mut(&first) {
            g.hold(u64::from(index));
        }
    }

    /// Gives group `first` the AbortSignal watch `key` of its call.
    pub fn watch_group(&mut self, first: ItemId, key: u64) {
        if let Some(g) = self.groups.get_mut(&first) {
            g.signal = Some(key);
        }
    }

    /// Whether item `id` is pending (in `pending` or a plain member).
    pub fn is_pending(&self, id: ItemId) -> bool {
        self.pending.contains_key(&id) || self.plain_priority(id).is_some()
    }

    /// The priority of pending item `id`.
    pub fn priority_of(&self, id: ItemId) -> Option<u8> {
        match self.pending.get(&id) {
            Some(p) => Some(p.priority),
            None => self.plain_priority(id),
        }
    }

    fn plain_priority(&self, id: ItemId) -> Option<u8> {
        let (first, index) = self.member(id)?;
        let group = &self.groups[&first];
        group.holds(index).then_some(group.priority)
    }

    /// The AbortSignal watch of the `addItems` call item `id` came in.
    pub fn group_signal(&self, id: ItemId) -> Option<u64> {
        let (first, _) = self.member(id)?;
        self.groups[&first].signal
    }

    /// Whether nothing is pending.
    pub fn is_idle(&self) -> bool {
        self.pending.is_empty() && self.groups.is_empty()
    }

    /// Drops a group whose promise was never handed out.
    pub fn discard_group(&mut self, env: &Env, group: u64) {
        if let Some(g) = self.groups.remove(&group) {
            if let Some(d) = g.deferred {
                d.resolve(env, undefined(env));
            }
            g.results.delete(env);
        }
    }

    /// The AbortSignal of a watch, if it is still active.
    pub fn signal_value(&self, env: &Env, key: u64) -> Option<sys::napi_value> {
        self.signals.get(&key).map(|w| w.signal.get(env))
    }

    /// Forgets a group that got no items after all (its promise settles now).
    pub fn resolve_empty_group(&mut self, env: &Env, group: u64) {
        if let Some(g) = self.groups.remove(&group) {
            let array = g.results.get(env);
            if let Some(d) = g.deferred {
                d.resolve(env, array);
            }
            g.results.delete(env);
        }
    }

    /// Holds the event loop and the processor object while work is pending.
    pub fn update_hold(&mut self, env: &Env) {
        let busy = !self.is_idle();
        if busy == self.held {
            return;
        }
        self.held = busy;
        // `tsfn` is the drain's, owned by the core's sink, which lives as
        // long as this state (the state owns the core).
        hold_loop(env, self.tsfn, busy);
        if let Some(this) = &self.this {
            this.hold(env, busy);
        }
    }

    /// A promise that resolves once nothing is pending.
    pub fn idle_promise(&mut self, env: &Env) -> Result<sys::napi_value> {
        let idle = self.is_idle();
        resolved_when(env, idle, &mut self.idle_waiters)
    }
}

/// Settles item `id` with a value (Ok) or an error (Err); false when it was
/// not pending (already settled).
pub fn settle(
    env: &Env,
    state: &StateCell,
    id: ItemId,
    outcome: std::result::Result<sys::napi_value, sys::napi_value>,
) -> bool {
    settle_outcome(env, state, id, outcome.map(Some))
}

/// Settles `addItems` member `id` whose value is already in its slot of
/// the call's results array (see `JsState::slots`).
pub fn settle_placed(env: &Env, state: &StateCell, id: ItemId) -> bool {
    settle_outcome(env, state, id, Ok(None))
}

/// `settle`, where `Ok(None)` is a value already in its slot.
fn settle_outcome(
    env: &Env,
    state: &StateCell,
    id: ItemId,
    outcome: std::result::Result<Option<sys::napi_value>, sys::napi_value>,
) -> bool {
    // Everything is taken out under the borrow; JS (setters on arrays,
    // promise settling) runs only after it is released.
    let (pending, group_done, slot, reject_group, group_signal) = {
        let mut s = state.borrow_mut();
        let pending = match s.pending.remove(&id) {
            Some(pending) => pending,
            None => {
                let Some((first, index)) = s.member(id) else {
                    return false;
                };
                let g = s.groups.get_mut(&first).expect("found above");
                if !g.release(index) {
                    return false;
                }
                Pending {
                    settle: Settle::Member {
                        group: first,
                        index: index as u32,
                    },
                    priority: g.priority,
                    extras: None,
                }
            }
        };
        if let Some(user_id) = pending.extras.as_ref().and_then(|e| e.user_id.as_ref()) {
            s.user_ids.remove(user_id);
        }
        let (mut group_done, mut slot, mut reject_group, mut group_signal) =
            (None, None, None, None);
        if let Settle::Member { group, index } = &pending.settle {
            if let Some(g) = s.groups.get_mut(group) {
                g.remaining -= 1;
                group_signal = g.signal;
                match outcome {
                    Ok(_) => slot = Some((g.results.get(env), *index)),
                    Err(_) => reject_group = g.deferred.take(),
                }
                if g.remaining == 0 {
                    group_done = s.groups.remove(group);
                }
            }
        }
        (pending, group_done, slot, reject_group, group_signal)
    };
    if let (Some((array, index)), Ok(Some(value))) = (slot, outcome) {
        // A setter on the results array may throw: the drain goes on.
        if Js::new(env).set_element(array, index, value).is_err() {
            clear_exception(env);
        }
    }
    if let (Some(d), Err(error)) = (reject_group, outcome) {
        d.reject(env, error);
    }
    {
        if let Some(g) = group_done {
            if let Some(d) = g.deferred {
                d.resolve(env, g.results.get(env));
            }
            g.results.delete(env);
        }
        if let Settle::Single(deferred) = pending.settle {
            match outcome {
                // Only members are placed: a single item always has its value.
                Ok(value) => deferred.resolve(env, value.unwrap_or_else(|| undefined(env))),
                Err(error) => deferred.reject(env, error),
            }
        }
        if let Some(key) = group_signal {
            unwatch_signal(env, state, key, id);
        }
        if let Some(mut extras) = pending.extras {
            if let Some(key) = extras.signal {
                unwatch_signal(env, state, key, id);
            }
            if let Some(callback) = extras.on_progress.take() {
                let _ = call_progress(env, callback.get(env), Stage::Done, 1.0);
                callback.delete(env);
            }
            extras.delete(env);
        }
    }
    true
}

/// Rejects an item that never reached the core (aborted before queueing,
/// overflow dropped by a forced close).
pub fn reject_now(env: &Env, state: &StateCell, id: ItemId, error: &ItemError) {
    settle(env, state, id, Err(error_to_js(env, error)));
}
