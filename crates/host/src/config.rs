//! The `docker.hosts` configuration of seed 000: loaded from YAML or TOML, keys matched
//! case-insensitively, environment overrides applied, `${VAR}` expanded, then validated.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dockhand_engine::{Endpoint, TlsSettings};

use crate::Environment;
use figment::providers::{Format, Toml, Yaml};
use figment::value::{Dict, Tag, Value};
use serde::Deserialize;

use crate::expand::expand;
use crate::{ConfigError, Error};
use dockhand_policy::parse_go_duration;

/// Seed 000's default configuration, with dockhand's names: used when there is no file or
/// the file has no `docker` section.
pub const DEFAULT_CONFIG: &str = r#"docker:
  hosts:
    default:
      type: external
    local:
      type: managed
      host: "unix://${USER_CACHE_DIR}/dockhand-docker-host/dockhand-docker.sock"
      disabled: true
      managed:
        executable: "dockerd-rootless.sh"
        env:
          - "DOCKERD_ROOTLESS_ROOTLESSKIT_STATE_DIR=${USER_CACHE_DIR}/dockhand-docker-host/state-dir/"
        args:
          - "--data-root=${USER_CACHE_DIR}/dockhand-docker-host/data-root/"
          - "--exec-root=${USER_CACHE_DIR}/dockhand-docker-host/exec-root/"
          - "--pidfile=${USER_CACHE_DIR}/dockhand-docker-host/dockhand-docker.pid"
        logLevel: info
        logPrefix: "DOCKER HOST: "
        healthCheck:
          interval: 1s
          retries: 10
"#;

/// The prefix of environment overrides.
pub const ENV_PREFIX: &str = "DOCKHAND_DOCKER_HOSTS_";

/// The parameters an environment override can set, as they appear in its name.
const ENV_PARAMS: [(&str, &[&str]); 13] = [
    ("MANAGED_HEALTHCHECK_INTERVAL", &["managed", "healthcheck", "interval"]),
    ("MANAGED_HEALTHCHECK_RETRIES", &["managed", "healthcheck", "retries"]),
    ("MANAGED_EXECUTABLE", &["managed", "executable"]),
    ("MANAGED_LOGPREFIX", &["managed", "logprefix"]),
    ("MANAGED_LOGLEVEL", &["managed", "loglevel"]),
    ("MANAGED_ARGS", &["managed", "args"]),
    ("MANAGED_ENV", &["managed", "env"]),
    ("CLIENTTLS_CERT", &["clienttls", "cert"]),
    ("CLIENTTLS_KEY", &["clienttls", "key"]),
    ("CLIENTTLS_CA", &["clienttls", "ca"]),
    ("DISABLED", &["disabled"]),
    ("HOST", &["host"]),
    ("TYPE", &["type"]),
];

/// The kind of a host (seed 000's `type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HostType {
    /// An engine that already runs; `host` may be left out.
    External,
    /// A rootless engine that dockhand starts and supervises.
    Managed,
    /// Like external, but `host` must be set.
    Remote,
}

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

/// A managed host's process settings.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct ManagedSettings {
    /// The executable: a name found on `PATH`, or an absolute path.
    pub executable: String,
    /// `NAME=value` entries added to its environment (shown masked).
    #[serde(serialize_with = "redacted_list")]
    pub env: Vec<String>,
    /// Its arguments (shown masked).
    #[serde(serialize_with = "redacted_list")]
    pub args: Vec<String>,
    /// The `tracing` level its output is logged at.
    pub log_level: String,
    /// The prefix of its log lines.
    pub log_prefix: String,
    /// How often readiness is checked.
    #[serde(serialize_with = "go_duration")]
    pub health_interval: Duration,
    /// How many checks before giving up.
    pub health_retries: u32,
}

fn redacted_list<S: serde::Serializer>(items: &[String], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(items.iter().map(|item| crate::redact_setting(item)))
}

fn go_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&dockhand_policy::format_go_duration(*d))
}

/// The paths of a host's client TLS files.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct ClientTls {
    /// The CA certificate.
    pub ca: PathBuf,
    /// The client certificate.
    pub cert: Option<PathBuf>,
    /// The client key.
    pub key: Option<PathBuf>,
}

impl ClientTls {
    /// The engine crate's TLS settings for these files.
    pub fn settings(&self) -> TlsSettings {
        let tls = TlsSettings::verified(&self.ca);
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => tls.with_client_identity(cert, key),
            _ => tls,
        }
    }
}

/// One validated host.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct HostConfig {
    /// Its id, as other settings refer to it.
    pub id: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: HostType,
    /// Its URL after expansion; `None` for an external host that follows the docker CLI's
    /// rules (`DOCKER_HOST`, contexts, the default socket).
    #[serde(serialize_with = "endpoint_opt")]
    pub host: Option<Endpoint>,
    /// Disabled hosts exist but cannot be used.
    pub disabled: bool,
    /// Client TLS files.
    pub clienttls: Option<ClientTls>,
    /// Process settings of a managed host.
    pub managed: Option<ManagedSettings>,
    /// Where the host was defined.
    pub origin: Origin,
    /// The environment variables that changed it.
    pub overridden_by: Vec<String>,
}

fn endpoint_opt<S: serde::Serializer>(e: &Option<Endpoint>, s: S) -> Result<S::Ok, S::Error> {
    match e {
        Some(e) => s.collect_str(&dockhand_policy::redact_url(&e.to_string())),
        None => s.serialize_none(),
    }
}

/// The whole `docker.hosts` section, validated.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HostsConfig {
    hosts: BTreeMap<String, HostConfig>,
    /// Entries that did not validate, with their problems: reported, never used.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    broken: BTreeMap<String, Vec<ConfigError>>,
    origin: Origin,
}

impl HostsConfig {
    /// Loads `path` (or the default file, `$XDG_CONFIG_HOME/dockhand/dockhand.yaml`, when it
    /// exists), or the built-in defaults; then applies `DOCKHAND_DOCKER_HOSTS_*` overrides
    /// from `env`, expands `${VAR}` and validates. A file named explicitly must exist.
    ///
    /// Every problem is an error here; [`HostsConfig::load_partial`] keeps the valid hosts.
    pub fn load(path: Option<&Path>, env: &Environment) -> Result<Self, Error> {
        Self::load_partial(path, env)?.validated()
    }

    /// As [`HostsConfig::load`], but a host entry that does not validate does not spoil the
    /// others: it is kept aside ([`HostsConfig::broken`]) and using it is an error that
    /// lists its problems. Problems outside a host entry (the file, its syntax, an
    /// ambiguous override) are still errors.
    pub fn load_partial(path: Option<&Path>, env: &Environment) -> Result<Self, Error> {
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
        let (tree, origin) = match &file {
            Some(path) => match read_docker_section(path)? {
                Some(tree) => (tree, Origin::File(path.clone())),
                None => (defaults_tree()?, Origin::Defaults),
            },
            None => (defaults_tree()?, Origin::Defaults),
        };
        Self::from_tree(tree, origin, env)
    }

    /// Parses configuration text (YAML, or TOML when `toml` is set), as a file would be.
    pub fn parse(text: &str, toml: bool, env: &Environment) -> Result<Self, Error> {
        let origin = Origin::File(PathBuf::from(if toml { "<text>.toml" } else { "<text>.yaml" }));
        let figment = if toml {
            figment::Figment::from(Toml::string(text))
        } else {
            figment::Figment::from(Yaml::string(text))
        };
        match docker_section(figment, &origin.to_string())? {
            Some(tree) => Self::from_tree(tree, origin, env)?.validated(),
            None => Self::from_tree(defaults_tree()?, Origin::Defaults, env)?.validated(),
        }
    }

    /// The built-in defaults, with overrides from `env`.
    pub fn defaults(env: &Environment) -> Result<Self, Error> {
        Self::from_tree(defaults_tree()?, Origin::Defaults, env)?.validated()
    }

    /// Itself when every host entry is valid; else every problem.
    fn validated(self) -> Result<Self, Error> {
        if self.broken.is_empty() {
            Ok(self)
        } else {
            Err(Error::Invalid(self.broken.into_values().flatten().collect()))
        }
    }

    /// The host entries that did not validate, by id, with their problems.
    pub fn broken(&self) -> impl Iterator<Item = (&str, &[ConfigError])> {
        self.broken.iter().map(|(id, problems)| (id.as_str(), problems.as_slice()))
    }

    fn from_tree(mut hosts: Dict, origin: Origin, env: &Environment) -> Result<Self, Error> {
        let mut problems = Vec::new();
        let overrides = apply_env(&mut hosts, env, &mut problems);
        let vars = expansion_vars(env);
        if !problems.is_empty() {
            return Err(Error::Invalid(problems));
        }
        let mut out = BTreeMap::new();
        let mut broken = BTreeMap::new();
        for (id, value) in &hosts {
            let by: Vec<String> =
                overrides.iter().filter(|(host, _)| host == id).map(|(_, var)| var.clone()).collect();
            let origin_text =
                if by.is_empty() { origin.to_string() } else { format!("{origin} (with {})", by.join(", ")) };
            match build_host(id, value, &vars, &origin_text) {
                Ok(mut host) => {
                    host.origin = origin.clone();
                    host.overridden_by = by;
                    out.insert(id.clone(), host);
                }
                Err(errs) => {
                    broken.insert(id.clone(), errs);
                }
            }
        }
        Ok(Self { hosts: out, broken, origin })
    }

    /// Where the section came from.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// Every host, by id.
    pub fn hosts(&self) -> impl Iterator<Item = &HostConfig> {
        self.hosts.values()
    }

    /// A host by id.
    pub fn get(&self, id: &str) -> Option<&HostConfig> {
        self.hosts.get(id)
    }

    /// Checks a feature's `docker.hostid`: the host must exist and be enabled. `key` names
    /// the setting that refers to it, for the error.
    pub fn require(&self, id: &str, key: &str) -> Result<&HostConfig, ConfigError> {
        let known = self.hosts.keys().map(String::as_str).collect::<Vec<_>>().join(", ");
        match self.hosts.get(id) {
            None => Err(ConfigError::new(
                self.origin.to_string(),
                key,
                format!("host {id:?} does not exist (hosts: {known})"),
            )),
            Some(host) if host.disabled => Err(ConfigError::new(
                self.origin.to_string(),
                key,
                format!("host {id:?} is disabled (set docker.hosts.{id}.disabled: false to use it)"),
            )),
            Some(host) => Ok(host),
        }
    }
}

impl HostConfig {
    /// Seed 000's warning as a check: on a host reached over the network, a port bound to
    /// `0.0.0.0` (or `::`) is not reachable from outside under that address; a published
    /// port must name one of the host's addresses. `None` when `bind` is fine.
    pub fn unreachable_binding(&self, bind: &str) -> Option<String> {
        let remote = matches!(self.host, Some(Endpoint::Tcp(_) | Endpoint::Ssh(_)));
        let wildcard = matches!(bind.trim(), "0.0.0.0" | "::" | "[::]" | "");
        (remote && wildcard).then(|| {
            format!(
                "host {:?} is remote: a port bound to {bind:?} is not reachable under that address from outside; \
                 bind it to an address of the host's own network interface",
                self.id
            )
        })
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

fn defaults_tree() -> Result<Dict, Error> {
    let tree = docker_section(figment::Figment::from(Yaml::string(DEFAULT_CONFIG)), "the built-in defaults")?;
    tree.ok_or_else(|| Error::Parse {
        origin: "the built-in defaults".to_owned(),
        source: Box::new(figment::Error::from("no docker section".to_owned())),
    })
}

fn read_docker_section(path: &Path) -> Result<Option<Dict>, Error> {
    std::fs::File::open(path).map_err(|source| Error::Read { path: path.to_owned(), source })?;
    let toml = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("toml"));
    let figment = if toml {
        figment::Figment::from(Toml::file(path))
    } else {
        figment::Figment::from(Yaml::file(path))
    };
    docker_section(figment, &path.display().to_string())
}

/// The `docker.hosts` dictionary with every field name lowercased (host ids are kept), or
/// `None` when there is no `docker` section.
fn docker_section(figment: figment::Figment, origin: &str) -> Result<Option<Dict>, Error> {
    let root: Dict =
        // Shown by its kind alone: figment's own message would name the file a second time.
        figment.extract().map_err(|e| Error::Parse { origin: origin.to_owned(), source: Box::new(e) })?;
    let Some(docker) = find_key(&root, "docker") else { return Ok(None) };
    let Value::Dict(_, docker) = docker else {
        return Err(Error::Invalid(vec![ConfigError::new(
            origin,
            "docker",
            "must be a map with a hosts key",
        )]));
    };
    let hosts = match find_key(docker, "hosts") {
        None => Dict::new(),
        Some(Value::Dict(_, hosts)) => hosts.clone(),
        Some(_) => {
            return Err(Error::Invalid(vec![ConfigError::new(
                origin,
                "docker.hosts",
                "must be a map of host ids",
            )]));
        }
    };
    Ok(Some(hosts.into_iter().map(|(id, v)| (id, lowercase_keys(v))).collect()))
}

fn find_key<'a>(dict: &'a Dict, name: &str) -> Option<&'a Value> {
    dict.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v)
}

fn lowercase_keys(value: Value) -> Value {
    match value {
        Value::Dict(tag, dict) => {
            Value::Dict(tag, dict.into_iter().map(|(k, v)| (k.to_lowercase(), lowercase_keys(v))).collect())
        }
        Value::Array(tag, items) => Value::Array(tag, items.into_iter().map(lowercase_keys).collect()),
        other => other,
    }
}

/// How a host id appears in a variable name: uppercased, every character outside
/// `A-Z0-9` turned into `_`.
pub fn env_id(id: &str) -> String {
    id.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect()
}

/// Applies `DOCKHAND_DOCKER_HOSTS_<ID>_<PARAM>` variables; returns `(host id, variable)`.
fn apply_env(hosts: &mut Dict, env: &Environment, problems: &mut Vec<ConfigError>) -> Vec<(String, String)> {
    let mut applied = Vec::new();
    for (var, value) in env.vars_with_prefix(ENV_PREFIX) {
        let rest = &var[ENV_PREFIX.len()..];
        let Some((param, path)) = ENV_PARAMS.iter().find(|(param, _)| {
            rest.len() > param.len() + 1
                && rest.ends_with(param)
                && rest[..rest.len() - param.len()].ends_with('_')
        }) else {
            let names: Vec<&str> = ENV_PARAMS.iter().map(|(p, _)| *p).collect();
            problems.push(ConfigError::new(
                "the environment",
                var,
                format!("expected {ENV_PREFIX}<ID>_<PARAM> with PARAM one of {}", names.join(", ")),
            ));
            continue;
        };
        let id_part = &rest[..rest.len() - param.len() - 1];
        let matching: Vec<String> = hosts.keys().filter(|id| env_id(id) == id_part).cloned().collect();
        let id = match matching.as_slice() {
            [one] => one.clone(),
            [] => id_part.to_lowercase(),
            many => {
                problems.push(ConfigError::new(
                    "the environment",
                    var,
                    format!("names more than one host ({}); rename one of them", many.join(", ")),
                ));
                continue;
            }
        };
        let is_list = path.last().is_some_and(|leaf| *leaf == "env" || *leaf == "args");
        let parsed = if is_list { parse_list(value) } else { parse_scalar(value) };
        let entry = hosts.entry(id.clone()).or_insert_with(|| Value::Dict(Tag::Default, Dict::new()));
        set_path(entry, path, parsed);
        applied.push((id, var.to_owned()));
    }
    applied
}

/// A list from a variable: `[a, b]` in YAML flow syntax, or one plain value.
fn parse_list(value: &str) -> Value {
    if value.trim_start().starts_with('[') {
        if let Ok(Value::Array(tag, items)) =
            figment::Figment::from(Yaml::string(&format!("v: {value}"))).extract_inner::<Value>("v")
        {
            return Value::Array(tag, items);
        }
    }
    Value::Array(Tag::Default, vec![Value::String(Tag::Default, value.to_owned())])
}

/// A scalar from a variable: `true`/`false` and whole numbers become such, the rest text.
fn parse_scalar(value: &str) -> Value {
    match value {
        "true" => Value::Bool(Tag::Default, true),
        "false" => Value::Bool(Tag::Default, false),
        v => match v.parse::<u32>() {
            Ok(n) if !v.starts_with('0') || v == "0" => Value::from(n),
            _ => Value::String(Tag::Default, v.to_owned()),
        },
    }
}

fn set_path(value: &mut Value, path: &[&str], leaf: Value) {
    let Some((first, rest)) = path.split_first() else {
        *value = leaf;
        return;
    };
    if !matches!(value, Value::Dict(..)) {
        *value = Value::Dict(Tag::Default, Dict::new());
    }
    if let Value::Dict(_, dict) = value {
        let child = dict.entry((*first).to_owned()).or_insert_with(|| Value::Dict(Tag::Default, Dict::new()));
        set_path(child, rest, leaf);
    }
}

/// The variables `${NAME}` may use: the environment, plus `USER_CACHE_DIR` (`$HOME/.cache`).
fn expansion_vars(env: &Environment) -> BTreeMap<String, String> {
    let mut vars: BTreeMap<String, String> =
        env.vars_with_prefix("").map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    if let (false, Some(home)) = (vars.contains_key("USER_CACHE_DIR"), env.get("HOME")) {
        vars.insert("USER_CACHE_DIR".to_owned(), format!("{}/.cache", home.trim_end_matches('/')));
    }
    vars
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    #[serde(rename = "type")]
    kind: Option<String>,
    host: Option<String>,
    disabled: Option<bool>,
    clienttls: Option<RawTls>,
    managed: Option<RawManaged>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    ca: Option<String>,
    cert: Option<String>,
    key: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManaged {
    executable: Option<String>,
    env: Option<Vec<String>>,
    args: Option<Vec<String>>,
    loglevel: Option<String>,
    logprefix: Option<String>,
    healthcheck: Option<RawHealth>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    #[serde(default, deserialize_with = "scalar_text")]
    interval: Option<String>,
    retries: Option<u32>,
}

/// A duration written as a bare number (`10`) is read as text, so that its error says
/// what is missing (the unit) rather than "expected a string".
fn scalar_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Text(String),
        Whole(u64),
        Real(f64),
    }
    Ok(Option::<Scalar>::deserialize(d)?.map(|s| match s {
        Scalar::Text(t) => t,
        Scalar::Whole(n) => n.to_string(),
        Scalar::Real(x) => x.to_string(),
    }))
}

const LOG_LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];

/// Validates one host. Every problem is reported, each naming the origin and the key.
fn build_host(
    id: &str,
    value: &Value,
    vars: &BTreeMap<String, String>,
    origin: &str,
) -> Result<HostConfig, Vec<ConfigError>> {
    let key =
        |k: &str| if k.is_empty() { format!("docker.hosts.{id}") } else { format!("docker.hosts.{id}.{k}") };
    let err = |k: &str, detail: String| ConfigError::new(origin, key(k), detail);
    let raw: RawHost = value.deserialize().map_err(|e| {
        // figment knows where inside the host the problem is.
        let inner = e.path.join(".");
        let detail = match &e.kind {
            figment::error::Kind::UnknownField(found, expected) => {
                format!("unknown key {found:?}: expected one of {}", expected.join(", "))
            }
            other => other.to_string(),
        };
        vec![err(&inner, detail)]
    })?;
    let mut problems = Vec::new();

    let kind = match raw.kind.as_deref().map(str::to_ascii_lowercase).as_deref() {
        Some("external") => HostType::External,
        Some("managed") => HostType::Managed,
        Some("remote") => HostType::Remote,
        Some(other) => {
            problems
                .push(err("type", format!("unknown type {other:?}: expected external, managed or remote")));
            HostType::External
        }
        None => {
            problems.push(err("type", "is required: external, managed or remote".to_owned()));
            HostType::External
        }
    };

    let host = match &raw.host {
        None => None,
        Some(text) => match expand(text, vars) {
            Err(e) => {
                problems.push(err("host", e.to_string()));
                None
            }
            Ok(text) => match text.parse::<Endpoint>() {
                Ok(endpoint) => Some(endpoint),
                Err(e) => {
                    problems.push(err("host", e.to_string()));
                    None
                }
            },
        },
    };
    match (kind, &host, raw.host.is_some()) {
        (HostType::Remote, None, false) => {
            problems.push(err("host", "is required for a remote host".to_owned()))
        }
        (HostType::Managed, None, false) => problems
            .push(err("host", "is required for a managed host: the unix:// socket it will serve".to_owned())),
        (HostType::Managed, Some(ep), _) if ep.socket_path().is_none() => problems.push(err(
            "host",
            format!("a managed host serves a unix socket: expected unix:///path, not {ep}"),
        )),
        _ => {}
    }

    let has_tls_section = raw.clienttls.is_some();
    let clienttls = match raw.clienttls {
        None => None,
        Some(tls) => {
            let to_path = |value: Option<String>| value.map(PathBuf::from);
            let (ca, cert, key_file) = (to_path(tls.ca), to_path(tls.cert), to_path(tls.key));
            for (name, path) in [("ca", &ca), ("cert", &cert), ("key", &key_file)] {
                if let Some(path) = path {
                    if let Err(e) = std::fs::File::open(path) {
                        problems.push(err(
                            &format!("clienttls.{name}"),
                            format!("cannot read {}: {e}", path.display()),
                        ));
                    }
                }
            }
            if cert.is_some() != key_file.is_some() {
                problems.push(err("clienttls", "cert and key go together: give both or neither".to_owned()));
            }
            match ca {
                Some(ca) => Some(ClientTls { ca, cert, key: key_file }),
                None => {
                    problems.push(err(
                        "clienttls.ca",
                        "is required: the CA that signed the engine's certificate".to_owned(),
                    ));
                    None
                }
            }
        }
    };
    if let Some(Endpoint::Tcp(tcp)) = &host {
        if tcp.scheme() == dockhand_engine::TcpScheme::Https && !has_tls_section {
            problems.push(err("clienttls", "is required for an https:// host: ca, cert and key".to_owned()));
        }
    }

    let managed = match (kind, raw.managed) {
        (HostType::Managed, None) => {
            problems
                .push(err("managed", "is required for a managed host (executable, args, ...)".to_owned()));
            None
        }
        (_, None) => None,
        (_, Some(m)) => {
            let mut expand_all = |field: &str, items: Option<Vec<String>>| -> Vec<String> {
                items
                    .unwrap_or_default()
                    .into_iter()
                    .enumerate()
                    .filter_map(|(i, item)| match expand(&item, vars) {
                        Ok(v) => Some(v),
                        Err(e) => {
                            problems.push(err(&format!("managed.{field}[{i}]"), e.to_string()));
                            None
                        }
                    })
                    .collect()
            };
            let env = expand_all("env", m.env);
            let args = expand_all("args", m.args);
            for (i, entry) in env.iter().enumerate() {
                if !entry.contains('=') || entry.starts_with('=') {
                    problems.push(err(&format!("managed.env[{i}]"), format!("{entry:?} is not NAME=value")));
                }
            }
            let executable = m.executable.unwrap_or_default();
            if executable.trim().is_empty() {
                problems.push(err(
                    "managed.executable",
                    "is required: a name on PATH or an absolute path".to_owned(),
                ));
            }
            let log_level = m.loglevel.unwrap_or_else(|| "info".to_owned()).to_ascii_lowercase();
            if !LOG_LEVELS.contains(&log_level.as_str()) {
                problems.push(err(
                    "managed.loglevel",
                    format!("unknown level {log_level:?}: expected one of {}", LOG_LEVELS.join(", ")),
                ));
            }
            let health = m.healthcheck.unwrap_or(RawHealth { interval: None, retries: None });
            let health_interval = match health.interval.as_deref().map(parse_go_duration) {
                None => Duration::from_secs(1),
                Some(Ok(d)) if d > Duration::ZERO => d,
                Some(Ok(_)) => {
                    problems.push(err("managed.healthcheck.interval", "must be more than 0".to_owned()));
                    Duration::from_secs(1)
                }
                Some(Err(e)) => {
                    problems.push(err("managed.healthcheck.interval", e.to_string()));
                    Duration::from_secs(1)
                }
            };
            let health_retries = health.retries.unwrap_or(10);
            if health_retries == 0 {
                problems.push(err("managed.healthcheck.retries", "must be at least 1".to_owned()));
            }
            Some(ManagedSettings {
                executable,
                env,
                args,
                log_level,
                log_prefix: m.logprefix.unwrap_or_default(),
                health_interval,
                health_retries,
            })
        }
    };

    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(HostConfig {
        id: id.to_owned(),
        kind,
        host,
        disabled: raw.disabled.unwrap_or(false),
        clienttls,
        managed,
        origin: Origin::Defaults,
        overridden_by: Vec::new(),
    })
}
