//! Hostile guests: each program in tests/guests/ attacks one limit or rule of the guest boundary.
//! Each must end in its typed outcome, within its limit, and the host must run the next job
//! normally afterwards.

use std::time::Duration;

use strongroom::guest_boundary::{Outcome, RunLimits, RunReport};
use strongroom_tests::{
    example, hostile, prepare, repo_root, resident_bytes, run, small_bank, workspace_members,
};

/// Runs a hostile guest on a small bank, checks the host still serves a normal job afterwards.
fn attack(name: &str, limits: RunLimits) -> RunReport {
    let data = small_bank(40);
    let module = prepare(&hostile(name));
    let report = run(&module, &data, limits);
    if !report.outcome.is_completed()
        && let Some(aggregate) = &report.aggregate
    {
        // Isolated mode: units fail alone. Every unit of these programs attacks, so every unit
        // failed and nothing was contributed.
        assert_eq!(
            report.failed_unit_count(),
            report.units,
            "{name}: every unit attacks"
        );
        assert_eq!(
            aggregate.entities, 0,
            "{name}: a failed unit contributes nothing"
        );
    }
    // The host keeps serving: the example query runs normally right after.
    let normal = prepare(&example("spend-by-category"));
    let after = run(&normal, &data, RunLimits::default());
    assert_eq!(
        after.outcome,
        Outcome::Completed,
        "{name}: the next job must run normally"
    );
    report
}

#[test]
fn infinite_loop_runs_out_of_fuel() {
    let report = attack("infinite-loop", RunLimits::default());
    assert_eq!(report.outcome, Outcome::OutOfFuel);
    assert!(report.fuel_consumed >= RunLimits::default().fuel_per_entity);
}

#[test]
fn infinite_loop_with_unlimited_fuel_hits_the_deadline() {
    let limits = RunLimits {
        fuel_per_entity: u64::MAX / 4,
        unit_deadline: Duration::from_millis(300),
        ..RunLimits::default()
    };
    let started = std::time::Instant::now();
    let report = attack("infinite-loop", limits);
    assert_eq!(report.outcome, Outcome::Deadline);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "deadline must stop the guest promptly"
    );
}

#[test]
fn deep_recursion_overflows_the_stack() {
    assert_eq!(
        attack("deep-recursion", RunLimits::default()).outcome,
        Outcome::StackOverflow
    );
}

#[test]
fn memory_bomb_hits_the_memory_limit_and_host_memory_stays_bounded() {
    let before = resident_bytes();
    for _ in 0..5 {
        let report = attack("memory-bomb", RunLimits::default());
        assert_eq!(report.outcome, Outcome::MemoryLimit);
    }
    let grown = resident_bytes().saturating_sub(before);
    assert!(
        grown < 512 << 20,
        "host RSS grew by {grown} bytes over five memory bombs"
    );
}

#[test]
fn stdout_flood_hits_the_output_limit_and_capture_is_bounded() {
    let limits = RunLimits::default();
    let report = attack("stdout-flood", limits.clone());
    assert_eq!(report.outcome, Outcome::OutputLimit);
    assert!(report.stdout.len() <= limits.max_output_bytes);
    assert!(
        report.stdout.starts_with(b"xxxx"),
        "captured output is kept for the bank"
    );
}

#[test]
fn contribution_flood_hits_the_contribution_limit() {
    assert_eq!(
        attack("contribution-flood", RunLimits::default()).outcome,
        Outcome::ContributionLimit
    );
}

#[test]
fn panic_is_a_trap_whose_text_stays_on_the_bank_side() {
    let report = attack("panic", RunLimits::default());
    assert!(
        matches!(report.outcome, Outcome::Trap(_)),
        "got {:?}",
        report.outcome
    );
    // What a partner sees is the code; the guest's text is only in the bank-side capture.
    assert_eq!(report.outcome.code(), "trap");
    assert!(!report.outcome.code().contains("secret"));
    let stderr = String::from_utf8_lossy(&report.stderr);
    assert!(
        stderr.contains("secret-from-guest"),
        "stderr captured for the bank: {stderr}"
    );
}

#[test]
fn guest_error_is_its_own_outcome() {
    let report = attack("guest-error", RunLimits::default());
    assert_eq!(report.outcome, Outcome::GuestError);
    assert!(
        report
            .detail
            .as_deref()
            .unwrap_or_default()
            .contains("refusing on purpose")
    );
}

#[test]
fn reading_an_ungranted_column_is_a_contract_violation() {
    let report = attack("ungranted-column", RunLimits::default());
    match report.outcome {
        Outcome::ContractViolation(what) => assert!(what.contains("transactions.online"), "{what}"),
        other => panic!("expected a contract violation, got {other:?}"),
    }
}

#[test]
fn a_manifest_that_reads_an_identifier_is_refused_before_running() {
    let module = prepare(&hostile("reads-identifier"));
    let data = small_bank(5);
    let err = strongroom::guest_boundary::RunContext::new(
        data,
        module.module.manifest.clone(),
        module.module.manifest.mode,
        RunLimits::default(),
        [0; 32],
    )
    .err()
    .expect("admission must fail");
    assert!(
        err.to_string()
            .contains("customers.email: an identifier column"),
        "{err}"
    );
}

#[test]
fn a_key_outside_its_domain_is_a_contract_violation() {
    let report = attack("key-outside-domain", RunLimits::default());
    match report.outcome {
        Outcome::ContractViolation(what) => {
            assert!(what.contains("outside its public domain"), "{what}")
        }
        other => panic!("expected a contract violation, got {other:?}"),
    }
}

#[test]
fn a_nan_value_is_a_contract_violation() {
    assert!(matches!(
        attack("nan-value", RunLimits::default()).outcome,
        Outcome::ContractViolation(_)
    ));
}

#[test]
fn a_global_counter_resets_for_every_entity_in_isolated_mode() {
    let data = small_bank(120);
    let module = prepare(&hostile("global-counter"));
    let report = run(&module, &data, RunLimits::default());
    assert_eq!(report.outcome, Outcome::Completed);
    let aggregate = report.aggregate.expect("completed runs aggregate");
    let rows = &aggregate.metrics[0].rows;
    // Every entity saw the counter at 1: one group, holding every entity.
    assert_eq!(rows.len(), 1, "state leaked across entities: {rows:?}");
    assert_eq!(rows[0].key, vec![1]);
    assert_eq!(rows[0].entities, 120);
}

#[test]
fn reading_a_file_finds_no_directory_to_read_from() {
    // The filesystem is there, with no preopened directory: no path can be opened, and no
    // descriptor can ever exist. The guest's own error says so, to the bank.
    let report = attack("imports-filesystem", RunLimits::default());
    assert_eq!(report.outcome, Outcome::GuestError, "{:?}", report.detail);
    let detail = report.detail.unwrap_or_default();
    assert!(detail.contains("No such file or directory"), "{detail}");
}

#[test]
fn opening_a_connection_is_denied() {
    // Sockets are there, and refuse to be made: no operating-system socket is ever created.
    let report = attack("imports-sockets", RunLimits::default());
    assert_eq!(report.outcome, Outcome::GuestError, "{:?}", report.detail);
    let detail = report.detail.unwrap_or_default().to_lowercase();
    assert!(
        detail.contains("denied") || detail.contains("not permitted"),
        "{detail}"
    );
}

#[test]
fn sleeping_returns_at_once_against_the_frozen_clock() {
    // The guest sleeps one millisecond per dollar of every transaction: minutes per customer
    // against a real clock, past the unit's one-second deadline. Against the frozen clock every
    // subscription is ready at once, so the sleep carries no time at all and every unit
    // completes (no timing channel, no host thread held).
    let report = attack("imports-clock-poll", RunLimits::default());
    assert_eq!(report.outcome, Outcome::Completed, "{:?}", report.detail);
    assert_eq!(report.failed_unit_count(), 0);
    assert_eq!(report.aggregate.expect("aggregate").entities, report.units);
}

/// Every hostile guest in tests/guests/ is run by some test (wasmtime's assert_test_exists idea).
#[test]
fn every_hostile_guest_has_a_test() {
    let dir = repo_root().join("tests");
    let mut sources = String::new();
    for entry in std::fs::read_dir(&dir).expect("tests dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "rs") {
            sources.push_str(&std::fs::read_to_string(&path).expect("test source"));
        }
    }
    // `common` is the shared shape of the programs, not a program.
    for member in workspace_members(&dir.join("guests"))
        .into_iter()
        .filter(|m| m != "common")
    {
        assert!(
            sources.contains(&format!("hostile(\"{member}\")"))
                || sources.contains(&format!("attack(\"{member}\""))
                || sources.contains(&format!("refused_import(\"{member}\"")),
            "no test runs tests/guests/{member}"
        );
    }
}

#[test]
fn a_table_mode_spinner_is_stopped_by_its_deadline() {
    // Table mode runs reviewed modules on the engine without fuel: the deadline stops them.
    let limits = RunLimits {
        deadline: Duration::from_millis(500),
        ..RunLimits::default()
    };
    let module = prepare(&hostile("table-spin"));
    let started = std::time::Instant::now();
    let report = run(&module, &small_bank(50), limits);
    assert_eq!(report.outcome, Outcome::Deadline, "{:?}", report.detail);
    assert!(report.aggregate.is_none(), "nothing leaves a failed run");
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[test]
fn a_pooled_slot_comes_back_fresh_and_the_self_test_sees_stale_memory() {
    use strongroom::guest_boundary::Sandbox;
    use strongroom::guest_boundary::freshness::{self, MemoryReset, Probe, canary_module};
    use strongroom::guest_boundary::sandbox::EngineSettings;
    // An engine of its own, so no other test's instances take the slot in between.
    let sandbox = Sandbox::new(&EngineSettings::default()).expect("the self-test passes");
    assert!(matches!(
        sandbox.memory_reset(),
        MemoryReset::PageScan | MemoryReset::Fallback(_)
    ));
    let engine = sandbox.engine();
    let module = canary_module(engine).expect("canary");

    // The detector sees a dirtied slot that was not reset (the same instance, inspected again).
    let mut dirty = Probe::new(engine, &module).expect("instance");
    assert!(dirty.inspect().expect("inspect").is_fresh());
    dirty.scribble().expect("scribble");
    let seen = dirty.inspect().expect("inspect");
    assert!(
        seen.stale_bytes > 40 * 65536 && seen.extra_pages == 8 && seen.stale_elements == 64,
        "{seen:?}"
    );
    let slot = seen.address;
    drop(dirty);

    // The next instance lands in that slot and sees the pristine image.
    let mut next = Probe::new(engine, &module).expect("instance");
    let seen = next.inspect().expect("inspect");
    assert_eq!(seen.address, slot, "the pool reuses the dirtied slot");
    assert!(seen.is_fresh(), "{seen:?}");
    freshness::self_test(engine).expect("and again, as at start");
}

#[test]
fn scripted_host_calls_end_units_never_the_host() {
    // The scripts the fuzz target `host_calls` starts from, and a few hostile ones: reads of
    // unknown tables and huge row ranges, contributions with NaN and keys outside the domain.
    let scripts: [&[u8]; 5] = [
        &[7, 7],
        &[4, 0, 1, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0, 3, 5, 1],
        &[6, 0, 2, 1, 0, 0, 0, 2, 0, 0, 0, 2, 3, 4, 0, 1, 3],
        &[
            5, 0, 255, 255, 255, 255, 255, 255, 255, 255, 4, 200, 255, 9, 1, 1, 1,
        ],
        &[
            6, 3, 255, 255, 255, 255, 255, 2, 0, 0, 6, 0, 1, 1, 7, 1, 2, 0, 0, 0, 0, 0, 0, 0,
        ],
    ];
    let module = prepare(&hostile("host-call-script"));
    let dataset = small_bank(5);
    for script in scripts {
        let parameters = vec![(
            "s00".to_string(),
            script
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>(),
        )];
        let ctx = strongroom::guest_boundary::RunContext::new(
            std::sync::Arc::clone(&dataset),
            module.module.manifest.clone(),
            module.module.manifest.mode,
            RunLimits::default(),
            [1; 32],
        )
        .expect("admitted")
        .with_parameters(&parameters)
        .expect("parameters");
        let report = strongroom_tests::sandbox().run(&module, std::sync::Arc::new(ctx), 2);
        assert_eq!(
            report.partner_outcome(),
            "completed",
            "{script:?}: {:?}",
            report.detail
        );
        let aggregate = format!("{:?}", report.aggregate.expect("aggregate"));
        assert!(
            !aggregate.contains("NaN") && !aggregate.contains("inf"),
            "{aggregate}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_mode_module_that_prints_runs_from_inside_an_async_runtime() {
    // A job runs inside the service's async runtime; a WASI write flushes by entering a runtime
    // of its own, which panics on a thread that already drives one. The table-mode run must
    // leave that context (as isolated runs do): the output reaches the bank, the result stands.
    table_prints_and_completes();
}

#[tokio::test(flavor = "current_thread")]
async fn a_table_mode_module_that_prints_runs_from_inside_a_single_threaded_runtime() {
    table_prints_and_completes();
}

fn table_prints_and_completes() {
    let module = prepare(&hostile("table-prints"));
    let report = run(&module, &small_bank(50), RunLimits::default());
    assert_eq!(report.outcome, Outcome::Completed, "{:?}", report.detail);
    assert!(report.aggregate.is_some());
    assert_eq!(
        String::from_utf8_lossy(&report.stdout),
        "table-prints: starting\n"
    );
    assert_eq!(
        String::from_utf8_lossy(&report.stderr),
        "table-prints: a note for the bank\n"
    );
}
