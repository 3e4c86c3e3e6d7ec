//! `strongroom demo --serve`: after the story, the demo's room is served with its web console,
//! with a login for each role, a module waiting for the bank's review and a job of the
//! partner's already run, until Ctrl-C.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use strongroom::keys::OperatorSecret;
use strongroom::room::Room;
use strongroom_api::requests::JobSubmission;
use strongroom_server::auth::{Role, add_party};
use strongroom_server::{ServiceConfig, Tls};

use super::client::Remote;

/// Serves the demo room at `listen` and prepares what each role's console shows first.
pub(super) fn serve(
    out: &Path,
    secret: &OperatorSecret,
    wasm_dir: &Path,
    listen: SocketAddr,
) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let room = rt.block_on(Room::open(&out.join("room"), secret))?;
    let fingerprint = room.keys().public.fingerprint();
    let mut logins = Vec::new();
    for (name, role) in [
        ("bigbank", Role::Bank),
        ("socialco", Role::Partner),
        ("secteam", Role::Auditor),
    ] {
        logins.push((name, role, rt.block_on(add_party(&room, name, role))?));
    }
    let listener = std::net::TcpListener::bind(listen)
        .with_context(|| format!("cannot listen on {listen} (--listen ADDR:PORT)"))?;
    let local = listener.local_addr()?;
    drop(listener);
    let server = rt.spawn(async move {
        strongroom_server::serve(room, local, ServiceConfig::default(), Tls::Off).await
    });
    let base = format!("http://{local}");
    let token = |role: Role| -> &str {
        logins
            .iter()
            .find(|(_, r, _)| *r == role)
            .map(|(_, _, t)| t.as_str())
            .unwrap_or_default()
    };
    let bank = Remote::new(&base, Some(token(Role::Bank)), None)?;
    let partner = Remote::new(&base, Some(token(Role::Partner)), None)?;
    let started = Instant::now();
    while bank.get("/v1/health").is_err() {
        if started.elapsed() > Duration::from_secs(30) || server.is_finished() {
            bail!("the console's server did not start on {local}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bank.send_file(
        "PUT",
        "/v1/datasets",
        &out.join("bank.sealed"),
        "application/octet-stream",
    )?;
    let approved = partner.send_file(
        "POST",
        "/v1/modules",
        &wasm_dir.join("spend_by_category.wasm"),
        "application/wasm",
    )?;
    // A module the bank has not seen: waiting for its review in the console.
    partner.send_file(
        "POST",
        "/v1/modules",
        &wasm_dir.join("column_sum.wasm"),
        "application/wasm",
    )?;
    partner.send_json(
        "POST",
        "/v1/jobs",
        &JobSubmission {
            module_sha256: approved["module_sha256"].as_str().map(String::from),
            sql: None,
            dataset: "bank".into(),
            cost: "0.05".into(),
            audience_list: None,
            parameters: Default::default(),
        },
    )?;
    println!("\nThe web console of the demo room: {base}/");
    for (name, role, token) in &logins {
        println!("  log in as {name} ({}) with {token}", role.as_str());
    }
    println!(
        "  the security team pins the room's key fingerprint {fingerprint} (from room.pub) to verify the log in the browser"
    );
    println!("Serving until Ctrl-C.");
    match rt.block_on(server) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.into()),
        Err(e) => Err(anyhow::anyhow!("the server stopped: {e}")),
    }
}
