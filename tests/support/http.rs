//! The service through its real router, in process: requests as each party, and a sealed bank.

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::Value;
use strongroom::keys::OperatorSecret;
use strongroom::room::Room;
use strongroom_server::auth::{self, Role};
use strongroom_server::{AppState, ServiceConfig, router, start};
use tower::ServiceExt;

/// Sends one request through the router; returns the status, the content type and the body as
/// JSON (null when it is not JSON).
pub async fn call(
    app: &Router,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Body,
) -> (StatusCode, String, Value) {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let response = app
        .clone()
        .oneshot(req.body(body).expect("request"))
        .await
        .expect("response");
    let status = response.status();
    let ctype = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, ctype, value)
}

/// A GET as `token`.
pub async fn get(app: &Router, path: &str, token: &str) -> (StatusCode, String, Value) {
    call(app, "GET", path, Some(token), Body::empty()).await
}

/// A JSON request body.
pub fn json_body(v: Value) -> Body {
    Body::from(v.to_string())
}

/// The synthetic bank (300 customers) sealed to `room` by "bigbank", as bytes.
pub fn sealed_bank(dir: &Path, room: &Room) -> Vec<u8> {
    let out = crate::seal_synthetic(dir, &room.keys().public, 300, 5.0, 9, 4096);
    std::fs::read(out).expect("read")
}

/// A room served in process through its real router, with a party of each kind: the bank
/// `bigbank`, the partners `socialco` and `otherco`, the auditor `secteam`, and `former`, a bank
/// token already revoked. Its workers stop when it is dropped.
pub struct Served {
    /// The room's directory (removed when dropped).
    pub dir: tempfile::TempDir,
    /// The service's state.
    pub state: Arc<AppState>,
    /// The router.
    pub app: axum::Router,
    /// Tokens.
    pub bank: String,
    /// See `bank`.
    pub partner: String,
    /// See `bank`.
    pub other_partner: String,
    /// See `bank`.
    pub auditor: String,
    /// See `bank`.
    pub revoked: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.state.queue.shutdown();
    }
}

/// A new room, served with `config`.
pub async fn served(config: ServiceConfig) -> Served {
    let dir = tempfile::tempdir().expect("tempdir");
    let room = crate::new_room(
        &dir.path().join("room"),
        "test-room",
        &OperatorSecret::new(b"test room"),
    )
    .await;
    let mut tokens = Vec::new();
    for (name, role) in [
        ("bigbank", Role::Bank),
        ("socialco", Role::Partner),
        ("otherco", Role::Partner),
        ("secteam", Role::Auditor),
        ("former", Role::Bank),
    ] {
        tokens.push(auth::add_party(&room, name, role).await.expect("party"));
    }
    auth::revoke_party(&room, "former").await.expect("revoke");
    let state = start(room, config).await.expect("start");
    let app = router(Arc::clone(&state));
    let [bank, partner, other_partner, auditor, revoked] =
        <[String; 5]>::try_from(tokens).expect("five parties");
    Served {
        dir,
        state,
        app,
        bank,
        partner,
        other_partner,
        auditor,
        revoked,
    }
}
