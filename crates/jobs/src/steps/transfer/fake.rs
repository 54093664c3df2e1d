//! A stand-in for a volume's bytes, for this crate's tests: volumes on nodes as directories
//! of a temporary tree, packed into dockhand's own archive on upload and unpacked from the
//! staged archive on download (in this process: no container, no helper), faults a test
//! arms, and every effect written into the fake swarm's log, so that one log holds the
//! whole order of a job's steps.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use object_store::ObjectStoreExt;
use sha2::Digest;

use crate::archive::UnpackStats;
use crate::runner::JobContext;
use crate::steps::transfer::download::{ArchiveStream, Downloaded, Staged};
use crate::steps::transfer::io::{Place, VolumeIo};
use crate::steps::transfer::remote::{Copied, NodeRef, VolumeFacts};
use crate::steps::transfer::upload::{Destination, Progress, Stored, Uploaded};
use crate::swarm::fake::FakeSwarm;

/// How a transfer armed with it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BytesFault {
    /// It fails at once.
    Fails,
    /// It never ends on its own: only the job's cancellation or its time limit stop it.
    Hangs,
}

impl BytesFault {
    /// The transfer's end: its error at once, or when the job is cancelled or `timeout`
    /// is up (`out_of_time`).
    async fn strike(self, what: &str, ctx: &JobContext, timeout: Duration, out_of_time: String) -> String {
        match self {
            Self::Fails => format!("the stand-in's {what} failed"),
            Self::Hangs => tokio::select! {
                () = ctx.cancel.cancelled() => "cancelled".to_owned(),
                () = tokio::time::sleep(timeout) => out_of_time,
            },
        }
    }
}

#[derive(Default)]
struct State {
    upload_faults: Vec<BytesFault>,
    /// How every download and copy ends, when armed.
    writes: Option<BytesFault>,
}

/// The volumes of a [`FakeSwarm`]'s nodes: `<root>/<node ID>/<volume>/`.
pub(crate) struct FakeVolumes {
    swarm: Arc<FakeSwarm>,
    root: tempfile::TempDir,
    state: Mutex<State>,
}

impl FakeVolumes {
    pub(crate) fn new(swarm: &Arc<FakeSwarm>) -> Self {
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("a temporary directory: {e}"));
        Self { swarm: Arc::clone(swarm), root, state: Mutex::default() }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn dir(&self, node_id: &str, volume: &str) -> std::path::PathBuf {
        self.root.path().join(node_id).join(volume)
    }

    /// Puts `volume` on the node `node_id`, holding the file `data` with `contents`.
    pub(crate) fn put(&self, node_id: &str, volume: &str, contents: &[u8]) {
        let dir = self.dir(node_id, volume);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        std::fs::write(dir.join("data"), contents).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    }

    /// The file `data` of `volume` on `node_id`, when the volume is there.
    pub(crate) fn get(&self, node_id: &str, volume: &str) -> Option<Vec<u8>> {
        let dir = self.dir(node_id, volume);
        dir.is_dir().then(|| std::fs::read(dir.join("data")).unwrap_or_default())
    }

    /// Every download and copy (a volume written to, not one read) ends with `fault`.
    pub(crate) fn fail_writes(&self, fault: BytesFault) {
        self.lock().writes = Some(fault);
    }

    /// The next upload ends with `fault`.
    pub(crate) fn fail_upload(&self, fault: BytesFault) {
        self.lock().upload_faults.push(fault);
    }

    /// `volume` on `node_id` packed as dockhand's archive.
    fn pack(&self, node_id: &str, volume: &str) -> Result<(Vec<u8>, crate::archive::PackStats), String> {
        let mut archive = Vec::new();
        let stats = crate::archive::pack(
            &self.dir(node_id, volume),
            &mut archive,
            3,
            &std::sync::atomic::AtomicU64::new(0),
        )
        .map_err(|e| e.to_string())?;
        Ok((archive, stats))
    }

    /// `archive` unpacked as the contents of `volume` on `node_id`, replacing what it held.
    fn unpack(&self, node_id: &str, volume: &str, archive: &[u8]) -> Result<UnpackStats, String> {
        let dir = self.dir(node_id, volume);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        crate::archive::unpack(archive, &dir).map_err(|e| e.to_string())
    }
}

#[async_trait::async_trait]
impl VolumeIo for FakeVolumes {
    async fn facts(&self, at: &Place<'_>, volume: &str) -> Result<VolumeFacts, String> {
        let exists = self.get(at.node_id, volume).is_some();
        Ok(VolumeFacts {
            exists,
            driver: if exists { "local".to_owned() } else { String::new() },
            users: Vec::new(),
        })
    }

    async fn here(&self, ctx: &JobContext, volume: &str) -> bool {
        let here = ctx.swarm.info().await.map(|i| i.swarm.node_id).unwrap_or_default();
        self.get(&here, volume).is_some()
    }

    async fn upload(
        &self,
        at: &Place<'_>,
        volume: &str,
        to: &[Destination<'_>],
        _level: i32,
        (timeout, out_of_time): (Duration, String),
        _progress: Progress<'_>,
    ) -> Result<Uploaded, String> {
        self.swarm.note(format!("upload {volume} from {}", at.node_name));
        let fault = {
            let mut s = self.lock();
            if s.upload_faults.is_empty() { None } else { Some(s.upload_faults.remove(0)) }
        };
        if let Some(fault) = fault {
            return Err(fault.strike("upload", at.ctx, timeout, out_of_time).await);
        }
        if !self.dir(at.node_id, volume).is_dir() {
            return Err(format!("no volume {volume} on {}", at.node_name));
        }
        let (archive, stats) = self.pack(at.node_id, volume)?;
        let sha256 = hex::encode(sha2::Sha256::digest(&archive));
        let bytes = archive.len() as u64;
        let mut stored = Vec::new();
        for Destination { storage, key } in to {
            let put = storage.store().put(key, archive.clone().into()).await;
            stored.push(
                put.map(|_| Stored { bytes, sha256: sha256.clone() })
                    .map_err(|e| storage.error(format!("upload {key}"), &e).to_string()),
            );
        }
        if stored.iter().all(Result::is_err) {
            return Err(stored.into_iter().filter_map(Result::err).collect::<Vec<_>>().join("; "));
        }
        Ok(Uploaded { stats, via: "stand-in", stored })
    }

    async fn download(
        &self,
        at: &Place<'_>,
        volume: &str,
        staged: &Staged,
        timeout: Duration,
        _progress: Progress<'_>,
    ) -> Result<Downloaded, String> {
        self.swarm.note(format!("restore {volume} on {}", at.node_name));
        let fault = self.lock().writes;
        if let Some(fault) = fault {
            return Err(fault.strike("download", at.ctx, timeout, "out of time".to_owned()).await);
        }
        let mut stream = ArchiveStream::staged(staged)?;
        let mut archive = Vec::new();
        while let Some(chunk) = stream.next().await {
            archive.extend_from_slice(&chunk?);
        }
        let sha256 = stream.sha256().await?;
        Ok(Downloaded { sha256, stats: self.unpack(at.node_id, volume, &archive)?, via: "stand-in" })
    }

    async fn copy(
        &self,
        at: &Place<'_>,
        to: NodeRef<'_>,
        volume: &str,
        timeout: Duration,
        _progress: Progress<'_>,
    ) -> Result<Copied, String> {
        self.swarm.note(format!("copy {volume} from {} to {}", at.node_name, to.name));
        let fault = self.lock().writes;
        if let Some(fault) = fault {
            return Err(fault.strike("copy", at.ctx, timeout, "out of time".to_owned()).await);
        }
        let (archive, packed) = self.pack(at.node_id, volume)?;
        let unpacked = self.unpack(to.id, volume, &archive)?;
        let sha256 = hex::encode(sha2::Sha256::digest(&archive));
        Ok(Copied { bytes: archive.len() as u64, sha256, packed: Some(packed), unpacked })
    }
}
