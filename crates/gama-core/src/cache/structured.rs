//! Values that are neither a flat typed array nor nothing: objects, arrays,
//! strings, numbers (NaN, ±Infinity and -0 included), booleans, null and
//! undefined, BigInt, Date, Map, Set, ArrayBuffer, DataView and typed arrays
//! at any depth — what `structuredClone` keeps, kept the same way, so a read
//! gives back an equal value and never a silently different one.

/// Deepest nesting a structured value may have (a stored value deeper than
/// this is refused, and so is a decoded one).
pub const MAX_DEPTH: usize = 256;

/// The element type of a typed array.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TypedKind {
    /// `Int8Array`.
    Int8,
    /// `Uint8Array`.
    Uint8,
    /// `Uint8ClampedArray`.
    Uint8Clamped,
    /// `Int16Array`.
    Int16,
    /// `Uint16Array`.
    Uint16,
    /// `Int32Array`.
    Int32,
    /// `Uint32Array`.
    Uint32,
    /// `Float32Array`.
    Float32,
    /// `Float64Array`.
    Float64,
    /// `BigInt64Array`.
    BigInt64,
    /// `BigUint64Array`.
    BigUint64,
    /// A Node.js `Buffer`.
    Buffer,
}

impl TypedKind {
    /// Bytes per element.
    pub fn element_size(self) -> usize {
        match self {
            TypedKind::Int8 | TypedKind::Uint8 | TypedKind::Uint8Clamped | TypedKind::Buffer => 1,
            TypedKind::Int16 | TypedKind::Uint16 => 2,
            TypedKind::Int32 | TypedKind::Uint32 | TypedKind::Float32 => 4,
            TypedKind::Float64 | TypedKind::BigInt64 | TypedKind::BigUint64 => 8,
        }
    }
}

/// One node of a structured value.
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    /// `undefined`.
    Undefined,
    /// `null`.
    Null,
    /// A boolean.
    Bool(bool),
    /// A number, bit for bit (NaN, ±Infinity and -0 survive).
    Number(f64),
    /// A BigInt: sign and little-endian 64-bit words of the magnitude.
    BigInt {
        /// Whether it is below zero.
        negative: bool,
        /// Magnitude, least significant word first.
        words: Vec<u64>,
    },
    /// A string.
    String(String),
    /// A `Date`, as milliseconds since the epoch.
    Date(f64),
    /// An array: its length and the elements present, by index in
    /// ascending order (a sparse array keeps its holes).
    Array {
        /// `length`.
        length: u32,
        /// Present elements.
        items: Vec<(u32, Node)>,
    },
    /// A plain object's own enumerable string-keyed properties, in order.
    Object(Vec<(String, Node)>),
    /// A `Map`'s entries, in order.
    Map(Vec<(Node, Node)>),
    /// A `Set`'s values, in order.
    Set(Vec<Node>),
    /// A typed array's kind and bytes (a copy of its view, not of the whole buffer).
    Typed(TypedKind, Vec<u8>),
    /// An `ArrayBuffer`'s bytes.
    ArrayBuffer(Vec<u8>),
    /// A `DataView`'s bytes.
    DataView(Vec<u8>),
}

/// Bytes a node accounts for beyond its payload (kind, length, links).
const NODE_OVERHEAD: usize = 16;

impl Node {
    /// Bytes the value occupies, for the cache's memory bound: payloads plus
    /// a fixed overhead per node.
    pub fn byte_len(&self) -> usize {
        NODE_OVERHEAD
            + match self {
                Node::Undefined | Node::Null | Node::Bool(_) | Node::Number(_) | Node::Date(_) => 0,
                Node::BigInt { words, .. } => words.len() * 8,
                Node::String(s) => s.len(),
                Node::Array { items, .. } => items.iter().map(|(_, n)| 4 + n.byte_len()).sum(),
                Node::Object(fields) => fields.iter().map(|(k, v)| k.len() + v.byte_len()).sum(),
                Node::Map(entries) => entries
                    .iter()
                    .map(|(k, v)| k.byte_len() + v.byte_len())
                    .sum(),
                Node::Set(items) => items.iter().map(Node::byte_len).sum(),
                Node::Typed(_, bytes) | Node::ArrayBuffer(bytes) | Node::DataView(bytes) => {
                    bytes.len()
                }
            }
    }
}

/// A JSON rendering for hashing (cache keys): plain values as JSON writes
/// them (whole numbers below 2^53 as integers, as the extraction parameters
/// of a batch write them), other kinds as tagged objects so that distinct
/// values stay distinct.
pub fn to_json(node: &Node) -> serde_json::Value {
    use serde_json::{json, Map, Number, Value};
    let bytes = |b: &[u8]| Value::from(b.iter().map(|x| format!("{x:02x}")).collect::<String>());
    match node {
        Node::Undefined => json!({ "$undefined": true }),
        Node::Null => Value::Null,
        Node::Bool(b) => Value::from(*b),
        Node::Number(x)
            if x.fract() == 0.0
                && x.abs() < 9.007_199_254_740_992e15
                && !(*x == 0.0 && x.is_sign_negative()) =>
        {
            Value::from(*x as i64)
        }
        Node::Number(x) => Number::from_f64(*x)
            .map(Value::Number)
            .unwrap_or_else(|| json!({ "$number": x.to_string() })),
        Node::BigInt { negative, words } => {
            json!({ "$bigint": { "negative": negative, "words": words } })
        }
        Node::String(s) => Value::from(s.as_str()),
        Node::Date(t) => json!({ "$date": t.to_string() }),
        Node::Array { length, items } if items.len() == *length as usize => {
            Value::Array(items.iter().map(|(_, n)| to_json(n)).collect())
        }
        Node::Array { length, items } => json!({
            "$array": length,
            "items": items.iter().map(|(i, n)| json!([i, to_json(n)])).collect::<Vec<_>>(),
        }),
        Node::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), to_json(v)))
                .collect::<Map<String, Value>>(),
        ),
        Node::Map(entries) => {
            json!({ "$map": entries.iter().map(|(k, v)| json!([to_json(k), to_json(v)])).collect::<Vec<_>>() })
        }
        Node::Set(items) => json!({ "$set": items.iter().map(to_json).collect::<Vec<_>>() }),
        Node::Typed(kind, b) => json!({ "$typed": format!("{kind:?}"), "bytes": bytes(b) }),
        Node::ArrayBuffer(b) => json!({ "$arrayBuffer": bytes(b) }),
        Node::DataView(b) => json!({ "$dataView": bytes(b) }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_count_payloads_at_every_depth() {
        let leaf = Node::Typed(TypedKind::Float32, vec![0; 512]);
        let object = Node::Object(vec![
            ("vector".into(), leaf.clone()),
            ("name".into(), Node::String("abc".into())),
        ]);
        assert_eq!(
            object.byte_len(),
            NODE_OVERHEAD + 6 + leaf.byte_len() + 4 + NODE_OVERHEAD + 3
        );
        let sparse = Node::Array {
            length: u32::MAX,
            items: vec![(7, object.clone())],
        };
        assert_eq!(sparse.byte_len(), NODE_OVERHEAD + 4 + object.byte_len());
    }
}
