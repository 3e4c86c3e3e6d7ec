//! Boundary: guest. Everything between a partner's WebAssembly module and the room.
//!
//! - `host_api.rs`: every `strongroom:query` function a guest can call (the one file to review);
//! - `wasi.rs`: the virtual, deny-by-default WASI it also gets;
//! - `vetting.rs`: what a module must pass before anything runs;
//! - `sandbox.rs`: the engine, its limits and the isolated/table runners;
//! - `executor.rs`: an isolated run as partitions whose partials merge, and where they run;
//! - `partial_wire.rs`: a partial as canonical, versioned bytes, to leave the machine and come back;
//! - `cache.rs`: compiled modules, authenticated before they are loaded;
//! - `limits.rs`, `outcome.rs`: per-run limits and typed outcomes;
//! - `toolchain.rs`: the toolchain a module says built it, and the limits that fit it;
//! - `run_keys.rs`: independent keys for each random thing in a run, from its seed.

pub mod cache;
pub mod executor;
pub mod freshness;
pub mod host_api;
pub mod limits;
pub mod outcome;
pub mod partial_wire;
pub mod run_keys;
pub mod sandbox;
pub mod toolchain;
pub mod vetting;
pub mod wasi;

use std::sync::Arc;

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

use crate::dataset::Dataset;
use crate::output_gate::ContributionBounds;
pub use limits::RunLimits;
pub use outcome::Outcome;
pub use sandbox::{PreparedModule, RunReport, Sandbox};
use strongroom_contract::manifest::{Domain, Manifest, Mode};
pub use vetting::{VettedModule, VettingError, vet};

/// A table a run may read, resolved against the dataset.
#[derive(Debug, Clone)]
pub struct Grant {
    /// Table name.
    pub name: String,
    /// Index of the table in the dataset.
    pub table: usize,
    /// (column name, index into the table's guest columns).
    pub columns: Vec<(String, usize)>,
}

/// Why a run could not start: the module and the data do not fit together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AdmissionError {
    /// The module asks for something the dataset does not have or never shows a guest.
    #[error("module '{module}' cannot run on dataset '{dataset}': {reason}")]
    Mismatch {
        /// Module name.
        module: String,
        /// Dataset name.
        dataset: String,
        /// What does not fit.
        reason: String,
    },
    /// The run asked for a mode the module was not written for.
    #[error("module '{module}' declares {declared} mode; it cannot run in {requested} mode")]
    WrongMode {
        /// Module name.
        module: String,
        /// What the manifest says.
        declared: Mode,
        /// What was asked.
        requested: Mode,
    },
}

/// Everything fixed for one run: data, module declarations, grants, limits. Shared by every
/// instance of the run, read-only.
#[derive(Clone)]
pub struct RunContext {
    /// The data.
    pub dataset: Arc<Dataset>,
    /// The module's manifest.
    pub manifest: Manifest,
    /// The mode of this run.
    pub mode: Mode,
    /// What the module may read.
    pub grants: Vec<Grant>,
    /// For each metric, the size of each group-key part's domain.
    pub domain_sizes: Vec<Vec<u32>>,
    /// Per-entity contribution bounds.
    pub bounds: ContributionBounds,
    /// Table mode: the opaque ordinal a guest sees for each entity, a fresh permutation per run
    /// (empty in isolated mode).
    pub entity_alias: Vec<u32>,
    /// Limits.
    pub limits: RunLimits,
    /// The run's seed (recorded for the bank); every use takes its own key from it.
    pub seed: [u8; 32],
    /// Keys derived from the seed: the guest's randomness, the entity ordinals.
    pub keys: run_keys::RunKeys,
    /// The job's parameters (name, value), sorted by name: partner input, never data.
    pub parameters: Vec<(String, String)>,
    /// Isolated mode, batched: a partition's customers run one after another in one instance
    /// (a module the bank reviewed); see [`sandbox::Sandbox::run_partition_batched`].
    pub batched: bool,
}

impl RunContext {
    /// Resolves a module's declarations against a dataset. Checks tables, columns and types
    /// before anything runs, so a partner learns of a mismatch with a clear message, not a trap.
    pub fn new(
        dataset: Arc<Dataset>,
        manifest: Manifest,
        mode: Mode,
        limits: RunLimits,
        seed: [u8; 32],
    ) -> Result<RunContext, AdmissionError> {
        let mismatch = |reason: String| AdmissionError::Mismatch {
            module: manifest.name.clone(),
            dataset: dataset.name.clone(),
            reason,
        };
        if mode != manifest.mode {
            return Err(AdmissionError::WrongMode {
                module: manifest.name.clone(),
                declared: manifest.mode,
                requested: mode,
            });
        }
        let mut grants = Vec::new();
        for read in &manifest.reads {
            let Some(t) = dataset.tables.iter().position(|t| t.name == read.table) else {
                return Err(mismatch(format!(
                    "it reads table '{}', which the dataset does not have",
                    read.table
                )));
            };
            let table = &dataset.tables[t];
            let mut columns = Vec::new();
            for (name, ty) in &read.columns {
                let Some(c) = table.guest_columns.iter().position(|c| &c.name == name) else {
                    let hidden = table.identifiers.iter().any(|i| &i.name == name);
                    let why = if hidden {
                        "an identifier column, which never reaches a module".to_string()
                    } else if name == crate::dataset::audience::AUDIENCE_COLUMN {
                        "it exists only in a job that matches a partner's audience list".to_string()
                    } else {
                        "not a column a module can read (no such column, or the entity key)"
                            .to_string()
                    };
                    return Err(mismatch(format!("it reads {}.{name}: {why}", read.table)));
                };
                let actual = table.guest_columns[c].data.ty();
                if actual != *ty {
                    return Err(mismatch(format!(
                        "it expects {}.{name} to be {ty}, the dataset has {actual}",
                        read.table
                    )));
                }
                columns.push((name.clone(), c));
            }
            grants.push(Grant {
                name: read.table.clone(),
                table: t,
                columns,
            });
        }
        let mut domain_sizes = Vec::new();
        for metric in &manifest.metrics {
            let mut sizes = Vec::new();
            for domain in &metric.key {
                sizes.push(match domain {
                    Domain::Enumeration { members, .. } => members.len() as u32,
                    Domain::Column { table, column } => {
                        let dict = dataset
                            .table(table)
                            .and_then(|t| t.column(column))
                            .and_then(|c| c.dictionary.as_ref())
                            .ok_or_else(|| {
                                mismatch(format!(
                                    "group key {table}.{column} has no public dictionary"
                                ))
                            })?;
                        dict.len() as u32
                    }
                });
            }
            domain_sizes.push(sizes);
        }
        let keys = run_keys::RunKeys::derive(&seed);
        let mut rng = ChaCha20Rng::from_seed(keys.ordinals);
        // Only table mode shows a guest entity ordinals (aliased); an isolated run needs no
        // table the size of the dataset.
        let mut entity_alias: Vec<u32> = match mode {
            Mode::Table => (0..dataset.entities() as u32).collect(),
            Mode::Isolated => Vec::new(),
        };
        for i in (1..entity_alias.len()).rev() {
            let j = (rng.next_u64() % (i as u64 + 1)) as usize;
            entity_alias.swap(i, j);
        }
        Ok(RunContext {
            bounds: ContributionBounds::new(&manifest),
            dataset,
            manifest,
            mode,
            grants,
            domain_sizes,
            entity_alias,
            limits,
            seed,
            keys,
            parameters: Vec::new(),
            batched: false,
        })
    }

    /// The same context, run batched (isolated mode only; see [`RunContext::batched`]).
    pub fn with_batched(mut self, batched: bool) -> RunContext {
        self.batched = batched && self.mode == Mode::Isolated;
        self
    }

    /// The same context with the job's parameters, checked (see [`check_parameters`]).
    pub fn with_parameters(
        mut self,
        parameters: &[(String, String)],
    ) -> Result<RunContext, String> {
        self.parameters = check_parameters(parameters)?;
        Ok(self)
    }

    /// A SQL job: the SQL engine's only parameter is the plan the room compiled (hex), which no
    /// partner parameter can be (its name is reserved and its length is not a parameter's).
    pub fn with_sql_plan(mut self, plan_hex: String) -> RunContext {
        self.parameters = vec![(strongroom_sql::PLAN_PARAMETER.to_string(), plan_hex)];
        self
    }
}

/// Most parameters a job may carry.
pub const MAX_PARAMETERS: usize = 32;
/// Longest parameter value, bytes.
pub const MAX_PARAMETER_BYTES: usize = 256;

/// Checks a job's parameters: at most 32, names of 1-64 lower-case letters, digits and `_`,
/// values of at most 256 bytes, no name twice. Returns them sorted by name.
pub fn check_parameters(parameters: &[(String, String)]) -> Result<Vec<(String, String)>, String> {
    if parameters.len() > MAX_PARAMETERS {
        return Err(format!(
            "{} parameters; at most {MAX_PARAMETERS}",
            parameters.len()
        ));
    }
    let mut sorted = parameters.to_vec();
    sorted.sort();
    for (i, (name, value)) in sorted.iter().enumerate() {
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(format!(
                "parameter name '{name}': use 1-64 lower-case letters, digits or '_'"
            ));
        }
        if value.len() > MAX_PARAMETER_BYTES {
            return Err(format!(
                "parameter '{name}' is {} bytes; at most {MAX_PARAMETER_BYTES}",
                value.len()
            ));
        }
        if i > 0 && sorted[i - 1].0 == *name {
            return Err(format!("parameter '{name}' is given twice"));
        }
    }
    Ok(sorted)
}
