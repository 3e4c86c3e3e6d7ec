//! The room as a service, through its real router: every route against every kind of caller
//! (the authorization matrix of docs/api.md), the OpenAPI document against the routes, the
//! bank-and-partner story over HTTP, and the job queue across a crash.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::StatusCode;
use serde_json::{Value, json};
use strongroom::keys::OperatorSecret;
use strongroom::room::Room;
use strongroom_server::auth::{self, Role};
use strongroom_server::routes::ROUTES;
use strongroom_server::{ServiceConfig, router, start};
use strongroom_tests::http::{Served, call, get, json_body, sealed_bank, served};
use strongroom_tests::{example, repo_root};

/// The served room of these tests. The authorization matrix sends many bad tokens from one
/// (in-process) source, so no per-source limit here; tests/hostile_input.rs covers it.
async fn service() -> Served {
    served(ServiceConfig {
        failures_per_source: 1e9,
        ..ServiceConfig::default()
    })
    .await
}

fn concrete(path: &str) -> String {
    path.replace("{name}", "bank")
        .replace("{sha256}", &"ab".repeat(32))
        .replace("{id}", "job-0-none")
}

#[test]
fn the_openapi_document_in_the_repository_is_the_one_generated() {
    let path = repo_root().join("server/openapi.json");
    let generated = strongroom_server::openapi::document();
    if std::env::var_os("STRONGROOM_BLESS").is_some() {
        std::fs::write(&path, generated).expect("write server/openapi.json");
    }
    let kept = std::fs::read_to_string(&path).expect("server/openapi.json");
    assert!(
        kept == generated,
        "server/openapi.json is not the document the server generates; if the change is meant, \
         rewrite it with `STRONGROOM_BLESS=1 cargo test -p strongroom-tests --test all -- openapi`"
    );
}

#[test]
fn every_route_is_in_the_openapi_document_and_nothing_else() {
    let doc: Value = serde_json::from_str(strongroom_server::openapi::document()).expect("json");
    let mut documented = BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().expect("paths") {
        for (method, op) in ops.as_object().expect("ops") {
            let m = method.to_uppercase();
            let route = ROUTES
                .iter()
                .find(|r| r.method == m && r.path == path)
                .unwrap_or_else(|| panic!("{m} {path} is documented but not served"));
            // The roles the document states are the roles the server enforces.
            let roles: Vec<&str> = route.roles.iter().map(|r| r.as_str()).collect();
            let stated = op["description"].as_str().expect("description");
            let expected = if roles.is_empty() {
                "Roles: public (no token)".to_string()
            } else {
                format!("Roles: {}", roles.join(", "))
            };
            assert!(stated.ends_with(&expected), "{m} {path}: {stated}");
            // A route with roles needs the bearer token; a public one none.
            let security = op["security"].as_array().expect("security");
            assert_eq!(security.is_empty(), roles.is_empty(), "{m} {path}");
            // Every answer, success or problem, has a schema.
            for (status, answer) in op["responses"].as_object().expect("responses") {
                let content = answer["content"].as_object().expect("content");
                assert!(
                    content.values().all(|c| c.get("schema").is_some()),
                    "{m} {path} {status} has no schema"
                );
            }
            documented.insert((m, path.clone()));
        }
    }
    let served: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    assert_eq!(documented, served);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_matrix_every_route_times_every_caller() {
    let s = service().await;
    let callers: Vec<(&str, Option<&str>, Option<Role>)> = vec![
        ("no token", None, None),
        (
            "wrong token",
            Some("sr_0123456789abcdef_notarealsecret"),
            None,
        ),
        ("garbage", Some("Bearer-ish nonsense"), None),
        ("revoked", Some(s.revoked.as_str()), None),
        ("bank", Some(s.bank.as_str()), Some(Role::Bank)),
        ("partner", Some(s.partner.as_str()), Some(Role::Partner)),
        ("auditor", Some(s.auditor.as_str()), Some(Role::Auditor)),
    ];
    let mut checked = 0;
    for route in ROUTES {
        for (who, token, role) in &callers {
            let (status, ctype, body) = call(
                &s.app,
                route.method,
                &concrete(route.path),
                *token,
                Body::from("{}"),
            )
            .await;
            let what = format!("{} {} as {who}", route.method, route.path);
            if route.roles.is_empty() {
                assert!(status.is_success(), "{what}: public, got {status} {body}");
            } else if role.is_none() {
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
                assert_eq!(ctype, "application/problem+json", "{what}");
                assert_eq!(body["code"], "unauthorized", "{what}");
            } else if !route.roles.contains(&role.expect("role")) {
                assert_eq!(status, StatusCode::FORBIDDEN, "{what}: {body}");
                assert_eq!(body["code"], "forbidden", "{what}");
            } else {
                assert!(
                    status != StatusCode::UNAUTHORIZED
                        && status != StatusCode::FORBIDDEN
                        && !status.is_server_error(),
                    "{what}: allowed, got {status} {body}"
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, ROUTES.len() * callers.len());
    // Refusals are in the audit log for the security team: roles one by one, tokens counted
    // per source in a summary.
    s.state
        .denied
        .flush(&s.state.room, s.state.config.denied_summary_every.as_secs())
        .await;
    let (_, _, entries) = get(&s.app, "/v1/audit/entries?from=0", &s.auditor).await;
    let text = entries.to_string();
    let events: Vec<Value> = entries
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| match &e["entry"] {
            Value::String(t) => serde_json::from_str(t).expect("entry"),
            v => v.clone(),
        })
        .collect();
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "access.denied" && e["reason"] == "role"),
        "{text}"
    );
    assert!(
        events.iter().any(|e| e["event"] == "access.denied_summary"
            && e["refusals"]["revoked_token"].as_u64() > Some(0)),
        "{text}"
    );
    // Pages are what they say: `limit` entries from `from`.
    let (_, _, page) = get(&s.app, "/v1/audit/entries?from=2&limit=3", &s.auditor).await;
    let indexes: Vec<u64> = page
        .as_array()
        .expect("array")
        .iter()
        .map(|e| e["index"].as_u64().expect("index"))
        .collect();
    assert_eq!(indexes, vec![2, 3, 4]);
    // Unknown endpoints and methods are problems too, never a bare 500.
    let (status, ctype, _) = call(&s.app, "GET", "/v1/nothing", None, Body::empty()).await;
    assert_eq!(
        (status, ctype.as_str()),
        (StatusCode::NOT_FOUND, "application/problem+json")
    );
}

async fn wait_for_job(s: &Served, id: &str) -> Value {
    for _ in 0..600 {
        let (status, _, job) = get(&s.app, &format!("/v1/jobs/{id}"), &s.partner).await;
        assert_eq!(status, StatusCode::OK, "{job}");
        if job["state"] != "queued" && job["state"] != "running" {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("job {id} did not finish");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bank_and_partner_story_over_http() {
    let s = service().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let sealed = sealed_bank(tmp.path(), &s.state.room);

    // The bank uploads sealed data; garbage is refused and nothing is kept.
    let (status, _, bad) = call(
        &s.app,
        "PUT",
        "/v1/datasets",
        Some(&s.bank),
        Body::from(vec![7u8; 1000]),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    let (status, _, up) = call(
        &s.app,
        "PUT",
        "/v1/datasets",
        Some(&s.bank),
        Body::from(sealed),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{up}");
    assert_eq!(up["name"], "bank");
    assert_eq!(
        std::fs::read_dir(s.state.room.dir().join("uploads"))
            .expect("uploads")
            .count(),
        0,
        "no partial upload is left behind"
    );

    // Before a policy, the partner cannot see the dataset.
    let (_, _, list) = get(&s.app, "/v1/datasets", &s.partner).await;
    assert_eq!(list, json!([]));
    let policy = "partner = \"socialco\"\ndataset = \"bank\"\nbudget_rho = \"1.0\"\nresult_delay_seconds = 0\nmin_group_size = 20\n";
    let (status, _, set) = call(
        &s.app,
        "PUT",
        "/v1/policies",
        Some(&s.bank),
        Body::from(policy),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{set}");
    let (_, _, list) = get(&s.app, "/v1/datasets", &s.partner).await;
    assert_eq!(list[0]["name"], "bank");
    let (_, _, schema) = get(&s.app, "/v1/datasets/bank", &s.partner).await;
    assert!(
        schema["schema_toml"]
            .as_str()
            .expect("schema")
            .contains("mcc_group")
    );
    let (status, _, _) = get(&s.app, "/v1/datasets/bank", &s.other_partner).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not granted to otherco");

    // The partner uploads a module: vetted at once; a core module where a component belongs is
    // refused with a reason.
    let (status, _, refused) = call(
        &s.app,
        "POST",
        "/v1/modules",
        Some(&s.partner),
        Body::from(&b"\0asm\x01\0\0\0"[..]),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["code"], "module_refused");
    let (status, _, module) = call(
        &s.app,
        "POST",
        "/v1/modules",
        Some(&s.partner),
        Body::from(example("fraud-alerts-by-region")),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{module}");
    let sha = module["module_sha256"].as_str().expect("sha").to_string();

    // Jobs: queued, run by a worker, released with a receipt.
    let submit = json!({ "module_sha256": sha, "dataset": "bank", "cost": "0.25" });
    let (status, _, queued) = call(
        &s.app,
        "POST",
        "/v1/jobs",
        Some(&s.partner),
        json_body(submit.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    let id = queued["job_id"].as_str().expect("id").to_string();
    let job = wait_for_job(&s, &id).await;
    assert_eq!(job["state"], "finished", "{job}");
    assert_eq!(job["status"], "released");
    assert!(job["result"]["metrics"].is_array());
    assert!(job["receipt"].as_str().expect("receipt").contains(&id));
    assert!(
        job.get("bank_detail").is_none(),
        "bank-only detail stays with the bank"
    );

    // Another partner sees neither the job nor the module; cannot run the module as its own.
    let (status, _, _) = get(&s.app, &format!("/v1/jobs/{id}"), &s.other_partner).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, _, theirs) = get(&s.app, "/v1/modules", &s.other_partner).await;
    assert_eq!(theirs, json!([]));
    let (status, _, _) = call(
        &s.app,
        "POST",
        "/v1/jobs",
        Some(&s.other_partner),
        json_body(submit),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, _, budgets) = get(&s.app, "/v1/budgets", &s.partner).await;
    assert_eq!(budgets[0]["spent_rho"], "0.25");
    // A job the budget does not cover is refused before any charge, with a stable code.
    let (_, _, queued) = call(
        &s.app,
        "POST",
        "/v1/jobs",
        Some(&s.partner),
        json_body(json!({ "module_sha256": sha, "dataset": "bank", "cost": "500" })),
    )
    .await;
    let refused = wait_for_job(&s, queued["job_id"].as_str().expect("id")).await;
    assert_eq!(refused["state"], "refused", "{refused}");
    assert_eq!(refused["error_code"], "budget_exhausted", "{refused}");
    let (_, _, budgets) = get(&s.app, "/v1/budgets", &s.partner).await;
    assert_eq!(budgets[0]["spent_rho"], "0.25", "a refusal costs nothing");
    let (_, _, budgets) = get(&s.app, "/v1/budgets", &s.other_partner).await;
    assert_eq!(budgets, json!([]));

    // Malformed input is a 4xx problem, never a 5xx.
    for (path, body) in [
        ("/v1/jobs", "{\"module_sha256\": 5}"),
        ("/v1/jobs", "not json"),
        (
            "/v1/jobs",
            "{\"module_sha256\":\"x\",\"dataset\":\"bank\",\"cost\":\"-1\"}",
        ),
    ] {
        let (status, _, p) = call(&s.app, "POST", path, Some(&s.partner), Body::from(body)).await;
        assert!(status.is_client_error(), "{path} {body}: {status} {p}");
    }
    let (status, _, _) = call(
        &s.app,
        "PUT",
        "/v1/policies",
        Some(&s.bank),
        Body::from("partner = 1"),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // The auditor reads the log and proves an entry's inclusion.
    let (_, _, cp) = get(&s.app, "/v1/audit/checkpoint", &s.auditor).await;
    let size = cp["size"].as_u64().expect("size");
    assert!(size > 5);
    let (status, _, proof) = get(
        &s.app,
        &format!("/v1/audit/proof?index=1&size={size}"),
        &s.auditor,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{proof}");
    assert_eq!(proof["root"], cp["root"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_crash_a_running_job_fails_once_and_queued_jobs_run_exactly_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let room_dir = dir.path().join("room");
    let secret = OperatorSecret::new(b"crash test");
    let room = strongroom_tests::new_room(&room_dir, "crash-room", &secret).await;
    let sealed = sealed_bank(dir.path(), &room);
    let partner = auth::add_party(&room, "socialco", Role::Partner)
        .await
        .expect("partner");
    let bank = auth::add_party(&room, "bigbank", Role::Bank)
        .await
        .expect("bank");
    // First life: data, policy, module, three jobs queued, no workers picking them up yet.
    let config = ServiceConfig {
        workers: 0,
        ..ServiceConfig::default()
    };
    let state = start(
        room,
        ServiceConfig {
            workers: 1,
            ..config.clone()
        },
    )
    .await
    .expect("start");
    state.queue.shutdown(); // the worker stops at once: jobs stay queued
    tokio::time::sleep(Duration::from_millis(700)).await;
    let app = router(Arc::clone(&state));
    call(&app, "PUT", "/v1/datasets", Some(&bank), Body::from(sealed)).await;
    call(
        &app,
        "PUT",
        "/v1/policies",
        Some(&bank),
        Body::from("partner = \"socialco\"\ndataset = \"bank\"\nbudget_rho = \"1.0\"\nresult_delay_seconds = 0\nmin_group_size = 20\n"),
    )
    .await;
    let (_, _, module) = call(
        &app,
        "POST",
        "/v1/modules",
        Some(&partner),
        Body::from(example("fraud-alerts-by-region")),
    )
    .await;
    let sha = module["module_sha256"].as_str().expect("sha").to_string();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (status, _, q) = call(
            &app,
            "POST",
            "/v1/jobs",
            Some(&partner),
            json_body(json!({ "module_sha256": sha, "dataset": "bank", "cost": "0.1" })),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{q}");
        ids.push(q["job_id"].as_str().expect("id").to_string());
    }
    // The crash: the first job was claimed (running) when the process died.
    strongroom_tests::execute(
        &state.room,
        "UPDATE job_queue SET state = 'running' WHERE job_id = ?",
        strongroom::params![ids[0]],
    );
    // The room's own listing shows the jobs that have not ended, with their queue state.
    let listed = strongroom::room::jobs::list_jobs(&state.room, None)
        .await
        .expect("list");
    let states: Vec<(&str, &str)> = ids
        .iter()
        .map(|id| {
            let job = listed.iter().find(|j| &j.job_id == id).expect("listed");
            (job.status.as_str(), job.outcome.as_str())
        })
        .collect();
    assert_eq!(states, [("running", "-"), ("queued", "-"), ("queued", "-")]);
    drop(app);
    drop(state);

    // Second life.
    let room = Room::open(&room_dir, &secret).await.expect("reopen");
    let state = start(
        room,
        ServiceConfig {
            workers: 2,
            ..config
        },
    )
    .await
    .expect("restart");
    let mut states = Vec::new();
    for id in &ids {
        let mut last = Value::Null;
        for _ in 0..600 {
            let row: (String, Option<String>) = state
                .room
                .db()
                .read(|conn| {
                    conn.query_row(
                        "SELECT state, error FROM job_queue WHERE job_id = ?",
                        strongroom::params![id],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .map_err(strongroom::group_commit::WriteError::from)
                })
                .expect("row");
            last = json!(row);
            if row.0 != "queued" && row.0 != "running" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        states.push(last);
    }
    state.queue.shutdown();
    assert_eq!(states[0][0], "failed");
    assert!(
        states[0][1]
            .as_str()
            .expect("error")
            .starts_with("interrupted")
    );
    assert_eq!(states[1][0], "finished", "{states:?}");
    assert_eq!(states[2][0], "finished", "{states:?}");
    // Each queued job ran exactly once: one charge and one result each; the interrupted job
    // never ran again.
    for (i, id) in ids.iter().enumerate() {
        let charges = strongroom_tests::query_i64(
            &state.room,
            "SELECT COUNT(*) FROM charges WHERE job_id = ?",
            strongroom::params![id],
        );
        let results = strongroom_tests::query_i64(
            &state.room,
            "SELECT COUNT(*) FROM jobs WHERE job_id = ?",
            strongroom::params![id],
        );
        let expected = if i == 0 { 0 } else { 1 };
        assert_eq!((charges, results), (expected, expected), "job {i}");
    }
    let log: Vec<String> = state
        .room
        .audit()
        .entries(0)
        .await
        .expect("log")
        .into_iter()
        .map(|e| e.entry)
        .collect();
    assert_eq!(
        log.iter().filter(|e| e.contains("job.interrupted")).count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_results_wait_for_the_bank_and_only_then_reach_the_partner() {
    let s = service().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let sealed = sealed_bank(tmp.path(), &s.state.room);
    call(
        &s.app,
        "PUT",
        "/v1/datasets",
        Some(&s.bank),
        Body::from(sealed),
    )
    .await;
    let policy = "partner = \"socialco\"\ndataset = \"bank\"\nbudget_rho = \"1.0\"\nresult_delay_seconds = 0\nmin_group_size = 20\nrelease = \"held\"\n";
    call(
        &s.app,
        "PUT",
        "/v1/policies",
        Some(&s.bank),
        Body::from(policy),
    )
    .await;
    let (_, _, module) = call(
        &s.app,
        "POST",
        "/v1/modules",
        Some(&s.partner),
        Body::from(example("fraud-alerts-by-region")),
    )
    .await;
    let sha = module["module_sha256"].as_str().expect("sha").to_string();
    let (_, _, queued) = call(
        &s.app,
        "POST",
        "/v1/jobs",
        Some(&s.partner),
        json_body(
            json!({ "module_sha256": sha, "dataset": "bank", "cost": "0.2",
                          "parameters": { "min_alerts": "1" } }),
        ),
    )
    .await;
    let id = queued["job_id"].as_str().expect("id").to_string();
    let job = wait_for_job(&s, &id).await;
    assert_eq!(job["status"], "held", "{job}");
    assert!(
        job["result"].is_null() && job["result_json"].is_null(),
        "a held result stays with the bank: {job}"
    );
    assert_eq!(job["parameters"]["min_alerts"], "1");

    let (_, _, held) = get(&s.app, "/v1/jobs?status=held", &s.bank).await;
    assert_eq!(held.as_array().map(Vec::len), Some(1), "{held}");
    assert_eq!(held[0]["job_id"], id.as_str());
    let (status, _, unknown) = get(&s.app, "/v1/jobs?status=everything", &s.bank).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{unknown}");
    assert_eq!(unknown["code"], "bad_request", "{unknown}");
    let (_, _, seen) = get(&s.app, &format!("/v1/jobs/{id}"), &s.bank).await;
    assert!(
        seen["result"]["metrics"].is_array(),
        "the bank reviews it first"
    );

    // Bad parameters are refused at submission.
    let (status, _, p) = call(
        &s.app,
        "POST",
        "/v1/jobs",
        Some(&s.partner),
        json_body(
            json!({ "module_sha256": sha, "dataset": "bank", "cost": "0.2",
                          "parameters": { "Bad Name": "1" } }),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(p["code"], "invalid_parameters");

    let (status, _, _) = call(
        &s.app,
        "POST",
        &format!("/v1/jobs/{id}/decision"),
        Some(&s.bank),
        json_body(json!({ "release": true })),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let job = wait_for_job(&s, &id).await;
    assert_eq!(job["status"], "released");
    assert!(job["result"]["metrics"].is_array());
    // Deciding twice is a conflict, not a second release.
    let (status, _, p) = call(
        &s.app,
        "POST",
        &format!("/v1/jobs/{id}/decision"),
        Some(&s.bank),
        json_body(json!({ "release": false })),
    )
    .await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::CONFLICT, Some("not_held"))
    );
    let (_, _, held) = get(&s.app, "/v1/jobs?status=held", &s.bank).await;
    assert_eq!(held, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_is_refused_on_sqlite_and_joins_as_a_node_on_postgresql() {
    let s = service().await;
    let again = Room::open(
        &s.dir.path().join("room"),
        &OperatorSecret::new(b"test room"),
    )
    .await
    .expect("the room opens");
    let second = start(again, ServiceConfig::default()).await;
    if s.state.room.db().is_shared() {
        // Several nodes serve a room on PostgreSQL, each under its own id.
        let second = second.expect("a second node joins");
        assert_ne!(second.node, s.state.node);
        second.queue.shutdown();
    } else {
        let refused = second
            .err()
            .expect("one process serves a SQLite room at a time");
        assert!(
            refused.to_string().contains("another strongroom serve"),
            "{refused}"
        );
    }
    s.state.queue.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_sends_sql_over_http_and_the_bank_controls_which() {
    let s = service().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let sealed = sealed_bank(tmp.path(), &s.state.room);
    call(
        &s.app,
        "PUT",
        "/v1/datasets",
        Some(&s.bank),
        Body::from(sealed),
    )
    .await;
    let engine = example("sql-engine");
    let engine_sha = hex::encode(ring::digest::digest(&ring::digest::SHA256, &engine).as_ref());
    let query = "SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = 1)\n  region, COUNT(DISTINCT customer_id) AS customers\nFROM customers WHERE tenure_years >= @years GROUP BY region";
    let submit =
        json!({ "sql": query, "dataset": "bank", "cost": "0.25", "parameters": { "years": "2" } });

    // Without an [sql] section in its policy, the partner may not send SQL.
    let policy = "partner = \"socialco\"\ndataset = \"bank\"\nbudget_rho = \"1.0\"\nresult_delay_seconds = 0\nmin_group_size = 20\n";
    call(
        &s.app,
        "PUT",
        "/v1/policies",
        Some(&s.bank),
        Body::from(policy),
    )
    .await;
    let (status, _, refused) = call(
        &s.app,
        "POST",
        "/v1/jobs",
        Some(&s.partner),
        json_body(submit.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["code"], "sql_not_allowed");

    // With one, the engine must be in the room first; then the query runs through it.
    let policy = format!("{policy}\n[sql]\nengine_sha256 = \"{engine_sha}\"\n");
    let (status, _, set) = call(
        &s.app,
        "PUT",
        "/v1/policies",
        Some(&s.bank),
        Body::from(policy),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{set}");
    // Before running it: what it reads and releases, and each number's noise at a cost.
    let explain =
        json!({ "sql": query, "dataset": "bank", "cost": "0.25", "parameters": { "years": "2" } });
    let (status, _, explained) = call(
        &s.app,
        "POST",
        "/v1/sql/explain",
        Some(&s.partner),
        json_body(explain),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{explained}");
    assert_eq!(explained["allowed"], true);
    assert_eq!(
        explained["reads"][0]["columns"],
        json!(["tenure_years", "region"])
    );
    assert!(
        explained["metrics"][0]["noise_std"].as_f64().expect("std") > 0.0,
        "{explained}"
    );
    assert!(
        explained["metrics"][0]["half_width_95"]
            .as_f64()
            .expect("95%")
            > 0.0
    );
    let bad = json!({ "sql": "SELECT WITH DIFFERENTIAL_PRIVACY SUM(amount) AS s FROM transactions", "dataset": "bank" });
    let (status, _, why) = call(
        &s.app,
        "POST",
        "/v1/sql/explain",
        Some(&s.partner),
        json_body(bad.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{why}");
    assert_eq!(why["code"], "sql_refused");
    let (status, _, _) = call(
        &s.app,
        "POST",
        "/v1/sql/explain",
        Some(&s.other_partner),
        json_body(bad),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not otherco's dataset");
    let (status, _, missing) = call(
        &s.app,
        "POST",
        "/v1/jobs",
        Some(&s.partner),
        json_body(submit.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
    let (status, _, module) = call(
        &s.app,
        "POST",
        "/v1/modules",
        Some(&s.partner),
        Body::from(engine),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{module}");
    let (status, _, queued) = call(
        &s.app,
        "POST",
        "/v1/jobs",
        Some(&s.partner),
        json_body(submit),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    let job = wait_for_job(&s, queued["job_id"].as_str().expect("id")).await;
    assert_eq!(job["status"], "released", "{job}");
    assert_eq!(job["result"]["metrics"][0]["name"], "customers");
    let receipt = job["receipt"].as_str().expect("receipt");
    assert!(
        receipt.contains("\nquery sha256:") && receipt.contains("\nplan sha256:"),
        "{receipt}"
    );

    // A query that does not compile is refused with where and why, before any charge.
    let broken = json!({ "sql": "SELECT WITH DIFFERENTIAL_PRIVACY region, COUNT(*) FROM customers GROUP BY region", "dataset": "bank", "cost": "0.25" });
    let (_, _, queued) = call(
        &s.app,
        "POST",
        "/v1/jobs",
        Some(&s.partner),
        json_body(broken),
    )
    .await;
    let job = wait_for_job(&s, queued["job_id"].as_str().expect("id")).await;
    assert_eq!(job["error_code"], "sql_refused", "{job}");
    assert!(
        job["error"].as_str().expect("error").contains("line 1"),
        "{job}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bank_reviews_a_module_with_what_changed_since_the_last_approved_version() {
    let s = service().await;
    let old = strongroom_tests::example_v0_1("spend-by-category");
    let new = example("spend-by-category");
    let upload = |bytes: Vec<u8>| {
        let app = s.app.clone();
        let token = s.partner.clone();
        async move {
            let (status, _, m) =
                call(&app, "POST", "/v1/modules", Some(&token), Body::from(bytes)).await;
            assert_eq!(status, StatusCode::CREATED, "{m}");
            m["module_sha256"].as_str().expect("sha").to_string()
        }
    };
    let old_sha = upload(old.clone()).await;
    let (status, _, first) = get(&s.app, &format!("/v1/modules/{old_sha}"), &s.bank).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["size"], old.len());
    assert_eq!(first["mode"], "isolated");
    assert_eq!(first["toolchain"], "rust");
    assert_eq!(first["fuel_per_customer"], 20_000_000);
    assert_eq!(first["decision"], Value::Null);
    assert_eq!(
        first["previous_approved"],
        Value::Null,
        "nothing approved before"
    );
    assert!(
        first["reads"].to_string().contains("transactions")
            && first["metrics"][0]["name"] == "spend"
            && first["imports"].as_array().is_some_and(|i| !i.is_empty()),
        "{first}"
    );
    let (status, _, _) = call(
        &s.app,
        "POST",
        &format!("/v1/modules/{old_sha}/decision"),
        Some(&s.bank),
        json_body(json!({ "partner": "socialco", "approve": true, "comment": "v0.1 reviewed" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // The same module rebuilt against version 0.2 of the contract: same name, reads and
    // metrics; other host functions and another size.
    let new_sha = upload(new.clone()).await;
    let (_, _, detail) = get(&s.app, &format!("/v1/modules/{new_sha}"), &s.bank).await;
    let previous = &detail["previous_approved"];
    assert_eq!(previous["module_sha256"], old_sha.as_str(), "{detail}");
    let changes: Vec<&str> = previous["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        changes.iter().any(|c| c.starts_with("size: "))
            && changes.iter().any(|c| c.starts_with("import added: "))
            && changes.iter().any(|c| c.starts_with("import removed: ")),
        "{changes:?}"
    );
    assert!(
        !changes
            .iter()
            .any(|c| c.starts_with("metric") || c.starts_with("read")),
        "the same reads and metrics: {changes:?}"
    );

    // A partner sees its own modules in detail, never another's; a malformed hash is a 404.
    let (status, _, _) = get(&s.app, &format!("/v1/modules/{new_sha}"), &s.partner).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = get(&s.app, &format!("/v1/modules/{new_sha}"), &s.other_partner).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = get(&s.app, "/v1/modules/not-a-hash", &s.bank).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cost_preview_charges_nothing_and_matches_what_the_job_then_charges() {
    let s = service().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let sealed = sealed_bank(tmp.path(), &s.state.room);
    call(
        &s.app,
        "PUT",
        "/v1/datasets",
        Some(&s.bank),
        Body::from(sealed),
    )
    .await;
    let policy = "partner = \"socialco\"\ndataset = \"bank\"\nbudget_rho = \"1.0\"\nresult_delay_seconds = 0\nmin_group_size = 20\n";
    call(
        &s.app,
        "PUT",
        "/v1/policies",
        Some(&s.bank),
        Body::from(policy),
    )
    .await;
    let (_, _, module) = call(
        &s.app,
        "POST",
        "/v1/modules",
        Some(&s.partner),
        Body::from(example("spend-by-category")),
    )
    .await;
    let sha = module["module_sha256"].as_str().expect("sha").to_string();
    let preview = |cost: &str| {
        let app = s.app.clone();
        let token = s.partner.clone();
        let body = json!({ "module_sha256": sha, "dataset": "bank", "cost": cost });
        async move {
            call(
                &app,
                "POST",
                "/v1/jobs/preview",
                Some(&token),
                json_body(body),
            )
            .await
        }
    };
    let (status, _, p) = preview("0.3").await;
    assert_eq!(status, StatusCode::OK, "{p}");
    assert_eq!(p["charge_rho"], "0.3");
    assert_eq!(p["remaining_rho"], "1");
    assert_eq!(p["jobs_left"], 3);
    assert_eq!(p["metrics"].as_array().map(Vec::len), Some(3), "{p}");
    // More spent, less noise.
    let (_, _, cheaper) = preview("0.1").await;
    let width = |v: &Value| v["metrics"][0]["half_width_95"].as_f64().expect("width");
    assert!(width(&cheaper) > width(&p), "{cheaper} {p}");
    let std = p["metrics"][0]["noise_std"].as_f64().expect("std");
    assert!(
        width(&p) > 1.5 * std && width(&p) < 2.5 * std,
        "a 95% half-width is about 2 standard deviations: {p}"
    );
    let (_, _, budgets) = get(&s.app, "/v1/budgets", &s.partner).await;
    assert_eq!(budgets[0]["spent_rho"], "0", "a preview charges nothing");

    // The job then charges what the preview said.
    let (_, _, queued) = call(
        &s.app,
        "POST",
        "/v1/jobs",
        Some(&s.partner),
        json_body(json!({ "module_sha256": sha, "dataset": "bank", "cost": "0.3" })),
    )
    .await;
    wait_for_job(&s, queued["job_id"].as_str().expect("id")).await;
    let (_, _, budgets) = get(&s.app, "/v1/budgets", &s.partner).await;
    assert_eq!(budgets[0]["spent_rho"], p["charge_rho"]);
    let (_, _, after) = preview("0.3").await;
    assert_eq!(
        (after["remaining_rho"].as_str(), after["jobs_left"].as_u64()),
        (Some("0.7"), Some(2))
    );

    // Not another partner's module, not a cost the room would refuse.
    let (status, _, _) = call(
        &s.app,
        "POST",
        "/v1/jobs/preview",
        Some(&s.other_partner),
        json_body(json!({ "module_sha256": sha, "dataset": "bank", "cost": "0.3" })),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, refused) = preview("-1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
}
