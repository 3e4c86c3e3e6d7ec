//! Audit entries and their canonical serialization.
//!
//! An entry is a JSON object of strings, integers, booleans and nested objects/arrays. Its
//! canonical form, the bytes the Merkle leaf covers, is written by [`canonical`]: keys sorted by
//! their UTF-8 bytes, no whitespace, strings escaped as JSON requires (`"`, `\`, control
//! characters as `\u00XX` or the short escapes), no floating-point numbers. We write it ourselves
//! rather than rely on a library's default ordering, because the offline verifier must reproduce
//! it byte for byte.

use serde_json::{Map, Value};

/// Why an entry cannot be made canonical.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("entry is not canonical JSON: {0}")]
pub struct CanonicalError(pub String);

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write(out: &mut String, v: &Value) -> Result<(), CanonicalError> {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.push_str(&i.to_string());
            } else if let Some(u) = n.as_u64() {
                out.push_str(&u.to_string());
            } else {
                return Err(CanonicalError(format!("{n} is not an integer")));
            }
        }
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(out, item)?;
            }
            out.push(']');
        }
        Value::Object(map) => write_object(out, map)?,
    }
    Ok(())
}

fn write_object(out: &mut String, map: &Map<String, Value>) -> Result<(), CanonicalError> {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    out.push('{');
    for (i, k) in keys.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(out, k);
        out.push(':');
        write(out, &map[*k])?;
    }
    out.push('}');
    Ok(())
}

/// The canonical text of a JSON value.
pub fn canonical(v: &Value) -> Result<String, CanonicalError> {
    let mut out = String::new();
    write(&mut out, v)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_form_sorts_keys_and_escapes() {
        let v: Value = serde_json::from_str(
            r#"{"b":1,"a":{"z":"x\"y","y":[true,null,-3]},"c":"line\nbreak\u0001"}"#,
        )
        .expect("json");
        assert_eq!(
            canonical(&v).expect("canonical"),
            r#"{"a":{"y":[true,null,-3],"z":"x\"y"},"b":1,"c":"line\nbreak\u0001"}"#
        );
        let float: Value = serde_json::from_str(r#"{"x":1.5}"#).expect("json");
        assert!(canonical(&float).is_err());
        // Reading the canonical text back gives the same canonical text.
        let again: Value = serde_json::from_str(&canonical(&v).expect("canonical")).expect("json");
        assert_eq!(canonical(&again), canonical(&v));
    }
}
