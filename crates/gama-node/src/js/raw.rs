//! Thin wrappers over raw N-API handles that napi-rs does not expose the way
//! the batch processor needs them: promises settled later from a drain
//! callback, and persistent references. All of them live on the JS thread.

use std::ptr;

use napi::{sys, Env, Result};

use super::errors::check_status as check;

/// The settling side of a promise made with `napi_create_promise`.
pub struct Deferred(sys::napi_deferred);

impl Deferred {
    /// A new promise and its settling side.
    ///
    /// # Safety
    /// `env` must be the live environment of the JS thread.
    pub unsafe fn new(env: sys::napi_env) -> Result<(Deferred, sys::napi_value)> {
        let (mut deferred, mut promise) = (ptr::null_mut(), ptr::null_mut());
        check(
            sys::napi_create_promise(env, &mut deferred, &mut promise),
            "napi_create_promise",
        )?;
        Ok((Deferred(deferred), promise))
    }

    /// Resolves the promise with `value`.
    ///
    /// # Safety
    /// As for `new`; `value` must be a live handle.
    pub unsafe fn resolve(self, env: sys::napi_env, value: sys::napi_value) {
        sys::napi_resolve_deferred(env, self.0, value);
    }

    /// Rejects the promise with `error`.
    ///
    /// # Safety
    /// As for `resolve`.
    pub unsafe fn reject(self, env: sys::napi_env, error: sys::napi_value) {
        sys::napi_reject_deferred(env, self.0, error);
    }
}

/// A strong reference to any JS value (primitives are boxed in a
/// one-element array, since Node 20 references objects only); `delete` it
/// on the JS thread.
pub struct Persistent {
    reference: sys::napi_ref,
    boxed: bool,
}

impl Persistent {
    /// Holds `value` until `delete`.
    ///
    /// # Safety
    /// `env` and `value` must be live handles of the JS thread.
    pub unsafe fn new(env: sys::napi_env, value: sys::napi_value) -> Result<Persistent> {
        let mut kind = 0;
        check(sys::napi_typeof(env, value, &mut kind), "napi_typeof")?;
        let boxed = !matches!(
            kind,
            sys::ValueType::napi_object | sys::ValueType::napi_function
        );
        let mut target = value;
        if boxed {
            check(
                sys::napi_create_array_with_length(env, 1, &mut target),
                "napi_create_array",
            )?;
            check(
                sys::napi_set_element(env, target, 0, value),
                "napi_set_element",
            )?;
        }
        let mut reference = ptr::null_mut();
        check(
            sys::napi_create_reference(env, target, 1, &mut reference),
            "napi_create_reference",
        )?;
        Ok(Persistent { reference, boxed })
    }

    /// The value held.
    ///
    /// # Safety
    /// `env` must be the live environment of the JS thread.
    pub unsafe fn get(&self, env: sys::napi_env) -> sys::napi_value {
        let mut value = ptr::null_mut();
        sys::napi_get_reference_value(env, self.reference, &mut value);
        if self.boxed {
            let mut inner = ptr::null_mut();
            sys::napi_get_element(env, value, 0, &mut inner);
            return inner;
        }
        value
    }

    /// Lets go of the value.
    ///
    /// # Safety
    /// As for `get`.
    pub unsafe fn delete(self, env: sys::napi_env) {
        sys::napi_delete_reference(env, self.reference);
    }
}

/// `undefined`.
pub fn undefined(env: &Env) -> sys::napi_value {
    let mut value = ptr::null_mut();
    unsafe { sys::napi_get_undefined(env.raw(), &mut value) };
    value
}

/// Drops a pending exception (a throwing callback must not break the drain).
pub fn clear_exception(env: &Env) -> Option<sys::napi_value> {
    let mut pending = false;
    unsafe { sys::napi_is_exception_pending(env.raw(), &mut pending) };
    if !pending {
        return None;
    }
    let mut error = ptr::null_mut();
    unsafe { sys::napi_get_and_clear_last_exception(env.raw(), &mut error) };
    Some(error)
}

/// Calls a user callback; what it throws goes to `uncaughtException`.
pub fn call_reporting(env: &Env, callback: sys::napi_value, args: &[sys::napi_value]) {
    let mut result = ptr::null_mut();
    unsafe {
        sys::napi_call_function(
            env.raw(),
            undefined(env),
            callback,
            args.len(),
            args.as_ptr(),
            &mut result,
        );
    }
    if let Some(error) = clear_exception(env) {
        unsafe { sys::napi_fatal_exception(env.raw(), error) };
    }
}
