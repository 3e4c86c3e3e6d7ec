//! Probes for a target customer by failing on purpose when it is present (tenure 7). The partner
//! sees only the outcome code; every try is charged, so repeated probing runs out of budget.
use strongroom_guest::prelude::*;

#[derive(Row)]
#[row(table = "customers")]
struct Customer {
    tenure_years: i64,
}

const ALL: &[Domain] = &[Domain::enumeration("all", &["all"])];
const SEEN: Metric = Metric::count("seen", ALL);

strongroom_guest::query! {
    manifest: Manifest {
        name: "fail-on-target",
        version: "0.1.0",
        mode: Mode::Isolated,
        reads: &[Customer::READS],
        metrics: &[SEEN],
        max_groups_per_entity: 1,
    },
    run: run,
}

fn run() -> Result<(), QueryError> {
    for c in rows::<Customer>() {
        if c.tenure_years == 7 {
            return Err(QueryError::from("target present"));
        }
    }
    SEEN.add_one(&[0]);
    Ok(())
}
