//! WebDAV targets. object_store's HTTP store does the reads, small writes, deletes, copies
//! and one-level listings (PROPFIND, `Depth: 1`); what it falls short on is done here:
//!
//! - **Streamed writes.** Its multipart upload is not implemented, and its `put` holds the
//!   whole object in memory. An archive is PUT here as one streamed request, part by part
//!   as the archiver makes them, under a temporary name in the collection's
//!   `.dockhand-partial/`, then MOVEd onto its name: it appears only when complete, and a
//!   failed or cancelled upload leaves no object under its name.
//! - **Listings of a whole tree.** It lists with `Depth: infinity`, which Apache's
//!   `mod_dav` and most servers refuse by default; here a tree is walked one level at a
//!   time.
//! - **A collection below the server's root.** It answers listed names with the whole URL
//!   path (`dav/a/b` for `https://host/dav`); here they are made relative to the
//!   collection again.
//!
//! Basic authentication is a default header of both clients; the URL carries no password.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::http::{HttpBuilder, HttpStore};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, UploadPart,
};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};

use crate::storage::kinds::WebDavTarget;

/// Where uploads are written before they are moved onto their name.
const PARTIAL: &str = ".dockhand-partial";

/// A WebDAV collection as an object store.
#[derive(Debug, Clone)]
pub(crate) struct WebDav {
    inner: Arc<HttpStore>,
    shared: Arc<Shared>,
    /// The collection's URL path, as the HTTP store's listings begin with it.
    base_path: Arc<Path>,
}

/// What the streamed uploads need: their client (which carries the sign-in as a default
/// header) and the collection's URL.
#[derive(Debug)]
struct Shared {
    client: reqwest::Client,
    base: reqwest::Url,
}

impl std::fmt::Display for WebDav {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WebDAV({})", self.shared.base)
    }
}

/// An error of this store, as object_store carries it.
fn generic(detail: impl Into<String>) -> object_store::Error {
    object_store::Error::Generic { store: "WebDAV", source: detail.into().into() }
}

impl WebDav {
    /// The store of `target`; `http` is the client options and retries every remote target
    /// shares.
    pub(crate) fn new(
        target: &WebDavTarget,
        (options, retry): (object_store::ClientOptions, object_store::RetryConfig),
    ) -> Result<Self, String> {
        use base64::Engine as _;
        let login = format!("{}:{}", target.username, target.password.expose());
        let mut auth = HeaderValue::from_str(&format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(login)
        ))
        .map_err(|_| "the username or password holds a character a header cannot carry".to_owned())?;
        auth.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, auth);
        let mut options = options.with_default_headers(headers.clone());
        if let Some(path) = &target.ca_file {
            let pem = std::fs::read(path).map_err(|e| format!("ca_file {}: {e}", path.display()))?;
            let certs = object_store::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
            for cert in certs {
                options = options.with_root_certificate(cert);
            }
        }
        let inner = HttpBuilder::new()
            .with_url(&target.url)
            .with_client_options(options)
            .with_retry(retry)
            .build()
            .map_err(|e| e.to_string())?;
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(crate::http::tls_config(target.ca_file.as_deref())?)
            .default_headers(headers)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| e.to_string())?;
        let base = format!("{}/", target.url);
        let base = reqwest::Url::parse(&base).map_err(|e| format!("{base}: {e}"))?;
        let base_path = Path::from_url_path(base.path()).map_err(|e| format!("{base}: {e}"))?;
        Ok(Self {
            inner: Arc::new(inner),
            shared: Arc::new(Shared { client, base }),
            base_path: Arc::new(base_path),
        })
    }
}

/// `listed` (a name as the HTTP store lists it, from the server's root) relative to the
/// collection at `base`.
fn relative(base: &Path, listed: Path) -> Path {
    let stripped = listed.prefix_match(base).map(Path::from_iter);
    stripped.unwrap_or(listed)
}

/// One level under `prefix`: its objects and its collections, named relative to the
/// collection at `base`, without `prefix` itself.
async fn one_level(
    inner: &HttpStore,
    base: &Path,
    prefix: Option<&Path>,
) -> object_store::Result<ListResult> {
    let mut listed = inner.list_with_delimiter(prefix).await?;
    let not_itself = |p: &Path| prefix.is_none_or(|d| p != d) && !p.as_ref().is_empty();
    listed.objects = listed
        .objects
        .into_iter()
        .map(|mut o| {
            o.location = relative(base, o.location);
            o
        })
        .filter(|o| not_itself(&o.location))
        .collect();
    listed.common_prefixes =
        listed.common_prefixes.into_iter().map(|p| relative(base, p)).filter(|p| not_itself(p)).collect();
    Ok(listed)
}

impl Shared {
    /// The URL of `location` (each segment encoded), or of a collection with a trailing `/`.
    fn url(&self, location: &Path, collection: bool) -> reqwest::Url {
        let mut url = self.base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty();
            segments.extend(location.parts().map(|p| p.as_ref().to_owned()));
            if collection {
                segments.push("");
            }
        }
        url
    }

    /// Sends `request` (doing `what`); the answer when its status is one of `ok`, else the
    /// error that status is, named with `what`.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        what: &str,
        ok: &[u16],
    ) -> Result<reqwest::Response, object_store::Error> {
        let response =
            request.send().await.map_err(|e| generic(format!("{what}: {}", dockhand_engine::chain(&e))))?;
        let status = response.status();
        if ok.contains(&status.as_u16()) {
            return Ok(response);
        }
        let source = format!("{what}: the server answered {status}").into();
        Err(match status.as_u16() {
            401 => object_store::Error::Unauthenticated { path: what.to_owned(), source },
            403 => object_store::Error::PermissionDenied { path: what.to_owned(), source },
            404 => object_store::Error::NotFound { path: what.to_owned(), source },
            _ => object_store::Error::Generic { store: "WebDAV", source },
        })
    }

    /// Creates the collections that lead to `location` (each one that exists answers 405).
    async fn collections(&self, location: &Path) -> Result<(), object_store::Error> {
        let parts: Vec<_> = location.parts().collect();
        let mkcol = reqwest::Method::from_bytes(b"MKCOL").map_err(|e| generic(e.to_string()))?;
        for end in 1..parts.len() {
            let dir = Path::from_iter(parts[..end].iter().cloned());
            let url = self.url(&dir, true);
            self.send(
                self.client.request(mkcol.clone(), url),
                &format!("create the collection {dir}"),
                &[201, 405],
            )
            .await?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl ObjectStore for WebDav {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        _opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let nonce = crate::job::job_id(std::time::SystemTime::now());
        let partial = Path::from_iter([PARTIAL.to_owned(), nonce.replace([':', '/'], "-")]);
        self.shared.collections(&partial).await?;
        self.shared.collections(location).await?;
        let (parts, queue) =
            tokio::sync::mpsc::unbounded_channel::<(PutPayload, tokio::sync::oneshot::Sender<()>)>();
        // The body: each part's chunks in order. A part's future resolves when the body
        // takes the part off the queue, so memory holds the part being sent and at most the
        // parts the writer keeps in flight.
        let body = futures_util::stream::unfold(queue, |mut queue| async move {
            let (payload, taken) = queue.recv().await?;
            let chunks: Vec<Bytes> = payload.into_iter().collect();
            let _ = taken.send(());
            Some((futures_util::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>)), queue))
        })
        .flatten();
        let put =
            self.shared.client.put(self.shared.url(&partial, false)).body(reqwest::Body::wrap_stream(body));
        let shared = Arc::clone(&self.shared);
        let what = format!("write {partial}");
        let request = tokio::spawn(async move { shared.send(put, &what, &[200, 201, 204]).await.map(drop) });
        Ok(Box::new(Upload {
            parts: Some(parts),
            request: Arc::new(tokio::sync::Mutex::new(Some(request))),
            shared: Arc::clone(&self.shared),
            partial,
            location: location.clone(),
        }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let (inner, base) = (Arc::clone(&self.inner), Arc::clone(&self.base_path));
        let start = prefix.cloned();
        futures_util::stream::once(async move {
            let mut found = Vec::new();
            let mut todo = VecDeque::from([start]);
            while let Some(dir) = todo.pop_front() {
                let listed = one_level(&inner, &base, dir.as_ref()).await?;
                found.extend(listed.objects);
                todo.extend(listed.common_prefixes.into_iter().filter(|p| p.as_ref() != PARTIAL).map(Some));
            }
            Ok::<_, object_store::Error>(futures_util::stream::iter(found.into_iter().map(Ok)))
        })
        .try_flatten()
        .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        one_level(&self.inner, &self.base_path, prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

/// The streamed PUT's task.
type Request = tokio::task::JoinHandle<Result<(), object_store::Error>>;

/// Why `request` ended: its own error, or that it stopped.
async fn ended(request: Option<Request>) -> object_store::Error {
    match request {
        Some(request) => match request.await {
            Ok(Err(e)) => e,
            Ok(Ok(())) => generic("the upload's request ended before its last part"),
            Err(e) => generic(format!("the upload stopped: {e}")),
        },
        None => generic("the upload's request had already failed"),
    }
}

/// One streamed upload: its parts go to the PUT of the partial object as they come;
/// completing it moves that object onto its name.
#[derive(Debug)]
struct Upload {
    parts: Option<tokio::sync::mpsc::UnboundedSender<(PutPayload, tokio::sync::oneshot::Sender<()>)>>,
    /// The PUT, awaited by `complete`, or by the first part that finds it ended (its error
    /// is then the part's).
    request: Arc<tokio::sync::Mutex<Option<Request>>>,
    shared: Arc<Shared>,
    partial: Path,
    location: Path,
}

#[async_trait::async_trait]
impl MultipartUpload for Upload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let (taken, wait) = tokio::sync::oneshot::channel();
        let queued = self.parts.as_ref().is_some_and(|parts| parts.send((data, taken)).is_ok());
        let request = Arc::clone(&self.request);
        Box::pin(async move {
            if queued && wait.await.is_ok() {
                return Ok(());
            }
            let request = request.lock().await.take();
            Err(ended(request).await)
        })
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        drop(self.parts.take());
        let request = self.request.lock().await.take();
        match request {
            Some(request) => request.await.map_err(|e| generic(format!("the upload stopped: {e}")))??,
            None => return Err(ended(None).await),
        }
        let shared = &self.shared;
        let destination = shared.url(&self.location, false);
        let method = reqwest::Method::from_bytes(b"MOVE").map_err(|e| generic(e.to_string()))?;
        let moved = shared
            .client
            .request(method, shared.url(&self.partial, false))
            .header("Destination", destination.as_str())
            .header("Overwrite", "T");
        let result =
            shared.send(moved, &format!("move {} to {}", self.partial, self.location), &[201, 204]).await;
        if result.is_err() {
            let _ = shared.client.delete(shared.url(&self.partial, false)).send().await;
        }
        result.map(|_| PutResult { e_tag: None, version: None, extensions: Default::default() })
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        drop(self.parts.take());
        if let Some(request) = self.request.lock().await.take() {
            request.abort();
        }
        let _ = self.shared.client.delete(self.shared.url(&self.partial, false)).send().await;
        Ok(())
    }
}

impl Drop for Upload {
    /// An upload dropped before it completed (a cancelled job) stops its request mid-body,
    /// which the server discards: the partial object is never moved onto its name.
    fn drop(&mut self) {
        if let Some(request) = self.request.try_lock().ok().and_then(|mut r| r.take()) {
            request.abort();
        }
    }
}
