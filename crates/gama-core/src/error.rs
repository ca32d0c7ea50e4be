//! What every error of the core tells a binding: a stable code and the
//! class of error to raise it as.

/// The kind of JS error an error is raised as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// `Error`.
    Error,
    /// `TypeError`: a value of the wrong type.
    TypeError,
    /// `RangeError`: a value of the right type outside what is allowed.
    RangeError,
    /// `Error` named `AbortError`, as `AbortSignal` users expect.
    AbortError,
}

/// An error with a stable `code` (what JS reads as `err.code`) and the
/// class a binding raises it as; its `Display` is the message.
pub trait Coded: std::error::Error {
    /// The stable code, e.g. `E_TOO_LARGE`.
    fn code(&self) -> &'static str;
    /// The class of error; `Error` unless the error says otherwise.
    fn class(&self) -> ErrorClass {
        ErrorClass::Error
    }
}

/// The message a panic carried (its `&str` or `String` payload), for an
/// error that reports the panic instead of aborting.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into())
}
