//! Browser sessions: an opaque id in an HttpOnly, Secure, SameSite=Strict cookie, and a CSRF
//! token the page sends back in a header on every state-changing request.
//!
//! Sessions live in the serving process's memory (a restart logs everyone out) and last
//! [`SESSION_HOURS`]. Each use checks again that the party's token is the one the session was
//! opened with and is not revoked, so revoking or rotating a token ends its sessions at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, Method, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::rand::{SecureRandom, SystemRandom};
use strongroom::params;
use strongroom::room::db::OptionalExtension;
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::auth::{Caller, Role};
use crate::problem::Problem;
use strongroom::room::{Room, RoomError};

/// The cookie's name.
pub const COOKIE: &str = "strongroom_session";
/// The header a state-changing request carries the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a session lasts.
pub const SESSION_HOURS: u64 = 8;
/// Most sessions open at once.
const MAX_SESSIONS: usize = 10_000;

struct Session {
    party: String,
    role: Role,
    token_id: String,
    csrf: String,
    expires: Instant,
}

/// The open sessions.
#[derive(Default)]
pub struct Sessions {
    open: Mutex<HashMap<String, Session>>,
}

fn random() -> Option<String> {
    let mut bytes = [0u8; 32];
    SystemRandom::new().fill(&mut bytes).ok()?;
    Some(B64.encode(bytes))
}

/// The `Set-Cookie` value for a new session.
pub fn cookie(id: &str) -> String {
    format!(
        "{COOKIE}={id}; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age={}",
        SESSION_HOURS * 3600
    )
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn expired_cookie() -> String {
    format!("{COOKIE}=; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=0")
}

/// The session id a request's cookies carry, if any.
pub fn session_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
        .filter(|v| !v.is_empty())
}

impl Sessions {
    /// Opens a session for `caller`, whose token has id `token_id`: (session id, CSRF token), or
    /// `None` when too many are open.
    pub fn open(&self, caller: &Caller, token_id: &str) -> Option<(String, String)> {
        let (id, csrf) = (random()?, random()?);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if open.len() >= MAX_SESSIONS {
            open.retain(|_, s| s.expires > now);
            if open.len() >= MAX_SESSIONS {
                return None;
            }
        }
        open.insert(
            id.clone(),
            Session {
                party: caller.party.clone(),
                role: caller.role,
                token_id: token_id.to_string(),
                csrf: csrf.clone(),
                expires: now + Duration::from_secs(SESSION_HOURS * 3600),
            },
        );
        Some((id, csrf))
    }

    /// Ends the session the request's cookie names.
    pub fn close(&self, headers: &HeaderMap) {
        if let Some(id) = session_id(headers) {
            self.open
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(id);
        }
    }

    /// The caller and CSRF token of the request's session, if it has a live one whose party
    /// still holds the token it logged in with.
    pub async fn caller(&self, room: &Room, headers: &HeaderMap) -> Option<(Caller, String)> {
        let id = session_id(headers)?;
        let (party, role, token_id, csrf) = {
            let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
            let s = open.get(id)?;
            if s.expires <= Instant::now() {
                open.remove(id);
                return None;
            }
            (s.party.clone(), s.role, s.token_id.clone(), s.csrf.clone())
        };
        let current: Option<(String, Option<String>)> = room
            .db()
            .read(|conn| {
                conn.prepare_cached("SELECT token_id, revoked_at FROM parties WHERE name = ?")?
                    .query_row(params![party], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
                    .map_err(RoomError::from)
            })
            .ok()?;
        match current {
            Some((now_id, None)) if now_id == token_id => Some((Caller { party, role }, csrf)),
            _ => {
                self.close(headers);
                None
            }
        }
    }
}

/// Whether `method` changes state (everything but GET, HEAD and OPTIONS).
pub fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The refusal of a state-changing browser request without the session's CSRF token.
fn csrf_refused(detail: &str) -> Problem {
    Problem::new(StatusCode::FORBIDDEN, "csrf_rejected", detail.to_string())
}

/// Checks a cookie-authenticated request that changes state: it must come from a page of this
/// origin (when the browser says where it comes from) and carry the session's CSRF token.
pub fn csrf_ok(headers: &HeaderMap, csrf: &str) -> Result<(), Problem> {
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let origin_host = origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://"))
            .map(|(_, rest)| rest);
        if host.is_none() || origin_host != host {
            return Err(csrf_refused(
                "a state-changing request from another site's page is refused",
            ));
        }
    }
    let presented = headers
        .get(CSRF_HEADER)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if presented.is_empty() || !bool::from(presented.ct_eq(csrf.as_bytes())) {
        return Err(csrf_refused(
            "a state-changing request from a browser session must carry the session's CSRF token (X-CSRF-Token)",
        ));
    }
    Ok(())
}

/// [`csrf_ok`] for the request's own session (the console's logout).
pub async fn check_csrf(state: &AppState, headers: &HeaderMap) -> Result<Caller, Problem> {
    let (caller, csrf) = state
        .sessions
        .caller(&state.room, headers)
        .await
        .ok_or_else(Problem::unauthorized)?;
    csrf_ok(headers, &csrf)?;
    Ok(caller)
}
