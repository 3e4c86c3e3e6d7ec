//! Reading the room's TOML files (policies, schemas, `room.toml`) with errors on one line.
//!
//! The TOML library reports a mistake as a multi-line snippet with a caret; a command line, a
//! problem document and a log want one line: where (line and column) and what.

use serde::de::DeserializeOwned;

/// Parses `text`, or says in one line where and why it is not valid.
pub fn parse<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    toml::from_str(text).map_err(|e| one_line(text, &e))
}

fn one_line(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim().replace('\n', " ");
    match error.span() {
        // A span off a character boundary (it should not be) only loses the position.
        Some(span) if text.is_char_boundary(span.start.min(text.len())) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {column}: {message}")
        }
        _ => message,
    }
}

#[cfg(test)]
mod tests {
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct File {
        name: String,
        size: u32,
    }

    #[test]
    fn a_mistake_is_one_line_with_where_and_what() {
        let e = super::parse::<File>("name = \"a\"\nsize = \"big\"\n").expect_err("refused");
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(e.starts_with("line 2, column 8: "), "{e}");
        assert!(e.contains("expected u32"), "{e}");
    }
}
