//! Swarm configs: small objects the swarm's raft store keeps. Creating one whose name exists
//! fails everywhere in the swarm at once, and an update carries the object's version as a
//! compare-and-swap: what `dockhand-jobs` builds its locks on.

use std::collections::BTreeMap;

use base64::Engine as _;
use http::Method;
use serde::{Deserialize, Serialize};

use crate::query::{Filters, query, segment};
use crate::{Client, Error, ObjectVersion};

/// A config's spec: its name, labels and data (base64 on the wire).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[non_exhaustive]
pub struct ConfigSpec {
    /// Unique in the swarm.
    pub name: String,
    /// Labels: the only part an update may change.
    pub labels: BTreeMap<String, String>,
    /// The data, base64-encoded.
    pub data: String,
}

impl ConfigSpec {
    /// A config named `name` holding `data`.
    pub fn new(name: impl Into<String>, data: &[u8]) -> Self {
        Self {
            name: name.into(),
            labels: BTreeMap::new(),
            data: base64::engine::general_purpose::STANDARD.encode(data),
        }
    }

    /// Adds a label.
    pub fn with_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }
}

/// A config, as `GET /configs/{id}` returns it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[non_exhaustive]
pub struct SwarmConfig {
    /// Its ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Its version: the compare-and-swap token of an update.
    pub version: ObjectVersion,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When it last changed (RFC 3339).
    pub updated_at: String,
    /// Its spec.
    pub spec: ConfigSpec,
}

#[derive(Deserialize)]
struct Created {
    #[serde(rename = "ID")]
    id: String,
}

impl Client {
    /// `POST /configs/create`; returns the new config's ID. A name that exists anywhere in
    /// the swarm is a conflict ([`Error::is_conflict`]).
    pub async fn create_config(&self, spec: &ConfigSpec) -> Result<String, Error> {
        let body = self.json("config spec", spec)?;
        let created: Created = self.call(Method::POST, "/configs/create", Some(body)).await?;
        Ok(created.id)
    }

    /// `GET /configs`, such as with `Filters::new().with("label", "dockhand.lock")`.
    pub async fn configs(&self, filters: &Filters) -> Result<Vec<SwarmConfig>, Error> {
        let q = if filters.is_empty() { String::new() } else { query(&[("filters", filters.to_json())]) };
        self.get_json(&format!("/configs{q}")).await
    }

    /// `GET /configs/{id}`: by ID or name.
    pub async fn config(&self, id: &str) -> Result<SwarmConfig, Error> {
        self.get_json(&format!("/configs/{}", segment("config", id)?)).await
    }

    /// `POST /configs/{id}/update?version=N`: only the labels may differ from the current
    /// spec. A stale `version` fails ([`Error::is_out_of_sequence`]): someone else changed
    /// it first.
    pub async fn update_config(&self, id: &str, version: u64, spec: &ConfigSpec) -> Result<(), Error> {
        let path = format!(
            "/configs/{}/update{}",
            segment("config", id)?,
            query(&[("version", version.to_string())])
        );
        let body = self.json("config spec", spec)?;
        self.call_unit(Method::POST, &path, Some(body)).await
    }

    /// `DELETE /configs/{id}`.
    pub async fn remove_config(&self, id: &str) -> Result<(), Error> {
        self.call_unit(Method::DELETE, &format!("/configs/{}", segment("config", id)?), None).await
    }
}
