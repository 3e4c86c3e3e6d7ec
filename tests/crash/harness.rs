//! The crash harness: one room operation per process, so that a test can kill the process at a
//! chosen point inside it and start the room again.
//!
//! `crash-harness setup DIR` makes a room with parties, policies and a held result;
//! `crash-harness op DIR OPERATION` performs one mutating operation; `crash-harness check DIR`
//! opens the room as a restart would, verifies the exported log offline and checks that the
//! room's state is exactly what the log says. With `FAILPOINTS=name=panic` set, the process
//! aborts (no unwinding, no destructors: as if killed) when the operation reaches that point.
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::ExitCode;

use serde_json::Value;
use sqlx::Row;
use strongroom::keys::OperatorSecret;
use strongroom::room::Room;
use strongroom::room::approval::ParameterRules;
use strongroom::room::jobs::{JobRequest, decide_held, run_job, run_job_deferred};
use strongroom::room::policy::Policy;
use strongroom_server::auth::{Role, add_party, revoke_party, rotate_token};
use strongroom_tests::{example, sandbox, small_bank};

const SECRET: &[u8] = b"crash harness secret";

fn policy(partner: &str, release: &str, min_group_size: u32) -> Policy {
    Policy::parse(&format!(
        "partner = \"{partner}\"\ndataset = \"bank\"\nbudget_rho = \"10\"\nrelease = \"{release}\"\nmin_group_size = {min_group_size}\nresult_delay_seconds = 0\n"
    ))
    .expect("a valid policy")
}

fn request<'a>(partner: &'a str, module: &'a [u8]) -> JobRequest<'a> {
    JobRequest {
        partner,
        module,
        sql: None,
        dataset: small_bank(120).into(),
        dataset_sha256: "00".repeat(32),
        dataset_origin: "synthetic test bank".into(),
        sealed_by: "bigbank".into(),
        cost_nano: 100_000_000,
        threads: 1,
        audience: None,
        job_id: None,
        parameters: Vec::new(),
        progress: None,
    }
}

async fn setup(dir: &Path) -> Result<(), String> {
    let room = Room::create(dir, "crash-room", &OperatorSecret::new(SECRET))
        .await
        .map_err(|e| e.to_string())?;
    for (name, role) in [("bigbank", Role::Bank), ("socialco", Role::Partner)] {
        add_party(&room, name, role)
            .await
            .map_err(|e| e.to_string())?;
    }
    for p in [
        policy("socialco", "automatic", 20),
        policy("heldco", "held", 20),
    ] {
        room.set_policy(&p).await.map_err(|e| e.to_string())?;
    }
    seal_bank(&room, dir)?;
    operate(&room, "run-held-job").await
}

/// The bank sealed to the room, in `DIR/bank.sealed`, for the jobs whose partitions run on
/// worker processes.
fn seal_bank(room: &Room, dir: &Path) -> Result<(), String> {
    let data = dir.join("bank-data");
    strongroom_synthetic::generate(120, 5.0, 3)
        .write_csv(&data)
        .map_err(|e| e.to_string())?;
    let party =
        strongroom::data_at_rest::party::PartyKey::generate("bigbank", &dir.join("bank.key"))
            .map_err(|e| e.to_string())?;
    strongroom::data_at_rest::seal::seal(
        &strongroom::dataset::schema::DatasetSchema::load(&data.join("schema.toml"))
            .map_err(|e| e.to_string())?,
        &[
            ("customers".into(), data.join("customers.csv")),
            ("transactions".into(), data.join("transactions.csv")),
        ],
        &room.keys().public,
        &party,
        100,
        &dir.join("bank.sealed"),
        false,
    )
    .map(|_| ())
    .map_err(|e| e.to_string())
}

/// room.toml with an engine that runs partitions on worker processes: this harness's own
/// `worker` command, which runs the worker's code.
fn with_worker_processes(dir: &Path) -> Result<(), String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    std::fs::write(
        dir.join("room.toml"),
        format!(
            "name = \"crash-room\"\n[engine]\nkind = \"processes\"\npartition_entities = 40\n\
             worker = \"{}\"\nparallel = 2\n",
            me.display()
        ),
    )
    .map_err(|e| e.to_string())
}

async fn operate(room: &Room, operation: &str) -> Result<(), String> {
    let module = example("fraud-alerts-by-region");
    let module_sha256 = hex::encode(ring::digest::digest(&ring::digest::SHA256, &module));
    match operation {
        "set-policy" => room
            .set_policy(&policy("socialco", "automatic", 25))
            .await
            .map_err(|e| e.to_string()),
        "decide-module" => room
            .decide_module(
                &module_sha256,
                "socialco",
                true,
                "reviewer",
                "looks fine",
                &ParameterRules::default(),
            )
            .await
            .map_err(|e| e.to_string()),
        "add-party" => add_party(room, "newco", Role::Partner)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
        "rotate-token" => rotate_token(room, "socialco")
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
        "revoke-party" => revoke_party(room, "socialco")
            .await
            .map_err(|e| e.to_string()),
        "run-job" | "run-held-job" => {
            let partner = if operation == "run-job" {
                "socialco"
            } else {
                "heldco"
            };
            run_job(room, sandbox(), request(partner, &module))
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        "run-job-partitioned" => {
            let source = strongroom::data_at_rest::stream::SealedSource::open(
                &room.dir().join("bank.sealed"),
                room.keys(),
            )
            .map_err(|e| e.to_string())?;
            let source = std::sync::Arc::new(source);
            let whole = std::sync::Arc::clone(&source);
            let mut job = request("socialco", &module);
            job.dataset_sha256 = source.header_sha256().to_string();
            job.dataset = strongroom::room::jobs::JobData::sealed(
                source,
                std::sync::Arc::new(move || whole.load(1).map(std::sync::Arc::new)),
            );
            run_job(room, sandbox(), job)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        "run-job-deferred" => {
            // As a queue's worker runs a job: the release settles after the run returns.
            let (_, unsettled) = run_job_deferred(room, sandbox(), request("socialco", &module))
                .await
                .map_err(|e| e.to_string())?;
            match unsettled {
                Some(unsettled) => unsettled
                    .settle(room, std::time::Duration::from_millis(5))
                    .map_err(|e| e.to_string()),
                None => Ok(()),
            }
        }
        "release-held" => {
            let held: String = sqlx::query("SELECT job_id FROM jobs WHERE status = 'held'")
                .fetch_one(&strongroom_tests::sqlite_pool(room).await)
                .await
                .map_err(|e| e.to_string())?
                .get("job_id");
            decide_held(room, &held, true, "bank", "")
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        other => Err(format!("no operation '{other}'")),
    }
}

/// What the log says the state is, replayed from its entries.
#[derive(Default, Debug, PartialEq)]
struct State {
    policies: BTreeMap<(String, String), String>,
    decisions: BTreeMap<(String, String), String>,
    parties: BTreeMap<String, (String, bool)>,
    charges: BTreeMap<String, i64>,
    results: BTreeMap<String, String>,
}

fn text(entry: &Value, key: &str) -> String {
    entry
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn replay(entries: &[Value]) -> State {
    let mut s = State::default();
    for e in entries {
        let pair = |a: &str, b: &str| (text(e, a), text(e, b));
        match text(e, "event").as_str() {
            "policy.set" => {
                s.policies
                    .insert(pair("partner", "dataset"), text(e, "policy_sha256"));
            }
            "module.approved" | "module.rejected" => {
                let decision = text(e, "event").replace("module.", "");
                s.decisions
                    .insert(pair("module_sha256", "partner"), decision);
            }
            "party.added" | "party.token_rotated" => {
                s.parties
                    .insert(text(e, "party"), (text(e, "token_id"), false));
            }
            "party.revoked" => {
                if let Some(p) = s.parties.get_mut(&text(e, "party")) {
                    p.1 = true;
                }
            }
            "budget.charged" => {
                let cost = e.get("cost_nano_rho").and_then(Value::as_i64).unwrap_or(-1);
                s.charges.insert(text(e, "job"), cost);
            }
            "result.released" => {
                s.results.insert(text(e, "job"), "released".into());
            }
            "result.held" => {
                s.results.insert(text(e, "job"), "held".into());
            }
            "result.none" => {
                s.results.insert(text(e, "job"), "failed".into());
            }
            "result.released_by_bank" => {
                s.results.insert(text(e, "job"), "released".into());
            }
            "result.withheld" => {
                s.results.insert(text(e, "job"), "withheld".into());
            }
            _ => {}
        }
    }
    s
}

async fn stored(room: &Room) -> Result<State, sqlx::Error> {
    let pool = &strongroom_tests::sqlite_pool(room).await;
    let mut s = State::default();
    for r in sqlx::query("SELECT partner, dataset, policy_sha256 FROM policies")
        .fetch_all(pool)
        .await?
    {
        s.policies
            .insert((r.get("partner"), r.get("dataset")), r.get("policy_sha256"));
    }
    for r in sqlx::query("SELECT module_sha256, partner, decision FROM approvals")
        .fetch_all(pool)
        .await?
    {
        s.decisions.insert(
            (r.get("module_sha256"), r.get("partner")),
            r.get("decision"),
        );
    }
    for r in sqlx::query("SELECT name, token_id, revoked_at FROM parties")
        .fetch_all(pool)
        .await?
    {
        let revoked: Option<String> = r.get("revoked_at");
        s.parties
            .insert(r.get("name"), (r.get("token_id"), revoked.is_some()));
    }
    for r in sqlx::query("SELECT job_id, cost_nano_rho FROM charges")
        .fetch_all(pool)
        .await?
    {
        s.charges.insert(r.get("job_id"), r.get("cost_nano_rho"));
    }
    for r in sqlx::query("SELECT job_id, status FROM jobs")
        .fetch_all(pool)
        .await?
    {
        s.results.insert(r.get("job_id"), r.get("status"));
    }
    Ok(s)
}

async fn check(dir: &Path) -> Result<String, String> {
    let room = Room::open(dir, &OperatorSecret::new(SECRET))
        .await
        .map_err(|e| format!("the room does not open: {e}"))?;
    let log = room.audit();
    let entries = log.entries(0).await.map_err(|e| e.to_string())?;
    let export: String = entries
        .iter()
        .map(|e| {
            strongroom::audit_log::log::export_line(e.index, &e.entry, &e.signature)
                .map(|line| line + "\n")
                .map_err(|e| e.to_string())
        })
        .collect::<Result<_, _>>()?;
    let (_, checkpoint) = log.checkpoint().await.map_err(|e| e.to_string())?;
    let verifier = room.keys().public.verifier().map_err(|e| e.to_string())?;
    strongroom_verify::export::verify_export(&export, &checkpoint, None, &verifier)
        .map_err(|e| format!("the log does not verify: {e}"))?;
    for e in &entries {
        strongroom_verify::Event::from_entry(&e.entry)
            .map_err(|err| format!("entry {} is not a typed event: {err}", e.index))?;
    }
    let values: Vec<Value> = entries
        .iter()
        .map(|e| serde_json::from_str(&e.entry).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let said = replay(&values);
    let is = stored(&room).await.map_err(|e| e.to_string())?;
    if said != is {
        return Err(format!(
            "the state differs from what the log says\n  log:   {said:?}\n  state: {is:?}"
        ));
    }
    let outcomes: BTreeSet<_> = is.results.values().collect();
    Ok(format!(
        "{} entries; {} charges; results {outcomes:?}",
        entries.len(),
        is.charges.len()
    ))
}

fn main() -> ExitCode {
    let scenario = fail::FailScenario::setup();
    // An injected failure ends the process at once, as a kill would: no unwinding, nothing
    // dropped, nothing flushed beyond what the operation itself made durable.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("crash-harness: {info}");
        std::process::abort();
    }));
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let outcome = runtime.block_on(async {
        match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
            ["setup", dir] => setup(Path::new(dir)).await.map(|()| "set up".to_string()),
            ["op", dir, operation] => {
                if operation == "run-job-partitioned" {
                    with_worker_processes(Path::new(dir))?;
                }
                let room = Room::open(Path::new(dir), &OperatorSecret::new(SECRET))
                    .await
                    .map_err(|e| e.to_string())?;
                operate(&room, operation)
                    .await
                    .map(|()| format!("{operation} done"))
            }
            ["check", dir] => check(Path::new(dir)).await,
            // As `strongroom worker`: one partition, its spec and token on stdin.
            ["worker", "--module", module] => {
                let mut input = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut input)
                    .map_err(|e| e.to_string())?;
                let mut lines = input.lines();
                let (spec, token) = (lines.next().unwrap_or(""), lines.next().unwrap_or(""));
                let answer = strongroom::remote::worker::run(spec, token, Some(Path::new(module)));
                if let strongroom::remote::worker::Answer::Partial(bytes)
                | strongroom::remote::worker::Answer::Refused(bytes, _) = &answer
                {
                    std::io::Write::write_all(&mut std::io::stdout(), bytes)
                        .map_err(|e| e.to_string())?;
                }
                std::process::exit(answer.exit_status());
            }
            _ => Err("usage: crash-harness setup DIR | op DIR OPERATION | check DIR".into()),
        }
    });
    drop(scenario);
    match outcome {
        Ok(message) => {
            println!("{message}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("crash-harness: {message}");
            ExitCode::FAILURE
        }
    }
}
