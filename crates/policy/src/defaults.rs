//! Defaults for every timeout, shell and cron toggle: seed 002's `SWARM_UTILS_*` table.

use std::time::Duration;

/// The defaults labels fall back to. `Default` gives seed 002's values.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Defaults {
    /// `SWARM_UTILS_IS_CRON_BACKUP_SERVICE` (true).
    pub cron_backup_service: bool,
    /// `SWARM_UTILS_IS_CRON_CLEAN_SERVICE` (true).
    pub cron_clean_service: bool,
    /// `SWARM_UTILS_IS_CRON_CLEAN_NODE` (true).
    pub cron_clean_node: bool,
    /// `SWARM_UTILS_CRON_EXPR`, with seconds (`0 0 3 * * *`).
    pub cron_expr: String,
    /// `SWARM_UTILS_BACKUP_SERVICE_EXEC_SHELL` (`/bin/sh`).
    pub backup_exec_shell: String,
    /// `SWARM_UTILS_CLEAN_SERVICE_EXEC_SHELL` (`/bin/sh`).
    pub clean_exec_shell: String,
    /// `SWARM_UTILS_BACKUP_SERVICE_EXEC_TIMEOUT` (600 s).
    pub backup_exec_timeout: Duration,
    /// `SWARM_UTILS_BACKUP_SERVICE_STOP_TIMEOUT` (30 s).
    pub backup_stop_timeout: Duration,
    /// `SWARM_UTILS_BACKUP_SERVICE_VOLUME_LIST_UPLOAD_TIMEOUT` (600 s), per volume.
    pub backup_upload_timeout: Duration,
    /// `SWARM_UTILS_BACKUP_SERVICE_START_TIMEOUT` (300 s).
    pub backup_start_timeout: Duration,
    /// `SWARM_UTILS_CLEAN_SERVICE_EXEC_TIMEOUT` (60 s), per task.
    pub clean_exec_timeout: Duration,
    /// `SWARM_UTILS_UPDATE_SERVICE_TIMEOUT` (60 s).
    pub update_timeout: Duration,
    /// `SWARM_UTILS_CLEAN_NODE_IMAGE_TIMEOUT` (60 s).
    pub clean_node_image_timeout: Duration,
    /// `SWARM_UTILS_CLEAN_NODE_BUILDER_TIMEOUT` (60 s).
    pub clean_node_builder_timeout: Duration,
    /// `SWARM_UTILS_CLEAN_NODE_CONTAINER_TIMEOUT` (60 s).
    pub clean_node_container_timeout: Duration,
    /// `SWARM_UTILS_PENDING_SERVICE_TIMEOUT` (20 s): how long a helper service may stay
    /// pending before it counts as failed.
    pub pending_timeout: Duration,
    /// `SWARM_UTILS_LOCK_TIMEOUT` (10 s): how long to wait for a target's lock.
    pub lock_timeout: Duration,
    /// `SWARM_UTILS_EXTRA_TIMEOUT` (10 s): slack for network delays.
    pub extra_timeout: Duration,
}

impl Default for Defaults {
    fn default() -> Self {
        let ms = Duration::from_millis;
        Self {
            cron_backup_service: true,
            cron_clean_service: true,
            cron_clean_node: true,
            cron_expr: "0 0 3 * * *".to_owned(),
            backup_exec_shell: "/bin/sh".to_owned(),
            clean_exec_shell: "/bin/sh".to_owned(),
            backup_exec_timeout: ms(600_000),
            backup_stop_timeout: ms(30_000),
            backup_upload_timeout: ms(600_000),
            backup_start_timeout: ms(300_000),
            clean_exec_timeout: ms(60_000),
            update_timeout: ms(60_000),
            clean_node_image_timeout: ms(60_000),
            clean_node_builder_timeout: ms(60_000),
            clean_node_container_timeout: ms(60_000),
            pending_timeout: ms(20_000),
            lock_timeout: ms(10_000),
            extra_timeout: ms(10_000),
        }
    }
}
