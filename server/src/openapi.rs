//! The OpenAPI document, generated: each handler declares its path, parameters, body and
//! success answer (`#[utoipa::path]` in handlers.rs), the shapes come from the API's shared types
//! (`strongroom-api`, the same ones the server serializes), and the answers every route shares
//! are added from the route table: the roles that may call it, the bearer token and its 401/403/429 for a route with roles,
//! 400/413/415/422 for one with a body, 400 for a bad path segment or query. Served at
//! `/v1/openapi.json`; the copy in the repository, `server/openapi.json`, is checked against it
//! by a test (`STRONGROOM_BLESS=1` rewrites the copy).

use std::sync::OnceLock;

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, Ref, ServerBuilder};
use utoipa::{Modify, OpenApi};

use super::handlers;
use super::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Strongroom",
        description = "The room as a service. See docs/api.md for the roles, the authorization matrix and the error codes.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        handlers::health,
        handlers::openapi,
        handlers::room,
        handlers::list_datasets,
        handlers::upload_dataset,
        handlers::get_dataset,
        handlers::list_policies,
        handlers::set_policy,
        handlers::upload_audience,
        handlers::list_modules,
        handlers::upload_module,
        handlers::get_module,
        handlers::decide_module,
        handlers::list_jobs,
        handlers::submit_job,
        handlers::explain_sql,
        handlers::preview_job,
        handlers::get_job,
        handlers::decide_job,
        handlers::budgets,
        handlers::audit_entries,
        handlers::audit_checkpoint,
        handlers::audit_proof,
    ),
    components(schemas(strongroom_api::Problem)),
    modifiers(&SharedAnswers),
)]
struct Api;

/// The answers every route of a kind shares, from the route table.
struct SharedAnswers;

/// An `application/problem+json` answer.
fn problem(description: &str) -> utoipa::openapi::RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/problem+json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
        .into()
}

fn add(op: &mut Operation, status: &str, description: &str) {
    op.responses
        .responses
        .entry(status.to_string())
        .or_insert_with(|| problem(description));
}

impl Modify for SharedAnswers {
    fn modify(&self, doc: &mut Document) {
        doc.servers = Some(vec![
            ServerBuilder::new().url("http://127.0.0.1:8443").build(),
        ]);
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
            );
        for (path, item) in doc.paths.paths.iter_mut() {
            let operations = [
                ("GET", &mut item.get),
                ("PUT", &mut item.put),
                ("POST", &mut item.post),
                ("DELETE", &mut item.delete),
                ("PATCH", &mut item.patch),
            ];
            for (method, op) in operations {
                let Some(op) = op.as_mut() else { continue };
                // A route the table lacks is refused for everyone; the document test finds it.
                let Some(route) = routes::find(method, path) else {
                    continue;
                };
                // Grouped by what they are about: datasets, jobs, audit...
                let tag = path.split('/').nth(2).unwrap_or("room").to_string();
                op.tags = Some(vec![tag]);
                let roles: Vec<&str> = route.roles.iter().map(|r| r.as_str()).collect();
                let stated = if roles.is_empty() {
                    "Roles: public (no token)".to_string()
                } else {
                    format!("Roles: {}", roles.join(", "))
                };
                op.description = Some(match op.description.take() {
                    Some(text) => format!("{text}\n\n{stated}"),
                    None => stated,
                });
                if route.roles.is_empty() {
                    op.security = Some(Vec::new());
                } else {
                    op.security = Some(vec![SecurityRequirement::new("bearer", [""; 0])]);
                    add(op, "401", "No, wrong or revoked token");
                    add(op, "403", "Role not allowed");
                    add(op, "429", "Rate limited or queue full");
                }
                if let Some(body) = op.request_body.as_mut() {
                    // A sealed file or a module: bytes, not an array of numbers.
                    if let Some(bytes) = body.content.get_mut("application/octet-stream") {
                        bytes.schema = Some(
                            ObjectBuilder::new()
                                .schema_type(Type::String)
                                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
                                .into(),
                        );
                    }
                    let json = body.content.contains_key("application/json");
                    add(op, "400", "Malformed request");
                    add(op, "413", "Too large");
                    add(op, "422", "Refused content");
                    if json {
                        add(op, "415", "Unsupported media type");
                    }
                }
                let params = op.parameters.as_deref().unwrap_or_default();
                let in_path = params.iter().any(|p| p.parameter_in == ParameterIn::Path);
                let in_query = params.iter().any(|p| p.parameter_in == ParameterIn::Query);
                if in_path {
                    add(
                        op,
                        "400",
                        "A path segment is not valid percent-encoded UTF-8.",
                    );
                }
                if in_query {
                    add(op, "400", "Malformed request");
                }
            }
        }
    }
}

/// The document as served: pretty JSON, generated once.
pub fn document() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut text = Api::openapi()
            .to_pretty_json()
            .expect("the OpenAPI document serializes");
        text.push('\n');
        text
    })
}
