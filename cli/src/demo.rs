//! `strongroom demo`: the bank-and-partner story in one command, on embedded defaults.
//!
//! A social network (the partner, "socialco") wants to know how a bank's customers spend, what
//! their balances look like and how often they get fraud alerts; the bank must not hand over a
//! single row. The demo plays every party in turn: it builds the partner's query modules, creates
//! a room, generates and seals the bank's data and the partner's user list, vets and approves the
//! modules, runs the jobs, writes each released result as CSV and an SVG chart, checks the signed
//! receipts, and finally plays the security team, verifying the exported audit log offline.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;

use super::chart::released_svg;
use super::render::number;
use strongroom::data_at_rest::open::verify_file;
use strongroom::data_at_rest::party::PartyKey;
use strongroom::data_at_rest::seal::seal;
use strongroom::data_at_rest::stream::SealedSource;
use strongroom::dataset::schema::DatasetSchema;
use strongroom::guest_boundary::sandbox::EngineSettings;
use strongroom::guest_boundary::vetting::DEFAULT_MAX_MODULE_BYTES;
use strongroom::guest_boundary::{Sandbox, vet};
use strongroom::keys::OperatorSecret;
use strongroom::output_gate::mechanism::format_nano;
use strongroom::output_gate::release::ReleasedTable;
use strongroom::room::Room;
use strongroom::room::jobs::{AudienceInput, JobData, JobRequest, JobResult, LoadWhole, run_job};
use strongroom::room::policy::Policy;
use strongroom_synthetic as synthetic;
use strongroom_verify::receipt::Receipt;

/// Options of `strongroom demo`.
#[derive(Args, Debug)]
pub(super) struct DemoArgs {
    /// Customers in the synthetic bank.
    #[arg(long, default_value_t = 50_000)]
    customers: usize,
    /// Where to write the data and results (made fresh; a directory an earlier demo made is
    /// replaced, any other non-empty directory is refused).
    #[arg(long, default_value = "strongroom-demo")]
    out: PathBuf,
    /// The examples workspace to build the query modules from.
    #[arg(long)]
    examples: Option<PathBuf>,
    /// After the story, serve the room with its web console (prints the address and a login
    /// for each role) until Ctrl-C.
    #[arg(long)]
    serve: bool,
    /// Where `--serve` listens.
    #[arg(long, default_value = "127.0.0.1:8443", requires = "serve")]
    listen: std::net::SocketAddr,
}

const DEMO_MARKER: &str = ".strongroom-demo";
const STEPS: u32 = 9;
const PARTNER: &str = "socialco";
const ANALYSTS: &str = "bank-analysts";

/// The SQL engine module, built from examples/sql-engine.
const SQL_ENGINE: &str = "sql_engine.wasm";

/// The questions the demo asks: module, who asks, cost (rho), title, output name.
struct Question {
    wasm: &'static str,
    /// A question asked in SQL (a file of examples/sql/), run by the SQL engine (`wasm`).
    sql: Option<&'static str>,
    params: &'static [(&'static str, &'static str)],
    partner: &'static str,
    cost_nano: u64,
    title: &'static str,
    name: &'static str,
    audience: bool,
}

const QUESTIONS: &[Question] = &[
    Question {
        wasm: "spend_by_category.wasm",
        sql: None,
        params: &[],
        partner: PARTNER,
        cost_nano: 400_000_000,
        title: "1. Card spend by merchant category and age band",
        name: "1-spend-by-category",
        audience: false,
    },
    Question {
        wasm: SQL_ENGINE,
        sql: Some("fraud-alerts-by-region.sql"),
        params: &[("min_alerts", "1")],
        partner: PARTNER,
        cost_nano: 200_000_000,
        title: "2. Share of customers with a fraud alert last quarter, by region (asked in SQL)",
        name: "2-fraud-alerts-by-region",
        audience: false,
    },
    Question {
        wasm: "messenger_audience.wasm",
        sql: None,
        params: &[],
        partner: PARTNER,
        cost_nano: 400_000_000,
        title: "3. The Messenger question: balance bands and spending of customers who use socialco",
        name: "3-messenger-audience",
        audience: true,
    },
    Question {
        wasm: "analyst_spend_by_region.wasm",
        sql: None,
        params: &[],
        partner: ANALYSTS,
        cost_nano: 250_000_000,
        title: "4. The bank's analysts (table mode, approved): spend by region",
        name: "4-analyst-spend-by-region",
        audience: false,
    },
];

fn step(n: u32, who: &str, text: &str) {
    println!("\n[{n}/{STEPS}] {who}: {text}");
    let _ = std::io::stdout().flush();
}

fn fresh_demo_dir(out: &Path) -> anyhow::Result<()> {
    if out.exists() {
        let is_ours = out.join(DEMO_MARKER).exists();
        let empty = std::fs::read_dir(out)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if !is_ours && !empty {
            bail!(
                "{} exists and was not made by `strongroom demo`; pass --out with a new directory",
                out.display()
            );
        }
        if is_ours {
            std::fs::remove_dir_all(out)
                .with_context(|| format!("cannot clear {}", out.display()))?;
        }
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    std::fs::write(
        out.join(DEMO_MARKER),
        "made by `strongroom demo`; safe to delete\n",
    )?;
    Ok(())
}

/// Writes one CSV per released metric, `<name>.<metric>.csv`, plus the chart `<name>.svg`.
fn write_outputs(dir: &Path, q: &Question, released: &ReleasedTable) -> anyhow::Result<()> {
    for metric in &released.metrics {
        let path = dir.join(format!("{}.{}.csv", q.name, metric.name));
        let mut w = csv::Writer::from_path(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        let mut header = metric.key.clone();
        let level = format!("{:.0}", released.confidence * 100.0);
        header.extend([
            "value".into(),
            format!("low_{level}"),
            format!("high_{level}"),
            "entities".into(),
        ]);
        w.write_record(&header)?;
        for g in &metric.groups {
            let mut cells = g.labels.clone();
            cells.extend([
                format!("{:.4}", g.value),
                format!("{:.4}", g.low),
                format!("{:.4}", g.high),
                format!("{:.0}", g.entities),
            ]);
            w.write_record(&cells)?;
        }
        w.flush()?;
    }
    std::fs::write(
        dir.join(format!("{}.json", q.name)),
        serde_json::to_string(released)?,
    )?;
    std::fs::write(
        dir.join(format!("{}.svg", q.name)),
        released_svg(q.title, released),
    )?;
    Ok(())
}

fn examples_dir(given: Option<PathBuf>) -> PathBuf {
    given.unwrap_or_else(|| {
        let beside_source = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("examples");
        if beside_source.join("Cargo.toml").exists() {
            beside_source
        } else {
            PathBuf::from("examples")
        }
    })
}

/// Seals the CSV tables in `dir` (with `dir/schema.toml`) to the room as `party`.
fn seal_dir(
    dir: &Path,
    tables: &[&str],
    room: &Room,
    party: &PartyKey,
    out: &Path,
) -> anyhow::Result<strongroom::data_at_rest::seal::SealSummary> {
    let schema = DatasetSchema::load(&dir.join("schema.toml"))?;
    let tables: Vec<(String, PathBuf)> = tables
        .iter()
        .map(|t| (t.to_string(), dir.join(format!("{t}.csv"))))
        .collect();
    Ok(seal(
        &schema,
        &tables,
        &room.keys().public,
        party,
        65_536,
        out,
        false,
    )?)
}

pub(super) fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    if args.customers < 1_000 {
        bail!(
            "--customers must be at least 1,000 (the policy's audience minimum and group thresholds need a crowd)"
        );
    }
    let examples = examples_dir(args.examples.clone());
    let started = Instant::now();
    fresh_demo_dir(&args.out)?;
    let results = args.out.join("results");
    std::fs::create_dir_all(&results)?;

    step(
        1,
        "partner",
        "builds its query modules from source (examples/)",
    );
    let wasm_dir = super::dev::build_examples(&examples)?;

    step(
        2,
        "operator",
        "creates the room: sealing and signing keys, encrypted; its database",
    );
    // A fixed secret keeps the demo to one command. A real room takes it from
    // STRONGROOM_PASSPHRASE or --secret-file, never from code.
    let secret = OperatorSecret::new(b"insecure demo operator secret");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let room = rt.block_on(Room::create(&args.out.join("room"), "demo-room", &secret))?;
    std::fs::write(args.out.join("room.pub"), room.keys().public.encode())?;
    println!(
        "      room 'demo-room', key fingerprint {}; public keys in room.pub",
        room.keys().public.fingerprint()
    );

    step(
        3,
        "bank",
        &format!(
            "generates {} customers' data, seals it to the room's public key, sets policies",
            number(args.customers as f64, 0)
        ),
    );
    let bank = synthetic::generate(args.customers, 20.0, 2018);
    let bank_dir = args.out.join("bank-data");
    bank.write_csv(&bank_dir)
        .with_context(|| format!("cannot write {}", bank_dir.display()))?;
    let bank_key =
        PartyKey::generate("bigbank", &args.out.join("bank.key")).map_err(anyhow::Error::msg)?;
    let bank_sealed = args.out.join("bank.sealed");
    let summary = seal_dir(
        &bank_dir,
        &["customers", "transactions"],
        &room,
        &bank_key,
        &bank_sealed,
    )?;
    println!(
        "      {} card transactions sealed into {} ({} bytes, {} encrypted chunks); the plaintext stays with the bank",
        number(bank.transactions() as f64, 0),
        bank_sealed.display(),
        number(summary.bytes as f64, 0),
        summary.header.chunks
    );
    let engine_sha256 = hex::encode(
        ring::digest::digest(
            &ring::digest::SHA256,
            &std::fs::read(wasm_dir.join(SQL_ENGINE))
                .with_context(|| format!("cannot read {}", wasm_dir.join(SQL_ENGINE).display()))?,
        )
        .as_ref(),
    );
    let partner_policy = format!(
        "# The bank's policy for socialco on its customer data.\n\
         partner = \"{PARTNER}\"\ndataset = \"bank\"\nbudget_rho = \"1.5\"\nmechanism = \"gaussian\"\n\
         min_group_size = 50\nrelease = \"automatic\"\nmodes = [\"isolated\"]\n\
         approval_required_for_isolated = true\nresult_delay_seconds = 2\n\n[audience]\nmin_size = 1000\nmax_size = 5000000\n\n\
         # SQL through the engine the bank reviewed (examples/sql-engine), any query that compiles.\n\
         [sql]\nengine_sha256 = \"{engine_sha256}\"\nqueries = \"any\"\n"
    );
    let analyst_policy = format!(
        "# The bank's own analysts: table mode, for modules the bank approved by hash.\n\
         partner = \"{ANALYSTS}\"\ndataset = \"bank\"\nbudget_rho = \"1.0\"\nmin_group_size = 50\n\
         modes = [\"table\"]\nresult_delay_seconds = 2\n"
    );
    for (file, text) in [
        ("policy-socialco.toml", &partner_policy),
        ("policy-bank-analysts.toml", &analyst_policy),
    ] {
        std::fs::write(args.out.join(file), text)?;
        let policy = Policy::parse(text).map_err(anyhow::Error::msg)?;
        rt.block_on(room.set_policy(&policy))?;
    }
    println!(
        "      socialco: budget rho 1.5, discrete Gaussian noise, groups under 50 customers suppressed,\n      \
         isolated mode only, every module approved by hash, audience lists of 1,000 to 5,000,000 users,\n      \
         SQL through the SQL engine the bank approved (sha256 {}...)",
        &engine_sha256[..16]
    );

    step(
        4,
        "partner",
        "writes its user list (emails, phone numbers) and seals it to the same room",
    );
    let users = synthetic::partner_users(&bank, args.customers / 5, 2018);
    let partner_dir = args.out.join("partner-data");
    users
        .write_csv(&partner_dir)
        .with_context(|| format!("cannot write {}", partner_dir.display()))?;
    let partner_key =
        PartyKey::generate(PARTNER, &args.out.join("socialco.key")).map_err(anyhow::Error::msg)?;
    let audience_sealed = args.out.join("socialco-audience.sealed");
    seal_dir(
        &partner_dir,
        &["users"],
        &room,
        &partner_key,
        &audience_sealed,
    )?;
    println!(
        "      {} users sealed into {}; the bank never sees them, the partner never sees the bank's",
        number(users.len() as f64, 0),
        audience_sealed.display()
    );

    step(
        5,
        "partner and bank",
        "the partner uploads its modules, the room vets them, the bank approves them by hash",
    );
    let mut modules = Vec::new();
    for q in QUESTIONS {
        let bytes = std::fs::read(wasm_dir.join(q.wasm))
            .with_context(|| format!("cannot read {}", wasm_dir.join(q.wasm).display()))?;
        let vetted = vet(&bytes, DEFAULT_MAX_MODULE_BYTES)?;
        let hash = vetted.hash_hex();
        rt.block_on(room.decide_module(
            &hash,
            q.partner,
            true,
            "risk-committee",
            "reviewed for the demo",
            &Default::default(),
        ))?;
        println!(
            "      vetted and approved for {}: {} {} ({} mode, sha256 {}...){}",
            q.partner,
            vetted.manifest.name,
            vetted.manifest.version,
            vetted.manifest.mode,
            &hash[..16],
            if q.sql.is_some() {
                ": runs the partner's SQL, one customer at a time"
            } else {
                ""
            }
        );
        modules.push(bytes);
    }

    step(
        6,
        "room",
        "checks the sealed data, matches the partner's list in the host, runs the jobs",
    );
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let sandbox = Sandbox::new(&EngineSettings::default()).map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let sealed_file = verify_file(&bank_sealed, room.keys())?;
    // Isolated runs read the file window by window as they go; the analysts' table-mode run
    // loads it whole.
    let source = Arc::new(SealedSource::open(&bank_sealed, room.keys())?);
    let load: LoadWhole = {
        let source = Arc::clone(&source);
        Arc::new(move || source.load(threads).map(Arc::new))
    };
    let dataset = JobData::sealed(Arc::clone(&source), load);
    let audience =
        AudienceInput::open(&audience_sealed, &room, threads).map_err(anyhow::Error::msg)?;
    println!(
        "      every chunk authenticated and checked: {} customers; partner list: {} members normalized",
        number(dataset.shape().entities() as f64, 0),
        number(audience.list.members() as f64, 0)
    );
    let origin = format!(
        "sealed by {} (ed25519 {}) at {}",
        sealed_file.header.sealed_by.name,
        sealed_file.header.sealed_by.ed25519,
        sealed_file.header.sealed_at
    );
    let mut outcomes: Vec<JobResult> = Vec::new();
    for (q, module) in QUESTIONS.iter().zip(&modules) {
        let sql = match q.sql {
            Some(file) => {
                let path = examples.join("sql").join(file);
                Some(
                    std::fs::read_to_string(&path)
                        .with_context(|| format!("cannot read {}", path.display()))?,
                )
            }
            None => None,
        };
        let t = Instant::now();
        print!(
            "      {} for {} (rho {}) ... ",
            q.name,
            q.partner,
            format_nano(q.cost_nano)
        );
        let _ = std::io::stdout().flush();
        let result = rt.block_on(run_job(
            &room,
            &sandbox,
            JobRequest {
                partner: q.partner,
                module,
                sql,
                dataset: dataset.clone(),
                dataset_sha256: sealed_file.header_sha256.clone(),
                dataset_origin: origin.clone(),
                sealed_by: sealed_file.header.sealed_by.name.clone(),
                cost_nano: q.cost_nano,
                threads,
                audience: q.audience.then(|| audience.clone()),
                job_id: None,
                parameters: q
                    .params
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.to_string()))
                    .collect(),
                progress: None,
            },
        ))?;
        println!(
            "{} in {:.1} s (job {})",
            result.outcome,
            t.elapsed().as_secs_f64(),
            result.job_id
        );
        if result.released.is_none() {
            bail!(
                "job {} for {} released nothing (outcome {}); see `strongroom audit show`",
                result.job_id,
                q.name,
                result.outcome
            );
        }
        outcomes.push(result);
    }

    step(
        7,
        "partner",
        "receives the released aggregates (noisy, thresholded), as tables, CSV and charts",
    );
    for (q, result) in QUESTIONS.iter().zip(&outcomes) {
        let Some(released) = &result.released else {
            continue;
        };
        println!("\n  {}", q.title);
        if let Some(file) = q.sql {
            let text = std::fs::read_to_string(examples.join("sql").join(file))?;
            println!("  examples/sql/{file}:");
            for line in text.lines().filter(|l| !l.trim_start().starts_with("--")) {
                println!("    {line}");
            }
        }
        super::room_cmd::print_released(released);
        if q.audience {
            print_top_categories(released);
        }
        write_outputs(&results, q, released)?;
        std::fs::write(
            results.join(format!("{}.receipt.txt", q.name)),
            &result.receipt,
        )?;
    }
    println!(
        "\n      written to {}: per question a CSV per metric, a chart (.svg), the result (.json) and its receipt",
        results.display()
    );

    step(
        8,
        "partner",
        "verifies each receipt offline against the room's published key",
    );
    let verifier = room.keys().public.verifier().map_err(anyhow::Error::msg)?;
    for q in QUESTIONS {
        let text = std::fs::read_to_string(results.join(format!("{}.receipt.txt", q.name)))?;
        let receipt = Receipt::verify(&text, &verifier).map_err(anyhow::Error::msg)?;
        let result_hash = hex::encode(
            ring::digest::digest(
                &ring::digest::SHA256,
                &std::fs::read(results.join(format!("{}.json", q.name)))?,
            )
            .as_ref(),
        );
        if result_hash != receipt.result_sha256 {
            bail!("the receipt for {} does not cover its result", q.name);
        }
        println!(
            "      valid: job {} (module {}...,{} policy {}..., result {}...)",
            receipt.job,
            &receipt.module_sha256[..12],
            match &receipt.sql {
                Some(s) => format!(
                    " query {}..., plan {}...,",
                    &s.query_sha256[..12],
                    &s.plan_sha256[..12]
                ),
                None => String::new(),
            },
            &receipt.policy_sha256[..12],
            &receipt.result_sha256[..12]
        );
    }

    step(
        9,
        "security team",
        "exports the audit log and verifies it offline",
    );
    let (export, checkpoint, budgets) = rt.block_on(async {
        let log = room.audit();
        let mut text = String::new();
        for e in log.entries(0).await? {
            text.push_str(&strongroom::audit_log::log::export_line(
                e.index,
                &e.entry,
                &e.signature,
            )?);
            text.push('\n');
        }
        let (_, note) = log.checkpoint().await?;
        let budgets = room.ledger().all().await?;
        anyhow::Ok((text, note, budgets))
    })?;
    std::fs::write(results.join("audit-log.jsonl"), &export)?;
    std::fs::write(results.join("checkpoint.txt"), &checkpoint)?;
    std::fs::write(results.join("room.pub"), room.keys().public.encode())?;
    let verified = strongroom_verify::export::verify_export(&export, &checkpoint, None, &verifier)
        .map_err(|e| anyhow::anyhow!("audit log: {e}"))?;
    println!(
        "      {} entries verified against the signed checkpoint '{}' (size {}, root {}...)",
        verified.entries,
        verified.checkpoint.origin,
        verified.checkpoint.size,
        &hex::encode(verified.checkpoint.root)[..16]
    );
    for b in &budgets {
        println!(
            "      budget: {} on {}: spent rho {} of {} in {} job(s)",
            b.partner,
            b.dataset,
            format_nano(b.spent_nano_rho),
            format_nano(b.total_nano_rho),
            b.jobs
        );
    }
    println!(
        "      offline, with only the export and the room's public key: strongroom audit verify \\\n        \
         --log {} --checkpoint {} --key {}",
        results.join("audit-log.jsonl").display(),
        results.join("checkpoint.txt").display(),
        results.join("room.pub").display()
    );
    println!(
        "\nDone in {:.0} s. No row, identifier or per-customer value left the room; neither party saw the other's list.",
        started.elapsed().as_secs_f64()
    );
    if args.serve {
        drop(room);
        super::demo_serve::serve(&args.out, &secret, &wasm_dir, args.listen)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "Next: the web console (`strongroom demo --serve`), or the partner's development loop on its own plaintext, `strongroom dev run` (see README.md)."
    );
    Ok(ExitCode::SUCCESS)
}

/// The Messenger question's answer in one line: categories ranked by released spend.
fn print_top_categories(released: &ReleasedTable) {
    let Some(spend) = released.metrics.iter().find(|m| m.name == "spend") else {
        return;
    };
    let mut ranked: Vec<_> = spend.groups.iter().collect();
    ranked.sort_by(|a, b| b.value.total_cmp(&a.value));
    let top: Vec<String> = ranked
        .iter()
        .take(3)
        .map(|g| g.labels.join(" / "))
        .collect();
    if !top.is_empty() {
        println!(
            "\n  top spending categories among socialco's users at the bank: {}",
            top.join(", ")
        );
    }
}
