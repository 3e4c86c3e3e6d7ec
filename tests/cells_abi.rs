//! Version 0.2 of the contract: rows pushed into `run`, cells returned and checked.
//!
//! - The same module source built against 0.1 and 0.2 gives bit-identical exact aggregates, in
//!   every mode (the SDK bounds as the room does, and the room checks what it gets).
//! - A module that forges its cells gains nothing: each forgery is a contract violation, the
//!   entities it names contribute nothing, and a batch that holds one runs again one customer at
//!   a time, so only the forging customers are dropped.

use std::sync::Arc;

use strongroom::dataset::Dataset;
use strongroom::guest_boundary::vetting::Abi;
use strongroom::guest_boundary::{Outcome, PreparedModule, RunContext, RunLimits, RunReport};
use strongroom_contract::manifest::Mode;
use strongroom_tests::{cell_guest, example, example_v0_1, prepare, sandbox, small_bank};

/// Runs `module` in its manifest's mode (batched or not, when isolated) with `parameters`.
fn run_with(
    module: &PreparedModule,
    data: &Arc<Dataset>,
    batched: bool,
    parameters: &[(&str, &str)],
) -> RunReport {
    let parameters: Vec<(String, String)> = parameters
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let ctx = RunContext::new(
        Arc::clone(data),
        module.module.manifest.clone(),
        module.module.manifest.mode,
        RunLimits::default(),
        [7; 32],
    )
    .expect("admitted")
    .with_batched(batched)
    .with_parameters(&parameters)
    .expect("parameters");
    sandbox().run(module, Arc::new(ctx), 2)
}

#[test]
fn modules_are_vetted_as_the_version_they_were_built_against() {
    let new = prepare(&example("spend-by-category"));
    let old = prepare(&example_v0_1("spend-by-category"));
    assert_eq!(new.module.abi, Abi::V0_2);
    assert_eq!(old.module.abi, Abi::V0_1);
    assert!(
        new.module
            .imports
            .iter()
            .all(|i| !i.starts_with("strongroom:") || i.ends_with("@0.2.0")),
        "{:?}",
        new.module.imports
    );
    assert!(
        old.module
            .imports
            .iter()
            .any(|i| i == "strongroom:query/data@0.1.0"),
        "{:?}",
        old.module.imports
    );
}

#[test]
fn every_example_gives_the_same_exact_aggregates_under_both_versions() {
    let data = small_bank(400);
    for name in [
        "spend-by-category",
        "fraud-alerts-by-region",
        "spend-by-category-table",
        "analyst-spend-by-region",
        "column-sum",
    ] {
        let new = prepare(&example(name));
        let old = prepare(&example_v0_1(name));
        let batched_too = new.module.manifest.mode == Mode::Isolated;
        for batched in [false, batched_too] {
            let a = run_with(&new, &data, batched, &[]);
            let b = run_with(&old, &data, batched, &[]);
            assert_eq!(a.outcome, Outcome::Completed, "{name}: {:?}", a.detail);
            assert_eq!(b.outcome, Outcome::Completed, "{name}: {:?}", b.detail);
            let a = a.aggregate.expect("aggregate");
            let b = b.aggregate.expect("aggregate");
            assert!(a.entities > 0, "{name}");
            // Groups, counts, fixed-point sums and the bounding figures, bit for bit.
            assert_eq!(a, b, "{name} (batched: {batched})");
        }
    }
}

#[test]
fn bounding_in_the_module_matches_the_room_where_it_bites() {
    // Clamping, the per-group cap and the group limit all act on this data: the figures prove
    // the bounds were exercised, and the aggregates still agree.
    let data = small_bank(400);
    let new = run_with(&prepare(&example("spend-by-category")), &data, false, &[]);
    let old = run_with(
        &prepare(&example_v0_1("spend-by-category")),
        &data,
        false,
        &[],
    );
    let new = new.aggregate.expect("0.2 run completes");
    let old = old.aggregate.expect("0.1 run completes");
    assert!(new.stats.clamped > 0, "{:?}", new.stats);
    assert_eq!(new.stats, old.stats);
    assert_eq!(new.metrics, old.metrics);
}

/// Each forgery the forged-cells module can make, with the words its refusal must name.
const FORGERIES: &[(&str, &str)] = &[
    ("group-outside-domain", "outside the metric's domain"),
    ("unsorted", "sorted by (entity, metric, group)"),
    ("split-group", "sorted by (entity, metric, group)"),
    ("too-many-groups", "max_groups_per_entity"),
    ("count-zero", "count must be 1 to"),
    ("count-over-limit", "count must be 1 to"),
    ("sum-over-bound", "the sum must lie in"),
    ("sum-under-bound", "the sum must lie in"),
    ("count-with-sum", "the sum must lie in [0, 0]"),
    ("undeclared-metric", "no such metric"),
    ("entity-outside-call", "the call has 1 entities"),
    ("pull-rows", "table mode only"),
    ("ragged", "differ in length"),
];

#[test]
fn forged_cells_are_contract_violations_and_contribute_nothing() {
    let data = small_bank(30);
    let module = prepare(&cell_guest("forged-cells"));
    assert_eq!(module.module.abi, Abi::V0_2);
    let honest = run_with(&module, &data, false, &[("attack", "honest")]);
    assert_eq!(honest.outcome, Outcome::Completed, "{:?}", honest.detail);
    assert_eq!(honest.aggregate.expect("aggregate").entities, 30);
    for &(attack, words) in FORGERIES {
        for batched in [false, true] {
            let report = run_with(&module, &data, batched, &[("attack", attack)]);
            match &report.outcome {
                Outcome::ContractViolation(what) => {
                    assert!(what.contains(words), "{attack}: {what}")
                }
                other => panic!("{attack}: expected a contract violation, got {other:?}"),
            }
            assert_eq!(report.failed_unit_count(), 30, "{attack}");
            let aggregate = report.aggregate.expect("units fail alone");
            assert_eq!(aggregate.entities, 0, "{attack}: nothing forged is kept");
            assert!(
                aggregate.metrics.iter().all(|m| m.rows.is_empty()),
                "{attack}"
            );
        }
    }
}

#[test]
fn a_forging_customer_in_a_batch_drops_its_own_cells_alone() {
    // Customers with a purchase in group 3 forge; a batch holding one runs again one customer
    // per instance, so exactly those customers are dropped, batched or not.
    let data = small_bank(300);
    let module = prepare(&cell_guest("forged-cells"));
    let isolated = run_with(&module, &data, false, &[("attack", "on-mcc-3")]);
    let batched = run_with(&module, &data, true, &[("attack", "on-mcc-3")]);
    let failed = isolated.failed_unit_count();
    assert!(failed > 0 && failed < 300, "some customers forge: {failed}");
    assert_eq!(batched.failed_unit_count(), failed);
    assert_eq!(batched.units, 300);
    let kept = isolated.aggregate.as_ref().expect("aggregate").entities;
    assert_eq!(kept, 300 - failed);
    assert_eq!(batched.aggregate, isolated.aggregate);
}

#[test]
fn the_sandbox_limits_hold_for_version_0_2_runs_batched_or_not() {
    let data = small_bank(10);
    let module = prepare(&cell_guest("forged-cells"));
    for (attack, outcome) in [
        ("spin", Outcome::OutOfFuel),
        ("memory", Outcome::MemoryLimit),
    ] {
        for batched in [false, true] {
            let report = run_with(&module, &data, batched, &[("attack", attack)]);
            assert_eq!(report.outcome, outcome, "{attack} (batched: {batched})");
            assert_eq!(report.failed_unit_count(), 10, "{attack}");
            assert_eq!(report.aggregate.expect("units fail alone").entities, 0);
        }
    }
}
