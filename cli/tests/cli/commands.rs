//! Every command family on a local room, as an operator, a bank and a partner run them: the main
//! path works, and the main mistakes end with a failing exit status (2 for an error, 1 for a
//! check that says no), one line on stderr naming what to fix, and nothing written or changed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub(crate) const PASSPHRASE: &str = "cli command tests";

pub(crate) fn strongroom(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strongroom"))
        .args(args)
        .env("STRONGROOM_PASSPHRASE", PASSPHRASE)
        .env_remove("STRONGROOM_SERVER")
        .env_remove("STRONGROOM_TOKEN")
        .output()
        .expect("strongroom runs")
}

/// Runs a command that must succeed; returns its stdout.
pub(crate) fn ok(args: &[&str]) -> String {
    let out = strongroom(args);
    assert!(
        out.status.success(),
        "strongroom {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command that must fail the way a user can act on: exit status 2 (an error) or 1 (a
/// check that says no), and one line saying why (containing `says`). Returns that line.
fn refused(args: &[&str], says: &str) -> String {
    let out = strongroom(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        matches!(out.status.code(), Some(1 | 2)),
        "strongroom {args:?} should fail with status 1 or 2, not {:?}: {stderr}",
        out.status
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "strongroom {args:?}: one line, not:\n{stderr}"
    );
    assert!(
        lines[0].contains(says),
        "strongroom {args:?}: expected '{says}' in: {}",
        lines[0]
    );
    lines[0].to_string()
}

pub(crate) fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// Files and their sizes under `dir`, to show a refused command wrote nothing.
fn snapshot(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("dir").flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push((path.clone(), e.metadata().expect("metadata").len()));
            }
        }
    }
    out.sort();
    out
}

fn audit_size(room: &Path) -> usize {
    ok(&["audit", "export", "--room", p(room), "--out", "-"])
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
}

pub(crate) fn example_module(name: &str) -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = strongroom_contract::toolchain::build_guest_workspace(&repo.join("examples"), false)
        .unwrap_or_else(|e| panic!("{e}"));
    out.join(format!("{}.wasm", name.replace('-', "_")))
}

/// `strongroom dev run --json` of `module` on the demo data written to `data` (`demo-data`).
pub(crate) fn dev_run_on_demo_data(module: &Path, data: &Path) -> Output {
    strongroom(&[
        "dev",
        "run",
        "--module",
        p(module),
        "--schema",
        p(&data.join("schema.toml")),
        "--table",
        &format!("customers={}", p(&data.join("customers.csv"))),
        "--table",
        &format!("transactions={}", p(&data.join("transactions.csv"))),
        "--json",
    ])
}

#[test]
fn every_command_family_works_and_refuses_mistakes_with_one_line_and_nothing_written() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let room = dir.join("room");

    // Operator: a room.
    ok(&["keygen", "--room", p(&room), "--name", "cli-room"]);
    let before = snapshot(&room);
    refused(&["keygen", "--room", p(&room)], "room");
    assert_eq!(snapshot(&room), before, "a refused keygen changed the room");
    let pubkey = ok(&["room", "pubkey", "--room", p(&room)]);
    assert!(pubkey.contains("fingerprint"), "{pubkey}");
    refused(
        &["room", "pubkey", "--room", p(&dir.join("no-room"))],
        "no-room",
    );

    // Bank: a party key, synthetic data, a sealed dataset.
    let party_key = dir.join("bank.party");
    ok(&["party-key", "--name", "bigbank", "--out", p(&party_key)]);
    let key_before = std::fs::read(&party_key).expect("party key");
    refused(
        &["party-key", "--name", "bigbank", "--out", p(&party_key)],
        "exists",
    );
    assert_eq!(std::fs::read(&party_key).expect("key"), key_before);
    let data = dir.join("data");
    ok(&["demo-data", "--customers", "300", "--out", p(&data)]);
    let sealed = dir.join("bank.sealed");
    let seal = |room_key: &Path, out: &Path| {
        strongroom(&[
            "seal",
            "--schema",
            p(&data.join("schema.toml")),
            "--room-key",
            p(room_key),
            "--party-key",
            p(&party_key),
            "--table",
            &format!("customers={}", p(&data.join("customers.csv"))),
            "--table",
            &format!("transactions={}", p(&data.join("transactions.csv"))),
            "--out",
            p(out),
        ])
    };
    assert!(
        seal(&room.join("keys").join("room.pub"), &sealed)
            .status
            .success()
    );
    let not_keys = dir.join("not-keys.pub");
    std::fs::write(&not_keys, "hello\n").expect("write");
    let no_output = dir.join("refused.sealed");
    let out = seal(&not_keys, &no_output);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not-keys.pub"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!no_output.exists(), "a refused seal left its output");
    let inspected = ok(&["dataset", "inspect", p(&sealed)]);
    assert!(inspected.contains("bigbank"), "{inspected}");
    ok(&[
        "dataset",
        "inspect",
        p(&sealed),
        "--verify",
        "--room",
        p(&room),
    ]);
    refused(&["dataset", "inspect", p(&data.join("customers.csv"))], "");

    // Bank: a policy; a broken one changes nothing.
    let policy = dir.join("policy.toml");
    std::fs::write(
        &policy,
        "partner = \"socialco\"\ndataset = \"bank\"\nbudget_rho = \"2\"\nmin_group_size = 20\nresult_delay_seconds = 0\n",
    )
    .expect("policy");
    ok(&["policy", "set", "--room", p(&room), "--file", p(&policy)]);
    let entries = audit_size(&room);
    let broken = dir.join("broken.toml");
    std::fs::write(&broken, "partner = \"socialco\"\nbudget_rho = 2.5\n").expect("write");
    refused(
        &["policy", "set", "--room", p(&room), "--file", p(&broken)],
        "",
    );
    assert_eq!(audit_size(&room), entries, "a refused policy was logged");

    // Partner and bank: a module, inspected and approved; garbage refused.
    let module = example_module("spend-by-category");
    let inspected = ok(&["module", "inspect", p(&module), "--json"]);
    let manifest: serde_json::Value = serde_json::from_str(&inspected).expect("json");
    let sha = manifest["module_sha256"]
        .as_str()
        .expect("the module's hash")
        .to_string();
    refused(&["module", "inspect", p(&policy)], "");
    ok(&[
        "module",
        "approve",
        "--room",
        p(&room),
        "--module-sha256",
        &sha,
        "--partner",
        "socialco",
        "--comment",
        "reviewed",
        "--by",
        "reviewer",
    ]);
    let entries = audit_size(&room);
    refused(
        &[
            "module",
            "approve",
            "--room",
            p(&room),
            "--module-sha256",
            "abc",
            "--partner",
            "socialco",
            "--by",
            "reviewer",
        ],
        "abc",
    );
    assert_eq!(audit_size(&room), entries);

    // Partner: a run with a receipt, checked offline.
    ok(&["budget", "show", "--room", p(&room)]);
    let result = dir.join("result.json");
    let receipt = dir.join("receipt.txt");
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
        "0.5",
        "--threads",
        "2",
        "--out",
        p(&result),
        "--receipt",
        p(&receipt),
    ]);
    let room_pub = room.join("keys").join("room.pub");
    ok(&[
        "receipt",
        "verify",
        "--receipt",
        p(&receipt),
        "--key",
        p(&room_pub),
        "--result",
        p(&result),
    ]);
    // STRONGROOM_SERVER exported for the commands that talk to a served room (as the README
    // says) leaves the offline ones alone; --server given to one of them is a one-line mistake.
    let verify = [
        "receipt",
        "verify",
        "--receipt",
        p(&receipt),
        "--key",
        p(&room_pub),
        "--result",
        p(&result),
    ];
    let out = Command::new(env!("CARGO_BIN_EXE_strongroom"))
        .args(verify)
        .env("STRONGROOM_SERVER", "http://127.0.0.1:9")
        .env("STRONGROOM_TOKEN", "not-used")
        .output()
        .expect("strongroom runs");
    assert!(
        out.status.success(),
        "an exported STRONGROOM_SERVER broke an offline verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut with_server = vec!["--server", "http://127.0.0.1:9"];
    with_server.extend(verify);
    let said = refused(&with_server, "drop --server");
    assert!(said.contains("`strongroom receipt verify`"), "{said}");
    // A check that says no prints its verdict and exits 1.
    let out = strongroom(&[
        "receipt",
        "verify",
        "--receipt",
        p(&policy),
        "--key",
        p(&room_pub),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("INVALID"));
    let entries = audit_size(&room);
    refused(
        &[
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
            "50",
        ],
        "budget",
    );
    assert!(
        audit_size(&room) > entries,
        "a refused job is recorded as refused"
    );
    let listed = ok(&["job", "list", "--room", p(&room)]);
    assert!(listed.contains("released"), "{listed}");
    let released = ok(&["job", "list", "--status", "released", "--room", p(&room)]);
    assert!(!released.contains("held"), "{released}");
    refused(
        &["job", "list", "--status", "held&x=1", "--room", p(&room)],
        "--status",
    );
    refused(
        &["job", "release", "--room", p(&room), "no-such-job"],
        "no-such-job",
    );
    refused(&["job", "show", "job-1"], "--server");

    // Operator: parties and tokens.
    let token = ok(&[
        "party",
        "add",
        "--room",
        p(&room),
        "--role",
        "partner",
        "newco",
    ]);
    assert!(token.contains("sr_"), "{token}");
    refused(
        &[
            "party",
            "add",
            "--room",
            p(&room),
            "--role",
            "partner",
            "newco",
        ],
        "newco",
    );
    ok(&["party", "rotate", "--room", p(&room), "newco"]);
    ok(&["party", "revoke", "--room", p(&room), "newco"]);
    refused(&["party", "revoke", "--room", p(&room), "newco"], "newco");
    assert!(ok(&["party", "list", "--room", p(&room)]).contains("newco"));

    // Security team: export, checkpoint and verify offline; a tampered export is caught.
    let export = dir.join("log.jsonl");
    let checkpoint = dir.join("checkpoint.txt");
    ok(&["audit", "export", "--room", p(&room), "--out", p(&export)]);
    ok(&[
        "audit",
        "checkpoint",
        "--room",
        p(&room),
        "--out",
        p(&checkpoint),
    ]);
    ok(&[
        "audit",
        "verify",
        "--log",
        p(&export),
        "--checkpoint",
        p(&checkpoint),
        "--key",
        p(&room_pub),
    ]);
    let text = std::fs::read_to_string(&export).expect("export");
    std::fs::write(&export, text.replacen("socialco", "socialcp", 1)).expect("write");
    let out = strongroom(&[
        "audit",
        "verify",
        "--log",
        p(&export),
        "--checkpoint",
        p(&checkpoint),
        "--key",
        p(&room_pub),
    ]);
    assert!(!out.status.success(), "a tampered export verified");
    assert!(ok(&["audit", "show", "--room", p(&room)]).contains("policy.set"));

    // Partner's development loop, on plaintext.
    let dev = ok(&[
        "dev",
        "run",
        "--module",
        p(&module),
        "--schema",
        p(&data.join("schema.toml")),
        "--table",
        &format!("customers={}", p(&data.join("customers.csv"))),
        "--table",
        &format!("transactions={}", p(&data.join("transactions.csv"))),
    ]);
    assert!(!dev.trim().is_empty());
    assert!(dev.contains("a room adds noise"), "{dev}");
    let tables = [
        "--table".to_string(),
        format!("customers={}", p(&data.join("customers.csv"))),
        "--table".to_string(),
        format!("transactions={}", p(&data.join("transactions.csv"))),
    ];
    let dev_with = |extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = ["dev", "run", "--module", p(&module), "--schema"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.push(p(&data.join("schema.toml")).to_string());
        args.extend(tables.iter().cloned());
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    // A development run's result reads as a room's does: the same fields, labelled groups.
    let args = dev_with(&["--json"]);
    let dev_json: serde_json::Value =
        serde_json::from_str(&ok(&args.iter().map(String::as_str).collect::<Vec<_>>()))
            .expect("json");
    let room_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&result).expect("result")).expect("json");
    let fields = |v: &serde_json::Value| -> Vec<String> {
        let mut keys: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
        keys.sort();
        keys
    };
    let dev_result = &dev_json["result"];
    assert_eq!(fields(dev_result), fields(&room_json));
    let (dev_group, room_group) = (
        &dev_result["metrics"][0]["groups"][0],
        &room_json["metrics"][0]["groups"][0],
    );
    assert_eq!(fields(dev_group), fields(room_group));
    assert!(dev_group["labels"][0].is_string(), "{dev_group}");
    assert_eq!(dev_group["low"], dev_group["value"], "exact: no interval");
    let args = dev_with(&["--policy", p(&policy), "--cost", "0.5", "--trials", "20"]);
    let forecast = ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(forecast.contains("FORECAST"), "{forecast}");
    assert!(forecast.contains("95% of releases in"), "{forecast}");
    assert!(forecast.contains("suppressed"), "{forecast}");
    let args = dev_with(&["--policy", p(&policy)]);
    refused(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        "--cost",
    );
    let args = dev_with(&["--policy", p(&policy), "--cost", "lots"]);
    refused(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        "--cost",
    );
    let args = dev_with(&["--policy", p(&module), "--cost", "0.5"]);
    refused(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        "policy",
    );

    // The bank's preview, on its room.
    let bank_preview = ok(&[
        "budget",
        "preview",
        "--room",
        p(&room),
        "--partner",
        "socialco",
        "--dataset",
        p(&sealed),
        "--module",
        p(&module),
        "--cost",
        "0.5",
    ]);
    assert!(bank_preview.contains(" left of 2: "), "{bank_preview}");
    refused(
        &[
            "budget",
            "preview",
            "--room",
            p(&room),
            "--dataset",
            p(&sealed),
            "--module",
            p(&module),
            "--cost",
            "0.5",
        ],
        "--partner",
    );
    // The partner's preview, with no room: its policy and the bank's schema.
    let preview = ok(&[
        "budget",
        "preview",
        "--module",
        p(&module),
        "--policy",
        p(&policy),
        "--dataset-schema",
        p(&data.join("schema.toml")),
        "--cost",
        "0.5",
    ]);
    assert!(preview.contains("4 job(s) of this cost"), "{preview}");
    assert!(preview.contains("value: 95% interval"), "{preview}");
    assert!(
        preview.contains("released 95% of the time from"),
        "{preview}"
    );
    refused(
        &[
            "budget",
            "preview",
            "--module",
            p(&module),
            "--policy",
            p(&policy),
            "--cost",
            "0.5",
        ],
        "--dataset-schema",
    );
}

#[test]
fn sql_is_explained_run_on_a_sample_and_refused_with_its_place() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let data = dir.join("sample");
    ok(&["demo-data", "--customers", "200", "--out", p(&data)]);
    let schema = data.join("schema.toml");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let query = repo.join("examples/sql/spend-by-category.sql");

    // What it reads, its key, its bounds, its hashes; with a policy and a cost, its noise.
    let explained = ok(&["sql", "explain", p(&query), "--schema", p(&schema)]);
    assert!(explained.contains("query  sha256:"), "{explained}");
    assert!(
        explained.contains("reads  transactions: mcc_group, amount"),
        "{explained}"
    );
    assert!(explained.contains("average_ticket"), "{explained}");
    let policy = dir.join("policy.toml");
    std::fs::write(
        &policy,
        "partner = \"socialco\"\ndataset = \"bank\"\nbudget_rho = \"1\"\nmax_groups_per_entity = 10\n",
    )
    .expect("policy");
    let noise = ok(&[
        "sql",
        "explain",
        p(&query),
        "--schema",
        p(&schema),
        "--policy",
        p(&policy),
        "--cost",
        "0.25",
    ]);
    assert!(
        noise.contains("noise std") && noise.contains("+/-"),
        "{noise}"
    );
    let json: serde_json::Value = serde_json::from_str(&ok(&[
        "sql",
        "explain",
        p(&query),
        "--schema",
        p(&schema),
        "--json",
    ]))
    .expect("json");
    assert_eq!(json["metrics"][0]["name"], "spend");
    assert_eq!(json["max_groups_per_customer"], 10);

    // A query without bounds: one line, with the file, line and column, and bounds to use.
    let bad = dir.join("bad.sql");
    std::fs::write(
        &bad,
        "SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = 10)\n  mcc_group,\n  SUM(amount) AS spend\nFROM transactions GROUP BY mcc_group\n",
    )
    .expect("query");
    let line = refused(
        &["sql", "explain", p(&bad), "--schema", p(&schema)],
        "bad.sql:3:3:",
    );
    assert!(line.contains("contribution_bounds_per_group =>"), "{line}");
    refused(&["sql", "explain", p(&query)], "served room");

    // On the sample, through the engine: exact aggregates, the query's hashes.
    let engine = example_module("sql-engine");
    let run: serde_json::Value = serde_json::from_str(&ok(&[
        "dev",
        "run",
        "--sql",
        p(&query),
        "--engine",
        p(&engine),
        "--schema",
        p(&schema),
        "--table",
        &format!("customers={}", p(&data.join("customers.csv"))),
        "--table",
        &format!("transactions={}", p(&data.join("transactions.csv"))),
        "--json",
    ]))
    .expect("json");
    assert_eq!(run["outcome"], "completed", "{run}");
    assert_eq!(run["sql"]["query_sha256"], json["query_sha256"]);
    assert_eq!(run["result"]["metrics"][1]["name"], "purchases");
    refused(
        &[
            "dev",
            "run",
            "--sql",
            p(&bad),
            "--engine",
            p(&engine),
            "--schema",
            p(&schema),
            "--table",
            &format!("customers={}", p(&data.join("customers.csv"))),
            "--table",
            &format!("transactions={}", p(&data.join("transactions.csv"))),
        ],
        "bad.sql:3:3:",
    );
}

/// `module embed-manifest`: a manifest in TOML, encoded by the format's one encoder and placed in
/// the component's core module. Written by hand for the Rust example, it is byte for byte what
/// the SDK embeds, and the module runs to the same exact aggregates.
#[test]
fn a_manifest_written_in_toml_is_the_one_the_sdk_embeds() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let original = root.join("examples/target/wasm32-wasip2/release/spend_by_category.wasm");
    let toml = root.join("tests/manifests/spend-by-category.toml");
    let embedded = dir.join("embedded.wasm");
    let embed = |extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = [
            "module",
            "embed-manifest",
            p(&original),
            "--manifest",
            p(&toml),
            "--out",
            p(&embedded),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let args = embed(&[]);
    refused(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        "already carries a manifest",
    );
    assert!(!embedded.exists(), "nothing written");
    let args = embed(&["--replace"]);
    let said = ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        said.contains("embedded the manifest of spend-by-category 0.1.0"),
        "{said}"
    );

    // The same section bytes as the SDK's: the manifest moved, nothing else changed.
    let section = |path: &Path| -> Vec<u8> {
        let bytes = std::fs::read(path).expect("module");
        let mut found = Vec::new();
        for payload in wasmparser::Parser::new(0).parse_all(&bytes) {
            if let Ok(wasmparser::Payload::CustomSection(r)) = payload
                && r.name() == "strongroom-manifest"
            {
                found.push(r.data().to_vec());
            }
        }
        assert_eq!(found.len(), 1, "{}: one manifest", path.display());
        found.remove(0)
    };
    assert_eq!(section(&embedded), section(&original));
    let inspect = |path: &Path| {
        ok(&["module", "inspect", p(path)])
            .lines()
            .skip(2)
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(inspect(&embedded), inspect(&original));

    // It runs to the same exact aggregates.
    let data = dir.join("data");
    ok(&["demo-data", "--customers", "200", "--out", p(&data)]);
    let run = |module: &Path| -> serde_json::Value {
        let out = dev_run_on_demo_data(module, &data);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str::<serde_json::Value>(&text).expect("json")["result"].clone()
    };
    assert_eq!(run(&embedded), run(&original));

    // Mistakes in the file are one line each, naming what to fix.
    let base = std::fs::read_to_string(&toml).expect("toml");
    for (change, says) in [
        (
            base.replace("kind = \"sum\"", "kind = \"median\""),
            "kind 'median'",
        ),
        (
            base.replace("lower = 0.0\nupper = 3000.0\n", ""),
            "needs both lower and upper",
        ),
        (
            base.replace("\"customers.age_band\"]", "\"age_band\"]"),
            "write table.column",
        ),
        (
            base.replace("type = \"float\"", "type = \"decimal\""),
            "column type 'decimal'",
        ),
        (
            base.replace(
                "max_groups_per_entity = 10",
                "max_groups_per_entity = 10\ncolour = 1",
            ),
            "unknown field",
        ),
        (base.replace("upper = 3000.0", "upper = -1.0"), "bounds"),
        (
            base.replace(
                "name = \"spend\"",
                &format!("name = \"{}\"", "s".repeat(70_000)),
            ),
            "at most 4096",
        ),
    ] {
        let bad = dir.join("bad.toml");
        std::fs::write(&bad, change).expect("write");
        refused(
            &[
                "module",
                "embed-manifest",
                p(&original),
                "--manifest",
                p(&bad),
                "--out",
                p(&dir.join("x.wasm")),
                "--replace",
            ],
            says,
        );
    }
}
