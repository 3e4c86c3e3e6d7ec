//! The served room as a user meets it: the real `strongroom` binary serving over loopback, the
//! same binary as the client (`--server URL --token T`), and a SIGKILL in the middle of a job.
//! After the restart the interrupted job is failed exactly once with its charge standing, the
//! next job runs, its receipt verifies offline, and the audit log exported over HTTP verifies
//! offline against the room's key.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub(super) const PASSPHRASE: &str = "service process test secret";

pub(super) fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_strongroom"));
    c.env("STRONGROOM_PASSPHRASE", PASSPHRASE)
        .env_remove("STRONGROOM_SERVER")
        .env_remove("STRONGROOM_TOKEN");
    c
}

pub(super) fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("strongroom runs");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(super) fn json(cmd: &mut Command) -> Value {
    let text = ok(cmd);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

pub(super) fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo")
        .to_path_buf()
}

pub(super) struct Server(Child, pub(super) String);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(super) fn serve(room: &Path) -> Server {
    serve_with(room, &[])
}

pub(super) fn serve_with(room: &Path, extra: &[&str]) -> Server {
    serve_with_env(room, extra, &[])
}

/// [`serve_with`] with `env` added to the server's environment.
pub(super) fn serve_with_env(room: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
    let mut child = bin()
        .args(["serve", "--room"])
        .arg(room)
        .args(["--listen", "127.0.0.1:0", "--workers", "1"])
        .args(extra)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("first line");
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://") || w.starts_with("https://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    Server(child, url)
}

pub(super) fn client(server: &Server, token: &str) -> Command {
    let mut c = bin();
    c.args(["--server", &server.1, "--token", token]);
    c
}

fn wait_state(server: &Server, token: &str, id: &str, want: &[&str]) -> Value {
    let started = Instant::now();
    loop {
        let job = json(client(server, token).args(["job", "show", id]));
        if want.contains(&job["state"].as_str().unwrap_or_default()) {
            return job;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "job {id} stuck: {job}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_cli_drives_a_served_room_and_a_killed_job_fails_once_with_its_charge_standing() {
    let examples =
        strongroom_contract::toolchain::build_guest_workspace(&repo().join("examples"), false)
            .expect("examples build");
    let guests =
        strongroom_contract::toolchain::build_guest_workspace(&repo().join("tests/guests"), false)
            .expect("guests build");
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let room = d.join("room");
    ok(bin().args(["keygen", "--room"]).arg(&room));
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

    // The bank prepares and seals its data on its own machine.
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

    let server = serve(&room);
    json(
        client(&server, &bank)
            .args(["dataset", "upload"])
            .arg(d.join("bank.sealed")),
    );
    let set = ok(client(&server, &bank)
        .args(["policy", "set", "--file"])
        .arg(d.join("policy.toml")));
    assert!(
        set.starts_with("policy set for partner 'socialco'"),
        "{set}"
    );
    let spin = json(
        client(&server, &partner)
            .args(["module", "submit"])
            .arg(guests.join("table_spin.wasm")),
    );
    let spin = spin["module_sha256"].as_str().expect("sha").to_string();
    let query = json(
        client(&server, &partner)
            .args(["module", "submit"])
            .arg(examples.join("fraud_alerts_by_region.wasm")),
    );
    let query = query["module_sha256"].as_str().expect("sha").to_string();
    // A partner cannot approve its own module.
    let denied = client(&server, &partner)
        .args([
            "module",
            "approve",
            "--module-sha256",
            &spin,
            "--partner",
            "socialco",
        ])
        .output()
        .expect("runs");
    assert!(!denied.status.success());
    assert!(String::from_utf8_lossy(&denied.stderr).contains("403 forbidden"));
    ok(client(&server, &bank).args([
        "module",
        "approve",
        "--module-sha256",
        &spin,
        "--partner",
        "socialco",
        "--comment",
        "crash test",
    ]));

    // A long job starts; the server is killed in the middle of it.
    let id = ok(client(&server, &partner).args([
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
    wait_state(&server, &partner, &id, &["running"]);
    // Give the worker time to charge the budget and start the module.
    std::thread::sleep(Duration::from_millis(1500));
    drop(server); // SIGKILL

    let server = serve(&room);
    let job = wait_state(&server, &partner, &id, &["failed", "finished"]);
    assert_eq!(job["state"], "failed", "{job}");
    assert!(
        job["error"]
            .as_str()
            .unwrap_or_default()
            .starts_with("interrupted"),
        "{job}"
    );
    let budgets = json(client(&server, &partner).args(["budget", "show", "--json"]));
    assert_eq!(
        budgets[0]["spent_rho"], "0.1",
        "the interrupted job's charge stands"
    );

    // The room keeps serving: the next job runs once and its receipt verifies offline.
    let done = json(client(&server, &partner).args([
        "job",
        "submit",
        "--module-sha256",
        &query,
        "--dataset",
        "bank",
        "--cost",
        "0.2",
        "--param",
        "min_alerts=2",
        "--wait",
    ]));
    assert_eq!(done["status"], "released", "{done}");
    assert_eq!(done["parameters"]["min_alerts"], "2", "{done}");
    let next = done["job_id"].as_str().expect("id");
    ok(client(&server, &partner)
        .args(["job", "result", next, "--out"])
        .arg(d.join("result.json"))
        .arg("--receipt")
        .arg(d.join("receipt.txt")));
    ok(bin()
        .args(["receipt", "verify", "--receipt"])
        .arg(d.join("receipt.txt"))
        .arg("--key")
        .arg(room.join("keys/room.vkey"))
        .arg("--result")
        .arg(d.join("result.json")));
    let budgets = json(client(&server, &partner).args(["budget", "show", "--json"]));
    assert_eq!(budgets[0]["spent_rho"], "0.3");
    // A partner's list is its own jobs in the partner view, as a table or as JSON.
    let listed = ok(client(&server, &partner).args(["job", "list"]));
    assert!(
        listed.contains("visible from") && listed.contains(next) && listed.contains(&id),
        "{listed}"
    );
    let listed = json(client(&server, &partner).args(["job", "list", "--json"]));
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");
    assert!(listed[0].get("partner").is_none(), "{listed}");
    assert_eq!(budgets[0]["jobs"], 2, "the killed job was never run again");

    // The security team exports the log over HTTP and verifies it offline.
    ok(client(&server, &auditor)
        .args(["audit", "export", "--out"])
        .arg(d.join("log.jsonl")));
    ok(client(&server, &auditor)
        .args(["audit", "checkpoint", "--out"])
        .arg(d.join("cp.txt")));
    ok(bin()
        .args(["audit", "verify", "--log"])
        .arg(d.join("log.jsonl"))
        .arg("--checkpoint")
        .arg(d.join("cp.txt"))
        .arg("--key")
        .arg(room.join("keys/room.vkey")));
    let proof = json(client(&server, &auditor).args(["audit", "prove", "--index", "1"]));
    assert_eq!(proof["kind"], "inclusion", "{proof}");
    let log = std::fs::read_to_string(d.join("log.jsonl")).expect("log");
    assert_eq!(log.matches("job.interrupted").count(), 1);
    assert!(
        log.contains("access.denied"),
        "the partner's approval attempt"
    );
    assert!(!log.contains(&partner), "tokens never reach the log");
    assert!(
        log.contains(r#""parameters":[["min_alerts","2"]]"#),
        "the job's parameters are on record: {log}"
    );
}

#[test]
fn tls_with_a_development_certificate_is_trusted_only_when_given() {
    let dir = tempfile::tempdir().expect("tempdir");
    let room = dir.path().join("room");
    ok(bin().args(["keygen", "--room"]).arg(&room));
    let auditor = ok(bin()
        .args(["party", "add", "secteam", "--role", "auditor", "--room"])
        .arg(&room))
    .trim()
    .to_string();
    let server = serve_with(&room, &["--tls-self-signed"]);
    assert!(server.1.starts_with("https://127.0.0.1:"), "{}", server.1);
    let cert = room.join("tls/self-signed-DEVELOPMENT-ONLY.crt.pem");
    let key = std::fs::metadata(room.join("tls/self-signed-DEVELOPMENT-ONLY.key.pem"))
        .expect("key written");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(key.permissions().mode() & 0o077, 0, "the key is private");

    // Trusted explicitly: the room answers over TLS.
    let answer = ok(client(&server, &auditor)
        .arg("--ca-cert")
        .arg(&cert)
        .args(["room", "pubkey"]));
    assert!(answer.contains("\nroom: room\n"), "{answer}");
    // Not trusted: the client refuses the connection.
    let refused = client(&server, &auditor)
        .args(["room", "pubkey"])
        .output()
        .expect("runs");
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr).to_lowercase();
    assert!(err.contains("certificate") || err.contains("tls"), "{err}");
    // Plain HTTP to the TLS port gets nothing useful.
    let plain = bin()
        .args([
            "--server",
            &server.1.replace("https://", "http://"),
            "--token",
            &auditor,
        ])
        .args(["room", "pubkey"])
        .output()
        .expect("runs");
    assert!(!plain.status.success());
}
