//! Item intake: per-call options, building core items from JS values,
//! recording what the JS side keeps for each, and handing them to the core.

use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use napi::bindgen_prelude::{JsObjectValue, Object, Unknown};
use napi::{sys, Env, JsValue, Result, ValueType};

use super::convert::{self, byte_length, cache_key, native_input, priority};
use super::signals;
use super::state::{reject_now, Extras, Pending, Settle, StateCell};
use super::BatchProcessor;
use crate::js::errors::{coded_value, type_error, INVALID_ARG_TYPE};
use crate::js::fields::{describe, Fields};
use crate::js::napi::convert;
use crate::js::options::function_arg;
use crate::js::raw::{Deferred, Persistent};
use crate::js::value::RawValue;
use gama_core::batch::{
    similarity_group, Input, Item, ItemError, ItemId, OpName, Processor, SampleBuffer, Samples,
    SubmitError,
};
use gama_core::error::Coded;

/// Per-call item options, read once for `addItem` and `addItems`.
pub(super) struct ItemOptions {
    pub(super) priority: u8,
    pub(super) metadata: Option<sys::napi_value>,
    pub(super) on_progress: Option<sys::napi_value>,
    pub(super) signal: Option<sys::napi_value>,
    pub(super) similarity_key: Option<String>,
    pub(super) id: Option<String>,
}

pub(super) fn item_options(env: &Env, options: Option<Unknown>) -> Result<ItemOptions> {
    const KNOWN: [&str; 6] = [
        "priority",
        "metadata",
        "onProgress",
        "signal",
        "similarityKey",
        "id",
    ];
    let Some(o) = Fields::read(env, options, "options", &KNOWN)? else {
        return Ok(ItemOptions {
            priority: convert::NORMAL,
            metadata: None,
            on_progress: None,
            signal: None,
            similarity_key: None,
            id: None,
        });
    };
    let on_progress = match o.value("onProgress")? {
        None => None,
        Some(f) => Some(function_arg::<(), ()>(env, "options.onProgress", f)?.raw()),
    };
    let signal = match o.value("signal")? {
        None => None,
        Some(s) => {
            let is_signal = s.get_type()? == ValueType::Object && {
                // SAFETY: a live handle of this call, checked to be an object.
                let object = convert::<Object>(env, s.raw())?;
                let add: Unknown = object.get_named_property("addEventListener")?;
                add.get_type()? == ValueType::Function
            };
            if !is_signal {
                return Err(type_error(
                    env,
                    INVALID_ARG_TYPE,
                    format!(
                        "options.signal must be an AbortSignal; got {}",
                        describe(env, &s)
                    ),
                ));
            }
            Some(s.raw())
        }
    };
    Ok(ItemOptions {
        priority: priority(env, o.value("priority")?.as_ref())?,
        metadata: o.value("metadata")?.map(|m| m.raw()),
        on_progress,
        signal,
        similarity_key: o.string("similarityKey")?,
        id: o.string("id")?,
    })
}

fn is_aborted(env: &Env, signal: sys::napi_value) -> Result<bool> {
    let signal = convert::<Object>(env, signal)?;
    Ok(signal
        .get_named_property::<Option<bool>>("aborted")?
        .unwrap_or(false))
}

impl BatchProcessor {
    /// The core, for the profiler.
    pub fn core(&self) -> Arc<Processor> {
        self.state.borrow().core()
    }

    /// Builds item `id` (no promise yet) into `intake`; `data` is the
    /// caller's value, `path` makes its name for errors.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn build_item(
        &self,
        env: &Env,
        id: ItemId,
        (op, is_js): (&OpName, bool),
        data: &Unknown,
        path: &dyn Fn() -> String,
        o: &ItemOptions,
        intake: &mut Intake,
    ) -> Result<(Item, Option<Persistent>)> {
        let (input, estimate, group_id, kept) = if is_js {
            let bytes = byte_length(env, data);
            let kept = Persistent::new(env, data.raw())?;
            (
                Input::Js,
                bytes,
                similarity_group(o.similarity_key.as_deref(), 0, bytes),
                Some(kept),
            )
        } else {
            let n = native_input(env, op, data, path, &self.defaults, intake.buffer())?;
            let samples = &intake.samples[n.samples.clone()];
            let key = (self.with_cache && &**op == gama_core::batch::EXTRACT_FEATURES)
                .then(|| cache_key(samples, n.key.as_ref()));
            let estimate = gama_core::batch::estimate(op, samples.len(), &n.options);
            let group_id = similarity_group(
                o.similarity_key.as_deref(),
                n.hash,
                samples.len() as u64 * 4,
            );
            intake.taken(n.samples);
            (
                Input::Audio {
                    // Set by `Intake::take`, once the chunk's buffer is complete.
                    samples: Samples::empty(),
                    options: n.options,
                    cache_key: key,
                },
                estimate,
                group_id,
                None,
            )
        };
        Ok((
            Item {
                id,
                op: op.clone(),
                priority: o.priority,
                group: group_id,
                estimate,
                input,
                wants_progress: o.on_progress.is_some(),
                stop: Arc::default(),
                enqueued: intake.started,
                seq: 0,
            },
            kept,
        ))
    }

    /// Records the JS side of an accepted item.
    pub(super) fn track(
        &self,
        env: &Env,
        item: &Item,
        settle: Settle,
        kept: Option<Persistent>,
        o: &ItemOptions,
        with_user_id: bool,
    ) -> Result<()> {
        let keep = |v: Option<sys::napi_value>| -> Result<Option<Persistent>> {
            v.map(|v| Persistent::new(env, v)).transpose()
        };
        let signal = match (o.signal, &settle) {
            (Some(signal), Settle::Single(_)) => Some(signals::watch_signal(
                env,
                &self.state,
                signal,
                &[item.id],
                cancel_item,
            )?),
            _ => None,
        };
        let user_id = if with_user_id { o.id.clone() } else { None };
        let extras = Extras {
            on_progress: keep(o.on_progress)?,
            data: kept,
            metadata: keep(o.metadata)?,
            signal,
            user_id,
        }
        .boxed();
        let mut s = self.state.borrow_mut();
        if let (None, Settle::Member { group, index }) = (&extras, &settle) {
            // A member that carries nothing else costs one bit of its group.
            s.hold_plain(*group, *index);
            return Ok(());
        }
        if let Some(u) = extras.as_ref().and_then(|e| e.user_id.as_ref()) {
            s.user_ids.insert(u.clone(), item.id);
        }
        s.pending.insert(
            item.id,
            Pending {
                settle,
                priority: item.priority,
                extras,
            },
        );
        Ok(())
    }

    /// The operation and whether a JS processor serves it; the inner error
    /// is the refusal the item's promise rejects with.
    pub(super) fn op_name(
        &self,
        env: &Env,
        kind: &Unknown,
    ) -> Result<std::result::Result<(OpName, bool), SubmitError>> {
        if kind.get_type()? != ValueType::String {
            return Err(type_error(
                env,
                INVALID_ARG_TYPE,
                "type must be a BatchOperationType or string",
            ));
        }
        let name: String = convert::<String>(env, kind.raw())?;
        let is_js = self.state.borrow().processors.contains_key(name.as_str());
        if !is_js && !gama_core::batch::is_native(&name) {
            return Ok(Err(SubmitError::NoProcessor(name)));
        }
        Ok(Ok((name.into(), is_js)))
    }

    /// The operation of a call and whether a JS processor serves it, or the
    /// already rejected promise the call returns (no processor for it; its
    /// signal already aborted).
    pub(super) fn admit(
        &self,
        env: &Env,
        kind: &Unknown,
        o: &ItemOptions,
    ) -> Result<std::result::Result<(OpName, bool), RawValue>> {
        let (op, is_js) = match self.op_name(env, kind)? {
            Ok(v) => v,
            Err(refusal) => return Self::rejected(env, &refusal).map(Err),
        };
        if let Some(signal) = o.signal {
            if is_aborted(env, signal)? {
                return Self::rejected(env, &ItemError::aborted()).map(Err);
            }
        }
        Ok(Ok((op, is_js)))
    }

    /// A promise already rejected with `e`.
    pub(super) fn rejected(env: &Env, e: &dyn Coded) -> Result<RawValue> {
        let (deferred, promise) = Deferred::new(env)?;
        deferred.reject(env, coded_value(env, e));
        Ok(RawValue(promise))
    }

    /// Takes back the items (`ids`) of the `addItems` call of group
    /// `group` that failed part-way (its promise was never returned, so
    /// nothing settles).
    pub(super) fn abandon(&self, env: &Env, group: ItemId, ids: Range<ItemId>) {
        let core = self.core();
        // Its members settle with no group now: the core's cancel events
        // find nothing pending.
        self.state.borrow_mut().discard_group(env, group);
        for id in ids {
            let pending = self.state.borrow_mut().pending.remove(&id);
            if let Some(extras) = pending.and_then(|p| p.extras) {
                if let Some(key) = extras.signal {
                    signals::unwatch_signal(env, &self.state, key, id);
                }
                extras.delete(env);
            }
            core.cancel(id);
        }
        self.state.borrow_mut().update_hold(env);
    }

    /// Hands accepted items to the core; on refusal rejects them.
    pub(super) fn enqueue(&self, env: &Env, items: Vec<Item>) {
        let ids: Vec<ItemId> = items.iter().map(|i| i.id).collect();
        if let Err(e) = self.core().submit(items) {
            let error = ItemError::from(&e);
            for id in ids {
                reject_now(env, &self.state, id, &error);
            }
        }
    }
}

/// Items an `addItems` call hands to the workers at a time while reading the rest.
pub(super) const INTAKE_CHUNK: usize = 64;

/// The samples of the native items being taken in, copied into one buffer
/// that the items of a chunk share once it goes to the workers.
pub(super) struct Intake {
    /// When the call came: the items' time of queueing (one clock read per call).
    started: Instant,
    samples: Vec<f32>,
    /// Each native item's range of `samples`, in the order taken in.
    ranges: Vec<Range<usize>>,
    /// Whether buffers are sized for a chunk of many items.
    chunked: bool,
    /// Samples of the last item taken in (what the next one likely needs).
    last: usize,
}

impl Intake {
    /// An intake for one item.
    pub(super) fn single() -> Self {
        Intake {
            started: Instant::now(),
            samples: Vec::new(),
            ranges: Vec::new(),
            chunked: false,
            last: 0,
        }
    }

    /// An intake for many items, handed over in chunks.
    pub(super) fn chunked() -> Self {
        Intake {
            chunked: true,
            ..Intake::single()
        }
    }

    /// The buffer to copy the next item's samples into.
    fn buffer(&mut self) -> &mut Vec<f32> {
        if self.chunked && self.samples.capacity() == 0 {
            self.samples = SampleBuffer::recycled();
        }
        &mut self.samples
    }

    /// Records where the next native item's samples lie.
    fn taken(&mut self, range: Range<usize>) {
        self.last = range.len();
        self.ranges.push(range);
    }

    /// Whether one more item like the last would move the buffer (time to
    /// hand the chunk to the workers).
    pub(super) fn is_full(&self) -> bool {
        self.samples.len() + self.last > self.samples.capacity()
    }

    /// Gives the chunk's `items` (in the order taken in) their samples,
    /// sharing one buffer; the next item starts a new buffer.
    pub(super) fn take(&mut self, items: &mut [Item]) {
        if self.ranges.is_empty() {
            return;
        }
        let buffer = Arc::new(SampleBuffer::from(std::mem::take(&mut self.samples)));
        let mut ranges = self.ranges.drain(..);
        for item in items {
            if let Input::Audio { samples, .. } = &mut item.input {
                let range = ranges.next().expect("one range per native item");
                *samples = Samples::new(buffer.clone(), range)
                    .expect("ranges were taken from this buffer");
            }
        }
    }
}

/// Cancels an item wherever it is; false when it already settled.
pub(super) fn cancel_item(_env: &Env, state: &StateCell, id: ItemId) -> bool {
    let core = state.borrow().core();
    core.cancel(id)
}
