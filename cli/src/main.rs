//! # strongroom-cli: the `strongroom` command
//!
//! Thin: parses arguments, calls the room's library (`strongroom`) or a served room over HTTP,
//! prints results. One file per command family.
#![forbid(unsafe_code)]

mod audit_cmd;
mod chart;
mod client;
mod demo;
mod demo_serve;
mod dev;
mod manifest_cmd;
mod ops;
mod render;
mod room_cmd;
mod seal_cmd;
mod service_cmd;
mod sql_cmd;
mod worker_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};

/// Strongroom: a data clean room. Banks seal data, partners run WebAssembly queries under hard
/// limits, only vetted aggregates leave.
#[derive(Parser, Debug)]
#[command(name = "strongroom", version, about)]
pub struct Cli {
    /// A served room (`strongroom serve`): the commands that can, talk to it over HTTP.
    #[arg(long, global = true, env = "STRONGROOM_SERVER")]
    server: Option<String>,
    /// The caller's token for --server (from `strongroom party add`).
    #[arg(long, global = true, env = "STRONGROOM_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A certificate to trust for an https --server (e.g. a room's development certificate).
    #[arg(long, global = true, env = "STRONGROOM_CA_CERT")]
    ca_cert: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The partner's local development loop, on its own plaintext sample data.
    #[command(subcommand)]
    Dev(dev::DevCommand),
    /// Query modules: vet and inspect.
    #[command(subcommand)]
    Module(ModuleCommand),
    /// Generate the synthetic bank (customers, card transactions) as CSV plus its schema, and the
    /// partner's user list (emails, phone numbers) in `OUT/partner`.
    DemoData {
        /// Number of customers.
        #[arg(long, default_value_t = 1000)]
        customers: usize,
        /// Mean card transactions per customer.
        #[arg(long, default_value_t = 20.0)]
        transactions_per_customer: f64,
        /// Seed, so the same data can be generated again.
        #[arg(long, default_value_t = 2018)]
        seed: u64,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// A bank's dataset schema (from `strongroom dataset show NAME --schema-out FILE`): write
        /// random sample data that loads under it instead, its dictionaries in the bank's order
        /// (the first table one row per customer, the others --transactions-per-customer rows
        /// on average).
        #[arg(long)]
        schema: Option<PathBuf>,
    },
    /// The bank-and-partner story end to end: builds the example modules, creates a room, seals
    /// a synthetic bank and the partner's user list, vets and approves the modules, runs four
    /// questions, writes CSV and SVG results, and verifies the audit log offline.
    Demo(demo::DemoArgs),
    /// Create a room: its sealing and signing keys (encrypted under the operator secret) and
    /// its database.
    Keygen {
        /// Directory for the new room.
        #[arg(long)]
        room: PathBuf,
        /// Room name (default: the directory's name).
        #[arg(long)]
        name: Option<String>,
        /// File holding the operator secret (default: STRONGROOM_PASSPHRASE).
        #[arg(long)]
        secret_file: Option<PathBuf>,
        /// Keep the room's database on PostgreSQL (`postgres://user@host/db`, an empty database
        /// of its own with the C collation) instead of SQLite in the room's directory, so that
        /// several `strongroom serve` nodes can share it (docs/deploy.md).
        #[arg(long)]
        database: Option<String>,
    },
    /// The room's public keys.
    #[command(subcommand)]
    Room(room_cmd::RoomCommand),
    /// The bank's policies for partners.
    #[command(subcommand)]
    Policy(room_cmd::PolicyCommand),
    /// Privacy budgets: show them, preview a job's noise.
    #[command(subcommand)]
    Budget(room_cmd::BudgetCommand),
    /// Run a module (or a SQL query, --sql) in a room: budget charged first, output gate
    /// applied, receipt signed.
    Run(room_cmd::RunArgs),
    /// SQL queries: see what one compiles to and what it would release (docs/sql.md).
    #[command(subcommand)]
    Sql(sql_cmd::SqlCommand),
    /// Receipts.
    #[command(subcommand)]
    Receipt(room_cmd::ReceiptCommand),
    /// The audit log: show, export, checkpoint, prove, and verify offline.
    #[command(subcommand)]
    Audit(audit_cmd::AuditCommand),
    /// Create a sealing party's signing key (a bank signs the datasets it seals with it).
    PartyKey {
        /// The party's name, e.g. the bank's.
        #[arg(long)]
        name: String,
        /// Where to write the key (created 0600).
        #[arg(long)]
        out: PathBuf,
    },
    /// Seal a dataset to a room, on the bank's machine, with only the room's public key.
    Seal {
        /// Dataset schema (TOML).
        #[arg(long)]
        schema: PathBuf,
        /// The room's public keys (room.pub, from `strongroom room pubkey`).
        #[arg(long)]
        room_key: PathBuf,
        /// The sealing party's key (from `strongroom party-key`).
        #[arg(long)]
        party_key: PathBuf,
        /// A table as NAME=FILE.csv; repeat for each table.
        #[arg(long = "table", value_name = "NAME=FILE", required = true)]
        tables: Vec<String>,
        /// Output file (written to a temporary file, renamed on success).
        #[arg(long)]
        out: PathBuf,
        /// Rows per encrypted chunk.
        #[arg(long, default_value_t = 65_536)]
        chunk_rows: usize,
        /// Memory for sorting rows by entity before spilling to disk, in MiB.
        #[arg(long, default_value_t = 256)]
        memory_budget_mib: usize,
    },
    /// Sealed datasets.
    #[command(subcommand)]
    Dataset(seal_cmd::DatasetCommand),
    /// Serve the room over HTTP (docs/api.md).
    Serve(service_cmd::ServeArgs),
    /// Run one partition of a room's job, as the room's engine starts it (docs/deploy.md): reads
    /// the partition's spec and its token on stdin, a line each, and writes the answer for the
    /// room on stdout. Exit status 0: a partial; 3: refused (no retry helps); 75: retry.
    Worker {
        /// A local copy of the module, in place of the spec's location (an engine that ships
        /// the module names its copy here).
        #[arg(long)]
        module: Option<PathBuf>,
    },
    /// Parties that may call the service, and their tokens.
    #[command(subcommand)]
    Party(service_cmd::PartyCommand),
    /// Jobs: list them and release or withhold held results on any room; submit, show and get a
    /// result on a served one (--server).
    #[command(subcommand)]
    Job(client::JobCommand),
    /// A partner's audience lists on a served room (--server).
    #[command(subcommand)]
    Audience(AudienceCommand),
}

#[derive(Subcommand, Debug)]
enum AudienceCommand {
    /// Upload a list sealed with `strongroom seal` under the partner's own party key; prints its
    /// hash, to name in `job submit --audience-list`.
    Upload {
        /// The sealed list.
        file: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum ModuleCommand {
    /// Vet a module and print its manifest, or say exactly why it is refused.
    Inspect {
        /// The component (.wasm).
        module: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Put a manifest written in TOML into a component built by a toolchain that cannot embed
    /// one (docs/formats/manifest.md): encoded by the one encoder of the format, placed in the
    /// component's first core module, and the result vetted.
    EmbedManifest {
        /// The component (.wasm).
        module: PathBuf,
        /// The manifest (TOML).
        #[arg(long)]
        manifest: PathBuf,
        /// Where to write the result (default: over the component).
        #[arg(long, short)]
        out: Option<PathBuf>,
        /// Replace a manifest the component already carries.
        #[arg(long)]
        replace: bool,
    },
    /// The bank approves a module, by hash, for a partner (required for table mode).
    Approve(room_cmd::DecisionArgs),
    /// The bank rejects a module, by hash, for a partner.
    Reject(room_cmd::DecisionArgs),
    /// Upload a module to a served room (--server, partner); it is vetted at once.
    Submit {
        /// The component (.wasm).
        module: PathBuf,
    },
    /// Modules on a served room (--server): a partner sees its own.
    List,
}

/// A command line clap refused: one line saying why (exit 2); help and version as clap prints
/// them.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
    }
    let text = e.render().to_string();
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let mut line = lines
        .next()
        .unwrap_or("error: the command line is not valid")
        .to_string();
    // Clap lists what is missing on the lines that follow a line ending in ':'.
    if line.ends_with(':') {
        let listed: Vec<&str> = lines.take_while(|l| !l.starts_with("Usage:")).collect();
        line = format!("{line} {}", listed.join(", "));
    }
    eprintln!("{line} (see --help)");
    ExitCode::from(2)
}

/// Entry point of the binary.
fn run() -> ExitCode {
    let matches = match Cli::command().try_get_matches() {
        Ok(matches) => matches,
        Err(e) => return usage_error(e),
    };
    let server_from_env = matches.value_source("server") == Some(ValueSource::EnvVariable);
    let name = command_name(&matches);
    let mut cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    if cli.server.is_some() && !talks_to_a_server(&cli.command) {
        if server_from_env {
            // An offline command (verifying a receipt, sealing, a development run) never reads
            // STRONGROOM_SERVER: exporting it for the commands that do must not break these.
            cli.server = None;
        } else {
            eprintln!(
                "error: `strongroom {name}` works on this machine, not on a served room: drop --server"
            );
            return ExitCode::from(2);
        }
    }
    let remote = match &cli.server {
        Some(server) => {
            match client::Remote::new(server, cli.token.as_deref(), cli.ca_cert.as_deref()) {
                Ok(r) => Some(r),
                Err(e) => {
                    eprintln!("error: {e:#}");
                    return ExitCode::from(2);
                }
            }
        }
        None => None,
    };
    let result = match (remote.as_ref(), cli.command) {
        (Some(r), command) => remote_command(r, command),
        (None, command) => local_command(command),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// The command's words, e.g. `budget preview`.
fn command_name(matches: &ArgMatches) -> String {
    let mut words = Vec::new();
    let mut at = matches;
    while let Some((word, next)) = at.subcommand() {
        words.push(word.to_string());
        at = next;
    }
    words.join(" ")
}

/// Whether `command` can talk to a served room (the ones [`remote_command`] handles).
fn talks_to_a_server(command: &Command) -> bool {
    use room_cmd::{BudgetCommand, PolicyCommand, RoomCommand};
    matches!(
        command,
        Command::Module(
            ModuleCommand::Submit { .. }
                | ModuleCommand::List
                | ModuleCommand::Approve(_)
                | ModuleCommand::Reject(_)
        ) | Command::Job(_)
            | Command::Audience(_)
            | Command::Dataset(
                seal_cmd::DatasetCommand::Upload { .. }
                    | seal_cmd::DatasetCommand::List { .. }
                    | seal_cmd::DatasetCommand::Show { .. }
            )
            | Command::Policy(PolicyCommand::Set { .. } | PolicyCommand::Show { .. })
            | Command::Budget(
                BudgetCommand::Show { .. } | BudgetCommand::Preview { policy: None, .. }
            )
            | Command::Room(RoomCommand::Pubkey { .. })
            | Command::Sql(sql_cmd::SqlCommand::Explain(sql_cmd::ExplainArgs {
                schema: None,
                ..
            }))
            | Command::Audit(
                audit_cmd::AuditCommand::Export { .. }
                    | audit_cmd::AuditCommand::Checkpoint { .. }
                    | audit_cmd::AuditCommand::Prove { .. }
            )
    )
}

fn needs_server() -> anyhow::Result<ExitCode> {
    anyhow::bail!(
        "this command talks to a served room: pass --server URL --token T (or set STRONGROOM_SERVER and STRONGROOM_TOKEN)"
    )
}

/// The commands that work against a served room.
fn remote_command(r: &client::Remote, command: Command) -> anyhow::Result<ExitCode> {
    use room_cmd::{BudgetCommand, PolicyCommand, RoomCommand};
    match command {
        Command::Module(ModuleCommand::Submit { module }) => {
            client::show(r.send_file("POST", "/v1/modules", &module, "application/wasm"))
        }
        Command::Module(ModuleCommand::List) => client::show(r.get("/v1/modules")),
        Command::Module(ModuleCommand::Approve(args)) => room_cmd::decide(args, true, Some(r)),
        Command::Module(ModuleCommand::Reject(args)) => room_cmd::decide(args, false, Some(r)),
        Command::Job(cmd) => client::job(Some(r), cmd),
        Command::Audience(AudienceCommand::Upload { file }) => client::show(r.send_file(
            "POST",
            "/v1/audience-lists",
            &file,
            "application/octet-stream",
        )),
        Command::Dataset(seal_cmd::DatasetCommand::Upload { file }) => {
            client::show(r.send_file("PUT", "/v1/datasets", &file, "application/octet-stream"))
        }
        Command::Dataset(seal_cmd::DatasetCommand::List { json, .. }) => {
            ops::print(ops::Operations::datasets(&r), json)
        }
        Command::Policy(PolicyCommand::Set { file, .. }) => room_cmd::set_policy(&r, &file),
        Command::Policy(PolicyCommand::Show {
            out, dataset, json, ..
        }) => room_cmd::show_policies(&r, out.as_deref(), dataset.as_deref(), json),
        Command::Dataset(seal_cmd::DatasetCommand::Show {
            name,
            schema_out,
            json,
            ..
        }) => seal_cmd::show(&r, &name, schema_out.as_deref(), json),
        Command::Budget(BudgetCommand::Preview {
            module,
            cost,
            dataset_name,
            ..
        }) => room_cmd::preview_served(&r, &module, &cost, dataset_name.as_deref()),
        Command::Budget(BudgetCommand::Show { json, .. }) => {
            ops::print(ops::Operations::budgets(&r), json)
        }
        Command::Room(RoomCommand::Pubkey { .. }) => {
            ops::print(ops::Operations::room_info(&r), false)
        }
        Command::Sql(sql_cmd::SqlCommand::Explain(args)) => sql_cmd::explain_served(&r, &args),
        Command::Audit(audit_cmd::AuditCommand::Export { out, .. }) => ops::audit_export(&r, &out),
        Command::Audit(audit_cmd::AuditCommand::Checkpoint { out, .. }) => {
            ops::audit_checkpoint(&r, &out)
        }
        Command::Audit(audit_cmd::AuditCommand::Prove {
            index,
            old_size,
            size,
            ..
        }) => ops::print(ops::Operations::prove(&r, index, old_size, size), false),
        // `run` sends only the commands `talks_to_a_server` names here.
        _ => {
            anyhow::bail!("this command works on this machine, not on a served room: drop --server")
        }
    }
}

/// The commands that work on a room directory or on local files.
fn local_command(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Dev(cmd) => dev::run(cmd),
        Command::Module(ModuleCommand::Inspect { module, json }) => dev::inspect(&module, json),
        Command::Module(ModuleCommand::EmbedManifest {
            module,
            manifest,
            out,
            replace,
        }) => manifest_cmd::embed_manifest(&module, &manifest, out.as_deref(), replace),
        Command::Module(ModuleCommand::Approve(args)) => room_cmd::decide(args, true, None),
        Command::Module(ModuleCommand::Reject(args)) => room_cmd::decide(args, false, None),
        Command::Job(cmd) => client::job(None, cmd),
        Command::Module(ModuleCommand::Submit { .. } | ModuleCommand::List)
        | Command::Audience(_)
        | Command::Dataset(seal_cmd::DatasetCommand::Upload { .. }) => needs_server(),
        Command::DemoData {
            customers,
            transactions_per_customer,
            seed,
            out,
            schema: Some(schema),
        } => dev::sample_data(&schema, customers, transactions_per_customer, seed, &out),
        Command::DemoData {
            customers,
            transactions_per_customer,
            seed,
            out,
            schema: None,
        } => dev::demo_data(customers, transactions_per_customer, seed, &out),
        Command::Demo(args) => demo::demo(args),
        Command::Keygen {
            room,
            name,
            secret_file,
            database,
        } => room_cmd::keygen(&room, name, secret_file.as_deref(), database.as_deref()),
        Command::Room(cmd) => room_cmd::room(cmd),
        Command::Policy(cmd) => room_cmd::policy(cmd),
        Command::Budget(cmd) => room_cmd::budget(cmd),
        Command::Run(args) => room_cmd::run(args),
        Command::Sql(cmd) => sql_cmd::run(cmd),
        Command::Receipt(cmd) => room_cmd::receipt(cmd),
        Command::Audit(cmd) => audit_cmd::run(cmd),
        Command::PartyKey { name, out } => seal_cmd::party_key(&name, &out),
        Command::Seal {
            schema,
            room_key,
            party_key,
            tables,
            out,
            chunk_rows,
            memory_budget_mib,
        } => seal_cmd::seal_command(
            &schema,
            &room_key,
            &party_key,
            &tables,
            &out,
            chunk_rows,
            memory_budget_mib,
        ),
        Command::Dataset(cmd) => seal_cmd::dataset(cmd),
        Command::Serve(args) => service_cmd::serve(args),
        Command::Worker { module } => worker_cmd::worker(module.as_deref()),
        Command::Party(cmd) => service_cmd::party(cmd),
    }
}

fn main() -> std::process::ExitCode {
    // Rust ignores SIGPIPE, so `strongroom audit show | head` would panic when `head` exits.
    // A closed stdout is not an error worth a backtrace: end quietly, as other tools do.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .unwrap_or_default();
        if message.contains("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default_hook(info);
    }));
    run()
}
