//! Credentials in memory: [`Secret`] never prints its value, and [`read_credential`] reads one
//! from a file (a swarm secret) or a variable.

use std::path::Path;

use dockhand_host::Environment;

/// A credential. It prints as `<redacted>`; only [`Secret::expose`] gives its value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A credential from a file (a swarm secret), a named variable, or the default variable.
pub(crate) fn read_credential(
    env: &Environment,
    var: Option<&str>,
    file: Option<&Path>,
    default_var: &str,
) -> Result<Secret, String> {
    if let Some(file) = file {
        let text =
            std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let value = text.trim_end_matches(['\n', '\r']);
        if value.is_empty() {
            return Err(format!("{} is empty", file.display()));
        }
        return Ok(Secret::new(value));
    }
    let name = var.unwrap_or(default_var);
    env.get(name).map(Secret::new).ok_or_else(|| format!("the variable {name} is not set"))
}
