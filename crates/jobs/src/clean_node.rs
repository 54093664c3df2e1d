//! clean-node: prune a node's stopped containers, all unused images and the build cache,
//! each a step with its own timeout, reporting the space reclaimed; then the node's
//! `clean.exec`, if any, in a helper of its `clean.exec.image`. Volumes are never touched.
//!
//! Planning is pure ([`plan_clean_node`]: a node's labels and state give the steps). The
//! node dockhand is connected to prunes through its engine directly; any other node through
//! a helper running `dockhand agent clean-node` there. An engine that is not a swarm
//! manager (a worker reached directly, a plain or rootless engine) cleans itself.

use std::collections::BTreeMap;
use std::time::Duration;

use dockhand_engine::Filters;
use dockhand_policy::{Defaults, LabelPrefixes, TargetLabels, node_policy};
use futures_util::StreamExt;

use crate::agent::protocol::{AgentLine, AgentTask, Budget, Prune};
use crate::agent::prune_step;
use crate::helper::{HelperRun, run_helper};
use crate::job::{Action, Job, Sink, Status, Step, Target};
use crate::lock::LockTarget;
use crate::runner::{JobContext, JobError, Running};
use crate::steps::lookup::find_node;
use crate::swarm::Connected;

/// What clean-node will do on one node.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodePlan {
    /// These prunes, in order, each with its budget; a disabled one is skipped, with the
    /// label that disabled it.
    Clean(Vec<(Prune, Result<Budget, String>)>),
    /// The node is down or drained: skipped, not waited on.
    Skip(String),
    /// The node's labels exclude it.
    Refuse(String),
}

/// Plans clean-node for `labels` on a node in `state` (`ready`, `down`, ...) with
/// `availability` (`active`, `drain`, ...). Pure: a table of cases is its test.
pub fn plan_clean_node(
    labels: &BTreeMap<String, String>,
    state: &str,
    availability: &str,
    defaults: &Defaults,
    prefixes: &LabelPrefixes,
) -> NodePlan {
    let (policy, _diagnostics) = node_policy(labels, defaults, prefixes);
    let Some(policy) = policy else {
        return NodePlan::Refuse(format!("excluded by the label {}clean.enable=false", prefixes.primary()));
    };
    if state != "ready" {
        return NodePlan::Skip(format!("the node is {state}"));
    }
    if availability == "drain" {
        return NodePlan::Skip("the node is drained".to_owned());
    }
    let view = TargetLabels::resolve(labels, prefixes);
    let step = |prune: Prune, s: dockhand_policy::PruneStep| {
        let name = prune.label_name();
        let decided = if s.enabled {
            let source = match view.get(&format!("clean.{name}.timeout")) {
                Some((key, _)) => format!("label {key}"),
                None => "the default".to_owned(),
            };
            Ok(Budget::new(s.timeout, source))
        } else {
            Err(format!("disabled by the label {}clean.{name}.enable=false", prefixes.primary()))
        };
        (prune, decided)
    };
    NodePlan::Clean(vec![
        step(Prune::Containers, policy.container),
        step(Prune::Images, policy.image),
        step(Prune::BuildCache, policy.builder),
    ])
}

/// Runs clean-node on `node` (an ID or hostname; `None`: the engine dockhand is connected
/// to). Returns the finished job: `succeeded`, `failed` (a step failed), `refused` (labels
/// exclude the node), `busy` (another job holds its lock) or `cancelled`.
pub async fn clean_node(ctx: &JobContext, node: Option<&str>, sink: &dyn Sink) -> Result<Job, JobError> {
    let connected = Connected::read(&*ctx.swarm).await?;
    if !connected.manager {
        if let Some(asked) = node.filter(|a| *a != connected.name && *a != connected.node_id) {
            return Err(JobError::Elsewhere { node: asked.to_owned(), connected: connected.name });
        }
        // Not a manager: this engine cleans itself; its node labels cannot be read here.
        let (id, name) = (connected.node_id.clone(), connected.name.clone());
        return Ok(run_on(ctx, &connected, &id, &name, &BTreeMap::new(), "ready", "active", sink).await);
    }
    let nodes = ctx.swarm.nodes(&Filters::new()).await?;
    let wanted = node.unwrap_or(connected.node_id.as_str());
    let n = find_node(&nodes, wanted)?;
    let (id, name) = (n.id.clone(), n.description.hostname.clone());
    Ok(run_on(ctx, &connected, &id, &name, &n.spec.labels, &n.status.state, &n.spec.availability, sink).await)
}

/// Runs clean-node on every node of the swarm, up to `ctx.concurrency` at once; one job per
/// node, in the nodes' order.
pub async fn clean_all_nodes(ctx: &JobContext, sink: &dyn Sink) -> Result<Vec<Job>, JobError> {
    let connected = Connected::read(&*ctx.swarm).await?;
    if !connected.manager {
        return Ok(vec![clean_node(ctx, None, sink).await?]);
    }
    let mut nodes = ctx.swarm.nodes(&Filters::new()).await?;
    nodes.sort_by(|a, b| a.description.hostname.cmp(&b.description.hostname));
    let connected = &connected;
    let jobs = futures_util::stream::iter(&nodes)
        .map(|n| {
            run_on(
                ctx,
                connected,
                &n.id,
                &n.description.hostname,
                &n.spec.labels,
                &n.status.state,
                &n.spec.availability,
                sink,
            )
        })
        .buffered(ctx.concurrency.max(1))
        .collect()
        .await;
    Ok(jobs)
}

#[allow(clippy::too_many_arguments)]
async fn run_on(
    ctx: &JobContext,
    connected: &Connected,
    id: &str,
    hostname: &str,
    labels: &BTreeMap<String, String>,
    state: &str,
    availability: &str,
    sink: &dyn Sink,
) -> Job {
    let target = Target::Node { id: id.to_owned(), hostname: hostname.to_owned() };
    let mut run = Running::start(ctx, sink, Action::CleanNode, target);
    let prunes = match plan_clean_node(labels, state, availability, &ctx.defaults, &ctx.prefixes) {
        NodePlan::Refuse(reason) => {
            run.push_now("policy", Status::Refused, reason);
            return run.finish(Some(Status::Refused)).await;
        }
        NodePlan::Skip(reason) => {
            run.push_now("node", Status::Skipped, reason);
            return run.finish(None).await;
        }
        NodePlan::Clean(prunes) => prunes,
    };
    // One operation per node at a time, across processes: the swarm lock (a manager only).
    if connected.manager {
        if let Err(status) = run.lock(LockTarget::Node(id.to_owned())).await {
            return run.finish(status).await;
        }
    }
    let skipped = |prune: Prune, reason: &str| {
        let mut step = Step::start(prune.kind(), std::time::SystemTime::now());
        step.node = Some(hostname.to_owned());
        step.finish(Status::Skipped, std::time::SystemTime::now(), Some(reason.to_owned()));
        step
    };
    if id == connected.node_id || !connected.manager {
        for (prune, decided) in prunes {
            if ctx.cancel.is_cancelled() {
                break;
            }
            let step = match decided {
                Err(reason) => skipped(prune, &reason),
                Ok(budget) => {
                    let mut starting = Step::start(prune.kind(), std::time::SystemTime::now());
                    starting.node = Some(hostname.to_owned());
                    run.started(&starting);
                    prune_step(&*ctx.swarm, prune, &budget, hostname).await
                }
            };
            run.push(step);
        }
        node_exec(ctx, &mut run, id, hostname, labels).await;
        return run.finish(None).await;
    }
    // Another node: a helper there runs the enabled prunes.
    let mut enabled = Vec::new();
    for (prune, decided) in &prunes {
        match decided {
            Ok(budget) => enabled.push((*prune, budget.clone())),
            Err(reason) => run.push(skipped(*prune, reason)),
        }
    }
    if enabled.is_empty() {
        node_exec(ctx, &mut run, id, hostname, labels).await;
        return run.finish(None).await;
    }
    let timeout = enabled.iter().map(|(_, b)| b.timeout).sum::<Duration>() + ctx.defaults.extra_timeout;
    let helper = HelperRun {
        job: &run.job.id.clone(),
        action: Action::CleanNode.as_str(),
        target: LockTarget::Node(id.to_owned()).label(),
        node_id: id,
        node_name: hostname,
        task: AgentTask::CleanNode { prunes: enabled },
        timeout,
        access: crate::helper::Access::default(),
    };
    let started = std::time::SystemTime::now();
    let mut starting = Step::start("helper", started);
    starting.node = Some(hostname.to_owned());
    run.started(&starting);
    run.progress(format!("a helper cleans node {hostname}"));
    run_helper_steps(ctx, &mut run, &helper, "helper", started).await;
    node_exec(ctx, &mut run, id, hostname, labels).await;
    run.finish(None).await
}

/// The node's `clean.exec`, after the prunes: in a helper of `clean.exec.image` pinned to
/// the node, with its shell and timeout, as a step of its own with the tail of what it
/// printed. Not run when the job was cancelled; a `clean.exec` without its image fails the
/// step with the label to add.
async fn node_exec(
    ctx: &JobContext,
    run: &mut Running<'_>,
    id: &str,
    hostname: &str,
    labels: &BTreeMap<String, String>,
) {
    if ctx.cancel.is_cancelled() {
        return;
    }
    let (policy, diagnostics) = node_policy(labels, &ctx.defaults, &ctx.prefixes);
    let Some(exec) = policy.and_then(|p| p.exec) else {
        if let Some(d) = diagnostics.iter().find(|d| d.key.ends_with("clean.exec")) {
            run.push_now("exec", Status::Failed, format!("{}: {}", d.key, d.message));
        }
        return;
    };
    let view = TargetLabels::resolve(labels, &ctx.prefixes);
    let source = match view.get("clean.exec.timeout") {
        Some((key, _)) => format!("label {key}"),
        None => "the default".to_owned(),
    };
    let budget = Budget::new(exec.timeout, source);
    let started = std::time::SystemTime::now();
    let mut step = Step::start("exec", started);
    step.node = Some(hostname.to_owned());
    run.started(&step);
    let argv = vec![exec.shell.clone(), "-c".to_owned(), exec.command.clone()];
    if exec.host {
        host_exec(ctx, run, id, hostname, &exec.image, argv, &budget).await;
        return;
    }
    let command = crate::helper::CommandRun {
        job: &run.job.id.clone(),
        action: Action::CleanNode.as_str(),
        target: LockTarget::Node(id.to_owned()).label(),
        node_id: id,
        node_name: hostname,
        image: &exec.image,
        argv,
        volumes: &[],
        read_write: false,
        timeout: budget.timeout,
    };
    match crate::helper::run_command_helper(&ctx.client, &ctx.helpers, &command, &ctx.cancel).await {
        Ok(said) => {
            step.finish(Status::Succeeded, std::time::SystemTime::now(), None);
            step.output_tail = (!said.is_empty()).then_some(said);
            run.push(step);
        }
        Err(e) => run.helper_failed("exec", hostname, started, &e),
    }
}

/// `clean.exec.host=true`: on the node dockhand is connected to, through its engine; on
/// another, through the agent of a helper there (a swarm service cannot be privileged).
async fn host_exec(
    ctx: &JobContext,
    run: &mut Running<'_>,
    id: &str,
    hostname: &str,
    image: &str,
    argv: Vec<String>,
    budget: &Budget,
) {
    let here = Connected::read(&*ctx.swarm).await.is_ok_and(|c| c.node_id == id || !c.manager);
    if here {
        run.push(crate::host_exec::host_exec_step(&ctx.client, image, &argv, budget.timeout, hostname).await);
        return;
    }
    let helper = HelperRun {
        job: &run.job.id.clone(),
        action: Action::CleanNode.as_str(),
        target: LockTarget::Node(id.to_owned()).label(),
        node_id: id,
        node_name: hostname,
        task: AgentTask::HostExec { image: image.to_owned(), argv, budget: budget.clone() },
        timeout: budget.timeout + ctx.defaults.extra_timeout,
        access: crate::helper::Access::default(),
    };
    run_helper_steps(ctx, run, &helper, "exec", std::time::SystemTime::now()).await;
}

/// Runs `helper` and records the steps its agent reported; its failure is the step `kind`.
async fn run_helper_steps(
    ctx: &JobContext,
    run: &mut Running<'_>,
    helper: &HelperRun<'_>,
    kind: &str,
    started: std::time::SystemTime,
) {
    match run_helper(&ctx.client, &ctx.helpers, helper, &ctx.cancel).await {
        Ok(output) => {
            for line in output.lines {
                if let AgentLine::Step { step } = line {
                    run.push(step);
                }
            }
        }
        Err(e) => run.helper_failed(kind, helper.node_name, started, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn the_plan_follows_labels_and_state() {
        let d = Defaults::default();
        let p = LabelPrefixes::default();
        let NodePlan::Clean(all) = plan_clean_node(&labels(&[]), "ready", "active", &d, &p) else {
            panic!("a node without labels is cleaned")
        };
        assert_eq!(
            all.iter().map(|(prune, _)| *prune).collect::<Vec<_>>(),
            [Prune::Containers, Prune::Images, Prune::BuildCache]
        );
        assert!(all.iter().all(|(_, t)| t.as_ref().is_ok_and(|b| b.source == "the default")));

        let some =
            labels(&[("dockhand.clean.image.enable", "false"), ("dockhand.clean.builder.timeout", "5m")]);
        let NodePlan::Clean(some) = plan_clean_node(&some, "ready", "active", &d, &p) else { panic!() };
        assert!(some[1].1.as_ref().unwrap_err().contains("dockhand.clean.image.enable=false"));
        assert_eq!(
            some[2].1,
            Ok(Budget::new(Duration::from_secs(300), "label dockhand.clean.builder.timeout"))
        );

        let off = labels(&[("dockhand.clean.enable", "false")]);
        assert!(
            matches!(plan_clean_node(&off, "ready", "active", &d, &p), NodePlan::Refuse(r) if r.contains("clean.enable=false"))
        );
        assert!(
            matches!(plan_clean_node(&labels(&[]), "down", "active", &d, &p), NodePlan::Skip(r) if r.contains("down"))
        );
        assert!(
            matches!(plan_clean_node(&labels(&[]), "ready", "drain", &d, &p), NodePlan::Skip(r) if r.contains("drained"))
        );
    }

    /// The order of clean-node on the connected node: the node's lock, the three prunes in
    /// the seed's order (containers, images, build cache) with what each reclaimed, the lock
    /// released; a prune the labels disable is a skipped step, and a prune that fails does
    /// not stop the next.
    #[tokio::test(start_paused = true)]
    async fn clean_node_locks_prunes_in_order_and_releases() {
        use std::sync::Arc;

        use crate::job::Collect;
        use crate::swarm::fake::{FakeSwarm, Fault, context};

        let swarm = Arc::new(FakeSwarm::manager());
        swarm.fail("prune_images", 1, Fault::Broken);
        let job = clean_node(&context(&swarm), None, &Collect::default()).await.unwrap();

        let log = swarm.log();
        assert_eq!(
            log[..4],
            [
                "create_config dockhand-lock-node-n1",
                "prune containers but dockhand.helper",
                "prune build-cache",
                "update_config dockhand-lock-node-n1"
            ],
            "{log:?}"
        );
        let steps: Vec<(&str, Status, Option<u64>)> =
            job.steps.iter().map(|s| (s.kind.as_str(), s.status, s.reclaimed_bytes)).collect();
        assert_eq!(
            steps,
            [
                ("container-prune", Status::Succeeded, Some(1000)),
                ("image-prune", Status::Failed, None),
                ("builder-prune", Status::Succeeded, Some(300)),
            ]
        );
        assert_eq!(job.status, Status::Failed);
        assert!(swarm.config_list().is_empty());
    }
}
