//! The OpenAPI document, generated from the handlers' annotations. `docs/openapi.yaml` is
//! this document, checked in; a test asserts that they are equal.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::ErrorBody;
use crate::routes::answer::{Accepted, Health, Listed, SeedOk};
use crate::routes::input::{EmptyBody, MoveBody, RestoreBody, SeedNodeBody, SeedServiceBody, UpdateBody};
use axum::http::header;
use axum::response::{IntoResponse, Response};

/// The bearer scheme: an admin token, a target's token, or a CI identity token.
struct Bearer;

impl Modify for Bearer {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An admin token, the target's <action>.token, or a CI identity token (a JWT)",
                    ))
                    .build(),
            ),
        );
    }
}

/// Every response says what it means (OpenAPI requires a description): the annotations give
/// one where it is particular to a route, the status's common meaning fills in the rest.
struct Described;

/// What a status means on every route of this API.
fn common_meaning(status: &str) -> &'static str {
    match status {
        "200" => "done: what was asked",
        "202" => "the job holds its target's lock and runs",
        "400" => "bad_request: the body is not JSON, or a query value has the wrong type",
        "401" => "unauthorized: no credential, or a CI identity token that does not verify",
        "403" => "forbidden: not allowed; or refused: the target's labels refuse the action (with the job)",
        "404" => "not_found: no such target or job",
        "405" => "method_not_allowed: a known route, another method",
        "408" => "timeout: the body did not arrive in time",
        "409" => "busy: another job holds the target (`job.id`), after the lock wait",
        "413" => "too_large: a body over 64 KiB",
        "422" => "invalid_field: a field or path value the API does not take, naming it",
        "429" => "throttled, queue_full or too_many_streams, with `Retry-After`",
        "500" => "job_failed: the job failed, with the job",
        "503" => "engine_unavailable, cancelled, shutting_down or store_unavailable",
        _ => "see docs/api.md",
    }
}

impl Modify for Described {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        for item in doc.paths.paths.values_mut() {
            let operations =
                [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
            for operation in operations.into_iter().flatten() {
                for (status, response) in &mut operation.responses.responses {
                    if let utoipa::openapi::RefOr::T(response) = response {
                        if response.description.is_empty() {
                            common_meaning(status).clone_into(&mut response.description);
                        }
                    }
                }
            }
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "dockhand-server", description = "Maintenance jobs for a Docker swarm: clean, backup, update, restore."),
    paths(
        crate::routes::v1::clean_node,
        crate::routes::v1::backup_node,
        crate::routes::v1::restore_node,
        crate::routes::v1::move_volume,
        crate::routes::v1::clean_service,
        crate::routes::v1::backup_service,
        crate::routes::v1::update_service,
        crate::routes::images::update_image,
        crate::routes::v1::restore_service,
        crate::routes::jobs::get_job,
        crate::routes::jobs::list_jobs,
        crate::routes::jobs::job_events,
        crate::routes::listings::list_services,
        crate::routes::listings::list_nodes,
        crate::routes::status::service_status,
        crate::routes::status::node_status,
        crate::routes::status::unused_volumes,
        crate::routes::seed::seed_update,
        crate::routes::seed::seed_clean_service,
        crate::routes::seed::seed_backup_service,
        crate::routes::seed::seed_clean_node,
        crate::routes::ops::healthz,
        crate::routes::ops::readyz,
        crate::routes::ops::metrics,
        crate::openapi::openapi,
    ),
    components(schemas(
        ErrorBody, Accepted, SeedOk, Listed, Health, UpdateBody, RestoreBody, MoveBody, EmptyBody, SeedServiceBody,
        SeedNodeBody, crate::routes::status::ServiceStatus, crate::routes::status::NodeStatus, crate::routes::status::LastJob,
        crate::routes::status::UnusedVolumes, crate::schema::JobSchema, crate::schema::TargetSchema,
        crate::schema::TriggerSchema, crate::schema::StatusSchema, crate::schema::StepSchema,
        crate::routes::images::ImageUpdate, crate::routes::images::ServiceUpdate, crate::routes::status::WatchStatus
    )),
    modifiers(&Bearer, &Described)
)]
struct Doc;

/// The document.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = Doc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}

/// The document as JSON, as `/openapi.json` serves it.
pub fn json() -> String {
    document().to_pretty_json().unwrap_or_default()
}

/// The document as YAML, as `docs/openapi.yaml` holds it.
pub fn yaml() -> String {
    serde_yaml::to_string(&document()).unwrap_or_default()
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "ops", responses((status = 200, body = Object)))]
pub(crate) async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], crate::openapi::json()).into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_checked_in_document_is_the_served_one() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.yaml");
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let file: serde_json::Value = serde_yaml::from_str(&text).unwrap_or_default();
        let served: serde_json::Value = serde_json::from_str(&super::json()).unwrap();
        assert!(
            file == served,
            "{} is not the document the server serves: run `cargo run -p dockhand-server -- --openapi > docs/openapi.yaml` and commit it",
            path.display()
        );
    }
}
