//! Containers: list, inspect, prune, and their files as a streamed tar archive.

use std::collections::BTreeMap;

use base64::Engine as _;
use http::Method;
use serde::{Deserialize, Serialize};

use crate::body::ByteStream;
use crate::query::{Filters, query, segment};
use crate::{Client, Error};

/// A container as `GET /containers/json` lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[non_exhaustive]
pub struct ContainerSummary {
    /// The container's ID.
    pub id: String,
    /// Its names, each with a leading `/`.
    pub names: Vec<String>,
    /// The image as given.
    pub image: String,
    /// The image's ID.
    #[serde(rename = "ImageID")]
    pub image_id: String,
    /// `created`, `running`, `paused`, `restarting`, `exited`, `removing` or `dead`.
    pub state: String,
    /// A human summary, such as `Up 3 minutes`.
    pub status: String,
    /// Container labels (swarm puts `com.docker.swarm.*` here).
    pub labels: BTreeMap<String, String>,
}

/// A container as `GET /containers/{id}/json` describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[non_exhaustive]
pub struct ContainerInspect {
    /// The container's ID.
    pub id: String,
    /// Its name, with a leading `/`.
    pub name: String,
    /// Its state.
    pub state: ContainerState,
    /// Its configuration (image, labels).
    pub config: ContainerConfig,
    /// Its mounts: volumes and binds.
    pub mounts: Vec<Mount>,
}

/// A container's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[non_exhaustive]
pub struct ContainerState {
    /// `running`, `exited`, ...
    pub status: String,
    /// True while it runs.
    pub running: bool,
    /// Its exit code, once exited.
    pub exit_code: i64,
}

/// The parts of a container's configuration dockhand reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[non_exhaustive]
pub struct ContainerConfig {
    /// The image as given.
    pub image: String,
    /// Container labels.
    pub labels: BTreeMap<String, String>,
}

/// A mount of a container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[non_exhaustive]
pub struct Mount {
    /// `volume`, `bind`, `tmpfs`, ...
    #[serde(rename = "Type")]
    pub kind: String,
    /// The volume's name, for volumes.
    pub name: String,
    /// Where it comes from on the host.
    pub source: String,
    /// Where it is in the container.
    pub destination: String,
    /// True when writable.
    #[serde(rename = "RW")]
    pub rw: bool,
}

/// What a prune removed. The same shape for containers, images, volumes and build cache.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct PruneReport {
    /// IDs (or names, for volumes) of what was removed.
    pub deleted: Vec<String>,
    /// Bytes freed.
    pub space_reclaimed: u64,
}

#[derive(Deserialize)]
struct ContainersPruned {
    #[serde(rename = "ContainersDeleted", default, deserialize_with = "crate::swarm::null_as_empty")]
    deleted: Vec<String>,
    #[serde(rename = "SpaceReclaimed", default)]
    space: u64,
}

/// What `X-Docker-Container-Path-Stat` says about a path in a container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct PathStat {
    /// The base name.
    pub name: String,
    /// Its size in bytes (of the file itself; a directory's is its entry size).
    pub size: i64,
    /// Go's `os.FileMode` bits (the directory bit is `1 << 31`).
    pub mode: u32,
    /// Modification time (RFC 3339).
    pub mtime: String,
    /// The target, for a symbolic link.
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}

impl PathStat {
    /// True for a directory.
    pub fn is_dir(&self) -> bool {
        self.mode & (1 << 31) != 0
    }

    /// Decodes the header: standard base64 (with padding) of JSON.
    pub(crate) fn from_header(value: &str) -> Result<Self, String> {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(value.trim())
            .map_err(|e| format!("X-Docker-Container-Path-Stat is not base64: {e}"))?;
        serde_json::from_slice(&raw).map_err(|e| format!("X-Docker-Container-Path-Stat is not JSON: {e}"))
    }
}

const PATH_STAT: &str = "x-docker-container-path-stat";

/// A plain container to create (`POST /containers/create`): an image, its argv, labels
/// and named volumes, without a network unless one is set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct NewContainer {
    /// The image.
    pub image: String,
    /// The argv after the image's entrypoint.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cmd: Vec<String>,
    /// The entrypoint, when it replaces the image's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// Labels.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Keep stdin open, for an exec that reads it.
    pub open_stdin: bool,
    /// Mounts, network and removal.
    pub host_config: HostConfig,
}

/// The part of a container's spec the engine calls `HostConfig`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct HostConfig {
    /// Volume and bind mounts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<HostMount>,
    /// `none` by default: no network at all.
    pub network_mode: String,
    /// Removed by the engine when it stops.
    pub auto_remove: bool,
    /// A read-only root filesystem.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub readonly_rootfs: bool,
    /// Capabilities dropped (`ALL` for every one).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cap_drop: Vec<String>,
    /// Capabilities added after the drops.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<String>,
    /// `no-new-privileges` and the like.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub security_opt: Vec<String>,
    /// tmpfs mounts: path to options.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tmpfs: BTreeMap<String, String>,
    /// Every capability and device of the host (a node's `clean.exec.host`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub privileged: bool,
    /// `host`: the host's PID namespace.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub pid_mode: String,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            mounts: Vec::new(),
            network_mode: "none".to_owned(),
            auto_remove: false,
            readonly_rootfs: false,
            cap_drop: Vec::new(),
            cap_add: Vec::new(),
            security_opt: Vec::new(),
            tmpfs: BTreeMap::new(),
            privileged: false,
            pid_mode: String::new(),
        }
    }
}

/// One mount of a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct HostMount {
    /// `volume` or `bind`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// The volume's name, or the host path.
    pub source: String,
    /// Where in the container.
    pub target: String,
    /// Read-only.
    pub read_only: bool,
}

impl NewContainer {
    /// A container of `image` running `cmd`, with no network.
    pub fn new<S: Into<String>>(image: impl Into<String>, cmd: impl IntoIterator<Item = S>) -> Self {
        Self { image: image.into(), cmd: cmd.into_iter().map(Into::into).collect(), ..Self::default() }
    }

    /// Adds a label.
    pub fn with_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Mounts the named volume at `target`.
    pub fn with_volume(
        mut self,
        volume: impl Into<String>,
        target: impl Into<String>,
        read_only: bool,
    ) -> Self {
        self.host_config.mounts.push(HostMount {
            kind: "volume".to_owned(),
            source: volume.into(),
            target: target.into(),
            read_only,
        });
        self
    }

    /// Bind-mounts `source`, a directory on the engine's host, at `target`. Creating the
    /// container fails when `source` does not exist there.
    pub fn with_bind(
        mut self,
        source: impl Into<String>,
        target: impl Into<String>,
        read_only: bool,
    ) -> Self {
        self.host_config.mounts.push(HostMount {
            kind: "bind".to_owned(),
            source: source.into(),
            target: target.into(),
            read_only,
        });
        self
    }

    /// Replaces the image's entrypoint.
    pub fn with_entrypoint<S: Into<String>>(mut self, entrypoint: impl IntoIterator<Item = S>) -> Self {
        self.entrypoint = Some(entrypoint.into_iter().map(Into::into).collect());
        self
    }

    /// Joins `network` (a network's name or ID; an overlay network must be attachable)
    /// instead of none.
    pub fn with_network(mut self, network: impl Into<String>) -> Self {
        self.host_config.network_mode = network.into();
        self
    }

    /// Hardens the container: a read-only root filesystem (with `/tmp` a tmpfs), every
    /// capability dropped but `keep`, and `no-new-privileges`.
    pub fn hardened(mut self, keep: &[&str]) -> Self {
        let h = &mut self.host_config;
        h.readonly_rootfs = true;
        h.cap_drop = vec!["ALL".to_owned()];
        h.cap_add = keep.iter().map(|k| (*k).to_owned()).collect();
        h.security_opt = vec!["no-new-privileges".to_owned()];
        h.tmpfs.insert("/tmp".to_owned(), "rw,noexec,nosuid,size=64m".to_owned());
        self
    }

    /// Removed by the engine once it stops.
    pub fn auto_remove(mut self) -> Self {
        self.host_config.auto_remove = true;
        self
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Created {
    id: String,
}

impl Client {
    /// `GET /containers/json`: all containers (`all=true`), filtered.
    pub async fn containers(&self, filters: &Filters) -> Result<Vec<ContainerSummary>, Error> {
        let mut pairs = vec![("all", "true".to_owned())];
        if !filters.is_empty() {
            pairs.push(("filters", filters.to_json()));
        }
        self.get_json(&format!("/containers/json{}", query(&pairs))).await
    }

    /// `GET /containers/{id}/json`.
    pub async fn container(&self, id: &str) -> Result<ContainerInspect, Error> {
        self.get_json(&format!("/containers/{}/json", segment("container", id)?)).await
    }

    /// `POST /containers/prune`: removes stopped containers (filters: `until`, `label`).
    pub async fn prune_containers(&self, filters: &Filters) -> Result<PruneReport, Error> {
        let path = format!("/containers/prune{}", filter_query(filters));
        let pruned: ContainersPruned = self.call(Method::POST, &path, None).await?;
        Ok(PruneReport { deleted: pruned.deleted, space_reclaimed: pruned.space })
    }

    /// `POST /containers/create?name=`, then `POST /containers/{id}/start`: the new
    /// container's ID. A container that fails to start is removed.
    pub async fn run_container(&self, name: &str, spec: &NewContainer) -> Result<String, Error> {
        let body = self.json("container spec", spec)?;
        let path = format!("/containers/create{}", query(&[("name", name.to_owned())]));
        let created: Created = self.call(Method::POST, &path, Some(body)).await?;
        let start = format!("/containers/{}/start", segment("container", &created.id)?);
        if let Err(err) = self.call_unit(Method::POST, &start, None).await {
            let _ = self.remove_container(&created.id).await;
            return Err(err);
        }
        Ok(created.id)
    }

    /// `DELETE /containers/{id}?force=true`: stops (SIGKILL) and removes it, keeping its
    /// volumes. One already gone, or already being removed, counts as removed.
    pub async fn remove_container(&self, id: &str) -> Result<(), Error> {
        let path =
            format!("/containers/{}{}", segment("container", id)?, query(&[("force", "true".to_owned())]));
        match self.call_unit(Method::DELETE, &path, None).await {
            Err(e) if e.status() == Some(404) => Ok(()),
            Err(e) if e.status() == Some(409) && e.to_string().contains("already in progress") => Ok(()),
            other => other,
        }
    }

    /// `HEAD /containers/{id}/archive?path=`: what is at `path`, without its content.
    pub async fn archive_stat(&self, id: &str, path: &str) -> Result<PathStat, Error> {
        let url = self.versioned(&archive_path(id, path)?).await?;
        let response = self.send(Method::HEAD, &url, None).await?;
        let response = self.check(&Method::HEAD, &url, response).await?;
        self.path_stat(&Method::HEAD, &url, response.headers())
    }

    /// `GET /containers/{id}/archive?path=`: a tar of `path`, streamed as it comes.
    pub async fn archive(&self, id: &str, path: &str) -> Result<(PathStat, ByteStream), Error> {
        let (headers, body) =
            self.open_stream(Method::GET, &archive_path(id, path)?, None, self.response_timeout()).await?;
        let stat = self.path_stat(&Method::GET, body.context(), &headers)?;
        Ok((stat, body))
    }

    fn path_stat(&self, method: &Method, path: &str, headers: &http::HeaderMap) -> Result<PathStat, Error> {
        let value = headers.get(PATH_STAT).and_then(|v| v.to_str().ok()).unwrap_or("");
        PathStat::from_header(value).map_err(|detail| Error::Decode {
            endpoint: self.url().to_owned(),
            method: method.to_string(),
            path: path.to_owned(),
            source: detail.into(),
        })
    }
}

fn archive_path(id: &str, path: &str) -> Result<String, Error> {
    Ok(format!("/containers/{}/archive{}", segment("container", id)?, query(&[("path", path.to_owned())])))
}

/// `?filters=...`, or nothing.
pub(crate) fn filter_query(filters: &Filters) -> String {
    if filters.is_empty() { String::new() } else { query(&[("filters", filters.to_json())]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_stat_is_standard_base64() {
        // `{"name":"etc","size":4096,"mode":2147484141,"mtime":"2024-01-01T00:00:00Z","linkTarget":""}`
        let json =
            r#"{"name":"etc","size":4096,"mode":2147484141,"mtime":"2024-01-01T00:00:00Z","linkTarget":""}"#;
        let header = base64::engine::general_purpose::STANDARD.encode(json);
        assert!(header.contains('+') || header.contains('/') || header.ends_with('='), "{header}");
        let stat = PathStat::from_header(&header).unwrap();
        assert_eq!(stat.name, "etc");
        assert!(stat.is_dir());
        assert!(PathStat::from_header("not base64!").unwrap_err().contains("not base64"));
    }
}
