//! Swarm objects: services, nodes and tasks.
//!
//! The types carry the fields dockhand reads. Specs also keep every field they do not
//! name, privately, so that a spec read from the engine and sent back (an update) loses
//! nothing a newer engine put in it.

use std::collections::BTreeMap;

use http::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::query::{Filters, query, segment};
use crate::{Client, Error, RegistryAuth};

/// Fields of a spec that dockhand does not name, kept for round-trips.
type Other = Map<String, Value>;

/// An object's version, which an update must quote (optimistic concurrency).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ObjectVersion {
    /// The raft index; u64, as the engine's counter outgrows i64-safe JSON numbers in JS.
    pub index: u64,
}

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
    other: Other,
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
    other: Other,
}

/// A network a service's tasks join.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[non_exhaustive]
pub struct NetworkAttachment {
    /// The network's name or ID.
    pub target: String,
    #[serde(flatten)]
    other: Other,
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
    other: Other,
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
    other: Other,
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
    other: Other,
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
    other: Other,
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
    other: Other,
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
    other: Other,
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
    other: Other,
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
    other: Other,
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
/// fields a table needs ([`Client::service_summaries`]). Much lighter than [`Service`] on
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

pub(crate) fn null_as_empty<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// A swarm node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[non_exhaustive]
pub struct Node {
    /// The node's ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Its version, for updates.
    pub version: ObjectVersion,
    /// What the operator set: name, labels, role, availability.
    pub spec: NodeSpec,
    /// What the node reports about itself.
    pub description: NodeDescription,
    /// Its state as the managers see it.
    pub status: NodeStatus,
    /// Manager details, on managers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manager_status: Option<ManagerStatus>,
}

/// A node's spec.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[non_exhaustive]
pub struct NodeSpec {
    /// An optional name.
    pub name: String,
    /// Node labels: dockhand's node policy lives here.
    pub labels: BTreeMap<String, String>,
    /// `worker` or `manager`.
    pub role: String,
    /// `active`, `pause` or `drain`.
    pub availability: String,
    #[serde(flatten)]
    other: Other,
}

/// What a node reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[non_exhaustive]
pub struct NodeDescription {
    /// Its host name.
    pub hostname: String,
    /// Its engine.
    pub engine: NodeEngine,
}

/// A node's engine.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[non_exhaustive]
pub struct NodeEngine {
    /// The engine's release.
    pub engine_version: String,
}

/// A node's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[non_exhaustive]
pub struct NodeStatus {
    /// `ready`, `down`, `unknown` or `disconnected`.
    pub state: String,
    /// Why, when not ready.
    pub message: String,
    /// Its address.
    pub addr: String,
}

/// A manager's raft state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[non_exhaustive]
pub struct ManagerStatus {
    /// True on the raft leader.
    pub leader: bool,
    /// `reachable` or `unreachable`.
    pub reachability: String,
    /// The raft address.
    pub addr: String,
}

/// A task: one slot of a service on one node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[non_exhaustive]
pub struct Task {
    /// The task's ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// The service it belongs to.
    #[serde(rename = "ServiceID")]
    pub service_id: String,
    /// The node it is assigned to (empty while pending).
    #[serde(rename = "NodeID")]
    pub node_id: String,
    /// Its slot, for replicated services.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slot: Option<u64>,
    /// What it runs.
    pub spec: TaskSpec,
    /// Its current state.
    pub status: TaskStatus,
    /// The state the orchestrator wants: `running`, `shutdown`, ...
    pub desired_state: String,
}

/// A task's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[non_exhaustive]
pub struct TaskStatus {
    /// When it entered this state.
    pub timestamp: String,
    /// `new`, `pending`, `assigned`, `preparing`, `starting`, `running`, `complete`,
    /// `failed`, `shutdown`, `rejected`, `orphaned`, `remove`.
    pub state: String,
    /// The orchestrator's message.
    pub message: String,
    /// The error, for failed or rejected tasks.
    pub err: String,
    /// The container, once there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_status: Option<TaskContainer>,
}

/// A task's container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[non_exhaustive]
pub struct TaskContainer {
    /// The container's ID.
    #[serde(rename = "ContainerID")]
    pub container_id: String,
    /// Its exit code, once it exited.
    pub exit_code: i64,
}

/// A service's log output, chunk by chunk.
pub struct LogStream {
    demux: crate::stream::Demux<crate::body::BodyReader>,
}

impl std::fmt::Debug for LogStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStream").finish_non_exhaustive()
    }
}

impl LogStream {
    /// The next piece of output; `None` at the end (never, when following).
    pub async fn next(&mut self) -> Option<Result<crate::Chunk, Error>> {
        self.demux.next().await
    }
}

/// Checks an ID or name that goes into a path.
fn object(kind: &str, id: &str) -> Result<String, Error> {
    segment(kind, id)
}

fn filtered(filters: &Filters, extra: &[(&str, String)]) -> String {
    let mut pairs: Vec<(&str, String)> = Vec::new();
    if !filters.is_empty() {
        pairs.push(("filters", filters.to_json()));
    }
    pairs.extend(extra.iter().cloned());
    query(&pairs)
}

/// How `update_service` treats credentials and rollbacks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UpdateOptions {
    /// Credentials for pulling the new image.
    pub registry_auth: Option<RegistryAuth>,
    /// Without credentials: reuse those stored with the `spec` (default) or the
    /// `previous-spec`.
    pub registry_auth_from: Option<&'static str>,
    /// Roll back to the previous spec instead (`rollback=previous`); the spec sent is then
    /// the current one, unchanged.
    pub rollback: bool,
}

impl UpdateOptions {
    /// No credentials, no rollback.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends these credentials for pulling the image.
    pub fn with_registry_auth(mut self, auth: RegistryAuth) -> Self {
        self.registry_auth = Some(auth);
        self
    }

    /// Without credentials, reuse those stored with the previous spec.
    pub fn with_auth_from_previous_spec(mut self) -> Self {
        self.registry_auth_from = Some("previous-spec");
        self
    }

    /// Rolls back to the previous spec.
    pub fn rollback(mut self) -> Self {
        self.rollback = true;
        self
    }
}

/// What `POST /services/{id}/update` answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[non_exhaustive]
pub struct ServiceUpdated {
    /// Warnings, such as an image digest that could not be resolved.
    #[serde(deserialize_with = "null_as_empty")]
    pub warnings: Vec<String>,
}

/// Which logs `service_logs` returns.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogsOptions {
    /// Keep streaming new lines (no idle timeout then).
    pub follow: bool,
    /// Include stdout.
    pub stdout: bool,
    /// Include stderr.
    pub stderr: bool,
    /// Only the last N lines of each task (`None`: all).
    pub tail: Option<u64>,
    /// Prefix each line with its RFC 3339 time.
    pub timestamps: bool,
}

impl Default for LogsOptions {
    fn default() -> Self {
        Self { follow: false, stdout: true, stderr: true, tail: None, timestamps: false }
    }
}

impl LogsOptions {
    /// All of stdout and stderr, without following.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps streaming new lines.
    pub fn follow(mut self) -> Self {
        self.follow = true;
        self
    }

    /// Only the last `lines` of each task.
    pub fn tail(mut self, lines: u64) -> Self {
        self.tail = Some(lines);
        self
    }

    /// Prefixes each line with its time.
    pub fn timestamps(mut self) -> Self {
        self.timestamps = true;
        self
    }
}

fn logs_query(options: &LogsOptions) -> String {
    let mut pairs = vec![
        ("follow", options.follow.to_string()),
        ("stdout", options.stdout.to_string()),
        ("stderr", options.stderr.to_string()),
        ("timestamps", options.timestamps.to_string()),
    ];
    if let Some(tail) = options.tail {
        pairs.push(("tail", tail.to_string()));
    }
    query(&pairs)
}

impl Client {
    /// `POST /services/{id}/update?version=N`: replaces the spec. `version` must be the
    /// one just read (`service.version.index`); the engine refuses a stale one.
    pub async fn update_service(
        &self,
        id: &str,
        version: u64,
        spec: &ServiceSpec,
        options: &UpdateOptions,
    ) -> Result<ServiceUpdated, Error> {
        let mut pairs = vec![("version", version.to_string())];
        if let Some(from) = options.registry_auth_from {
            pairs.push(("registryAuthFrom", from.to_owned()));
        }
        if options.rollback {
            pairs.push(("rollback", "previous".to_owned()));
        }
        let path = format!("/services/{}/update{}", object("service", id)?, query(&pairs));
        let body = self.json("service spec", spec)?;
        match &options.registry_auth {
            Some(auth) => {
                let header = auth.header_value();
                self.call_with_header(Method::POST, &path, Some(body), ("x-registry-auth", &header)).await
            }
            None => self.call(Method::POST, &path, Some(body)).await,
        }
    }

    /// Reads the service, lets `change` edit its spec, and updates it with the version just
    /// read. The engine bumps a service's version on its own while an update settles, so
    /// an "update out of sequence" refusal is retried (up to 10 times) with a fresh read.
    /// `change` may refuse with an error, which is returned as is.
    pub async fn modify_service(
        &self,
        id: &str,
        options: &UpdateOptions,
        mut change: impl FnMut(&mut ServiceSpec) -> Result<(), Error>,
    ) -> Result<ServiceUpdated, Error> {
        let mut attempt = 0;
        loop {
            let service = self.service(id).await?;
            let mut spec = service.spec.clone();
            change(&mut spec)?;
            match self.update_service(&service.id, service.version.index, &spec, options).await {
                Err(e) if attempt < 10 && e.to_string().contains("update out of sequence") => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(50 * attempt)).await;
                }
                result => return result,
            }
        }
    }

    /// Sets a replicated service's replica count, keeping the rest of its spec.
    pub async fn scale_service(&self, id: &str, replicas: u64) -> Result<ServiceUpdated, Error> {
        self.modify_service(id, &UpdateOptions::default(), |spec| {
            if spec.replicas().is_none() {
                return Err(Error::InvalidArgument {
                    what: format!("service {id:?}"),
                    detail: "only a replicated service can be scaled".to_owned(),
                });
            }
            *spec = std::mem::take(spec).with_replicas(replicas);
            Ok(())
        })
        .await
    }

    /// `GET /services/{id}/logs`: the tasks' output, demultiplexed as it arrives.
    pub async fn service_logs(&self, id: &str, options: &LogsOptions) -> Result<LogStream, Error> {
        let service = self.service(id).await?;
        let path = format!("/services/{}/logs{}", object("service", id)?, logs_query(options));
        self.logs(&path, &service.spec.task_template, options).await
    }

    /// `GET /tasks/{id}/logs`: one task's output, as [`Client::service_logs`]. An engine
    /// whose log driver keeps nothing it can read (`syslog`, `none`, …) answers an error.
    pub async fn task_logs(&self, id: &str, options: &LogsOptions) -> Result<LogStream, Error> {
        let task = self.task(id).await?;
        let path = format!("/tasks/{}/logs{}", object("task", id)?, logs_query(options));
        self.logs(&path, &task.spec, options).await
    }

    /// `GET /containers/{id}/logs`: a container's output (one made without a TTY), as
    /// [`Client::service_logs`].
    pub async fn container_logs(&self, id: &str, options: &LogsOptions) -> Result<LogStream, Error> {
        let path = format!("/containers/{}/logs{}", object("container", id)?, logs_query(options));
        self.open_logs(&path, false, options).await
    }

    async fn logs(&self, path: &str, spec: &TaskSpec, options: &LogsOptions) -> Result<LogStream, Error> {
        let tty = spec.container_spec.other.get("TTY").and_then(Value::as_bool).unwrap_or(false);
        self.open_logs(path, tty, options).await
    }

    async fn open_logs(&self, path: &str, tty: bool, options: &LogsOptions) -> Result<LogStream, Error> {
        let idle = if options.follow { None } else { self.response_timeout() };
        let (_, body) = self.open_stream(Method::GET, path, None, idle).await?;
        let context = body.context().to_owned();
        Ok(LogStream {
            demux: crate::stream::Demux::new(crate::body::BodyReader::new(body.into_body()), !tty, context),
        })
    }

    /// `GET /services` with task counts, decoded into [`ServiceSummary`]: only what a
    /// listing shows.
    pub async fn service_summaries(&self, filters: &Filters) -> Result<Vec<ServiceSummary>, Error> {
        self.get_json(&format!("/services{}", filtered(filters, &[("status", "true".to_owned())]))).await
    }

    /// `GET /services`, with task counts (`status=true`).
    pub async fn services(&self, filters: &Filters) -> Result<Vec<Service>, Error> {
        self.get_json(&format!("/services{}", filtered(filters, &[("status", "true".to_owned())]))).await
    }

    /// `GET /services/{id}`: by ID, name or unique ID prefix.
    pub async fn service(&self, id: &str) -> Result<Service, Error> {
        self.get_json(&format!("/services/{}", object("service", id)?)).await
    }

    /// `POST /services/create`.
    pub async fn create_service(&self, spec: &ServiceSpec) -> Result<ServiceCreated, Error> {
        let body = self.json("service spec", spec)?;
        self.call(Method::POST, "/services/create", Some(body)).await
    }

    /// [`Client::create_service`], with credentials for pulling its image
    /// (`X-Registry-Auth`; the engine keeps them for the tasks, out of the inspected spec).
    pub async fn create_service_with_auth(
        &self,
        spec: &ServiceSpec,
        auth: &RegistryAuth,
    ) -> Result<ServiceCreated, Error> {
        let body = self.json("service spec", spec)?;
        let header = auth.header_value();
        self.call_with_header(Method::POST, "/services/create", Some(body), ("x-registry-auth", &header))
            .await
    }

    /// `DELETE /services/{id}`.
    pub async fn remove_service(&self, id: &str) -> Result<(), Error> {
        self.call_unit(Method::DELETE, &format!("/services/{}", object("service", id)?), None).await
    }

    /// `GET /nodes`.
    pub async fn nodes(&self, filters: &Filters) -> Result<Vec<Node>, Error> {
        self.get_json(&format!("/nodes{}", filtered(filters, &[]))).await
    }

    /// `POST /nodes/{id}/update?version=N`: replaces a node's spec (labels, availability,
    /// role). `version` must be the one just read (`node.version.index`).
    pub async fn update_node(&self, id: &str, version: u64, spec: &NodeSpec) -> Result<(), Error> {
        let path =
            format!("/nodes/{}/update{}", object("node", id)?, query(&[("version", version.to_string())]));
        let body = self.json("node spec", spec)?;
        self.call_unit(Method::POST, &path, Some(body)).await
    }

    /// `GET /nodes/{id}`: by ID or name.
    pub async fn node(&self, id: &str) -> Result<Node, Error> {
        self.get_json(&format!("/nodes/{}", object("node", id)?)).await
    }

    /// `GET /tasks`, such as with `Filters::new().with("service", "web")`.
    pub async fn tasks(&self, filters: &Filters) -> Result<Vec<Task>, Error> {
        self.get_json(&format!("/tasks{}", filtered(filters, &[]))).await
    }

    /// `GET /tasks/{id}`.
    pub async fn task(&self, id: &str) -> Result<Task, Error> {
        self.get_json(&format!("/tasks/{}", object("task", id)?)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_spec_fields_survive_a_round_trip() {
        let wire = r#"{"Name":"web","Labels":{"a":"b"},"TaskTemplate":{"ContainerSpec":{"Image":"nginx",
            "Isolation":"default","Future":{"x":1}},"Resources":{"Limits":{}},"ForceUpdate":3},
            "Mode":{"Replicated":{"Replicas":2}},"UpdateConfig":{"Parallelism":1},"EndpointSpec":{"Mode":"vip"}}"#;
        let spec: ServiceSpec = serde_json::from_str(wire).unwrap();
        assert_eq!(spec.replicas(), Some(2));
        assert_eq!(spec.task_template.container_spec.image, "nginx");
        let back: Value = serde_json::to_value(&spec).unwrap();
        let original: Value = serde_json::from_str(wire).unwrap();
        assert_eq!(back, original);
    }

    #[test]
    fn modes_and_builders() {
        let spec = ServiceSpec::new("x", "img").global().with_constraint("node.id==abc");
        assert!(spec.is_global() && spec.replicas().is_none());
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(json["Mode"], serde_json::json!({"Global": {}}));
        assert_eq!(json["TaskTemplate"]["Placement"]["Constraints"][0], "node.id==abc");
    }

    #[test]
    fn large_versions_decode_as_u64() {
        let s: Service =
            serde_json::from_str(r#"{"ID":"x","Version":{"Index":18446744073709551615}}"#).unwrap();
        assert_eq!(s.version.index, u64::MAX);
    }

    #[test]
    fn path_segments_are_checked_and_encoded() {
        assert!(object("service", "..").is_err());
        assert!(object("service", "").unwrap_err().to_string().contains("service \"\""));
        assert_eq!(object("service", "a/b").unwrap(), "a%2Fb");
    }
}
