//! Every endpoint and the roles that may call it: one table, read by the authorization layer
//! (a route missing here is refused for everyone), by the OpenAPI test (every route is in
//! server/openapi.json and nothing else is) and by the authorization-matrix test.

use super::auth::Role;

/// One endpoint.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// HTTP method.
    pub method: &'static str,
    /// Path template, axum and OpenAPI syntax (`{name}`).
    pub path: &'static str,
    /// Roles allowed; empty means public (no token needed).
    pub roles: &'static [Role],
}

const ALL: &[Role] = &[Role::Bank, Role::Partner, Role::Auditor];
const BANK: &[Role] = &[Role::Bank];
const PARTNER: &[Role] = &[Role::Partner];
const BANK_AUDITOR: &[Role] = &[Role::Bank, Role::Auditor];
const BANK_PARTNER: &[Role] = &[Role::Bank, Role::Partner];

/// The API.
pub const ROUTES: &[Route] = &[
    Route {
        method: "GET",
        path: "/v1/health",
        roles: &[],
    },
    Route {
        method: "GET",
        path: "/v1/openapi.json",
        roles: &[],
    },
    Route {
        method: "GET",
        path: "/v1/room",
        roles: ALL,
    },
    Route {
        method: "GET",
        path: "/v1/datasets",
        roles: ALL,
    },
    Route {
        method: "PUT",
        path: "/v1/datasets",
        roles: BANK,
    },
    Route {
        method: "GET",
        path: "/v1/datasets/{name}",
        roles: ALL,
    },
    Route {
        method: "GET",
        path: "/v1/policies",
        roles: ALL,
    },
    Route {
        method: "POST",
        path: "/v1/sql/explain",
        roles: PARTNER,
    },
    Route {
        method: "PUT",
        path: "/v1/policies",
        roles: BANK,
    },
    Route {
        method: "POST",
        path: "/v1/audience-lists",
        roles: PARTNER,
    },
    Route {
        method: "GET",
        path: "/v1/modules",
        roles: BANK_PARTNER,
    },
    Route {
        method: "POST",
        path: "/v1/modules",
        roles: PARTNER,
    },
    Route {
        method: "GET",
        path: "/v1/modules/{sha256}",
        roles: BANK_PARTNER,
    },
    Route {
        method: "POST",
        path: "/v1/modules/{sha256}/decision",
        roles: BANK,
    },
    Route {
        method: "GET",
        path: "/v1/jobs",
        roles: BANK_PARTNER,
    },
    Route {
        method: "POST",
        path: "/v1/jobs",
        roles: PARTNER,
    },
    Route {
        method: "POST",
        path: "/v1/jobs/preview",
        roles: PARTNER,
    },
    Route {
        method: "GET",
        path: "/v1/jobs/{id}",
        roles: BANK_PARTNER,
    },
    Route {
        method: "POST",
        path: "/v1/jobs/{id}/decision",
        roles: BANK,
    },
    Route {
        method: "GET",
        path: "/v1/budgets",
        roles: ALL,
    },
    Route {
        method: "GET",
        path: "/v1/audit/entries",
        roles: BANK_AUDITOR,
    },
    Route {
        method: "GET",
        path: "/v1/audit/checkpoint",
        roles: ALL,
    },
    Route {
        method: "GET",
        path: "/v1/audit/proof",
        roles: ALL,
    },
];

/// The route for a method and matched path template.
pub fn find(method: &str, path: &str) -> Option<&'static Route> {
    ROUTES.iter().find(|r| r.method == method && r.path == path)
}
