//! What a validated storage target is ([`TargetSettings`]): its kind (a local directory, an
//! S3 bucket, an Azure Blob Storage container, a WebDAV collection, a directory over SFTP),
//! where it writes, and the credentials it holds, which never print.

use std::path::PathBuf;

use crate::secret::Secret;

/// One storage target, validated, with its credentials read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TargetSettings {
    /// Its name.
    pub name: String,
    /// Where it was defined: a file, `the built-in defaults` or `the environment`.
    pub origin: String,
    /// Where the objects go.
    pub kind: TargetKind,
    /// zstd level of the archives (`compression_level`, default 3).
    pub zstd_level: i32,
    /// Days a backup is kept (`retention_days`); `None` keeps them all.
    pub retention_days: Option<u32>,
    /// Backups per volume never deleted by retention, the newest (`keep_last`, default 1).
    pub keep_last: u32,
    /// age recipients the archives are encrypted to (`encryption.recipients`).
    pub recipients: Vec<String>,
    /// The age identity file restore decrypts with (`encryption.identity_file`).
    pub identity_file: Option<PathBuf>,
}

/// A local directory, an S3 bucket, an Azure Blob Storage container, a WebDAV collection or
/// a directory over SFTP.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TargetKind {
    /// A directory on the machine dockhand runs on.
    Local {
        /// The directory.
        path: PathBuf,
    },
    /// An S3-compatible bucket.
    S3(S3Target),
    /// An Azure Blob Storage container.
    Azure(AzureTarget),
    /// A collection on a WebDAV server.
    WebDav(WebDavTarget),
    /// A directory on an ssh server, over its SFTP subsystem.
    Sftp(SftpTarget),
}

impl TargetKind {
    /// The `type` of the configuration entry: `local`, `s3`, `azure`, `webdav` or `sftp`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Local { .. } => "local",
            Self::S3(_) => "s3",
            Self::Azure(_) => "azure",
            Self::WebDav(_) => "webdav",
            Self::Sftp(_) => "sftp",
        }
    }

    /// Where the objects go, without any credential: a directory, or an endpoint with its
    /// bucket or container and prefix.
    pub fn location(&self) -> String {
        let under = |prefix: &str| if prefix.is_empty() { String::new() } else { format!("/{prefix}") };
        match self {
            Self::Local { path } => path.display().to_string(),
            Self::S3(s3) => format!("{}/{}{}", s3.endpoint, s3.bucket, under(&s3.prefix)),
            Self::Azure(az) => format!("{}/{}{}", az.endpoint, az.container, under(&az.prefix)),
            Self::WebDav(dav) => format!("{}{}", dav.url, under(&dav.prefix)),
            Self::Sftp(sftp) => format!("{}{}", sftp.url, under(&sftp.prefix)),
        }
    }

    /// The credentials it holds, for the redactor.
    pub(crate) fn secrets(&self) -> Vec<String> {
        match self {
            Self::Local { .. } => Vec::new(),
            Self::S3(s3) => {
                vec![s3.secret_access_key.expose().to_owned(), s3.access_key_id.expose().to_owned()]
            }
            Self::Azure(az) => match &az.credential {
                AzureCredential::AccessKey(key) => vec![key.expose().to_owned()],
                AzureCredential::Sas(sas) => sas_secrets(sas.expose()),
            },
            Self::WebDav(dav) => vec![dav.password.expose().to_owned()],
            // The key stays in its file, which dockhand never reads: ssh does.
            Self::Sftp(_) => Vec::new(),
        }
    }
}

/// A SAS token's secrets: the whole token, and its signature as written and decoded (a
/// request's URL carries the token, so an error that quotes the URL carries the signature).
pub(crate) fn sas_secrets(sas: &str) -> Vec<String> {
    let mut out = vec![sas.to_owned()];
    for value in sas.split('&').filter_map(|pair| pair.strip_prefix("sig=")) {
        out.push(value.to_owned());
        let decoded = value.replace("%2B", "+").replace("%2F", "/").replace("%3D", "=");
        let decoded = decoded.replace("%2b", "+").replace("%2f", "/").replace("%3d", "=");
        out.push(decoded);
    }
    out.retain(|s| !s.is_empty());
    out.dedup();
    out
}

/// An Azure Blob Storage container and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AzureTarget {
    /// The account's URL: `https://<account>.blob.core.windows.net` unless `endpoint` says
    /// otherwise (an emulator's or a sovereign cloud's, path style:
    /// `http://127.0.0.1:10000/<account>`).
    pub endpoint: String,
    /// The storage account.
    pub account: String,
    /// The container (it must exist).
    pub container: String,
    /// A name prefix inside the container (no leading or trailing `/`).
    pub prefix: String,
    /// The account key or a SAS token.
    pub credential: AzureCredential,
}

/// A collection on a WebDAV server and how to sign in to it (HTTP basic authentication).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WebDavTarget {
    /// The collection's URL, `https://host[:port]/path` (no trailing `/`, no credentials).
    pub url: String,
    /// The user name.
    pub username: String,
    /// The password.
    pub password: Secret,
    /// A PEM file of the CA that signs the server's certificate, when it is not one the
    /// system trusts.
    pub ca_file: Option<PathBuf>,
    /// A path prefix inside the collection (no leading or trailing `/`).
    pub prefix: String,
}

/// A directory on an ssh server, reached through the system `ssh` client and the server's
/// SFTP subsystem; authentication is ssh's (a key file, an agent, `~/.ssh/config`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SftpTarget {
    /// The URL as written, `sftp://[user@]host[:port][/path]` (no trailing `/`).
    pub url: String,
    /// The ssh user, host and port.
    pub endpoint: dockhand_engine::SshEndpoint,
    /// The directory: absolute (`/srv/backups`), or relative to the login directory
    /// (`/~/backups` in the URL, `backups` here); empty is the login directory itself.
    pub path: String,
    /// The private key ssh signs in with (`ssh -i`), else ssh's own choice.
    pub identity_file: Option<PathBuf>,
    /// The known_hosts file the server's key is checked against, else ssh's own.
    pub known_hosts: Option<PathBuf>,
    /// A path prefix inside the directory (no leading or trailing `/`).
    pub prefix: String,
}

/// How dockhand authenticates to Azure Blob Storage.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AzureCredential {
    /// The storage account's key (Shared Key signing).
    AccessKey(Secret),
    /// A shared access signature: the token's query string, without a leading `?`.
    Sas(Secret),
}

/// An S3-compatible bucket and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct S3Target {
    /// `http(s)://host[:port]`.
    pub endpoint: String,
    /// The region (default `us-east-1`).
    pub region: String,
    /// The bucket.
    pub bucket: String,
    /// A key prefix inside the bucket (no leading or trailing `/`).
    pub prefix: String,
    /// Path-style requests (`endpoint/bucket/key`), the default; virtual-hosted when false.
    pub path_style: bool,
    /// The access key id.
    pub access_key_id: Secret,
    /// The secret access key.
    pub secret_access_key: Secret,
}

impl std::fmt::Display for TargetSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            TargetKind::Local { path } => {
                write!(f, "storage target {:?} (local {})", self.name, path.display())
            }
            TargetKind::S3(s3) => {
                write!(f, "storage target {:?} (s3 {}, bucket {}", self.name, s3.endpoint, s3.bucket)?;
                if !s3.prefix.is_empty() {
                    write!(f, ", prefix {}", s3.prefix)?;
                }
                f.write_str(")")
            }
            TargetKind::WebDav(dav) => {
                write!(f, "storage target {:?} (webdav {}", self.name, dav.url)?;
                if !dav.prefix.is_empty() {
                    write!(f, ", prefix {}", dav.prefix)?;
                }
                f.write_str(")")
            }
            TargetKind::Sftp(sftp) => {
                write!(f, "storage target {:?} (sftp {}", self.name, sftp.url)?;
                if !sftp.prefix.is_empty() {
                    write!(f, ", prefix {}", sftp.prefix)?;
                }
                f.write_str(")")
            }
            TargetKind::Azure(az) => {
                write!(
                    f,
                    "storage target {:?} (azure {}, container {}",
                    self.name, az.endpoint, az.container
                )?;
                if !az.prefix.is_empty() {
                    write!(f, ", prefix {}", az.prefix)?;
                }
                f.write_str(")")
            }
        }
    }
}

pub(crate) fn check_endpoint(endpoint: &str) -> Result<(), String> {
    let rest = endpoint
        .strip_prefix("https://")
        .or_else(|| endpoint.strip_prefix("http://"))
        .ok_or_else(|| format!("{endpoint:?} is not an http:// or https:// URL"))?;
    if rest.is_empty() || rest.starts_with('/') || rest.contains('@') {
        return Err(format!("{endpoint:?} has no host (credentials do not go in the URL)"));
    }
    Ok(())
}

/// An `sftp://[user@]host[:port][/path]` URL: its ssh endpoint and its directory (`/~/x`
/// is `x`, relative to the login directory).
pub(crate) fn parse_sftp_url(url: &str) -> Result<(dockhand_engine::SshEndpoint, String), String> {
    let shown = dockhand_policy::redact_url(url);
    let rest = url.strip_prefix("sftp://").ok_or_else(|| format!("{shown:?} is not an sftp:// URL"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.is_empty() {
        return Err(format!("{shown:?} has no host"));
    }
    let parsed = format!("ssh://{authority}").parse::<dockhand_engine::Endpoint>().map_err(|e| {
        let why = match e {
            dockhand_engine::Error::InvalidEndpoint { reason, .. } => {
                reason.split("; accepted forms").next().unwrap_or_default().replace("ssh URL", "sftp URL")
            }
            other => other.to_string(),
        };
        format!("{shown:?}: {why}")
    })?;
    let dockhand_engine::Endpoint::Ssh(endpoint) = parsed else {
        return Err(format!("{shown:?} is not an sftp:// URL"));
    };
    let path = path.trim_end_matches('/');
    let path = match path.strip_prefix("/~") {
        Some(home) if home.is_empty() || home.starts_with('/') => home.trim_start_matches('/').to_owned(),
        _ => path.to_owned(),
    };
    if path.split('/').any(|part| part == "..") {
        return Err(format!("{shown:?}: the path must not climb with '..'"));
    }
    Ok((endpoint, path))
}
