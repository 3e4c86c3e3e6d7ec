//! Errors as RFC 9457 problem details (`application/problem+json`) with stable codes.
//!
//! `code` is the contract (docs/api.md lists them); `detail` is for people. A partner-facing
//! detail never carries data-derived text: guest traps, stderr and anything computed from rows
//! stay in the audit log, readable by the bank's roles only.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// A problem to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// Human-readable explanation.
    pub detail: String,
}

impl Problem {
    /// A problem.
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Problem {
        Problem {
            status,
            code,
            detail: detail.into(),
        }
    }

    /// 401: no, wrong or revoked token. The same answer for all three.
    pub fn unauthorized() -> Problem {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid bearer token is required",
        )
    }

    /// 403: the caller's role may not use this endpoint.
    pub fn forbidden() -> Problem {
        Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "your role may not use this endpoint",
        )
    }

    /// 404: no such thing, or not one the caller may see (the two look the same).
    pub fn not_found(what: &str) -> Problem {
        Problem::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no such {what}"),
        )
    }

    /// 400: the request is malformed.
    pub fn bad_request(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, "bad_request", detail)
    }

    /// 500: something on our side; details go to the server log, not to the caller.
    pub fn internal() -> Problem {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the room could not complete the request; the operator has the details",
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = strongroom_api::Problem {
            kind: format!("https://strongroom.dev/problems/{}", self.code),
            title: self.status.canonical_reason().unwrap_or("error").into(),
            status: self.status.as_u16(),
            code: self.code.into(),
            detail: self.detail,
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}

impl From<strongroom::room::RoomError> for Problem {
    fn from(e: strongroom::room::RoomError) -> Problem {
        match e {
            strongroom::room::RoomError::Invalid(msg) => Problem::bad_request(msg),
            strongroom::room::RoomError::NoPolicy { partner, dataset } => Problem::new(
                StatusCode::FORBIDDEN,
                "no_policy",
                format!("the bank has no policy for '{partner}' on '{dataset}'"),
            ),
            other => {
                tracing_log(&other.to_string());
                Problem::internal()
            }
        }
    }
}

impl From<strongroom::group_commit::WriteError> for Problem {
    fn from(e: strongroom::group_commit::WriteError) -> Problem {
        tracing_log(&e.to_string());
        Problem::internal()
    }
}

impl From<strongroom::room::db::SqlError> for Problem {
    fn from(e: strongroom::room::db::SqlError) -> Problem {
        tracing_log(&e.to_string());
        Problem::internal()
    }
}

/// Operator-side log line for an internal error (stderr of the server process).
pub fn tracing_log(message: &str) {
    eprintln!("strongroom serve: internal error: {message}");
}

fn rejection(status: StatusCode, text: String) -> Problem {
    let code = match status {
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid_body",
        _ => "bad_request",
    };
    Problem::new(status, code, text)
}

/// Extractors whose rejections are problem details too.
pub mod extract {
    use axum::extract::{FromRequest, FromRequestParts, Request};
    use axum::http::request::Parts;
    use serde::de::DeserializeOwned;

    use super::{Problem, rejection};

    /// A JSON body (`Content-Type: application/json`).
    pub struct Json<T>(pub T);

    impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
        type Rejection = Problem;
        async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
            axum::Json::<T>::from_request(req, state)
                .await
                .map(|axum::Json(v)| Json(v))
                .map_err(|r| rejection(r.status(), r.body_text()))
        }
    }

    /// Query parameters.
    pub struct Query<T>(pub T);

    impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
        type Rejection = Problem;
        async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
            axum::extract::Query::<T>::from_request_parts(parts, state)
                .await
                .map(|axum::extract::Query(v)| Query(v))
                .map_err(|r| rejection(r.status(), r.body_text()))
        }
    }

    /// Path parameters (a segment that is not valid percent-encoded UTF-8 is a 400 problem).
    pub struct Path<T>(pub T);

    impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
        type Rejection = Problem;
        async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
            axum::extract::Path::<T>::from_request_parts(parts, state)
                .await
                .map(|axum::extract::Path(v)| Path(v))
                .map_err(|r| rejection(r.status(), r.body_text()))
        }
    }

    /// A whole body as bytes (size-capped by the route's limit).
    pub struct Bytes(pub axum::body::Bytes);

    impl<S: Send + Sync> FromRequest<S> for Bytes {
        type Rejection = Problem;
        async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
            axum::body::Bytes::from_request(req, state)
                .await
                .map(Bytes)
                .map_err(|r| rejection(r.status(), r.body_text()))
        }
    }

    /// A whole body as UTF-8 text.
    pub struct Text(pub String);

    impl<S: Send + Sync> FromRequest<S> for Text {
        type Rejection = Problem;
        async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
            String::from_request(req, state)
                .await
                .map(Text)
                .map_err(|r| rejection(r.status(), r.body_text()))
        }
    }
}
