//! Nodes and tasks as the Engine API describes them.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::{ObjectVersion, Other};
use crate::swarm::spec::TaskSpec;

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
