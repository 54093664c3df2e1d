//! `volume move` (seed idea 1, "move MinIO from server A to server B"): a volume's contents
//! streamed from one node to another through the same archiver, relay and extractor as a
//! backup and a restore, without a storage target in between. With a service, the service
//! is stopped (with the intent label, as a backup stops it), its placement moves to the new
//! node, and it starts again on every path.

use std::time::SystemTime;

use dockhand_engine::{Filters, Service, UpdateOptions};

use crate::job::{Action, Job, Sink, Status, Step, Target};
use crate::lock::LockTarget;
use crate::runner::{JobContext, JobError, Running};
use crate::steps::lookup::find_node;
use crate::steps::lookup::resolve_volume;
use crate::steps::scale::{start, stop};
use crate::steps::transfer::container::Owner;
use crate::steps::transfer::io::{EngineVolumes, Place, VolumeIo};
use crate::steps::transfer::remote::NodeRef;
use crate::steps::transfer::upload::Transfer;
use crate::swarm::Connected;

/// What to move, from where to where.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MoveRequest {
    /// The volume (with `service`, as the service names it, stack prefix optional).
    pub volume: String,
    /// The node it is on (hostname or ID).
    pub from: String,
    /// The node it goes to.
    pub to: String,
    /// The service that uses it: stopped meanwhile, and placed on `to` afterwards.
    pub service: Option<String>,
}

impl MoveRequest {
    /// Moves `volume` from `from` to `to`.
    pub fn new(volume: impl Into<String>, from: impl Into<String>, to: impl Into<String>) -> Self {
        Self { volume: volume.into(), from: from.into(), to: to.into(), service: None }
    }

    /// With the service that uses it.
    pub fn with_service(mut self, service: impl Into<String>) -> Self {
        self.service = Some(service.into());
        self
    }
}

/// Moves a volume between nodes; the destination's contents are replaced.
pub async fn move_volume(ctx: &JobContext, request: &MoveRequest, sink: &dyn Sink) -> Result<Job, JobError> {
    move_with(ctx, &EngineVolumes, request, sink).await
}

/// [`move_volume`] with the volume's bytes through `io`.
pub(crate) async fn move_with(
    ctx: &JobContext,
    io: &dyn VolumeIo,
    request: &MoveRequest,
    sink: &dyn Sink,
) -> Result<Job, JobError> {
    let connected = Connected::read(&*ctx.swarm).await?;
    if !connected.manager {
        return Err(JobError::NotManager(connected.name));
    }
    let nodes = ctx.swarm.nodes(&Filters::new()).await?;
    let from = find_node(&nodes, &request.from)?;
    let to = find_node(&nodes, &request.to)?;
    let service = match &request.service {
        Some(name) => Some(match ctx.swarm.service(name).await {
            Ok(s) => s,
            Err(e) if e.is_not_found() => return Err(JobError::UnknownService(name.clone())),
            Err(e) => return Err(e.into()),
        }),
        None => None,
    };
    let (target, lock) = match &service {
        Some(s) => (
            Target::Service { id: s.id.clone(), name: s.spec.name.clone() },
            LockTarget::Service(s.id.clone()),
        ),
        None => (
            Target::Node { id: to.id.clone(), hostname: to.description.hostname.clone() },
            LockTarget::Node(to.id.clone()),
        ),
    };
    let mut run = Running::start(ctx, sink, Action::VolumeMove, target);
    if from.id == to.id {
        run.push_now(
            "policy",
            Status::Refused,
            format!("the volume is on {} already", to.description.hostname),
        );
        return Ok(run.finish(Some(Status::Refused)).await);
    }
    let volume = match &service {
        Some(s) => match resolve_volume(s, &request.volume) {
            Ok((real, _)) => real,
            Err(e) => {
                run.push_now("policy", Status::Refused, e.to_string());
                return Ok(run.finish(Some(Status::Refused)).await);
            }
        },
        None => request.volume.clone(),
    };
    if let Some(s) = service.as_ref().filter(|s| s.spec.is_global()) {
        let reason = format!(
            "service {} is global: it runs on every node, so it has no placement to move",
            s.spec.name
        );
        run.push_now("policy", Status::Refused, reason);
        return Ok(run.finish(Some(Status::Refused)).await);
    }
    if let Err(status) = run.lock(lock.clone()).await {
        return Ok(run.finish(status).await);
    }
    // The source must have the volume: mounting a missing one would create it empty, and
    // the move would then empty the destination.
    let owner = Owner { job: &run.job.id, target: &lock.label(), action: Action::VolumeMove.as_str() };
    let source = Place {
        ctx,
        owner,
        connected: &connected.node_id,
        node_id: &from.id,
        node_name: &from.description.hostname,
    };
    let found = io.facts(&source, &volume).await.map(|f| (f.exists, f.driver));
    let refusal = match found {
        Ok((true, driver)) if driver == "local" => None,
        Ok((true, driver)) => {
            Some(format!("volume {volume} uses the {driver:?} driver: only local volumes can be moved"))
        }
        Ok((false, _)) => {
            Some(format!("node {} has no volume {volume}: nothing to move", from.description.hostname))
        }
        Err(e) => {
            run.push_now("volume", Status::Failed, e);
            return Ok(run.finish(None).await);
        }
    };
    if let Some(reason) = refusal {
        run.push_now("volume", Status::Refused, reason);
        return Ok(run.finish(Some(Status::Refused)).await);
    }
    let stop_budget = crate::agent::protocol::Budget::new(
        ctx.defaults.backup_stop_timeout,
        "the default backup.stop.timeout",
    );
    let start_budget = crate::agent::protocol::Budget::new(
        ctx.defaults.backup_start_timeout,
        "the default backup.start.timeout",
    );
    let guard = match &service {
        Some(s) => match stop(&mut run, &s.id, &stop_budget).await {
            Ok(guard) => Some(guard),
            Err(guard) => {
                start(&mut run, &s.id, &start_budget, Some(guard)).await;
                return Ok(run.finish(None).await);
            }
        },
        None => None,
    };
    let moved = copy(
        &mut run,
        io,
        &connected,
        &lock,
        &volume,
        (&from.id, &from.description.hostname),
        (&to.id, &to.description.hostname),
    )
    .await;
    if let (true, Some(s)) = (moved, &service) {
        place(&mut run, s, &from.id, &from.description.hostname, &to.id).await;
    }
    if let Some(s) = &service {
        start(&mut run, &s.id, &start_budget, guard).await;
    }
    Ok(run.finish(None).await)
}

async fn copy(
    run: &mut Running<'_>,
    io: &dyn VolumeIo,
    connected: &Connected,
    lock: &LockTarget,
    volume: &str,
    from: (&str, &str),
    to: (&str, &str),
) -> bool {
    let ctx = run.ctx;
    let mut step = Step::start("move", SystemTime::now());
    step.node = Some(format!("{} -> {}", from.1, to.1));
    run.started(&step);
    let owner = Owner { job: &run.job.id, target: &lock.label(), action: Action::VolumeMove.as_str() };
    let progress = |t: Transfer| run.progress(format!("move {volume}: {}", t.describe()));
    let at = Place { ctx, owner, connected: &connected.node_id, node_id: from.0, node_name: from.1 };
    let to = NodeRef { id: to.0, name: to.1 };
    let copied = io.copy(&at, to, volume, ctx.defaults.backup_upload_timeout, &progress).await;
    let result = copied.and_then(|c| match &c.packed {
        Some(p) if p.entries != c.unpacked.entries || p.bytes != c.unpacked.bytes => Err(format!(
            "the archiver wrote {} entries ({} bytes) but the extractor read {} ({} bytes)",
            p.entries, p.bytes, c.unpacked.entries, c.unpacked.bytes
        )),
        _ => Ok(c),
    });
    let ok = match result {
        Ok(c) => {
            step.finish(Status::Succeeded, SystemTime::now(), None);
            step.bytes = Some(c.bytes);
            step.output_tail = Some(format!(
                "volume {volume}: {} entries, {} bytes of content; archive sha256 {}",
                c.unpacked.entries, c.unpacked.bytes, c.sha256
            ));
            true
        }
        Err(e) => {
            let status = if ctx.cancel.is_cancelled() { Status::Cancelled } else { Status::Failed };
            step.finish(status, SystemTime::now(), Some(format!("volume {volume}: {e}")));
            false
        }
    };
    run.push(step);
    ok
}

/// Moves the service's placement: constraints naming the old node go, `node.id==<to>` comes.
async fn place(run: &mut Running<'_>, service: &Service, from_id: &str, from_name: &str, to_id: &str) {
    let mut step = Step::start("placement", SystemTime::now());
    run.started(&step);
    let old = [format!("node.id=={from_id}"), format!("node.hostname=={from_name}")];
    let new = format!("node.id=={to_id}");
    let updated =
        crate::swarm::modify_service(&*run.ctx.swarm, &service.id, &UpdateOptions::default(), |spec| {
            let placement = spec.task_template.placement.get_or_insert_with(Default::default);
            placement.constraints.retain(|c| {
                let c: String = c.chars().filter(|ch| !ch.is_whitespace()).collect();
                !old.contains(&c) && !c.starts_with("node.id==") && !c.starts_with("node.hostname==")
            });
            placement.constraints.push(new.clone());
            Ok(())
        })
        .await;
    match updated {
        Ok(_) => {
            step.finish(Status::Succeeded, SystemTime::now(), None);
            step.output_tail = Some(format!("constraint {new}"));
        }
        Err(e) => {
            step.finish(Status::Failed, SystemTime::now(), Some(format!("cannot move the placement: {e}")))
        }
    }
    run.push(step);
}

#[cfg(test)]
mod tests;
