//! `labels.compat`: which label prefixes to read, chosen the same way by the CLI and the
//! server: `DOCKHAND_LABELS_COMPAT`, else the configuration file's `labels.compat`, else the
//! seed's when any `SWARM_UTILS_*` variable is set (an operator who swapped the seed's image
//! for dockhand's and kept its environment), else `dockhand.` alone.

use dockhand_host::{ConfigError, ConfigFile, Environment};
use dockhand_policy::LabelPrefixes;

/// The variable that chooses explicitly.
pub const LABELS_COMPAT_VAR: &str = "DOCKHAND_LABELS_COMPAT";

/// The prefixes chosen, and why: for the server's log at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompatChoice {
    /// The label prefixes to read.
    pub prefixes: LabelPrefixes,
    /// Why, such as `SWARM_UTILS_S3_URL is set`.
    pub why: String,
}

/// What is wrong with a value of `labels.compat` or [`LABELS_COMPAT_VAR`].
fn unknown(value: &str) -> String {
    format!("{value:?}: must be swarm-utils or none")
}

/// The label prefixes to read, and why: `dockhand.` alone, or with `swarm-utils` the
/// seed's `swarm-utils.` too; see the module's documentation for the order.
pub fn compat_choice(file: &ConfigFile, env: &Environment) -> Result<CompatChoice, ConfigError> {
    if let Some(value) = env.get(LABELS_COMPAT_VAR) {
        let prefixes =
            parse(Some(value)).ok_or_else(|| ConfigError::environment(LABELS_COMPAT_VAR, unknown(value)))?;
        return Ok(CompatChoice { prefixes, why: format!("{LABELS_COMPAT_VAR}={value}") });
    }
    if let Some(value) = file.get("labels.compat") {
        let prefixes = parse(value.as_str()).ok_or_else(|| {
            let text = value.as_str().map_or_else(|| format!("{value:?}"), str::to_owned);
            ConfigError::new(file.origin().to_string(), "labels.compat", unknown(&text))
        })?;
        return Ok(CompatChoice { prefixes, why: format!("labels.compat in {}", file.origin()) });
    }
    if let Some((name, _)) = env.vars_with_prefix("SWARM_UTILS_").next() {
        return Ok(CompatChoice {
            prefixes: LabelPrefixes::with_swarm_utils(),
            why: format!(
                "{name} is set: the seed's environment (set {LABELS_COMPAT_VAR}=none to read dockhand. labels alone)"
            ),
        });
    }
    Ok(CompatChoice { prefixes: LabelPrefixes::default(), why: "the default".to_owned() })
}

fn parse(value: Option<&str>) -> Option<LabelPrefixes> {
    match value {
        Some("swarm-utils") => Some(LabelPrefixes::with_swarm_utils()),
        Some("" | "none") => Some(LabelPrefixes::default()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(yaml: &str) -> ConfigFile {
        ConfigFile::parse(yaml, false).expect("a valid file")
    }

    fn env(vars: &[(&str, &str)]) -> Environment {
        Environment::from_vars(vars.iter().copied())
    }

    #[test]
    fn a_seed_variable_turns_the_seeds_labels_on_and_says_which() {
        let choice = compat_choice(&file(""), &env(&[("SWARM_UTILS_S3_URL", "s3.example.com")])).unwrap();
        assert_eq!(choice.prefixes, LabelPrefixes::with_swarm_utils());
        assert!(choice.why.contains("SWARM_UTILS_S3_URL"), "{}", choice.why);
        assert_eq!(compat_choice(&file(""), &env(&[])).unwrap().prefixes, LabelPrefixes::default());
    }

    #[test]
    fn the_variable_beats_the_file_and_the_file_beats_the_seeds_environment() {
        let seed = ("SWARM_UTILS_ADMIN_TOKEN_LIST", "x");
        let none = compat_choice(&file(""), &env(&[seed, (LABELS_COMPAT_VAR, "none")])).unwrap();
        assert_eq!(none.prefixes, LabelPrefixes::default());
        let from_file = compat_choice(&file("labels:\n  compat: none\n"), &env(&[seed])).unwrap();
        assert_eq!(from_file.prefixes, LabelPrefixes::default());
        let on =
            compat_choice(&file("labels:\n  compat: none\n"), &env(&[(LABELS_COMPAT_VAR, "swarm-utils")]));
        assert_eq!(on.unwrap().prefixes, LabelPrefixes::with_swarm_utils());
    }

    #[test]
    fn an_unknown_value_names_where_it_came_from() {
        let err = compat_choice(&file(""), &env(&[(LABELS_COMPAT_VAR, "seed")])).unwrap_err();
        assert!(err.to_string().contains(LABELS_COMPAT_VAR), "{err}");
        let err = compat_choice(&file("labels:\n  compat: seed\n"), &env(&[])).unwrap_err();
        assert!(err.to_string().contains("<text>.yaml: labels.compat: \"seed\""), "{err}");
    }
}
