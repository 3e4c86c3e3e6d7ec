//! A bounded load test of the served room on loopback: many partners at once, each submitting
//! jobs over HTTP and polling for their results. Prints jobs per second, submit and completion
//! latency percentiles, writes per commit, and peak memory; checks that every job ran exactly once.
//!
//! `cargo bench -p strongroom-tests --bench service_load`
//! Size: STRONGROOM_LOAD_PARTNERS (default 16), STRONGROOM_LOAD_JOBS (per partner, default 8),
//! STRONGROOM_LOAD_CUSTOMERS (default 2000), STRONGROOM_LOAD_WORKERS (default 2).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use strongroom::data_at_rest::party::PartyKey;
use strongroom::data_at_rest::seal::seal;
use strongroom::dataset::schema::DatasetSchema;
use strongroom::keys::OperatorSecret;
use strongroom::room::Room;
use strongroom::room::policy::Policy;
use strongroom_server::auth::{self, Role};
use strongroom_server::{ServiceConfig, router, start};
use strongroom_synthetic as synthetic;
use strongroom_tests::example;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .new_agent()
}

fn call(agent: &ureq::Agent, method: &str, url: &str, token: &str, body: Option<Value>) -> Value {
    let auth = format!("Bearer {token}");
    let response = match (method, body) {
        ("POST", Some(b)) => agent.post(url).header("authorization", &auth).send_json(b),
        _ => agent.get(url).header("authorization", &auth).call(),
    };
    let mut response = response.expect("request");
    let status = response.status();
    let text = response.body_mut().read_to_string().expect("body");
    assert!(status.is_success(), "{method} {url}: {status} {text}");
    serde_json::from_str(&text).expect("json")
}

fn main() {
    let partners = env("STRONGROOM_LOAD_PARTNERS", 16);
    let jobs = env("STRONGROOM_LOAD_JOBS", 8);
    let customers = env("STRONGROOM_LOAD_CUSTOMERS", 2000);
    let workers = env("STRONGROOM_LOAD_WORKERS", 2);
    println!(
        "Service load: {partners} partners x {jobs} jobs, {customers} customers, {workers} worker threads, loopback HTTP/1.1"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let module = example("fraud-alerts-by-region");
    let (url, tokens, state) = rt.block_on(async {
        let room = Room::create(&dir.path().join("room"), "load", &OperatorSecret::new(b"load"))
            .await
            .expect("room");
        let data = dir.path().join("data");
        synthetic::generate(customers, 10.0, 3)
            .write_csv(&data)
            .expect("csv");
        let party = PartyKey::generate("bigbank", &dir.path().join("bank.key")).expect("key");
        let sealed = dir.path().join("bank.sealed");
        seal(
            &DatasetSchema::load(&data.join("schema.toml")).expect("schema"),
            &[
                ("customers".into(), data.join("customers.csv")),
                ("transactions".into(), data.join("transactions.csv")),
            ],
            &room.keys().public,
            &party,
            65_536,
            &sealed,
            false,
        )
        .expect("seal");
        let bank = auth::add_party(&room, "bigbank", Role::Bank)
            .await
            .expect("bank");
        let mut tokens = Vec::new();
        for p in 0..partners {
            let name = format!("partner{p:02}");
            tokens.push(auth::add_party(&room, &name, Role::Partner).await.expect("p"));
            room.set_policy(
                &Policy::parse(&format!(
                    "partner = \"{name}\"\ndataset = \"bank\"\nbudget_rho = \"1000\"\nmin_cost_rho = \"0.001\"\nresult_delay_seconds = 0\nmin_group_size = 20\n"
                ))
                .expect("policy"),
            )
            .await
            .expect("policy");
        }
        let state = start(
            room,
            ServiceConfig {
                workers,
                rate_per_second: 1000.0,
                burst: 2000.0,
                ..ServiceConfig::default()
            },
        )
        .await
        .expect("start");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let app = router(Arc::clone(&state));
        tokio::spawn(async move { axum::serve(listener, app).await });
        // The bank uploads the sealed dataset over HTTP.
        let sealed_bytes = std::fs::read(&sealed).expect("sealed");
        let upload_url = format!("{url}/v1/datasets");
        tokio::task::spawn_blocking(move || {
            let mut r = agent()
                .put(&upload_url)
                .header("authorization", &format!("Bearer {bank}"))
                .send(&sealed_bytes[..])
                .expect("upload");
            assert!(r.status().is_success(), "{:?}", r.body_mut().read_to_string());
        })
        .await
        .expect("upload");
        (url, tokens, state)
    });

    let started = Instant::now();
    let threads: Vec<_> = tokens
        .iter()
        .cloned()
        .map(|token| {
            let url = url.clone();
            let module = module.clone();
            std::thread::spawn(move || {
                let agent = agent();
                let mut r = agent
                    .post(format!("{url}/v1/modules"))
                    .header("authorization", &format!("Bearer {token}"))
                    .send(&module[..])
                    .expect("module");
                let m: Value = serde_json::from_str(&r.body_mut().read_to_string().expect("body"))
                    .expect("json");
                let sha = m["module_sha256"].as_str().expect("sha").to_string();
                let mut submits = Vec::new();
                let mut ids = Vec::new();
                for _ in 0..jobs {
                    let t = Instant::now();
                    let q = call(
                        &agent,
                        "POST",
                        &format!("{url}/v1/jobs"),
                        &token,
                        Some(json!({ "module_sha256": sha, "dataset": "bank", "cost": "0.01" })),
                    );
                    submits.push(t.elapsed().as_secs_f64());
                    ids.push((
                        q["job_id"].as_str().expect("id").to_string(),
                        Instant::now(),
                    ));
                }
                let mut done = Vec::new();
                for (id, submitted) in ids {
                    loop {
                        let job = call(&agent, "GET", &format!("{url}/v1/jobs/{id}"), &token, None);
                        if job["state"] == "finished" || job["state"] == "failed" {
                            assert_eq!(job["status"], "released", "{job}");
                            done.push(submitted.elapsed().as_secs_f64());
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
                (submits, done)
            })
        })
        .collect();
    let mut submits = Vec::new();
    let mut done = Vec::new();
    for t in threads {
        let (s, d) = t.join().expect("partner thread");
        submits.extend(s);
        done.extend(d);
    }
    let wall = started.elapsed().as_secs_f64();
    state.queue.shutdown();
    submits.sort_by(f64::total_cmp);
    done.sort_by(f64::total_cmp);
    let total = partners * jobs;
    let (ran, charges): (i64, i64) = rt.block_on(async {
        let ran = sqlx::query_scalar("SELECT COUNT(*) FROM jobs")
            .fetch_one(state.room.pool())
            .await
            .expect("jobs");
        let charges = sqlx::query_scalar("SELECT COUNT(*) FROM charges")
            .fetch_one(state.room.pool())
            .await
            .expect("charges");
        (ran, charges)
    });
    println!(
        "{total} jobs in {wall:.2} s: {:.1} jobs/s; every job released, {ran} results and {charges} charges (exactly one each: {})",
        total as f64 / wall,
        ran as usize == total && charges as usize == total
    );
    println!(
        "submit latency (202 Accepted): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&submits, 0.5) * 1e3,
        percentile(&submits, 0.99) * 1e3,
        submits.last().copied().unwrap_or(0.0) * 1e3
    );
    println!(
        "submit to released: p50 {:.2} s, p99 {:.2} s",
        percentile(&done, 0.5),
        percentile(&done, 0.99)
    );
    let (groups, writes) = state.room.writer().committed();
    println!(
        "writes committed: {writes} in {groups} commits ({:.1} per disk flush)",
        writes as f64 / groups.max(1) as f64
    );
    println!(
        "peak memory of the process (server and clients): {:.0} MiB",
        strongroom_tests::peak_resident_mib()
    );
    assert_eq!(ran as usize, total, "no job lost or run twice");
    assert_eq!(charges as usize, total);
}
