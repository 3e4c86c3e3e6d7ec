//! Reading the query text: BigQuery's `WITH DIFFERENTIAL_PRIVACY OPTIONS (...)` clause, which
//! the parser does not know, is read from the tokens and blanked out (keeping every line and
//! column where it was); the rest is parsed by `sqlparser` as BigQuery SQL.

use sqlparser::ast::{Query, SetExpr, Statement};
use sqlparser::dialect::BigQueryDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};

use crate::SqlError;

/// A value in `OPTIONS (...)`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum OptionValue {
    /// A number, as written.
    Number(String),
    /// A bare word (`privacy_unit_column = customer_id`).
    Word(String),
    /// A named parameter (`@max_groups`).
    Parameter(String),
}

/// One `name = value` of the clause.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DpOption {
    pub name: String,
    pub value: OptionValue,
    pub at: Location,
}

/// The clause: where its `SELECT` is, and its options.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DpClause {
    /// The `SELECT` keyword it follows.
    pub select_at: Location,
    pub options: Vec<DpOption>,
}

/// The query as parsed.
pub(crate) struct Parsed {
    pub query: Query,
    /// Every differential-privacy clause found (only the outermost `SELECT` may have one).
    pub clauses: Vec<DpClause>,
    /// The normal form: what a template's hash covers.
    pub normalized: String,
}

fn word(t: &TokenWithSpan) -> Option<String> {
    match &t.token {
        Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
        _ => None,
    }
}

/// The byte offset of a 1-based (line, column in characters) location in `text`.
fn offset(text: &str, at: Location) -> usize {
    let mut line = 1u64;
    let mut column = 1u64;
    for (i, c) in text.char_indices() {
        if line == at.line && column == at.column {
            return i;
        }
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    text.len()
}

fn parser_error(query: &str, e: sqlparser::parser::ParserError) -> SqlError {
    let text = e.to_string();
    // Without a location (the query ended early), the error is at the end of the text.
    let end_line = query.trim_end().lines().count().max(1) as u64;
    let end_column = query
        .trim_end()
        .lines()
        .last()
        .map_or(1, |l| l.chars().count() as u64 + 1);
    // sqlparser ends its messages with "at Line: L, Column: C".
    let number_after = |label: &str| -> Option<u64> {
        let at = text.rfind(label)? + label.len();
        text[at..]
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect::<String>()
            .parse()
            .ok()
    };
    let line = number_after("Line:").unwrap_or(end_line);
    let column = number_after("Column:").unwrap_or(end_column);
    let message = text
        .trim_start_matches("sql parser error: ")
        .split(" at Line:")
        .next()
        .unwrap_or(&text)
        .to_string();
    SqlError {
        line,
        column,
        message: format!("{message} (the query must be one SELECT, optionally with WITH ... AS)"),
    }
}

/// `text` (the parser's own rendering of a query) with its unquoted words in one case: keywords
/// upper, names lower, as SQL does not tell them apart. Quoted names and text stay as written.
fn case_folded(dialect: &BigQueryDialect, text: &str) -> String {
    let Ok(tokens) = Tokenizer::new(dialect, text).tokenize() else {
        return text.to_string();
    };
    tokens
        .into_iter()
        .map(|t| match t {
            Token::Word(mut w) if w.quote_style.is_none() => {
                w.value = if w.keyword == sqlparser::keywords::Keyword::NoKeyword {
                    w.value.to_lowercase()
                } else {
                    w.value.to_uppercase()
                };
                Token::Word(w).to_string()
            }
            other => other.to_string(),
        })
        .collect()
}

/// Parses `text`: one `SELECT` query, with its differential-privacy clauses read apart.
pub(crate) fn parse(text: &str) -> Result<Parsed, SqlError> {
    let dialect = BigQueryDialect {};
    let tokens = Tokenizer::new(&dialect, text)
        .tokenize_with_location()
        .map_err(|e| SqlError {
            line: e.location.line.max(1),
            column: e.location.column.max(1),
            message: e.message.clone(),
        })?;
    let significant: Vec<&TokenWithSpan> = tokens
        .iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        .collect();
    let mut clauses = Vec::new();
    let mut blanks: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i + 2 < significant.len() {
        let is_clause = word(significant[i]).as_deref() == Some("SELECT")
            && word(significant[i + 1]).as_deref() == Some("WITH")
            && word(significant[i + 2]).as_deref() == Some("DIFFERENTIAL_PRIVACY");
        if !is_clause {
            i += 1;
            continue;
        }
        let select_at = significant[i].span.start;
        let from = offset(text, significant[i + 1].span.start);
        let mut end = offset(text, significant[i + 2].span.end);
        let mut options = Vec::new();
        let mut j = i + 3;
        if significant.get(j).and_then(|t| word(t)).as_deref() == Some("OPTIONS") {
            let open = significant.get(j + 1);
            if !matches!(open.map(|t| &t.token), Some(Token::LParen)) {
                return Err(SqlError::at(
                    significant[j].span.end,
                    "OPTIONS needs its list in parentheses: OPTIONS (max_groups_contributed = 10)",
                ));
            }
            j += 2;
            loop {
                let Some(t) = significant.get(j) else {
                    return Err(SqlError::at(
                        significant[i + 3].span.start,
                        "OPTIONS ( is never closed",
                    ));
                };
                if matches!(t.token, Token::RParen) {
                    end = offset(text, t.span.end);
                    j += 1;
                    break;
                }
                let name = match &t.token {
                    Token::Word(w) => w.value.to_ascii_lowercase(),
                    _ => {
                        return Err(SqlError::at(
                            t.span.start,
                            format!("expected an option name in OPTIONS, found {}", t.token),
                        ));
                    }
                };
                let at = t.span.start;
                if !matches!(significant.get(j + 1).map(|t| &t.token), Some(Token::Eq)) {
                    return Err(SqlError::at(
                        t.span.end,
                        format!("option {name} needs a value: {name} = ..."),
                    ));
                }
                let (value, used) = match significant.get(j + 2).map(|t| &t.token) {
                    Some(Token::Number(n, _)) => (OptionValue::Number(n.clone()), 1),
                    Some(Token::Minus) => match significant.get(j + 3).map(|t| &t.token) {
                        Some(Token::Number(n, _)) => (OptionValue::Number(format!("-{n}")), 2),
                        _ => {
                            return Err(SqlError::at(
                                at,
                                format!("option {name}: expected a number"),
                            ));
                        }
                    },
                    Some(Token::Word(w)) if w.quote_style.is_none() && w.value.starts_with('@') => {
                        (OptionValue::Parameter(w.value[1..].to_string()), 1)
                    }
                    Some(Token::Word(w)) => (OptionValue::Word(w.value.clone()), 1),
                    Some(Token::Placeholder(p)) => (
                        OptionValue::Parameter(p.trim_start_matches('@').to_string()),
                        1,
                    ),
                    Some(Token::AtSign) => match significant.get(j + 3).map(|t| &t.token) {
                        Some(Token::Word(w)) => (OptionValue::Parameter(w.value.clone()), 2),
                        _ => {
                            return Err(SqlError::at(at, format!("option {name}: expected @name")));
                        }
                    },
                    _ => {
                        return Err(SqlError::at(
                            at,
                            format!("option {name}: expected a number, a word or @parameter"),
                        ));
                    }
                };
                options.push(DpOption { name, value, at });
                j += 2 + used;
                match significant.get(j).map(|t| &t.token) {
                    Some(Token::Comma) => j += 1,
                    Some(Token::RParen) => {}
                    _ => {
                        return Err(SqlError::at(
                            significant.get(j).map_or(at, |t| t.span.start),
                            "expected ',' or ')' in OPTIONS",
                        ));
                    }
                }
            }
        }
        blanks.push((from, end));
        clauses.push(DpClause { select_at, options });
        i = j.max(i + 1);
    }
    // Blank the clauses out, keeping newlines, so the parser's locations stay the text's.
    let mut stripped = String::with_capacity(text.len());
    let mut last = 0;
    for (from, end) in &blanks {
        stripped.push_str(&text[last..*from]);
        stripped.extend(
            text[*from..*end]
                .chars()
                .map(|c| if c == '\n' { '\n' } else { ' ' }),
        );
        last = *end;
    }
    stripped.push_str(&text[last..]);

    let statements = Parser::new(&dialect)
        .with_recursion_limit(64)
        .try_with_sql(&stripped)
        .and_then(|mut p| p.parse_statements())
        .map_err(|e| parser_error(text, e))?;
    let mut statements = statements.into_iter();
    let (Some(statement), None) = (statements.next(), statements.next()) else {
        return Err(SqlError {
            line: 1,
            column: 1,
            message: "expected exactly one SELECT statement".into(),
        });
    };
    let Statement::Query(query) = statement else {
        return Err(SqlError {
            line: 1,
            column: 1,
            message: format!(
                "only a SELECT query runs in the room, not {}",
                statement
                    .to_string()
                    .split_whitespace()
                    .next()
                    .unwrap_or("this statement")
            ),
        });
    };
    if !matches!(*query.body, SetExpr::Select(_)) {
        return Err(SqlError {
            line: 1,
            column: 1,
            message: "the query must be one SELECT (UNION, INTERSECT, EXCEPT and VALUES are not supported)".into(),
        });
    }
    let mut normalized = String::new();
    for clause in &clauses {
        let options: Vec<String> = clause
            .options
            .iter()
            .map(|o| match &o.value {
                OptionValue::Number(n) => format!("{} = {n}", o.name),
                OptionValue::Word(w) => format!("{} = {w}", o.name),
                OptionValue::Parameter(p) => format!("{} = @{p}", o.name),
            })
            .collect();
        normalized.push_str(&format!(
            "-- WITH DIFFERENTIAL_PRIVACY OPTIONS ({})\n",
            options.join(", ")
        ));
    }
    normalized.push_str(&case_folded(&dialect, &query.to_string()));
    Ok(Parsed {
        query: *query,
        clauses,
        normalized,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clause_is_read_and_blanked_keeping_locations() {
        let text = "SELECT WITH DIFFERENTIAL_PRIVACY\n  OPTIONS (max_groups_contributed = 3, privacy_unit_column = customer_id)\n  region FROM customers GROUP BY region";
        let parsed = parse(text).expect("parses");
        assert_eq!(parsed.clauses.len(), 1);
        let options = &parsed.clauses[0].options;
        assert_eq!(options[0].name, "max_groups_contributed");
        assert_eq!(options[0].value, OptionValue::Number("3".into()));
        assert_eq!(options[1].value, OptionValue::Word("customer_id".into()));
        assert_eq!((options[0].at.line, options[0].at.column), (2, 12));
    }

    #[test]
    fn the_normal_form_ignores_spacing_comments_and_keyword_case() {
        let a = parse("SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = 3) region FROM customers GROUP BY region").expect("a");
        let b = parse("select with differential_privacy options(max_groups_contributed=3)\n -- by region\n REGION\nfrom Customers group   by region").expect("b");
        assert_eq!(a.normalized, b.normalized);
        let c = parse("SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = 4) region FROM customers GROUP BY region").expect("c");
        assert_ne!(a.normalized, c.normalized);
    }

    #[test]
    fn parse_errors_carry_line_and_column() {
        let e = parse(
            "SELECT WITH DIFFERENTIAL_PRIVACY\n region FROM customers GROUP BY region HAVING",
        )
        .err()
        .expect("refused");
        assert_eq!(e.line, 2);
        let e = parse("DELETE FROM customers").err().expect("refused");
        assert!(e.message.contains("only a SELECT"), "{e}");
    }
}
