//! The output gate under attack, and its bookkeeping: thresholds against modules that single
//! customers out, bounds against amplification and outliers, a budget that probing cannot
//! overspend (charged before the run, never refunded, safe under concurrency), and receipts.

use std::sync::Arc;

use strongroom::dataset::Dataset;
use strongroom::guest_boundary::{Outcome, RunLimits};
use strongroom::output_gate::ledger::{Charge, LedgerError, PrivacyLedger};
use strongroom::output_gate::mechanism::{self, Mechanism, NANO};
use strongroom::output_gate::release::release;
use strongroom::room::approval::ParameterRules;
use strongroom::room::jobs::{
    JobError, JobRequest, JobStatus, decide_held, domain_labels, run_job,
};
use strongroom::room::policy::Policy;
use strongroom_tests::{
    SeededBytes, example, floats, hostile, prepare, room_with, run, sandbox, small_bank,
};
use strongroom_verify::receipt::Receipt;

#[test]
fn keys_that_single_out_customers_are_suppressed_by_the_threshold() {
    let data = small_bank(400);
    let module = prepare(&hostile("target-in-key"));
    let report = run(&module, &data, RunLimits::default());
    assert_eq!(report.outcome, Outcome::Completed, "{:?}", report.detail);
    let aggregate = report.aggregate.expect("aggregate");
    let manifest = &module.module.manifest;
    let labels = domain_labels(manifest, &data);
    let counts: Vec<u64> = labels
        .iter()
        .map(|d| d.iter().map(|p| p.len() as u64).product())
        .collect();
    // A generous cost, so the noise on entity counts is small (std ~1.3) and the test is sharp.
    let plan = mechanism::plan(manifest, Mechanism::Gaussian, 5 * NANO, 32, &counts).expect("plan");
    let threshold = 50;
    let released = release(
        manifest,
        &aggregate,
        &labels,
        &plan,
        threshold,
        SeededBytes::new(3),
    )
    .expect("release");

    // The one-customer group: its exact count is 1 (or 0); it must not be released.
    let target = &released.metrics[1];
    assert!(
        target.groups.iter().all(|g| g.labels[0] != "target"),
        "the target's group was released: {:?}",
        target.groups
    );
    assert!(target.suppressed_groups >= 1);

    // Spend buckets: every released bucket really holds many customers; rare buckets are gone.
    let buckets = &released.metrics[0];
    let exact = &aggregate.metrics[0].rows;
    for g in &buckets.groups {
        let index = labels[0][0]
            .iter()
            .position(|l| l == &g.labels[0])
            .expect("label") as u32;
        let true_count = exact
            .iter()
            .find(|r| r.key == vec![index])
            .map_or(0, |r| r.entities);
        assert!(
            true_count >= threshold - 10,
            "bucket {} released with only {true_count} customers",
            g.labels[0]
        );
    }
    let rare = exact.iter().filter(|r| r.entities < 20).count() as u64;
    assert!(
        buckets.suppressed_groups >= rare,
        "{rare} rare buckets, {} suppressed",
        buckets.suppressed_groups
    );
    assert!(
        buckets.suppressed_groups + buckets.groups.len() as u64 == 100,
        "every declared group is accounted for"
    );
}

#[test]
fn isolated_mode_makes_amplifying_one_customer_impossible() {
    let data = small_bank(150);
    let module = prepare(&hostile("stash-first-value"));
    let report = run(&module, &data, RunLimits::default());
    let aggregate = report.aggregate.expect("aggregate");
    // Each customer contributed its own total, never the first customer's.
    let tx = data.table("transactions").expect("transactions");
    let amounts = floats(&data, "transactions", "amount");
    let own: i128 = (0..data.entities() as u32)
        .map(|e| {
            i128::from((tx.entity_rows(e).map(|r| amounts[r]).sum::<f64>() * 100.0).round() as i64)
        })
        .sum();
    assert_eq!(aggregate.metrics[0].rows[0].sum_fixed, own);
    assert_eq!(aggregate.metrics[0].rows[0].entities, 150);
}

#[test]
fn values_far_outside_the_bounds_are_clamped() {
    let data = small_bank(60);
    let module = prepare(&hostile("out-of-bounds-value"));
    let aggregate = run(&module, &data, RunLimits::default())
        .aggregate
        .expect("aggregate");
    assert_eq!(aggregate.metrics[0].rows[0].sum_fixed, 60 * 100 * 100);
    assert_eq!(aggregate.stats.clamped, 60);
}

fn policy(budget: &str, release: &str) -> Policy {
    Policy::parse(&format!(
        "partner = \"socialco\"\ndataset = \"bank\"\nbudget_rho = \"{budget}\"\nrelease = \"{release}\"\nmin_group_size = 20\nresult_delay_seconds = 0\n"
    ))
    .expect("policy")
}

fn request<'a>(module: &'a [u8], data: &Arc<Dataset>, cost: u64) -> JobRequest<'a> {
    JobRequest {
        partner: "socialco",
        module,
        sql: None,
        dataset: Arc::clone(data).into(),
        dataset_sha256: "00".repeat(32),
        dataset_origin: "synthetic test bank".into(),
        sealed_by: "bigbank".into(),
        cost_nano: cost,
        threads: 2,
        audience: None,
        job_id: None,
        parameters: Vec::new(),
        progress: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_failing_on_purpose_is_dropped_alone_and_every_probe_costs_budget() {
    let (_dir, room) = room_with(&policy("1.0", "automatic")).await;
    let data = small_bank(80);
    let targets = strongroom_tests::ints(&data, "customers", "tenure_years")
        .iter()
        .filter(|&&t| t == 7)
        .count() as u64;
    assert!(targets > 0, "the probe's target is in the data");
    let probe = hostile("fail-on-target");
    for spent in [400_000_000u64, 800_000_000] {
        let result = run_job(&room, sandbox(), request(&probe, &data, 400_000_000))
            .await
            .expect("job runs");
        // The target's unit fails alone: the job completes for the others, and the partner's
        // code is the same as for a dataset without the target.
        assert_eq!(result.outcome, "completed");
        assert_eq!(result.status, JobStatus::Released);
        assert_eq!(
            result.failed_units, targets,
            "the bank sees the failed units"
        );
        assert_eq!(
            result.remaining_nano_rho,
            NANO - spent,
            "the probe was charged"
        );
        // The partner-facing result carries no guest text; the bank's detail does.
        let detail = result.bank_detail.as_deref().unwrap_or_default();
        assert!(detail.contains("target present"), "{detail}");
        assert!(
            detail.contains(&format!("{targets} of 80 units failed")),
            "{detail}"
        );
        assert!(!result.receipt.contains("target present"));
        assert!(result.receipt.contains("completed"));
    }
    match run_job(&room, sandbox(), request(&probe, &data, 400_000_000)).await {
        Err(JobError::Budget(LedgerError::Exhausted { remaining, .. })) => {
            assert_eq!(remaining, 200_000_000)
        }
        other => panic!("a third probe must be refused for budget, got {other:?}"),
    }
    let status = room
        .ledger()
        .status("socialco", "bank")
        .await
        .expect("status");
    assert_eq!((status.spent_nano_rho, status.jobs), (800_000_000, 2));
}

fn charge<'a>(job_id: &'a str, cost: u64) -> Charge<'a> {
    Charge {
        partner: "p",
        dataset: "d",
        domain: "d",
        job_id,
        cost,
        max_jobs_per_day: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_charges_never_overspend() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pool = strongroom::room::db::open(&strongroom::room::db::Location::Sqlite(
        dir.path().join("ledger.db"),
    ))
    .await
    .expect("db");
    let ledger = PrivacyLedger::new(pool);
    ledger.set_budget("p", "d", NANO).await.expect("budget");
    // Twelve jobs of 0.3 race for a budget of 1.0: exactly three may pass.
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let ledger = ledger.clone();
            tokio::spawn(async move {
                let id = format!("job-{i}");
                ledger.charge(&charge(&id, 300_000_000)).await
            })
        })
        .collect();
    let mut passed = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(_) => passed += 1,
            Err(LedgerError::Exhausted { .. }) => {}
            Err(e) => panic!("unexpected ledger error: {e}"),
        }
    }
    assert_eq!(passed, 3);
    let status = ledger.status("p", "d").await.expect("status");
    assert_eq!(status.spent_nano_rho, 900_000_000);
    // Two jobs racing for the last 0.1: one wins.
    let (last_a, last_b) = (charge("last-a", 100_000_000), charge("last-b", 100_000_000));
    let (a, b) = tokio::join!(ledger.charge(&last_a), ledger.charge(&last_b));
    assert!(
        a.is_ok() ^ b.is_ok(),
        "exactly one of two racing jobs may take the last of the budget"
    );
    // Charges are durable: a fresh connection sees them.
    let reopened = PrivacyLedger::new(
        strongroom::room::db::open(&strongroom::room::db::Location::Sqlite(
            dir.path().join("ledger.db"),
        ))
        .await
        .expect("db"),
    );
    assert_eq!(
        reopened
            .status("p", "d")
            .await
            .expect("status")
            .spent_nano_rho,
        NANO
    );
    let winner = if a.is_ok() { "last-a" } else { "last-b" };
    assert!(matches!(
        reopened.charge(&charge(winner, 0)).await,
        Err(LedgerError::DuplicateJob(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_result_is_close_to_the_truth_and_its_receipt_verifies() {
    let (dir, room) = room_with(&policy("10", "automatic")).await;
    let data = small_bank(600);
    let module = example("spend-by-category");
    let result = run_job(&room, sandbox(), request(&module, &data, 2 * NANO))
        .await
        .expect("job");
    assert_eq!(
        (result.outcome.as_str(), &result.status),
        ("completed", &JobStatus::Released)
    );
    let released = result.released.expect("released");
    let purchases = &released.metrics[1];
    assert!(!purchases.groups.is_empty());
    // Exact purchases per group from a plain run, compared with the noisy release.
    let exact = run(&prepare(&module), &data, RunLimits::default())
        .aggregate
        .expect("aggregate");
    let labels = domain_labels(&prepare(&module).module.manifest, &data);
    for g in &purchases.groups {
        let key: Vec<u32> = g
            .labels
            .iter()
            .zip(&labels[1])
            .map(|(l, d)| d.iter().position(|x| x == l).expect("label") as u32)
            .collect();
        let truth = exact.metrics[1]
            .rows
            .iter()
            .find(|r| r.key == key)
            .map_or(0, |r| r.contributions) as f64;
        assert!(
            (g.value - truth).abs() <= 8.0 * purchases.value_noise_std + 1.0,
            "{:?}: {} vs {truth}",
            g.labels,
            g.value
        );
    }
    // The receipt verifies against the room's published key, and a changed byte breaks it.
    let vkey = std::fs::read_to_string(dir.path().join("room/keys/room.vkey")).expect("vkey");
    let verifier = strongroom_verify::note::Verifier::parse(&vkey).expect("verifier");
    let receipt = Receipt::verify(&result.receipt, &verifier).expect("valid receipt");
    assert_eq!(receipt.outcome, "completed");
    assert_eq!(receipt.cost_rho, "2");
    let json = serde_json::to_string(&released).expect("json");
    assert_eq!(
        receipt.result_sha256,
        hex::encode(ring::digest::digest(&ring::digest::SHA256, json.as_bytes()).as_ref())
    );
    let forged = result.receipt.replace("cost rho 2", "cost rho 0");
    assert!(
        Receipt::verify(&forged, &verifier).is_err(),
        "a changed receipt must not verify"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_results_wait_for_the_bank() {
    let (_dir, room) = room_with(&policy("5", "held")).await;
    let data = small_bank(300);
    let module = example("spend-by-category");
    let result = run_job(&room, sandbox(), request(&module, &data, NANO))
        .await
        .expect("job");
    assert_eq!(result.status, JobStatus::Held);
    assert!(result.released.is_none(), "a held result is not handed out");
    let released = decide_held(&room, &result.job_id, true, "bank", "")
        .await
        .expect("release")
        .expect("table");
    assert_eq!(released.metrics.len(), 3);
    assert!(
        decide_held(&room, &result.job_id, true, "bank", "")
            .await
            .is_err(),
        "a result is released once"
    );
    let second = run_job(&room, sandbox(), request(&module, &data, NANO))
        .await
        .expect("job");
    assert!(
        decide_held(&room, &second.job_id, false, "bank", "")
            .await
            .expect("withhold")
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_limits_are_enforced_before_any_charge() {
    let strict = Policy::parse(
        "partner = \"socialco\"\ndataset = \"bank\"\nbudget_rho = \"1\"\nresult_delay_seconds = 0\nmax_groups_per_entity = 4\n",
    )
    .expect("policy");
    let (_dir, room) = room_with(&strict).await;
    let data = small_bank(20);
    let module = example("spend-by-category");
    match run_job(&room, sandbox(), request(&module, &data, NANO / 10)).await {
        Err(JobError::Refused(why)) => assert!(why.to_string().contains("at most 4"), "{why}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let table_module = example("column-sum");
    match run_job(&room, sandbox(), request(&table_module, &data, NANO / 10)).await {
        Err(JobError::Refused(why)) => assert!(why.to_string().contains("table mode"), "{why}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    match run_job(&room, sandbox(), request(&module, &data, 0)).await {
        Err(JobError::Refused(_)) => {}
        other => panic!("a zero cost must be refused under a noisy policy, got {other:?}"),
    }
    assert_eq!(
        room.ledger()
            .status("socialco", "bank")
            .await
            .expect("status")
            .spent_nano_rho,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_grant_refuses_jobs_before_any_charge() {
    let expired = Policy::parse(
        "partner = \"socialco\"\ndataset = \"bank\"\nbudget_rho = \"1\"\nresult_delay_seconds = 0\nexpires = \"2020-01-01T00:00:00Z\"\n",
    )
    .expect("policy");
    let (_dir, room) = room_with(&expired).await;
    let data = small_bank(20);
    let module = example("spend-by-category");
    match run_job(&room, sandbox(), request(&module, &data, NANO / 10)).await {
        Err(JobError::Refused(why)) => {
            assert!(why.to_string().contains("expired at 2020-01-01"), "{why}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // The bank extends the grant: the same job runs.
    let extended = Policy::parse(
        "partner = \"socialco\"\ndataset = \"bank\"\nbudget_rho = \"1\"\nresult_delay_seconds = 0\nmin_group_size = 5\nexpires = \"2999-01-01T00:00:00Z\"\n",
    )
    .expect("policy");
    room.set_policy(&extended).await.expect("set");
    let result = run_job(&room, sandbox(), request(&module, &data, NANO / 10))
        .await
        .expect("runs");
    assert_eq!(result.outcome, "completed");
    assert_eq!(
        result.charged_nano_rho,
        NANO / 10,
        "charged only once it ran"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_mode_needs_the_banks_approval_by_hash() {
    let both = Policy::parse(
        "partner = \"socialco\"\ndataset = \"bank\"\nbudget_rho = \"5\"\nresult_delay_seconds = 0\nmodes = [\"isolated\", \"table\"]\nmin_group_size = 1\n",
    )
    .expect("policy");
    let (_dir, room) = room_with(&both).await;
    let data = small_bank(100);
    let module = example("column-sum");
    let hash = hex::encode(ring::digest::digest(&ring::digest::SHA256, &module).as_ref());
    match run_job(&room, sandbox(), request(&module, &data, NANO / 10)).await {
        Err(JobError::Refused(why)) => assert!(
            why.to_string().contains("needs the bank's approval"),
            "{why}"
        ),
        other => panic!("an unapproved table-mode module must be refused, got {other:?}"),
    }
    room.decide_module(
        &hash,
        "socialco",
        true,
        "analyst@bank",
        "reviewed the source",
        &ParameterRules::parse_args(&[
            "segment=all,young".to_string(),
            "min_age=18..99".to_string(),
        ])
        .expect("rules"),
    )
    .await
    .expect("approve");
    let result = run_job(&room, sandbox(), request(&module, &data, NANO / 10))
        .await
        .expect("job");
    assert_eq!(result.outcome, "completed");
    // The approval covers the parameters: reviewed values run, anything else is refused before
    // any charge (a benchmark narrowed to one customer by its inputs is not what was approved).
    let with = |params: &[(&str, &str)]| {
        let mut r = request(&module, &data, NANO / 10);
        r.parameters = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        r
    };
    let reviewed = run_job(
        &room,
        sandbox(),
        with(&[("segment", "young"), ("min_age", "30")]),
    )
    .await
    .expect("reviewed parameters run");
    assert_eq!(reviewed.outcome, "completed");
    let spent = room
        .ledger()
        .status("socialco", "bank")
        .await
        .expect("status")
        .spent_nano_rho;
    for bad in [
        vec![("segment", "customer-4711")],
        vec![("min_age", "17")],
        vec![("customer_id", "4711")],
    ] {
        match run_job(&room, sandbox(), with(&bad)).await {
            Err(JobError::Refused(why)) => {
                assert!(
                    why.to_string().contains("not with these parameters"),
                    "{why}"
                )
            }
            other => panic!("parameters {bad:?} were not approved, got {other:?}"),
        }
    }
    assert_eq!(
        room.ledger()
            .status("socialco", "bank")
            .await
            .expect("status")
            .spent_nano_rho,
        spent,
        "refused before any charge"
    );
    // A rejection withdraws the approval.
    room.decide_module(
        &hash,
        "socialco",
        false,
        "ciso@bank",
        "withdrawn",
        &ParameterRules::default(),
    )
    .await
    .expect("reject");
    assert!(matches!(
        run_job(&room, sandbox(), request(&module, &data, NANO / 10)).await,
        Err(JobError::Refused(_))
    ));
    let events: Vec<String> = room
        .audit()
        .entries(0)
        .await
        .expect("entries")
        .into_iter()
        .map(|e| e.entry)
        .collect();
    assert!(
        events
            .iter()
            .any(|e| e.contains("\"event\":\"module.approved\"") && e.contains("analyst@bank"))
    );
    assert!(
        events
            .iter()
            .any(|e| e.contains("\"event\":\"module.rejected\""))
    );
    assert!(
        room.decide_module(
            "not-a-hash",
            "socialco",
            true,
            "x",
            "",
            &ParameterRules::default()
        )
        .await
        .is_err()
    );
}

/// The `mode` the log's `job.started` entries record, in order.
async fn started_modes(room: &strongroom::room::Room) -> Vec<String> {
    room.audit()
        .entries(0)
        .await
        .expect("entries")
        .iter()
        .filter_map(|e| {
            let v: serde_json::Value = serde_json::from_str(&e.entry).ok()?;
            (v["event"] == "job.started").then(|| v["mode"].as_str().unwrap_or("?").to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_runs_batched_only_the_modules_the_bank_approved() {
    let batched = Policy::parse(
        "partner = \"socialco\"\ndataset = \"bank\"\nbudget_rho = \"5\"\nresult_delay_seconds = 0\nbatched = true\nmin_group_size = 1\n",
    )
    .expect("policy");
    assert!(batched.batched);
    let (_dir, room) = room_with(&batched).await;
    let data = small_bank(100);
    let module = example("spend-by-category");
    let hash = hex::encode(ring::digest::digest(&ring::digest::SHA256, &module).as_ref());
    // Not approved: it still runs, one customer per fresh instance.
    let first = run_job(&room, sandbox(), request(&module, &data, NANO / 10))
        .await
        .expect("job");
    assert_eq!(first.outcome, "completed");
    room.decide_module(
        &hash,
        "socialco",
        true,
        "analyst@bank",
        "reviewed: no state between calls",
        &ParameterRules::default(),
    )
    .await
    .expect("approve");
    let second = run_job(&room, sandbox(), request(&module, &data, NANO / 10))
        .await
        .expect("job");
    assert_eq!(second.outcome, "completed");
    assert_eq!(started_modes(&room).await, ["isolated", "batched"]);
}

/// Exact values of query 1's aggregate, by metric and labels, as released numbers are stated.
fn exact_values(
    manifest: &strongroom_contract::manifest::Manifest,
    aggregate: &strongroom::output_gate::Aggregate,
    labels: &[Vec<Vec<String>>],
) -> Vec<std::collections::HashMap<Vec<String>, f64>> {
    use strongroom_contract::manifest::MetricKind;
    manifest
        .metrics
        .iter()
        .zip(&aggregate.metrics)
        .zip(labels)
        .map(|((m, result), domains)| {
            let scale = 10f64.powi(i32::from(m.decimals));
            result
                .rows
                .iter()
                .map(|row| {
                    let key = row
                        .key
                        .iter()
                        .zip(domains)
                        .map(|(&k, d)| d[k as usize].clone())
                        .collect();
                    let value = match m.kind {
                        MetricKind::Sum => row.sum_fixed as f64 / scale,
                        MetricKind::Count => row.contributions as f64,
                        MetricKind::Distinct => row.entities as f64,
                        MetricKind::Mean => {
                            row.sum_fixed as f64 / scale / row.contributions.max(1) as f64
                        }
                    };
                    (key, value)
                })
                .collect()
        })
        .collect()
}

#[test]
fn released_intervals_hold_the_exact_values_and_releases_fall_where_the_forecast_said() {
    use strongroom::output_gate::forecast::forecast;
    let data = small_bank(1_500);
    let module = prepare(&example("spend-by-category"));
    let report = run(&module, &data, RunLimits::default());
    let aggregate = report.aggregate.expect("aggregate");
    let manifest = &module.module.manifest;
    let labels = domain_labels(manifest, &data);
    let counts: Vec<u64> = labels
        .iter()
        .map(|d| d.iter().map(|p| p.len() as u64).product())
        .collect();
    let exact = exact_values(manifest, &aggregate, &labels);
    for mechanism in [Mechanism::Gaussian, Mechanism::Laplace] {
        // A cost that leaves the noise comparable to the values, so intervals are not trivial.
        let plan = mechanism::plan(manifest, mechanism, NANO / 2, 32, &counts).expect("plan");
        let predicted = forecast(
            manifest,
            &aggregate,
            &labels,
            &plan,
            1,
            200,
            SeededBytes::new(11),
        )
        .expect("forecast");
        // Per metric: (releases holding the exact value, inside the forecast's 95% range, all).
        let mut tally = vec![(0u32, 0u32, 0u32); manifest.metrics.len()];
        for trial in 0..40 {
            let released = release(
                manifest,
                &aggregate,
                &labels,
                &plan,
                1,
                SeededBytes::new(1_000 + trial),
            )
            .expect("release");
            assert_eq!(released.confidence, 0.95);
            for (m, metric) in released.metrics.iter().enumerate() {
                let manifest_metric = &manifest.metrics[m];
                for group in &metric.groups {
                    let Some(&truth) = exact[m].get(&group.labels) else {
                        continue;
                    };
                    assert!(group.low <= group.value && group.value <= group.high);
                    if manifest_metric.kind != strongroom_contract::manifest::MetricKind::Sum {
                        assert!(group.value >= manifest_metric.lower.min(0.0));
                    }
                    let range = predicted[m]
                        .groups
                        .iter()
                        .find(|g| g.labels == group.labels)
                        .and_then(|g| g.range_95)
                        .expect("the forecast released this group");
                    let t = &mut tally[m];
                    t.0 += u32::from(group.low <= truth && truth <= group.high);
                    t.1 += u32::from(range[0] <= group.value && group.value <= range[1]);
                    t.2 += 1;
                }
            }
        }
        for (m, &(held, in_range, all)) in tally.iter().enumerate() {
            let name = &manifest.metrics[m].name;
            assert!(all > 1_000, "{mechanism:?} {name}: {all} releases");
            let held = f64::from(held) / f64::from(all);
            let in_range = f64::from(in_range) / f64::from(all);
            // 95% by construction (more for a mean, whose interval is conservative, and where
            // post-processing piles values on a bound); a standard error of about 0.6 points.
            assert!(held >= 0.93, "{mechanism:?} {name}: intervals held {held}");
            if manifest.metrics[m].kind != strongroom_contract::manifest::MetricKind::Mean {
                assert!(
                    held <= 0.97,
                    "{mechanism:?} {name}: intervals too wide ({held})"
                );
            }
            // The forecast's ranges are percentiles of 200 simulated releases.
            assert!(
                in_range >= 0.89,
                "{mechanism:?} {name}: {in_range} inside the forecast"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rooms_released_intervals_hold_the_exact_values_at_the_stated_rate() {
    // Repeated room runs (budget charged, gate applied, receipts signed) of query 2: every
    // released number's interval, against the exact aggregate of the same data.
    let (_dir, room) = room_with(&policy("10", "automatic")).await;
    let data = small_bank(1_200);
    let module = example("fraud-alerts-by-region");
    let prepared = prepare(&module);
    let manifest = &prepared.module.manifest;
    let exact = run(&prepared, &data, RunLimits::default())
        .aggregate
        .expect("aggregate");
    let labels = domain_labels(manifest, &data);
    let truth = exact_values(manifest, &exact, &labels);
    let (mut held, mut all) = (0u32, 0u32);
    for _ in 0..25 {
        let result = run_job(&room, sandbox(), request(&module, &data, NANO / 4))
            .await
            .expect("job");
        let released = result.released.expect("released");
        assert_eq!(released.confidence, 0.95);
        for (m, metric) in released.metrics.iter().enumerate() {
            for g in &metric.groups {
                let exact = truth[m][&g.labels];
                held += u32::from(g.low <= exact && exact <= g.high);
                all += 1;
            }
        }
    }
    assert!(all >= 150, "{all} released numbers");
    let rate = f64::from(held) / f64::from(all);
    // At least 95% by construction; over 200 numbers, 88% is four standard errors below.
    assert!(rate >= 0.88, "intervals held {rate} of the time");
}
