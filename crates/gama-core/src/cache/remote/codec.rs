//! The stored form of a value in Redis: a 28-byte header, the entry's
//! tags, then the payload, compressed when it is larger than the
//! threshold and compression saves space.
//!
//! ```text
//! 0..3   b"GAM"          magic
//! 3      1               format version
//! 4      kind            1 f32, 2 f64, 3 i16, 4 u8, 5 Buffer, 6 structured
//! 5      compression     0 none, 1 lz4, 2 zstd
//! 6..8   tag count       u16
//! 8..12  payload length  u32, before compression (the shape: length / element size)
//! 12..20 expires at      u64 unix ms, 0 for never
//! 20..28 checksum        xxh3-64 of the uncompressed payload
//! then   tags            u16 length + UTF-8 bytes each
//! then   payload         native little-endian elements, or `node_codec`
//! ```

use std::sync::Arc;

use xxhash_rust::xxh3::xxh3_64;

use super::config::Compression;
use super::node_codec;
use crate::cache::CacheValue;

const MAGIC: &[u8; 3] = b"GAM";
const VERSION: u8 = 1;
const HEADER: usize = 28;

/// A value read back from Redis.
#[derive(Debug, PartialEq)]
pub struct Decoded {
    /// The value.
    pub value: CacheValue,
    /// When it expires (unix ms), if it does.
    pub expires_at_ms: Option<u64>,
    /// The entry's tags.
    pub tags: Vec<String>,
}

/// An encoded value and what compression did to it.
pub struct Encoded {
    /// The bytes to store.
    pub bytes: Vec<u8>,
    /// Payload bytes before compression.
    pub raw_len: usize,
    /// Whether the payload was compressed.
    pub compressed: bool,
}

fn kind_of(value: &CacheValue) -> u8 {
    match value {
        CacheValue::Float32(_) => 1,
        CacheValue::Float64(_) => 2,
        CacheValue::Int16(_) => 3,
        CacheValue::Uint8(_) => 4,
        CacheValue::Buffer(_) => 5,
        CacheValue::Structured(_) => 6,
    }
}

/// Encodes `value`; payloads of at least `threshold` bytes are compressed
/// with `compression` when that makes them smaller.
pub fn encode(
    value: &CacheValue,
    expires_at_ms: Option<u64>,
    tags: &[String],
    compression: Compression,
    threshold: usize,
) -> Encoded {
    let structured;
    let payload: &[u8] = match value {
        CacheValue::Structured(node) => {
            let mut out = Vec::with_capacity(node.byte_len());
            node_codec::encode(node, &mut out);
            structured = out;
            &structured
        }
        typed => typed.typed_bytes().expect("typed values have bytes"),
    };
    let packed = match compression {
        _ if payload.len() < threshold => None,
        Compression::None => None,
        Compression::Lz4 => Some(lz4_flex::block::compress(payload)),
        Compression::Zstd => zstd::bulk::compress(payload, 1).ok(),
    }
    .filter(|p| p.len() < payload.len());
    let tag_bytes: usize = tags
        .iter()
        .map(|t| 2 + t.len().min(u16::MAX as usize))
        .sum();
    let body = packed.as_deref().unwrap_or(payload);
    let mut bytes = Vec::with_capacity(HEADER + tag_bytes + body.len());
    bytes.extend_from_slice(MAGIC);
    bytes.push(VERSION);
    bytes.push(kind_of(value));
    bytes.push(match (&packed, compression) {
        (None, _) | (_, Compression::None) => 0,
        (_, Compression::Lz4) => 1,
        (_, Compression::Zstd) => 2,
    });
    let tags: Vec<&[u8]> = tags
        .iter()
        .map(|t| &t.as_bytes()[..t.len().min(u16::MAX as usize)])
        .take(u16::MAX as usize)
        .collect();
    bytes.extend_from_slice(&(tags.len() as u16).to_le_bytes());
    bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&expires_at_ms.unwrap_or(0).to_le_bytes());
    bytes.extend_from_slice(&xxh3_64(payload).to_le_bytes());
    for tag in tags {
        bytes.extend_from_slice(&(tag.len() as u16).to_le_bytes());
        bytes.extend_from_slice(tag);
    }
    bytes.extend_from_slice(body);
    Encoded {
        bytes,
        raw_len: payload.len(),
        compressed: packed.is_some(),
    }
}

fn typed<T: Copy + Default>(payload: &[u8], from: fn([u8; 8]) -> T) -> Result<Arc<[T]>, String> {
    let size = std::mem::size_of::<T>();
    if !payload.len().is_multiple_of(size) {
        return Err(format!(
            "payload of {} bytes is not whole {size}-byte elements",
            payload.len()
        ));
    }
    Ok(payload
        .chunks_exact(size)
        .map(|c| {
            let mut b = [0u8; 8];
            b[..size].copy_from_slice(c);
            from(b)
        })
        .collect())
}

/// Decodes a stored value; a payload would be larger than `max_bytes` is
/// refused before it is decompressed.
pub fn decode(bytes: &[u8], max_bytes: usize) -> Result<Decoded, String> {
    if bytes.len() < HEADER || &bytes[..3] != MAGIC {
        return Err("not a gama-native value".into());
    }
    if bytes[3] != VERSION {
        return Err(format!("format version {} is not known", bytes[3]));
    }
    let (kind, compression) = (bytes[4], bytes[5]);
    let tag_count = u16::from_le_bytes([bytes[6], bytes[7]]) as usize;
    let raw_len = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize;
    let expires = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
    let checksum = u64::from_le_bytes(bytes[20..28].try_into().expect("8 bytes"));
    if raw_len > max_bytes {
        return Err(format!(
            "value of {raw_len} bytes is over maxValueBytes {max_bytes}"
        ));
    }
    let mut at = HEADER;
    let mut tags = Vec::with_capacity(tag_count.min(bytes.len() / 2));
    for _ in 0..tag_count {
        let len = bytes
            .get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
            .ok_or("truncated tags")?;
        let tag = bytes.get(at + 2..at + 2 + len).ok_or("truncated tags")?;
        tags.push(String::from_utf8(tag.to_vec()).map_err(|_| "a tag is not UTF-8")?);
        at += 2 + len;
    }
    let body = &bytes[at..];
    let unpacked;
    let payload: &[u8] = match compression {
        0 => body,
        1 => {
            unpacked = lz4_flex::block::decompress(body, raw_len).map_err(|e| e.to_string())?;
            &unpacked
        }
        2 => {
            unpacked = zstd::bulk::decompress(body, raw_len).map_err(|e| e.to_string())?;
            &unpacked
        }
        other => return Err(format!("compression {other} is not known")),
    };
    if payload.len() != raw_len || xxh3_64(payload) != checksum {
        return Err("payload does not match its checksum".into());
    }
    let value = match kind {
        1 => CacheValue::Float32(typed(payload, |b| {
            f32::from_le_bytes([b[0], b[1], b[2], b[3]])
        })?),
        2 => CacheValue::Float64(typed(payload, f64::from_le_bytes)?),
        3 => CacheValue::Int16(typed(payload, |b| i16::from_le_bytes([b[0], b[1]]))?),
        4 => CacheValue::Uint8(payload.into()),
        5 => CacheValue::Buffer(payload.into()),
        6 => CacheValue::Structured(Arc::new(node_codec::decode(payload)?)),
        other => return Err(format!("value kind {other} is not known")),
    };
    Ok(Decoded {
        value,
        expires_at_ms: (expires != 0).then_some(expires),
        tags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector(n: usize) -> CacheValue {
        CacheValue::Float32((0..n).map(|i| (i % 7) as f32 * 0.25).collect())
    }

    #[test]
    fn values_round_trip_with_every_compression() {
        let tags = vec!["speaker:1".to_string(), "ünï".to_string()];
        for compression in [Compression::None, Compression::Lz4, Compression::Zstd] {
            for value in [
                vector(3),
                vector(4096),
                CacheValue::Float64(vec![f64::NAN.abs(), -0.0, 1e300].into()),
                CacheValue::Int16(vec![-32768, 7].into()),
                CacheValue::Uint8(vec![0; 5000].into()),
                CacheValue::Buffer(vec![9; 2].into()),
                CacheValue::Structured(Arc::new(crate::cache::structured::Node::String(
                    "x".repeat(3000),
                ))),
            ] {
                let e = encode(&value, Some(1234), &tags, compression, 1024);
                assert_eq!(
                    e.compressed,
                    compression != Compression::None && e.raw_len >= 1024
                );
                let d = decode(&e.bytes, usize::MAX).unwrap();
                assert_eq!(d.tags, tags);
                assert_eq!(d.expires_at_ms, Some(1234));
                assert_eq!(
                    format!("{:?}", d.value),
                    format!("{value:?}"),
                    "{compression:?}"
                );
            }
        }
    }

    #[test]
    fn foreign_damaged_and_oversized_values_are_errors() {
        assert!(decode(b"hello", 100).unwrap_err().contains("not a gama"));
        let e = encode(&vector(4096), None, &[], Compression::Lz4, 1024);
        assert!(decode(&e.bytes, 1000)
            .unwrap_err()
            .contains("maxValueBytes"));
        for cut in 0..e.bytes.len() {
            assert!(decode(&e.bytes[..cut], usize::MAX).is_err());
        }
        let mut bad = e.bytes.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0x40;
        assert!(decode(&bad, usize::MAX).is_err());
        let mut odd = encode(&vector(2), None, &[], Compression::None, 1024).bytes;
        odd[8] = 7;
        assert!(decode(&odd, usize::MAX).is_err());
    }
}
