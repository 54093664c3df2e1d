//! A volume on another node: the job-scoped network, the helper that serves or receives the
//! archive there, the relay beside dockhand, and the node-to-node copy.

use crate::agent::protocol::{AgentLine, AgentTask};
use crate::archive::{PackStats, UnpackStats};
use crate::helper::{HELPER_LABEL, HELPER_TARGET_LABEL};
use crate::steps::transfer::container::Attach;
use crate::steps::transfer::container::Owner;
use crate::steps::transfer::container::VolumeContainer;
use crate::steps::transfer::container::{MOUNT, short};
use crate::steps::transfer::download::download_to;
use crate::steps::transfer::download::{Downloaded, Staged};
use crate::steps::transfer::upload::Deadline;
use crate::steps::transfer::upload::Destination;
use crate::steps::transfer::upload::Gate;
use crate::steps::transfer::upload::Progress;
use crate::steps::transfer::upload::Transfer;
use crate::steps::transfer::upload::Uploaded;
use crate::steps::transfer::upload::check_agent;
use crate::steps::transfer::upload::copy_archive;
use crate::steps::transfer::upload::upload_from;
use crate::tail::Tail;
use dockhand_engine::{ExecSpec, StreamKind};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

/// The port a helper serves a volume on, on the job's own network.
pub(crate) const PORT: u16 = 7070;

/// A transfer with a volume on another node: the job's own overlay network (internal,
/// attachable), a relay container beside dockhand on it, and a helper service on the
/// volume's node that mounts the volume and serves it on that network. dockhand execs in
/// the relay as it does in a local volume container, so the bytes take the same path after
/// the relay, and no credential goes anywhere.
pub(crate) struct Remote<'a> {
    pub(crate) ctx: &'a crate::runner::JobContext,
    pub(crate) owner: Owner<'a>,
    pub(crate) node_id: &'a str,
    pub(crate) node_name: &'a str,
    /// How long the transfer may take.
    pub(crate) timeout: Duration,
}

/// What a node says of one of its volumes.
#[derive(Debug, Clone, Default)]
pub(crate) struct VolumeFacts {
    pub(crate) exists: bool,
    pub(crate) driver: String,
    /// Running containers that mount it, by name.
    pub(crate) users: Vec<String>,
}

impl Remote<'_> {
    /// Whether the node has `volume`, its driver, and the running containers that mount it:
    /// from the engine dockhand is connected to when that is the node's (`connected` is its
    /// node ID), else from a helper with the node's socket.
    pub(crate) async fn volume_facts(&self, connected: &str, volume: &str) -> Result<VolumeFacts, String> {
        if self.node_id == connected {
            let client = &self.ctx.client;
            return match client.volume(volume).await {
                Ok(v) => {
                    let users = crate::agent::running_users(client, volume)
                        .await
                        .map_err(|e| format!("volume {volume}: {e}"))?;
                    Ok(VolumeFacts { exists: true, driver: v.driver, users })
                }
                Err(e) if e.is_not_found() => Ok(VolumeFacts::default()),
                Err(e) => Err(format!("volume {volume}: {e}")),
            };
        }
        let (exists, driver, users) = self.volume_info(volume).await?;
        Ok(VolumeFacts { exists, driver, users })
    }

    async fn volume_info(&self, volume: &str) -> Result<(bool, String, Vec<String>), String> {
        let run =
            self.helper(AgentTask::VolumeInfo { name: volume.to_owned() }, crate::helper::Access::default());
        let output = crate::helper::run_helper(&self.ctx.client, &self.ctx.helpers, &run, &self.ctx.cancel)
            .await
            .map_err(|e| e.to_string())?;
        output
            .lines
            .into_iter()
            .find_map(|l| match l {
                AgentLine::VolumeInfo { exists, driver, users, .. } => Some((exists, driver, users)),
                _ => None,
            })
            .ok_or_else(|| {
                format!("the helper on node {} did not say whether it has volume {volume}", self.node_name)
            })
    }

    fn helper(&self, task: AgentTask, access: crate::helper::Access) -> crate::helper::HelperRun<'_> {
        crate::helper::HelperRun {
            job: self.owner.job,
            action: self.owner.action,
            target: self.owner.target.to_owned(),
            node_id: self.node_id,
            node_name: self.node_name,
            task,
            timeout: self.timeout + self.ctx.defaults.extra_timeout,
            access,
        }
    }

    /// The job's network and the relay on it.
    async fn open(&self) -> Result<(String, VolumeContainer), String> {
        let client = &self.ctx.client;
        let name = format!("dh-xfer-{}-{}", short(self.owner.job), short(self.node_id));
        let labels = [
            (HELPER_LABEL.to_owned(), self.owner.job.to_owned()),
            (HELPER_TARGET_LABEL.to_owned(), self.owner.target.to_owned()),
        ]
        .into_iter()
        .collect();
        let network = client
            .create_overlay_network(&name, &labels)
            .await
            .map_err(|e| format!("cannot create network {name}: {e}"))?;
        let hold = self.timeout + self.ctx.helpers.pending_timeout + self.ctx.defaults.extra_timeout;
        match VolumeContainer::start(
            client,
            &self.ctx.helpers.image_here().await?,
            self.owner,
            Attach::Network(&name),
            hold,
        )
        .await
        {
            Ok(relay) => Ok((network, relay)),
            Err(e) => {
                let _ = client.remove_network(&network).await;
                Err(e)
            }
        }
    }

    async fn close(&self, network: &str, relay: VolumeContainer) {
        relay.remove().await;
        // The helper's task leaves the network a moment after its service is removed.
        for _ in 0..40 {
            match self.ctx.client.remove_network(network).await {
                Ok(()) => return,
                Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
        tracing::warn!(network, "cannot remove a transfer network; the next job on this target removes it");
    }

    fn out_of_time(&self) -> String {
        format!(
            "the transfer with node {} ran out of its {} (plus the pending timeout)",
            self.node_name,
            dockhand_policy::format_go_duration(self.timeout)
        )
    }

    /// How long the relay keeps trying to reach the helper: it may still be pending.
    fn connect_seconds(&self) -> u64 {
        (self.ctx.helpers.pending_timeout + Duration::from_secs(30)).as_secs()
    }

    /// Archives the volume on its node into each destination.
    pub(crate) async fn upload(
        &self,
        volume: &str,
        to: &[Destination<'_>],
        level: i32,
        progress: Progress<'_>,
    ) -> Result<Uploaded, String> {
        let (network, relay) = self.open().await?;
        let helper_cancel = self.ctx.cancel.child_token();
        let task =
            AgentTask::ServePack { dir: MOUNT.into(), level, port: PORT, seconds: self.connect_seconds() };
        let access = crate::helper::Access {
            socket: false,
            volume: Some((volume.to_owned(), true)),
            network: Some(network.clone()),
        };
        let run = self.helper(task, access);
        // The helper runs beside the relay's exec; its report is the upload's gate.
        let (report, reported) = tokio::sync::oneshot::channel();
        let helper = async {
            let result = crate::helper::run_helper(&self.ctx.client, &self.ctx.helpers, &run, &helper_cancel)
                .await
                .map_err(|e| e.to_string())
                .map(|output| {
                    output.lines.into_iter().find_map(|l| match l {
                        AgentLine::Packed { stats } => Some(stats),
                        _ => None,
                    })
                });
            let _ = report.send(result);
        };
        let gate: Gate<'_> = Box::pin(async move {
            reported.await.unwrap_or_else(|_| Err("the helper stopped without a report".to_owned()))
        });
        let address = format!("{}:{PORT}", crate::helper::helper_name(self.owner.job, self.node_id));
        let fetch = AgentTask::Fetch { address, seconds: self.connect_seconds() };
        // The helper may wait for its node (pending); the time limit is the upload's after.
        // At the deadline the upload is aborted and the helper told to stop, so the join
        // below ends.
        let deadline = Deadline::after(self.timeout + self.ctx.helpers.pending_timeout, self.out_of_time());
        let transfer =
            upload_from(&relay, &fetch, to, (&self.ctx.cancel, &deadline), progress, gate, &helper_cancel);
        let result = tokio::join!(helper, transfer).1;
        self.close(&network, relay).await;
        result
    }

    /// Restores the staged archive into the volume on its node.
    pub(crate) async fn download(
        &self,
        volume: &str,
        staged: &Staged,
        progress: Progress<'_>,
    ) -> Result<Downloaded, String> {
        let (network, relay) = self.open().await?;
        let helper_cancel = self.ctx.cancel.child_token();
        let task = AgentTask::ServeUnpack { dir: MOUNT.into(), port: PORT, seconds: self.connect_seconds() };
        let access = crate::helper::Access {
            socket: false,
            volume: Some((volume.to_owned(), false)),
            network: Some(network.clone()),
        };
        let run = self.helper(task, access);
        let helper = crate::helper::run_helper(&self.ctx.client, &self.ctx.helpers, &run, &helper_cancel);
        let address = format!("{}:{PORT}", crate::helper::helper_name(self.owner.job, self.node_id));
        let send = AgentTask::Send { address, seconds: self.connect_seconds() };
        let sending = async {
            let sent = download_to(&relay, &send, staged, &self.ctx.cancel, progress).await;
            if sent.is_err() {
                helper_cancel.cancel();
            }
            sent
        };
        let limit = self.timeout + self.ctx.helpers.pending_timeout;
        let both = tokio::time::timeout(limit, async { tokio::join!(helper, sending) }).await;
        self.close(&network, relay).await;
        let (helped, sent) = both.map_err(|_| self.out_of_time())?;
        let (sha256, _, _) = sent?;
        let output = helped.map_err(|e| e.to_string())?;
        let stats = output
            .lines
            .into_iter()
            .find_map(|l| match l {
                AgentLine::Unpacked { stats } => Some(stats),
                _ => None,
            })
            .ok_or_else(|| {
                format!("the helper on node {} did not report what it restored", self.node_name)
            })?;
        Ok(Downloaded { sha256, stats, via: "network" })
    }
}

/// One end of a node-to-node copy: the node, by ID and hostname.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NodeRef<'a> {
    pub(crate) id: &'a str,
    pub(crate) name: &'a str,
}

/// What a copy moved: the archive's bytes and SHA-256, and what the extractor wrote.
#[derive(Debug, Clone)]
pub(crate) struct Copied {
    pub(crate) bytes: u64,
    pub(crate) sha256: String,
    pub(crate) packed: Option<PackStats>,
    pub(crate) unpacked: UnpackStats,
}

/// One end of a copy, beside dockhand: a volume container, or a relay and its network.
pub(crate) enum End {
    Local(VolumeContainer),
    Remote(String, VolumeContainer),
}

impl End {
    async fn open(
        remote: &Remote<'_>,
        connected: &str,
        volume: &str,
        read_only: bool,
        hold: Duration,
    ) -> Result<Self, String> {
        if remote.node_id == connected {
            let attach = Attach::Volume(volume, read_only);
            let c = VolumeContainer::start(
                &remote.ctx.client,
                &remote.ctx.helpers.image_here().await?,
                remote.owner,
                attach,
                hold,
            )
            .await?;
            Ok(Self::Local(c))
        } else {
            let (network, relay) = remote.open().await?;
            Ok(Self::Remote(network, relay))
        }
    }

    fn container(&self) -> &VolumeContainer {
        match self {
            Self::Local(c) | Self::Remote(_, c) => c,
        }
    }

    async fn close(self, remote: &Remote<'_>) {
        match self {
            Self::Local(c) => c.remove().await,
            Self::Remote(network, relay) => remote.close(&network, relay).await,
        }
    }
}

/// Copies `volume` from one node to another (either may be the connected node), streamed
/// through dockhand: the archiver's stdout is the extractor's stdin. The destination's
/// contents are replaced only once the whole archive is out (the extractor's staging).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn copy_volume(
    ctx: &crate::runner::JobContext,
    owner: Owner<'_>,
    volume: &str,
    connected: &str,
    from: NodeRef<'_>,
    to: NodeRef<'_>,
    timeout: Duration,
    progress: Progress<'_>,
) -> Result<Copied, String> {
    let hold = timeout + ctx.helpers.pending_timeout + ctx.defaults.extra_timeout;
    let remote_from = Remote { ctx, owner, node_id: from.id, node_name: from.name, timeout };
    let remote_to = Remote { ctx, owner, node_id: to.id, node_name: to.name, timeout };
    let source = End::open(&remote_from, connected, volume, true, hold).await?;
    let sink = match End::open(&remote_to, connected, volume, false, hold).await {
        Ok(sink) => sink,
        Err(e) => {
            source.close(&remote_from).await;
            return Err(e);
        }
    };
    let level = crate::archive::DEFAULT_ZSTD_LEVEL;
    let address = |node: &str| format!("{}:{PORT}", crate::helper::helper_name(owner.job, node));
    let (source_task, source_helper) = match &source {
        End::Local(_) => (AgentTask::Pack { dir: MOUNT.into(), level }, None),
        End::Remote(network, _) => {
            let seconds = remote_from.connect_seconds();
            let serve = AgentTask::ServePack { dir: MOUNT.into(), level, port: PORT, seconds };
            let access = crate::helper::Access {
                socket: false,
                volume: Some((volume.to_owned(), true)),
                network: Some(network.clone()),
            };
            (AgentTask::Fetch { address: address(from.id), seconds }, Some(remote_from.helper(serve, access)))
        }
    };
    let (sink_task, sink_helper) = match &sink {
        End::Local(_) => (AgentTask::Unpack { dir: MOUNT.into() }, None),
        End::Remote(network, _) => {
            let seconds = remote_to.connect_seconds();
            let serve = AgentTask::ServeUnpack { dir: MOUNT.into(), port: PORT, seconds };
            let access = crate::helper::Access {
                socket: false,
                volume: Some((volume.to_owned(), false)),
                network: Some(network.clone()),
            };
            (AgentTask::Send { address: address(to.id), seconds }, Some(remote_to.helper(serve, access)))
        }
    };
    let helpers_cancel = ctx.cancel.child_token();

    // At the deadline the pump fails and the helpers are told to stop, so the join ends.
    let deadline = Deadline::after(timeout + ctx.helpers.pending_timeout, remote_to.out_of_time());
    let pumping = async {
        let pumped = pump(
            (source.container(), &source_task),
            (sink.container(), &sink_task),
            &ctx.cancel,
            &deadline,
            progress,
        )
        .await;
        if pumped.is_err() {
            helpers_cancel.cancel();
        }
        pumped
    };
    let (from_lines, to_lines, pumped) = tokio::join!(
        run_optional(ctx, source_helper, &helpers_cancel),
        run_optional(ctx, sink_helper, &helpers_cancel),
        pumping
    );
    source.close(&remote_from).await;
    sink.close(&remote_to).await;
    let (bytes, sha256, source_line, sink_line) = pumped?;
    let from_lines = from_lines?;
    let to_lines = to_lines?;
    let packed = std::iter::once(source_line).chain(from_lines).find_map(|l| match l {
        AgentLine::Packed { stats } => Some(stats),
        _ => None,
    });
    let unpacked = std::iter::once(sink_line)
        .chain(to_lines)
        .find_map(|l| match l {
            AgentLine::Unpacked { stats } => Some(stats),
            _ => None,
        })
        .ok_or_else(|| format!("the extractor on node {} did not report what it restored", to.name))?;
    Ok(Copied { bytes, sha256, packed, unpacked })
}

/// A helper's lines, when there is a helper.
pub(crate) async fn run_optional(
    ctx: &crate::runner::JobContext,
    helper: Option<crate::helper::HelperRun<'_>>,
    cancel: &CancellationToken,
) -> Result<Vec<AgentLine>, String> {
    match helper {
        Some(run) => crate::helper::run_helper(&ctx.client, &ctx.helpers, &run, cancel)
            .await
            .map(|o| o.lines)
            .map_err(|e| e.to_string()),
        None => Ok(Vec::new()),
    }
}

/// Runs the archiver and the extractor, copying one's stdout into the other's stdin:
/// bytes, SHA-256, and each one's report.
pub(crate) async fn pump(
    (source, source_task): (&VolumeContainer, &AgentTask),
    (sink, sink_task): (&VolumeContainer, &AgentTask),
    cancel: &CancellationToken,
    deadline: &Deadline,
    progress: Progress<'_>,
) -> Result<(u64, String, AgentLine, AgentLine), String> {
    let mut out = source
        .client
        .exec(
            &source.id,
            &ExecSpec::new(crate::agent::protocol::exec_argv(source_task, source.channel.is_some())),
        )
        .await
        .map_err(|e| source.exec_failed("the archiver", &e))?;
    // The extractor reads the archive from the sink's channel when it has one, else from
    // the exec's stdin.
    let argv = crate::agent::protocol::exec_argv(sink_task, sink.channel.is_some());
    let spec =
        if sink.channel.is_some() { ExecSpec::new(argv) } else { ExecSpec::new(argv).with_stdin(true) };
    let mut into =
        sink.client.exec(&sink.id, &spec).await.map_err(|e| sink.exec_failed("the extractor", &e))?;
    let mut heard = Tail::new(64 * 1024);
    let mut stdin: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>> = match sink.channel.as_ref() {
        None => {
            Box::pin(into.take_stdin().ok_or_else(|| "the extractor's stdin is not attached".to_owned())?)
        }
        // It connects before it reads anything, or exits saying why not.
        Some(channel) => tokio::select! {
            () = cancel.cancelled() => return Err("cancelled".to_owned()),
            () = tokio::time::sleep_until(deadline.at) => return Err(deadline.message.clone()),
            accepted = crate::steps::transfer::container::Channel::accept(Some(channel)) => {
                Box::pin(accepted.map_err(|e| format!("the extractor's channel: {e}"))?)
            }
            () = hear(&mut into, &mut heard) => {
                let said = check_agent(into.exit_code().await, &heard, "the extractor").err();
                return Err(format!(
                    "the extractor exited without connecting to dockhand's channel{}",
                    said.map(|s| format!(": {s}")).unwrap_or_default()
                ));
            }
        },
    };
    let mut said = Tail::new(64 * 1024);
    let copied = copy_archive(
        &mut out,
        source.channel.as_ref(),
        &mut stdin,
        (cancel, deadline),
        true,
        |_| "the extractor stopped reading".to_owned(),
        |data| said.push(data),
        |moved, elapsed| progress(Transfer { moved, elapsed, ..Transfer::default() }),
    )
    .await;
    let _ = stdin.shutdown().await;
    let (bytes, sha256) = match &copied {
        Ok((bytes, sha256)) => (*bytes, sha256.clone().unwrap_or_default()),
        Err(_) => (0, String::new()),
    };
    let source_line = match copied {
        Ok(_) => check_agent(out.exit_code().await, &said, "the archiver"),
        Err(e) => Err(e),
    };
    drop(stdin);
    // The extractor's own words: its exit says whether the archive it got was whole.
    hear(&mut into, &mut heard).await;
    let sink_line = check_agent(into.exit_code().await, &heard, "the extractor");
    Ok((bytes, sha256, source_line?, sink_line?))
}

/// Reads what an exec says (stdout and stderr) into `heard`, to its end.
async fn hear(exec: &mut dockhand_engine::ExecOutput, heard: &mut Tail) {
    while let Some(chunk) = exec.next().await {
        match chunk {
            Ok(c) if c.stream != StreamKind::Stdin => heard.push(&c.data),
            Ok(_) => {}
            Err(_) => break,
        }
    }
}
