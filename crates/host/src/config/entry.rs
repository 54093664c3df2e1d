//! One host as the configuration describes it, once validated: its type, endpoint, client
//! TLS files and, for a managed host, how dockhand starts its engine ([`HostEntry`]).

use std::path::PathBuf;
use std::time::Duration;

use dockhand_engine::{Endpoint, TlsSettings};

use super::file::Origin;

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
pub struct HostEntry {
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

impl HostEntry {
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
