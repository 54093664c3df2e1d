//! The volume container on the connected node: a plain container of the helper image that
//! mounts the volume and nothing else, that dockhand execs `dockhand agent` in, with the
//! unix-socket channel where dockhand and the engine share a filesystem.

use crate::agent::protocol::AgentTask;
use crate::helper::{HELPER_ACTION_LABEL, HELPER_LABEL, HELPER_TARGET_LABEL};
use dockhand_engine::{Client, ExecSpec, NewContainer};
use sha2::Digest;
use std::time::Duration;

/// Where a volume is mounted in its container.
pub(crate) const MOUNT: &str = "/volume";
/// Part size of multipart uploads, and how many parts are in flight: memory stays near
/// their product whatever the volume's size.
pub(crate) const PART: usize = 8 * 1024 * 1024;
pub(crate) const PARTS_IN_FLIGHT: usize = 2;

/// A plain container on the connected node that mounts one volume and holds still.
pub(crate) struct VolumeContainer {
    pub(crate) client: Client,
    pub(crate) id: String,
    pub(crate) image: String,
    /// Where its archiver writes, when not to the exec's stdout.
    pub(crate) channel: Option<Channel>,
}

/// A unix socket in a private directory on dockhand's own host, bind-mounted into a
/// volume container: the archiver writes to it (`--out`) instead of the exec's stdout,
/// which crosses containerd's shim and dockerd and, on a 2-core machine, halves the
/// throughput. Only when dockhand and the engine share a filesystem: a unix-socket
/// endpoint, a bind that the engine accepted, and a probe that got through. Anything else
/// falls back to the exec's stdout.
pub(crate) struct Channel {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) listener: tokio::net::UnixListener,
}

impl Channel {
    /// A fresh, private (0700) directory with the socket listening in it.
    pub(crate) fn open() -> std::io::Result<Self> {
        let dir = tempfile::Builder::new().prefix("dockhand-channel-").tempdir()?;
        let listener =
            tokio::net::UnixListener::bind(dir.path().join(crate::agent::protocol::CHANNEL_SOCKET))?;
        Ok(Self { dir, listener })
    }

    /// The next connection, or never without a channel.
    pub(crate) async fn accept(channel: Option<&Self>) -> std::io::Result<tokio::net::UnixStream> {
        match channel {
            Some(c) => c.listener.accept().await.map(|(stream, _)| stream),
            None => std::future::pending().await,
        }
    }
}

/// What a volume container gets: the volume (read-only or not), or, for a relay, the
/// job's network.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Attach<'a> {
    Volume(&'a str, bool),
    Network(&'a str),
}

/// Whose a volume container is: its job, the job's lock target and action (its labels, so
/// that a leftover is found like a helper service).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Owner<'a> {
    pub(crate) job: &'a str,
    pub(crate) target: &'a str,
    pub(crate) action: &'a str,
}

impl VolumeContainer {
    /// Starts it: the helper image, `dockhand agent hold` for at most `hold`, the volume at
    /// `/volume` (read-only for a backup), labelled as a helper of its owner; removed by the
    /// engine when it stops.
    pub(crate) async fn start(
        client: &Client,
        image: &str,
        owner: Owner<'_>,
        attach: Attach<'_>,
        hold: Duration,
    ) -> Result<Self, String> {
        let Owner { job, target, action } = owner;
        let (what, volume) = match attach {
            Attach::Volume(volume, _) => ("volume", volume),
            Attach::Network(network) => ("relay", network),
        };
        let name = format!("dh-{what}-{}-{}", short(job), short(&hex::encode(sha2::Sha256::digest(volume))));
        let mut spec =
            NewContainer::new(image, AgentTask::Hold { seconds: hold.as_secs().max(60) }.to_args(None))
                .with_label(HELPER_LABEL, job)
                .with_label(HELPER_TARGET_LABEL, target)
                .with_label(HELPER_ACTION_LABEL, action)
                .auto_remove();
        // R3-18: hardened as a helper is, keeping what its volume work needs.
        spec = match attach {
            Attach::Volume(volume, read_only) => {
                spec.with_volume(volume, MOUNT, read_only).hardened(if read_only {
                    crate::helper::VOLUME_READ_CAPS
                } else {
                    crate::helper::VOLUME_WRITE_CAPS
                })
            }
            Attach::Network(network) => spec.with_network(network).hardened(&[]),
        };
        // The channel, for an archiver (a read-only volume, or a relay) or an extractor (a
        // writable volume, or a relay), where the engine is local and takes the bind.
        let channel = if client.endpoint().socket_path().is_some() {
            Channel::open()
                .inspect_err(
                    |e| tracing::debug!(error = %e, "no channel: the exec's stdout carries the archive"),
                )
                .ok()
        } else {
            None
        };
        let started = match &channel {
            Some(c) => {
                let bound = spec.clone().with_bind(
                    c.dir.path().display().to_string(),
                    crate::agent::protocol::CHANNEL_MOUNT,
                    false,
                );
                match client.run_container(&name, &bound).await {
                    Ok(id) => Ok((id, true)),
                    Err(e) => {
                        tracing::debug!(error = %e, "the engine does not share dockhand's filesystem: no channel");
                        client.run_container(&name, &spec).await.map(|id| (id, false))
                    }
                }
            }
            None => client.run_container(&name, &spec).await.map(|id| (id, false)),
        };
        match started {
            Ok((id, bound)) => {
                let mut container =
                    Self { client: client.clone(), id, image: image.to_owned(), channel: None };
                if bound {
                    container.channel = container.probe(channel).await;
                }
                Ok(container)
            }
            Err(e) if e.is_not_found() => Err(format!(
                "the helper image {image} is not on this node: pull it there, or name another with --helper-image ({e})"
            )),
            Err(e) => Err(format!("cannot start a container for volume {volume}: {e}")),
        }
    }

    /// The channel, if an agent in the container can reach it: one that holds for no time
    /// connects to it and exits 0.
    pub(crate) async fn probe(&self, channel: Option<Channel>) -> Option<Channel> {
        let channel = channel?;
        let argv = crate::agent::protocol::exec_argv(&AgentTask::Hold { seconds: 0 }, true);
        let tried = async {
            let mut exec =
                self.client.exec(&self.id, &ExecSpec::new(argv)).await.map_err(|e| e.to_string())?;
            // It connects before it exits: once it has, the connection is waiting.
            match exec.wait_exit().await.map_err(|e| e.to_string())? {
                0 => {}
                code => return Err(format!("the probe exited with code {code}")),
            }
            match tokio::time::timeout(Duration::from_secs(5), channel.listener.accept()).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("the probe exited without connecting".to_owned()),
            }
        };
        match tried.await {
            Ok(()) => Some(channel),
            Err(e) => {
                tracing::debug!(container = %self.id, error = %e, "the channel is out of reach: the exec's stdout carries the archive");
                None
            }
        }
    }

    /// Why `what` could not start in it: a container that stopped at once ran an image
    /// whose dockhand does not know `agent hold`.
    pub(crate) fn exec_failed(&self, what: &str, e: &dockhand_engine::Error) -> String {
        if e.to_string().contains("is not running") {
            format!(
                "cannot start {what}: the volume container of image {} stopped at once; its dockhand must be this \
                 version's (`dockhand agent hold`): name the right image with --helper-image ({e})",
                self.image
            )
        } else {
            format!("cannot start {what}: {e}")
        }
    }

    /// Removes it (whatever happened).
    pub(crate) async fn remove(self) {
        if let Err(e) = self.client.remove_container(&self.id).await {
            tracing::warn!(container = %self.id, error = %e, "cannot remove a volume container; it stops on its own");
        }
    }
}

pub(crate) fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}
