//! Services as the Engine API describes them: the spec dockhand reads, edits and writes
//! back whole (unknown fields kept), its modes, mounts and placement, and the summaries of
//! a listing.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

use super::{ObjectVersion, Other, null_as_empty};

/// A service, as `GET /services/{id}` returns it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[non_exhaustive]
pub struct Service {
    /// The service's ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Its version, for updates.
    pub version: ObjectVersion,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When it was last updated (RFC 3339).
    pub updated_at: String,
    /// What it should be.
    pub spec: ServiceSpec,
    /// What it was before the last update: what a rollback returns to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_spec: Option<ServiceSpec>,
    /// The state of the last update, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_status: Option<UpdateStatus>,
    /// Task counts, when listed with `status=true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_status: Option<ServiceStatus>,
}

/// A service's desired state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[non_exhaustive]
pub struct ServiceSpec {
    /// The service's name, such as `stack_web`.
    pub name: String,
    /// Service labels: dockhand's policy lives here.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// What each task runs.
    pub task_template: TaskSpec,
    /// Replicated or global.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<ServiceMode>,
    /// How the service is reached: a virtual IP (the default) or DNS round robin.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_spec: Option<EndpointSpec>,
    #[serde(flatten)]
    pub(crate) other: Other,
}

/// How a service is reached on its networks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[non_exhaustive]
pub struct EndpointSpec {
    /// `vip` or `dnsrr`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mode: String,
    #[serde(flatten)]
    pub(crate) other: Other,
}

/// A network a service's tasks join.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[non_exhaustive]
pub struct NetworkAttachment {
    /// The network's name or ID.
    pub target: String,
    #[serde(flatten)]
    pub(crate) other: Other,
}

impl ServiceSpec {
    /// A replicated service `name` running `image` once.
    ///
    /// ```
    /// use dockhand_engine::ServiceSpec;
    ///
    /// let spec = ServiceSpec::new("web", "nginx:1.27")
    ///     .with_label("dockhand.clean.enable", "true")
    ///     .with_args(["sleep", "infinity"])
    ///     .with_replicas(2);
    /// assert_eq!(spec.replicas(), Some(2));
    /// ```
    pub fn new(name: impl Into<String>, image: impl Into<String>) -> Self {
        let mut spec = Self { name: name.into(), ..Self::default() };
        spec.task_template.container_spec.image = image.into();
        spec.with_replicas(1)
    }

    /// Adds a service label.
    pub fn with_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Sets the container's arguments (after the image's entrypoint).
    pub fn with_args<S: Into<String>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.task_template.container_spec.args = args.into_iter().map(Into::into).collect();
        self
    }

    /// Makes the service replicated with `replicas` tasks.
    pub fn with_replicas(mut self, replicas: u64) -> Self {
        self.mode = Some(ServiceMode {
            replicated: Some(ReplicatedMode { replicas: Some(replicas) }),
            ..ServiceMode::default()
        });
        self
    }

    /// Makes the service global: one task per eligible node.
    pub fn global(mut self) -> Self {
        self.mode = Some(ServiceMode { global: Some(GlobalMode::default()), ..ServiceMode::default() });
        self
    }

    /// Makes the service a replicated job: `completions` tasks run to completion, one at a
    /// time. Give it [`ServiceSpec::with_restart_condition`] `none` so a failure is final.
    pub fn replicated_job(mut self, completions: u64) -> Self {
        self.mode = Some(ServiceMode {
            replicated_job: Some(ReplicatedJobMode {
                max_concurrent: Some(1),
                total_completions: Some(completions),
            }),
            ..ServiceMode::default()
        });
        self
    }

    /// Makes the service a global job: one task per eligible node, each run to completion.
    pub fn global_job(mut self) -> Self {
        self.mode = Some(ServiceMode { global_job: Some(GlobalMode::default()), ..ServiceMode::default() });
        self
    }

    /// Bind-mounts the node's path `source` at `target`.
    pub fn with_bind(mut self, source: impl Into<String>, target: impl Into<String>) -> Self {
        self.task_template.container_spec.mounts.push(ServiceMount {
            kind: "bind".to_owned(),
            source: source.into(),
            target: target.into(),
            ..ServiceMount::default()
        });
        self
    }

    /// Mounts the named volume at `target`, read-only.
    pub fn with_volume_read_only(mut self, volume: impl Into<String>, target: impl Into<String>) -> Self {
        self = self.with_volume(volume, target);
        if let Some(mount) = self.task_template.container_spec.mounts.last_mut() {
            mount.read_only = true;
        }
        self
    }

    /// Joins the tasks to `network` (a swarm network's name or ID), reached by DNS round
    /// robin: the service's name resolves to its tasks' addresses.
    pub fn with_network_dnsrr(mut self, network: impl Into<String>) -> Self {
        self.task_template
            .networks
            .push(NetworkAttachment { target: network.into(), ..NetworkAttachment::default() });
        self.endpoint_spec = Some(EndpointSpec { mode: "dnsrr".to_owned(), ..EndpointSpec::default() });
        self
    }

    /// Mounts the named volume at `target` (the volume is created if missing).
    pub fn with_volume(mut self, volume: impl Into<String>, target: impl Into<String>) -> Self {
        self.task_template.container_spec.mounts.push(ServiceMount {
            kind: "volume".to_owned(),
            source: volume.into(),
            target: target.into(),
            ..ServiceMount::default()
        });
        self
    }

    /// Sets when tasks restart: `none`, `on-failure` or `any` (the engine's default).
    pub fn with_restart_condition(mut self, condition: impl Into<String>) -> Self {
        self.task_template.restart_policy.get_or_insert_with(RestartPolicy::default).condition =
            condition.into();
        self
    }

    /// Sends the tasks' output to the log driver `name` (such as `json-file`, which
    /// `docker service logs` can read back).
    pub fn with_log_driver(mut self, name: impl Into<String>) -> Self {
        self.task_template.log_driver = Some(LogDriver { name: name.into(), options: BTreeMap::new() });
        self
    }

    /// Pins the tasks with a placement constraint, such as `node.id==abc`.
    pub fn with_constraint(mut self, constraint: impl Into<String>) -> Self {
        self.task_template
            .placement
            .get_or_insert_with(Placement::default)
            .constraints
            .push(constraint.into());
        self
    }

    /// At most `n` tasks on one node (`--replicas-max-per-node`).
    pub fn with_max_replicas_per_node(mut self, n: u64) -> Self {
        let placement = self.task_template.placement.get_or_insert_with(Placement::default);
        placement.other.insert("MaxReplicas".to_owned(), Value::from(n));
        self
    }

    /// The replica count of a replicated service.
    pub fn replicas(&self) -> Option<u64> {
        self.mode.as_ref()?.replicated.as_ref()?.replicas
    }

    /// True for a global service.
    pub fn is_global(&self) -> bool {
        self.mode.as_ref().is_some_and(|m| m.global.is_some())
    }
}

/// What each task of a service runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[non_exhaustive]
pub struct TaskSpec {
    /// The container.
    pub container_spec: ContainerSpec,
    /// Where tasks may run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    /// When the orchestrator restarts a task.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<RestartPolicy>,
    /// Where the tasks' output goes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_driver: Option<LogDriver>,
    /// The networks the tasks join.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<NetworkAttachment>,
    /// A counter whose change recreates the tasks even when nothing else changed
    /// (`docker service update --force`).
    #[serde(skip_serializing_if = "is_zero")]
    pub force_update: u64,
    #[serde(flatten)]
    pub(crate) other: Other,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A task's log driver.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[non_exhaustive]
pub struct LogDriver {
    /// `json-file`, `local`, `journald`, ...
    pub name: String,
    /// The driver's options.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

/// When a task is restarted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[non_exhaustive]
pub struct RestartPolicy {
    /// `none`, `on-failure` or `any`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub condition: String,
    #[serde(flatten)]
    pub(crate) other: Other,
}

/// A task's container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[non_exhaustive]
pub struct ContainerSpec {
    /// The image reference.
    pub image: String,
    /// Container labels.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Replaces the image's entrypoint.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Arguments after the entrypoint.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// `NAME=value` environment entries.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// Volumes and binds.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<ServiceMount>,
    /// The root filesystem is read-only.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    /// Capabilities dropped (`ALL` for every one; API 1.41).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub capability_drop: Vec<String>,
    /// Capabilities added after the drops (API 1.41).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub capability_add: Vec<String>,
    /// Privileges: `NoNewPrivileges` (API 1.46; older engines ignore it), and what else
    /// the engine keeps there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub privileges: Option<Privileges>,
    #[serde(flatten)]
    pub(crate) other: Other,
}

/// A container spec's privileges.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[non_exhaustive]
pub struct Privileges {
    /// No process in the container gains privileges through setuid or file capabilities.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub no_new_privileges: bool,
    #[serde(flatten)]
    pub(crate) other: Other,
}

impl ServiceSpec {
    /// Hardens the container: a read-only root filesystem (with `/tmp` a tmpfs), every
    /// capability dropped but `keep`, and no new privileges.
    pub fn hardened(mut self, keep: &[&str]) -> Self {
        let c = &mut self.task_template.container_spec;
        c.read_only = true;
        c.capability_drop = vec!["ALL".to_owned()];
        c.capability_add = keep.iter().map(|k| (*k).to_owned()).collect();
        c.privileges.get_or_insert_with(Privileges::default).no_new_privileges = true;
        c.mounts.push(ServiceMount {
            kind: "tmpfs".into(),
            target: "/tmp".into(),
            ..ServiceMount::default()
        });
        self
    }
}

/// A mount in a service's container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[non_exhaustive]
pub struct ServiceMount {
    /// `volume`, `bind`, `tmpfs`, ...
    #[serde(rename = "Type")]
    pub kind: String,
    /// The volume's name, or the host path of a bind.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub source: String,
    /// Where it is in the container.
    pub target: String,
    /// Mounted read-only.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    #[serde(flatten)]
    pub(crate) other: Other,
}

/// Placement of a service's tasks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[non_exhaustive]
pub struct Placement {
    /// Constraints such as `node.role==manager`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<String>,
    #[serde(flatten)]
    pub(crate) other: Other,
}

/// A service's scheduling mode.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[non_exhaustive]
pub struct ServiceMode {
    /// Replicated, with a count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicated: Option<ReplicatedMode>,
    /// Global: one task per node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub global: Option<GlobalMode>,
    /// A replicated job (API 1.41): tasks that run to completion, then stop.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicated_job: Option<ReplicatedJobMode>,
    /// A global job (API 1.41): one task per node, each run to completion.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub global_job: Option<GlobalMode>,
    #[serde(flatten)]
    pub(crate) other: Other,
}

/// The replicated-job mode.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[non_exhaustive]
pub struct ReplicatedJobMode {
    /// How many tasks may run at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u64>,
    /// How many tasks must complete.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_completions: Option<u64>,
}

/// The replicated mode.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[non_exhaustive]
pub struct ReplicatedMode {
    /// How many tasks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u64>,
}

/// The global mode (no settings).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct GlobalMode {
    #[serde(flatten)]
    pub(crate) other: Other,
}

/// The state of a service's last update.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[non_exhaustive]
pub struct UpdateStatus {
    /// `updating`, `paused`, `completed`, `rollback_started`, ...
    pub state: String,
    /// When this update (or rollback) started (RFC 3339).
    pub started_at: String,
    /// When it completed, once it has.
    pub completed_at: String,
    /// The engine's explanation.
    pub message: String,
}

/// Task counts of a service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[non_exhaustive]
pub struct ServiceStatus {
    /// Tasks running now.
    pub running_tasks: u64,
    /// Tasks that should run.
    pub desired_tasks: u64,
    /// Tasks completed (jobs).
    pub completed_tasks: u64,
}

/// A service as a listing shows it: what `GET /services` returns, decoded into only the
/// fields a table needs ([`Client::service_summaries`](crate::Client::service_summaries)). Much lighter than [`Service`] on
/// a swarm of thousands of services.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[non_exhaustive]
pub struct ServiceSummary {
    /// The service's ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Its name, image and mode.
    pub spec: SummarySpec,
    /// Task counts.
    pub service_status: Option<ServiceStatus>,
}

/// The listed part of a service's spec.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[non_exhaustive]
pub struct SummarySpec {
    /// The name.
    pub name: String,
    /// The image.
    pub task_template: SummaryTask,
    /// The mode.
    pub mode: SummaryMode,
}

/// The listed part of a service's task template.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[non_exhaustive]
pub struct SummaryTask {
    /// The container's image.
    pub container_spec: SummaryContainer,
}

/// The listed part of a service's container spec.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[non_exhaustive]
pub struct SummaryContainer {
    /// The image reference.
    pub image: String,
}

/// The listed part of a service's mode.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[non_exhaustive]
pub struct SummaryMode {
    /// Replicated, with a count.
    pub replicated: Option<ReplicatedMode>,
    /// Global.
    pub global: Option<GlobalMode>,
}

/// What `POST /services/create` answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[non_exhaustive]
pub struct ServiceCreated {
    /// The new service's ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Warnings, such as an image digest that could not be resolved.
    #[serde(deserialize_with = "null_as_empty")]
    pub warnings: Vec<String>,
}
