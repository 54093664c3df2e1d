//! clean-service: run the service's `clean.exec` through `clean.exec.shell -c` in the
//! container of every running task, replicated or global, on whatever node, with the exec
//! timeout. Tasks run in parallel, up to the context's concurrency; each is a step with its
//! exit code and output tail.
//!
//! Tasks on the node dockhand is connected to are exec'd through its engine; the tasks on
//! each other node through one helper there (`dockhand agent exec`), which execs in all of
//! them. A service without `clean.enable=true` is refused, naming the label.

use std::collections::BTreeMap;

use dockhand_engine::{Filters, Service};
use dockhand_policy::{Defaults, LabelPrefixes, TargetLabels, service_policy};
use futures_util::StreamExt;

use crate::agent::protocol::Budget;
use crate::job::{Action, Job, Sink, Status, Target};
use crate::lock::LockTarget;
use crate::runner::{JobContext, JobError, Running};
use crate::steps::exec::exec_in_tasks;
use crate::steps::lookup::hostnames;
use crate::swarm::Connected;

/// What clean-service will run, or why it will not: the pure half, from the service's
/// labels.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServicePlan {
    /// Run `argv` in every running task, each within `budget`.
    Exec {
        /// `[shell, "-c", clean.exec]`.
        argv: Vec<String>,
        /// The exec timeout and where it came from.
        budget: Budget,
    },
    /// The labels do not allow it; the reason names the label.
    Refuse(String),
}

/// Plans clean-service from `service`'s labels.
pub fn plan_clean_service(service: &Service, defaults: &Defaults, prefixes: &LabelPrefixes) -> ServicePlan {
    let labels = &service.spec.labels;
    let view = TargetLabels::resolve(labels, prefixes);
    let (policy, _diagnostics) = service_policy(labels, service.spec.is_global(), defaults, prefixes);
    let name = &service.spec.name;
    let Some(clean) = policy.clean else {
        return ServicePlan::Refuse(format!(
            "service {name} does not allow clean-service: it needs the label {}=true",
            view.key_for("clean.enable")
        ));
    };
    let Some(exec) = clean.exec else {
        return ServicePlan::Refuse(format!(
            "service {name} has no {} label: there is nothing to run",
            view.key_for("clean.exec")
        ));
    };
    let source = match view.get("clean.exec.timeout") {
        Some((key, _)) => format!("label {key}"),
        None => "the default".to_owned(),
    };
    ServicePlan::Exec {
        argv: vec![clean.shell, "-c".to_owned(), exec],
        budget: Budget::new(clean.exec_timeout, source),
    }
}

/// Runs clean-service on `service` (a name or ID).
pub async fn clean_service(ctx: &JobContext, service: &str, sink: &dyn Sink) -> Result<Job, JobError> {
    let connected = Connected::read(&*ctx.swarm).await?;
    if !connected.manager {
        return Err(JobError::NotManager(connected.name));
    }
    let found = match ctx.swarm.service(service).await {
        Ok(s) => s,
        Err(e) if e.is_not_found() => return Err(JobError::UnknownService(service.to_owned())),
        Err(e) => return Err(e.into()),
    };
    let names = hostnames(ctx).await?;
    Ok(run_on(ctx, &connected, &names, &found, sink).await)
}

/// Runs clean-service on every service whose labels enable it, up to `ctx.concurrency` at
/// once; one job per service, sorted by name.
pub async fn clean_all_services(ctx: &JobContext, sink: &dyn Sink) -> Result<Vec<Job>, JobError> {
    let connected = Connected::read(&*ctx.swarm).await?;
    if !connected.manager {
        return Err(JobError::NotManager(connected.name));
    }
    let mut services = ctx.swarm.services(&Filters::new()).await?;
    services
        .retain(|s| matches!(plan_clean_service(s, &ctx.defaults, &ctx.prefixes), ServicePlan::Exec { .. }));
    services.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
    let names = hostnames(ctx).await?;
    let (connected, names) = (&connected, &names);
    Ok(futures_util::stream::iter(&services)
        .map(|s| run_on(ctx, connected, names, s, sink))
        .buffered(ctx.concurrency.max(1))
        .collect()
        .await)
}

async fn run_on(
    ctx: &JobContext,
    connected: &Connected,
    names: &BTreeMap<String, String>,
    service: &Service,
    sink: &dyn Sink,
) -> Job {
    let target = Target::Service { id: service.id.clone(), name: service.spec.name.clone() };
    let mut run = Running::start(ctx, sink, Action::CleanService, target);
    let (argv, budget) = match plan_clean_service(service, &ctx.defaults, &ctx.prefixes) {
        ServicePlan::Refuse(reason) => {
            run.push_now("policy", Status::Refused, reason);
            return run.finish(Some(Status::Refused)).await;
        }
        ServicePlan::Exec { argv, budget } => (argv, budget),
    };
    if let Err(status) = run.lock(LockTarget::Service(service.id.clone())).await {
        return run.finish(status).await;
    }
    exec_in_tasks(&mut run, connected, names, service, &argv, &budget, Action::CleanService).await;
    run.finish(None).await
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::job::{Collect, Step};
    use crate::swarm::fake::{FakeSwarm, Fault, context};

    const ENABLED: [(&str, &str); 2] =
        [("dockhand.clean.enable", "true"), ("dockhand.clean.exec", "rm -rf /tmp/cache")];

    /// The order of clean-service: the service's lock, one exec per running task (the
    /// label's command through its shell, as an argv), the lock released; the job's steps
    /// say the same.
    #[tokio::test(start_paused = true)]
    async fn clean_service_locks_execs_in_every_task_and_releases() {
        let swarm = Arc::new(FakeSwarm::manager());
        let id = swarm.add_service("web", 2, &ENABLED);
        let job = clean_service(&context(&swarm), "web", &Collect::default()).await.unwrap();

        assert_eq!(job.status, Status::Succeeded, "{job:?}");
        let log = swarm.log();
        let lock = format!("create_config dockhand-lock-service-{id}");
        assert_eq!(log.first(), Some(&lock), "{log:?}");
        let execs: Vec<&String> = log.iter().filter(|w| w.starts_with("exec ")).collect();
        assert_eq!(execs.len(), 2, "{log:?}");
        for slot in 0..2 {
            let line = format!("exec {} /bin/sh -c rm -rf /tmp/cache", FakeSwarm::container(&id, slot));
            assert!(execs.iter().any(|e| **e == line), "{line} not in {log:?}");
        }
        assert!(log.last().is_some_and(|w| w.starts_with("remove_config")), "released last: {log:?}");
        let kinds: Vec<&str> = job.steps.iter().map(|s| s.kind.as_str()).collect();
        assert_eq!(kinds, ["exec", "exec"]);
    }

    /// Every way an exec ends, and what the job says: a non-zero exit names the task and
    /// keeps the output's tail, an exec that outlives its budget names the label that set
    /// it, an engine error names the container; the other task's exec is not held up.
    #[tokio::test(start_paused = true)]
    async fn a_failed_exec_fails_its_step_naming_the_task_and_the_others_still_run() {
        for (answer, expected) in [
            (Some((3, "disk full")), "the command exited with 3 in task"),
            (None, "ran out of its 1s (label dockhand.clean.exec.timeout)"),
        ] {
            let swarm = Arc::new(FakeSwarm::manager());
            let labels = [ENABLED[0], ENABLED[1], ("dockhand.clean.exec.timeout", "1s")];
            let id = swarm.add_service("web", 2, &labels);
            swarm.script_exec(&FakeSwarm::container(&id, 0), answer);
            let job = clean_service(&context(&swarm), "web", &Collect::default()).await.unwrap();

            assert_eq!(job.status, Status::Failed);
            let failed: Vec<&Step> = job.steps.iter().filter(|s| s.status == Status::Failed).collect();
            assert_eq!(failed.len(), 1, "{job:?}");
            let error = failed[0].error.clone().unwrap_or_default();
            assert!(error.contains(expected), "{error}");
            if let Some((_, output)) = answer {
                assert_eq!(failed[0].output_tail.as_deref(), Some(output));
            }
            assert_eq!(job.steps.iter().filter(|s| s.status == Status::Succeeded).count(), 1);
            assert!(swarm.config_list().is_empty(), "the lock is released on a failure too");
        }
        let swarm = Arc::new(FakeSwarm::manager());
        swarm.add_service("web", 1, &ENABLED);
        swarm.fail("exec", 1, Fault::Broken);
        let job = clean_service(&context(&swarm), "web", &Collect::default()).await.unwrap();
        let error = job.steps[0].error.clone().unwrap_or_default();
        assert!(error.contains("(container ctr-svc") && error.contains("told to fail"), "{error}");
    }

    /// A service its labels do not enable is refused before anything is locked or run; a
    /// busy target is busy without an exec; a service with no running task is skipped.
    #[tokio::test(start_paused = true)]
    async fn refusals_busy_targets_and_idle_services_run_nothing() {
        let swarm = Arc::new(FakeSwarm::manager());
        swarm.add_service("plain", 1, &[]);
        let busy = swarm.add_service("busy", 1, &ENABLED);
        swarm.add_service("idle", 0, &ENABLED);
        let ctx = context(&swarm);
        let other = ctx.locks.with_swarm(Arc::clone(&swarm) as Arc<dyn crate::swarm::Swarm>);
        let held = other.for_request("another", std::time::Duration::ZERO);
        let guard = held.acquire(&LockTarget::Service(busy), "job-other").await.unwrap();
        let mut quick = ctx.clone();
        quick.locks = ctx.locks.for_request("mine", std::time::Duration::ZERO);

        let refused = clean_service(&quick, "plain", &Collect::default()).await.unwrap();
        assert_eq!(refused.status, Status::Refused, "{refused:?}");
        let taken = clean_service(&quick, "busy", &Collect::default()).await.unwrap();
        assert_eq!(taken.status, Status::Busy, "{taken:?}");
        let idle = clean_service(&quick, "idle", &Collect::default()).await.unwrap();
        assert_eq!(idle.steps[0].status, Status::Skipped, "{idle:?}");
        assert!(!swarm.log().iter().any(|w| w.starts_with("exec ")), "{:?}", swarm.log());
        guard.release().await.unwrap();
    }
}
