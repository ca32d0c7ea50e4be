//! The binding's one kind of promise and one kind of reference: promises
//! settled later (from a drain callback, after a JS processor's batch) and
//! references that keep a JS value alive across calls. napi-rs's
//! `PromiseRaw` and `FunctionRef` cover only part of this (a promise made in
//! Rust and settled from another callback; a reference to any value,
//! primitives included, that can also be made weak), so these wrap N-API
//! through `Js`. All of them live on the JS thread: none is `Send`.

use std::marker::PhantomData;
use std::ptr;

use napi::{sys, Env, Result};

use super::errors::check_status as check;
use super::napi::Js;

/// The settling side of a promise made with `napi_create_promise`; settle it
/// exactly once (dropping it unsettled leaves the promise pending).
pub struct Deferred {
    deferred: sys::napi_deferred,
    _js_thread: PhantomData<*const ()>,
}

impl Deferred {
    /// A new promise and its settling side.
    pub fn new(env: &Env) -> Result<(Deferred, sys::napi_value)> {
        let (mut deferred, mut promise) = (ptr::null_mut(), ptr::null_mut());
        // SAFETY: `env` is the live env of this call (see `js::napi`); the
        // out-pointers are locals.
        let status = unsafe { sys::napi_create_promise(env.raw(), &mut deferred, &mut promise) };
        check(status, "napi_create_promise")?;
        Ok((
            Deferred {
                deferred,
                _js_thread: PhantomData,
            },
            promise,
        ))
    }

    /// Resolves the promise with `value`.
    pub fn resolve(self, env: &Env, value: sys::napi_value) {
        // SAFETY: the live env, a handle of this call, and a deferred that
        // is settled once (this consumes it).
        let status = unsafe { sys::napi_resolve_deferred(env.raw(), self.deferred, value) };
        let _ = check(status, "napi_resolve_deferred");
    }

    /// Rejects the promise with `error`.
    pub fn reject(self, env: &Env, error: sys::napi_value) {
        // SAFETY: as in `resolve`.
        let status = unsafe { sys::napi_reject_deferred(env.raw(), self.deferred, error) };
        let _ = check(status, "napi_reject_deferred");
    }
}

/// A reference to any JS value (primitives are boxed in a one-element
/// array, since Node 20 references objects only), strong unless made weak;
/// `delete` it on the JS thread.
pub struct Persistent {
    reference: sys::napi_ref,
    boxed: bool,
    _js_thread: PhantomData<*const ()>,
}

impl Persistent {
    /// Keeps `value` alive until `delete`.
    pub fn new(env: &Env, value: sys::napi_value) -> Result<Persistent> {
        Self::with_count(env, value, 1)
    }

    /// Refers to the object `value` without keeping it alive (`hold` makes
    /// it strong while needed).
    pub fn weak(env: &Env, value: sys::napi_value) -> Result<Persistent> {
        Self::with_count(env, value, 0)
    }

    fn with_count(env: &Env, value: sys::napi_value, count: u32) -> Result<Persistent> {
        let js = Js::new(env);
        let boxed = !matches!(
            js.type_of(value)?,
            sys::ValueType::napi_object | sys::ValueType::napi_function
        );
        let target = if boxed {
            let array = js.array()?;
            js.set_element(array, 0, value)?;
            array
        } else {
            value
        };
        let mut reference = ptr::null_mut();
        // SAFETY: the live env and a handle of this call; `reference` is a local.
        let status =
            unsafe { sys::napi_create_reference(env.raw(), target, count, &mut reference) };
        check(status, "napi_create_reference")?;
        Ok(Persistent {
            reference,
            boxed,
            _js_thread: PhantomData,
        })
    }

    /// The value held (`undefined` if a weak one was collected, or N-API
    /// refused).
    pub fn get(&self, env: &Env) -> sys::napi_value {
        let js = Js::new(env);
        let mut value = ptr::null_mut();
        // SAFETY: the live env and a reference not yet deleted (`delete`
        // consumes it).
        let status =
            unsafe { sys::napi_get_reference_value(env.raw(), self.reference, &mut value) };
        let value = match check(status, "napi_get_reference_value") {
            Ok(()) if !value.is_null() => value,
            _ => return undefined(env),
        };
        if self.boxed {
            return js.element(value, 0).unwrap_or_else(|_| undefined(env));
        }
        value
    }

    /// Makes the reference strong (`true`) or weak (`false`); for one made
    /// with `weak`, hold and release in pairs.
    pub fn hold(&self, env: &Env, strong: bool) {
        let mut count = 0;
        // SAFETY: the live env and a reference not yet deleted; `count` is a local.
        let status = unsafe {
            if strong {
                sys::napi_reference_ref(env.raw(), self.reference, &mut count)
            } else {
                sys::napi_reference_unref(env.raw(), self.reference, &mut count)
            }
        };
        let _ = check(status, "napi_reference_ref");
    }

    /// Lets go of the value.
    pub fn delete(self, env: &Env) {
        // SAFETY: the live env; the reference is deleted once (this consumes it).
        let status = unsafe { sys::napi_delete_reference(env.raw(), self.reference) };
        let _ = check(status, "napi_delete_reference");
    }
}

/// A promise resolving to `undefined`: now when `ready`, else when the
/// `Deferred` it leaves in `waiters` is resolved.
pub fn resolved_when(
    env: &Env,
    ready: bool,
    waiters: &mut Vec<Deferred>,
) -> Result<sys::napi_value> {
    let (deferred, promise) = Deferred::new(env)?;
    if ready {
        deferred.resolve(env, undefined(env));
    } else {
        waiters.push(deferred);
    }
    Ok(promise)
}

/// `undefined`.
pub fn undefined(env: &Env) -> sys::napi_value {
    Js::new(env).undefined().unwrap_or(ptr::null_mut())
}

/// Drops a pending exception (a throwing callback must not break the drain).
pub fn clear_exception(env: &Env) -> Option<sys::napi_value> {
    Js::new(env).take_exception()
}

/// Calls a user callback; what it throws goes to `uncaughtException`.
pub fn call_reporting(env: &Env, callback: sys::napi_value, args: &[sys::napi_value]) {
    let js = Js::new(env);
    let _ = js.call(undefined(env), callback, args);
    if let Some(error) = js.take_exception() {
        js.report_uncaught(error);
    }
}
