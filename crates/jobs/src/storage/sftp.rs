//! SFTP targets: a directory on an ssh server as an object store, through the system `ssh`
//! client (the `openssh` crate, one ControlMaster session opened as the `ssh://` engine
//! transport opens its own: [`dockhand_engine::open_session`]) and the server's SFTP
//! subsystem (`openssh-sftp-client`).
//!
//! - **Atomic writes.** Every object, small or streamed, is written under a temporary name
//!   in the directory's `.dockhand-partial/`, then renamed onto its name (`posix-rename`
//!   where the server offers it, as OpenSSH's does): an object appears only when complete,
//!   and a failed or cancelled upload leaves nothing under its name.
//! - **Streamed writes.** The parts of a multipart upload are written in order, as the
//!   archiver makes them, with the SFTP writes pipelined.
//! - **Listings** walk the tree one directory at a time; `.dockhand-partial/` is never
//!   listed.
//! - **One session per opened target**, made on first use and made again after the
//!   connection broke.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;

use futures_util::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult, UploadPart,
};
use openssh_sftp_client::error::SftpErrorKind;
use openssh_sftp_client::file::TokioCompatFile;
use openssh_sftp_client::{Sftp, SftpOptions};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::storage::kinds::SftpTarget;

/// Where objects are written before they are renamed onto their name.
const PARTIAL: &str = ".dockhand-partial";

/// How much a read asks for at once.
const READ_CHUNK: usize = 256 * 1024;

/// How many bytes of writes a file keeps in flight before it waits for their answers.
const WRITE_AHEAD: std::num::NonZeroUsize = match std::num::NonZeroUsize::new(4 * 1024 * 1024) {
    Some(n) => n,
    None => std::num::NonZeroUsize::MIN,
};

/// A directory over SFTP as an object store.
#[derive(Debug, Clone)]
pub(crate) struct SftpStore {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    target: SftpTarget,
    /// The session, once made; `None` again after it broke.
    session: tokio::sync::Mutex<Option<Arc<Sftp>>>,
}

impl std::fmt::Display for SftpStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SFTP({})", self.shared.target.url)
    }
}

/// An error of this store, as object_store carries it.
fn generic(detail: impl Into<String>) -> object_store::Error {
    object_store::Error::Generic { store: "SFTP", source: detail.into().into() }
}

/// `err` (met doing `what`) as object_store's error: a missing file is `NotFound`, a
/// refused one `PermissionDenied`.
fn sftp_error(what: &str, err: openssh_sftp_client::Error) -> object_store::Error {
    use openssh_sftp_client::Error as E;
    let source = format!("{what}: {err}").into();
    match err {
        E::SftpError(SftpErrorKind::NoSuchFile, _) => {
            object_store::Error::NotFound { path: what.to_owned(), source }
        }
        E::SftpError(SftpErrorKind::PermDenied, _) => {
            object_store::Error::PermissionDenied { path: what.to_owned(), source }
        }
        _ => object_store::Error::Generic { store: "SFTP", source },
    }
}

/// Whether `err` says the session itself failed (not one request): the next use makes a
/// new one.
fn broken(err: &openssh_sftp_client::Error) -> bool {
    !matches!(err, openssh_sftp_client::Error::SftpError(..))
}

/// Why the ssh session did not come up, as object_store's error: a refused sign-in is
/// `Unauthenticated`; a missing `ssh` says what to install.
fn session_error(url: &str, err: &std::io::Error) -> object_store::Error {
    let said = err.to_string();
    if err.kind() == std::io::ErrorKind::NotFound && !said.contains("ssh said") {
        return generic(format!(
            "{url}: an sftp target needs the system ssh client (Debian: openssh-client): {said}"
        ));
    }
    let source = format!("{url}: {said}").into();
    if said.contains("Permission denied") {
        return object_store::Error::Unauthenticated { path: url.to_owned(), source };
    }
    object_store::Error::Generic { store: "SFTP", source }
}

impl SftpStore {
    /// The store of `target`; nothing is connected before the first use.
    pub(crate) fn new(target: &SftpTarget) -> Self {
        Self { shared: Arc::new(Shared { target: target.clone(), session: tokio::sync::Mutex::new(None) }) }
    }
}

impl Shared {
    /// The session: the one made before, or a new one.
    async fn sftp(&self) -> object_store::Result<Arc<Sftp>> {
        let mut held = self.session.lock().await;
        if let Some(sftp) = held.as_ref() {
            return Ok(Arc::clone(sftp));
        }
        let target = &self.target;
        let mut settings = dockhand_engine::SshSettings::new();
        if let Some(key) = &target.identity_file {
            settings = settings.with_identity(key);
        }
        if let Some(file) = &target.known_hosts {
            settings = settings.with_known_hosts(file);
        }
        let session = dockhand_engine::open_session(&target.endpoint, &settings)
            .await
            .map_err(|e| session_error(&target.url, &e))?;
        // Up to 4 MiB of writes in flight (the default is 640 KiB): a streamed archive is
        // not held back by the round trip through both ssh processes.
        let options = SftpOptions::new().tokio_compat_file_write_limit(WRITE_AHEAD);
        let sftp = Sftp::from_session(session, options)
            .await
            .map_err(|e| generic(format!("{}: cannot start the sftp subsystem: {e}", target.url)))?;
        let sftp = Arc::new(sftp);
        *held = Some(Arc::clone(&sftp));
        Ok(sftp)
    }

    /// `err` from doing `what`, as object_store's error; a broken session is dropped so
    /// that the next use makes a new one.
    async fn failed(&self, what: &str, err: openssh_sftp_client::Error) -> object_store::Error {
        if broken(&err) {
            self.session.lock().await.take();
        }
        sftp_error(what, err)
    }

    /// The remote path of `location` (or of the directory itself).
    fn path(&self, location: Option<&Path>) -> PathBuf {
        let mut path = PathBuf::from(&self.target.path);
        for part in location.into_iter().flat_map(Path::parts) {
            path.push(part.as_ref());
        }
        if path.as_os_str().is_empty() { PathBuf::from(".") } else { path }
    }

    /// Creates the directories that lead to `location` (those there already are fine).
    async fn directories(&self, sftp: &Sftp, location: &Path) -> object_store::Result<()> {
        let parts: Vec<_> = location.parts().collect();
        let mut fs = sftp.fs();
        for end in 1..parts.len() {
            let dir = self.path(Some(&Path::from_iter(parts[..end].iter().cloned())));
            if let Err(e) = fs.create_dir(&dir).await {
                // An existing directory is a failure to create: it is fine if it is one.
                match fs.metadata(&dir).await {
                    Ok(meta) if meta.file_type().is_some_and(|t| t.is_dir()) => {}
                    _ => {
                        return Err(self.failed(&format!("create the directory {}", dir.display()), e).await);
                    }
                }
            }
        }
        Ok(())
    }

    /// A new temporary name under `.dockhand-partial/`, its directories made.
    async fn partial(&self, sftp: &Sftp, location: &Path) -> object_store::Result<Path> {
        // Unique per process (a counter) and per host (the process ID in it).
        let partial = Path::from_iter([PARTIAL.to_owned(), crate::job::job_id(std::time::SystemTime::now())]);
        self.directories(sftp, &partial).await?;
        self.directories(sftp, location).await?;
        Ok(partial)
    }

    /// Renames `partial` onto `location`; on failure the partial file is removed.
    async fn publish(&self, sftp: &Sftp, partial: &Path, location: &Path) -> object_store::Result<()> {
        let (from, to) = (self.path(Some(partial)), self.path(Some(location)));
        if let Err(e) = sftp.fs().rename(&from, &to).await {
            let _ = sftp.fs().remove_file(&from).await;
            return Err(self.failed(&format!("rename {} to {}", from.display(), to.display()), e).await);
        }
        Ok(())
    }

    /// The object at `location`, from a stat of its file.
    async fn meta(&self, sftp: &Sftp, location: &Path) -> object_store::Result<ObjectMeta> {
        let path = self.path(Some(location));
        let what = format!("read {}", path.display());
        let attrs = match sftp.fs().metadata(&path).await {
            Ok(attrs) => attrs,
            Err(e) => return Err(self.failed(&what, e).await),
        };
        if attrs.file_type().is_some_and(|t| t.is_dir()) {
            return Err(object_store::Error::NotFound { path: what, source: "it is a directory".into() });
        }
        Ok(object_meta(location.clone(), &attrs))
    }

    /// One directory's objects and subdirectories (`.dockhand-partial/` left out).
    async fn one_level(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let sftp = self.sftp().await?;
        let dir = self.path(prefix);
        let what = format!("list {}", dir.display());
        let mut fs = sftp.fs();
        let opened = match fs.open_dir(&dir).await {
            Ok(opened) => opened,
            Err(openssh_sftp_client::Error::SftpError(SftpErrorKind::NoSuchFile, _)) => {
                return Ok(ListResult {
                    common_prefixes: Vec::new(),
                    objects: Vec::new(),
                    extensions: Default::default(),
                });
            }
            Err(e) => return Err(self.failed(&what, e).await),
        };
        let mut entries = std::pin::pin!(opened.read_dir());
        let mut listed =
            ListResult { common_prefixes: Vec::new(), objects: Vec::new(), extensions: Default::default() };
        while let Some(entry) = entries.next().await {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => return Err(self.failed(&what, e).await),
            };
            let name = entry.filename().to_string_lossy().into_owned();
            if name == "." || name == ".." || (prefix.is_none() && name == PARTIAL) {
                continue;
            }
            let location = match prefix {
                Some(prefix) => prefix.clone().join(name.as_str()),
                None => Path::from(name.as_str()),
            };
            let attrs = entry.metadata();
            match attrs.file_type() {
                Some(t) if t.is_dir() => listed.common_prefixes.push(location),
                Some(t) if t.is_file() => listed.objects.push(object_meta(location, &attrs)),
                // Links, sockets and the like are not objects.
                _ => {}
            }
        }
        Ok(listed)
    }

    /// Writes `payload` to a new partial file and renames it onto `location`.
    async fn put(&self, location: &Path, payload: PutPayload) -> object_store::Result<()> {
        let sftp = self.sftp().await?;
        let partial = self.partial(&sftp, location).await?;
        let path = self.path(Some(&partial));
        let what = format!("write {}", path.display());
        let written = async {
            let mut file = Box::pin(TokioCompatFile::new(sftp.create(&path).await?));
            for chunk in payload.iter() {
                file.write_all(chunk).await.map_err(openssh_sftp_client::Error::from)?;
            }
            // Every write acknowledged; dropping the file closes its handle.
            file.flush().await.map_err(openssh_sftp_client::Error::from)
        };
        if let Err(e) = written.await {
            let _ = sftp.fs().remove_file(&path).await;
            return Err(self.failed(&what, e).await);
        }
        self.publish(&sftp, &partial, location).await
    }
}

/// An object's description from its file's attributes.
fn object_meta(location: Path, attrs: &openssh_sftp_client::metadata::MetaData) -> ObjectMeta {
    let modified = attrs.modified().map(|t| t.as_system_time()).unwrap_or(std::time::UNIX_EPOCH);
    ObjectMeta {
        location,
        last_modified: chrono::DateTime::<chrono::Utc>::from(modified),
        size: attrs.len().unwrap_or(0),
        e_tag: None,
        version: None,
    }
}

#[async_trait::async_trait]
impl ObjectStore for SftpStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        if !matches!(opts.mode, PutMode::Overwrite) {
            return Err(object_store::Error::NotImplemented {
                operation: "a conditional put".to_owned(),
                implementer: self.to_string(),
            });
        }
        self.shared.put(location, payload).await?;
        Ok(PutResult { e_tag: None, version: None, extensions: Default::default() })
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        _opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let shared = &self.shared;
        let sftp = shared.sftp().await?;
        let partial = shared.partial(&sftp, location).await?;
        let path = shared.path(Some(&partial));
        let file = match sftp.create(&path).await {
            Ok(file) => file,
            Err(e) => return Err(shared.failed(&format!("write {}", path.display()), e).await),
        };
        let (parts, mut queue) =
            tokio::sync::mpsc::unbounded_channel::<(PutPayload, tokio::sync::oneshot::Sender<()>)>();
        // The writer: each part's chunks in order, the SFTP writes pipelined. A part's
        // future resolves once it is written, so memory holds at most the parts the
        // uploader keeps in flight.
        let writer = tokio::spawn(async move {
            let mut file = Box::pin(TokioCompatFile::new(file));
            while let Some((payload, written)) = queue.recv().await {
                for chunk in payload.iter() {
                    file.write_all(chunk).await.map_err(openssh_sftp_client::Error::from)?;
                }
                let _ = written.send(());
            }
            // Every write acknowledged; dropping the file closes its handle.
            file.flush().await.map_err(openssh_sftp_client::Error::from)
        });
        Ok(Box::new(Upload {
            parts: Some(parts),
            writer: Arc::new(tokio::sync::Mutex::new(Some(writer))),
            shared: Arc::clone(shared),
            sftp,
            partial,
            location: location.clone(),
        }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        let shared = &self.shared;
        let sftp = shared.sftp().await?;
        let meta = shared.meta(&sftp, location).await?;
        options.check_preconditions(&meta)?;
        let range = match &options.range {
            Some(range) => range.as_range(meta.size).map_err(|e| generic(format!("{location}: {e}")))?,
            None => 0..meta.size,
        };
        let payload = if options.head {
            futures_util::stream::empty().boxed()
        } else {
            let path = shared.path(Some(location));
            let what = format!("read {}", path.display());
            let file = match sftp.open(&path).await {
                Ok(file) => file,
                Err(e) => return Err(shared.failed(&what, e).await),
            };
            let capacity = std::num::NonZeroUsize::new(READ_CHUNK).unwrap_or(std::num::NonZeroUsize::MIN);
            let mut file = Box::pin(TokioCompatFile::with_capacity(file, capacity));
            if range.start > 0 {
                file.seek(std::io::SeekFrom::Start(range.start))
                    .await
                    .map_err(|e| generic(format!("{what}: {e}")))?;
            }
            let reader = file.take(range.end - range.start);
            // The session lives as long as the stream.
            let keep = Arc::clone(&sftp);
            tokio_util::io::ReaderStream::with_capacity(reader, READ_CHUNK)
                .map(move |chunk| {
                    let _ = &keep;
                    chunk.map_err(|e| generic(format!("{what}: {e}")))
                })
                .boxed()
        };
        Ok(GetResult {
            payload: GetResultPayload::Stream(payload),
            meta,
            range,
            attributes: Default::default(),
            extensions: Default::default(),
        })
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let shared = Arc::clone(&self.shared);
        locations
            .and_then(move |location| {
                let shared = Arc::clone(&shared);
                async move {
                    let sftp = shared.sftp().await?;
                    let path = shared.path(Some(&location));
                    match sftp.fs().remove_file(&path).await {
                        Ok(()) => Ok(location),
                        Err(e) => Err(shared.failed(&format!("delete {}", path.display()), e).await),
                    }
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let shared = Arc::clone(&self.shared);
        let start = prefix.cloned();
        futures_util::stream::once(async move {
            let mut found = Vec::new();
            let mut todo = VecDeque::from([start]);
            while let Some(dir) = todo.pop_front() {
                let listed = shared.one_level(dir.as_ref()).await?;
                found.extend(listed.objects);
                todo.extend(listed.common_prefixes.into_iter().map(Some));
            }
            Ok::<_, object_store::Error>(futures_util::stream::iter(found.into_iter().map(Ok)))
        })
        .try_flatten()
        .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.shared.one_level(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, _options: CopyOptions) -> object_store::Result<()> {
        let bytes = self.get_opts(from, GetOptions::default()).await?.bytes().await?;
        self.shared.put(to, bytes.into()).await
    }
}

/// The writer task of a streamed upload.
type Writer = tokio::task::JoinHandle<Result<(), openssh_sftp_client::Error>>;

/// One streamed upload: its parts go to the partial file as they come; completing it
/// renames that file onto its name.
#[derive(Debug)]
struct Upload {
    parts: Option<tokio::sync::mpsc::UnboundedSender<(PutPayload, tokio::sync::oneshot::Sender<()>)>>,
    /// The writer, awaited by `complete`, or by the first part that finds it ended (its
    /// error is then the part's).
    writer: Arc<tokio::sync::Mutex<Option<Writer>>>,
    shared: Arc<Shared>,
    sftp: Arc<Sftp>,
    partial: Path,
    location: Path,
}

impl Upload {
    /// Why the writer ended, as object_store's error.
    async fn ended(shared: &Shared, partial: &Path, writer: Option<Writer>) -> object_store::Error {
        let what = format!("write {}", shared.path(Some(partial)).display());
        match writer {
            Some(writer) => match writer.await {
                Ok(Err(e)) => shared.failed(&what, e).await,
                Ok(Ok(())) => generic(format!("{what}: the writer ended before the last part")),
                Err(e) => generic(format!("{what}: the writer stopped: {e}")),
            },
            None => generic(format!("{what}: the writer had already failed")),
        }
    }
}

#[async_trait::async_trait]
impl MultipartUpload for Upload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let (written, wait) = tokio::sync::oneshot::channel();
        let queued = self.parts.as_ref().is_some_and(|parts| parts.send((data, written)).is_ok());
        let (writer, shared, partial) =
            (Arc::clone(&self.writer), Arc::clone(&self.shared), self.partial.clone());
        Box::pin(async move {
            if queued && wait.await.is_ok() {
                return Ok(());
            }
            let writer = writer.lock().await.take();
            Err(Upload::ended(&shared, &partial, writer).await)
        })
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        drop(self.parts.take());
        let writer = self.writer.lock().await.take();
        let path = self.shared.path(Some(&self.partial));
        let written = match writer {
            Some(writer) => writer.await.map_err(|e| generic(format!("write {}: {e}", path.display()))),
            None => Err(generic(format!("write {}: the writer had already failed", path.display()))),
        };
        let failed = match written {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(self.shared.failed(&format!("write {}", path.display()), e).await),
            Err(e) => Some(e),
        };
        if let Some(e) = failed {
            let _ = self.sftp.fs().remove_file(&path).await;
            return Err(e);
        }
        self.shared.publish(&self.sftp, &self.partial, &self.location).await?;
        Ok(PutResult { e_tag: None, version: None, extensions: Default::default() })
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        drop(self.parts.take());
        if let Some(writer) = self.writer.lock().await.take() {
            writer.abort();
            let _ = writer.await;
        }
        let _ = self.sftp.fs().remove_file(self.shared.path(Some(&self.partial))).await;
        Ok(())
    }
}

impl Drop for Upload {
    /// An upload dropped before it completed (a cancelled job) stops its writer and
    /// removes its partial file in the background: nothing appears under its name.
    fn drop(&mut self) {
        let Some(writer) = self.writer.try_lock().ok().and_then(|mut w| w.take()) else { return };
        writer.abort();
        let (sftp, path) = (Arc::clone(&self.sftp), self.shared.path(Some(&self.partial)));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = writer.await;
                let _ = sftp.fs().remove_file(&path).await;
            });
        }
    }
}

#[cfg(test)]
mod tests;
