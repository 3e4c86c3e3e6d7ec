//! Plan bytes, as the SQL engine decodes them from its parameter: refused or decoded, never a
//! panic, and a decoded plan encodes back to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strongroom_sql::Plan;

fuzz_target!(init: {
    let catalog = strongroom::room::sql::catalog(&strongroom_synthetic::generate(3, 2.0, 1).dataset());
    let plan = strongroom_sql::compile(
        include_str!("../../examples/sql/spend-by-category.sql"),
        &catalog,
        &[],
    )
    .expect("query 1 compiles");
    strongroom_fuzz::seed("sql_plan", &[("query1", plan.plan.to_bytes())]);
}, |data: &[u8]| {
    if let Ok(plan) = Plan::from_bytes(data) {
        assert_eq!(plan.to_bytes(), data, "one encoding per plan");
    }
});
