//! JS errors that carry a `code`: `TypeError`, `RangeError`, `Error` or an
//! `AbortError`, built in one place for thrown errors and rejections alike.

use super::napi::{convert, unknown};
use gama_core::error::{Coded, ErrorClass};
use napi::bindgen_prelude::{JsObjectValue, Object};
use napi::{sys, Env, Error, JsError, JsRangeError, JsTypeError, JsValue, Result, Status};

/// Code of a wrong-type argument, as Node's own APIs use it.
pub const INVALID_ARG_TYPE: &str = "ERR_INVALID_ARG_TYPE";
/// Code of an argument of the right type with a value not allowed (an
/// unknown option or enum name).
pub const INVALID_ARG_VALUE: &str = "ERR_INVALID_ARG_VALUE";
/// Code of an out-of-range or malformed argument.
pub const OUT_OF_RANGE: &str = "ERR_OUT_OF_RANGE";

/// The JS error object of `class` with `code` and `message`, for rejecting a
/// promise or passing to a callback.
pub fn error_value(env: &Env, class: ErrorClass, code: &str, message: &str) -> sys::napi_value {
    let reason = Error::new(code, message);
    let value = match class {
        ErrorClass::RangeError => JsRangeError::from(reason).into_unknown(*env),
        ErrorClass::TypeError => JsTypeError::from(reason).into_unknown(*env),
        ErrorClass::Error | ErrorClass::AbortError => JsError::from(reason).into_unknown(*env),
    };
    if class == ErrorClass::AbortError {
        // SAFETY: `value` was just created in this env, and is an error object.
        if let Ok(mut error) = convert::<Object>(env, value.raw()) {
            let _ = error.set_named_property("name", "AbortError");
        }
    }
    value.raw()
}

/// The error to throw for `class`, `code` and `message`.
fn thrown(env: &Env, class: ErrorClass, code: &str, message: &str) -> Error {
    Error::from(unknown(env, error_value(env, class, code, message)))
}

/// The error to throw for an error of the core: its code, message and class.
pub fn coded(env: &Env, e: &dyn Coded) -> Error {
    thrown(env, e.class(), e.code(), &e.to_string())
}

/// As `coded`, the message led by `place` (what the error is about, e.g.
/// `clips[3]`).
pub fn coded_at(env: &Env, place: &str, e: &dyn Coded) -> Error {
    thrown(env, e.class(), e.code(), &format!("{place}: {e}"))
}

/// The error value of an error of the core, for a rejection.
pub fn coded_value(env: &Env, e: &dyn Coded) -> sys::napi_value {
    error_value(env, e.class(), e.code(), &e.to_string())
}

/// A `TypeError` with `code`.
pub fn type_error(env: &Env, code: &str, message: impl Into<String>) -> Error {
    thrown(env, ErrorClass::TypeError, code, &message.into())
}

/// A `RangeError` with `code`.
pub fn range_error(env: &Env, code: &str, message: impl Into<String>) -> Error {
    thrown(env, ErrorClass::RangeError, code, &message.into())
}

/// A plain `Error` with `code`.
pub fn coded_error(env: &Env, code: &str, message: impl Into<String>) -> Error {
    thrown(env, ErrorClass::Error, code, &message.into())
}

/// `Ok` when a raw N-API call succeeded, else an error naming `what`.
pub fn check_status(status: sys::napi_status, what: &str) -> Result<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(Error::new(Status::from(status), what.to_string()))
    }
}
