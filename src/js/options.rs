//! Validation of numeric and size options, shared by every class.

use napi::bindgen_prelude::{
    ClassInstance, FromNapiValue, Function, JsObjectValue, JsValuesTupleIntoVec, MaybeTypeTag,
    Object, Unknown,
};
use napi::{Either, Env, JsValue, Result, ValueType};

use super::errors::{range_error, type_error, INVALID_ARG_TYPE, OUT_OF_RANGE};
use crate::memory::{bytes_from_number, parse_size};

/// A size given as a byte count or a string such as "512MB".
pub type SizeInput = Either<f64, String>;

/// Parses a size option into bytes; `name` appears in the error.
pub fn size_option(env: &Env, name: &str, value: &SizeInput) -> Result<u64> {
    let parsed = match value {
        Either::A(n) => bytes_from_number(*n),
        Either::B(s) => parse_size(s),
    };
    parsed.map_err(|e| range_error(env, OUT_OF_RANGE, format!("{name}: {e}")))
}

/// Parses a size argument given as any JS value: a number or a string such
/// as "4MB"; anything else is a TypeError naming `name`.
pub fn size_arg(env: &Env, name: &str, value: &Unknown) -> Result<u64> {
    let input = match value.get_type()? {
        ValueType::Number => Either::A(unsafe { f64::from_napi_value(env.raw(), value.raw())? }),
        ValueType::String => Either::B(unsafe { String::from_napi_value(env.raw(), value.raw())? }),
        _ => {
            return Err(type_error(
                env,
                INVALID_ARG_TYPE,
                format!("{name} must be a number of bytes or a string such as \"4MB\""),
            ))
        }
    };
    size_option(env, name, &input)
}

/// A whole number in `min..=max`; `name` appears in the error.
pub fn integer_option(env: &Env, name: &str, value: f64, min: f64, max: f64) -> Result<u64> {
    if !value.is_finite() || value.fract() != 0.0 || value < min || value > max {
        return Err(range_error(
            env,
            OUT_OF_RANGE,
            format!("{name} must be a whole number from {min} to {max}, got {value}"),
        ));
    }
    Ok(value as u64)
}

/// A duration in milliseconds, finite and not negative; `name` appears in the error.
pub fn millis_option(env: &Env, name: &str, value: f64) -> Result<std::time::Duration> {
    if !value.is_finite() || value < 0.0 {
        return Err(range_error(
            env,
            OUT_OF_RANGE,
            format!("{name} must be a finite number of milliseconds >= 0, got {value}"),
        ));
    }
    Ok(std::time::Duration::from_secs_f64(value / 1000.0))
}

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
    unsafe { Function::from_napi_value(env.raw(), value.raw()) }
}

/// A property that is neither undefined nor null.
pub fn get_field<'env>(object: &Object<'env>, name: &str) -> Result<Option<Unknown<'env>>> {
    let value: Unknown = object.get_named_property(name)?;
    Ok(match value.get_type()? {
        ValueType::Undefined | ValueType::Null => None,
        _ => Some(value),
    })
}

/// A number property, if present; anything else is a TypeError naming it.
pub fn number_field(env: &Env, object: &Object, name: &str) -> Result<Option<f64>> {
    match get_field(object, name)? {
        None => Ok(None),
        Some(v) if v.get_type()? == ValueType::Number => {
            Ok(Some(unsafe { f64::from_napi_value(env.raw(), v.raw())? }))
        }
        Some(_) => Err(type_error(
            env,
            INVALID_ARG_TYPE,
            format!("{name} must be a number"),
        )),
    }
}

/// An options argument: an object, or None for undefined/null; anything
/// else is a TypeError naming it.
pub fn options_object<'env>(
    env: &Env,
    value: Option<Unknown<'env>>,
    name: &str,
) -> Result<Option<Object<'env>>> {
    match value {
        None => Ok(None),
        Some(v) => match v.get_type()? {
            ValueType::Undefined | ValueType::Null => Ok(None),
            ValueType::Object => Ok(Some(unsafe {
                Object::from_napi_value(env.raw(), v.raw())?
            })),
            _ => Err(type_error(
                env,
                INVALID_ARG_TYPE,
                format!("{name} must be an object"),
            )),
        },
    }
}

/// A property holding an instance of the #[napi] class `T`, if present;
/// anything else is a TypeError naming it and `class`.
pub fn instance_field<'env, T: 'static + MaybeTypeTag>(
    env: &Env,
    object: &Object<'env>,
    name: &str,
    class: &str,
) -> Result<Option<ClassInstance<'env, T>>> {
    get_field(object, name)?
        .map(|v| {
            unsafe { ClassInstance::<T>::from_napi_value(env.raw(), v.raw()) }
                .map_err(|_| type_error(env, INVALID_ARG_TYPE, format!("{name} must be {class}")))
        })
        .transpose()
}
