//! JS errors that carry a `code`: `TypeError`, `RangeError` or `Error`.

use napi::{Env, Error, JsError, JsRangeError, JsTypeError};

/// Code of a wrong-type argument, as Node's own APIs use it.
pub const INVALID_ARG_TYPE: &str = "ERR_INVALID_ARG_TYPE";
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
