//! Room commands: keys, policies, budgets, runs through the output gate, receipts.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use super::ops::{Decision, Local, Operations, target};
use super::render::{number, table};
use strongroom::data_at_rest::stream::SealedSource;
use strongroom::dataset::csv_input::load_csv_tables;
use strongroom::dataset::schema::DatasetSchema;
use strongroom::guest_boundary::sandbox::EngineSettings;
use strongroom::guest_boundary::vetting::DEFAULT_MAX_MODULE_BYTES;
use strongroom::guest_boundary::{Sandbox, vet};
use strongroom::keys::{OperatorSecret, RoomPublicKeys};
use strongroom::output_gate::mechanism::{Mechanism, Noise, format_nano, parse_nano};
use strongroom::output_gate::release::ReleasedTable;
use strongroom::output_gate::sampling::Rational;
use strongroom::progress::Progress;
use strongroom::room::Room;
use strongroom::room::jobs::{
    AudienceInput, JobData, JobRequest, JobStatus, LoadWhole, plan_job, run_job,
};
use strongroom::room::policy::Policy;
use strongroom_verify::note::Verifier;
use strongroom_verify::receipt::Receipt;

/// Where the room is and how to open its keys.
#[derive(Args, Debug, Clone)]
pub(crate) struct RoomArgs {
    /// The room directory (on the room's machine; with --server, the served room is used).
    #[arg(long)]
    pub(super) room: Option<PathBuf>,
    /// File holding the operator secret (default: the STRONGROOM_PASSPHRASE environment variable).
    #[arg(long)]
    pub(super) secret_file: Option<PathBuf>,
}

/// The dataset a run reads: CSV tables checked against the bank's schema.
#[derive(Args, Debug, Clone)]
pub(super) struct DataArgs {
    /// A sealed dataset (from `strongroom seal`): every chunk checked with the room's key, then read window by window as the run goes (table mode: opened whole in memory).
    #[arg(long, conflicts_with_all = ["schema", "tables"])]
    dataset: Option<PathBuf>,
    /// Or, plaintext: the dataset schema (TOML) ...
    #[arg(long, requires = "tables")]
    schema: Option<PathBuf>,
    /// ... and each table as NAME=FILE.csv.
    #[arg(long = "table", value_name = "NAME=FILE")]
    tables: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub(super) enum RoomCommand {
    /// Print the room's public keys and fingerprint, to share with banks.
    Pubkey {
        /// The room directory (or --server for a served room).
        #[arg(long)]
        room: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub(super) enum PolicyCommand {
    /// The policies in force, local or served (a partner: its own), as the bank wrote them.
    Show {
        #[command(flatten)]
        room: RoomArgs,
        /// Also write the policy (TOML) to this file, for `budget preview --policy` and
        /// `dev run --policy`; there must be exactly one, or name its dataset with --dataset.
        #[arg(long)]
        out: Option<PathBuf>,
        /// With --out: the dataset whose policy to write.
        #[arg(long, requires = "out")]
        dataset: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Set the policy for a partner on a dataset (replaces the previous one).
    Set {
        #[command(flatten)]
        room: RoomArgs,
        /// Policy file (TOML); see docs/privacy.md.
        #[arg(long)]
        file: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub(super) enum BudgetCommand {
    /// Budgets: total, spent, remaining, as rho and as (epsilon, delta).
    Show {
        #[command(flatten)]
        room: RoomArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Before anything runs: the accuracy each metric of a module would get for a cost, and how
    /// many such jobs the budget allows. A partner needs no room: --policy (its policy, as the
    /// bank set it) and --dataset-schema (the bank's schema). A bank: --room, --partner and the
    /// data.
    Preview {
        #[command(flatten)]
        room: RoomArgs,
        /// The module (.wasm).
        #[arg(long)]
        module: PathBuf,
        /// The partner (with --room).
        #[arg(long)]
        partner: Option<String>,
        #[command(flatten)]
        data: DataArgs,
        /// Privacy cost: rho under a Gaussian policy, epsilon under a Laplace one.
        #[arg(long)]
        cost: String,
        /// A policy file, for a preview without a room.
        #[arg(long, requires = "dataset_schema", conflicts_with_all = ["room", "partner", "dataset"])]
        policy: Option<PathBuf>,
        /// With --policy: the bank's dataset schema (TOML), for its dictionaries.
        #[arg(long, requires = "policy")]
        dataset_schema: Option<PathBuf>,
        /// With --server: the dataset whose policy to preview under (when you have several).
        #[arg(long)]
        dataset_name: Option<String>,
    },
    /// The noise scale a cost buys for given sensitivities, without a room (for reviewers).
    Scale {
        /// gaussian (cost in rho) or laplace (cost in epsilon).
        #[arg(long)]
        mechanism: String,
        /// The cost.
        #[arg(long)]
        cost: String,
        /// Groups one entity can reach.
        #[arg(long, default_value_t = 1)]
        l0: u64,
        /// Most one entity moves one group's number, in the quantity's own units.
        #[arg(long, default_value_t = 1)]
        linf: u64,
        /// Quantities the cost is split over.
        #[arg(long, default_value_t = 1)]
        quantities: u64,
    },
}

#[derive(Subcommand, Debug)]
pub(super) enum ReceiptCommand {
    /// Check a receipt's signature against the room's key, and optionally the result it covers.
    Verify {
        /// The receipt file.
        #[arg(long)]
        receipt: PathBuf,
        /// The room's verifier key (room.vkey) or public key file (room.pub).
        #[arg(long)]
        key: PathBuf,
        /// The released result (JSON) the receipt should cover.
        #[arg(long)]
        result: Option<PathBuf>,
    },
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["module", "sql"])))]
pub(super) struct RunArgs {
    #[command(flatten)]
    room: RoomArgs,
    /// The module (.wasm).
    #[arg(long)]
    module: Option<PathBuf>,
    /// A SQL query (a file; docs/sql.md) to run through the SQL engine instead of a module.
    #[arg(long, value_name = "FILE")]
    sql: Option<PathBuf>,
    /// With --sql: the SQL engine module the policy names (default: the one built in
    /// examples/, see docs/sql.md).
    #[arg(long, requires = "sql")]
    engine: Option<PathBuf>,
    /// The partner running it.
    #[arg(long)]
    partner: String,
    #[command(flatten)]
    data: DataArgs,
    /// Privacy cost: rho under a Gaussian policy, epsilon under a Laplace one.
    #[arg(long)]
    cost: String,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// The partner's audience list, sealed to the room: adds `in_partner_audience` to the bank's
    /// customers for this job (the policy must allow matching).
    #[arg(long, value_name = "FILE.sealed")]
    audience: Option<PathBuf>,
    /// A parameter for the module, NAME=VALUE; repeat for each (the module reads them with
    /// `schema::parameter`).
    #[arg(long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// Write the released result as JSON here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write the receipt here.
    #[arg(long)]
    receipt: Option<PathBuf>,
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
}

/// `NAME=VALUE` pairs from the command line.
pub(super) fn parse_params(params: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    params
        .iter()
        .map(|p| strongroom_api::names::name_value(p, "--param").map_err(anyhow::Error::msg))
        .collect()
}

/// The runtime commands run on: multi-threaded, as a room on PostgreSQL drives its statements
/// from the threads that block on them.
pub(super) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

pub(super) async fn open_room(args: &RoomArgs) -> anyhow::Result<Room> {
    let secret = OperatorSecret::from_env_or_file(args.secret_file.as_deref())?;
    let Some(dir) = &args.room else {
        bail!(
            "give the room: --room DIR on the room's machine, or --server URL --token T for a served room"
        );
    };
    Ok(Room::open(dir, &secret).await?)
}

pub(super) fn keygen(
    room: &Path,
    name: Option<String>,
    secret_file: Option<&Path>,
    database: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let secret = OperatorSecret::from_env_or_file(secret_file)?;
    let name = match name {
        Some(n) => n,
        None => room
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| strongroom_api::names::valid_name(n))
            .unwrap_or("strongroom")
            .to_string(),
    };
    let created = runtime()?.block_on(Room::create_on(room, &name, &secret, database))?;
    println!("created room '{}' in {}", created.name(), room.display());
    if database.is_some() {
        println!("database: PostgreSQL, as room.toml's [database] says");
    }
    println!(
        "private keys: {} (encrypted, 0600)",
        room.join("keys").display()
    );
    println!(
        "share with banks: {}",
        room.join("keys").join("room.pub").display()
    );
    println!("fingerprint: {}", created.keys().public.fingerprint());
    Ok(ExitCode::SUCCESS)
}

pub(super) fn room(cmd: RoomCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        RoomCommand::Pubkey { room } => super::ops::print(
            Local::new(RoomArgs {
                room,
                secret_file: None,
            })
            .room_info(),
            false,
        ),
    }
}

/// `policy set`, on any room.
pub(super) fn set_policy(ops: &dyn Operations, file: &Path) -> anyhow::Result<ExitCode> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    super::ops::print(
        ops.set_policy(&text)
            .map_err(|e| anyhow::anyhow!("{}: {e:#}", file.display())),
        false,
    )
}

/// The one policy of `chosen` (those on `dataset`, when named), or why there is not one.
pub(super) fn only_policy<'a>(
    chosen: &[&'a strongroom_api::PolicyEntry],
    dataset: Option<&str>,
    flag: &str,
) -> anyhow::Result<&'a strongroom_api::PolicyEntry> {
    match (chosen, dataset) {
        ([one], _) => Ok(one),
        ([], Some(d)) => bail!("no policy you may see is on dataset '{d}'"),
        ([], None) => {
            bail!("no policy you may see is in force: the bank sets one with `policy set`")
        }
        (many, _) => bail!(
            "{} policies match; name the dataset with {flag}",
            many.len()
        ),
    }
}

/// `policy show` on a local or served room.
pub(super) fn show_policies(
    ops: &dyn Operations,
    out: Option<&Path>,
    dataset: Option<&str>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let policies = ops.policies()?;
    if let Some(out) = out {
        let chosen: Vec<_> = policies
            .iter()
            .filter(|p| dataset.is_none_or(|d| p.dataset == d))
            .collect();
        let one = only_policy(&chosen, dataset, "--dataset")?;
        super::ops::write_new(out, &one.policy_toml, "--out")?;
    }
    super::ops::print(Ok(policies), json)
}

pub(super) fn policy(cmd: PolicyCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PolicyCommand::Set { room, file } => set_policy(&Local::new(room), &file),
        PolicyCommand::Show {
            room,
            out,
            dataset,
            json,
        } => show_policies(&Local::new(room), out.as_deref(), dataset.as_deref(), json),
    }
}

/// The dataset, its content hash, where it came from (for the log) and who sealed it.
fn load_data(data: &DataArgs, room: &Room) -> anyhow::Result<(JobData, String, String, String)> {
    if let Some(path) = &data.dataset {
        // Every chunk is checked before anything is charged (one chunk in memory at a time);
        // the run then reads the file window by window.
        let verified = strongroom::data_at_rest::open::verify_file(path, room.keys())
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let source = Arc::new(
            SealedSource::open(path, room.keys())
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
        );
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let load: LoadWhole = {
            let source = Arc::clone(&source);
            Arc::new(move || source.load(threads).map(Arc::new))
        };
        let h = &verified.header;
        let origin = format!(
            "sealed by {} (ed25519 {}) at {}",
            h.sealed_by.name, h.sealed_by.ed25519, h.sealed_at
        );
        return Ok((
            JobData::sealed(source, load),
            verified.header_sha256,
            origin,
            h.sealed_by.name.clone(),
        ));
    }
    let Some(schema_path) = &data.schema else {
        bail!(
            "give the data: --dataset FILE.sealed, or --schema S.toml with --table NAME=FILE.csv"
        );
    };
    let schema = DatasetSchema::load(schema_path)?;
    let mut tables = Vec::new();
    for spec in &data.tables {
        let (name, path) =
            strongroom_api::names::name_value(spec, "--table").map_err(anyhow::Error::msg)?;
        tables.push((name, PathBuf::from(path)));
    }
    // The dataset's identity: its schema and every table's bytes, in schema order.
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(&std::fs::read(schema_path)?);
    for table in &schema.tables {
        if let Some((name, path)) = tables.iter().find(|(n, _)| n == &table.name) {
            ctx.update(name.as_bytes());
            ctx.update(
                &std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?,
            );
        }
    }
    let digest = hex::encode(ctx.finish().as_ref());
    let (dataset, _) = load_csv_tables(&tables, Some(&schema), "")?;
    Ok((
        JobData::Loaded(Arc::new(dataset)),
        digest,
        "plaintext CSV read through the bank's schema".to_string(),
        "local".to_string(),
    ))
}

fn unit(mechanism: Mechanism) -> &'static str {
    match mechanism {
        Mechanism::Gaussian => "rho",
        Mechanism::Laplace => "epsilon",
        Mechanism::None => "(none)",
    }
}

pub(super) fn budget(cmd: BudgetCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BudgetCommand::Show { room, json } => super::ops::print(Local::new(room).budgets(), json),
        BudgetCommand::Scale {
            mechanism,
            cost,
            l0,
            linf,
            quantities,
        } => {
            let cost_nano = parse_nano(&cost).map_err(|e| anyhow::anyhow!("--cost: {e}"))?;
            if cost_nano == 0 || l0 == 0 || linf == 0 || quantities == 0 {
                bail!("--cost, --l0, --linf and --quantities must be positive");
            }
            let mech = match mechanism.as_str() {
                "gaussian" => Mechanism::Gaussian,
                "laplace" => Mechanism::Laplace,
                other => bail!("--mechanism must be gaussian or laplace, not '{other}'"),
            };
            let per_quantity = cost_nano as f64 / 1e9 / quantities as f64;
            let value = match strongroom::output_gate::mechanism::noise(
                mech,
                cost_nano,
                quantities,
                l0,
                u128::from(linf),
            ) {
                Noise::Gaussian { sigma2 } => serde_json::json!({
                    "mechanism": "gaussian", "sigma2_num": sigma2.num.to_string(), "sigma2_den": sigma2.den.to_string(),
                    "sigma": sigma2.to_f64().sqrt(), "l2_sensitivity": (l0 as f64).sqrt() * linf as f64,
                    "rho_per_quantity": per_quantity,
                }),
                Noise::Laplace { s, t } => serde_json::json!({
                    "mechanism": "laplace", "scale_num": t.to_string(), "scale_den": s.to_string(),
                    "scale": Rational::new(t, s).to_f64(), "l1_sensitivity": (l0 * linf) as f64,
                    "epsilon_per_quantity": per_quantity,
                }),
                Noise::Exact => serde_json::json!({}),
            };
            println!("{}", serde_json::to_string_pretty(&value)?);
            Ok(ExitCode::SUCCESS)
        }
        BudgetCommand::Preview {
            room,
            module,
            partner,
            data,
            cost,
            policy,
            dataset_schema,
            ..
        } => {
            let cost_nano = parse_nano(&cost).map_err(|e| anyhow::anyhow!("--cost: {e}"))?;
            let bytes = std::fs::read(&module)
                .with_context(|| format!("cannot read {}", module.display()))?;
            let vetted = vet(&bytes, DEFAULT_MAX_MODULE_BYTES)?;
            let (dataset, policy, budget) = match (policy, dataset_schema) {
                (Some(policy), Some(schema)) => {
                    let text = std::fs::read_to_string(&policy)
                        .with_context(|| format!("cannot read the policy {}", policy.display()))?;
                    let policy = Policy::parse(&text)
                        .map_err(|e| anyhow::anyhow!("policy {}: {e}", policy.display()))?;
                    let schema = DatasetSchema::load(&schema)?;
                    let dataset = strongroom::data_at_rest::open::shape_of(&schema)
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                    let total = policy.budget_nano_rho;
                    (Arc::new(dataset), policy, Budget::Granted(total))
                }
                _ => {
                    let Some(partner) = partner else {
                        bail!(
                            "name the partner with --partner (a partner previews with --server, or with --policy and --dataset-schema)"
                        );
                    };
                    runtime()?.block_on(async {
                        let room = open_room(&room).await?;
                        let (data, _, _, _) = load_data(&data, &room)?;
                        let dataset = Arc::clone(data.shape());
                        let policy = room.policy(&partner, &dataset.name).await?;
                        let status = room.ledger().status(&partner, &dataset.name).await?;
                        anyhow::Ok((
                            dataset,
                            policy,
                            Budget::Left(status.remaining(), status.total_nano_rho),
                        ))
                    })?
                }
            };
            let plan = plan_job(&policy, &vetted.manifest, &dataset, cost_nano)
                .map_err(|e| anyhow::anyhow!("the room would refuse this job: {e}"))?;
            print_preview(&vetted.manifest, &policy, &plan, &cost, budget);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `budget preview` on a served room, for the caller (a partner needs no operator secret): its
/// policy, the dataset's schema and its budget left come from the room, the rest is worked out
/// here.
pub(super) fn preview_served(
    ops: &dyn Operations,
    module: &Path,
    cost: &str,
    dataset: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let cost_nano = parse_nano(cost).map_err(|e| anyhow::anyhow!("--cost: {e}"))?;
    let bytes =
        std::fs::read(module).with_context(|| format!("cannot read {}", module.display()))?;
    let vetted = vet(&bytes, DEFAULT_MAX_MODULE_BYTES)?;
    let policies = ops.policies()?;
    let chosen: Vec<_> = policies
        .iter()
        .filter(|p| dataset.is_none_or(|d| p.dataset == d))
        .collect();
    let entry = only_policy(&chosen, dataset, "--dataset-name")?;
    let policy = Policy::parse(&entry.policy_toml).map_err(|e| anyhow::anyhow!("{e}"))?;
    let detail = ops.dataset(&entry.dataset)?;
    let schema = DatasetSchema::parse_inline(&detail.schema_toml, &detail.name)?;
    let shape =
        strongroom::data_at_rest::open::shape_of(&schema).map_err(|e| anyhow::anyhow!("{e}"))?;
    let budget = served_budget(ops, &policy)?;
    let plan = plan_job(&policy, &vetted.manifest, &shape, cost_nano)
        .map_err(|e| anyhow::anyhow!("the room would refuse this job: {e}"))?;
    print_preview(&vetted.manifest, &policy, &plan, cost, budget);
    Ok(ExitCode::SUCCESS)
}

/// The partner's budget on a served room: what is left, or the policy's grant.
pub(super) fn served_budget(ops: &dyn Operations, policy: &Policy) -> anyhow::Result<Budget> {
    Ok(ops
        .budgets()?
        .into_iter()
        .find(|b| b.partner == policy.partner && b.dataset == policy.dataset)
        .map(|b| -> anyhow::Result<Budget> {
            let left = parse_nano(&b.remaining_rho).map_err(|e| anyhow::anyhow!("{e}"))?;
            let total = parse_nano(&b.total_rho).map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(Budget::Left(left, total))
        })
        .transpose()?
        .unwrap_or(Budget::Granted(policy.budget_nano_rho)))
}

/// What is known of a partner's budget when previewing.
pub(super) enum Budget {
    /// The policy's whole grant (a preview without a room does not know what was spent).
    Granted(u64),
    /// Left, of the total (from the room's ledger).
    Left(u64, u64),
}

/// Prints what a job would release: per metric, the 95% half-width of each number, and the group
/// size released 95% of the time; then how many such jobs the budget allows.
pub(super) fn print_preview(
    manifest: &strongroom_contract::manifest::Manifest,
    policy: &Policy,
    plan: &strongroom::output_gate::mechanism::NoisePlan,
    cost: &str,
    budget: Budget,
) {
    use strongroom::output_gate::accuracy;
    use strongroom_contract::manifest::MetricKind;
    let charge = strongroom::output_gate::mechanism::ledger_cost(policy.mechanism, plan.cost_nano);
    println!(
        "module {} {} under the policy for '{}' on '{}'",
        manifest.name, manifest.version, policy.partner, policy.dataset
    );
    println!(
        "mechanism {}; cost {} {} (charges rho {}); groups under {} entities suppressed",
        policy.mechanism,
        unit(policy.mechanism),
        cost,
        format_nano(charge),
        policy.min_group_size
    );
    let (left, of) = match budget {
        Budget::Granted(total) => (total, total),
        Budget::Left(left, total) => (left, total),
    };
    let jobs = left.checked_div(charge);
    println!(
        "budget: rho {} {} of {}: {}",
        format_nano(left),
        match budget {
            Budget::Granted(_) => "granted (what is already spent: `strongroom budget show`)",
            Budget::Left(..) => "left",
        },
        format_nano(of),
        match jobs {
            None => "this cost charges nothing".to_string(),
            Some(0) => "NOT ENOUGH for one job of this cost".to_string(),
            Some(n) => format!("{n} job(s) of this cost"),
        }
    );
    println!(
        "the cost is split over {} released quantities; each number below holds the exact value with probability {:.0}%\n",
        plan.quantities,
        accuracy::LEVEL * 100.0
    );
    let header: Vec<String> = [
        "metric",
        "kind",
        "L0",
        "noise std",
        "value: 95% interval",
        "entities: 95% interval",
        "released 95% of the time from",
    ]
    .map(String::from)
    .into();
    let rows: Vec<Vec<String>> = manifest
        .metrics
        .iter()
        .zip(&plan.metrics)
        .map(|(m, n)| {
            let e = accuracy::expected(m, n);
            let std = match e.value_std {
                Some(std) => number(std, 2),
                None => "per group".to_string(),
            };
            let value = if m.kind == MetricKind::Mean {
                format!(
                    "+/- {} at 1,000 contributions",
                    number(e.value_half_width, 2)
                )
            } else {
                format!(
                    "+/- {}",
                    number(
                        e.value_half_width,
                        if m.kind == MetricKind::Sum { 2 } else { 0 }
                    )
                )
            };
            let entities = e.entities_half_width;
            // Released when the noisy count reaches the threshold: 95% of the time from the
            // count whose lower 5% tail (the 90% two-sided half-width) still reaches it.
            let released_from =
                policy.min_group_size as f64 + accuracy::half_width(&n.entities, 0.90);
            vec![
                m.name.clone(),
                m.kind.to_string(),
                n.l0.to_string(),
                std,
                value,
                format!("+/- {}", number(entities, 0)),
                format!("{} entities", number(released_from, 0)),
            ]
        })
        .collect();
    print!("{}", table(&header, &rows, 2));
}

/// Prints a released table.
pub(crate) fn print_released(released: &ReleasedTable) {
    println!(
        "mechanism {}; groups with fewer than {} entities suppressed; cost rho {}, rho {} left",
        released.mechanism, released.threshold, released.cost_rho, released.remaining_rho
    );
    println!(
        "each value holds the exact one within its interval with probability {:.0}%; counts are kept at zero or more and means inside their bounds (post-processing, which costs no privacy)",
        released.confidence * 100.0
    );
    for m in &released.metrics {
        // A mean's noise depends on its group's count: its intervals say it, group by group.
        let value_noise = if m.kind == "mean" {
            "per group, in its interval".to_string()
        } else {
            number(m.value_noise_std, 2)
        };
        println!(
            "\n{} ({}) by {}   [noise std: value {value_noise}, entities {}; {} group(s) suppressed]",
            m.name,
            m.kind,
            m.key.join(" x "),
            number(m.entities_noise_std, 2),
            m.suppressed_groups
        );
        let mut header = m.key.clone();
        header.extend([
            "value".to_string(),
            format!("{:.0}% interval", released.confidence * 100.0),
            "entities".to_string(),
        ]);
        let shown = |v: f64| number(v, if v.abs() < 10.0 { 4 } else { 2 });
        let rows: Vec<Vec<String>> = m
            .groups
            .iter()
            .map(|g| {
                let mut cells = g.labels.clone();
                cells.push(shown(g.value));
                cells.push(format!("{} to {}", shown(g.low), shown(g.high)));
                cells.push(number(g.entities, 0));
                cells
            })
            .collect();
        print!("{}", table(&header, &rows, m.key.len()));
    }
}

/// Shows a run's progress on the terminal (standard error, when it is one), once a second,
/// until dropped.
struct ShowProgress {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ShowProgress {
    fn start(progress: Arc<Progress>) -> ShowProgress {
        use std::io::{IsTerminal, Write};
        use std::sync::atomic::Ordering;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = std::io::stderr().is_terminal().then(|| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut shown = false;
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(std::time::Duration::from_millis(250));
                    let p = progress.snapshot();
                    if p.customers > 0 && !stop.load(Ordering::Relaxed) {
                        eprint!(
                            "\r  customers run: {} of {}; chunks read and authenticated: {} of {}  ",
                            number(p.customers_done as f64, 0),
                            number(p.customers as f64, 0),
                            number(p.chunks_read as f64, 0),
                            number(p.chunks as f64, 0)
                        );
                        let _ = std::io::stderr().flush();
                        shown = true;
                    }
                }
                if shown {
                    eprintln!();
                }
            })
        });
        ShowProgress { stop, thread }
    }
}

impl Drop for ShowProgress {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

pub(super) fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let cost_nano = parse_nano(&args.cost).map_err(|e| anyhow::anyhow!("--cost: {e}"))?;
    let sql = match &args.sql {
        Some(path) => Some(super::sql_cmd::read_query(path)?),
        None => None,
    };
    let module_path = match (&args.module, &args.sql) {
        (Some(m), _) => m.clone(),
        (None, _) => super::sql_cmd::engine_path(args.engine.as_deref())?,
    };
    let module = std::fs::read(&module_path)
        .with_context(|| format!("cannot read {}", module_path.display()))?;
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let sandbox = Sandbox::new(&EngineSettings::default()).map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let progress = Arc::new(Progress::default());
    let shown = ShowProgress::start(Arc::clone(&progress));
    let result = runtime()?.block_on(async {
        let room = open_room(&args.room).await?;
        let (dataset, digest, origin, sealed_by) = load_data(&args.data, &room)?;
        let parameters = parse_params(&args.params)?;
        let audience = match &args.audience {
            Some(path) => {
                Some(AudienceInput::open(path, &room, threads).map_err(anyhow::Error::msg)?)
            }
            None => None,
        };
        let request = JobRequest {
            partner: &args.partner,
            module: &module,
            sql: sql.clone(),
            dataset,
            dataset_sha256: digest,
            dataset_origin: origin,
            sealed_by,
            cost_nano,
            threads,
            audience,
            job_id: None,
            parameters: parameters.clone(),
            progress: Some(Arc::clone(&progress)),
        };
        anyhow::Ok(run_job(&room, &sandbox, request).await?)
    });
    drop(shown);
    let result = result?;
    if let Some(path) = &args.receipt {
        std::fs::write(path, &result.receipt)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let (Some(path), Some(released)) = (&args.out, &result.released) {
        std::fs::write(path, serde_json::to_string(released)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if args.json {
        let value = serde_json::json!({
            "job": result.job_id, "outcome": result.outcome, "status": result.status,
            "result": result.released, "charged_rho": format_nano(result.charged_nano_rho),
            "remaining_rho": format_nano(result.remaining_nano_rho), "receipt": result.receipt,
            "bank_detail": result.bank_detail,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!(
            "job {}: outcome {}, {}",
            result.job_id,
            result.outcome,
            match result.status {
                JobStatus::Released => "released",
                JobStatus::Held => "held for the bank's release (`strongroom job release`)",
                JobStatus::Withheld => "withheld",
                JobStatus::Failed => "nothing released",
            }
        );
        println!(
            "charged rho {}; rho {} left",
            format_nano(result.charged_nano_rho),
            format_nano(result.remaining_nano_rho)
        );
        if let Some(detail) = &result.bank_detail {
            println!("for the bank only:\n{}", detail.trim_end());
        }
        if let Some(released) = &result.released {
            println!();
            print_released(released);
        }
    }
    Ok(if result.outcome == "completed" {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Reads a verifier from a `room.vkey` or `room.pub` file.
pub(crate) fn read_verifier(path: &Path) -> anyhow::Result<Verifier> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    if text.starts_with("strongroom room public keys v1") {
        let keys =
            RoomPublicKeys::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        return keys
            .verifier()
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()));
    }
    Verifier::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

pub(super) fn receipt(cmd: ReceiptCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ReceiptCommand::Verify {
            receipt,
            key,
            result,
        } => {
            let verifier = read_verifier(&key)?;
            let text = std::fs::read_to_string(&receipt)
                .with_context(|| format!("cannot read {}", receipt.display()))?;
            let parsed = match Receipt::verify(&text, &verifier) {
                Ok(r) => r,
                Err(e) => {
                    println!("INVALID receipt {}: {e}", receipt.display());
                    return Ok(ExitCode::from(1));
                }
            };
            if let Some(path) = result {
                let bytes = std::fs::read(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                let hash =
                    hex::encode(ring::digest::digest(&ring::digest::SHA256, &bytes).as_ref());
                if hash != parsed.result_sha256 {
                    println!(
                        "INVALID: {} is not the result this receipt covers",
                        path.display()
                    );
                    return Ok(ExitCode::from(1));
                }
            }
            println!("valid receipt signed by room '{}'", parsed.room);
            println!(
                "job {} for {}: outcome {}, cost rho {}, at {}",
                parsed.job, parsed.partner, parsed.outcome, parsed.cost_rho, parsed.time
            );
            println!(
                "module sha256:{}\ndataset {} sha256:{}\npolicy sha256:{}\nresult {}",
                parsed.module_sha256,
                parsed.dataset,
                parsed.dataset_sha256,
                parsed.policy_sha256,
                parsed.result_sha256
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A bank's decision on a module.
#[derive(Args, Debug)]
pub(super) struct DecisionArgs {
    #[command(flatten)]
    room: RoomArgs,
    /// The module's SHA-256 (from `strongroom module inspect`).
    #[arg(long)]
    module_sha256: String,
    /// The partner the decision is for.
    #[arg(long)]
    partner: String,
    /// Who decides (recorded in the audit log; with --server, the token's party).
    #[arg(long)]
    by: Option<String>,
    /// Why (recorded in the audit log).
    #[arg(long, default_value = "")]
    comment: String,
    /// A parameter jobs may give the module, as reviewed: `name=v1,v2` (exactly these values)
    /// or `name=min..max` (a number in the range). Repeat for each; none means jobs may pass
    /// no parameters.
    #[arg(long = "parameter")]
    parameters: Vec<String>,
}

pub(super) fn decide(
    args: DecisionArgs,
    approve: bool,
    remote: Option<&super::client::Remote>,
) -> anyhow::Result<ExitCode> {
    let rules = strongroom::room::approval::ParameterRules::parse_args(&args.parameters)
        .map_err(anyhow::Error::msg)?;
    let decision = Decision {
        module_sha256: args.module_sha256,
        partner: args.partner,
        approve,
        comment: args.comment,
        rules,
        by: args.by,
    };
    super::ops::print(target(remote, &args.room).decide_module(&decision), false)
}
