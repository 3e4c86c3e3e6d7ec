//! Recurses without end: must end in a stack overflow, not crash the host.
#![allow(dead_code, unconditional_recursion)]

use strongroom_guest::prelude::*;

#[derive(Row)]
#[row(table = "transactions")]
struct Transaction {
    mcc_group: Category,
    amount: f64,
}

const BY_MCC: &[Domain] = &[Domain::column("transactions", "mcc_group")];
const SPEND: Metric =
    Metric::sum("spend", BY_MCC, 0.0, 1_000.0).max_contributions_per_group(1_000_000);

strongroom_guest::query! {
    manifest: Manifest {
        name: env!("CARGO_PKG_NAME"),
        version: "0.1.0",
        mode: Mode::Isolated,
        reads: &[Transaction::READS],
        metrics: &[SPEND],
        max_groups_per_entity: 100,
    },
    run: run,
}

#[inline(never)]
fn descend(depth: u64) -> u64 {
    // Scalars only: the recursion lives on the wasm stack, not Rust's shadow stack in memory.
    std::hint::black_box(descend(std::hint::black_box(depth + 1))) ^ depth
}

fn run() -> Result<(), QueryError> {
    let total = descend(0);
    SPEND.add(&[0], total as f64);
    Ok(())
}
