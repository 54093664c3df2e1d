//! Reading labels: the keys each target kind knows, the reader that turns a label map into
//! a policy with a diagnostic for every wrong label (naming its key, value and why, and the
//! known key it was probably meant to be).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::labels::Diagnostic;
use crate::labels::LabelPrefixes;
use crate::labels::MAX_TIMEOUT;
use crate::labels::Severity;
use crate::labels::TargetLabels;
use crate::labels::policy::BackupPolicy;
use crate::labels::policy::CleanPolicy;
use crate::labels::policy::NodeCleanPolicy;
use crate::labels::policy::NodeExec;
use crate::labels::policy::PruneStep;
use crate::labels::policy::S3Labels;
use crate::labels::policy::ServicePolicy;
use crate::labels::policy::{AutoUpdate, UpdatePolicy};
use crate::labels::valid_volume_name;
use crate::{Defaults, parse_go_duration};

pub(crate) const SERVICE_KEYS: &[&str] = &[
    "clean.enable",
    "clean.exec",
    "clean.exec.shell",
    "clean.exec.timeout",
    "clean.token",
    "clean.schedule",
    "backup.enable",
    "backup.schedule",
    "backup.exec",
    "backup.exec.shell",
    "backup.exec.timeout",
    "backup.stop",
    "backup.stop.timeout",
    "backup.start.timeout",
    "backup.volume-list-upload",
    "backup.volume-list-upload.timeout",
    "backup.volume-list-upload.s3.url",
    "backup.volume-list-upload.s3.https",
    "backup.volume-list-upload.s3.access-key",
    "backup.volume-list-upload.s3.secret-key",
    "backup.volume-list-upload.s3.bucket",
    "backup.volume-list-upload.s3.retention-days",
    "backup.target",
    "backup.token",
    // Written by dockhand itself while a backup or restore has the service scaled down.
    "backup.restore-replicas",
    "update.enable",
    "update.registry.auth",
    "update.registry.user",
    "update.registry.password",
    "update.registry.url",
    "update.registry",
    "update.image-allow",
    "update.exec-pre",
    "update.exec-post",
    "update.exec.shell",
    "update.exec.timeout",
    "update.rollback",
    "update.timeout",
    "update.token",
    "update.auto",
    "update.auto.schedule",
    "update.auto.tag",
    "update.cleanup",
];

pub(crate) const NODE_KEYS: &[&str] = &[
    "clean.enable",
    "clean.schedule",
    "clean.token",
    "clean.exec",
    "clean.exec.image",
    "clean.exec.host",
    "clean.exec.shell",
    "clean.exec.timeout",
    "clean.image.enable",
    "clean.image.timeout",
    "clean.builder.enable",
    "clean.builder.timeout",
    "clean.container.enable",
    "clean.container.timeout",
];

pub(crate) const NODE_BACKUP_KEYS: &[&str] = &[
    "backup.enable",
    "backup.schedule",
    "backup.exec",
    "backup.exec.image",
    "backup.exec.read-write",
    "backup.exec.shell",
    "backup.exec.timeout",
    "backup.volume-list-upload",
    "backup.volume-list-upload.timeout",
    "backup.volume-list-upload.s3.retention-days",
    "backup.target",
    "backup.token",
];

/// Labels that carry a secret: accepted for compatibility, flagged with a warning.
pub(crate) const SECRET_KEYS: &[&str] = &[
    "update.registry.password",
    "backup.volume-list-upload.s3.secret-key",
    "backup.volume-list-upload.s3.access-key",
];

/// Reads labels under the configured prefixes, collecting diagnostics.
pub(crate) struct Reader<'a> {
    labels: Vec<(String, &'a str, String)>, // (full key, value, key without prefix)
    diagnostics: Vec<Diagnostic>,
}

impl<'a> Reader<'a> {
    fn new(
        labels: &'a BTreeMap<String, String>,
        prefixes: &LabelPrefixes,
        known: &[&str],
        areas: &[&str],
    ) -> Self {
        let view = TargetLabels::resolve(labels, prefixes);
        let mut reader = Self {
            labels: view
                .iter()
                .map(|(short, full, value)| (full.to_owned(), value, short.to_owned()))
                .collect(),
            diagnostics: Vec::new(),
        };
        for (full, value, short) in &reader.labels {
            let area_known = areas.iter().any(|a| short.starts_with(&format!("{a}.")));
            // `<action>.oidc.<claim>`: any claim name is fine (CI identity bindings).
            let oidc = areas
                .iter()
                .any(|a| short.strip_prefix(&format!("{a}.oidc.")).is_some_and(|c| !c.is_empty()));
            if area_known && !oidc && !known.contains(&short.as_str()) {
                let hint = known
                    .iter()
                    .map(|k| (edit_distance(k, short), *k))
                    .min()
                    .filter(|(d, _)| *d <= 3)
                    .map(|(_, k)| {
                        format!("; did you mean {}{k}?", full.strip_suffix(short.as_str()).unwrap_or(""))
                    })
                    .unwrap_or_default();
                // A mistyped secret label (`...s3.secret_key=AKIA...`) must not print the
                // secret: names that look secret have their values masked (finding 7).
                let lower = short.to_ascii_lowercase();
                let secret_like = ["secret", "password", "passwd", "token", "key", "auth", "credential"]
                    .iter()
                    .any(|word| lower.contains(word));
                let shown = if secret_like {
                    crate::Redactor::new([(*value).to_owned()]).redact(value)
                } else {
                    (*value).to_owned()
                };
                reader.diagnostics.push(Diagnostic {
                    severity: Severity::Error,
                    key: full.clone(),
                    value: shown,
                    message: format!("unknown label{hint}"),
                });
            }
            let token = short.ends_with(".token").then(|| crate::TokenLabel::parse(value));
            if token == Some(crate::TokenLabel::MalformedHash) {
                reader.diagnostics.push(Diagnostic {
                    severity: Severity::Error,
                    key: full.clone(),
                    value: (*value).to_owned(),
                    message: "not a token hash: expected sha256: and 64 hex digits (dockhand token hash \
                              prints one); this label matches no token"
                        .to_owned(),
                });
            }
            if SECRET_KEYS.contains(&short.as_str()) || matches!(token, Some(crate::TokenLabel::Plain(_))) {
                let safer = if short.ends_with(".token") {
                    "store `sha256:<hex>` of the token instead (dockhand token hash)"
                } else {
                    "use a named credential or storage target instead"
                };
                reader.diagnostics.push(Diagnostic {
                    severity: Severity::Warning,
                    key: full.clone(),
                    value: crate::Redactor::new([(*value).to_owned()]).redact(value),
                    message: format!(
                        "a secret in a label is visible to anyone who can inspect the service; {safer}"
                    ),
                });
            }
        }
        reader
    }

    fn get(&self, short: &str) -> Option<(&str, &'a str)> {
        self.labels.iter().find(|(_, _, s)| s == short).map(|(full, value, _)| (full.as_str(), *value))
    }

    fn error(&mut self, key: &str, value: &str, message: String) {
        self.diagnose(Severity::Error, key, value, message);
    }

    fn warning(&mut self, key: &str, value: &str, message: String) {
        self.diagnose(Severity::Warning, key, value, message);
    }

    fn diagnose(&mut self, severity: Severity, key: &str, value: &str, message: String) {
        self.diagnostics.push(Diagnostic { severity, key: key.to_owned(), value: value.to_owned(), message });
    }

    fn text(&self, short: &str) -> Option<String> {
        self.get(short).map(|(_, v)| v.to_owned()).filter(|v| !v.trim().is_empty())
    }

    fn bool(&mut self, short: &str, default: bool) -> bool {
        let Some((key, value)) = self.get(short).map(|(k, v)| (k.to_owned(), v)) else { return default };
        match value.trim().to_ascii_lowercase().as_str() {
            "true" => true,
            "false" => false,
            _ => {
                self.error(&key, value, "not a bool: expected true or false".to_owned());
                default
            }
        }
    }

    /// `clean.schedule` and `backup.schedule`: `off` or a cron expression that fires at
    /// most once per `min_interval` (R3-11: a label is set by a service's owner, and the
    /// server is shared) and fires at all.
    fn timing(&mut self, short: &str, min_interval: Duration) -> Option<crate::Timing> {
        let (key, value) = self.get(short).map(|(k, v)| (k.to_owned(), v))?;
        match crate::Timing::parse(value) {
            Ok(crate::Timing::Cron(cron)) => match cron.shortest_gap() {
                None => {
                    self.error(&key, value, "never fires: no date matches all its fields".to_owned());
                    None
                }
                Some(gap) if gap < min_interval => {
                    self.error(
                        &key,
                        value,
                        format!(
                            "fires {} apart, more often than a label may ask: once per {} at most \
                             (schedule.min_interval)",
                            crate::format_go_duration(gap),
                            crate::format_go_duration(min_interval)
                        ),
                    );
                    None
                }
                Some(_) => Some(crate::Timing::Cron(cron)),
            },
            Ok(timing) => Some(timing),
            Err(e) => {
                self.error(&key, value, e.to_string());
                None
            }
        }
    }

    /// `update.auto`: `true`, `notify` or `false` (the default).
    fn auto(&mut self, short: &str) -> AutoUpdate {
        let Some((key, value)) = self.get(short).map(|(k, v)| (k.to_owned(), v)) else {
            return AutoUpdate::Off;
        };
        match value.trim().to_ascii_lowercase().as_str() {
            "true" => AutoUpdate::Update,
            "notify" => AutoUpdate::Notify,
            "false" => AutoUpdate::Off,
            _ => {
                self.error(&key, value, "expected true, notify or false".to_owned());
                AutoUpdate::Off
            }
        }
    }

    /// An image tag, as Docker allows it (`1.4`, `stable`).
    fn tag(&mut self, short: &str) -> Option<String> {
        let (key, value) = self.get(short).map(|(k, v)| (k.to_owned(), v))?;
        let tag = value.trim();
        match crate::ImageRef::parse(&format!("tag-check:{tag}")) {
            Ok(_) if !tag.is_empty() => Some(tag.to_owned()),
            _ => {
                self.error(
                    &key,
                    value,
                    "not an image tag: letters, digits, '_', '.' and '-', at most 128, not \
                     starting with '.' or '-'"
                        .to_owned(),
                );
                None
            }
        }
    }

    /// `auto` (the default) or `never`.
    fn rollback(&mut self, short: &str) -> bool {
        let Some((key, value)) = self.get(short).map(|(k, v)| (k.to_owned(), v)) else { return true };
        match value.trim().to_ascii_lowercase().as_str() {
            "auto" => true,
            "never" => false,
            _ => {
                self.error(&key, value, "expected auto or never".to_owned());
                true
            }
        }
    }

    /// A timeout: Go syntax (`90s`, `10m`) or, as seed 002's variables, whole milliseconds.
    fn duration(&mut self, short: &str, default: Duration) -> Duration {
        let Some((key, value)) = self.get(short).map(|(k, v)| (k.to_owned(), v)) else { return default };
        let trimmed = value.trim().replace('_', "");
        let parsed = match trimmed.parse::<u64>() {
            Ok(ms) => Ok(Duration::from_millis(ms)),
            Err(_) => parse_go_duration(&trimmed).map_err(|e| e.to_string()),
        };
        match parsed {
            Ok(d) if d.is_zero() => {
                self.error(&key, value, "a timeout must be more than 0".to_owned());
                default
            }
            Ok(d) if d > MAX_TIMEOUT => {
                self.error(
                    &key,
                    value,
                    format!("a timeout may be at most {}", crate::format_go_duration(MAX_TIMEOUT)),
                );
                default
            }
            Ok(d) => d,
            Err(e) => {
                self.error(&key, value, format!("bad duration: {e}, or whole milliseconds"));
                default
            }
        }
    }
}

/// Parses a service's labels. `global` says whether the service runs in global mode (a
/// global service cannot be stopped for a backup).
pub fn service_policy(
    labels: &BTreeMap<String, String>,
    global: bool,
    defaults: &Defaults,
    prefixes: &LabelPrefixes,
) -> (ServicePolicy, Vec<Diagnostic>) {
    let mut r = Reader::new(labels, prefixes, SERVICE_KEYS, &["clean", "backup", "update"]);
    let clean = r.bool("clean.enable", false).then(|| CleanPolicy {
        exec: r.text("clean.exec"),
        shell: r.text("clean.exec.shell").unwrap_or_else(|| defaults.clean_exec_shell.clone()),
        exec_timeout: r.duration("clean.exec.timeout", defaults.clean_exec_timeout),
        schedule: r.timing("clean.schedule", defaults.label_min_interval),
    });
    let backup = backup_policy(&mut r, global, false, defaults);
    let enabled = r.bool("update.enable", false);
    if !enabled {
        if let Some((key, value)) = r.get("update.auto").map(|(k, v)| (k.to_owned(), v)) {
            r.warning(
                &key,
                value,
                "update.enable is not true: the watch leaves this service alone".to_owned(),
            );
        }
    }
    let update = enabled.then(|| UpdatePolicy {
        registry_auth: r.bool("update.registry.auth", false),
        registry_user: r.text("update.registry.user"),
        registry_password: r.text("update.registry.password"),
        registry_url: r.text("update.registry.url"),
        registry: r.text("update.registry"),
        image_allow: r.text("update.image-allow"),
        exec_pre: r.text("update.exec-pre"),
        exec_post: r.text("update.exec-post"),
        shell: r.text("update.exec.shell").unwrap_or_else(|| defaults.clean_exec_shell.clone()),
        exec_timeout: r.duration("update.exec.timeout", defaults.clean_exec_timeout),
        rollback: r.rollback("update.rollback"),
        timeout: r.duration("update.timeout", defaults.update_timeout),
        auto: r.auto("update.auto"),
        auto_schedule: r.timing("update.auto.schedule", defaults.label_min_interval),
        auto_tag: r.tag("update.auto.tag"),
        cleanup: r.bool("update.cleanup", false),
    });
    (ServicePolicy { clean, backup, update }, r.diagnostics)
}

/// Why a global service with `backup.stop=true` is backed up while it runs.
pub const GLOBAL_NOT_STOPPED: &str = "stop works only on replicated services: this global service is backed up while it runs, as seed 002 does";

/// `backup.*` of a service (`on_node` false) or a node: `None` without `backup.enable=true`.
/// A node has no replicas to stop (`backup.stop` is not one of its labels), and its
/// `backup.exec` runs in a helper of the image `backup.exec.image`, which it then needs.
pub(crate) fn backup_policy(
    r: &mut Reader<'_>,
    global: bool,
    on_node: bool,
    defaults: &Defaults,
) -> Option<BackupPolicy> {
    if !r.bool("backup.enable", false) {
        return None;
    }
    let mut stop = r.bool("backup.stop", false);
    if stop && global {
        // Seed 002 backs a global service up without stopping it; so does dockhand, saying
        // so here (in `plan`) and as a skipped step in the job.
        let (key, value) = r.get("backup.stop").map(|(k, v)| (k.to_owned(), v)).unwrap_or_default();
        r.diagnostics.push(Diagnostic {
            severity: Severity::Warning,
            key,
            value: value.to_owned(),
            message: GLOBAL_NOT_STOPPED.to_owned(),
        });
        stop = false;
    }
    let mut volumes = Vec::new();
    if let Some((key, value)) = r.get("backup.volume-list-upload").map(|(k, v)| (k.to_owned(), v)) {
        for name in value.split(',').map(str::trim) {
            if name.is_empty() {
                r.error(&key, value, "an empty volume name in the list".to_owned());
            } else if !valid_volume_name(name) {
                r.error(
                    &key,
                    value,
                    format!("volume name {name:?} is not a Docker volume name ([a-zA-Z0-9][a-zA-Z0-9_.-]*)"),
                );
            } else if !volumes.iter().any(|v| v == name) {
                volumes.push(name.to_owned());
            }
        }
    }
    let retention = r.get("backup.volume-list-upload.s3.retention-days").map(|(k, v)| (k.to_owned(), v));
    let retention_days = retention.and_then(|(key, value)| match value.trim().parse::<u32>() {
        Ok(days) => Some(days),
        Err(_) => {
            r.error(&key, value, "not a whole number of days".to_owned());
            None
        }
    });
    let https = r
        .get("backup.volume-list-upload.s3.https")
        .is_some()
        .then(|| r.bool("backup.volume-list-upload.s3.https", true));
    let exec_image = r.text("backup.exec.image");
    if on_node
        && exec_image.is_none()
        && let Some((key, value)) = r.get("backup.exec").map(|(k, v)| (k.to_owned(), v))
    {
        let image_key = key.replace("backup.exec", "backup.exec.image");
        r.error(
            &key,
            value,
            format!("a node's backup.exec runs in a helper container: name its image (with the shell) in {image_key}"),
        );
    }
    let exec_read_write = on_node && r.bool("backup.exec.read-write", false);
    Some(BackupPolicy {
        exec: r.text("backup.exec"),
        exec_image,
        exec_read_write,
        shell: r.text("backup.exec.shell").unwrap_or_else(|| defaults.backup_exec_shell.clone()),
        exec_timeout: r.duration("backup.exec.timeout", defaults.backup_exec_timeout),
        stop,
        stop_timeout: r.duration("backup.stop.timeout", defaults.backup_stop_timeout),
        start_timeout: r.duration("backup.start.timeout", defaults.backup_start_timeout),
        volumes,
        schedule: r.timing("backup.schedule", defaults.label_min_interval),
        upload_timeout: r.duration("backup.volume-list-upload.timeout", defaults.backup_upload_timeout),
        target: r.text("backup.target"),
        s3: S3Labels {
            url: r.text("backup.volume-list-upload.s3.url"),
            https,
            access_key: r.text("backup.volume-list-upload.s3.access-key"),
            secret_key: r.text("backup.volume-list-upload.s3.secret-key"),
            bucket: r.text("backup.volume-list-upload.s3.bucket"),
            retention_days,
        },
    })
}

/// Parses a node's `backup.*` labels (seed idea 7): `None` without `backup.enable=true`.
pub fn node_backup_policy(
    labels: &BTreeMap<String, String>,
    defaults: &Defaults,
    prefixes: &LabelPrefixes,
) -> (Option<BackupPolicy>, Vec<Diagnostic>) {
    let mut r = Reader::new(labels, prefixes, NODE_BACKUP_KEYS, &["backup"]);
    let policy = backup_policy(&mut r, false, true, defaults);
    (policy, r.diagnostics)
}

/// Parses a node's labels: `None` when `clean.enable=false` excludes it (a node without labels is cleaned, as in the seed).
pub fn node_policy(
    labels: &BTreeMap<String, String>,
    defaults: &Defaults,
    prefixes: &LabelPrefixes,
) -> (Option<NodeCleanPolicy>, Vec<Diagnostic>) {
    let mut r = Reader::new(labels, prefixes, NODE_KEYS, &["clean"]);
    // As in the seed, a node without labels is cleaned; `clean.enable=false` excludes it.
    let policy = if r.bool("clean.enable", true) {
        let mut step = |name: &str, default: Duration| PruneStep {
            enabled: r.bool(&format!("clean.{name}.enable"), true),
            timeout: r.duration(&format!("clean.{name}.timeout"), default),
        };
        let container = step("container", defaults.clean_node_container_timeout);
        let image = step("image", defaults.clean_node_image_timeout);
        let builder = step("builder", defaults.clean_node_builder_timeout);
        let shell = r.text("clean.exec.shell").unwrap_or_else(|| defaults.clean_exec_shell.clone());
        let timeout = r.duration("clean.exec.timeout", defaults.clean_exec_timeout);
        let host = r.bool("clean.exec.host", false);
        let exec = match (r.text("clean.exec"), r.text("clean.exec.image")) {
            (Some(command), Some(image)) => Some(NodeExec { command, image, shell, timeout, host }),
            (Some(_), None) => {
                let (key, value) = r.get("clean.exec").map(|(k, v)| (k.to_owned(), v)).unwrap_or_default();
                let image_key = key.replace("clean.exec", "clean.exec.image");
                r.error(
                    &key,
                    value,
                    format!("a node's clean.exec runs in a helper container: name its image (with the shell) in {image_key}"),
                );
                None
            }
            (None, _) => None,
        };
        Some(NodeCleanPolicy {
            container,
            image,
            builder,
            exec,
            schedule: r.timing("clean.schedule", defaults.label_min_interval),
        })
    } else {
        None
    };
    (policy, r.diagnostics)
}

/// Levenshtein distance, for did-you-mean.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}
