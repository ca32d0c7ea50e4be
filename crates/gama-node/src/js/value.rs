//! Conversion between JS values and `CacheValue`: typed arrays are copied
//! into Rust memory (off the V8 heap) and back into fresh arrays of the same
//! type; other values become structured values (`super::structured`).

use napi::bindgen_prelude::{FromNapiValue, ToNapiValue, TypeName};
use napi::{sys, Error, Result, Status, ValueType};

use super::napi::{Js, TypedArrayInfo};
use gama_core::cache::CacheValue;

pub use super::structured::Refusal;

/// Reads a JS value as a cache value, copying typed-array bytes. The outer
/// error is a failed N-API call; the inner one a value the cache refuses.
pub fn from_js(
    js: Js,
    value: sys::napi_value,
    path: &str,
) -> Result<std::result::Result<CacheValue, Refusal>> {
    use sys::TypedarrayType as T;
    if let Some(view) = TypedArrayView::of(js, value)? {
        let flat = match view.kind() {
            T::uint8_array => {
                let buffer = is_node_buffer(js, value)?;
                // That check can run JS (a `Buffer` getter, a
                // Symbol.hasInstance) that detaches the array: its memory
                // is looked up again after it.
                let view = TypedArrayView::of(js, value)?;
                let bytes = view.as_ref().map_or(&[][..], TypedArrayView::bytes);
                if buffer {
                    CacheValue::Buffer(bytes.into())
                } else {
                    CacheValue::Uint8(bytes.into())
                }
            }
            T::float32_array => CacheValue::Float32(view.elements::<f32>()?.into()),
            T::float64_array => CacheValue::Float64(view.elements::<f64>()?.into()),
            T::int16_array => CacheValue::Int16(view.elements::<i16>()?.into()),
            // Other element types are kept as structured values.
            _ => {
                return Ok(super::structured::read(js, value, path)?
                    .map(|n| CacheValue::Structured(n.into())))
            }
        };
        return Ok(Ok(flat));
    }
    Ok(super::structured::read(js, value, path)?.map(|node| CacheValue::Structured(node.into())))
}

/// Whether a Uint8Array is a Node.js `Buffer` (`napi_is_buffer` accepts any Uint8Array).
fn is_node_buffer(js: Js, value: sys::napi_value) -> Result<bool> {
    let buffer_class = js.named(js.global()?, c"Buffer")?;
    js.instance_of(value, buffer_class)
}

/// Creates a `Float32Array` of `len` elements and lets `fill` write all of
/// it. The memory is a Node `Buffer`'s: V8-managed (no external buffer to
/// finalize) and not zero-filled first, since `fill` writes every element.
pub fn new_float32_array(
    js: Js,
    len: usize,
    fill: impl FnOnce(&mut [f32]),
) -> Result<sys::napi_value> {
    let bytes = len
        .checked_mul(4)
        .ok_or_else(|| Error::new(Status::InvalidArg, "Float32Array too large"))?;
    let (node_buffer, data) = js.uninit_buffer(bytes)?;
    let info = js
        .typed_array_info(node_buffer)?
        .ok_or_else(|| Error::new(Status::GenericFailure, "a Buffer is a typed array"))?;
    if len > 0 {
        if data.is_null() || !(data as usize).is_multiple_of(4) {
            return Err(Error::new(
                Status::GenericFailure,
                "buffer memory is not aligned for floats",
            ));
        }
        // SAFETY: the new Buffer owns `len * 4` bytes at `data`, 4-aligned
        // (checked), that nothing else refers to while `fill` runs (no JS
        // runs in between); every bit pattern is a valid f32.
        fill(unsafe { std::slice::from_raw_parts_mut(data.cast::<f32>(), len) });
    } else {
        fill(&mut []);
    }
    js.typed_array(
        sys::TypedarrayType::float32_array,
        len,
        info.buffer,
        info.offset,
    )
}

/// A fresh Float64Array holding a copy of `values`.
pub fn new_float64_array(js: Js, values: &[f64]) -> Result<sys::napi_value> {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_ne_bytes()).collect();
    typed_array(js, sys::TypedarrayType::float64_array, &bytes, 8)
}

/// Creates a fresh typed array of `kind` holding a copy of `bytes`.
fn typed_array(
    js: Js,
    kind: sys::napi_typedarray_type,
    bytes: &[u8],
    element: usize,
) -> Result<sys::napi_value> {
    let buffer = js.arraybuffer_from(bytes)?;
    js.typed_array(kind, bytes.len() / element, buffer, 0)
}

/// Builds a fresh JS value from a cache value.
pub fn to_js(js: Js, value: &CacheValue) -> Result<sys::napi_value> {
    use sys::TypedarrayType as T;
    let bytes = value.typed_bytes().unwrap_or_default();
    match value {
        CacheValue::Float32(_) => typed_array(js, T::float32_array, bytes, 4),
        CacheValue::Float64(_) => typed_array(js, T::float64_array, bytes, 8),
        CacheValue::Int16(_) => typed_array(js, T::int16_array, bytes, 2),
        CacheValue::Uint8(_) => typed_array(js, T::uint8_array, bytes, 1),
        CacheValue::Buffer(v) => js.buffer_from(v),
        CacheValue::Structured(node) => super::structured::write(js, node),
    }
}

/// A cached value handed back to JS as a fresh copy.
pub struct CachedValueOut(pub CacheValue);

/// A cache read handed back to JS: a fresh copy, or `undefined` on a miss.
pub struct MaybeCached(pub Option<CacheValue>);

impl ToNapiValue for MaybeCached {
    unsafe fn to_napi_value(env: sys::napi_env, value: Self) -> Result<sys::napi_value> {
        // SAFETY: napi-rs converts return values on the JS thread with the
        // live env of the call.
        let js = unsafe { Js::from_raw(env) };
        match value.0 {
            Some(v) => to_js(js, &v),
            None => js.undefined(),
        }
    }
}

impl ToNapiValue for CachedValueOut {
    unsafe fn to_napi_value(env: sys::napi_env, value: Self) -> Result<sys::napi_value> {
        // SAFETY: as for `MaybeCached`.
        to_js(unsafe { Js::from_raw(env) }, &value.0)
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

/// A typed array's memory in the current call. JS could detach or resize
/// the buffer, but only by running: every user reads (or copies) the bytes
/// before it calls into JS, and no view is kept across calls (it borrows
/// the call's `Js`).
pub struct TypedArrayView<'env> {
    info: TypedArrayInfo,
    _js: Js<'env>,
}

impl<'env> TypedArrayView<'env> {
    /// The view of `value` when it is a typed array (a Buffer included), else None.
    pub fn of(js: Js<'env>, value: sys::napi_value) -> Result<Option<Self>> {
        Ok(js
            .typed_array_info(value)?
            .map(|info| TypedArrayView { info, _js: js }))
    }

    /// Element type.
    pub fn kind(&self) -> sys::napi_typedarray_type {
        self.info.kind
    }

    /// Short element type name (`f32`, `i16`, ...) and bytes per element.
    pub fn element(&self) -> (&'static str, usize) {
        use sys::TypedarrayType as T;
        match self.info.kind {
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
        self.info.len.saturating_mul(self.element().1)
    }

    /// The array's bytes, borrowed for as long as the view.
    pub fn bytes(&self) -> &[u8] {
        if self.info.data.is_null() || self.info.len == 0 {
            return &[];
        }
        // SAFETY: N-API reported `len` elements (`byte_len` bytes) at `data`
        // for a typed array of the current call; they stay in place while no
        // JS runs (see the type's documentation).
        unsafe { std::slice::from_raw_parts(self.info.data, self.byte_len()) }
    }

    /// The elements as `T` (the caller picks `T` by `kind`); an error when
    /// the element size does not match `T` or the memory is not aligned for
    /// it (JS aligns typed arrays to their element size, so neither happens
    /// for the right `T`).
    pub fn elements<T: Element>(&self) -> Result<&[T]> {
        let data = self.info.data;
        if self.element().1 != std::mem::size_of::<T>()
            || !(data as usize).is_multiple_of(std::mem::align_of::<T>())
        {
            return Err(Error::new(
                Status::InvalidArg,
                "a typed array of another element type or alignment",
            ));
        }
        if data.is_null() || self.info.len == 0 {
            return Ok(&[]);
        }
        // SAFETY: as in `bytes`, with the element size and alignment of `T`
        // checked; every bit pattern is a valid `T` (`Element`).
        Ok(unsafe { std::slice::from_raw_parts(data.cast::<T>(), self.info.len) })
    }

    /// The array's bytes for writing, borrowed for as long as the view.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        if self.info.data.is_null() || self.info.len == 0 {
            return &mut [];
        }
        // SAFETY: as in `bytes`; the view is borrowed mutably, so this is
        // the only Rust reference to the memory, and JS (which could read it
        // through other views) does not run while it lives.
        unsafe { std::slice::from_raw_parts_mut(self.info.data.cast_mut(), self.byte_len()) }
    }
}

/// Number types every bit pattern of which is a value.
pub trait Element: Copy {}
impl Element for f32 {}
impl Element for f64 {}
impl Element for i16 {}
