//! `labels.compat`: which label prefixes a configuration file asks for, read the same way
//! by the CLI and the server.

use dockhand_host::ConfigFile;
use dockhand_policy::LabelPrefixes;

/// `labels.compat` has a value dockhand does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: labels.compat: {value:?}: must be swarm-utils or none")]
pub struct CompatError {
    /// The file.
    pub origin: String,
    /// What it holds.
    pub value: String,
}

/// The label prefixes `labels.compat` asks for: `dockhand.` alone (absent, or `none`), or
/// with `swarm-utils` the seed's `swarm-utils.` too.
pub fn label_prefixes(file: &ConfigFile) -> Result<LabelPrefixes, CompatError> {
    let Some(value) = file.get("labels.compat") else { return Ok(LabelPrefixes::default()) };
    match value.as_str() {
        Some("swarm-utils") => Ok(LabelPrefixes::with_swarm_utils()),
        Some("" | "none") => Ok(LabelPrefixes::default()),
        other => Err(CompatError {
            origin: file.origin().to_string(),
            value: other.map_or_else(|| format!("{value:?}"), str::to_owned),
        }),
    }
}
