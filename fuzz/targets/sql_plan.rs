//! Plan bytes, as the SQL engine decodes them from its parameter: refused or decoded, never a
//! panic, and a decoded plan's encoding is stable (it decodes and encodes to itself). Postcard
//! also accepts overlong integers, so arbitrary bytes need not be that encoding; the engine only
//! ever receives the room's own.
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
        let once = plan.to_bytes();
        let again = Plan::from_bytes(&once).expect("an encoded plan decodes").to_bytes();
        assert_eq!(once, again, "a plan's encoding is stable");
    }
});
