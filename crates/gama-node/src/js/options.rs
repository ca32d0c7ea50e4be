//! Argument types shared by every class: sizes and callbacks.

use napi::bindgen_prelude::{FromNapiValue, Function, JsValuesTupleIntoVec, Unknown};
use napi::{Either, Env, JsValue, Result, ValueType};

use super::errors::{type_error, INVALID_ARG_TYPE};
use super::napi::convert;

/// A size given as a byte count or a string such as "512MB".
pub type SizeInput = Either<f64, String>;

/// A callback argument; anything but a function is a TypeError naming `name`.
pub fn function_arg<'env, Args: JsValuesTupleIntoVec, Return: FromNapiValue>(
    env: &Env,
    name: &str,
    value: Unknown<'env>,
) -> Result<Function<'env, Args, Return>> {
    if value.get_type()? != ValueType::Function {
        return Err(type_error(
            env,
            INVALID_ARG_TYPE,
            format!("{name} must be a function"),
        ));
    }
    convert::<Function<Args, Return>>(env, value.raw())
}
