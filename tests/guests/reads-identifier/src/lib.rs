//! Declares the customers' email (an identifier column) in its manifest: the room refuses to
//! start the run, since identifiers never reach a guest.
#![allow(dead_code, unconditional_recursion)]

use strongroom_guest::prelude::*;

struct Email;

impl strongroom_guest::Row for Email {
    const TABLE: &'static str = "customers";
    const COLUMNS: &'static [strongroom_guest::ColumnSpec] = &[strongroom_guest::ColumnSpec {
        name: "email",
        ty: strongroom_guest::ColumnType::Category,
    }];
    fn from_columns(
        _: &[strongroom_guest::bindings::strongroom::query::types::ColumnValues],
        _: usize,
    ) -> Self {
        Email
    }
}

const ANY: &[Domain] = &[Domain::enumeration("any", &["all"])];
const SEEN: Metric = Metric::count("seen", ANY);

strongroom_guest::query! {
    manifest: Manifest {
        name: "reads-identifier",
        version: "0.1.0",
        mode: Mode::Isolated,
        reads: &[Email::READS],
        metrics: &[SEEN],
        max_groups_per_entity: 1,
    },
    run: run,
}

fn run() -> Result<(), QueryError> {
    let _ = rows::<Email>();
    SEEN.add_one(&[0]);
    Ok(())
}
