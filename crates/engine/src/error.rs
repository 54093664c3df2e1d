//! The one error type of this crate.

use crate::ApiVersion;

/// A cause kept behind an error, for `source()`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// `: <cause chain>` when there is a cause.
fn caused(source: &Option<BoxError>) -> String {
    source.as_deref().map(|e| format!(": {}", chain(e))).unwrap_or_default()
}

/// `; ssh said: ...` when the transport said something.
fn said(ssh: &Option<String>) -> String {
    ssh.as_deref().map(|s| format!("; ssh said: {s}")).unwrap_or_default()
}

/// Everything that can go wrong talking to an engine.
///
/// Every variant names where it happened: the endpoint, and for requests the method and
/// path. Messages are lowercase and carry no secrets. A message is whole on its own (it
/// includes its causes, as one line), and the cause is also kept: `source()` returns the
/// error that hyper, the operating system, TLS or serde gave, as hyper-util's errors do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The endpoint URL could not be parsed.
    #[error("invalid engine endpoint {input:?}: {reason}")]
    InvalidEndpoint {
        /// The text as given.
        input: String,
        /// What is wrong with it, and which forms are accepted.
        reason: String,
    },

    /// An argument to a call is unusable.
    #[error("invalid {what}: {detail}")]
    InvalidArgument {
        /// What the argument is, such as `service name "..."`.
        what: String,
        /// What is wrong with it.
        detail: String,
    },

    /// A TLS file could not be used.
    #[error("cannot use TLS file {}: {detail}{}", path.display(), caused(source))]
    TlsFile {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        detail: &'static str,
        /// The cause: the operating system's or the PEM parser's error (never for a key,
        /// whose parser could quote key material).
        #[source]
        source: Option<BoxError>,
    },

    /// The TLS settings do not make a usable configuration.
    #[error("invalid TLS settings: {detail}{}", caused(source))]
    TlsSetup {
        /// What is wrong.
        detail: String,
        /// The cause: rustls' error, where there is one.
        #[source]
        source: Option<BoxError>,
    },

    /// Something dockhand does not do (yet) for this endpoint or engine.
    #[error("not supported for {endpoint}: {what}")]
    Unsupported {
        /// The endpoint, as a URL.
        endpoint: String,
        /// What is not supported.
        what: String,
    },

    /// No connection to the engine could be opened.
    #[error("cannot connect to the engine at {endpoint}: {}{}", chain(&**source), said(ssh_said))]
    Connect {
        /// The endpoint, as a URL.
        endpoint: String,
        /// What the operating system or transport said.
        #[source]
        source: BoxError,
        /// What ssh wrote on stderr, for an ssh endpoint.
        ssh_said: Option<String>,
    },

    /// The connection failed while a request was under way.
    #[error("{method} {path} on {endpoint} failed: {}{}", chain(&**source), said(ssh_said))]
    Transport {
        /// The endpoint, as a URL.
        endpoint: String,
        /// The HTTP method.
        method: String,
        /// The request path.
        path: String,
        /// What failed.
        #[source]
        source: BoxError,
        /// What ssh wrote on stderr, for an ssh endpoint.
        ssh_said: Option<String>,
    },

    /// The engine answered with an error status.
    #[error("{method} {path} on {endpoint}: the engine answered {status}: {message}")]
    Api {
        /// The endpoint, as a URL.
        endpoint: String,
        /// The HTTP method.
        method: String,
        /// The request path.
        path: String,
        /// The HTTP status code.
        status: u16,
        /// The engine's own message (its `message` JSON field, or the body text).
        message: String,
    },

    /// A stream (exec output, logs) broke or carried an engine error.
    #[error("{context}: {detail}{}", caused(source))]
    Stream {
        /// Which request the stream answers, such as `POST /v1.41/exec/ab12/start on ...`.
        context: String,
        /// What happened.
        detail: String,
        /// The cause, when the connection broke (hyper's error).
        #[source]
        source: Option<BoxError>,
    },

    /// The engine's answer could not be understood.
    #[error("{method} {path} on {endpoint}: cannot decode the answer: {}", chain(&**source))]
    Decode {
        /// The endpoint, as a URL.
        endpoint: String,
        /// The HTTP method.
        method: String,
        /// The request path.
        path: String,
        /// What was wrong with it (serde's error, usually).
        #[source]
        source: BoxError,
    },

    /// A deadline passed.
    #[error("{method} {path} on {endpoint}: timed out after {after:?} waiting for {waiting_for}")]
    Timeout {
        /// The endpoint, as a URL.
        endpoint: String,
        /// The HTTP method.
        method: String,
        /// The request path.
        path: String,
        /// What did not arrive in time.
        waiting_for: &'static str,
        /// The deadline.
        after: std::time::Duration,
    },

    /// The engine speaks an API older than this crate supports.
    #[error(
        "the engine at {endpoint} speaks API {engine}, older than the minimum {minimum} that dockhand supports"
    )]
    UnsupportedVersion {
        /// The endpoint, as a URL.
        endpoint: String,
        /// The version the engine reported.
        engine: ApiVersion,
        /// The oldest version this crate supports.
        minimum: ApiVersion,
    },
}

impl Error {
    /// The HTTP status, when the engine answered with an error status.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// True when the engine said the object does not exist (404).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// True when the engine refused because of the object's state (409).
    pub fn is_conflict(&self) -> bool {
        self.status() == Some(409)
    }

    /// True when an update carried a stale object version: someone else changed the
    /// object first (the engine answers 500 `update out of sequence`).
    pub fn is_out_of_sequence(&self) -> bool {
        matches!(self, Self::Api { status: 500, message, .. } if message.contains("out of sequence"))
    }

    /// True when a deadline passed.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout { .. })
    }

    /// True when no connection could be opened.
    pub fn is_connect(&self) -> bool {
        matches!(self, Self::Connect { .. })
    }
}

/// Joins an error and its sources into one line, `outer: inner: innermost`, leaving out a
/// source whose text the line already holds (this crate's messages include their causes).
///
/// hyper's errors say "client error (Connect)" on the outside and keep the useful part
/// ("No such file or directory") in their sources; an operator needs both.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        let text = inner.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = inner.source();
    }
    out
}
