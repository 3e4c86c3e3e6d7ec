//! Plain-text tables for the terminal, and CSV/JSON forms of a result.

use strongroom::dataset::Dataset;
use strongroom::output_gate::Aggregate;
use strongroom_contract::manifest::{Domain, Manifest};

/// A result row with decoded labels.
pub(crate) struct LabelledRow {
    /// Decoded group labels.
    pub labels: Vec<String>,
    /// Value (sum, count or mean).
    pub value: f64,
    /// Distinct entities.
    pub entities: u64,
    /// Contributions kept.
    pub contributions: u64,
}

/// Decodes group keys through the public domains.
pub(crate) fn label_rows(
    aggregate: &Aggregate,
    manifest: &Manifest,
    dataset: &Dataset,
    metric: usize,
) -> Vec<LabelledRow> {
    let result = &aggregate.metrics[metric];
    let key = &manifest.metrics[metric].key;
    result
        .rows
        .iter()
        .map(|row| LabelledRow {
            labels: row
                .key
                .iter()
                .zip(key)
                .map(|(&i, domain)| match domain {
                    Domain::Enumeration { members, .. } => {
                        members.get(i as usize).cloned().unwrap_or_default()
                    }
                    Domain::Column { table, column } => dataset
                        .table(table)
                        .and_then(|t| t.column(column))
                        .and_then(|c| c.dictionary.as_ref())
                        .and_then(|d| d.get(i as usize).cloned())
                        .unwrap_or_default(),
                })
                .collect(),
            value: result.value(row),
            entities: row.entities,
            contributions: row.contributions,
        })
        .collect()
}

/// Formats a number with thousands separators and `decimals` places.
pub(crate) fn number(x: f64, decimals: usize) -> String {
    let s = format!("{:.*}", decimals, x.abs());
    let (int, frac) = s
        .split_once('.')
        .map_or((s.as_str(), None), |(i, f)| (i, Some(f)));
    let mut grouped = String::new();
    for (i, ch) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    let sign = if x < 0.0 { "-" } else { "" };
    match frac {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}

/// Renders rows as an aligned text table; numeric columns (all but the first `text_columns`)
/// are right-aligned.
pub(crate) fn table(header: &[String], rows: &[Vec<String>], text_columns: usize) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, &w))| {
                if i < text_columns {
                    format!("{c:<w$}")
                } else {
                    format!("{c:>w$}")
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = String::new();
    out.push_str(&line(header));
    out.push('\n');
    out.push_str(
        &widths
            .iter()
            .map(|&w| "-".repeat(w))
            .collect::<Vec<_>>()
            .join("  "),
    );
    out.push('\n');
    for row in rows {
        out.push_str(&line(row));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_get_separators() {
        assert_eq!(number(1234567.891, 2), "1,234,567.89");
        assert_eq!(number(12.0, 0), "12");
        assert_eq!(number(-1000.5, 1), "-1,000.5");
        assert_eq!(number(999.0, 0), "999");
    }
}
