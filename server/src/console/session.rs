//! Browser sessions: an opaque id in an HttpOnly, Secure, SameSite=Strict cookie, and a CSRF
//! token the page sends back in a header on every state-changing request.
//!
//! Sessions live in the room's database (`console_sessions`, keyed by the SHA-256 of the id),
//! so that every node of a room serves every browser, and a restart keeps them; they last
//! [`SESSION_HOURS`]. Each use checks again that the party's token is the one the session was
//! opened with and is not revoked, so revoking or rotating a token ends its sessions at once.

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
const MAX_SESSIONS: i64 = 10_000;

/// The console's sessions, kept in the room's database.
#[derive(Default)]
pub struct Sessions;

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

fn sha256_hex(text: &str) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, text.as_bytes()).as_ref())
}

impl Sessions {
    /// Opens a session for `caller`, whose token has id `token_id`: (session id, CSRF token), or
    /// `None` when too many are open (or the database refuses).
    pub fn open(&self, room: &Room, caller: &Caller, token_id: &str) -> Option<(String, String)> {
        let (id, csrf) = (random()?, random()?);
        let now = time::OffsetDateTime::now_utc();
        let expires =
            strongroom::room::db::rfc3339(now + time::Duration::hours(SESSION_HOURS as i64));
        let now = strongroom::room::db::rfc3339(now);
        // Not flushed on its own: lost with the machine's power, the browser logs in again.
        let opened = room.db().write_lazily(|conn| {
            conn.execute(
                "DELETE FROM console_sessions WHERE expires_at <= ?",
                params![now],
            )?;
            let open: i64 =
                conn.query_row("SELECT COUNT(*) FROM console_sessions", params![], |r| {
                    r.get(0)
                })?;
            if open >= MAX_SESSIONS {
                return Ok(false);
            }
            conn.execute(
                "INSERT INTO console_sessions (id_sha256, party, role, token_id, csrf, expires_at) \
                 VALUES (?, ?, ?, ?, ?, ?)",
                params![
                    sha256_hex(&id),
                    caller.party,
                    caller.role.as_str(),
                    token_id,
                    csrf,
                    expires
                ],
            )?;
            Ok::<_, RoomError>(true)
        });
        match opened {
            Ok(true) => Some((id, csrf)),
            Ok(false) => None,
            Err(e) => {
                crate::problem::tracing_log(&format!("opening a console session: {e}"));
                None
            }
        }
    }

    /// Ends the session the request's cookie names.
    pub fn close(&self, room: &Room, headers: &HeaderMap) {
        if let Some(id) = session_id(headers) {
            let closed = room.db().write_lazily(|conn| {
                conn.execute(
                    "DELETE FROM console_sessions WHERE id_sha256 = ?",
                    params![sha256_hex(id)],
                )
                .map_err(RoomError::from)
            });
            if let Err(e) = closed {
                crate::problem::tracing_log(&format!("closing a console session: {e}"));
            }
        }
    }

    /// The caller and CSRF token of the request's session, if it has a live one whose party
    /// still holds the token it logged in with.
    pub async fn caller(&self, room: &Room, headers: &HeaderMap) -> Option<(Caller, String)> {
        let id = session_id(headers)?;
        let now = strongroom::clock::now_rfc3339();
        struct Found {
            party: String,
            role: String,
            csrf: String,
            live: bool,
        }
        let found: Found = room
            .db()
            .read(|conn| {
                conn.query_row(
                    "SELECT s.party, s.role, s.csrf, s.expires_at, s.token_id, p.token_id, p.revoked_at \
                     FROM console_sessions s LEFT JOIN parties p ON p.name = s.party \
                     WHERE s.id_sha256 = ?",
                    params![sha256_hex(id)],
                    |r| {
                        let expires: String = r.get(3)?;
                        let opened_with: String = r.get(4)?;
                        let holds: Option<String> = r.get(5)?;
                        let revoked: Option<String> = r.get(6)?;
                        Ok(Found {
                            party: r.get(0)?,
                            role: r.get(1)?,
                            csrf: r.get(2)?,
                            live: expires > now
                                && holds.as_deref() == Some(opened_with.as_str())
                                && revoked.is_none(),
                        })
                    },
                )
                .optional()
                .map_err(RoomError::from)
            })
            .ok()??;
        if !found.live {
            // Expired, or its token was revoked or rotated: the session ends.
            self.close(room, headers);
            return None;
        }
        let role = Role::parse(&found.role)?;
        Some((
            Caller {
                party: found.party,
                role,
            },
            found.csrf,
        ))
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
