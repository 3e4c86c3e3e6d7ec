//! A table-mode module (the bank must approve it) that spins until its fuel or the run's
//! deadline ends it: the long-running job the service's crash tests kill mid-run.

use strongroom_guest::prelude::*;

#[derive(Row)]
#[row(table = "transactions")]
#[allow(dead_code)]
struct Transaction {
    amount: f64,
}

const ALL: &[Domain] = &[Domain::enumeration("all", &["all"])];
const SPEND: Metric = Metric::sum("spend", ALL, 0.0, 1_000.0);

strongroom_guest::query! {
    manifest: Manifest {
        name: "table-spin",
        version: "0.1.0",
        mode: Mode::Table,
        reads: &[Transaction::READS],
        metrics: &[SPEND],
        max_groups_per_entity: 1,
    },
    run: run,
}

fn run() -> Result<(), QueryError> {
    let mut x: u64 = 0;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}
