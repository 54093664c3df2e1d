//! The scheduler's settings: the `schedule:` section of the configuration file, the seed's
//! `SWARM_UTILS_CRON_EXPR` and `SWARM_UTILS_IS_CRON_*` mapped onto it, and
//! `DOCKHAND_SCHEDULE_ENABLED`.

use dockhand_host::{ConfigError, ConfigFile, Environment};
use dockhand_policy::{CronExpr, Defaults, Timing, Tz};
use serde::Deserialize;

use super::{SCHEDULED_ACTIONS, SEED_CRON};
use crate::job::Action;

/// When cron runs each action, and in which time zone its expressions are read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Schedule {
    /// Per action (in [`SCHEDULED_ACTIONS`] order): the setting and what set it.
    entries: [(Action, Timing, String); 5],
    /// `schedule.timezone` (default UTC).
    pub timezone: Tz,
    /// `schedule.enabled` (`DOCKHAND_SCHEDULE_ENABLED`): `false` runs nothing by cron,
    /// target labels included.
    pub enabled: bool,
    /// `schedule.min_interval` (1 min): the shortest gap a target's schedule label may
    /// ask for; a label below it is an error diagnostic and runs nothing
    /// ([`Defaults::label_min_interval`] carries it to the label parser).
    pub min_interval: std::time::Duration,
}

impl Default for Schedule {
    /// The seed's: every action at `0 0 3 * * *`, UTC; watch mode's updates off (the seed
    /// has none).
    fn default() -> Self {
        let seed = |action| match CronExpr::parse(SEED_CRON) {
            Ok(cron) if action != Action::UpdateService => Timing::Cron(cron),
            _ => Timing::Off,
        };
        let source = |action| match action {
            Action::UpdateService => "the default: off".to_owned(),
            _ => format!("the seed's default {SEED_CRON}"),
        };
        Self {
            entries: SCHEDULED_ACTIONS.map(|a| (a, seed(a), source(a))),
            timezone: Tz::UTC,
            enabled: true,
            min_interval: Defaults::default().label_min_interval,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawSchedule {
    clean_node: Option<RawTiming>,
    clean_service: Option<RawTiming>,
    backup_service: Option<RawTiming>,
    backup_node: Option<RawTiming>,
    update_service: Option<RawTiming>,
    timezone: Option<String>,
    enabled: Option<bool>,
    #[serde(rename = "min_interval", alias = "min-interval")]
    min_interval: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawTiming {
    Text(String),
    Switch(bool),
}

impl Schedule {
    /// The setting for `action` and what set it (`schedule.clean-node`, a variable, the
    /// seed's default); `None` for an action cron does not run.
    pub fn timing(&self, action: Action) -> Option<(&Timing, &str)> {
        self.entries.iter().find(|(a, _, _)| *a == action).map(|(_, t, s)| (t, s.as_str()))
    }

    /// Sets `action`'s timing.
    pub fn with(mut self, action: Action, timing: Timing, source: impl Into<String>) -> Self {
        if let Some(entry) = self.entries.iter_mut().find(|(a, _, _)| *a == action) {
            entry.1 = timing;
            entry.2 = source.into();
        }
        self
    }

    /// The seed's defaults, then its variables, then the file's `schedule` section (the
    /// file is the more specific: it wins).
    pub fn load(file: &ConfigFile, env: &Environment) -> Result<Self, ConfigError> {
        let mut schedule = Self::default();
        let env_error = |key: &str, detail: String| ConfigError::environment(key, detail);
        if let Some(text) = env.get("SWARM_UTILS_CRON_EXPR").filter(|t| !t.trim().is_empty()) {
            let cron =
                CronExpr::parse(text).map_err(|e| env_error("SWARM_UTILS_CRON_EXPR", e.to_string()))?;
            // The seed's expression is for its actions: watch mode is dockhand's own.
            for action in SCHEDULED_ACTIONS.into_iter().filter(|a| *a != Action::UpdateService) {
                schedule = schedule.with(action, Timing::Cron(cron.clone()), "SWARM_UTILS_CRON_EXPR");
            }
        }
        for (action, var) in [
            (Action::BackupService, "SWARM_UTILS_IS_CRON_BACKUP_SERVICE"),
            (Action::CleanService, "SWARM_UTILS_IS_CRON_CLEAN_SERVICE"),
            (Action::CleanNode, "SWARM_UTILS_IS_CRON_CLEAN_NODE"),
        ] {
            let Some(value) = env.get(var) else { continue };
            match value.trim().to_ascii_lowercase().as_str() {
                "true" => {}
                "false" => schedule = schedule.with(action, Timing::Off, var),
                _ => return Err(env_error(var, format!("{value:?}: expected true or false"))),
            }
        }
        let origin = file.origin().to_string();
        let key_error = |key: &str, detail: String| ConfigError::new(origin.clone(), key, detail);
        let raw = match file.get("schedule") {
            None => RawSchedule::default(),
            Some(value) => {
                value.deserialize::<RawSchedule>().map_err(|e| key_error("schedule", e.kind.to_string()))?
            }
        };
        for (action, raw) in [
            (Action::CleanNode, raw.clean_node),
            (Action::CleanService, raw.clean_service),
            (Action::BackupService, raw.backup_service),
            (Action::BackupNode, raw.backup_node),
            (Action::UpdateService, raw.update_service),
        ] {
            let key = format!("schedule.{}", action.as_str());
            let timing = match raw {
                None => continue,
                Some(RawTiming::Switch(false)) => Timing::Off,
                Some(RawTiming::Switch(true)) => {
                    return Err(key_error(
                        &key,
                        "true is not a cron expression: write one, or off".to_owned(),
                    ));
                }
                Some(RawTiming::Text(text)) => {
                    Timing::parse(&text).map_err(|e| key_error(&key, e.to_string()))?
                }
            };
            schedule = schedule.with(action, timing, key);
        }
        schedule.enabled = raw.enabled.unwrap_or(true);
        if let Some(value) = env.get("DOCKHAND_SCHEDULE_ENABLED") {
            schedule.enabled = match value.trim().to_ascii_lowercase().as_str() {
                "true" => true,
                "false" => false,
                _ => {
                    return Err(env_error(
                        "DOCKHAND_SCHEDULE_ENABLED",
                        format!("{value:?}: expected true or false"),
                    ));
                }
            };
        }
        if let Some(text) = raw.min_interval.as_deref() {
            let key = "schedule.min_interval";
            schedule.min_interval = dockhand_policy::parse_go_duration(text)
                .map_err(|e| key_error(key, format!("{text:?}: {e}")))?;
            if schedule.min_interval.is_zero() {
                return Err(key_error(
                    key,
                    "0 would let a label run a job every second: give a duration".into(),
                ));
            }
        }
        if let Some(zone) = raw.timezone.as_deref().filter(|z| !z.trim().is_empty()) {
            schedule.timezone = dockhand_policy::parse_zone(zone)
                .map_err(|e| key_error("schedule.timezone", e.to_string()))?;
        }
        Ok(schedule)
    }
}
