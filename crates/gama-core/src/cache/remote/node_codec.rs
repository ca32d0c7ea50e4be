//! A compact binary form of structured values (`Node`) for the Redis tier:
//! one tag byte per node, little-endian lengths and numbers. Decoding
//! checks every length against what is left and refuses anything a JS
//! value could not be (a hole past `length`, bytes that are not UTF-8,
//! typed bytes that are not whole elements, nesting deeper than
//! `MAX_DEPTH`), so a foreign or damaged value is an error, never a panic.

use crate::cache::structured::{Node, TypedKind, MAX_DEPTH};

const UNDEFINED: u8 = 0;
const NULL: u8 = 1;
const FALSE: u8 = 2;
const TRUE: u8 = 3;
const NUMBER: u8 = 4;
const BIGINT: u8 = 5;
const STRING: u8 = 6;
const DATE: u8 = 7;
const ARRAY: u8 = 8;
const OBJECT: u8 = 9;
const MAP: u8 = 10;
const SET: u8 = 11;
const TYPED: u8 = 12;
const ARRAY_BUFFER: u8 = 13;
const DATA_VIEW: u8 = 14;

const KINDS: [TypedKind; 12] = [
    TypedKind::Int8,
    TypedKind::Uint8,
    TypedKind::Uint8Clamped,
    TypedKind::Int16,
    TypedKind::Uint16,
    TypedKind::Int32,
    TypedKind::Uint32,
    TypedKind::Float32,
    TypedKind::Float64,
    TypedKind::BigInt64,
    TypedKind::BigUint64,
    TypedKind::Buffer,
];

fn kind_byte(kind: TypedKind) -> u8 {
    KINDS
        .iter()
        .position(|&k| k == kind)
        .expect("every kind listed") as u8
}

/// Appends the binary form of `node` to `out`.
pub fn encode(node: &Node, out: &mut Vec<u8>) {
    fn len(out: &mut Vec<u8>, n: usize) {
        out.extend_from_slice(&(n as u32).to_le_bytes());
    }
    fn bytes(out: &mut Vec<u8>, b: &[u8]) {
        len(out, b.len());
        out.extend_from_slice(b);
    }
    match node {
        Node::Undefined => out.push(UNDEFINED),
        Node::Null => out.push(NULL),
        Node::Bool(false) => out.push(FALSE),
        Node::Bool(true) => out.push(TRUE),
        Node::Number(x) => {
            out.push(NUMBER);
            out.extend_from_slice(&x.to_bits().to_le_bytes());
        }
        Node::BigInt { negative, words } => {
            out.push(BIGINT);
            out.push(u8::from(*negative));
            len(out, words.len());
            for w in words {
                out.extend_from_slice(&w.to_le_bytes());
            }
        }
        Node::String(s) => {
            out.push(STRING);
            bytes(out, s.as_bytes());
        }
        Node::Date(t) => {
            out.push(DATE);
            out.extend_from_slice(&t.to_bits().to_le_bytes());
        }
        Node::Array { length, items } => {
            out.push(ARRAY);
            len(out, *length as usize);
            len(out, items.len());
            for (i, item) in items {
                len(out, *i as usize);
                encode(item, out);
            }
        }
        Node::Object(fields) => {
            out.push(OBJECT);
            len(out, fields.len());
            for (k, v) in fields {
                bytes(out, k.as_bytes());
                encode(v, out);
            }
        }
        Node::Map(entries) => {
            out.push(MAP);
            len(out, entries.len());
            for (k, v) in entries {
                encode(k, out);
                encode(v, out);
            }
        }
        Node::Set(items) => {
            out.push(SET);
            len(out, items.len());
            for item in items {
                encode(item, out);
            }
        }
        Node::Typed(kind, b) => {
            out.push(TYPED);
            out.push(kind_byte(*kind));
            bytes(out, b);
        }
        Node::ArrayBuffer(b) => {
            out.push(ARRAY_BUFFER);
            bytes(out, b);
        }
        Node::DataView(b) => {
            out.push(DATA_VIEW);
            bytes(out, b);
        }
    }
}

/// Reads one value that fills all of `input`.
pub fn decode(input: &[u8]) -> Result<Node, String> {
    let mut reader = Reader { input, at: 0 };
    let node = reader.node(0)?;
    if reader.at != input.len() {
        return Err(format!(
            "{} bytes left after the value",
            input.len() - reader.at
        ));
    }
    Ok(node)
}

struct Reader<'a> {
    input: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.input.len())
            .ok_or_else(|| format!("truncated at byte {}", self.at))?;
        let out = &self.input[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }

    fn u64(&mut self) -> Result<u64, String> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    /// A count of items still to read, each at least `min_bytes` long: a
    /// count the input cannot hold is refused before anything is reserved.
    fn count(&mut self, min_bytes: usize) -> Result<usize, String> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_bytes) > self.input.len() - self.at {
            return Err(format!("count {n} at byte {} exceeds the input", self.at));
        }
        Ok(n)
    }

    fn bytes(&mut self) -> Result<Vec<u8>, String> {
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }

    fn string(&mut self) -> Result<String, String> {
        let at = self.at;
        String::from_utf8(self.bytes()?).map_err(|_| format!("string at byte {at} is not UTF-8"))
    }

    fn node(&mut self, depth: usize) -> Result<Node, String> {
        if depth > MAX_DEPTH {
            return Err(format!("nested deeper than {MAX_DEPTH} levels"));
        }
        let at = self.at;
        Ok(match self.u8()? {
            UNDEFINED => Node::Undefined,
            NULL => Node::Null,
            FALSE => Node::Bool(false),
            TRUE => Node::Bool(true),
            NUMBER => Node::Number(f64::from_bits(self.u64()?)),
            BIGINT => {
                let negative = self.u8()? != 0;
                let n = self.count(8)?;
                let words = (0..n).map(|_| self.u64()).collect::<Result<_, _>>()?;
                Node::BigInt { negative, words }
            }
            STRING => Node::String(self.string()?),
            DATE => Node::Date(f64::from_bits(self.u64()?)),
            ARRAY => {
                let length = self.u32()?;
                let n = self.count(5)?;
                let mut items = Vec::with_capacity(n);
                let mut next = 0u64;
                for _ in 0..n {
                    let i = self.u32()?;
                    if u64::from(i) < next || i >= length {
                        return Err(format!("array index {i} at byte {} out of order", self.at));
                    }
                    next = u64::from(i) + 1;
                    items.push((i, self.node(depth + 1)?));
                }
                Node::Array { length, items }
            }
            OBJECT => {
                let n = self.count(5)?;
                let mut fields = Vec::with_capacity(n);
                for _ in 0..n {
                    let key = self.string()?;
                    fields.push((key, self.node(depth + 1)?));
                }
                Node::Object(fields)
            }
            MAP => {
                let n = self.count(2)?;
                let mut entries = Vec::with_capacity(n);
                for _ in 0..n {
                    let k = self.node(depth + 1)?;
                    entries.push((k, self.node(depth + 1)?));
                }
                Node::Map(entries)
            }
            SET => {
                let n = self.count(1)?;
                let items = (0..n)
                    .map(|_| self.node(depth + 1))
                    .collect::<Result<_, _>>()?;
                Node::Set(items)
            }
            TYPED => {
                let kind = *KINDS
                    .get(self.u8()? as usize)
                    .ok_or_else(|| format!("unknown typed-array kind at byte {}", self.at))?;
                let bytes = self.bytes()?;
                if !bytes.len().is_multiple_of(kind.element_size()) {
                    return Err(format!("typed array at byte {at} is not whole elements"));
                }
                Node::Typed(kind, bytes)
            }
            ARRAY_BUFFER => Node::ArrayBuffer(self.bytes()?),
            DATA_VIEW => Node::DataView(self.bytes()?),
            tag => return Err(format!("unknown tag {tag} at byte {at}")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Node {
        Node::Object(vec![
            ("n".into(), Node::Number(-0.0)),
            ("nan".into(), Node::Number(f64::NAN)),
            ("s".into(), Node::String("ünï ✓".into())),
            (
                "big".into(),
                Node::BigInt {
                    negative: true,
                    words: vec![1, u64::MAX],
                },
            ),
            ("d".into(), Node::Date(1.5e12)),
            (
                "sparse".into(),
                Node::Array {
                    length: 10,
                    items: vec![(0, Node::Null), (9, Node::Bool(true))],
                },
            ),
            (
                "m".into(),
                Node::Map(vec![(Node::Undefined, Node::Set(vec![Node::Bool(false)]))]),
            ),
            (
                "t".into(),
                Node::Typed(TypedKind::Float32, 1.5f32.to_le_bytes().to_vec()),
            ),
            ("ab".into(), Node::ArrayBuffer(vec![1, 2, 3])),
            ("dv".into(), Node::DataView(vec![4])),
        ])
    }

    #[test]
    fn every_kind_round_trips_bit_for_bit() {
        let node = sample();
        let mut out = Vec::new();
        encode(&node, &mut out);
        let back = decode(&out).unwrap();
        // NaN != NaN: compare the encodings instead.
        let mut again = Vec::new();
        encode(&back, &mut again);
        assert_eq!(out, again);
        let Node::Object(fields) = back else { panic!() };
        assert!(matches!(fields[0].1, Node::Number(x) if x == 0.0 && x.is_sign_negative()));
    }

    #[test]
    fn every_truncation_and_corruption_is_an_error_not_a_panic() {
        let mut out = Vec::new();
        encode(&sample(), &mut out);
        for cut in 0..out.len() {
            assert!(decode(&out[..cut]).is_err(), "cut at {cut}");
        }
        for i in 0..out.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bad = out.clone();
                bad[i] ^= flip;
                let _ = decode(&bad);
            }
        }
        let mut long = out.clone();
        long.push(0);
        assert!(decode(&long).unwrap_err().contains("left after"));
    }

    #[test]
    fn deep_nesting_and_huge_counts_are_refused() {
        let mut deep = [SET, 1, 0, 0, 0].repeat(MAX_DEPTH + 2);
        deep.push(NULL);
        assert!(decode(&deep).unwrap_err().contains("deeper"));
        let huge = [OBJECT, 0xff, 0xff, 0xff, 0xff];
        assert!(decode(&huge).unwrap_err().contains("exceeds"));
    }
}
