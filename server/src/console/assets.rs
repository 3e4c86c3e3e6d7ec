//! The console's files, embedded in the binary at build time: the page, its scripts and style
//! (`server/console/assets/`), and the log verifier compiled for the browser by the build script.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::problem::Problem;

/// One embedded file: its name under `/console/`, its media type and its bytes.
struct Asset {
    name: &'static str,
    media_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $media:expr) => {
        Asset {
            name: $name,
            media_type: $media,
            bytes: include_bytes!(concat!("../../console/assets/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

static ASSETS: &[Asset] = &[
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("bank.js", JS),
    asset!("partner.js", JS),
    asset!("auditor.js", JS),
    asset!("modules.js", JS),
    asset!("results.js", JS),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
    Asset {
        name: "verifier.wasm",
        media_type: "application/wasm",
        bytes: include_bytes!(concat!(env!("OUT_DIR"), "/verifier.wasm")),
    },
];

const INDEX: &[u8] = include_bytes!("../../console/assets/index.html");

fn answer(media_type: &'static str, bytes: &'static [u8]) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, media_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        bytes,
    )
        .into_response()
}

/// `GET /`: the page.
pub async fn index() -> Response {
    answer("text/html; charset=utf-8", INDEX)
}

/// `GET /console/{file}`: a script, the style, the verifier.
pub async fn file(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(a) => answer(a.media_type, a.bytes),
        None => Problem::not_found("console file").into_response(),
    }
}
