//! Every command that works on a local room and on a served one prints the same thing both ways:
//! the same operation, written once, over the room's directory or over HTTP.

use std::path::Path;

use super::service_process::{bin, client, ok, repo, serve};

/// The command's output on the local room and through the served one, job ids aside.
fn both(
    room: &Path,
    server: &super::service_process::Server,
    token: &str,
    args: &[&str],
) -> String {
    let local = ok(bin().args(args).arg("--room").arg(room));
    let served = ok(client(server, token).args(args));
    assert_eq!(
        local, served,
        "strongroom {args:?}: local and served differ"
    );
    local
}

fn job_ids(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || c == '"' || c == ',')
        .filter(|w| w.starts_with("job-"))
        .map(String::from)
        .collect()
}

#[test]
fn local_and_served_rooms_print_the_same_for_every_shared_command() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let room = dir.join("room");
    ok(bin().args(["keygen", "--room"]).arg(&room));
    let token = |name: &str, role: &str| {
        ok(bin()
            .args(["party", "add", "--role", role, name, "--room"])
            .arg(&room))
        .split_whitespace()
        .find(|w| w.starts_with("sr_"))
        .expect("a token")
        .to_string()
    };
    let bank = token("bigbank", "bank");
    let partner = token("socialco", "partner");
    let other = token("otherco", "partner");
    let policy = dir.join("policy.toml");
    std::fs::write(
        &policy,
        "partner = \"socialco\"\ndataset = \"bank\"\nbudget_rho = \"3\"\nrelease = \"held\"\nmin_group_size = 20\nresult_delay_seconds = 0\n",
    )
    .expect("policy");
    let server = serve(&room);

    both(&room, &server, &bank, &["room", "pubkey"]);
    both(
        &room,
        &server,
        &bank,
        &["policy", "set", "--file", policy.to_str().expect("utf-8")],
    );
    both(&room, &server, &bank, &["budget", "show"]);
    both(&room, &server, &bank, &["budget", "show", "--json"]);

    // The module the bank decides on, built from source.
    let examples =
        strongroom_contract::toolchain::build_guest_workspace(&repo().join("examples"), false)
            .unwrap_or_else(|e| panic!("{e}"));
    let module = examples.join("spend_by_category.wasm");
    let inspected: serde_json::Value = serde_json::from_str(&ok(bin()
        .args(["module", "inspect", "--json"])
        .arg(&module)))
    .expect("json");
    let sha = inspected["module_sha256"]
        .as_str()
        .expect("hash")
        .to_string();
    let approve = [
        "module",
        "approve",
        "--module-sha256",
        &sha,
        "--partner",
        "socialco",
        "--comment",
        "reviewed",
    ];
    let local = ok(bin()
        .args(approve)
        .args(["--by", "bigbank", "--room"])
        .arg(&room));
    let served = ok(client(&server, &bank).args(approve));
    assert_eq!(local, served, "module approve: local and served differ");

    // Two held results: one released locally, one through the served room.
    let data = dir.join("data");
    ok(bin()
        .args(["demo-data", "--customers", "200", "--out"])
        .arg(&data));
    let party_key = dir.join("bank.party");
    ok(bin()
        .args(["party-key", "--name", "bigbank", "--out"])
        .arg(&party_key));
    let sealed = dir.join("bank.sealed");
    ok(bin()
        .args(["seal", "--schema"])
        .arg(data.join("schema.toml"))
        .arg("--room-key")
        .arg(room.join("keys").join("room.pub"))
        .arg("--party-key")
        .arg(&party_key)
        .arg("--table")
        .arg(format!(
            "customers={}",
            data.join("customers.csv").display()
        ))
        .arg("--table")
        .arg(format!(
            "transactions={}",
            data.join("transactions.csv").display()
        ))
        .arg("--out")
        .arg(&sealed));
    ok(client(&server, &bank)
        .args(["dataset", "upload"])
        .arg(&sealed));
    let datasets = both(&room, &server, &bank, &["dataset", "list"]);
    assert!(
        datasets.contains("bigbank") && datasets.contains("200"),
        "{datasets}"
    );
    both(&room, &server, &bank, &["dataset", "list", "--json"]);
    let shown = both(&room, &server, &bank, &["dataset", "show", "bank"]);
    assert!(
        shown.contains("table transactions") && shown.contains("0=Grocery stores"),
        "{shown}"
    );
    both(
        &room,
        &server,
        &bank,
        &["dataset", "show", "bank", "--json"],
    );
    let policies = both(&room, &server, &bank, &["policy", "show"]);
    assert!(policies.contains("partner = \"socialco\""), "{policies}");

    // The partner takes its policy and the bank's schema from the served room, and previews a
    // job with them offline (STRONGROOM_SERVER set, as for the commands that use it).
    let (its_policy, its_schema) = (dir.join("its-policy.toml"), dir.join("its-schema.toml"));
    ok(client(&server, &partner)
        .args(["policy", "show", "--out"])
        .arg(&its_policy));
    ok(client(&server, &partner)
        .args(["dataset", "show", "bank", "--schema-out"])
        .arg(&its_schema));
    let not_granted = bin()
        .args([
            "--server", &server.1, "--token", &other, "dataset", "show", "bank",
        ])
        .output()
        .expect("runs");
    assert!(
        !not_granted.status.success(),
        "a partner without a policy saw the dataset"
    );
    assert_eq!(
        ok(client(&server, &other).args(["policy", "show"])),
        "no policy in force\n"
    );
    let preview = ok(bin()
        .env("STRONGROOM_SERVER", &server.1)
        .args(["budget", "preview", "--cost", "0.5", "--module"])
        .arg(&module)
        .arg("--policy")
        .arg(&its_policy)
        .arg("--dataset-schema")
        .arg(&its_schema));
    assert!(preview.contains("6 job(s) of this cost"), "{preview}");
    // A file already there is never replaced; a partner without a policy is told so.
    let again = client(&server, &partner)
        .args(["policy", "show", "--out"])
        .arg(&its_policy)
        .output()
        .expect("runs");
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("exists; choose another --out"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let no_policy = client(&server, &other)
        .args(["budget", "preview", "--cost", "0.5", "--module"])
        .arg(&module)
        .output()
        .expect("runs");
    assert!(!no_policy.status.success());
    assert!(
        String::from_utf8_lossy(&no_policy.stderr).contains("no policy you may see is in force"),
        "{}",
        String::from_utf8_lossy(&no_policy.stderr)
    );
    // The same preview over the served room: its budget left, no operator secret.
    let served_preview = ok(client(&server, &partner)
        .args(["budget", "preview", "--cost", "0.5", "--module"])
        .arg(&module));
    assert!(
        served_preview.contains("rho 3 left of 3: 6 job(s) of this cost"),
        "{served_preview}"
    );
    assert!(
        served_preview.contains("value: 95% interval"),
        "{served_preview}"
    );
    // Sample data that fits the bank's schema, and a noisy run on it before any budget is spent.
    let sample = dir.join("sample");
    let made = ok(bin()
        .args(["demo-data", "--customers", "300", "--out"])
        .arg(&sample)
        .arg("--schema")
        .arg(&its_schema));
    assert!(made.contains("customers.csv (300 rows)"), "{made}");
    let forecast = ok(bin()
        .args(["dev", "run", "--cost", "0.5", "--trials", "20", "--module"])
        .arg(&module)
        .arg("--schema")
        .arg(sample.join("schema.toml"))
        .arg("--table")
        .arg(format!(
            "customers={}",
            sample.join("customers.csv").display()
        ))
        .arg("--table")
        .arg(format!(
            "transactions={}",
            sample.join("transactions.csv").display()
        ))
        .arg("--policy")
        .arg(&its_policy));
    assert!(
        forecast.contains("FORECAST") && forecast.contains("95% of releases in"),
        "{forecast}"
    );
    let mut held = Vec::new();
    for _ in 0..2 {
        let out = ok(bin()
            .args([
                "run",
                "--partner",
                "socialco",
                "--cost",
                "0.5",
                "--json",
                "--module",
            ])
            .arg(&module)
            .arg("--dataset")
            .arg(&sealed)
            .arg("--room")
            .arg(&room));
        held.push(job_ids(&out).first().expect("a job id").clone());
    }
    let local = ok(bin()
        .args(["job", "release", &held[0], "--room"])
        .arg(&room));
    let served = ok(client(&server, &bank).args(["job", "release", &held[1]]));
    assert_eq!(
        local.replace(&held[0], "JOB"),
        served.replace(&held[1], "JOB"),
        "releasing a held result: local and served differ"
    );
    both(&room, &server, &bank, &["budget", "show"]);
    let jobs = both(&room, &server, &bank, &["job", "list"]);
    assert_eq!(jobs.matches("socialco").count(), 2, "{jobs}");
    both(&room, &server, &bank, &["job", "list", "--held", "--json"]);
    both(
        &room,
        &server,
        &bank,
        &["job", "list", "--status", "released"],
    );
    let auditor = token("security", "auditor");
    both(
        &room,
        &server,
        &auditor,
        &["audit", "prove", "--index", "1", "--size", "4"],
    );
    both(
        &room,
        &server,
        &auditor,
        &["audit", "prove", "--old-size", "2", "--size", "5"],
    );
    both(&room, &server, &auditor, &["audit", "export", "--out", "-"]);
    let cp = dir.join("checkpoint.txt");
    both(
        &room,
        &server,
        &auditor,
        &["audit", "checkpoint", "--out", cp.to_str().expect("utf-8")],
    );
}
