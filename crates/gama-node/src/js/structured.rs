//! Conversion between JS values and structured cache values
//! (`cache::structured::Node`): what `structuredClone` keeps is stored and
//! rebuilt; anything else is refused with the path of the offending part
//! (`value.meta.handler: a function is not storable`), so no value ever
//! comes back different from what was stored.

use std::ptr;

use napi::{sys, Result};

use super::errors::check_status as check;
use gama_core::cache::structured::{Node, TypedKind};

/// Deepest nesting accepted.
const MAX_DEPTH: usize = 256;
/// Longest array read element by element; a longer one is read through its
/// own keys (so a sparse `new Array(2 ** 32 - 1)` costs what it holds).
const DENSE_SCAN: u32 = 1 << 20;

/// Why a value cannot be stored (a message naming the path).
pub type Refusal = String;

/// Constructors and prototypes of the current realm that reading and
/// writing compare against or call.
struct Realm {
    object_prototype: sys::napi_value,
    map: sys::napi_value,
    map_prototype: sys::napi_value,
    set: sys::napi_value,
    set_prototype: sys::napi_value,
    array_from: sys::napi_value,
    array: sys::napi_value,
    buffer: sys::napi_value,
}

unsafe fn property(
    env: sys::napi_env,
    object: sys::napi_value,
    name: &std::ffi::CStr,
) -> Result<sys::napi_value> {
    let mut out = ptr::null_mut();
    check(
        sys::napi_get_named_property(env, object, name.as_ptr(), &mut out),
        "reading a global",
    )?;
    Ok(out)
}

impl Realm {
    unsafe fn new(env: sys::napi_env) -> Result<Realm> {
        let mut global = ptr::null_mut();
        check(sys::napi_get_global(env, &mut global), "napi_get_global")?;
        let object = property(env, global, c"Object")?;
        let map = property(env, global, c"Map")?;
        let set = property(env, global, c"Set")?;
        let array = property(env, global, c"Array")?;
        Ok(Realm {
            object_prototype: property(env, object, c"prototype")?,
            map_prototype: property(env, map, c"prototype")?,
            set_prototype: property(env, set, c"prototype")?,
            array_from: property(env, array, c"from")?,
            map,
            set,
            array,
            buffer: property(env, global, c"Buffer")?,
        })
    }
}

unsafe fn same(env: sys::napi_env, a: sys::napi_value, b: sys::napi_value) -> Result<bool> {
    let mut equal = false;
    check(
        sys::napi_strict_equals(env, a, b, &mut equal),
        "napi_strict_equals",
    )?;
    Ok(equal)
}

unsafe fn is(
    env: sys::napi_env,
    value: sys::napi_value,
    test: unsafe fn(sys::napi_env, sys::napi_value, *mut bool) -> sys::napi_status,
) -> Result<bool> {
    let mut yes = false;
    check(test(env, value, &mut yes), "checking a value's kind")?;
    Ok(yes)
}

unsafe fn copy_bytes(data: *const std::ffi::c_void, len: usize) -> Vec<u8> {
    if data.is_null() || len == 0 {
        return Vec::new();
    }
    // SAFETY (caller): `data` holds `len` bytes alive during this call.
    std::slice::from_raw_parts(data.cast::<u8>(), len).to_vec()
}

struct Reader {
    env: sys::napi_env,
    realm: Realm,
    /// Objects being read, outermost first: meeting one again is a cycle.
    ancestors: Vec<sys::napi_value>,
}

/// Reads `value` as a structured node; the inner error is a refusal that
/// names the part of the value at `path` that cannot be stored.
///
/// # Safety
/// `env` and `value` must be live handles of the current call.
pub unsafe fn read(
    env: sys::napi_env,
    value: sys::napi_value,
    path: &str,
) -> Result<std::result::Result<Node, Refusal>> {
    let mut reader = Reader {
        env,
        realm: Realm::new(env)?,
        ancestors: Vec::new(),
    };
    let mut path = path.to_string();
    reader.node(value, &mut path)
}

/// `path[index]` or `path.key`, as JS would write it.
fn push_key(path: &mut String, key: &str) {
    let plain = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
    if plain {
        path.push('.');
        path.push_str(key);
    } else {
        let short: String = key.chars().take(40).collect();
        path.push_str(&format!("[{short:?}]"));
    }
}

type Read = Result<std::result::Result<Node, Refusal>>;

impl Reader {
    unsafe fn node(&mut self, value: sys::napi_value, path: &mut String) -> Read {
        let env = self.env;
        let mut kind = 0;
        check(sys::napi_typeof(env, value, &mut kind), "napi_typeof")?;
        use sys::ValueType as V;
        Ok(Ok(match kind {
            V::napi_undefined => Node::Undefined,
            V::napi_null => Node::Null,
            V::napi_boolean => {
                let mut b = false;
                check(
                    sys::napi_get_value_bool(env, value, &mut b),
                    "napi_get_value_bool",
                )?;
                Node::Bool(b)
            }
            V::napi_number => {
                let mut n = 0f64;
                check(
                    sys::napi_get_value_double(env, value, &mut n),
                    "napi_get_value_double",
                )?;
                Node::Number(n)
            }
            V::napi_string => match string(env, value)? {
                Ok(s) => Node::String(s),
                Err(i) => return Ok(Err(lone_surrogate(path, i))),
            },
            V::napi_bigint => {
                let (mut sign, mut count) = (0, 0usize);
                check(
                    // With neither sign nor words, N-API only counts the words.
                    sys::napi_get_value_bigint_words(
                        env,
                        value,
                        ptr::null_mut(),
                        &mut count,
                        ptr::null_mut(),
                    ),
                    "napi_get_value_bigint_words",
                )?;
                let mut words = vec![0u64; count.max(1)];
                count = words.len();
                check(
                    sys::napi_get_value_bigint_words(
                        env,
                        value,
                        &mut sign,
                        &mut count,
                        words.as_mut_ptr(),
                    ),
                    "napi_get_value_bigint_words",
                )?;
                words.truncate(count);
                Node::BigInt {
                    negative: sign != 0,
                    words,
                }
            }
            V::napi_object => return self.object(value, path),
            V::napi_function => return Ok(Err(format!("{path}: a function is not storable"))),
            V::napi_symbol => return Ok(Err(format!("{path}: a symbol is not storable"))),
            _ => return Ok(Err(format!("{path}: this kind of value is not storable"))),
        }))
    }

    unsafe fn object(&mut self, value: sys::napi_value, path: &mut String) -> Read {
        let env = self.env;
        if let Some(node) = self.binary(value)? {
            return Ok(Ok(node));
        }
        if is(env, value, sys::napi_is_date)? {
            let mut time = 0f64;
            check(
                sys::napi_get_date_value(env, value, &mut time),
                "napi_get_date_value",
            )?;
            return Ok(Ok(Node::Date(time)));
        }
        for ancestor in &self.ancestors {
            if same(env, *ancestor, value)? {
                return Ok(Err(format!("{path}: a circular reference is not storable")));
            }
        }
        if self.ancestors.len() >= MAX_DEPTH {
            return Ok(Err(format!(
                "{path}: nested deeper than {MAX_DEPTH} levels; not storable"
            )));
        }
        self.ancestors.push(value);
        let result = self.container(value, path);
        self.ancestors.pop();
        result
    }

    /// Typed arrays, ArrayBuffers and DataViews: their bytes.
    unsafe fn binary(&self, value: sys::napi_value) -> Result<Option<Node>> {
        let env = self.env;
        if let Some(view) = super::value::typed_array_view(env, value)? {
            let (kind, len, data) = (view.kind, view.len, view.data.cast_const().cast());
            use sys::TypedarrayType as T;
            let kind = match kind {
                T::int8_array => TypedKind::Int8,
                T::uint8_array => {
                    let mut buffer_instance = false;
                    check(
                        sys::napi_instanceof(env, value, self.realm.buffer, &mut buffer_instance),
                        "napi_instanceof",
                    )?;
                    if buffer_instance {
                        TypedKind::Buffer
                    } else {
                        TypedKind::Uint8
                    }
                }
                T::uint8_clamped_array => TypedKind::Uint8Clamped,
                T::int16_array => TypedKind::Int16,
                T::uint16_array => TypedKind::Uint16,
                T::int32_array => TypedKind::Int32,
                T::uint32_array => TypedKind::Uint32,
                T::float32_array => TypedKind::Float32,
                T::float64_array => TypedKind::Float64,
                T::bigint64_array => TypedKind::BigInt64,
                _ => TypedKind::BigUint64,
            };
            let bytes = copy_bytes(data, len.saturating_mul(kind.element_size()));
            return Ok(Some(Node::Typed(kind, bytes)));
        }
        if is(env, value, sys::napi_is_arraybuffer)? {
            let (mut data, mut len) = (ptr::null_mut(), 0usize);
            check(
                sys::napi_get_arraybuffer_info(env, value, &mut data, &mut len),
                "napi_get_arraybuffer_info",
            )?;
            return Ok(Some(Node::ArrayBuffer(copy_bytes(data, len))));
        }
        if is(env, value, sys::napi_is_dataview)? {
            let (mut len, mut data) = (0usize, ptr::null_mut());
            let (mut buffer, mut offset) = (ptr::null_mut(), 0usize);
            check(
                sys::napi_get_dataview_info(
                    env,
                    value,
                    &mut len,
                    &mut data,
                    &mut buffer,
                    &mut offset,
                ),
                "napi_get_dataview_info",
            )?;
            return Ok(Some(Node::DataView(copy_bytes(data, len))));
        }
        Ok(None)
    }

    /// Arrays, Maps, Sets and plain objects.
    unsafe fn container(&mut self, value: sys::napi_value, path: &mut String) -> Read {
        let env = self.env;
        if is(env, value, sys::napi_is_array)? {
            return self.array(value, path);
        }
        let mut prototype = ptr::null_mut();
        check(
            sys::napi_get_prototype(env, value, &mut prototype),
            "napi_get_prototype",
        )?;
        if same(env, prototype, self.realm.map_prototype)? {
            let Ok(pairs) = self.entries(value, path)? else {
                return Ok(Err(format!("{path}: the Map's entries could not be read")));
            };
            let mut entries = Vec::with_capacity(pairs.len());
            for (i, pair) in pairs.into_iter().enumerate() {
                let mark = path.len();
                path.push_str(&format!(".<entry {i}>"));
                let key = match self.node(element(env, pair, 0)?, path)? {
                    Ok(k) => k,
                    Err(refusal) => return Ok(Err(refusal)),
                };
                let item = match self.node(element(env, pair, 1)?, path)? {
                    Ok(v) => v,
                    Err(refusal) => return Ok(Err(refusal)),
                };
                path.truncate(mark);
                entries.push((key, item));
            }
            return Ok(Ok(Node::Map(entries)));
        }
        if same(env, prototype, self.realm.set_prototype)? {
            let Ok(values) = self.entries(value, path)? else {
                return Ok(Err(format!("{path}: the Set's values could not be read")));
            };
            let mut items = Vec::with_capacity(values.len());
            for (i, v) in values.into_iter().enumerate() {
                let mark = path.len();
                path.push_str(&format!(".<value {i}>"));
                match self.node(v, path)? {
                    Ok(n) => items.push(n),
                    Err(refusal) => return Ok(Err(refusal)),
                }
                path.truncate(mark);
            }
            return Ok(Ok(Node::Set(items)));
        }
        let mut null = ptr::null_mut();
        check(sys::napi_get_null(env, &mut null), "napi_get_null")?;
        if !(same(env, prototype, self.realm.object_prototype)? || same(env, prototype, null)?) {
            return Ok(Err(format!(
                "{path}: {} is not storable (plain objects, arrays, Map, Set, Date, typed arrays, ArrayBuffer and DataView are)",
                instance_name(env, value)
            )));
        }
        let mut fields = Vec::new();
        for key in own_keys(env, value)? {
            let mut item = ptr::null_mut();
            let name = match string(env, key)? {
                Ok(name) => name,
                Err(i) => return Ok(Err(lone_surrogate(&format!("{path} (a key)"), i))),
            };
            check(
                sys::napi_get_property(env, value, key, &mut item),
                "reading a property",
            )?;
            let mark = path.len();
            push_key(path, &name);
            match self.node(item, path)? {
                Ok(n) => fields.push((name, n)),
                Err(refusal) => return Ok(Err(refusal)),
            }
            path.truncate(mark);
        }
        Ok(Ok(Node::Object(fields)))
    }

    unsafe fn array(&mut self, value: sys::napi_value, path: &mut String) -> Read {
        let env = self.env;
        let mut length = 0u32;
        check(
            sys::napi_get_array_length(env, value, &mut length),
            "napi_get_array_length",
        )?;
        let indices: Vec<u32> = if length <= DENSE_SCAN {
            let mut present = Vec::new();
            for i in 0..length {
                let mut has = false;
                check(
                    sys::napi_has_element(env, value, i, &mut has),
                    "napi_has_element",
                )?;
                if has {
                    present.push(i);
                }
            }
            present
        } else {
            let mut present = Vec::new();
            for key in own_keys(env, value)? {
                if let Ok(Ok(Ok(i))) = string(env, key).map(|k| k.map(|k| k.parse::<u32>())) {
                    if i < length {
                        present.push(i);
                    }
                }
            }
            present
        };
        let mut items = Vec::with_capacity(indices.len());
        for i in indices {
            let item = element(env, value, i)?;
            let mark = path.len();
            path.push_str(&format!("[{i}]"));
            match self.node(item, path)? {
                Ok(n) => items.push((i, n)),
                Err(refusal) => return Ok(Err(refusal)),
            }
            path.truncate(mark);
        }
        Ok(Ok(Node::Array { length, items }))
    }

    /// `Array.from(collection)`'s elements (a Map's pairs, a Set's values);
    /// the inner error when iteration threw.
    unsafe fn entries(
        &self,
        collection: sys::napi_value,
        _path: &str,
    ) -> Result<std::result::Result<Vec<sys::napi_value>, ()>> {
        let env = self.env;
        let mut array = ptr::null_mut();
        let status = sys::napi_call_function(
            env,
            self.realm.array,
            self.realm.array_from,
            1,
            [collection].as_ptr(),
            &mut array,
        );
        if status == sys::Status::napi_pending_exception {
            return Err(napi::Error::new(
                napi::Status::PendingException,
                "iterating the collection threw",
            ));
        }
        check(status, "Array.from")?;
        let mut length = 0u32;
        check(
            sys::napi_get_array_length(env, array, &mut length),
            "napi_get_array_length",
        )?;
        let mut out = Vec::new();
        for i in 0..length {
            out.push(element(env, array, i)?);
        }
        Ok(Ok(out))
    }
}

unsafe fn element(env: sys::napi_env, array: sys::napi_value, i: u32) -> Result<sys::napi_value> {
    let mut out = ptr::null_mut();
    check(
        sys::napi_get_element(env, array, i, &mut out),
        "napi_get_element",
    )?;
    Ok(out)
}

fn lone_surrogate(path: &str, index: usize) -> Refusal {
    format!("{path}: a string with a lone surrogate (at index {index}) is not storable")
}

/// A JS string; the inner error is the UTF-16 index of a lone surrogate
/// (which has no UTF-8 form: replacing it would change the value).
unsafe fn string(
    env: sys::napi_env,
    value: sys::napi_value,
) -> Result<std::result::Result<String, usize>> {
    let mut len = 0usize;
    check(
        sys::napi_get_value_string_utf16(env, value, ptr::null_mut(), 0, &mut len),
        "reading a string",
    )?;
    let mut units = vec![0u16; len + 1];
    check(
        sys::napi_get_value_string_utf16(env, value, units.as_mut_ptr(), units.len(), &mut len),
        "reading a string",
    )?;
    units.truncate(len);
    let mut out = String::with_capacity(units.len());
    let mut at = 0;
    for c in char::decode_utf16(units.iter().copied()) {
        match c {
            Ok(c) => {
                out.push(c);
                at += c.len_utf16();
            }
            Err(_) => return Ok(Err(at)),
        }
    }
    Ok(Ok(out))
}

/// Own enumerable string keys.
unsafe fn own_keys(env: sys::napi_env, object: sys::napi_value) -> Result<Vec<sys::napi_value>> {
    let mut names = ptr::null_mut();
    check(
        sys::napi_get_all_property_names(
            env,
            object,
            sys::KeyCollectionMode::own_only,
            sys::KeyFilter::enumerable | sys::KeyFilter::skip_symbols,
            sys::KeyConversion::numbers_to_strings,
            &mut names,
        ),
        "reading property names",
    )?;
    let mut length = 0u32;
    check(
        sys::napi_get_array_length(env, names, &mut length),
        "napi_get_array_length",
    )?;
    (0..length).map(|i| element(env, names, i)).collect()
}

/// "an instance of Foo", or "this object" when it has no readable name.
unsafe fn instance_name(env: sys::napi_env, value: sys::napi_value) -> String {
    let name = (|| -> Result<String> {
        let constructor = property(env, value, c"constructor")?;
        let name = property(env, constructor, c"name")?;
        Ok(string(env, name)?.unwrap_or_default())
    })();
    let mut exception = ptr::null_mut();
    sys::napi_get_and_clear_last_exception(env, &mut exception);
    match name {
        Ok(n) if !n.is_empty() => {
            format!("an instance of {}", n.chars().take(40).collect::<String>())
        }
        _ => "this object".into(),
    }
}

/// Builds a fresh JS value from a node.
///
/// # Safety
/// `env` must be the live environment of the current call.
pub unsafe fn write(env: sys::napi_env, node: &Node) -> Result<sys::napi_value> {
    let realm = Realm::new(env)?;
    build(env, &realm, node)
}

unsafe fn build(env: sys::napi_env, realm: &Realm, node: &Node) -> Result<sys::napi_value> {
    let mut out = ptr::null_mut();
    match node {
        Node::Undefined => check(sys::napi_get_undefined(env, &mut out), "napi_get_undefined")?,
        Node::Null => check(sys::napi_get_null(env, &mut out), "napi_get_null")?,
        Node::Bool(b) => check(sys::napi_get_boolean(env, *b, &mut out), "napi_get_boolean")?,
        Node::Number(n) => check(
            sys::napi_create_double(env, *n, &mut out),
            "napi_create_double",
        )?,
        Node::String(s) => check(
            sys::napi_create_string_utf8(env, s.as_ptr().cast(), s.len() as isize, &mut out),
            "napi_create_string_utf8",
        )?,
        Node::BigInt { negative, words } => check(
            sys::napi_create_bigint_words(
                env,
                i32::from(*negative),
                words.len(),
                words.as_ptr(),
                &mut out,
            ),
            "napi_create_bigint_words",
        )?,
        Node::Date(t) => check(sys::napi_create_date(env, *t, &mut out), "napi_create_date")?,
        Node::Array { length, items } => {
            check(sys::napi_create_array(env, &mut out), "napi_create_array")?;
            for (i, item) in items {
                let v = build(env, realm, item)?;
                check(sys::napi_set_element(env, out, *i, v), "napi_set_element")?;
            }
            // Trailing holes (and lengths past i32, which N-API's
            // create-with-length cannot take) come from setting the length.
            if items.last().is_none_or(|(last, _)| last + 1 < *length) {
                let mut n = ptr::null_mut();
                check(
                    sys::napi_create_uint32(env, *length, &mut n),
                    "napi_create_uint32",
                )?;
                check(
                    sys::napi_set_named_property(env, out, c"length".as_ptr(), n),
                    "setting an array's length",
                )?;
            }
        }
        Node::Object(fields) => {
            check(sys::napi_create_object(env, &mut out), "napi_create_object")?;
            for (key, item) in fields {
                let mut name = ptr::null_mut();
                check(
                    sys::napi_create_string_utf8(
                        env,
                        key.as_ptr().cast(),
                        key.len() as isize,
                        &mut name,
                    ),
                    "napi_create_string_utf8",
                )?;
                let v = build(env, realm, item)?;
                // Defined, not assigned: a key such as `__proto__` stays data.
                let descriptor = sys::napi_property_descriptor {
                    utf8name: ptr::null(),
                    name,
                    method: None,
                    getter: None,
                    setter: None,
                    value: v,
                    attributes: sys::PropertyAttributes::writable
                        | sys::PropertyAttributes::enumerable
                        | sys::PropertyAttributes::configurable,
                    data: ptr::null_mut(),
                };
                check(
                    sys::napi_define_properties(env, out, 1, &descriptor),
                    "napi_define_properties",
                )?;
            }
        }
        Node::Map(entries) => {
            check(
                sys::napi_new_instance(env, realm.map, 0, ptr::null(), &mut out),
                "new Map",
            )?;
            let set = property(env, realm.map_prototype, c"set")?;
            for (k, v) in entries {
                let args = [build(env, realm, k)?, build(env, realm, v)?];
                let mut ignored = ptr::null_mut();
                check(
                    sys::napi_call_function(env, out, set, 2, args.as_ptr(), &mut ignored),
                    "Map.prototype.set",
                )?;
            }
        }
        Node::Set(items) => {
            check(
                sys::napi_new_instance(env, realm.set, 0, ptr::null(), &mut out),
                "new Set",
            )?;
            let add = property(env, realm.set_prototype, c"add")?;
            for v in items {
                let args = [build(env, realm, v)?];
                let mut ignored = ptr::null_mut();
                check(
                    sys::napi_call_function(env, out, add, 1, args.as_ptr(), &mut ignored),
                    "Set.prototype.add",
                )?;
            }
        }
        Node::Typed(TypedKind::Buffer, bytes) => {
            let mut data = ptr::null_mut();
            check(
                sys::napi_create_buffer_copy(
                    env,
                    bytes.len(),
                    bytes.as_ptr().cast(),
                    &mut data,
                    &mut out,
                ),
                "napi_create_buffer_copy",
            )?;
        }
        Node::Typed(kind, bytes) => {
            use sys::TypedarrayType as T;
            let code = match kind {
                TypedKind::Int8 => T::int8_array,
                TypedKind::Uint8 | TypedKind::Buffer => T::uint8_array,
                TypedKind::Uint8Clamped => T::uint8_clamped_array,
                TypedKind::Int16 => T::int16_array,
                TypedKind::Uint16 => T::uint16_array,
                TypedKind::Int32 => T::int32_array,
                TypedKind::Uint32 => T::uint32_array,
                TypedKind::Float32 => T::float32_array,
                TypedKind::Float64 => T::float64_array,
                TypedKind::BigInt64 => T::bigint64_array,
                TypedKind::BigUint64 => T::biguint64_array,
            };
            let buffer = array_buffer(env, bytes)?;
            check(
                sys::napi_create_typedarray(
                    env,
                    code,
                    bytes.len() / kind.element_size(),
                    buffer,
                    0,
                    &mut out,
                ),
                "napi_create_typedarray",
            )?;
        }
        Node::ArrayBuffer(bytes) => out = array_buffer(env, bytes)?,
        Node::DataView(bytes) => {
            let buffer = array_buffer(env, bytes)?;
            check(
                sys::napi_create_dataview(env, bytes.len(), buffer, 0, &mut out),
                "napi_create_dataview",
            )?;
        }
    }
    Ok(out)
}

/// A fresh ArrayBuffer holding a copy of `bytes`.
///
/// # Safety
/// `env` must be the live environment of the current call.
pub(super) unsafe fn array_buffer(env: sys::napi_env, bytes: &[u8]) -> Result<sys::napi_value> {
    let (mut data, mut buffer) = (ptr::null_mut(), ptr::null_mut());
    check(
        sys::napi_create_arraybuffer(env, bytes.len(), &mut data, &mut buffer),
        "napi_create_arraybuffer",
    )?;
    if !bytes.is_empty() {
        // SAFETY: the new ArrayBuffer holds bytes.len() bytes at `data`.
        ptr::copy_nonoverlapping(bytes.as_ptr(), data.cast::<u8>(), bytes.len());
    }
    Ok(buffer)
}
