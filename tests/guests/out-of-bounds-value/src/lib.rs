//! Contributes 10^12 per customer to a metric bounded at 100: the room clamps each value, so no
//! customer moves the sum by more than the declared bound.
use strongroom_guest::prelude::*;

const ALL: &[Domain] = &[Domain::enumeration("all", &["all"])];
const HUGE: Metric = Metric::sum("huge", ALL, 0.0, 100.0);

strongroom_guest::query! {
    manifest: Manifest {
        name: "out-of-bounds-value",
        version: "0.1.0",
        mode: Mode::Isolated,
        reads: &[],
        metrics: &[HUGE],
        max_groups_per_entity: 1,
    },
    run: run,
}

fn run() -> Result<(), QueryError> {
    HUGE.add(&[0], 1e12);
    Ok(())
}
