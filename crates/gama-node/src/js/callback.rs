//! Raw N-API callbacks for the fast paths (`cache::fast_path`,
//! `memory::fast_path`): JS functions that skip napi-rs's argument and class
//! unwrapping, and the tagged externals ("handles") that carry their native
//! state into JS.
//!
//! A handle is a `Box<T>` behind an external tagged with `T::TAG`; its
//! finalizer frees the box once JS can no longer reach it. Only `Handle`
//! types make handles, so a tag names exactly one Rust type.

use std::ffi::{c_void, CStr};
use std::ptr;

use napi::{sys, Env, Result};

use super::errors::check_status;
use super::napi::Js;

/// A type carried into JS as a handle.
///
/// # Safety
/// `TAG` must be unique to the implementing type: `handle` trusts a tagged
/// external to hold a `Box<Self>`.
pub unsafe trait Handle: Sized + 'static {
    /// The type tag of this type's externals.
    const TAG: sys::napi_type_tag;
}

/// A new handle holding `value`.
pub fn make_handle<T: Handle>(js: Js, value: T) -> Result<sys::napi_value> {
    let data = Box::into_raw(Box::new(value));
    let mut external = ptr::null_mut();
    // SAFETY: the live env; `data` is a fresh box that `finalize::<T>` frees
    // exactly once, when the external is collected.
    let status = unsafe {
        sys::napi_create_external(
            js.raw(),
            data.cast(),
            Some(finalize::<T>),
            ptr::null_mut(),
            &mut external,
        )
    };
    if status != sys::Status::napi_ok {
        // SAFETY: the external was not made: the box is still ours.
        drop(unsafe { Box::from_raw(data) });
        return Err(napi::Error::from_reason("napi_create_external failed"));
    }
    // SAFETY: the live env and the external just made.
    let status = unsafe { sys::napi_type_tag_object(js.raw(), external, &T::TAG) };
    check_status(status, "napi_type_tag_object")?;
    Ok(external)
}

/// Frees a handle's box once its external is collected.
///
/// # Safety
/// N-API calls it once, with the pointer `make_handle` gave it.
unsafe extern "C" fn finalize<T: Handle>(_env: sys::napi_env, data: *mut c_void, _: *mut c_void) {
    // SAFETY: the caller's contract: `data` is the `Box<T>` leaked by
    // `make_handle`, freed only here.
    drop(unsafe { Box::from_raw(data.cast::<T>()) });
}

/// The handle's value behind `value`, when it is a handle of `T`.
pub fn handle<'js, T: Handle>(js: Js<'js>, value: sys::napi_value) -> Result<Option<&'js T>> {
    let Some(data) = js.tagged_external(value, &T::TAG)? else {
        return Ok(None);
    };
    // SAFETY: only `make_handle::<T>` tags externals with T::TAG (the
    // trait's contract), over a leaked `Box<T>` that its finalizer frees once
    // the external is unreachable; `value` is an argument of the running
    // call, so it is reachable for at least `'js`. Handles are only read on
    // the JS thread.
    Ok(unsafe { data.cast::<T>().cast_const().as_ref() })
}

/// Runs the body of a callback N-API calls on the JS thread with its live
/// env, turning a failed N-API call into the pending exception napi-rs
/// would throw, and a panic into a thrown `E_PANIC` Error naming `owner`;
/// null (the callback's value when it throws) in both cases.
///
/// # Safety
/// `env` must be the env N-API passed to the running callback.
pub unsafe fn guarded(
    env: sys::napi_env,
    owner: &CStr,
    body: impl FnOnce(Js) -> Result<sys::napi_value>,
) -> sys::napi_value {
    // SAFETY: the caller's contract.
    let js = unsafe { Js::from_raw(env) };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(js))) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            if js.take_exception().is_none() {
                // SAFETY: the live env of this callback.
                unsafe { napi::JsError::from(e).throw_into(env) };
            }
            ptr::null_mut()
        }
        Err(_) => {
            let message = format!("internal error in {}", owner.to_string_lossy());
            let message = std::ffi::CString::new(message).unwrap_or_default();
            js.throw_error(c"E_PANIC", &message);
            ptr::null_mut()
        }
    }
}

/// Throws a TypeError (ERR_INVALID_ARG_TYPE) and returns null, as a
/// callback does on failure.
pub fn throw_type_error(js: Js, message: &CStr) -> Result<sys::napi_value> {
    js.throw_type_error(c"ERR_INVALID_ARG_TYPE", message);
    Ok(ptr::null_mut())
}

/// A JS function named `name` that runs `cb`.
pub fn native_function(env: &Env, name: &CStr, cb: sys::napi_callback) -> Result<sys::napi_value> {
    let mut f = ptr::null_mut();
    // SAFETY: the live env of this call; `name` is NUL-terminated (its
    // length is given as "up to NUL"), and `cb` is an N-API callback.
    let status = unsafe {
        sys::napi_create_function(
            env.raw(),
            name.as_ptr(),
            usize::MAX as isize,
            cb,
            ptr::null_mut(),
            &mut f,
        )
    };
    check_status(status, "napi_create_function")?;
    Ok(f)
}
