//! The agent: what `dockhand agent <verb>` does inside a helper container on a node, through
//! that node's own engine, and the lines it prints for the dockhand that started it.
//!
//! The same work functions serve the node dockhand is connected to directly, so a prune or
//! an exec behaves the same wherever it runs.
//!
//! The arguments are typed: [`AgentTask::to_args`] writes them and [`AgentTask::from_args`]
//! reads them back, and a command to run in a container travels as its own argv, never as
//! a shell string built by dockhand.

use std::io::Write;
use std::time::{Duration, Instant, SystemTime};

use dockhand_engine::{Client, Filters};
use futures_util::StreamExt;

use crate::job::{Status, Step};
use crate::swarm::Swarm;
use crate::tail::{OUTPUT_TAIL, Tail};

pub(crate) mod protocol;
mod wire;

use wire::{Framed, NoStall, accept_one, connect, io_error, unframe, with_peer};

use protocol::UnusedVolume;
pub use protocol::{
    AgentArgsError, AgentLine, AgentTask, Budget, CHANNEL_MOUNT, CHANNEL_SOCKET, ExecTarget, Prune, split_out,
};

/// Why an agent did not do its task.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// It started after its start-by time: the dockhand that made the helper gave up on it.
    #[error(
        "started at {now_ms} ms, after its start-by time {start_by_ms} ms: dockhand gave up on this helper, so it does nothing"
    )]
    TooLate {
        /// The start-by time.
        start_by_ms: u64,
        /// Now.
        now_ms: u64,
    },
    /// The node's engine failed.
    #[error(transparent)]
    Engine(#[from] dockhand_engine::Error),
}

/// Does a volume task ([`AgentTask::is_volume_task`]): archives to `output` (reporting its
/// size, then what it has read every second), or restores from `input`, or holds.
/// Blocking; the line returned is the agent's last report.
pub fn run_volume_agent(
    task: &AgentTask,
    input: impl std::io::Read,
    output: impl std::io::Write,
    report: &(dyn Fn(AgentLine) + Sync),
) -> Result<AgentLine, crate::archive::ArchiveError> {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    match task {
        AgentTask::Pack { dir, level } => {
            report(AgentLine::Size { bytes: crate::archive::content_size(dir) });
            let read = AtomicU64::new(0);
            let done = AtomicBool::new(false);
            std::thread::scope(|scope| {
                scope.spawn(|| {
                    while !done.load(Ordering::Relaxed) {
                        for _ in 0..10 {
                            std::thread::sleep(Duration::from_millis(100));
                            if done.load(Ordering::Relaxed) {
                                return;
                            }
                        }
                        report(AgentLine::Read { bytes: read.load(Ordering::Relaxed) });
                    }
                });
                let packed = crate::archive::pack(dir, output, *level, &read);
                done.store(true, Ordering::Relaxed);
                Ok(AgentLine::Packed { stats: packed? })
            })
        }
        AgentTask::Unpack { dir } => Ok(AgentLine::Unpacked { stats: crate::archive::unpack(input, dir)? }),
        AgentTask::Hold { seconds } => {
            std::thread::sleep(Duration::from_secs(*seconds));
            Ok(AgentLine::Done)
        }
        AgentTask::ServePack { dir, level, port, seconds } => {
            let (stream, peer) = accept_one(*port, *seconds)?;
            let stream = NoStall::sending(stream, &peer);
            let read = AtomicU64::new(0);
            let framed =
                Framed::new(&stream, crate::archive::content_size(dir), &read).map_err(io_error(&peer))?;
            let stats =
                crate::archive::pack(dir, std::io::BufWriter::with_capacity(1 << 20, framed), *level, &read)
                    .map_err(|e| with_peer(e, &peer))?;
            let _ = stream.stream.shutdown(std::net::Shutdown::Write);
            Ok(AgentLine::Packed { stats })
        }
        AgentTask::ServeUnpack { dir, port, seconds } => {
            let (stream, peer) = accept_one(*port, *seconds)?;
            let stream = NoStall::receiving(stream, &peer);
            let stats = crate::archive::unpack(std::io::BufReader::with_capacity(1 << 20, &stream), dir)
                .map_err(|e| with_peer(e, &peer))?;
            Ok(AgentLine::Unpacked { stats })
        }
        AgentTask::Fetch { address, seconds } => {
            let stream = NoStall::receiving(connect(address, *seconds)?, address);
            let mut output = output;
            unframe(std::io::BufReader::with_capacity(1 << 20, &stream), &mut output, report)
                .map_err(io_error(address))?;
            output.flush().map_err(io_error(address))?;
            Ok(AgentLine::Done)
        }
        AgentTask::Send { address, seconds } => {
            let stream = NoStall::sending(connect(address, *seconds)?, address);
            let mut input = input;
            let mut writer = std::io::BufWriter::with_capacity(1 << 20, &stream);
            std::io::copy(&mut input, &mut writer).map_err(io_error(address))?;
            writer.flush().map_err(io_error(address))?;
            drop(writer);
            stream.stream.shutdown(std::net::Shutdown::Write).map_err(io_error(address))?;
            // Wait for the other side to close: it has then read everything.
            let _ = std::io::copy(&mut &stream, &mut std::io::sink());
            Ok(AgentLine::Done)
        }
        _ => Ok(AgentLine::Done),
    }
}

/// Refuses an agent that starts after `start_by` (milliseconds since the epoch): dockhand
/// gave up on it, so it must do nothing. Every task checks it, volume tasks included: a
/// `serve-*` helper started late would otherwise serve a volume to whoever connects first
/// (R3-18).
pub fn check_start_by(start_by: Option<u64>) -> Result<(), AgentError> {
    let now_ms = crate::job::epoch_ms(SystemTime::now());
    match start_by.filter(|s| now_ms > *s) {
        Some(start_by_ms) => Err(AgentError::TooLate { start_by_ms, now_ms }),
        None => Ok(()),
    }
}

/// Does `task` through `client` (the node's own engine), reporting each result to `report`
/// as it comes, then [`AgentLine::Done`]; does nothing after `start_by`.
pub async fn run_agent(
    client: &Client,
    task: &AgentTask,
    start_by: Option<u64>,
    report: &(dyn Fn(AgentLine) + Sync),
) -> Result<(), AgentError> {
    check_start_by(start_by)?;
    let node = client.info().await?.name;
    match task {
        AgentTask::CleanNode { prunes } => {
            for (prune, budget) in prunes {
                report(AgentLine::Step { step: prune_step(client, *prune, budget, &node).await });
            }
        }
        AgentTask::UnusedVolumes => {
            for volume in unused_volumes(client).await? {
                report(AgentLine::Volume { volume });
            }
        }
        AgentTask::VolumeInfo { name } => {
            let line = match client.volume(name).await {
                Ok(v) => {
                    let users = running_users(client, name).await?;
                    AgentLine::VolumeInfo { name: name.clone(), exists: true, driver: v.driver, users }
                }
                Err(e) if e.is_not_found() => AgentLine::VolumeInfo {
                    name: name.clone(),
                    exists: false,
                    driver: String::new(),
                    users: Vec::new(),
                },
                Err(e) => return Err(e.into()),
            };
            report(line);
        }
        AgentTask::RemoveImage { image, service } => {
            report(AgentLine::Step { step: remove_image_step(client, image, service, &node).await });
        }
        AgentTask::HostExec { image, argv, budget } => {
            let step = crate::host_exec::host_exec_step(client, image, argv, budget.timeout, &node).await;
            report(AgentLine::Step { step });
        }
        AgentTask::Exec { argv, budget, targets, concurrency } => {
            let mut steps = futures_util::stream::iter(targets)
                .map(|t| exec_step(client, t, argv, budget, &node))
                .buffer_unordered(*concurrency);
            while let Some(step) = steps.next().await {
                report(AgentLine::Step { step });
            }
        }
        // The volume tasks run through `run_volume_agent`, without an engine.
        _ => {}
    }
    report(AgentLine::Done);
    Ok(())
}

/// One prune on the engine `client` talks to, as a step on `node`.
pub(crate) async fn prune_step(swarm: &dyn Swarm, prune: Prune, budget: &Budget, node: &str) -> Step {
    let mut step = Step::start(prune.kind(), SystemTime::now());
    step.node = Some(node.to_owned());
    let run = async {
        match prune {
            // A helper's stopped container holds its report (its logs) until the job that
            // started it has read them and removed the service: never one to prune.
            Prune::Containers => swarm.prune_containers(crate::helper::HELPER_LABEL).await,
            Prune::Images => swarm.prune_images().await,
            Prune::BuildCache => swarm.prune_build_cache().await,
        }
    };
    match tokio::time::timeout(budget.timeout, run).await {
        Ok(Ok(reclaimed)) => {
            step.reclaimed_bytes = Some(reclaimed);
            step.finish(Status::Succeeded, SystemTime::now(), None);
        }
        Ok(Err(e)) => step.finish(Status::Failed, SystemTime::now(), Some(e.to_string())),
        Err(_) => step.finish(Status::Failed, SystemTime::now(), Some(budget.overrun(prune.kind()))),
    }
    step
}

/// `update.cleanup` on the engine `swarm` talks to, as a step `image-cleanup` on `node`:
/// removes `image` unless a container other than a stopped one of `service`'s tasks uses
/// it (those go first), reporting the image's size as what it freed. A problem is a
/// skipped step saying why: the update it follows succeeded all the same.
pub(crate) async fn remove_image_step(swarm: &dyn Swarm, image: &str, service: &str, node: &str) -> Step {
    let mut step = Step::start("image-cleanup", SystemTime::now());
    step.node = Some(node.to_owned());
    let skip = |mut step: Step, why: String| {
        step.finish(Status::Skipped, SystemTime::now(), Some(why));
        step
    };
    let found = match swarm.image(image).await {
        Ok(found) => found,
        Err(e) if e.is_not_found() => return skip(step, format!("{image} is not on node {node}")),
        Err(e) => return skip(step, format!("{image} not removed: {e}")),
    };
    let containers = match swarm.containers(&dockhand_engine::Filters::new()).await {
        Ok(all) => all.into_iter().filter(|c| c.image_id == found.id).collect::<Vec<_>>(),
        Err(e) => return skip(step, format!("{image} not removed: the containers: {e}")),
    };
    let ours = |c: &dockhand_engine::ContainerSummary| {
        c.state != "running"
            && c.labels.get("com.docker.swarm.service.id").map(String::as_str) == Some(service)
    };
    if let Some(other) = containers.iter().find(|c| !ours(c)) {
        let short = other.id.get(..12).unwrap_or(&other.id);
        return skip(step, format!("{image} is kept: container {short} ({}) uses it", other.state));
    }
    for container in &containers {
        if let Err(e) = swarm.remove_container(&container.id).await {
            return skip(step, format!("{image} not removed: its old task container: {e}"));
        }
    }
    match swarm.remove_image(&found.id).await {
        Ok(()) => {
            step.reclaimed_bytes = Some(u64::try_from(found.size).unwrap_or(0));
            step.output_tail = Some(format!(
                "removed {image} and {} stopped task container(s) of the service",
                containers.len()
            ));
            step.finish(Status::Succeeded, SystemTime::now(), None);
            step
        }
        Err(e) => skip(step, format!("{image} not removed: {e}")),
    }
}

/// Runs `argv` in `target`'s container through `client`, keeping the output's tail; a
/// non-zero exit, a container that goes away and an overrun are failures naming the task.
pub(crate) async fn exec_step(
    swarm: &dyn Swarm,
    target: &ExecTarget,
    argv: &[String],
    budget: &Budget,
    node: &str,
) -> Step {
    let mut step = Step::start("exec", SystemTime::now());
    step.node = Some(node.to_owned());
    step.task = Some(target.task.clone());
    step.container = Some(target.container.clone());
    let mut tail = Tail::new(OUTPUT_TAIL);
    let started = Instant::now();
    let mut keep = |data: &[u8]| tail.push(data);
    let run = swarm.exec(&target.container, argv, &mut keep);
    let outcome = tokio::time::timeout(budget.timeout, run).await;
    step.output_tail = Some(tail.text());
    match outcome {
        Ok(Ok(0)) => step.finish(Status::Succeeded, SystemTime::now(), None),
        Ok(Ok(code)) => {
            step.exit_code = Some(code);
            step.finish(
                Status::Failed,
                SystemTime::now(),
                Some(format!("the command exited with {code} in task {}", target.task)),
            );
        }
        Ok(Err(e)) => step.finish(
            Status::Failed,
            SystemTime::now(),
            Some(format!("task {} (container {}): {e}", target.task, short(&target.container))),
        ),
        Err(_) => step.finish(
            Status::Failed,
            SystemTime::now(),
            Some(budget.overrun(&format!("the exec in task {} after {:?}", target.task, started.elapsed()))),
        ),
    }
    if step.status == Status::Succeeded {
        step.exit_code = Some(0);
    }
    step
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// The local volumes on the engine `client` talks to that no container, running or
/// stopped, uses; sorted by name.
pub async fn unused_volumes(client: &Client) -> Result<Vec<UnusedVolume>, dockhand_engine::Error> {
    let node = client.info().await?.name;
    let mut unused: Vec<UnusedVolume> = client
        .volume_usage()
        .await?
        .into_iter()
        .filter(|v| v.scope != "global" && v.usage_data.is_some_and(|u| u.ref_count == 0))
        .map(|v| UnusedVolume {
            node: node.clone(),
            size: v.usage_data.and_then(|u| u64::try_from(u.size).ok()),
            name: v.name,
            driver: v.driver,
        })
        .collect();
    unused.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(unused)
}

/// The running containers on `client`'s node that mount `volume`, by name.
pub(crate) async fn running_users(
    client: &Client,
    volume: &str,
) -> Result<Vec<String>, dockhand_engine::Error> {
    let running = client.containers(&Filters::new().with("volume", volume).with("status", "running")).await?;
    Ok(running
        .into_iter()
        .map(|c| c.names.first().map_or(c.id, |n| n.trim_start_matches('/').to_owned()))
        .collect())
}
