//! Images, build cache, volumes and networks: what clean-node prunes and what backups read.

use std::collections::BTreeMap;

use http::Method;
use serde::{Deserialize, Serialize};

use crate::containers::{PruneReport, filter_query};
use crate::query::{Filters, segment};
use crate::swarm::null_as_empty;
use crate::{Client, Error};

/// An image as `GET /images/json` lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[non_exhaustive]
pub struct ImageSummary {
    /// The image's ID (`sha256:...`).
    pub id: String,
    /// Its tags, such as `nginx:1.27`.
    #[serde(deserialize_with = "null_as_empty")]
    pub repo_tags: Vec<String>,
    /// Its digests, such as `nginx@sha256:...`.
    #[serde(deserialize_with = "null_as_empty")]
    pub repo_digests: Vec<String>,
    /// Creation time (Unix seconds).
    pub created: i64,
    /// Size in bytes.
    pub size: i64,
    /// Image labels.
    #[serde(deserialize_with = "null_as_map")]
    pub labels: BTreeMap<String, String>,
}

/// An image as `GET /images/{name}/json` describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[non_exhaustive]
pub struct ImageInspect {
    /// The image's ID.
    pub id: String,
    /// Its tags.
    #[serde(deserialize_with = "null_as_empty")]
    pub repo_tags: Vec<String>,
    /// Its digests.
    #[serde(deserialize_with = "null_as_empty")]
    pub repo_digests: Vec<String>,
    /// Size in bytes.
    pub size: i64,
    /// Creation time (RFC 3339).
    pub created: String,
}

/// A volume.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[non_exhaustive]
pub struct Volume {
    /// Its name.
    pub name: String,
    /// Its driver, such as `local`.
    pub driver: String,
    /// Where its data is on the host.
    pub mountpoint: String,
    /// Volume labels.
    #[serde(deserialize_with = "null_as_map")]
    pub labels: BTreeMap<String, String>,
    /// `local` or `global`.
    pub scope: String,
    /// Its size and how many containers use it; only `GET /system/df` fills it in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_data: Option<VolumeUsage>,
}

/// A volume's size and users, as `GET /system/df` reports them. `-1` means the engine did
/// not compute it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[non_exhaustive]
pub struct VolumeUsage {
    /// Bytes used, or -1.
    pub size: i64,
    /// Containers (running or stopped) that use it, or -1.
    pub ref_count: i64,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct DiskUsage {
    #[serde(deserialize_with = "null_as_empty_volumes")]
    volumes: Vec<Volume>,
}

fn null_as_empty_volumes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Volume>, D::Error> {
    Ok(Option::<Vec<Volume>>::deserialize(d)?.unwrap_or_default())
}

/// A network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[non_exhaustive]
pub struct Network {
    /// Its ID.
    pub id: String,
    /// Its name.
    pub name: String,
    /// `bridge`, `overlay`, `host`, `null`, ...
    pub driver: String,
    /// `local` or `swarm`.
    pub scope: String,
    /// True when standalone containers may attach to a swarm network.
    pub attachable: bool,
    /// True for the swarm's routing mesh network.
    pub ingress: bool,
    /// Network labels.
    #[serde(deserialize_with = "null_as_map")]
    pub labels: BTreeMap<String, String>,
}

fn null_as_map<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    Ok(Option::<BTreeMap<String, String>>::deserialize(d)?.unwrap_or_default())
}

#[derive(Deserialize)]
struct VolumeList {
    #[serde(rename = "Volumes", default, deserialize_with = "null_as_empty")]
    volumes: Vec<Volume>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ImagesPruned {
    #[serde(rename = "ImagesDeleted", deserialize_with = "null_as_empty")]
    deleted: Vec<ImageDeleted>,
    #[serde(rename = "SpaceReclaimed")]
    space: u64,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ImageDeleted {
    #[serde(rename = "Untagged")]
    untagged: Option<String>,
    #[serde(rename = "Deleted")]
    deleted: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Pruned {
    #[serde(alias = "VolumesDeleted", alias = "CachesDeleted", deserialize_with = "null_as_empty")]
    deleted: Vec<String>,
    #[serde(rename = "SpaceReclaimed")]
    space: u64,
}

/// What an image's registry says of it (`GET /distribution/{name}/json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[non_exhaustive]
pub struct DistributionInspect {
    /// The manifest (or index) the reference names.
    pub descriptor: Descriptor,
}

/// A content descriptor: what a registry serves under a digest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct Descriptor {
    /// Its media type, such as an OCI image index.
    #[serde(rename = "mediaType")]
    pub media_type: String,
    /// `sha256:…`.
    pub digest: String,
    /// Its size in bytes.
    pub size: u64,
}

impl Client {
    /// `GET /images/json`, filtered (`dangling=true`, `label=...`, `reference=...`).
    pub async fn images(&self, filters: &Filters) -> Result<Vec<ImageSummary>, Error> {
        self.get_json(&format!("/images/json{}", filter_query(filters))).await
    }

    /// `GET /images/{name}/json`.
    pub async fn image(&self, name: &str) -> Result<ImageInspect, Error> {
        self.get_json(&format!("/images/{}/json", segment("image", name)?)).await
    }

    /// `GET /distribution/{name}/json`: what the image's registry says of `image` (its
    /// manifest's digest), asked by the engine with `auth` when given, as
    /// `docker service update` does to pin a tag to a digest.
    pub async fn distribution(
        &self,
        image: &str,
        auth: Option<&crate::RegistryAuth>,
    ) -> Result<DistributionInspect, Error> {
        // The engine routes the name with its slashes, as the docker CLI sends it: only the
        // characters of an image reference are accepted, none needs escaping.
        let valid = !image.is_empty()
            && !image.starts_with('/')
            && image.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-/:@".contains(&b));
        if !valid {
            return Err(Error::InvalidArgument {
                what: format!("image {image:?}"),
                detail: "not an image reference".to_owned(),
            });
        }
        let path = format!("/distribution/{image}/json");
        match auth {
            Some(auth) => {
                let header = auth.header_value();
                self.call_with_header(Method::GET, &path, None, ("x-registry-auth", &header)).await
            }
            None => self.get_json(&path).await,
        }
    }

    /// `POST /images/create?fromSrc=-`: imports the root filesystem in `tar` as the image
    /// `reference` (`repo:tag`), as `docker import` does, with `changes` (Dockerfile
    /// instructions such as `ENTRYPOINT ["/app"]`, as `docker import --change`). An error
    /// the engine reports in its progress stream is an error here.
    pub async fn import_image(
        &self,
        reference: &str,
        changes: &[String],
        tar: bytes::Bytes,
    ) -> Result<(), Error> {
        let (repo, tag) = split_tag(reference);
        let mut params =
            vec![("fromSrc", "-".to_owned()), ("repo", repo.to_owned()), ("tag", tag.to_owned())];
        params.extend(changes.iter().map(|c| ("changes", c.clone())));
        let path = format!("/images/create{}", crate::query::query(&params));
        let (versioned, body) = self.call_raw(&Method::POST, &path, Some(tar), None).await?;
        self.stream_result(&versioned, &body).map(drop)
    }

    /// `POST /images/{name}/tag`: tags the image `name` as `reference` (`repo:tag`).
    pub async fn tag_image(&self, name: &str, reference: &str) -> Result<(), Error> {
        let (repo, tag) = split_tag(reference);
        let path = format!(
            "/images/{}/tag{}",
            segment("image", name)?,
            crate::query::query(&[("repo", repo.to_owned()), ("tag", tag.to_owned())])
        );
        self.call_unit(Method::POST, &path, None).await
    }

    /// `POST /images/{name}/push?tag=`: pushes `reference` (`repo:tag`) to its registry
    /// with `auth` (the engine asks the registry without credentials when `None`), and
    /// answers the digest of the manifest it pushed (`sha256:...`). An error the engine
    /// reports in its progress stream is an error here.
    pub async fn push_image(
        &self,
        reference: &str,
        auth: Option<&crate::RegistryAuth>,
    ) -> Result<String, Error> {
        let (repo, tag) = split_tag(reference);
        let path = format!(
            "/images/{}/push{}",
            segment("image", repo)?,
            crate::query::query(&[("tag", tag.to_owned())])
        );
        // The engine wants the header even without credentials: an empty JSON object.
        let header = auth.map_or_else(|| "e30=".to_owned(), crate::RegistryAuth::header_value);
        let (versioned, body) =
            self.call_raw(&Method::POST, &path, None, Some(("x-registry-auth", &header))).await?;
        let lines = self.stream_result(&versioned, &body)?;
        lines
            .iter()
            .find_map(|l| l.pointer("/aux/Digest").and_then(serde_json::Value::as_str).map(str::to_owned))
            .ok_or_else(|| Error::Stream {
                context: format!("POST {versioned} on {}", self.url()),
                detail: "the engine's answer names no pushed digest".to_owned(),
                source: None,
            })
    }

    /// The JSON lines of a progress stream (pull, push, import), or the first error one
    /// reports.
    fn stream_result(&self, versioned: &str, body: &[u8]) -> Result<Vec<serde_json::Value>, Error> {
        let mut lines = Vec::new();
        for line in body.split(|&b| b == b'\n').filter(|l| !l.trim_ascii().is_empty()) {
            let value: serde_json::Value = serde_json::from_slice(line).unwrap_or_default();
            let error = value.get("error").or_else(|| value.pointer("/errorDetail/message"));
            if let Some(message) = error.and_then(serde_json::Value::as_str) {
                return Err(Error::Stream {
                    context: format!("POST {versioned} on {}", self.url()),
                    detail: format!("the engine reported: {message}"),
                    source: None,
                });
            }
            lines.push(value);
        }
        Ok(lines)
    }

    /// `DELETE /images/{name}?force=true`: untags it and removes what no other tag holds.
    pub async fn remove_image(&self, name: &str) -> Result<(), Error> {
        let path = format!(
            "/images/{}{}",
            segment("image", name)?,
            crate::query::query(&[("force", "true".to_owned())])
        );
        self.call_unit(Method::DELETE, &path, None).await
    }

    /// `POST /images/prune`. Filters: `dangling=false` for every unused image (as
    /// `docker image prune -a`), `until=24h`, `label=...`.
    pub async fn prune_images(&self, filters: &Filters) -> Result<PruneReport, Error> {
        let pruned: ImagesPruned =
            self.call(Method::POST, &format!("/images/prune{}", filter_query(filters)), None).await?;
        let deleted = pruned.deleted.into_iter().filter_map(|d| d.deleted.or(d.untagged)).collect();
        Ok(PruneReport { deleted, space_reclaimed: pruned.space })
    }

    /// `POST /build/prune`: the builder's cache (filters: `until`, ...).
    pub async fn prune_build_cache(&self, filters: &Filters) -> Result<PruneReport, Error> {
        let pruned: Pruned =
            self.call(Method::POST, &format!("/build/prune{}", filter_query(filters)), None).await?;
        Ok(PruneReport { deleted: pruned.deleted, space_reclaimed: pruned.space })
    }

    /// `GET /system/df`: every volume with its size and how many containers use it.
    pub async fn volume_usage(&self) -> Result<Vec<Volume>, Error> {
        let usage: DiskUsage = self.get_json("/system/df").await?;
        Ok(usage.volumes)
    }

    /// `POST /volumes/create`: a local volume named `name`, with `labels`.
    pub async fn create_volume(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<Volume, Error> {
        let body =
            self.json("volume", &serde_json::json!({ "Name": name, "Driver": "local", "Labels": labels }))?;
        self.call(Method::POST, "/volumes/create", Some(body)).await
    }

    /// `GET /volumes`, filtered (`name=`, `label=`, `dangling=true`).
    pub async fn volumes(&self, filters: &Filters) -> Result<Vec<Volume>, Error> {
        let list: VolumeList = self.get_json(&format!("/volumes{}", filter_query(filters))).await?;
        Ok(list.volumes)
    }

    /// `GET /volumes/{name}`.
    pub async fn volume(&self, name: &str) -> Result<Volume, Error> {
        self.get_json(&format!("/volumes/{}", segment("volume", name)?)).await
    }

    /// `POST /volumes/prune`: unused volumes (anonymous ones only from API 1.42 unless
    /// filtered with `all=true`).
    pub async fn prune_volumes(&self, filters: &Filters) -> Result<PruneReport, Error> {
        let pruned: Pruned =
            self.call(Method::POST, &format!("/volumes/prune{}", filter_query(filters)), None).await?;
        Ok(PruneReport { deleted: pruned.deleted, space_reclaimed: pruned.space })
    }

    /// `GET /networks`, filtered (`driver=overlay`, `scope=swarm`, `name=`).
    pub async fn networks(&self, filters: &Filters) -> Result<Vec<Network>, Error> {
        self.get_json(&format!("/networks{}", filter_query(filters))).await
    }

    /// `POST /networks/create`: an attachable overlay network of the swarm, internal (no
    /// way out of it), with `labels`; its ID.
    pub async fn create_overlay_network(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<String, Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Created {
            id: String,
        }
        let body = self.json(
            "network",
            &serde_json::json!({
                "Name": name, "Driver": "overlay", "Attachable": true, "Internal": true,
                "CheckDuplicate": true, "Labels": labels,
            }),
        )?;
        let created: Created = self.call(Method::POST, "/networks/create", Some(body)).await?;
        Ok(created.id)
    }

    /// `DELETE /networks/{id}`; one already gone counts as removed.
    pub async fn remove_network(&self, id: &str) -> Result<(), Error> {
        match self.call_unit(Method::DELETE, &format!("/networks/{}", segment("network", id)?), None).await {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }

    /// `GET /networks/{id}`.
    pub async fn network(&self, id: &str) -> Result<Network, Error> {
        self.get_json(&format!("/networks/{}", segment("network", id)?)).await
    }
}

/// `repo:tag` split at the tag's colon (not a registry port's); `latest` without one.
fn split_tag(reference: &str) -> (&str, &str) {
    match reference.rsplit_once(':').filter(|(_, t)| !t.contains('/')) {
        Some((repo, tag)) => (repo, tag),
        None => (reference, "latest"),
    }
}
