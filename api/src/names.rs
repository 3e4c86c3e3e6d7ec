//! The names and digests a room's operations take, checked one way everywhere: room, party and
//! dataset names, SHA-256 digests, and the `NAME=VALUE` arguments of the command line.

/// Longest name a room, party or dataset may have.
pub const MAX_NAME: usize = 64;

/// Whether `name` may name a room, a party or a dataset: 1 to 64 letters, digits, `-`, `_` or
/// `.`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// What a valid name is, for error messages.
pub const NAME_RULE: &str = "use 1-64 letters, digits, '-', '_' or '.'";

/// A SHA-256 digest as 64 hex digits, lower-cased; `None` if `text` is not one.
pub fn sha256_hex(text: &str) -> Option<String> {
    (text.len() == 64 && text.chars().all(|c| c.is_ascii_hexdigit()))
        .then(|| text.to_ascii_lowercase())
}

/// Splits a command-line `NAME=VALUE` (`what` names the option, such as `--table`); both sides
/// must be non-empty. The error is one line.
pub fn name_value(spec: &str, what: &str) -> Result<(String, String), String> {
    match spec.split_once('=') {
        Some((name, value)) if !name.is_empty() && !value.is_empty() => {
            Ok((name.to_string(), value.to_string()))
        }
        _ => Err(format!("{what} expects NAME=VALUE, got '{spec}'")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_digests_and_name_value_pairs() {
        assert!(valid_name("big-bank_2.eu"));
        for bad in ["", "a b", "x/y", "é", &"n".repeat(65)] {
            assert!(!valid_name(bad), "{bad}");
        }
        assert_eq!(sha256_hex(&"AB".repeat(32)), Some("ab".repeat(32)));
        assert_eq!(sha256_hex("abc"), None);
        assert_eq!(sha256_hex(&"zz".repeat(32)), None);
        assert_eq!(
            name_value("customers=a=b.csv", "--table"),
            Ok(("customers".into(), "a=b.csv".into()))
        );
        for bad in ["customers", "=x", "x="] {
            let e = name_value(bad, "--table").expect_err(bad);
            assert!(e.starts_with("--table expects NAME=VALUE"), "{e}");
        }
    }
}
