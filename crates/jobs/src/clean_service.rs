//! clean-service: run the service's `clean.exec` through `clean.exec.shell -c` in the
//! container of every running task, replicated or global, on whatever node, with the exec
//! timeout. Tasks run in parallel, up to the context's concurrency; each is a step with its
//! exit code and output tail.
//!
//! Tasks on the node dockhand is connected to are exec'd through its engine; the tasks on
//! each other node through one helper there (`dockhand agent exec`), which execs in all of
//! them. A service without `clean.enable=true` is refused, naming the label.

use std::collections::BTreeMap;
use std::time::SystemTime;

use dockhand_engine::{Filters, Service};
use dockhand_policy::{TargetLabels, service_policy};
use futures_util::StreamExt;

use crate::agent::{AgentLine, AgentTask, Budget, ExecTarget, exec_step};
use crate::helper::{HelperRun, run_helper};
use crate::job::{Action, Job, Sink, Status, Step, Target};
use crate::lock::LockTarget;
use crate::runner::{Connected, JobContext, JobError, Running};

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
    let connected = Connected::read(&ctx.client).await?;
    if !connected.manager {
        return Err(JobError::NotManager(connected.name));
    }
    let found = match ctx.client.service(service).await {
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
    let connected = Connected::read(&ctx.client).await?;
    if !connected.manager {
        return Err(JobError::NotManager(connected.name));
    }
    let mut services = ctx.client.services(&Filters::new()).await?;
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

/// The swarm's node hostnames by node ID, read once per command.
pub(crate) async fn hostnames(ctx: &JobContext) -> Result<BTreeMap<String, String>, dockhand_engine::Error> {
    let nodes = ctx.client.nodes(&Filters::new()).await?;
    Ok(nodes.into_iter().map(|n| (n.id, n.description.hostname)).collect())
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

/// Runs `argv` in every running task of `service`, each within `budget`: through the
/// connected engine for its own node's tasks, through one helper per other node. Each exec
/// is a step of `run`; a failure to list the tasks is one failed step.
pub(crate) async fn exec_in_tasks(
    run: &mut Running<'_>,
    connected: &Connected,
    names: &BTreeMap<String, String>,
    service: &Service,
    argv: &[String],
    budget: &Budget,
    action: Action,
) {
    let ctx = run.ctx;
    let groups = match running_tasks(ctx, service).await {
        Ok(found) => found,
        Err(e) => {
            run.push_now("tasks", Status::Failed, e.to_string());
            return;
        }
    };
    if groups.is_empty() {
        run.push_now("exec", Status::Skipped, format!("service {} has no running task", service.spec.name));
        return;
    }
    for (node, targets) in &groups {
        for t in targets {
            let mut step = Step::start("exec", SystemTime::now());
            step.node = Some(names.get(node).cloned().unwrap_or_else(|| node.clone()));
            step.task = Some(t.task.clone());
            run.started(&step);
        }
    }
    let job_id = run.job.id.clone();
    let started = SystemTime::now();
    // Owned items, not references: a closure over borrowed items makes a future the
    // compiler cannot prove `Send` (the server runs jobs on a multi-threaded runtime).
    let owned: Vec<(String, Vec<ExecTarget>)> = groups.iter().map(|(n, t)| (n.clone(), t.clone())).collect();
    let per_node = futures_util::stream::iter(owned)
        .map(|(node, targets)| {
            let hostname = names.get(&node).cloned().unwrap_or_else(|| node.clone());
            let job_id = &job_id;
            async move {
                let (node, targets) = (&node, &targets);
                if *node == connected.node_id {
                    let hostname = &hostname;
                    let steps: Vec<Step> = futures_util::stream::iter(targets.clone())
                        .map(|t| async move { local_exec(ctx, &t, argv, budget, hostname).await })
                        .buffer_unordered(ctx.concurrency.max(1))
                        .collect()
                        .await;
                    return Ok(steps);
                }
                // One helper per node execs in all of its tasks; its budget covers them
                // all at the helper's concurrency.
                let rounds = targets.len().div_ceil(ctx.concurrency.max(1));
                let timeout =
                    budget.timeout * u32::try_from(rounds).unwrap_or(u32::MAX) + ctx.defaults.extra_timeout;
                let helper = HelperRun {
                    job: job_id,
                    action: action.as_str(),
                    target: LockTarget::Service(service.id.clone()).label(),
                    node_id: node,
                    node_name: &hostname,
                    task: AgentTask::Exec {
                        argv: argv.to_vec(),
                        budget: budget.clone(),
                        targets: targets.clone(),
                        concurrency: ctx.concurrency.max(1),
                    },
                    timeout,
                    access: crate::helper::Access::default(),
                };
                match run_helper(&ctx.client, &ctx.helpers, &helper, &ctx.cancel).await {
                    Ok(output) => Ok(output
                        .lines
                        .into_iter()
                        .filter_map(|l| if let AgentLine::Step { step } = l { Some(step) } else { None })
                        .collect()),
                    Err(e) => Err((hostname, e)),
                }
            }
        })
        .buffer_unordered(ctx.concurrency.max(1))
        .collect::<Vec<_>>()
        .await;
    for result in per_node {
        match result {
            Ok(steps) => steps.into_iter().for_each(|s| run.push(s)),
            Err((node, e)) => run.helper_failed("helper", &node, started, &e),
        }
    }
}

/// An exec on the connected node that stops waiting when the job is cancelled.
async fn local_exec(
    ctx: &JobContext,
    target: &ExecTarget,
    argv: &[String],
    budget: &Budget,
    node: &str,
) -> Step {
    tokio::select! {
        step = exec_step(&ctx.client, target, argv, budget, node) => step,
        () = ctx.cancel.cancelled() => {
            let mut step = Step::start("exec", SystemTime::now());
            step.node = Some(node.to_owned());
            step.task = Some(target.task.clone());
            step.container = Some(target.container.clone());
            step.finish(Status::Cancelled, SystemTime::now(), Some("cancelled".to_owned()));
            step
        }
    }
}

type Groups = BTreeMap<String, Vec<ExecTarget>>;

/// The service's running tasks with a container, by node ID.
async fn running_tasks(ctx: &JobContext, service: &Service) -> Result<Groups, dockhand_engine::Error> {
    let tasks = ctx
        .client
        .tasks(&Filters::new().with("service", &service.id).with("desired-state", "running"))
        .await?;
    let mut groups = Groups::new();
    for task in tasks.into_iter().filter(|t| t.status.state == "running") {
        let Some(container) = task.status.container_status.as_ref().map(|c| c.container_id.clone()) else {
            continue;
        };
        if container.is_empty() {
            continue;
        }
        groups.entry(task.node_id.clone()).or_default().push(ExecTarget { task: task.id.clone(), container });
    }
    Ok(groups)
}
