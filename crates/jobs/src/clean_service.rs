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
use dockhand_policy::{TargetLabels, service_policy};
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
pub fn plan_clean_service(service: &Service, ctx: &JobContext) -> ServicePlan {
    let labels = &service.spec.labels;
    let view = TargetLabels::resolve(labels, &ctx.prefixes);
    let (policy, _diagnostics) =
        service_policy(labels, service.spec.is_global(), &ctx.defaults, &ctx.prefixes);
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
    services.retain(|s| matches!(plan_clean_service(s, ctx), ServicePlan::Exec { .. }));
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
    let (argv, budget) = match plan_clean_service(service, ctx) {
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
