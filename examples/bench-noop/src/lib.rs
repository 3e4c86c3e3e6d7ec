//! Isolated mode, doing nothing: the benchmark's probe for what one isolation unit costs (a fresh
//! instance from the pre-instantiated module, one call, teardown).

use strongroom_guest::prelude::*;

const ANY: &[Domain] = &[Domain::enumeration("any", &["all"])];
const SEEN: Metric = Metric::count("seen", ANY);

strongroom_guest::query! {
    manifest: Manifest {
        name: "bench-noop",
        version: "0.1.0",
        mode: Mode::Isolated,
        reads: &[],
        metrics: &[SEEN],
        max_groups_per_entity: 1,
    },
    run: run,
}

fn run() -> Result<(), QueryError> {
    Ok(())
}
