//! What goes wrong with a storage target: the error of a use ([`StorageError`]) and the
//! classification of a failure the check reports ([`Problem`]).

/// What can go wrong with storage targets. Every message names the target, and where it
/// was defined or what was being done.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// A target's configuration is wrong.
    #[error(transparent)]
    Config(#[from] dockhand_host::ConfigError),
    /// No target has this name.
    #[error("storage target {name:?}: no such target (configured: {})", known.join(", "))]
    Unknown {
        /// The name asked for.
        name: String,
        /// The names there are.
        known: Vec<String>,
    },
    /// A list of targets (`backup.target=near,far`) that names none, or one twice.
    #[error("backup.target {list:?}: {problem}")]
    List {
        /// The label's value.
        list: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The target is configured, but its entry is wrong.
    #[error("storage target {name:?} cannot be used: {problem}")]
    Broken {
        /// Its name.
        name: String,
        /// The configuration error.
        problem: String,
    },
    /// An operation on the target failed.
    #[error("{target}: {operation}: {problem}: {detail}")]
    Operation {
        /// The target, as displayed.
        target: String,
        /// What was being done, such as `write the probe object`.
        operation: String,
        /// What kind of failure it was.
        problem: Problem,
        /// The store's own message (it never holds a credential).
        detail: String,
    },
}

/// The kind of a storage failure, for a message that says where to look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Problem {
    /// The endpoint's name does not resolve.
    Dns,
    /// Nothing answers at the endpoint.
    Unreachable,
    /// The TLS handshake or certificate failed.
    Tls,
    /// The keys or the token were refused.
    Credentials,
    /// The ssh server's host key is not in known_hosts, or it changed.
    HostKey,
    /// The bucket (or the container) does not exist.
    Bucket,
    /// The credentials are valid but not allowed this operation.
    Permissions,
    /// The endpoint did not answer in time.
    Timeout,
    /// The object is not there.
    NotFound,
    /// The local directory cannot be used.
    Filesystem,
    /// The process has no rustls crypto provider for the S3 client's TLS: the program
    /// that embeds dockhand-jobs installs one at start (the binaries install ring's).
    CryptoProvider,
    /// Anything else.
    Other,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Dns => "DNS: the endpoint's host name does not resolve",
            Self::Unreachable => "the endpoint is unreachable",
            Self::Tls => "TLS failed (certificate or handshake)",
            Self::Credentials => "credentials refused (check the target's keys or token)",
            Self::HostKey => {
                "the server's host key is unknown or has changed (check it, then add it to the target's known_hosts)"
            }
            Self::Bucket => "the bucket or container does not exist, or its name is not valid",
            Self::Permissions => "permission denied",
            Self::Timeout => "timed out",
            Self::NotFound => "no such object",
            Self::Filesystem => "the directory cannot be used",
            Self::CryptoProvider => {
                "no rustls crypto provider is installed in this process (install one at start: \
                 rustls::crypto::ring::default_provider().install_default())"
            }
            Self::Other => "failed",
        })
    }
}

/// The error and its causes, one line.
pub(crate) fn describe(err: &object_store::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text.replace('\n', " ")
}

/// What kind of failure an object store error is, from its variant and its causes' text
/// (S3 error codes, resolver and TLS messages).
pub(crate) fn classify(err: &object_store::Error) -> Problem {
    let text = describe(err).to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| text.contains(w));
    if has(&[
        "signaturedoesnotmatch",
        "invalidaccesskeyid",
        "invalid access key",
        "signature we calculated",
        "authenticationfailed",
        "server failed to authenticate",
        "permission denied (publickey",
    ]) {
        return Problem::Credentials;
    }
    if has(&["host key verification failed"]) {
        return Problem::HostKey;
    }
    if has(&[
        "nosuchbucket",
        "invalidbucketname",
        "bucket does not exist",
        "the specified bucket",
        "containernotfound",
        "the specified container does not exist",
    ]) {
        return Problem::Bucket;
    }
    if has(&[
        "dns error",
        "failed to lookup address",
        "name or service not known",
        "no address associated",
        "could not resolve hostname",
    ]) {
        return Problem::Dns;
    }
    if has(&["certificate", "invalidcertificate", "handshake", "tls"]) {
        return Problem::Tls;
    }
    if has(&["connection refused", "error trying to connect", "tcp connect error", "connection reset"]) {
        return Problem::Unreachable;
    }
    if has(&["timed out", "timeout", "deadline"]) {
        return Problem::Timeout;
    }
    match err {
        object_store::Error::NotFound { .. } => Problem::NotFound,
        object_store::Error::PermissionDenied { .. } => Problem::Permissions,
        object_store::Error::Unauthenticated { .. } => Problem::Credentials,
        _ if has(&["accessdenied", "access denied", "forbidden"]) => Problem::Permissions,
        _ if has(&["permission denied", "read-only file system", "no space left"]) => Problem::Filesystem,
        _ => Problem::Other,
    }
}
