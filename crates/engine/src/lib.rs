//! `dockhand-engine` talks to a Docker Engine over its HTTP API.
//!
//! The transport is written by hand on top of hyper, because the details matter: which
//! socket, which API version, and what an error must say. A unix socket, plain TCP and
//! TLS with client certificates (rustls, trusting only the CA it is given) work today. A [`Client`] is built for one
//! [`Endpoint`]; the first call negotiates the API version with `GET /_ping` (single-flight:
//! concurrent first calls share one ping), and every later call uses the versioned path
//! `/vX.Y/...`, clamped to the range this crate supports
//! ([`MIN_API_VERSION`]..=[`MAX_API_VERSION`]).
//!
//! This crate reads no environment and no configuration: `dockhand-host` decides which
//! engine `DOCKER_HOST`, contexts and named hosts mean, and hands an [`Endpoint`] in. The
//! only files it opens are the ones a [`TlsSettings`] names, when a client is built.
//!
//! # Example
//!
//! ```no_run
//! # async fn run() -> Result<(), dockhand_engine::Error> {
//! use dockhand_engine::{Client, Endpoint};
//!
//! let endpoint: Endpoint = "unix:///var/run/docker.sock".parse()?;
//! let client = Client::new(endpoint)?;
//! let info = client.info().await?;
//! println!("{} runs Docker {}", info.name, info.server_version);
//! println!("negotiated API {}", client.api_version().await?);
//! # Ok(())
//! # }
//! ```
//!
//! TLS with a client certificate:
//!
//! ```no_run
//! use dockhand_engine::{Client, TlsSettings};
//!
//! # async fn run() -> Result<(), dockhand_engine::Error> {
//! let tls = TlsSettings::verified("/certs/ca.pem").with_client_identity("/certs/cert.pem", "/certs/key.pem");
//! let remote = Client::builder("https://10.0.0.5:2376".parse()?).tls(tls).build()?;
//! println!("API {}", remote.api_version().await?);
//! # Ok(())
//! # }
//! ```
//!
//! Errors name the endpoint, the request and what failed:
//!
//! ```
//! use dockhand_engine::Endpoint;
//!
//! let err = "tcp:/nope".parse::<Endpoint>().unwrap_err();
//! assert!(err.to_string().contains("\"tcp:/nope\""));
//! ```

mod auth;
mod body;
mod client;
mod configs;
mod containers;
mod endpoint;
mod error;
mod exec;
mod query;
mod resources;
mod ssh;
mod stream;
mod swarm;
mod system;
mod tls;
mod transport;
mod version;

pub use crate::auth::RegistryAuth;
pub use crate::body::{ByteStream, JsonStream};
pub use crate::client::{Client, ClientBuilder};
pub use crate::configs::{ConfigSpec, SwarmConfig};
pub use crate::containers::{
    ContainerConfig, ContainerInspect, ContainerState, ContainerSummary, HostConfig, HostMount, Mount,
    NewContainer, PathStat, PruneReport,
};
pub use crate::endpoint::{
    DEFAULT_TCP_PORT, DEFAULT_TLS_PORT, Endpoint, SshEndpoint, TcpEndpoint, TcpScheme,
};
pub use crate::error::{BoxError, Error, chain};
pub use crate::exec::{ExecInspect, ExecOutput, ExecSpec, ExecStdin};
pub use crate::query::Filters;
pub use crate::resources::{
    Descriptor, DistributionInspect, ImageInspect, ImageSummary, Network, Volume, VolumeUsage,
};
pub use crate::ssh::{HostKeyChecking, SshSettings, open_session};
pub use crate::stream::{Chunk, MAX_CHUNK, StreamKind};
pub use crate::swarm::nodes::{
    ManagerStatus, Node, NodeDescription, NodeEngine, NodeSpec, NodeStatus, Task, TaskContainer, TaskStatus,
};
pub use crate::swarm::spec::{
    ContainerSpec, EndpointSpec, GlobalMode, LogDriver, NetworkAttachment, Placement, Privileges,
    ReplicatedJobMode, ReplicatedMode, RestartPolicy, Service, ServiceCreated, ServiceMode, ServiceMount,
    ServiceSpec, ServiceStatus, ServiceSummary, SummaryContainer, SummaryMode, SummarySpec, SummaryTask,
    TaskSpec, UpdateStatus,
};
pub use crate::swarm::{LogStream, LogsOptions, ObjectVersion, ServiceUpdated, UpdateOptions};
pub use crate::system::{
    Component, EngineEvent, EventActor, IndexInfo, Info, Ping, Platform, RegistryConfig, SwarmInfo, Version,
};
pub use crate::tls::TlsSettings;
pub use crate::version::{ApiVersion, MAX_API_VERSION, MIN_API_VERSION, ParseApiVersionError};
