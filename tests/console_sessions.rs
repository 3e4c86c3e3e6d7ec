//! The web console's sessions through the real router, in process: the authorization matrix
//! again with session cookies instead of bearer tokens (the same table decides), CSRF tokens and
//! origins on state-changing requests, revocation and logout ending sessions, the login's
//! refusals, and the security headers and embedded assets. tests/console.rs drives the same in a
//! real browser.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use strongroom_server::ServiceConfig;
use strongroom_server::auth::{self, Role};
use strongroom_server::routes::ROUTES;
use strongroom_tests::http::{Served, served};
use tower::ServiceExt;

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
    bytes: Vec<u8>,
}

async fn send(app: &axum::Router, request: Request<Body>) -> Answer {
    let response = app.clone().oneshot(request).await.expect("response");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body")
        .to_vec();
    Answer {
        status,
        headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        bytes,
    }
}

/// A browser session: its cookie header and CSRF token.
struct Session {
    cookie: String,
    csrf: String,
}

async fn login(app: &axum::Router, token: &str) -> Session {
    let a = send(
        app,
        Request::post("/console/login")
            .header("content-type", "application/json")
            .body(Body::from(json!({ "token": token }).to_string()))
            .expect("request"),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let set = a.headers["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_string();
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attribute), "{set} lacks {attribute}");
    }
    Session {
        cookie: set.split(';').next().expect("pair").to_string(),
        csrf: a.body["csrf_token"].as_str().expect("csrf").to_string(),
    }
}

/// A request with a session cookie and, optionally, the CSRF header and an Origin.
fn with_cookie(
    method: &str,
    path: &str,
    session: &Session,
    csrf: Option<&str>,
    origin: Option<&str>,
) -> Request<Body> {
    let mut r = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "room.example:8443")
        .header("content-type", "application/json")
        .header("cookie", format!("theme=dark; {}", session.cookie));
    if let Some(c) = csrf {
        r = r.header("x-csrf-token", c);
    }
    if let Some(o) = origin {
        r = r.header("origin", o);
    }
    r.body(Body::from("{}")).expect("request")
}

fn concrete(path: &str) -> String {
    path.replace("{name}", "bank")
        .replace("{sha256}", &"ab".repeat(32))
        .replace("{id}", "job-0-none")
}

async fn service() -> Served {
    served(ServiceConfig {
        failures_per_source: 1e9,
        ..ServiceConfig::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authorization_matrix_holds_for_browser_sessions() {
    let s = service().await;
    let sessions = [
        (Role::Bank, login(&s.app, &s.bank).await),
        (Role::Partner, login(&s.app, &s.partner).await),
        (Role::Auditor, login(&s.app, &s.auditor).await),
    ];
    let nobody = Session {
        cookie: "strongroom_session=not-a-session".into(),
        csrf: "x".into(),
    };
    for route in ROUTES {
        let path = concrete(route.path);
        let a = send(
            &s.app,
            with_cookie(route.method, &path, &nobody, Some("x"), None),
        )
        .await;
        if route.roles.is_empty() {
            assert!(a.status.is_success(), "{} {path}", route.method);
        } else {
            assert_eq!(
                a.status,
                StatusCode::UNAUTHORIZED,
                "{} {path}: an unknown session",
                route.method
            );
        }
        for (role, session) in &sessions {
            let a = send(
                &s.app,
                with_cookie(
                    route.method,
                    &path,
                    session,
                    Some(&session.csrf),
                    Some("http://room.example:8443"),
                ),
            )
            .await;
            let what = format!("{} {path} as a {} session", route.method, role.as_str());
            if route.roles.is_empty() || route.roles.contains(role) {
                assert!(
                    a.status != StatusCode::UNAUTHORIZED
                        && a.status != StatusCode::FORBIDDEN
                        && !a.status.is_server_error(),
                    "{what}: allowed, got {} {}",
                    a.status,
                    a.body
                );
            } else {
                assert_eq!(a.status, StatusCode::FORBIDDEN, "{what}: {}", a.body);
                assert_eq!(a.body["code"], "forbidden", "{what}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_changing_requests_from_a_session_need_its_csrf_token_and_origin() {
    let s = service().await;
    let bank = login(&s.app, &s.bank).await;
    let other = login(&s.app, &s.partner).await;
    let decide = format!("/v1/modules/{}/decision", "ab".repeat(32));
    let refused = |a: &Answer, why: &str| {
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{why}: {}", a.body);
        assert_eq!(a.body["code"], "csrf_rejected", "{why}");
    };
    refused(
        &send(&s.app, with_cookie("POST", &decide, &bank, None, None)).await,
        "no token",
    );
    refused(
        &send(&s.app, with_cookie("POST", &decide, &bank, Some(""), None)).await,
        "an empty token",
    );
    refused(
        &send(
            &s.app,
            with_cookie("POST", &decide, &bank, Some(&other.csrf), None),
        )
        .await,
        "another session's token",
    );
    refused(
        &send(
            &s.app,
            with_cookie(
                "POST",
                &decide,
                &bank,
                Some(&bank.csrf),
                Some("http://evil.example"),
            ),
        )
        .await,
        "another origin",
    );
    refused(
        &send(
            &s.app,
            with_cookie(
                "POST",
                &decide,
                &bank,
                Some(&bank.csrf),
                Some("http://room.example:9999"),
            ),
        )
        .await,
        "another port of the same host",
    );
    // With its token, from its own origin (or a client that names none), it passes to the
    // handler (which finds no such module).
    for origin in [Some("http://room.example:8443"), None] {
        let a = send(
            &s.app,
            with_cookie("POST", &decide, &bank, Some(&bank.csrf), origin),
        )
        .await;
        assert_eq!(
            a.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{origin:?}: {}",
            a.body
        );
    }
    // Reading needs no token; a bearer token needs no CSRF token.
    let a = send(
        &s.app,
        with_cookie(
            "GET",
            "/v1/modules",
            &bank,
            None,
            Some("http://evil.example"),
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    let a = send(
        &s.app,
        Request::post(&decide)
            .header("authorization", format!("Bearer {}", s.bank))
            .header("content-type", "application/json")
            .body(Body::from("{}"))
            .expect("request"),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_rotating_or_logging_out_ends_sessions() {
    let s = service().await;
    let partner = login(&s.app, &s.partner).await;
    let bank = login(&s.app, &s.bank).await;
    let read = |session: &Session| with_cookie("GET", "/v1/modules", session, None, None);
    assert_eq!(send(&s.app, read(&partner)).await.status, StatusCode::OK);
    let me = send(
        &s.app,
        with_cookie("GET", "/console/session", &partner, None, None),
    )
    .await;
    assert_eq!(me.body["party"], "socialco");
    assert_eq!(me.body["role"], "partner");
    assert_eq!(me.body["csrf_token"], partner.csrf.as_str());

    auth::rotate_token(&s.state.room, "socialco")
        .await
        .expect("rotate");
    assert_eq!(
        send(&s.app, read(&partner)).await.status,
        StatusCode::UNAUTHORIZED,
        "a rotated token's sessions end"
    );
    auth::revoke_party(&s.state.room, "bigbank")
        .await
        .expect("revoke");
    assert_eq!(
        send(&s.app, read(&bank)).await.status,
        StatusCode::UNAUTHORIZED,
        "a revoked token's sessions end"
    );

    let auditor = login(&s.app, &s.auditor).await;
    let entries = with_cookie("GET", "/v1/audit/entries", &auditor, None, None);
    assert_eq!(send(&s.app, entries).await.status, StatusCode::OK);
    let a = send(
        &s.app,
        with_cookie("POST", "/console/logout", &auditor, None, None),
    )
    .await;
    assert_eq!(
        a.body["code"], "csrf_rejected",
        "logging someone out takes the CSRF token too"
    );
    let a = send(
        &s.app,
        with_cookie(
            "POST",
            "/console/logout",
            &auditor,
            Some(&auditor.csrf),
            None,
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    assert!(
        a.headers["set-cookie"]
            .to_str()
            .expect("cookie")
            .contains("Max-Age=0")
    );
    let entries = with_cookie("GET", "/v1/audit/entries", &auditor, None, None);
    assert_eq!(
        send(&s.app, entries).await.status,
        StatusCode::UNAUTHORIZED,
        "logged out"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_takes_a_valid_token_as_json_only() {
    let s = service().await;
    let post = |content_type: &str, body: String| {
        Request::post("/console/login")
            .header("content-type", content_type)
            .body(Body::from(body))
            .expect("request")
    };
    let a = send(
        &s.app,
        post(
            "application/json",
            json!({"token": "sr_0123456789abcdef_nope"}).to_string(),
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(a.headers.get("set-cookie").is_none());
    let a = send(
        &s.app,
        post("application/json", json!({"token": s.revoked}).to_string()),
    )
    .await;
    assert_eq!(
        a.status,
        StatusCode::UNAUTHORIZED,
        "a revoked token opens no session"
    );
    // A cross-site form can send only form encodings or text: refused, so no one is logged in
    // to the attacker's account behind their back.
    for content_type in [
        "application/x-www-form-urlencoded",
        "text/plain",
        "multipart/form-data; boundary=x",
    ] {
        let a = send(
            &s.app,
            post(content_type, format!("{{\"token\": \"{}\"}}", s.bank)),
        )
        .await;
        assert_eq!(
            a.status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type}: {}",
            a.body
        );
        assert!(a.headers.get("set-cookie").is_none());
    }
    // Failed logins count against the source's allowance like bad tokens do.
    let s = served(ServiceConfig {
        failures_per_source: 3.0,
        ..ServiceConfig::default()
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(
            send(
                &s.app,
                post("application/json", json!({"token": "wrong"}).to_string()),
            )
            .await
            .status,
        );
    }
    assert_eq!(&statuses[..3], &[StatusCode::UNAUTHORIZED; 3]);
    assert_eq!(&statuses[3..], &[StatusCode::TOO_MANY_REQUESTS; 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_its_assets_are_embedded_and_served_under_a_strict_policy() {
    let s = service().await;
    let get = |path: &str| Request::get(path).body(Body::empty()).expect("request");
    let page = send(&s.app, get("/")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.headers["content-type"], "text/html; charset=utf-8");
    let html = String::from_utf8(page.bytes.clone()).expect("utf-8");
    let csp = page.headers["content-security-policy"]
        .to_str()
        .expect("csp");
    for directive in [
        "default-src 'none'",
        "script-src 'self' 'wasm-unsafe-eval'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'self'",
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    ] {
        assert!(csp.contains(directive), "{csp} lacks {directive}");
    }
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("'unsafe-eval'"),
        "{csp}"
    );
    assert_eq!(page.headers["x-frame-options"], "DENY");
    assert_eq!(page.headers["x-content-type-options"], "nosniff");
    // Every asset the page and its scripts name comes from this server.
    let mut texts = vec![html];
    for (file, media) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("api.js", "text/javascript; charset=utf-8"),
        ("dom.js", "text/javascript; charset=utf-8"),
        ("modules.js", "text/javascript; charset=utf-8"),
        ("bank.js", "text/javascript; charset=utf-8"),
        ("partner.js", "text/javascript; charset=utf-8"),
        ("results.js", "text/javascript; charset=utf-8"),
        ("auditor.js", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
        ("favicon.svg", "image/svg+xml"),
        ("verifier.wasm", "application/wasm"),
    ] {
        let a = send(&s.app, get(&format!("/console/{file}"))).await;
        assert_eq!(a.status, StatusCode::OK, "{file}");
        assert_eq!(a.headers["content-type"], media, "{file}");
        if file.ends_with(".wasm") {
            assert_eq!(
                &a.bytes[..4],
                b"\0asm",
                "the verifier is a WebAssembly module"
            );
        } else {
            texts.push(String::from_utf8(a.bytes).expect("utf-8"));
        }
    }
    for text in &texts {
        for needle in [
            "http://",
            "https://",
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            let found = text
                .match_indices(needle)
                .any(|(i, _)| !text[i..].starts_with("http://www.w3.org/2000/svg"));
            assert!(!found, "a console file uses {needle}");
        }
    }
    let a = send(&s.app, get("/console/../Cargo.toml")).await;
    assert!(
        a.status == StatusCode::NOT_FOUND || a.status == StatusCode::BAD_REQUEST,
        "{}",
        a.status
    );
    let a = send(&s.app, get("/console/secret.txt")).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    // The API's answers carry the same headers.
    let a = send(&s.app, get("/v1/health")).await;
    assert!(a.headers.contains_key("content-security-policy"));
    assert_eq!(a.headers["x-content-type-options"], "nosniff");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_is_honoured_by_every_node_of_the_room_and_outlives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let room_dir = dir.path().join("room");
    let secret = strongroom::keys::OperatorSecret::new(b"sessions");
    let room = strongroom_tests::new_room(&room_dir, "sessions", &secret).await;
    let shared = room.db().is_shared();
    let bank = auth::add_party(&room, "bigbank", Role::Bank)
        .await
        .expect("bank");
    let first = strongroom_server::start(room, ServiceConfig::default())
        .await
        .expect("first");
    let first_app = strongroom_server::router(std::sync::Arc::clone(&first));
    let session = login(&first_app, &bank).await;
    // On PostgreSQL a second node serves beside the first; on SQLite (one serving process per
    // room) the process stops and starts again.
    if !shared {
        first.queue.shutdown();
        tokio::time::sleep(std::time::Duration::from_millis(700)).await;
        drop(first_app);
        drop(first);
    }
    let reopened = strongroom::room::Room::open(&room_dir, &secret)
        .await
        .expect("the room opens");
    let other = strongroom_server::start(reopened, ServiceConfig::default())
        .await
        .expect("another node");
    let app = strongroom_server::router(std::sync::Arc::clone(&other));
    let a = send(
        &app,
        with_cookie("GET", "/console/session", &session, None, None),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["party"], "bigbank", "{}", a.body);
    // Logging out on this node ends the session everywhere.
    let out = send(
        &app,
        with_cookie(
            "POST",
            "/console/logout",
            &session,
            Some(&session.csrf),
            None,
        ),
    )
    .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    let a = send(
        &app,
        with_cookie("GET", "/console/session", &session, None, None),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    other.queue.shutdown();
}
