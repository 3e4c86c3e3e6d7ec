//! Sealed datasets on object storage, through a real S3-compatible server (`s3s-fs`, from
//! crates.io; .ci/run installs it): the bank's upload streams into the bucket and nothing of it
//! stays in the room's directory; jobs read the object by byte ranges, in the room and in
//! worker processes that find it from their partition's spec, and release exactly what the same
//! query releases from the local file; the credentials come from the environment alone, and a
//! room whose server is refused them fails the job for the operator without quarantining the
//! dataset. Without `s3s-fs` (on PATH or as STRONGROOM_TEST_S3S_FS) the test says it was
//! skipped, except under CI, where it fails.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::commands::{example_module, p};
use super::service_process::{self, client, serve_with_env};

const ACCESS_KEY: &str = "strongroom-test";
const SECRET_KEY: &str = "strongroom-test-secret-key";
const BUCKET: &str = "sealed";

/// The S3-compatible server's binary, if there is one.
fn s3s_fs() -> Option<PathBuf> {
    let found = std::env::var_os("STRONGROOM_TEST_S3S_FS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
                .map(|d| d.join("s3s-fs"))
                .find(|f| f.is_file())
        });
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI has no s3s-fs: .ci/run installs it (cargo install s3s-fs --features binary)"
        );
        eprintln!(
            "SKIPPED: no s3s-fs for the object storage test (cargo install s3s-fs --version 0.14.1 --features binary)"
        );
    }
    found
}

/// A running S3-compatible server, with its data directory (killed when dropped).
struct S3 {
    child: Child,
    root: tempfile::TempDir,
    port: u16,
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_s3(bin: &Path) -> S3 {
    let root = tempfile::tempdir().expect("root");
    std::fs::create_dir_all(root.path().join(BUCKET)).expect("bucket");
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new(bin)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
        .arg(root.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("s3s-fs starts");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "s3s-fs did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    S3 { child, root, port }
}

fn metrics(path: &Path) -> Value {
    let result: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("result")).expect("json");
    result["metrics"].clone()
}

/// Files under `dir` whose names end with `suffix`.
fn files_ending(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.to_string_lossy().ends_with(suffix) {
                found.push(path);
            }
        }
    }
    found
}

#[test]
fn sealed_datasets_live_on_an_s3_server_and_jobs_read_them_by_ranges() {
    let Some(bin) = s3s_fs() else { return };
    let s3 = start_s3(&bin);
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let room = dir.join("room");
    ok(&["keygen", "--room", p(&room), "--name", "stored"]);
    let data = dir.join("data");
    ok(&["demo-data", "--customers", "1500", "--out", p(&data)]);
    let key = dir.join("bigbank.key");
    ok(&["party-key", "--name", "bigbank", "--out", p(&key)]);
    let sealed = dir.join("bank.sealed");
    ok(&[
        "seal",
        "--schema",
        p(&data.join("schema.toml")),
        "--room-key",
        p(&room.join("keys/room.pub")),
        "--party-key",
        p(&key),
        "--table",
        &format!("customers={}", p(&data.join("customers.csv"))),
        "--table",
        &format!("transactions={}", p(&data.join("transactions.csv"))),
        "--chunk-rows",
        "2000",
        "--out",
        p(&sealed),
    ]);
    // Exact releases: released values are the aggregates.
    let policy = dir.join("policy.toml");
    std::fs::write(
        &policy,
        "partner = \"socialco\"\ndataset = \"bank\"\nbudget_rho = \"100\"\nmechanism = \"none\"\n\
         allow_unnoised = true\nmin_group_size = 1\nresult_delay_seconds = 0\n",
    )
    .expect("policy");
    ok(&["policy", "set", "--room", p(&room), "--file", p(&policy)]);
    let bank = ok(&[
        "party",
        "add",
        "bigbank",
        "--role",
        "bank",
        "--room",
        p(&room),
    ])
    .trim()
    .to_string();
    let partner = ok(&[
        "party",
        "add",
        "socialco",
        "--role",
        "partner",
        "--room",
        p(&room),
    ])
    .trim()
    .to_string();
    let module = example_module("spend-by-category");

    // What the query releases from the local file.
    let local_out = dir.join("local.json");
    ok(&[
        "run",
        "--room",
        p(&room),
        "--module",
        p(&module),
        "--partner",
        "socialco",
        "--dataset",
        p(&sealed),
        "--cost",
        "0.01",
        "--out",
        p(&local_out),
    ]);
    let local = metrics(&local_out);
    assert!(local.as_array().is_some_and(|m| !m.is_empty()), "{local}");

    // The room keeps uploads in the bucket.
    let toml = std::fs::read_to_string(room.join("room.toml")).expect("room.toml");
    let storage = format!(
        "\n[storage]\nurl = \"s3://{BUCKET}/rooms/stored\"\nendpoint = \"http://127.0.0.1:{}\"\nallow_http = true\n",
        s3.port
    );
    std::fs::write(room.join("room.toml"), format!("{toml}{storage}")).expect("room.toml");
    let credentials = [
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
    ];
    let server = serve_with_env(&room, &[], &credentials);
    service_process::json(
        client(&server, &bank)
            .args(["dataset", "upload"])
            .arg(&sealed),
    );
    let stored = files_ending(&s3.root.path().join(BUCKET).join("rooms/stored"), ".sealed");
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(
        std::fs::read(&stored[0]).expect("object"),
        std::fs::read(&sealed).expect("sealed"),
        "the object holds the upload's bytes"
    );
    assert!(
        files_ending(&room, ".sealed").is_empty(),
        "nothing of the upload stays in the room's directory"
    );
    let submitted = service_process::json(
        client(&server, &partner)
            .args(["module", "submit"])
            .arg(&module),
    );
    let sha = submitted["module_sha256"]
        .as_str()
        .expect("sha")
        .to_string();
    let run_job = |server: &service_process::Server, name: &str| -> Value {
        let done = service_process::json(client(server, &partner).args([
            "job",
            "submit",
            "--module-sha256",
            &sha,
            "--dataset",
            "bank",
            "--cost",
            "0.01",
            "--wait",
        ]));
        assert_eq!(done["status"], "released", "{done}");
        let out = dir.join(format!("{name}.json"));
        ok_client(
            client(server, &partner)
                .args([
                    "job",
                    "result",
                    done["job_id"].as_str().expect("id"),
                    "--out",
                ])
                .arg(&out),
        );
        metrics(&out)
    };
    assert_eq!(
        run_job(&server, "served"),
        local,
        "read from the bucket by ranges"
    );
    drop(server);

    // Partitions on worker processes, each finding the object from its spec and reading its
    // own chunks by ranges with the credentials of its environment.
    let engine = format!(
        "\n[engine]\nkind = \"processes\"\npartition_entities = 400\nworker = \"{}\"\nparallel = 2\n",
        env!("CARGO_BIN_EXE_strongroom")
    );
    std::fs::write(room.join("room.toml"), format!("{toml}{storage}{engine}")).expect("room.toml");
    let server = serve_with_env(&room, &[], &credentials);
    assert_eq!(
        run_job(&server, "workers"),
        local,
        "worker processes reading the bucket"
    );
    drop(server);

    // Without the credentials the server refuses the reads: the job fails for the operator,
    // and the dataset is not quarantined (the next job with them runs).
    std::fs::write(room.join("room.toml"), format!("{toml}{storage}")).expect("room.toml");
    let refused = serve_with_env(
        &room,
        &[],
        &[
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", "not-the-secret"),
        ],
    );
    let out = client(&refused, &partner)
        .args([
            "job",
            "submit",
            "--module-sha256",
            &sha,
            "--dataset",
            "bank",
            "--cost",
            "0.01",
            "--wait",
        ])
        .output()
        .expect("runs");
    assert!(!out.status.success(), "a refused job is a failed command");
    let failed: Value = serde_json::from_slice(&out.stdout).expect("the job, as JSON");
    assert_eq!(failed["state"], "refused", "{failed}");
    assert!(
        failed["error"]
            .as_str()
            .unwrap_or_default()
            .contains("could not be read"),
        "{failed}"
    );
    drop(refused);
    let server = serve_with_env(&room, &[], &credentials);
    assert_eq!(run_job(&server, "again"), local, "not quarantined");
}

fn ok_client(cmd: &mut Command) -> String {
    service_process::ok(cmd)
}

/// Runs `strongroom ARGS` (with the served room's operator secret), which must succeed.
fn ok(args: &[&str]) -> String {
    service_process::ok(service_process::bin().args(args))
}
