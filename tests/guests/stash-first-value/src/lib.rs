//! Tries to amplify one customer: keeps the first value it sees in a global and contributes that
//! value on behalf of every later customer. In isolated mode every customer runs in a fresh
//! instance, so the global is always empty and each customer can only contribute its own value.
use std::sync::Mutex;

use strongroom_guest::prelude::*;

#[derive(Row)]
#[row(table = "transactions")]
struct Transaction {
    amount: f64,
}

static FIRST: Mutex<Option<f64>> = Mutex::new(None);

const ALL: &[Domain] = &[Domain::enumeration("all", &["all"])];
const SPEND: Metric = Metric::sum("spend", ALL, 0.0, 1_000_000.0);

strongroom_guest::query! {
    manifest: Manifest {
        name: "stash-first-value",
        version: "0.1.0",
        mode: Mode::Isolated,
        reads: &[Transaction::READS],
        metrics: &[SPEND],
        max_groups_per_entity: 1,
    },
    run: run,
}

fn run() -> Result<(), QueryError> {
    let own: f64 = rows::<Transaction>().iter().map(|t| t.amount).sum();
    let mut first = FIRST.lock().map_err(|_| QueryError::from("poisoned"))?;
    let value = *first.get_or_insert(own);
    SPEND.add(&[0], value);
    Ok(())
}
