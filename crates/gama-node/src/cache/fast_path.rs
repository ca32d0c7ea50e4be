//! Native half of the fast read paths (see `fast_path.js`): functions that
//! are not exported, handed to the JS installer when the module loads.
//!
//! These are raw N-API callbacks rather than `#[napi]` functions because a
//! read is about 1 µs and napi-rs's argument and class unwrapping costs a
//! large share of that (the cache benchmark's get figure); the unsafe
//! surface is `guarded` (one per callback), the handle's box and the copy
//! into the scratch buffer, each with its invariant.

use std::cell::RefCell;
use std::ptr;

use napi::bindgen_prelude::{ClassInstance, FromNapiValue, JsObjectValue, Object};
use napi::{sys, Env, JsValue, Result};

use super::remote::{settle, Tier};
use super::AudioFeatureCache;
use crate::js::callback::{
    guarded, handle, make_handle, native_function, throw_type_error, Handle,
};
use crate::js::errors::{type_error, INVALID_ARG_TYPE};
use crate::js::keys::{read_key, read_keys, KeyList};
use crate::js::napi::Js;
use crate::js::value::to_js;
use gama_core::cache::{CacheValue, FeatureCache};

/// Bytes of a cache's scratch buffer: the largest value read through it;
/// larger ones are created as their own array by `takePending`.
const SCRATCH_BYTES: usize = 4 * 1024;

/// What a handle holds: the cache, its Redis tier's JS side, and a value
/// read but not yet handed to JS.
struct CacheHandle {
    cache: FeatureCache,
    tier: Option<Tier>,
    pending: RefCell<Option<CacheValue>>,
}

// SAFETY: this tag is used by this type only.
unsafe impl Handle for CacheHandle {
    const TAG: sys::napi_type_tag = sys::napi_type_tag {
        lower: 0x6761_6d61_6361_6368,
        upper: 0x6661_7374_7061_7468,
    };
}

/// `makeHandle(cache)`: an external holding a clone of the cache.
///
/// # Safety
/// Called by N-API only, as a JS function's callback.
unsafe extern "C" fn make_cache_handle(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    let body = |js: Js| -> Result<sys::napi_value> {
        let [this] = js.args::<1>(info)?;
        // SAFETY: a live argument of this call.
        let Ok(instance) =
            (unsafe { ClassInstance::<AudioFeatureCache>::from_napi_value(js.raw(), this) })
        else {
            return throw_type_error(js, c"not an AudioFeatureCache");
        };
        make_handle(
            js,
            CacheHandle {
                cache: instance.cache.clone(),
                tier: instance.tier.clone(),
                pending: RefCell::new(None),
            },
        )
    };
    // SAFETY: N-API's env of this callback.
    unsafe { guarded(env, c"AudioFeatureCache", body) }
}

/// The handle `value` (from `makeHandle`), or a TypeError.
fn cache_handle<'js>(js: Js<'js>, value: sys::napi_value) -> Result<&'js CacheHandle> {
    handle::<CacheHandle>(js, value)?.ok_or_else(|| {
        type_error(
            &Env::from_raw(js.raw()),
            INVALID_ARG_TYPE,
            "invalid cache handle",
        )
    })
}

/// Type tag (shared with `fast_path.js`) and bytes of a typed value.
fn slab_layout(value: &CacheValue) -> Option<(u8, &[u8])> {
    let tag = match value {
        CacheValue::Float32(_) => 0,
        CacheValue::Float64(_) => 1,
        CacheValue::Int16(_) => 2,
        CacheValue::Uint8(_) => 3,
        CacheValue::Buffer(_) => 4,
        CacheValue::Structured(_) => return None,
    };
    Some((tag, value.typed_bytes()?))
}

/// Copies `value` to the start of `scratch` if it is a typed value that
/// fits; returns the code `fast_path.js` decodes, or -2.
fn place(js: Js, scratch: sys::napi_value, value: &CacheValue) -> f64 {
    let Some((tag, bytes)) = slab_layout(value) else {
        return -2.0;
    };
    let Ok((data, capacity)) = js.arraybuffer_memory(scratch) else {
        return -2.0;
    };
    if data.is_null() || bytes.len() > capacity {
        return -2.0;
    }
    // SAFETY: `data` holds `capacity` >= bytes.len() bytes of an ArrayBuffer
    // that this call's arguments keep alive and no JS runs to detach; the
    // value is Rust memory, so the two do not overlap.
    unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), data, bytes.len()) };
    let elements = bytes.len() / element_size(tag);
    (elements * 8 + tag as usize) as f64
}

/// `readInto(handle, key, scratch)`: see `fast_path.js`.
///
/// # Safety
/// Called by N-API only, as a JS function's callback.
unsafe extern "C" fn read_into(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    let body = |js: Js| -> Result<sys::napi_value> {
        let [handle_value, key, scratch] = js.args::<3>(info)?;
        let handle = cache_handle(js, handle_value)?;
        let mut buf = [0u8; 256];
        let key = match read_key(js, key, &mut buf) {
            Ok(key) => key,
            Err(bad) => {
                let message = std::ffi::CString::new(bad.message("key")).unwrap_or_default();
                return throw_type_error(js, &message);
            }
        };
        let placed = handle.cache.get_with(&key, |value| {
            let code = place(js, scratch, value);
            if code < 0.0 {
                *handle.pending.borrow_mut() = Some(value.clone());
            }
            code
        });
        js.number(placed.unwrap_or(-1.0))
    };
    // SAFETY: N-API's env of this callback.
    unsafe { guarded(env, c"AudioFeatureCache", body) }
}

fn element_size(tag: u8) -> usize {
    match tag {
        0 => 4,
        1 => 8,
        2 => 2,
        _ => 1,
    }
}

/// `takePending(handle)`: the value `readInto` could not place, as a fresh JS value.
///
/// # Safety
/// Called by N-API only, as a JS function's callback.
unsafe extern "C" fn take_pending(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    let body = |js: Js| -> Result<sys::napi_value> {
        let [handle_value] = js.args::<1>(info)?;
        let handle = cache_handle(js, handle_value)?;
        let pending = handle.pending.borrow_mut().take();
        match pending {
            Some(value) => to_js(js, &value),
            None => js.undefined(),
        }
    };
    // SAFETY: N-API's env of this callback.
    unsafe { guarded(env, c"AudioFeatureCache", body) }
}

/// The `keys` argument (an array of strings), read through `joined` (the
/// same keys joined with NUL characters) where that is a string.
fn keys_argument(js: Js, keys: sys::napi_value, joined: sys::napi_value) -> Result<KeyList> {
    let joined = match js.type_of(joined)? {
        sys::ValueType::napi_string => {
            // SAFETY: a live argument of this call, checked to be a string.
            Some(unsafe { String::from_napi_value(js.raw(), joined)? })
        }
        _ => None,
    };
    read_keys(&Env::from_raw(js.raw()), keys, joined, "keys")
}

/// `readMany(handle, keys, joined)`: the keys' values in this process (L1,
/// read under one lock), `pack`ed; undefined when none is there.
///
/// # Safety
/// Called by N-API only, as a JS function's callback.
unsafe extern "C" fn read_many(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    let body = |js: Js| -> Result<sys::napi_value> {
        let [handle_value, keys, joined] = js.args::<3>(info)?;
        let handle = cache_handle(js, handle_value)?;
        let keys = keys_argument(js, keys, joined)?;
        let values = handle.cache.get_many(&keys.as_strs());
        if values.iter().all(Option::is_none) {
            return js.undefined();
        }
        pack(js, &values)
    };
    // SAFETY: N-API's env of this callback.
    unsafe { guarded(env, c"AudioFeatureCache", body) }
}

/// `lookupRemote(handle, keys, joined)`: a promise of the keys' values in
/// Redis, `pack`ed (sent with the other lookups of this turn).
///
/// # Safety
/// Called by N-API only, as a JS function's callback.
unsafe extern "C" fn lookup_remote(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    let body = |js: Js| -> Result<sys::napi_value> {
        let [handle_value, keys, joined] = js.args::<3>(info)?;
        let handle = cache_handle(js, handle_value)?;
        let Some(tier) = &handle.tier else {
            return throw_type_error(js, c"the cache has no Redis tier");
        };
        let env = Env::from_raw(js.raw());
        let keys = keys_argument(js, keys, joined)?;
        let keys = keys.as_strs().into_iter().map(String::from).collect();
        let (deferred, promise) = crate::js::raw::Deferred::new(&env)?;
        tier.get_then(
            &env,
            &handle.cache,
            keys,
            Box::new(move |env, values| settle(env, deferred, Some(pack(Js::new(env), &values)))),
        );
        Ok(promise)
    };
    // SAFETY: N-API's env of this callback.
    unsafe { guarded(env, c"AudioFeatureCache", body) }
}

/// Many values as one `[buffer, others?]` for `fast_path.js`'s `unpack`:
/// `buffer` (a Node Buffer) starts with two f64 per value (the byte offset
/// of its payload and `length * 8 + tag`; offset -1: missing, -2:
/// `others[i]` holds it, a structured value), then the payloads, each
/// padded with zeros to an 8-byte boundary.
fn pack(js: Js, values: &[Option<CacheValue>]) -> Result<sys::napi_value> {
    let mut codes = Vec::with_capacity(values.len() * 2);
    let mut total = values.len() * 16;
    let mut structured = false;
    for value in values {
        match value.as_ref().map(slab_layout) {
            None => codes.extend([-1.0, 0.0]),
            Some(None) => {
                structured = true;
                codes.extend([-2.0, 0.0]);
            }
            Some(Some((tag, bytes))) => {
                let elements = bytes.len() / element_size(tag);
                codes.extend([total as f64, (elements * 8 + tag as usize) as f64]);
                total = total
                    .checked_add(bytes.len().next_multiple_of(8))
                    .ok_or_else(|| napi::Error::from_reason("values too large to hand over"))?;
            }
        }
    }
    let buffer = js.buffer_written(total, |out| {
        for code in &codes {
            out.put(&code.to_ne_bytes());
        }
        for (_, payload) in values.iter().flatten().filter_map(slab_layout) {
            out.put(payload);
            out.zeros(payload.len().next_multiple_of(8) - payload.len());
        }
    })?;
    let out = js.array()?;
    js.set_element(out, 0, buffer)?;
    if structured {
        let others = js.array()?;
        for (i, value) in values.iter().enumerate() {
            if let Some(v @ CacheValue::Structured(_)) = value {
                js.set_element(others, i as u32, to_js(js, v)?)?;
            }
        }
        js.set_element(out, 1, others)?;
    }
    Ok(out)
}

/// Replaces `AudioFeatureCache.prototype.get` with the fast path.
pub fn install(env: &Env, exports: &Object) -> Result<()> {
    let class: sys::napi_value = exports
        .get_named_property_unchecked::<napi::bindgen_prelude::Unknown>("AudioFeatureCache")?
        .raw();
    let installer: napi::bindgen_prelude::Unknown = env.run_script(include_str!("fast_path.js"))?;
    let js = Js::new(env);
    let argv = [
        class,
        native_function(env, c"makeHandle", Some(make_cache_handle))?,
        native_function(env, c"readInto", Some(read_into))?,
        native_function(env, c"takePending", Some(take_pending))?,
        native_function(env, c"readMany", Some(read_many))?,
        native_function(env, c"lookupRemote", Some(lookup_remote))?,
        js.number(SCRATCH_BYTES as f64)?,
        js.number(gama_core::cache::remote::MGET_KEYS as f64)?,
    ];
    js.call(js.undefined()?, installer.raw(), &argv)?;
    Ok(())
}
