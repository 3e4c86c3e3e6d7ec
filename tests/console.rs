//! The web console in a real browser: headless Chromium (Debian's `chromium` package) driven by
//! Playwright (tests/console/console.mjs, with playwright-core and axe-core from npm), against a
//! room served over TCP by the real router. This test sets the room up, runs the script's
//! phases, and between them changes the served log as a dishonest operator would: one entry
//! altered (the browser must name it), then the log rolled back to an earlier state (the browser
//! must call it a rollback against the checkpoint it kept), then grown from there past the
//! checkpoint the browser kept (a fork).
//!
//! Without Chromium or Node.js the test says so and passes, except under CI, where it fails:
//! `.ci/run` installs both. `STRONGROOM_BLESS=1` writes its screenshots to docs/console/.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use axum::body::Body;
use axum::http::StatusCode;
use serde_json::json;
use strongroom_server::{ServiceConfig, router};
use strongroom_tests::http::{call, json_body, sealed_bank, served};
use strongroom_tests::{example, execute, hostile, query_i64, repo_root};

fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("STRONGROOM_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The browser and the test's npm packages, or why not.
fn browser_tools(dir: &Path) -> Result<PathBuf, String> {
    let chromium = chromium().ok_or("no Chromium (apt-get install chromium)")?;
    if !have("node") || !have("npm") {
        return Err("no Node.js and npm".into());
    }
    let installed = dir
        .join("node_modules/playwright-core/package.json")
        .exists()
        && dir.join("node_modules/axe-core/axe.min.js").exists();
    if !installed {
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(dir)
            .output()
            .map_err(|e| format!("npm ci: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "npm ci in {} failed: {}",
                dir.display(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    Ok(chromium)
}

fn run_phase(dir: &Path, phase: &str, env: &serde_json::Value) {
    let out = Command::new("node")
        .arg("console.mjs")
        .arg(phase)
        .current_dir(dir)
        .env("STRONGROOM_CONSOLE", env.to_string())
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    print!("{stdout}");
    assert!(
        out.status.success(),
        "console phase '{phase}' failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_console_in_a_real_browser() {
    let dir = repo_root().join("tests/console");
    let chromium = match browser_tools(&dir) {
        Ok(c) => c,
        Err(why) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("SKIPPED the browser tests of the web console: {why}");
            return;
        }
        Err(why) => panic!("the browser tests of the web console need their tools: {why}"),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let s = rt.block_on(served(ServiceConfig {
        failures_per_source: 1e9,
        ..ServiceConfig::default()
    }));
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("listen");
    let port = listener.local_addr().expect("addr").port();
    let app = router(Arc::clone(&s.state));
    rt.spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });

    // The bank's data and policies: socialco's results are held for review, and its modules
    // need the bank's approval; otherco runs a job of its own.
    let app = &s.app;
    let room = &s.state.room;
    let engine = example("sql-engine");
    let engine_sha256 = hex::encode(ring::digest::digest(&ring::digest::SHA256, &engine).as_ref());
    let other_job = rt.block_on(async {
        let sealed = sealed_bank(s.dir.path(), &s.state.room);
        let (status, _, body) = call(app, "PUT", "/v1/datasets", Some(&s.bank), Body::from(sealed)).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        for policy in [
            format!("partner = \"socialco\"\ndataset = \"bank\"\nbudget_rho = \"2.0\"\nresult_delay_seconds = 0\nmin_group_size = 20\nrelease = \"held\"\napproval_required_for_isolated = true\n\n[sql]\nengine_sha256 = \"{engine_sha256}\"\n"),
            "partner = \"otherco\"\ndataset = \"bank\"\nbudget_rho = \"1.0\"\nresult_delay_seconds = 0\nmin_group_size = 20\n".to_string(),
        ] {
            let (status, _, body) = call(app, "PUT", "/v1/policies", Some(&s.bank), Body::from(policy)).await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        // The SQL engine, in the room and approved for socialco.
        let (status, _, body) = call(app, "POST", "/v1/modules", Some(&s.partner), Body::from(engine)).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, _, body) = call(
            app,
            "POST",
            &format!("/v1/modules/{engine_sha256}/decision"),
            Some(&s.bank),
            json_body(json!({"partner": "socialco", "approve": true, "comment": "the SQL engine"})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, _, module) = call(app, "POST", "/v1/modules", Some(&s.other_partner), Body::from(example("fraud-alerts-by-region"))).await;
        assert_eq!(status, StatusCode::CREATED, "{module}");
        let (status, _, queued) = call(
            app,
            "POST",
            "/v1/jobs",
            Some(&s.other_partner),
            json_body(json!({"module_sha256": module["module_sha256"], "dataset": "bank", "cost": "0.1"})),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
        queued["job_id"].as_str().expect("id").to_string()
    });
    // A module of socialco's whose name is markup, waiting for the bank.
    let markup = hostile("markup-name");
    let markup_sha256 = hex::encode(ring::digest::digest(&ring::digest::SHA256, &markup).as_ref());
    rt.block_on(async {
        let (status, _, body) = call(
            app,
            "POST",
            "/v1/modules",
            Some(&s.partner),
            Body::from(markup),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    });
    // What the log looks like now: the state a dishonest operator later rolls back to.
    let (early_size, early_nodes): (i64, Vec<u8>) = room
        .db()
        .read(|conn| {
            conn.query_row(
                "SELECT size, nodes FROM audit_frontier WHERE id = 1",
                strongroom::params![],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(strongroom::group_commit::WriteError::from)
        })
        .expect("frontier");

    let module = example("spend-by-category");
    let module_path = s.dir.path().join("spend_by_category.wasm");
    std::fs::write(&module_path, &module).expect("module");
    let module_sha256 = hex::encode(ring::digest::digest(&ring::digest::SHA256, &module).as_ref());
    let state_dir = tempfile::tempdir().expect("tempdir");
    let screenshots = if std::env::var_os("STRONGROOM_BLESS").is_some() {
        repo_root().join("docs/console")
    } else {
        state_dir.path().join("screenshots")
    };
    let mut env = json!({
        "chromium": chromium,
        "base": format!("http://127.0.0.1:{port}/"),
        "tokens": {"bank": s.bank, "partner": s.partner, "auditor": s.auditor},
        "module_path": module_path,
        "module_sha256": module_sha256,
        "markup_sha256": markup_sha256,
        "markup_name": "<img src=x onerror=\"window.__pwned=1\"><b>bold</b>",
        "other_job": other_job,
        "fingerprint": s.state.room.keys().public.fingerprint(),
        "state_dir": state_dir.path(),
        "screenshots": screenshots,
    });
    run_phase(&dir, "flows", &env);

    // A dishonest operator alters one entry: the browser names it as the first bad entry.
    let bad = query_i64(
        room,
        "SELECT MAX(idx) FROM audit_entries WHERE entry LIKE '%result.released_by_bank%'",
        strongroom::params![],
    );
    let original: String = room
        .db()
        .read(|conn| {
            conn.query_row(
                "SELECT entry FROM audit_entries WHERE idx = ?",
                strongroom::params![bad],
                |r| r.get(0),
            )
            .map_err(strongroom::group_commit::WriteError::from)
        })
        .expect("entry");
    let altered = original.replace(
        "Checked against the agreement.",
        "Checked against the agreement!",
    );
    assert_ne!(altered, original);
    execute(
        room,
        "UPDATE audit_entries SET entry = ? WHERE idx = ?",
        strongroom::params![altered, bad],
    );
    env["bad_entry"] = json!(bad);
    run_phase(&dir, "tampered", &env);
    execute(
        room,
        "UPDATE audit_entries SET entry = ? WHERE idx = ?",
        strongroom::params![original, bad],
    );

    // The operator restores an older copy of the log: every entry and checkpoint it serves is
    // genuinely signed, but the browser verified a longer log before.
    let verified_size = query_i64(
        room,
        "SELECT size FROM audit_frontier WHERE id = 1",
        strongroom::params![],
    );
    execute(
        room,
        "DELETE FROM audit_entries WHERE idx >= ?",
        strongroom::params![early_size],
    );
    execute(
        room,
        "UPDATE audit_frontier SET size = ?, nodes = ? WHERE id = 1",
        strongroom::params![early_size, early_nodes],
    );
    run_phase(&dir, "rolled-back", &env);

    // And carries on from there: the log grows past what the browser verified, on another
    // branch. Each policy set is one entry.
    rt.block_on(async {
        let policy = "partner = \"otherco\"\ndataset = \"bank\"\nbudget_rho = \"1.0\"\nresult_delay_seconds = 0\nmin_group_size = 21\n";
        for _ in early_size..=verified_size {
            let (status, _, body) = call(app, "PUT", "/v1/policies", Some(&s.bank), Body::from(policy)).await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
    });
    run_phase(&dir, "forked", &env);
    drop(s);
}
