//! The CLI as a client of a served room (`--server URL --token T`, or `STRONGROOM_SERVER` and
//! `STRONGROOM_TOKEN`): the same API as docs/api.md, so everything is scriptable.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::Value;
use strongroom_api::requests::{JobSubmission, StatusFilter};
use strongroom_api::{JobQueued, JobView};

use super::room_cmd::RoomArgs;

/// A served room and a token for it.
#[derive(Debug, Clone)]
pub(crate) struct Remote {
    base: String,
    token: String,
    agent: ureq::Agent,
}

impl Remote {
    /// A client for `server` (e.g. `http://127.0.0.1:8443`) with `token`.
    pub(crate) fn new(
        server: &str,
        token: Option<&str>,
        ca_cert: Option<&Path>,
    ) -> anyhow::Result<Remote> {
        let Some(token) = token else {
            bail!("--server needs a token: pass --token T or set STRONGROOM_TOKEN");
        };
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(900)));
        if let Some(path) = ca_cert {
            let pem =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            let certs: Vec<_> = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            if certs.is_empty() {
                bail!("{} holds no PEM certificate", path.display());
            }
            config = config.tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(certs)))
                    .build(),
            );
        }
        let agent = config.build().new_agent();
        Ok(Remote {
            base: server.trim_end_matches('/').to_string(),
            token: token.to_string(),
            agent,
        })
    }

    fn answer(
        &self,
        what: &str,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> anyhow::Result<Value> {
        let mut response =
            response.with_context(|| format!("{what}: cannot reach {}", self.base))?;
        let status = response.status();
        let text = response
            .body_mut()
            .with_config()
            .limit(256 << 20)
            .read_to_string()
            .with_context(|| format!("{what}: reading the answer"))?;
        if !status.is_success() {
            match serde_json::from_str::<strongroom_api::Problem>(&text) {
                Ok(p) => bail!("{what}: {} {}: {}", status.as_u16(), p.code, p.detail),
                Err(_) => bail!("{what}: {} error: {}", status.as_u16(), text.trim()),
            }
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn auth(&self) -> String {
        format!("Bearer {}", self.token)
    }

    /// GET a JSON answer.
    pub(crate) fn get(&self, path: &str) -> anyhow::Result<Value> {
        let r = self
            .agent
            .get(self.url(path))
            .header("authorization", self.auth())
            .call();
        self.answer(&format!("GET {path}"), r)
    }

    /// POST or PUT JSON.
    pub(crate) fn send_json(
        &self,
        method: &str,
        path: &str,
        body: &impl serde::Serialize,
    ) -> anyhow::Result<Value> {
        let builder = match method {
            "PUT" => self.agent.put(self.url(path)),
            _ => self.agent.post(self.url(path)),
        };
        let r = builder.header("authorization", self.auth()).send_json(body);
        self.answer(&format!("{method} {path}"), r)
    }

    /// POST or PUT a text body.
    pub(crate) fn send_text(
        &self,
        method: &str,
        path: &str,
        text: &str,
        content_type: &str,
    ) -> anyhow::Result<Value> {
        self.send_body(method, path, content_type, text)
    }

    /// POST or PUT a body (text, wasm, a sealed file streamed from disk).
    pub(crate) fn send_file(
        &self,
        method: &str,
        path: &str,
        file: &Path,
        content_type: &str,
    ) -> anyhow::Result<Value> {
        let f =
            std::fs::File::open(file).with_context(|| format!("cannot read {}", file.display()))?;
        self.send_body(method, path, content_type, f)
    }

    fn send_body(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: impl ureq::AsSendBody,
    ) -> anyhow::Result<Value> {
        let builder = match method {
            "PUT" => self.agent.put(self.url(path)),
            _ => self.agent.post(self.url(path)),
        };
        let r = builder
            .header("authorization", self.auth())
            .header("content-type", content_type)
            .send(body);
        self.answer(&format!("{method} {path}"), r)
    }
}

fn print(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// `strongroom job ...`: jobs on a served room.
#[derive(Subcommand, Debug)]
pub(super) enum JobCommand {
    /// Submit a job (partner): a module of yours, or a SQL query (`--sql`). Prints the job id;
    /// `--wait` waits for it and prints the result.
    #[command(group(clap::ArgGroup::new("what").required(true).args(["module_sha256", "sql"])))]
    Submit {
        /// The module's SHA-256 (from `module submit`).
        #[arg(long)]
        module_sha256: Option<String>,
        /// A file holding a SQL query (docs/sql.md); it runs through the SQL engine your policy
        /// names, with `--param` values for its `@name` parameters.
        #[arg(long, value_name = "FILE")]
        sql: Option<std::path::PathBuf>,
        /// The dataset's name.
        #[arg(long)]
        dataset: String,
        /// Privacy cost (rho under a Gaussian policy, epsilon under a Laplace one).
        #[arg(long)]
        cost: String,
        /// An audience list's hash (from `audience upload`).
        #[arg(long)]
        audience_list: Option<String>,
        /// A parameter for the module, NAME=VALUE; repeat for each.
        #[arg(long = "param", value_name = "NAME=VALUE")]
        params: Vec<String>,
        /// Wait until the job finishes, then print it.
        #[arg(long)]
        wait: bool,
    },
    /// A job's state, outcome, result and receipt.
    Show {
        /// Job id.
        id: String,
    },
    /// Wait for a job and write its released result and receipt.
    Result {
        /// Job id.
        id: String,
        /// Write the released result (JSON) here.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
        /// Write the receipt here.
        #[arg(long)]
        receipt: Option<std::path::PathBuf>,
    },
    /// Jobs, newest first (a partner sees its own); local or served.
    List {
        #[command(flatten)]
        room: RoomArgs,
        /// Only jobs with this status (released, held, withheld, failed; queued, running or
        /// refused for those without a result).
        #[arg(long, conflicts_with = "held")]
        status: Option<StatusFilter>,
        /// Only results waiting for the bank's decision (`--status held`).
        #[arg(long)]
        held: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Release a held result (bank); local or served.
    Release {
        #[command(flatten)]
        room: RoomArgs,
        /// Job id.
        id: String,
        /// Why, for the audit log.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Withhold a held result for good (bank); local or served.
    Withhold {
        #[command(flatten)]
        room: RoomArgs,
        /// Job id.
        id: String,
        /// Why, for the audit log.
        #[arg(long, default_value = "")]
        reason: String,
    },
}

fn wait_for(remote: &Remote, id: &str) -> anyhow::Result<JobView> {
    let started = Instant::now();
    loop {
        let job: JobView = super::ops::decode(remote.get(&format!("/v1/jobs/{id}"))?)?;
        match job.state() {
            "queued" | "running" => {
                if started.elapsed() > Duration::from_secs(3600) {
                    bail!("job {id} is still {} after an hour", job.state());
                }
                std::thread::sleep(Duration::from_millis(250));
            }
            _ => return Ok(job),
        }
    }
}

/// `strongroom job ...`: listing and the bank's decisions on a local or a served room;
/// submitting and following a job on a served one.
pub(super) fn job(remote: Option<&Remote>, cmd: JobCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        JobCommand::List {
            room,
            status,
            held,
            json,
        } => {
            let status = if held {
                Some(StatusFilter::Held)
            } else {
                status
            };
            super::ops::print(super::ops::target(remote, &room).jobs(status), json)
        }
        JobCommand::Release { room, id, reason } => super::ops::print(
            super::ops::target(remote, &room).decide_held(&id, true, &reason),
            false,
        ),
        JobCommand::Withhold { room, id, reason } => super::ops::print(
            super::ops::target(remote, &room).decide_held(&id, false, &reason),
            false,
        ),
        served => match remote {
            Some(remote) => served_job(remote, served),
            None => super::needs_server(),
        },
    }
}

/// Submitting and following a job: a served room's queue.
fn served_job(remote: &Remote, cmd: JobCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        JobCommand::Submit {
            module_sha256,
            sql,
            dataset,
            cost,
            audience_list,
            params,
            wait,
        } => {
            let sql = match sql {
                Some(path) => Some(super::sql_cmd::read_query(&path)?),
                None => None,
            };
            let submission = JobSubmission {
                module_sha256,
                sql,
                dataset,
                cost,
                audience_list,
                parameters: super::room_cmd::parse_params(&params)?
                    .into_iter()
                    .collect(),
            };
            let queued: JobQueued =
                super::ops::decode(remote.send_json("POST", "/v1/jobs", &submission)?)?;
            let id = queued.job_id;
            if wait {
                let job = wait_for(remote, &id)?;
                print(&job)?;
                return Ok(match job.status() {
                    Some("released" | "held") => ExitCode::SUCCESS,
                    _ => ExitCode::from(1),
                });
            }
            println!("{id}");
        }
        JobCommand::Show { id } => print(&remote.get(&format!("/v1/jobs/{id}"))?)?,
        JobCommand::Result { id, out, receipt } => {
            let job = wait_for(remote, &id)?;
            if let (Some(path), Some(r)) = (&receipt, job.receipt()) {
                std::fs::write(path, r)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            if job.status() != Some("released") {
                bail!(
                    "job {id} is {} (state {}, outcome {}{})",
                    job.status().unwrap_or("without a status"),
                    job.state(),
                    job.outcome().unwrap_or("none"),
                    job.error().map(|e| format!(", {e}")).unwrap_or_default()
                );
            }
            match &out {
                // The exact bytes the receipt's result hash covers.
                Some(path) => std::fs::write(path, job.result_json().unwrap_or_default())
                    .with_context(|| format!("cannot write {}", path.display()))?,
                None => print(&job.result())?,
            }
        }
        JobCommand::List { .. } | JobCommand::Release { .. } | JobCommand::Withhold { .. } => {
            unreachable!("`job list`, `release` and `withhold` are answered by `job`")
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints a JSON answer (for the simple remote commands).
pub(super) fn show(value: anyhow::Result<Value>) -> anyhow::Result<ExitCode> {
    print(&value?)?;
    Ok(ExitCode::SUCCESS)
}
