//! Stopping and starting a service with the intent label ([`INTENT_LABEL`]): the replica
//! count is recorded in the same compare-and-swap update that scales to 0 and removed in the
//! one that scales back, the start runs on every path, and [`reconcile`] gives back the
//! replicas of a job that died.

use std::time::{Duration, SystemTime};

use dockhand_engine::{Client, Filters, Service, UpdateOptions};

use crate::job::{Action, Job, Sink, Status, Step, Target};
use crate::lock::LockTarget;
use crate::runner::{JobContext, JobError, Running};
use crate::swarm::Connected;

/// The label that records, on the service itself, the replica count a backup or restore
/// scaled it down from. While it is there, the service is owed its replicas back.
pub const INTENT_LABEL: &str = "dockhand.backup.restore-replicas";

/// Scales the service back if the job future is dropped before [`start`] ran: the start
/// must happen on every path. Disarmed by `start`.
pub(crate) struct StartGuard {
    client: Option<Client>,
    service: String,
}

impl Drop for StartGuard {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else { return };
        let service = std::mem::take(&mut self.service);
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                if let Err(e) = restore_replicas(&client, &service).await {
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
    budget: &crate::Budget,
) -> Result<StartGuard, StartGuard> {
    let mut step = Step::start("stop", SystemTime::now());
    run.started(&step);
    let mut replicas = None;
    let updated = run
        .ctx
        .client
        .modify_service(service, &UpdateOptions::default(), |spec| {
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
    let guard = StartGuard { client: Some(run.ctx.client.clone()), service: service.to_owned() };
    if let Err(e) = updated {
        step.finish(Status::Failed, SystemTime::now(), Some(format!("cannot scale the service to 0: {e}")));
        run.push(step);
        return Err(guard);
    }
    if let Some(n) = replicas {
        run.progress(format!("scaled from {n} to 0 replicas: waiting for its tasks to stop"));
    }
    let waited = tokio::time::timeout(budget.timeout, wait_tasks(&run.ctx.client, service, 0)).await;
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
    budget: &crate::Budget,
    guard: Option<StartGuard>,
) {
    let mut step = Step::start("start", SystemTime::now());
    run.started(&step);
    if let Some(mut guard) = guard {
        guard.client = None;
    }
    match restore_replicas(&run.ctx.client, service).await {
        Err(e) => {
            step.finish(
                Status::Failed,
                SystemTime::now(),
                Some(format!("cannot scale the service back: {e}")),
            );
        }
        Ok(None) => step.finish(Status::Succeeded, SystemTime::now(), None),
        Ok(Some(n)) => {
            let waited = tokio::time::timeout(budget.timeout, wait_tasks(&run.ctx.client, service, n)).await;
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
pub async fn restore_replicas(client: &Client, service: &str) -> Result<Option<u64>, dockhand_engine::Error> {
    let mut owed = None;
    let mut bad = None;
    client
        .modify_service(service, &UpdateOptions::default(), |spec| {
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

/// Waits until exactly `running` tasks of `service` run (0: until none does).
async fn wait_tasks(client: &Client, service: &str, running: u64) -> Result<(), dockhand_engine::Error> {
    let mut pause = Duration::from_millis(100);
    loop {
        let tasks = client.tasks(&Filters::new().with("service", service)).await?;
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
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

/// Brings back every service a stopped dockhand left scaled down: a service with the intent
/// label whose lock no live job holds is scaled back and its label removed, recorded as a
/// `reconcile` job. Called before every command that talks to a manager, and by the server
/// at start.
pub async fn reconcile(ctx: &JobContext, sink: &dyn Sink) -> Result<Vec<Job>, JobError> {
    let connected = Connected::read(&ctx.client).await?;
    if !connected.manager {
        return Ok(Vec::new());
    }
    let owed = ctx.client.services(&Filters::new().with("label", INTENT_LABEL)).await?;
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
        let budget =
            crate::Budget::new(ctx.defaults.backup_start_timeout, "the default backup.start.timeout");
        start(&mut run, &service.id, &budget, None).await;
        jobs.push(run.finish(None).await);
    }
    Ok(jobs)
}
