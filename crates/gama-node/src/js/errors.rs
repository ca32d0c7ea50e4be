//! JS errors that carry a `code`: `TypeError`, `RangeError` or `Error`.

use napi::{sys, Env, Error, JsError, JsRangeError, JsTypeError, Result, Status};

/// Code of a wrong-type argument, as Node's own APIs use it.
pub const INVALID_ARG_TYPE: &str = "ERR_INVALID_ARG_TYPE";
/// Code of an argument of the right type with a value not allowed (an
/// unknown option or enum name).
pub const INVALID_ARG_VALUE: &str = "ERR_INVALID_ARG_VALUE";
/// Code of an out-of-range or malformed argument.
pub const OUT_OF_RANGE: &str = "ERR_OUT_OF_RANGE";

/// A `TypeError` with `code`.
pub fn type_error(env: &Env, code: &str, message: impl Into<String>) -> Error {
    let err = JsTypeError::from(Error::new(code, message.into()));
    Error::from(err.into_unknown(*env))
}

/// A `RangeError` with `code`.
pub fn range_error(env: &Env, code: &str, message: impl Into<String>) -> Error {
    let err = JsRangeError::from(Error::new(code, message.into()));
    Error::from(err.into_unknown(*env))
}

/// A plain `Error` with `code`.
pub fn coded_error(env: &Env, code: &str, message: impl Into<String>) -> Error {
    let err = JsError::from(Error::new(code, message.into()));
    Error::from(err.into_unknown(*env))
}

/// `Ok` when a raw N-API call succeeded, else an error naming `what`.
pub fn check_status(status: sys::napi_status, what: &str) -> Result<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(Error::new(Status::from(status), what.to_string()))
    }
}
