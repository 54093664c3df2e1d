//! Stopping and starting a service with the intent label ([`INTENT_LABEL`]): the replica
//! count is recorded in the same compare-and-swap update that scales to 0 and removed in the
//! one that scales back, the start runs on every path, and [`reconcile`] gives back the
//! replicas of a job that died.

use std::time::{Duration, SystemTime};

use std::sync::Arc;

use dockhand_engine::{Filters, Service, UpdateOptions};

use crate::job::{Action, Job, Sink, Status, Step, Target};
use crate::lock::LockTarget;
use crate::runner::{JobContext, JobError, Running};
use crate::swarm::{Connected, Swarm, modify_service};

/// The label that records, on the service itself, the replica count a backup or restore
/// scaled it down from. While it is there, the service is owed its replicas back.
pub const INTENT_LABEL: &str = "dockhand.backup.restore-replicas";

/// Scales the service back if the job future is dropped before [`start`] ran: the start
/// must happen on every path. Disarmed by `start`.
pub(crate) struct StartGuard {
    swarm: Option<Arc<dyn Swarm>>,
    service: String,
}

impl Drop for StartGuard {
    fn drop(&mut self) {
        let Some(swarm) = self.swarm.take() else { return };
        let service = std::mem::take(&mut self.service);
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                if let Err(e) = restore_replicas(&*swarm, &service).await {
                    tracing::error!(service, error = %e, "cannot scale a service back after a dropped job; the next dockhand command will");
                }
            });
        }
    }
}

/// The stop: the intent label and replicas 0 in one update (compare-and-swap on the
/// version), then a wait until no task runs. The guard that owes the start either way;
/// `Err` when the stop failed (the step says why) and the caller should start at once.
pub(crate) async fn stop(
    run: &mut Running<'_>,
    service: &str,
    budget: &crate::agent::protocol::Budget,
) -> Result<StartGuard, StartGuard> {
    let mut step = Step::start("stop", SystemTime::now());
    run.started(&step);
    let mut replicas = None;
    let updated = modify_service(&*run.ctx.swarm, service, &UpdateOptions::new(), |spec| {
        let Some(current) = spec.replicas() else {
            return Err(dockhand_engine::Error::InvalidArgument {
                what: format!("service {service}"),
                detail: "a global service cannot be stopped by scaling".to_owned(),
            });
        };
        // An intent already there (a restore or backup a stopped dockhand left) wins:
        // it holds the count to come back to.
        let owed = spec.labels.get(INTENT_LABEL).and_then(|v| v.parse().ok()).unwrap_or(current);
        spec.labels.insert(INTENT_LABEL.to_owned(), owed.to_string());
        *spec = std::mem::take(spec).with_replicas(0);
        replicas = Some(owed);
        Ok(())
    })
    .await;
    let guard = StartGuard { swarm: Some(Arc::clone(&run.ctx.swarm)), service: service.to_owned() };
    if let Err(e) = updated {
        step.finish(Status::Failed, SystemTime::now(), Some(format!("cannot scale the service to 0: {e}")));
        run.push(step);
        return Err(guard);
    }
    if let Some(n) = replicas {
        run.progress(format!("scaled from {n} to 0 replicas: waiting for its tasks to stop"));
    }
    let waited = tokio::time::timeout(budget.timeout, wait_tasks(&*run.ctx.swarm, service, 0)).await;
    match waited {
        Ok(Ok(())) => {
            step.finish(Status::Succeeded, SystemTime::now(), None);
            step.output_tail = replicas.map(|n| format!("scaled from {n} to 0 replicas"));
            run.push(step);
            Ok(guard)
        }
        Ok(Err(e)) => {
            step.finish(Status::Failed, SystemTime::now(), Some(e.to_string()));
            run.push(step);
            Err(guard)
        }
        Err(_) => {
            let message = format!(
                "tasks still ran after the stop timeout {} ({})",
                dockhand_policy::format_go_duration(budget.timeout),
                budget.source
            );
            step.finish(Status::Failed, SystemTime::now(), Some(message));
            run.push(step);
            Err(guard)
        }
    }
}

/// The start: the replicas the intent label holds, and the label removed, in one update;
/// then a wait until they run. Runs whatever the job's cancellation says.
pub(crate) async fn start(
    run: &mut Running<'_>,
    service: &str,
    budget: &crate::agent::protocol::Budget,
    guard: Option<StartGuard>,
) {
    let mut step = Step::start("start", SystemTime::now());
    run.started(&step);
    if let Some(mut guard) = guard {
        guard.swarm = None;
    }
    match restore_replicas(&*run.ctx.swarm, service).await {
        Err(e) => {
            step.finish(
                Status::Failed,
                SystemTime::now(),
                Some(format!("cannot scale the service back: {e}")),
            );
        }
        Ok(None) => step.finish(Status::Succeeded, SystemTime::now(), None),
        Ok(Some(n)) => {
            let waited = tokio::time::timeout(budget.timeout, wait_tasks(&*run.ctx.swarm, service, n)).await;
            let error = match waited {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(_) => Some(format!(
                    "scaled back to {n} replicas, but they did not all run within the start timeout {} ({})",
                    dockhand_policy::format_go_duration(budget.timeout),
                    budget.source
                )),
            };
            let status = if error.is_some() { Status::Failed } else { Status::Succeeded };
            step.finish(status, SystemTime::now(), error);
            step.output_tail = Some(format!("scaled back to {n} replicas"));
        }
    }
    run.push(step);
}

/// Scales `service` back to the count its intent label holds and removes the label, in one
/// update; `None` when it carries no label (nothing owed).
pub async fn restore_replicas(
    swarm: &dyn Swarm,
    service: &str,
) -> Result<Option<u64>, dockhand_engine::Error> {
    let mut owed = None;
    let mut bad = None;
    modify_service(swarm, service, &UpdateOptions::new(), |spec| {
        owed = None;
        let Some(value) = spec.labels.remove(INTENT_LABEL) else { return Ok(()) };
        match value.parse::<u64>() {
            Ok(n) => {
                *spec = std::mem::take(spec).with_replicas(n);
                owed = Some(n);
            }
            Err(_) => bad = Some(value),
        }
        Ok(())
    })
    .await?;
    if let Some(value) = bad {
        tracing::warn!(service, value, "the intent label did not hold a replica count; it was removed");
    }
    Ok(owed)
}

/// Waits until exactly `running` tasks of `service` run (0: until none does), asking the
/// manager every [`TASK_POLL`] at most: a task list is cheap, and the time a stop or a start
/// waits past the tasks' own change is what a restore's service is down for longer.
async fn wait_tasks(swarm: &dyn Swarm, service: &str, running: u64) -> Result<(), dockhand_engine::Error> {
    let mut pause = Duration::from_millis(50);
    loop {
        let tasks = swarm.tasks(&Filters::new().with("service", service)).await?;
        let live = tasks
            .iter()
            .filter(|t| {
                matches!(
                    t.status.state.as_str(),
                    "new"
                        | "pending"
                        | "assigned"
                        | "accepted"
                        | "preparing"
                        | "ready"
                        | "starting"
                        | "running"
                )
            })
            .count() as u64;
        let up = tasks.iter().filter(|t| t.status.state == "running" && t.desired_state == "running").count()
            as u64;
        if (running == 0 && live == 0) || (running > 0 && up >= running) {
            return Ok(());
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(TASK_POLL);
    }
}

/// The longest pause between two task lists while a stop or a start waits.
const TASK_POLL: Duration = Duration::from_millis(200);

/// Brings back every service a stopped dockhand left scaled down: a service with the intent
/// label whose lock no live job holds is scaled back and its label removed, recorded as a
/// `reconcile` job. Called before every command that talks to a manager, and by the server
/// at start.
pub async fn reconcile(ctx: &JobContext, sink: &dyn Sink) -> Result<Vec<Job>, JobError> {
    let connected = Connected::read(&*ctx.swarm).await?;
    if !connected.manager {
        return Ok(Vec::new());
    }
    let owed = ctx.swarm.services(&Filters::new().with("label", INTENT_LABEL)).await?;
    if owed.is_empty() {
        return Ok(Vec::new());
    }
    let locks = ctx.locks.list().await.map_err(JobError::Lock)?;
    let mut jobs = Vec::new();
    // Another instance's tenants are its own to bring back (R3-07).
    let in_scope =
        |s: &Service| ctx.scope.as_ref().is_none_or(|(key, value)| s.spec.labels.get(key) == Some(value));
    for service in owed.into_iter().filter(in_scope) {
        let lock = LockTarget::Service(service.id.clone()).label();
        if locks.iter().any(|l| l.target == lock && !l.expired) {
            continue; // A live job owns it, and will start it itself.
        }
        let target = Target::Service { id: service.id.clone(), name: service.spec.name.clone() };
        let mut run = Running::start(ctx, sink, Action::Reconcile, target);
        // Busy or cancelled: another job has it. A failure to clear leftovers is recorded,
        // but the service is owed its replicas all the same.
        if let Err(Some(status)) = run.lock(LockTarget::Service(service.id.clone())).await {
            jobs.push(run.finish(Some(status)).await);
            continue;
        }
        let owed = service.spec.labels.get(INTENT_LABEL).cloned().unwrap_or_default();
        tracing::warn!(
            service = %service.spec.name,
            replicas = %owed,
            "a backup or restore stopped before it started this service again: scaling it back"
        );
        let budget = crate::agent::protocol::Budget::new(
            ctx.defaults.backup_start_timeout,
            "the default backup.start.timeout",
        );
        start(&mut run, &service.id, &budget, None).await;
        jobs.push(run.finish(None).await);
    }
    Ok(jobs)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use dockhand_engine::{Client, Endpoint};

    use super::*;
    use crate::job::{Collect, Trigger};
    use crate::swarm::fake::{FakeSwarm, Fault};

    const BUDGET: Duration = Duration::from_secs(20);

    fn ctx(swarm: &Arc<FakeSwarm>) -> JobContext {
        // The client is never dialled: every effect these steps have goes through the swarm.
        let client = Client::new(Endpoint::unix("/nonexistent/dockhand-test.sock")).unwrap();
        JobContext::new(client, "test", Trigger::Cli, "test").with_swarm(Arc::clone(swarm) as Arc<dyn Swarm>)
    }

    fn budget(what: &str) -> crate::agent::protocol::Budget {
        crate::agent::protocol::Budget::new(BUDGET, format!("label dockhand.backup.{what}.timeout"))
    }

    fn target(id: &str) -> Target {
        Target::Service { id: id.to_owned(), name: "web".to_owned() }
    }

    /// The steps' kinds and statuses, and each failure's text.
    fn steps(run: &Running<'_>) -> Vec<(String, Status, String)> {
        run.job
            .steps
            .iter()
            .map(|s| (s.kind.clone(), s.status, s.error.clone().unwrap_or_default()))
            .collect()
    }

    /// The writes to the service: its replica count and intent label, in order.
    fn updates(swarm: &FakeSwarm) -> Vec<String> {
        swarm.log().into_iter().filter(|w| w.starts_with("update_service")).collect()
    }

    /// Every way a stop can end, and the start that follows it on that path: the count is
    /// owed in the same update that scales to 0 and given back in the one that scales up.
    #[tokio::test(start_paused = true)]
    async fn the_start_follows_the_stop_on_every_path() {
        #[derive(Debug, Clone, Copy)]
        enum Path {
            /// Both succeed.
            Clean,
            /// The scale to 0 is refused by the engine.
            StopRefused,
            /// Someone else changed the service between read and write, once.
            StopRaced,
            /// Its tasks never stop.
            StopTimesOut,
            /// The job was cancelled before the start.
            Cancelled,
            /// The tasks do not come back within the start budget.
            StartTimesOut,
        }
        for path in [
            Path::Clean,
            Path::StopRefused,
            Path::StopRaced,
            Path::StopTimesOut,
            Path::Cancelled,
            Path::StartTimesOut,
        ] {
            let swarm = Arc::new(FakeSwarm::manager());
            let id = swarm.add_service("web", 3, &[]);
            let ctx = ctx(&swarm);
            let sink = Collect::default();
            let mut run = Running::start(&ctx, &sink, Action::BackupService, target(&id));
            match path {
                Path::StopRefused => swarm.fail("update_service", 1, Fault::Broken),
                Path::StopRaced => swarm.fail("update_service", 1, Fault::OutOfSequence),
                Path::StopTimesOut => swarm.stick(&id),
                _ => {}
            }
            let stopped = stop(&mut run, &id, &budget("stop")).await;
            if let Path::StartTimesOut = path {
                swarm.stick(&id);
            }
            if let Path::Cancelled = path {
                ctx.cancel.cancel();
            }
            let guard = match stopped {
                Ok(guard) | Err(guard) => guard,
            };
            start(&mut run, &id, &budget("start"), Some(guard)).await;

            let spec = swarm.spec(&id);
            assert_eq!(spec.replicas(), Some(3), "{path:?}: the service has its replicas back");
            assert!(!spec.labels.contains_key(INTENT_LABEL), "{path:?}: nothing is owed any more");
            let steps = steps(&run);
            let (stop_step, start_step) = (&steps[0], &steps[1]);
            match path {
                Path::Clean | Path::StopRaced | Path::Cancelled => {
                    assert_eq!(
                        updates(&swarm),
                        ["update_service web replicas=0 intent=3", "update_service web replicas=3 intent=-"],
                        "{path:?}"
                    );
                    assert_eq!(
                        (stop_step.1, start_step.1),
                        (Status::Succeeded, Status::Succeeded),
                        "{path:?}"
                    );
                }
                Path::StopRefused => {
                    assert!(updates(&swarm).iter().all(|u| !u.contains("replicas=0")), "{path:?}");
                    assert_eq!(stop_step.1, Status::Failed);
                    assert!(stop_step.2.contains("cannot scale the service to 0"), "{}", stop_step.2);
                    assert_eq!(start_step.1, Status::Succeeded);
                }
                Path::StopTimesOut => {
                    assert_eq!(stop_step.1, Status::Failed);
                    assert!(
                        stop_step.2.contains(
                            "tasks still ran after the stop timeout 20s (label dockhand.backup.stop.timeout)"
                        ),
                        "{}",
                        stop_step.2
                    );
                    assert_eq!(
                        updates(&swarm).last().map(String::as_str),
                        Some("update_service web replicas=3 intent=-")
                    );
                }
                Path::StartTimesOut => {
                    assert_eq!(stop_step.1, Status::Succeeded);
                    assert_eq!(start_step.1, Status::Failed);
                    assert!(
                        start_step.2.contains("did not all run within the start timeout 20s"),
                        "{}",
                        start_step.2
                    );
                }
            }
        }
    }

    /// A job future dropped between its stop and its start still gives the replicas back:
    /// the guard starts the service in the background.
    #[tokio::test(start_paused = true)]
    async fn a_dropped_job_still_starts_the_service() {
        let swarm = Arc::new(FakeSwarm::manager());
        let id = swarm.add_service("web", 2, &[]);
        let ctx = ctx(&swarm);
        let sink = Collect::default();
        {
            let mut run = Running::start(&ctx, &sink, Action::BackupService, target(&id));
            let guard = stop(&mut run, &id, &budget("stop")).await.ok().unwrap();
            assert_eq!(swarm.spec(&id).replicas(), Some(0));
            drop(guard);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        let spec = swarm.spec(&id);
        assert_eq!((spec.replicas(), spec.labels.get(INTENT_LABEL)), (Some(2), None));
    }

    /// A count another dockhand left owed wins over the count now (0): the start gives the
    /// service what it had before the first stop.
    #[tokio::test(start_paused = true)]
    async fn an_intent_left_by_a_dead_job_is_kept_and_honoured() {
        let swarm = Arc::new(FakeSwarm::manager());
        let id = swarm.add_service("web", 0, &[(INTENT_LABEL, "5")]);
        let ctx = ctx(&swarm);
        let sink = Collect::default();
        let mut run = Running::start(&ctx, &sink, Action::Restore, target(&id));
        let guard = stop(&mut run, &id, &budget("stop")).await.ok().unwrap();
        start(&mut run, &id, &budget("start"), Some(guard)).await;
        assert_eq!(
            updates(&swarm),
            ["update_service web replicas=0 intent=5", "update_service web replicas=5 intent=-"]
        );
    }

    /// Reconcile gives back what a dead job owed, as a `reconcile` job under the service's
    /// lock, and leaves alone a service whose lock a live job holds or that is outside the
    /// instance's scope.
    #[tokio::test(start_paused = true)]
    async fn reconcile_scales_back_only_what_no_live_job_owns() {
        let swarm = Arc::new(FakeSwarm::manager());
        let owed = swarm.add_service("owed", 0, &[(INTENT_LABEL, "2"), ("team", "a")]);
        let busy = swarm.add_service("busy", 0, &[(INTENT_LABEL, "4"), ("team", "a")]);
        let other = swarm.add_service("other", 0, &[(INTENT_LABEL, "1"), ("team", "b")]);
        let untouched = swarm.add_service("fine", 3, &[("team", "a")]);
        let mut ctx = ctx(&swarm);
        ctx.scope = Some(("team".to_owned(), "a".to_owned()));
        let live = ctx.locks.acquire(&LockTarget::Service(busy.clone()), "job-live").await.unwrap();

        let jobs = reconcile(&ctx, &Collect::default()).await.unwrap();

        assert_eq!(jobs.len(), 1, "{jobs:?}");
        assert_eq!(jobs[0].action, Action::Reconcile);
        assert_eq!(jobs[0].status, Status::Succeeded, "{jobs:?}");
        assert_eq!(swarm.spec(&owed).replicas(), Some(2));
        assert_eq!(swarm.spec(&busy).replicas(), Some(0), "a live job's service is its own to start");
        assert_eq!(swarm.spec(&other).replicas(), Some(0), "another instance's tenant");
        assert_eq!(swarm.spec(&untouched).replicas(), Some(3));
        live.release().await.unwrap();
        assert!(swarm.config_list().is_empty(), "reconcile released its lock");
    }

    /// Reconcile does nothing on an engine that is not a manager.
    #[tokio::test(start_paused = true)]
    async fn reconcile_on_a_worker_does_nothing() {
        let swarm = Arc::new(FakeSwarm::worker());
        let jobs = reconcile(&ctx(&swarm), &Collect::default()).await.unwrap();
        assert!(jobs.is_empty());
        assert!(swarm.log().is_empty());
    }
}
