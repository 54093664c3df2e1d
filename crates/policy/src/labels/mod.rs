//! Service and node labels: parsed into typed per-action policies, with a diagnostic for
//! every label that is wrong, each naming the label key, its value and why.

use std::collections::BTreeMap;
use std::time::Duration;

pub(crate) mod policy;
pub(crate) mod read;

/// The longest timeout a label may set: 24 hours (review finding 9).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// Docker's rule for volume names: `[a-zA-Z0-9][a-zA-Z0-9_.-]*` (review finding 8).
pub fn valid_volume_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Which label prefixes are read, in order of precedence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelPrefixes {
    prefixes: Vec<String>,
}

impl Default for LabelPrefixes {
    /// `dockhand.` only.
    fn default() -> Self {
        Self { prefixes: vec!["dockhand.".to_owned()] }
    }
}

impl LabelPrefixes {
    /// `dockhand.` and seed 002's `swarm-utils.` (`labels.compat: swarm-utils`), so that an
    /// existing cluster migrates without relabelling. `dockhand.` wins when both are set.
    pub fn with_swarm_utils() -> Self {
        Self { prefixes: vec!["dockhand.".to_owned(), "swarm-utils.".to_owned()] }
    }

    /// The prefixes, in order of precedence.
    pub fn as_slice(&self) -> Vec<&str> {
        self.prefixes.iter().map(String::as_str).collect()
    }

    /// The first prefix, used to name labels in messages.
    pub fn primary(&self) -> &str {
        self.prefixes.first().map_or("dockhand.", String::as_str)
    }
}

/// A target's labels as every policy reads them: each key without its prefix (such as
/// `update.token`) resolved once, **per key the first prefix wins**. So when a service
/// carries both `dockhand.update.token` and `swarm-utils.update.token`, only the
/// `dockhand.` one counts, for tokens, CI identity bindings and every other label alike;
/// a `swarm-utils.` key with no `dockhand.` counterpart still counts.
///
/// ```
/// use std::collections::BTreeMap;
/// use dockhand_policy::{LabelPrefixes, TargetLabels};
///
/// let labels: BTreeMap<String, String> = [
///     ("dockhand.update.token", "new"),
///     ("swarm-utils.update.token", "old"),
///     ("swarm-utils.update.enable", "true"),
/// ]
/// .into_iter()
/// .map(|(k, v)| (k.to_owned(), v.to_owned()))
/// .collect();
/// let view = TargetLabels::resolve(&labels, &LabelPrefixes::with_swarm_utils());
/// assert_eq!(view.get("update.token"), Some(("dockhand.update.token", "new")));
/// assert_eq!(view.get("update.enable"), Some(("swarm-utils.update.enable", "true")));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetLabels<'a> {
    /// Short key → (full key, value).
    entries: BTreeMap<String, (&'a str, &'a str)>,
    primary: String,
}

impl<'a> TargetLabels<'a> {
    /// Resolves `labels` under `prefixes`; labels under no prefix are left out.
    pub fn resolve(labels: &'a BTreeMap<String, String>, prefixes: &LabelPrefixes) -> Self {
        let mut entries = BTreeMap::new();
        for prefix in &prefixes.prefixes {
            for (key, value) in labels {
                if let Some(short) = key.strip_prefix(prefix.as_str()) {
                    entries.entry(short.to_owned()).or_insert((key.as_str(), value.as_str()));
                }
            }
        }
        Self { entries, primary: prefixes.primary().to_owned() }
    }

    /// The full key and the value of `short`, such as `update.token`.
    pub fn get(&self, short: &str) -> Option<(&'a str, &'a str)> {
        self.entries.get(short).copied()
    }

    /// Every resolved label whose short key starts with `head`: (rest of the short key,
    /// full key, value).
    pub fn under<'s>(&'s self, head: &'s str) -> impl Iterator<Item = (&'s str, &'a str, &'a str)> + 's {
        self.entries.iter().filter_map(move |(short, (full, value))| {
            short.strip_prefix(head).map(|rest| (rest, *full, *value))
        })
    }

    /// Every resolved label: (short key, full key, value), by short key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &'a str, &'a str)> + '_ {
        self.entries.iter().map(|(short, (full, value))| (short.as_str(), *full, *value))
    }

    /// `short` under the first prefix, to name a missing label in a message.
    pub fn key_for(&self, short: &str) -> String {
        format!("{}{short}", self.primary)
    }
}

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The label is ignored, or the action refused.
    Error,
    /// Accepted, but there is a safer way.
    Warning,
}

/// One problem with one label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// How bad.
    pub severity: Severity,
    /// The full label key, such as `dockhand.backup.stop`.
    pub key: String,
    /// Its value (masked for labels that carry secrets).
    pub value: String,
    /// What is wrong, and what to do.
    pub message: String,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let level = if self.severity == Severity::Error { "error" } else { "warning" };
        write!(f, "{level}: {}={:?}: {}", self.key, self.value, self.message)
    }
}
