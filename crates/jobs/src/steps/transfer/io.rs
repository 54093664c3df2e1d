//! A volume's bytes behind one narrow trait: what a node says of a volume, and the upload
//! and download of its archive. [`EngineVolumes`] does it through the engine (a volume
//! container on the connected node, a helper and a relay elsewhere); the jobs' tests put an
//! in-memory stand-in in its place, so that the order of a backup's or a restore's steps
//! and every exit path run without an engine. The end-to-end suite proves the bytes.

use std::time::Duration;

use crate::runner::JobContext;
use crate::steps::transfer::container::{Attach, Owner, VolumeContainer};
use crate::steps::transfer::download::{Downloaded, Staged};
use crate::steps::transfer::remote::{Copied, NodeRef, Remote, VolumeFacts};
use crate::steps::transfer::upload::{Deadline, Destination, Progress, Uploaded};

/// Where a transfer happens: the job's context, who owns what it starts, the node dockhand
/// is connected to, and the node that holds the volume.
#[derive(Clone, Copy)]
pub(crate) struct Place<'a> {
    pub(crate) ctx: &'a JobContext,
    pub(crate) owner: Owner<'a>,
    /// The connected node's ID.
    pub(crate) connected: &'a str,
    pub(crate) node_id: &'a str,
    pub(crate) node_name: &'a str,
}

impl<'a> Place<'a> {
    fn remote(&self, timeout: Duration) -> Remote<'a> {
        Remote { ctx: self.ctx, owner: self.owner, node_id: self.node_id, node_name: self.node_name, timeout }
    }
}

/// The effects on a volume's bytes that backups, restores and moves make.
#[async_trait::async_trait]
pub(crate) trait VolumeIo: Send + Sync {
    /// Whether the node has `volume`, its driver and the running containers that mount it.
    async fn facts(&self, at: &Place<'_>, volume: &str) -> Result<VolumeFacts, String>;

    /// Whether the connected engine has `volume`.
    async fn here(&self, ctx: &JobContext, volume: &str) -> bool;

    /// Archives `volume` on its node into each destination at once, within `timeout`
    /// (`out_of_time` is the error past it): an error when nothing was stored, else each
    /// destination's result.
    async fn upload(
        &self,
        at: &Place<'_>,
        volume: &str,
        to: &[Destination<'_>],
        level: i32,
        (timeout, out_of_time): (Duration, String),
        progress: Progress<'_>,
    ) -> Result<Uploaded, String>;

    /// Writes the staged archive into `volume` on its node, replacing its contents: the
    /// SHA-256 of what was sent, and what the extractor wrote.
    async fn download(
        &self,
        at: &Place<'_>,
        volume: &str,
        staged: &Staged,
        timeout: Duration,
        progress: Progress<'_>,
    ) -> Result<Downloaded, String>;

    /// Copies `volume` from the node of `at` to `to`, replacing its contents there once the
    /// whole archive is out.
    async fn copy(
        &self,
        at: &Place<'_>,
        to: NodeRef<'_>,
        volume: &str,
        timeout: Duration,
        progress: Progress<'_>,
    ) -> Result<Copied, String>;
}

/// [`VolumeIo`] through the engine.
pub(crate) struct EngineVolumes;

#[async_trait::async_trait]
impl VolumeIo for EngineVolumes {
    async fn facts(&self, at: &Place<'_>, volume: &str) -> Result<VolumeFacts, String> {
        at.remote(at.ctx.defaults.extra_timeout).volume_facts(at.connected, volume).await
    }

    async fn here(&self, ctx: &JobContext, volume: &str) -> bool {
        ctx.client.volume(volume).await.is_ok()
    }

    async fn upload(
        &self,
        at: &Place<'_>,
        volume: &str,
        to: &[Destination<'_>],
        level: i32,
        (timeout, out_of_time): (Duration, String),
        progress: Progress<'_>,
    ) -> Result<Uploaded, String> {
        let ctx = at.ctx;
        if at.node_id != at.connected {
            // On another node: a helper there serves it to a relay beside dockhand over the
            // job's own network.
            return at.remote(timeout).upload(volume, to, level, progress).await;
        }
        let hold = timeout + ctx.defaults.extra_timeout;
        let image = ctx.helpers.image_here().await?;
        let container =
            VolumeContainer::start(&ctx.client, &image, at.owner, Attach::Volume(volume, true), hold).await?;
        // At the deadline the upload is aborted, not dropped: no part is left behind.
        let deadline = Deadline::after(timeout, out_of_time);
        let moved =
            crate::steps::transfer::upload::upload(&container, to, level, &ctx.cancel, &deadline, progress)
                .await;
        container.remove().await;
        moved
    }

    async fn download(
        &self,
        at: &Place<'_>,
        volume: &str,
        staged: &Staged,
        timeout: Duration,
        progress: Progress<'_>,
    ) -> Result<Downloaded, String> {
        let ctx = at.ctx;
        if at.node_id != at.connected {
            return at.remote(timeout).download(volume, staged, progress).await;
        }
        let hold = timeout + ctx.defaults.extra_timeout;
        let image = ctx.helpers.image_here().await?;
        let container =
            VolumeContainer::start(&ctx.client, &image, at.owner, Attach::Volume(volume, false), hold)
                .await?;
        let moved =
            crate::steps::transfer::download::download(&container, staged, &ctx.cancel, progress).await;
        container.remove().await;
        moved
    }

    async fn copy(
        &self,
        at: &Place<'_>,
        to: NodeRef<'_>,
        volume: &str,
        timeout: Duration,
        progress: Progress<'_>,
    ) -> Result<Copied, String> {
        let from = NodeRef { id: at.node_id, name: at.node_name };
        crate::steps::transfer::remote::copy_volume(
            at.ctx,
            at.owner,
            volume,
            at.connected,
            from,
            to,
            timeout,
            progress,
        )
        .await
    }
}
