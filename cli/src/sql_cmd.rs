//! `strongroom sql explain`, and what every command with `--sql` shares: reading a query,
//! finding the SQL engine module, compiling against a dataset's shape.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use super::ops::Operations;
use super::render::table;
use strongroom::dataset::Dataset;
use strongroom::dataset::schema::DatasetSchema;
use strongroom::output_gate::mechanism::parse_nano;
use strongroom::room::jobs::plan_job;
use strongroom::room::policy::Policy;
use strongroom_sql::Compiled;

/// `strongroom sql ...`.
#[derive(Subcommand, Debug)]
pub(super) enum SqlCommand {
    /// Compile a query against a dataset's schema and show what it would run and release: the
    /// tables and columns it reads, its group key's public domains, each released number's
    /// bounds, its template and plan hashes; with a cost (and a policy, or over a served room),
    /// the noise and the 95% interval of every released number.
    Explain(ExplainArgs),
}

#[derive(Args, Debug)]
pub(super) struct ExplainArgs {
    /// The query (a file).
    pub(super) query: PathBuf,
    /// The dataset's schema (TOML), e.g. from `strongroom dataset show NAME --schema-out`.
    /// Without it, the schema and your policy come from the served room (--server).
    #[arg(long)]
    pub(super) schema: Option<PathBuf>,
    /// Over a served room: the dataset, when you have policies on several.
    #[arg(long)]
    pub(super) dataset_name: Option<String>,
    /// A value for the query's `@NAME` parameter, NAME=VALUE; repeat for each.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub(super) params: Vec<String>,
    /// A policy file (TOML, as the bank sets it), for the noise at --cost.
    #[arg(long, requires = "cost", requires = "schema")]
    pub(super) policy: Option<PathBuf>,
    /// The job's privacy cost (rho under a Gaussian policy, epsilon under a Laplace one).
    #[arg(long)]
    pub(super) cost: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub(super) json: bool,
}

/// Reads a query file (at most `strongroom_sql::MAX_QUERY_BYTES`).
pub(super) fn read_query(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the query {}", path.display()))?;
    if text.len() > strongroom_sql::MAX_QUERY_BYTES {
        bail!(
            "{}: the query is {} bytes; at most {}",
            path.display(),
            text.len(),
            strongroom_sql::MAX_QUERY_BYTES
        );
    }
    Ok(text)
}

/// The SQL engine module: `given`, or the one built from this repository's `examples/`.
pub(super) fn engine_path(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = given {
        return Ok(path.to_path_buf());
    }
    let built = Path::new("examples/target/wasm32-wasip2/release/sql_engine.wasm");
    let beside_source = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(built);
    for candidate in [built.to_path_buf(), beside_source] {
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!(
        "no SQL engine module found: build it with `cargo build --release --target wasm32-wasip2 --manifest-path examples/Cargo.toml -p sql-engine`, or pass --engine FILE (the one your bank approved)"
    )
}

/// Compiles the query in `path` against `dataset`'s shape, errors shown as `FILE:LINE:COLUMN`.
pub(super) fn compile_file(
    path: &Path,
    dataset: &Dataset,
    parameters: &[(String, String)],
) -> anyhow::Result<Compiled> {
    let text = read_query(path)?;
    compile_text(&text, &path.display().to_string(), dataset, parameters)
}

fn compile_text(
    text: &str,
    name: &str,
    dataset: &Dataset,
    parameters: &[(String, String)],
) -> anyhow::Result<Compiled> {
    // One line, as `FILE:LINE:COLUMN: message`, which editors and terminals link to the place.
    strongroom_sql::compile(text, &strongroom::room::sql::catalog(dataset), parameters)
        .map_err(|e| anyhow::anyhow!("{name}:{}:{}: {}", e.line, e.column, e.message))
}

/// `strongroom sql ...` on this machine.
pub(super) fn run(cmd: SqlCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SqlCommand::Explain(args) => {
            let Some(schema_path) = &args.schema else {
                return super::needs_server();
            };
            let schema = DatasetSchema::load(schema_path)?;
            let shape = strongroom::data_at_rest::open::shape_of(&schema)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let policy = match &args.policy {
                Some(p) => {
                    let text = std::fs::read_to_string(p)
                        .with_context(|| format!("cannot read the policy {}", p.display()))?;
                    Some(
                        Policy::parse(&text)
                            .map_err(|e| anyhow::anyhow!("policy {}: {e}", p.display()))?,
                    )
                }
                None => None,
            };
            let budget = policy
                .as_ref()
                .map(|p| super::room_cmd::Budget::Granted(p.budget_nano_rho));
            explain(&args, &shape, policy.as_ref().zip(budget))
        }
    }
}

/// `strongroom sql explain` over a served room: the schema and the partner's policy and budget
/// come from the room; the query is compiled here, as the room will compile it.
pub(super) fn explain_served(ops: &dyn Operations, args: &ExplainArgs) -> anyhow::Result<ExitCode> {
    let policies = ops.policies()?;
    let chosen: Vec<_> = policies
        .iter()
        .filter(|p| args.dataset_name.as_deref().is_none_or(|d| p.dataset == d))
        .collect();
    let entry =
        super::room_cmd::only_policy(&chosen, args.dataset_name.as_deref(), "--dataset-name")?;
    let policy = Policy::parse(&entry.policy_toml).map_err(|e| anyhow::anyhow!("{e}"))?;
    let detail = ops.dataset(&entry.dataset)?;
    let schema = DatasetSchema::parse_inline(&detail.schema_toml, &detail.name)?;
    let shape =
        strongroom::data_at_rest::open::shape_of(&schema).map_err(|e| anyhow::anyhow!("{e}"))?;
    let budget = super::room_cmd::served_budget(ops, &policy)?;
    explain(args, &shape, Some((&policy, budget)))
}

fn explain(
    args: &ExplainArgs,
    shape: &Dataset,
    policy: Option<(&Policy, super::room_cmd::Budget)>,
) -> anyhow::Result<ExitCode> {
    let parameters = super::room_cmd::parse_params(&args.params)?;
    let compiled = compile_file(&args.query, shape, &parameters)?;
    let m = &compiled.manifest;
    let noise = match (policy, &args.cost) {
        (Some((policy, budget)), Some(cost)) => {
            let cost_nano = parse_nano(cost).map_err(|e| anyhow::anyhow!("--cost: {e}"))?;
            let plan = plan_job(policy, m, shape, cost_nano)
                .map_err(|e| anyhow::anyhow!("the room would refuse this query: {e}"))?;
            if let Some(rules) = &policy.sql
                && rules.queries == strongroom::room::policy::SqlQueries::Templates
                && !rules.templates.contains(&compiled.query_sha256)
            {
                eprintln!(
                    "note: your policy allows only approved templates, and this query is not one; ask the bank to approve template {}",
                    compiled.query_sha256
                );
            }
            Some((policy, budget, plan, cost.clone()))
        }
        (None, Some(_)) => bail!("--cost needs your policy: --policy FILE, or a served room"),
        _ => None,
    };
    let key: Vec<String> = m.metrics[0]
        .key
        .iter()
        .map(|d| match d {
            strongroom_contract::manifest::Domain::Column { table, column } => {
                let size = shape
                    .tables
                    .iter()
                    .find(|t| t.name == *table)
                    .and_then(|t| t.guest_columns.iter().find(|c| c.name == *column))
                    .and_then(|c| c.dictionary.as_ref().map(|d| d.len()))
                    .unwrap_or(0);
                format!("{column} ({table}.{column}'s dictionary, {size} labels)")
            }
            strongroom_contract::manifest::Domain::Enumeration { name, members } => {
                format!("{name} ({})", members.join(", "))
            }
        })
        .collect();
    if args.json {
        let value = serde_json::json!({
            "query_sha256": compiled.query_sha256,
            "plan_sha256": compiled.plan_sha256,
            "normalized": compiled.normalized,
            "reads": m.reads.iter().map(|r| serde_json::json!({
                "table": r.table,
                "columns": r.columns.iter().map(|(c, _)| c.clone()).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "group_key": key,
            "max_groups_per_customer": m.max_groups_per_entity,
            "metrics": m.metrics.iter().zip(&compiled.metrics).map(|(metric, source)| serde_json::json!({
                "name": metric.name,
                "kind": metric.kind.to_string(),
                "sql": source.sql,
                "lower": metric.lower,
                "upper": metric.upper,
                "max_contributions_per_group": metric.max_contributions_per_group,
                "per_customer": source.bounding,
            })).collect::<Vec<_>>(),
            "plan": format!("{:?}", compiled.plan),
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "query  sha256:{}  (its template hash, for a policy's sql.templates)",
        compiled.query_sha256
    );
    println!("plan   sha256:{}", compiled.plan_sha256);
    for r in &m.reads {
        println!(
            "reads  {}: {}",
            r.table,
            r.columns
                .iter()
                .map(|(c, _)| c.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    println!("group  {}", key.join(" x "));
    println!(
        "each customer reaches at most {} group(s) per metric\n",
        m.max_groups_per_entity
    );
    let header: Vec<String> = ["metric", "kind", "bounds", "per customer and group"]
        .map(String::from)
        .into();
    let rows: Vec<Vec<String>> = m
        .metrics
        .iter()
        .zip(&compiled.metrics)
        .map(|(metric, source)| {
            vec![
                metric.name.clone(),
                metric.kind.to_string(),
                if metric.kind.counts_only() {
                    "-".into()
                } else {
                    format!("[{}, {}]", metric.lower, metric.upper)
                },
                source.bounding.clone(),
            ]
        })
        .collect();
    print!("{}", table(&header, &rows, 2));
    if let Some((policy, budget, plan, cost)) = noise {
        println!();
        super::room_cmd::print_preview(m, policy, &plan, &cost, budget);
    } else {
        println!(
            "\n(add --cost, with --policy or over a served room, for each number's noise and 95% interval)"
        );
    }
    Ok(ExitCode::SUCCESS)
}
