//! Watch mode's tick (`update.auto`): one look at the registries for every service due
//! (`crate::watch::look`), then each service's step: update-service pinned to the moved
//! tag's digest, an `available` notice, or a skip; a notice or a skip is recorded once.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use dockhand_policy::WatchStep;

use super::{Launcher, Scheduled, Scheduler};
use crate::job::{Action, Job, Status, Target};
use crate::plan::Watched;
use crate::store::JobFilter;
use crate::update::UpdateRequest;
use crate::work::Order;

impl Scheduler {
    /// Watch mode's tick for the services `due`: one look at the registries for all of
    /// them, then each service's step.
    pub(super) async fn watch(&self, due: Vec<(DateTime<Utc>, Scheduled)>, launcher: &dyn Launcher) {
        use futures_util::StreamExt;
        let ids: std::collections::BTreeSet<&str> = due
            .iter()
            .filter_map(|(_, e)| match &e.target {
                Target::Service { id, .. } => Some(id.as_str()),
                Target::Node { .. } => None,
            })
            .collect();
        let services = match self.base.swarm.services(&self.filters()).await {
            Ok(listed) => listed.into_iter().filter(|s| ids.contains(s.id.as_str())).collect::<Vec<_>>(),
            Err(e) => {
                tracing::warn!(error = %e, "watch: cannot list the services; nothing done this tick");
                return;
            }
        };
        let watcher = match self.watcher() {
            Ok(watcher) => watcher,
            Err(e) => {
                tracing::warn!(error = %e, "watch: no registry client; nothing done this tick");
                return;
            }
        };
        let look = crate::watch::look(
            self.base.swarm.as_ref(),
            &self.registries,
            self.store.as_ref(),
            &services,
            &self.base.defaults,
            &self.base.prefixes,
            watcher,
        )
        .await;
        tracing::info!(services = look.rows.len(), registry_requests = look.requests.len(), "watch: looked");
        (self.looked)(&look);
        let rows: std::collections::HashMap<&str, &Watched> =
            look.rows.iter().map(|r| (r.service.as_str(), r)).collect();
        futures_util::stream::iter(due)
            .for_each_concurrent(self.concurrency, |(tick, entry)| {
                let row = match &entry.target {
                    Target::Service { name, .. } => rows.get(name.as_str()).copied(),
                    Target::Node { .. } => None,
                };
                async move {
                    if let Some(row) = row {
                        self.watch_one(tick, &entry, row, launcher).await;
                    }
                }
            })
            .await;
    }

    /// One watched service's step at `tick`.
    async fn watch_one(
        &self,
        tick: DateTime<Utc>,
        entry: &Scheduled,
        row: &Watched,
        launcher: &dyn Launcher,
    ) {
        let tried =
            row.follows.as_ref().zip(row.latest.as_ref()).map(|(tag, digest)| format!("{tag}@{digest}"));
        match &row.step {
            WatchStep::Current => {
                tracing::debug!(service = %row.service, "watch: current");
            }
            WatchStep::Update { image } => {
                let request = UpdateRequest::new(Some(image.clone()));
                let order = Order::UpdateService(Arc::clone(&self.registries), request);
                self.launch(tick, entry, order, launcher).await;
            }
            WatchStep::Notify { image } => {
                let why = format!("{image} is available: not applied ({})", row.decided_by);
                self.record_once(entry, tick, Status::Available, Some(image), &why).await;
            }
            WatchStep::Skip { reason } => {
                self.record_once(entry, tick, Status::Skipped, tried.as_ref(), reason).await;
            }
        }
    }

    /// Records a watch tick that did not update (`status` with `why`, about `image`),
    /// unless the service's newest update-service job already says the same.
    async fn record_once(
        &self,
        entry: &Scheduled,
        tick: DateTime<Utc>,
        status: Status,
        image: Option<&String>,
        why: &str,
    ) {
        let filter = JobFilter {
            target: Some(entry.target.describe()),
            action: Some(Action::UpdateService.as_str().to_owned()),
            limit: Some(1),
            ..JobFilter::default()
        };
        match self.store.list(&filter).await {
            Ok(jobs) if jobs.first().is_some_and(|last| says(last, status, image, why)) => {
                tracing::debug!(target = %entry.target.describe(), reason = why, "watch: recorded already");
            }
            Ok(_) => self.record_job(entry, tick, status, "watch", why, image.cloned()).await,
            Err(e) => tracing::warn!(error = %e, "watch: cannot read the job store"),
        }
    }
}

/// Whether `job` records `status` for `image` with the reason `why`: a watch tick that
/// finds the same records nothing.
fn says(job: &Job, status: Status, image: Option<&String>, why: &str) -> bool {
    job.status == status
        && job.image.as_ref() == image
        && job.steps.first().and_then(|s| s.error.as_deref()) == Some(why)
}
