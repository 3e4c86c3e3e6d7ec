//! Two `strongroom serve` processes on one room whose database is PostgreSQL: either answers
//! every party, a job runs on exactly one of them, and when the node running a job is killed the
//! other marks it interrupted once (its charge standing) and carries on with the next. Needs a
//! PostgreSQL server (`STRONGROOM_TEST_POSTGRES`, a URL whose user may create databases, and
//! `psql`); without one it says so and passes. CI runs it with one.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::service_process::{Server, bin, client, json, ok, repo, serve_with};

/// `admin` with its database replaced by `database`.
fn with_database(admin: &str, database: &str) -> String {
    let (scheme, rest) = admin.split_once("://").expect("a URL");
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let query = path.split_once('?').map(|(_, q)| format!("?{q}"));
    format!(
        "{scheme}://{authority}/{database}{}",
        query.unwrap_or_default()
    )
}

fn psql(admin: &str, sql: &str) {
    let out = Command::new("psql")
        .arg(admin)
        .args(["-v", "ON_ERROR_STOP=1", "-qAtc", sql])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn job_state(server: &Server, token: &str, id: &str) -> Value {
    json(client(server, token).args(["job", "show", id]))
}

fn wait_state(server: &Server, token: &str, id: &str, want: &[&str], within: Duration) -> Value {
    let started = Instant::now();
    loop {
        let job = job_state(server, token, id);
        if want.contains(&job["state"].as_str().unwrap_or_default()) {
            return job;
        }
        assert!(started.elapsed() < within, "job {id} stuck: {job}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn two_serve_processes_share_a_room_on_postgresql_and_one_takes_over_when_the_other_dies() {
    let Some(admin) = std::env::var("STRONGROOM_TEST_POSTGRES")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("SKIPPED: no PostgreSQL for the tests (set STRONGROOM_TEST_POSTGRES)");
        return;
    };
    let database = format!("strongroom_cli_nodes_{}", std::process::id());
    psql(&admin, &format!("DROP DATABASE IF EXISTS {database}"));
    psql(
        &admin,
        &format!(
            "CREATE DATABASE {database} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'"
        ),
    );
    let url = with_database(&admin, &database);
    let examples =
        strongroom_contract::toolchain::build_guest_workspace(&repo().join("examples"), false)
            .expect("examples build");
    let guests =
        strongroom_contract::toolchain::build_guest_workspace(&repo().join("tests/guests"), false)
            .expect("guests build");
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let room = d.join("room");
    ok(bin()
        .args(["keygen", "--room"])
        .arg(&room)
        .args(["--database", &url]));
    assert!(
        !room.join("room.db").exists(),
        "the room's state is in PostgreSQL, not beside it"
    );
    // A second room cannot take the same database.
    let again = bin()
        .args(["keygen", "--room"])
        .arg(d.join("other"))
        .args(["--database", &url])
        .output()
        .expect("runs");
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already holds a room"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let token = |name: &str, role: &str| {
        ok(bin()
            .args(["party", "add", name, "--role", role, "--room"])
            .arg(&room))
        .trim()
        .to_string()
    };
    let (bank, partner, auditor) = (
        token("bigbank", "bank"),
        token("socialco", "partner"),
        token("secteam", "auditor"),
    );
    ok(bin()
        .args(["demo-data", "--customers", "400", "--out"])
        .arg(d.join("data")));
    ok(bin()
        .args(["party-key", "--name", "bigbank", "--out"])
        .arg(d.join("bank.key")));
    ok(bin()
        .arg("seal")
        .arg("--schema")
        .arg(d.join("data/schema.toml"))
        .arg("--room-key")
        .arg(room.join("keys/room.pub"))
        .arg("--party-key")
        .arg(d.join("bank.key"))
        .arg("--table")
        .arg(format!(
            "customers={}",
            d.join("data/customers.csv").display()
        ))
        .arg("--table")
        .arg(format!(
            "transactions={}",
            d.join("data/transactions.csv").display()
        ))
        .arg("--out")
        .arg(d.join("bank.sealed")));
    std::fs::write(
        d.join("policy.toml"),
        "partner = \"socialco\"\ndataset = \"bank\"\nbudget_rho = \"1.0\"\nresult_delay_seconds = 0\nmin_group_size = 20\nmodes = [\"isolated\", \"table\"]\n",
    )
    .expect("policy");

    let nodes = ["--node-timeout", "3"];
    let first = serve_with(&room, &nodes);
    // The bank works through the first node, the partner through the second, the security team
    // through either.
    json(
        client(&first, &bank)
            .args(["dataset", "upload"])
            .arg(d.join("bank.sealed")),
    );
    ok(client(&first, &bank)
        .args(["policy", "set", "--file"])
        .arg(d.join("policy.toml")));
    let spin = json(
        client(&first, &partner)
            .args(["module", "submit"])
            .arg(guests.join("table_spin.wasm")),
    );
    let spin = spin["module_sha256"].as_str().expect("sha").to_string();
    ok(client(&first, &bank).args([
        "module",
        "approve",
        "--module-sha256",
        &spin,
        "--partner",
        "socialco",
    ]));
    // A long job starts on the first node (the only one so far)...
    let id = ok(client(&first, &partner).args([
        "job",
        "submit",
        "--module-sha256",
        &spin,
        "--dataset",
        "bank",
        "--cost",
        "0.1",
    ]))
    .trim()
    .to_string();
    wait_state(
        &first,
        &partner,
        &id,
        &["running"],
        Duration::from_secs(120),
    );
    std::thread::sleep(Duration::from_millis(1500));
    // ...a second node joins, and sees the same room.
    let second = serve_with(&room, &nodes);
    assert_eq!(job_state(&second, &partner, &id)["state"], "running");
    // The first node dies mid-job: the second marks its job interrupted, once.
    drop(first); // SIGKILL
    let job = wait_state(
        &second,
        &partner,
        &id,
        &["failed", "finished"],
        Duration::from_secs(60),
    );
    assert_eq!(job["state"], "failed", "{job}");
    assert!(
        job["error"]
            .as_str()
            .unwrap_or_default()
            .starts_with("interrupted"),
        "{job}"
    );
    // The second node carries on: the next job runs there, once, and the charge of the
    // interrupted one stands.
    let query = json(
        client(&second, &partner)
            .args(["module", "submit"])
            .arg(examples.join("fraud_alerts_by_region.wasm")),
    );
    let query = query["module_sha256"].as_str().expect("sha").to_string();
    let done = json(client(&second, &partner).args([
        "job",
        "submit",
        "--module-sha256",
        &query,
        "--dataset",
        "bank",
        "--cost",
        "0.2",
        "--wait",
    ]));
    assert_eq!(done["status"], "released", "{done}");
    // A node started again answers with the same result.
    let third = serve_with(&room, &nodes);
    let next = done["job_id"].as_str().expect("id");
    let again = job_state(&third, &partner, next);
    assert_eq!(again["result"], done["result"], "{again}");
    let budgets = json(client(&third, &partner).args(["budget", "show", "--json"]));
    assert_eq!(budgets[0]["spent_rho"], "0.3", "{budgets}");
    assert_eq!(budgets[0]["jobs"], 2, "{budgets}");

    // The log, exported through one node, verifies offline and holds one interruption.
    ok(client(&third, &auditor)
        .args(["audit", "export", "--out"])
        .arg(d.join("log.jsonl")));
    ok(client(&second, &auditor)
        .args(["audit", "checkpoint", "--out"])
        .arg(d.join("cp.txt")));
    ok(bin()
        .args(["audit", "verify", "--log"])
        .arg(d.join("log.jsonl"))
        .arg("--checkpoint")
        .arg(d.join("cp.txt"))
        .arg("--key")
        .arg(room.join("keys/room.vkey")));
    let log = std::fs::read_to_string(d.join("log.jsonl")).expect("log");
    assert_eq!(log.matches("job.interrupted").count(), 1);
    drop(second);
    drop(third);
    psql(
        &admin,
        &format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"),
    );
}
