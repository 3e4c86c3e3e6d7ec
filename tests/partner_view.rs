//! The one partner view, as a property: for neighbouring datasets (one customer changed), with a
//! hostile module attacking each channel around the noised release (outcome codes, log shape
//! and hashes, guest output, failures of every kind, timing), everything the partner can observe
//! is identical except for the noised numbers. Also the attacks that need their own shape: the
//! log's leaf hashes (recovering printed text from an inclusion proof), the entity-ordinal
//! shuffle (replayed from the guest's random stream), free probes (costs), audience lists counted
//! in entities, a fresh budget from re-sealing (privacy domains), and SQL queries that single out
//! one customer.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use strongroom::dataset::{ColumnData, Dataset};
use strongroom::guest_boundary::RunLimits;
use strongroom::output_gate::ledger::LedgerError;
use strongroom::output_gate::mechanism::NANO;
use strongroom::room::Room;
use strongroom::room::jobs::{JobError, JobRequest, run_job};
use strongroom::room::partner_view;
use strongroom::room::policy::Policy;
use strongroom_contract::manifest::Mode;
use strongroom_synthetic as synthetic;
use strongroom_tests::{example, hostile, prepare, room_with, run_in, sandbox};
use strongroom_verify::merkle::leaf_hash;

/// The balance the probe module looks for (see tests/guests/partner-view-probe).
const TARGET: f64 = 123_456.78;
/// Seconds from a job's start to its release in these tests.
const DELAY: u64 = 2;

/// A small bank, and the same bank with one customer's balance changed to the probe's target.
fn neighbours() -> (Arc<Dataset>, Arc<Dataset>) {
    let without = synthetic::generate(120, 3.0, 42).dataset();
    let mut with = without.clone();
    let table = with
        .tables
        .iter_mut()
        .find(|t| t.name == "customers")
        .expect("customers");
    let table = Arc::make_mut(table);
    let column = table
        .guest_columns
        .iter_mut()
        .find(|c| c.name == "avg_monthly_balance")
        .expect("balance");
    match &mut column.data {
        ColumnData::Float(v) => v[17] = TARGET,
        other => panic!("balance is not a float column: {other:?}"),
    }
    (Arc::new(without), Arc::new(with))
}

fn probe_policy() -> Policy {
    let engine = example("sql-engine");
    let engine = hex::encode(ring::digest::digest(&ring::digest::SHA256, &engine).as_ref());
    Policy::parse(&format!(
        "partner = \"socialco\"\ndataset = \"bank\"\nbudget_rho = \"10\"\nmin_group_size = 20\n\
         result_delay_seconds = {DELAY}\n\n[sql]\nengine_sha256 = \"{engine}\"\n"
    ))
    .expect("policy")
}

/// What the partner observes of one job, as the service would hand it out: the job view, its
/// budget, the log's checkpoint size and the inclusion proofs of its own entries.
async fn observe(room: &Room, job_id: &str) -> Value {
    let view = partner_view::job(room, "socialco", job_id)
        .await
        .expect("view")
        .expect("the partner's job");
    let budget = room
        .ledger()
        .status("socialco", "bank")
        .await
        .expect("budget");
    let size = room.audit().size().await.expect("size");
    let mine: Vec<u64> = room
        .audit()
        .entries(0)
        .await
        .expect("entries")
        .into_iter()
        .filter(|e| partner_view::entry_is_partners(&e.entry, "socialco"))
        .map(|e| e.index)
        .collect();
    json!({
        "job": serde_json::to_value(&view).expect("json"),
        "budget": { "spent": budget.spent_nano_rho, "total": budget.total_nano_rho, "jobs": budget.jobs },
        "log_size": size,
        "own_entries": mine,
    })
}

/// Masks what is noised or random by design (noised numbers, hashes of them, salts, signatures,
/// the wall-clock time), keeping everything else: codes, states, statuses, group labels, costs,
/// log positions and sizes.
fn mask(v: &mut Value) {
    let job = &mut v["job"];
    if let Some(result) = job.get_mut("result") {
        mask_numbers(result);
    }
    job["result_json"] = json!(job["result_json"].is_string());
    job["release_at"] = json!(job["release_at"].is_string());
    if let Some(receipt) = job["receipt"].as_str() {
        let mut kept = Vec::new();
        for line in receipt.lines() {
            if line.is_empty() {
                break; // the signature follows
            }
            let key = line.split(' ').take(2).collect::<Vec<_>>().join(" ");
            let kept_line = match key.as_str() {
                k if k.starts_with("result ") => "result <noised>".to_string(),
                k if k.starts_with("time ") => "time <release time>".to_string(),
                "log root" | "log proof" => format!("{key} <salted hashes>"),
                "log entry" => {
                    let mut entry: Value =
                        serde_json::from_str(&line["log entry ".len()..]).expect("entry");
                    for k in ["salt", "time", "result_sha256"] {
                        entry[k] = json!("<masked>");
                    }
                    format!("log entry {entry}")
                }
                _ => line.to_string(),
            };
            kept.push(kept_line);
        }
        job["receipt"] = json!(kept);
    }
}

fn mask_numbers(v: &mut Value) {
    match v {
        Value::Number(_) => *v = json!("<noised>"),
        Value::Array(items) => items.iter_mut().for_each(mask_numbers),
        Value::Object(map) => map.values_mut().for_each(mask_numbers),
        _ => {}
    }
}

async fn probe(channel: &str, data: &Arc<Dataset>, module: &[u8]) -> Value {
    probe_job(channel, data, module, None).await
}

/// [`probe`] for a module, or for a SQL query run by the SQL engine (`module`).
async fn probe_job(channel: &str, data: &Arc<Dataset>, module: &[u8], sql: Option<&str>) -> Value {
    let (_dir, room) = room_with(&probe_policy()).await;
    let job_id = format!("job-probe-{channel}");
    // The job as the service queues it.
    sqlx::query(
        "INSERT INTO job_queue (job_id, partner, dataset, module_sha256, cost, audience, parameters, state, submitted_at) \
         VALUES (?, 'socialco', 'bank', 'm', '0.5', NULL, ?, 'running', '2026-12-01T00:00:00Z')",
    )
    .bind(&job_id)
    .bind(json!([["channel", channel]]).to_string())
    .execute(&strongroom_tests::sqlite_pool(&room).await)
    .await
    .expect("queue row");
    let request = JobRequest {
        partner: "socialco",
        module,
        sql: sql.map(String::from),
        dataset: Arc::clone(data).into(),
        dataset_sha256: "00".repeat(32),
        dataset_origin: "neighbouring test bank".into(),
        sealed_by: "bigbank".into(),
        cost_nano: NANO / 2,
        threads: 2,
        audience: None,
        job_id: Some(job_id.clone()),
        parameters: match sql {
            None => vec![("channel".into(), channel.into())],
            Some(_) => Vec::new(),
        },
        progress: None,
    };
    let running = run_job(&room, sandbox(), request);
    tokio::pin!(running);
    // Before the release time the partner sees a running job and nothing else.
    let early = tokio::select! {
        r = &mut running => panic!("the job returned before its release time: {:?}", r.map(|r| r.outcome)),
        _ = tokio::time::sleep(Duration::from_millis(500)) => observe(&room, &job_id).await,
    };
    assert_eq!(early["job"]["state"], "running", "{channel}: {early}");
    assert!(early["job"]["outcome"].is_null() && early["job"]["receipt"].is_null());
    let result = running.await.expect("job runs");
    let finished = time::OffsetDateTime::now_utc();
    sqlx::query("UPDATE job_queue SET state = 'finished' WHERE job_id = ?")
        .bind(&job_id)
        .execute(&strongroom_tests::sqlite_pool(&room).await)
        .await
        .expect("finish");
    // The release time is the start plus the policy's delay: nothing the data can move.
    let release = time::OffsetDateTime::parse(
        &result.release_at,
        &time::format_description::well_known::Rfc3339,
    )
    .expect("release time");
    let charged = room
        .audit()
        .entries(0)
        .await
        .expect("entries")
        .into_iter()
        .find(|e| e.entry.contains("\"event\":\"budget.charged\""))
        .expect("budget.charged");
    let charged: Value = serde_json::from_str(&charged.entry).expect("entry");
    let charged = time::OffsetDateTime::parse(
        charged["time"].as_str().expect("time"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("time");
    let after = release - charged;
    // The release time is fixed when the job is admitted, just before its charge commits: the
    // charge can come later (a busy machine, a queue for the database), never earlier.
    assert!(
        after >= time::Duration::seconds(DELAY as i64 - 5)
            && after <= time::Duration::seconds(DELAY as i64 + 1),
        "{channel}: released {after} after the charge"
    );
    assert!(
        finished >= release,
        "{channel}: visible before its release time"
    );
    let mut seen = observe(&room, &job_id).await;
    assert_eq!(seen["job"]["state"], "finished", "{channel}: {seen}");
    mask(&mut seen);
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_partner_view_is_the_same_for_neighbouring_datasets_under_every_probe() {
    let (without, with) = neighbours();
    let module = hostile("partner-view-probe");
    let channels = [
        "none",
        "trap",
        "error",
        "memory",
        "fuel",
        "stack",
        "output",
        "contributions",
        "key",
        "print",
        "slow",
    ];
    let runs = channels.iter().map(|&channel| {
        let (without, with, module) = (Arc::clone(&without), Arc::clone(&with), module.clone());
        async move {
            let a = probe(channel, &without, &module).await;
            let b = probe(channel, &with, &module).await;
            (channel, a, b)
        }
    });
    for (channel, a, b) in futures_util::future::join_all(runs).await {
        assert_eq!(
            a, b,
            "channel '{channel}': the partner view differs between neighbouring datasets"
        );
        assert_eq!(a["job"]["outcome"], "completed", "{channel}");
        assert_eq!(a["job"]["status"], "released", "{channel}");
    }
}

/// SQL queries that single out the neighbour (the one customer whose balance is the target):
/// failing on it, grouping by it, dividing by its difference. A query is no stronger than a
/// module: the partner view is the same for both datasets. (Every group is either all the
/// customers or at most the one, so which groups pass the noisy threshold does not depend on
/// the noise's luck.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sql_queries_that_single_out_a_customer_see_the_same_partner_view() {
    let (without, with) = neighbours();
    let engine = example("sql-engine");
    let queries = [
        (
            "sql-overflow",
            "SELECT WITH DIFFERENTIAL_PRIVACY
               SUM(CASE WHEN avg_monthly_balance = 123456.78 THEN 9223372036854775807 + 1 ELSE 1 END,
                   contribution_bounds_per_group => (0, 1)) AS n
             FROM customers",
        ),
        (
            "sql-key",
            "SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = 1)
               avg_monthly_balance = 123456.78 AS is_target,
               COUNT(DISTINCT customer_id) AS customers
             FROM customers GROUP BY is_target",
        ),
        (
            "sql-divide",
            "WITH probe AS (SELECT 1 / (avg_monthly_balance - 123456.78) AS x FROM customers)
             SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = 1)
               CASE WHEN x IS NULL THEN 'target' ELSE 'others' END AS who,
               COUNT(*, contribution_bounds_per_group => (0, 1)) AS n
             FROM probe GROUP BY who",
        ),
    ];
    let runs = queries.iter().map(|&(channel, sql)| {
        let (without, with, engine) = (Arc::clone(&without), Arc::clone(&with), engine.clone());
        async move {
            let a = probe_job(channel, &without, &engine, Some(sql)).await;
            let b = probe_job(channel, &with, &engine, Some(sql)).await;
            (channel, a, b)
        }
    });
    for (channel, a, b) in futures_util::future::join_all(runs).await {
        assert_eq!(
            a, b,
            "'{channel}': the partner view differs between neighbouring datasets"
        );
        assert_eq!(a["job"]["outcome"], "completed", "{channel}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn printed_text_cannot_be_recovered_from_the_leaf_hashes_a_partner_gets() {
    let (_without, with) = neighbours();
    let (dir, room) = room_with(
        &Policy::parse(
            "partner = \"socialco\"\ndataset = \"bank\"\nbudget_rho = \"10\"\nmin_group_size = 20\nresult_delay_seconds = 0\n",
        )
        .expect("policy"),
    )
    .await;
    let module = hostile("partner-view-probe");
    let request = JobRequest {
        partner: "socialco",
        module: &module,
        sql: None,
        dataset: Arc::clone(&with).into(),
        dataset_sha256: "00".repeat(32),
        dataset_origin: "test bank".into(),
        sealed_by: "bigbank".into(),
        cost_nano: NANO / 2,
        threads: 2,
        audience: None,
        job_id: None,
        parameters: vec![("channel".into(), "print".into())],
        progress: None,
    };
    let result = run_job(&room, sandbox(), request).await.expect("job");
    let entries = room.audit().entries(0).await.expect("entries");
    // The bank keeps what the module printed, outside the log.
    let (salt, text): (String, String) =
        sqlx::query_as("SELECT salt, text FROM job_diagnostics WHERE job_id = ?")
            .bind(&result.job_id)
            .fetch_one(&strongroom_tests::sqlite_pool(&room).await)
            .await
            .expect("diagnostics");
    assert!(text.contains("balance 123456.78"), "{text}");
    let finished = entries
        .iter()
        .find(|e| e.entry.contains("\"event\":\"job.finished\""))
        .expect("job.finished");
    assert!(
        !finished.entry.contains("123456"),
        "no guest text in a leaf"
    );
    let commitment =
        strongroom::room::jobs::diagnostics_commitment(&hex::decode(&salt).expect("salt"), &text);
    assert!(
        finished.entry.contains(&commitment),
        "the leaf commits to the text"
    );
    // The partner's receipt proves its own entry; the proof's hashes include the job.finished
    // leaf right before it. An attacker who knows every field but the printed text tries every
    // candidate balance: with salted entries, no candidate leaf appears in the proof.
    let vkey = std::fs::read_to_string(dir.path().join("room/keys/room.vkey")).expect("vkey");
    let verifier = strongroom_verify::note::Verifier::parse(&vkey).expect("verifier");
    let receipt =
        strongroom_verify::receipt::Receipt::verify(&result.receipt, &verifier).expect("receipt");
    let proof: Vec<[u8; 32]> = receipt.log.expect("log position").proof;
    assert!(
        proof.contains(&leaf_hash(finished.entry.as_bytes())),
        "the sibling leaf is in the partner's proof (so a guessable leaf would be found)"
    );
    let mut guessed: Value = serde_json::from_str(&finished.entry).expect("entry");
    let mut found = false;
    for candidate in ["123456.78", "123456.79", "1000", "0"] {
        let text = json!({ "guest_stdout": format!("balance {candidate}\n"), "guest_stderr": "", "trap_or_error": null }).to_string();
        for salt in [String::new(), "00".repeat(16)] {
            guessed["diagnostics_sha256"] = json!(strongroom::room::jobs::diagnostics_commitment(
                &hex::decode(&salt).expect("hex"),
                &text
            ));
            guessed["salt"] = json!(salt);
            let leaf = leaf_hash(
                strongroom_verify::canonical::canonical(&guessed)
                    .expect("canonical")
                    .as_bytes(),
            );
            found |= proof.contains(&leaf);
        }
    }
    assert!(
        !found,
        "a guessed entry matched a leaf in the partner's proof"
    );
}

#[test]
fn entity_ordinals_cannot_be_replayed_from_the_guest_random_stream() {
    let data = Arc::new(synthetic::generate(400, 2.0, 7).dataset());
    let module = prepare(&hostile("ordinal-replay"));
    let report = run_in(&module, &data, RunLimits::default(), Mode::Table, 1);
    assert_eq!(report.outcome.code(), "completed", "{:?}", report.detail);
    let aggregate = report.aggregate.expect("aggregate");
    let count = |key: u32| {
        aggregate.metrics[0]
            .rows
            .iter()
            .find(|r| r.key == vec![key])
            .map_or(0, |r| r.entities)
    };
    let (replayed, missed) = (count(0), count(1));
    assert_eq!(replayed + missed, 400);
    // A random permutation has about one fixed point; a replayed shuffle would predict all 400.
    assert!(
        replayed <= 8,
        "the guest replayed {replayed} of 400 ordinals from its random stream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_are_never_free_and_unnoised_release_needs_the_banks_opt_in() {
    let (without, _) = neighbours();
    let module = hostile("partner-view-probe");
    let (_dir, room) = room_with(
        &Policy::parse(
            "partner = \"socialco\"\ndataset = \"bank\"\nbudget_rho = \"1.5\"\nresult_delay_seconds = 0\nmax_jobs_per_day = 3\n",
        )
        .expect("policy"),
    )
    .await;
    let request = |cost: u64| JobRequest {
        partner: "socialco",
        module: &module,
        sql: None,
        dataset: Arc::clone(&without).into(),
        dataset_sha256: "00".repeat(32),
        dataset_origin: "test bank".into(),
        sealed_by: "bigbank".into(),
        cost_nano: cost,
        threads: 2,
        audience: None,
        job_id: None,
        parameters: Vec::new(),
        progress: None,
    };
    // 1e-9 rho was a valid cost: ten probes for nothing. The default minimum is 1% of the budget.
    match run_job(&room, sandbox(), request(1)).await {
        Err(JobError::Refused(why)) => {
            assert!(why.to_string().contains("at least rho 0.015"), "{why}")
        }
        other => panic!(
            "a near-free probe must be refused, got {:?}",
            other.map(|r| r.outcome)
        ),
    }
    for _ in 0..3 {
        run_job(&room, sandbox(), request(15_000_000))
            .await
            .expect("a job at the minimum cost runs");
    }
    match run_job(&room, sandbox(), request(15_000_000)).await {
        Err(JobError::Budget(LedgerError::TooManyJobs { cap: 3 })) => {}
        other => panic!(
            "the daily cap must hold, got {:?}",
            other.map(|r| r.outcome)
        ),
    }
    assert!(
        Policy::parse("partner = \"a\"\ndataset = \"b\"\nbudget_rho = 1\nmechanism = \"none\"\n")
            .is_err(),
        "unnoised release needs allow_unnoised = true"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_sealing_the_same_customers_under_another_name_shares_the_budget() {
    let (without, _) = neighbours();
    let mut renamed = (*without).clone();
    renamed.name = "bank-copy".into();
    let renamed = Arc::new(renamed);
    let module = hostile("partner-view-probe");
    let policy = |dataset: &str| {
        Policy::parse(&format!(
            "partner = \"socialco\"\ndataset = \"{dataset}\"\nbudget_rho = \"1.0\"\nresult_delay_seconds = 0\n"
        ))
        .expect("policy")
    };
    let (_dir, room) = room_with(&policy("bank")).await;
    room.set_policy(&policy("bank-copy"))
        .await
        .expect("second policy");
    let request = |data: &Arc<Dataset>| JobRequest {
        partner: "socialco",
        module: &module,
        sql: None,
        dataset: Arc::clone(data).into(),
        dataset_sha256: "00".repeat(32),
        dataset_origin: "test bank".into(),
        sealed_by: "bigbank".into(),
        cost_nano: 600_000_000,
        threads: 2,
        audience: None,
        job_id: None,
        parameters: Vec::new(),
        progress: None,
    };
    run_job(&room, sandbox(), request(&without))
        .await
        .expect("first job");
    // Same bank, same people, another name: the same privacy domain, the same budget.
    match run_job(&room, sandbox(), request(&renamed)).await {
        Err(JobError::Budget(LedgerError::Exhausted { remaining, .. })) => {
            assert_eq!(remaining, 400_000_000)
        }
        other => panic!(
            "a re-sealed copy must not bring a fresh budget, got {:?}",
            other.map(|r| r.outcome)
        ),
    }
    let budgets = room.ledger().all().await.expect("budgets");
    assert!(
        budgets
            .iter()
            .all(|b| b.domain == "bigbank" && b.spent_nano_rho == 600_000_000)
    );
}
