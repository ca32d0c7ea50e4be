//! Packing many cached Float32 vectors into one row-major matrix, the shape a
//! model's input batch wants.

use super::value::CacheValue;

/// Why values could not be packed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackError {
    /// A value is not a Float32Array.
    NotFloat32 {
        /// Position of the key.
        index: usize,
        /// The kind it is.
        kind: &'static str,
    },
    /// A value's length differs from the first hit's.
    LengthMismatch {
        /// Position of the key.
        index: usize,
        /// Its length.
        len: usize,
        /// The row width.
        width: usize,
    },
}

impl std::fmt::Display for PackError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PackError::NotFloat32 { index, kind } => write!(
                f,
                "cannot pack key #{index}: its value is a {kind}, not a Float32Array"
            ),
            PackError::LengthMismatch { index, len, width } => write!(
                f,
                "cannot pack key #{index}: it has {len} floats, the other rows have {width}"
            ),
        }
    }
}

impl std::error::Error for PackError {}

/// Row width of a packed read: the length of the first hit (0 if all missed).
/// Every hit must be a Float32 vector of that length.
pub fn packed_width(values: &[Option<CacheValue>]) -> Result<usize, PackError> {
    let mut width = None;
    for (index, value) in values.iter().enumerate() {
        let Some(value) = value else { continue };
        let CacheValue::Float32(row) = value else {
            return Err(PackError::NotFloat32 {
                index,
                kind: value.kind(),
            });
        };
        match width {
            None => width = Some(row.len()),
            Some(w) if w != row.len() => {
                return Err(PackError::LengthMismatch {
                    index,
                    len: row.len(),
                    width: w,
                })
            }
            Some(_) => {}
        }
    }
    Ok(width.unwrap_or(0))
}

/// Copies each hit into its row of `out` (rows of `width` floats), zeroes the
/// rows of misses, and returns the positions that missed. `packed_width`
/// must have accepted `values` with this `width`.
pub fn pack_rows(values: &[Option<CacheValue>], width: usize, out: &mut [f32]) -> Vec<u32> {
    if width == 0 {
        return (0..values.len() as u32).collect();
    }
    let mut missing = Vec::new();
    for (i, (value, row)) in values.iter().zip(out.chunks_exact_mut(width)).enumerate() {
        match value {
            Some(CacheValue::Float32(v)) => row.copy_from_slice(v),
            _ => {
                row.fill(0.0);
                missing.push(i as u32);
            }
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32s(v: &[f32]) -> Option<CacheValue> {
        Some(CacheValue::Float32(v.into()))
    }

    #[test]
    fn packs_hits_and_reports_misses() {
        let values = vec![f32s(&[1.0, 2.0]), None, f32s(&[3.0, 4.0])];
        let width = packed_width(&values).unwrap();
        assert_eq!(width, 2);
        let mut out = vec![9.0; 6];
        let missing = pack_rows(&values, width, &mut out);
        assert_eq!(out, vec![1.0, 2.0, 0.0, 0.0, 3.0, 4.0]);
        assert_eq!(missing, vec![1]);
    }

    #[test]
    fn refuses_mixed_rows() {
        let values = vec![f32s(&[1.0, 2.0]), f32s(&[3.0])];
        assert_eq!(
            packed_width(&values),
            Err(PackError::LengthMismatch {
                index: 1,
                len: 1,
                width: 2
            })
        );
        let values = vec![Some(CacheValue::Structured(std::sync::Arc::new(
            crate::cache::structured::Node::Number(1.0),
        )))];
        assert!(matches!(
            packed_width(&values),
            Err(PackError::NotFloat32 { index: 0, .. })
        ));
    }
}
