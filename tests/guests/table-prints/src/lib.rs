//! A table-mode module (the bank must approve it) that prints a line to stdout and to stderr
//! before it sums: printing flushes a WASI stream, which must work whether or not the room runs
//! the module from inside an async runtime.

use strongroom_guest::prelude::*;

#[derive(Row)]
#[row(table = "transactions")]
#[allow(dead_code)]
struct Transaction {
    amount: f64,
}

const ALL: &[Domain] = &[Domain::enumeration("all", &["all"])];
const ROWS: Metric = Metric::count("rows", ALL);

strongroom_guest::query! {
    manifest: Manifest {
        name: "table-prints",
        version: "0.1.0",
        mode: Mode::Table,
        reads: &[Transaction::READS],
        metrics: &[ROWS],
        max_groups_per_entity: 1,
    },
    run: run,
}

fn run() -> Result<(), QueryError> {
    println!("table-prints: starting");
    eprintln!("table-prints: a note for the bank");
    Ok(())
}
