//! `dockhand-jobs`: the maintenance jobs (clean-node, clean-service, backup-service,
//! update-service), their locks, helper services, storage targets, job store and
//! scheduler. It joins `dockhand-host` (how to reach an engine) with `dockhand-policy`
//! (what labels allow); callers import those crates' items from them.
//!
//! Built so far:
//! - the job model ([`Job`], its [`Step`]s, the [`Event`]s a runner reports to a caller's
//!   [`Sink`]) and the one runner every job goes through (lock, leftovers, cancellation,
//!   finish), configured by a [`JobContext`];
//! - swarm-wide locks ([`Locks`]): one operation per target at a time, across dockhand
//!   restarts and several dockhand processes, kept in the swarm itself;
//! - helper services for work on other nodes, running `dockhand agent` ([`AgentTask`],
//!   [`run_agent`]);
//! - clean-node ([`clean_node`], [`clean_all_nodes`]), clean-service ([`clean_service`],
//!   [`clean_all_services`]) and unused volumes ([`unused_volumes`]);
//! - the job store ([`JobStore`], embedded as [`SqliteStore`]).

mod agent;
mod archive;
mod backup;
mod clean_node;
mod clean_service;
mod compat;
pub mod fuzzing;
mod helper;
mod host_exec;
mod http;
mod job;
mod lock;
mod node_backup;
mod notify;
mod own_image;
mod plan;
mod reap;
mod registry;
mod restore;
mod runner;
mod schedule;
mod seal;
mod secret;
mod steps;
mod storage;
mod store;
mod store_pg;
mod swarm;
mod tail;
mod update;
mod volume_move;
mod volumes;
mod work;

pub use crate::agent::protocol::{
    AgentArgsError, AgentLine, AgentTask, Budget, CHANNEL_MOUNT, CHANNEL_SOCKET, ExecTarget, Prune,
    UnusedVolume, split_out,
};
pub use crate::agent::{AgentError, check_start_by, run_agent, run_volume_agent, unused_volumes};
pub use crate::archive::{
    ArchiveError, DEFAULT_ZSTD_LEVEL, PackStats, STAGING, UnpackStats, content_size, pack, unpack, verify,
};
pub use crate::backup::{backup_all_services, backup_service};
pub use crate::clean_node::{NodePlan, clean_all_nodes, clean_node, plan_clean_node};
pub use crate::clean_service::{ServicePlan, clean_all_services, clean_service, plan_clean_service};
pub use crate::compat::{CompatChoice, CompatError, LABELS_COMPAT_VAR, compat_choice, label_prefixes};
pub use crate::helper::image::{
    HelperSettings, NoHelperImage, OwnHelperImage, helper_image, own_service_image,
};
pub use crate::helper::{HELPER_ACTION_LABEL, HELPER_LABEL, HELPER_TARGET_LABEL, remove_job_helpers};
pub use crate::http::{HttpClientError, client as http_client};
pub use crate::job::{
    ALL_ACTIONS, Action, Collect, Event, Job, Sink, Status, Step, Target, Trigger, aggregate, epoch_ms,
};
pub use crate::lock::{
    LOCK_LABEL, LockError, LockGuard, LockInfo, LockSettings, LockTarget, Locks, local_hostname,
};
pub use crate::node_backup::{backup_all_nodes, backup_node, node_target, restore_node};
pub use crate::notify::{
    Delivery, NOTIFY_ATTEMPTS, NOTIFY_QUEUE, Notifier, NotifyError, Webhook, load_webhooks, notification_body,
};
pub use crate::own_image::{OWN_IMAGE_REPO, OwnExecutable, OwnImageError, ensure_own_image, push_own_image};
pub use crate::plan::{PlanRow, plan};
pub use crate::reap::reap_stale;
pub use crate::registry::{
    DOCKER_HUB_SERVER, NamedRegistry, PullCredential, Registries, RegistryError, docker_config_credential,
    server_key,
};
pub use crate::restore::restore_service;
pub use crate::runner::{JobContext, JobError, known_secrets};
pub use crate::schedule::{
    Launched, Launcher, Recorded, SCHEDULED_ACTIONS, SEED_CRON, Schedule, ScheduleError, Scheduled,
    Scheduler, scheduled_targets, tick_text, with_next_runs,
};
pub use crate::seal::{AGE_SUFFIX, AgeIdentity, IdentityError};
pub use crate::secret::Secret;
pub use crate::steps::catalog::{
    ARCHIVE_SUFFIX, BackupObject, FOREIGN_CHECK, FOREIGN_SUFFIX, MANIFEST_SUFFIX, Manifest, NoBackup,
    NotOwnArchive, RestoreOptions, archive_key, choose_backups, expired, list_backups, list_foreign,
    node_dir, own_archive, parse_archive_name, parse_foreign_name, service_target,
};
pub use crate::steps::catalog::{key_timestamp, parse_key_timestamp};
pub use crate::steps::lookup::find_node;
pub use crate::steps::lookup::{NotMounted, resolve_volume, service_volumes};
pub use crate::steps::scale::{INTENT_LABEL, reconcile, restore_replicas};
pub use crate::storage::error::{Problem, StorageError};
pub use crate::storage::targets::{
    DEFAULT_TARGET, S3Target, SEED_TARGET, SERVER_LOCAL_PATH, StorageTargets, TargetKind, TargetSettings,
    default_local_path,
};
pub use crate::storage::{CheckReport, Storage};
pub use crate::store::{JobFilter, JobStore, KEEP_JOBS, SqliteStore, StoreError, default_store_path};
pub use crate::store_pg::{PgStore, StoreConfigError, StoreSettings};
pub use crate::swarm::Swarm;
pub use crate::tail::OUTPUT_TAIL;
pub use crate::update::{UpdatePlan, UpdateRequest, plan_update, update_service};
pub use crate::volume_move::{MoveRequest, move_volume};
pub use crate::volumes::unused_volumes_everywhere;
pub use crate::work::{Order, Work};
