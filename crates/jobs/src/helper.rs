//! Helper services: how a job works on a node other than the one dockhand is connected to.
//!
//! A helper is a swarm service of one task, pinned to one node (`node.id==<id>`, restart
//! condition `none`), given that node's engine socket by a bind
//! mount, logging with `json-file`, and running `dockhand agent <verb>` with typed
//! arguments ([`AgentTask`]). It carries no secret: none in its env, args or labels. Its
//! result is its task's exit status plus the [`AgentLine`]s the agent printed, read back
//! from the service's logs.
//!
//! A helper is removed on every path: success, failure, timeout, cancellation, and (by a
//! background removal) when the future running it is dropped. Leftovers of a dockhand that
//! was killed are found by label before any job on the same target ([`clear_leftovers`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use dockhand_engine::{Client, Filters, LogsOptions, ServiceSpec, StreamKind, Task};
use tokio_util::sync::CancellationToken;

use crate::agent::protocol::{AgentLine, AgentTask};
use crate::own_image::OwnExecutable;
use crate::tail::Tail;

/// The label every helper service carries; its value is the job's ID.
pub const HELPER_LABEL: &str = "dockhand.helper";
/// The helper's target (`node/<id>` or `service/<id>`): what leftovers are matched on.
pub const HELPER_TARGET_LABEL: &str = "dockhand.helper.target";
/// The helper's action (`clean-node`, ...).
pub const HELPER_ACTION_LABEL: &str = "dockhand.helper.action";

/// Where the agent finds the node's engine inside the helper container.
const AGENT_SOCKET: &str = "/var/run/docker.sock";
/// The most of a helper's logs read back: its lines are bounded, so this is a guard.
const MAX_LOG_BYTES: u64 = 16 * 1024 * 1024;

/// How helpers are made.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HelperSettings {
    /// The image, whose entrypoint is `dockhand` (inside a swarm service: the image dockhand
    /// runs from, pinned by digest). Empty when none was given or can be vouched for: the
    /// helpers on the connected node then run the image made from dockhand's own executable
    /// ([`HelperSettings::own`]), and the others fail with [`HelperSettings::missing`].
    pub image: String,
    /// Why there is no image, and what to set.
    pub missing: String,
    /// Without an image: the one made from dockhand's own executable on the node it is
    /// connected to, made the first time a helper there needs it.
    pub own: Option<OwnHelperImage>,
    /// The credential nodes pull [`HelperSettings::image`] with (sent when a helper is
    /// created, as `docker service create --with-registry-auth`; never in its spec).
    pub auth: Option<dockhand_engine::RegistryAuth>,
    /// The engine socket's path on the nodes, bind-mounted into the helper.
    pub socket: String,
    /// How long a helper may stay pending before it is removed and its step fails.
    pub pending_timeout: Duration,
    /// How often a helper's task is looked at.
    pub poll: Duration,
}

/// The helper image made from dockhand's own executable on the engine it is connected to
/// ([`crate::ensure_own_image`]), for the helpers on that node; made once, when first needed.
#[derive(Debug, Clone)]
pub struct OwnHelperImage {
    client: Client,
    executable: OwnExecutable,
    node_id: String,
    node_name: String,
    made: Arc<tokio::sync::Mutex<Option<String>>>,
}

impl PartialEq for OwnHelperImage {
    fn eq(&self, other: &Self) -> bool {
        (&self.executable, &self.node_id) == (&other.executable, &other.node_id)
    }
}

impl Eq for OwnHelperImage {}

impl OwnHelperImage {
    /// The image of `executable`, made on `client`'s engine, whose swarm node is `node_id`.
    pub fn new(client: Client, executable: OwnExecutable, node_id: &str, node_name: &str) -> Self {
        Self {
            client,
            executable,
            node_id: node_id.to_owned(),
            node_name: node_name.to_owned(),
            made: Arc::new(tokio::sync::Mutex::new(None)),
        }
    }

    /// Its image ID, made on the engine the first time, and again when it has gone since (a
    /// clean-node prunes unused images).
    async fn id(&self) -> Result<String, String> {
        let mut made = self.made.lock().await;
        if let Some(id) = made.as_ref() {
            if self.client.image(id).await.is_ok() {
                return Ok(id.clone());
            }
        }
        let id = crate::own_image::ensure_own_image(&self.client, &self.executable)
            .await
            .map_err(|e| e.to_string())?;
        *made = Some(id.clone());
        Ok(id)
    }
}

/// No helper can run: why, and what to set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NoHelperImage(String);

/// What to set when dockhand cannot vouch for a helper image.
const SET_HELPER_IMAGE: &str = "set --helper-image (DOCKHAND_HELPER_IMAGE) to dockhand's own image, pinned by digest \
     (registry.example.com/dockhand@sha256:…, which `dockhand helper-image push REGISTRY/REPO` makes), or to a tag \
     every node already has";

impl HelperSettings {
    /// No image: every helper fails with `why`, which says what to set (R3-04: never a
    /// public name that a node would pull).
    pub fn without_image(why: impl Into<String>) -> Self {
        let mut settings = Self::new("");
        settings.missing = why.into();
        settings
    }

    /// Nodes pull the image with `auth`.
    pub fn with_auth(mut self, auth: Option<dockhand_engine::RegistryAuth>) -> Self {
        self.auth = auth;
        self
    }

    /// Creates a helper's service of `image`, with the pull credential when it is the
    /// configured image (the one made here is run by its ID and never pulled).
    async fn create(
        &self,
        client: &Client,
        spec: &ServiceSpec,
    ) -> Result<dockhand_engine::ServiceCreated, dockhand_engine::Error> {
        match &self.auth {
            Some(auth) if !self.image.is_empty() && spec.task_template.container_spec.image == self.image => {
                client.create_service_with_auth(spec, auth).await
            }
            _ => client.create_service(spec).await,
        }
    }

    /// Without an image, helpers on the connected node run `own`.
    pub fn with_own_image(mut self, own: OwnHelperImage) -> Self {
        self.own = Some(own);
        self
    }

    /// Whether any helper can run: an image is set, or one can be made here. Else why not,
    /// and what to set.
    pub fn check(&self) -> Result<(), NoHelperImage> {
        if self.image.is_empty() && self.own.is_none() {
            return Err(NoHelperImage(self.why_none()));
        }
        Ok(())
    }

    fn why_none(&self) -> String {
        let why = if self.missing.is_empty() { "no helper image is set" } else { &self.missing };
        format!("{why}: {SET_HELPER_IMAGE}")
    }

    /// The image a container on the connected node runs (a volume's relay or reader), or
    /// why there is none.
    pub(crate) async fn image_here(&self) -> Result<String, String> {
        match &self.own {
            Some(own) if self.image.is_empty() => own.id().await,
            _ if self.image.is_empty() => Err(self.why_none()),
            _ => Ok(self.image.clone()),
        }
    }

    /// The image a helper on the node `node_id` runs, or why there is none.
    pub(crate) async fn image_for(&self, node_id: &str) -> Result<String, String> {
        if !self.image.is_empty() {
            return Ok(self.image.clone());
        }
        match &self.own {
            Some(own) if own.node_id == node_id => own.id().await,
            Some(own) => Err(format!(
                "{}; the image made from this dockhand is on {} only",
                self.why_none(),
                own.node_name
            )),
            None => Err(self.why_none()),
        }
    }

    /// `image`, the socket `/var/run/docker.sock` and the seed's 20 s pending timeout.
    pub fn new(image: impl Into<String>) -> Self {
        Self {
            image: image.into(),
            missing: String::new(),
            own: None,
            auth: None,
            socket: AGENT_SOCKET.to_owned(),
            pending_timeout: Duration::from_secs(20),
            poll: Duration::from_millis(200),
        }
    }

    /// Sets the socket path on the nodes.
    pub fn with_socket(mut self, socket: impl Into<String>) -> Self {
        self.socket = socket.into();
        self
    }

    /// Sets the pending timeout.
    pub fn with_pending_timeout(mut self, timeout: Duration) -> Self {
        self.pending_timeout = timeout;
        self
    }
}

/// The image of the swarm service this process runs in, as the service's spec names it (the
/// swarm pins it by digest when the image came from a registry): what helpers must run, so
/// that they run the same dockhand. `None` outside a swarm task.
pub async fn own_service_image(client: &Client) -> Option<String> {
    let mountinfo = dockhand_host::procfs::self_mountinfo().ok()?;
    let container = container_id_from_mountinfo(&mountinfo)?;
    let inspect = client.container(&container).await.ok()?;
    let service = inspect.config.labels.get("com.docker.swarm.service.id")?;
    let image = client.service(service).await.ok()?.spec.task_template.container_spec.image;
    (!image.is_empty()).then_some(image)
}

/// The image helpers run (R3-04), in this order: `explicit` (`--helper-image`, the
/// operator's word); inside a swarm service, the service's own image, which must be pinned
/// by digest. Without either, helpers on the node `client` talks to run the image made from
/// `own` (dockhand's own executable, imported there and run by its ID), and helpers on other
/// nodes have no image, with why. A tag a node would pull from whatever registry answers
/// for it is never used.
pub async fn helper_image(
    client: &Client,
    explicit: Option<&str>,
    own: Option<OwnExecutable>,
) -> HelperSettings {
    if let Some(image) = explicit.map(str::trim).filter(|i| !i.is_empty()) {
        return HelperSettings::new(image);
    }
    let settings = match own_service_image(client).await {
        Some(image) if pinned(&image) => return HelperSettings::new(image),
        Some(image) => HelperSettings::without_image(format!(
            "this service runs {image}, which is not pinned by digest: a node that pulls that name could get \
             another image, and helpers hold the node's engine socket"
        )),
        None => {
            HelperSettings::without_image("no helper image is set for the nodes dockhand is not connected to")
        }
    };
    let connected = crate::swarm::Connected::read(client).await.ok().filter(|c| !c.node_id.is_empty());
    match (own, connected) {
        (Some(own), Some(here)) => {
            settings.with_own_image(OwnHelperImage::new(client.clone(), own, &here.node_id, &here.name))
        }
        _ => settings,
    }
}

/// True when `image` names its content: `name@sha256:<64 hex>`.
fn pinned(image: &str) -> bool {
    image.rsplit_once("@sha256:").is_some_and(|(name, hex)| {
        !name.is_empty() && hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

/// The container ID in a container's own mount table: Docker bind-mounts
/// `.../containers/<id>/hostname` (and `hosts`, `resolv.conf`) into every container.
fn container_id_from_mountinfo(mountinfo: &str) -> Option<String> {
    mountinfo.lines().find_map(|line| {
        let root = line.split_whitespace().nth(3)?;
        let rest = &root[root.find("/containers/")? + "/containers/".len()..];
        let (id, file) = rest.split_once('/')?;
        let is_id = id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit());
        (is_id && matches!(file, "hostname" | "hosts" | "resolv.conf")).then(|| id.to_owned())
    })
}

impl Default for HelperSettings {
    /// No image yet: a front-end sets one with [`helper_image`].
    fn default() -> Self {
        Self::without_image("no helper image was chosen")
    }
}

/// One helper run: what, where, for which job.
#[derive(Debug, Clone)]
pub(crate) struct HelperRun<'a> {
    pub(crate) job: &'a str,
    pub(crate) action: &'a str,
    /// `node/<id>` or `service/<id>`.
    pub(crate) target: String,
    pub(crate) node_id: &'a str,
    pub(crate) node_name: &'a str,
    pub(crate) task: AgentTask,
    /// How long the agent may work once started.
    pub(crate) timeout: Duration,
    /// What the helper's container gets beyond its image.
    pub(crate) access: Access,
}

/// The capabilities a volume agent keeps (every other is dropped): reading any file of the
/// volume for an archive; writing back owners, modes and file capabilities for a restore.
pub(crate) const VOLUME_READ_CAPS: &[&str] = &["CAP_DAC_READ_SEARCH"];
/// See [`VOLUME_READ_CAPS`].
pub(crate) const VOLUME_WRITE_CAPS: &[&str] =
    &["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_SETFCAP"];

/// What a helper's container gets: the node's engine socket (the default), or a volume
/// and the job's network instead (a transfer), and nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Access {
    /// The node's engine socket, at `/var/run/docker.sock`.
    pub(crate) socket: bool,
    /// A volume at `/volume`, and whether read-only.
    pub(crate) volume: Option<(String, bool)>,
    /// The job's overlay network, the service reached by DNS round robin.
    pub(crate) network: Option<String>,
}

impl Default for Access {
    fn default() -> Self {
        Self { socket: true, volume: None, network: None }
    }
}

/// What a helper reported.
#[derive(Debug, Clone)]
pub(crate) struct HelperOutput {
    pub(crate) lines: Vec<AgentLine>,
}

/// Why a helper gave no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HelperError {
    #[error("the helper on node {node} was still pending after {after:?}: {message}")]
    Pending { node: String, after: Duration, message: String },
    #[error("the helper on node {node} did not finish within {after:?}")]
    Timeout { node: String, after: Duration },
    #[error("cancelled")]
    Cancelled,
    #[error("the helper on node {node} ended {state} (exit code {exit_code}): {message}")]
    Failed { node: String, state: String, exit_code: i64, message: String },
    #[error("the helper on node {node}: {message}")]
    Engine { node: String, message: String },
    #[error("no helper can run on node {node}: {message}")]
    NoImage { node: String, message: String },
}

impl HelperError {
    /// An engine error about the helper on `node`.
    fn engine(node: &str) -> impl Fn(dockhand_engine::Error) -> Self + '_ {
        move |e| Self::Engine { node: node.to_owned(), message: e.to_string() }
    }
}

/// A created helper service, removed when dropped unless [`Created::remove`] ran.
struct Created {
    client: Client,
    id: String,
    removed: bool,
}

impl Created {
    async fn remove(mut self) -> Result<(), dockhand_engine::Error> {
        self.removed = true;
        remove_quietly(&self.client, &self.id).await
    }
}

impl Drop for Created {
    fn drop(&mut self) {
        if self.removed {
            return;
        }
        // Dropped mid-run (its caller went away): remove it in the background. Should the
        // runtime be gone too, the next job on this target clears it as a leftover.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (client, id) = (self.client.clone(), self.id.clone());
            runtime.spawn(async move { remove_quietly(&client, &id).await });
        }
    }
}

async fn remove_quietly(client: &dyn crate::swarm::Swarm, id: &str) -> Result<(), dockhand_engine::Error> {
    match client.remove_service(id).await {
        Err(e) if !e.is_not_found() => Err(e),
        _ => Ok(()),
    }
}

/// The helper's service name: one per job and node; 61 characters with a 25-character job
/// and node ID.
pub(crate) fn helper_name(job: &str, node_id: &str) -> String {
    let mut name = format!("dh-helper-{job}-{node_id}");
    name.truncate(63);
    name
}

/// The helper's service spec: nothing in it comes from a request but typed values. Its
/// agent does nothing if it starts after the pending timeout.
fn spec(settings: &HelperSettings, image: &str, run: &HelperRun<'_>) -> ServiceSpec {
    let start_by = crate::job::epoch_ms(std::time::SystemTime::now() + settings.pending_timeout);
    let mut spec = one_off(run.job, run.node_id, image);
    if run.access.socket {
        spec = spec.with_bind(&settings.socket, AGENT_SOCKET);
    }
    if let Some((volume, read_only)) = &run.access.volume {
        spec = if *read_only {
            spec.with_volume_read_only(volume, "/volume")
        } else {
            spec.with_volume(volume, "/volume")
        };
    }
    if let Some(network) = &run.access.network {
        spec = spec.with_network_dnsrr(network);
    }
    // R3-18: no capability but what its volume work needs, no new privileges, a read-only
    // root. The engine socket needs none: it belongs to root, the agent's user.
    let keep = match &run.access.volume {
        Some((_, true)) => VOLUME_READ_CAPS,
        Some((_, false)) => VOLUME_WRITE_CAPS,
        None => &[],
    };
    let spec = spec.hardened(keep);
    labelled(spec.with_args(run.task.to_args(Some(start_by))), run.job, &run.target, run.action)
}

/// A helper's service: one task of `image`, never restarted, pinned to the node.
///
/// A replicated service of one task with restart condition `none`, not a swarm job
/// (`replicated-job`): removing a job service leaves its completed task in the swarm's
/// store and its container on the node for good (moby/moby#42789, #44312), one of each per
/// helper run, which `cargo xtask soak` found by the hundred. A replicated service's task
/// and container go with the service.
fn one_off(job: &str, node_id: &str, image: &str) -> ServiceSpec {
    ServiceSpec::new(helper_name(job, node_id), image)
        .with_replicas(1)
        .with_restart_condition("none")
        .with_constraint(format!("node.id=={node_id}"))
}

/// Its logs kept for dockhand to read, and the labels that say whose it is: on the service,
/// and on its container, so that `docker ps --filter label=dockhand.helper` on a node
/// shows the helpers there.
fn labelled(mut spec: ServiceSpec, job: &str, target: &str, action: &str) -> ServiceSpec {
    let container = &mut spec.task_template.container_spec.labels;
    container.insert(HELPER_LABEL.to_owned(), job.to_owned());
    container.insert(HELPER_TARGET_LABEL.to_owned(), target.to_owned());
    spec.with_log_driver("json-file")
        .with_label(HELPER_LABEL, job)
        .with_label(HELPER_TARGET_LABEL, target)
        .with_label(HELPER_ACTION_LABEL, action)
}

/// Runs one helper to its end and removes it, whatever happens.
pub(crate) async fn run_helper(
    client: &Client,
    settings: &HelperSettings,
    run: &HelperRun<'_>,
    cancel: &CancellationToken,
) -> Result<HelperOutput, HelperError> {
    let engine = HelperError::engine(run.node_name);
    let image = settings
        .image_for(run.node_id)
        .await
        .map_err(|message| HelperError::NoImage { node: run.node_name.to_owned(), message })?;
    let created = settings.create(client, &spec(settings, &image, run)).await.map_err(&engine)?;
    let created = Created { client: client.clone(), id: created.id, removed: false };
    let outcome = tokio::select! {
        outcome = follow(client, settings, run, &created.id) => outcome,
        () = cancel.cancelled() => Err(HelperError::Cancelled),
    };
    let id = created.id.clone();
    match (outcome, created.remove().await) {
        (outcome, Ok(())) => outcome,
        (Ok(_), Err(e)) => Err(engine(e)),
        (Err(failed), Err(e)) => {
            // The job reports why the helper failed; the removal's failure is logged, and the
            // next job on this target clears the helper as a leftover.
            tracing::warn!(service = %id, error = %e, "cannot remove a helper service");
            Err(failed)
        }
    }
}

/// A command of the operator's run once on a node, in an image of theirs: a node's
/// `backup.exec`. It gets the named volumes at `/volumes/<name>` and nothing else of the
/// node: no engine socket, no host path.
#[derive(Debug, Clone)]
pub(crate) struct CommandRun<'a> {
    pub(crate) job: &'a str,
    pub(crate) action: &'a str,
    /// `node/<id>`.
    pub(crate) target: String,
    pub(crate) node_id: &'a str,
    pub(crate) node_name: &'a str,
    pub(crate) image: &'a str,
    /// The command, run as is (the image's entrypoint is replaced).
    pub(crate) argv: Vec<String>,
    pub(crate) volumes: &'a [String],
    /// The volumes are mounted read-write (`backup.exec.read-write`), else read-only.
    pub(crate) read_write: bool,
    pub(crate) timeout: Duration,
}

/// The spec of an operator's command on a node (a node's `backup.exec`): its image, the
/// volumes at `/volumes/<name>`, read-only unless `backup.exec.read-write` (R3-18), and no
/// engine socket.
fn command_spec(run: &CommandRun<'_>) -> ServiceSpec {
    let mut spec = one_off(run.job, run.node_id, run.image);
    for volume in run.volumes {
        let target = format!("/volumes/{volume}");
        spec = if run.read_write {
            spec.with_volume(volume, target)
        } else {
            spec.with_volume_read_only(volume, target)
        };
    }
    spec.task_template.container_spec.command.clone_from(&run.argv);
    labelled(spec, run.job, &run.target, run.action)
}

/// Runs `run` to its end and removes its service, whatever happens: the tail of what it
/// printed, or why it failed (its exit code and last words).
pub(crate) async fn run_command_helper(
    client: &Client,
    settings: &HelperSettings,
    run: &CommandRun<'_>,
    cancel: &CancellationToken,
) -> Result<String, HelperError> {
    let engine = HelperError::engine(run.node_name);
    let spec = command_spec(run);
    let created = client.create_service(&spec).await.map_err(&engine)?;
    let created = Created { client: client.clone(), id: created.id, removed: false };
    let outcome = tokio::select! {
        ended = wait_ended(client, settings, run.node_name, run.timeout, &created.id) => ended,
        () = cancel.cancelled() => Err(HelperError::Cancelled),
    };
    // Its words are read before the service is removed, and the removal happens whatever
    // they say.
    let outcome = match outcome {
        Ok(task) => match read_lines(client, &created.id).await {
            Ok((_, said)) => {
                let said = said.text().trim().to_owned();
                if task.status.state == "complete" {
                    Ok(said)
                } else {
                    let exit_code = task.status.container_status.as_ref().map_or(-1, |c| c.exit_code);
                    let message = if said.is_empty() { task_words(&task) } else { said };
                    Err(HelperError::Failed {
                        node: run.node_name.to_owned(),
                        state: task.status.state,
                        exit_code,
                        message,
                    })
                }
            }
            Err(e) => Err(engine(e)),
        },
        Err(e) => Err(e),
    };
    let id = created.id.clone();
    if let Err(e) = created.remove().await {
        tracing::warn!(service = %id, error = %e, "cannot remove a helper service");
    }
    outcome
}

/// What the swarm says of a task that went wrong: its error, else its message.
fn task_words(task: &Task) -> String {
    if task.status.err.is_empty() { task.status.message.clone() } else { task.status.err.clone() }
}

fn pending(task: Option<&Task>) -> bool {
    task.is_none_or(|t| matches!(t.status.state.as_str(), "new" | "allocated" | "pending"))
}

fn terminal(task: &Task) -> bool {
    matches!(
        task.status.state.as_str(),
        "complete" | "failed" | "rejected" | "shutdown" | "orphaned" | "remove"
    )
}

/// Waits for the one task of a helper service to end: at most the pending timeout before
/// it starts, then `timeout` once it works.
async fn wait_ended(
    client: &Client,
    settings: &HelperSettings,
    node_name: &str,
    timeout: Duration,
    service: &str,
) -> Result<Task, HelperError> {
    let node = node_name.to_owned();
    let engine = HelperError::engine(node_name);
    let created = Instant::now();
    let mut started: Option<Instant> = None;
    loop {
        let tasks = client.tasks(&Filters::new().with("service", service)).await.map_err(&engine)?;
        let task = tasks.into_iter().max_by(|a, b| a.status.timestamp.cmp(&b.status.timestamp));
        if let Some(t) = task.as_ref().filter(|t| terminal(t)) {
            return Ok(t.clone());
        }
        if pending(task.as_ref()) {
            if created.elapsed() >= settings.pending_timeout {
                let message =
                    task.map(|t| task_words(&t)).unwrap_or_else(|| "no task was created".to_owned());
                return Err(HelperError::Pending { node, after: settings.pending_timeout, message });
            }
        } else if started.get_or_insert_with(Instant::now).elapsed() >= timeout {
            return Err(HelperError::Timeout { node, after: timeout });
        }
        tokio::time::sleep(settings.poll).await;
    }
}

/// Waits for the helper's task to end (pending, then working), then reads its lines.
async fn follow(
    client: &Client,
    settings: &HelperSettings,
    run: &HelperRun<'_>,
    service: &str,
) -> Result<HelperOutput, HelperError> {
    let node = run.node_name.to_owned();
    let engine = HelperError::engine(run.node_name);
    let task = wait_ended(client, settings, run.node_name, run.timeout, service).await?;
    let exit_code = task.status.container_status.as_ref().map_or(-1, |c| c.exit_code);
    // The logs are the agent's report; a finished task's json-file logs are complete, but
    // give the engine a moment if the closing line is not there yet.
    let mut attempt = 0;
    loop {
        let (lines, diagnostics) = read_lines(client, service).await.map_err(&engine)?;
        let done = lines.last() == Some(&AgentLine::Done);
        if task.status.state == "complete" && done {
            return Ok(HelperOutput { lines });
        }
        attempt += 1;
        if task.status.state != "complete" || attempt >= 10 {
            let mut message = diagnostics.text().trim().to_owned();
            if message.is_empty() {
                message = task_words(&task);
            }
            if task.status.state == "complete" {
                message = format!("the agent's report is incomplete: {message}");
            }
            return Err(HelperError::Failed { node, state: task.status.state, exit_code, message });
        }
        tokio::time::sleep(settings.poll).await;
    }
}

/// The agent's lines in the service's logs, and the tail of everything else.
async fn read_lines(
    client: &Client,
    service: &str,
) -> Result<(Vec<AgentLine>, Tail), dockhand_engine::Error> {
    let mut logs = client.service_logs(service, &LogsOptions::new()).await?;
    let (mut lines, mut other) = (Vec::new(), Tail::new(2048));
    let (mut pending, mut read) = (Vec::<u8>::new(), 0u64);
    while let Some(chunk) = logs.next().await {
        let chunk = chunk?;
        read += chunk.data.len() as u64;
        if read > MAX_LOG_BYTES {
            break;
        }
        if chunk.stream != StreamKind::Stdout {
            other.push(&chunk.data);
            continue;
        }
        pending.extend_from_slice(&chunk.data);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line);
            match AgentLine::parse(&text) {
                Some(line) => lines.push(line),
                None => other.push(text.as_bytes()),
            }
        }
    }
    Ok((lines, other))
}

/// Removes the helper services of the job `job` (one whose process died); returns how many.
/// Its volume containers and transfer networks go with the next job on its target, or the
/// reconcile that takes the target's lock (`clear_leftovers`).
pub async fn remove_job_helpers(client: &Client, job: &str) -> Result<usize, dockhand_engine::Error> {
    let services = client.services(&Filters::new().with("label", format!("{HELPER_LABEL}={job}"))).await?;
    for service in &services {
        tracing::info!(service = %service.spec.name, job, "removing a helper of an interrupted job");
        remove_quietly(client, &service.id).await?;
    }
    Ok(services.len())
}

/// Clears what a killed dockhand left on `target` (`node/<id>` or `service/<id>`):
/// finished helpers (and ones that never left pending) are removed; a helper still working
/// means the target is busy, and its job is returned.
pub(crate) async fn clear_leftovers(
    client: &dyn crate::swarm::Swarm,
    target: &str,
) -> Result<Option<String>, dockhand_engine::Error> {
    let label = format!("{HELPER_TARGET_LABEL}={target}");
    for service in client.services(&Filters::new().with("label", label)).await? {
        let tasks = client.tasks(&Filters::new().with("service", &service.id)).await?;
        if tasks.iter().any(|t| !terminal(t) && !pending(Some(t))) {
            return Ok(Some(service.spec.labels.get(HELPER_LABEL).cloned().unwrap_or_default()));
        }
        tracing::info!(service = %service.spec.name, "removing a finished helper left behind");
        remove_quietly(client, &service.id).await?;
    }
    // A volume container (a backup's or restore's on this node) is only ever used under
    // the target's lock, which the caller now holds: one left is a dead job's.
    let label = format!("{HELPER_TARGET_LABEL}={target}");
    for container in client.containers(&Filters::new().with("label", label.clone())).await? {
        tracing::info!(container = %container.id, "removing a volume container left behind");
        client.remove_container(&container.id).await?;
    }
    // And a transfer network, once its helper and relay are gone.
    for network in client.networks(&Filters::new().with("label", label)).await? {
        tracing::info!(network = %network.name, "removing a transfer network left behind");
        if let Err(e) = client.remove_network(&network.id).await {
            tracing::warn!(network = %network.name, error = %e, "cannot remove a transfer network yet");
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_container_id_comes_from_the_hostname_mount() {
        let id = "6f1a".repeat(16);
        let mountinfo = format!(
            "591 590 0:52 / / rw,relatime - overlay overlay rw\n\
             601 591 8:1 /var/lib/docker/containers/{id}/hostname /etc/hostname rw - ext4 /dev/sda1 rw\n"
        );
        assert_eq!(container_id_from_mountinfo(&mountinfo), Some(id));
        assert_eq!(container_id_from_mountinfo("22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"), None);
        let short = "601 591 8:1 /var/lib/docker/containers/abc/hostname /etc/hostname rw - ext4 x rw";
        assert_eq!(container_id_from_mountinfo(short), None);
    }

    /// R3-18: helpers drop every capability but what their volume work needs, gain no
    /// privileges and run on a read-only root; a node's backup.exec sees its volumes
    /// read-only unless a label says otherwise.
    #[test]
    fn helpers_are_hardened_and_exec_volumes_read_only() {
        let run = |access: Access| HelperRun {
            job: "j1",
            action: "clean-node",
            target: "node/n1".into(),
            node_id: "n1",
            node_name: "node1",
            task: AgentTask::Hold { seconds: 60 },
            timeout: Duration::from_secs(60),
            access,
        };
        let settings = HelperSettings::new("img@sha256:x");
        let socket = Access { socket: true, volume: None, network: None };
        let reading = Access { socket: false, volume: Some(("v".into(), true)), network: None };
        let writing = Access { socket: false, volume: Some(("v".into(), false)), network: None };
        for (access, caps) in
            [(socket, vec![]), (reading, vec!["CAP_DAC_READ_SEARCH"]), (writing, VOLUME_WRITE_CAPS.to_vec())]
        {
            let json = serde_json::to_value(spec(&settings, "img@sha256:x", &run(access))).unwrap();
            let c = &json["TaskTemplate"]["ContainerSpec"];
            assert_eq!(c["CapabilityDrop"], serde_json::json!(["ALL"]), "{c}");
            assert_eq!(c["CapabilityAdd"].as_array().map(Vec::len).unwrap_or(0), caps.len(), "{c}");
            assert_eq!(
                (c["ReadOnly"].as_bool(), c["Privileges"]["NoNewPrivileges"].as_bool()),
                (Some(true), Some(true))
            );
        }
        let volumes = ["db".to_owned()];
        let command = |read_write| CommandRun {
            job: "j1",
            action: "backup-node",
            target: "node/n1".into(),
            node_id: "n1",
            node_name: "node1",
            image: "keinos/sqlite3:3.46",
            argv: vec!["/bin/sh".into(), "-c".into(), "true".into()],
            volumes: &volumes,
            read_write,
            timeout: Duration::from_secs(60),
        };
        let mount = |read_write| {
            let json = serde_json::to_value(command_spec(&command(read_write))).unwrap();
            json["TaskTemplate"]["ContainerSpec"]["Mounts"][0]["ReadOnly"].as_bool().unwrap_or(false)
        };
        assert!(mount(false), "read-only by default");
        assert!(!mount(true), "backup.exec.read-write=true");
    }

    /// R3-04: only a digest names what every node runs; without an image, a helper's error
    /// says why and what to set.
    #[test]
    fn a_helper_image_is_pinned_or_absent_with_a_reason() {
        let hex = "a".repeat(64);
        assert!(pinned(&format!("registry.example.com/dockhand@sha256:{hex}")));
        assert!(pinned(&format!("dockhand/dockhand:0.1.0@sha256:{hex}")));
        for not in
            ["dockhand/dockhand:0.1.0", &format!("@sha256:{hex}"), "x@sha256:abc", &format!("sha256:{hex}")]
        {
            assert!(!pinned(not), "{not}");
        }
        let none = HelperSettings::default();
        let e = none.check().unwrap_err().to_string();
        assert!(e.contains("--helper-image") && e.contains("DOCKHAND_HELPER_IMAGE"), "{e}");
        assert!(e.contains("dockhand helper-image push"), "{e}");
        let why = HelperSettings::without_image("this service runs x:1, which is not pinned");
        assert!(
            why.check()
                .unwrap_err()
                .to_string()
                .starts_with("this service runs x:1, which is not pinned: set")
        );
        assert_eq!(HelperSettings::new("img@sha256:x").check(), Ok(()));
    }

    #[tokio::test]
    async fn without_an_image_only_the_connected_node_runs_dockhands_own() {
        let client = Client::new("unix:///nonexistent/docker.sock".parse().unwrap()).unwrap();
        let own = OwnHelperImage::new(client, OwnExecutable::running(), "node-a", "host-a");
        let settings = HelperSettings::without_image("no helper image is set").with_own_image(own);
        assert_eq!(settings.check(), Ok(()));
        let elsewhere = settings.image_for("node-b").await.unwrap_err();
        assert!(
            elsewhere.contains("host-a only") && elsewhere.contains("dockhand helper-image push"),
            "{elsewhere}"
        );
        // Here, it is made on the engine: with none answering, why it cannot be.
        let here = settings.image_for("node-a").await.unwrap_err();
        assert!(here.contains("import the helper image dockhand/helper:"), "{here}");
        assert_eq!(HelperSettings::new("img@sha256:x").image_for("node-b").await.unwrap(), "img@sha256:x");
    }
}
