//! The typed policies that labels parse into: what a service's or a node's labels allow
//! each action to do, with its budgets; and a policy written back as labels.

use std::collections::BTreeMap;
use std::time::Duration;

/// clean-service, from `clean.*` labels.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CleanPolicy {
    /// The command run in each task's container (`clean.exec`), through `shell -c`.
    pub exec: Option<String>,
    /// The shell (`clean.exec.shell`).
    pub shell: String,
    /// Per task (`clean.exec.timeout`).
    pub exec_timeout: Duration,
    /// When cron runs it for this service (`clean.schedule`), over the global schedule.
    pub schedule: Option<crate::Timing>,
}

/// Seed-compatible S3 settings in labels (`backup.volume-list-upload.s3.*`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct S3Labels {
    /// Endpoint host.
    pub url: Option<String>,
    /// HTTPS or not.
    pub https: Option<bool>,
    /// Access key.
    pub access_key: Option<String>,
    /// Secret key.
    pub secret_key: Option<String>,
    /// Bucket.
    pub bucket: Option<String>,
    /// Days a backup is kept.
    pub retention_days: Option<u32>,
}

/// backup-service, from `backup.*` labels.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackupPolicy {
    /// Run before the backup (`backup.exec`).
    pub exec: Option<String>,
    /// Its shell (`backup.exec.shell`).
    pub shell: String,
    /// Its timeout (`backup.exec.timeout`).
    pub exec_timeout: Duration,
    /// Scale to 0 during the backup (`backup.stop`), replicated services only.
    pub stop: bool,
    /// `backup.stop.timeout`.
    pub stop_timeout: Duration,
    /// `backup.start.timeout`.
    pub start_timeout: Duration,
    /// Volumes to upload (`backup.volume-list-upload`).
    pub volumes: Vec<String>,
    /// When cron runs it for this service (`backup.schedule`), over the global schedule.
    pub schedule: Option<crate::Timing>,
    /// Per volume (`backup.volume-list-upload.timeout`).
    pub upload_timeout: Duration,
    /// A named storage target (`backup.target`).
    pub target: Option<String>,
    /// Seed-style S3 settings.
    pub s3: S3Labels,
    /// The image a node's `backup.exec` runs in (`backup.exec.image`, node labels only).
    pub exec_image: Option<String>,
    /// A node's `backup.exec` may write to the volumes (`backup.exec.read-write`, node
    /// labels only; default false: they are mounted read-only).
    pub exec_read_write: bool,
}

/// update-service, from `update.*` labels.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UpdatePolicy {
    /// Registry credentials are needed (`update.registry.auth`).
    pub registry_auth: bool,
    /// `update.registry.user`.
    pub registry_user: Option<String>,
    /// `update.registry.password` (accepted, with a warning).
    pub registry_password: Option<String>,
    /// `update.registry.url`.
    pub registry_url: Option<String>,
    /// A named credential (`update.registry`).
    pub registry: Option<String>,
    /// Globs of allowed images (`update.image-allow`).
    pub image_allow: Option<String>,
    /// Run before the update (`update.exec-pre`).
    pub exec_pre: Option<String>,
    /// Run after the update (`update.exec-post`).
    pub exec_post: Option<String>,
    /// The hooks' shell (`update.exec.shell`, default the clean shell).
    pub shell: String,
    /// Each hook's timeout in each task (`update.exec.timeout`, default the clean exec
    /// timeout).
    pub exec_timeout: Duration,
    /// Roll back to the previous spec when the update fails (`update.rollback=auto`, the
    /// default) or leave it to the operator (`never`).
    pub rollback: bool,
    /// `update.timeout`.
    pub timeout: Duration,
    /// What the watch does when the followed tag moves (`update.auto`).
    pub auto: AutoUpdate,
    /// When the watch looks at this service (`update.auto.schedule`), over the global
    /// `schedule.update-service`.
    pub auto_schedule: Option<crate::Timing>,
    /// The tag the watch follows (`update.auto.tag`), instead of the one the service runs.
    pub auto_tag: Option<String>,
    /// Once converged, remove the previous image from the nodes where nothing uses it
    /// (`update.cleanup`).
    pub cleanup: bool,
}

/// `update.auto`: what the watch does when the digest behind the followed tag changes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AutoUpdate {
    /// Nothing (`false`, the default).
    #[default]
    Off,
    /// Update the service to the new digest (`true`).
    Update,
    /// Record and notify that an update is available, and leave the service (`notify`).
    Notify,
}

impl AutoUpdate {
    /// As the label says it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "false",
            Self::Update => "true",
            Self::Notify => "notify",
        }
    }
}

/// What a service's labels allow. An action is `None` unless `<action>.enable=true`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ServicePolicy {
    /// clean-service.
    pub clean: Option<CleanPolicy>,
    /// backup-service.
    pub backup: Option<BackupPolicy>,
    /// update-service.
    pub update: Option<UpdatePolicy>,
}

/// One prune of clean-node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PruneStep {
    /// Run it.
    pub enabled: bool,
    /// Its timeout.
    pub timeout: Duration,
}

/// clean-node, from node labels (seed ideas 3, 5 and 7).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeCleanPolicy {
    /// `clean.container.*`.
    pub container: PruneStep,
    /// `clean.image.*`.
    pub image: PruneStep,
    /// `clean.builder.*`.
    pub builder: PruneStep,
    /// A command run on the node after the prunes (`clean.exec`), in a helper of the image
    /// `clean.exec.image`, through `shell -c`. `None` when it is not set, or set without its
    /// image (an error diagnostic says so).
    pub exec: Option<NodeExec>,
    /// When cron cleans this node (`clean.schedule`), over the global schedule.
    pub schedule: Option<crate::Timing>,
}

/// A node's `clean.exec`: what runs, in which image, with which shell and timeout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeExec {
    /// The command (`clean.exec`).
    pub command: String,
    /// The helper's image (`clean.exec.image`), which holds the shell.
    pub image: String,
    /// The shell (`clean.exec.shell`, default the clean shell).
    pub shell: String,
    /// Its timeout (`clean.exec.timeout`, default the clean exec timeout).
    pub timeout: Duration,
    /// `clean.exec.host=true`: it runs in the host's namespaces (a root container of
    /// the image, with the host's PID namespace, entering the namespaces of the container
    /// runtime's shim by `nsenter`),
    /// for commands that act on the host itself (`journalctl --vacuum-time=7d`).
    pub host: bool,
}

impl ServicePolicy {
    /// The labels that express this policy under `prefix` (such as `dockhand.`): parsing
    /// them gives this policy back. Timeouts are written in Go syntax.
    pub fn to_labels(&self, prefix: &str) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let mut put = |key: &str, value: String| {
            out.insert(format!("{prefix}{key}"), value);
        };
        let go = |d: Duration| crate::format_go_duration(d);
        if let Some(c) = &self.clean {
            put("clean.enable", "true".to_owned());
            if let Some(exec) = &c.exec {
                put("clean.exec", exec.clone());
            }
            put("clean.exec.shell", c.shell.clone());
            put("clean.exec.timeout", go(c.exec_timeout));
            if let Some(timing) = &c.schedule {
                put("clean.schedule", timing.to_string());
            }
        }
        if let Some(b) = &self.backup {
            put("backup.enable", "true".to_owned());
            if let Some(exec) = &b.exec {
                put("backup.exec", exec.clone());
            }
            put("backup.exec.shell", b.shell.clone());
            put("backup.exec.timeout", go(b.exec_timeout));
            put("backup.stop", b.stop.to_string());
            put("backup.stop.timeout", go(b.stop_timeout));
            put("backup.start.timeout", go(b.start_timeout));
            if !b.volumes.is_empty() {
                put("backup.volume-list-upload", b.volumes.join(","));
            }
            put("backup.volume-list-upload.timeout", go(b.upload_timeout));
            if let Some(target) = &b.target {
                put("backup.target", target.clone());
            }
            if let Some(timing) = &b.schedule {
                put("backup.schedule", timing.to_string());
            }
            let s3 = &b.s3;
            for (key, value) in [
                ("url", &s3.url),
                ("access-key", &s3.access_key),
                ("secret-key", &s3.secret_key),
                ("bucket", &s3.bucket),
            ] {
                if let Some(value) = value {
                    put(&format!("backup.volume-list-upload.s3.{key}"), value.clone());
                }
            }
            if let Some(https) = s3.https {
                put("backup.volume-list-upload.s3.https", https.to_string());
            }
            if let Some(days) = s3.retention_days {
                put("backup.volume-list-upload.s3.retention-days", days.to_string());
            }
        }
        if let Some(u) = &self.update {
            put("update.enable", "true".to_owned());
            put("update.registry.auth", u.registry_auth.to_string());
            for (key, value) in [
                ("registry.user", &u.registry_user),
                ("registry.password", &u.registry_password),
                ("registry.url", &u.registry_url),
                ("registry", &u.registry),
                ("image-allow", &u.image_allow),
                ("exec-pre", &u.exec_pre),
                ("exec-post", &u.exec_post),
            ] {
                if let Some(value) = value {
                    put(&format!("update.{key}"), value.clone());
                }
            }
            put("update.exec.shell", u.shell.clone());
            put("update.exec.timeout", go(u.exec_timeout));
            put("update.rollback", if u.rollback { "auto" } else { "never" }.to_owned());
            put("update.timeout", go(u.timeout));
            if u.auto != AutoUpdate::Off {
                put("update.auto", u.auto.as_str().to_owned());
            }
            if let Some(timing) = &u.auto_schedule {
                put("update.auto.schedule", timing.to_string());
            }
            if let Some(tag) = &u.auto_tag {
                put("update.auto.tag", tag.clone());
            }
            if u.cleanup {
                put("update.cleanup", "true".to_owned());
            }
        }
        out
    }
}
