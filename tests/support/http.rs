//! The service through its real router, in process: requests as each party, and a sealed bank.

use std::path::Path;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::Value;
use strongroom::data_at_rest::party::PartyKey;
use strongroom::data_at_rest::seal::seal;
use strongroom::dataset::schema::DatasetSchema;
use strongroom::dataset::synthetic;
use strongroom::room::Room;
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
    let data = dir.join("bank-data");
    synthetic::generate(300, 5.0, 9)
        .write_csv(&data)
        .expect("csv");
    let party = PartyKey::generate("bigbank", &dir.join("bank.key")).expect("key");
    let out = dir.join("bank.sealed");
    seal(
        &DatasetSchema::load(&data.join("schema.toml")).expect("schema"),
        &[
            ("customers".into(), data.join("customers.csv")),
            ("transactions".into(), data.join("transactions.csv")),
        ],
        &room.keys.public,
        &party,
        4096,
        &out,
        false,
    )
    .expect("seal");
    std::fs::read(out).expect("read")
}
