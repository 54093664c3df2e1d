//! Unused volumes (seed idea 18): the local volumes no container uses, with their size
//! where the engine computed it. Read-only: the connected node through its engine, every
//! other node through a helper running `dockhand agent volumes-unused`.

use dockhand_engine::Filters;
use futures_util::StreamExt;

use crate::agent::protocol::{AgentLine, AgentTask, UnusedVolume};
use crate::agent::unused_volumes;
use crate::helper::{HelperRun, run_helper};
use crate::runner::{JobContext, JobError};
use crate::swarm::Connected;

/// The unused volumes of every ready node of the swarm (or of the engine itself when it is
/// not a manager), sorted by node and name, and the nodes that could not be read, each
/// with why.
pub async fn unused_volumes_everywhere(
    ctx: &JobContext,
) -> Result<(Vec<UnusedVolume>, Vec<(String, String)>), JobError> {
    let connected = Connected::read(&*ctx.swarm).await?;
    if !connected.manager {
        return Ok((unused_volumes(&ctx.client).await?, Vec::new()));
    }
    let nodes = ctx.swarm.nodes(&Filters::new()).await?;
    let run_id = format!("volumes-{}", crate::job::epoch_ms(std::time::SystemTime::now()));
    let (connected, run_id) = (&connected, &run_id);
    // Each node owned by its future: a future borrowing the list is not `Send` for every
    // lifetime, which a server's handler needs.
    let results: Vec<Result<Vec<UnusedVolume>, (String, String)>> = futures_util::stream::iter(nodes)
        .map(|n| async move {
            let hostname = n.description.hostname.clone();
            if n.status.state != "ready" {
                return Err((hostname, format!("the node is {}", n.status.state)));
            }
            if n.id == connected.node_id {
                return unused_volumes(&ctx.client).await.map_err(|e| (hostname, e.to_string()));
            }
            let helper = HelperRun {
                job: run_id,
                action: "volumes-unused",
                target: format!("volumes/{}", n.id),
                node_id: &n.id,
                node_name: &hostname,
                task: AgentTask::UnusedVolumes,
                timeout: ctx.defaults.extra_timeout,
                access: crate::helper::Access::default(),
            };
            match run_helper(&ctx.client, &ctx.helpers, &helper, &ctx.cancel).await {
                Ok(output) => Ok(output
                    .lines
                    .into_iter()
                    .filter_map(|l| if let AgentLine::Volume { volume } = l { Some(volume) } else { None })
                    .collect()),
                Err(e) => Err((hostname, e.to_string())),
            }
        })
        .buffer_unordered(ctx.concurrency.max(1))
        .collect()
        .await;
    let (mut volumes, mut failed) = (Vec::new(), Vec::new());
    for r in results {
        match r {
            Ok(v) => volumes.extend(v),
            Err(e) => failed.push(e),
        }
    }
    volumes.sort_by(|a, b| (&a.node, &a.name).cmp(&(&b.node, &b.name)));
    failed.sort();
    Ok((volumes, failed))
}
