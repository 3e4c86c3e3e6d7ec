//! `strongroom serve` and `strongroom party`: the room as a network service, and the parties
//! that may call it.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::room_cmd::{RoomArgs, open_room, runtime};
use strongroom_server::ServiceConfig;
use strongroom_server::auth::{self, Role};

/// Options of `strongroom serve`.
#[derive(Args, Debug)]
pub(super) struct ServeArgs {
    #[command(flatten)]
    room: RoomArgs,
    /// Address to listen on. Loopback by default: put a TLS-terminating proxy in front to
    /// expose it.
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    /// Worker threads running jobs.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Requests per second per party.
    #[arg(long, default_value_t = 50.0)]
    rate: f64,
    /// Largest sealed upload, MiB.
    #[arg(long, default_value_t = 8192)]
    max_upload_mib: u64,
    /// Memory for datasets table-mode jobs load whole, kept between jobs, MiB (least recently used evicted first; isolated and batched jobs read window by window).
    #[arg(long, default_value_t = 4096)]
    dataset_cache_mib: u64,
    /// TLS certificate chain (PEM); with --tls-key.
    #[arg(long, requires = "tls_key", conflicts_with = "tls_self_signed")]
    tls_cert: Option<std::path::PathBuf>,
    /// TLS private key (PEM); with --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// On a room several nodes serve (its database on PostgreSQL): seconds a node may go
    /// unseen before the others mark its running jobs interrupted.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(2..=3600))]
    node_timeout: u64,
    /// Serve TLS with a self-signed certificate kept in the room's tls/ directory: for
    /// development only; clients pass it as --ca-cert.
    #[arg(long)]
    tls_self_signed: bool,
}

#[derive(Subcommand, Debug)]
pub(super) enum PartyCommand {
    /// Add a party; prints its token once (only a hash is stored).
    Add {
        #[command(flatten)]
        room: RoomArgs,
        /// The party's name (a partner's name is the one its policies use).
        name: String,
        /// bank, partner or auditor.
        #[arg(long, value_parser = ["bank", "partner", "auditor"])]
        role: String,
    },
    /// Replace a party's token (the old one stops working); prints the new one once.
    Rotate {
        #[command(flatten)]
        room: RoomArgs,
        /// The party.
        name: String,
    },
    /// Revoke a party's token.
    Revoke {
        #[command(flatten)]
        room: RoomArgs,
        /// The party.
        name: String,
    },
    /// List parties.
    List {
        #[command(flatten)]
        room: RoomArgs,
    },
}

pub(super) fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let room = open_room(&args.room).await?;
        let config = ServiceConfig {
            workers: args.workers.max(1),
            rate_per_second: args.rate,
            burst: (args.rate * 2.0).max(1.0),
            max_upload_bytes: args.max_upload_mib << 20,
            dataset_cache_bytes: args.dataset_cache_mib << 20,
            node_timeout: std::time::Duration::from_secs(args.node_timeout),
            ..ServiceConfig::default()
        };
        let tls = match (args.tls_cert, args.tls_key, args.tls_self_signed) {
            (Some(cert), Some(key), _) => strongroom_server::Tls::Files { cert, key },
            (_, _, true) => strongroom_server::Tls::SelfSigned,
            _ => strongroom_server::Tls::Off,
        };
        strongroom_server::serve(room, args.listen, config, tls).await?;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

pub(super) fn party(cmd: PartyCommand) -> anyhow::Result<ExitCode> {
    let rt = runtime()?;
    rt.block_on(async {
        match cmd {
            PartyCommand::Add { room, name, role } => {
                let room = open_room(&room).await?;
                let role = Role::parse(&role).ok_or_else(|| anyhow::anyhow!("unknown role"))?;
                let token = auth::add_party(&room, &name, role).await?;
                println!("{token}");
                eprintln!(
                    "party '{name}' added as {}; the token above is shown once, keep it secret",
                    role.as_str()
                );
            }
            PartyCommand::Rotate { room, name } => {
                let room = open_room(&room).await?;
                println!("{}", auth::rotate_token(&room, &name).await?);
                eprintln!("new token for '{name}' above, shown once; the old one no longer works");
            }
            PartyCommand::Revoke { room, name } => {
                let room = open_room(&room).await?;
                auth::revoke_party(&room, &name).await?;
                println!("revoked '{name}'");
            }
            PartyCommand::List { room } => {
                let room = open_room(&room).await?;
                for p in auth::list_parties(&room).await? {
                    println!(
                        "{:<24} {:<8} added {}{}",
                        p.name,
                        p.role.as_str(),
                        p.created_at,
                        p.revoked_at
                            .map(|r| format!(", revoked {r}"))
                            .unwrap_or_default()
                    );
                }
            }
        }
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
