//! Table mode: tries to undo the per-run shuffle of entity ordinals. The room shuffles ordinals
//! with Fisher-Yates driven by a ChaCha20 stream; if the guest's WASI random stream came from the
//! same key, the guest could draw the same numbers, replay the shuffle and learn every row's true
//! rank in the (sorted) customer table. Each customer row counts under `replayed` when the replay
//! predicts its ordinal and under `missed` otherwise.
use strongroom_guest::prelude::*;

#[derive(Row)]
#[row(table = "customers")]
#[allow(dead_code)]
struct Customer {
    tenure_years: i64,
}

const GUESS: &[Domain] = &[Domain::enumeration("guess", &["replayed", "missed"])];
const ROWS: Metric = Metric::count("rows", GUESS);

strongroom_guest::query! {
    manifest: Manifest {
        name: "ordinal-replay",
        version: "0.1.0",
        mode: Mode::Table,
        reads: &[Customer::READS],
        metrics: &[ROWS],
        max_groups_per_entity: 1,
    },
    run: run,
}

fn run() -> Result<(), QueryError> {
    let ids: Vec<RowId> = batches::<Customer>(65_536)
        .flat_map(|b| b.iter().map(|(id, _)| id).collect::<Vec<_>>())
        .collect();
    let n = ids.len();
    let mut stream = vec![0u8; 8 * n.saturating_sub(1)];
    getrandom::fill(&mut stream).map_err(|e| QueryError::from(e.to_string()))?;
    let mut words = stream
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])));
    let mut alias: Vec<u32> = (0..n as u32).collect();
    for i in (1..n).rev() {
        let j = (words.next().unwrap_or(0) % (i as u64 + 1)) as usize;
        alias.swap(i, j);
    }
    // Row r of the customer table is the customer of rank r (the table is sorted by entity).
    for (rank, id) in ids.iter().enumerate() {
        let key = if alias[rank] == id.entity { 0 } else { 1 };
        ROWS.add_for(*id, &[key], 1.0);
    }
    Ok(())
}
