//! Reading string keys from JS without a heap allocation per key.

use std::borrow::Cow;
use std::ptr;

use napi::{sys, Env, Result};

use super::errors::{type_error, INVALID_ARG_TYPE};

/// Reads a JS string into `buf` when it fits, else into a fresh String.
/// Returns None if `value` is not a string.
pub(crate) unsafe fn read_key<'b>(
    env: sys::napi_env,
    value: sys::napi_value,
    buf: &'b mut [u8; 256],
) -> Option<std::borrow::Cow<'b, str>> {
    let mut len = 0usize;
    if sys::napi_get_value_string_utf8(env, value, buf.as_mut_ptr().cast(), buf.len(), &mut len)
        != sys::Status::napi_ok
    {
        return None;
    }
    if len + 1 < buf.len() {
        return Some(Cow::Borrowed(std::str::from_utf8_unchecked(&buf[..len])));
    }
    let mut full = 0usize;
    sys::napi_get_value_string_utf8(env, value, ptr::null_mut(), 0, &mut full);
    let mut owned = vec![0u8; full + 1];
    sys::napi_get_value_string_utf8(
        env,
        value,
        owned.as_mut_ptr().cast(),
        owned.len(),
        &mut full,
    );
    owned.truncate(full);
    Some(Cow::Owned(String::from_utf8_unchecked(owned)))
}

/// The keys of a JS string array, in one buffer.
pub struct KeyList {
    text: String,
    ends: Vec<usize>,
}

impl KeyList {
    /// The keys as string slices, in order.
    pub fn as_strs(&self) -> Vec<&str> {
        let mut start = 0;
        self.ends
            .iter()
            .map(|&end| {
                let key = &self.text[start..end];
                start = end;
                key
            })
            .collect()
    }
}

/// Reads an array of string keys; `name` appears in errors.
///
/// # Safety
/// `env` and `array` must be live handles of the current call.
pub unsafe fn read_keys(env: &Env, array: sys::napi_value, name: &str) -> Result<KeyList> {
    let raw = env.raw();
    let mut is_array = false;
    sys::napi_is_array(raw, array, &mut is_array);
    if !is_array {
        return Err(type_error(
            env,
            INVALID_ARG_TYPE,
            format!("{name} must be an array of strings"),
        ));
    }
    let mut len = 0u32;
    sys::napi_get_array_length(raw, array, &mut len);
    let mut list = KeyList {
        text: String::with_capacity(len as usize * 16),
        ends: Vec::with_capacity(len as usize),
    };
    let mut buf = [0u8; 256];
    for i in 0..len {
        let mut element = ptr::null_mut();
        sys::napi_get_element(raw, array, i, &mut element);
        let Some(key) = read_key(raw, element, &mut buf) else {
            return Err(type_error(
                env,
                INVALID_ARG_TYPE,
                format!("{name}[{i}] must be a string"),
            ));
        };
        list.text.push_str(&key);
        list.ends.push(list.text.len());
    }
    Ok(list)
}
