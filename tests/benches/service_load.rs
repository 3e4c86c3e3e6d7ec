//! A bounded load test of the served room on loopback: many partners at once, each submitting
//! jobs over HTTP and polling for their results. Prints jobs per second, submit and completion
//! latency percentiles (for a burst of submits, and for one partner submitting alone while the
//! workers are busy), writes per commit, peak memory, and the worker time a served job takes
//! beside the module run directly on the same data; checks that every job ran exactly once.
//!
//! `cargo bench -p strongroom-tests --bench service_load`
//! Size: STRONGROOM_LOAD_PARTNERS (default 16), STRONGROOM_LOAD_JOBS (per partner, default 8),
//! STRONGROOM_LOAD_CUSTOMERS (default 2000), STRONGROOM_LOAD_WORKERS (default 2),
//! STRONGROOM_LOAD_PROBES (lone submits at most, default 40, one each 25 ms),
//! STRONGROOM_LOAD_POLL_MS (how often a partner asks for its job, default 50).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use strongroom::data_at_rest::party::PartyKey;
use strongroom::data_at_rest::seal::seal;
use strongroom::dataset::schema::DatasetSchema;
use strongroom::guest_boundary::{Outcome, RunLimits};
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
        // One partner more than asked: the one that submits alone while the workers are busy.
        for p in 0..=partners {
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

    // Every partner uploads its module first (vetting is not what this measures); then all
    // submit at once, a burst; then, while the workers work through the backlog, one more partner
    // submits one job at a time: the submit latency of a lone request while the workers are busy.
    let barrier = Arc::new(Barrier::new(partners + 2));
    let burst_submitted = Arc::new(AtomicUsize::new(0));
    let upload = |url: &str, token: &str, agent: &ureq::Agent| -> String {
        let mut r = agent
            .post(format!("{url}/v1/modules"))
            .header("authorization", &format!("Bearer {token}"))
            .send(&module[..])
            .expect("module");
        let m: Value =
            serde_json::from_str(&r.body_mut().read_to_string().expect("body")).expect("json");
        m["module_sha256"].as_str().expect("sha").to_string()
    };
    let submit = |agent: &ureq::Agent, url: &str, token: &str, sha: &str| -> (f64, String) {
        let t = Instant::now();
        let q = call(
            agent,
            "POST",
            &format!("{url}/v1/jobs"),
            token,
            Some(json!({ "module_sha256": sha, "dataset": "bank", "cost": "0.01" })),
        );
        (
            t.elapsed().as_secs_f64(),
            q["job_id"].as_str().expect("id").to_string(),
        )
    };
    let wait_released = |agent: &ureq::Agent, url: &str, token: &str, id: &str| {
        loop {
            let job = call(agent, "GET", &format!("{url}/v1/jobs/{id}"), token, None);
            if job["state"] == "finished" || job["state"] == "failed" {
                assert_eq!(job["status"], "released", "{job}");
                return;
            }
            std::thread::sleep(Duration::from_millis(
                env("STRONGROOM_LOAD_POLL_MS", 50) as u64
            ));
        }
    };
    let probes = env("STRONGROOM_LOAD_PROBES", 40);
    let (started, mut submits, mut done, mut lone) = std::thread::scope(|scope| {
        let threads: Vec<_> = tokens[..partners]
            .iter()
            .map(|token| {
                let (url, barrier, burst_submitted) = (&url, &barrier, &burst_submitted);
                let (upload, submit, wait_released) = (&upload, &submit, &wait_released);
                scope.spawn(move || {
                    let agent = agent();
                    let sha = upload(url, token, &agent);
                    barrier.wait();
                    let mut submits = Vec::new();
                    let mut ids = Vec::new();
                    for _ in 0..jobs {
                        let (latency, id) = submit(&agent, url, token, &sha);
                        burst_submitted.fetch_add(1, Ordering::SeqCst);
                        submits.push(latency);
                        ids.push((id, Instant::now()));
                    }
                    let mut done = Vec::new();
                    for (id, submitted) in ids {
                        wait_released(&agent, url, token, &id);
                        done.push(submitted.elapsed().as_secs_f64());
                    }
                    (submits, done)
                })
            })
            .collect();
        let probe = {
            let (url, barrier, burst_submitted) = (&url, &barrier, &burst_submitted);
            let (upload, submit, wait_released) = (&upload, &submit, &wait_released);
            let (token, state) = (&tokens[partners], &state);
            scope.spawn(move || {
                let agent = agent();
                let sha = upload(url, token, &agent);
                barrier.wait();
                while burst_submitted.load(Ordering::SeqCst) < partners * jobs {
                    std::thread::sleep(Duration::from_millis(1));
                }
                let mut lone = Vec::new();
                let mut ids = Vec::new();
                for _ in 0..probes {
                    // Only while the workers are busy: at least as many jobs waiting or running
                    // as there are workers.
                    let backlog = strongroom_tests::query_i64(
                        &state.room,
                        "SELECT COUNT(*) FROM job_queue WHERE state IN ('queued', 'running')",
                        strongroom::params![],
                    );
                    if backlog < workers as i64 {
                        break;
                    }
                    let (latency, id) = submit(&agent, url, token, &sha);
                    lone.push(latency);
                    ids.push(id);
                    std::thread::sleep(Duration::from_millis(25));
                }
                for id in &ids {
                    wait_released(&agent, url, token, id);
                }
                lone
            })
        };
        barrier.wait();
        let started = Instant::now();
        let mut submits = Vec::new();
        let mut done = Vec::new();
        for t in threads {
            let (s, d) = t.join().expect("partner thread");
            submits.extend(s);
            done.extend(d);
        }
        let lone = probe.join().expect("probe thread");
        (started, submits, done, lone)
    });
    let wall = started.elapsed().as_secs_f64();
    state.queue.shutdown();
    let work = state.queue.times.snapshot();
    submits.sort_by(f64::total_cmp);
    done.sort_by(f64::total_cmp);
    lone.sort_by(f64::total_cmp);
    let total = partners * jobs + lone.len();
    let (ran, charges): (i64, i64) = rt.block_on(async {
        let ran = sqlx::query_scalar("SELECT COUNT(*) FROM jobs")
            .fetch_one(&strongroom_tests::sqlite_pool(&state.room).await)
            .await
            .expect("jobs");
        let charges = sqlx::query_scalar("SELECT COUNT(*) FROM charges")
            .fetch_one(&strongroom_tests::sqlite_pool(&state.room).await)
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
        "submit latency (202 Accepted), {} partners at once: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        partners,
        percentile(&submits, 0.5) * 1e3,
        percentile(&submits, 0.99) * 1e3,
        submits.last().copied().unwrap_or(0.0) * 1e3
    );
    println!(
        "submit latency, one at a time while the workers are busy ({} submits): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        lone.len(),
        percentile(&lone, 0.5) * 1e3,
        percentile(&lone, 0.99) * 1e3,
        lone.last().copied().unwrap_or(0.0) * 1e3
    );
    println!(
        "submit to released: p50 {:.2} s, p99 {:.2} s",
        percentile(&done, 0.5),
        percentile(&done, 0.99)
    );
    let (groups, writes) = state
        .room
        .db()
        .sqlite_writer()
        .expect("a SQLite room")
        .committed();
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

    // The baseline: the same module on the same customers, run directly in this process by as
    // many threads as the service has workers, with the service's limits and threads per job.
    // What a served job costs beyond it is the control plane (HTTP, queue, charge, audit,
    // release) and the clients polling on the same cores.
    let t = Instant::now();
    let prepared = strongroom_tests::prepare(&module);
    let preparation = t.elapsed().as_secs_f64();
    let bank = Arc::new(synthetic::generate(customers, 10.0, 3).dataset());
    let direct_runs = total.min(64).div_ceil(workers) * workers;
    let t = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                for _ in 0..direct_runs / workers {
                    let report = strongroom_tests::run_in(
                        &prepared,
                        &bank,
                        RunLimits::default(),
                        prepared.module.manifest.mode,
                        ServiceConfig::default().threads_per_job,
                    );
                    assert_eq!(report.outcome, Outcome::Completed);
                }
            });
        }
    });
    let direct = t.elapsed().as_secs_f64() * workers as f64 / direct_runs as f64;
    let served = wall * workers as f64 / total as f64;
    println!(
        "the module alone, {direct_runs} runs on {workers} threads: {:.2} ms of a worker per job (prepared once, apart, in {:.0} ms)",
        direct * 1e3,
        preparation * 1e3
    );
    println!(
        "served, from the first submit to the last result seen: {:.2} ms of a worker per job, {:.2} ms more than the module alone",
        served * 1e3,
        (served - direct) * 1e3
    );
    let per_job = |d: Duration| d.as_secs_f64() * 1e3 / work.jobs.max(1) as f64;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let control: Vec<f64> = work.control.iter().map(|d| d.as_secs_f64()).collect();
    println!(
        "in the workers, per job: {:.2} ms from claim to recorded end, of which the module ran {:.2} ms and preparing modules took {:.2} ms ({:.0} ms once, apart): the control plane takes {:.2} ms (p50 {:.2} ms, p90 {:.2} ms)",
        per_job(work.worked),
        per_job(work.module),
        per_job(work.prepare),
        ms(work.prepare),
        per_job(
            work.worked
                .saturating_sub(work.module)
                .saturating_sub(work.prepare)
        ),
        percentile(&control, 0.5) * 1e3,
        percentile(&control, 0.9) * 1e3
    );
}
