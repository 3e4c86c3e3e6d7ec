//! Sealing holds bounded memory whatever the input size: with a small sort budget, the peak
//! resident memory of `strongroom seal` stays far below the size of its input.

use std::process::Command;

fn strongroom(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_strongroom"))
        .args(args)
        .env("STRONGROOM_PASSPHRASE", "memory test")
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "strongroom {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn sealing_a_large_input_stays_within_a_small_memory_budget() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = |name: &str| dir.path().join(name).to_str().expect("utf8").to_string();
    strongroom(&["demo-data", "--customers", "60000", "--out", &p("data")]);
    let input_bytes: u64 = ["customers.csv", "transactions.csv"]
        .iter()
        .map(|f| {
            std::fs::metadata(dir.path().join("data").join(f))
                .expect("csv")
                .len()
        })
        .sum();
    strongroom(&["keygen", "--room", &p("room")]);
    strongroom(&["party-key", "--name", "bank", "--out", &p("bank.key")]);
    let out = strongroom(&[
        "seal",
        "--schema",
        &p("data/schema.toml"),
        "--room-key",
        &p("room/keys/room.pub"),
        "--party-key",
        &p("bank.key"),
        "--table",
        &format!("customers={}", p("data/customers.csv")),
        "--table",
        &format!("transactions={}", p("data/transactions.csv")),
        "--out",
        &p("bank.sealed"),
        "--memory-budget-mib",
        "4",
        "--chunk-rows",
        "16384",
    ]);
    let peak_mib: u64 = out
        .split("peak memory ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no peak memory in: {out}"));
    let input_mib = input_bytes >> 20;
    assert!(
        input_mib >= 40,
        "input too small to show anything: {input_mib} MiB"
    );
    // Holding the rows in memory would take several times the CSV's size (one string per key,
    // typed columns, Arrow buffers); with spilling the whole process, binary included, stays below
    // the input's size, and the margin grows with the input.
    assert!(
        peak_mib < input_mib,
        "peak memory {peak_mib} MiB for {input_mib} MiB of input"
    );
    let inspected = strongroom(&[
        "dataset",
        "inspect",
        &p("bank.sealed"),
        "--verify",
        "--room",
        &p("room"),
    ]);
    assert!(
        inspected.contains("every chunk authenticates"),
        "{inspected}"
    );
}
