//! Crash test: a writer killed with SIGKILL in the middle of appends leaves a log that verifies up
//! to its last durable entry, and no checkpoint ever claims more than is durable.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn strongroom(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_strongroom"))
        .args(args)
        .output()
        .expect("strongroom runs")
}

fn ok(args: &[&str]) -> String {
    let out = strongroom(args);
    assert!(
        out.status.success(),
        "strongroom {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn size_of(checkpoint: &Path) -> u64 {
    std::fs::read_to_string(checkpoint)
        .expect("checkpoint")
        .lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .expect("size line")
}

#[test]
fn a_killed_writer_leaves_a_log_that_verifies_to_its_last_durable_entry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let room = dir.path().join("room");
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "crash test secret").expect("secret");
    let (room_s, secret_s) = (room.to_str().expect("utf8"), secret.to_str().expect("utf8"));
    ok(&["keygen", "--room", room_s, "--secret-file", secret_s]);

    let mut writer = Command::new(env!("CARGO_BIN_EXE_strongroom"))
        .args([
            "audit",
            "stress",
            "--room",
            room_s,
            "--secret-file",
            secret_s,
            "--entries",
            "10000000",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("writer starts");

    // Take checkpoints while the writer appends, then kill it without warning.
    let mid = dir.path().join("mid.txt");
    let started = Instant::now();
    let mut mid_size = 0;
    while started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(200));
        ok(&[
            "audit",
            "checkpoint",
            "--room",
            room_s,
            "--secret-file",
            secret_s,
            "--out",
            mid.to_str().expect("utf8"),
        ]);
        mid_size = size_of(&mid);
        if mid_size > 200 {
            break;
        }
    }
    assert!(mid_size > 1, "the writer appended nothing in 20 s");
    std::thread::sleep(Duration::from_millis(150));
    writer.kill().expect("SIGKILL");
    writer.wait().expect("reaped");

    let export = dir.path().join("log.jsonl");
    let end = dir.path().join("end.txt");
    ok(&[
        "audit",
        "export",
        "--room",
        room_s,
        "--secret-file",
        secret_s,
        "--out",
        export.to_str().expect("utf8"),
    ]);
    ok(&[
        "audit",
        "checkpoint",
        "--room",
        room_s,
        "--secret-file",
        secret_s,
        "--out",
        end.to_str().expect("utf8"),
    ]);
    let lines = std::fs::read_to_string(&export)
        .expect("export")
        .lines()
        .count() as u64;
    let end_size = size_of(&end);
    assert_eq!(
        end_size, lines,
        "the checkpoint covers exactly the durable entries"
    );
    assert!(
        mid_size <= end_size,
        "an earlier checkpoint claimed {mid_size} > {end_size} durable entries"
    );
    let vkey = room.join("keys").join("room.vkey");
    let verified = ok(&[
        "audit",
        "verify",
        "--log",
        export.to_str().expect("utf8"),
        "--checkpoint",
        end.to_str().expect("utf8"),
        "--key",
        vkey.to_str().expect("utf8"),
        "--previous",
        mid.to_str().expect("utf8"),
    ]);
    assert!(verified.contains("OK:"), "{verified}");
    // And the room goes on appending after the crash.
    ok(&[
        "audit",
        "stress",
        "--room",
        room_s,
        "--secret-file",
        secret_s,
        "--entries",
        "3",
    ]);
}
