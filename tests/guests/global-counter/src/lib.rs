//! Keeps a global counter and contributes one to the group named by its value. If any state
//! carried from one entity to the next, entities would spread over groups 1, 2, 3, ...; in
//! isolated mode every entity gets a fresh instance, so every contribution lands in group 1.
#![allow(dead_code, unconditional_recursion)]

use std::sync::atomic::{AtomicU32, Ordering};

use strongroom_guest::prelude::*;

static CALLS: AtomicU32 = AtomicU32::new(0);

const COUNTER: &[Domain] = &[Domain::enumeration(
    "calls_seen",
    &["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10+"],
)];
const SEEN: Metric = Metric::count("seen", COUNTER);

strongroom_guest::query! {
    manifest: Manifest {
        name: "global-counter",
        version: "0.1.0",
        mode: Mode::Isolated,
        reads: &[],
        metrics: &[SEEN],
        max_groups_per_entity: 1,
    },
    run: run,
}

fn run() -> Result<(), QueryError> {
    let calls = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
    SEEN.add_one(&[calls.min(10)]);
    Ok(())
}
