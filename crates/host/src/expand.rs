//! `${NAME}` expansion in host URLs, managed env entries and args.

use std::collections::BTreeMap;

/// Why a `${NAME}` could not be expanded; each names the text it is in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExpandError {
    /// `${` without its `}`.
    #[error("unterminated ${{ in {text:?}")]
    Unterminated {
        /// The text.
        text: String,
    },
    /// A name with characters other than letters, digits and `_`.
    #[error("invalid variable name {name:?} in {text:?}")]
    InvalidName {
        /// The name.
        name: String,
        /// The text.
        text: String,
    },
    /// A variable that is not set.
    #[error("unknown variable ${{{name}}} in {text:?}: it is neither set nor USER_CACHE_DIR")]
    Unknown {
        /// The name.
        name: String,
        /// The text.
        text: String,
    },
}

/// Replaces every `${NAME}` in `text` with its value from `vars`. A `$` not followed by
/// `{` stays as it is. An unknown or unterminated variable is an error naming it.
pub fn expand(text: &str, vars: &BTreeMap<String, String>) -> Result<String, ExpandError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| ExpandError::Unterminated { text: text.to_owned() })?;
        let name = &after[..end];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(ExpandError::InvalidName { name: name.to_owned(), text: text.to_owned() });
        }
        let value = vars
            .get(name)
            .ok_or_else(|| ExpandError::Unknown { name: name.to_owned(), text: text.to_owned() })?;
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> BTreeMap<String, String> {
        [("USER_CACHE_DIR", "/home/u/.cache"), ("USER", "u")]
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect()
    }

    #[test]
    fn expands_known_variables() {
        assert_eq!(
            expand("unix://${USER_CACHE_DIR}/dockhand-docker-host/dockhand-docker.sock", &vars()).unwrap(),
            "unix:///home/u/.cache/dockhand-docker-host/dockhand-docker.sock"
        );
        assert_eq!(expand("/home/${USER}/$HOME/${USER}", &vars()).unwrap(), "/home/u/$HOME/u");
        assert_eq!(expand("plain", &vars()).unwrap(), "plain");
    }

    #[test]
    fn unknown_and_broken_variables_are_errors() {
        let msg = expand("--data-root=${NOPE}/x", &vars()).unwrap_err().to_string();
        assert!(msg.contains("${NOPE}") && msg.contains("--data-root=${NOPE}/x"), "{msg}");
        assert!(matches!(expand("${USER", &vars()), Err(ExpandError::Unterminated { .. })));
        assert!(matches!(expand("${}", &vars()), Err(ExpandError::InvalidName { .. })));
    }
}
