//! update-service: deploy exactly the image that was asked for, on every node, and say why
//! when it fails.
//!
//! 1. **Policy** first: `update.enable`, then the image rule (`update.image-allow`, else the
//!    service's own repository). A refusal names the rule.
//! 2. **Credentials** ([`Registries`]), sent only as `X-Registry-Auth`.
//! 3. **Resolve** the reference to a digest through the engine (`GET /distribution`), and
//!    pin `name:tag@sha256:…` in the spec. The same digest without `force` is a no-op.
//! 4. **`update.exec-pre`** in every running task; a failure stops the update.
//! 5. **Update** and wait on the service's `UpdateStatus` within the update timeout.
//!    Paused, or rolled back by the engine, is a failure, reported with the failing task's
//!    error, exit code and last log lines.
//! 6. **`update.exec-post`** in every new task; a failure fails the job.
//! 7. **Rollback** (`update.rollback=auto`, the default) after a failed update or post-hook:
//!    back to the previous spec, waited on like the update. A failed rollback is a failed
//!    step of its own.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use dockhand_engine::{Filters, LogsOptions, Service, StreamKind, Task, UpdateOptions, UpdateStatus};
use dockhand_policy::{
    Defaults, ImageRef, LabelPrefixes, TargetLabels, UpdatePolicy, check_image, service_policy,
};

use crate::agent::protocol::Budget;
use crate::job::{Action, Job, Sink, Status, Step, Target};
use crate::lock::LockTarget;
pub use crate::manifests::{ManifestError, ManifestHead, Manifests, RegistryClient};
pub use crate::plan::Watched;
pub use crate::registry::{
    DOCKER_HUB_SERVER, NamedRegistry, PullCredential, Registries, RegistryError, docker_config_credential,
    server_key,
};
use crate::runner::{JobContext, JobError, Running};
use crate::steps::exec::exec_in_tasks;
use crate::steps::lookup::{budget_source, find_service, hostnames, manager};
use crate::swarm::Connected;
use crate::tail::{OUTPUT_TAIL, Tail};
pub use crate::watch::{Watcher, any_watched, look as watch_look, running_repository};

/// What was asked: the image (none: redeploy the current tag), `force` (recreate the tasks
/// even when the digest is the same), and whether a failure may roll back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UpdateRequest {
    /// The image reference; `None` redeploys the service's current tag.
    pub image: Option<String>,
    /// Recreate the tasks even when the image is unchanged (the seed's `isForce`).
    pub force: bool,
    /// Never roll back, whatever `update.rollback` says.
    pub no_rollback: bool,
}

impl UpdateRequest {
    /// An update to `image` (or the current tag), without force.
    pub fn new(image: Option<String>) -> Self {
        Self { image, ..Self::default() }
    }

    /// Recreates the tasks even when the image is unchanged.
    pub fn with_force(mut self, force: bool) -> Self {
        self.force = force;
        self
    }

    /// Never rolls back.
    pub fn without_rollback(mut self, no_rollback: bool) -> Self {
        self.no_rollback = no_rollback;
        self
    }
}

/// What update-service will do, or why it will not: the pure half.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UpdatePlan {
    /// Deploy `reference` (no digest yet), parsed as `image`.
    Deploy {
        /// The labels' policy.
        policy: Box<UpdatePolicy>,
        /// The reference as asked (or the current tag), without a digest.
        reference: String,
        /// A digest the request pinned itself, if any.
        digest: Option<String>,
        /// The parsed reference.
        image: ImageRef,
    },
    /// The labels do not allow it; the reason names the rule.
    Refuse(String),
}

/// Plans update-service of `service` to `requested` (or its current tag).
pub fn plan_update(
    service: &Service,
    requested: Option<&str>,
    defaults: &Defaults,
    prefixes: &LabelPrefixes,
) -> UpdatePlan {
    let labels = &service.spec.labels;
    let view = TargetLabels::resolve(labels, prefixes);
    let (policy, _) = service_policy(labels, service.spec.is_global(), defaults, prefixes);
    let name = &service.spec.name;
    let Some(policy) = policy.update else {
        return UpdatePlan::Refuse(format!(
            "service {name} does not allow update-service: it needs the label {}=true",
            view.key_for("update.enable")
        ));
    };
    let current = &service.spec.task_template.container_spec.image;
    let current_tag = without_digest(current);
    let asked = requested.map(str::trim).filter(|r| !r.is_empty()).unwrap_or(current_tag);
    let image = match check_image(
        asked,
        current_tag,
        policy.image_allow.as_deref(),
        &view.key_for("update.image-allow"),
    ) {
        Ok(image) => image,
        Err(e) => return UpdatePlan::Refuse(format!("service {name}: {e}")),
    };
    let (reference, digest) = match asked.split_once('@') {
        Some((reference, digest)) => (reference.to_owned(), Some(digest.to_owned())),
        None => (asked.to_owned(), None),
    };
    UpdatePlan::Deploy { policy: Box::new(policy), reference, digest, image }
}

/// `name:tag@sha256:…` without its digest.
fn without_digest(image: &str) -> &str {
    image.split_once('@').map_or(image, |(reference, _)| reference)
}

/// The digest `name:tag@sha256:…` pins, if any.
fn digest_of(image: &str) -> Option<&str> {
    image.split_once('@').map(|(_, digest)| digest)
}

/// Updates `service` (a name or ID) as `request` asks.
pub async fn update_service(
    ctx: &JobContext,
    registries: &Registries,
    service: &str,
    request: &UpdateRequest,
    sink: &dyn Sink,
) -> Result<Job, JobError> {
    let connected = manager(ctx).await?;
    let found = find_service(ctx, service).await?;
    let names = hostnames(ctx).await?;
    let target = Target::Service { id: found.id.clone(), name: found.spec.name.clone() };
    let mut run = Running::start(ctx, sink, Action::UpdateService, target);
    let status = Update { ctx, connected: &connected, names: &names, service: &found, request, registries }
        .run(&mut run)
        .await;
    Ok(run.finish(status).await)
}

struct Update<'a> {
    ctx: &'a JobContext,
    connected: &'a Connected,
    names: &'a BTreeMap<String, String>,
    service: &'a Service,
    request: &'a UpdateRequest,
    registries: &'a Registries,
}

/// How a wait on the service's `UpdateStatus` ended.
enum Settled {
    /// `completed` (or `rollback_completed`, for a rollback).
    Done,
    /// Paused, or rolled back by the engine: the state and its message.
    Failed(UpdateStatus),
    /// Out of time, in this state.
    OutOfTime(Option<UpdateStatus>),
    /// The engine could not be read.
    Engine(String),
}

impl Update<'_> {
    /// The steps; `Some` when the job's status is not the steps' aggregate.
    async fn run(&self, run: &mut Running<'_>) -> Option<Status> {
        let ctx = run.ctx;
        let name = &self.service.spec.name;
        let (policy, reference, pinned_digest, image) =
            match plan_update(self.service, self.request.image.as_deref(), &ctx.defaults, &ctx.prefixes) {
                UpdatePlan::Refuse(reason) => {
                    run.push_now("policy", Status::Refused, reason);
                    return Some(Status::Refused);
                }
                UpdatePlan::Deploy { policy, reference, digest, image } => (policy, reference, digest, image),
            };
        if let Err(status) = run.lock(LockTarget::Service(self.service.id.clone())).await {
            return status;
        }
        let view = TargetLabels::resolve(&self.service.spec.labels, &ctx.prefixes);

        // Credentials and the digest.
        let mut step = Step::start("resolve", SystemTime::now());
        run.started(&step);
        let credential = match self.registries.credential_for(&image, name, &policy, &view).await {
            Ok(c) => c,
            Err(e) => {
                step.finish(Status::Failed, SystemTime::now(), Some(e.to_string()));
                run.push(step);
                return None;
            }
        };
        let asked = match &pinned_digest {
            Some(d) => format!("{reference}@{d}"),
            None => reference.clone(),
        };
        let auth = credential.as_ref().map(|c| &c.auth);
        let credentials = match &credential {
            Some(c) => format!(
                "credentials: {}{}",
                c.source,
                c.username.as_ref().map(|u| format!(", user {u}")).unwrap_or_default()
            ),
            None => "no credentials: an anonymous pull".to_owned(),
        };
        let current = self.service.spec.task_template.container_spec.image.clone();
        let resolved = match ctx.swarm.distribution(&asked, auth).await {
            Ok(found) if !found.descriptor.digest.is_empty() => Ok(Some(found.descriptor.digest)),
            Ok(_) => Err(format!("the registry {} gave no digest for {asked}", image.domain())),
            // An image that is in no registry (built or tagged on the node) is deployed by
            // tag, as `docker service update` does, saying so; never after a refused login.
            Err(e) if !refused_login(&e.to_string()) && ctx.swarm.image(&asked).await.is_ok() => {
                step.output_tail = Some(format!(
                    "{asked} is in no registry ({e}); deployed by tag, unpinned: only nodes that have it can \
                     run it; now {current}"
                ));
                Ok(None)
            }
            Err(e) => Err(format!(
                "cannot resolve {asked} on the registry {}{}: {e}",
                image.domain(),
                as_whom(&credential)
            )),
        };
        let digest = match resolved {
            Ok(digest) => digest,
            Err(e) => {
                step.finish(Status::Failed, SystemTime::now(), Some(e));
                run.push(step);
                return None;
            }
        };
        let pinned = match &digest {
            Some(d) => format!("{reference}@{d}"),
            None => reference.clone(),
        };
        run.job.image = Some(pinned.clone());
        let old_digest = digest_of(&current).map(str::to_owned);
        if let Some(d) = &digest {
            step.output_tail = Some(format!("{asked} is {d} ({credentials}); now {current}"));
        }
        step.finish(Status::Succeeded, SystemTime::now(), None);
        run.push(step);
        let unchanged = match &digest {
            Some(d) => old_digest.as_deref() == Some(d.as_str()),
            None => current == pinned,
        };
        if unchanged && !self.request.force {
            run.push_now(
                "update",
                Status::Skipped,
                format!("already up to date: service {name} runs {pinned}; use force to recreate its tasks"),
            );
            return None;
        }

        // The pre-hook, in the old tasks.
        if let Some(pre) = &policy.exec_pre
            && !self.hook(run, "exec-pre", &policy, pre, &view).await
        {
            run.push_now("update", Status::Skipped, "not updated: the exec-pre hook failed".to_owned());
            return None;
        }

        // The update, and the wait.
        let timeout = policy.timeout;
        let timeout_source = budget_source(&view, "update.timeout");
        let mut step = Step::start("update", SystemTime::now());
        run.started(&step);
        let before = match ctx.swarm.service(&self.service.id).await {
            Ok(s) => s.update_status.map(|u| u.started_at),
            Err(e) => {
                step.finish(Status::Failed, SystemTime::now(), Some(e.to_string()));
                run.push(step);
                return None;
            }
        };
        let mut options = UpdateOptions::new();
        if let Some(c) = &credential {
            options = options.with_registry_auth(c.auth.clone());
        }
        let force = self.request.force;
        let updated = crate::swarm::modify_service(&*ctx.swarm, &self.service.id, &options, |spec| {
            spec.task_template.container_spec.image = pinned.clone();
            if force {
                spec.task_template.force_update = spec.task_template.force_update.wrapping_add(1);
            }
            Ok(())
        })
        .await;
        if let Err(e) = updated {
            let e = format!("the engine refused the update to {pinned}: {e}");
            step.finish(Status::Failed, SystemTime::now(), Some(e));
            run.push(step);
            return None;
        }
        let settled = self.settle(run, before.as_deref(), &pinned, timeout, false).await;
        let change = format!(
            "{} → {}",
            old_digest.as_deref().map_or_else(|| format!("{current} (no digest)"), str::to_owned),
            digest.as_deref().unwrap_or("the tag, unpinned")
        );
        let failed = match settled {
            Settled::Done => {
                step.output_tail = Some(format!("{name} runs {pinned}: {change}"));
                step.finish(Status::Succeeded, SystemTime::now(), None);
                run.push(step);
                false
            }
            other => {
                let (report, exit, tail) = self.failure(other, &pinned, timeout, &timeout_source).await;
                step.exit_code = exit;
                step.output_tail = tail;
                step.finish(Status::Failed, SystemTime::now(), Some(report));
                run.push(step);
                true
            }
        };

        // The post-hook, in the new tasks.
        let post_failed = match (failed, &policy.exec_post) {
            (false, Some(post)) => !self.hook(run, "exec-post", &policy, post, &view).await,
            _ => false,
        };
        if !failed && !post_failed {
            if policy.cleanup && current != pinned {
                cleanup::remove_previous(run, self.connected, self.names, self.service, &current).await;
            }
            return None;
        }
        if ctx.cancel.is_cancelled() {
            // Whoever cancelled stopped the waiting, not the engine's rolling update.
            run.push_now(
                "rollback",
                Status::Skipped,
                "not rolled back: the job was cancelled; the engine goes on with the update".to_owned(),
            );
            return None;
        }
        if !policy.rollback || self.request.no_rollback {
            let why = if self.request.no_rollback {
                "the request said no rollback".to_owned()
            } else {
                format!("{}=never", view.key_for("update.rollback"))
            };
            run.push_now(
                "rollback",
                Status::Skipped,
                format!("not rolled back: {why}; the service stays as it is"),
            );
            return None;
        }
        self.roll_back(run, timeout).await;
        None
    }

    /// Runs a hook in every running task; true when every exec succeeded.
    async fn hook(
        &self,
        run: &mut Running<'_>,
        kind: &str,
        policy: &UpdatePolicy,
        command: &str,
        view: &TargetLabels<'_>,
    ) -> bool {
        let argv = vec![policy.shell.clone(), "-c".to_owned(), command.to_owned()];
        let budget = Budget::new(policy.exec_timeout, budget_source(view, "update.exec.timeout"));
        let first = run.job.steps.len();
        exec_in_tasks(run, self.connected, self.names, self.service, &argv, &budget, Action::UpdateService)
            .await;
        for step in &mut run.job.steps[first..] {
            if step.kind == "exec" {
                step.kind = kind.to_owned();
            }
        }
        run.job.steps[first..].iter().all(|s| s.status != Status::Failed)
    }

    /// Waits until the update (or, with `rollback`, the rollback) that started after
    /// `before` settles, reporting tasks updated out of the total.
    async fn settle(
        &self,
        run: &Running<'_>,
        before: Option<&str>,
        image: &str,
        timeout: Duration,
        rollback: bool,
    ) -> Settled {
        let ctx = run.ctx;
        let started = tokio::time::Instant::now();
        let mut last_said = String::new();
        loop {
            if ctx.cancel.is_cancelled() {
                return Settled::Engine("cancelled".to_owned());
            }
            let service = match ctx.swarm.service(&self.service.id).await {
                Ok(s) => s,
                Err(e) => return Settled::Engine(e.to_string()),
            };
            // No task to replace: the engine never reports a rolling update of a service
            // scaled to zero as completed; its new spec is all there is to it.
            if service.spec.replicas() == Some(0) {
                return Settled::Done;
            }
            let status = service.update_status.clone().filter(|u| Some(u.started_at.as_str()) != before);
            if let Some(u) = &status {
                match (u.state.as_str(), rollback) {
                    ("completed", false) | ("rollback_completed", true) => return Settled::Done,
                    ("paused" | "rollback_paused" | "rollback_started" | "rollback_completed", false)
                    | ("paused" | "rollback_paused", true) => return Settled::Failed(u.clone()),
                    _ => {}
                }
            }
            if let Ok((updated, total)) = self.count(&service, image).await {
                let state = status.as_ref().map_or("starting", |u| u.state.as_str());
                let said = format!("{updated}/{total} tasks run {image} ({state})");
                if said != last_said {
                    run.progress(format!("{}: {said}", if rollback { "rollback" } else { "update" }));
                    last_said = said;
                }
            }
            if started.elapsed() >= timeout {
                return Settled::OutOfTime(status);
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(250)) => {}
                () = ctx.cancel.cancelled() => {}
            }
        }
    }

    /// Running tasks on `image`, and how many should run.
    async fn count(&self, service: &Service, image: &str) -> Result<(usize, usize), dockhand_engine::Error> {
        let filters = Filters::new().with("service", &service.id).with("desired-state", "running");
        let tasks = self.ctx.swarm.tasks(&filters).await?;
        let updated = tasks
            .iter()
            .filter(|t| t.status.state == "running" && t.spec.container_spec.image == image)
            .count();
        let total = match service.spec.replicas() {
            Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
            None => tasks.len(),
        };
        Ok((updated, total))
    }

    /// Why the update failed: the state's message, the failing task's error and exit code,
    /// and its last log lines (or why there are none).
    async fn failure(
        &self,
        settled: Settled,
        image: &str,
        timeout: Duration,
        timeout_source: &str,
    ) -> (String, Option<i64>, Option<String>) {
        let name = &self.service.spec.name;
        let (mut report, message) = match settled {
            Settled::Done => (String::new(), String::new()),
            Settled::Failed(u) => (format!("update {}: {}", u.state.replace('_', " "), u.message), u.message),
            Settled::OutOfTime(u) => (
                format!(
                    "service {name} did not converge on {image} within its {} ({timeout_source}){}",
                    dockhand_policy::format_go_duration(timeout),
                    u.map(|u| format!("; the update is {}: {}", u.state.replace('_', " "), u.message))
                        .unwrap_or_default()
                ),
                String::new(),
            ),
            Settled::Engine(e) => (format!("cannot follow the update: {e}"), String::new()),
        };
        let Some(task) = self.failing_task(&message, image).await else {
            return (report, None, None);
        };
        let exit = task.status.container_status.as_ref().map(|c| c.exit_code).filter(|c| *c != 0);
        let node = self.names.get(&task.node_id).cloned().unwrap_or_else(|| task.node_id.clone());
        let err =
            if task.status.err.is_empty() { task.status.message.clone() } else { task.status.err.clone() };
        report.push_str(&format!("; task {} on {node}: {err}", short(&task.id)));
        if let Some(code) = exit {
            report.push_str(&format!(" (exit code {code})"));
        }
        let tail = self.last_lines(&task).await;
        (report, exit, Some(tail))
    }

    /// The task the engine names in `message` ("… of task ID"), else the newest failed
    /// task on `image`.
    async fn failing_task(&self, message: &str, image: &str) -> Option<Task> {
        let swarm = &self.ctx.swarm;
        if let Some(id) = message.split_whitespace().last().filter(|w| w.len() >= 12)
            && let Ok(task) = swarm.task(id).await
        {
            return Some(task);
        }
        let mut tasks = swarm.tasks(&Filters::new().with("service", &self.service.id)).await.ok()?;
        tasks.retain(|t| {
            t.spec.container_spec.image == image && matches!(t.status.state.as_str(), "failed" | "rejected")
        });
        tasks.sort_by(|a, b| a.status.timestamp.cmp(&b.status.timestamp));
        tasks.pop()
    }

    /// The task's last log lines, or why there are none (seed problem 14: a log driver the
    /// engine cannot read back).
    async fn last_lines(&self, task: &Task) -> String {
        let driver = task
            .spec
            .log_driver
            .as_ref()
            .or(self.service.spec.task_template.log_driver.as_ref())
            .map(|d| d.name.clone());
        let mut stream = match self.ctx.client.task_logs(&task.id, &LogsOptions::new().tail(LOG_LINES)).await
        {
            Ok(stream) => stream,
            Err(e) => {
                return format!(
                    "no logs of task {}: the engine cannot read them back (its log driver is {}): {e}",
                    short(&task.id),
                    driver.as_deref().unwrap_or("the engine's default")
                );
            }
        };
        let mut tail = Tail::new(OUTPUT_TAIL);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            tokio::select! {
                chunk = stream.next() => match chunk {
                    Some(Ok(c)) if c.stream != StreamKind::Stdin => tail.push(&c.data),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        tail.push(format!("\n(the logs broke off: {e})").as_bytes());
                        break;
                    }
                    None => break,
                },
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        let text = tail.text();
        if !text.trim().is_empty() {
            return text;
        }
        // Nothing came back: either the task wrote nothing, or its driver keeps nothing the
        // engine can read (the engine answers such a driver with an empty stream).
        let driver = match driver {
            Some(d) if !d.is_empty() => d,
            _ => self.ctx.client.info().await.map(|i| i.logging_driver).unwrap_or_default(),
        };
        if READABLE_LOG_DRIVERS.contains(&driver.as_str()) {
            format!("task {} wrote no logs before it failed", short(&task.id))
        } else {
            format!(
                "no logs of task {}: its log driver ({}) keeps nothing the engine can read back; look where that \
                 driver sends them",
                short(&task.id),
                if driver.is_empty() { "unknown" } else { driver.as_str() }
            )
        }
    }

    /// Back to the previous spec, waited on like the update.
    async fn roll_back(&self, run: &mut Running<'_>, timeout: Duration) {
        let swarm = &self.ctx.swarm;
        let mut step = Step::start("rollback", SystemTime::now());
        run.started(&step);
        let service = match swarm.service(&self.service.id).await {
            Ok(s) => s,
            Err(e) => {
                step.finish(Status::Failed, SystemTime::now(), Some(format!("the rollback failed: {e}")));
                run.push(step);
                return;
            }
        };
        let previous = service
            .previous_spec
            .as_ref()
            .map(|p| p.task_template.container_spec.image.clone())
            .unwrap_or_else(|| "the previous spec".to_owned());
        let engine_rolls_back =
            service.update_status.as_ref().is_some_and(|u| u.state.starts_with("rollback"));
        let before = if engine_rolls_back {
            // The service's own failure action already rolls it back: wait on that.
            None
        } else {
            let before = service.update_status.as_ref().map(|u| u.started_at.clone());
            if let Err(e) = swarm
                .update_service(
                    &service.id,
                    service.version.index,
                    &service.spec,
                    &UpdateOptions::new().rollback(),
                )
                .await
            {
                step.finish(Status::Failed, SystemTime::now(), Some(format!("the rollback failed: {e}")));
                run.push(step);
                return;
            }
            before
        };
        // Without a `before`, any status counts: the engine's own rollback, as it comes.
        let settled = self.settle(run, before.as_deref(), &previous, timeout, true).await;
        match settled {
            Settled::Done => {
                step.output_tail = Some(format!("rolled back to {previous}"));
                step.finish(Status::Succeeded, SystemTime::now(), None);
            }
            Settled::Failed(u) => step.finish(
                Status::Failed,
                SystemTime::now(),
                Some(format!(
                    "the rollback to {previous} failed: {} {}",
                    u.state.replace('_', " "),
                    u.message
                )),
            ),
            Settled::OutOfTime(_) => step.finish(
                Status::Failed,
                SystemTime::now(),
                Some(format!(
                    "the rollback to {previous} did not complete within {}",
                    dockhand_policy::format_go_duration(timeout)
                )),
            ),
            Settled::Engine(e) => {
                step.finish(Status::Failed, SystemTime::now(), Some(format!("the rollback failed: {e}")));
            }
        }
        run.push(step);
    }
}

/// Whether the engine's answer says the registry refused the credentials (or their
/// absence): then an image of the same name on the node is no reason to go on.
fn refused_login(error: &str) -> bool {
    let e = error.to_ascii_lowercase();
    ["unauthorized", "authentication required", "no basic auth credentials", "denied", "401", "403"]
        .iter()
        .any(|m| e.contains(m))
}

/// The log drivers whose logs the engine reads back for `docker service logs`.
const READABLE_LOG_DRIVERS: [&str; 3] = ["json-file", "local", "journald"];

/// How many lines of a failed task's log a report keeps.
const LOG_LINES: u64 = 20;

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// ` as user U (credentials from SOURCE)`, or nothing for an anonymous pull.
fn as_whom(credential: &Option<PullCredential>) -> String {
    match credential {
        Some(c) => match &c.username {
            Some(user) => format!(" as user {user} (credentials from {})", c.source),
            None => format!(" with an identity token (from {})", c.source),
        },
        None => " without credentials".to_owned(),
    }
}

mod cleanup;

#[cfg(test)]
mod tests;
