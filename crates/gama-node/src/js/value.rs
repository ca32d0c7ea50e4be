//! Conversion between JS values and `CacheValue`: typed arrays are copied
//! into Rust memory (off the V8 heap) and back into fresh arrays of the same
//! type; other values become structured values (`super::structured`).

use std::ptr;
use std::sync::Arc;

use napi::bindgen_prelude::{FromNapiValue, ToNapiValue, TypeName};
use napi::{sys, Error, Result, Status, ValueType};

use gama_core::cache::CacheValue;

use super::errors::check_status as check;

/// Copies `len` elements at `data` into a boxed slice (empty when `data` is null).
unsafe fn copy_elements<T: Copy>(data: *const std::ffi::c_void, len: usize) -> Arc<[T]> {
    if data.is_null() || len == 0 {
        return Arc::new([]);
    }
    std::slice::from_raw_parts(data.cast::<T>(), len).into()
}

pub use super::structured::Refusal;

/// Reads a JS value as a cache value, copying typed-array bytes. The outer
/// error is a failed N-API call; the inner one a value the cache refuses.
///
/// # Safety
/// `env` and `value` must be live handles of the current call.
pub unsafe fn from_js(
    env: sys::napi_env,
    value: sys::napi_value,
    path: &str,
) -> Result<std::result::Result<CacheValue, Refusal>> {
    let mut is_typed = false;
    check(
        sys::napi_is_typedarray(env, value, &mut is_typed),
        "napi_is_typedarray",
    )?;
    if is_typed {
        let mut kind = 0;
        let mut len = 0usize;
        let mut data = ptr::null_mut();
        let mut buffer = ptr::null_mut();
        let mut offset = 0usize;
        check(
            sys::napi_get_typedarray_info(
                env,
                value,
                &mut kind,
                &mut len,
                &mut data,
                &mut buffer,
                &mut offset,
            ),
            "napi_get_typedarray_info",
        )?;
        let data = data as *const std::ffi::c_void;
        let flat = match kind {
            sys::TypedarrayType::uint8_array if is_node_buffer(env, value)? => {
                CacheValue::Buffer(copy_elements(data, len))
            }
            sys::TypedarrayType::uint8_array => CacheValue::Uint8(copy_elements(data, len)),
            sys::TypedarrayType::float32_array => CacheValue::Float32(copy_elements(data, len)),
            sys::TypedarrayType::float64_array => CacheValue::Float64(copy_elements(data, len)),
            sys::TypedarrayType::int16_array => CacheValue::Int16(copy_elements(data, len)),
            // Other element types are kept as structured values.
            _ => {
                return Ok(super::structured::read(env, value, path)?
                    .map(|n| CacheValue::Structured(n.into())))
            }
        };
        return Ok(Ok(flat));
    }
    Ok(super::structured::read(env, value, path)?.map(|node| CacheValue::Structured(node.into())))
}

/// Whether a Uint8Array is a Node.js `Buffer` (`napi_is_buffer` accepts any Uint8Array).
unsafe fn is_node_buffer(env: sys::napi_env, value: sys::napi_value) -> Result<bool> {
    let mut global = ptr::null_mut();
    check(sys::napi_get_global(env, &mut global), "napi_get_global")?;
    let mut buffer_class = ptr::null_mut();
    check(
        sys::napi_get_named_property(env, global, c"Buffer".as_ptr(), &mut buffer_class),
        "Buffer",
    )?;
    let mut result = false;
    check(
        sys::napi_instanceof(env, value, buffer_class, &mut result),
        "napi_instanceof",
    )?;
    Ok(result)
}

/// Creates a `Float32Array` of `len` elements and lets `fill` write all of
/// it. The memory is a Node `Buffer`'s: V8-managed (no external buffer to
/// finalize) and not zero-filled first, since `fill` writes every element.
///
/// # Safety
/// `env` must be the live environment of the current call.
pub unsafe fn new_float32_array(
    env: sys::napi_env,
    len: usize,
    fill: impl FnOnce(&mut [f32]),
) -> Result<sys::napi_value> {
    let mut data = ptr::null_mut();
    let mut node_buffer = ptr::null_mut();
    check(
        sys::napi_create_buffer(env, len * 4, &mut data, &mut node_buffer),
        "napi_create_buffer",
    )?;
    let mut kind = 0;
    let mut bytes = 0usize;
    let mut base = ptr::null_mut();
    let mut array_buffer = ptr::null_mut();
    let mut offset = 0usize;
    check(
        sys::napi_get_typedarray_info(
            env,
            node_buffer,
            &mut kind,
            &mut bytes,
            &mut base,
            &mut array_buffer,
            &mut offset,
        ),
        "napi_get_typedarray_info",
    )?;
    if len > 0 {
        if data.is_null() || !(data as usize).is_multiple_of(4) {
            return Err(Error::new(
                Status::GenericFailure,
                "buffer memory is not aligned for floats",
            ));
        }
        fill(std::slice::from_raw_parts_mut(data.cast::<f32>(), len));
    } else {
        fill(&mut []);
    }
    let mut array = ptr::null_mut();
    check(
        sys::napi_create_typedarray(
            env,
            sys::TypedarrayType::float32_array,
            len,
            array_buffer,
            offset,
            &mut array,
        ),
        "napi_create_typedarray",
    )?;
    Ok(array)
}

/// Creates a fresh typed array of `kind` holding a copy of `bytes`.
unsafe fn typed_array(
    env: sys::napi_env,
    kind: sys::napi_typedarray_type,
    bytes: &[u8],
    element: usize,
) -> Result<sys::napi_value> {
    let buffer = super::structured::array_buffer(env, bytes)?;
    let mut array = ptr::null_mut();
    check(
        sys::napi_create_typedarray(env, kind, bytes.len() / element, buffer, 0, &mut array),
        "napi_create_typedarray",
    )?;
    Ok(array)
}

/// Builds a fresh JS value from a cache value.
///
/// # Safety
/// `env` must be the live environment of the current call.
pub unsafe fn to_js(env: sys::napi_env, value: &CacheValue) -> Result<sys::napi_value> {
    use sys::TypedarrayType as T;
    let bytes = value.typed_bytes().unwrap_or_default();
    match value {
        CacheValue::Float32(_) => typed_array(env, T::float32_array, bytes, 4),
        CacheValue::Float64(_) => typed_array(env, T::float64_array, bytes, 8),
        CacheValue::Int16(_) => typed_array(env, T::int16_array, bytes, 2),
        CacheValue::Uint8(_) => typed_array(env, T::uint8_array, bytes, 1),
        CacheValue::Buffer(v) => {
            let mut data = ptr::null_mut();
            let mut buffer = ptr::null_mut();
            check(
                sys::napi_create_buffer_copy(
                    env,
                    v.len(),
                    v.as_ptr().cast(),
                    &mut data,
                    &mut buffer,
                ),
                "napi_create_buffer_copy",
            )?;
            Ok(buffer)
        }
        CacheValue::Structured(node) => super::structured::write(env, node),
    }
}

/// A cached value handed back to JS as a fresh copy.
pub struct CachedValueOut(pub CacheValue);

/// A cache read handed back to JS: a fresh copy, or `undefined` on a miss.
pub struct MaybeCached(pub Option<CacheValue>);

impl ToNapiValue for MaybeCached {
    unsafe fn to_napi_value(env: sys::napi_env, value: Self) -> Result<sys::napi_value> {
        match value.0 {
            Some(v) => to_js(env, &v),
            None => {
                let mut undefined = ptr::null_mut();
                check(
                    sys::napi_get_undefined(env, &mut undefined),
                    "napi_get_undefined",
                )?;
                Ok(undefined)
            }
        }
    }
}

impl ToNapiValue for CachedValueOut {
    unsafe fn to_napi_value(env: sys::napi_env, value: Self) -> Result<sys::napi_value> {
        to_js(env, &value.0)
    }
}

/// A JS value passed through as is (built by raw N-API calls, or received
/// by a callback).
pub struct RawValue(pub sys::napi_value);

impl FromNapiValue for RawValue {
    unsafe fn from_napi_value(_env: sys::napi_env, value: sys::napi_value) -> Result<Self> {
        Ok(RawValue(value))
    }
}

impl napi::bindgen_prelude::ValidateNapiValue for RawValue {}

impl ToNapiValue for RawValue {
    unsafe fn to_napi_value(_env: sys::napi_env, value: Self) -> Result<sys::napi_value> {
        Ok(value.0)
    }
}

impl TypeName for RawValue {
    fn type_name() -> &'static str {
        "unknown"
    }

    fn value_type() -> ValueType {
        ValueType::Unknown
    }
}

/// A typed array's memory, valid for the current call.
pub struct TypedArrayView {
    /// Element type.
    pub kind: sys::napi_typedarray_type,
    /// First element (null for an empty array).
    pub data: *mut u8,
    /// Elements.
    pub len: usize,
}

impl TypedArrayView {
    /// Short element type name (`f32`, `i16`, ...) and bytes per element.
    pub fn element(&self) -> (&'static str, usize) {
        use sys::TypedarrayType as T;
        match self.kind {
            T::int8_array => ("i8", 1),
            T::uint8_array | T::uint8_clamped_array => ("u8", 1),
            T::int16_array => ("i16", 2),
            T::uint16_array => ("u16", 2),
            T::int32_array => ("i32", 4),
            T::uint32_array => ("u32", 4),
            T::float32_array => ("f32", 4),
            T::float64_array => ("f64", 8),
            T::bigint64_array => ("i64", 8),
            T::biguint64_array => ("u64", 8),
            _ => ("bytes", 1),
        }
    }

    /// Bytes the array spans.
    pub fn byte_len(&self) -> usize {
        self.len * self.element().1
    }

    /// The array's bytes.
    ///
    /// # Safety
    /// Only for the current call, while JS cannot run.
    pub unsafe fn bytes<'a>(&self) -> &'a [u8] {
        if self.data.is_null() || self.len == 0 {
            return &[];
        }
        std::slice::from_raw_parts(self.data, self.byte_len())
    }
}

/// The memory of `value` when it is a typed array (a Buffer included), else None.
///
/// # Safety
/// `env` and `value` must be live handles of the current call.
pub unsafe fn typed_array_view(
    env: sys::napi_env,
    value: sys::napi_value,
) -> Result<Option<TypedArrayView>> {
    let mut is_typed = false;
    check(
        sys::napi_is_typedarray(env, value, &mut is_typed),
        "napi_is_typedarray",
    )?;
    if !is_typed {
        return Ok(None);
    }
    let (mut kind, mut len, mut data) = (0, 0usize, ptr::null_mut());
    let (mut buffer, mut offset) = (ptr::null_mut(), 0usize);
    check(
        sys::napi_get_typedarray_info(
            env,
            value,
            &mut kind,
            &mut len,
            &mut data,
            &mut buffer,
            &mut offset,
        ),
        "napi_get_typedarray_info",
    )?;
    Ok(Some(TypedArrayView {
        kind,
        data: data.cast(),
        len,
    }))
}
