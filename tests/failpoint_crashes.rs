//! A room killed inside any mutating operation, then started again: the log verifies offline and
//! the room's state is exactly what the log says, at every step of every operation.
//!
//! Each case copies a prepared room, runs one operation in `crash-harness` with one failpoint
//! set to end the process there (an abort: nothing unwinds, as with a kill), checks the room as
//! a restart finds it, runs the operation again and checks once more.

use std::path::Path;
use std::process::{Command, Output};

/// (failpoint, operation that passes through it).
const CASES: &[(&str, &str)] = &[
    ("policy.before_entry", "set-policy"),
    ("change.before_commit", "set-policy"),
    ("change.after_commit", "set-policy"),
    ("decision.before_entry", "decide-module"),
    ("change.before_commit", "decide-module"),
    ("party.before_entry", "add-party"),
    ("change.before_commit", "add-party"),
    ("change.after_commit", "add-party"),
    ("party.before_entry", "rotate-token"),
    ("change.after_commit", "rotate-token"),
    ("party.before_entry", "revoke-party"),
    ("held.before_entry", "release-held"),
    ("change.before_commit", "release-held"),
    ("change.after_commit", "release-held"),
    ("job.inside_charge", "run-job"),
    ("job.after_charge", "run-job"),
    ("job.after_started", "run-job"),
    ("job.after_run", "run-job"),
    ("job.after_result_entry", "run-job"),
    ("job.before_release_commit", "run-job"),
    ("job.after_release", "run-job"),
    ("job.after_charge", "run-job-partitioned"),
    ("remote.after_collect", "run-job-partitioned"),
    ("job.after_run", "run-job-partitioned"),
    ("job.after_result_entry", "run-job-partitioned"),
    ("job.after_result_entry", "run-job-deferred"),
    ("job.before_settle", "run-job-deferred"),
    ("job.after_release", "run-job-deferred"),
    ("job.after_result_entry", "run-held-job"),
    ("job.after_release", "run-held-job"),
];

fn harness(args: &[&str], failpoint: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_crash-harness"));
    command.args(args).env_remove("FAILPOINTS");
    if let Some(point) = failpoint {
        command.env("FAILPOINTS", format!("{point}=panic"));
    }
    command.output().expect("the harness runs")
}

fn ok(args: &[&str]) -> String {
    let out = harness(args, None);
    assert!(
        out.status.success(),
        "crash-harness {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("dir");
    for entry in std::fs::read_dir(from).expect("read dir").flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

#[test]
fn a_room_killed_at_any_step_of_any_mutation_restarts_with_its_state_as_its_log_says() {
    let base = tempfile::tempdir().expect("tempdir");
    let prepared = base.path().join("prepared");
    ok(&["setup", prepared.to_str().expect("utf-8")]);
    ok(&["check", prepared.to_str().expect("utf-8")]);
    for (n, (point, operation)) in CASES.iter().enumerate() {
        let room = base.path().join(format!("case-{n}"));
        copy_dir(&prepared, &room);
        let dir = room.to_str().expect("utf-8");
        let crashed = harness(&["op", dir, operation], Some(point));
        assert!(
            !crashed.status.success() && crashed.status.code().is_none(),
            "{operation} did not end at {point}: {:?} {}",
            crashed.status,
            String::from_utf8_lossy(&crashed.stderr)
        );
        let after_crash = harness(&["check", dir], None);
        assert!(
            after_crash.status.success(),
            "killed at {point} in {operation}, the restarted room: {}",
            String::from_utf8_lossy(&after_crash.stderr)
        );
        // Once restarted, the room goes on: the operation succeeds, or (when it had committed
        // before the kill) is refused with a one-line reason, and the room checks out again.
        let again = harness(&["op", dir, operation], None);
        assert!(
            again.status.code().is_some(),
            "{operation} after a restart crashed: {}",
            String::from_utf8_lossy(&again.stderr)
        );
        ok(&["check", dir]);
    }
}
