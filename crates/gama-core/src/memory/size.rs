//! Parsing of human-readable memory sizes ("512MB", "4GB", "1.5GiB").
//!
//! One parser serves every size option in the API. Decimal units (KB, MB,
//! GB, TB) are powers of 1000 and binary units (KiB, MiB, GiB, TiB) powers of
//! 1024, as in the SI/IEC convention; a bare number (or a trailing "B") is a
//! count of bytes. Fractions are allowed as long as the result is a whole
//! number of bytes after rounding down.

use std::fmt;

/// Why a size could not be parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum SizeError {
    /// The text is empty or has no number.
    Empty,
    /// The number part is not a finite, non-negative number.
    InvalidNumber(String),
    /// The unit is not one of B, KB, MB, GB, TB, KiB, MiB, GiB, TiB.
    UnknownUnit(String),
    /// The size is negative.
    Negative(f64),
    /// The size is NaN or infinite.
    NotFinite,
    /// The size does not fit in 2^53 bytes.
    TooLarge(f64),
}

impl fmt::Display for SizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SizeError::Empty => write!(f, "size is empty"),
            SizeError::InvalidNumber(s) => write!(f, "size \"{s}\" does not start with a number"),
            SizeError::UnknownUnit(u) => write!(
                f,
                "unknown size unit \"{u}\" (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)"
            ),
            SizeError::Negative(v) => write!(f, "size must not be negative, got {v}"),
            SizeError::NotFinite => write!(f, "size must be a finite number"),
            SizeError::TooLarge(v) => write!(f, "size {v} bytes is too large"),
        }
    }
}

impl std::error::Error for SizeError {}

/// Largest size accepted: 2^53 bytes, the largest integer a JS number holds exactly.
pub const MAX_SIZE: u64 = 1 << 53;

/// Converts a byte count given as a JS number into `u64`, rejecting negatives,
/// NaN, infinities and fractions of a byte (which are rounded down).
pub fn bytes_from_number(value: f64) -> Result<u64, SizeError> {
    if !value.is_finite() {
        return Err(SizeError::NotFinite);
    }
    if value < 0.0 {
        return Err(SizeError::Negative(value));
    }
    if value > MAX_SIZE as f64 {
        return Err(SizeError::TooLarge(value));
    }
    Ok(value.floor() as u64)
}

/// Parses a size such as `"512MB"`, `"4 GB"`, `"1.5GiB"` or `"1024"` into bytes.
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(SizeError::Empty);
    }
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+' || c == 'e'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number = number.trim();
    if number.is_empty() {
        return Err(SizeError::InvalidNumber(text.to_string()));
    }
    let value: f64 = number
        .parse()
        .map_err(|_| SizeError::InvalidNumber(text.to_string()))?;
    let multiplier = unit_multiplier(unit.trim())?;
    bytes_from_number(value * multiplier as f64).map_err(|e| match e {
        SizeError::Negative(_) => SizeError::Negative(value),
        other => other,
    })
}

fn unit_multiplier(unit: &str) -> Result<u64, SizeError> {
    const K: u64 = 1000;
    const KI: u64 = 1024;
    let m = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => K,
        "m" | "mb" => K * K,
        "g" | "gb" => K * K * K,
        "t" | "tb" => K * K * K * K,
        "kib" => KI,
        "mib" => KI * KI,
        "gib" => KI * KI * KI,
        "tib" => KI * KI * KI * KI,
        _ => return Err(SizeError::UnknownUnit(unit.to_string())),
    };
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_decimal_and_binary_units() {
        assert_eq!(parse_size("512MB"), Ok(512_000_000));
        assert_eq!(parse_size("4GB"), Ok(4_000_000_000));
        assert_eq!(parse_size("1.5GiB"), Ok(1_610_612_736));
        assert_eq!(parse_size("64 KiB"), Ok(65_536));
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("10b"), Ok(10));
        assert_eq!(parse_size(" 2 tb "), Ok(2_000_000_000_000));
    }

    #[test]
    fn rejects_bad_sizes() {
        assert_eq!(parse_size("4XB"), Err(SizeError::UnknownUnit("XB".into())));
        assert_eq!(parse_size("-1MB"), Err(SizeError::Negative(-1.0)));
        assert_eq!(parse_size(""), Err(SizeError::Empty));
        assert!(matches!(parse_size("MB"), Err(SizeError::InvalidNumber(_))));
        assert!(matches!(
            parse_size("1.2.3MB"),
            Err(SizeError::InvalidNumber(_))
        ));
        assert_eq!(
            parse_size("NaN"),
            Err(SizeError::InvalidNumber("NaN".into()))
        );
        assert!(matches!(
            parse_size("99999999TiB"),
            Err(SizeError::TooLarge(_))
        ));
    }

    #[test]
    fn numbers_must_be_finite_and_non_negative() {
        assert_eq!(bytes_from_number(f64::NAN), Err(SizeError::NotFinite));
        assert_eq!(bytes_from_number(f64::INFINITY), Err(SizeError::NotFinite));
        assert_eq!(bytes_from_number(-5.0), Err(SizeError::Negative(-5.0)));
        assert_eq!(bytes_from_number(10.7), Ok(10));
    }
}
