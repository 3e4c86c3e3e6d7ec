//! Each operation written once, over a local room or a served one.
//!
//! A command asks an [`Operations`] for a typed answer (`strongroom-api`) and prints it with the
//! one renderer below, so `--server` and a local room print the same thing. [`Local`] performs
//! the operation on the room's directory with the library, building the answer with the same
//! functions the server uses (`strongroom_server::views`); a served room answers over HTTP.

use anyhow::bail;
use serde::de::DeserializeOwned;
use strongroom::room::approval::ParameterRules;
use strongroom::room::policy::Policy;
use strongroom_api::requests::{HeldDecisionRequest, ModuleDecisionRequest, StatusFilter};
use strongroom_api::{
    AuditEntry, Budget, DatasetDetail, DatasetSummary, HeldDecision, JobList, ModuleDecided,
    PolicyEntry, PolicySet, Proof, RoomInfo, SignedCheckpoint,
};

use super::client::Remote;
use super::render::table;
use super::room_cmd::{RoomArgs, open_room, runtime};

/// The operations a command may ask of a room, wherever it is.
pub(crate) trait Operations {
    /// The room's name and public keys.
    fn room_info(&self) -> anyhow::Result<RoomInfo>;
    /// Sets a policy from its text.
    fn set_policy(&self, text: &str) -> anyhow::Result<PolicySet>;
    /// The bank's decision on a module for a partner.
    fn decide_module(&self, decision: &Decision) -> anyhow::Result<ModuleDecided>;
    /// The budgets the caller may see.
    fn budgets(&self) -> anyhow::Result<Vec<Budget>>;
    /// The bank's decision on a held result.
    fn decide_held(&self, job: &str, release: bool, reason: &str) -> anyhow::Result<HeldDecision>;
    /// The datasets the caller may see.
    fn datasets(&self) -> anyhow::Result<Vec<DatasetSummary>>;
    /// One dataset the caller may see, with its schema.
    fn dataset(&self, name: &str) -> anyhow::Result<DatasetDetail>;
    /// The policies the caller may see (a partner: its own).
    fn policies(&self) -> anyhow::Result<Vec<PolicyEntry>>;
    /// The jobs the caller may see, newest first, optionally only those with `status`.
    fn jobs(&self, status: Option<StatusFilter>) -> anyhow::Result<JobList>;
    /// Up to `limit` (at most 1,000) audit entries from `from`.
    fn audit_entries(&self, from: u64, limit: u64) -> anyhow::Result<Vec<AuditEntry>>;
    /// The log's signed checkpoint as it is now.
    fn checkpoint(&self) -> anyhow::Result<SignedCheckpoint>;
    /// A proof from the audit log.
    fn prove(
        &self,
        index: Option<u64>,
        old_size: Option<u64>,
        size: Option<u64>,
    ) -> anyhow::Result<Proof>;
}

/// A decision on a module, as a command gives it.
pub(crate) struct Decision {
    pub(crate) module_sha256: String,
    pub(crate) partner: String,
    pub(crate) approve: bool,
    pub(crate) comment: String,
    pub(crate) rules: ParameterRules,
    /// Who decides; a served room takes it from the token instead.
    pub(crate) by: Option<String>,
}

/// A room on this machine, opened with the operator's secret on its first operation (opening
/// derives the key from the secret and checks the log against its witness: once per command,
/// not once per page of an export).
pub(crate) struct Local {
    room: RoomArgs,
    opened: std::cell::OnceCell<(tokio::runtime::Runtime, strongroom::room::Room)>,
}

/// The room a command names: served (`--server`) or local (`--room`).
pub(crate) fn target<'a>(remote: Option<&'a Remote>, room: &RoomArgs) -> Box<dyn Operations + 'a> {
    match remote {
        Some(r) => Box::new(r),
        None => Box::new(Local::new(room.clone())),
    }
}

impl Local {
    /// The room `room` names; nothing is opened yet.
    pub(crate) fn new(room: RoomArgs) -> Local {
        Local {
            room,
            opened: std::cell::OnceCell::new(),
        }
    }

    fn block_on<T>(
        &self,
        f: impl AsyncFnOnce(&strongroom::room::Room) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        if self.opened.get().is_none() {
            let rt = runtime()?;
            let room = rt.block_on(open_room(&self.room))?;
            let _ = self.opened.set((rt, room));
        }
        let (rt, room) = self.opened.get().expect("opened just above");
        rt.block_on(f(room))
    }
}

impl Operations for Local {
    fn room_info(&self) -> anyhow::Result<RoomInfo> {
        // The public keys need no secret: read them as the room published them.
        let Some(dir) = &self.room.room else {
            bail!("give the room: --room DIR, or --server URL --token T for a served room");
        };
        let path = dir.join("keys").join("room.pub");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        let keys = strongroom_verify::RoomPublicKeys::parse(&text)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(RoomInfo {
            name: keys.name.clone(),
            fingerprint: keys.fingerprint(),
            public_keys: keys.encode(),
        })
    }

    fn set_policy(&self, text: &str) -> anyhow::Result<PolicySet> {
        let policy = Policy::parse(text).map_err(|e| anyhow::anyhow!("policy: {e}"))?;
        self.block_on(async |room| {
            room.set_policy(&policy).await?;
            Ok(strongroom_server::views::policy_set(&policy))
        })
    }

    fn decide_module(&self, d: &Decision) -> anyhow::Result<ModuleDecided> {
        let Some(by) = d.by.clone() else {
            bail!("--by NAME is required: who decides is recorded in the audit log");
        };
        self.block_on(async |room| {
            room.decide_module(
                &d.module_sha256,
                &d.partner,
                d.approve,
                &by,
                &d.comment,
                &d.rules,
            )
            .await?;
            Ok(ModuleDecided {
                module_sha256: d.module_sha256.to_ascii_lowercase(),
                partner: d.partner.clone(),
                decision: if d.approve { "approved" } else { "rejected" }.into(),
                by: by.clone(),
            })
        })
    }

    fn budgets(&self) -> anyhow::Result<Vec<Budget>> {
        self.block_on(async |room| Ok(strongroom_server::views::budgets(room, None).await?))
    }

    fn audit_entries(&self, from: u64, limit: u64) -> anyhow::Result<Vec<AuditEntry>> {
        self.block_on(async |room| {
            Ok(strongroom_server::views::audit_entries(room, from, limit).await?)
        })
    }

    fn checkpoint(&self) -> anyhow::Result<SignedCheckpoint> {
        self.block_on(async |room| Ok(strongroom_server::views::checkpoint(room).await?))
    }

    fn prove(
        &self,
        index: Option<u64>,
        old_size: Option<u64>,
        size: Option<u64>,
    ) -> anyhow::Result<Proof> {
        self.block_on(async |room| {
            Ok(strongroom_server::views::proof(room, index, old_size, size).await?)
        })
    }

    fn datasets(&self) -> anyhow::Result<Vec<DatasetSummary>> {
        self.block_on(async |room| Ok(strongroom_server::views::datasets(room, None).await?))
    }

    fn dataset(&self, name: &str) -> anyhow::Result<DatasetDetail> {
        self.block_on(async |room| {
            strongroom_server::views::dataset(room, name, None)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no dataset '{name}' in this room"))
        })
    }

    fn policies(&self) -> anyhow::Result<Vec<PolicyEntry>> {
        self.block_on(async |room| Ok(strongroom_server::views::policies(room, None).await?))
    }

    fn jobs(&self, status: Option<StatusFilter>) -> anyhow::Result<JobList> {
        let status = status.map(StatusFilter::as_str);
        self.block_on(async |room| {
            Ok(JobList::Bank(
                strongroom::room::jobs::list_jobs(room, status).await?,
            ))
        })
    }

    fn decide_held(&self, job: &str, release: bool, reason: &str) -> anyhow::Result<HeldDecision> {
        self.block_on(async |room| {
            strongroom::room::jobs::decide_held(room, job, release, "operator", reason).await?;
            Ok(HeldDecision {
                job_id: job.to_string(),
                status: if release { "released" } else { "withheld" }.into(),
            })
        })
    }
}

/// A served room's answer as one of the API's types.
pub(crate) fn decode<T: DeserializeOwned>(value: serde_json::Value) -> anyhow::Result<T> {
    serde_json::from_value(value)
        .map_err(|e| {
        anyhow::anyhow!(
            "the served room answered in a shape this strongroom does not know ({e}); is it the same version?"
        )
    })
}

impl Operations for &Remote {
    fn room_info(&self) -> anyhow::Result<RoomInfo> {
        decode(self.get("/v1/room")?)
    }

    fn set_policy(&self, text: &str) -> anyhow::Result<PolicySet> {
        decode(self.send_text("PUT", "/v1/policies", text, "application/toml")?)
    }

    fn decide_module(&self, d: &Decision) -> anyhow::Result<ModuleDecided> {
        decode(self.send_json(
            "POST",
            &format!("/v1/modules/{}/decision", d.module_sha256),
            &ModuleDecisionRequest {
                partner: d.partner.clone(),
                approve: d.approve,
                comment: d.comment.clone(),
                parameters: d.rules.clone(),
            },
        )?)
    }

    fn budgets(&self) -> anyhow::Result<Vec<Budget>> {
        decode(self.get("/v1/budgets")?)
    }

    fn audit_entries(&self, from: u64, limit: u64) -> anyhow::Result<Vec<AuditEntry>> {
        decode(self.get(&format!("/v1/audit/entries?from={from}&limit={limit}"))?)
    }

    fn checkpoint(&self) -> anyhow::Result<SignedCheckpoint> {
        decode(self.get("/v1/audit/checkpoint")?)
    }

    fn prove(
        &self,
        index: Option<u64>,
        old_size: Option<u64>,
        size: Option<u64>,
    ) -> anyhow::Result<Proof> {
        let mut query = Vec::new();
        if let Some(i) = index {
            query.push(format!("index={i}"));
        }
        if let Some(o) = old_size {
            query.push(format!("old={o}"));
        }
        if let Some(s) = size {
            query.push(format!("size={s}"));
        }
        decode(self.get(&format!("/v1/audit/proof?{}", query.join("&")))?)
    }

    fn datasets(&self) -> anyhow::Result<Vec<DatasetSummary>> {
        decode(self.get("/v1/datasets")?)
    }

    fn dataset(&self, name: &str) -> anyhow::Result<DatasetDetail> {
        if !strongroom_api::names::valid_name(name) {
            bail!(
                "'{name}' is not a dataset name: {}",
                strongroom_api::names::NAME_RULE
            );
        }
        decode(self.get(&format!("/v1/datasets/{name}"))?)
    }

    fn policies(&self) -> anyhow::Result<Vec<PolicyEntry>> {
        decode(self.get("/v1/policies")?)
    }

    fn jobs(&self, status: Option<StatusFilter>) -> anyhow::Result<JobList> {
        decode(self.get(&match status {
            Some(s) => format!("/v1/jobs?status={}", s.as_str()),
            None => "/v1/jobs".to_string(),
        })?)
    }

    fn decide_held(&self, job: &str, release: bool, reason: &str) -> anyhow::Result<HeldDecision> {
        decode(self.send_json(
            "POST",
            &format!("/v1/jobs/{job}/decision"),
            &HeldDecisionRequest {
                release,
                reason: reason.to_string(),
            },
        )?)
    }
}

/// How an answer is printed: the same for a local and a served room.
pub(crate) trait Render {
    /// For people.
    fn human(&self) -> String;
}

impl Render for RoomInfo {
    fn human(&self) -> String {
        self.public_keys.clone()
    }
}

impl Render for PolicySet {
    fn human(&self) -> String {
        format!(
            "policy set for partner '{}' on dataset '{}': budget rho {}, {}, threshold {}, {} release (sha256 {})\n",
            self.partner,
            self.dataset,
            self.budget_rho,
            self.mechanism,
            self.min_group_size,
            self.release,
            &self.policy_sha256[..16.min(self.policy_sha256.len())]
        )
    }
}

impl Render for ModuleDecided {
    fn human(&self) -> String {
        format!(
            "module {} {} for partner '{}' by {}\n",
            self.module_sha256, self.decision, self.partner, self.by
        )
    }
}

impl Render for Proof {
    fn human(&self) -> String {
        // Proofs are for tools: the same JSON either way.
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }
}

impl Render for HeldDecision {
    fn human(&self) -> String {
        format!("job {}: {}\n", self.job_id, self.status)
    }
}

impl Render for Vec<Budget> {
    fn human(&self) -> String {
        let header: Vec<String> = [
            "partner",
            "dataset",
            "privacy domain",
            "rho total",
            "rho spent",
            "rho left",
            "jobs",
            "total as (eps, delta)",
        ]
        .map(String::from)
        .into();
        let rows: Vec<Vec<String>> = self
            .iter()
            .map(|b| {
                vec![
                    b.partner.clone(),
                    b.dataset.clone(),
                    b.domain.clone(),
                    b.total_rho.clone(),
                    b.spent_rho.clone(),
                    b.remaining_rho.clone(),
                    b.jobs.to_string(),
                    b.total_epsilon_delta.clone(),
                ]
            })
            .collect();
        table(&header, &rows, 3)
    }
}

impl Render for Vec<DatasetSummary> {
    fn human(&self) -> String {
        let header: Vec<String> = [
            "dataset",
            "sealed by",
            "uploaded",
            "header sha256",
            "entities",
        ]
        .map(String::from)
        .into();
        let rows: Vec<Vec<String>> = self
            .iter()
            .map(|d| {
                vec![
                    d.name.clone(),
                    d.sealed_by.clone(),
                    d.uploaded_at.clone(),
                    short(&d.header_sha256),
                    d.entities.to_string(),
                ]
            })
            .collect();
        table(&header, &rows, 4)
    }
}

impl Render for DatasetDetail {
    fn human(&self) -> String {
        let mut out = format!(
            "dataset {}: {} entities, sealed by {}, uploaded {}\nheader sha256 {}\n",
            self.name, self.entities, self.sealed_by, self.uploaded_at, self.header_sha256
        );
        match strongroom::dataset::schema::DatasetSchema::parse_inline(
            &self.schema_toml,
            &self.name,
        ) {
            Ok(schema) => {
                for t in &schema.tables {
                    out.push_str(&format!("\ntable {}\n", t.name));
                    for c in &t.columns {
                        let role = format!("{:?}", c.role).to_lowercase();
                        let members = c
                            .dictionary
                            .as_ref()
                            .map(|d| {
                                let shown: Vec<String> = d
                                    .iter()
                                    .enumerate()
                                    .map(|(i, m)| format!("{i}={m}"))
                                    .collect();
                                format!(" [{}]", shown.join(", "))
                            })
                            .unwrap_or_default();
                        out.push_str(&format!("  {:<28} {role}{members}\n", c.name));
                    }
                }
            }
            Err(e) => out.push_str(&format!("\nthe schema does not parse: {e}\n")),
        }
        out
    }
}

impl Render for Vec<PolicyEntry> {
    fn human(&self) -> String {
        let mut out = String::new();
        for p in self {
            out.push_str(&format!(
                "# policy for partner '{}' on dataset '{}', set {} (sha256 {})\n{}\n",
                p.partner,
                p.dataset,
                p.set_at,
                short(&p.policy_sha256),
                p.policy_toml.trim_end()
            ));
        }
        if out.is_empty() {
            out.push_str("no policy in force\n");
        }
        out
    }
}

impl Render for JobList {
    fn human(&self) -> String {
        match self {
            JobList::Bank(jobs) => {
                let header: Vec<String> = [
                    "job",
                    "partner",
                    "dataset",
                    "module",
                    "outcome",
                    "status",
                    "finished or submitted",
                ]
                .map(String::from)
                .into();
                let rows: Vec<Vec<String>> = jobs
                    .iter()
                    .map(|j| {
                        vec![
                            j.job_id.clone(),
                            j.partner.clone(),
                            j.dataset.clone(),
                            short(&j.module_sha256),
                            j.outcome.clone(),
                            j.status.clone(),
                            j.finished_at.clone(),
                        ]
                    })
                    .collect();
                table(&header, &rows, 7)
            }
            JobList::Partner(jobs) => {
                let header: Vec<String> = [
                    "job",
                    "dataset",
                    "module",
                    "state",
                    "outcome",
                    "status",
                    "submitted",
                    "visible from",
                ]
                .map(String::from)
                .into();
                let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
                let rows: Vec<Vec<String>> = jobs
                    .iter()
                    .map(|j| {
                        vec![
                            j.job_id.clone(),
                            j.dataset.clone(),
                            short(&j.module_sha256),
                            j.state.clone(),
                            dash(&j.outcome),
                            dash(&j.status),
                            j.submitted_at.clone(),
                            dash(&j.release_at),
                        ]
                    })
                    .collect();
                table(&header, &rows, 8)
            }
        }
    }
}

/// A hash's first 12 characters, for a table.
fn short(hash: &str) -> String {
    hash.chars().take(12).collect()
}

/// Prints an answer for people, or as JSON.
pub(crate) fn print<T: Render + serde::Serialize>(
    answer: anyhow::Result<T>,
    json: bool,
) -> anyhow::Result<std::process::ExitCode> {
    let answer = answer?;
    if json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        print!("{}", answer.human());
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// `audit export`: every entry as JSON lines, to `out` (`-`: standard output), on any room.
pub(crate) fn audit_export(
    ops: &dyn Operations,
    out: &std::path::Path,
) -> anyhow::Result<std::process::ExitCode> {
    let mut text = String::new();
    let mut from = 0u64;
    loop {
        let page = ops.audit_entries(from, 1000)?;
        let Some(last) = page.last() else { break };
        // Entries come in order from `from`; anything else would page forever or leave gaps.
        if page
            .iter()
            .enumerate()
            .any(|(i, e)| e.index != from + i as u64)
        {
            bail!("the log's entries did not come in order from index {from}");
        }
        from = last.index + 1;
        for e in &page {
            text.push_str(&strongroom::audit_log::log::export_line(
                e.index,
                &e.entry,
                &e.tree_head_signature,
            )?);
            text.push('\n');
        }
    }
    if out.as_os_str() == "-" {
        print!("{text}");
        return Ok(std::process::ExitCode::SUCCESS);
    }
    strongroom::private_files::write_private_atomically(out, text.as_bytes())
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", out.display()))?;
    println!("exported {from} entries to {}", out.display());
    Ok(std::process::ExitCode::SUCCESS)
}

/// `audit checkpoint`: the signed checkpoint to `out`, on any room.
pub(crate) fn audit_checkpoint(
    ops: &dyn Operations,
    out: &std::path::Path,
) -> anyhow::Result<std::process::ExitCode> {
    let cp = ops.checkpoint()?;
    std::fs::write(out, &cp.note)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", out.display()))?;
    println!(
        "checkpoint of {} entries, root {}, written to {}",
        cp.size,
        cp.root,
        out.display()
    );
    Ok(std::process::ExitCode::SUCCESS)
}

/// Writes a file the command was asked for (`flag` names the option), never replacing one.
pub(crate) fn write_new(out: &std::path::Path, text: &str, flag: &str) -> anyhow::Result<()> {
    strongroom::private_files::write_private_new(out, text.as_bytes()).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            anyhow::anyhow!("{} exists; choose another {flag}", out.display())
        } else {
            anyhow::anyhow!("cannot write {}: {e}", out.display())
        }
    })
}
