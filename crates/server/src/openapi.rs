//! The OpenAPI document, generated from the handlers' annotations. `docs/openapi.yaml` is
//! this document, checked in; a test asserts that they are equal.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::ErrorBody;
use crate::routes::{
    Accepted, EmptyBody, Health, Listed, MoveBody, RestoreBody, SeedNodeBody, SeedOk, SeedServiceBody,
    UpdateBody,
};

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

#[derive(OpenApi)]
#[openapi(
    info(title = "dockhand-server", description = "Maintenance jobs for a Docker swarm: clean, backup, update, restore."),
    paths(
        crate::routes::clean_node,
        crate::routes::backup_node,
        crate::routes::restore_node,
        crate::routes::move_volume,
        crate::routes::clean_service,
        crate::routes::backup_service,
        crate::routes::update_service,
        crate::routes::restore_service,
        crate::routes::get_job,
        crate::routes::list_jobs,
        crate::routes::job_events,
        crate::routes::list_services,
        crate::routes::list_nodes,
        crate::status::service_status,
        crate::status::node_status,
        crate::status::unused_volumes,
        crate::routes::seed_update,
        crate::routes::seed_clean_service,
        crate::routes::seed_backup_service,
        crate::routes::seed_clean_node,
        crate::routes::healthz,
        crate::routes::readyz,
        crate::routes::metrics,
        crate::routes::openapi,
    ),
    components(schemas(
        ErrorBody, Accepted, SeedOk, Listed, Health, UpdateBody, RestoreBody, MoveBody, EmptyBody, SeedServiceBody,
        SeedNodeBody, crate::status::ServiceStatus, crate::status::NodeStatus, crate::status::LastJob,
        crate::status::UnusedVolumes
    )),
    modifiers(&Bearer)
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
