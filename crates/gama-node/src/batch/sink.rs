//! The bridge from the core to the JS thread: events queue in an inbox and
//! one weak threadsafe function call drains them in batches.

use gama_core::batch::{Event, Sink};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;

use super::state;

/// The core's sink of a processor: its inbox and the drain's wake-up.
pub(super) struct JsSink {
    pub(super) inbox: state::Inbox,
    pub(super) wake: ThreadsafeFunction<(), (), (), Status, false, true>,
}

impl Sink for JsSink {
    fn deliver(&self, event: Event) {
        let mut inbox = self.inbox.lock();
        let was_empty = inbox.is_empty();
        inbox.push(event);
        drop(inbox);
        if was_empty {
            self.wake.call((), ThreadsafeFunctionCallMode::NonBlocking);
        }
    }

    fn deliver_all(&self, events: Vec<Event>) {
        let mut inbox = self.inbox.lock();
        let was_empty = inbox.is_empty();
        inbox.extend(events);
        drop(inbox);
        if was_empty {
            self.wake.call((), ThreadsafeFunctionCallMode::NonBlocking);
        }
    }
}
