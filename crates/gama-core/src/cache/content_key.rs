//! Content keys: a stable hash of audio samples and of the parameters used
//! on them, so equal inputs map to the same cache key on any run.

use std::fmt::Write;

use serde_json::Value;
use xxhash_rust::xxh3::Xxh3;

/// Version of the key format, part of every key so a change never collides.
const KEY_VERSION: u8 = 1;

/// Hashes raw sample bytes of the named element type (e.g. `"f32"`) and the
/// parameters into a 32-hex-digit key. Object keys are sorted first, so the
/// order in which parameters were written does not matter.
pub fn content_key(element_type: &str, samples: &[u8], params: Option<&Value>) -> String {
    let mut hasher = Xxh3::new();
    hasher.update(&[KEY_VERSION]);
    hasher.update(element_type.as_bytes());
    hasher.update(&(samples.len() as u64).to_le_bytes());
    hasher.update(samples);
    if let Some(params) = params {
        let mut canonical = String::new();
        write_canonical(params, &mut canonical);
        hasher.update(canonical.as_bytes());
    }
    let digest = hasher.digest128();
    let mut key = String::with_capacity(32);
    write!(key, "{digest:032x}").expect("writing to a String cannot fail");
    key
}

/// Writes JSON with object keys in sorted order.
fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_ignores_parameter_order() {
        let a = json!({"nFft": 512, "hop": 160, "nested": {"x": 1, "y": [1, 2]}});
        let b = json!({"nested": {"y": [1, 2], "x": 1}, "hop": 160, "nFft": 512});
        assert_eq!(
            content_key("f32", &[1, 2, 3, 4], Some(&a)),
            content_key("f32", &[1, 2, 3, 4], Some(&b))
        );
    }

    #[test]
    fn key_depends_on_samples_type_and_params() {
        let base = content_key("f32", &[0, 0, 128, 63], None);
        assert_eq!(base.len(), 32);
        assert_ne!(base, content_key("f32", &[0, 0, 128, 64], None));
        assert_ne!(base, content_key("i16", &[0, 0, 128, 63], None));
        assert_ne!(
            base,
            content_key("f32", &[0, 0, 128, 63], Some(&json!({"nFft": 512})))
        );
    }
}
