//! Which engine to talk to, decided from flags, environment and docker contexts exactly as
//! the docker CLI decides it.
//!
//! Precedence: `--host` > `DOCKER_HOST` > `DOCKER_CONTEXT` > `currentContext` in
//! `config.json` > `unix:///var/run/docker.sock`. `--context` is as explicit as `--host`
//! and conflicts with it. The environment is an input: front-ends read it, this module
//! only reads the docker config files it points to. It is the one place that decides which
//! engine a flag, a variable or a context names; [`crate::HostRegistry::connect_to`] is
//! the entry point the CLI, the jobs and the server share.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use dockhand_engine::{ApiVersion, Client, ClientBuilder, Endpoint, ParseApiVersionError, TlsSettings};

/// What the user said on the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectOptions {
    /// `-H/--host`.
    pub host: Option<String>,
    /// `--context`.
    pub context: Option<String>,
    /// `--tls`: TLS without verifying the engine.
    pub tls: bool,
    /// `--tlsverify`: TLS, verifying the engine against the CA.
    pub tls_verify: bool,
    /// `--tlscacert`.
    pub tls_ca_cert: Option<PathBuf>,
    /// `--tlscert`.
    pub tls_cert: Option<PathBuf>,
    /// `--tlskey`.
    pub tls_key: Option<PathBuf>,
}

/// The process environment, as handed in by a front-end.
///
/// ```
/// use dockhand_host::Environment;
///
/// let env = Environment::from_vars([("DOCKER_HOST", "tcp://10.0.0.5:2375"), ("HOME", "/home/ops")]);
/// assert_eq!(env.get("DOCKER_HOST"), Some("tcp://10.0.0.5:2375"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    vars: HashMap<String, String>,
}

impl Environment {
    /// From `(name, value)` pairs, such as `std::env::vars()`.
    pub fn from_vars<K: Into<String>, V: Into<String>>(vars: impl IntoIterator<Item = (K, V)>) -> Self {
        Self { vars: vars.into_iter().map(|(k, v)| (k.into(), v.into())).collect() }
    }

    /// A variable's value; an empty value counts as unset, as in the docker CLI.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// Every variable whose name starts with `prefix` (all of them for `""`), in name
    /// order, empty values included.
    pub fn vars_with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        let mut vars: Vec<(&str, &str)> = self
            .vars
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        vars.sort_unstable();
        vars.into_iter()
    }

    /// The docker config directory: `DOCKER_CONFIG`, else `~/.docker`.
    pub fn docker_config_dir(&self) -> Option<PathBuf> {
        match self.get("DOCKER_CONFIG") {
            Some(dir) => Some(PathBuf::from(dir)),
            None => self.get("HOME").map(|home| Path::new(home).join(".docker")),
        }
    }
}

/// Where the chosen endpoint came from, for messages and `--verbose` output.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EngineOrigin {
    /// `-H/--host`.
    HostFlag,
    /// `DOCKER_HOST`.
    DockerHost,
    /// A docker context, with how it was chosen.
    Context {
        /// The context's name.
        name: String,
        /// `--context`, `DOCKER_CONTEXT` or `currentContext in <config.json>`.
        chosen_by: String,
    },
    /// Nothing was configured: the local socket.
    Default,
}

impl fmt::Display for EngineOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HostFlag => f.write_str("--host"),
            Self::DockerHost => f.write_str("DOCKER_HOST"),
            Self::Context { name, chosen_by } => write!(f, "context {name:?} (from {chosen_by})"),
            Self::Default => f.write_str("the default socket"),
        }
    }
}

/// The outcome: an endpoint, its TLS settings, a pinned API version, and their origin.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Resolved {
    /// The engine's address.
    pub endpoint: Endpoint,
    /// TLS settings, when TLS is on.
    pub tls: Option<TlsSettings>,
    /// `DOCKER_API_VERSION`: speak this version, without negotiation.
    pub api_version: Option<ApiVersion>,
    /// Where the endpoint came from.
    pub origin: EngineOrigin,
}

impl Resolved {
    /// A client for this engine.
    pub fn client(&self) -> Result<Client, dockhand_engine::Error> {
        self.builder().build()
    }

    /// A client builder for this engine, for further settings such as timeouts.
    pub fn builder(&self) -> ClientBuilder {
        let mut builder = Client::builder(self.endpoint.clone());
        if let Some(tls) = &self.tls {
            builder = builder.tls(tls.clone());
        }
        if let Some(version) = self.api_version {
            builder = builder.api_version(version);
        }
        builder
    }
}

/// Why a flag, a variable or a docker context does not name a usable engine. Each message
/// starts with where the setting came from.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// `--host` and `--context` were both given.
    #[error("--host and --context: conflicting options: give one of them, not both")]
    HostAndContext,
    /// `DOCKER_API_VERSION` is not a version.
    #[error("DOCKER_API_VERSION: {0}")]
    ApiVersion(#[source] ParseApiVersionError),
    /// The URL from a flag, a variable or a context does not parse.
    #[error("{origin}: {source}")]
    Endpoint {
        /// `--host`, `DOCKER_HOST` or the context.
        origin: String,
        /// The parser's error.
        #[source]
        source: Box<dockhand_engine::Error>,
    },
    /// The docker CLI's `config.json` cannot be read.
    #[error("{}: cannot read it: {source}", path.display())]
    ReadConfig {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A docker config file is not the JSON it should be.
    #[error("{}: not valid JSON: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// A context was named, but neither `DOCKER_CONFIG` nor `HOME` says where contexts are.
    #[error("{origin}: neither DOCKER_CONFIG nor HOME is set, so contexts cannot be found")]
    NoConfigDir {
        /// The context and how it was chosen.
        origin: String,
    },
    /// A context's `meta.json` cannot be read.
    #[error("{origin}: cannot read {} (does the context exist?): {source}", path.display())]
    ReadContext {
        /// The context and how it was chosen.
        origin: String,
        /// Its `meta.json`.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A context's `meta.json` is not valid.
    #[error("{origin}: {} is not valid: {source}", path.display())]
    ContextJson {
        /// The context and how it was chosen.
        origin: String,
        /// Its `meta.json`.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// A context has no docker endpoint.
    #[error("{origin}: {} has no docker endpoint", path.display())]
    NoDockerEndpoint {
        /// The context and how it was chosen.
        origin: String,
        /// Its `meta.json`.
        path: PathBuf,
    },
}

/// Decides which engine to talk to.
///
/// ```
/// use dockhand_host::{ConnectOptions, Environment, resolve};
///
/// let env = Environment::from_vars([("DOCKER_HOST", "tcp://10.0.0.5:2375")]);
/// let mut opts = ConnectOptions::default();
/// assert_eq!(resolve(&opts, &env).unwrap().endpoint.to_string(), "tcp://10.0.0.5:2375");
///
/// opts.host = Some("unix:///run/docker.sock".into());
/// assert_eq!(resolve(&opts, &env).unwrap().endpoint.to_string(), "unix:///run/docker.sock");
/// ```
pub fn resolve(opts: &ConnectOptions, env: &Environment) -> Result<Resolved, ResolveError> {
    if opts.host.is_some() && opts.context.is_some() {
        return Err(ResolveError::HostAndContext);
    }
    let api_version = match env.get("DOCKER_API_VERSION") {
        Some(v) => Some(v.parse::<ApiVersion>().map_err(ResolveError::ApiVersion)?),
        None => None,
    };

    let context = match (&opts.context, &opts.host, env.get("DOCKER_HOST")) {
        (Some(name), _, _) => Some((name.clone(), "--context".to_owned())),
        (None, Some(_), _) | (None, None, Some(_)) => None,
        (None, None, None) => match env.get("DOCKER_CONTEXT") {
            Some(name) => Some((name.to_owned(), "DOCKER_CONTEXT".to_owned())),
            None => current_context(env)?,
        },
    };

    let (endpoint, tls, origin) = match context {
        Some((name, chosen_by)) if name != "default" => {
            let (endpoint, tls) = load_context(&name, &chosen_by, env)?;
            (endpoint, tls, EngineOrigin::Context { name, chosen_by })
        }
        _ => {
            let (text, origin) = match (&opts.host, env.get("DOCKER_HOST")) {
                (Some(host), _) => (Some(host.as_str()), EngineOrigin::HostFlag),
                (None, Some(host)) => (Some(host), EngineOrigin::DockerHost),
                (None, None) => (None, EngineOrigin::Default),
            };
            let endpoint = match text {
                Some(text) => text.parse().map_err(|e| ResolveError::Endpoint {
                    origin: origin.to_string(),
                    source: Box::new(e),
                })?,
                None => Endpoint::default(),
            };
            (endpoint, tls_from_flags_and_env(opts, env), origin)
        }
    };
    Ok(Resolved { endpoint, tls, api_version, origin })
}

/// `--tls`/`--tlsverify` and `DOCKER_TLS`/`DOCKER_TLS_VERIFY` (any non-empty value), with
/// files from the flags or `DOCKER_CERT_PATH` (default: the docker config directory).
fn tls_from_flags_and_env(opts: &ConnectOptions, env: &Environment) -> Option<TlsSettings> {
    let verify = opts.tls_verify || env.get("DOCKER_TLS_VERIFY").is_some();
    let explicit_files = opts.tls_ca_cert.is_some() || opts.tls_cert.is_some() || opts.tls_key.is_some();
    if !(verify || opts.tls || env.get("DOCKER_TLS").is_some() || explicit_files) {
        return None;
    }
    let cert_dir = env.get("DOCKER_CERT_PATH").map(PathBuf::from).or_else(|| env.docker_config_dir());
    let default = |file: &str| cert_dir.as_ref().map(|d| d.join(file));
    let settings = if verify {
        // A missing CA surfaces when the client is built, naming the file.
        match opts.tls_ca_cert.clone().or_else(|| default("ca.pem")) {
            Some(ca) => TlsSettings::verified(ca),
            None => return Some(TlsSettings::verified("ca.pem")),
        }
    } else {
        TlsSettings::unverified()
    };
    // Explicit client files are always used; the default ones only when both exist.
    let cert = opts.tls_cert.clone().or_else(|| default("cert.pem").filter(|p| p.exists()));
    let key = opts.tls_key.clone().or_else(|| default("key.pem").filter(|p| p.exists()));
    Some(match (cert, key) {
        (Some(cert), Some(key)) => settings.with_client_identity(cert, key),
        _ => settings,
    })
}

#[derive(Deserialize)]
struct ConfigFile {
    #[serde(rename = "currentContext", default)]
    current_context: Option<String>,
}

/// `currentContext` from `config.json`, if the file exists and names one.
fn current_context(env: &Environment) -> Result<Option<(String, String)>, ResolveError> {
    let Some(dir) = env.docker_config_dir() else { return Ok(None) };
    let path = dir.join("config.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(ResolveError::ReadConfig { path, source }),
    };
    let config: ConfigFile = match serde_json::from_str(&text) {
        Ok(config) => config,
        Err(source) => return Err(ResolveError::Json { path, source }),
    };
    Ok(config
        .current_context
        .filter(|name| !name.is_empty())
        .map(|name| (name, format!("currentContext in {}", path.display()))))
}

#[derive(Deserialize)]
struct ContextMeta {
    #[serde(rename = "Endpoints", default)]
    endpoints: ContextEndpoints,
}

#[derive(Deserialize, Default)]
struct ContextEndpoints {
    docker: Option<DockerEndpointMeta>,
}

#[derive(Deserialize)]
struct DockerEndpointMeta {
    #[serde(rename = "Host", default)]
    host: String,
    #[serde(rename = "SkipTLSVerify", default)]
    skip_tls_verify: bool,
}

/// A context's endpoint and TLS files: `contexts/meta/<sha256(name)>/meta.json` and
/// `contexts/tls/<sha256(name)>/docker/{ca,cert,key}.pem`.
fn load_context(
    name: &str,
    chosen_by: &str,
    env: &Environment,
) -> Result<(Endpoint, Option<TlsSettings>), ResolveError> {
    let origin = format!("context {name:?} (from {chosen_by})");
    let Some(dir) = env.docker_config_dir() else { return Err(ResolveError::NoConfigDir { origin }) };
    let id = hex_sha256(name);
    let path = dir.join("contexts").join("meta").join(&id).join("meta.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(source) => return Err(ResolveError::ReadContext { origin, path, source }),
    };
    let meta: ContextMeta = match serde_json::from_str(&text) {
        Ok(meta) => meta,
        Err(source) => return Err(ResolveError::ContextJson { origin, path, source }),
    };
    let Some(docker) = meta.endpoints.docker else {
        return Err(ResolveError::NoDockerEndpoint { origin, path });
    };
    let endpoint = if docker.host.is_empty() {
        Endpoint::default()
    } else {
        docker.host.parse().map_err(|e| ResolveError::Endpoint { origin, source: Box::new(e) })?
    };
    let tls_dir = dir.join("contexts").join("tls").join(&id).join("docker");
    let (ca, cert, key) = (tls_dir.join("ca.pem"), tls_dir.join("cert.pem"), tls_dir.join("key.pem"));
    let tls = if ca.exists() || cert.exists() {
        let base = if docker.skip_tls_verify || !ca.exists() {
            TlsSettings::unverified()
        } else {
            TlsSettings::verified(ca)
        };
        Some(if cert.exists() && key.exists() { base.with_client_identity(cert, key) } else { base })
    } else if docker.skip_tls_verify {
        Some(TlsSettings::unverified())
    } else {
        None
    };
    Ok((endpoint, tls))
}

/// The lowercase hex SHA-256 of a context name: its directory name.
fn hex_sha256(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Environment {
        Environment::from_vars(vars.iter().copied())
    }

    fn opts_host(host: &str) -> ConnectOptions {
        ConnectOptions { host: Some(host.to_owned()), ..ConnectOptions::default() }
    }

    /// A docker config dir with a context named `name` at `host`, and optional TLS files.
    fn config_with_context(
        name: &str,
        host: &str,
        tls_files: &[&str],
        skip_verify: bool,
    ) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let id = hex_sha256(name);
        let meta = dir.path().join("contexts/meta").join(&id);
        std::fs::create_dir_all(&meta).unwrap();
        std::fs::write(
            meta.join("meta.json"),
            format!(
                r#"{{"Name":"{name}","Metadata":{{}},"Endpoints":{{"docker":{{"Host":"{host}","SkipTLSVerify":{skip_verify}}}}}}}"#
            ),
        )
        .unwrap();
        let tls = dir.path().join("contexts/tls").join(&id).join("docker");
        std::fs::create_dir_all(&tls).unwrap();
        for file in tls_files {
            std::fs::write(tls.join(file), "x").unwrap();
        }
        dir
    }

    #[test]
    fn context_ids_are_sha256_of_the_name() {
        // `docker context create` stores "default-ish" names under this digest.
        assert_eq!(hex_sha256("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn nothing_configured_means_the_local_socket() {
        let r = resolve(&ConnectOptions::default(), &env(&[])).unwrap();
        assert_eq!(r.endpoint, Endpoint::default());
        assert_eq!(r.origin, EngineOrigin::Default);
        assert_eq!((r.tls, r.api_version), (None, None));
    }

    #[test]
    fn precedence_is_flag_host_context_current_default() {
        let cfg = config_with_context("ctx-env", "tcp://10.9.9.9:2375", &[], false);
        let cfg_dir = cfg.path().to_str().unwrap();
        // currentContext in config.json names another context.
        let id = hex_sha256("ctx-file");
        std::fs::create_dir_all(cfg.path().join("contexts/meta").join(&id)).unwrap();
        std::fs::write(
            cfg.path().join("contexts/meta").join(&id).join("meta.json"),
            r#"{"Endpoints":{"docker":{"Host":"unix:///from/file.sock"}}}"#,
        )
        .unwrap();
        std::fs::write(cfg.path().join("config.json"), r#"{"currentContext":"ctx-file","auths":{}}"#)
            .unwrap();

        let all = [
            ("DOCKER_CONFIG", cfg_dir),
            ("DOCKER_HOST", "tcp://10.1.1.1:2375"),
            ("DOCKER_CONTEXT", "ctx-env"),
        ];
        let r = resolve(&opts_host("unix:///flag.sock"), &env(&all)).unwrap();
        assert_eq!(
            (r.endpoint.to_string(), r.origin),
            ("unix:///flag.sock".to_owned(), EngineOrigin::HostFlag)
        );

        let r = resolve(&ConnectOptions::default(), &env(&all)).unwrap();
        assert_eq!(
            (r.endpoint.to_string(), r.origin),
            ("tcp://10.1.1.1:2375".to_owned(), EngineOrigin::DockerHost)
        );

        let r = resolve(
            &ConnectOptions::default(),
            &env(&all[..1].iter().chain(&all[2..]).copied().collect::<Vec<_>>()),
        )
        .unwrap();
        assert_eq!(r.endpoint.to_string(), "tcp://10.9.9.9:2375");
        assert!(
            matches!(&r.origin, EngineOrigin::Context { name, chosen_by } if name == "ctx-env" && chosen_by == "DOCKER_CONTEXT")
        );

        let r = resolve(&ConnectOptions::default(), &env(&all[..1])).unwrap();
        assert_eq!(r.endpoint.to_string(), "unix:///from/file.sock");
        assert!(r.origin.to_string().contains("currentContext in"), "{}", r.origin);

        // `--context` beats DOCKER_HOST, and the "default" context means the plain rules.
        let opts = ConnectOptions { context: Some("ctx-env".into()), ..ConnectOptions::default() };
        assert_eq!(resolve(&opts, &env(&all)).unwrap().endpoint.to_string(), "tcp://10.9.9.9:2375");
        let opts = ConnectOptions { context: Some("default".into()), ..ConnectOptions::default() };
        assert_eq!(resolve(&opts, &env(&all)).unwrap().endpoint.to_string(), "tcp://10.1.1.1:2375");
    }

    #[test]
    fn host_and_context_conflict() {
        let opts = ConnectOptions { context: Some("x".into()), ..opts_host("unix:///a.sock") };
        let msg = resolve(&opts, &env(&[])).unwrap_err().to_string();
        assert!(msg.contains("--host and --context") && msg.contains("conflicting"), "{msg}");
    }

    #[test]
    fn tls_verify_is_any_non_empty_value() {
        for value in ["1", "0", "false", "yes"] {
            let r = resolve(
                &ConnectOptions::default(),
                &env(&[
                    ("DOCKER_HOST", "tcp://h:2376"),
                    ("DOCKER_TLS_VERIFY", value),
                    ("DOCKER_CERT_PATH", "/certs"),
                ]),
            )
            .unwrap();
            let tls = r.tls.expect("TLS on");
            assert!(tls.verifies_server(), "DOCKER_TLS_VERIFY={value}");
            assert_eq!(tls.ca(), Some(Path::new("/certs/ca.pem")));
        }
        let r = resolve(
            &ConnectOptions::default(),
            &env(&[("DOCKER_HOST", "tcp://h"), ("DOCKER_TLS_VERIFY", "")]),
        )
        .unwrap();
        assert_eq!(r.tls, None);
    }

    #[test]
    fn docker_tls_alone_is_unverified_and_cert_path_defaults_to_the_config_dir() {
        let home = tempfile::tempdir().unwrap();
        let docker = home.path().join(".docker");
        std::fs::create_dir_all(&docker).unwrap();
        std::fs::write(docker.join("cert.pem"), "x").unwrap();
        std::fs::write(docker.join("key.pem"), "x").unwrap();
        let home_str = home.path().to_str().unwrap();
        let r =
            resolve(&ConnectOptions::default(), &env(&[("DOCKER_TLS", "1"), ("HOME", home_str)])).unwrap();
        let tls = r.tls.unwrap();
        assert!(!tls.verifies_server());
        assert_eq!(
            tls.client_identity(),
            Some((docker.join("cert.pem").as_path(), docker.join("key.pem").as_path()))
        );
    }

    #[test]
    fn tls_flags_beat_the_cert_path() {
        let opts = ConnectOptions {
            tls_verify: true,
            tls_ca_cert: Some("/flag/ca.pem".into()),
            tls_cert: Some("/flag/cert.pem".into()),
            tls_key: Some("/flag/key.pem".into()),
            ..opts_host("tcp://h:2376")
        };
        let tls = resolve(&opts, &env(&[("DOCKER_CERT_PATH", "/env")])).unwrap().tls.unwrap();
        assert_eq!(tls.ca(), Some(Path::new("/flag/ca.pem")));
        assert_eq!(tls.client_identity(), Some((Path::new("/flag/cert.pem"), Path::new("/flag/key.pem"))));
    }

    #[test]
    fn context_tls_files_and_skip_verify() {
        let cfg =
            config_with_context("secure", "tcp://10.0.0.7:2376", &["ca.pem", "cert.pem", "key.pem"], false);
        let e = env(&[("DOCKER_CONFIG", cfg.path().to_str().unwrap()), ("DOCKER_CONTEXT", "secure")]);
        let tls = resolve(&ConnectOptions::default(), &e).unwrap().tls.unwrap();
        assert!(tls.verifies_server());
        assert!(tls.ca().unwrap().ends_with("docker/ca.pem"));
        assert!(tls.client_identity().is_some());

        let cfg = config_with_context("loose", "tcp://10.0.0.7:2376", &["ca.pem"], true);
        let e = env(&[("DOCKER_CONFIG", cfg.path().to_str().unwrap()), ("DOCKER_CONTEXT", "loose")]);
        let tls = resolve(&ConnectOptions::default(), &e).unwrap().tls.unwrap();
        assert!(!tls.verifies_server());
    }

    #[test]
    fn bad_inputs_name_their_origin() {
        let msg = resolve(&ConnectOptions::default(), &env(&[("DOCKER_HOST", "gopher://x")]))
            .unwrap_err()
            .to_string();
        assert!(msg.starts_with("DOCKER_HOST: ") && msg.contains("\"gopher://x\""), "{msg}");

        let msg = resolve(&opts_host("nope"), &env(&[])).unwrap_err().to_string();
        assert!(msg.starts_with("--host: "), "{msg}");

        let msg = resolve(&ConnectOptions::default(), &env(&[("DOCKER_API_VERSION", "v1")]))
            .unwrap_err()
            .to_string();
        assert!(msg.starts_with("DOCKER_API_VERSION: ") && msg.contains("\"v1\""), "{msg}");

        let cfg = tempfile::tempdir().unwrap();
        let e = env(&[("DOCKER_CONFIG", cfg.path().to_str().unwrap()), ("DOCKER_CONTEXT", "ghost")]);
        let msg = resolve(&ConnectOptions::default(), &e).unwrap_err().to_string();
        assert!(
            msg.contains("context \"ghost\" (from DOCKER_CONTEXT)") && msg.contains("meta.json"),
            "{msg}"
        );

        std::fs::write(cfg.path().join("config.json"), "{not json").unwrap();
        let e = env(&[("DOCKER_CONFIG", cfg.path().to_str().unwrap())]);
        let msg = resolve(&ConnectOptions::default(), &e).unwrap_err().to_string();
        assert!(msg.contains("config.json") && msg.contains("not valid JSON"), "{msg}");
    }

    #[test]
    fn api_version_pins() {
        let r = resolve(&ConnectOptions::default(), &env(&[("DOCKER_API_VERSION", "1.41")])).unwrap();
        assert_eq!(r.api_version, Some(ApiVersion::new(1, 41)));
    }
}
