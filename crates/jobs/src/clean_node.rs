//! clean-node: prune a node's stopped containers, all unused images and the build cache,
//! each a step with its own timeout, reporting the space reclaimed. Volumes are never
//! touched.
//!
//! Planning is pure ([`plan_clean_node`]: a node's labels and state give the steps);
//! running ([`clean_node`]) takes the target's lock, runs the steps through the engine and
//! reports to a sink. Today a node is cleaned through the engine dockhand is connected to:
//! the manager cleans itself, and an engine that is not a swarm manager (a worker reached
//! directly, or a plain or rootless engine) cleans itself. Other nodes need the helper
//! services that come next.

use std::time::{Duration, SystemTime};

use dockhand_engine::{Client, Filters, Node};
use dockhand_policy::{Defaults, LabelPrefixes, node_policy};

use crate::job::{Action, Event, Job, Sink, Status, Step, Target, Trigger};
use crate::lock::{LockError, LockTarget, Locks};

/// One prune of clean-node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Prune {
    /// Stopped containers.
    Containers,
    /// Every unused image (`dangling=false`), not only dangling ones.
    Images,
    /// The build cache.
    BuildCache,
}

impl Prune {
    /// The step's kind: `container-prune`, `image-prune`, `builder-prune`.
    pub fn kind(self) -> &'static str {
        match self {
            Self::Containers => "container-prune",
            Self::Images => "image-prune",
            Self::BuildCache => "builder-prune",
        }
    }
}

/// What clean-node will do on one node.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodePlan {
    /// These prunes, in order, each with its timeout; a disabled one is skipped, with the
    /// label that disabled it.
    Clean(Vec<(Prune, Result<Duration, String>)>),
    /// The node is down or drained: skipped, not waited on.
    Skip(String),
    /// The node's labels exclude it.
    Refuse(String),
}

/// Plans clean-node for `labels` on a node in `state` (`ready`, `down`, ...) with
/// `availability` (`active`, `drain`, ...). Pure: a table of cases is its test.
pub fn plan_clean_node(
    labels: &std::collections::BTreeMap<String, String>,
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
    let step = |prune: Prune, name: &str, s: dockhand_policy::PruneStep| {
        let decided = if s.enabled {
            Ok(s.timeout)
        } else {
            Err(format!("disabled by the label {}clean.{name}.enable=false", prefixes.primary()))
        };
        (prune, decided)
    };
    NodePlan::Clean(vec![
        step(Prune::Containers, "container", policy.container),
        step(Prune::Images, "image", policy.image),
        step(Prune::BuildCache, "builder", policy.builder),
    ])
}

/// Why clean-node could not run at all (as opposed to a job that ran and failed).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CleanNodeError {
    /// No node has that ID or hostname.
    #[error("no node {0:?} in the swarm")]
    UnknownNode(String),
    /// Several nodes have that hostname.
    #[error("several nodes are named {name:?}: give one of their IDs ({})", ids.join(", "))]
    AmbiguousHostname {
        /// The hostname.
        name: String,
        /// Their IDs.
        ids: Vec<String>,
    },
    /// The node is not the one dockhand is connected to.
    #[error(
        "node {node} is not the engine dockhand is connected to ({connected}); cleaning another node needs \
         the helper services that come next: connect to {node}'s engine (-H or --host-id) meanwhile"
    )]
    Elsewhere {
        /// The node asked for.
        node: String,
        /// The node dockhand talks to.
        connected: String,
    },
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] dockhand_engine::Error),
    /// The lock could not be read or written.
    #[error(transparent)]
    Lock(LockError),
}

/// Who runs a job, and how: the engine, its locks, the policy's defaults and prefixes.
#[derive(Debug, Clone)]
pub struct JobContext {
    /// The engine dockhand is connected to.
    pub client: Client,
    /// Locks on its swarm (used when it is a manager).
    pub locks: Locks,
    /// The seed's defaults (timeouts).
    pub defaults: Defaults,
    /// The label prefixes read.
    pub prefixes: LabelPrefixes,
    /// What started the job.
    pub trigger: Trigger,
    /// Who asked, described safely.
    pub caller: String,
}

/// Runs clean-node on `node` (an ID or hostname; `None`: the engine dockhand is connected
/// to). Returns the finished job: `succeeded`, `failed` (a step failed), `refused` (labels
/// exclude the node) or `busy` (another job holds its lock).
pub async fn clean_node(
    ctx: &JobContext,
    node: Option<&str>,
    sink: &dyn Sink,
) -> Result<Job, CleanNodeError> {
    let info = ctx.client.info().await?;
    let manager = info.swarm.is_active() && info.swarm.control_available;
    // The target, its labels and state.
    let (target, labels, state, availability) = if manager {
        let nodes = ctx.client.nodes(&Filters::new()).await?;
        let wanted = node.unwrap_or(info.swarm.node_id.as_str());
        let found: Vec<&Node> =
            nodes.iter().filter(|n| n.id == wanted || n.description.hostname == wanted).collect();
        let n = match found.as_slice() {
            [] => return Err(CleanNodeError::UnknownNode(wanted.to_owned())),
            [one] => *one,
            many => {
                if let Some(exact) = many.iter().find(|n| n.id == wanted) {
                    exact
                } else {
                    return Err(CleanNodeError::AmbiguousHostname {
                        name: wanted.to_owned(),
                        ids: many.iter().map(|n| n.id.clone()).collect(),
                    });
                }
            }
        };
        if n.id != info.swarm.node_id {
            return Err(CleanNodeError::Elsewhere {
                node: n.description.hostname.clone(),
                connected: info.name,
            });
        }
        let target = Target::Node { id: n.id.clone(), hostname: n.description.hostname.clone() };
        (target, n.spec.labels.clone(), n.status.state.clone(), n.spec.availability.clone())
    } else {
        // Not a manager: this engine cleans itself; its node labels cannot be read here.
        if let Some(asked) = node.filter(|a| *a != info.name && *a != info.swarm.node_id) {
            return Err(CleanNodeError::Elsewhere { node: asked.to_owned(), connected: info.name });
        }
        let target = Target::Node { id: info.swarm.node_id.clone(), hostname: info.name.clone() };
        (target, Default::default(), "ready".to_owned(), "active".to_owned())
    };
    let mut job =
        Job::start(Action::CleanNode, target.clone(), ctx.trigger, ctx.caller.clone(), SystemTime::now());
    sink.event(&Event::JobStarted { job: job.clone() });
    let plan = plan_clean_node(&labels, &state, &availability, &ctx.defaults, &ctx.prefixes);
    let prunes = match plan {
        NodePlan::Refuse(reason) => {
            let mut step = Step::start("policy", SystemTime::now());
            step.finish(Status::Refused, SystemTime::now(), Some(reason));
            job.steps.push(step);
            return Ok(finish(job, Some(Status::Refused), sink));
        }
        NodePlan::Skip(reason) => {
            let mut step = Step::start("node", SystemTime::now());
            step.finish(Status::Skipped, SystemTime::now(), Some(reason));
            job.steps.push(step);
            return Ok(finish(job, None, sink));
        }
        NodePlan::Clean(prunes) => prunes,
    };
    // One operation per node at a time, across processes: the swarm lock (a manager only).
    let Target::Node { id, hostname } = &target else { unreachable!("clean-node targets a node") };
    let guard = if manager {
        match ctx.locks.acquire(&LockTarget::Node(id.clone()), &job.id).await {
            Ok(guard) => Some(guard),
            Err(LockError::Busy { job: holder, .. }) => {
                let mut step = Step::start("lock", SystemTime::now());
                step.finish(
                    Status::Busy,
                    SystemTime::now(),
                    Some(format!("job {holder} holds the node's lock")),
                );
                job.steps.push(step);
                return Ok(finish(job, Some(Status::Busy), sink));
            }
            Err(e) => return Err(CleanNodeError::Lock(e)),
        }
    } else {
        None
    };
    for (prune, decided) in prunes {
        let mut step = Step::start(prune.kind(), SystemTime::now());
        step.node = Some(hostname.clone());
        sink.event(&Event::StepStarted { job: job.id.clone(), step: step.clone() });
        match decided {
            Err(reason) => step.finish(Status::Skipped, SystemTime::now(), Some(reason)),
            Ok(timeout) => match tokio::time::timeout(timeout, run_prune(&ctx.client, prune)).await {
                Ok(Ok(reclaimed)) => {
                    step.reclaimed_bytes = Some(reclaimed);
                    step.finish(Status::Succeeded, SystemTime::now(), None);
                }
                Ok(Err(e)) => step.finish(Status::Failed, SystemTime::now(), Some(e.to_string())),
                Err(_) => step.finish(
                    Status::Failed,
                    SystemTime::now(),
                    Some(format!(
                        "{} ran out of its {} (label {}clean.{}.timeout)",
                        prune.kind(),
                        dockhand_policy::format_go_duration(timeout),
                        ctx.prefixes.primary(),
                        match prune {
                            Prune::Containers => "container",
                            Prune::Images => "image",
                            Prune::BuildCache => "builder",
                        }
                    )),
                ),
            },
        }
        sink.event(&Event::StepFinished { job: job.id.clone(), step: step.clone() });
        job.steps.push(step);
    }
    if let Some(guard) = guard {
        if let Err(e) = guard.release().await {
            tracing::warn!(error = %e, "cannot release the node's lock; it frees itself when its lease ends");
        }
    }
    Ok(finish(job, None, sink))
}

async fn run_prune(client: &Client, prune: Prune) -> Result<u64, dockhand_engine::Error> {
    let report = match prune {
        Prune::Containers => client.prune_containers(&Filters::new()).await?,
        Prune::Images => client.prune_images(&Filters::new().with("dangling", "false")).await?,
        Prune::BuildCache => client.prune_build_cache(&Filters::new()).await?,
    };
    Ok(report.space_reclaimed)
}

fn finish(mut job: Job, status: Option<Status>, sink: &dyn Sink) -> Job {
    job.finish(SystemTime::now(), status);
    sink.event(&Event::JobFinished { job: job.clone() });
    job
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

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
        assert!(all.iter().all(|(_, t)| t.is_ok()));

        let some =
            labels(&[("dockhand.clean.image.enable", "false"), ("dockhand.clean.builder.timeout", "5m")]);
        let NodePlan::Clean(some) = plan_clean_node(&some, "ready", "active", &d, &p) else { panic!() };
        assert!(some[1].1.as_ref().unwrap_err().contains("dockhand.clean.image.enable=false"));
        assert_eq!(some[2].1, Ok(Duration::from_secs(300)));

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
}
