//! The bridge from the streams' pool jobs to the JS thread: events queue in
//! an inbox and one weak threadsafe function call drains them in batches.

use std::sync::Arc;

use gama_core::stream::{StreamEvent, StreamSink};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;
use parking_lot::Mutex;

/// Events from the pool, waiting for the JS thread.
pub(super) type Inbox = Arc<Mutex<Vec<StreamEvent>>>;

/// The core's sink of a `FeatureStreams`: its inbox and the drain's wake-up.
pub(super) struct JsSink {
    pub(super) inbox: Inbox,
    pub(super) wake: ThreadsafeFunction<(), (), (), Status, false, true>,
}

impl StreamSink for JsSink {
    fn deliver(&self, event: StreamEvent) {
        let mut inbox = self.inbox.lock();
        let was_empty = inbox.is_empty();
        inbox.push(event);
        drop(inbox);
        if was_empty {
            self.wake.call((), ThreadsafeFunctionCallMode::NonBlocking);
        }
    }
}
