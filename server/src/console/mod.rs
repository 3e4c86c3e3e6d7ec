//! The web console: the same API, for people in a browser (docs/console.md).
//!
//! The page and its scripts are embedded in the binary ([`assets`]) and served at `/`; nothing is
//! fetched from elsewhere. A person logs in with their party's API token once; the browser then
//! holds an HttpOnly, Secure, SameSite=Strict session cookie ([`session`]) that the authorization
//! layer accepts in place of the bearer token, with the same roles and the same route table.
//! Every state-changing request made with the cookie must also carry the session's CSRF token in
//! a header, which a cross-site form cannot set. Every answer carries a strict
//! Content-Security-Policy ([`headers`]): scripts from this origin only, no inline code, and
//! Trusted Types, so a string can never become markup.

pub mod assets;
pub mod headers;
pub mod session;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::auth::{self, AuthFailure, Caller};
use super::problem::Problem;
use super::problem::extract::Json;

/// What the page learns about its session (`GET /console/session`, and the login's answer).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionInfo {
    /// The party.
    pub party: String,
    /// Its role: bank, partner or auditor.
    pub role: String,
    /// The token state-changing requests carry in the `X-CSRF-Token` header.
    pub csrf_token: String,
    /// The room's name.
    pub room: String,
}

/// A login: the party's API token.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    /// The token `strongroom party add` printed.
    pub token: String,
}

fn info(state: &AppState, caller: &Caller, csrf: &str) -> SessionInfo {
    SessionInfo {
        party: caller.party.clone(),
        role: caller.role.as_str().to_string(),
        csrf_token: csrf.to_string(),
        room: state.room.name().to_string(),
    }
}

async fn login(
    State(state): State<Arc<AppState>>,
    connect: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    Json(body): Json<Login>,
) -> Response {
    let source = connect.map_or_else(|| "unknown".to_string(), |c| c.0.0.ip().to_string());
    let token = body.token.trim();
    let caller = auth::authenticate(&state.room, token).await;
    let caller = match caller {
        Ok(c) => c,
        Err(failure) => {
            if !state.failures.allow(&source) {
                state.denied.count(&source, "rate_limited");
                return Problem::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    "too many failed logins; wait and retry",
                )
                .into_response();
            }
            state.denied.count(
                &source,
                match failure {
                    AuthFailure::Revoked => "revoked_token",
                    _ => "invalid_token",
                },
            );
            return Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "that token is not valid here: paste the whole token `strongroom party add` printed",
            )
            .into_response();
        }
    };
    let token_id = auth::token_id(token).unwrap_or_default().to_string();
    match state.sessions.open(&state.room, &caller, &token_id) {
        Some((id, csrf)) => (
            [(header::SET_COOKIE, session::cookie(&id))],
            axum::Json(info(&state, &caller, &csrf)),
        )
            .into_response(),
        None => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_session",
            "the server cannot open another browser session now (too many are open); retry in a few minutes",
        )
        .into_response(),
    }
}

async fn current(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    match state.sessions.caller(&state.room, &headers).await {
        Some((caller, csrf)) => axum::Json(info(&state, &caller, &csrf)).into_response(),
        None => Problem::unauthorized().into_response(),
    }
}

async fn logout(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(refusal) = session::check_csrf(&state, &headers).await {
        return refusal.into_response();
    }
    state.sessions.close(&state.room, &headers);
    (
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, session::expired_cookie())],
    )
        .into_response()
}

/// The console's routes: the page, its assets, and logging in and out. They are not API
/// endpoints (not in the route table or the OpenAPI document): the page calls the API itself.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(assets::index))
        .route("/console/{file}", get(assets::file))
        .route("/console/login", post(login))
        .route("/console/session", get(current))
        .route("/console/logout", post(logout))
}
