//! The routes: the v1 API, the seed's routes, job reads and follows, listings, health and
//! metrics. Each handler reads its request, authenticates, validates names, looks the
//! target up, authorizes, and hands the job to the [`Dispatcher`]; nothing here runs a
//! job's logic.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use dockhand_jobs::JobContext;
use dockhand_jobs::storage::StorageTargets;
use dockhand_jobs::update::Registries;

use crate::auth::Gate;
use crate::dispatch::Dispatcher;
use crate::metrics::Metrics;

pub(crate) mod act;
pub(crate) mod answer;
pub(crate) mod images;
pub(crate) mod input;
pub(crate) mod jobs;
pub(crate) mod listings;
pub(crate) mod ops;
pub(crate) mod seed;
pub(crate) mod status;
pub(crate) mod v1;

/// The largest body read.
pub const BODY_LIMIT: usize = 64 * 1024;
/// How long a body may take to arrive.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// The most jobs one list answer holds.
pub(crate) const MAX_LIMIT: usize = 500;

/// What every handler shares.
pub struct App {
    /// Credentials.
    pub gate: Gate,
    /// Jobs.
    pub dispatcher: Arc<Dispatcher>,
    /// The context every job starts from.
    pub base: JobContext,
    /// Where backups go.
    pub storage: Arc<StorageTargets>,
    /// Registry credentials for updates.
    pub registries: Arc<Registries>,
    /// Watch mode's registry client and back-off, shared with the scheduler.
    pub watcher: Arc<dockhand_jobs::update::Watcher>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The event streams each address follows (R3-12).
    pub(crate) streams: Arc<crate::limits::PerClient>,
    /// The last `/readyz` verdict and when it was taken: the engine is asked at most once
    /// a second, however often anyone asks (R3-12).
    pub(crate) ready: tokio::sync::Mutex<Option<(std::time::Instant, StatusCode, String)>>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").field("gate", &self.gate).finish_non_exhaustive()
    }
}

pub(crate) type Shared = Arc<App>;
