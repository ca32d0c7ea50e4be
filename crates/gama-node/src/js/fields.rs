//! Options objects read key by key, with clear errors: anything but a plain
//! object is a TypeError, so is any key the options do not know (with the
//! nearest known name suggested), and every value is checked for its type
//! and range before use. `null` and `undefined` mean "the default" unless
//! a key gives null a meaning of its own. Errors name the path of the value
//! (`options.maxMemory`) and describe it briefly, never quoting it whole.

use std::time::Duration;

use napi::bindgen_prelude::{
    Array, ClassInstance, FromNapiValue, JsObjectValue, MaybeTypeTag, Object, Unknown,
};
use napi::{Env, JsValue, Result, ValueType};

use super::errors::{range_error, type_error, INVALID_ARG_TYPE, INVALID_ARG_VALUE, OUT_OF_RANGE};
use super::napi::{convert, Js};
use gama_core::memory::{bytes_from_number, parse_size};
use gama_core::suggest::nearest;

/// Longest duration option, in milliseconds (about 24.8 days, as for
/// Node's own timers); larger values are a RangeError.
pub const MAX_MILLIS: f64 = 2_147_483_647.0;

/// Most elements read from an array option.
const MAX_LIST: u32 = 4096;

/// An options object whose keys were checked against the known names.
pub struct Fields<'env> {
    env: Env,
    object: Object<'env>,
    path: String,
}

impl<'env> Fields<'env> {
    /// Reads `value` as the options object at `path`: None for undefined
    /// or null; a TypeError for any other non-object, an array, or a key
    /// not in `known`.
    pub fn read(
        env: &Env,
        value: Option<Unknown<'env>>,
        path: &str,
        known: &[&str],
    ) -> Result<Option<Fields<'env>>> {
        let Some(value) = value else {
            return Ok(None);
        };
        match value.get_type()? {
            ValueType::Undefined | ValueType::Null => return Ok(None),
            ValueType::Object if !is_array(env, &value)? => {}
            _ => {
                return Err(type_error(
                    env,
                    INVALID_ARG_TYPE,
                    format!("{path} must be an object; got {}", describe(env, &value)),
                ))
            }
        }
        // SAFETY: a live handle of this call, checked to be an object.
        let object = convert::<Object>(env, value.raw())?;
        for key in own_keys(env, &object)? {
            if !known.contains(&key.as_str()) {
                let hint = nearest(&key, known)
                    .map(|k| format!("; did you mean '{k}'?"))
                    .unwrap_or_else(|| format!("; known options: {}", known.join(", ")));
                return Err(type_error(
                    env,
                    INVALID_ARG_VALUE,
                    format!("unknown option '{}' in {path}{hint}", short(&key)),
                ));
            }
        }
        Ok(Some(Fields {
            env: *env,
            object,
            path: path.to_string(),
        }))
    }

    /// The path of `key` in errors (`options.key`).
    pub fn path(&self, key: &str) -> String {
        format!("{}.{key}", self.path)
    }

    fn raw(&self, key: &str) -> Result<Unknown<'env>> {
        self.object.get_named_property(key)
    }

    /// The value of `key`; None for undefined or null.
    pub fn value(&self, key: &str) -> Result<Option<Unknown<'env>>> {
        let value = self.raw(key)?;
        Ok(match value.get_type()? {
            ValueType::Undefined | ValueType::Null => None,
            _ => Some(value),
        })
    }

    /// Whether `key` holds null (for keys where null means something).
    pub fn is_null(&self, key: &str) -> Result<bool> {
        Ok(self.raw(key)?.get_type()? == ValueType::Null)
    }

    fn wrong_type(&self, key: &str, expected: &str, value: &Unknown) -> napi::Error {
        type_error(
            &self.env,
            INVALID_ARG_TYPE,
            format!(
                "{} must be {expected}; got {}",
                self.path(key),
                describe(&self.env, value)
            ),
        )
    }

    /// A number (any, NaN included: callers check the range).
    pub fn number(&self, key: &str) -> Result<Option<f64>> {
        let Some(value) = self.value(key)? else {
            return Ok(None);
        };
        if value.get_type()? != ValueType::Number {
            return Err(self.wrong_type(key, "a number", &value));
        }
        // SAFETY: a live handle of this call, checked to be a number.
        Ok(Some(unsafe {
            f64::from_napi_value(self.env.raw(), value.raw())?
        }))
    }

    /// A finite number in `min..=max`.
    pub fn number_in(&self, key: &str, min: f64, max: f64) -> Result<Option<f64>> {
        let Some(n) = self.number(key)? else {
            return Ok(None);
        };
        if !(n.is_finite() && (min..=max).contains(&n)) {
            return Err(range_error(
                &self.env,
                OUT_OF_RANGE,
                format!(
                    "{} must be a number from {} to {}; got {}",
                    self.path(key),
                    number_text(min),
                    number_text(max),
                    number_text(n)
                ),
            ));
        }
        Ok(Some(n))
    }

    /// A whole number in `min..=max`.
    pub fn integer(&self, key: &str, min: f64, max: f64) -> Result<Option<u64>> {
        let Some(n) = self.number(key)? else {
            return Ok(None);
        };
        whole_number(&self.env, &self.path(key), n, min, max).map(Some)
    }

    /// A duration in milliseconds from 0 to `MAX_MILLIS`.
    pub fn millis(&self, key: &str) -> Result<Option<Duration>> {
        let Some(n) = self.number(key)? else {
            return Ok(None);
        };
        millis(&self.env, &self.path(key), n).map(Some)
    }

    /// A boolean.
    pub fn boolean(&self, key: &str) -> Result<Option<bool>> {
        let Some(value) = self.value(key)? else {
            return Ok(None);
        };
        if value.get_type()? != ValueType::Boolean {
            return Err(self.wrong_type(key, "a boolean", &value));
        }
        // SAFETY: a live handle of this call, checked to be a boolean.
        Ok(Some(unsafe {
            bool::from_napi_value(self.env.raw(), value.raw())?
        }))
    }

    /// A string.
    pub fn string(&self, key: &str) -> Result<Option<String>> {
        let Some(value) = self.value(key)? else {
            return Ok(None);
        };
        string_value(&self.env, &self.path(key), &value).map(Some)
    }

    /// One of the named `choices`.
    pub fn choice<T: Copy>(&self, key: &str, choices: &[(&str, T)]) -> Result<Option<T>> {
        let Some(value) = self.value(key)? else {
            return Ok(None);
        };
        let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
        let expected = names
            .iter()
            .map(|n| format!("'{n}'"))
            .collect::<Vec<_>>()
            .join(" | ");
        if value.get_type()? != ValueType::String {
            return Err(self.wrong_type(key, &expected, &value));
        }
        let name = string_value(&self.env, &self.path(key), &value)?;
        match choices.iter().find(|(n, _)| *n == name) {
            Some((_, v)) => Ok(Some(*v)),
            None => {
                let hint = nearest(&name, &names)
                    .map(|n| format!("; did you mean '{n}'?"))
                    .unwrap_or_default();
                Err(range_error(
                    &self.env,
                    INVALID_ARG_VALUE,
                    format!(
                        "{} must be {expected}; got '{}'{hint}",
                        self.path(key),
                        short(&name)
                    ),
                ))
            }
        }
    }

    /// An array of strings (at most 4096; holes are errors naming the index).
    pub fn strings(&self, key: &str) -> Result<Option<Vec<String>>> {
        let Some(value) = self.value(key)? else {
            return Ok(None);
        };
        string_list(&self.env, &self.path(key), &value).map(Some)
    }

    /// A size: a number of bytes or a string such as "512MB".
    pub fn size(&self, key: &str) -> Result<Option<u64>> {
        let Some(value) = self.value(key)? else {
            return Ok(None);
        };
        size_value(&self.env, &self.path(key), &value).map(Some)
    }

    /// An instance of the #[napi] class `T` (`class` names it in the error).
    pub fn instance<T: 'static + MaybeTypeTag>(
        &self,
        key: &str,
        class: &str,
    ) -> Result<Option<ClassInstance<'env, T>>> {
        let Some(value) = self.value(key)? else {
            return Ok(None);
        };
        // SAFETY: a live handle of this call; napi checks the type tag.
        unsafe { ClassInstance::<T>::from_napi_value(self.env.raw(), value.raw()) }
            .map(Some)
            .map_err(|_| self.wrong_type(key, class, &value))
    }

    /// A nested options object with its own known keys.
    pub fn fields(&self, key: &str, known: &[&str]) -> Result<Option<Fields<'env>>> {
        Fields::read(&self.env, self.value(key)?, &self.path(key), known)
    }
}

/// A whole number in `min..=max`; `path` names it in the error.
pub fn whole_number(env: &Env, path: &str, n: f64, min: f64, max: f64) -> Result<u64> {
    if !(n.is_finite() && n.fract() == 0.0 && (min..=max).contains(&n)) {
        return Err(range_error(
            env,
            OUT_OF_RANGE,
            format!(
                "{path} must be a whole number from {} to {}; got {}",
                number_text(min),
                number_text(max),
                number_text(n)
            ),
        ));
    }
    Ok(n as u64)
}

/// A duration in milliseconds from 0 to `MAX_MILLIS`; `path` names it.
pub fn millis(env: &Env, path: &str, n: f64) -> Result<Duration> {
    if !(n.is_finite() && (0.0..=MAX_MILLIS).contains(&n)) {
        return Err(range_error(
            env,
            OUT_OF_RANGE,
            format!(
                "{path} must be a number of milliseconds from 0 to {}; got {}",
                number_text(MAX_MILLIS),
                number_text(n)
            ),
        ));
    }
    Ok(Duration::from_secs_f64(n / 1000.0))
}

/// A size given as a number of bytes or a string such as "4MB"; `path`
/// names it in the error.
pub fn size_value(env: &Env, path: &str, value: &Unknown) -> Result<u64> {
    let parsed = match value.get_type()? {
        ValueType::Number => bytes_from_number(convert::<f64>(env, value.raw())?),
        ValueType::String => parse_size(&convert::<String>(env, value.raw())?),
        _ => {
            return Err(type_error(
                env,
                INVALID_ARG_TYPE,
                format!(
                    "{path} must be a number of bytes or a string such as \"4MB\"; got {}",
                    describe(env, value)
                ),
            ))
        }
    };
    parsed.map_err(|e| range_error(env, OUT_OF_RANGE, format!("{path}: {e}")))
}

/// A string value; anything else is a TypeError naming `path`.
pub fn string_value(env: &Env, path: &str, value: &Unknown) -> Result<String> {
    if value.get_type()? != ValueType::String {
        return Err(type_error(
            env,
            INVALID_ARG_TYPE,
            format!("{path} must be a string; got {}", describe(env, value)),
        ));
    }
    // SAFETY: a live handle of this call, checked to be a string.
    convert::<String>(env, value.raw())
}

/// An array of at most 4096 strings; `path` names it in errors.
pub fn string_list(env: &Env, path: &str, value: &Unknown) -> Result<Vec<String>> {
    if !is_array(env, value)? {
        return Err(type_error(
            env,
            INVALID_ARG_TYPE,
            format!(
                "{path} must be an array of strings; got {}",
                describe(env, value)
            ),
        ));
    }
    // SAFETY: a live handle of this call, checked to be an array.
    let array = convert::<Array>(env, value.raw())?;
    if array.len() > MAX_LIST {
        return Err(range_error(
            env,
            OUT_OF_RANGE,
            format!(
                "{path} may hold at most {MAX_LIST} items; got {}",
                array.len()
            ),
        ));
    }
    let mut out = Vec::new();
    for i in 0..array.len() {
        let item = element(env, &array, i)?.ok_or_else(|| {
            type_error(
                env,
                INVALID_ARG_TYPE,
                format!("{path}[{i}] must be a string; got a hole"),
            )
        })?;
        out.push(string_value(env, &format!("{path}[{i}]"), &item)?);
    }
    Ok(out)
}

/// Element `i` of `array`, or None for a hole (of a sparse array).
pub fn element<'env>(env: &Env, array: &Array<'env>, i: u32) -> Result<Option<Unknown<'env>>> {
    // May run a Proxy trap.
    if !Js::new(env).has_element(array.raw(), i)? {
        return Ok(None);
    }
    array.get(i)
}

/// Whether `value` is an array.
pub fn is_array(env: &Env, value: &Unknown) -> Result<bool> {
    Js::new(env).is_array(value.raw())
}

/// Own enumerable string keys of `object`.
fn own_keys(env: &Env, object: &Object) -> Result<Vec<String>> {
    // May run a Proxy's ownKeys trap; no borrow of addon state is held here.
    Js::new(env)
        .own_keys(object.raw())?
        .into_iter()
        .map(|key| convert::<String>(env, key))
        .collect()
}

/// A number as JS prints it, kept short: `1e+300`, `NaN`, `-Infinity`, `0.7`, `512`.
pub fn number_text(n: f64) -> String {
    if n.is_nan() {
        "NaN".into()
    } else if n.is_infinite() {
        if n > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else if n.fract() == 0.0 && n.abs() < 1e21 {
        format!("{n:.0}")
    } else if n.abs() >= 1e21 || n.abs() < 1e-6 {
        let text = format!("{n:e}");
        match text.split_once('e') {
            Some((m, e)) if !e.starts_with('-') => format!("{m}e+{e}"),
            _ => text,
        }
    } else {
        format!("{n}")
    }
}

/// At most 40 characters of `s`, for messages.
fn short(s: &str) -> String {
    let mut chars = s.chars();
    let head: String = chars.by_ref().take(40).collect();
    if chars.next().is_some() {
        format!("{head}...")
    } else {
        head
    }
}

/// A short description of a JS value for error messages: its type, and
/// for small scalars the value (`a string ('LRU')`, `a number (NaN)`,
/// `an array of 3 items`, `a Float32Array`), never a long rendering.
pub fn describe(env: &Env, value: &Unknown) -> String {
    let Ok(kind) = value.get_type() else {
        return "an unreadable value".into();
    };
    match kind {
        ValueType::Undefined => "undefined".into(),
        ValueType::Null => "null".into(),
        ValueType::Boolean => {
            // SAFETY: a live handle, checked to be a boolean.
            let b = convert::<bool>(env, value.raw()).unwrap_or(false);
            format!("a boolean ({b})")
        }
        ValueType::Number => {
            // SAFETY: a live handle, checked to be a number.
            let n = unsafe { f64::from_napi_value(env.raw(), value.raw()) }.unwrap_or(f64::NAN);
            format!("a number ({})", number_text(n))
        }
        ValueType::String => {
            // SAFETY: a live handle, checked to be a string.
            let s = convert::<String>(env, value.raw()).unwrap_or_default();
            if s.chars().count() <= 40 {
                format!("a string ('{s}')")
            } else {
                format!("a string of {} characters", s.chars().count())
            }
        }
        ValueType::Symbol => "a symbol".into(),
        ValueType::BigInt => "a bigint".into(),
        ValueType::Function => "a function".into(),
        ValueType::External => "an external".into(),
        ValueType::Object => {
            let js = Js::new(env);
            if is_array(env, value).unwrap_or(false) {
                let len = js.array_length(value.raw()).unwrap_or(0);
                return format!("an array of {len} items");
            }
            if matches!(js.typed_array_info(value.raw()), Ok(Some(_))) {
                return "a typed array".into();
            }
            "an object".into()
        }
        _ => "a value of an unknown type".into(),
    }
}
