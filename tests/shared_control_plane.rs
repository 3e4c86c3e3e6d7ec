//! Several `strongroom serve` nodes on one PostgreSQL database: the ledger stays serialized
//! under concurrent charges from every node, each job is run by exactly one node, the audit log
//! grows as one log, and the jobs of a node that stops answering are marked interrupted once.
//!
//! These need a PostgreSQL server (`STRONGROOM_TEST_POSTGRES`, see `strongroom_tests::test_postgres`);
//! without one they say so and pass. CI runs them with one (.ci/run).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::StatusCode;
use serde_json::json;
use strongroom::keys::OperatorSecret;
use strongroom::output_gate::ledger::{Charge, LedgerError};
use strongroom::room::Room;
use strongroom_server::auth::{self, Role};
use strongroom_server::{ServiceConfig, queue, router, start};
use strongroom_tests::http::{call, json_body, sealed_bank};
use strongroom_tests::{example, query_i64, test_postgres};

/// A room on a fresh PostgreSQL database, and `nodes` more handles on it (each its own pool,
/// as separate processes would have).
async fn shared_room(nodes: usize) -> Option<(tempfile::TempDir, Vec<Room>)> {
    if test_postgres().is_none() {
        eprintln!("SKIPPED: no PostgreSQL for the tests (set STRONGROOM_TEST_POSTGRES)");
        return None;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = OperatorSecret::new(b"shared room");
    let first = strongroom_tests::new_room(&dir.path().join("room"), "shared-room", &secret).await;
    let mut rooms = vec![first];
    for _ in 1..nodes {
        rooms.push(
            Room::open(&dir.path().join("room"), &secret)
                .await
                .expect("another node opens the room"),
        );
    }
    Some((dir, rooms))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_charges_from_several_nodes_never_spend_more_than_the_budget() {
    let Some((_dir, rooms)) = shared_room(3).await else {
        return;
    };
    const COST: u64 = 70_000_000; // rho 0.07: 14 fit in rho 1.0
    // A dataset per charge, all of one privacy domain: the charges share one budget but no row,
    // so only the room's write lock stands between them.
    for i in 0..48 {
        rooms[0]
            .ledger()
            .set_budget("socialco", &format!("bank-{i}"), 1_000_000_000)
            .await
            .expect("budget");
    }
    let rooms: Vec<Arc<Room>> = rooms.into_iter().map(Arc::new).collect();
    let mut tasks = Vec::new();
    for i in 0..48 {
        let room = Arc::clone(&rooms[i % rooms.len()]);
        tasks.push(tokio::spawn(async move {
            let job_id = format!("job-{i}");
            let dataset = format!("bank-{i}");
            let charge = Charge {
                partner: "socialco",
                dataset: &dataset,
                domain: "bank",
                job_id: &job_id,
                cost: COST,
                max_jobs_per_day: None,
            };
            room.ledger().charge(&charge).await
        }));
    }
    let mut passed = 0;
    let mut exhausted = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(_) => passed += 1,
            Err(LedgerError::Exhausted { .. }) => exhausted += 1,
            Err(other) => panic!("a charge failed otherwise: {other}"),
        }
    }
    assert_eq!((passed, exhausted), (14, 34));
    let spent = query_i64(
        &rooms[1],
        "SELECT CAST(SUM(cost_nano_rho) AS BIGINT) FROM charges",
        strongroom::params![],
    );
    assert_eq!(spent, 14 * COST as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_share_the_queue_each_job_runs_once_and_the_log_is_one_log() {
    let Some((dir, mut rooms)) = shared_room(2).await else {
        return;
    };
    let second_room = rooms.pop().expect("second");
    let first_room = rooms.pop().expect("first");
    let sealed = sealed_bank(dir.path(), &first_room);
    let partner = auth::add_party(&first_room, "socialco", Role::Partner)
        .await
        .expect("partner");
    let bank = auth::add_party(&first_room, "bigbank", Role::Bank)
        .await
        .expect("bank");
    let config = ServiceConfig {
        workers: 2,
        ..ServiceConfig::default()
    };
    let first = start(first_room, config.clone()).await.expect("first node");
    let second = start(second_room, config).await.expect("second node");
    let apps = [router(Arc::clone(&first)), router(Arc::clone(&second))];
    // The bank works through one node, the partner through both.
    let (status, _, _) = call(
        &apps[0],
        "PUT",
        "/v1/datasets",
        Some(&bank),
        Body::from(sealed),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _, _) = call(
        &apps[1],
        "PUT",
        "/v1/policies",
        Some(&bank),
        Body::from("partner = \"socialco\"\ndataset = \"bank\"\nbudget_rho = \"1.0\"\nresult_delay_seconds = 0\nmin_group_size = 20\n"),
    )
    .await;
    assert!(status.is_success(), "{status}");
    let (_, _, module) = call(
        &apps[0],
        "POST",
        "/v1/modules",
        Some(&partner),
        Body::from(example("fraud-alerts-by-region")),
    )
    .await;
    let sha = module["module_sha256"].as_str().expect("sha").to_string();
    let mut ids = Vec::new();
    for i in 0..12 {
        let (status, _, q) = call(
            &apps[i % 2],
            "POST",
            "/v1/jobs",
            Some(&partner),
            json_body(json!({ "module_sha256": sha, "dataset": "bank", "cost": "0.15" })),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{q}");
        ids.push(q["job_id"].as_str().expect("id").to_string());
    }
    // Every job ends, whichever node took it.
    for id in &ids {
        let mut ended = false;
        for _ in 0..600 {
            let running = query_i64(
                &first.room,
                "SELECT COUNT(*) FROM job_queue WHERE job_id = ? AND state IN ('queued', 'running')",
                strongroom::params![id],
            );
            if running == 0 {
                ended = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(ended, "job {id} did not end");
    }
    first.queue.shutdown();
    second.queue.shutdown();
    let room = &second.room;
    let count = |sql: &str| query_i64(room, sql, strongroom::params![]);
    // As many jobs ran as the budget pays for, each once, claimed by one of the two nodes; the
    // others were refused for the budget before any charge.
    let charges = count("SELECT COUNT(*) FROM charges");
    let spent = count("SELECT CAST(COALESCE(SUM(cost_nano_rho), 0) AS BIGINT) FROM charges");
    let cost = spent / charges.max(1);
    assert!(
        charges > 0 && spent <= 1_000_000_000 && spent + cost > 1_000_000_000,
        "{charges} charges, {spent} spent"
    );
    assert_eq!(count("SELECT COUNT(*) FROM jobs"), charges);
    assert_eq!(
        count("SELECT COUNT(*) FROM job_queue WHERE state = 'finished'"),
        charges
    );
    assert_eq!(
        count(
            "SELECT COUNT(*) FROM job_queue WHERE state = 'failed' AND error_code = 'budget_exhausted'"
        ),
        12 - charges
    );
    let claimed_elsewhere = query_i64(
        room,
        "SELECT COUNT(*) FROM job_queue WHERE state = 'finished' AND claimed_by NOT IN (?, ?)",
        strongroom::params![first.node, second.node],
    );
    assert_eq!(claimed_elsewhere, 0);
    // One log: indices 0..n with no gap, and its signed tree head covers every stored leaf.
    let entries = room.audit().entries(0).await.expect("entries");
    assert!(entries.iter().enumerate().all(|(i, e)| e.index == i as u64));
    let (checkpoint, _) = room.audit().checkpoint().await.expect("checkpoint");
    let tree = room.audit().tree().await.expect("tree");
    assert_eq!(checkpoint.size, entries.len() as u64);
    assert_eq!(tree.root(checkpoint.size).ok(), Some(checkpoint.root));
    for id in &ids {
        let results = entries
            .iter()
            .filter(|e| {
                e.entry.contains(&format!("\"job\":\"{id}\"")) && e.entry.contains("result.")
            })
            .count();
        assert!(results <= 1, "job {id} has {results} result entries");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_stops_answering_has_its_running_jobs_marked_interrupted_once() {
    let Some((_dir, rooms)) = shared_room(2).await else {
        return;
    };
    let room = &rooms[0];
    let long_ago =
        strongroom::room::db::rfc3339(time::OffsetDateTime::now_utc() - time::Duration::minutes(5));
    let now = strongroom::clock::now_rfc3339();
    for (node, seen) in [("gone-node", &long_ago), ("live-node", &now)] {
        strongroom_tests::execute(
            room,
            "INSERT INTO nodes (node_id, started_at, seen_at) VALUES (?, ?, ?)",
            strongroom::params![node, seen, seen],
        );
    }
    for (job, node) in [("job-gone", "gone-node"), ("job-live", "live-node")] {
        strongroom_tests::execute(
            room,
            "INSERT INTO job_queue (job_id, partner, dataset, module_sha256, cost, state, submitted_at, claimed_by) \
             VALUES (?, 'socialco', 'bank', 'ab', '0.1', 'running', ?, ?)",
            strongroom::params![job, now, node],
        );
    }
    // Two live nodes look at once: the gone node's job is marked once, the live node's is not.
    let (a, b) = tokio::join!(
        queue::recover(&rooms[0], "node-a", queue::NODE_TIMEOUT),
        queue::recover(&rooms[1], "node-b", queue::NODE_TIMEOUT)
    );
    assert_eq!(a.expect("a") + b.expect("b"), 1);
    let state = |job: &str| {
        rooms[0]
            .db()
            .read(|conn| {
                conn.query_row(
                    "SELECT state FROM job_queue WHERE job_id = ?",
                    strongroom::params![job],
                    |r| r.get::<_, String>(0),
                )
                .map_err(strongroom::group_commit::WriteError::from)
            })
            .expect("state")
    };
    assert_eq!(state("job-gone"), "failed");
    assert_eq!(state("job-live"), "running");
    let interrupted = rooms[0]
        .audit()
        .entries(0)
        .await
        .expect("entries")
        .iter()
        .filter(|e| e.entry.contains("job.interrupted"))
        .count();
    assert_eq!(interrupted, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_refuses_a_database_that_sorts_text_otherwise_or_already_holds_a_room() {
    let Some(admin) = test_postgres() else {
        eprintln!("SKIPPED: no PostgreSQL for the tests (set STRONGROOM_TEST_POSTGRES)");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = OperatorSecret::new(b"refusals");
    let url = strongroom_tests::fresh_postgres_database(&admin).await;
    let first = Room::create_on(&dir.path().join("one"), "one", &secret, Some(&url))
        .await
        .expect("room");
    drop(first);
    let again = Room::create_on(&dir.path().join("two"), "two", &secret, Some(&url))
        .await
        .err()
        .expect("a database holds one room");
    assert!(
        again.to_string().contains("already holds a room"),
        "{again}"
    );
    // A database made with a language's collation sorts text unlike SQLite: refused.
    let (name, options) = {
        use std::str::FromStr;
        let options = sqlx::postgres::PgConnectOptions::from_str(&admin).expect("url");
        (
            format!("strongroom_test_collation_{}", std::process::id()),
            options,
        )
    };
    {
        use sqlx::ConnectOptions;
        let mut conn = options.connect().await.expect("admin");
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
            .execute(&mut conn)
            .await
            .expect("drop");
        let made = sqlx::query(&format!(
            "CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'en_US.UTF-8' LC_CTYPE 'en_US.UTF-8'"
        ))
        .execute(&mut conn)
        .await;
        if made.is_err() {
            eprintln!("SKIPPED the collation half: this server has no en_US.UTF-8 locale");
            return;
        }
    }
    let url = {
        use sqlx::ConnectOptions;
        options.database(&name).to_url_lossy().to_string()
    };
    let refused = Room::create_on(&dir.path().join("three"), "three", &secret, Some(&url))
        .await
        .err()
        .expect("refused");
    assert!(refused.to_string().contains("collation"), "{refused}");
}

/// Every table and column of a room's schema, from the database's own catalogue.
fn schema_of(room: &Room) -> std::collections::BTreeSet<(String, String)> {
    let sql = if room.db().is_shared() {
        "SELECT table_name::text, column_name::text FROM information_schema.columns \
         WHERE table_schema = 'public' AND table_name NOT LIKE '\\_sqlx%'"
    } else {
        "SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p \
         WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name NOT LIKE '\\_sqlx%' ESCAPE '\\'"
    };
    room.db()
        .read(|conn| {
            conn.prepare_cached(sql)?
                .query_map(strongroom::params![], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<std::collections::BTreeSet<_>, _>>()
                .map_err(strongroom::group_commit::WriteError::from)
        })
        .expect("schema")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schema_on_postgresql_has_every_table_and_column_of_the_schema_on_sqlite() {
    let Some((_dir, rooms)) = shared_room(1).await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = Room::create(
        &dir.path().join("room"),
        "local",
        &OperatorSecret::new(b"x"),
    )
    .await
    .expect("room");
    let (on_sqlite, on_postgres) = (schema_of(&sqlite), schema_of(&rooms[0]));
    assert!(on_sqlite.len() > 60, "{on_sqlite:?}");
    assert_eq!(on_sqlite, on_postgres);
}
