//! The download: an object staged and verified (hash, and for the seed's archives their
//! conversion) before anything is unpacked, then streamed to the volume's unpacking.

use crate::agent::protocol::{AgentLine, AgentTask};
use crate::archive::UnpackStats;
use crate::seal::AgeIdentity;
use crate::steps::transfer::container::MOUNT;
use crate::steps::transfer::container::{Channel, VolumeContainer};
use crate::steps::transfer::upload::Progress;
use crate::steps::transfer::upload::Transfer;
use crate::steps::transfer::upload::check_agent;
use crate::storage::Storage;
use crate::tail::Tail;
use bytes::Bytes;
use dockhand_engine::{ExecSpec, StreamKind};
use object_store::ObjectStoreExt;
use object_store::path::Path as Key;
use sha2::Digest;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

/// An archive read once from its target into a private, unlinked file (in `$TMPDIR`),
/// hashed as stored and checked whole: what a restore unpacks afterwards, so that the bytes
/// checked are the bytes restored, whatever the target serves later (R3-02).
pub(crate) struct Staged {
    file: std::fs::File,
    /// The SHA-256 of the object as stored (encrypted, when it is).
    pub(crate) sha256: String,
    /// Its size as stored.
    pub(crate) size: u64,
    /// What the check found in it.
    pub(crate) stats: UnpackStats,
    identity: Option<AgeIdentity>,
}

/// Reads `key` whole into a [`Staged`] file, hashing it and checking every zstd frame and
/// tar entry (decrypting first with `identity`), writing nothing to any volume: the check a
/// restore makes before it touches one. With `expected`, the SHA-256 of the object as read
/// must be that one; it is what decides, so a mismatch is the error even when the archive
/// check failed too.
pub(crate) async fn stage_object(
    storage: &Storage,
    key: &Key,
    identity: Option<AgeIdentity>,
    expected: Option<&str>,
) -> Result<Staged, String> {
    let file = tempfile::tempfile().map_err(|e| format!("cannot make a staging file in $TMPDIR: {e}"))?;
    let tee = file.try_clone().map_err(|e| format!("the staging file: {e}"))?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(8);
    let checker =
        tokio::task::spawn_blocking(move || crate::archive::verify(crate::seal::ChannelReader::new(rx)));
    let mut archive = ArchiveStream::read(storage, key, identity.as_ref(), Some(tee)).await?;
    let fed = async {
        while let Some(chunk) = archive.next().await {
            if tx.send(chunk?).await.is_err() {
                break;
            }
        }
        Ok::<_, String>(())
    }
    .await;
    drop(tx);
    let checked = checker.await.map_err(|e| format!("the archive check stopped: {e}"))?;
    // The first cause first: a decryption that failed, then a read that failed, then what
    // the check found.
    fed?;
    let sha256 = archive.sha256().await?;
    if let Some(expected) = expected.filter(|e| **e != sha256) {
        return Err(format!(
            "its SHA-256 is {sha256}, the manifest says {expected}: the archive is corrupted; nothing was touched"
        ));
    }
    let stats = checked.map_err(|e| e.to_string())?;
    let size = file.metadata().map_err(|e| format!("the staging file: {e}"))?.len();
    Ok(Staged { file, sha256, size, stats, identity })
}

/// Reads the seed's archive `key` (a gzip tar, the volume under `backup/<volume>/`) whole
/// into a private file, then re-packs `volume` out of it as dockhand's own zstd tar into a
/// [`Staged`] file, checked as any staged archive is: what a restore writes. Answers also
/// what the re-pack found and the SHA-256 of the object as stored.
pub(crate) async fn stage_foreign(
    storage: &Storage,
    key: &Key,
    volume: &str,
) -> Result<(Staged, crate::archive::ForeignStats, String), String> {
    let raw = tempfile::tempfile().map_err(|e| format!("cannot make a staging file in $TMPDIR: {e}"))?;
    let tee = raw.try_clone().map_err(|e| format!("the staging file: {e}"))?;
    let mut archive = ArchiveStream::read(storage, key, None, Some(tee)).await?;
    while let Some(chunk) = archive.next().await {
        chunk?;
    }
    let stored = archive.sha256().await?;
    let volume = volume.to_owned();
    let converted = tokio::task::spawn_blocking(move || -> Result<_, String> {
        use std::io::{Seek as _, Write as _};
        let fail = |e: std::io::Error| format!("the staging file: {e}");
        let mut raw = raw;
        raw.rewind().map_err(fail)?;
        let mut file =
            tempfile::tempfile().map_err(|e| format!("cannot make a staging file in $TMPDIR: {e}"))?;
        let found = {
            let mut out = std::io::BufWriter::new(&mut file);
            let found = crate::archive::convert_foreign(
                std::io::BufReader::new(&raw),
                &volume,
                &mut out,
                crate::archive::DEFAULT_ZSTD_LEVEL,
            )
            .map_err(|e| e.to_string())?;
            out.flush().map_err(fail)?;
            found
        };
        file.rewind().map_err(fail)?;
        let stats = crate::archive::verify(std::io::BufReader::new(&file)).map_err(|e| e.to_string())?;
        let sha256 = read_hashing(&mut file, STAGING_FILE, |_| Ok(()))?;
        let size = file.metadata().map_err(fail)?.len();
        Ok((file, sha256, size, stats, found))
    })
    .await
    .map_err(|e| format!("the re-pack stopped: {e}"))??;
    let (file, sha256, size, stats, found) = converted;
    Ok((Staged { file, sha256, size, stats, identity: None }, found, stored))
}

/// Reads `file` (named `what` in errors) from its start in [`READ_CHUNK`] pieces, handing
/// each to `each`: its SHA-256 (hex).
pub(crate) fn read_hashing(
    file: &mut std::fs::File,
    what: &str,
    mut each: impl FnMut(&[u8]) -> Result<(), String>,
) -> Result<String, String> {
    use std::io::{Read as _, Seek as _};
    let fail = |e: std::io::Error| format!("{what}: {e}");
    file.rewind().map_err(fail)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let n = file.read(&mut buf).map_err(fail)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        each(&buf[..n])?;
    }
    Ok(hex::encode(hasher.finalize()))
}

/// An object's archive as it arrives: its bytes as stored, or decrypted with an identity.
/// The object is read (and hashed as stored) by a task of its own, so a slow decryption
/// and the read overlap.
pub(crate) struct ArchiveStream {
    chunks: ArchiveChunks,
    read: tokio::task::JoinHandle<Result<String, String>>,
}

pub(crate) enum ArchiveChunks {
    Plain(tokio::sync::mpsc::Receiver<Bytes>),
    Opened(tokio::sync::mpsc::Receiver<Result<Bytes, String>>),
}

impl ArchiveStream {
    /// Starts reading `key`, writing what it reads as stored into `tee` too when given;
    /// decrypts with `identity` when given. An object on a local target is read by a
    /// blocking task in [`READ_CHUNK`] pieces (object_store's own stream of a file reads
    /// 8 KiB per task, which made a restore's staging read its slowest part); any other
    /// comes as the target's client streams it.
    pub(crate) async fn read(
        storage: &Storage,
        key: &Key,
        identity: Option<&AgeIdentity>,
        tee: Option<std::fs::File>,
    ) -> Result<Self, String> {
        let got = storage
            .store()
            .get(key)
            .await
            .map_err(|e| storage.error(format!("read {key}"), &e).to_string())?;
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(8);
        let read = match got.payload {
            // A plain get: the whole file, which `read_file` reads from its start.
            object_store::GetResultPayload::File(file, path) => {
                tokio::task::spawn_blocking(move || read_file(file, &path, tee, &tx))
            }
            object_store::GetResultPayload::Stream(stream) => {
                let (storage, key) = (storage.clone(), key.clone());
                tokio::spawn(read_stream(stream, tee.map(tokio::fs::File::from_std), tx, storage, key))
            }
        };
        Ok(Self::over(rx, read, identity))
    }

    /// Reads a staged archive from its start, hashing it again as it goes.
    pub(crate) fn staged(staged: &Staged) -> Result<Self, String> {
        let mut file = staged.file.try_clone().map_err(|e| format!("the staging file: {e}"))?;
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(8);
        let read = tokio::task::spawn_blocking(move || {
            read_hashing(&mut file, STAGING_FILE, |chunk| {
                tx.blocking_send(Bytes::copy_from_slice(chunk)).map_err(|_| "the reader stopped".to_owned())
            })
        });
        Ok(Self::over(rx, read, staged.identity.as_ref()))
    }

    pub(crate) fn over(
        rx: tokio::sync::mpsc::Receiver<Bytes>,
        read: tokio::task::JoinHandle<Result<String, String>>,
        identity: Option<&AgeIdentity>,
    ) -> Self {
        let chunks = match identity {
            None => ArchiveChunks::Plain(rx),
            Some(identity) => ArchiveChunks::Opened(crate::seal::opened(rx, identity)),
        };
        Self { chunks, read }
    }

    /// The next piece of the archive; `None` at its end.
    pub(crate) async fn next(&mut self) -> Option<Result<Bytes, String>> {
        match &mut self.chunks {
            ArchiveChunks::Plain(rx) => rx.recv().await.map(Ok),
            ArchiveChunks::Opened(rx) => rx.recv().await,
        }
    }

    /// The object's SHA-256 as stored, once it was read to its end; a read that failed is
    /// its error.
    pub(crate) async fn sha256(self) -> Result<String, String> {
        drop(self.chunks);
        self.read.await.map_err(|e| format!("reading the object stopped: {e}"))?
    }
}

/// How much of a local object one read takes.
const READ_CHUNK: usize = 256 * 1024;

/// What the staging file is called in errors.
const STAGING_FILE: &str = "the staging file";

/// Reads a local target's `file` (at `path`) into `tx`, copying each piece into `tee` when
/// given: the object's SHA-256 (hex).
fn read_file(
    mut file: std::fs::File,
    path: &std::path::Path,
    mut tee: Option<std::fs::File>,
    tx: &tokio::sync::mpsc::Sender<Bytes>,
) -> Result<String, String> {
    use std::io::Write as _;
    let sha256 = read_hashing(&mut file, &format!("read {}", path.display()), |chunk| {
        if let Some(staging) = tee.as_mut() {
            staging.write_all(chunk).map_err(|e| format!("{STAGING_FILE}: {e}"))?;
        }
        tx.blocking_send(Bytes::copy_from_slice(chunk)).map_err(|_| "the reader stopped".to_owned())
    })?;
    if let Some(staging) = tee.as_mut() {
        staging.flush().map_err(|e| format!("{STAGING_FILE}: {e}"))?;
    }
    Ok(sha256)
}

/// Reads an object as its target's client streams it into `tx`, copying each piece into
/// `tee` when given: the object's SHA-256 (hex).
async fn read_stream(
    mut stream: futures_util::stream::BoxStream<'static, object_store::Result<Bytes>>,
    mut tee: Option<tokio::fs::File>,
    tx: tokio::sync::mpsc::Sender<Bytes>,
    storage: Storage,
    key: Key,
) -> Result<String, String> {
    use futures_util::StreamExt;
    let mut hasher = sha2::Sha256::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| storage.error(format!("read {key}"), &e).to_string())?;
        hasher.update(&chunk);
        if let Some(file) = tee.as_mut() {
            file.write_all(&chunk).await.map_err(|e| format!("the staging file: {e}"))?;
        }
        if tx.send(chunk).await.is_err() {
            return Err("the reader stopped".to_owned());
        }
    }
    if let Some(file) = tee.as_mut() {
        file.flush().await.map_err(|e| format!("the staging file: {e}"))?;
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Writes the staged archive into the container's volume, replacing its contents (the
/// agent extracts beside the old contents and swaps only once all is out).
pub(crate) async fn download(
    container: &VolumeContainer,
    staged: &Staged,
    cancel: &CancellationToken,
    progress: Progress<'_>,
) -> Result<Downloaded, String> {
    let task = AgentTask::Unpack { dir: MOUNT.into() };
    let (sha256, stats, via) = download_to(container, &task, staged, cancel, progress).await?;
    let stats = stats.ok_or_else(|| "the extractor did not report what it restored".to_owned())?;
    Ok(Downloaded { sha256, stats, via })
}

/// What a restore wrote into a volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Downloaded {
    /// The SHA-256 of what was sent.
    pub(crate) sha256: String,
    /// What the extractor wrote.
    pub(crate) stats: UnpackStats,
    /// How the archive reached the extractor: `channel`, `exec`, or (to another node)
    /// `network`.
    pub(crate) via: &'static str,
}

/// Streams the staged archive into what `task` reads in the container: over dockhand's
/// channel when the container has one (the unix socket a backup's archive takes too), else
/// on the exec's stdin. The SHA-256 of what was sent, the extractor's stats when it ran
/// there (a relay reports none), and which way the bytes went (`channel` or `exec`).
pub(crate) async fn download_to(
    container: &VolumeContainer,
    task: &AgentTask,
    staged: &Staged,
    cancel: &CancellationToken,
    progress: Progress<'_>,
) -> Result<(String, Option<UnpackStats>, &'static str), String> {
    let size = staged.size;
    let channel = container.channel.as_ref();
    let argv = crate::agent::protocol::exec_argv(task, channel.is_some());
    let spec = if channel.is_some() { ExecSpec::new(argv) } else { ExecSpec::new(argv).with_stdin(true) };
    let mut exec = container
        .client
        .exec(&container.id, &spec)
        .await
        .map_err(|e| container.exec_failed("the extractor", &e))?;
    let stdin = match channel {
        Some(_) => None,
        None => Some(exec.take_stdin().ok_or_else(|| "the extractor's stdin is not attached".to_owned())?),
    };
    let started = Instant::now();
    let mut last = Instant::now();
    let mut sent = 0u64;
    let mut refused = false;
    let exited = tokio::sync::Notify::new();
    // The extractor's output is read while its input is written, so neither side blocks.
    let reader = async {
        let mut report = Tail::new(64 * 1024);
        while let Some(chunk) = exec.next().await {
            match chunk {
                Ok(c) if c.stream != StreamKind::Stdin => report.push(&c.data),
                Ok(_) => {}
                Err(e) => {
                    exited.notify_one();
                    return (Err(e), report);
                }
            }
        }
        exited.notify_one();
        let code = exec.exit_code().await;
        (code, report)
    };
    let writer = async {
        let mut input: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send + '_>> = match stdin {
            Some(stdin) => Box::pin(stdin),
            // The extractor connects before it reads anything, or exits saying why not.
            None => tokio::select! {
                accepted = Channel::accept(channel) => match accepted {
                    Ok(stream) => Box::pin(stream),
                    Err(e) => return Err(format!("the extractor's channel: {e}")),
                },
                () = exited.notified() => {
                    refused = true;
                    return Err("the extractor exited without connecting to dockhand's channel".to_owned());
                }
            },
        };
        let result = async {
            let mut archive = ArchiveStream::staged(staged)?;
            while let Some(chunk) = archive.next().await {
                let chunk = chunk?;
                sent += chunk.len() as u64;
                if last.elapsed() >= Duration::from_secs(1) {
                    let elapsed = started.elapsed();
                    progress(Transfer {
                        moved: sent,
                        moved_total: Some(size),
                        elapsed,
                        ..Transfer::default()
                    });
                    last = Instant::now();
                }
                if input.write_all(&chunk).await.is_err() {
                    // The extractor stopped reading: its exit code and words say why.
                    refused = true;
                    break;
                }
            }
            archive.sha256().await
        }
        .await;
        // A failed read closes the extractor's input on a cut-short archive, which it
        // refuses as a whole: the volume keeps its contents.
        let _ = input.shutdown().await;
        result
    };
    let ((code, report), written) = tokio::select! {
        both = async { tokio::join!(reader, writer) } => both,
        () = cancel.cancelled() => return Err("cancelled".to_owned()),
    };
    // Whichever side stopped first says why.
    let line = check_agent(code, &report, "the extractor");
    let (sha256, line) = if refused { (written.unwrap_or_default(), line?) } else { (written?, line?) };
    progress(Transfer {
        moved: sent,
        moved_total: Some(size),
        elapsed: started.elapsed(),
        ..Transfer::default()
    });
    let via = if channel.is_some() { "channel" } else { "exec" };
    match line {
        AgentLine::Unpacked { stats } => Ok((sha256, Some(stats), via)),
        _ => Ok((sha256, None, via)),
    }
}
