//! The bridge from pool threads to the JS thread, shared by the batch
//! processor and the feature streams: events queue in an inbox, and one
//! call of a weak threadsafe function drains them in batches.

use std::sync::Arc;

use napi::bindgen_prelude::Function;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{sys, Env, Result, Status};
use parking_lot::Mutex;

/// Events waiting for the JS thread.
pub type Inbox<E> = Arc<Mutex<Vec<E>>>;

/// An inbox and the wake-up of its drain.
pub struct Mailbox<E> {
    inbox: Inbox<E>,
    wake: ThreadsafeFunction<(), (), (), Status, false, true>,
}

impl<E> Mailbox<E> {
    /// A mailbox for `inbox` whose `drain` runs on the JS thread once
    /// events arrive. It does not keep Node running unless held
    /// (`hold_loop`).
    pub fn new(env: &Env, inbox: Inbox<E>, drain: impl Fn(&Env) + 'static) -> Result<Self> {
        let noop: Function<(), ()> = env.create_function_from_closure("drain", |_| Ok(()))?;
        let wake = noop
            .build_threadsafe_function::<()>()
            .callee_handled::<false>()
            .weak::<true>()
            .build_callback(move |ctx| {
                drain(&ctx.env);
                Ok(())
            })?;
        Ok(Mailbox { inbox, wake })
    }

    /// The threadsafe function, for `hold_loop`.
    pub fn raw(&self) -> sys::napi_threadsafe_function {
        self.wake.raw()
    }

    /// Queues events; the first into an empty inbox wakes the drain.
    pub fn post_all(&self, events: impl IntoIterator<Item = E>) {
        let mut inbox = self.inbox.lock();
        let was_empty = inbox.is_empty();
        inbox.extend(events);
        drop(inbox);
        if was_empty {
            self.wake.call((), ThreadsafeFunctionCallMode::NonBlocking);
        }
    }
}

/// Makes a mailbox's threadsafe function keep Node running (`hold`) or
/// let go of it; call on the JS thread while the mailbox lives.
pub fn hold_loop(env: &Env, tsfn: sys::napi_threadsafe_function, hold: bool) {
    // SAFETY: the live env of this call; the caller keeps the mailbox
    // owning `tsfn` alive.
    let status = unsafe {
        if hold {
            sys::napi_ref_threadsafe_function(env.raw(), tsfn)
        } else {
            sys::napi_unref_threadsafe_function(env.raw(), tsfn)
        }
    };
    let _ = super::errors::check_status(status, "napi_ref_threadsafe_function");
}
