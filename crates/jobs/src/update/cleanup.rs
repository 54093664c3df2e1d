//! `update.cleanup=true`: once an update converged (and its `exec-post` passed), the image
//! the service ran before is removed from each node its earlier tasks ran on, unless a
//! container other than a stopped one of those tasks uses it there. The connected node does
//! it itself; another node, through a helper (`AgentTask::RemoveImage`). Each node is an
//! `image-cleanup` step that says what it freed, or why it kept the image: a problem here
//! is a skip, never a failure of the update it follows.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use dockhand_engine::{Filters, Service};

use crate::agent::protocol::{AgentLine, AgentTask};
use crate::helper::{Access, HelperRun, run_helper};
use crate::job::{Action, Status};
use crate::lock::LockTarget;
use crate::runner::Running;
use crate::swarm::Connected;

/// How long a node's helper may take to remove one image.
const PER_NODE: Duration = Duration::from_secs(120);

/// The image a service ran before, as its nodes know it: `repository@digest` when pinned.
pub(crate) fn as_stored(previous: &str) -> String {
    match dockhand_policy::ImageRef::parse(previous) {
        Ok(image) => match image.digest() {
            Some(digest) => format!("{}@{digest}", image.repository()),
            None => previous.to_owned(),
        },
        Err(_) => previous.to_owned(),
    }
}

/// Removes `previous` from the nodes where `service`'s tasks ran it, a step per node.
pub(crate) async fn remove_previous(
    run: &mut Running<'_>,
    connected: &Connected,
    names: &BTreeMap<String, String>,
    service: &Service,
    previous: &str,
) {
    let ctx = run.ctx;
    let image = as_stored(previous);
    let tasks = match ctx.swarm.tasks(&Filters::new().with("service", &service.id)).await {
        Ok(tasks) => tasks,
        Err(e) => {
            run.push_now("image-cleanup", Status::Skipped, format!("{image} not removed: the tasks: {e}"));
            return;
        }
    };
    let nodes: BTreeSet<&str> = tasks
        .iter()
        .filter(|t| t.spec.container_spec.image == previous && !t.node_id.is_empty())
        .map(|t| t.node_id.as_str())
        .collect();
    if nodes.is_empty() {
        run.push_now("image-cleanup", Status::Skipped, format!("{image}: no task of it is left on any node"));
        return;
    }
    for node_id in nodes {
        if ctx.cancel.is_cancelled() {
            break;
        }
        let hostname = names.get(node_id).map_or(node_id, String::as_str);
        if node_id == connected.node_id {
            let step = crate::agent::remove_image_step(&*ctx.swarm, &image, &service.id, hostname).await;
            run.push(step);
            continue;
        }
        let job = run.job.id.clone();
        let helper = HelperRun {
            job: &job,
            action: Action::UpdateService.as_str(),
            target: LockTarget::Service(service.id.clone()).label(),
            node_id,
            node_name: hostname,
            task: AgentTask::RemoveImage { image: image.clone(), service: service.id.clone() },
            timeout: PER_NODE,
            access: Access::default(),
        };
        run.progress(format!("a helper removes {image} from node {hostname}"));
        match run_helper(&ctx.client, &ctx.helpers, &helper, &ctx.cancel).await {
            Ok(output) => {
                for line in output.lines {
                    if let AgentLine::Step { step } = line {
                        run.push(step);
                    }
                }
            }
            Err(e) => {
                let mut step = crate::job::Step::start("image-cleanup", SystemTime::now());
                step.node = Some(hostname.to_owned());
                step.finish(Status::Skipped, SystemTime::now(), Some(format!("{image} not removed: {e}")));
                run.push(step);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::swarm::fake::FakeSwarm;

    #[test]
    fn the_previous_image_is_named_by_its_digest_as_nodes_store_it() {
        let d = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
        assert_eq!(
            as_stored(&format!("registry.example.com/team/app:1.4@{d}")),
            format!("registry.example.com/team/app@{d}")
        );
        assert_eq!(as_stored("registry.example.com/team/app:1.4"), "registry.example.com/team/app:1.4");
    }

    /// On the node itself: the service's stopped task containers go with the image, and
    /// the step says the bytes; a container of another service keeps it, saying which.
    #[tokio::test]
    async fn the_image_goes_with_the_services_stopped_containers_unless_another_uses_it() {
        let swarm = FakeSwarm::manager();
        swarm.add_image(
            "sha256:aaa",
            "reg/app@sha256:1",
            5_000,
            &[("c-old-1", "svc", "exited"), ("c-old-2", "svc", "exited")],
        );
        let step = crate::agent::remove_image_step(&swarm, "reg/app@sha256:1", "svc", "node1").await;
        assert_eq!((step.status, step.reclaimed_bytes), (Status::Succeeded, Some(5_000)), "{step:?}");
        let log = swarm.log();
        assert!(
            log.contains(&"remove_container c-old-1".to_owned())
                && log.contains(&"remove_image sha256:aaa".to_owned()),
            "{log:?}"
        );

        swarm.add_image("sha256:bbb", "reg/app@sha256:2", 7_000, &[("c-other", "other-svc", "running")]);
        let step = crate::agent::remove_image_step(&swarm, "reg/app@sha256:2", "svc", "node1").await;
        assert_eq!(step.status, Status::Skipped, "{step:?}");
        assert!(step.error.as_deref().unwrap().contains("container c-other (running) uses it"), "{step:?}");
        let gone = crate::agent::remove_image_step(&swarm, "reg/app@sha256:9", "svc", "node1").await;
        assert!(gone.error.as_deref().unwrap().contains("is not on node node1"), "{gone:?}");
    }
}
