//! What each action runs: an [`Order`] (an action with what it needs besides its target)
//! becomes the [`Work`] of one job through one exhaustive `match`, for the server's routes
//! and the scheduler alike. A new job adds a variant here, and the compiler points at every
//! place that must learn of it.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::job::{Action, Job, Sink};
use crate::registry::Registries;
use crate::runner::{JobContext, JobError};
use crate::steps::catalog::RestoreOptions;
use crate::storage::targets::StorageTargets;
use crate::update::UpdateRequest;
use crate::volume_move::MoveRequest;

/// The work of one job, given its context and the sink it reports to.
pub type Work =
    Box<dyn FnOnce(JobContext, Arc<dyn Sink>) -> BoxFuture<'static, Result<Job, JobError>> + Send>;

/// A job to run on a target, with what it needs besides the target's ID.
#[derive(Clone)]
#[non_exhaustive]
pub enum Order {
    /// clean-node.
    CleanNode,
    /// clean-service.
    CleanService,
    /// backup-service, to the target the service's labels name.
    BackupService(Arc<StorageTargets>),
    /// backup-node, to the target the node's labels name.
    BackupNode(Arc<StorageTargets>),
    /// restore of a service.
    RestoreService(Arc<StorageTargets>, RestoreOptions),
    /// restore of a node's volumes.
    RestoreNode(Arc<StorageTargets>, RestoreOptions),
    /// volume move (the target is the request's).
    MoveVolume(MoveRequest),
    /// update-service, pulling with these registries' credentials.
    UpdateService(Arc<Registries>, UpdateRequest),
}

impl Order {
    /// What cron runs for `action`, or `None` for an action cron never runs.
    pub fn scheduled(action: Action, storage: &Arc<StorageTargets>) -> Option<Self> {
        match action {
            Action::CleanNode => Some(Self::CleanNode),
            Action::CleanService => Some(Self::CleanService),
            Action::BackupService => Some(Self::BackupService(Arc::clone(storage))),
            Action::BackupNode => Some(Self::BackupNode(Arc::clone(storage))),
            Action::Restore | Action::Reconcile | Action::VolumeMove | Action::UpdateService => None,
        }
    }

    /// The action the job records.
    pub fn action(&self) -> Action {
        match self {
            Self::CleanNode => Action::CleanNode,
            Self::CleanService => Action::CleanService,
            Self::BackupService(_) => Action::BackupService,
            Self::BackupNode(_) => Action::BackupNode,
            Self::RestoreService(..) | Self::RestoreNode(..) => Action::Restore,
            Self::MoveVolume(_) => Action::VolumeMove,
            Self::UpdateService(..) => Action::UpdateService,
        }
    }

    /// The job's work on the target `id` (a node's or a service's ID; a volume move's
    /// target is in its request).
    pub fn work(self, id: String) -> Work {
        Box::new(move |ctx, sink| {
            Box::pin(async move {
                let sink = &*sink;
                match self {
                    Self::CleanNode => crate::clean_node::clean_node(&ctx, Some(&id), sink).await,
                    Self::CleanService => crate::clean_service::clean_service(&ctx, &id, sink).await,
                    Self::BackupService(storage) => {
                        crate::backup::backup_service(&ctx, &id, &storage, sink).await
                    }
                    Self::BackupNode(storage) => {
                        crate::node_backup::backup_node(&ctx, &id, &storage, sink).await
                    }
                    Self::RestoreService(storage, options) => {
                        crate::restore::restore_service(&ctx, &id, &storage, &options, sink).await
                    }
                    Self::RestoreNode(storage, options) => {
                        crate::node_backup::restore_node(&ctx, &id, &storage, &options, sink).await
                    }
                    Self::MoveVolume(request) => crate::volume_move::move_volume(&ctx, &request, sink).await,
                    Self::UpdateService(registries, request) => {
                        crate::update::update_service(&ctx, &registries, &id, &request, sink).await
                    }
                }
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_runs_exactly_the_scheduled_actions_each_as_itself() {
        let file = dockhand_host::ConfigFile::parse("{}", false).unwrap();
        let env = dockhand_host::Environment::from_vars(Vec::<(String, String)>::new());
        let storage = Arc::new(StorageTargets::load(&file, &env, "/data".into()).unwrap());
        for action in crate::job::ALL_ACTIONS {
            let order = Order::scheduled(action, &storage);
            // Watch mode's update-service is cron's too, but its image is the watch's to
            // decide: the scheduler makes that order itself.
            let plain =
                crate::schedule::SCHEDULED_ACTIONS.contains(&action) && action != Action::UpdateService;
            assert_eq!(order.is_some(), plain, "{action:?}");
            if let Some(order) = order {
                assert_eq!(order.action(), action);
            }
        }
    }
}
