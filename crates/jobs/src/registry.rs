//! Registry credentials for update-service, found in this order:
//!
//! 1. the named credential a service's `update.registry=<name>` label asks for, from the
//!    configuration file's `registries.<name>` (url, username, and the password from a
//!    variable or a file);
//! 2. the seed's labels `update.registry.{auth,user,password,url}` with `auth=true`, each
//!    value falling back to its `SWARM_UTILS_REGISTRY_*` variable;
//! 3. the docker CLI's `config.json` (`$DOCKER_CONFIG`, else `~/.docker`), as the CLI reads
//!    it: `credHelpers` for the registry, then `credsStore`, then `auths`.
//!
//! A credential leaves dockhand only as `X-Registry-Auth` on the engine calls that pull.
//! It is held in [`Secret`]s and [`RegistryAuth`], which never print; messages name the
//! registry, the user and where the credential came from, never the password.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use dockhand_engine::RegistryAuth;
use dockhand_host::{ConfigError, ConfigFile, Environment};
use dockhand_policy::{ImageRef, TargetLabels, UpdatePolicy};
use serde::Deserialize;

use crate::secret::{Secret, read_credential};

/// How the docker CLI names Docker Hub in `config.json` and to credential helpers.
pub const DOCKER_HUB_SERVER: &str = "https://index.docker.io/v1/";
/// How long a credential helper may take.
const HELPER_TIMEOUT: Duration = Duration::from_secs(30);

/// One named credential (`registries.<name>`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NamedRegistry {
    /// Its name.
    pub name: String,
    /// Where it was defined.
    pub origin: String,
    /// The registry, as configured (`registry.example.com`, `https://…`).
    pub url: String,
    /// The user.
    pub username: String,
    /// The password or access token.
    pub password: Secret,
}

/// What can go wrong finding a credential. Every message names the place to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// A `registries.<name>` entry is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A label names a credential the configuration does not have.
    #[error("{label} on service {service} names the registry credential {name:?}, {why}")]
    Unknown {
        /// The label.
        label: String,
        /// The service.
        service: String,
        /// The name asked for.
        name: String,
        /// Why it cannot be used.
        why: String,
    },
    /// `--registry` names a credential the configuration does not have.
    #[error("--registry names the registry credential {name:?}, {why}")]
    UnknownFlag {
        /// The name asked for.
        name: String,
        /// Why it cannot be used.
        why: String,
    },
    /// The seed's labels ask for credentials that neither labels nor variables give.
    #[error("{label}=true on service {service}, but no {what}: set {value_label} or {variable}")]
    SeedMissing {
        /// The `auth` label.
        label: String,
        /// The service.
        service: String,
        /// user, password or url.
        what: String,
        /// The label that would give it.
        value_label: String,
        /// The variable that would give it.
        variable: String,
    },
    /// A credential is for another registry than the image's: it is never sent there.
    #[error(
        "{credential} is for the registry {credential_registry}, not {image_registry} (the registry of {image}): \
         a credential goes only to its own registry"
    )]
    WrongRegistry {
        /// The credential and where it came from.
        credential: String,
        /// Its registry, normalized.
        credential_registry: String,
        /// The image asked for.
        image: String,
        /// The image's registry, normalized.
        image_registry: String,
    },
    /// `config.json` cannot be read.
    #[error("{path}: {detail}")]
    DockerConfig {
        /// The file.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// A credential helper failed.
    #[error(
        "the credential helper docker-credential-{helper} (from {key} in {path}) failed for {server}: {detail}"
    )]
    Helper {
        /// The helper's name.
        helper: String,
        /// `credsStore` or `credHelpers.<registry>`.
        key: String,
        /// The `config.json`.
        path: String,
        /// The server asked for.
        server: String,
        /// What went wrong.
        detail: String,
    },
}

/// A credential found for a registry, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PullCredential {
    /// What the engine gets.
    pub auth: RegistryAuth,
    /// The user, when there is one (an identity token has none).
    pub username: Option<String>,
    /// Where it came from: `the named credential ci (registries.ci in FILE)`, …
    pub source: String,
}

/// The named credentials of the configuration file, the seed's variables, and where the
/// docker CLI's configuration is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registries {
    named: BTreeMap<String, NamedRegistry>,
    /// Entries that do not validate: using one is its error.
    broken: BTreeMap<String, String>,
    seed: BTreeMap<String, String>,
    docker_config: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegistry {
    url: Option<String>,
    username: Option<String>,
    password: Option<String>,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
}

impl Registries {
    /// No credential at all: public images only.
    pub fn none() -> Self {
        Self { named: BTreeMap::new(), broken: BTreeMap::new(), seed: BTreeMap::new(), docker_config: None }
    }

    /// The `registries` of `file`, with passwords read from `env` and files, the
    /// `SWARM_UTILS_REGISTRY_*` variables, and the docker CLI's configuration directory
    /// (`DOCKER_CONFIG`, else `$HOME/.docker`). A wrong entry is kept aside with its error.
    pub fn load(file: &ConfigFile, env: &Environment) -> Result<Self, ConfigError> {
        let origin = file.origin().to_string();
        let dict = file
            .map("registries", "a map of credential names")
            .map_err(|e| ConfigError::new(origin.clone(), "registries", e.to_string()))?;
        let (mut named, mut broken) = (BTreeMap::new(), BTreeMap::new());
        for (name, value) in dict.unwrap_or_default() {
            let key = format!("registries.{name}");
            let err = |field: &str, detail: String| {
                let key = if field.is_empty() { key.clone() } else { format!("{key}.{field}") };
                ConfigError::new(origin.clone(), key, detail)
            };
            let built = value.deserialize::<RawRegistry>().map_err(|e| err("", e.kind.to_string())).and_then(|raw| {
                let url = raw.url.filter(|u| !u.trim().is_empty()).ok_or_else(|| {
                    err("url", "a registry credential needs the registry's url".into())
                })?;
                if url.contains('@') {
                    return Err(err("url", format!("{url:?}: credentials do not go in the URL")));
                }
                let username = raw
                    .username
                    .filter(|u| !u.trim().is_empty())
                    .ok_or_else(|| err("username", "a registry credential needs a username".into()))?;
                if raw.password.is_some() {
                    return Err(err(
                        "password",
                        "a password is not written in the configuration: use password_env or password_file".into(),
                    ));
                }
                if raw.password_env.is_none() && raw.password_file.is_none() {
                    return Err(err("password_env", "a registry credential needs password_env or password_file".into()));
                }
                let field = if raw.password_file.is_some() { "password_file" } else { "password_env" };
                let password = read_credential(env, raw.password_env.as_deref(), raw.password_file.as_deref(), "")
                    .map_err(|d| err(field, d))?;
                Ok(NamedRegistry { name: name.clone(), origin: origin.clone(), url, username, password })
            });
            match built {
                Ok(registry) => {
                    named.insert(name, registry);
                }
                Err(e) => {
                    broken.insert(name, e.to_string());
                }
            }
        }
        let seed = env
            .vars_with_prefix("SWARM_UTILS_REGISTRY_")
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let docker_config = env
            .get("DOCKER_CONFIG")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .or_else(|| env.get("HOME").map(|home| Path::new(home).join(".docker")));
        Ok(Self { named, broken, seed, docker_config })
    }

    /// The named credentials, by name.
    pub fn named(&self) -> impl Iterator<Item = &NamedRegistry> {
        self.named.values()
    }

    /// The passwords it holds (named credentials, `SWARM_UTILS_REGISTRY_PASSWORD`): for the
    /// redactor, which masks them wherever text leaves dockhand.
    pub fn secrets(&self) -> Vec<String> {
        self.named
            .values()
            .map(|n| n.password.expose().to_owned())
            .chain(self.seed.get("SWARM_UTILS_REGISTRY_PASSWORD").cloned())
            .collect()
    }

    /// The entries that do not validate, with their errors.
    pub fn problems(&self) -> impl Iterator<Item = (&str, &str)> {
        self.broken.iter().map(|(n, p)| (n.as_str(), p.as_str()))
    }

    /// The credential for pulling `image` into `service`, whose labels are `labels` and
    /// `policy`: `None` when no source has one (a public image).
    pub async fn credential_for(
        &self,
        image: &ImageRef,
        service: &str,
        policy: &UpdatePolicy,
        labels: &TargetLabels<'_>,
    ) -> Result<Option<PullCredential>, RegistryError> {
        if let Some(name) = &policy.registry {
            let label = labels.key_for("update.registry");
            return self
                .named_credential(name, image, |why| RegistryError::Unknown {
                    label: label.clone(),
                    service: service.to_owned(),
                    name: name.clone(),
                    why,
                })
                .map(Some);
        }
        if policy.registry_auth {
            return self.seed_credential(image, service, policy, labels).map(Some);
        }
        match &self.docker_config {
            Some(dir) => docker_config_credential(&dir.join("config.json"), image).await,
            None => Ok(None),
        }
    }

    /// The credential for pushing `image`: the named credential `name` (`--registry`), else
    /// what the docker CLI's `config.json` has for its registry; `None` without either.
    pub async fn credential_for_push(
        &self,
        image: &ImageRef,
        name: Option<&str>,
    ) -> Result<Option<PullCredential>, RegistryError> {
        if let Some(name) = name {
            let unknown = |why: String| RegistryError::UnknownFlag { name: name.to_owned(), why };
            return self.named_credential(name, image, unknown).map(Some);
        }
        match &self.docker_config {
            Some(dir) => docker_config_credential(&dir.join("config.json"), image).await,
            None => Ok(None),
        }
    }

    /// The credential nodes pull the helper image `image` with: the named credential whose
    /// `url` is its registry (the first by name), else what `config.json` has for it; `None`
    /// without either (a registry the nodes read anonymously), and for Docker Hub (a name
    /// without a registry is a local tag, or public: no credential helper is run for it).
    pub async fn credential_for_helper(
        &self,
        image: &ImageRef,
    ) -> Result<Option<PullCredential>, RegistryError> {
        if image.domain() == "docker.io" {
            return Ok(None);
        }
        let host = key_host(image.domain());
        if let Some(named) = self.named.values().find(|n| key_host(&n.url) == host) {
            let unknown = |why: String| RegistryError::UnknownFlag { name: named.name.clone(), why };
            return self.named_credential(&named.name, image, unknown).map(Some);
        }
        self.credential_for_push(image, None).await
    }

    /// The named credential `name`, for `image`'s registry only; `unknown` says why not.
    fn named_credential(
        &self,
        name: &str,
        image: &ImageRef,
        unknown: impl Fn(String) -> RegistryError,
    ) -> Result<PullCredential, RegistryError> {
        if let Some(problem) = self.broken.get(name) {
            return Err(unknown(format!("whose entry is wrong: {problem}")));
        }
        let Some(named) = self.named.get(name) else {
            let known: Vec<&str> = self.named.keys().map(String::as_str).collect();
            return Err(unknown(if known.is_empty() {
                "but the configuration has no registries".to_owned()
            } else {
                format!("but the configuration has only {}", known.join(", "))
            }));
        };
        let source = format!("the named credential {name} (registries.{name} in {})", named.origin);
        same_registry(&named.url, image, &source)?;
        Ok(PullCredential {
            auth: RegistryAuth::password(&named.username, named.password.expose(), &named.url),
            username: Some(named.username.clone()),
            source,
        })
    }

    /// The seed's `auth=true`: each of user, password and url from its label, else its
    /// variable.
    fn seed_credential(
        &self,
        image: &ImageRef,
        service: &str,
        policy: &UpdatePolicy,
        labels: &TargetLabels<'_>,
    ) -> Result<PullCredential, RegistryError> {
        let pick = |what: &str, label_value: &Option<String>, short: &str, var: &str| {
            label_value.clone().or_else(|| self.seed.get(var).cloned()).ok_or_else(|| {
                RegistryError::SeedMissing {
                    label: labels.key_for("update.registry.auth"),
                    service: service.to_owned(),
                    what: what.to_owned(),
                    value_label: labels.key_for(short),
                    variable: var.to_owned(),
                }
            })
        };
        let user = pick("user", &policy.registry_user, "update.registry.user", "SWARM_UTILS_REGISTRY_USER")?;
        let password = pick(
            "password",
            &policy.registry_password,
            "update.registry.password",
            "SWARM_UTILS_REGISTRY_PASSWORD",
        )?;
        let url = pick("url", &policy.registry_url, "update.registry.url", "SWARM_UTILS_REGISTRY_URL")?;
        let from = |label: &Option<String>, short: &str, var: &str| {
            if label.is_some() { labels.key_for(short) } else { var.to_owned() }
        };
        let source = format!(
            "the seed's settings ({}, {}, {})",
            from(&policy.registry_user, "update.registry.user", "SWARM_UTILS_REGISTRY_USER"),
            from(&policy.registry_password, "update.registry.password", "SWARM_UTILS_REGISTRY_PASSWORD"),
            from(&policy.registry_url, "update.registry.url", "SWARM_UTILS_REGISTRY_URL"),
        );
        same_registry(&url, image, &source)?;
        Ok(PullCredential {
            auth: RegistryAuth::password(&user, password, &url),
            username: Some(user),
            source,
        })
    }
}

/// The name the docker CLI files `image`'s registry under: Docker Hub's historical URL,
/// else the registry's host (and port).
pub fn server_key(image: &ImageRef) -> String {
    if image.domain() == "docker.io" { DOCKER_HUB_SERVER.to_owned() } else { image.domain().to_owned() }
}

/// Refuses a credential whose registry (`url`) is not `image`'s (R3-01): the engine would
/// hand it to whatever registry the image names.
fn same_registry(url: &str, image: &ImageRef, source: &str) -> Result<(), RegistryError> {
    let (theirs, ours) = (key_host(url), key_host(image.domain()));
    if theirs == ours {
        return Ok(());
    }
    Err(RegistryError::WrongRegistry {
        credential: source.to_owned(),
        credential_registry: theirs,
        image: image.to_string(),
        image_registry: ours,
    })
}

/// A registry's URL or `config.json` key reduced to its host, as the CLI compares them:
/// `https://r.io/v2/`, `r.io:443` and `r.io` are the same registry, and so are Docker Hub's
/// names.
fn key_host(key: &str) -> String {
    let key = key.trim();
    let rest = key.strip_prefix("https://").or_else(|| key.strip_prefix("http://")).unwrap_or(key);
    let host = rest.split('/').next().unwrap_or(rest).to_ascii_lowercase();
    let host = host.strip_suffix(":443").unwrap_or(&host).to_owned();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => "docker.io".to_owned(),
        _ => host,
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct DockerConfig {
    auths: BTreeMap<String, AuthEntry>,
    #[serde(rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AuthEntry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    identitytoken: Option<String>,
}

/// The credential `config.json` at `path` gives for `image`'s registry, read as the docker
/// CLI reads it: a `credHelpers` entry for the registry, else `credsStore`, else `auths`.
/// No file, or nothing for this registry: `None`.
pub async fn docker_config_credential(
    path: &Path,
    image: &ImageRef,
) -> Result<Option<PullCredential>, RegistryError> {
    let shown = path.display().to_string();
    let text = match tokio::fs::read_to_string(path).await {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(RegistryError::DockerConfig { path: shown, detail: e.to_string() }),
    };
    let config: DockerConfig = serde_json::from_str(&text).map_err(|e| RegistryError::DockerConfig {
        path: shown.clone(),
        detail: format!("not valid JSON: {e}"),
    })?;
    let server = server_key(image);
    let host = key_host(&server);
    let helper = config
        .cred_helpers
        .iter()
        .find(|(key, _)| key_host(key) == host)
        .map(|(key, helper)| (format!("credHelpers.{key}"), helper.clone()))
        .or_else(|| {
            config.creds_store.clone().filter(|s| !s.is_empty()).map(|s| ("credsStore".to_owned(), s))
        });
    if let Some((key, helper)) = helper {
        return run_helper(&helper, &key, &shown, &server).await;
    }
    let Some((key, entry)) = config.auths.iter().find(|(key, _)| key_host(key) == host) else {
        return Ok(None);
    };
    let source = format!("auths.{key} in {shown}");
    if let Some(token) = entry.identitytoken.clone().filter(|t| !t.is_empty()) {
        return Ok(Some(PullCredential { auth: RegistryAuth::IdentityToken(token), username: None, source }));
    }
    let (username, password) = match (&entry.auth, &entry.username, &entry.password) {
        (Some(auth), _, _) if !auth.is_empty() => {
            let bad = |detail: &str| RegistryError::DockerConfig {
                path: shown.clone(),
                detail: format!("auths.{key}.auth {detail}"),
            };
            let raw = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|_| bad("is not base64"))?;
            let text = String::from_utf8(raw).map_err(|_| bad("is not UTF-8 text"))?;
            let (user, password) = text.split_once(':').ok_or_else(|| bad("is not user:password"))?;
            (user.to_owned(), password.to_owned())
        }
        (_, Some(user), Some(password)) => (user.clone(), password.clone()),
        _ => return Ok(None),
    };
    Ok(Some(PullCredential {
        auth: RegistryAuth::password(&username, password, &server),
        username: Some(username),
        source,
    }))
}

#[derive(Deserialize)]
struct HelperAnswer {
    #[serde(rename = "Username")]
    username: String,
    #[serde(rename = "Secret")]
    secret: String,
}

/// `docker-credential-<helper> get`, the server on stdin, JSON on stdout. "Not found" is
/// no credential, as for the docker CLI.
async fn run_helper(
    helper: &str,
    key: &str,
    path: &str,
    server: &str,
) -> Result<Option<PullCredential>, RegistryError> {
    let fail = |detail: String| RegistryError::Helper {
        helper: helper.to_owned(),
        key: key.to_owned(),
        path: path.to_owned(),
        server: server.to_owned(),
        detail,
    };
    // The name becomes a program name: nothing that could walk out of PATH.
    if helper.is_empty() || !helper.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
        return Err(fail("not a helper name (letters, digits, '.', '_' and '-')".to_owned()));
    }
    let program = format!("docker-credential-{helper}");
    let mut child = tokio::process::Command::new(&program)
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| fail(format!("cannot run {program}: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        use tokio::io::AsyncWriteExt;
        stdin.write_all(server.as_bytes()).await.map_err(|e| fail(format!("cannot write to it: {e}")))?;
    }
    let out = tokio::time::timeout(HELPER_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| fail(format!("no answer within {} s", HELPER_TIMEOUT.as_secs())))?
        .map_err(|e| fail(e.to_string()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let said = format!("{} {}", stdout.trim(), String::from_utf8_lossy(&out.stderr).trim());
        if said.contains("credentials not found") {
            return Ok(None);
        }
        // Its words, cut short: a helper has no reason to echo a secret, but bound it.
        let said: String = said.trim().chars().take(200).collect();
        return Err(fail(format!("{}: {said}", out.status)));
    }
    let answer: HelperAnswer = serde_json::from_str(stdout.trim())
        .map_err(|_| fail("its answer is not the helper protocol's JSON".into()))?;
    let source = format!("docker-credential-{helper} ({key} in {path})");
    if answer.username == "<token>" {
        return Ok(Some(PullCredential {
            auth: RegistryAuth::IdentityToken(answer.secret),
            username: None,
            source,
        }));
    }
    Ok(Some(PullCredential {
        auth: RegistryAuth::password(&answer.username, answer.secret, server),
        username: Some(answer.username),
        source,
    }))
}

#[cfg(test)]
mod tests;
