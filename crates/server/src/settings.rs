//! The server's settings: the process flags (listen address, state directory, config file)
//! and the `server` section of the configuration file, with the admin tokens from every
//! place they may come from. Every problem names its file and key, or its variable.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use dockhand_host::ConfigError;
use dockhand_jobs::config::Configuration;
use dockhand_policy::LabelPrefixes;
use serde::Deserialize;

/// The port and address the seed listened on.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:3000";
/// Where the job store and the `local` backup target live.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/dockhand";
/// Jobs that run at once, by default.
pub const DEFAULT_MAX_JOBS: usize = 4;
/// Requests that may wait for a job slot, by default; beyond them, 429.
pub const DEFAULT_MAX_QUEUE: usize = 16;

/// Why the settings cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// The configuration file.
    #[error(transparent)]
    Config(#[from] dockhand_host::Error),
    /// A key of the configuration file, or a variable of a section.
    #[error(transparent)]
    Key(#[from] ConfigError),
    /// A variable of the environment.
    #[error("{name}: {detail}")]
    Variable {
        /// The variable.
        name: String,
        /// What is wrong.
        detail: String,
    },
    /// A file named by a setting cannot be read.
    #[error("{setting}: cannot read {}: {source}", path.display())]
    File {
        /// The key or variable that names it.
        setting: String,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// A trusted CI identity issuer: tokens whose `iss` is `issuer`, made for `audience`,
/// signed by a key of the JWKS its discovery document names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcIssuer {
    /// `https://gitlab.example.com`, `https://token.actions.githubusercontent.com`.
    pub issuer: String,
    /// The `aud` the tokens must carry.
    pub audience: String,
    /// A CA to trust for the issuer's HTTPS (PEM), instead of the system's roots.
    pub ca_file: Option<PathBuf>,
}

/// The `server` section and the settings from the environment.
#[derive(Clone, Default)]
pub struct ServerConfig {
    /// The admin tokens.
    pub admin_tokens: Vec<String>,
    /// Read-only tokens for the status page (`DOCKHAND_VIEWER_TOKENS(_FILE)`).
    pub viewer_tokens: Vec<String>,
    /// Where each admin token came from, for the log (never the token).
    pub admin_sources: Vec<String>,
    /// Trusted CI identity issuers.
    pub oidc: Vec<OidcIssuer>,
    /// The label prefixes read (`labels.compat: swarm-utils` adds the seed's).
    pub prefixes: LabelPrefixes,
    /// Jobs that run at once.
    pub max_jobs: usize,
    /// Requests that may wait for a slot.
    pub max_queue: usize,
    /// `server.lock_wait`: how long a request waits for a target another job holds before
    /// 409; `None`: the seed's `SWARM_UTILS_LOCK_TIMEOUT` (default 10 s).
    pub lock_wait: Option<std::time::Duration>,
    /// `scope.selector` (or `server.scope`), `key=value`: only targets with this label
    /// are listed, served and run by cron, admins included.
    pub scope: Option<(String, String)>,
    /// `schedule`: when cron runs each action.
    pub schedule: dockhand_jobs::schedule::Schedule,
    /// `notifications.webhooks`.
    pub webhooks: Vec<dockhand_jobs::notify::Webhook>,
    /// Warnings to log at start (unsafe but accepted settings).
    pub warnings: Vec<String>,
    /// Choices to log at start, with their reason (which labels are read, and why).
    pub notes: Vec<String>,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("admin_tokens", &format_args!("{} token(s)", self.admin_tokens.len()))
            .field("viewer_tokens", &format_args!("{} token(s)", self.viewer_tokens.len()))
            .field("admin_sources", &self.admin_sources)
            .field("oidc", &self.oidc)
            .field("prefixes", &self.prefixes)
            .field("max_jobs", &self.max_jobs)
            .field("max_queue", &self.max_queue)
            .field("lock_wait", &self.lock_wait)
            .field("scope", &self.scope)
            .field("schedule", &self.schedule)
            .field("webhooks", &self.webhooks)
            .finish()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    #[serde(default)]
    admin_tokens: Vec<String>,
    #[serde(default)]
    admin_tokens_file: Option<PathBuf>,
    #[serde(default)]
    oidc: Vec<RawIssuer>,
    #[serde(default)]
    max_jobs: Option<usize>,
    #[serde(default)]
    max_queue: Option<usize>,
    #[serde(default)]
    lock_wait: Option<String>,
    #[serde(default)]
    scope: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIssuer {
    issuer: String,
    audience: String,
    #[serde(default)]
    ca_file: Option<PathBuf>,
}

/// Tokens in a list: separated by commas or line breaks, trimmed, empty ones dropped.
fn split_tokens(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split([',', '\n', '\r']).map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned)
}

impl ServerConfig {
    /// Reads the `server` and `labels` sections of `file`, and the admin tokens from the
    /// file, `DOCKHAND_ADMIN_TOKENS`, `DOCKHAND_ADMIN_TOKENS_FILE` and the seed's
    /// `SWARM_UTILS_ADMIN_TOKEN_LIST` (with a warning: a variable shows in `docker service
    /// inspect`).
    pub fn load(configuration: &Configuration) -> Result<Self, SettingsError> {
        let (file, env) = (configuration.file(), configuration.env());
        let origin = file.origin().to_string();
        let key_error =
            |key: &str, detail: String| SettingsError::Key(ConfigError::new(origin.clone(), key, detail));
        let raw = match file.get("server") {
            None => RawServer::default(),
            Some(value) => {
                value.deserialize::<RawServer>().map_err(|e| key_error("server", e.kind.to_string()))?
            }
        };
        let mut config = Self {
            max_jobs: raw.max_jobs.unwrap_or(DEFAULT_MAX_JOBS),
            max_queue: raw.max_queue.unwrap_or(DEFAULT_MAX_QUEUE),
            ..Self::default()
        };
        if config.max_jobs == 0 {
            return Err(key_error("server.max_jobs", "must be at least 1".into()));
        }
        if let Some(text) = &raw.lock_wait {
            let wait = dockhand_policy::parse_go_duration(text)
                .map_err(|e| key_error("server.lock_wait", format!("{text:?}: {e}")))?;
            config.lock_wait = Some(wait);
        }
        let add = |tokens: Vec<String>, source: &str, config: &mut Self| {
            for token in tokens {
                config.admin_sources.push(source.to_owned());
                config.admin_tokens.push(token);
            }
        };
        if !raw.admin_tokens.is_empty() {
            config.warnings.push(format!(
                "{origin}: server.admin_tokens holds tokens in the configuration file: prefer \
                 server.admin_tokens_file or DOCKHAND_ADMIN_TOKENS_FILE (a swarm secret)"
            ));
        }
        add(
            raw.admin_tokens.iter().flat_map(|t| split_tokens(t)).collect(),
            "server.admin_tokens",
            &mut config,
        );
        if let Some(path) = &raw.admin_tokens_file {
            add(read_tokens("server.admin_tokens_file", path)?, "server.admin_tokens_file", &mut config);
        }
        if let Some(list) = env.get("DOCKHAND_ADMIN_TOKENS") {
            add(split_tokens(list).collect(), "DOCKHAND_ADMIN_TOKENS", &mut config);
        }
        if let Some(path) = env.get("DOCKHAND_ADMIN_TOKENS_FILE").filter(|p| !p.is_empty()) {
            add(
                read_tokens("DOCKHAND_ADMIN_TOKENS_FILE", Path::new(path))?,
                "DOCKHAND_ADMIN_TOKENS_FILE",
                &mut config,
            );
        }
        if let Some(list) = env.get("DOCKHAND_VIEWER_TOKENS") {
            config.viewer_tokens.extend(split_tokens(list));
        }
        if let Some(path) = env.get("DOCKHAND_VIEWER_TOKENS_FILE").filter(|p| !p.is_empty()) {
            config.viewer_tokens.extend(read_tokens("DOCKHAND_VIEWER_TOKENS_FILE", Path::new(path))?);
        }
        if let Some(list) = env.get("SWARM_UTILS_ADMIN_TOKEN_LIST").filter(|l| !l.trim().is_empty()) {
            config.warnings.push(
                "SWARM_UTILS_ADMIN_TOKEN_LIST is read for compatibility, but a variable shows in `docker \
                 service inspect`: move the tokens to a swarm secret named by DOCKHAND_ADMIN_TOKENS_FILE"
                    .to_owned(),
            );
            add(split_tokens(list).collect(), "SWARM_UTILS_ADMIN_TOKEN_LIST", &mut config);
        }
        if env.get("SWARM_UTILS_DOCKER_CLI_IMAGE_NAME").is_some() {
            config.warnings.push(
                "SWARM_UTILS_DOCKER_CLI_IMAGE_NAME is ignored: helpers run dockhand's own image, pinned by \
                 digest (inside a swarm service, the image this server runs; else DOCKHAND_HELPER_IMAGE)"
                    .to_owned(),
            );
        }
        for (i, raw) in raw.oidc.into_iter().enumerate() {
            let key = format!("server.oidc[{i}]");
            let issuer = raw.issuer.trim().trim_end_matches('/').to_owned();
            if !issuer.starts_with("https://") {
                return Err(key_error(
                    &format!("{key}.issuer"),
                    format!("{issuer:?}: an issuer is an https:// URL (its keys are fetched from it)"),
                ));
            }
            if raw.audience.trim().is_empty() {
                return Err(key_error(&format!("{key}.audience"), "must not be empty".into()));
            }
            if let Some(ca) = &raw.ca_file {
                std::fs::metadata(ca).map_err(|source| SettingsError::File {
                    setting: format!("{origin}: {key}.ca_file"),
                    path: ca.clone(),
                    source,
                })?;
            }
            config.oidc.push(OidcIssuer {
                issuer,
                audience: raw.audience.trim().to_owned(),
                ca_file: raw.ca_file,
            });
        }
        // `scope.selector` (the tenant's label selector), or `server.scope` as first written.
        let selector = match file.get("scope.selector") {
            None => None,
            Some(value) => Some(value.as_str().map(str::to_owned).ok_or_else(|| {
                key_error("scope.selector", "must be a label selector, such as dockhand.tenant=team-a".into())
            })?),
        };
        for (key, scope) in [("server.scope", raw.scope.as_deref()), ("scope.selector", selector.as_deref())]
        {
            let Some(scope) = scope.filter(|s| !s.trim().is_empty()) else { continue };
            let Some((label, value)) = scope.split_once('=').filter(|(k, _)| !k.trim().is_empty()) else {
                return Err(key_error(
                    key,
                    format!("{scope:?}: must be label=value, such as dockhand.tenant=team-a"),
                ));
            };
            let parsed = (label.trim().to_owned(), value.trim().to_owned());
            if config.scope.as_ref().is_some_and(|earlier| *earlier != parsed) {
                return Err(key_error(key, format!("{scope:?} differs from server.scope: keep one of them")));
            }
            config.scope = Some(parsed);
        }
        config.schedule = configuration.schedule()?.clone();
        let (webhooks, warnings) = configuration.webhooks()?;
        config.webhooks = webhooks.to_vec();
        config.warnings.extend(warnings.iter().cloned());
        let compat = configuration.labels()?;
        config.prefixes = compat.prefixes.clone();
        config.notes.extend(file.notes().iter().cloned());
        config.notes.push(format!(
            "labels read: {}* ({})",
            config.prefixes.as_slice().join("* and "),
            compat.why
        ));
        Ok(config)
    }
}

fn read_tokens(setting: &str, path: &Path) -> Result<Vec<String>, SettingsError> {
    let text = std::fs::read_to_string(path).map_err(|source| SettingsError::File {
        setting: setting.to_owned(),
        path: path.to_owned(),
        source,
    })?;
    Ok(split_tokens(&text).collect())
}

/// The process's own settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The job store and the `local` target live here.
    pub state_dir: PathBuf,
    /// The configuration file (the CLI's).
    pub config: Option<PathBuf>,
    /// A named host of the configuration instead of the default engine.
    pub host_id: Option<String>,
    /// The image helper services run (default: the server's own service image).
    pub helper_image: Option<String>,
    /// HTTPS from these files (`--tls-cert`, `--tls-key`); plain HTTP without.
    pub tls: Option<crate::tls::TlsFiles>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(yaml: &str, vars: &[(&str, &str)]) -> Result<ServerConfig, SettingsError> {
        let file = dockhand_host::ConfigFile::parse(yaml, false).unwrap();
        let env = dockhand_host::Environment::from_vars(vars.iter().copied());
        let paths = dockhand_jobs::config::StatePaths::under(Path::new("/state"));
        ServerConfig::load(&Configuration::new(file, env, paths))
    }

    #[test]
    fn admin_tokens_come_from_every_source_and_the_seeds_list_warns() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("tokens");
        std::fs::write(&secret, "from-secret-1\nfrom-secret-2\n\n").unwrap();
        let config = load(
            "server:\n  admin_tokens: [in-file]\n",
            &[
                ("DOCKHAND_ADMIN_TOKENS", "env-a, env-b"),
                ("DOCKHAND_ADMIN_TOKENS_FILE", secret.to_str().unwrap()),
                ("SWARM_UTILS_ADMIN_TOKEN_LIST", "tokenA,tokenB,tokenC"),
            ],
        )
        .unwrap();
        assert_eq!(
            config.admin_tokens,
            ["in-file", "env-a", "env-b", "from-secret-1", "from-secret-2", "tokenA", "tokenB", "tokenC"]
        );
        assert_eq!(config.warnings.len(), 2, "{:?}", config.warnings);
        assert!(config.warnings.iter().all(|w| !w.contains("tokenA") && !w.contains("in-file")));
        assert!(!format!("{config:?}").contains("env-a"));
    }

    #[test]
    fn bad_settings_name_their_key() {
        let err = load("server:\n  oidc:\n    - issuer: http://gitlab.example\n      audience: x\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("server.oidc[0].issuer"), "{err}");
        let err = load("server:\n  admin_token: x\n", &[]).unwrap_err().to_string();
        assert!(err.contains("server") && err.contains("admin_token"), "{err}");
        let err = load("labels:\n  compat: seed\n", &[]).unwrap_err().to_string();
        assert!(err.contains("labels.compat"), "{err}");
        let err = load("", &[("DOCKHAND_ADMIN_TOKENS_FILE", "/nonexistent/tokens")]).unwrap_err().to_string();
        assert!(err.contains("DOCKHAND_ADMIN_TOKENS_FILE") && err.contains("/nonexistent/tokens"), "{err}");
        let with_compat = load("labels:\n  compat: swarm-utils\n", &[]).unwrap();
        assert_eq!(with_compat.prefixes, LabelPrefixes::with_swarm_utils());
    }

    #[test]
    fn the_seeds_environment_chooses_its_labels_and_its_cli_image_is_ignored_aloud() {
        let seed =
            load("{}", &[("SWARM_UTILS_DOCKER_CLI_IMAGE_NAME", "docker:25.0.5-cli-alpine3.20")]).unwrap();
        assert_eq!(seed.prefixes, LabelPrefixes::with_swarm_utils());
        assert!(
            seed.notes.iter().any(
                |n| n.contains("swarm-utils.*") && n.contains("SWARM_UTILS_DOCKER_CLI_IMAGE_NAME is set")
            ),
            "{:?}",
            seed.notes
        );
        assert!(
            seed.warnings.iter().any(|w| w.contains("SWARM_UTILS_DOCKER_CLI_IMAGE_NAME is ignored")),
            "{:?}",
            seed.warnings
        );
        let plain = load("{}", &[]).unwrap();
        assert_eq!(plain.prefixes, LabelPrefixes::default());
        assert!(plain.warnings.is_empty(), "{:?}", plain.warnings);
    }

    #[test]
    fn the_tenant_schedule_and_webhooks_are_read_with_the_rest() {
        let config = load(
            "scope:\n  selector: dockhand.tenant=team-a\nschedule:\n  clean-node: 'off'\nnotifications:\n  webhooks:\n    - url_env: HOOK\n",
            &[("HOOK", "https://hooks.example.com/x")],
        )
        .unwrap();
        assert_eq!(config.scope, Some(("dockhand.tenant".to_owned(), "team-a".to_owned())));
        assert_eq!(config.webhooks.len(), 1);
        assert_eq!(
            config.schedule.timing(dockhand_jobs::Action::CleanNode).unwrap().0,
            &dockhand_policy::Timing::Off
        );
        let same = load("server:\n  scope: t=a\nscope:\n  selector: t=a\n", &[]).unwrap();
        assert_eq!(same.scope, Some(("t".to_owned(), "a".to_owned())));
        let err = load("server:\n  scope: t=a\nscope:\n  selector: t=b\n", &[]).unwrap_err().to_string();
        assert!(err.contains("scope.selector"), "{err}");
        let err = load("scope:\n  selector: team-a\n", &[]).unwrap_err().to_string();
        assert!(err.contains("scope.selector") && err.contains("label=value"), "{err}");
        let err = load("schedule:\n  backup-service: nightly\n", &[]).unwrap_err().to_string();
        assert!(err.contains("schedule.backup-service"), "{err}");
    }
}
