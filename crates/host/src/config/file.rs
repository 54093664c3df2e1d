//! The configuration file, loaded once: YAML or TOML (by extension), keys matched
//! case-insensitively, errors naming the file. Each crate takes its typed section from a
//! [`ConfigFile`] and validates it where the section is defined; the `docker.hosts`
//! section is [`crate::HostsConfig`].

use std::path::{Path, PathBuf};

use figment::providers::{Format, Toml, Yaml};
use figment::value::{Dict, Value};

use crate::{ConfigError, Environment, Error};

/// Where a setting came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase", tag = "kind", content = "name")]
pub enum Origin {
    /// The built-in defaults.
    Defaults,
    /// A configuration file.
    File(PathBuf),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Defaults => f.write_str("the built-in defaults"),
            Self::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// One configuration file (or none: the built-in defaults), read and parsed once.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    root: Dict,
    origin: Origin,
    notes: Vec<String>,
}

impl ConfigFile {
    /// Reads `path`, or the default file ([`default_path`]) when it exists, or nothing (the
    /// built-in defaults). A file named explicitly must exist and parse.
    pub fn load(path: Option<&Path>, env: &Environment) -> Result<Self, Error> {
        let file = match path {
            Some(path) => {
                if !path.is_file() {
                    let source = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
                    return Err(Error::Read { path: path.to_owned(), source });
                }
                Some(path.to_owned())
            }
            None => default_path(env).filter(|p| p.is_file()),
        };
        let Some(path) = file else {
            return Ok(Self { root: Dict::new(), origin: Origin::Defaults, notes: Vec::new() });
        };
        std::fs::File::open(&path).map_err(|source| Error::Read { path: path.clone(), source })?;
        let toml = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("toml"));
        let figment = if toml {
            figment::Figment::from(Toml::file(&path))
        } else {
            figment::Figment::from(Yaml::file(&path))
        };
        let origin = Origin::File(path);
        Self::rooted(extract(figment, &origin.to_string())?, origin)
    }

    /// Configuration text (YAML, or TOML when `toml` is set), as a file would be read.
    pub fn parse(text: &str, toml: bool) -> Result<Self, Error> {
        let origin = Origin::File(PathBuf::from(if toml { "<text>.toml" } else { "<text>.yaml" }));
        let figment = if toml {
            figment::Figment::from(Toml::string(text))
        } else {
            figment::Figment::from(Yaml::string(text))
        };
        Self::rooted(extract(figment, &origin.to_string())?, origin)
    }

    /// A file whose keys sit under seed 000's `xsvacer:` root (a whole `svacer.cfg` pasted
    /// in) is read as if they were at the top, with a note that the root is no longer
    /// needed. A key both under the root and beside it is an error naming both.
    fn rooted(mut root: Dict, origin: Origin) -> Result<Self, Error> {
        let mut notes = Vec::new();
        let seed_root = root.keys().find(|k| k.eq_ignore_ascii_case(SEED_ROOT)).cloned();
        if let Some(key) = seed_root {
            if let Some(Value::Dict(_, inner)) = root.get(&key).cloned() {
                root.remove(&key);
                for (k, v) in inner {
                    if find_key(&root, &k).is_some() {
                        return Err(Error::Invalid(vec![ConfigError::new(
                            origin.to_string(),
                            format!("{key}.{k}"),
                            format!(
                                "`{k}` is both under `{key}:` and at the top: keep one (`{key}:` is no longer needed)"
                            ),
                        )]));
                    }
                    root.insert(k, v);
                }
                notes.push(format!(
                    "{origin}: the keys under seed 000's root `{key}:` are read as if they were at the top; the root is no longer needed"
                ));
            }
        }
        Ok(Self { root, origin, notes })
    }

    /// What reading it noticed and the user may want to know (a seed's root unwrapped).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Where it came from.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The value at a dotted key such as `docker.hosts` or `storage.targets`, every key
    /// matched case-insensitively; `None` when absent.
    pub fn get(&self, dotted: &str) -> Option<&Value> {
        let mut parts = dotted.split('.');
        let mut value = find_key(&self.root, parts.next()?)?;
        for part in parts {
            let Value::Dict(_, dict) = value else { return None };
            value = find_key(dict, part)?;
        }
        Some(value)
    }

    /// The map at a dotted key; `None` when absent, an error naming the file and key when
    /// it is not a map.
    pub fn map(&self, dotted: &str, what: &str) -> Result<Option<Dict>, Error> {
        match self.get(dotted) {
            None => Ok(None),
            Some(Value::Dict(_, dict)) => Ok(Some(dict.clone())),
            Some(_) => Err(Error::Invalid(vec![ConfigError::new(
                self.origin.to_string(),
                dotted,
                format!("must be {what}"),
            )])),
        }
    }
}

/// The whole file as a dictionary; a parse error names the file once.
fn extract(figment: figment::Figment, origin: &str) -> Result<Dict, Error> {
    // Shown by its kind alone: figment's own message would name the file a second time.
    figment.extract().map_err(|e| Error::Parse { origin: origin.to_owned(), source: Box::new(e) })
}

/// Seed 000's configuration root (`svacer.cfg`: `xsvacer: docker: hosts: ...`).
const SEED_ROOT: &str = "xsvacer";

/// The entry `name` of `dict`, matched case-insensitively.
pub(crate) fn find_key<'a>(dict: &'a Dict, name: &str) -> Option<&'a Value> {
    dict.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v)
}

/// `value` with every map key lowercased, at every depth.
pub(crate) fn lowercase_keys(value: Value) -> Value {
    match value {
        Value::Dict(tag, dict) => {
            Value::Dict(tag, dict.into_iter().map(|(k, v)| (k.to_lowercase(), lowercase_keys(v))).collect())
        }
        Value::Array(tag, items) => Value::Array(tag, items.into_iter().map(lowercase_keys).collect()),
        other => other,
    }
}

/// `$XDG_CONFIG_HOME/dockhand/dockhand.yaml` (default `~/.config`).
pub fn default_path(env: &Environment) -> Option<PathBuf> {
    let base = match env.get("XDG_CONFIG_HOME") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env.get("HOME")?).join(".config"),
    };
    Some(base.join("dockhand").join("dockhand.yaml"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_seed_config_under_its_xsvacer_root_is_read_with_a_note() {
        let seed = "xsvacer:\n  docker:\n    hosts:\n      remote1:\n        type: remote\n        host: ssh://u@h\n";
        let file = ConfigFile::parse(seed, false).expect("it parses");
        assert!(file.get("docker.hosts.remote1.host").is_some(), "the hosts are read from under the root");
        assert_eq!(file.notes().len(), 1);
        assert!(file.notes()[0].contains("`xsvacer:`") && file.notes()[0].contains("no longer needed"));
        let plain = ConfigFile::parse("docker:\n  hosts: {}\n", false).expect("it parses");
        assert!(plain.notes().is_empty());
    }

    #[test]
    fn a_key_under_the_seed_root_and_beside_it_is_an_error_naming_both() {
        let err = ConfigFile::parse("xsvacer:\n  docker: {}\ndocker: {}\n", false).unwrap_err().to_string();
        assert!(err.contains("xsvacer.docker") && err.contains("keep one"), "{err}");
    }
}
