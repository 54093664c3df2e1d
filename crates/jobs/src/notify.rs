//! Notifications: a request to each configured channel when a job ends, on failure (and,
//! when asked, on other outcomes), per action or per target label. A channel is a URL: a
//! webhook (`https://…`, `generic+https://…`) gets a JSON body with the job's summary and its
//! steps' output tails, redacted, and a `text` field that Slack and Mattermost show as the
//! message; `slack://`, `discord://`, `teams://`, `ntfy://` and `gotify://` get that
//! service's own format (`notify/channels.rs`), and `smtp://` an e-mail (`notify/email.rs`).
//!
//! Delivery never holds a job up: jobs go into a bounded queue that one task empties,
//! retrying each webhook with backoff. A notification that cannot be delivered, or that
//! finds the queue full, is logged (the webhook by name, never its URL, which is often a
//! secret) and counted; it never fails the job.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use dockhand_host::{ConfigError, ConfigFile, Environment};
use dockhand_policy::Redactor;
use serde::Deserialize;

use crate::job::{Job, Status, Target};

mod channels;
mod email;

use channels::{Channel, Message};

/// Jobs waiting to be notified; more are dropped (and counted).
pub const NOTIFY_QUEUE: usize = 256;
/// Attempts per webhook and job.
pub const NOTIFY_ATTEMPTS: u32 = 4;
/// Each attempt's time limit.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of a step's output tail goes into a notification.
const TAIL: usize = 2_048;

/// The statuses a webhook hears of when its `on` is not given: failures, and the updates
/// watch mode found for services that asked to be told (`update.auto=notify`).
const DEFAULT_ON: [&str; 2] = ["failed", "available"];

/// A channel URL that is not one: why, never the URL itself (it holds a credential).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ChannelError(String);

/// One channel: a webhook, or a chat or push service given as a URL.
#[derive(Clone)]
#[non_exhaustive]
pub struct Webhook {
    /// Its name, for logs and metrics.
    pub name: String,
    url: String,
    channel: Channel,
    /// A CA file the channel's TLS trusts too (e-mail channels).
    ca_file: Option<PathBuf>,
    /// The key a webhook's body is signed with (`X-Dockhand-Signature-256`).
    signing: Option<crate::secret::Secret>,
    /// The job statuses it is told about (default: `failed` and `available`).
    pub on: Vec<Status>,
    /// The actions it is told about (empty: all).
    pub actions: Vec<String>,
    /// Only jobs whose target has this label (`key=value`).
    pub selector: Option<(String, String)>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("name", &self.name)
            .field("url", &"***")
            .field("on", &self.on)
            .field("actions", &self.actions)
            .field("selector", &self.selector)
            .finish()
    }
}

impl Webhook {
    /// Its kind: `webhook`, `slack`, `discord`, `teams`, `ntfy`, `gotify` or `smtp`.
    pub fn kind(&self) -> &'static str {
        self.channel.kind()
    }

    /// Its secrets, for the redactor alone: the URL, and the signing key when it has one.
    pub fn secrets(&self) -> Vec<String> {
        std::iter::once(self.url.clone()).chain(self.signing.iter().map(|s| s.expose().to_owned())).collect()
    }

    /// Signs each body with `key`: HMAC-SHA256 in `X-Dockhand-Signature-256: sha256=<hex>`,
    /// as GitHub signs its webhooks (webhook channels only).
    pub fn signed_with(mut self, key: impl Into<String>) -> Self {
        self.signing = Some(crate::secret::Secret::new(key));
        self
    }

    /// A channel named `name` at `url` (a webhook's `https://…`, or `slack://…`, `ntfy://…`…)
    /// told of failures of every action, and of updates available.
    ///
    /// # Errors
    /// When `url` is not a channel: the error says why, without the URL.
    pub fn new(name: impl Into<String>, url: impl Into<String>) -> Result<Self, ChannelError> {
        let url = url.into();
        let channel = Channel::parse(&url).map_err(ChannelError)?;
        Ok(Self {
            name: name.into(),
            url: url.trim().to_owned(),
            channel,
            ca_file: None,
            signing: None,
            on: vec![Status::Failed, Status::Available],
            actions: Vec::new(),
            selector: None,
        })
    }

    /// Told about jobs that end with one of `on`.
    pub fn on(mut self, on: Vec<Status>) -> Self {
        self.on = on;
        self
    }

    /// Whether `job` (whose target has `labels`) is for this webhook.
    fn wants(&self, job: &Job, labels: Option<&BTreeMap<String, String>>) -> bool {
        self.hears(job)
            && self.selector.as_ref().is_none_or(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
    }

    /// Whether this webhook hears of `job`'s status and action, whatever its target's labels.
    fn hears(&self, job: &Job) -> bool {
        self.on.contains(&job.status)
            && (self.actions.is_empty() || self.actions.iter().any(|a| a == job.action.as_str()))
    }

    /// The channel's kind and host, for messages: the path and query often hold a secret.
    fn shown(&self) -> String {
        self.channel.shown()
    }
}

/// `notifications.webhooks` (the first form, kept).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhooks {
    #[serde(default)]
    webhooks: Vec<RawWebhook>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    name: Option<String>,
    url: Option<String>,
    url_env: Option<String>,
    url_file: Option<PathBuf>,
    #[serde(default)]
    on: Vec<String>,
    #[serde(default)]
    actions: Vec<String>,
    selector: Option<String>,
    ca_file: Option<PathBuf>,
    secret_env: Option<String>,
    secret_file: Option<PathBuf>,
}

/// Reads the channels of `file`: `notifications` as a list of entries, or (the first form)
/// `notifications.webhooks`. A URL comes from `url_env` (a variable), `url_file` (a swarm
/// secret) or `url` (accepted, with a warning: it is a secret in the file). Returns the
/// channels and the warnings.
pub fn load_webhooks(
    file: &ConfigFile,
    env: &Environment,
) -> Result<(Vec<Webhook>, Vec<String>), ConfigError> {
    let origin = file.origin().to_string();
    let error = |key: String, detail: String| ConfigError::new(origin.clone(), key, detail);
    let (entries, prefix): (Vec<RawWebhook>, &str) = match file.get("notifications") {
        None => (Vec::new(), "notifications"),
        Some(value) if value.as_array().is_some() => (
            value
                .deserialize::<Vec<RawWebhook>>()
                .map_err(|e| error(format!("notifications{}", path_of(&e.path)), e.kind.to_string()))?,
            "notifications",
        ),
        Some(value) => (
            value
                .deserialize::<RawWebhooks>()
                .map_err(|e| error(format!("notifications{}", path_of(&e.path)), e.kind.to_string()))?
                .webhooks,
            "notifications.webhooks",
        ),
    };
    let entries_are_list = prefix == "notifications";
    let mut hooks = Vec::new();
    let mut warnings = Vec::new();
    for (i, raw) in entries.into_iter().enumerate() {
        let key = |k: &str| format!("{prefix}[{i}].{k}");
        let name = raw
            .name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| format!("{}-{i}", if entries_are_list { "channel" } else { "webhook" }));
        let url = match (&raw.url, &raw.url_env, &raw.url_file) {
            (Some(url), None, None) => {
                warnings.push(format!(
                    "{origin}: {}: a channel's URL is a secret: prefer url_env or url_file (a swarm secret)",
                    key("url")
                ));
                url.clone()
            }
            (None, Some(var), None) => env
                .get(var)
                .map(str::to_owned)
                .ok_or_else(|| error(key("url_env"), format!("the variable {var} is not set")))?,
            (None, None, Some(path)) => read_url(path).map_err(|detail| error(key("url_file"), detail))?,
            _ => return Err(error(key("url"), "give exactly one of url, url_env and url_file".to_owned())),
        };
        let channel = Channel::parse(&url).map_err(|detail| error(key("url"), detail))?;
        if let Some(path) = &raw.ca_file {
            if channel.email().is_none() {
                return Err(error(key("ca_file"), "ca_file is for smtp:// channels only".to_owned()));
            }
            if !path.is_file() {
                return Err(error(key("ca_file"), format!("{} is not a file", path.display())));
            }
        }
        let mut on = Vec::new();
        let default = || DEFAULT_ON.iter().map(|s| (*s).to_owned()).collect();
        for status in if raw.on.is_empty() { default() } else { raw.on } {
            let parsed: Status =
                serde_json::from_value(serde_json::Value::String(status.clone())).map_err(|_| {
                    error(
                        key("on"),
                        format!(
                            "{status:?}: expected failed, succeeded, cancelled, refused, busy, skipped, \
                             interrupted or available"
                        ),
                    )
                })?;
            on.push(parsed);
        }
        for action in &raw.actions {
            if !crate::job::ALL_ACTIONS.iter().any(|a| a.as_str() == action) {
                return Err(error(key("actions"), format!("{action:?} is not an action")));
            }
        }
        let selector = match raw.selector.as_deref().filter(|s| !s.trim().is_empty()) {
            None => None,
            Some(text) => {
                let (k, v) = text
                    .split_once('=')
                    .filter(|(k, _)| !k.trim().is_empty())
                    .ok_or_else(|| error(key("selector"), format!("{text:?}: must be label=value")))?;
                Some((k.trim().to_owned(), v.trim().to_owned()))
            }
        };
        let signing = match (&raw.secret_env, &raw.secret_file) {
            (None, None) => None,
            (Some(_), Some(_)) => {
                return Err(error(key("secret_env"), "give one of secret_env and secret_file".to_owned()));
            }
            (var, file) => {
                let which = if file.is_some() { key("secret_file") } else { key("secret_env") };
                if !channel.is_webhook() {
                    return Err(error(
                        which,
                        "a signing secret is for webhooks (https://, generic://) only".to_owned(),
                    ));
                }
                let secret = crate::secret::read_credential(env, var.as_deref(), file.as_deref(), "")
                    .map_err(|detail| error(which.clone(), detail))?;
                if secret.expose().len() < 16 {
                    return Err(error(which, "a signing secret needs at least 16 characters".to_owned()));
                }
                Some(secret)
            }
        };
        hooks.push(Webhook {
            name,
            url: url.trim().to_owned(),
            channel,
            ca_file: raw.ca_file,
            signing,
            on,
            actions: raw.actions,
            selector,
        });
    }
    Ok((hooks, warnings))
}

/// Where in `notifications` a deserialization error is (`[2].on`), from its path.
fn path_of(path: &[String]) -> String {
    path.iter().map(|p| if p.parse::<usize>().is_ok() { format!("[{p}]") } else { format!(".{p}") }).collect()
}

fn read_url(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let url = text.trim();
    if url.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(url.to_owned())
}

/// How one notification went, for the caller's metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Delivery {
    /// The webhook answered 2xx.
    Sent {
        /// The webhook's name.
        webhook: String,
    },
    /// Every attempt failed.
    Failed {
        /// The webhook's name.
        webhook: String,
        /// The last reason.
        reason: String,
    },
    /// The queue was full: the job was not notified.
    Dropped,
}

/// The body posted for `job`: its summary, its steps (errors and output tails redacted and
/// bounded) and a `text` line for Slack and Mattermost.
pub fn notification_body(job: &Job, redactor: &Redactor) -> serde_json::Value {
    let bounded = |text: &str| {
        let text = redactor.redact(text);
        match text.char_indices().rev().nth(TAIL) {
            Some((cut, _)) => format!("…{}", &text[cut..]),
            None => text,
        }
    };
    let status = serde_json::to_value(job.status).unwrap_or_default();
    let status = status.as_str().unwrap_or("?");
    let first_error = job.steps.iter().find_map(|s| s.error.as_deref()).map(bounded);
    let trigger = serde_json::to_value(job.trigger).unwrap_or_default();
    let mut text = format!(
        "{} dockhand {} on {} {}: job {} ({}, {})",
        match job.status {
            Status::Succeeded => "✅",
            Status::Available => "🆕",
            _ => "❌",
        },
        job.action.as_str(),
        job.target.describe(),
        status,
        job.id,
        trigger.as_str().unwrap_or("?"),
        redactor.redact(&job.caller),
    );
    if let Some(error) = &first_error {
        text.push_str(": ");
        text.push_str(error);
    }
    let steps: Vec<serde_json::Value> = job
        .steps
        .iter()
        .map(|s| {
            serde_json::json!({
                "kind": s.kind,
                "node": s.node,
                "status": s.status,
                "exit_code": s.exit_code,
                "duration_ms": s.duration_ms,
                "error": s.error.as_deref().map(bounded),
                "output_tail": s.output_tail.as_deref().map(bounded),
            })
        })
        .collect();
    serde_json::json!({
        "text": text,
        "job": {
            "id": job.id,
            "action": job.action.as_str(),
            "target": job.target,
            "status": job.status,
            "trigger": job.trigger,
            "caller": redactor.redact(&job.caller),
            "started_ms": job.started_ms,
            "ended_ms": job.ended_ms,
            "scheduled_at": job.scheduled_at,
            "image": job.image,
        },
        "steps": steps,
    })
}

/// Sends notifications in the background. Cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    hooks: Arc<Vec<Webhook>>,
    tx: Option<tokio::sync::mpsc::Sender<Job>>,
    report: Arc<dyn Fn(Delivery) + Send + Sync>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier").field("hooks", &self.hooks).finish_non_exhaustive()
    }
}

impl Notifier {
    /// A notifier that sends nothing.
    pub fn none() -> Self {
        Self { hooks: Arc::new(Vec::new()), tx: None, report: Arc::new(|_| {}) }
    }

    /// Starts the delivery task for `hooks` (on the current runtime). `client` reads a
    /// target's labels for webhooks with a selector; `report` hears how each went; the
    /// first retry waits `backoff`, each next one twice as long.
    pub fn start(
        hooks: Vec<Webhook>,
        client: Option<dockhand_engine::Client>,
        redactor: Redactor,
        backoff: Duration,
        report: Arc<dyn Fn(Delivery) + Send + Sync>,
    ) -> Result<Self, crate::http::HttpClientError> {
        if hooks.is_empty() {
            return Ok(Self::none());
        }
        let http = crate::http::client(None, false, ATTEMPT_TIMEOUT)?;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Job>(NOTIFY_QUEUE);
        let hooks = Arc::new(hooks);
        let (worker_hooks, worker_report) = (Arc::clone(&hooks), Arc::clone(&report));
        tokio::spawn(async move {
            while let Some(job) = rx.recv().await {
                // The target's labels are read here, off the job's path, and only when a
                // webhook that would hear of this job selects by label.
                let selects = worker_hooks.iter().any(|h| h.selector.is_some() && h.hears(&job));
                let labels = match (&client, selects) {
                    (Some(client), true) => target_labels(client, &job.target).await,
                    _ => None,
                };
                let body = notification_body(&job, &redactor);
                let status = serde_json::to_value(job.status).unwrap_or_default();
                let title = format!(
                    "dockhand {} on {}: {}",
                    job.action.as_str(),
                    job.target.describe(),
                    status.as_str().unwrap_or("?")
                );
                let message = Message {
                    title: &title,
                    text: body["text"].as_str().unwrap_or_default(),
                    bad: !matches!(job.status, Status::Succeeded | Status::Available),
                    body: &body,
                };
                for hook in worker_hooks.iter().filter(|h| h.wants(&job, labels.as_ref())) {
                    let delivery = post(&http, hook, &message, backoff).await;
                    match &delivery {
                        Delivery::Failed { webhook, reason } => tracing::warn!(
                            webhook = %webhook,
                            endpoint = %hook.shown(),
                            job = %job.id,
                            %reason,
                            "notification not delivered"
                        ),
                        _ => tracing::debug!(webhook = %hook.name, job = %job.id, "notified"),
                    }
                    worker_report(delivery);
                }
            }
        });
        Ok(Self { hooks, tx: Some(tx), report })
    }

    /// Queues `job` for the webhooks that want it; never waits, never fails.
    pub fn job_finished(&self, job: &Job) {
        let Some(tx) = &self.tx else { return };
        if !self.hooks.iter().any(|h| h.hears(job)) {
            return;
        }
        if tx.try_send(job.clone()).is_err() {
            tracing::warn!(job = %job.id, "the notification queue is full: job not notified");
            (self.report)(Delivery::Dropped);
        }
    }
}

async fn target_labels(
    client: &dockhand_engine::Client,
    target: &Target,
) -> Option<BTreeMap<String, String>> {
    match target {
        Target::Service { id, .. } => client.service(id).await.ok().map(|s| s.spec.labels),
        Target::Node { id, .. } => client.node(id).await.ok().map(|n| n.spec.labels),
    }
}

/// Tells `hook`'s channel `message`, retrying with backoff; a 4xx other than 408 and 429
/// is final.
async fn post(http: &reqwest::Client, hook: &Webhook, message: &Message<'_>, backoff: Duration) -> Delivery {
    let request = hook.channel.request(message);
    let mut wait = backoff;
    let mut reason = String::new();
    for attempt in 1..=NOTIFY_ATTEMPTS {
        if let Some(smtp) = hook.channel.email() {
            match email::send(smtp, hook.ca_file.as_deref(), message, ATTEMPT_TIMEOUT).await {
                Ok(()) => return Delivery::Sent { webhook: hook.name.clone() },
                Err(not_sent) => {
                    reason = not_sent.reason;
                    if not_sent.permanent {
                        break;
                    }
                }
            }
            if attempt < NOTIFY_ATTEMPTS {
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            continue;
        }
        let body = request.json.to_string();
        let mut sending = http.post(&request.url).header(reqwest::header::CONTENT_TYPE, "application/json");
        if let Some(key) = &hook.signing {
            sending = sending.header("x-dockhand-signature-256", signature(key.expose(), &body));
        }
        let mut sending = sending.body(body);
        for (name, value) in &request.headers {
            let mut value = reqwest::header::HeaderValue::from_str(value)
                .unwrap_or_else(|_| reqwest::header::HeaderValue::from_static(""));
            value.set_sensitive(true);
            sending = sending.header(*name, value);
        }
        let sent = sending.send().await;
        match sent {
            Ok(r) if r.status().is_success() => return Delivery::Sent { webhook: hook.name.clone() },
            Ok(r) => {
                reason = format!("answered {}", r.status());
                let code = r.status().as_u16();
                if (400..500).contains(&code) && code != 408 && code != 429 {
                    break;
                }
            }
            // reqwest's errors name the URL: only its kind is kept.
            Err(e) => reason = describe(&e),
        }
        if attempt < NOTIFY_ATTEMPTS {
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
    }
    Delivery::Failed { webhook: hook.name.clone(), reason }
}

/// `sha256=<hex>`: HMAC-SHA256 of `body` under `key`.
fn signature(key: &str, body: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.as_bytes());
    format!("sha256={}", hex::encode(ring::hmac::sign(&key, body.as_bytes()).as_ref()))
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "cannot connect".to_owned()
    } else if e.is_request() {
        "the request failed".to_owned()
    } else {
        "the answer could not be read".to_owned()
    }
}

#[cfg(test)]
mod delivery_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_hears_of_its_statuses_actions_and_labelled_targets_only() {
        let now = std::time::SystemTime::now();
        let target = Target::Service { id: "id-db".into(), name: "db".into() };
        let mut job =
            Job::start(crate::job::Action::BackupService, target, crate::job::Trigger::Cron, "cron", now);
        job.finish(now, Some(Status::Failed));
        let labels: BTreeMap<String, String> = [("dockhand.notify".to_owned(), "ops".to_owned())].into();
        let mut hook = Webhook::new("ops", "https://h.example.com/x").unwrap();
        assert!(hook.wants(&job, None), "failures of every action by default");
        hook.actions = vec!["clean-service".into()];
        assert!(!hook.wants(&job, None), "another action");
        hook.actions = vec!["backup-service".into()];
        hook.selector = Some(("dockhand.notify".into(), "ops".into()));
        assert!(hook.wants(&job, Some(&labels)));
        assert!(!hook.wants(&job, None), "a target without the label");
        let other: BTreeMap<String, String> = [("dockhand.notify".to_owned(), "dev".to_owned())].into();
        assert!(!hook.wants(&job, Some(&other)));
        job.status = Status::Succeeded;
        assert!(!hook.wants(&job, Some(&labels)), "successes only when asked");
        let hook = hook.on(vec![Status::Failed, Status::Succeeded]);
        assert!(hook.wants(&job, Some(&labels)));
    }

    #[test]
    fn settings_take_the_url_from_a_variable_or_a_file_and_name_bad_keys() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("hook");
        std::fs::write(&secret, "https://hooks.example.com/services/T0/B0/XYZ\n").unwrap();
        let yaml = format!(
            "notifications:\n  webhooks:\n    - name: ops\n      url_env: OPS_HOOK\n      on: [failed, succeeded]\n      actions: [backup-service]\n      selector: dockhand.notify=ops\n    - url_file: {}\n",
            secret.display()
        );
        let file = ConfigFile::parse(&yaml, false).unwrap();
        let env = Environment::from_vars([
            ("OPS_HOOK", "https://chat.example.com/hooks/abc"),
            ("SHORT", "tiny"),
            ("SIGNING", "a-signing-secret-of-some-length"),
        ]);
        let (hooks, warnings) = load_webhooks(&file, &env).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(hooks[0].name, "ops");
        assert_eq!(hooks[0].on, [Status::Failed, Status::Succeeded]);
        assert_eq!(hooks[0].selector, Some(("dockhand.notify".into(), "ops".into())));
        assert_eq!(
            (hooks[1].name.as_str(), hooks[1].url.as_str()),
            ("webhook-1", "https://hooks.example.com/services/T0/B0/XYZ")
        );
        assert!(!format!("{hooks:?}").contains("XYZ"), "the URL is not in Debug");
        let inline =
            ConfigFile::parse("notifications:\n  webhooks:\n    - url: https://h.example.com/x\n", false)
                .unwrap();
        assert_eq!(load_webhooks(&inline, &env).unwrap().1.len(), 1, "a URL in the file is warned about");
        for (yaml, key) in [
            ("notifications:\n  webhooks:\n    - url_env: NOPE\n", "notifications.webhooks[0].url_env"),
            (
                "notifications:\n  webhooks:\n    - url: https://h/x\n      on: [sometimes]\n",
                "notifications.webhooks[0].on",
            ),
            (
                "notifications:\n  webhooks:\n    - url: https://h/x\n      actions: [dance]\n",
                "notifications.webhooks[0].actions",
            ),
            ("notifications:\n  webhooks:\n    - url: ftp://h/x\n", "notifications.webhooks[0].url"),
            ("notifications:\n  hooks: []\n", "notifications.hooks"),
            ("notifications:\n  - url: ftp://h/x\n", "notifications[0].url"),
            ("notifications:\n  - url: slack://one\n", "notifications[0].url"),
            ("notifications:\n  - url: https://h/x\n    colour: red\n", "notifications[0].colour"),
            ("notifications:\n  - url: https://h/x\n    secret_env: NOPE\n", "notifications[0].secret_env"),
            ("notifications:\n  - url: https://h/x\n    secret_env: SHORT\n", "notifications[0].secret_env"),
            (
                "notifications:\n  - url: discord://t@1\n    secret_env: SIGNING\n",
                "notifications[0].secret_env",
            ),
            (
                "notifications:\n  - url: discord://t@1\n    ca_file: /etc/hostname\n",
                "notifications[0].ca_file",
            ),
        ] {
            let e = load_webhooks(&ConfigFile::parse(yaml, false).unwrap(), &env).unwrap_err();
            assert_eq!(e.key, key, "{yaml}: {e}");
        }
    }
}
