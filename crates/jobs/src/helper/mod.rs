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

use std::time::{Duration, Instant};

use dockhand_engine::{Client, Filters, LogsOptions, ServiceSpec, StreamKind, Task};
use tokio_util::sync::CancellationToken;

use crate::agent::protocol::{AgentLine, AgentTask};
use crate::tail::Tail;

pub(crate) mod image;

use image::HelperSettings;

/// The label every helper service carries; its value is the job's ID.
pub const HELPER_LABEL: &str = "dockhand.helper";
/// The helper's target (`node/<id>` or `service/<id>`): what leftovers are matched on.
pub const HELPER_TARGET_LABEL: &str = "dockhand.helper.target";
/// The helper's action (`clean-node`, ...).
pub const HELPER_ACTION_LABEL: &str = "dockhand.helper.action";

/// Where the agent finds the node's engine inside the helper container.
pub(crate) const AGENT_SOCKET: &str = "/var/run/docker.sock";
/// The most of a helper's logs read back: its lines are bounded, so this is a guard.
const MAX_LOG_BYTES: u64 = 16 * 1024 * 1024;

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
mod tests;
