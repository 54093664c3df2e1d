//! System calls: ping, version and info.

use http::{HeaderMap, Method};
use serde::{Deserialize, Serialize};

use crate::{ApiVersion, Client, Error};

/// What the engine says in the headers of `/_ping`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ping {
    /// `API-Version`: the newest API the engine speaks.
    #[serde(serialize_with = "display_opt")]
    pub api_version: Option<ApiVersion>,
    /// `OSType`: `linux` or `windows`.
    #[serde(rename = "OSType")]
    pub os_type: Option<String>,
    /// `Swarm`: the node's swarm state and role, such as `active/manager`
    /// (sent from API 1.44 on; older engines leave it out).
    pub swarm: Option<String>,
    /// `Docker-Experimental`: whether experimental features are on.
    pub experimental: bool,
    /// `Builder-Version`: the default builder (`1` classic, `2` BuildKit).
    pub builder_version: Option<String>,
    /// `Server`: the engine's product string, such as `Docker/20.10.24 (linux)`.
    pub server: Option<String>,
    /// `Libpod-Api-Version`: set when the engine is Podman's Docker-compatible service.
    pub podman: Option<String>,
}

impl Ping {
    fn from_headers(headers: &HeaderMap) -> Self {
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        Self {
            api_version: text("api-version").and_then(|v| v.parse().ok()),
            os_type: text("ostype"),
            swarm: text("swarm"),
            experimental: text("docker-experimental").is_some_and(|v| v == "true"),
            builder_version: text("builder-version"),
            server: text("server"),
            podman: text("libpod-api-version"),
        }
    }
}

fn display_opt<S: serde::Serializer>(v: &Option<ApiVersion>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}

/// The answer of `GET /version`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[non_exhaustive]
pub struct Version {
    /// The engine's release, such as `20.10.24+dfsg1`.
    pub version: String,
    /// The newest API the engine speaks.
    pub api_version: String,
    /// The oldest API the engine speaks.
    #[serde(rename = "MinAPIVersion")]
    pub min_api_version: String,
    /// The source commit.
    pub git_commit: String,
    /// The Go release it was built with.
    pub go_version: String,
    /// Its operating system.
    pub os: String,
    /// Its architecture.
    pub arch: String,
    /// The host's kernel.
    pub kernel_version: String,
    /// When it was built.
    pub build_time: String,
    /// The product name.
    pub platform: Platform,
    /// Its parts (engine, containerd, runc, ...), each with a version.
    pub components: Vec<Component>,
}

/// The product an engine belongs to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[non_exhaustive]
pub struct Platform {
    /// Such as `Docker Engine - Community`.
    pub name: String,
}

/// One component of an engine.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[non_exhaustive]
pub struct Component {
    /// Such as `Engine` or `containerd`.
    pub name: String,
    /// Its version.
    pub version: String,
}

/// The answer of `GET /info`: the fields dockhand uses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[non_exhaustive]
pub struct Info {
    /// The engine's ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// The host name.
    pub name: String,
    /// The engine's release.
    pub server_version: String,
    /// The host's operating system, such as `Debian GNU/Linux 12 (bookworm)`.
    pub operating_system: String,
    /// `linux` or `windows`.
    #[serde(rename = "OSType")]
    pub os_type: String,
    /// The host's architecture.
    pub architecture: String,
    /// The host's kernel.
    pub kernel_version: String,
    /// CPUs available to the engine.
    #[serde(rename = "NCPU")]
    pub ncpu: i64,
    /// Memory available to the engine, in bytes.
    pub mem_total: i64,
    /// Containers in any state.
    pub containers: i64,
    /// Running containers.
    pub containers_running: i64,
    /// Stopped containers.
    pub containers_stopped: i64,
    /// Images.
    pub images: i64,
    /// The log driver containers get when they name none (`json-file` by default).
    pub logging_driver: String,
    /// The storage driver.
    pub driver: String,
    /// Where the engine keeps its data.
    pub docker_root_dir: String,
    /// Security options, such as `name=seccomp,profile=default` or `name=rootless`.
    pub security_options: Vec<String>,
    /// The node's part in a swarm.
    pub swarm: SwarmInfo,
    /// The engine's clock when it answered (RFC 3339, nanoseconds).
    pub system_time: String,
    /// How the engine reaches registries: which it talks to without verified TLS.
    pub registry_config: RegistryConfig,
}

/// The `RegistryConfig` part of `GET /info`: the engine's `insecure-registries`, as
/// networks and as named registries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[non_exhaustive]
pub struct RegistryConfig {
    /// Networks whose registries are insecure (`127.0.0.0/8` by default).
    #[serde(rename = "InsecureRegistryCIDRs")]
    pub insecure_registry_cidrs: Vec<String>,
    /// Each registry the engine was told of, by name (`registry.example.com:5000`).
    pub index_configs: std::collections::BTreeMap<String, IndexInfo>,
}

/// One registry of [`RegistryConfig::index_configs`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[non_exhaustive]
pub struct IndexInfo {
    /// Its name, as configured.
    pub name: String,
    /// False for an insecure registry: plain HTTP, or TLS without verification.
    pub secure: bool,
    /// Docker Hub itself.
    pub official: bool,
}

impl Info {
    /// True when the engine runs rootless.
    pub fn is_rootless(&self) -> bool {
        self.security_options.iter().any(|o| o == "name=rootless")
    }
}

/// The `Swarm` part of `GET /info`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[non_exhaustive]
pub struct SwarmInfo {
    /// This node's ID, empty outside a swarm.
    #[serde(rename = "NodeID")]
    pub node_id: String,
    /// The address other nodes reach this one at.
    pub node_addr: String,
    /// `inactive`, `pending`, `active`, `error` or `locked`.
    pub local_node_state: String,
    /// True on a manager.
    pub control_available: bool,
    /// The swarm's last error.
    pub error: String,
    /// Nodes in the swarm (managers only).
    pub nodes: i64,
    /// Managers in the swarm (managers only).
    pub managers: i64,
}

impl SwarmInfo {
    /// True when the node is part of a swarm.
    pub fn is_active(&self) -> bool {
        self.local_node_state == "active"
    }
}

/// One event from `GET /events`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct EngineEvent {
    /// `container`, `image`, `volume`, `network`, `service`, `node`, ...
    #[serde(rename = "Type")]
    pub kind: String,
    /// `create`, `start`, `die`, `update`, ...
    #[serde(rename = "Action")]
    pub action: String,
    /// What it is about.
    #[serde(rename = "Actor")]
    pub actor: EventActor,
    /// `local` or `swarm`.
    pub scope: String,
    /// When, in nanoseconds since the epoch.
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
}

/// The object an event is about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[non_exhaustive]
pub struct EventActor {
    /// Its ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Its attributes (name, image, labels...).
    pub attributes: std::collections::BTreeMap<String, String>,
}

impl Client {
    /// `GET /events`: a stream of events as they happen, filtered (`type=container`,
    /// `label=...`). It has no idle timeout: quiet periods are normal. Set one with
    /// [`JsonStream::with_idle_timeout`](crate::JsonStream::with_idle_timeout).
    pub async fn events(&self, filters: &crate::Filters) -> Result<crate::JsonStream<EngineEvent>, Error> {
        let path = format!("/events{}", crate::containers::filter_query(filters));
        let (_, body) = self.open_stream(Method::GET, &path, None, None).await?;
        Ok(crate::JsonStream::new(body))
    }

    /// Pings the engine: `HEAD /_ping`, or `GET /_ping` when HEAD is refused.
    ///
    /// Unversioned, so it works before negotiation; it always makes a request.
    ///
    /// A ping also settles the API version when it is not negotiated yet, so a ping
    /// followed by calls costs one round trip less.
    pub async fn ping(&self) -> Result<Ping, Error> {
        let ping = self.ping_once().await?;
        self.learn_from_ping(&ping);
        Ok(ping)
    }

    pub(crate) async fn ping_once(&self) -> Result<Ping, Error> {
        let head = self.send(Method::HEAD, "/_ping", None).await?;
        if head.status().is_success() {
            return Ok(Ping::from_headers(head.headers()));
        }
        // Some engines and proxies refuse HEAD; GET is the original form.
        let get = self.send(Method::GET, "/_ping", None).await?;
        let get = self.check(&Method::GET, "/_ping", get).await?;
        Ok(Ping::from_headers(get.headers()))
    }

    /// `GET /version`.
    pub async fn version(&self) -> Result<Version, Error> {
        self.get_json("/version").await
    }

    /// `GET /info`.
    pub async fn info(&self) -> Result<Info, Error> {
        self.get_json("/info").await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_headers_are_read_case_insensitively() {
        let mut h = HeaderMap::new();
        h.insert("Api-Version", "1.41".parse().unwrap());
        h.insert("Ostype", "linux".parse().unwrap());
        h.insert("Swarm", "active/manager".parse().unwrap());
        h.insert("Docker-Experimental", "false".parse().unwrap());
        let p = Ping::from_headers(&h);
        assert_eq!(p.api_version, Some(ApiVersion::new(1, 41)));
        assert_eq!(p.os_type.as_deref(), Some("linux"));
        assert_eq!(p.swarm.as_deref(), Some("active/manager"));
        assert!(!p.experimental);
        assert_eq!(p.builder_version, None);
    }

    #[test]
    fn info_tolerates_unknown_and_missing_fields() {
        let info: Info = serde_json::from_str(
            r#"{"ID":"x","NCPU":2,"FutureField":{"a":1},"Swarm":{"LocalNodeState":"active","Cluster":{}},
               "SecurityOptions":["name=seccomp,profile=default","name=rootless"]}"#,
        )
        .unwrap();
        assert_eq!(info.id, "x");
        assert_eq!(info.ncpu, 2);
        assert!(info.swarm.is_active());
        assert!(info.is_rootless());
        assert_eq!(info.server_version, "");
    }
}
