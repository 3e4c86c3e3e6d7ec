//! Sample data that fits any bank's schema: the partner's stand-in for data it will never see.
//!
//! A partner gets the bank's schema (`strongroom dataset show NAME --schema-out FILE`) and makes
//! sample CSV files that load under it, so `strongroom dev run --schema` checks its module
//! against the bank's real tables, columns and dictionaries, in the bank's order. The values are
//! random and mean nothing: every category member is equally likely, numbers are uniform within
//! the schema's bounds (at most 10,000 wide), dates fall in 2018.
//!
//! The first table gets one row per customer (a customers table, as banks lay them out); every
//! other table gets a random number of rows per customer, `rows_per_customer` on average.

use std::io::Write;
use std::path::Path;

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

use strongroom::dataset::csv_input::date_string;
use strongroom::dataset::schema::{ColumnSchema, DatasetSchema, Role};

/// Days from 1970-01-01 to 2018-01-01.
const FIRST_DAY: i32 = 17_532;

/// Widest range numbers are drawn from.
const WIDEST: f64 = 10_000.0;

/// Writes `<table>.csv` for every table of `schema` into `out`, with `customers` customers, and
/// the schema itself (dictionaries inline) as `schema.toml`. Returns each table's row count.
/// Refuses to replace a file already there (it could be the partner's own data); each file is
/// written beside its name and renamed into place once complete, and a failure removes what it
/// wrote.
pub fn write_sample(
    schema: &DatasetSchema,
    customers: usize,
    rows_per_customer: f64,
    seed: u64,
    out: &Path,
) -> std::io::Result<Vec<(String, usize)>> {
    let names: Vec<String> = schema
        .tables
        .iter()
        .map(|t| format!("{}.csv", t.name))
        .chain(["schema.toml".to_string()])
        .collect();
    if let Some(there) = names.iter().find(|n| out.join(n).exists()) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!(
                "{} exists: choose an empty --out",
                out.join(there).display()
            ),
        ));
    }
    std::fs::create_dir_all(out)?;
    let partial = |name: &str| out.join(format!(".{name}.partial"));
    let result =
        write_files(schema, customers, rows_per_customer, seed, &partial).and_then(|written| {
            for (i, name) in names.iter().enumerate() {
                if let Err(e) = std::fs::rename(partial(name), out.join(name)) {
                    // None of these names existed: take back the ones already in place.
                    for placed in &names[..i] {
                        let _ = std::fs::remove_file(out.join(placed));
                    }
                    return Err(e);
                }
            }
            Ok(written)
        });
    if result.is_err() {
        for name in &names {
            let _ = std::fs::remove_file(partial(name));
        }
    }
    result
}

fn write_files(
    schema: &DatasetSchema,
    customers: usize,
    rows_per_customer: f64,
    seed: u64,
    partial: &dyn Fn(&str) -> std::path::PathBuf,
) -> std::io::Result<Vec<(String, usize)>> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut written = Vec::new();
    for (t, table) in schema.tables.iter().enumerate() {
        let path = partial(&format!("{}.csv", table.name));
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
        let header: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
        writeln!(file, "{}", csv_line(header.iter().copied()))?;
        let mut rows = 0;
        for customer in 0..customers {
            let count = if t == 0 {
                1
            } else {
                // Uniform on 0..=2x the mean: the mean, and customers with none.
                let most = (2.0 * rows_per_customer.max(0.0)).round() as u64;
                (rng.next_u64() % (most + 1)) as usize
            };
            for row in 0..count {
                let cells: Vec<String> = table
                    .columns
                    .iter()
                    .map(|c| value(c, customer, row, &mut rng))
                    .collect();
                writeln!(file, "{}", csv_line(cells.iter().map(String::as_str)))?;
                rows += 1;
            }
        }
        file.flush()?;
        written.push((table.name.clone(), rows));
    }
    std::fs::write(partial("schema.toml"), schema.to_inline_toml())?;
    Ok(written)
}

fn uniform(rng: &mut ChaCha20Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// One cell of `column` for `customer`'s `row`-th row.
fn value(column: &ColumnSchema, customer: usize, row: usize, rng: &mut ChaCha20Rng) -> String {
    let range = || {
        let low = column.min.unwrap_or(0.0);
        let high = column.max.unwrap_or(low + 100.0).min(low + WIDEST);
        (low, high.max(low))
    };
    match column.role {
        Role::Entity => format!("C{customer:07}"),
        Role::Identifier => {
            let name = column.name.to_ascii_lowercase();
            if name.contains("mail") {
                format!("customer{customer}@example.com")
            } else if name.contains("phone") {
                format!("+1555{customer:07}")
            } else {
                format!("{}-{customer}", column.name)
            }
        }
        Role::Category => {
            let members = column.dictionary.as_deref().unwrap_or_default();
            if members.is_empty() {
                String::new()
            } else {
                members[(rng.next_u64() % members.len() as u64) as usize].clone()
            }
        }
        Role::Int => {
            let (low, high) = range();
            let (low, high) = (low.ceil() as i64, high.floor() as i64);
            let span = (high - low).max(0) as u64 + 1;
            (low + (rng.next_u64() % span) as i64).to_string()
        }
        Role::Float => {
            let (low, high) = range();
            let v = low + uniform(rng) * (high - low);
            // Two decimals, kept inside the bounds after rounding.
            format!("{:.2}", ((v * 100.0).floor() / 100.0).clamp(low, high))
        }
        Role::Date => date_string(FIRST_DAY + ((rng.next_u64() % 365) as i32 + row as i32) % 365),
        Role::Bool => (rng.next_u64() & 1 == 1).to_string(),
    }
}

/// Fields joined as one CSV line, quoted where needed.
fn csv_line<'a>(fields: impl Iterator<Item = &'a str>) -> String {
    fields
        .map(|f| {
            if f.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", f.replace('"', "\"\""))
            } else {
                f.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}
