//! `strongroom dev run`, `module inspect`, `demo-data` and `demo`: the partner's local loop.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use ring::rand::{SecureRandom, SystemRandom};

use super::render::{label_rows, number, table};
use strongroom::dataset::Dataset;
use strongroom::dataset::csv_input::load_csv_tables;
use strongroom::dataset::schema::DatasetSchema;
use strongroom::guest_boundary::cache::ModuleCache;
use strongroom::guest_boundary::sandbox::EngineSettings;
use strongroom::guest_boundary::vetting::DEFAULT_MAX_MODULE_BYTES;
use strongroom::guest_boundary::{RunContext, RunReport, Sandbox, vet};
use strongroom::output_gate::forecast::MetricForecast;
use strongroom::output_gate::mechanism::parse_nano;
use strongroom::output_gate::sampling::SystemRandomBytes;
use strongroom::room::jobs::{domain_labels, plan_job};
use strongroom::room::policy::Policy;
use strongroom_contract::manifest::{Domain, Manifest, Mode};
use strongroom_synthetic as synthetic;

#[derive(Subcommand, Debug)]
pub(super) enum DevCommand {
    /// Run a module on plaintext CSV tables and print the exact aggregates. For the partner's own
    /// sample data: no thresholds, no noise, no budget.
    Run(DevRunArgs),
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["module", "sql"])))]
pub(super) struct DevRunArgs {
    /// The module (.wasm component).
    #[arg(long)]
    module: Option<PathBuf>,
    /// A SQL query (a file; docs/sql.md) to run through the SQL engine instead of a module;
    /// `--param NAME=VALUE` gives its `@NAME` parameters.
    #[arg(long, value_name = "FILE")]
    sql: Option<PathBuf>,
    /// With --sql: the SQL engine module (default: the one built in examples/, docs/sql.md).
    #[arg(long, requires = "sql")]
    engine: Option<PathBuf>,
    /// A table as NAME=FILE.csv; repeat for each table.
    #[arg(long = "table", value_name = "NAME=FILE", required = true)]
    tables: Vec<String>,
    /// Dataset schema (TOML). Without it, one is inferred from the files.
    #[arg(long)]
    schema: Option<PathBuf>,
    /// Without --schema: the column that names the entity (the privacy unit) in every table.
    #[arg(long, default_value = "customer_id")]
    entity_column: String,
    /// Mode to run in; defaults to the one the manifest declares.
    #[arg(long, value_enum)]
    mode: Option<ModeArg>,
    /// Worker threads for isolated mode (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Seed of the guest's randomness, 64 hex digits (default: fresh).
    #[arg(long)]
    seed: Option<String>,
    /// Print the result as JSON instead of tables.
    #[arg(long)]
    json: bool,
    /// Do not use the compiled-module cache.
    #[arg(long)]
    no_cache: bool,
    /// A parameter for the module, NAME=VALUE; repeat for each.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// A policy file (TOML, as the bank sets it): release the result through the real output
    /// gate (threshold, mechanism, noise) --trials times and show, per group, the error to
    /// expect, where 95% of released values fall, and the chance the group is suppressed.
    #[arg(long, requires = "cost")]
    policy: Option<PathBuf>,
    /// With --policy: the job's privacy cost (rho under a Gaussian policy, epsilon under a
    /// Laplace one).
    #[arg(long, requires = "policy")]
    cost: Option<String>,
    /// With --policy: how many releases to simulate.
    #[arg(long, default_value_t = 200, requires = "policy")]
    trials: u32,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub(super) enum ModeArg {
    Isolated,
    Table,
}

pub(super) fn run(cmd: DevCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        DevCommand::Run(args) => dev_run(args),
    }
}

fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("STRONGROOM_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("strongroom").join("modules")
}

fn parse_seed(seed: Option<&str>) -> anyhow::Result<[u8; 32]> {
    let mut out = [0u8; 32];
    match seed {
        Some(hex_seed) => {
            let bytes = hex::decode(hex_seed).context("--seed must be hexadecimal")?;
            if bytes.len() != 32 {
                bail!(
                    "--seed must be 64 hex digits (32 bytes), got {}",
                    bytes.len() * 2
                );
            }
            out.copy_from_slice(&bytes);
        }
        None => SystemRandom::new()
            .fill(&mut out)
            .map_err(|_| anyhow::anyhow!("no system randomness"))?,
    }
    Ok(out)
}

fn parse_tables(specs: &[String]) -> anyhow::Result<Vec<(String, PathBuf)>> {
    specs
        .iter()
        .map(|s| {
            let (name, path) =
                strongroom_api::names::name_value(s, "--table").map_err(anyhow::Error::msg)?;
            Ok((name, PathBuf::from(path)))
        })
        .collect()
}

fn dev_run(args: DevRunArgs) -> anyhow::Result<ExitCode> {
    let module_path = match &args.module {
        Some(m) => m.clone(),
        None => super::sql_cmd::engine_path(args.engine.as_deref())?,
    };
    let bytes = std::fs::read(&module_path)
        .with_context(|| format!("cannot read module {}", module_path.display()))?;
    let module = vet(&bytes, DEFAULT_MAX_MODULE_BYTES)
        .with_context(|| format!("{} was refused", module_path.display()))?;
    let schema = match &args.schema {
        Some(path) => Some(DatasetSchema::load(path)?),
        None => None,
    };
    let tables = parse_tables(&args.tables)?;
    let (dataset, _) = load_csv_tables(&tables, schema.as_ref(), &args.entity_column)?;
    if schema.is_none() {
        eprintln!(
            "note: without --schema, each category's dictionary is inferred from the files in alphabetical order; a bank's order can differ, and so would every index your module relies on (get the bank's schema with `strongroom dataset show NAME --schema-out FILE`)"
        );
    }
    let parameters = super::room_cmd::parse_params(&args.params)?;
    let sql = match &args.sql {
        Some(path) => Some(super::sql_cmd::compile_file(path, &dataset, &parameters)?),
        None => None,
    };
    let mode = match args.mode {
        Some(ModeArg::Isolated) => Mode::Isolated,
        Some(ModeArg::Table) => Mode::Table,
        None => module.manifest.mode,
    };
    let seed = parse_seed(args.seed.as_deref())?;
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let cache = if args.no_cache {
        None
    } else {
        Some(ModuleCache::open(&default_cache_dir())?)
    };

    let sandbox = Sandbox::new(&EngineSettings::default()).map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let prepared = sandbox.prepare(module, cache.as_ref())?;
    // A SQL query runs the engine under the manifest derived from its plan.
    let manifest = match &sql {
        Some(compiled) => compiled.manifest.clone(),
        None => prepared.module.manifest.clone(),
    };
    let dataset = Arc::new(dataset);
    let ctx = RunContext::new(
        Arc::clone(&dataset),
        manifest.clone(),
        mode,
        prepared.module.toolchain.limits(),
        seed,
    )?
    .with_parameters(&parameters)
    .map_err(anyhow::Error::msg)?;
    let ctx = match &sql {
        Some(compiled) => ctx.with_sql_plan(compiled.plan.to_hex()),
        None => ctx,
    };
    let started = Instant::now();
    let mut report = sandbox.run(&prepared, Arc::new(ctx), threads);
    let elapsed = started.elapsed();
    // On the partner's own plaintext, a failing customer is named by its key, not by an ordinal
    // that changes from run to run.
    report.detail = report.detail.map(|d| name_customers(&d, &dataset));
    let forecast = match (&args.policy, &report.aggregate) {
        (Some(path), Some(aggregate)) => Some(forecast(
            path,
            args.cost.as_deref().unwrap_or_default(),
            args.trials,
            &manifest,
            &dataset,
            aggregate,
        )?),
        _ => None,
    };

    if args.json {
        let value = serde_json::json!({
            "development_run": true,
            "module": { "name": manifest.name, "version": manifest.version, "sha256": prepared.module.hash_hex() },
            "sql": sql.as_ref().map(|c| serde_json::json!({ "query_sha256": c.query_sha256, "plan_sha256": c.plan_sha256 })),
            "mode": mode.to_string(),
            "outcome": report.outcome.code(),
            "detail": report.detail,
            "seed": hex::encode(report.seed),
            "aggregate": report.aggregate,
            "result": exact_result(&manifest, &dataset, report.aggregate.as_ref())?,
            "forecast": forecast,
            "stderr": String::from_utf8_lossy(&report.stderr),
            "stdout": String::from_utf8_lossy(&report.stdout),
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!(
            "DEVELOPMENT RUN on plaintext data you supplied: exact aggregates, no thresholds, no"
        );
        println!(
            "noise, no privacy budget. In a room, data is sealed and every result passes the output gate.\n"
        );
        print_report(
            &prepared.module.hash_hex(),
            &manifest,
            mode,
            &dataset,
            &report,
            elapsed,
        );
        if let Some(forecast) = &forecast {
            print_forecast(forecast);
        }
    }
    Ok(if report.outcome.is_completed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The message of the first panic in a module's captured stderr: Rust prints
/// `thread '...' panicked at FILE:LINE:COL:` and the message on the lines after it, which a trap's
/// own text (`unreachable`) does not say.
fn panic_message(stderr: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(stderr);
    let mut lines = text.lines();
    lines.find(|l| l.contains("panicked at"))?;
    let message: Vec<&str> = lines
        .take_while(|l| !l.starts_with("note:") && !l.trim().is_empty())
        .collect();
    (!message.is_empty()).then(|| message.join(" "))
}

/// `detail` with each `entity #N:` (an ordinal) replaced by the customer's key in the partner's
/// own data.
fn name_customers(detail: &str, dataset: &Dataset) -> String {
    detail
        .lines()
        .map(|line| {
            let named = line.strip_prefix("entity #").and_then(|rest| {
                let (ordinal, why) = rest.split_once(':')?;
                let key = dataset.entity_keys.get(ordinal.parse::<usize>().ok()?)?;
                Some(format!("customer '{key}':{why}"))
            });
            named.unwrap_or_else(|| line.to_string())
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The exact aggregate in the format of a room's released result (labelled groups, values,
/// intervals, entities), so that what reads a room's results reads a development run's: no
/// noise (each interval is the value itself) and no threshold (every group with data).
fn exact_result(
    manifest: &Manifest,
    dataset: &Dataset,
    aggregate: Option<&strongroom::output_gate::Aggregate>,
) -> anyhow::Result<Option<strongroom::output_gate::release::ReleasedTable>> {
    use strongroom::output_gate::mechanism::{Mechanism, plan};
    let Some(aggregate) = aggregate else {
        return Ok(None);
    };
    let labels = domain_labels(manifest, dataset);
    let counts: Vec<u64> = labels
        .iter()
        .map(|d| d.iter().fold(1u64, |a, p| a.saturating_mul(p.len() as u64)))
        .collect();
    let exact = plan(manifest, Mechanism::None, 0, u32::MAX, &counts)?;
    let mut table = strongroom::output_gate::release::release(
        manifest,
        aggregate,
        &labels,
        &exact,
        0,
        SystemRandomBytes::new(),
    )?;
    table.mechanism = "none: a development run on your own data, exact".into();
    Ok(Some(table))
}

/// What the room would release from `aggregate` under the policy in `path` at `cost`.
struct Forecast {
    policy: Policy,
    cost: String,
    trials: u32,
    metrics: Vec<MetricForecast>,
}

impl serde::Serialize for Forecast {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serde_json::json!({
            "mechanism": self.policy.mechanism,
            "cost": self.cost,
            "threshold": self.policy.min_group_size,
            "trials": self.trials,
            "metrics": self.metrics,
        })
        .serialize(s)
    }
}

fn forecast(
    path: &Path,
    cost: &str,
    trials: u32,
    manifest: &Manifest,
    dataset: &Dataset,
    aggregate: &strongroom::output_gate::Aggregate,
) -> anyhow::Result<Forecast> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the policy {}", path.display()))?;
    let policy =
        Policy::parse(&text).map_err(|e| anyhow::anyhow!("policy {}: {e}", path.display()))?;
    let cost_nano = parse_nano(cost).map_err(|e| anyhow::anyhow!("--cost: {e}"))?;
    if trials == 0 {
        bail!("--trials must be at least 1");
    }
    let plan = plan_job(&policy, manifest, dataset, cost_nano)
        .map_err(|e| anyhow::anyhow!("the room would refuse this job: {e}"))?;
    let labels = domain_labels(manifest, dataset);
    let metrics = strongroom::output_gate::forecast::forecast(
        manifest,
        aggregate,
        &labels,
        &plan,
        policy.min_group_size,
        trials,
        SystemRandomBytes::new(),
    )?;
    Ok(Forecast {
        policy,
        cost: cost.to_string(),
        trials,
        metrics,
    })
}

fn print_forecast(f: &Forecast) {
    println!(
        "
FORECAST: the result above released {} times through the output gate of the policy for '{}' ({}, cost {}, groups under {} entities suppressed). In a room, the bank's data replaces your sample.",
        f.trials, f.policy.partner, f.policy.mechanism, f.cost, f.policy.min_group_size
    );
    for m in &f.metrics {
        println!(
            "
{} ({}) by {}",
            m.name,
            m.kind,
            m.key.join(" x ")
        );
        let mut header = m.key.clone();
        header.extend([
            "exact (sample)".to_string(),
            "expected error".into(),
            "95% of releases in".into(),
            "suppressed".into(),
        ]);
        let shown = |v: f64| number(v, if v.abs() < 10.0 { 4 } else { 2 });
        let body: Vec<Vec<String>> = m
            .groups
            .iter()
            .map(|g| {
                let mut cells = g.labels.clone();
                cells.push(g.exact.map_or("-".into(), shown));
                cells.push(g.expected_error.map_or("-".into(), shown));
                cells.push(g.range_95.map_or("-".into(), |[lo, hi]| {
                    format!("{} to {}", shown(lo), shown(hi))
                }));
                cells.push(format!("{:.0}%", g.suppressed * 100.0));
                cells
            })
            .collect();
        print!("{}", table(&header, &body, m.key.len()));
    }
}

fn print_report(
    hash: &str,
    manifest: &Manifest,
    mode: Mode,
    dataset: &Dataset,
    report: &RunReport,
    elapsed: std::time::Duration,
) {
    let rows: Vec<String> = dataset
        .tables
        .iter()
        .map(|t| format!("{} {} rows", t.name, number(t.rows() as f64, 0)))
        .collect();
    println!(
        "module   {} {} (sha256 {})",
        manifest.name,
        manifest.version,
        &hash[..16]
    );
    println!(
        "data     {}; {} entities",
        rows.join(", "),
        number(dataset.entities() as f64, 0)
    );
    // Table mode runs reviewed modules on the engine that meters no fuel.
    let fuel = match mode {
        Mode::Table => "no fuel metered (reviewed mode: wall-clock limit)".to_string(),
        Mode::Isolated => format!("{} fuel", number(report.fuel_consumed as f64, 0)),
    };
    println!(
        "run      {} mode, {} unit(s), {fuel}, {:.2} s, seed {}",
        mode,
        number(report.units as f64, 0),
        elapsed.as_secs_f64(),
        &hex::encode(report.seed)[..16]
    );
    println!("outcome  {}", report.outcome);
    if let Some(cause) = panic_message(&report.stderr) {
        println!("cause    {cause} (the module's panic, from its stderr below)");
    }
    if let Some(detail) = &report.detail {
        println!("detail   {detail}");
    }
    if let Some(aggregate) = &report.aggregate {
        for (i, metric) in manifest.metrics.iter().enumerate() {
            let labels: Vec<String> = metric.key.iter().map(Domain::label).collect();
            println!(
                "\n{} ({}) by {}",
                metric.name,
                metric.kind,
                labels.join(" x ")
            );
            let mut header = labels.clone();
            header.extend([
                "value".to_string(),
                "entities".into(),
                "contributions".into(),
            ]);
            let body: Vec<Vec<String>> = label_rows(aggregate, manifest, dataset, i)
                .into_iter()
                .map(|r| {
                    let mut cells = r.labels;
                    cells.push(number(r.value, usize::from(metric.decimals)));
                    cells.push(number(r.entities as f64, 0));
                    cells.push(number(r.contributions as f64, 0));
                    cells
                })
                .collect();
            print!("{}", table(&header, &body, labels.len()));
            println!(
                "(exact, every group shown: a room adds noise and suppresses groups under its threshold; --policy and --cost show what it would release)"
            );
        }
        let s = aggregate.stats;
        println!(
            "\nbounding: {} value(s) clamped, {} dropped over max_groups_per_entity, {} dropped over max_contributions_per_group",
            number(s.clamped as f64, 0),
            number(s.dropped_over_group_limit as f64, 0),
            number(s.dropped_over_contribution_limit as f64, 0)
        );
        if s.dropped_over_contribution_limit > 0 {
            let capped: Vec<String> = manifest
                .metrics
                .iter()
                .filter(|m| {
                    m.max_contributions_per_group == 1
                        && m.kind != strongroom_contract::manifest::MetricKind::Distinct
                })
                .map(|m| m.name.clone())
                .collect();
            if !capped.is_empty() {
                println!(
                    "note: {} keep(s) one contribution per customer and group (the default): to count or sum more of a customer's rows, raise it with .max_contributions_per_group(n)",
                    capped.join(", ")
                );
            }
        }
    }
    for (name, bytes) in [("stdout", &report.stdout), ("stderr", &report.stderr)] {
        if !bytes.is_empty() {
            println!(
                "\nguest {name} (shown in development runs only; in a room it goes to the bank's audit log):"
            );
            println!("{}", String::from_utf8_lossy(bytes).trim_end());
        }
    }
}

pub(super) fn inspect(path: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read module {}", path.display()))?;
    let module = match vet(&bytes, DEFAULT_MAX_MODULE_BYTES) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("refused: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let m = &module.manifest;
    if json {
        let metrics: Vec<_> = m
            .metrics
            .iter()
            .map(|x| {
                serde_json::json!({
                    "name": x.name, "kind": x.kind, "lower": x.lower, "upper": x.upper, "decimals": x.decimals,
                    "max_contributions_per_group": x.max_contributions_per_group,
                    "key": x.key.iter().map(|d| match d {
                        Domain::Column { table, column } => serde_json::json!({"column": format!("{table}.{column}")}),
                        Domain::Enumeration { name, members } => serde_json::json!({"enumeration": name, "members": members}),
                    }).collect::<Vec<_>>(),
                })
            })
            .collect();
        let reads: Vec<_> = m
            .reads
            .iter()
            .map(|r| serde_json::json!({"table": r.table, "columns": r.columns.iter().map(|(c, t)| serde_json::json!({"name": c, "type": t})).collect::<Vec<_>>()}))
            .collect();
        let value = serde_json::json!({
            "module_sha256": module.hash_hex(), "size": module.bytes.len(), "name": m.name, "version": m.version,
            "mode": m.mode, "max_groups_per_entity": m.max_groups_per_entity, "reads": reads, "metrics": metrics,
            "imports": module.imports, "functions": module.functions,
            "toolchain": module.toolchain.name(),
            "limits": {
                "fuel_per_customer": module.toolchain.limits().fuel_per_entity,
                "unit_deadline_ms": module.toolchain.limits().unit_deadline.as_millis() as u64,
            },
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "accepted {} {} ({} bytes)",
        m.name,
        m.version,
        number(module.bytes.len() as f64, 0)
    );
    println!("sha256   {}", module.hash_hex());
    println!("mode     {}", m.mode);
    let limits = module.toolchain.limits();
    println!(
        "toolchain {}: {} fuel per customer, {} s per customer (the toolchain's defaults; a policy's [limits] may change them)",
        module.toolchain,
        number(limits.fuel_per_entity as f64, 0),
        limits.unit_deadline.as_secs_f64()
    );
    println!(
        "max groups per entity, per metric: {}",
        m.max_groups_per_entity
    );
    println!("reads");
    for r in &m.reads {
        let cols: Vec<String> = r.columns.iter().map(|(c, t)| format!("{c}: {t}")).collect();
        println!("  {} ({})", r.table, cols.join(", "));
    }
    println!("metrics");
    for x in &m.metrics {
        let key: Vec<String> = x
            .key
            .iter()
            .map(|d| match d {
                Domain::Column { table, column } => format!("{table}.{column}"),
                Domain::Enumeration { name, members } => format!("{name}[{}]", members.len()),
            })
            .collect();
        let values = match x.kind {
            strongroom_contract::manifest::MetricKind::Count
            | strongroom_contract::manifest::MetricKind::Distinct => String::new(),
            _ => format!(
                ", values in [{}, {}], {} decimals{}",
                x.lower,
                x.upper,
                x.decimals,
                default_mark(x.decimals == 2)
            ),
        };
        println!(
            "  {} = {} by ({}){values}, up to {} per group per entity{}",
            x.name,
            x.kind,
            key.join(", "),
            x.max_contributions_per_group,
            default_mark(x.max_contributions_per_group == 1)
        );
    }
    println!("imports  {}", module.imports.join(", "));
    Ok(ExitCode::SUCCESS)
}

/// Marks a value that is the manifest format's default (docs/formats/manifest.md), which the
/// SDKs write when a module does not say.
fn default_mark(is_default: bool) -> &'static str {
    if is_default { " (the default)" } else { "" }
}

/// `demo-data --schema`: random sample data that fits a bank's schema.
pub(super) fn sample_data(
    schema: &Path,
    customers: usize,
    per_customer: f64,
    seed: u64,
    out: &Path,
) -> anyhow::Result<ExitCode> {
    if customers == 0 {
        bail!("--customers must be at least 1");
    }
    let schema = DatasetSchema::load(schema)?;
    let written = synthetic::from_schema::write_sample(&schema, customers, per_customer, seed, out)
        .with_context(|| format!("cannot write to {}", out.display()))?;
    let tables: Vec<String> = written
        .iter()
        .map(|(t, rows)| format!("{t}.csv ({} rows)", number(*rows as f64, 0)))
        .collect();
    println!(
        "wrote random sample data for '{}' that loads under its schema to {}: {}, schema.toml",
        schema.name,
        out.display(),
        tables.join(", ")
    );
    Ok(ExitCode::SUCCESS)
}

pub(super) fn demo_data(
    customers: usize,
    per_customer: f64,
    seed: u64,
    out: &Path,
) -> anyhow::Result<ExitCode> {
    if customers == 0 {
        bail!("--customers must be at least 1");
    }
    let bank = synthetic::generate(customers, per_customer, seed);
    bank.write_csv(out)
        .with_context(|| format!("cannot write to {}", out.display()))?;
    println!(
        "wrote {} customers and {} transactions to {} (customers.csv, transactions.csv, schema.toml)",
        number(customers as f64, 0),
        number(bank.transactions() as f64, 0),
        out.display()
    );
    let partner_dir = out.join("partner");
    let users = synthetic::partner_users(&bank, customers / 5, seed);
    users
        .write_csv(&partner_dir)
        .with_context(|| format!("cannot write to {}", partner_dir.display()))?;
    println!(
        "wrote the partner's list of {} users (emails, phone numbers) to {} (users.csv, schema.toml)",
        number(users.len() as f64, 0),
        partner_dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Builds the examples workspace for wasm32-wasip2 and returns its release output directory.
pub(crate) fn build_examples(examples: &Path) -> anyhow::Result<PathBuf> {
    strongroom_contract::toolchain::build_guest_workspace(examples, true).map_err(|e| {
        anyhow::anyhow!("{e} (pass --examples DIR to point at the examples workspace)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_message_is_found_in_a_modules_stderr() {
        let stderr = b"thread '<unnamed>' panicked at src/lib.rs:60:12:\nmetric 'spend' is not listed in the manifest's metrics\nnote: run with `RUST_BACKTRACE=1`\n";
        assert_eq!(
            panic_message(stderr).as_deref(),
            Some("metric 'spend' is not listed in the manifest's metrics")
        );
        assert_eq!(panic_message(b"printed, no panic\n"), None);
    }

    #[test]
    fn failing_customers_are_named_by_their_keys() {
        let dataset = Dataset {
            name: "sample".into(),
            tables: Vec::new(),
            entity_keys: vec!["C001".into(), "C007".into()],
            span: 0..2,
        };
        let detail = "entity #1: trap: unreachable\nentity #9: out of range\nother text";
        assert_eq!(
            name_customers(detail, &dataset),
            "customer 'C007': trap: unreachable\nentity #9: out of range\nother text"
        );
    }
}
