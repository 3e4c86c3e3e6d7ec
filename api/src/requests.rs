//! What a client sends: request bodies and query strings. Unknown fields are refused, so a
//! misspelt field is an error rather than a default.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::approval::ParameterRules;

/// Submit a job (`POST /v1/jobs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct JobSubmission {
    /// The module to run, by hash (uploaded by the same partner). A SQL job may leave it out:
    /// it runs through the SQL engine the policy names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module_sha256: Option<String>,
    /// A SQL query to run instead of a module of the partner's (docs/sql.md); its named
    /// parameters (`@name`) take their values from `parameters`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
    /// The dataset to run it on.
    pub dataset: String,
    /// What to spend: rho under a Gaussian policy, epsilon under a Laplace one; decimal.
    pub cost: String,
    /// An audience list of the partner's, by hash, for an audience-matching module.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience_list: Option<String>,
    /// The module's parameters, name to value: at most 32, names of 1-64 lower-case letters,
    /// digits or '_', values of at most 256 bytes.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = parameters_schema))]
    pub parameters: BTreeMap<String, String>,
}

/// Compile a SQL query against a dataset and see what it would release
/// (`POST /v1/sql/explain`). Nothing runs, nothing is charged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SqlExplainRequest {
    /// The query (docs/sql.md).
    pub sql: String,
    /// The dataset it would run on (the caller's policy on it gives the noise).
    pub dataset: String,
    /// A job's cost, for each number's noise and 95% interval (rho or epsilon, decimal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<String>,
    /// Values for the query's `@name` parameters.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = parameters_schema))]
    pub parameters: BTreeMap<String, String>,
}

/// Approve or reject a module for a partner (`POST /v1/modules/{sha256}/decision`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ModuleDecisionRequest {
    /// The partner the decision is for.
    pub partner: String,
    /// Approve (true) or reject.
    pub approve: bool,
    /// Why, for the log.
    #[serde(default)]
    pub comment: String,
    /// What jobs may pass the module, per parameter name: exact values, or a numeric range.
    /// None: no parameters.
    #[serde(default)]
    pub parameters: ParameterRules,
}

/// Release or withhold a held result (`POST /v1/jobs/{id}/decision`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct HeldDecisionRequest {
    /// Release (true) or withhold.
    pub release: bool,
    /// Why, for the log.
    #[serde(default)]
    pub reason: String,
}

/// See what a job would release at a cost before submitting it (`POST /v1/jobs/preview`).
/// Nothing runs, nothing is charged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct JobPreviewRequest {
    /// The module, by hash (uploaded by the caller).
    pub module_sha256: String,
    /// The dataset it would run on (the caller's policy on it gives the noise).
    pub dataset: String,
    /// What to spend: rho under a Gaussian policy, epsilon under a Laplace one; decimal.
    pub cost: String,
}

/// Which jobs to list by status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum StatusFilter {
    /// Released to the partner.
    Released,
    /// Waiting for the bank's decision.
    Held,
    /// Withheld by the bank.
    Withheld,
    /// Failed after the charge.
    Failed,
    /// Waiting for a worker.
    Queued,
    /// Running.
    Running,
    /// Refused before any charge.
    Refused,
}

impl StatusFilter {
    /// Every filter, in the order the docs list them.
    pub const ALL: [StatusFilter; 7] = [
        StatusFilter::Released,
        StatusFilter::Held,
        StatusFilter::Withheld,
        StatusFilter::Failed,
        StatusFilter::Queued,
        StatusFilter::Running,
        StatusFilter::Refused,
    ];

    /// The word, as in a query string.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusFilter::Released => "released",
            StatusFilter::Held => "held",
            StatusFilter::Withheld => "withheld",
            StatusFilter::Failed => "failed",
            StatusFilter::Queued => "queued",
            StatusFilter::Running => "running",
            StatusFilter::Refused => "refused",
        }
    }
}

impl std::str::FromStr for StatusFilter {
    type Err = String;

    fn from_str(s: &str) -> Result<StatusFilter, String> {
        StatusFilter::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| {
                let all: Vec<&str> = StatusFilter::ALL.iter().map(|f| f.as_str()).collect();
                format!("'{s}' is not a job status; use {}", all.join(", "))
            })
    }
}

/// The query of `GET /v1/jobs`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct JobsQuery {
    /// Only jobs with this status; `held` lists what waits for the bank.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", param(inline))]
    pub status: Option<StatusFilter>,
}

/// The query of `GET /v1/audit/entries`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct EntriesQuery {
    /// The first entry's index.
    #[serde(default)]
    pub from: u64,
    /// How many entries at most: 1 to 1000 (more is taken as 1000).
    #[serde(default)]
    pub limit: Option<u64>,
}

/// The query of `GET /v1/audit/proof`: `index` for an inclusion proof, `old` for a consistency
/// proof, each up to `size` (the current size by default).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct ProofQuery {
    /// The entry to prove included.
    #[serde(default)]
    pub index: Option<u64>,
    /// The earlier size to prove consistent.
    #[serde(default)]
    pub old: Option<u64>,
    /// The tree size the proof is up to.
    #[serde(default)]
    pub size: Option<u64>,
}

/// The parameters' schema: at most 32, each value at most 256 bytes.
#[cfg(feature = "openapi")]
fn parameters_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
    ObjectBuilder::new()
        .max_properties(Some(32))
        .additional_properties(Some(AdditionalProperties::RefOr(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(Some(256))
                .into(),
        )))
        .description(Some(
            "The module's parameters, name to value: at most 32, names of 1-64 lower-case \
             letters, digits or '_', values of at most 256 bytes",
        ))
        .build()
}
