//! The JS-thread side of a `FeatureStreams`: the object of every open
//! stream, the drain that turns the core's events into frame blocks and
//! settled promises, and the hold on the event loop while streams are open.
//!
//! Rule: no `RefCell` borrow is held while JS code runs (callbacks may
//! call back into the streams).
//!
//! Invariant: `open` holds every stream that has not ended as JS sees it;
//! a stream leaves it exactly once, when its end reaches JS (`Ended`) or it
//! is aborted.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use hashbrown::{HashMap, HashSet};
use napi::bindgen_prelude::{JsObjectValue, Object};
use napi::{sys, Env, JsValue, Result};

use super::glue::StreamGlue;
use crate::features::FeatureObjects;
use crate::js::errors::{coded_value, error_value};
use crate::js::mailbox::{hold_loop, Inbox};
use crate::js::napi::Js;
use crate::js::raw::{resolved_when, undefined, Deferred, Persistent};
use gama_core::error::ErrorClass;
use gama_core::stream::{Block, EndReason, Stream, StreamEvent, Streams, Summary};

/// What the JS side keeps for an open stream.
pub(super) struct Entry {
    /// The `FeatureStream` object (a strong reference).
    pub object: Persistent,
    pub stream: Stream,
    /// Whether an `onFrames` callback consumes frames as they arrive.
    pub at_once: bool,
    pub sample_rate: f64,
}

/// Everything the JS thread keeps for one `FeatureStreams`.
pub(super) struct JsStreams {
    pub core: Option<Arc<Streams>>,
    pub open: HashMap<u64, Entry>,
    /// Streams whose `push` reported backpressure, owed a 'drain'.
    pub need_drain: HashSet<u64>,
    pub inbox: Inbox<StreamEvent>,
    /// The drain's threadsafe function, referenced while streams are open.
    pub tsfn: sys::napi_threadsafe_function,
    held: bool,
    close_waiters: Vec<Deferred>,
}

/// The JS thread's handle to a `JsStreams`.
pub(super) type Cell = Rc<RefCell<JsStreams>>;

impl JsStreams {
    pub fn new(inbox: Inbox<StreamEvent>) -> Self {
        JsStreams {
            core: None,
            open: HashMap::new(),
            need_drain: HashSet::new(),
            inbox,
            tsfn: std::ptr::null_mut(),
            held: false,
            close_waiters: Vec::new(),
        }
    }

    /// The core; present from construction on.
    pub fn core(&self) -> Arc<Streams> {
        self.core.clone().expect("set at construction")
    }

    /// Holds the event loop while streams are open (their frames and ends
    /// are still to come).
    fn update_hold(&mut self, env: &Env) {
        let busy = !self.open.is_empty();
        if busy == self.held {
            return;
        }
        self.held = busy;
        // `tsfn` is the drain's, owned by the core's sink, which lives as
        // long as this state.
        hold_loop(env, self.tsfn, busy);
    }

    /// A promise that resolves once no stream is open.
    pub fn closed_promise(&mut self, env: &Env) -> Result<sys::napi_value> {
        resolved_when(env, self.open.is_empty(), &mut self.close_waiters)
    }
}

/// Runs on the JS thread whenever the pool has sent events: the frames of
/// every block go into one buffer (one ArrayBuffer per drain, not one per
/// block, which matters at thousands of streams), then each stream's
/// blocks are delivered in order, then ended streams are settled.
pub(super) fn drain(env: &Env, cell: &Cell) {
    let (events, core) = {
        let s = cell.borrow();
        let events = std::mem::take(&mut *s.inbox.lock());
        (events, s.core())
    };
    let Ok(glue) = StreamGlue::of(env) else {
        return;
    };
    let mut blocks = Vec::new();
    let mut ends = Vec::new();
    for event in events {
        match event {
            StreamEvent::Frames {
                serial,
                block,
                pushed,
            } => {
                // Gone: aborted after the frames were computed.
                if cell.borrow().open.contains_key(&serial) {
                    core.record_delivery(pushed);
                    blocks.push((serial, block));
                }
            }
            StreamEvent::Ended { serial, outcome } => ends.push((serial, outcome)),
        }
    }
    if let Err(e) = deliver_blocks(env, cell, glue, blocks) {
        let error = error_value(env, ErrorClass::Error, "E_CONVERT", &e.reason);
        Js::new(env).report_uncaught(error);
    }
    for (serial, outcome) in ends {
        let entry = cell.borrow_mut().open.remove(&serial);
        let Some(entry) = entry else {
            continue;
        };
        cell.borrow_mut().need_drain.remove(&serial);
        let id = entry.stream.id();
        let (summary, error, whole) = match outcome {
            Ok(mut s) => (
                summary_value(env, id, &s, entry.sample_rate).unwrap_or_else(|_| undefined(env)),
                undefined(env),
                s.whole
                    .take()
                    .and_then(|w| FeatureObjects::one(env, w).ok())
                    .unwrap_or_else(|| undefined(env)),
            ),
            Err(e) => (undefined(env), coded_value(env, &e), undefined(env)),
        };
        glue.end(env, entry.object.get(env), summary, error, whole);
        entry.object.delete(env);
    }
    after_change(env, cell);
}

/// Hands each block to `streams.js` as `[stream, buffer, offset,
/// firstFrame, frames]`, `buffer` shared by all of them.
fn deliver_blocks(
    env: &Env,
    cell: &Cell,
    glue: &StreamGlue,
    blocks: Vec<(u64, Block)>,
) -> Result<()> {
    if blocks.is_empty() {
        return Ok(());
    }
    let mut placed = Vec::with_capacity(blocks.len());
    let mut parts = Vec::with_capacity(blocks.len());
    let mut total = 0;
    for (serial, block) in blocks {
        let frames = block.features.frames;
        let values = block.features.into_parts().0.into_vec();
        placed.push((serial, total, block.first, frames));
        total += values.len();
        parts.push(values);
    }
    let data = if parts.len() == 1 {
        parts.pop().unwrap_or_default()
    } else {
        let mut data = Vec::with_capacity(total);
        parts.iter().for_each(|p| data.extend_from_slice(p));
        data
    };
    let js = Js::new(env);
    let buffer = js.f32_buffer(data)?;
    for (serial, offset, first, frames) in placed {
        let found = cell
            .borrow()
            .open
            .get(&serial)
            .map(|e| (e.object.get(env), e.stream.clone(), e.at_once));
        // Gone: aborted by a callback of this drain.
        let Some((object, stream, at_once)) = found else {
            continue;
        };
        let args = [
            object,
            buffer,
            js.number(offset as f64)?,
            js.number(first as f64)?,
            js.number(frames as f64)?,
        ];
        glue.deliver(env, &args);
        if at_once {
            stream.consumed(frames);
        }
    }
    Ok(())
}

/// Ends an aborted stream on the JS side: its promises reject with an
/// AbortError and its reader stops.
pub(super) fn aborted(env: &Env, cell: &Cell, serial: u64) {
    let entry = cell.borrow_mut().open.remove(&serial);
    cell.borrow_mut().need_drain.remove(&serial);
    if let (Some(entry), Ok(glue)) = (entry, StreamGlue::of(env)) {
        let message = format!(
            "the stream of utterance '{}' was aborted",
            entry.stream.id()
        );
        let error = error_value(env, ErrorClass::AbortError, "ABORT_ERR", &message);
        glue.end(
            env,
            entry.object.get(env),
            undefined(env),
            error,
            undefined(env),
        );
        entry.object.delete(env);
    }
    after_change(env, cell);
}

/// Emits 'drain' where backpressure has cleared, then updates the hold and
/// resolves `close()` waiters once nothing is open.
pub(super) fn after_change(env: &Env, cell: &Cell) {
    let ready: Vec<sys::napi_value> = {
        let mut s = cell.borrow_mut();
        let s = &mut *s;
        let open = &s.open;
        let mut ready = Vec::new();
        s.need_drain.retain(|serial| match open.get(serial) {
            Some(e) if e.stream.consumed(0) => {
                ready.push(e.object.get(env));
                false
            }
            Some(_) => true,
            None => false,
        });
        ready
    };
    if let Ok(glue) = StreamGlue::of(env) {
        for object in ready {
            glue.drain(env, object);
        }
    }
    let mut s = cell.borrow_mut();
    s.update_hold(env);
    if s.open.is_empty() {
        let waiters = std::mem::take(&mut s.close_waiters);
        drop(s);
        for w in waiters {
            w.resolve(env, undefined(env));
        }
    }
}

/// The `StreamSummary` object of a stream that ended.
fn summary_value(env: &Env, id: &str, s: &Summary, sample_rate: f64) -> Result<sys::napi_value> {
    let mut o = Object::new(env)?;
    o.set_named_property("utteranceId", id)?;
    o.set_named_property("frames", s.frames as f64)?;
    o.set_named_property("samples", s.samples as f64)?;
    o.set_named_property("durationSec", s.samples as f64 / sample_rate)?;
    o.set_named_property(
        "reason",
        match s.reason {
            EndReason::Finalized => "finalized",
            EndReason::Idle => "idle",
            EndReason::Closed => "closed",
        },
    )?;
    Ok(o.raw())
}
