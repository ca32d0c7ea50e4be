//! Values a cache holds: typed-array samples or structured values, kept in
//! Rust memory. Each variant is one shared allocation, so cloning a value is a
//! reference-count bump and reading it touches one block of memory.

use std::sync::Arc;

use super::structured::Node;

/// A cached value. Typed arrays keep their element type so a read gives back
/// the same kind of array; any other value is stored as a structured tree.
#[derive(Debug, Clone, PartialEq)]
pub enum CacheValue {
    /// A `Float32Array`.
    Float32(Arc<[f32]>),
    /// A `Float64Array`.
    Float64(Arc<[f64]>),
    /// An `Int16Array`.
    Int16(Arc<[i16]>),
    /// A `Uint8Array`.
    Uint8(Arc<[u8]>),
    /// A Node.js `Buffer`.
    Buffer(Arc<[u8]>),
    /// Any other storable value (objects, strings, numbers, Map, Date, ...).
    Structured(Arc<Node>),
}

impl CacheValue {
    /// The payload of a typed value as raw bytes (native-endian elements);
    /// None for a structured value.
    pub fn typed_bytes(&self) -> Option<&[u8]> {
        fn bytes<T: Copy>(v: &[T]) -> &[u8] {
            // SAFETY: plain numeric element types have no padding and any
            // byte pattern of them may be read as bytes.
            unsafe { std::slice::from_raw_parts(v.as_ptr().cast(), std::mem::size_of_val(v)) }
        }
        Some(match self {
            CacheValue::Float32(v) => bytes(v),
            CacheValue::Float64(v) => bytes(v),
            CacheValue::Int16(v) => bytes(v),
            CacheValue::Uint8(v) | CacheValue::Buffer(v) => v,
            CacheValue::Structured(_) => return None,
        })
    }

    /// Bytes of payload the value occupies.
    pub fn byte_len(&self) -> usize {
        match self {
            CacheValue::Structured(node) => node.byte_len(),
            typed => typed.typed_bytes().map_or(0, <[u8]>::len),
        }
    }

    /// The value's kind as users name it (`"Float32Array"`, `"json"`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            CacheValue::Float32(_) => "Float32Array",
            CacheValue::Float64(_) => "Float64Array",
            CacheValue::Int16(_) => "Int16Array",
            CacheValue::Uint8(_) => "Uint8Array",
            CacheValue::Buffer(_) => "Buffer",
            CacheValue::Structured(_) => "structured",
        }
    }
}
