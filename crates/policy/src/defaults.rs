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
    /// `schedule.min_interval` (1 min): the shortest gap a target's `clean.schedule` or
    /// `backup.schedule` label may ask for. Not a seed variable: the configuration sets it.
    pub label_min_interval: Duration,
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
            label_min_interval: Duration::from_secs(60),
        }
    }
}

/// A `SWARM_UTILS_*` variable that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("environment variable {name}={value:?}: {problem}")]
#[non_exhaustive]
pub struct DefaultsError {
    /// The variable.
    pub name: String,
    /// Its value.
    pub value: String,
    /// What is wrong.
    pub problem: &'static str,
}

impl Defaults {
    /// The seed's defaults, overridden by its `SWARM_UTILS_*` variables as `lookup` finds
    /// them (the process environment, in a front-end): an operator who set them for the
    /// seed's tool keeps them. Timeouts are milliseconds as in the seed (`600_000`, the
    /// underscores allowed); switches are `true` or `false`. Pure: `lookup` is the only input.
    pub fn from_vars(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, DefaultsError> {
        let mut d = Self::default();
        let error = |name: &str, value: &str, problem| DefaultsError {
            name: name.to_owned(),
            value: value.to_owned(),
            problem,
        };
        let flag = |name: &str, slot: &mut bool| -> Result<(), DefaultsError> {
            if let Some(value) = lookup(name) {
                *slot = match value.trim() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(error(name, &value, "not true or false")),
                };
            }
            Ok(())
        };
        flag("SWARM_UTILS_IS_CRON_BACKUP_SERVICE", &mut d.cron_backup_service)?;
        flag("SWARM_UTILS_IS_CRON_CLEAN_SERVICE", &mut d.cron_clean_service)?;
        flag("SWARM_UTILS_IS_CRON_CLEAN_NODE", &mut d.cron_clean_node)?;
        let text = |name: &str, slot: &mut String| -> Result<(), DefaultsError> {
            if let Some(value) = lookup(name) {
                if value.trim().is_empty() {
                    return Err(error(name, &value, "empty"));
                }
                *slot = value.trim().to_owned();
            }
            Ok(())
        };
        text("SWARM_UTILS_CRON_EXPR", &mut d.cron_expr)?;
        text("SWARM_UTILS_BACKUP_SERVICE_EXEC_SHELL", &mut d.backup_exec_shell)?;
        text("SWARM_UTILS_CLEAN_SERVICE_EXEC_SHELL", &mut d.clean_exec_shell)?;
        let millis = |name: &str, slot: &mut Duration| -> Result<(), DefaultsError> {
            if let Some(value) = lookup(name) {
                let digits: String = value.trim().chars().filter(|c| *c != '_').collect();
                let ms = digits
                    .parse::<u64>()
                    .map_err(|_| error(name, &value, "not a whole number of milliseconds"))?;
                if ms == 0 {
                    return Err(error(name, &value, "a timeout of 0 ms"));
                }
                *slot = Duration::from_millis(ms).min(crate::MAX_TIMEOUT);
            }
            Ok(())
        };
        millis("SWARM_UTILS_BACKUP_SERVICE_EXEC_TIMEOUT", &mut d.backup_exec_timeout)?;
        millis("SWARM_UTILS_BACKUP_SERVICE_STOP_TIMEOUT", &mut d.backup_stop_timeout)?;
        millis("SWARM_UTILS_BACKUP_SERVICE_VOLUME_LIST_UPLOAD_TIMEOUT", &mut d.backup_upload_timeout)?;
        millis("SWARM_UTILS_BACKUP_SERVICE_START_TIMEOUT", &mut d.backup_start_timeout)?;
        millis("SWARM_UTILS_CLEAN_SERVICE_EXEC_TIMEOUT", &mut d.clean_exec_timeout)?;
        millis("SWARM_UTILS_UPDATE_SERVICE_TIMEOUT", &mut d.update_timeout)?;
        millis("SWARM_UTILS_CLEAN_NODE_IMAGE_TIMEOUT", &mut d.clean_node_image_timeout)?;
        millis("SWARM_UTILS_CLEAN_NODE_BUILDER_TIMEOUT", &mut d.clean_node_builder_timeout)?;
        millis("SWARM_UTILS_CLEAN_NODE_CONTAINER_TIMEOUT", &mut d.clean_node_container_timeout)?;
        millis("SWARM_UTILS_PENDING_SERVICE_TIMEOUT", &mut d.pending_timeout)?;
        millis("SWARM_UTILS_LOCK_TIMEOUT", &mut d.lock_timeout)?;
        millis("SWARM_UTILS_EXTRA_TIMEOUT", &mut d.extra_timeout)?;
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(pairs: &[(&str, &str)]) -> Result<Defaults, DefaultsError> {
        let vars: std::collections::BTreeMap<String, String> =
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Defaults::from_vars(|name| vars.get(name).cloned())
    }

    #[test]
    fn the_seeds_variables_override_the_defaults() {
        assert_eq!(from(&[]).unwrap(), Defaults::default());
        let d = from(&[
            ("SWARM_UTILS_PENDING_SERVICE_TIMEOUT", "5_000"),
            ("SWARM_UTILS_IS_CRON_CLEAN_NODE", "false"),
            ("SWARM_UTILS_CLEAN_SERVICE_EXEC_SHELL", "/bin/bash"),
            ("SWARM_UTILS_CRON_EXPR", "0 30 2 * * *"),
        ])
        .unwrap();
        assert_eq!(d.pending_timeout, Duration::from_secs(5));
        assert!(!d.cron_clean_node && d.cron_clean_service);
        assert_eq!(d.clean_exec_shell, "/bin/bash");
        assert_eq!(d.cron_expr, "0 30 2 * * *");
        let err = from(&[("SWARM_UTILS_LOCK_TIMEOUT", "10s")]).unwrap_err();
        assert_eq!(err.name, "SWARM_UTILS_LOCK_TIMEOUT");
        assert!(err.to_string().contains("\"10s\"") && err.to_string().contains("milliseconds"), "{err}");
        assert!(from(&[("SWARM_UTILS_IS_CRON_BACKUP_SERVICE", "yes")]).is_err());
        assert!(from(&[("SWARM_UTILS_EXTRA_TIMEOUT", "0")]).is_err());
    }
}
