//! An in-memory swarm for this crate's tests: services with versions (compare-and-swap
//! updates), tasks that follow a service's replica count, nodes, configs (exclusive create,
//! versioned update), containers and networks, an engine clock the test moves, a log of
//! every write in order, and faults a test arms (the next N calls of a method fail).
//!
//! It proves the logic (the order of steps, every exit path, the lock protocol); the
//! end-to-end suite proves the same calls against a real swarm.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, UNIX_EPOCH};

use dockhand_engine::{
    ConfigSpec, ContainerSummary, DistributionInspect, Error, Filters, ImageInspect, Info, Network, Node,
    RegistryAuth, Service, ServiceSpec, SwarmConfig, Task, UpdateOptions, UpdateStatus,
};

use super::Swarm;

/// How an armed fault fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// 500 `update out of sequence`.
    OutOfSequence,
    /// 500, anything else.
    Broken,
}

#[derive(Debug, Default)]
struct State {
    clock_ms: u64,
    next_id: u64,
    info: Info,
    nodes: Vec<Node>,
    services: Vec<Service>,
    /// Services whose tasks do not follow their replica count (they hang).
    stuck: Vec<String>,
    tasks: Vec<Task>,
    configs: Vec<SwarmConfig>,
    containers: Vec<ContainerSummary>,
    images: Vec<ImageInspect>,
    networks: Vec<Network>,
    faults: Vec<(&'static str, usize, Fault)>,
    /// What an exec in a container answers: its exit code and output, or `None` to hang.
    execs: BTreeMap<String, Option<(i64, String)>>,
    /// The registry: image reference (`repo:tag`) → its digest.
    registry: BTreeMap<String, String>,
    /// How many times the registry was asked.
    registry_asked: usize,
    /// What the registry says is left of its rate limit, on each manifest answer.
    rate_limit: Option<u64>,
    /// How the next image updates of a service end (`completed` when none is left): the
    /// state and the engine's message.
    outcomes: BTreeMap<String, Vec<(String, String)>>,
    log: Vec<String>,
}

/// A job context on `swarm`, as a front-end makes one: its client is never dialled (an
/// effect that bypassed the swarm would fail the test with a connection error).
pub(crate) fn context(swarm: &std::sync::Arc<FakeSwarm>) -> crate::runner::JobContext {
    let client =
        dockhand_engine::Client::new(dockhand_engine::Endpoint::unix("/nonexistent/dockhand-test.sock"))
            .unwrap_or_else(|e| panic!("a client for tests: {e}"));
    crate::runner::JobContext::new(client, "test", crate::job::Trigger::Cli, "test")
        .with_swarm(std::sync::Arc::clone(swarm) as std::sync::Arc<dyn Swarm>)
}

/// The in-memory swarm; a clone is the same swarm.
#[derive(Debug, Default, Clone)]
pub(crate) struct FakeSwarm {
    state: std::sync::Arc<Mutex<State>>,
}

/// An update's status as the engine reports it.
fn status(state: &str, started_at: &str, message: &str) -> UpdateStatus {
    let mut status = UpdateStatus::default();
    status.state = state.to_owned();
    status.started_at = started_at.to_owned();
    status.message = message.to_owned();
    status
}

fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

fn error(method: &str, path: &str, status: u16, message: &str) -> Error {
    Error::Api {
        endpoint: "fake://swarm".to_owned(),
        method: method.to_owned(),
        path: path.to_owned(),
        status,
        message: message.to_owned(),
    }
}

/// True when `labels` match every `label` filter (`key` or `key=value`).
fn labelled(labels: &BTreeMap<String, String>, filters: &Filters) -> bool {
    filters.terms().filter(|(k, _)| *k == "label").all(|(_, values)| {
        values.iter().all(|v| match v.split_once('=') {
            Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
            None => labels.contains_key(v),
        })
    })
}

/// The values of filter `key`, or `None` when it is not set.
fn term<'f>(filters: &'f Filters, key: &str) -> Option<&'f [String]> {
    filters.terms().find(|(k, _)| *k == key).map(|(_, v)| v)
}

impl FakeSwarm {
    /// A swarm of one manager node, `manager-1` (ID `n1`), with the engine clock at a fixed
    /// time.
    pub(crate) fn manager() -> Self {
        let fake = Self::default();
        {
            let mut s = fake.lock();
            s.clock_ms = 1_800_000_000_000;
            s.info.name = "manager-1".to_owned();
            s.info.swarm.node_id = "n1".to_owned();
            s.info.swarm.local_node_state = "active".to_owned();
            s.info.swarm.control_available = true;
        }
        fake.add_node("n1", "manager-1");
        fake
    }

    /// A worker's engine: it reads no services and holds no locks.
    pub(crate) fn worker() -> Self {
        let fake = Self::default();
        {
            let mut s = fake.lock();
            s.info.name = "worker-1".to_owned();
            s.info.swarm.node_id = "n2".to_owned();
            s.info.swarm.local_node_state = "active".to_owned();
        }
        fake
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a node.
    pub(crate) fn add_node(&self, id: &str, hostname: &str) {
        let mut node = Node::default();
        node.id = id.to_owned();
        node.description.hostname = hostname.to_owned();
        node.status.state = "ready".to_owned();
        node.spec.availability = "active".to_owned();
        self.lock().nodes.push(node);
    }

    /// Labels the node `id`.
    pub(crate) fn label_node(&self, id: &str, labels: &[(&str, &str)]) {
        let mut s = self.lock();
        if let Some(node) = s.nodes.iter_mut().find(|n| n.id == id) {
            node.spec.labels.extend(labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        }
    }

    /// Adds a replicated service with `replicas` running tasks on `n1`, and returns its ID.
    pub(crate) fn add_service(&self, name: &str, replicas: u64, labels: &[(&str, &str)]) -> String {
        let mut s = self.lock();
        s.next_id += 1;
        let id = format!("svc{}", s.next_id);
        let mut service = Service::default();
        service.id.clone_from(&id);
        service.version.index = s.next_id * 100;
        service.spec.name = name.to_owned();
        service.spec = std::mem::take(&mut service.spec).with_replicas(replicas);
        service.spec.labels = labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        s.services.push(service);
        Self::follow(&mut s, &id, replicas);
        id
    }

    /// Sets the image `service`'s tasks run.
    pub(crate) fn set_image(&self, service: &str, image: &str) {
        let mut s = self.lock();
        if let Some(found) = s.services.iter_mut().find(|x| x.id == service) {
            found.spec.task_template.container_spec.image = image.to_owned();
        }
    }

    /// Gives `service` a mount of the volume `volume`.
    pub(crate) fn mount(&self, service: &str, volume: &str) {
        let mut s = self.lock();
        if let Some(found) = s.services.iter_mut().find(|x| x.id == service) {
            let mut mount = dockhand_engine::ServiceMount::default();
            mount.kind = "volume".to_owned();
            mount.source = volume.to_owned();
            mount.target = format!("/{volume}");
            found.spec.task_template.container_spec.mounts.push(mount);
        }
    }

    /// Writes `line` into the log, for a stand-in of another effect (a volume's bytes), so
    /// that one log holds every effect in order.
    pub(crate) fn note(&self, line: String) {
        self.lock().log.push(line);
    }

    /// Makes `service`'s tasks stop following its replica count: they hang as they are.
    /// An image of `size` bytes on the node, known by its ID and `digest_ref`
    /// (`repo@sha256:…`), with a container of it for each of `containers`: (ID, service ID,
    /// state).
    pub(crate) fn add_image(&self, id: &str, digest_ref: &str, size: i64, containers: &[(&str, &str, &str)]) {
        let mut s = self.lock();
        let mut image = ImageInspect::default();
        image.id = id.to_owned();
        image.repo_digests = vec![digest_ref.to_owned()];
        image.size = size;
        s.images.push(image);
        for (container, service, state) in containers {
            let mut c = ContainerSummary::default();
            c.id = (*container).to_owned();
            c.image_id = id.to_owned();
            c.state = (*state).to_owned();
            c.labels.insert("com.docker.swarm.service.id".to_owned(), (*service).to_owned());
            s.containers.push(c);
        }
    }

    pub(crate) fn stick(&self, service: &str) {
        self.lock().stuck.push(service.to_owned());
    }

    /// The next `times` calls of `method` fail with `fault`.
    pub(crate) fn fail(&self, method: &'static str, times: usize, fault: Fault) {
        self.lock().faults.push((method, times, fault));
    }

    /// The registry's manifest answers say `remaining` requests are left.
    pub(crate) fn rate_limit(&self, remaining: u64) {
        self.lock().rate_limit = Some(remaining);
    }

    /// How many times the registry was asked (`GET /distribution` or a manifest `HEAD`).
    pub(crate) fn registry_asked(&self) -> usize {
        self.lock().registry_asked
    }

    /// An exec in `container` answers `exit` and prints `output`; `None`: it never ends.
    pub(crate) fn script_exec(&self, container: &str, answer: Option<(i64, &str)>) {
        self.lock().execs.insert(container.to_owned(), answer.map(|(code, out)| (code, out.to_owned())));
    }

    /// The registry serves `reference` (`repo:tag`) as `digest`.
    pub(crate) fn publish(&self, reference: &str, digest: &str) {
        self.lock().registry.insert(reference.to_owned(), digest.to_owned());
    }

    /// The next image update of `service` ends in `state` (`paused`, `rollback_completed`,
    /// `updating` for one that never ends) with the engine's `message`.
    pub(crate) fn next_update(&self, service: &str, state: &str, message: &str) {
        self.lock()
            .outcomes
            .entry(service.to_owned())
            .or_default()
            .push((state.to_owned(), message.to_owned()));
    }

    /// The container of `service`'s task in `slot`, as its tasks report it.
    pub(crate) fn container(service: &str, slot: u64) -> String {
        format!("ctr-{service}-{slot}")
    }

    /// Moves the engine's clock on.
    pub(crate) fn advance(&self, by: Duration) {
        self.lock().clock_ms += u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
    }

    /// Every write, in order: `update_service web replicas=0 intent=3`, `create_config …`.
    pub(crate) fn log(&self) -> Vec<String> {
        self.lock().log.clone()
    }

    /// The service now.
    pub(crate) fn spec(&self, id: &str) -> ServiceSpec {
        self.lock().services.iter().find(|s| s.id == id).map(|s| s.spec.clone()).unwrap_or_default()
    }

    /// The configs now.
    pub(crate) fn config_list(&self) -> Vec<SwarmConfig> {
        self.lock().configs.clone()
    }

    /// Overwrites config `name`'s labels as another writer would (its version moves on).
    pub(crate) fn overwrite_config(&self, name: &str, labels: &[(&str, &str)]) {
        let mut s = self.lock();
        let now = rfc3339(s.clock_ms);
        if let Some(c) = s.configs.iter_mut().find(|c| c.spec.name == name) {
            for (k, v) in labels {
                c.spec.labels.insert((*k).to_owned(), (*v).to_owned());
            }
            c.version.index += 1;
            c.updated_at = now;
        }
    }

    /// Removes config `name` as another process would.
    pub(crate) fn drop_config(&self, name: &str) {
        self.lock().configs.retain(|c| c.spec.name != name);
    }

    /// Running tasks of `service`, as the engine reports them.
    fn follow(s: &mut State, service: &str, replicas: u64) {
        if s.stuck.iter().any(|x| x == service) {
            return;
        }
        s.tasks.retain(|t| t.service_id != service);
        for slot in 0..replicas {
            let mut task = Task::default();
            task.id = format!("{service}.t{slot}");
            task.service_id = service.to_owned();
            task.node_id = "n1".to_owned();
            task.status.state = "running".to_owned();
            task.desired_state = "running".to_owned();
            let mut container = dockhand_engine::TaskContainer::default();
            container.container_id = Self::container(service, slot);
            task.status.container_status = Some(container);
            s.tasks.push(task);
        }
    }

    /// Fails the call when a fault is armed for `method`.
    fn check(&self, method: &'static str, path: &str) -> Result<(), Error> {
        let mut s = self.lock();
        let Some(at) = s.faults.iter().position(|(m, n, _)| *m == method && *n > 0) else { return Ok(()) };
        s.faults[at].1 -= 1;
        Err(match s.faults[at].2 {
            Fault::OutOfSequence => error(method, path, 500, "rpc error: update out of sequence"),
            Fault::Broken => error(method, path, 500, "the fake swarm was told to fail"),
        })
    }
}

#[async_trait::async_trait]
impl Swarm for FakeSwarm {
    async fn info(&self) -> Result<Info, Error> {
        self.check("info", "/info")?;
        let s = self.lock();
        let mut info = s.info.clone();
        info.system_time = rfc3339(s.clock_ms);
        Ok(info)
    }

    async fn nodes(&self, filters: &Filters) -> Result<Vec<Node>, Error> {
        self.check("nodes", "/nodes")?;
        Ok(self.lock().nodes.iter().filter(|n| labelled(&n.spec.labels, filters)).cloned().collect())
    }

    async fn service(&self, id: &str) -> Result<Service, Error> {
        self.check("service", id)?;
        let s = self.lock();
        s.services
            .iter()
            .find(|x| x.id == id || x.spec.name == id)
            .cloned()
            .ok_or_else(|| error("GET", &format!("/services/{id}"), 404, "service not found"))
    }

    async fn services(&self, filters: &Filters) -> Result<Vec<Service>, Error> {
        self.check("services", "/services")?;
        Ok(self.lock().services.iter().filter(|x| labelled(&x.spec.labels, filters)).cloned().collect())
    }

    async fn update_service(
        &self,
        id: &str,
        version: u64,
        spec: &ServiceSpec,
        options: &UpdateOptions,
    ) -> Result<(), Error> {
        self.check("update_service", id)?;
        let mut s = self.lock();
        let path = format!("/services/{id}/update");
        let at = s
            .services
            .iter()
            .position(|x| x.id == id)
            .ok_or_else(|| error("POST", &path, 404, "not found"))?;
        if s.services[at].version.index != version {
            return Err(error("POST", &path, 500, "rpc error: update out of sequence"));
        }
        s.next_id += 1;
        let index = s.next_id * 100;
        let now = rfc3339(s.clock_ms + s.next_id);
        let image = |spec: &ServiceSpec| spec.task_template.container_spec.image.clone();
        let old = s.services[at].spec.clone();
        let line = if options.rollback {
            // The engine's rollback: the previous spec, whatever spec was sent.
            let previous = s.services[at].previous_spec.take().unwrap_or_else(|| old.clone());
            let line = format!("rollback {} to {}", old.name, image(&previous));
            let service = &mut s.services[at];
            service.spec = previous;
            service.update_status = Some(status("rollback_completed", &now, ""));
            line
        } else if image(&old) != image(spec)
            || old.task_template.force_update != spec.task_template.force_update
        {
            // A rolling update of the tasks: it ends as the test scripted.
            let (state, message) = {
                let queue = s.outcomes.entry(id.to_owned()).or_default();
                if queue.is_empty() { ("completed".to_owned(), String::new()) } else { queue.remove(0) }
            };
            let auth = if options.registry_auth.is_some() { " with credentials" } else { "" };
            let line = format!("update_service {} image={}{auth}", spec.name, image(spec));
            let service = &mut s.services[at];
            service.previous_spec = Some(old);
            service.spec = spec.clone();
            service.update_status = Some(status(&state, &now, &message));
            line
        } else {
            let service = &mut s.services[at];
            service.spec = spec.clone();
            let replicas = spec.replicas();
            let intent = spec.labels.get(crate::steps::scale::INTENT_LABEL).cloned();
            format!(
                "update_service {} replicas={} intent={}",
                spec.name,
                replicas.map_or("global".to_owned(), |r| r.to_string()),
                intent.as_deref().unwrap_or("-")
            )
        };
        s.services[at].version.index = index;
        let replicas = s.services[at].spec.replicas();
        s.log.push(line);
        if let Some(n) = replicas {
            Self::follow(&mut s, id, n);
        }
        Ok(())
    }

    async fn remove_service(&self, id: &str) -> Result<(), Error> {
        self.check("remove_service", id)?;
        let mut s = self.lock();
        s.services.retain(|x| x.id != id);
        s.tasks.retain(|t| t.service_id != id);
        s.log.push(format!("remove_service {id}"));
        Ok(())
    }

    async fn tasks(&self, filters: &Filters) -> Result<Vec<Task>, Error> {
        self.check("tasks", "/tasks")?;
        let s = self.lock();
        let wanted: Option<Vec<String>> = term(filters, "service").map(|names| {
            names
                .iter()
                .map(|n| s.services.iter().find(|x| x.spec.name == *n).map_or(n.clone(), |x| x.id.clone()))
                .collect()
        });
        Ok(s.tasks
            .iter()
            .filter(|t| wanted.as_ref().is_none_or(|w| w.contains(&t.service_id)))
            .cloned()
            .collect())
    }

    async fn task(&self, id: &str) -> Result<Task, Error> {
        self.check("task", id)?;
        let s = self.lock();
        s.tasks
            .iter()
            .find(|t| t.id == id)
            .cloned()
            .ok_or_else(|| error("GET", &format!("/tasks/{id}"), 404, "not found"))
    }

    async fn distribution(
        &self,
        image: &str,
        _auth: Option<&RegistryAuth>,
    ) -> Result<DistributionInspect, Error> {
        self.check("distribution", image)?;
        let mut s = self.lock();
        s.registry_asked += 1;
        let digest =
            s.registry.get(image).cloned().ok_or_else(|| {
                error("GET", &format!("/distribution/{image}/json"), 404, "manifest unknown")
            })?;
        let mut found = DistributionInspect::default();
        found.descriptor.digest = digest;
        Ok(found)
    }

    async fn image(&self, name: &str) -> Result<ImageInspect, Error> {
        self.check("image", name)?;
        let s = self.lock();
        let found = s.images.iter().find(|i| i.id == name || i.repo_digests.iter().any(|d| d == name));
        found.cloned().ok_or_else(|| error("GET", &format!("/images/{name}/json"), 404, "no such image"))
    }

    async fn remove_image(&self, name: &str) -> Result<(), Error> {
        self.check("remove_image", name)?;
        let mut s = self.lock();
        s.images.retain(|i| i.id != name);
        s.log.push(format!("remove_image {name}"));
        Ok(())
    }

    async fn configs(&self, filters: &Filters) -> Result<Vec<SwarmConfig>, Error> {
        self.check("configs", "/configs")?;
        Ok(self.lock().configs.iter().filter(|c| labelled(&c.spec.labels, filters)).cloned().collect())
    }

    async fn config(&self, id: &str) -> Result<SwarmConfig, Error> {
        self.check("config", id)?;
        let s = self.lock();
        s.configs
            .iter()
            .find(|c| c.id == id || c.spec.name == id)
            .cloned()
            .ok_or_else(|| error("GET", &format!("/configs/{id}"), 404, "config not found"))
    }

    async fn create_config(&self, spec: &ConfigSpec) -> Result<String, Error> {
        self.check("create_config", &spec.name)?;
        let mut s = self.lock();
        if s.configs.iter().any(|c| c.spec.name == spec.name) {
            return Err(error("POST", "/configs/create", 409, "name conflicts with an existing object"));
        }
        s.next_id += 1;
        let mut config = SwarmConfig::default();
        config.id = format!("cfg{}", s.next_id);
        config.version.index = s.next_id * 100;
        config.created_at = rfc3339(s.clock_ms);
        config.updated_at = config.created_at.clone();
        config.spec = spec.clone();
        let id = config.id.clone();
        s.configs.push(config);
        s.log.push(format!("create_config {}", spec.name));
        Ok(id)
    }

    async fn update_config(&self, id: &str, version: u64, spec: &ConfigSpec) -> Result<(), Error> {
        self.check("update_config", id)?;
        let mut s = self.lock();
        let path = format!("/configs/{id}/update");
        let now = rfc3339(s.clock_ms);
        s.next_id += 1;
        let index = s.next_id * 100;
        let config = s
            .configs
            .iter_mut()
            .find(|c| c.id == id)
            .ok_or_else(|| error("POST", &path, 404, "not found"))?;
        if config.version.index != version {
            return Err(error("POST", &path, 500, "rpc error: update out of sequence"));
        }
        config.version.index = index;
        config.updated_at = now;
        config.spec = spec.clone();
        let name = spec.name.clone();
        s.log.push(format!("update_config {name}"));
        Ok(())
    }

    async fn remove_config(&self, id: &str) -> Result<(), Error> {
        self.check("remove_config", id)?;
        let mut s = self.lock();
        let before = s.configs.len();
        s.configs.retain(|c| c.id != id);
        if s.configs.len() == before {
            return Err(error("DELETE", &format!("/configs/{id}"), 404, "config not found"));
        }
        s.log.push(format!("remove_config {id}"));
        Ok(())
    }

    async fn containers(&self, filters: &Filters) -> Result<Vec<ContainerSummary>, Error> {
        self.check("containers", "/containers/json")?;
        Ok(self.lock().containers.iter().filter(|c| labelled(&c.labels, filters)).cloned().collect())
    }

    async fn remove_container(&self, id: &str) -> Result<(), Error> {
        self.check("remove_container", id)?;
        let mut s = self.lock();
        s.containers.retain(|c| c.id != id);
        s.log.push(format!("remove_container {id}"));
        Ok(())
    }

    async fn networks(&self, filters: &Filters) -> Result<Vec<Network>, Error> {
        self.check("networks", "/networks")?;
        Ok(self.lock().networks.iter().filter(|n| labelled(&n.labels, filters)).cloned().collect())
    }

    async fn remove_network(&self, id: &str) -> Result<(), Error> {
        self.check("remove_network", id)?;
        let mut s = self.lock();
        s.networks.retain(|n| n.id != id);
        s.log.push(format!("remove_network {id}"));
        Ok(())
    }

    async fn prune_containers(&self, sparing: &str) -> Result<u64, Error> {
        self.check("prune_containers", "/containers/prune")?;
        self.lock().log.push(format!("prune containers but {sparing}"));
        Ok(1000)
    }

    async fn prune_images(&self) -> Result<u64, Error> {
        self.check("prune_images", "/images/prune")?;
        self.lock().log.push("prune images".to_owned());
        Ok(20_000)
    }

    async fn prune_build_cache(&self) -> Result<u64, Error> {
        self.check("prune_build_cache", "/build/prune")?;
        self.lock().log.push("prune build-cache".to_owned());
        Ok(300)
    }

    async fn exec(
        &self,
        container: &str,
        argv: &[String],
        output: &mut (dyn for<'b> FnMut(&'b [u8]) + Send),
    ) -> Result<i64, Error> {
        self.check("exec", container)?;
        let answer = {
            let mut s = self.lock();
            s.log.push(format!("exec {container} {}", argv.join(" ")));
            s.execs.get(container).cloned().unwrap_or(Some((0, String::new())))
        };
        match answer {
            Some((code, text)) => {
                output(text.as_bytes());
                Ok(code)
            }
            None => std::future::pending().await,
        }
    }
}

/// The fake swarm's registry, as watch mode's client asks it: the same published tags,
/// the same count; `fail("manifest", …)` makes the registry answer 500.
#[async_trait::async_trait]
impl crate::manifests::Manifests for FakeSwarm {
    async fn head(
        &self,
        reference: &dockhand_policy::ImageRef,
        _auth: Option<&RegistryAuth>,
    ) -> Result<crate::manifests::ManifestHead, crate::manifests::ManifestError> {
        let url =
            format!("https://{}/v2/…/manifests/{}", reference.domain(), reference.tag().unwrap_or_default());
        let answer = |status: u16, detail: &str| crate::manifests::ManifestError::fake(&url, status, detail);
        if let Err(e) = self.check("manifest", &url) {
            return Err(answer(500, &e.to_string()));
        }
        let mut s = self.lock();
        s.registry_asked += 1;
        let digest = s
            .registry
            .get(&reference.to_string())
            .cloned()
            .ok_or_else(|| answer(404, "404 Not Found: manifest unknown"))?;
        let rate_limit = s.rate_limit.and_then(|r| dockhand_policy::RateLimit::parse(&r.to_string()));
        Ok(crate::manifests::ManifestHead { digest, rate_limit, unchanged: false })
    }
}
