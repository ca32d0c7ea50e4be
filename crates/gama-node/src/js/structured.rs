//! Conversion between JS values and structured cache values
//! (`cache::structured::Node`): what `structuredClone` keeps is stored and
//! rebuilt; anything else is refused with the path of the offending part
//! (`value.meta.handler: a function is not storable`), so no value ever
//! comes back different from what was stored.

use napi::{sys, Result};

use super::napi::Js;
use gama_core::cache::structured::{Node, TypedKind, MAX_DEPTH};

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

impl Realm {
    fn new(js: Js) -> Result<Realm> {
        let global = js.global()?;
        let object = js.named(global, c"Object")?;
        let map = js.named(global, c"Map")?;
        let set = js.named(global, c"Set")?;
        let array = js.named(global, c"Array")?;
        Ok(Realm {
            object_prototype: js.named(object, c"prototype")?,
            map_prototype: js.named(map, c"prototype")?,
            set_prototype: js.named(set, c"prototype")?,
            array_from: js.named(array, c"from")?,
            map,
            set,
            array,
            buffer: js.named(global, c"Buffer")?,
        })
    }
}

struct Reader<'env> {
    js: Js<'env>,
    realm: Realm,
    /// Objects being read, outermost first: meeting one again is a cycle.
    ancestors: Vec<sys::napi_value>,
}

/// Reads `value` as a structured node; the inner error is a refusal that
/// names the part of the value at `path` that cannot be stored.
pub fn read(
    js: Js,
    value: sys::napi_value,
    path: &str,
) -> Result<std::result::Result<Node, Refusal>> {
    let mut reader = Reader {
        js,
        realm: Realm::new(js)?,
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

impl Reader<'_> {
    fn node(&mut self, value: sys::napi_value, path: &mut String) -> Read {
        let js = self.js;
        use sys::ValueType as V;
        Ok(Ok(match js.type_of(value)? {
            V::napi_undefined => Node::Undefined,
            V::napi_null => Node::Null,
            V::napi_boolean => Node::Bool(js.bool_value(value)?),
            V::napi_number => Node::Number(js.number_value(value)?),
            V::napi_string => match string(js, value)? {
                Ok(s) => Node::String(s),
                Err(i) => return Ok(Err(lone_surrogate(path, i))),
            },
            V::napi_bigint => {
                let (negative, words) = js.bigint_words(value)?;
                Node::BigInt { negative, words }
            }
            V::napi_object => return self.object(value, path),
            V::napi_function => return Ok(Err(format!("{path}: a function is not storable"))),
            V::napi_symbol => return Ok(Err(format!("{path}: a symbol is not storable"))),
            _ => return Ok(Err(format!("{path}: this kind of value is not storable"))),
        }))
    }

    fn object(&mut self, value: sys::napi_value, path: &mut String) -> Read {
        let js = self.js;
        if let Some(node) = self.binary(value)? {
            return Ok(Ok(node));
        }
        if js.is_date(value)? {
            return Ok(Ok(Node::Date(js.date_value(value)?)));
        }
        for ancestor in &self.ancestors {
            if js.strict_equals(*ancestor, value)? {
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
    fn binary(&self, value: sys::napi_value) -> Result<Option<Node>> {
        let js = self.js;
        if let Some(view) = super::value::TypedArrayView::of(js, value)? {
            use sys::TypedarrayType as T;
            let kind = match view.kind() {
                T::int8_array => TypedKind::Int8,
                T::uint8_array if js.instance_of(value, self.realm.buffer)? => TypedKind::Buffer,
                T::uint8_array => TypedKind::Uint8,
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
            // `instance_of` can run JS (a Symbol.hasInstance) that detaches
            // the array: its memory is looked up again after it.
            let view = super::value::TypedArrayView::of(js, value)?;
            let bytes = view.as_ref().map_or(&[][..], |v| v.bytes());
            return Ok(Some(Node::Typed(kind, bytes.to_vec())));
        }
        if js.is_arraybuffer(value)? {
            return Ok(Some(Node::ArrayBuffer(js.arraybuffer_bytes(value)?)));
        }
        if js.is_dataview(value)? {
            return Ok(Some(Node::DataView(js.dataview_bytes(value)?)));
        }
        Ok(None)
    }

    /// Arrays, Maps, Sets and plain objects.
    fn container(&mut self, value: sys::napi_value, path: &mut String) -> Read {
        let js = self.js;
        if js.is_array(value)? {
            return self.array(value, path);
        }
        let prototype = js.prototype(value)?;
        if js.strict_equals(prototype, self.realm.map_prototype)? {
            let Ok(pairs) = self.entries(value, path)? else {
                return Ok(Err(format!("{path}: the Map's entries could not be read")));
            };
            let mut entries = Vec::with_capacity(pairs.len());
            for (i, pair) in pairs.into_iter().enumerate() {
                let mark = path.len();
                path.push_str(&format!(".<entry {i}>"));
                let key = match self.node(js.element(pair, 0)?, path)? {
                    Ok(k) => k,
                    Err(refusal) => return Ok(Err(refusal)),
                };
                let item = match self.node(js.element(pair, 1)?, path)? {
                    Ok(v) => v,
                    Err(refusal) => return Ok(Err(refusal)),
                };
                path.truncate(mark);
                entries.push((key, item));
            }
            return Ok(Ok(Node::Map(entries)));
        }
        if js.strict_equals(prototype, self.realm.set_prototype)? {
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
        let plain = js.strict_equals(prototype, self.realm.object_prototype)?
            || js.strict_equals(prototype, js.null()?)?;
        if !plain {
            return Ok(Err(format!(
                "{path}: {} is not storable (plain objects, arrays, Map, Set, Date, typed arrays, ArrayBuffer and DataView are)",
                instance_name(js, value)
            )));
        }
        let mut fields = Vec::new();
        for key in js.own_keys(value)? {
            let name = match string(js, key)? {
                Ok(name) => name,
                Err(i) => return Ok(Err(lone_surrogate(&format!("{path} (a key)"), i))),
            };
            let item = js.property(value, key)?;
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

    fn array(&mut self, value: sys::napi_value, path: &mut String) -> Read {
        let js = self.js;
        let length = js.array_length(value)?;
        let indices: Vec<u32> = if length <= DENSE_SCAN {
            let mut present = Vec::new();
            for i in 0..length {
                if js.has_element(value, i)? {
                    present.push(i);
                }
            }
            present
        } else {
            let mut present = Vec::new();
            for key in js.own_keys(value)? {
                if let Ok(Ok(Ok(i))) = string(js, key).map(|k| k.map(|k| k.parse::<u32>())) {
                    if i < length {
                        present.push(i);
                    }
                }
            }
            present
        };
        let mut items = Vec::with_capacity(indices.len());
        for i in indices {
            let item = js.element(value, i)?;
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
    fn entries(
        &self,
        collection: sys::napi_value,
        _path: &str,
    ) -> Result<std::result::Result<Vec<sys::napi_value>, ()>> {
        let js = self.js;
        let array = js.call(self.realm.array, self.realm.array_from, &[collection])?;
        let length = js.array_length(array)?;
        Ok(Ok((0..length)
            .map(|i| js.element(array, i))
            .collect::<Result<_>>()?))
    }
}

fn lone_surrogate(path: &str, index: usize) -> Refusal {
    format!("{path}: a string with a lone surrogate (at index {index}) is not storable")
}

/// A JS string; the inner error is the UTF-16 index of a lone surrogate
/// (which has no UTF-8 form: replacing it would change the value).
fn string(js: Js, value: sys::napi_value) -> Result<std::result::Result<String, usize>> {
    let units = js.utf16(value)?;
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

/// "an instance of Foo", or "this object" when it has no readable name.
fn instance_name(js: Js, value: sys::napi_value) -> String {
    let name = (|| -> Result<String> {
        let constructor = js.named(value, c"constructor")?;
        let name = js.named(constructor, c"name")?;
        Ok(string(js, name)?.unwrap_or_default())
    })();
    js.take_exception();
    match name {
        Ok(n) if !n.is_empty() => {
            format!("an instance of {}", n.chars().take(40).collect::<String>())
        }
        _ => "this object".into(),
    }
}

/// Builds a fresh JS value from a node.
pub fn write(js: Js, node: &Node) -> Result<sys::napi_value> {
    let realm = Realm::new(js)?;
    build(js, &realm, node)
}

fn build(js: Js, realm: &Realm, node: &Node) -> Result<sys::napi_value> {
    Ok(match node {
        Node::Undefined => js.undefined()?,
        Node::Null => js.null()?,
        Node::Bool(b) => js.boolean(*b)?,
        Node::Number(n) => js.number(*n)?,
        Node::String(s) => js.string(s)?,
        Node::BigInt { negative, words } => js.bigint(*negative, words)?,
        Node::Date(t) => js.date(*t)?,
        Node::Array { length, items } => {
            let out = js.array()?;
            for (i, item) in items {
                js.set_element(out, *i, build(js, realm, item)?)?;
            }
            // Trailing holes (and lengths past i32, which N-API's
            // create-with-length cannot take) come from setting the length.
            if items.last().is_none_or(|(last, _)| last + 1 < *length) {
                js.set_named(out, c"length", js.number(f64::from(*length))?)?;
            }
            out
        }
        Node::Object(fields) => {
            let out = js.object()?;
            for (key, item) in fields {
                js.define(out, js.string(key)?, build(js, realm, item)?)?;
            }
            out
        }
        Node::Map(entries) => {
            let out = js.construct(realm.map, &[])?;
            let set = js.named(realm.map_prototype, c"set")?;
            for (k, v) in entries {
                js.call(out, set, &[build(js, realm, k)?, build(js, realm, v)?])?;
            }
            out
        }
        Node::Set(items) => {
            let out = js.construct(realm.set, &[])?;
            let add = js.named(realm.set_prototype, c"add")?;
            for v in items {
                js.call(out, add, &[build(js, realm, v)?])?;
            }
            out
        }
        Node::Typed(TypedKind::Buffer, bytes) => js.buffer_from(bytes)?,
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
            let buffer = js.arraybuffer_from(bytes)?;
            js.typed_array(code, bytes.len() / kind.element_size(), buffer, 0)?
        }
        Node::ArrayBuffer(bytes) => js.arraybuffer_from(bytes)?,
        Node::DataView(bytes) => js.data_view(bytes.len(), js.arraybuffer_from(bytes)?)?,
    })
}
