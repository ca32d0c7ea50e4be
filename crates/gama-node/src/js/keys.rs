//! Reading string keys from JS without a heap allocation per key.

use std::borrow::Cow;

use napi::{sys, Env, Result};

use super::errors::{type_error, INVALID_ARG_TYPE};
use super::napi::Js;

/// Why a JS value is not a usable key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadKey {
    /// Not a string.
    NotString,
    /// A string with a lone surrogate at this UTF-16 index: it has no UTF-8
    /// form, and replacing it would make distinct keys collide.
    LoneSurrogate(usize),
}

impl BadKey {
    /// What is wrong, for an error about `name`.
    pub fn message(self, name: &str) -> String {
        match self {
            BadKey::NotString => format!("{name} must be a string"),
            BadKey::LoneSurrogate(i) => {
                format!("{name} must be a well-formed string; it has a lone surrogate at index {i}")
            }
        }
    }
}

/// Reads a JS string into `buf` when it fits, else into a fresh String.
pub(crate) fn read_key<'b>(
    js: Js,
    value: sys::napi_value,
    buf: &'b mut [u8; 256],
) -> std::result::Result<Cow<'b, str>, BadKey> {
    let len = js.utf8_into(value, buf).map_err(|_| BadKey::NotString)?;
    // N-API copies whole characters only: a string may stop up to 4 bytes
    // short of the room (255 bytes and the NUL) yet be cut. Below that it is whole.
    let key = if len + 4 < buf.len() - 1 {
        Cow::Borrowed(std::str::from_utf8(&buf[..len]).map_err(|_| BadKey::NotString)?)
    } else {
        let full = js
            .utf8_into(value, &mut [])
            .map_err(|_| BadKey::NotString)?;
        let mut owned = vec![0u8; full + 1];
        let written = js
            .utf8_into(value, &mut owned)
            .map_err(|_| BadKey::NotString)?;
        owned.truncate(written);
        Cow::Owned(String::from_utf8(owned).map_err(|_| BadKey::NotString)?)
    };
    // N-API writes U+FFFD for a lone surrogate: look closer only then.
    if key.contains('\u{FFFD}') {
        if let Some(i) = lone_surrogate(js, value) {
            return Err(BadKey::LoneSurrogate(i));
        }
    }
    Ok(key)
}

/// The UTF-16 index of the first lone surrogate of a JS string, if any.
fn lone_surrogate(js: Js, value: sys::napi_value) -> Option<usize> {
    let units = js.utf16(value).ok()?;
    let mut i = 0;
    for decoded in char::decode_utf16(units.iter().copied()) {
        match decoded {
            Ok(c) => i += c.len_utf16(),
            Err(_) => return Some(i),
        }
    }
    None
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

/// A string key argument; `name` appears in the error.
pub fn key_arg(env: &Env, name: &str, value: sys::napi_value) -> Result<String> {
    let mut buf = [0u8; 256];
    read_key(Js::new(env), value, &mut buf)
        .map(Cow::into_owned)
        .map_err(|bad| type_error(env, INVALID_ARG_TYPE, bad.message(name)))
}

/// Reads an array of string keys; `name` appears in errors. `joined` may be
/// the same keys joined with NUL characters by the JS side (one string to read
/// instead of one per key); it is used only if it splits into exactly as many
/// keys as the array holds, which fails when a key itself contains a NUL.
pub fn read_keys(
    env: &Env,
    array: sys::napi_value,
    joined: Option<String>,
    name: &str,
) -> Result<KeyList> {
    let js = Js::new(env);
    if !js.is_array(array)? {
        return Err(type_error(
            env,
            INVALID_ARG_TYPE,
            format!("{name} must be an array of strings"),
        ));
    }
    let len = js.array_length(array)?;
    if let Some(list) = joined.and_then(|text| split_joined(text, len as usize)) {
        return Ok(list);
    }
    // Grown as keys are read: a sparse array's length is not trusted, and
    // its first hole ends the call.
    let mut list = KeyList {
        text: String::new(),
        ends: Vec::new(),
    };
    let mut buf = [0u8; 256];
    for i in 0..len {
        if !js.has_element(array, i)? {
            return Err(type_error(
                env,
                INVALID_ARG_TYPE,
                format!("{name}[{i}] must be a string; got a hole"),
            ));
        }
        let key = read_key(js, js.element(array, i)?, &mut buf).map_err(|bad| {
            type_error(env, INVALID_ARG_TYPE, bad.message(&format!("{name}[{i}]")))
        })?;
        list.text.push_str(&key);
        list.ends.push(list.text.len());
    }
    Ok(list)
}

/// Splits NUL-joined keys, if they are exactly `count` keys.
fn split_joined(text: String, count: usize) -> Option<KeyList> {
    if count == 0 {
        return None;
    }
    let mut ends = Vec::new();
    let mut kept = String::with_capacity(text.len());
    for key in text.split('\0') {
        kept.push_str(key);
        ends.push(kept.len());
    }
    (ends.len() == count).then_some(KeyList { text: kept, ends })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joined_keys_split_only_when_the_count_matches() {
        let list = split_joined("a\0bc\0\0d".to_string(), 4).unwrap();
        assert_eq!(list.as_strs(), vec!["a", "bc", "", "d"]);
        // A key holding a NUL splits into too many parts: fall back.
        assert!(split_joined("a\0b".to_string(), 1).is_none());
        assert!(split_joined(String::new(), 0).is_none());
    }
}
