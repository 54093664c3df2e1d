//! Running a command in every running task of a service, grouped by node: directly on the
//! connected node, through one helper per other node.

use std::collections::BTreeMap;
use std::time::SystemTime;

use dockhand_engine::{Filters, Service};
use futures_util::StreamExt;

use crate::agent::exec_step;
use crate::agent::protocol::{AgentLine, AgentTask, Budget, ExecTarget};
use crate::helper::{HelperRun, run_helper};
use crate::job::{Action, Status, Step};
use crate::lock::LockTarget;
use crate::runner::{JobContext, Running};
use crate::swarm::Connected;

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
        step = exec_step(&*ctx.swarm, target, argv, budget, node) => step,
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
        .swarm
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
