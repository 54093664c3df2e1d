//! Validation of one `docker.hosts` entry: every problem reported, each naming the
//! origin, the host and the key. The entry is read into raw types first, then each part
//! (endpoint, client TLS files, managed process settings) is checked on its own.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use dockhand_engine::Endpoint;
use dockhand_policy::parse_go_duration;
use figment::value::Value;
use serde::Deserialize;

use super::entry::{ClientTls, HostEntry, HostType, ManagedSettings};
use super::file::Origin;
use crate::ConfigError;
use crate::expand::expand;

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

/// Where a problem is: the origin and the host, to which a key is added.
struct At<'a> {
    origin: &'a str,
    id: &'a str,
}

impl At<'_> {
    fn err(&self, key: &str, detail: impl Into<String>) -> ConfigError {
        let full = if key.is_empty() {
            format!("docker.hosts.{}", self.id)
        } else {
            format!("docker.hosts.{}.{key}", self.id)
        };
        ConfigError::new(self.origin, full, detail)
    }
}

/// Validates one host. Every problem is reported, each naming the origin and the key.
pub(crate) fn build_host(
    id: &str,
    value: &Value,
    vars: &BTreeMap<String, String>,
    origin: &str,
) -> Result<HostEntry, Vec<ConfigError>> {
    let at = At { origin, id };
    let raw: RawHost = value.deserialize().map_err(|e| {
        // figment knows where inside the host the problem is.
        let inner = e.path.join(".");
        let detail = match &e.kind {
            figment::error::Kind::UnknownField(found, expected) => {
                format!("unknown key {found:?}: expected one of {}", expected.join(", "))
            }
            other => other.to_string(),
        };
        vec![at.err(&inner, detail)]
    })?;
    let mut problems = Vec::new();
    let kind = host_type(&at, raw.kind.as_deref(), &mut problems);
    let host = endpoint(&at, kind, raw.host.as_deref(), vars, &mut problems);
    let clienttls = client_tls(&at, raw.clienttls, host.as_ref(), &mut problems);
    let managed = match (kind, raw.managed) {
        (HostType::Managed, None) => {
            problems.push(at.err("managed", "is required for a managed host (executable, args, ...)"));
            None
        }
        (_, None) => None,
        (_, Some(m)) => Some(managed(&at, m, vars, &mut problems)),
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(HostEntry {
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

/// `type`: external, managed or remote.
fn host_type(at: &At<'_>, kind: Option<&str>, problems: &mut Vec<ConfigError>) -> HostType {
    match kind.map(str::to_ascii_lowercase).as_deref() {
        Some("external") => HostType::External,
        Some("managed") => HostType::Managed,
        Some("remote") => HostType::Remote,
        Some(other) => {
            problems.push(
                at.err("type", format!("unknown type {other:?}: expected external, managed or remote")),
            );
            HostType::External
        }
        None => {
            problems.push(at.err("type", "is required: external, managed or remote"));
            HostType::External
        }
    }
}

/// `host`, expanded and parsed; required for remote and managed hosts, a unix socket for
/// a managed one.
fn endpoint(
    at: &At<'_>,
    kind: HostType,
    text: Option<&str>,
    vars: &BTreeMap<String, String>,
    problems: &mut Vec<ConfigError>,
) -> Option<Endpoint> {
    let host = match text.map(|t| expand(t, vars)) {
        None => None,
        Some(Err(e)) => {
            problems.push(at.err("host", e.to_string()));
            None
        }
        Some(Ok(text)) => match text.parse::<Endpoint>() {
            Ok(endpoint) => Some(endpoint),
            Err(e) => {
                problems.push(at.err("host", e.to_string()));
                None
            }
        },
    };
    match (kind, &host, text.is_some()) {
        (HostType::Remote, None, false) => problems.push(at.err("host", "is required for a remote host")),
        (HostType::Managed, None, false) => {
            problems.push(at.err("host", "is required for a managed host: the unix:// socket it will serve"))
        }
        (HostType::Managed, Some(ep), _) if ep.socket_path().is_none() => problems.push(
            at.err("host", format!("a managed host serves a unix socket: expected unix:///path, not {ep}")),
        ),
        _ => {}
    }
    host
}

/// `clienttls`: every file readable, cert and key together, a CA; required for https.
fn client_tls(
    at: &At<'_>,
    raw: Option<RawTls>,
    host: Option<&Endpoint>,
    problems: &mut Vec<ConfigError>,
) -> Option<ClientTls> {
    if let Some(Endpoint::Tcp(tcp)) = host {
        if tcp.scheme() == dockhand_engine::TcpScheme::Https && raw.is_none() {
            problems.push(at.err("clienttls", "is required for an https:// host: ca, cert and key"));
        }
    }
    let tls = raw?;
    let to_path = |value: Option<String>| value.map(PathBuf::from);
    let (ca, cert, key) = (to_path(tls.ca), to_path(tls.cert), to_path(tls.key));
    for (name, path) in [("ca", &ca), ("cert", &cert), ("key", &key)] {
        if let Some(path) = path {
            if let Err(e) = std::fs::File::open(path) {
                problems.push(
                    at.err(&format!("clienttls.{name}"), format!("cannot read {}: {e}", path.display())),
                );
            }
        }
    }
    if cert.is_some() != key.is_some() {
        problems.push(at.err("clienttls", "cert and key go together: give both or neither"));
    }
    match ca {
        Some(ca) => Some(ClientTls { ca, cert, key }),
        None => {
            problems.push(at.err("clienttls.ca", "is required: the CA that signed the engine's certificate"));
            None
        }
    }
}

/// `managed`: env and args expanded, an executable, a known log level, a health check.
fn managed(
    at: &At<'_>,
    m: RawManaged,
    vars: &BTreeMap<String, String>,
    problems: &mut Vec<ConfigError>,
) -> ManagedSettings {
    let mut expand_all = |field: &str, items: Option<Vec<String>>| -> Vec<String> {
        items
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .filter_map(|(i, item)| match expand(&item, vars) {
                Ok(v) => Some(v),
                Err(e) => {
                    problems.push(at.err(&format!("managed.{field}[{i}]"), e.to_string()));
                    None
                }
            })
            .collect()
    };
    let env = expand_all("env", m.env);
    let args = expand_all("args", m.args);
    // The supervisor unmounts what a killed engine leaves within these: each must be an
    // absolute directory other than `/` (an empty `${VAR}` must not widen that to all).
    for flag in ["--data-root", "--exec-root"] {
        if let Some(value) = crate::argv::arg_value(&args, flag) {
            let path = std::path::Path::new(value);
            if !path.is_absolute() || path.parent().is_none() {
                problems.push(at.err(
                    "managed.args",
                    format!("{flag} must be an absolute directory other than /, not {value:?}"),
                ));
            }
        }
    }
    for (i, entry) in env.iter().enumerate() {
        if !entry.contains('=') || entry.starts_with('=') {
            problems.push(at.err(&format!("managed.env[{i}]"), format!("{entry:?} is not NAME=value")));
        }
    }
    let executable = m.executable.unwrap_or_default();
    if executable.trim().is_empty() {
        problems.push(at.err("managed.executable", "is required: a name on PATH or an absolute path"));
    }
    let log_level = m.loglevel.unwrap_or_else(|| "info".to_owned()).to_ascii_lowercase();
    if !LOG_LEVELS.contains(&log_level.as_str()) {
        problems.push(at.err(
            "managed.loglevel",
            format!("unknown level {log_level:?}: expected one of {}", LOG_LEVELS.join(", ")),
        ));
    }
    let health = m.healthcheck.unwrap_or(RawHealth { interval: None, retries: None });
    let health_interval = match health.interval.as_deref().map(parse_go_duration) {
        None => Duration::from_secs(1),
        Some(Ok(d)) if d > Duration::ZERO => d,
        Some(Ok(_)) => {
            problems.push(at.err("managed.healthcheck.interval", "must be more than 0"));
            Duration::from_secs(1)
        }
        Some(Err(e)) => {
            problems.push(at.err("managed.healthcheck.interval", e.to_string()));
            Duration::from_secs(1)
        }
    };
    let health_retries = health.retries.unwrap_or(10);
    if health_retries == 0 {
        problems.push(at.err("managed.healthcheck.retries", "must be at least 1"));
    }
    ManagedSettings {
        executable,
        env,
        args,
        log_level,
        log_prefix: m.logprefix.unwrap_or_default(),
        health_interval,
        health_retries,
    }
}
