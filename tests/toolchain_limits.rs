//! Limits per toolchain and per policy: a module's toolchain sets its default fuel and unit
//! deadline, and the bank's policy (`[limits]`) has the last word, over fuel, the unit deadline
//! and the largest module a partner's job may run.

use strongroom::guest_boundary::toolchain::Toolchain;
use strongroom::room::jobs::{JobError, run_job};
use strongroom::room::policy::Policy;
use strongroom_tests::{example, job_request, room_with, sandbox, small_bank};

const POLICY: &str = "partner = \"socialco\"\ndataset = \"bank\"\nbudget_rho = \"10\"\nresult_delay_seconds = 0\nmin_group_size = 1\n";

#[test]
fn each_toolchain_has_limits_that_fit_it_and_a_policy_changes_them() {
    let rust = Toolchain::Rust.limits();
    let python = Toolchain::Python.limits();
    let js = Toolchain::JavaScript.limits();
    assert!(python.fuel_per_entity >= 15 * rust.fuel_per_entity);
    assert!(js.fuel_per_entity >= 90 * rust.fuel_per_entity);
    let policy = Policy::parse(&format!(
        "{POLICY}[limits]\nfuel_per_customer = 1234\nunit_deadline_ms = 250\nmax_module_bytes = 99\n"
    ))
    .expect("policy");
    let limits = policy.limits.apply(js.clone());
    assert_eq!(limits.fuel_per_entity, 1234);
    assert_eq!(limits.unit_deadline, std::time::Duration::from_millis(250));
    assert_eq!(
        limits.max_memory_bytes, js.max_memory_bytes,
        "the rest unchanged"
    );
    for (bad, says) in [
        ("fuel_per_customer = 0", "limits.fuel_per_customer"),
        ("unit_deadline_ms = 600000", "limits.unit_deadline_ms"),
        ("max_module_bytes = 0", "limits.max_module_bytes"),
        ("cpus = 4", "unknown field"),
    ] {
        let err = Policy::parse(&format!("{POLICY}[limits]\n{bad}\n")).expect_err(bad);
        assert!(err.to_string().contains(says), "{bad}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policys_limits_govern_the_partners_jobs() {
    let data = small_bank(40);
    let module = example("spend-by-category");

    // Fuel for almost nothing: every customer runs out (the bank sees why; the partner sees
    // the usual outcome, which no customer can move).
    let starved =
        Policy::parse(&format!("{POLICY}[limits]\nfuel_per_customer = 1000\n")).expect("policy");
    let (_dir, room) = room_with(&starved).await;
    let result = run_job(&room, sandbox(), job_request(&module, &data))
        .await
        .expect("job runs");
    assert_eq!(result.failed_units, 40);
    let detail = result.bank_detail.as_deref().unwrap_or_default();
    assert!(detail.contains("out_of_fuel: 40"), "{detail}");
    let (_dir, room) = room_with(&Policy::parse(POLICY).expect("policy")).await;
    let result = run_job(&room, sandbox(), job_request(&module, &data))
        .await
        .expect("job runs");
    assert_eq!(result.failed_units, 0, "{:?}", result.bank_detail);

    // A module over the policy's size cap is refused before anything is charged.
    let capped = Policy::parse(&format!(
        "{POLICY}[limits]\nmax_module_bytes = {}\n",
        module.len() - 1
    ))
    .expect("policy");
    let (_dir, room) = room_with(&capped).await;
    match run_job(&room, sandbox(), job_request(&module, &data)).await {
        Err(JobError::Refused(r)) => assert!(r.to_string().contains("over the cap"), "{r}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let status = room
        .ledger()
        .status("socialco", "bank")
        .await
        .expect("status");
    assert_eq!(status.spent_nano_rho, 0);
}
