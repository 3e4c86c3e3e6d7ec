//! `strongroom party-key`, `strongroom seal` and `strongroom dataset inspect`: the bank's side of
//! data at rest.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use super::render::{number, table};
use super::room_cmd::{RoomArgs, open_room, runtime};
use strongroom::data_at_rest::open::SealedFile;
use strongroom::data_at_rest::party::PartyKey;
use strongroom::data_at_rest::seal::{SealOptions, seal_with};
use strongroom::dataset::schema::DatasetSchema;
use strongroom::keys::RoomPublicKeys;

#[derive(Subcommand, Debug)]
pub(super) enum DatasetCommand {
    /// Upload a sealed dataset to a served room (--server, bank): streamed, authenticated there.
    Upload {
        /// The sealed dataset.
        file: PathBuf,
    },
    /// Datasets in a room, local or served (a partner sees those granted to it).
    List {
        #[command(flatten)]
        room: super::room_cmd::RoomArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One dataset in a room, local or served (a partner: one granted to it): who sealed it, its
    /// size, and its schema (tables, columns, roles, public dictionaries in the bank's order with
    /// each member's index; never a value).
    Show {
        #[command(flatten)]
        room: super::room_cmd::RoomArgs,
        /// The dataset's name.
        name: String,
        /// Also write the schema (TOML) to this file: for `dev run --schema`, `budget preview
        /// --dataset-schema` and sample data that fits it.
        #[arg(long)]
        schema_out: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Header, schema, sizes, row counts and who sealed it, without any key; with --verify and
    /// a room, authenticate every chunk.
    Inspect {
        /// The sealed dataset.
        file: PathBuf,
        /// Authenticate every chunk with the room's key.
        #[arg(long, requires = "room")]
        verify: bool,
        /// The room directory (for --verify).
        #[arg(long)]
        room: Option<PathBuf>,
        /// File holding the operator secret (default: STRONGROOM_PASSPHRASE).
        #[arg(long)]
        secret_file: Option<PathBuf>,
    },
}

pub(super) fn party_key(name: &str, out: &Path) -> anyhow::Result<ExitCode> {
    let key = PartyKey::generate(name, out).map_err(anyhow::Error::msg)?;
    println!(
        "sealing key for '{}' written to {} (0600); public key {}",
        key.name,
        out.display(),
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, key.public())
    );
    Ok(ExitCode::SUCCESS)
}

pub(super) fn seal_command(
    schema: &Path,
    room_key: &Path,
    party_key: &Path,
    tables: &[String],
    out: &Path,
    chunk_rows: usize,
    memory_budget_mib: usize,
) -> anyhow::Result<ExitCode> {
    let schema = DatasetSchema::load(schema)?;
    let text = std::fs::read_to_string(room_key)
        .with_context(|| format!("cannot read {}", room_key.display()))?;
    let room =
        RoomPublicKeys::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", room_key.display()))?;
    let party = PartyKey::load(party_key).map_err(anyhow::Error::msg)?;
    let mut inputs = Vec::new();
    for spec in tables {
        let (name, path) =
            strongroom_api::names::name_value(spec, "--table").map_err(anyhow::Error::msg)?;
        inputs.push((name, PathBuf::from(path)));
    }
    println!(
        "sealing dataset '{}' to room '{}' (fingerprint {})",
        schema.name,
        room.name,
        room.fingerprint()
    );
    let options = SealOptions {
        chunk_rows,
        memory_budget: memory_budget_mib.max(1) << 20,
        progress: true,
    };
    let summary = seal_with(&schema, &inputs, &room, &party, &options, out)?;
    println!(
        "wrote {} ({} bytes, {} chunks) in {:.2} s: {:.1} MB/s of input; peak memory {} MiB",
        out.display(),
        number(summary.bytes as f64, 0),
        summary.header.chunks,
        summary.seconds,
        summary.input_bytes as f64 / summary.seconds.max(1e-9) / 1e6,
        peak_rss_mib().map_or("unknown".into(), |m| m.to_string())
    );
    Ok(ExitCode::SUCCESS)
}

/// This process's peak resident memory (Linux `VmHWM`), in MiB.
fn peak_rss_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

/// `dataset show` on a local or served room.
pub(super) fn show(
    ops: &dyn super::ops::Operations,
    name: &str,
    schema_out: Option<&Path>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let detail = ops.dataset(name)?;
    if let Some(out) = schema_out {
        super::ops::write_new(out, &detail.schema_toml, "--schema-out")?;
    }
    super::ops::print(Ok(detail), json)
}

pub(super) fn dataset(cmd: DatasetCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        DatasetCommand::Upload { .. } => super::needs_server(),
        DatasetCommand::List { room, json } => super::ops::print(
            super::ops::Operations::datasets(&super::ops::Local::new(room)),
            json,
        ),
        DatasetCommand::Show {
            room,
            name,
            schema_out,
            json,
        } => show(
            &super::ops::Local::new(room),
            &name,
            schema_out.as_deref(),
            json,
        ),
        DatasetCommand::Inspect {
            file,
            verify,
            room,
            secret_file,
        } => {
            let sealed = SealedFile::read(&file)?;
            let h = &sealed.header;
            println!(
                "sealed dataset {} ({} bytes)",
                file.display(),
                number(sealed.bytes as f64, 0)
            );
            println!("dataset      {} (id {})", h.dataset, h.dataset_id);
            println!("header       sha256 {}", sealed.header_sha256());
            println!(
                "sealed by    {} (Ed25519 {}), {}; header signature {}",
                h.sealed_by.name,
                h.sealed_by.ed25519,
                h.sealed_at,
                if sealed.header_signature_valid() {
                    "valid"
                } else {
                    "INVALID"
                }
            );
            println!("sealed to    room fingerprint {}", h.room_fingerprint);
            println!(
                "encryption   {}; data key wrapped by HPKE; AES-256-GCM chunks of {} rows",
                h.hpke_suite, h.chunk_rows
            );
            println!("schema       sha256 {}", h.schema_sha256);
            println!("entities     {}", number(h.entities as f64, 0));
            let header: Vec<String> = ["table", "rows", "chunks"].map(String::from).into();
            let rows: Vec<Vec<String>> = h
                .tables
                .iter()
                .map(|t| {
                    vec![
                        t.name.clone(),
                        number(t.rows as f64, 0),
                        t.chunks.to_string(),
                    ]
                })
                .collect();
            print!("{}", table(&header, &rows, 1));
            println!(
                "chunks       {} in the file, {} declared (the last holds the index)",
                sealed.chunks.len(),
                h.chunks
            );
            if verify {
                let args = RoomArgs {
                    room: Some(room.expect("clap requires --room with --verify")),
                    secret_file,
                };
                let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
                let result = runtime()?.block_on(async {
                    let room = open_room(&args).await?;
                    anyhow::Ok(sealed.verify(room.keys(), threads))
                })?;
                match result {
                    Ok(()) => {
                        println!("verified     every chunk authenticates with this room's key")
                    }
                    Err(e) => {
                        println!("FAILED       {e}");
                        return Ok(ExitCode::from(1));
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
