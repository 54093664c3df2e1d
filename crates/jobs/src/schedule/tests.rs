//! The schedule (pure): settings, targets and their timing; and a cron tick against the
//! in-memory swarm and a real SQLite store.

use super::*;
use dockhand_host::{ConfigFile, Environment};

fn file(yaml: &str) -> ConfigFile {
    ConfigFile::parse(yaml, false).unwrap()
}

#[test]
fn the_seeds_variables_map_onto_the_schedule_and_the_file_wins() {
    let env = Environment::from_vars([
        ("SWARM_UTILS_CRON_EXPR", "0 30 2 * * *"),
        ("SWARM_UTILS_IS_CRON_CLEAN_NODE", "false"),
    ]);
    let s = Schedule::load(&file("{}"), &env).unwrap();
    assert_eq!(s.timing(Action::CleanNode).unwrap(), (&Timing::Off, "SWARM_UTILS_IS_CRON_CLEAN_NODE"));
    let (t, source) = s.timing(Action::BackupService).unwrap();
    assert_eq!((t.to_string().as_str(), source), ("0 30 2 * * *", "SWARM_UTILS_CRON_EXPR"));
    let s = Schedule::load(
        &file("schedule:\n  backup-service: off\n  clean-node: '*/5 * * * * *'\n  timezone: Europe/Berlin\n"),
        &env,
    )
    .unwrap();
    assert_eq!(s.timing(Action::BackupService).unwrap(), (&Timing::Off, "schedule.backup-service"));
    assert_eq!(s.timing(Action::CleanNode).unwrap().0.to_string(), "*/5 * * * * *");
    assert_eq!(s.timing(Action::CleanService).unwrap().1, "SWARM_UTILS_CRON_EXPR");
    assert_eq!(s.timezone.name(), "Europe/Berlin");
    assert!(s.enabled);
    let off = Environment::from_vars([("DOCKHAND_SCHEDULE_ENABLED", "false")]);
    assert!(
        !Schedule::load(&file("schedule:\n  enabled: true\n"), &off).unwrap().enabled,
        "the variable wins"
    );
    assert!(!Schedule::load(&file("schedule:\n  enabled: false\n"), &env).unwrap().enabled);
    let seed = Schedule::load(&file("{}"), &Environment::from_vars::<&str, &str>([])).unwrap();
    assert_eq!(seed, Schedule::default());
    assert_eq!(seed.timing(Action::CleanService).unwrap().0.to_string(), SEED_CRON);
}

#[test]
fn targets_take_their_own_label_over_the_global_schedule_and_the_plan_shows_the_next_run() {
    let service = |name: &str, labels: serde_json::Value| -> Service {
        serde_json::from_value(serde_json::json!({
            "ID": format!("id-{name}"),
            "Spec": {"Name": name, "Labels": labels, "Mode": {"Replicated": {"Replicas": 1}}}
        }))
        .unwrap()
    };
    let services = [
        service("web", serde_json::json!({"dockhand.clean.enable": "true"})),
        service(
            "db",
            serde_json::json!({"dockhand.backup.enable": "true", "dockhand.backup.schedule": "*/10 * * * * *"}),
        ),
        service(
            "quiet",
            serde_json::json!({"dockhand.clean.enable": "true", "dockhand.clean.schedule": "off"}),
        ),
    ];
    let schedule = Schedule::default().with(Action::BackupService, Timing::Off, "schedule.backup-service");
    let (mut d, p) = (Defaults::default(), LabelPrefixes::default());
    d.label_min_interval = Duration::from_secs(10);
    let found = scheduled_targets(&services, &[], &schedule, &d, &p);
    let keys: Vec<(&str, String, &str)> =
        found.iter().map(|e| (e.action.as_str(), e.target.describe(), e.source.as_str())).collect();
    assert_eq!(
        keys,
        [
            ("clean-service", "service/web".to_owned(), "the seed's default 0 0 3 * * *"),
            ("backup-service", "service/db".to_owned(), "label dockhand.backup.schedule"),
        ]
    );
    let svc: Vec<(Service, usize)> = services.iter().cloned().map(|s| (s, 1)).collect();
    let mut rows = crate::plan::plan(&svc, &[], &d, &p);
    let now = DateTime::<Utc>::from_timestamp(1_800_000_003, 0).unwrap();
    with_next_runs(&mut rows, &found, &schedule, now);
    let row = |t: &str, a: &str| rows.iter().find(|r| r.target == t && r.action == a).unwrap().clone();
    assert_eq!(row("service/db", "backup-service").next_run.as_deref(), Some("2027-01-15T08:00:10Z"));
    assert_eq!(row("service/quiet", "clean-service").schedule.as_deref(), Some("off"));
    assert_eq!(row("service/web", "clean-service").next_run.as_deref(), Some("2027-01-16T03:00:00Z"));
    assert_eq!(row("service/web", "backup-service").schedule, None, "not enabled");
    // What "on schedule" means for each: a day for the seed's default, ten seconds for db.
    let intervals: Vec<Option<u64>> =
        found.iter().map(|e| e.interval(schedule.timezone, now).map(|i| i.as_secs())).collect();
    assert_eq!(intervals, [Some(86_400), Some(10)]);
}

#[test]
fn a_node_with_backups_enabled_is_backed_up_by_cron_on_its_label_or_schedule_backup_node() {
    let node = |name: &str, labels: serde_json::Value| -> Node {
        serde_json::from_value(serde_json::json!({
            "ID": format!("id-{name}"),
            "Spec": {"Labels": labels},
            "Description": {"Hostname": name}
        }))
        .unwrap()
    };
    let nodes = [
        node("plain", serde_json::json!({})),
        node(
            "nas",
            serde_json::json!({"dockhand.backup.enable": "true", "dockhand.backup.volume-list-upload": "v"}),
        ),
        node(
            "db",
            serde_json::json!({
                "dockhand.backup.enable": "true",
                "dockhand.backup.volume-list-upload": "v",
                "dockhand.backup.schedule": "0 15 4 * * *"
            }),
        ),
    ];
    let schedule = Schedule::load(
        &file("schedule:\n  backup-node: '0 0 1 * * *'\n"),
        &Environment::from_vars::<&str, &str>([]),
    )
    .unwrap();
    let (d, p) = (Defaults::default(), LabelPrefixes::default());
    let found = scheduled_targets(&[], &nodes, &schedule, &d, &p);
    let backups: Vec<(String, String, &str)> = found
        .iter()
        .filter(|e| e.action == Action::BackupNode)
        .map(|e| (e.target.describe(), e.cron.to_string(), e.source.as_str()))
        .collect();
    assert_eq!(
        backups,
        [
            ("node/nas".to_owned(), "0 0 1 * * *".to_owned(), "schedule.backup-node"),
            ("node/db".to_owned(), "0 15 4 * * *".to_owned(), "label dockhand.backup.schedule"),
        ],
        "a node without backup.enable is not backed up"
    );
    assert_eq!(found.iter().filter(|e| e.action == Action::CleanNode).count(), 3, "every node is cleaned");
}

#[test]
fn bad_settings_name_their_key() {
    let none = Environment::from_vars::<&str, &str>([]);
    let e = Schedule::load(&file("schedule:\n  clean-service: every night\n"), &none).unwrap_err();
    assert_eq!(e.key, "schedule.clean-service");
    assert!(e.detail.contains("every night"), "{e}");
    let e = Schedule::load(&file("schedule:\n  clean-servce: off\n"), &none).unwrap_err();
    assert_eq!(e.key, "schedule");
    assert!(e.detail.contains("clean-servce"), "{e}");
    let e = Schedule::load(&file("schedule:\n  timezone: Mars/Base\n"), &none).unwrap_err();
    assert_eq!(e.key, "schedule.timezone");
    for bad in ["ten", "0s"] {
        let e = Schedule::load(&file(&format!("schedule:\n  min_interval: {bad}\n")), &none).unwrap_err();
        assert_eq!(e.key, "schedule.min_interval", "{bad}: {e}");
    }
    for (text, secs) in [("min_interval: 5m", 300), ("min-interval: 10s", 10)] {
        let got = Schedule::load(&file(&format!("schedule:\n  {text}\n")), &none).unwrap();
        assert_eq!(got.min_interval, Duration::from_secs(secs));
    }
    let e = Schedule::load(&file("{}"), &Environment::from_vars([("SWARM_UTILS_IS_CRON_CLEAN_NODE", "yes")]))
        .unwrap_err();
    assert_eq!((e.origin.as_str(), e.key.as_str()), ("the environment", "SWARM_UTILS_IS_CRON_CLEAN_NODE"));
}

// ---------------------------------------------------------------------------------------
// A tick against the in-memory swarm, with a launcher that records what it was handed.

use std::sync::Mutex;

use crate::Swarm;
use crate::store::JobFilter;
use crate::store::SqliteStore;
use crate::swarm::fake::FakeSwarm;

/// Records each launch's key and tick; answers busy for the keys in `busy`.
#[derive(Default)]
struct Recording {
    launched: Mutex<Vec<(String, Option<String>)>>,
    busy: Vec<String>,
}

impl Launcher for Recording {
    fn launch(&self, key: String, ctx: JobContext, _work: Work) -> BoxFuture<'_, Launched> {
        let answer = if self.busy.contains(&key) {
            Launched::Busy(Some("job-other".to_owned()))
        } else {
            Launched::NotRun("recorded only".to_owned())
        };
        self.launched.lock().unwrap().push((key, ctx.scheduled_at.clone()));
        Box::pin(async move { answer })
    }
}

fn scheduler(swarm: &Arc<FakeSwarm>, store: Arc<dyn JobStore>) -> Scheduler {
    let client =
        dockhand_engine::Client::new(dockhand_engine::Endpoint::unix("/nonexistent/dockhand.sock")).unwrap();
    let base = JobContext::new(client, "test", Trigger::Cron, "cron")
        .with_swarm(Arc::clone(swarm) as Arc<dyn Swarm>);
    let storage = Arc::new(
        StorageTargets::load(&file("{}"), &Environment::from_vars::<&str, &str>([]), "/data".into()).unwrap(),
    );
    let watcher =
        crate::watch::Watcher::with_manifests(Arc::clone(swarm) as Arc<dyn crate::manifests::Manifests>);
    Scheduler::new(Schedule::default(), base, store, storage, "replica-1").with_watcher(Arc::new(watcher))
}

/// At the seed's 03:00 tick: every labelled target's job is launched once, cleans before
/// backups, a target whose own schedule does not fire is left out, a busy target is
/// recorded as `busy`, and the same tick run again (another replica) launches nothing.
#[tokio::test]
async fn a_tick_launches_each_due_target_once_and_records_what_did_not_run() {
    let swarm = Arc::new(FakeSwarm::manager());
    let web = swarm.add_service("web", 1, &[("dockhand.clean.enable", "true")]);
    let cache = swarm.add_service("cache", 1, &[("dockhand.backup.enable", "true")]);
    swarm.add_service(
        "db",
        1,
        &[("dockhand.backup.enable", "true"), ("dockhand.backup.schedule", "0 0 4 * * *")],
    );
    swarm.add_service("plain", 1, &[]);
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn JobStore> = Arc::new(SqliteStore::open(&dir.path().join("jobs.db")).unwrap());
    let cron = scheduler(&swarm, Arc::clone(&store));
    let launcher = Recording { busy: vec![format!("service/{cache}")], ..Recording::default() };
    let tick: DateTime<Utc> = "2026-12-07T03:00:00Z".parse().unwrap();

    let due = cron.run_tick(tick, &launcher).await.unwrap();

    let launched = launcher.launched.lock().unwrap().clone();
    let keys: Vec<&str> = launched.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(due, 3, "{keys:?}: web's clean, cache's backup and the node's clean");
    assert_eq!(keys.last(), Some(&format!("service/{cache}").as_str()), "backups run after cleans: {keys:?}");
    assert!(keys.contains(&format!("service/{web}").as_str()) && keys.contains(&"node/n1"), "{keys:?}");
    assert!(launched.iter().all(|(_, at)| at.as_deref() == Some("2026-12-07T03:00:00Z")), "{launched:?}");
    let busy = store.list(&JobFilter { status: Some(Status::Busy), ..JobFilter::default() }).await.unwrap();
    assert_eq!(busy.len(), 1, "{busy:?}");
    assert_eq!(busy[0].action, Action::BackupService);
    assert!(
        busy[0].steps[0].error.as_deref().unwrap_or_default().contains("job job-other holds it"),
        "{busy:?}"
    );

    let again = Recording::default();
    scheduler(&swarm, Arc::clone(&store)).run_tick(tick, &again).await.unwrap();
    assert!(again.launched.lock().unwrap().is_empty(), "a claimed tick runs once");
}

const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

/// Watch mode's tick: one registry request for four services on one tag; a moved tag
/// launches the update, `notify` records `available`, a digest that failed before is a
/// recorded skip, a current service is left alone; the next tick that finds the same
/// records nothing again. The seed's variables never turn watch mode on.
#[tokio::test]
async fn a_watch_tick_asks_each_tag_once_and_records_a_notice_or_a_skip_once() {
    let seed = Environment::from_vars([("SWARM_UTILS_CRON_EXPR", "0 30 2 * * *")]);
    let loaded = Schedule::load(&file("{}"), &seed).unwrap();
    assert_eq!(loaded.timing(Action::UpdateService).unwrap(), (&Timing::Off, "the default: off"));
    let set = Schedule::load(&file("schedule:\n  update-service: '0 */5 * * * *'\n"), &seed).unwrap();
    let (timing, source) = set.timing(Action::UpdateService).unwrap();
    assert_eq!((timing.to_string().as_str(), source), ("0 */5 * * * *", "schedule.update-service"));

    let swarm = Arc::new(FakeSwarm::manager());
    let tag = "registry.example.com/team/app:1.4";
    swarm.publish(tag, D2);
    let watched = |name: &str, mode: &str, digest: &str| {
        let id =
            swarm.add_service(name, 1, &[("dockhand.update.enable", "true"), ("dockhand.update.auto", mode)]);
        swarm.set_image(&id, &format!("{tag}@{digest}"));
        id
    };
    let app = watched("app", "true", D1);
    let news = watched("news", "notify", D1);
    let broken = watched("broken", "true", D1);
    watched("same", "true", D2);
    swarm.add_service("unwatched", 1, &[("dockhand.update.enable", "true")]);
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn JobStore> = Arc::new(SqliteStore::open(&dir.path().join("jobs.db")).unwrap());
    // broken's update to D2 failed before.
    let target = Target::Service { id: broken.clone(), name: "broken".to_owned() };
    let mut failed = Job::start(Action::UpdateService, target, Trigger::Cron, "cron", SystemTime::now());
    failed.image = Some(format!("{tag}@{D2}"));
    failed.finish(SystemTime::now(), Some(Status::Failed));
    store.record(&failed).await.unwrap();
    let looks = Arc::new(Mutex::new(Vec::new()));
    let cron = scheduler(&swarm, Arc::clone(&store)).with_looked({
        let looks = Arc::clone(&looks);
        Arc::new(move |look: &Look| looks.lock().unwrap().push(look.requests.len()))
    });
    let cron = Scheduler { schedule: set, ..cron };

    for (i, tick) in ["2026-12-07T03:00:00Z", "2026-12-07T03:05:00Z"].iter().enumerate() {
        let launcher = Recording::default();
        let due = cron.run_tick(tick.parse().unwrap(), &launcher).await.unwrap();
        assert_eq!(due, 4, "the four watched services");
        let keys: Vec<String> = launcher.launched.lock().unwrap().iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(keys, [format!("service/{app}")], "only app updates, at every tick (tick {i})");
    }
    assert_eq!(*looks.lock().unwrap(), [1, 1], "one registry request a tick for four services");
    assert_eq!(swarm.registry_asked(), 2);
    let of = |name: &str| {
        let store = Arc::clone(&store);
        let target = format!("service/{name}");
        async move { store.list(&JobFilter { target: Some(target), ..JobFilter::default() }).await.unwrap() }
    };
    let notices = of("news").await;
    assert_eq!(notices.len(), 1, "recorded once over two ticks: {notices:?}");
    assert_eq!(notices[0].status, Status::Available);
    assert_eq!(notices[0].image.as_deref(), Some(format!("{tag}@{D2}").as_str()));
    let why = notices[0].steps[0].error.as_deref().unwrap();
    assert!(why.contains("is available: not applied (dockhand.update.auto=notify)"), "{why}");
    let skips = of("broken").await;
    assert_eq!(skips.len(), 2, "the failed update and one skip: {skips:?}");
    assert_eq!((skips[0].status, skips[0].steps[0].kind.as_str()), (Status::Skipped, "watch"));
    assert!(skips[0].steps[0].error.as_deref().unwrap().contains("failed or was rolled back"), "{skips:?}");
    assert!(of("same").await.is_empty(), "a current service records nothing");
    assert_eq!(swarm.spec(&news).task_template.container_spec.image, format!("{tag}@{D1}"), "notify only");
}
