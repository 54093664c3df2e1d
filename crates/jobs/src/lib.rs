//! `dockhand-jobs`: the maintenance jobs a swarm needs (clean, backup, restore, update),
//! their swarm-wide locks, the helper services that work on other nodes, storage targets,
//! the job store and the scheduler. It joins `dockhand-host` (how to reach an engine) with
//! `dockhand-policy` (what labels allow); callers import those crates' items from them.
//!
//! At the root are what every job shares: the job model ([`Job`], its [`Step`]s, the
//! [`Event`]s a runner reports to a [`Sink`]), the [`JobContext`] a job runs with, the
//! swarm as the jobs see it ([`Swarm`]), the locks ([`Locks`]) and the helpers' settings
//! ([`HelperSettings`]). The jobs and their parts are grouped by what an embedder does:
//!
//! | module | what |
//! |---|---|
//! | [`config`] | the configuration file read once into typed sections, with one error type |
//! | [`clean`] | clean-node, clean-service, unused volumes |
//! | [`backup`] | backup-service and backup-node, restore, volume move, what is stored, reconcile |
//! | [`update`] | update-service, and the registry credentials it pulls with |
//! | [`schedule`] | cron: the schedule, the scheduler, the `Order` an action becomes, `dockhand plan` |
//! | [`store`] | the job store: SQLite embedded, PostgreSQL shared |
//! | [`storage`] | storage targets and the objects in them |
//! | [`notify`] | webhooks when jobs end |
//! | [`agent`] | what `dockhand agent` does on a node, and its protocol |
//!
//! The library installs no TLS crypto provider: a program that uses an S3 target installs
//! one at start (dockhand's binaries install ring's), else opening the target fails with
//! [`storage::Problem::CryptoProvider`].
//!
//! A backup of one service, as the CLI runs it:
//!
//! ```no_run
//! use dockhand_jobs::backup::backup_service;
//! use dockhand_jobs::storage::StorageTargets;
//! use dockhand_jobs::{Collect, JobContext, Status, Trigger};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! // The program chooses the process's TLS crypto provider; the S3 client takes it.
//! let _ = rustls::crypto::ring::default_provider().install_default();
//! let client = dockhand_engine::Client::new(dockhand_engine::Endpoint::unix("/var/run/docker.sock"))?;
//! let ctx = JobContext::new(client, &dockhand_jobs::local_hostname(), Trigger::Cli, "example");
//! // The `storage:` section of a configuration file, with credentials from the environment.
//! let env = dockhand_host::Environment::from_vars(std::env::vars());
//! let file = dockhand_host::ConfigFile::parse("storage:\n  targets: {}\n", false)?;
//! let targets = StorageTargets::load(&file, &env, "/var/lib/dockhand/backups".into())?;
//! let events = Collect::default(); // or a Sink of one's own, to follow the job live
//! let job = backup_service(&ctx, "web", &targets, &events).await?;
//! assert!(matches!(job.status, Status::Succeeded | Status::Failed | Status::Refused));
//! # Ok(())
//! # }
//! ```

pub mod agent;
mod archive;
pub mod backup;
mod backup_service;
pub mod clean;
mod clean_node;
mod clean_service;
mod compat;
pub mod config;
pub mod fuzzing;
mod helper;
mod host_exec;
mod http;
mod job;
mod lock;
mod manifests;
mod node_backup;
pub mod notify;
mod own_image;
mod plan;
mod reap;
mod registry;
mod restore;
mod runner;
pub mod schedule;
mod seal;
mod secret;
mod steps;
pub mod storage;
pub mod store;
mod swarm;
mod tail;
#[cfg(test)]
mod test_peer;
pub mod update;
mod volume_move;
mod volumes;
mod watch;
mod work;

pub use crate::compat::{CompatChoice, LABELS_COMPAT_VAR, compat_choice};
pub use crate::helper::image::{
    HelperSettings, NoHelperImage, OwnHelperImage, helper_image, own_service_image,
};
pub use crate::helper::{HELPER_ACTION_LABEL, HELPER_LABEL, HELPER_TARGET_LABEL, remove_job_helpers};
pub use crate::http::{HttpClientError, HttpGetError, HttpsClient};
pub use crate::job::{
    ALL_ACTIONS, Action, Collect, Event, Job, Sink, Status, Step, Target, Trigger, aggregate, epoch_ms,
};
pub use crate::lock::{
    LOCK_LABEL, LockError, LockGuard, LockInfo, LockSettings, LockTarget, Locks, local_hostname,
};
pub use crate::own_image::{OWN_IMAGE_REPO, OwnExecutable, OwnImageError, ensure_own_image, push_own_image};
pub use crate::reap::reap_stale;
pub use crate::runner::{ContextChoices, JobContext, JobError};
pub use crate::secret::Secret;
pub use crate::swarm::Swarm;
pub use crate::tail::OUTPUT_TAIL;
