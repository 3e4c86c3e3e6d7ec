//! The endpoint handlers. Authorization by role happened before any of these runs; here each
//! handler scopes what it returns to the caller's party (a partner sees its own modules, jobs,
//! results and budgets, and only the datasets the bank granted it). "Not yours" and "does not
//! exist" give the same 404.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::Value;
use strongroom::params;
use strongroom::room::db::{OptionalExtension, Row, SqlError};
use tokio::io::AsyncWriteExt;

use super::AppState;
use super::auth::{Caller, Role};
use super::problem::Problem;
use super::problem::extract::{Bytes, Json as ApiJson, Path, Query, Text};
use strongroom::data_at_rest::open::{OpenError, Verified, verify_file, verify_file_visiting};
use strongroom::dataset::audience::{MAX_LIST_ENTITIES, MemberCounter};
use strongroom::dataset::schema::DatasetSchema;
use strongroom::guest_boundary::vet;
use strongroom::output_gate::mechanism::parse_nano;
use strongroom::room::jobs::{decide_held, new_job_id};
use strongroom::room::partner_view;
use strongroom::room::policy::Policy;
use strongroom_api::requests::{
    EntriesQuery, HeldDecisionRequest, JobPreviewRequest, JobSubmission, JobsQuery,
    ModuleDecisionRequest, ProofQuery, SqlExplainRequest,
};
use strongroom_api::{
    AudienceUploaded, AuditEntry, BankJobView, Budget, DatasetDetail, DatasetSummary, Health,
    HeldDecision, JobList, JobPreview, JobQueued, JobView, ModuleDecided, ModuleDetail,
    ModuleSummary, ModuleUploaded, PolicyEntry, PolicySet, PreviewMetric, Problem as ProblemBody,
    Proof, RoomInfo, SignedCheckpoint, SqlExplanation, SqlMetric, SqlRead,
};
use strongroom_verify::event::Event;

type Shared = State<Arc<AppState>>;

/// The longest reason a person at the bank may give for a decision.
const MAX_REASON_BYTES: usize = 2000;
type Caller_ = axum::Extension<Caller>;
type Answer = Result<Response, Problem>;

/// A 200 with one of the API's shared types (`strongroom-api`).
fn typed<T: serde::Serialize>(value: T) -> Answer {
    Ok(Json(value).into_response())
}

/// A 201 with one of the API's shared types.
fn created<T: serde::Serialize>(value: T) -> Answer {
    Ok((StatusCode::CREATED, Json(value)).into_response())
}

/// Liveness
#[utoipa::path(get, path = "/v1/health", responses((status = 200, description = "Serving", body = Health)))]
pub(super) async fn health() -> impl IntoResponse {
    Json(Health {
        status: "ok".into(),
    })
}

/// This document
///
/// Generated from the handlers and the API's shared types; the copy in the repository
/// (`server/openapi.json`) is checked against it.
#[utoipa::path(get, path = "/v1/openapi.json", responses((status = 200, description = "The OpenAPI document", body = Object)))]
pub(super) async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        super::openapi::document(),
    )
}

/// The room's public keys and fingerprint
#[utoipa::path(get, path = "/v1/room", responses((status = 200, description = "Room", body = RoomInfo)))]
pub(super) async fn room(State(state): Shared) -> Answer {
    typed(super::views::room_info(&state.room))
}

/// A request body received under the room's `uploads/`: deleted when dropped, unless moved into
/// place with [`Upload::keep`]. No failure path can leave a partial or refused file behind.
struct Upload {
    path: PathBuf,
    kept: bool,
}

impl Upload {
    /// Moves the file to `dest`.
    async fn keep(mut self, dest: &std::path::Path) -> Result<(), Problem> {
        tokio::fs::rename(&self.path, dest).await.map_err(|e| {
            super::problem::tracing_log(&format!("keeping an upload: {e}"));
            Problem::internal()
        })?;
        self.kept = true;
        Ok(())
    }
}

impl Upload {
    /// Streams the file into the object `key` of `storage` (in parts, never whole in memory),
    /// then removes it here.
    async fn store(
        self,
        storage: &strongroom::data_at_rest::storage::Storage,
        key: &str,
    ) -> Result<(), Problem> {
        let (storage, key, path) = (storage.clone(), key.to_string(), self.path.clone());
        tokio::task::spawn_blocking(move || storage.put_file(&path, &key))
            .await
            .map_err(|_| Problem::internal())?
            .map_err(|e| {
                super::problem::tracing_log(&format!("storing an upload: {e}"));
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage_unavailable",
                    "the room's object storage did not take the upload; retry later",
                )
            })?;
        drop(self);
        Ok(())
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if !self.kept {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Streams a request body to a fresh file under the room's `uploads/`, refusing past `cap`.
async fn receive(state: &AppState, body: Body, cap: u64) -> Result<Upload, Problem> {
    let mut name = [0u8; 12];
    SystemRandom::new()
        .fill(&mut name)
        .map_err(|_| Problem::internal())?;
    let upload = Upload {
        path: state
            .room
            .dir()
            .join("uploads")
            .join(format!("{}.part", hex::encode(name))),
        kept: false,
    };
    let mut file = tokio::fs::File::create(&upload.path).await.map_err(|e| {
        super::problem::tracing_log(&e.to_string());
        Problem::internal()
    })?;
    let mut stream = body.into_data_stream();
    let mut written = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| Problem::bad_request("the upload was cut off"))?;
        written += chunk.len() as u64;
        if written > cap {
            return Err(Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("uploads are limited to {cap} bytes"),
            ));
        }
        file.write_all(&chunk).await.map_err(|e| {
            super::problem::tracing_log(&e.to_string());
            Problem::internal()
        })?;
    }
    file.flush().await.map_err(|_| Problem::internal())?;
    if written == 0 {
        return Err(Problem::bad_request("the body is empty"));
    }
    Ok(upload)
}

/// Checks an uploaded sealed file chunk by chunk, off the async threads, holding one chunk in
/// memory at a time: every chunk authenticated and everything a job will trust checked.
async fn verified(state: &Arc<AppState>, upload: &Upload) -> Result<Verified, Problem> {
    let path = upload.path.clone();
    let st = Arc::clone(state);
    tokio::task::spawn_blocking(move || verify_file(&path, st.room.keys()).map_err(not_sealed))
        .await
        .map_err(|_| Problem::internal())?
}

impl From<OpenError> for Problem {
    fn from(e: OpenError) -> Problem {
        not_sealed(e)
    }
}

fn not_sealed(e: impl std::fmt::Display) -> Problem {
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "not_sealed_to_this_room",
        format!("the upload is not a valid file sealed to this room: {e}"),
    )
}

/// Datasets (a partner sees those the bank granted it)
#[utoipa::path(get, path = "/v1/datasets", responses((status = 200, description = "Datasets", body = Vec<DatasetSummary>)))]
pub(super) async fn list_datasets(State(state): Shared, caller: Caller_) -> Answer {
    let partner = (caller.role == Role::Partner).then_some(caller.party.as_str());
    typed(super::views::datasets(&state.room, partner).await?)
}

/// Upload a sealed dataset (streamed to disk, size-capped, every chunk authenticated)
#[utoipa::path(put, path = "/v1/datasets",
    request_body(content = [u8], content_type = "application/octet-stream", description = "A file from `strongroom seal`"),
    responses((status = 201, description = "Stored", body = DatasetSummary)))]
pub(super) async fn upload_dataset(State(state): Shared, caller: Caller_, body: Body) -> Answer {
    let upload = receive(&state, body, state.config.max_upload_bytes).await?;
    let sealed = verified(&state, &upload).await?;
    let h = &sealed.header;
    let name = h.dataset.clone();
    if !strongroom_api::names::valid_name(&name) {
        return Err(Problem::bad_request(format!(
            "dataset name '{name}' must be letters, digits, '-', '_' or '.'"
        )));
    }
    let sha = sealed.header_sha256.clone();
    let uploaded_at = strongroom::clock::now_rfc3339();
    let file = format!("datasets/{name}-{}.sealed", &sha[..16]);
    match state.room.storage() {
        Some(storage) => upload.store(storage, &file).await?,
        None => upload.keep(&state.room.dir().join(&file)).await?,
    }
    state.room.write(|change| {
        change
            .conn()
            .prepare_cached(
                "INSERT INTO datasets (name, header_sha256, file, sealed_by, schema_toml, entities, uploaded_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET header_sha256 = excluded.header_sha256, \
                 file = excluded.file, sealed_by = excluded.sealed_by, schema_toml = excluded.schema_toml, \
                 entities = excluded.entities, uploaded_at = excluded.uploaded_at, quarantined = NULL",
            )?
            .execute(params![
                name,
                sha,
                file,
                h.sealed_by.name,
                h.schema_toml,
                h.entities as i64,
                uploaded_at
            ])?;
        change.record(Event::DatasetUploaded {
            actor: caller.actor(),
            dataset: name.clone(),
            header_sha256: sha.clone(),
            sealed_by: h.sealed_by.name.clone(),
            sealed_by_ed25519: h.sealed_by.ed25519.clone(),
            entities: h.entities,
        })
    })?;
    created(DatasetSummary {
        name,
        header_sha256: sha,
        sealed_by: h.sealed_by.name.clone(),
        entities: h.entities,
        uploaded_at,
    })
}

/// A dataset's header and schema (names, roles, public dictionaries; never data)
#[utoipa::path(get, path = "/v1/datasets/{name}", params(("name" = String, Path, description = "The dataset's name")),
    responses((status = 200, description = "Dataset", body = DatasetDetail),
              (status = 404, description = "Not found, or not yours", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn get_dataset(
    State(state): Shared,
    caller: Caller_,
    Path(name): Path<String>,
) -> Answer {
    let partner = (caller.role == Role::Partner).then_some(caller.party.as_str());
    typed(
        super::views::dataset(&state.room, &name, partner)
            .await?
            .ok_or_else(|| Problem::not_found("dataset"))?,
    )
}

/// A partner's policy on a dataset granted to it, and the dataset's shape (schema and public
/// dictionaries, never a row): what explaining or previewing a job needs. Not granted and does
/// not exist are the same 404.
async fn partner_view_of_dataset(
    state: &AppState,
    caller: &Caller,
    dataset: &str,
) -> Result<(Policy, strongroom::dataset::Dataset), Problem> {
    let detail = super::views::dataset(&state.room, dataset, Some(&caller.party))
        .await?
        .ok_or_else(|| Problem::not_found("dataset"))?;
    let entry = super::views::policies(&state.room, Some(&caller.party))
        .await?
        .into_iter()
        .find(|p| p.dataset == dataset)
        .ok_or_else(|| Problem::not_found("dataset"))?;
    let policy =
        Policy::parse(&entry.policy_toml).map_err(|e| Problem::bad_request(e.to_string()))?;
    let schema = DatasetSchema::parse_inline(&detail.schema_toml, &detail.name)
        .map_err(|e| Problem::bad_request(e.to_string()))?;
    let shape = strongroom::data_at_rest::open::shape_of(&schema)
        .map_err(|e| Problem::bad_request(e.to_string()))?;
    Ok((policy, shape))
}

/// Compile a SQL query against a dataset and see what it would read and release: its template
/// and plan hashes, its group key's public domains, each number's bounds and, at a cost, its
/// noise and 95% interval. Nothing runs and nothing is charged.
#[utoipa::path(post, path = "/v1/sql/explain", request_body = SqlExplainRequest,
    responses((status = 200, description = "What the query would release", body = SqlExplanation),
              (status = 400, description = "Malformed request", body = ProblemBody, content_type = "application/problem+json"),
              (status = 404, description = "No such dataset, or no policy of yours on it", body = ProblemBody, content_type = "application/problem+json"),
              (status = 422, description = "The query does not compile (`sql_refused`, with line and column) or the room would refuse its job at this cost", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn explain_sql(
    State(state): Shared,
    caller: Caller_,
    ApiJson(body): ApiJson<SqlExplainRequest>,
) -> Answer {
    let refused = |code: &'static str, message: String| {
        Problem::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    };
    if body.sql.len() > strongroom_sql::MAX_QUERY_BYTES {
        return Err(refused(
            "sql_refused",
            format!(
                "the query is {} bytes; at most {}",
                body.sql.len(),
                strongroom_sql::MAX_QUERY_BYTES
            ),
        ));
    }
    let (policy, shape) = partner_view_of_dataset(&state, &caller, &body.dataset).await?;
    let parameters: Vec<(String, String)> = body.parameters.clone().into_iter().collect();
    let compiled = strongroom_sql::compile(
        &body.sql,
        &strongroom::room::sql::catalog(&shape),
        &parameters,
    )
    .map_err(|e| refused("sql_refused", e.to_string()))?;
    let m = &compiled.manifest;
    let noise = match &body.cost {
        Some(cost) => {
            let cost_nano =
                parse_nano(cost).map_err(|e| Problem::bad_request(format!("cost: {e}")))?;
            let plan = strongroom::room::jobs::plan_job(&policy, m, &shape, cost_nano)
                .map_err(|e| refused(e.refusal_code().unwrap_or("refused"), e.to_string()))?;
            Some(plan)
        }
        None => None,
    };
    let allowed = policy.sql.as_ref().is_some_and(|rules| {
        rules.queries == strongroom::room::policy::SqlQueries::Any
            || rules.templates.contains(&compiled.query_sha256)
    });
    let labels = strongroom::room::jobs::domain_labels(m, &shape);
    let group_key = m.metrics[0]
        .key
        .iter()
        .zip(&labels[0])
        .map(|(d, members)| {
            format!(
                "{} ({} labels: {})",
                d.label(),
                members.len(),
                members.join(", ")
            )
        })
        .collect();
    let metrics = m
        .metrics
        .iter()
        .zip(&compiled.metrics)
        .enumerate()
        .map(|(i, (metric, source))| {
            let expected = noise
                .as_ref()
                .and_then(|plan| plan.metrics.get(i))
                .map(|n| strongroom::output_gate::accuracy::expected(metric, n));
            SqlMetric {
                name: metric.name.clone(),
                kind: metric.kind.to_string(),
                sql: source.sql.clone(),
                per_customer: source.bounding.clone(),
                lower: metric.lower,
                upper: metric.upper,
                max_contributions_per_group: metric.max_contributions_per_group,
                noise_std: expected.and_then(|e| e.value_std),
                half_width_95: expected.map(|e| e.value_half_width),
            }
        })
        .collect();
    typed(SqlExplanation {
        query_sha256: compiled.query_sha256.clone(),
        plan_sha256: compiled.plan_sha256.clone(),
        normalized: compiled.normalized.clone(),
        allowed,
        reads: m
            .reads
            .iter()
            .map(|r| SqlRead {
                table: r.table.clone(),
                columns: r.columns.iter().map(|(c, _)| c.clone()).collect(),
            })
            .collect(),
        group_key,
        max_groups_per_customer: m.max_groups_per_entity,
        metrics,
    })
}

/// Policies (a partner sees its own)
#[utoipa::path(get, path = "/v1/policies", responses((status = 200, description = "Policies", body = Vec<PolicyEntry>)))]
pub(super) async fn list_policies(State(state): Shared, caller: Caller_) -> Answer {
    let partner = (caller.role == Role::Partner).then_some(caller.party.as_str());
    typed(super::views::policies(&state.room, partner).await?)
}

/// Set a policy (TOML, docs/privacy.md); logged
#[utoipa::path(put, path = "/v1/policies",
    request_body(content((String = "application/toml"), (String = "text/plain")), description = "The policy's text"),
    responses((status = 200, description = "Set", body = PolicySet)))]
pub(super) async fn set_policy(State(state): Shared, Text(body): Text) -> Answer {
    let policy = Policy::parse(&body).map_err(|e| {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_policy",
            format!("policy: {e}"),
        )
    })?;
    state.room.set_policy(&policy).await?;
    typed(super::views::policy_set(&policy))
}

/// Upload the partner's sealed audience list (sealed with its own party key)
#[utoipa::path(post, path = "/v1/audience-lists",
    request_body(content = [u8], content_type = "application/octet-stream", description = "A list from `strongroom seal`"),
    responses((status = 201, description = "Stored", body = AudienceUploaded)))]
pub(super) async fn upload_audience(State(state): Shared, caller: Caller_, body: Body) -> Answer {
    let upload = receive(&state, body, state.config.max_upload_bytes).await?;
    // The verified header first (who sealed it, how many people), then the content, checked
    // chunk by chunk while members are counted: one chunk in memory at a time.
    let st = Arc::clone(&state);
    let path = upload.path.clone();
    let party = caller.party.clone();
    let (members, sha) = tokio::task::spawn_blocking(move || -> Result<_, Problem> {
        let list = |message: String| {
            Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "not_an_audience_list",
                message,
            )
        };
        // Who sealed it and how many people it holds are checked on the header (its signature
        // verified) before any chunk is read; the members are counted as the chunks stream by.
        let start = |header: &strongroom::data_at_rest::format::Header| {
            if header.sealed_by.name != party {
                return Err(Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "wrong_sealer",
                    format!(
                        "the list was sealed by '{}'; seal it with your own party key",
                        header.sealed_by.name
                    ),
                ));
            }
            if header.entities > MAX_LIST_ENTITIES {
                return Err(list(format!(
                    "the list holds {} people; an audience list may hold at most {MAX_LIST_ENTITIES}",
                    header.entities
                )));
            }
            let schema = DatasetSchema::parse_inline(&header.schema_toml, "the list's header")
                .map_err(|e| list(e.to_string()))?;
            MemberCounter::new(&schema, header.entities).map_err(|e| list(e.to_string()))
        };
        let (verified, counter) =
            verify_file_visiting(&path, st.room.keys(), start, MemberCounter::visit)?;
        Ok((counter.members(), verified.header_sha256))
    })
    .await
    .map_err(|_| Problem::internal())??;
    let file = format!("audience-lists/{sha}.sealed");
    upload.keep(&state.room.dir().join(&file)).await?;
    state.room.write(|change| {
        change
            .conn()
            .prepare_cached(
                "INSERT INTO audience_lists (list_sha256, partner, file, uploaded_at) VALUES (?, ?, ?, ?) \
                 ON CONFLICT (list_sha256) DO NOTHING",
            )?
            .execute(params![sha, caller.party, file, strongroom::clock::now_rfc3339()])?;
        change.record(Event::AudienceUploaded {
            actor: caller.actor(),
            list_sha256: sha.clone(),
            members: members as u64,
        })
    })?;
    created(AudienceUploaded {
        list_sha256: sha,
        members: members as u64,
    })
}

/// Modules (a partner sees its own) with the bank's decision
#[utoipa::path(get, path = "/v1/modules", responses((status = 200, description = "Modules", body = Vec<ModuleSummary>)))]
pub(super) async fn list_modules(State(state): Shared, caller: Caller_) -> Answer {
    let modules = state.room.db().read(|conn| {
        conn.prepare_cached(
            "SELECT m.module_sha256, m.partner, m.name, m.version, m.mode, m.uploaded_at, a.decision \
             FROM modules m LEFT JOIN approvals a ON a.module_sha256 = m.module_sha256 AND a.partner = m.partner \
             WHERE ? <> 'partner' OR m.partner = ? ORDER BY m.uploaded_at, m.module_sha256",
        )?
        .query_map(params![caller.role.as_str(), caller.party], |r| {
            Ok(ModuleSummary {
                module_sha256: r.get("module_sha256")?,
                partner: r.get("partner")?,
                name: r.get("name")?,
                version: r.get("version")?,
                mode: r.get("mode")?,
                uploaded_at: r.get("uploaded_at")?,
                decision: r.get("decision")?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()
        .map_err(Problem::from)
    })?;
    typed(modules)
}

/// Upload a module; it is vetted at once
#[utoipa::path(post, path = "/v1/modules",
    request_body(content = [u8], content_type = "application/octet-stream", description = "A query component"),
    responses((status = 201, description = "Accepted by vetting", body = ModuleUploaded)))]
pub(super) async fn upload_module(
    State(state): Shared,
    caller: Caller_,
    Bytes(body): Bytes,
) -> Answer {
    // Hashing and vetting are CPU work that grows with the module: off the threads that answer
    // requests, so one large upload does not hold up everyone's submits.
    let max = state.config.max_module_bytes;
    let bytes = body.clone();
    let (hash, vetted) = tokio::task::spawn_blocking(move || {
        let hash = hex::encode(ring::digest::digest(&ring::digest::SHA256, &bytes).as_ref());
        (hash, vet(&bytes, max))
    })
    .await
    .map_err(|_| Problem::internal())?;
    let uploaded = |refused: Option<String>| Event::ModuleUploaded {
        actor: caller.actor(),
        module_sha256: hash.clone(),
        result: if refused.is_none() {
            "accepted"
        } else {
            "refused"
        }
        .into(),
        reason: refused,
    };
    let module = match vetted {
        Ok(module) => module,
        Err(e) => {
            // Nothing is stored for a refused module: its entry alone records the attempt.
            state
                .room
                .write(|change| change.record(uploaded(Some(e.to_string()))))?;
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "module_refused",
                e.to_string(),
            ));
        }
    };
    let m = &module.manifest;
    // Written aside and renamed into place: partners uploading the same module at once, or a
    // worker reading it for a job meanwhile, never see a truncated file.
    let path = state
        .room
        .dir()
        .join("modules")
        .join(format!("{hash}.wasm"));
    let bytes = body.clone();
    tokio::task::spawn_blocking(move || {
        strongroom::private_files::write_private_atomically(&path, &bytes)
    })
    .await
    .map_err(|_| Problem::internal())?
    .map_err(|e| {
        super::problem::tracing_log(&format!("storing a module: {e}"));
        Problem::internal()
    })?;
    state.room.write(|change| {
        change
            .conn()
            .prepare_cached(
                "INSERT INTO modules (module_sha256, partner, name, version, mode, uploaded_at) VALUES (?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (module_sha256, partner) DO NOTHING",
            )?
            .execute(params![
                hash,
                caller.party,
                m.name,
                m.version,
                m.mode.to_string(),
                strongroom::clock::now_rfc3339()
            ])?;
        change.record(uploaded(None))
    })?;
    let decision = state.room.module_decision(&hash, &caller.party).await?;
    created(ModuleUploaded {
        module_sha256: hash,
        name: m.name.clone(),
        version: m.version.clone(),
        mode: m.mode.to_string(),
        metrics: m.metrics.iter().map(|x| x.name.clone()).collect(),
        vetting: "accepted".into(),
        decision: decision.map(|d| if d.approved { "approved" } else { "rejected" }.into()),
    })
}

/// Reads a stored module and vets it again (off the threads that answer requests).
async fn stored_module(
    state: &Arc<AppState>,
    sha256: &str,
) -> Result<strongroom::guest_boundary::vetting::VettedModule, Problem> {
    let path = state
        .room
        .dir()
        .join("modules")
        .join(format!("{sha256}.wasm"));
    let max = state.config.max_module_bytes;
    tokio::task::spawn_blocking(move || {
        let bytes = std::fs::read(&path).map_err(|e| e.to_string())?;
        vet(&bytes, max).map_err(|e| e.to_string())
    })
    .await
    .map_err(|_| Problem::internal())?
    .map_err(|e| {
        super::problem::tracing_log(&format!("reading a stored module: {e}"));
        Problem::internal()
    })
}

/// One module in detail, with what changed since the last approved module of its name
#[utoipa::path(get, path = "/v1/modules/{sha256}",
    params(("sha256" = String, Path, description = "The module's SHA-256, hex")),
    responses((status = 200, description = "The module", body = ModuleDetail),
              (status = 404, description = "No such module (or not the caller's)", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn get_module(
    State(state): Shared,
    caller: Caller_,
    Path(sha256): Path<String>,
) -> Answer {
    let sha256 = sha256.to_ascii_lowercase();
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Problem::not_found("module"));
    }
    // A module two partners uploaded has a row per partner: the bank reviews the first; a
    // partner sees its own.
    type ModuleRow = (String, String, String, Option<String>);
    let row: Option<ModuleRow> = state.room.db().read(|conn| {
        conn.query_row(
            "SELECT m.partner, m.name, m.uploaded_at, a.decision \
             FROM modules m LEFT JOIN approvals a ON a.module_sha256 = m.module_sha256 AND a.partner = m.partner \
             WHERE m.module_sha256 = ? AND (? <> 'partner' OR m.partner = ?) ORDER BY m.uploaded_at LIMIT 1",
            params![sha256, caller.role.as_str(), caller.party],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()
        .map_err(Problem::from)
    })?;
    let (partner, name, uploaded_at, decision) = row.ok_or_else(|| Problem::not_found("module"))?;
    let module = stored_module(&state, &sha256).await?;
    let mut detail = super::review::detail(&module, &partner, uploaded_at, decision);
    let previous: Option<(String, String)> = state.room.db().read(|conn| {
        conn.query_row(
            "SELECT m.module_sha256, m.uploaded_at FROM modules m JOIN approvals a \
             ON a.module_sha256 = m.module_sha256 AND a.partner = m.partner \
             WHERE m.partner = ? AND m.name = ? AND a.decision = 'approved' AND m.module_sha256 <> ? \
             ORDER BY m.uploaded_at DESC LIMIT 1",
            params![partner, name, sha256],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(Problem::from)
    })?;
    if let Some((old_sha, old_uploaded)) = previous {
        let old = stored_module(&state, &old_sha).await?;
        let old = super::review::detail(&old, &partner, old_uploaded, Some("approved".into()));
        detail.previous_approved = Some(super::review::changes(&old, &detail));
    }
    typed(detail)
}

/// What a job of a module would release at a cost: each number's noise and 95% interval, and
/// how many such jobs the budget left allows. Nothing runs, nothing is charged.
#[utoipa::path(post, path = "/v1/jobs/preview",
    request_body = JobPreviewRequest,
    responses((status = 200, description = "The preview", body = JobPreview),
              (status = 404, description = "No such module or dataset (or no policy of the caller's on it)", body = ProblemBody, content_type = "application/problem+json"),
              (status = 422, description = "The room would refuse this job (mode, cost, bounds)", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn preview_job(
    State(state): Shared,
    caller: Caller_,
    ApiJson(body): ApiJson<JobPreviewRequest>,
) -> Answer {
    let sha256 = body.module_sha256.to_ascii_lowercase();
    let mine: bool = state.room.db().read(|conn| {
        conn.prepare_cached("SELECT 1 FROM modules WHERE module_sha256 = ? AND partner = ?")?
            .exists(params![sha256, caller.party])
            .map_err(Problem::from)
    })?;
    if !mine {
        return Err(Problem::not_found("module"));
    }
    let (policy, shape) = partner_view_of_dataset(&state, &caller, &body.dataset).await?;
    let cost_nano =
        parse_nano(&body.cost).map_err(|e| Problem::bad_request(format!("cost: {e}")))?;
    let module = stored_module(&state, &sha256).await?;
    let m = &module.manifest;
    let plan = strongroom::room::jobs::plan_job(&policy, m, &shape, cost_nano).map_err(|e| {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            e.refusal_code().unwrap_or("refused"),
            e.to_string(),
        )
    })?;
    let charge = strongroom::output_gate::mechanism::ledger_cost(policy.mechanism, plan.cost_nano);
    let status = state
        .room
        .ledger()
        .status(&caller.party, &body.dataset)
        .await
        .map_err(|e| {
            super::problem::tracing_log(&e.to_string());
            Problem::internal()
        })?;
    let remaining = status.remaining();
    typed(JobPreview {
        mechanism: policy.mechanism.to_string(),
        cost: body.cost.clone(),
        charge_rho: strongroom::output_gate::mechanism::format_nano(charge),
        remaining_rho: strongroom::output_gate::mechanism::format_nano(remaining),
        jobs_left: remaining.checked_div(charge),
        min_group_size: policy.min_group_size,
        metrics: m
            .metrics
            .iter()
            .zip(&plan.metrics)
            .map(|(x, n)| {
                let e = strongroom::output_gate::accuracy::expected(x, n);
                PreviewMetric {
                    name: x.name.clone(),
                    kind: x.kind.to_string(),
                    noise_std: e.value_std,
                    half_width_95: e.value_half_width,
                    entities_half_width_95: e.entities_half_width,
                }
            })
            .collect(),
    })
}

/// Approve or reject a module by hash for a partner
#[utoipa::path(post, path = "/v1/modules/{sha256}/decision",
    params(("sha256" = String, Path, description = "The module's SHA-256, hex")),
    request_body = ModuleDecisionRequest,
    responses((status = 200, description = "Recorded", body = ModuleDecided)))]
pub(super) async fn decide_module(
    State(state): Shared,
    caller: Caller_,
    Path(sha256): Path<String>,
    ApiJson(body): ApiJson<ModuleDecisionRequest>,
) -> Answer {
    body.parameters
        .validate()
        .map_err(|e| Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_parameters", e.0))?;
    state
        .room
        .decide_module(
            &sha256,
            &body.partner,
            body.approve,
            &caller.party,
            &body.comment,
            &body.parameters,
        )
        .await?;
    typed(ModuleDecided {
        module_sha256: sha256.to_ascii_lowercase(),
        partner: body.partner,
        decision: if body.approve { "approved" } else { "rejected" }.into(),
        by: caller.party.clone(),
    })
}

const JOB_COLUMNS: &str = "q.job_id, q.partner, q.dataset, q.module_sha256, q.cost, q.parameters, q.state, q.error, \
    q.submitted_at, q.finished_at, q.release_at, j.outcome, j.status, j.result_json, j.receipt, j.bank_detail";

/// The bank's view of a job from its queue row and, once it ended, its result row.
fn bank_job_view(r: &Row<'_>) -> Result<BankJobView, SqlError> {
    let text: Option<String> = r.get("result_json")?;
    Ok(BankJobView {
        job_id: r.get("job_id")?,
        partner: r.get("partner")?,
        dataset: r.get("dataset")?,
        module_sha256: r.get("module_sha256")?,
        cost: r.get("cost")?,
        parameters: partner_view::stored_parameters(&r.get::<_, String>("parameters")?),
        state: r.get("state")?,
        error: r.get("error")?,
        outcome: r.get("outcome")?,
        status: r.get("status")?,
        submitted_at: r.get("submitted_at")?,
        release_at: r.get("release_at")?,
        finished_at: r.get("finished_at")?,
        receipt: r.get("receipt")?,
        result: text
            .as_deref()
            .and_then(|j| serde_json::from_str::<Value>(j).ok()),
        // The exact bytes the receipt's result hash covers.
        result_json: text,
        bank_detail: r.get("bank_detail")?,
        progress: None,
    })
}

/// Jobs (a partner sees its own)
#[utoipa::path(get, path = "/v1/jobs", params(JobsQuery), responses((status = 200, description = "Jobs", body = JobList)))]
pub(super) async fn list_jobs(
    State(state): Shared,
    caller: Caller_,
    Query(q): Query<JobsQuery>,
) -> Answer {
    let status = q.status.map(|s| s.as_str());
    if caller.role == Role::Partner {
        // Partners see the one partner view, nothing else.
        let views = partner_view::jobs(&state.room, &caller.party, status).await?;
        return typed(JobList::Partner(views));
    }
    // The bank and its auditors: the room's one job list, as a local room prints it too.
    match strongroom::room::jobs::list_jobs(&state.room, status).await {
        Ok(mut jobs) => {
            for job in jobs.iter_mut().filter(|j| j.status == "running") {
                job.progress = state.queue.progress_of(&job.job_id);
            }
            typed(JobList::Bank(jobs))
        }
        Err(e) => {
            super::problem::tracing_log(&e.to_string());
            Err(Problem::internal())
        }
    }
}

/// Submit a job: queued, run by a worker; the budget is charged before the module runs
#[utoipa::path(post, path = "/v1/jobs", request_body = JobSubmission,
    responses((status = 202, description = "Queued", body = JobQueued),
              (status = 404, description = "Not found, or not yours", body = ProblemBody, content_type = "application/problem+json"),
              (status = 409, description = "The dataset is quarantined: it failed the checks a job needs; the bank must upload it again (`dataset_quarantined`).", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn submit_job(
    State(state): Shared,
    caller: Caller_,
    ApiJson(body): ApiJson<JobSubmission>,
) -> Answer {
    parse_nano(&body.cost).map_err(|e| Problem::bad_request(format!("cost: {e}")))?;
    let parameters: Vec<(String, String)> = body.parameters.clone().into_iter().collect();
    strongroom::guest_boundary::check_parameters(&parameters)
        .map_err(|e| Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_parameters", e))?;
    // The checks and the insert are one write: what they found still holds when the job is
    // queued, and the cap cannot be overshot by concurrent submissions.
    if let Some(sql) = &body.sql
        && sql.len() > strongroom_sql::MAX_QUERY_BYTES
    {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "sql_refused",
            format!(
                "the query is {} bytes; at most {}",
                sql.len(),
                strongroom_sql::MAX_QUERY_BYTES
            ),
        ));
    }
    let job_id = new_job_id();
    let max = state.config.max_queued_per_partner;
    state.room.write(|change| {
        let conn = change.conn();
        let module_sha256 = match (&body.module_sha256, &body.sql) {
            (Some(m), _) => m.to_ascii_lowercase(),
            (None, Some(_)) => {
                // A SQL job runs through the engine the partner's policy names.
                let text: Option<String> = conn
                    .prepare_cached("SELECT policy_toml FROM policies WHERE partner = ? AND dataset = ?")?
                    .query_row(params![caller.party, body.dataset], |r| r.get(0))
                    .optional()?;
                let engine = text
                    .and_then(|t| strongroom::room::policy::Policy::parse(&t).ok())
                    .and_then(|p| p.sql)
                    .map(|s| s.engine_sha256);
                match engine {
                    Some(e) => e,
                    None => {
                        return Err(Problem::new(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            "sql_not_allowed",
                            format!(
                                "your policy on '{}' does not allow SQL (the bank adds an [sql] section naming its engine)",
                                body.dataset
                            ),
                        ));
                    }
                }
            }
            (None, None) => {
                return Err(Problem::bad_request(
                    "name a module (module_sha256) or send a query (sql)",
                ));
            }
        };
        // A partner runs its own uploads; a SQL job runs the bank's engine, uploaded by anyone.
        let module = if body.sql.is_some() {
            conn.prepare_cached("SELECT 1 FROM modules WHERE module_sha256 = ? LIMIT 1")?
                .query_row(params![module_sha256], |_| Ok(()))
                .optional()?
        } else {
            conn.prepare_cached("SELECT 1 FROM modules WHERE module_sha256 = ? AND partner = ?")?
                .query_row(params![module_sha256, caller.party], |_| Ok(()))
                .optional()?
        };
        if module.is_none() {
            return Err(Problem::not_found(if body.sql.is_some() {
                "SQL engine module (upload it first: strongroom module submit sql_engine.wasm)"
            } else {
                "module (upload it first)"
            }));
        }
        let quarantined: Option<Option<String>> = conn
            .prepare_cached("SELECT quarantined FROM datasets WHERE name = ?")?
            .query_row(params![body.dataset], |r| r.get(0))
            .optional()?;
        let has_policy = conn
            .prepare_cached("SELECT 1 FROM policies WHERE partner = ? AND dataset = ?")?
            .query_row(params![caller.party, body.dataset], |_| Ok(()))
            .optional()?
            .is_some();
        let (Some(quarantined), true) = (quarantined, has_policy) else {
            return Err(Problem::not_found("dataset"));
        };
        if quarantined.is_some() {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "dataset_quarantined",
                super::queue::quarantined_error(&body.dataset),
            ));
        }
        if let Some(list) = &body.audience_list {
            let found = conn
                .prepare_cached("SELECT 1 FROM audience_lists WHERE list_sha256 = ? AND partner = ?")?
                .query_row(params![list, caller.party], |_| Ok(()))
                .optional()?;
            if found.is_none() {
                return Err(Problem::not_found("audience list"));
            }
        }
        let inserted = conn
            .prepare_cached(
                "INSERT INTO job_queue (job_id, partner, dataset, module_sha256, cost, audience, parameters, sql_text, state, submitted_at) \
                 SELECT ?, ?, ?, ?, ?, ?, ?, ?, 'queued', ? \
                 WHERE (SELECT COUNT(*) FROM job_queue WHERE partner = ? AND state IN ('queued', 'running')) < ?",
            )?
            .execute(params![
                job_id,
                caller.party,
                body.dataset,
                module_sha256,
                body.cost,
                body.audience_list,
                serde_json::to_string(&parameters).unwrap_or_else(|_| "[]".into()),
                body.sql,
                strongroom::clock::now_rfc3339(),
                caller.party,
                max
            ])?;
        if inserted == 0 {
            return Err(Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "queue_full",
                format!("you have {max} jobs waiting; at most {max} may wait at once"),
            ));
        }
        change.record(Event::JobQueued {
            actor: caller.actor(),
            job: job_id.clone(),
            dataset: body.dataset.clone(),
            module_sha256: module_sha256.clone(),
            cost: body.cost.clone(),
        })?;
        Ok(())
    })?;
    state.queue.wake();
    Ok((
        StatusCode::ACCEPTED,
        Json(JobQueued {
            job_id,
            state: "queued".into(),
        }),
    )
        .into_response())
}

/// A job: state, outcome, released result, receipt
#[utoipa::path(get, path = "/v1/jobs/{id}", params(("id" = String, Path, description = "The job's id")),
    responses((status = 200, description = "Job", body = JobView),
              (status = 404, description = "Not found, or not yours", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn get_job(
    State(state): Shared,
    caller: Caller_,
    Path(id): Path<String>,
) -> Answer {
    if caller.role == Role::Partner {
        let view = partner_view::job(&state.room, &caller.party, &id)
            .await?
            .ok_or_else(|| Problem::not_found("job"))?;
        return typed(JobView::Partner(Box::new(view)));
    }
    let query = format!(
        "SELECT {JOB_COLUMNS} FROM job_queue q LEFT JOIN jobs j ON j.job_id = q.job_id WHERE q.job_id = ?"
    );
    let mut view = state
        .room
        .db()
        .read(|conn| {
            conn.query_row(&query, params![id], bank_job_view)
                .optional()
                .map_err(Problem::from)
        })?
        .ok_or_else(|| Problem::not_found("job"))?;
    view.progress = state.queue.progress_of(&view.job_id);
    typed(JobView::Bank(Box::new(view)))
}

/// Release or withhold a held result
#[utoipa::path(post, path = "/v1/jobs/{id}/decision", params(("id" = String, Path, description = "The job's id")),
    request_body = HeldDecisionRequest,
    responses((status = 200, description = "Decided", body = HeldDecision),
              (status = 404, description = "No such job", body = ProblemBody, content_type = "application/problem+json"),
              (status = 409, description = "Conflict", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn decide_job(
    State(state): Shared,
    caller: Caller_,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<HeldDecisionRequest>,
) -> Answer {
    if body.reason.len() > MAX_REASON_BYTES {
        return Err(Problem::bad_request(format!(
            "reason: at most {MAX_REASON_BYTES} bytes"
        )));
    }
    match decide_held(
        &state.room,
        &id,
        body.release,
        &caller.actor(),
        &body.reason,
    )
    .await
    {
        Ok(_) => typed(HeldDecision {
            job_id: id,
            status: if body.release { "released" } else { "withheld" }.into(),
        }),
        Err(strongroom::room::jobs::JobError::Refused(why)) => {
            let status = match why {
                strongroom::room::jobs::Refusal::NoSuchJob(_) => StatusCode::NOT_FOUND,
                _ => StatusCode::CONFLICT,
            };
            Err(Problem::new(status, why.code(), why.to_string()))
        }
        Err(e) => {
            super::problem::tracing_log(&e.to_string());
            Err(Problem::internal())
        }
    }
}

/// Privacy budgets (a partner sees its own)
#[utoipa::path(get, path = "/v1/budgets", responses((status = 200, description = "Budgets", body = Vec<Budget>)))]
pub(super) async fn budgets(State(state): Shared, caller: Caller_) -> Answer {
    let partner = (caller.role == Role::Partner).then_some(caller.party.as_str());
    typed(super::views::budgets(&state.room, partner).await?)
}

/// Audit entries from an index (at most 1000)
#[utoipa::path(get, path = "/v1/audit/entries", params(EntriesQuery), responses((status = 200, description = "Entries", body = Vec<AuditEntry>)))]
pub(super) async fn audit_entries(State(state): Shared, Query(q): Query<EntriesQuery>) -> Answer {
    let limit = q.limit.unwrap_or(1000).clamp(1, 1000);
    typed(super::views::audit_entries(&state.room, q.from, limit).await?)
}

/// The latest signed checkpoint
#[utoipa::path(get, path = "/v1/audit/checkpoint", responses((status = 200, description = "Checkpoint", body = SignedCheckpoint)))]
pub(super) async fn audit_checkpoint(State(state): Shared) -> Answer {
    typed(super::views::checkpoint(&state.room).await?)
}

/// An inclusion proof (index) or a consistency proof (old) up to size; a partner gets inclusion proofs of its own entries only
#[utoipa::path(get, path = "/v1/audit/proof", params(ProofQuery),
    responses((status = 200, description = "Proof", body = Proof),
              (status = 404, description = "A partner asked for an entry that is not about its own requests", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn audit_proof(
    State(state): Shared,
    caller: Caller_,
    Query(q): Query<ProofQuery>,
) -> Answer {
    if caller.role == Role::Partner
        && let Some(index) = q.index
    {
        // A partner gets inclusion proofs of entries about its own requests and jobs only.
        let entry = state
            .room
            .audit()
            .entries_page(index, 1)
            .await
            .map_err(|e| {
                super::problem::tracing_log(&e.to_string());
                Problem::internal()
            })?;
        let mine = entry.first().is_some_and(|e| {
            e.index == index && partner_view::entry_is_partners(&e.entry, &caller.party)
        });
        if !mine {
            return Err(Problem::not_found("log entry"));
        }
    }
    match super::views::proof(&state.room, q.index, q.old, q.size).await {
        Ok(proof) => typed(proof),
        Err(super::views::ProofError::Request(why)) => Err(Problem::bad_request(why)),
        Err(super::views::ProofError::Room(e)) => Err(e.into()),
    }
}
