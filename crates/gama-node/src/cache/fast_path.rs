//! Native half of the fast `get` path (see `fast_path.js`): functions that
//! are not exported, handed to the JS installer when the module loads.

use std::cell::RefCell;
use std::ffi::c_void;
use std::ptr;

use napi::bindgen_prelude::{ClassInstance, FromNapiValue, JsObjectValue, Object, ToNapiValue};
use napi::{sys, Env, JsValue, Result};

use super::AudioFeatureCache;
use crate::js::keys::read_key;
use crate::js::value::to_js;
use gama_core::cache::{CacheValue, FeatureCache};

/// Bytes of a cache's scratch buffer: the largest value read through it;
/// larger ones are created as their own array by `takePending`.
const SCRATCH_BYTES: usize = 4 * 1024;

/// Tags the externals this module creates, so a foreign external is refused.
const HANDLE_TAG: sys::napi_type_tag = sys::napi_type_tag {
    lower: 0x6761_6d61_6361_6368,
    upper: 0x6661_7374_7061_7468,
};

/// What a handle holds: the cache and a value read but not yet handed to JS.
struct Handle {
    cache: FeatureCache,
    pending: RefCell<Option<CacheValue>>,
}

/// Throws a TypeError and returns null, as napi callbacks do on failure.
unsafe fn throw_type_error(env: sys::napi_env, message: &std::ffi::CStr) -> sys::napi_value {
    sys::napi_throw_type_error(env, c"ERR_INVALID_ARG_TYPE".as_ptr(), message.as_ptr());
    ptr::null_mut()
}

/// Runs a callback body, turning a panic into a thrown Error.
unsafe fn guarded(env: sys::napi_env, body: impl FnOnce() -> sys::napi_value) -> sys::napi_value {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(v) => v,
        Err(_) => {
            sys::napi_throw_error(
                env,
                c"E_PANIC".as_ptr(),
                c"internal error in AudioFeatureCache".as_ptr(),
            );
            ptr::null_mut()
        }
    }
}

unsafe fn args<const N: usize>(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> [sys::napi_value; N] {
    let mut argv = [ptr::null_mut(); N];
    let mut argc = N;
    sys::napi_get_cb_info(
        env,
        info,
        &mut argc,
        argv.as_mut_ptr(),
        ptr::null_mut(),
        ptr::null_mut(),
    );
    argv
}

unsafe fn handle<'a>(env: sys::napi_env, value: sys::napi_value) -> Option<&'a Handle> {
    let mut tagged = false;
    if sys::napi_check_object_type_tag(env, value, &HANDLE_TAG, &mut tagged) != sys::Status::napi_ok
        || !tagged
    {
        return None;
    }
    let mut data = ptr::null_mut();
    sys::napi_get_value_external(env, value, &mut data);
    (data as *const Handle).as_ref()
}

unsafe fn number(env: sys::napi_env, n: f64) -> sys::napi_value {
    let mut out = ptr::null_mut();
    sys::napi_create_double(env, n, &mut out);
    out
}

unsafe extern "C" fn finalize_handle(_env: sys::napi_env, data: *mut c_void, _hint: *mut c_void) {
    drop(Box::from_raw(data as *mut Handle));
}

/// `makeHandle(cache)`: an external holding a clone of the cache.
unsafe extern "C" fn make_handle(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    guarded(env, || {
        let [this] = args::<1>(env, info);
        let Ok(instance) = ClassInstance::<AudioFeatureCache>::from_napi_value(env, this) else {
            return throw_type_error(env, c"not an AudioFeatureCache");
        };
        let data = Box::into_raw(Box::new(Handle {
            cache: instance.cache.clone(),
            pending: RefCell::new(None),
        }));
        let mut external = ptr::null_mut();
        sys::napi_create_external(
            env,
            data.cast(),
            Some(finalize_handle),
            ptr::null_mut(),
            &mut external,
        );
        sys::napi_type_tag_object(env, external, &HANDLE_TAG);
        external
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
unsafe fn place(env: sys::napi_env, scratch: sys::napi_value, value: &CacheValue) -> f64 {
    let Some((tag, bytes)) = slab_layout(value) else {
        return -2.0;
    };
    let mut data = ptr::null_mut();
    let mut capacity = 0usize;
    let status = sys::napi_get_arraybuffer_info(env, scratch, &mut data, &mut capacity);
    if status != sys::Status::napi_ok || data.is_null() || bytes.len() > capacity {
        return -2.0;
    }
    // SAFETY: `data` holds `capacity` >= bytes.len() bytes of an ArrayBuffer
    // kept alive by this call's arguments; the value is Rust memory.
    ptr::copy_nonoverlapping(bytes.as_ptr(), data.cast::<u8>(), bytes.len());
    let elements = bytes.len() / element_size(tag);
    (elements * 8 + tag as usize) as f64
}

/// `readInto(handle, key, scratch)`: see `fast_path.js`.
unsafe extern "C" fn read_into(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    guarded(env, || {
        let [handle_value, key, scratch] = args::<3>(env, info);
        let Some(handle) = handle(env, handle_value) else {
            return throw_type_error(env, c"invalid cache handle");
        };
        let mut buf = [0u8; 256];
        let key = match read_key(env, key, &mut buf) {
            Ok(key) => key,
            Err(bad) => {
                let message = std::ffi::CString::new(bad.message("key")).unwrap_or_default();
                return throw_type_error(env, &message);
            }
        };
        let placed = handle.cache.get_with(&key, |value| {
            let code = place(env, scratch, value);
            if code < 0.0 {
                *handle.pending.borrow_mut() = Some(value.clone());
            }
            code
        });
        number(env, placed.unwrap_or(-1.0))
    })
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
unsafe extern "C" fn take_pending(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    guarded(env, || {
        let [handle_value] = args::<1>(env, info);
        let Some(handle) = handle(env, handle_value) else {
            return throw_type_error(env, c"invalid cache handle");
        };
        let Some(value) = handle.pending.borrow_mut().take() else {
            let mut undefined = ptr::null_mut();
            sys::napi_get_undefined(env, &mut undefined);
            return undefined;
        };
        match to_js(env, &value) {
            Ok(v) => v,
            Err(e) => {
                napi::JsError::from(e).throw_into(env);
                ptr::null_mut()
            }
        }
    })
}

fn native_function(
    env: &Env,
    name: &std::ffi::CStr,
    cb: sys::napi_callback,
) -> Result<sys::napi_value> {
    let mut f = ptr::null_mut();
    let status = unsafe {
        sys::napi_create_function(
            env.raw(),
            name.as_ptr(),
            usize::MAX as isize,
            cb,
            ptr::null_mut(),
            &mut f,
        )
    };
    if status != sys::Status::napi_ok {
        return Err(napi::Error::from_reason("napi_create_function failed"));
    }
    Ok(f)
}

/// Replaces `AudioFeatureCache.prototype.get` with the fast path.
pub fn install(env: &Env, exports: &Object) -> Result<()> {
    let class: sys::napi_value = exports
        .get_named_property_unchecked::<napi::bindgen_prelude::Unknown>("AudioFeatureCache")?
        .raw();
    let installer: napi::bindgen_prelude::Unknown = env.run_script(include_str!("fast_path.js"))?;
    let argv = [
        class,
        native_function(env, c"makeHandle", Some(make_handle))?,
        native_function(env, c"readInto", Some(read_into))?,
        native_function(env, c"takePending", Some(take_pending))?,
        unsafe { u32::to_napi_value(env.raw(), SCRATCH_BYTES as u32)? },
    ];
    let mut undefined = ptr::null_mut();
    let mut result = ptr::null_mut();
    unsafe {
        sys::napi_get_undefined(env.raw(), &mut undefined);
        let status = sys::napi_call_function(
            env.raw(),
            undefined,
            installer.raw(),
            argv.len(),
            argv.as_ptr(),
            &mut result,
        );
        if status != sys::Status::napi_ok {
            return Err(napi::Error::from_reason(
                "installing the AudioFeatureCache fast path failed",
            ));
        }
    }
    Ok(())
}
