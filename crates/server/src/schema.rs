//! The OpenAPI schema of a job, as the API answers it (`dockhand_jobs::Job` serialized):
//! described here for the document only, since `dockhand-jobs` has no OpenAPI dependency.
//! schemathesis checks every answer against it, and a unit test checks a real job.

#![allow(dead_code)] // Never built: these types only describe the JSON of `dockhand_jobs::Job`.

use utoipa::ToSchema;

/// A job: what it does, to what, who asked, how it went, step by step.
#[derive(ToSchema)]
#[schema(as = Job)]
pub(crate) struct JobSchema {
    /// Sortable and unique: the start time, then randomness.
    id: String,
    /// `clean-node`, `clean-service`, `backup-service`, `backup-node`, `restore`,
    /// `reconcile`, `volume-move`, `update-service`.
    action: String,
    /// What it acts on.
    target: TargetSchema,
    /// What started it.
    trigger: TriggerSchema,
    /// Who asked, described safely: never a secret.
    caller: String,
    /// When it started, in milliseconds since the epoch.
    started_ms: u64,
    /// When it ended; `null` while it runs.
    ended_ms: Option<u64>,
    /// How it ended (`running` while it runs).
    status: StatusSchema,
    /// Its steps, in order.
    steps: Vec<StepSchema>,
    /// For a cron run, the tick it ran for (RFC 3339, UTC).
    #[schema(required = false)]
    scheduled_at: Option<String>,
    /// For update-service, once resolved: the image it deployed or tried, pinned by digest.
    #[schema(required = false)]
    image: Option<String>,
}

/// A node (`id`, `hostname`) or a service (`id`, `name`).
#[derive(ToSchema)]
#[schema(as = JobTarget)]
pub(crate) struct TargetSchema {
    /// `node` or `service`.
    kind: String,
    /// Its ID.
    id: String,
    /// A node's hostname.
    #[schema(required = false)]
    hostname: Option<String>,
    /// A service's name.
    #[schema(required = false)]
    name: Option<String>,
}

/// What started a job.
#[derive(ToSchema)]
#[schema(as = JobTrigger)]
#[allow(clippy::enum_variant_names)]
#[schema(rename_all = "lowercase")]
pub(crate) enum TriggerSchema {
    Cli,
    Api,
    Cron,
}

/// How a job or a step went.
#[derive(ToSchema)]
#[schema(as = JobStatus, rename_all = "lowercase")]
pub(crate) enum StatusSchema {
    Running,
    Succeeded,
    Failed,
    Cancelled,
    Refused,
    Busy,
    Skipped,
    Interrupted,
    Available,
}

/// One step of a job.
#[derive(ToSchema)]
#[schema(as = JobStep)]
pub(crate) struct StepSchema {
    /// `container-prune`, `exec`, `stop`, `upload`, `start`, `retention`, `verify`,
    /// `restore`, `lock`, `policy`, ...
    kind: String,
    /// The node it ran on.
    node: Option<String>,
    /// The task it ran in.
    task: Option<String>,
    /// The container it ran in.
    container: Option<String>,
    /// When it started, in milliseconds since the epoch.
    started_ms: u64,
    /// How long it took.
    duration_ms: u64,
    /// How it went.
    status: StatusSchema,
    /// A command's exit code.
    exit_code: Option<i64>,
    /// The end of what it printed, masked.
    output_tail: Option<String>,
    /// What a prune freed.
    reclaimed_bytes: Option<u64>,
    /// Why it failed or was skipped.
    error: Option<String>,
    /// The archive it wrote or read.
    #[schema(required = false)]
    object: Option<String>,
    /// The archive's size.
    #[schema(required = false)]
    bytes: Option<u64>,
    /// How the archive's bytes travelled (`channel`, `exec`, `network`).
    #[schema(required = false)]
    via: Option<String>,
    /// The storage target an upload wrote to, by name (a backup to several
    /// targets has an upload step per volume and target).
    #[schema(required = false)]
    storage: Option<String>,
}

#[cfg(test)]
mod tests {
    use dockhand_jobs::{Action, Job, Status, Step, Target, Trigger};

    /// Every field a real job and its steps serialize is described, and every field the
    /// document requires is there: the schema and `dockhand_jobs::Job` cannot drift apart.
    #[test]
    fn a_real_job_has_exactly_the_described_fields() {
        let doc: serde_json::Value = serde_json::from_str(&crate::openapi::json()).unwrap();
        let schemas = &doc["components"]["schemas"];
        let now = std::time::SystemTime::now();
        let target = Target::Service { id: "s1".into(), name: "web".into() };
        let mut job = Job::start(Action::BackupService, target, Trigger::Api, "admin#1", now);
        let mut step = Step::start("upload", now);
        step.node = Some("node1".into());
        step.object = Some("web/node1_data_20261128T083803Z.tar.zst".into());
        step.bytes = Some(10);
        step.via = Some("channel".into());
        step.storage = Some("offsite".into());
        step.finish(Status::Succeeded, now, None);
        job.steps.push(step);
        job.scheduled_at = Some("2026-11-28T08:38:00Z".into());
        job.finish(now, Some(Status::Succeeded));
        let json = serde_json::to_value(&job).unwrap();
        let fits = |value: &serde_json::Value, schema: &serde_json::Value, what: &str| {
            let properties = schema["properties"].as_object().unwrap();
            for key in value.as_object().unwrap().keys() {
                assert!(properties.contains_key(key), "{what}.{key} is not in the document");
            }
            for required in schema["required"].as_array().unwrap() {
                assert!(value.get(required.as_str().unwrap()).is_some(), "{what} lacks {required}");
            }
        };
        fits(&json, &schemas["Job"], "Job");
        fits(&json["target"], &schemas["JobTarget"], "Job.target");
        fits(&json["steps"][0], &schemas["JobStep"], "Job.steps[0]");
        for (field, schema) in [("status", "JobStatus"), ("trigger", "JobTrigger")] {
            let allowed = schemas[schema]["enum"].as_array().unwrap();
            assert!(allowed.contains(&json[field]), "{field} {} is not in {schema}", json[field]);
        }
    }
}
