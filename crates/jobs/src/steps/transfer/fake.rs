//! A stand-in for a volume's bytes, for this crate's tests: volumes on nodes as directories
//! of a temporary tree, packed into dockhand's own archive on upload and unpacked from the
//! staged archive on download (in this process: no container, no helper), faults a test
//! arms, and every effect written into the fake swarm's log, so that one log holds the
//! whole order of a job's steps.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use object_store::ObjectStoreExt;
use object_store::path::Path as Key;
use sha2::Digest;

use crate::archive::UnpackStats;
use crate::runner::JobContext;
use crate::steps::transfer::download::{ArchiveStream, Staged};
use crate::steps::transfer::io::{Place, VolumeIo};
use crate::steps::transfer::remote::{Copied, NodeRef, VolumeFacts};
use crate::steps::transfer::upload::{Progress, Uploaded};
use crate::storage::Storage;
use crate::swarm::fake::FakeSwarm;

/// How the next upload ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UploadFault {
    /// It fails at once.
    Fails,
    /// It never ends on its own: only the job's cancellation or its time limit stop it.
    Hangs,
}

#[derive(Default)]
struct State {
    upload_faults: Vec<UploadFault>,
    writes_fail: bool,
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

    /// Every download and copy fails (a volume written to, not one read).
    pub(crate) fn fail_writes(&self) {
        self.lock().writes_fail = true;
    }

    /// The next upload ends with `fault`.
    pub(crate) fn fail_upload(&self, fault: UploadFault) {
        self.lock().upload_faults.push(fault);
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
        storage: &Storage,
        key: &Key,
        _level: i32,
        (timeout, out_of_time): (Duration, String),
        _progress: Progress<'_>,
    ) -> Result<Uploaded, String> {
        self.swarm.note(format!("upload {volume} from {}", at.node_name));
        let fault = {
            let mut s = self.lock();
            if s.upload_faults.is_empty() { None } else { Some(s.upload_faults.remove(0)) }
        };
        match fault {
            Some(UploadFault::Fails) => return Err("the stand-in's upload failed".to_owned()),
            Some(UploadFault::Hangs) => {
                return tokio::select! {
                    () = at.ctx.cancel.cancelled() => Err("cancelled".to_owned()),
                    () = tokio::time::sleep(timeout) => Err(out_of_time),
                };
            }
            None => {}
        }
        let dir = self.dir(at.node_id, volume);
        if !dir.is_dir() {
            return Err(format!("no volume {volume} on {}", at.node_name));
        }
        let mut archive = Vec::new();
        let stats = crate::archive::pack(&dir, &mut archive, 3, &std::sync::atomic::AtomicU64::new(0))
            .map_err(|e| e.to_string())?;
        let sha256 = hex::encode(sha2::Sha256::digest(&archive));
        let bytes = archive.len() as u64;
        storage.store().put(key, archive.into()).await.map_err(|e| e.to_string())?;
        Ok(Uploaded { bytes, sha256, stats, via: "stand-in" })
    }

    async fn download(
        &self,
        at: &Place<'_>,
        volume: &str,
        staged: &Staged,
        _timeout: Duration,
        _progress: Progress<'_>,
    ) -> Result<(String, UnpackStats), String> {
        self.swarm.note(format!("restore {volume} on {}", at.node_name));
        if self.lock().writes_fail {
            return Err("the stand-in's download failed".to_owned());
        }
        let mut stream = ArchiveStream::staged(staged)?;
        let mut archive = Vec::new();
        while let Some(chunk) = stream.next().await {
            archive.extend_from_slice(&chunk?);
        }
        let sha256 = stream.sha256().await?;
        let dir = self.dir(at.node_id, volume);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let stats = crate::archive::unpack(archive.as_slice(), &dir).map_err(|e| e.to_string())?;
        Ok((sha256, stats))
    }

    async fn copy(
        &self,
        at: &Place<'_>,
        to: NodeRef<'_>,
        volume: &str,
        _timeout: Duration,
        _progress: Progress<'_>,
    ) -> Result<Copied, String> {
        self.swarm.note(format!("copy {volume} from {} to {}", at.node_name, to.name));
        if self.lock().writes_fail {
            return Err("the stand-in's copy failed".to_owned());
        }
        let from = self.dir(at.node_id, volume);
        let mut archive = Vec::new();
        let packed = crate::archive::pack(&from, &mut archive, 3, &std::sync::atomic::AtomicU64::new(0))
            .map_err(|e| e.to_string())?;
        let dir = self.dir(to.id, volume);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let unpacked = crate::archive::unpack(archive.as_slice(), &dir).map_err(|e| e.to_string())?;
        let sha256 = hex::encode(sha2::Sha256::digest(&archive));
        Ok(Copied { bytes: archive.len() as u64, sha256, packed: Some(packed), unpacked })
    }
}
