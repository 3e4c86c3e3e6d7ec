//! Grows linear memory until it is refused: must end at the memory limit.
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

fn run() -> Result<(), QueryError> {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        // Reserve without zeroing, so the attack is about memory, not fuel.
        let mut block: Vec<u8> = Vec::with_capacity(4 << 20);
        block.push(1);
        hoard.push(std::hint::black_box(block));
    }
}
