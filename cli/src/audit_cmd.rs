//! `strongroom audit`: the security team's tools. `show`, `export`, `checkpoint`, `prove` read
//! the room; `verify` works offline from an export, a checkpoint and the room's public key.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use clap::Subcommand;
use serde_json::Value;

use super::render::{number, table};
use super::room_cmd::{RoomArgs, open_room, read_verifier, runtime};
use strongroom_verify::export::verify_export;

#[derive(Subcommand, Debug)]
pub(super) enum AuditCommand {
    /// Entries as a readable table (or JSON), filtered.
    Show {
        #[command(flatten)]
        room: RoomArgs,
        /// Only entries naming this party (partner, or actor such as `bank`).
        #[arg(long)]
        party: Option<String>,
        /// Only entries about this module (hash or its prefix).
        #[arg(long)]
        module: Option<String>,
        /// Only entries about this dataset.
        #[arg(long)]
        dataset: Option<String>,
        /// Only entries with this outcome code.
        #[arg(long)]
        outcome: Option<String>,
        /// Only entries at or after this time (RFC 3339, e.g. 2026-11-01T00:00:00Z).
        #[arg(long)]
        since: Option<String>,
        /// Print JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Write every entry as JSON lines (for a SIEM and for `audit verify`).
    Export {
        #[command(flatten)]
        room: RoomArgs,
        /// Output file (`-` for standard output).
        #[arg(long)]
        out: PathBuf,
    },
    /// Write a signed checkpoint of the log as it is now.
    Checkpoint {
        #[command(flatten)]
        room: RoomArgs,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Offline: check an export against a signed checkpoint (and an earlier one).
    Verify {
        /// The export (JSON lines).
        #[arg(long)]
        log: PathBuf,
        /// The signed checkpoint.
        #[arg(long)]
        checkpoint: PathBuf,
        /// The room's verifier key (room.vkey) or public keys (room.pub).
        #[arg(long)]
        key: PathBuf,
        /// An earlier signed checkpoint the log must extend (catches rollback and forks).
        #[arg(long)]
        previous: Option<PathBuf>,
    },
    /// An inclusion proof for one entry, or a consistency proof between two sizes, as JSON.
    Prove {
        #[command(flatten)]
        room: RoomArgs,
        /// Entry index (inclusion proof).
        #[arg(long)]
        index: Option<u64>,
        /// Older tree size (consistency proof from this size to --size).
        #[arg(long)]
        old_size: Option<u64>,
        /// Tree size the proof is for (default: the whole log).
        #[arg(long)]
        size: Option<u64>,
    },
    /// Append synthetic entries, for measuring append throughput (and crash tests).
    Stress {
        #[command(flatten)]
        room: RoomArgs,
        /// Entries to append.
        #[arg(long, default_value_t = 1000)]
        entries: u64,
    },
}

fn matches(entry: &Value, needle: &Option<String>, keys: &[&str], prefix: bool) -> bool {
    let Some(needle) = needle else { return true };
    keys.iter().any(|k| {
        entry.get(*k).and_then(Value::as_str).is_some_and(|v| {
            if prefix {
                v.starts_with(needle.as_str())
            } else {
                v == needle || v == format!("partner:{needle}")
            }
        })
    })
}

pub(super) fn run(cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AuditCommand::Show {
            room,
            party,
            module,
            dataset,
            outcome,
            since,
            json,
        } => {
            let entries = runtime()?.block_on(async {
                anyhow::Ok(open_room(&room).await?.audit().entries(0).await?)
            })?;
            let mut rows = Vec::new();
            for stored in &entries {
                let entry: Value =
                    serde_json::from_str(&stored.entry).context("a stored entry is not JSON")?;
                let keep = matches(&entry, &party, &["partner", "actor"], false)
                    && matches(&entry, &module, &["module_sha256"], true)
                    && matches(&entry, &dataset, &["dataset"], false)
                    && matches(&entry, &outcome, &["outcome"], false)
                    && since.as_ref().is_none_or(|t| {
                        entry
                            .get("time")
                            .and_then(Value::as_str)
                            .is_some_and(|v| v >= t.as_str())
                    });
                if !keep {
                    continue;
                }
                if json {
                    println!("{}", stored.entry);
                    continue;
                }
                let s = |k: &str| {
                    entry
                        .get(k)
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string()
                };
                let detail = [
                    "outcome",
                    "result",
                    "reason",
                    "status",
                    "policy_sha256",
                    "module_sha256",
                    "cost_nano_rho",
                ]
                .iter()
                .filter_map(|k| {
                    entry.get(*k).filter(|v| !v.is_null()).map(|v| {
                        format!(
                            "{k}={}",
                            v.as_str()
                                .map_or(v.to_string(), |x| x.chars().take(16).collect())
                        )
                    })
                })
                .collect::<Vec<_>>()
                .join(" ");
                rows.push(vec![
                    stored.index.to_string(),
                    s("time"),
                    s("event"),
                    s("actor"),
                    s("job"),
                    detail,
                ]);
            }
            if !json {
                let header: Vec<String> = ["#", "time", "event", "actor", "job", "details"]
                    .map(String::from)
                    .into();
                print!("{}", table(&header, &rows, 6));
                println!("{} of {} entries", rows.len(), entries.len());
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Export { room, out } => {
            super::ops::audit_export(&super::ops::Local::new(room), &out)
        }
        AuditCommand::Checkpoint { room, out } => {
            super::ops::audit_checkpoint(&super::ops::Local::new(room), &out)
        }
        AuditCommand::Verify {
            log,
            checkpoint,
            key,
            previous,
        } => {
            let verifier = read_verifier(&key)?;
            let export = std::fs::read_to_string(&log)
                .with_context(|| format!("cannot read {}", log.display()))?;
            let cp = std::fs::read_to_string(&checkpoint)
                .with_context(|| format!("cannot read {}", checkpoint.display()))?;
            let prev = match &previous {
                Some(p) => Some(
                    std::fs::read_to_string(p)
                        .with_context(|| format!("cannot read {}", p.display()))?,
                ),
                None => None,
            };
            match verify_export(&export, &cp, prev.as_deref(), &verifier) {
                Ok(v) => {
                    println!(
                        "OK: {} entries; checkpoint {} covers {} (root {})",
                        v.entries,
                        v.checkpoint.origin,
                        v.checkpoint.size,
                        B64.encode(v.checkpoint.root)
                    );
                    if let Some(p) = v.previous {
                        println!(
                            "OK: extends the previous checkpoint of {} entries (no rollback, no fork)",
                            p.size
                        );
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    println!("FAILED: {e}");
                    if let Some(i) = e.entry {
                        println!("first bad entry: {i}");
                    }
                    Ok(ExitCode::from(1))
                }
            }
        }
        AuditCommand::Prove {
            room,
            index,
            old_size,
            size,
        } => super::ops::print(
            super::ops::Operations::prove(&super::ops::Local::new(room), index, old_size, size),
            false,
        ),
        AuditCommand::Stress { room, entries } => {
            let (elapsed, size) = runtime()?.block_on(async {
                let room = open_room(&room).await?;
                let log = room.audit();
                let started = Instant::now();
                for i in 0..entries {
                    log.append(&strongroom_verify::Event::LogExercised {
                        actor: "operator".into(),
                        n: i,
                        note: String::new(),
                    })
                    .await?;
                    if (i + 1) % 1000 == 0 {
                        print!("\rappended {}", i + 1);
                        let _ = std::io::stdout().flush();
                    }
                }
                anyhow::Ok((started.elapsed(), log.size().await?))
            })?;
            println!(
                "\rappended {} entries in {:.2} s: {} appends/s (durable, fsync per append); log size {}",
                entries,
                elapsed.as_secs_f64(),
                number(entries as f64 / elapsed.as_secs_f64(), 0),
                size
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
