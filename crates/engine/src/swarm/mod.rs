//! Swarm objects: services, nodes and tasks.
//!
//! The types carry the fields dockhand reads. Specs also keep every field they do not
//! name, privately, so that a spec read from the engine and sent back (an update) loses
//! nothing a newer engine put in it.

use http::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::query::{Filters, query, segment};
use crate::swarm::nodes::Node;
use crate::swarm::nodes::NodeSpec;
use crate::swarm::nodes::Task;
use crate::swarm::spec::Service;
use crate::swarm::spec::ServiceCreated;
use crate::swarm::spec::ServiceSpec;
use crate::swarm::spec::ServiceSummary;
use crate::swarm::spec::TaskSpec;
use crate::{Client, Error, RegistryAuth};

pub(crate) mod nodes;
pub(crate) mod spec;

/// Fields of a spec that dockhand does not name, kept for round-trips.
type Other = Map<String, Value>;

/// An object's version, which an update must quote (optimistic concurrency).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ObjectVersion {
    /// The raft index; u64, as the engine's counter outgrows i64-safe JSON numbers in JS.
    pub index: u64,
}

pub(crate) fn null_as_empty<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// A service's log output, chunk by chunk.
pub struct LogStream {
    demux: crate::stream::Demux<crate::body::BodyReader>,
}

impl std::fmt::Debug for LogStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStream").finish_non_exhaustive()
    }
}

impl LogStream {
    /// The next piece of output; `None` at the end (never, when following).
    pub async fn next(&mut self) -> Option<Result<crate::Chunk, Error>> {
        self.demux.next().await
    }
}

/// Checks an ID or name that goes into a path.
fn object(kind: &str, id: &str) -> Result<String, Error> {
    segment(kind, id)
}

fn filtered(filters: &Filters, extra: &[(&str, String)]) -> String {
    let mut pairs: Vec<(&str, String)> = Vec::new();
    if !filters.is_empty() {
        pairs.push(("filters", filters.to_json()));
    }
    pairs.extend(extra.iter().cloned());
    query(&pairs)
}

/// How `update_service` treats credentials and rollbacks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UpdateOptions {
    /// Credentials for pulling the new image.
    pub registry_auth: Option<RegistryAuth>,
    /// Without credentials: reuse those stored with the `spec` (default) or the
    /// `previous-spec`.
    pub registry_auth_from: Option<&'static str>,
    /// Roll back to the previous spec instead (`rollback=previous`); the spec sent is then
    /// the current one, unchanged.
    pub rollback: bool,
}

impl UpdateOptions {
    /// No credentials, no rollback.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends these credentials for pulling the image.
    pub fn with_registry_auth(mut self, auth: RegistryAuth) -> Self {
        self.registry_auth = Some(auth);
        self
    }

    /// Without credentials, reuse those stored with the previous spec.
    pub fn with_auth_from_previous_spec(mut self) -> Self {
        self.registry_auth_from = Some("previous-spec");
        self
    }

    /// Rolls back to the previous spec.
    pub fn rollback(mut self) -> Self {
        self.rollback = true;
        self
    }
}

/// What `POST /services/{id}/update` answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[non_exhaustive]
pub struct ServiceUpdated {
    /// Warnings, such as an image digest that could not be resolved.
    #[serde(deserialize_with = "null_as_empty")]
    pub warnings: Vec<String>,
}

/// Which logs `service_logs` returns.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogsOptions {
    /// Keep streaming new lines (no idle timeout then).
    pub follow: bool,
    /// Include stdout.
    pub stdout: bool,
    /// Include stderr.
    pub stderr: bool,
    /// Only the last N lines of each task (`None`: all).
    pub tail: Option<u64>,
    /// Prefix each line with its RFC 3339 time.
    pub timestamps: bool,
}

impl Default for LogsOptions {
    fn default() -> Self {
        Self { follow: false, stdout: true, stderr: true, tail: None, timestamps: false }
    }
}

impl LogsOptions {
    /// All of stdout and stderr, without following.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps streaming new lines.
    pub fn follow(mut self) -> Self {
        self.follow = true;
        self
    }

    /// Only the last `lines` of each task.
    pub fn tail(mut self, lines: u64) -> Self {
        self.tail = Some(lines);
        self
    }

    /// Prefixes each line with its time.
    pub fn timestamps(mut self) -> Self {
        self.timestamps = true;
        self
    }
}

fn logs_query(options: &LogsOptions) -> String {
    let mut pairs = vec![
        ("follow", options.follow.to_string()),
        ("stdout", options.stdout.to_string()),
        ("stderr", options.stderr.to_string()),
        ("timestamps", options.timestamps.to_string()),
    ];
    if let Some(tail) = options.tail {
        pairs.push(("tail", tail.to_string()));
    }
    query(&pairs)
}

impl Client {
    /// `POST /services/{id}/update?version=N`: replaces the spec. `version` must be the
    /// one just read (`service.version.index`); the engine refuses a stale one.
    pub async fn update_service(
        &self,
        id: &str,
        version: u64,
        spec: &ServiceSpec,
        options: &UpdateOptions,
    ) -> Result<ServiceUpdated, Error> {
        let mut pairs = vec![("version", version.to_string())];
        if let Some(from) = options.registry_auth_from {
            pairs.push(("registryAuthFrom", from.to_owned()));
        }
        if options.rollback {
            pairs.push(("rollback", "previous".to_owned()));
        }
        let path = format!("/services/{}/update{}", object("service", id)?, query(&pairs));
        let body = self.json("service spec", spec)?;
        match &options.registry_auth {
            Some(auth) => {
                let header = auth.header_value();
                self.call_with_header(Method::POST, &path, Some(body), ("x-registry-auth", &header)).await
            }
            None => self.call(Method::POST, &path, Some(body)).await,
        }
    }

    /// Reads the service, lets `change` edit its spec, and updates it with the version just
    /// read. The engine bumps a service's version on its own while an update settles, so
    /// an "update out of sequence" refusal is retried (up to 10 times) with a fresh read.
    /// `change` may refuse with an error, which is returned as is.
    pub async fn modify_service(
        &self,
        id: &str,
        options: &UpdateOptions,
        mut change: impl FnMut(&mut ServiceSpec) -> Result<(), Error>,
    ) -> Result<ServiceUpdated, Error> {
        let mut attempt = 0;
        loop {
            let service = self.service(id).await?;
            let mut spec = service.spec.clone();
            change(&mut spec)?;
            match self.update_service(&service.id, service.version.index, &spec, options).await {
                Err(e) if attempt < 10 && e.to_string().contains("update out of sequence") => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(50 * attempt)).await;
                }
                result => return result,
            }
        }
    }

    /// Sets a replicated service's replica count, keeping the rest of its spec.
    pub async fn scale_service(&self, id: &str, replicas: u64) -> Result<ServiceUpdated, Error> {
        self.modify_service(id, &UpdateOptions::default(), |spec| {
            if spec.replicas().is_none() {
                return Err(Error::InvalidArgument {
                    what: format!("service {id:?}"),
                    detail: "only a replicated service can be scaled".to_owned(),
                });
            }
            *spec = std::mem::take(spec).with_replicas(replicas);
            Ok(())
        })
        .await
    }

    /// `GET /services/{id}/logs`: the tasks' output, demultiplexed as it arrives.
    pub async fn service_logs(&self, id: &str, options: &LogsOptions) -> Result<LogStream, Error> {
        let service = self.service(id).await?;
        let path = format!("/services/{}/logs{}", object("service", id)?, logs_query(options));
        self.logs(&path, &service.spec.task_template, options).await
    }

    /// `GET /tasks/{id}/logs`: one task's output, as [`Client::service_logs`]. An engine
    /// whose log driver keeps nothing it can read (`syslog`, `none`, …) answers an error.
    pub async fn task_logs(&self, id: &str, options: &LogsOptions) -> Result<LogStream, Error> {
        let task = self.task(id).await?;
        let path = format!("/tasks/{}/logs{}", object("task", id)?, logs_query(options));
        self.logs(&path, &task.spec, options).await
    }

    /// `GET /containers/{id}/logs`: a container's output (one made without a TTY), as
    /// [`Client::service_logs`].
    pub async fn container_logs(&self, id: &str, options: &LogsOptions) -> Result<LogStream, Error> {
        let path = format!("/containers/{}/logs{}", object("container", id)?, logs_query(options));
        self.open_logs(&path, false, options).await
    }

    async fn logs(&self, path: &str, spec: &TaskSpec, options: &LogsOptions) -> Result<LogStream, Error> {
        let tty = spec.container_spec.other.get("TTY").and_then(Value::as_bool).unwrap_or(false);
        self.open_logs(path, tty, options).await
    }

    async fn open_logs(&self, path: &str, tty: bool, options: &LogsOptions) -> Result<LogStream, Error> {
        let idle = if options.follow { None } else { self.response_timeout() };
        let (_, body) = self.open_stream(Method::GET, path, None, idle).await?;
        let context = body.context().to_owned();
        Ok(LogStream {
            demux: crate::stream::Demux::new(crate::body::BodyReader::new(body.into_body()), !tty, context),
        })
    }

    /// `GET /services` with task counts, decoded into [`ServiceSummary`]: only what a
    /// listing shows.
    pub async fn service_summaries(&self, filters: &Filters) -> Result<Vec<ServiceSummary>, Error> {
        self.get_json(&format!("/services{}", filtered(filters, &[("status", "true".to_owned())]))).await
    }

    /// `GET /services`, with task counts (`status=true`).
    pub async fn services(&self, filters: &Filters) -> Result<Vec<Service>, Error> {
        self.get_json(&format!("/services{}", filtered(filters, &[("status", "true".to_owned())]))).await
    }

    /// `GET /services/{id}`: by ID, name or unique ID prefix.
    pub async fn service(&self, id: &str) -> Result<Service, Error> {
        self.get_json(&format!("/services/{}", object("service", id)?)).await
    }

    /// `POST /services/create`.
    pub async fn create_service(&self, spec: &ServiceSpec) -> Result<ServiceCreated, Error> {
        let body = self.json("service spec", spec)?;
        self.call(Method::POST, "/services/create", Some(body)).await
    }

    /// [`Client::create_service`], with credentials for pulling its image
    /// (`X-Registry-Auth`; the engine keeps them for the tasks, out of the inspected spec).
    pub async fn create_service_with_auth(
        &self,
        spec: &ServiceSpec,
        auth: &RegistryAuth,
    ) -> Result<ServiceCreated, Error> {
        let body = self.json("service spec", spec)?;
        let header = auth.header_value();
        self.call_with_header(Method::POST, "/services/create", Some(body), ("x-registry-auth", &header))
            .await
    }

    /// `DELETE /services/{id}`.
    pub async fn remove_service(&self, id: &str) -> Result<(), Error> {
        self.call_unit(Method::DELETE, &format!("/services/{}", object("service", id)?), None).await
    }

    /// `GET /nodes`.
    pub async fn nodes(&self, filters: &Filters) -> Result<Vec<Node>, Error> {
        self.get_json(&format!("/nodes{}", filtered(filters, &[]))).await
    }

    /// `POST /nodes/{id}/update?version=N`: replaces a node's spec (labels, availability,
    /// role). `version` must be the one just read (`node.version.index`).
    pub async fn update_node(&self, id: &str, version: u64, spec: &NodeSpec) -> Result<(), Error> {
        let path =
            format!("/nodes/{}/update{}", object("node", id)?, query(&[("version", version.to_string())]));
        let body = self.json("node spec", spec)?;
        self.call_unit(Method::POST, &path, Some(body)).await
    }

    /// `GET /nodes/{id}`: by ID or name.
    pub async fn node(&self, id: &str) -> Result<Node, Error> {
        self.get_json(&format!("/nodes/{}", object("node", id)?)).await
    }

    /// `GET /tasks`, such as with `Filters::new().with("service", "web")`.
    pub async fn tasks(&self, filters: &Filters) -> Result<Vec<Task>, Error> {
        self.get_json(&format!("/tasks{}", filtered(filters, &[]))).await
    }

    /// `GET /tasks/{id}`.
    pub async fn task(&self, id: &str) -> Result<Task, Error> {
        self.get_json(&format!("/tasks/{}", object("task", id)?)).await
    }
}

#[cfg(test)]
mod tests;
