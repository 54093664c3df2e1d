//! Storage targets: where backups go. Named targets come from the configuration file's
//! `storage.targets.<name>` (a local directory, an S3-compatible bucket, an Azure Blob
//! Storage container, a WebDAV collection or a directory over SFTP); `local` is the
//! embedded default; the seed's `SWARM_UTILS_S3_*` variables and
//! `backup.volume-list-upload.s3.*` labels form an implicit target named `swarm-utils`.
//!
//! Credentials are read from variables or files (`*_env`, `*_file`) when the configuration
//! is loaded and kept in [`Secret`](crate::Secret)s, which never print. Every error names the target.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::storage::error::{classify, describe};

pub(crate) mod error;
pub(crate) mod kinds;
pub(crate) mod seed;
pub(crate) mod sftp;
pub(crate) mod targets;
pub(crate) mod webdav;

pub use error::{Problem, StorageError};
pub use kinds::{
    AzureCredential, AzureTarget, S3Target, SftpTarget, TargetKind, TargetSettings, WebDavTarget,
};
pub use seed::SEED_TARGET;
pub use targets::{DEFAULT_TARGET, SERVER_LOCAL_PATH, StorageTargets, default_local_path};

/// An opened target: the object store and the key prefix everything goes under.
#[derive(Clone)]
pub struct Storage {
    settings: TargetSettings,
    store: Arc<dyn ObjectStore>,
    prefix: Option<Key>,
    /// A local target's file system, to make what it writes private.
    local: Option<Arc<object_store::local::LocalFileSystem>>,
}

/// Creates `path` (and its parents) for a local target, the target's own directory 0700.
/// One that exists is left as it is (it may be a mount point an operator chose); what
/// dockhand writes below it is made private by [`Storage::make_private`].
fn private_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(path) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        other => other,
    }
}

/// The HTTP client's options and retries of a remote target at `endpoint`. reqwest's rustls
/// takes the process's crypto provider, which the program installs (the binaries install
/// ring's, as the engine's and the server's TLS use): without one, what to do.
fn http_options(endpoint: &str) -> Result<(object_store::ClientOptions, object_store::RetryConfig), String> {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        return Err(format!("the storage client for {endpoint} needs it"));
    }
    let client = object_store::ClientOptions::new()
        .with_allow_http(endpoint.starts_with("http://"))
        .with_connect_timeout(Duration::from_secs(10))
        .with_timeout(Duration::from_secs(120));
    let retry = object_store::RetryConfig {
        max_retries: 3,
        retry_timeout: Duration::from_secs(30),
        ..Default::default()
    };
    Ok((client, retry))
}

/// `text` with the target's credentials masked (an empty one, which a variable set to
/// nothing gives, masks nothing: replacing it would put `***` between every character).
fn scrub(kind: &TargetKind, text: &str) -> String {
    kind.secrets()
        .iter()
        .filter(|secret| !secret.is_empty())
        .fold(text.to_owned(), |text, secret| text.replace(secret.as_str(), "***"))
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage").field("target", &self.settings.name).finish_non_exhaustive()
    }
}

/// What `storage check` did, step by step.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckReport {
    /// The target's name.
    pub target: String,
    /// The steps that passed: write, read, list, delete.
    pub passed: Vec<String>,
}

impl Storage {
    /// Opens a target: creates a local directory, or builds the S3 client (no request yet).
    pub fn open(settings: &TargetSettings) -> Result<Self, StorageError> {
        let fail = |problem, detail: String| StorageError::Operation {
            target: settings.to_string(),
            operation: "open".into(),
            problem,
            detail,
        };
        let mut local = None;
        let (store, prefix): (Arc<dyn ObjectStore>, String) = match &settings.kind {
            TargetKind::Local { path } => {
                private_dir(path)
                    .map_err(|e| fail(Problem::Filesystem, format!("{}: {e}", path.display())))?;
                let store = Arc::new(
                    object_store::local::LocalFileSystem::new_with_prefix(path)
                        .map_err(|e| fail(Problem::Filesystem, e.to_string()))?,
                );
                local = Some(store.clone());
                (store, String::new())
            }
            TargetKind::S3(s3) => {
                let (client, retry) =
                    http_options(&s3.endpoint).map_err(|detail| fail(Problem::CryptoProvider, detail))?;
                let store = object_store::aws::AmazonS3Builder::new()
                    .with_endpoint(&s3.endpoint)
                    .with_region(&s3.region)
                    .with_bucket_name(&s3.bucket)
                    .with_access_key_id(s3.access_key_id.expose())
                    .with_secret_access_key(s3.secret_access_key.expose())
                    .with_virtual_hosted_style_request(!s3.path_style)
                    .with_client_options(client)
                    .with_retry(retry)
                    .build()
                    .map_err(|e| fail(Problem::Other, e.to_string()))?;
                (Arc::new(store), s3.prefix.clone())
            }
            TargetKind::WebDav(dav) => {
                let http = http_options(&dav.url).map_err(|detail| fail(Problem::CryptoProvider, detail))?;
                let store = webdav::WebDav::new(dav, http).map_err(|detail| fail(Problem::Other, detail))?;
                (Arc::new(store), dav.prefix.clone())
            }
            TargetKind::Sftp(sftp) => (Arc::new(sftp::SftpStore::new(sftp)), sftp.prefix.clone()),
            TargetKind::Azure(az) => {
                use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
                let (client, retry) =
                    http_options(&az.endpoint).map_err(|detail| fail(Problem::CryptoProvider, detail))?;
                let builder = MicrosoftAzureBuilder::new()
                    .with_account(&az.account)
                    .with_container_name(&az.container)
                    .with_endpoint(az.endpoint.clone())
                    .with_allow_http(az.endpoint.starts_with("http://"))
                    .with_client_options(client)
                    .with_retry(retry);
                let builder = match &az.credential {
                    AzureCredential::AccessKey(key) => builder.with_access_key(key.expose()),
                    AzureCredential::Sas(sas) => builder.with_config(AzureConfigKey::SasKey, sas.expose()),
                };
                // The builder's own message may quote a SAS token it could not read.
                let store = builder
                    .build()
                    .map_err(|e| fail(Problem::Other, scrub(&settings.kind, &e.to_string())))?;
                (Arc::new(store), az.prefix.clone())
            }
        };
        let prefix = (!prefix.is_empty()).then(|| Key::from(prefix));
        Ok(Self { settings: settings.clone(), store, prefix, local })
    }

    /// On a local target, makes the object `key` readable by its owner alone (0600), and
    /// the directories that lead to it 0700 (R3-16): archives hold whole volumes. Nothing
    /// to do on S3.
    pub(crate) fn make_private(&self, key: &Key) -> Result<(), StorageError> {
        use std::os::unix::fs::PermissionsExt;
        let (Some(local), TargetKind::Local { path: root }) = (&self.local, &self.settings.kind) else {
            return Ok(());
        };
        let fail = |detail: String| StorageError::Operation {
            target: self.settings.to_string(),
            operation: format!("make {key} private"),
            problem: Problem::Filesystem,
            detail,
        };
        let file = local.path_to_filesystem(key).map_err(|e| fail(e.to_string()))?;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| fail(format!("{}: {e}", file.display())))?;
        let mut dir = file.parent();
        while let Some(d) = dir.filter(|d| d.starts_with(root) && *d != root.as_path()) {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| fail(format!("{}: {e}", d.display())))?;
            dir = d.parent();
        }
        Ok(())
    }

    /// The target's settings.
    pub fn settings(&self) -> &TargetSettings {
        &self.settings
    }

    /// The object store, for streaming reads and writes.
    pub(crate) fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The full key of `relative` (`a/b/c`), under the target's prefix.
    pub(crate) fn key(&self, relative: &str) -> Key {
        let mut parts: Vec<String> =
            self.prefix.iter().flat_map(|p| p.parts().map(|x| x.as_ref().to_owned())).collect();
        parts.extend(relative.split('/').filter(|p| !p.is_empty()).map(str::to_owned));
        Key::from_iter(parts)
    }

    /// `key` relative to the target's prefix.
    pub(crate) fn relative(&self, key: &Key) -> String {
        let full = key.as_ref();
        match &self.prefix {
            Some(prefix) => {
                full.strip_prefix(prefix.as_ref()).unwrap_or(full).trim_start_matches('/').to_owned()
            }
            None => full.to_owned(),
        }
    }

    /// An error for `operation` on this target, classified; a credential of the target's
    /// that the store's message quotes (a SAS token in a URL) is masked.
    pub(crate) fn error(&self, operation: impl Into<String>, err: &object_store::Error) -> StorageError {
        StorageError::Operation {
            target: self.settings.to_string(),
            operation: operation.into(),
            problem: classify(err),
            detail: scrub(&self.settings.kind, &describe(err)),
        }
    }

    /// Every object under `relative` (a directory-like prefix), oldest key first.
    pub(crate) async fn list(&self, relative: &str) -> Result<Vec<object_store::ObjectMeta>, StorageError> {
        use futures_util::TryStreamExt;
        let prefix = self.key(relative);
        let mut objects: Vec<_> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| self.error(format!("list {prefix}"), &e))?;
        objects.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(objects)
    }

    /// The names of the objects under `relative` (a directory-like prefix), relative to the
    /// target's prefix, in name order.
    pub async fn objects(&self, relative: &str) -> Result<Vec<String>, StorageError> {
        Ok(self.list(relative).await?.iter().map(|o| self.relative(&o.location)).collect())
    }

    /// Writes `bytes` at `relative` in one request (small objects: a manifest, a test's).
    pub async fn put(&self, relative: &str, bytes: Vec<u8>) -> Result<(), StorageError> {
        use object_store::ObjectStoreExt;
        let key = self.key(relative);
        self.store.put(&key, bytes.into()).await.map(drop).map_err(|e| self.error(format!("write {key}"), &e))
    }

    /// Deletes `key`; one already gone counts as deleted.
    pub(crate) async fn delete(&self, key: &Key) -> Result<(), StorageError> {
        match self.store.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error(format!("delete {key}"), &e)),
        }
    }

    /// Writes, reads back, lists and deletes a probe object; the first step that fails is
    /// named with what kind of failure it was.
    pub async fn check(&self) -> Result<CheckReport, StorageError> {
        let nonce = crate::job::job_id(std::time::SystemTime::now());
        let key = self.key(&format!(".dockhand-probe/{nonce}"));
        let body = bytes::Bytes::from(format!("dockhand storage probe {nonce}\n"));
        let mut passed = Vec::new();
        self.store
            .put(&key, body.clone().into())
            .await
            .map_err(|e| self.error(format!("write the probe object {key}"), &e))?;
        passed.push("write".to_owned());
        let read = async {
            let got = self.store.get(&key).await?.bytes().await?;
            Ok::<_, object_store::Error>(got)
        };
        let got = read.await.map_err(|e| self.error(format!("read the probe object {key}"), &e))?;
        if got != body {
            return Err(StorageError::Operation {
                target: self.settings.to_string(),
                operation: format!("read the probe object {key}"),
                problem: Problem::Other,
                detail: format!("read {} bytes that differ from the {} written", got.len(), body.len()),
            });
        }
        passed.push("read".to_owned());
        let listed = self.list(".dockhand-probe").await?;
        if !listed.iter().any(|o| o.location == key) {
            return Err(StorageError::Operation {
                target: self.settings.to_string(),
                operation: format!("list {}", self.key(".dockhand-probe")),
                problem: Problem::Other,
                detail: format!("the probe object {key} was written but is not listed"),
            });
        }
        passed.push("list".to_owned());
        self.store
            .delete(&key)
            .await
            .map_err(|e| self.error(format!("delete the probe object {key}"), &e))?;
        passed.push("delete".to_owned());
        Ok(CheckReport { target: self.settings.name.clone(), passed })
    }
}

#[cfg(test)]
mod tests;
