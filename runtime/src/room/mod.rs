//! A room on disk: its keys, its embedded database (ledger, policies, jobs) and its module cache.
//!
//! ```text
//! ROOM/
//!   room.toml            name, where partitions run (`[engine]`) and, for a room served by
//!                        several nodes, its PostgreSQL database (`[database]`, docs/deploy.md)
//!   keys/                sealing.key, signing.key (encrypted, 0600), room.pub, room.vkey
//!   keys/log.witness     the last checkpoint signed, outside the database (catches a restored
//!                        old room.db, which would reset the budgets)
//!   room.db              SQLite (WAL, synchronous FULL), unless `[database]` names PostgreSQL
//!   module-cache/        compiled modules, HMAC-authenticated
//! ```

pub mod approval;
pub mod change;
pub mod db;
pub mod jobs;
pub mod partner_view;
pub mod policy;
pub mod sql;

use std::path::{Path, PathBuf};

use crate::params;
use db::{OptionalExtension, SqlError};
use serde::Deserialize;

use crate::audit_log::log::{AuditLog, LogError, Witness, WitnessKeeper};
use crate::group_commit::WriteError;
use crate::guest_boundary::cache::ModuleCache;
use crate::keys::{KeyError, OperatorSecret, RoomKeys};
use crate::output_gate::ledger::PrivacyLedger;
use policy::Policy;
use strongroom_verify::event::{Event, PolicyDiff};

/// Why a room could not be created or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RoomError {
    /// Key trouble.
    #[error(transparent)]
    Keys(#[from] KeyError),
    /// Database trouble.
    #[error("room database: {0}")]
    Database(#[from] sqlx::Error),
    /// Audit log trouble.
    #[error(transparent)]
    Audit(#[from] LogError),
    /// A write failed (and nothing of it was kept).
    #[error("room database: {0}")]
    Write(#[from] WriteError),
    /// The database could not be opened.
    #[error("room database: {0}")]
    Open(#[from] db::OpenError),
    /// Filesystem or format trouble.
    #[error("{0}")]
    Invalid(String),
    /// No policy for this partner and dataset.
    #[error(
        "no policy for partner '{partner}' on dataset '{dataset}' (the bank sets one with `strongroom policy set`)"
    )]
    NoPolicy {
        /// Partner.
        partner: String,
        /// Dataset.
        dataset: String,
    },
}

impl From<SqlError> for RoomError {
    fn from(e: SqlError) -> Self {
        RoomError::Write(e.into())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoomFile {
    name: String,
    /// Where isolated runs on sealed datasets run their partitions (see docs/deploy.md).
    #[serde(default)]
    engine: Option<crate::remote::engine::EngineConfig>,
    /// The room's PostgreSQL database, when it is not the embedded SQLite file.
    #[serde(default)]
    database: Option<DatabaseFile>,
    /// The object storage holding uploaded sealed datasets, when not the room's directory.
    #[serde(default)]
    storage: Option<crate::data_at_rest::storage::StorageConfig>,
}

/// `[database]` in room.toml.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DatabaseFile {
    /// `postgres://user@host:port/database` (a password may come from `PGPASSWORD` or
    /// `~/.pgpass` instead).
    url: String,
}

impl RoomFile {
    fn location(&self, dir: &Path) -> db::Location {
        match &self.database {
            Some(d) => db::Location::Postgres(d.url.clone()),
            None => db::Location::Sqlite(dir.join("room.db")),
        }
    }
}

/// An open room.
pub struct Room {
    dir: PathBuf,
    keys: RoomKeys,
    db: db::Db,
    storage: Option<crate::data_at_rest::storage::Storage>,
    witness: WitnessKeeper,
    engine: Option<crate::remote::engine::EngineConfig>,
}

/// The witness keeper of the room in `dir`.
fn witness_of(dir: &Path) -> Result<WitnessKeeper, RoomError> {
    WitnessKeeper::start(Witness::at(dir.join("keys").join("log.witness")))
        .map_err(|e| RoomError::Invalid(e.to_string()))
}

impl Room {
    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Its keys, decrypted in memory (zeroized when the room is dropped).
    pub fn keys(&self) -> &RoomKeys {
        &self.keys
    }

    /// Its database: the pool, the writer and the connections a job reads on.
    pub fn db(&self) -> &db::Db {
        &self.db
    }

    /// Creates a room in `dir` (which must not hold one): keys, database, `room.toml`.
    pub async fn create(
        dir: &Path,
        name: &str,
        secret: &OperatorSecret,
    ) -> Result<Room, RoomError> {
        Room::create_on(dir, name, secret, None).await
    }

    /// [`Room::create`] with its database on PostgreSQL at `database_url` (a database of its
    /// own, empty, with the `C` collation), or embedded (SQLite, `room.db`) when `None`.
    pub async fn create_on(
        dir: &Path,
        name: &str,
        secret: &OperatorSecret,
        database_url: Option<&str>,
    ) -> Result<Room, RoomError> {
        if !strongroom_api::names::valid_name(name) {
            return Err(RoomError::Invalid(format!(
                "room name '{name}': use 1-64 letters, digits, '-', '_' or '.'"
            )));
        }
        if dir.join("room.toml").exists() {
            return Err(RoomError::Invalid(format!(
                "{} already holds a room",
                dir.display()
            )));
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| RoomError::Invalid(format!("{}: {e}", dir.display())))?;
        let location = match database_url {
            Some(url) => db::Location::Postgres(url.to_string()),
            None => db::Location::Sqlite(dir.join("room.db")),
        };
        let db = db::open(&location).await?;
        if db.is_shared() && AuditLog::size_in(&db)? > 0 {
            return Err(RoomError::Invalid(
                "the PostgreSQL database already holds a room's log: give each room a database of its own".into(),
            ));
        }
        let keys = RoomKeys::generate(name, &dir.join("keys"), secret)?;
        let mut file = format!("name = \"{name}\"\n");
        if let Some(url) = database_url {
            let quoted = serde_json::to_string(url)
                .map_err(|e| RoomError::Invalid(format!("database url: {e}")))?;
            file.push_str(&format!("\n[database]\nurl = {quoted}\n"));
        }
        std::fs::write(dir.join("room.toml"), file)
            .map_err(|e| RoomError::Invalid(format!("{}: {e}", dir.display())))?;
        let room = Room {
            dir: dir.to_path_buf(),
            keys,
            db,
            storage: None,
            witness: witness_of(dir)?,
            engine: None,
        };
        let public = room.keys().public.clone();
        room.audit()
            .append(&Event::RoomCreated {
                actor: "operator".into(),
                room: name.to_string(),
                fingerprint: public.fingerprint(),
                sealing_x25519: hex::encode(public.sealing),
                signing_ed25519: hex::encode(public.signing),
            })
            .await?;
        Ok(room)
    }

    /// Opens the room in `dir` with the operator's secret.
    pub async fn open(dir: &Path, secret: &OperatorSecret) -> Result<Room, RoomError> {
        let file = Room::file_of(dir)?;
        let location = file.location(dir);
        let RoomFile {
            name,
            engine,
            storage,
            ..
        } = file;
        if let Some(engine) = &engine {
            engine.check().map_err(|e| {
                RoomError::Invalid(format!("{}: {e}", dir.join("room.toml").display()))
            })?;
        }
        let storage = storage
            .map(|s| s.open())
            .transpose()
            .map_err(|e| RoomError::Invalid(format!("{}: {e}", dir.join("room.toml").display())))?;
        let keys = RoomKeys::open(&name, &dir.join("keys"), secret)?;
        let (db_path, recover) = match &location {
            db::Location::Sqlite(path) => (
                path.display().to_string(),
                "restore room.db from the backup taken after the last checkpoint, or, to \
                 accept this database knowingly (the budgets it holds become the room's), move keys/log.witness \
                 aside; see docs/reliability.md",
            ),
            db::Location::Postgres(_) => (
                "the room's PostgreSQL database".to_string(),
                "restore the database from the backup taken after the last checkpoint, or, to \
                 accept this database knowingly (the budgets it holds become the room's), move keys/log.witness \
                 aside; see docs/reliability.md",
            ),
        };
        if let db::Location::Sqlite(path) = &location {
            match std::fs::metadata(path) {
                Err(_) => {
                    return Err(RoomError::Invalid(format!(
                        "{db_path} is missing: the room will not start with an empty budget ledger and log; {recover}"
                    )));
                }
                Ok(m) if m.len() == 0 => {
                    return Err(RoomError::Invalid(format!(
                        "{db_path} is empty: the room will not start with an empty budget ledger and log; {recover}"
                    )));
                }
                Ok(_) => {}
            }
        }
        let db = db::open_existing(&location).await?;
        let room = Room {
            dir: dir.to_path_buf(),
            keys,
            db,
            storage,
            witness: witness_of(dir)?,
            engine,
        };
        room.audit()
            .check_witness()
            .await
            .map_err(|e| RoomError::Invalid(format!("{db_path}: {e}; {recover}")))?;
        Ok(room)
    }

    /// The name in `dir/room.toml`.
    pub fn name_of(dir: &Path) -> Result<String, RoomError> {
        Ok(Room::file_of(dir)?.name)
    }

    /// Where the room runs partitions of isolated runs on sealed datasets (`[engine]` in
    /// room.toml), if not in its own process.
    pub fn engine(&self) -> Option<&crate::remote::engine::EngineConfig> {
        self.engine.as_ref()
    }

    fn file_of(dir: &Path) -> Result<RoomFile, RoomError> {
        let path = dir.join("room.toml");
        let text = std::fs::read_to_string(&path).map_err(|e| {
            RoomError::Invalid(format!(
                "{}: {e} (create a room with `strongroom keygen --room DIR`)",
                path.display()
            ))
        })?;
        crate::toml_text::parse(&text)
            .map_err(|e| RoomError::Invalid(format!("{}: {e}", path.display())))
    }

    /// The object storage holding uploaded sealed datasets (`[storage]` in room.toml), if not
    /// the room's directory.
    pub fn storage(&self) -> Option<&crate::data_at_rest::storage::Storage> {
        self.storage.as_ref()
    }

    /// The bytes of an uploaded dataset stored as `file` (a `datasets` row's): an object in the
    /// room's storage, or a file in its directory.
    pub fn dataset_blob(
        &self,
        file: &str,
    ) -> Result<crate::data_at_rest::blob::Blob, crate::data_at_rest::storage::StorageError> {
        match &self.storage {
            Some(storage) => storage.blob(file),
            None => Ok(crate::data_at_rest::blob::Blob::File(self.dir.join(file))),
        }
    }

    /// The room's name.
    pub fn name(&self) -> &str {
        &self.keys.public.name
    }

    /// The audit log, signing with the room's key.
    pub fn audit(&self) -> AuditLog<'_> {
        AuditLog::new(&self.db, self.keys.signer(), self.name()).with_witness(&self.witness)
    }

    /// The privacy ledger.
    pub fn ledger(&self) -> PrivacyLedger {
        PrivacyLedger::new(self.db.clone())
    }

    /// The compiled-module cache.
    pub fn module_cache(&self) -> Result<ModuleCache, RoomError> {
        ModuleCache::open(&self.dir.join("module-cache"))
            .map_err(|e| RoomError::Invalid(e.to_string()))
    }

    /// Stores a policy (replacing the previous one for its partner and dataset) and sets the
    /// budget it names. What was already spent stays spent.
    pub async fn set_policy(&self, policy: &Policy) -> Result<(), RoomError> {
        let previous = self.policy(&policy.partner, &policy.dataset).await.ok();
        let (removed, added) = match &previous {
            Some(old) => (
                old.text
                    .lines()
                    .filter(|l| !policy.text.lines().any(|n| n == *l))
                    .map(String::from)
                    .collect(),
                policy
                    .text
                    .lines()
                    .filter(|l| !old.text.lines().any(|o| o == *l))
                    .map(String::from)
                    .collect(),
            ),
            None => (
                Vec::new(),
                policy.text.lines().map(String::from).collect::<Vec<_>>(),
            ),
        };
        // The policy, its budget and the entry recording them commit together, or none does.
        self.write(|change| {
            change
                .conn()
                .prepare_cached(
                    "INSERT INTO policies (partner, dataset, policy_toml, policy_sha256, set_at) VALUES (?, ?, ?, ?, ?) \
                     ON CONFLICT (partner, dataset) DO UPDATE SET policy_toml = excluded.policy_toml, \
                     policy_sha256 = excluded.policy_sha256, set_at = excluded.set_at",
                )?
                .execute(params![
                    policy.partner,
                    policy.dataset,
                    policy.text,
                    policy.sha256,
                    crate::clock::now_rfc3339()
                ])?;
            PrivacyLedger::set_budget_in(
                change.conn(),
                &policy.partner,
                &policy.dataset,
                policy.budget_nano_rho,
            )
            .map_err(|e| RoomError::Invalid(e.to_string()))?;
            fail::fail_point!("policy.before_entry", |_| Err(RoomError::Invalid(
                "injected failure before the policy's entry".into()
            )));
            change.record(Event::PolicySet {
                actor: "bank".into(),
                partner: policy.partner.clone(),
                dataset: policy.dataset.clone(),
                policy_sha256: policy.sha256.clone(),
                previous_sha256: previous.map(|p| p.sha256),
                diff: PolicyDiff { removed, added },
            })
        })?;
        Ok(())
    }

    /// Records the bank's decision on a module (by hash) for a partner, with the parameters jobs
    /// may give it, replacing any earlier one, and logs it.
    pub async fn decide_module(
        &self,
        module_sha256: &str,
        partner: &str,
        approve: bool,
        by: &str,
        comment: &str,
        parameters: &approval::ParameterRules,
    ) -> Result<(), RoomError> {
        if strongroom_api::names::sha256_hex(module_sha256).is_none() {
            return Err(RoomError::Invalid(format!(
                "'{module_sha256}' is not a module's SHA-256 (64 hex digits)"
            )));
        }
        let decision = if approve { "approved" } else { "rejected" };
        // The decision and the entry recording it commit together, or neither does.
        self.write(|change| {
            change
                .conn()
                .prepare_cached(
                    "INSERT INTO approvals (module_sha256, partner, decision, decided_by, comment, decided_at, parameters) VALUES (?, ?, ?, ?, ?, ?, ?) \
                     ON CONFLICT (module_sha256, partner) DO UPDATE SET decision = excluded.decision, \
                     decided_by = excluded.decided_by, comment = excluded.comment, decided_at = excluded.decided_at, \
                     parameters = excluded.parameters",
                )?
                .execute(params![
                    module_sha256.to_ascii_lowercase(),
                    partner,
                    decision,
                    by,
                    comment,
                    crate::clock::now_rfc3339(),
                    parameters.to_json()
                ])?;
            fail::fail_point!("decision.before_entry", |_| Err(RoomError::Invalid(
                "injected failure before the decision's entry".into()
            )));
            let (actor, by, partner) = ("bank".to_string(), by.to_string(), partner.to_string());
            let module_sha256 = module_sha256.to_ascii_lowercase();
            let comment = comment.to_string();
            // As JSON text: ranges are decimals, and log entries hold integers only.
            let parameters = parameters.to_json();
            change.record(if approve {
                Event::ModuleApproved {
                    actor,
                    by,
                    partner,
                    module_sha256,
                    comment,
                    parameters,
                }
            } else {
                Event::ModuleRejected {
                    actor,
                    by,
                    partner,
                    module_sha256,
                    comment,
                    parameters,
                }
            })
        })?;
        Ok(())
    }

    /// The bank's decision on a module for a partner, if it made one.
    pub async fn module_decision(
        &self,
        module_sha256: &str,
        partner: &str,
    ) -> Result<Option<approval::Approval>, RoomError> {
        let row: Option<(String, String)> = self.db.read(|conn| {
            conn.prepare_cached(
                "SELECT decision, parameters FROM approvals WHERE module_sha256 = ? AND partner = ?",
            )?
            .query_row(params![module_sha256, partner], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
            .map_err(RoomError::from)
        })?;
        let Some((decision, parameters)) = row else {
            return Ok(None);
        };
        Ok(Some(approval::Approval {
            approved: decision == "approved",
            parameters: approval::ParameterRules::from_json(&parameters)
                .map_err(|e| RoomError::Invalid(e.0))?,
        }))
    }

    /// The policy for a partner on a dataset.
    pub async fn policy(&self, partner: &str, dataset: &str) -> Result<Policy, RoomError> {
        let text: Option<String> = self.db.read(|conn| {
            conn.prepare_cached(
                "SELECT policy_toml FROM policies WHERE partner = ? AND dataset = ?",
            )?
            .query_row(params![partner, dataset], |r| r.get(0))
            .optional()
            .map_err(RoomError::from)
        })?;
        let Some(text) = text else {
            return Err(RoomError::NoPolicy {
                partner: partner.into(),
                dataset: dataset.into(),
            });
        };
        Policy::parse(&text).map_err(|e| RoomError::Invalid(e.0))
    }
}
