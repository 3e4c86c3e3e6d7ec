//! Requests to the served room, through its real router: any route, as any party, with any
//! body. Nothing a caller sends may make the service answer 5xx or crash.
#![no_main]

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::Request;
use libfuzzer_sys::fuzz_target;
use strongroom::keys::OperatorSecret;
use strongroom::room::Room;
use strongroom_server::auth::{self, Role};
use strongroom_server::routes::ROUTES;
use strongroom_server::{ServiceConfig, router, start};
use tower::ServiceExt;

struct Served {
    runtime: tokio::runtime::Runtime,
    app: axum::Router,
    tokens: Vec<String>,
    _dir: tempfile::TempDir,
}

fn served() -> &'static Served {
    static S: OnceLock<Served> = OnceLock::new();
    S.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let (app, tokens) = runtime.block_on(async {
            let room = Room::create(
                &dir.path().join("room"),
                "fuzz-room",
                &OperatorSecret::new(b"fuzz"),
            )
            .await
            .expect("room");
            let mut tokens = Vec::new();
            for (name, role) in [
                ("bigbank", Role::Bank),
                ("socialco", Role::Partner),
                ("secteam", Role::Auditor),
            ] {
                tokens.push(auth::add_party(&room, name, role).await.expect("party"));
            }
            let config = ServiceConfig {
                workers: 1,
                rate_per_second: 1e9,
                burst: 1e9,
                failures_per_source: 1e9,
                ..ServiceConfig::default()
            };
            let state = start(room, config).await.expect("start");
            (router(Arc::clone(&state)), tokens)
        });
        Served {
            runtime,
            app,
            tokens,
            _dir: dir,
        }
    })
}

fuzz_target!(init: {
    served();
    strongroom_fuzz::seed(
        "http_requests",
        &[(
            "submit",
            b"\x0e\x01\x00{\"module_sha256\":\"00\",\"dataset\":\"bank\",\"cost\":\"0.1\"}".to_vec(),
        )],
    );
}, |data: &[u8]| {
    let s = served();
    let [route, caller, segment, body @ ..] = data else {
        return;
    };
    let route = &ROUTES[*route as usize % ROUTES.len()];
    let segments = [
        "bank",
        "%ff",
        "..",
        "0000",
        "j-0123456789abcdef",
        "%00",
        "a%2Fb",
    ];
    let path = route
        .path
        .split('/')
        .map(|p| {
            if p.starts_with('{') {
                segments[*segment as usize % segments.len()]
            } else {
                p
            }
        })
        .collect::<Vec<_>>()
        .join("/");
    let mut request = Request::builder().method(route.method).uri(path);
    if let Some(token) = s.tokens.get(*caller as usize % 4) {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let content_type = if caller & 0x80 == 0 {
        "application/json"
    } else {
        "text/plain"
    };
    let Ok(request) = request
        .header("content-type", content_type)
        .body(Body::from(body.to_vec()))
    else {
        return;
    };
    let status = s
        .runtime
        .block_on(s.app.clone().oneshot(request))
        .expect("infallible")
        .status();
    assert!(
        !status.is_server_error(),
        "{} {} answered {status}",
        route.method,
        route.path
    );
});
