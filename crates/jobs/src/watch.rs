//! Watch mode's look at the registries: for each watched service (`update.enable=true` and
//! `update.auto` set), the reference it follows, the digest it runs, the digest behind the
//! tag now, and what a tick would do ([`dockhand_policy::decide`]). Each distinct reference
//! is resolved once per look, with the credential matched to its registry, by one manifest
//! `HEAD` of watch mode's own registry client ([`crate::manifests`]).
//!
//! A digest whose last update-service failed (or was rolled back) is remembered through
//! the job store: each update job records the image it tried, pinned by digest.
//!
//! `dockhand plan` and the status route show it; the scheduler's tick acts on it.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dockhand_engine::{RegistryAuth, Service};
use dockhand_policy::{
    AutoUpdate, Defaults, LabelPrefixes, Resolved, TargetLabels, UpdatePolicy, WatchStep, decide, followed,
    service_policy,
};

use crate::http::HttpClientError;
use crate::job::{Action, Job, Status};
use crate::manifests::{Manifests, RegistryClient};
use crate::plan::Watched;
use crate::registry::Registries;
use crate::store::{JobFilter, JobStore};
use crate::swarm::Swarm;

/// How many of a service's update jobs the look reads, newest first.
const REMEMBERED: usize = 50;

/// The first back-off of a registry that failed: a minute, then doubling
/// ([`dockhand_policy::backoff`]), at most an hour.
const BACKOFF_BASE: Duration = Duration::from_secs(60);

/// What watch mode keeps across its looks: its registry client (which remembers each
/// registry's challenge, pull tokens and `ETag`s) and the registries it leaves alone for a
/// while. The scheduler keeps one; `dockhand plan` and the status route take their own.
#[derive(Debug)]
pub struct Watcher {
    manifests: Arc<dyn Manifests>,
    holds: Holds,
}

impl Watcher {
    /// A watcher with its own registry client ([`RegistryClient`]).
    pub fn new() -> Result<Self, HttpClientError> {
        Ok(Self::with_manifests(Arc::new(RegistryClient::new()?)))
    }

    /// A watcher that asks `manifests` (an embedder's client, or a test's).
    pub fn with_manifests(manifests: Arc<dyn Manifests>) -> Self {
        Self { manifests, holds: Holds::default() }
    }
}

/// The registries left alone lately, and until when: one that failed (5xx, 429, no
/// answer), and one whose rate limit is low, with what it said was left.
#[derive(Debug, Default)]
struct Holds(Mutex<HashMap<String, Hold>>);

#[derive(Debug, Clone, Copy)]
struct Hold {
    times: u32,
    until: Instant,
    remaining: Option<u64>,
}

impl Holds {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Hold>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// What a look says of `registry` at `now` instead of asking it, when it is held.
    fn holds(&self, registry: &str, now: Instant) -> Option<Resolved> {
        let hold = self.map().get(registry).copied().filter(|h| now < h.until)?;
        Some(hold.remaining.map_or(Resolved::BackedOff, |remaining| Resolved::RateLimited { remaining }))
    }

    /// Counts an answer of `registry`: a failure of the registry itself, or a low rate
    /// limit (`remaining`), holds it for longer each time in a row; any other answer
    /// clears it.
    fn answered(&self, registry: &str, held: bool, remaining: Option<u64>, now: Instant) {
        let mut map = self.map();
        if held {
            let times = map.get(registry).map_or(1, |h| h.times.saturating_add(1));
            let until = now + dockhand_policy::backoff(times, BACKOFF_BASE);
            map.insert(registry.to_owned(), Hold { times, until, remaining });
        } else {
            map.remove(registry);
        }
    }
}

/// The digests whose last update of the service, among `jobs` (newest first), failed: an
/// update that later succeeded to the same digest (`dockhand update --force`) clears it.
pub(crate) fn failed_digests(jobs: &[Job]) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut failed = BTreeSet::new();
    for job in jobs.iter().filter(|j| j.action == Action::UpdateService) {
        let Some(digest) = job.image.as_deref().and_then(|i| i.split_once('@')).map(|(_, d)| d) else {
            continue;
        };
        // A skip or a notice the watch recorded says nothing of the digest: only an update
        // that ran does.
        if !matches!(job.status, Status::Succeeded | Status::Failed) || !seen.insert(digest.to_owned()) {
            continue;
        }
        if job.status == Status::Failed {
            failed.insert(digest.to_owned());
        }
    }
    failed
}

/// The update policy of `service` when the watch looks at it: `update.enable=true` and
/// `update.auto` set.
fn watched(service: &Service, defaults: &Defaults, prefixes: &LabelPrefixes) -> Option<UpdatePolicy> {
    let (policy, _) = service_policy(&service.spec.labels, service.spec.is_global(), defaults, prefixes);
    policy.update.filter(|u| u.auto != AutoUpdate::Off)
}

/// The services of `services` that run `image`'s repository (whatever their tag or
/// digest) with `update.enable=true`: what one update of a whole image
/// (`dockhand update --image-of`, `POST /v1/images/update`) updates, by name.
pub fn running_repository<'a>(
    services: &'a [Service],
    image: &dockhand_policy::ImageRef,
    defaults: &Defaults,
    prefixes: &LabelPrefixes,
) -> Vec<&'a Service> {
    let mut found: Vec<&Service> = services
        .iter()
        .filter(|s| {
            dockhand_policy::ImageRef::parse(&s.spec.task_template.container_spec.image)
                .is_ok_and(|running| running.repository() == image.repository())
        })
        .filter(|s| service_policy(&s.spec.labels, s.spec.is_global(), defaults, prefixes).0.update.is_some())
        .collect();
    found.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
    found
}

/// True when some service of `services` is watched: only then does a look need the
/// registries and the job store.
pub fn any_watched(services: &[Service], defaults: &Defaults, prefixes: &LabelPrefixes) -> bool {
    services.iter().any(|s| watched(s, defaults, prefixes).is_some())
}

/// One registry request of a look: the registry's host and how it went (`ok`, `failed`,
/// `rate_limited`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RegistryRequest {
    /// The registry (`registry.example.com`, `docker.io`).
    pub registry: String,
    /// `ok`, `failed`, or `rate_limited` (it answered, and said its rate limit is low).
    pub result: &'static str,
}

/// What one look saw: a row per watched service, by name, and the registry requests made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Look {
    /// Each watched service.
    pub rows: Vec<Watched>,
    /// Each request made to a registry, one per distinct reference and credential.
    pub requests: Vec<RegistryRequest>,
}

/// Every watched service of `services`, by name, with one registry request per distinct
/// reference and credential (by `watcher`'s client, which first learns the engine's
/// insecure registries from `swarm`), and the digests whose update failed from `store`.
pub async fn look(
    swarm: &dyn Swarm,
    registries: &Registries,
    store: &dyn JobStore,
    services: &[Service],
    defaults: &Defaults,
    prefixes: &LabelPrefixes,
    watcher: &Watcher,
) -> Look {
    use futures_util::StreamExt;
    let mut services: Vec<&Service> = services.iter().collect();
    services.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
    // Each watched service: its row, and what to ask the registry, unless it is decided
    // already (a skip).
    let mut seen = Vec::new();
    for service in services {
        if let Some(policy) = watched(service, defaults, prefixes) {
            seen.push(prepare(service, policy, registries, prefixes).await);
        }
    }
    // Each distinct reference and credential once, a few at once.
    let mut distinct: HashMap<(String, String), (dockhand_policy::ImageRef, Option<RegistryAuth>)> =
        HashMap::new();
    for (_, asking) in &seen {
        if let Some(asking) = asking {
            distinct
                .entry(asking.key.clone())
                .or_insert_with(|| (asking.reference.clone(), asking.auth.clone()));
        }
    }
    if !distinct.is_empty() {
        // Which registries the engine asks without verified TLS: so does the client.
        if let Ok(info) = swarm.info().await {
            watcher.manifests.learn(&info.registry_config);
        }
    }
    let answers: Vec<((String, String), Resolved, Option<RegistryRequest>)> =
        futures_util::stream::iter(distinct)
            .map(|(key, (reference, auth))| async move {
                let registry = reference.domain().to_owned();
                if let Some(held) = watcher.holds.holds(&registry, Instant::now()) {
                    return (key, held, None);
                }
                let (resolved, result) = match watcher.manifests.head(&reference, auth.as_ref()).await {
                    Ok(head) => match head.rate_limit.filter(dockhand_policy::RateLimit::is_low) {
                        Some(low) => {
                            let remaining = low.remaining;
                            watcher.holds.answered(&registry, true, Some(remaining), Instant::now());
                            (Resolved::RateLimited { remaining }, "rate_limited")
                        }
                        None => {
                            watcher.holds.answered(&registry, false, None, Instant::now());
                            (Resolved::Digest(head.digest), "ok")
                        }
                    },
                    Err(e) => {
                        watcher.holds.answered(&registry, e.registry_failed(), None, Instant::now());
                        (Resolved::Failed(e.to_string()), "failed")
                    }
                };
                (key, resolved, Some(RegistryRequest { registry, result }))
            })
            .buffer_unordered(ASKED_AT_ONCE)
            .collect()
            .await;
    let mut requests: Vec<RegistryRequest> = Vec::new();
    let mut asked: HashMap<(String, String), Resolved> = HashMap::new();
    for (key, resolved, request) in answers {
        requests.extend(request);
        asked.insert(key, resolved);
    }
    requests.sort_by(|a, b| a.registry.cmp(&b.registry));
    let mut out = Vec::new();
    for (mut row, asking) in seen {
        let Some(asking) = asking else {
            out.push(row);
            continue;
        };
        let resolved = asked.get(&asking.key).cloned().unwrap_or(Resolved::BackedOff);
        // The job store is read only for a service whose tag moved: whether the new digest
        // failed before.
        let mut failed = BTreeSet::new();
        if let Resolved::Digest(digest) = &resolved {
            row.latest = Some(digest.clone());
            if row.runs.as_deref() != Some(digest.as_str()) {
                let filter = JobFilter {
                    target: Some(format!("service/{}", row.service)),
                    action: Some(Action::UpdateService.as_str().to_owned()),
                    limit: Some(REMEMBERED),
                    ..JobFilter::default()
                };
                match store.list(&filter).await {
                    Ok(jobs) => failed = failed_digests(&jobs),
                    Err(e) => {
                        out.push(skip(
                            row,
                            format!("the job store, which remembers failed updates, failed: {e}"),
                        ));
                        continue;
                    }
                }
            }
        }
        let step = decide(asking.mode, &asking.reference, row.runs.as_deref(), &resolved, &failed);
        row.next = match &step {
            WatchStep::Current => "current".to_owned(),
            WatchStep::Update { image } => format!("update to {image}"),
            WatchStep::Notify { image } => format!("notify {image}"),
            WatchStep::Skip { reason } => format!("skip: {reason}"),
        };
        row.step = step;
        out.push(row);
    }
    Look { rows: out, requests }
}

/// How many registry requests a look has in flight at once.
const ASKED_AT_ONCE: usize = 8;

/// What a look asks the registry for one service.
struct Asking {
    mode: AutoUpdate,
    reference: dockhand_policy::ImageRef,
    /// The reference and whose credential: one request per distinct pair.
    key: (String, String),
    auth: Option<RegistryAuth>,
}

/// `row` as a skip for `reason`.
fn skip(mut row: Watched, reason: String) -> Watched {
    row.next = format!("skip: {reason}");
    row.step = WatchStep::Skip { reason };
    row
}

/// A watched service's row so far, and what to ask for it (`None`: decided already).
async fn prepare(
    service: &Service,
    policy: UpdatePolicy,
    registries: &Registries,
    prefixes: &LabelPrefixes,
) -> (Watched, Option<Asking>) {
    let view = TargetLabels::resolve(&service.spec.labels, prefixes);
    let name = service.spec.name.clone();
    let decided_by = view.get("update.auto").map(|(key, value)| format!("{key}={value}")).unwrap_or_default();
    let image = &service.spec.task_template.container_spec.image;
    let mut row = Watched {
        service: name.clone(),
        mode: policy.auto.as_str(),
        decided_by,
        follows: None,
        runs: image.split_once('@').map(|(_, digest)| digest.to_owned()),
        latest: None,
        next: String::new(),
        step: WatchStep::Current,
    };
    let reference = match followed(image, policy.auto_tag.as_deref()) {
        Ok(reference) => reference,
        Err(e) => return (skip(row, e.to_string()), None),
    };
    row.follows = Some(reference.to_string());
    let credential = match registries.credential_for(&reference, &name, &policy, &view).await {
        Ok(credential) => credential,
        Err(e) => return (skip(row, e.to_string()), None),
    };
    let whose = credential.as_ref().map(|c| c.source.clone()).unwrap_or_default();
    let asking = Asking {
        mode: policy.auto,
        key: (reference.to_string(), whose),
        auth: credential.map(|c| c.auth),
        reference,
    };
    (row, Some(asking))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::swarm::fake::FakeSwarm;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn store() -> (tempfile::TempDir, crate::store::SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::SqliteStore::open(&dir.path().join("jobs.db")).unwrap();
        (dir, store)
    }

    /// An ended update-service job of `service` that tried `image`.
    fn update_job(service: &str, image: &str, status: Status, at: u64) -> Job {
        let target = crate::job::Target::Service { id: format!("id-{service}"), name: service.to_owned() };
        let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000 + at);
        let mut job = Job::start(Action::UpdateService, target, crate::job::Trigger::Cli, "cli:test", when);
        job.image = Some(image.to_owned());
        job.status = status;
        job.ended_ms = Some(job.started_ms + 1);
        job
    }

    #[test]
    fn a_digest_is_remembered_by_its_last_update_and_a_later_success_clears_it() {
        let app = |d: &str| format!("registry.example.com/team/app:1.4@{d}");
        let d3 = "sha256:3333333333333333333333333333333333333333333333333333333333333333";
        // Newest first: D2 failed last; D1 failed, then succeeded (forced); d3 failed long ago.
        let jobs = [
            update_job("app", &app(D2), Status::Failed, 4),
            update_job("app", &app(D1), Status::Succeeded, 3),
            update_job("app", &app(D1), Status::Failed, 2),
            update_job("app", &app(d3), Status::Failed, 1),
            update_job("app", "registry.example.com/team/app:local", Status::Failed, 0),
        ];
        assert_eq!(failed_digests(&jobs), BTreeSet::from([D2.to_owned(), d3.to_owned()]));
    }

    fn registries() -> Registries {
        let file = dockhand_host::ConfigFile::parse("{}", false).unwrap();
        let env = dockhand_host::Environment::from_vars(Vec::<(String, String)>::new());
        Registries::load(&file, &env).unwrap()
    }

    /// A replicated service of `image` with `labels`.
    fn service(swarm: &FakeSwarm, name: &str, image: &str, labels: &[(&str, &str)]) -> Service {
        let id = swarm.add_service(name, 1, labels);
        swarm.set_image(&id, image);
        let mut service = Service::default();
        service.spec = swarm.spec(&id);
        service
    }

    /// A fresh watcher asking the fake swarm's registry.
    fn watcher(swarm: &FakeSwarm) -> Watcher {
        Watcher::with_manifests(Arc::new(swarm.clone()))
    }

    /// One look with the defaults, no credential and a fresh back-off state.
    async fn look_once(swarm: &FakeSwarm, store: &dyn JobStore, services: &[Service]) -> Vec<Watched> {
        let (d, p) = (Defaults::default(), LabelPrefixes::default());
        look(swarm, &registries(), store, services, &d, &p, &watcher(swarm)).await.rows
    }

    const WATCHED: [(&str, &str); 2] = [("dockhand.update.enable", "true"), ("dockhand.update.auto", "true")];

    #[tokio::test]
    async fn each_tag_is_asked_once_and_each_service_gets_its_next_step() {
        let swarm = FakeSwarm::manager();
        swarm.publish("registry.example.com/team/app:1.4", D2);
        swarm.publish("registry.example.com/team/web:2", D1);
        let mut services: Vec<Service> = (0..20)
            .map(|i| {
                let image = format!("registry.example.com/team/app:1.4@{D1}");
                service(&swarm, &format!("app-{i:02}"), &image, &WATCHED)
            })
            .collect();
        let notify = [("dockhand.update.enable", "true"), ("dockhand.update.auto", "notify")];
        services.push(service(&swarm, "web", &format!("registry.example.com/team/web:2@{D1}"), &notify));
        services.push(service(&swarm, "bare", &format!("registry.example.com/team/app@{D1}"), &WATCHED));
        services.push(service(&swarm, "unwatched", "registry.example.com/team/app:1.4", &[]));

        let (_dir, store) = store();
        // app-01 tried D2 before, and it failed: the watch does not try it again.
        let tried = format!("registry.example.com/team/app:1.4@{D2}");
        store.record(&update_job("app-01", &tried, Status::Failed, 0)).await.unwrap();
        let rows = look_once(&swarm, &store, &services).await;

        assert_eq!(rows.len(), 22, "the unwatched service is not listed: {rows:?}");
        let app = &rows[0];
        assert_eq!((app.service.as_str(), app.mode), ("app-00", "true"));
        assert_eq!(app.follows.as_deref(), Some("registry.example.com/team/app:1.4"));
        assert_eq!((app.runs.as_deref(), app.latest.as_deref()), (Some(D1), Some(D2)));
        assert_eq!(app.next, format!("update to registry.example.com/team/app:1.4@{D2}"));
        assert_eq!(app.decided_by, "dockhand.update.auto=true");
        let failed = &rows[1];
        assert_eq!(failed.service, "app-01");
        assert!(failed.next.starts_with("skip: ") && failed.next.contains("rolled back"), "{failed:?}");
        let bare = rows.iter().find(|r| r.service == "bare").unwrap();
        assert!(bare.next.starts_with("skip: ") && bare.next.contains("update.auto.tag"), "{bare:?}");
        let web = rows.iter().find(|r| r.service == "web").unwrap();
        assert_eq!((web.mode, web.next.as_str()), ("notify", "current"), "{web:?}");
        assert_eq!(swarm.registry_asked(), 2, "one request per distinct tag, for 21 services");
        let (d, p) = (Defaults::default(), LabelPrefixes::default());
        assert!(any_watched(&services, &d, &p));
        assert!(!any_watched(&services[22..], &d, &p), "update.enable alone watches nothing");
    }

    /// A registry that errs (500) is left alone for the next looks, with a skip naming it;
    /// a tag it does not have (404) backs nothing off.
    #[tokio::test]
    async fn a_registry_that_errs_is_backed_off_and_a_missing_tag_is_not() {
        use crate::swarm::fake::Fault;
        let swarm = FakeSwarm::manager();
        swarm.publish("registry.example.com/team/app:1", D1);
        let services = [service(&swarm, "app", "registry.example.com/team/app:1", &WATCHED)];
        let (_dir, store) = store();
        let backoffs = watcher(&swarm);
        let (d, p) = (Defaults::default(), LabelPrefixes::default());
        swarm.fail("manifest", 1, Fault::Broken);
        let first = look(&swarm, &registries(), &store, &services, &d, &p, &backoffs).await;
        assert_eq!(
            first.requests,
            [RegistryRequest { registry: "registry.example.com".into(), result: "failed" }]
        );
        let second = look(&swarm, &registries(), &store, &services, &d, &p, &backoffs).await;
        assert!(second.requests.is_empty(), "backed off: not asked");
        let next = &second.rows[0].next;
        assert!(next.starts_with("skip: registry.example.com: backed off after failing"), "{next}");
        // A fresh state (a new server) asks again, and a success clears it.
        let fresh = watcher(&swarm);
        let third = look(&swarm, &registries(), &store, &services, &d, &p, &fresh).await;
        assert_eq!(third.rows[0].latest.as_deref(), Some(D1));

        let missing = [service(&swarm, "gone", "registry.example.com/team/app:nope", &WATCHED)];
        for _ in 0..2 {
            let seen = look(&swarm, &registries(), &store, &missing, &d, &p, &fresh).await;
            assert_eq!(seen.requests.len(), 1, "a missing tag is asked at every look");
        }
    }

    /// A registry that says its rate limit is low is a skip naming what is left, and is
    /// not asked again at the next look; once it has room again, it is.
    #[tokio::test]
    async fn a_low_rate_limit_is_a_skip_and_holds_the_registry() {
        let swarm = FakeSwarm::manager();
        swarm.publish("docker.io/library/nginx:1.27", D2);
        let services = [service(&swarm, "web", &format!("nginx:1.27@{D1}"), &WATCHED)];
        let (_dir, store) = store();
        let (d, p) = (Defaults::default(), LabelPrefixes::default());
        let held = watcher(&swarm);
        swarm.rate_limit(3);
        let first = look(&swarm, &registries(), &store, &services, &d, &p, &held).await;
        assert_eq!(
            first.requests,
            [RegistryRequest { registry: "docker.io".into(), result: "rate_limited" }]
        );
        let next = &first.rows[0].next;
        assert!(
            next.starts_with("skip: docker.io: the registry's rate limit is low (3 requests left)"),
            "{next}"
        );
        let second = look(&swarm, &registries(), &store, &services, &d, &p, &held).await;
        assert!(second.requests.is_empty(), "held: not asked");
        assert_eq!(second.rows[0].next, *next);
        assert_eq!(swarm.registry_asked(), 1);

        swarm.rate_limit(90);
        let fresh = watcher(&swarm);
        let third = look(&swarm, &registries(), &store, &services, &d, &p, &fresh).await;
        assert_eq!(third.rows[0].next, format!("update to docker.io/library/nginx:1.27@{D2}"));
    }

    #[test]
    fn an_image_update_takes_the_services_of_its_repository_with_updates_enabled() {
        let swarm = FakeSwarm::manager();
        let enabled = [("dockhand.update.enable", "true")];
        let services = [
            service(&swarm, "b", &format!("registry.example.com/team/app:1.4@{D1}"), &enabled),
            service(&swarm, "a", "registry.example.com/team/app:1.3", &enabled),
            service(&swarm, "off", "registry.example.com/team/app:1.4", &[]),
            service(&swarm, "other", "registry.example.com/team/web:1.4", &enabled),
            service(&swarm, "hub", "nginx:1.25", &enabled),
        ];
        let (d, p) = (Defaults::default(), LabelPrefixes::default());
        let image = dockhand_policy::ImageRef::parse("registry.example.com/team/app:1.5").unwrap();
        let names: Vec<&str> =
            running_repository(&services, &image, &d, &p).iter().map(|s| s.spec.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        let hub = dockhand_policy::ImageRef::parse("docker.io/library/nginx:1.27").unwrap();
        assert_eq!(running_repository(&services, &hub, &d, &p).len(), 1, "docker.io names match");
    }

    #[tokio::test]
    async fn a_registry_that_fails_is_a_skip_naming_it() {
        let swarm = FakeSwarm::manager();
        let services = [service(&swarm, "app", "registry.example.com/team/app:9", &WATCHED)];
        let (_dir, store) = store();
        let rows = look_once(&swarm, &store, &services).await;
        assert_eq!(rows.len(), 1);
        let next = &rows[0].next;
        assert!(next.starts_with("skip: registry.example.com/team/app:9: the registry failed"), "{next}");
        assert!(next.contains("404 Not Found: manifest unknown"), "{next}");
        assert_eq!((rows[0].runs.as_deref(), rows[0].latest.as_deref()), (None, None));
    }
}
