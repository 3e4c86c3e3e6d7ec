//! The room as a service: boundary 4 of DESIGN.md, the network API.
//!
//! axum on tokio over the room's database. Every request passes one authorization layer that
//! finds the route in [`routes::ROUTES`], checks the bearer token ([`auth`]) and the caller's
//! role, and applies a per-party rate limit; handlers then scope what a partner sees to its
//! own modules, jobs, results and budgets. Jobs go into a persisted queue ([`queue`]) that a
//! bounded pool of worker threads drains, off the async runtime. Errors are RFC 9457 problem
//! details ([`problem`]). Bodies are size-capped, requests time out, connections are bounded.

pub mod auth;
pub mod console;
pub mod dataset_cache;
mod handlers;
pub mod openapi;
pub mod problem;
pub mod queue;
mod review;
pub mod routes;
pub mod views;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower_http::timeout::TimeoutLayer;

use auth::{AuthFailure, DeniedCounter, RateLimiter};
use problem::Problem;
use strongroom::guest_boundary::Sandbox;
use strongroom::room::Room;
use strongroom_verify::event::Event;

/// Service settings.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Worker threads that run jobs.
    pub workers: usize,
    /// Threads each job may use for isolated runs.
    pub threads_per_job: usize,
    /// Largest sealed upload (datasets, audience lists), bytes.
    pub max_upload_bytes: u64,
    /// Largest module, bytes.
    pub max_module_bytes: usize,
    /// Largest JSON or TOML body, bytes.
    pub max_body_bytes: usize,
    /// Requests per second per party, on average.
    pub rate_per_second: f64,
    /// Burst of requests per party.
    pub burst: f64,
    /// Whole-request timeout.
    pub request_timeout: Duration,
    /// Most queued jobs per partner.
    pub max_queued_per_partner: i64,
    /// Requests with a missing, wrong or revoked token allowed per source address: a burst of
    /// this many, refilled at one a second; beyond it, 429 before the token is looked at.
    pub failures_per_source: f64,
    /// How often refused requests are summarized in the log (one entry per source address).
    pub denied_summary_every: Duration,
    /// Bytes of opened datasets kept for the next job (least recently used evicted first).
    pub dataset_cache_bytes: u64,
    /// On a room several nodes serve (PostgreSQL): how long a node may go unseen before the
    /// others take it for gone and mark its running jobs interrupted. Nodes say they are alive
    /// six times as often.
    pub node_timeout: Duration,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            workers: 2,
            threads_per_job: 1,
            max_upload_bytes: 8 << 30,
            max_module_bytes: strongroom::guest_boundary::vetting::DEFAULT_MAX_MODULE_BYTES,
            max_body_bytes: 64 << 10,
            rate_per_second: 50.0,
            burst: 100.0,
            request_timeout: Duration::from_secs(600),
            max_queued_per_partner: 100,
            failures_per_source: 20.0,
            denied_summary_every: Duration::from_secs(60),
            dataset_cache_bytes: 4 << 30,
            node_timeout: queue::NODE_TIMEOUT,
        }
    }
}

/// What handlers share.
pub struct AppState {
    /// The room.
    pub room: Arc<Room>,
    /// The engine jobs run in.
    pub sandbox: Arc<Sandbox>,
    /// Settings.
    pub config: ServiceConfig,
    /// Per-party rate limits.
    pub limiter: RateLimiter,
    /// Per-source limits on requests with a missing, wrong or revoked token.
    pub failures: RateLimiter,
    /// Refused requests, counted until the next summary entry.
    pub denied: DeniedCounter,
    /// The job queue.
    pub queue: queue::Queue,
    /// The web console's browser sessions.
    pub sessions: console::session::Sessions,
    /// This serving process's id among the room's nodes (see [`queue::HEARTBEAT`]).
    pub node: String,
    /// `DIR/serve.lock`, locked while this process serves a room on SQLite: one serving process
    /// per such room (at start it fails the jobs still marked running, which a second process
    /// would take for interrupted). A room on PostgreSQL has nodes instead.
    _serving: Option<std::fs::File>,
}

fn rate_limited() -> Response {
    Problem::new(
        axum::http::StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "too many requests; slow down and retry",
    )
    .into_response()
}

async fn authorize(
    State(state): State<Arc<AppState>>,
    matched: Option<MatchedPath>,
    mut request: Request,
    next: Next,
) -> Response {
    let method = request.method().as_str().to_string();
    let Some(route) = matched.and_then(|m| routes::find(&method, m.as_str())) else {
        // Registered in the router but not in the table: nobody may call it.
        return Problem::forbidden().into_response();
    };
    if route.roles.is_empty() {
        return next.run(request).await;
    }
    let source = request
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_string(), |c| c.0.ip().to_string());
    let token = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    // A bearer token, or else the web console's session cookie; a cookie's state-changing
    // request must also carry the session's CSRF token.
    let caller = match token {
        Some(t) => auth::authenticate(&state.room, t).await,
        None => match state.sessions.caller(&state.room, request.headers()).await {
            Some((caller, csrf)) => {
                if console::session::changes_state(request.method())
                    && let Err(refusal) = console::session::csrf_ok(request.headers(), &csrf)
                {
                    state.denied.count(&source, "csrf_rejected");
                    return refusal.into_response();
                }
                Ok(caller)
            }
            None => Err(AuthFailure::Missing),
        },
    };
    let caller = match caller {
        Ok(c) => c,
        Err(failure) => {
            // Nothing is written per refused request: refusals are counted per source address
            // and summarized in the log. A source past its allowance of failures gets 429; a
            // valid token from the same address is still served (behind a proxy, every client
            // shares one address).
            if !state.failures.allow(&source) {
                state.denied.count(&source, "rate_limited");
                return rate_limited();
            }
            state.denied.count(
                &source,
                match failure {
                    AuthFailure::Missing => "missing_token",
                    AuthFailure::Revoked => "revoked_token",
                    _ => "invalid_token",
                },
            );
            return Problem::unauthorized().into_response();
        }
    };
    if !state.limiter.allow(&caller.party) {
        return rate_limited();
    }
    if !route.roles.contains(&caller.role) {
        let entry = Event::AccessDenied {
            actor: caller.actor(),
            reason: "role".into(),
            method: method.to_string(),
            route: route.path.to_string(),
        };
        if let Err(e) = state.room.audit().append(&entry).await {
            problem::tracing_log(&format!("writing an audit entry: {e}"));
        }
        return Problem::forbidden().into_response();
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// The router, with every layer.
pub fn router(state: Arc<AppState>) -> Router {
    let uploads = DefaultBodyLimit::disable();
    let modules = DefaultBodyLimit::max(state.config.max_module_bytes);
    let small = DefaultBodyLimit::max(state.config.max_body_bytes);
    Router::new()
        .route("/v1/health", get(handlers::health))
        .route("/v1/openapi.json", get(handlers::openapi))
        .route("/v1/room", get(handlers::room))
        .route(
            "/v1/datasets",
            get(handlers::list_datasets).put(handlers::upload_dataset.layer(uploads)),
        )
        .route("/v1/datasets/{name}", get(handlers::get_dataset))
        .route(
            "/v1/policies",
            get(handlers::list_policies).put(handlers::set_policy.layer(small)),
        )
        .route(
            "/v1/audience-lists",
            post(handlers::upload_audience.layer(uploads)),
        )
        .route(
            "/v1/modules",
            get(handlers::list_modules).post(handlers::upload_module.layer(modules)),
        )
        .route("/v1/modules/{sha256}", get(handlers::get_module))
        .route(
            "/v1/modules/{sha256}/decision",
            post(handlers::decide_module.layer(small)),
        )
        .route(
            "/v1/jobs",
            get(handlers::list_jobs).post(handlers::submit_job.layer(small)),
        )
        .route("/v1/jobs/preview", post(handlers::preview_job.layer(small)))
        .route("/v1/jobs/{id}", get(handlers::get_job))
        .route(
            "/v1/jobs/{id}/decision",
            post(handlers::decide_job.layer(small)),
        )
        .route("/v1/sql/explain", post(handlers::explain_sql))
        .route("/v1/budgets", get(handlers::budgets))
        .route("/v1/audit/entries", get(handlers::audit_entries))
        .route("/v1/audit/checkpoint", get(handlers::audit_checkpoint))
        .route("/v1/audit/proof", get(handlers::audit_proof))
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            authorize,
        ))
        .merge(console::router())
        .fallback(|| async { Problem::not_found("endpoint").into_response() })
        .method_not_allowed_fallback(|| async {
            Problem::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method",
            )
            .into_response()
        })
        .layer(small)
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            state.config.request_timeout,
        ))
        .layer(middleware::map_response(as_problem))
        .layer(middleware::map_response(console::headers::add))
        .layer(tower::limit::ConcurrencyLimitLayer::new(512))
        .with_state(state)
}

/// Every error answer is a problem document: one a layer produced without a body (a timeout)
/// or with plain text (an extractor's rejection) is rewritten with its status kept.
async fn as_problem(response: Response) -> Response {
    let status = response.status();
    let is_problem = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let (code, detail) = match status {
        axum::http::StatusCode::REQUEST_TIMEOUT => {
            ("timeout", "the request took longer than the server allows")
        }
        axum::http::StatusCode::PAYLOAD_TOO_LARGE => ("too_large", "the body is too large"),
        s if s.is_server_error() => ("internal", "internal error; the operator has the details"),
        _ => ("bad_request", "the request could not be read"),
    };
    Problem::new(status, code, detail).into_response()
}

use axum::handler::Handler;

/// Why the service could not start or stopped serving.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// Its files (room directories, certificates, the socket).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// Its database, while recovering the queue.
    #[error("the room's database: {0}")]
    Database(#[from] sqlx::Error),
    /// The room, while recovering the queue.
    #[error(transparent)]
    Room(#[from] strongroom::room::RoomError),
    /// Anything else that stops it from serving, in words.
    #[error("{0}")]
    Setup(String),
}

/// Locks `DIR/serve.lock` for as long as the returned file is open, or says that another
/// process serves the room.
fn serve_lock(dir: &std::path::Path) -> Result<std::fs::File, ServeError> {
    let path = dir.join("serve.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(ServeError::Setup(format!(
            "another strongroom serve is serving this room ({} is locked); stop it first",
            path.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
    }
}

/// Partial uploads older than this are left by a stopped process (on a room several nodes serve).
const STALE_UPLOAD: Duration = Duration::from_secs(24 * 3600);

/// Builds the state: recovers the queue (a job that was running is failed, its charge stands;
/// queued jobs stay queued) and starts the workers.
pub async fn start(room: Room, config: ServiceConfig) -> Result<Arc<AppState>, ServeError> {
    let sandbox = Arc::new(
        Sandbox::new(&strongroom::guest_boundary::sandbox::EngineSettings::default())
            .map_err(|e| ServeError::Setup(format!("{e:#}")))?,
    );
    eprintln!("strongroom serve: isolation: {}", sandbox.memory_reset());
    let room = Arc::new(room);
    let shared = room.db().is_shared();
    let serving = if shared {
        None
    } else {
        Some(serve_lock(room.dir())?)
    };
    for dir in ["datasets", "modules", "audience-lists", "uploads"] {
        std::fs::create_dir_all(room.dir().join(dir))?;
    }
    // Partial uploads of a process that was killed mid-request: nothing refers to them. (With
    // other nodes beside this one, only those older than any upload still under way.)
    let mut stale = 0;
    for entry in std::fs::read_dir(room.dir().join("uploads"))?.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_UPLOAD);
        if (!shared || old) && std::fs::remove_file(entry.path()).is_ok() {
            stale += 1;
        }
    }
    if stale > 0 {
        eprintln!("strongroom serve: removed {stale} partial upload(s) left by a stopped service");
    }
    let node = queue::new_node_id()?;
    queue::heartbeat(&room, &node)?;
    let interrupted = queue::recover(&room, &node, config.node_timeout).await?;
    if interrupted > 0 {
        eprintln!(
            "strongroom serve: {interrupted} job(s) were running when the service stopped; marked failed (their charges stand)"
        );
    }
    let state = Arc::new(AppState {
        limiter: RateLimiter::new(config.rate_per_second, config.burst),
        failures: RateLimiter::new(1.0, config.failures_per_source),
        denied: DeniedCounter::default(),
        queue: queue::Queue::new(config.dataset_cache_bytes),
        sessions: console::session::Sessions,
        room,
        sandbox,
        config,
        node,
        _serving: serving,
    });
    queue::spawn_workers(&state, tokio::runtime::Handle::current());
    if shared {
        let nodes = Arc::downgrade(&state);
        let every = state.config.node_timeout / 6;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every.max(Duration::from_millis(100)));
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(state) = nodes.upgrade() else {
                    return;
                };
                if state.queue.stopped() {
                    return;
                }
                let beat = queue::heartbeat(&state.room, &state.node);
                let recovered = match beat {
                    Ok(()) => {
                        queue::recover(&state.room, &state.node, state.config.node_timeout).await
                    }
                    Err(e) => Err(e),
                };
                match recovered {
                    Ok(0) => {}
                    Ok(n) => eprintln!(
                        "strongroom serve: {n} job(s) of a node that stopped answering marked failed (their charges stand)"
                    ),
                    Err(e) => problem::tracing_log(&format!("node heartbeat: {e}")),
                }
            }
        });
    }
    let summaries = Arc::downgrade(&state);
    let every = state.config.denied_summary_every;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(state) = summaries.upgrade() else {
                return;
            };
            state.denied.flush(&state.room, every.as_secs()).await;
        }
    });
    Ok(state)
}

/// How the service speaks TLS.
#[derive(Debug, Clone)]
pub enum Tls {
    /// Plain HTTP (loopback, or behind a TLS-terminating proxy).
    Off,
    /// A certificate chain and private key, PEM files.
    Files {
        /// Certificate chain (PEM).
        cert: std::path::PathBuf,
        /// Private key (PEM).
        key: std::path::PathBuf,
    },
    /// A self-signed certificate for `localhost` and `127.0.0.1`, made once and kept in the
    /// room's `tls/` directory. For development only.
    SelfSigned,
}

/// Makes (once) the development certificate and returns (cert, key) paths.
fn self_signed(room: &Room) -> Result<(std::path::PathBuf, std::path::PathBuf), ServeError> {
    let dir = room.dir().join("tls");
    let (cert, key) = (
        dir.join("self-signed-DEVELOPMENT-ONLY.crt.pem"),
        dir.join("self-signed-DEVELOPMENT-ONLY.key.pem"),
    );
    if !cert.exists() || !key.exists() {
        std::fs::create_dir_all(&dir)?;
        let made = rcgen::generate_simple_self_signed(vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
        ])
        .map_err(|e| ServeError::Setup(format!("making the development certificate: {e}")))?;
        std::fs::write(&cert, made.cert.pem())?;
        strongroom::private_files::write_private_atomically(
            &key,
            made.key_pair.serialize_pem().as_bytes(),
        )?;
    }
    Ok((cert, key))
}

/// Serves until Ctrl-C, then stops taking requests and lets workers finish their current job.
pub async fn serve(
    room: Room,
    listen: SocketAddr,
    config: ServiceConfig,
    tls: Tls,
) -> Result<(), ServeError> {
    let files = match &tls {
        Tls::Off => None,
        Tls::Files { cert, key } => Some((cert.clone(), key.clone())),
        Tls::SelfSigned => Some(self_signed(&room)?),
    };
    let state = start(room, config).await?;
    if let Some((cert, key)) = files {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let rustls = axum_server::tls_rustls::RustlsConfig::from_pem_file(&cert, &key)
            .await
            .map_err(|e| {
                ServeError::Setup(format!(
                    "TLS certificate {} / key {}: {e}",
                    cert.display(),
                    key.display()
                ))
            })?;
        let listener = std::net::TcpListener::bind(listen)
            .map_err(|e| ServeError::Setup(format!("cannot listen on {listen}: {e}")))?;
        listener.set_nonblocking(true)?;
        let local = listener.local_addr()?;
        {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(
                out,
                "strongroom: serving room '{}' on https://{local}",
                state.room.name()
            );
            let _ = writeln!(out, "strongroom: web console at https://{local}/");
            if matches!(tls, Tls::SelfSigned) {
                let _ = writeln!(
                    out,
                    "strongroom: SELF-SIGNED CERTIFICATE, FOR DEVELOPMENT ONLY: clients must trust {} (--ca-cert)",
                    cert.display()
                );
            }
            let _ = out.flush();
        }
        let handle = axum_server::Handle::new();
        let stopper = handle.clone();
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            stopper.graceful_shutdown(Some(std::time::Duration::from_secs(30)));
        });
        axum_server::from_tcp_rustls(listener, rustls)
            .handle(handle)
            .serve(router(Arc::clone(&state)).into_make_service_with_connect_info::<SocketAddr>())
            .await?;
        state.queue.shutdown();
        state
            .denied
            .flush(&state.room, state.config.denied_summary_every.as_secs())
            .await;
        return Ok(());
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| ServeError::Setup(format!("cannot listen on {listen}: {e}")))?;
    let local = listener.local_addr()?;
    // A closed stdout (a supervisor that stopped reading) must not stop the service.
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "strongroom: serving room '{}' on http://{local}",
            state.room.name()
        );
        let _ = writeln!(
            out,
            "strongroom: OpenAPI document at http://{local}/v1/openapi.json"
        );
        let _ = writeln!(out, "strongroom: web console at http://{local}/");
        let _ = out.flush();
    }
    let app = router(Arc::clone(&state));
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    state.queue.shutdown();
    state
        .denied
        .flush(&state.room, state.config.denied_summary_every.as_secs())
        .await;
    Ok(())
}
