//! # strongroom-api: what a room's operations take and return
//!
//! One set of types for a room's operations, whoever performs them: the server answers HTTP
//! requests with them, and the `strongroom` command builds them from a local room or reads them
//! from a served one, so the two print the same thing. Field names are the JSON keys of the API
//! (docs/api.md, `server/openapi.json`).
//!
//! With the `openapi` feature every type also describes its own JSON schema (utoipa), and the
//! server's OpenAPI document is generated from them: what the document says is what the types
//! serialize.

use serde::{Deserialize, Serialize};

pub mod approval;
pub mod names;
pub mod requests;

/// The room: its name and public keys (`GET /v1/room`, `strongroom room pubkey`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RoomInfo {
    /// Room name.
    pub name: String,
    /// Fingerprint of its public keys, to read over the phone.
    pub fingerprint: String,
    /// The shareable `room.pub` text.
    pub public_keys: String,
}

/// A policy was set (`PUT /v1/policies`, `strongroom policy set`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicySet {
    /// The partner it governs.
    pub partner: String,
    /// The dataset it governs.
    pub dataset: String,
    /// SHA-256 of its text, hex.
    pub policy_sha256: String,
    /// Total budget, as a decimal rho.
    pub budget_rho: String,
    /// Noise mechanism.
    pub mechanism: String,
    /// Fewest entities a released group must have.
    pub min_group_size: u64,
    /// `automatic` or `held`.
    pub release: String,
}

/// The bank decided on a module (`POST /v1/modules/{sha256}/decision`, `strongroom module
/// approve|reject`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModuleDecided {
    /// The module.
    pub module_sha256: String,
    /// The partner the decision is for.
    pub partner: String,
    /// `approved` or `rejected`.
    pub decision: String,
    /// Who at the bank decided.
    pub by: String,
}

/// A privacy budget (`GET /v1/budgets`, `strongroom budget show`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Budget {
    /// The partner.
    pub partner: String,
    /// The dataset.
    pub dataset: String,
    /// The privacy domain whose charges count against it.
    pub domain: String,
    /// Total, as a decimal rho.
    pub total_rho: String,
    /// Spent, as a decimal rho.
    pub spent_rho: String,
    /// Left, as a decimal rho.
    pub remaining_rho: String,
    /// Charges made.
    pub jobs: u64,
    /// The total as (epsilon, delta) at the policy's delta.
    pub total_epsilon_delta: String,
}

/// A dataset in the room (`GET /v1/datasets`, `strongroom dataset list`): a partner sees those
/// it has a policy for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DatasetSummary {
    /// Its name (from the sealed header).
    pub name: String,
    /// SHA-256 of its authenticated header, hex.
    pub header_sha256: String,
    /// The sealing party that signed it.
    pub sealed_by: String,
    /// Entities (customers) in it.
    pub entities: u64,
    /// When it was uploaded.
    pub uploaded_at: String,
}

/// A job as the bank sees it in a list (`GET /v1/jobs` as the bank or an auditor, `strongroom
/// job list`): jobs that ended, and those still queued, running or refused, with their queue
/// state as their status. The same for a local room and a served one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobSummary {
    /// Job id.
    pub job_id: String,
    /// Partner.
    pub partner: String,
    /// Dataset.
    pub dataset: String,
    /// Module hash.
    pub module_sha256: String,
    /// Outcome code, `-` while there is none.
    pub outcome: String,
    /// released, held, withheld or failed; or the queue state (queued, running, refused).
    pub status: String,
    /// When it finished, or when it was submitted if it has not.
    pub finished_at: String,
    /// How far it has come, while it runs (a served room's isolated runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<RunProgress>,
}

/// How far a running job has come: for the bank alone (a partner's view has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunProgress {
    /// Customers whose isolation unit ran.
    pub customers_done: u64,
    /// Customers the run has.
    pub customers: u64,
    /// Chunks of the sealed file read and authenticated.
    pub chunks_read: u64,
    /// Chunks the run reads.
    pub chunks: u64,
}

/// A partner's view of one job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PartnerJobView {
    /// Job id.
    pub job_id: String,
    /// Dataset asked for.
    pub dataset: String,
    /// Module asked for.
    pub module_sha256: String,
    /// Cost asked for.
    pub cost: String,
    /// Parameters given.
    pub parameters: std::collections::BTreeMap<String, String>,
    /// `queued` (waiting for a worker), `running` (admitted; the outcome is not visible yet),
    /// `finished` (visible), `refused` (refused before any charge; see `error`) or `failed` (the
    /// host failed after the charge, shown after the release time; see `error`).
    pub state: String,
    /// Why the job was refused before any charge (policy, budget, module): never data.
    pub error: Option<String>,
    /// For a refused job, the refusal's stable code (`mode_not_allowed`, `budget_exhausted`...).
    pub error_code: Option<String>,
    /// The partner's outcome code, once visible.
    pub outcome: Option<String>,
    /// released, held, withheld or failed, once visible.
    pub status: Option<String>,
    /// When the partner submitted the job.
    pub submitted_at: String,
    /// When the outcome becomes (or became) visible: fixed at the job's start.
    pub release_at: Option<String>,
    /// The released table, when released.
    pub result: Option<serde_json::Value>,
    /// The exact bytes the receipt's result hash covers, when released.
    pub result_json: Option<String>,
    /// The signed receipt, once visible.
    pub receipt: Option<String>,
}

/// The bank decided on a held result (`POST /v1/jobs/{id}/decision`, `strongroom job
/// release|withhold`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HeldDecision {
    /// The job.
    pub job_id: String,
    /// `released` or `withheld`.
    pub status: String,
}

/// A proof from the room's audit log (`GET /v1/audit/proof`, `strongroom audit prove`): hashes
/// base64, checkable offline with `strongroom-verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Proof {
    /// Entry `index` is in the tree of `size` entries with `root`.
    Inclusion {
        /// The entry's index.
        index: u64,
        /// The tree's size.
        size: u64,
        /// The tree's root.
        root: String,
        /// The audit path, smallest subtree first.
        proof: Vec<String>,
    },
    /// The tree of `old_size` entries is a prefix of the tree of `size`.
    Consistency {
        /// The earlier size.
        old_size: u64,
        /// The later size.
        size: u64,
        /// The earlier root.
        old_root: String,
        /// The later root.
        root: String,
        /// The consistency proof.
        proof: Vec<String>,
    },
}

/// One stored audit entry with the room's signature over the tree head that ends with it
/// (`GET /v1/audit/entries`, `strongroom audit export`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    /// Its index in the log.
    pub index: u64,
    /// Its canonical JSON text.
    pub entry: String,
    /// The signature over the tree head of size `index + 1`.
    pub tree_head_signature: String,
}

/// A signed checkpoint of the log as it is now (`GET /v1/audit/checkpoint`, `strongroom audit
/// checkpoint`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignedCheckpoint {
    /// Entries covered.
    pub size: u64,
    /// The tree's root, base64.
    pub root: String,
    /// The signed note.
    pub note: String,
}

/// The server is up (`GET /v1/health`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    /// Always `ok`.
    pub status: String,
}

/// A dataset with its schema (`GET /v1/datasets/{name}`): column names, roles and public
/// dictionaries, never a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DatasetDetail {
    /// Its name (from the sealed header).
    pub name: String,
    /// SHA-256 of its authenticated header, hex.
    pub header_sha256: String,
    /// The sealing party that signed it.
    pub sealed_by: String,
    /// Entities (customers) in it.
    pub entities: u64,
    /// When it was uploaded.
    pub uploaded_at: String,
    /// The schema, as the sealing party wrote it (TOML).
    pub schema_toml: String,
}

/// A policy in force (`GET /v1/policies`): a partner sees its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicyEntry {
    /// The partner it governs.
    pub partner: String,
    /// The dataset it governs.
    pub dataset: String,
    /// Its text (TOML, docs/privacy.md).
    pub policy_toml: String,
    /// SHA-256 of its text, hex.
    pub policy_sha256: String,
    /// When it was set.
    pub set_at: String,
}

/// A partner's audience list was stored (`POST /v1/audience-lists`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AudienceUploaded {
    /// SHA-256 of its authenticated header, hex: what a job names it by.
    pub list_sha256: String,
    /// People in it.
    pub members: u64,
}

/// A module in the room (`GET /v1/modules`): a partner sees its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModuleSummary {
    /// SHA-256 of the module, hex.
    pub module_sha256: String,
    /// The partner that uploaded it.
    pub partner: String,
    /// Its name, from its manifest.
    pub name: String,
    /// Its version, from its manifest.
    pub version: String,
    /// Its output mode (`aggregate`, `table`, ...).
    pub mode: String,
    /// When it was uploaded.
    pub uploaded_at: String,
    /// The bank's decision for this partner: `approved`, `rejected`, or none yet.
    pub decision: Option<String>,
}

/// A module passed vetting and was stored (`POST /v1/modules`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModuleUploaded {
    /// SHA-256 of the module, hex: what a job names it by.
    pub module_sha256: String,
    /// Its name, from its manifest.
    pub name: String,
    /// Its version, from its manifest.
    pub version: String,
    /// Its output mode.
    pub mode: String,
    /// The metrics it declares.
    pub metrics: Vec<String>,
    /// Always `accepted`: a refused module is a 422.
    pub vetting: String,
    /// The bank's decision, if it decided on this hash before.
    pub decision: Option<String>,
}

/// A job was queued (`POST /v1/jobs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobQueued {
    /// Job id: follow it with `GET /v1/jobs/{id}`.
    pub job_id: String,
    /// Always `queued`.
    pub state: String,
}

/// One job as the bank sees it (`GET /v1/jobs/{id}` as the bank): everything, including what
/// the partner does not see until the release time, and the bank-only detail of a failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BankJobView {
    /// Job id.
    pub job_id: String,
    /// Partner.
    pub partner: String,
    /// Dataset.
    pub dataset: String,
    /// Module hash.
    pub module_sha256: String,
    /// Cost asked for.
    pub cost: String,
    /// Parameters given.
    pub parameters: std::collections::BTreeMap<String, String>,
    /// Queue state: queued, running, finished, refused or failed.
    pub state: String,
    /// Why it was refused or failed.
    pub error: Option<String>,
    /// Outcome code, once finished.
    pub outcome: Option<String>,
    /// released, held, withheld or failed, once finished.
    pub status: Option<String>,
    /// When it was submitted.
    pub submitted_at: String,
    /// When its outcome becomes visible to the partner.
    pub release_at: Option<String>,
    /// When it finished.
    pub finished_at: Option<String>,
    /// The signed receipt.
    pub receipt: Option<String>,
    /// The result table (held results included: the bank decides on them).
    pub result: Option<serde_json::Value>,
    /// The exact bytes the receipt's result hash covers.
    pub result_json: Option<String>,
    /// What the bank alone may read about a failure (a trap, the guest's stderr).
    pub bank_detail: Option<String>,
    /// How far it has come, while it runs (a served room's isolated runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<RunProgress>,
}

/// One job, as the caller may see it (`GET /v1/jobs/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum JobView {
    /// As the bank sees it.
    Bank(Box<BankJobView>),
    /// As the partner that submitted it sees it: the one partner view.
    Partner(Box<PartnerJobView>),
}

/// A list of jobs (`GET /v1/jobs`): the bank's (and its auditors'), or a partner's own, which
/// is a list of its partner views.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum JobList {
    /// As the bank sees them.
    Bank(Vec<JobSummary>),
    /// As a partner sees its own.
    Partner(Vec<PartnerJobView>),
}

/// An error answer (RFC 9457 problem details, `application/problem+json`). `code` is the
/// contract (docs/api.md lists the codes); `detail` is for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Problem {
    /// A URI naming the code.
    #[serde(rename = "type")]
    pub kind: String,
    /// The HTTP status's reason phrase.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// Stable machine-readable code.
    pub code: String,
    /// Human-readable explanation.
    pub detail: String,
}

#[cfg(feature = "openapi")]
mod either_schema {
    //! The two answers that depend on the caller's role are "one of two shapes" in the document:
    //! `anyOf`, since an empty list is both.
    use utoipa::openapi::schema::{AnyOfBuilder, ArrayBuilder, Schema};
    use utoipa::openapi::{Ref, RefOr};
    use utoipa::{PartialSchema, ToSchema};

    use super::{BankJobView, JobList, JobSummary, JobView, PartnerJobView};

    fn named<T: ToSchema>() -> Ref {
        Ref::from_schema_name(T::name())
    }

    fn both<A: ToSchema, B: ToSchema>(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((A::name().into_owned(), A::schema()));
        A::schemas(schemas);
        schemas.push((B::name().into_owned(), B::schema()));
        B::schemas(schemas);
    }

    impl PartialSchema for JobView {
        fn schema() -> RefOr<Schema> {
            AnyOfBuilder::new()
                .item(named::<BankJobView>())
                .item(named::<PartnerJobView>())
                .description(Some("The bank's view of the job, or the partner's"))
                .into()
        }
    }

    impl ToSchema for JobView {
        fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
            both::<BankJobView, PartnerJobView>(schemas);
        }
    }

    impl PartialSchema for JobList {
        fn schema() -> RefOr<Schema> {
            AnyOfBuilder::new()
                .item(ArrayBuilder::new().items(named::<JobSummary>()))
                .item(ArrayBuilder::new().items(named::<PartnerJobView>()))
                .description(Some("The bank's job list, or a partner's own jobs"))
                .into()
        }
    }

    impl ToSchema for JobList {
        fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
            both::<JobSummary, PartnerJobView>(schemas);
        }
    }
}

impl JobView {
    /// The queue state: queued, running, finished, refused or failed.
    pub fn state(&self) -> &str {
        match self {
            JobView::Bank(j) => &j.state,
            JobView::Partner(j) => &j.state,
        }
    }

    /// released, held, withheld or failed, once visible.
    pub fn status(&self) -> Option<&str> {
        match self {
            JobView::Bank(j) => j.status.as_deref(),
            JobView::Partner(j) => j.status.as_deref(),
        }
    }

    /// The outcome code, once visible.
    pub fn outcome(&self) -> Option<&str> {
        match self {
            JobView::Bank(j) => j.outcome.as_deref(),
            JobView::Partner(j) => j.outcome.as_deref(),
        }
    }

    /// Why it was refused or failed.
    pub fn error(&self) -> Option<&str> {
        match self {
            JobView::Bank(j) => j.error.as_deref(),
            JobView::Partner(j) => j.error.as_deref(),
        }
    }

    /// The signed receipt, once visible.
    pub fn receipt(&self) -> Option<&str> {
        match self {
            JobView::Bank(j) => j.receipt.as_deref(),
            JobView::Partner(j) => j.receipt.as_deref(),
        }
    }

    /// The result table.
    pub fn result(&self) -> Option<&serde_json::Value> {
        match self {
            JobView::Bank(j) => j.result.as_ref(),
            JobView::Partner(j) => j.result.as_ref(),
        }
    }

    /// The exact bytes the receipt's result hash covers.
    pub fn result_json(&self) -> Option<&str> {
        match self {
            JobView::Bank(j) => j.result_json.as_deref(),
            JobView::Partner(j) => j.result_json.as_deref(),
        }
    }
}

/// What a SQL query compiles to and would release (`POST /v1/sql/explain`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SqlExplanation {
    /// SHA-256 of the query's normal form: its template hash.
    pub query_sha256: String,
    /// SHA-256 of the plan it compiles to.
    pub plan_sha256: String,
    /// The normal form.
    pub normalized: String,
    /// Whether the caller's policy lets this query run (any query, or an approved template).
    pub allowed: bool,
    /// The tables and columns it reads.
    pub reads: Vec<SqlRead>,
    /// The group key's parts and their public domains.
    pub group_key: Vec<String>,
    /// Groups one customer may reach, per metric.
    pub max_groups_per_customer: u32,
    /// The released numbers.
    pub metrics: Vec<SqlMetric>,
}

/// Columns a query reads from one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SqlRead {
    /// Table.
    pub table: String,
    /// Columns.
    pub columns: Vec<String>,
}

/// One released number of a query, with its bounds and, at a cost, its noise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SqlMetric {
    /// Name.
    pub name: String,
    /// sum, count, mean or distinct.
    pub kind: String,
    /// The aggregate as written.
    pub sql: String,
    /// How one customer's rows become contributions.
    pub per_customer: String,
    /// Lower bound of a contribution.
    pub lower: f64,
    /// Upper bound of a contribution.
    pub upper: f64,
    /// Contributions one customer may make to one group.
    pub max_contributions_per_group: u32,
    /// At the asked cost: the value's noise standard deviation (none for a mean, whose noise
    /// depends on its group's count).
    pub noise_std: Option<f64>,
    /// At the asked cost: half the 95% interval of the value (a mean's at 1,000 contributions at
    /// the middle of its bounds).
    pub half_width_95: Option<f64>,
}

/// One module in detail (`GET /v1/modules/{sha256}`): what the bank reviews before deciding, and
/// what a partner sees of its own module.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModuleDetail {
    /// SHA-256 of the module, hex.
    pub module_sha256: String,
    /// The partner that uploaded it.
    pub partner: String,
    /// Its name, from its manifest (written by the partner: show it as text).
    pub name: String,
    /// Its version, from its manifest.
    pub version: String,
    /// Its output mode.
    pub mode: String,
    /// Its size, bytes.
    pub size: u64,
    /// The toolchain it says built it (`rust`, `python (componentize-py)`,
    /// `javascript (componentize-js)` or `other`), which sets its default limits.
    pub toolchain: String,
    /// Fuel one customer may use in isolated mode, by the toolchain's default (a policy's
    /// `[limits]` may change it).
    pub fuel_per_customer: u64,
    /// When it was uploaded.
    pub uploaded_at: String,
    /// The bank's decision for this partner: `approved`, `rejected`, or none yet.
    pub decision: Option<String>,
    /// What it imports from the host, one interface function per line.
    pub imports: Vec<String>,
    /// The tables and columns it reads, with their types.
    pub reads: Vec<ModuleRead>,
    /// Groups one customer may reach, per metric.
    pub max_groups_per_entity: u32,
    /// The metrics it releases, with their bounds.
    pub metrics: Vec<ModuleMetric>,
    /// The last module of the same name this partner had approved, and what changed since.
    pub previous_approved: Option<ModuleChanges>,
}

/// Columns a module reads from one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModuleRead {
    /// Table.
    pub table: String,
    /// Columns, `name: type`.
    pub columns: Vec<String>,
}

/// One metric a module declares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModuleMetric {
    /// Name.
    pub name: String,
    /// sum, count, mean or distinct.
    pub kind: String,
    /// The group key's parts: `table.column`, or an enumeration with its size.
    pub key: Vec<String>,
    /// Lower bound of a contribution.
    pub lower: f64,
    /// Upper bound of a contribution.
    pub upper: f64,
    /// Decimal places kept.
    pub decimals: u8,
    /// Contributions one customer may make to one group.
    pub max_contributions_per_group: u32,
}

/// What changed between the last approved module of a name and this one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModuleChanges {
    /// The approved module, by hash.
    pub module_sha256: String,
    /// Its version.
    pub version: String,
    /// Each difference, in words (empty when only the bytes differ).
    pub changes: Vec<String>,
}

/// What a job would release at a cost, before it is submitted (`POST /v1/jobs/preview`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobPreview {
    /// The policy's noise mechanism.
    pub mechanism: String,
    /// The cost asked for (rho or epsilon, decimal).
    pub cost: String,
    /// What the ledger would charge, as a decimal rho.
    pub charge_rho: String,
    /// The budget left, as a decimal rho.
    pub remaining_rho: String,
    /// Jobs of this cost the budget left allows (none when the cost charges nothing).
    pub jobs_left: Option<u64>,
    /// Fewest customers a released group must have.
    pub min_group_size: u64,
    /// Per metric: the noise of each released number.
    pub metrics: Vec<PreviewMetric>,
}

/// One metric's noise at a cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PreviewMetric {
    /// Name.
    pub name: String,
    /// sum, count, mean or distinct.
    pub kind: String,
    /// The value's noise standard deviation (none for a mean, whose noise depends on its count).
    pub noise_std: Option<f64>,
    /// Half the 95% interval of each value (a mean's: at 1,000 contributions).
    pub half_width_95: f64,
    /// Half the 95% interval of each group's noisy count of customers.
    pub entities_half_width_95: f64,
}
