//! The job store's contract, run on the embedded SQLite file and on a real PostgreSQL (the
//! shared store of several replicas): records, listings, paging, purges, tick claims across
//! two handles, migrations run by two at once, and no secret stored.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dockhand_e2e::postgres::{PG_PASSWORD, PgPeer};
use dockhand_host::{ConfigFile, Environment};
use dockhand_jobs::store::{JobFilter, JobStore, StoreSettings};
use dockhand_jobs::{Action, Job, Status, Step, Target, Trigger};

/// What [`job`] puts in its step's output and error, which no store may keep.
const SECRETS: [&str; 3] = ["hunter2-very-secret", "tok-abcdefgh1234", "s3cr3t-pass-value"];

fn job(hostname: &str, at: u64, status: Status) -> Job {
    let now = UNIX_EPOCH + Duration::from_millis(at);
    let target = Target::Node { id: format!("id-{hostname}"), hostname: hostname.to_owned() };
    let mut job = Job::start(Action::CleanNode, target, Trigger::Cli, "cli:ops", now);
    let mut step = Step::start("container-prune", now);
    step.output_tail =
        Some("export password=hunter2-very-secret\nAuthorization: Bearer tok-abcdefgh1234".into());
    step.finish(status, now, Some("login with --password s3cr3t-pass-value failed".into()));
    job.steps.push(step);
    job.finish(now, None);
    job
}

async fn contract(one: Arc<dyn JobStore>, two: Arc<dyn JobStore>, what: &str) {
    let now = dockhand_jobs::epoch_ms(SystemTime::now());
    let (a, b, old) = (
        job("node1", now, Status::Succeeded),
        job("node2", now + 1, Status::Failed),
        job("node1", 1000, Status::Succeeded),
    );
    for j in [&a, &b, &old] {
        one.record(j).await.unwrap();
    }
    two.record(&b).await.unwrap();
    let all = two.list(&JobFilter::default()).await.unwrap();
    let ids: Vec<&str> = all.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(
        ids,
        [b.id.as_str(), a.id.as_str(), old.id.as_str()],
        "{what}: newest first, from either handle"
    );
    let mut filter = JobFilter::default();
    filter.status = Some(Status::Failed);
    assert_eq!(one.list(&filter).await.unwrap().len(), 1, "{what}");
    let mut filter = JobFilter::default();
    filter.target = Some("node/node1".into());
    filter.limit = Some(1);
    let page = one.list(&filter).await.unwrap();
    assert_eq!(page[0].id, a.id, "{what}");
    filter.before = Some(page[0].id.clone());
    assert_eq!(one.list(&filter).await.unwrap()[0].id, old.id, "{what}: the next page");
    let got = two.get(&a.id).await.unwrap().unwrap();
    let text = serde_json::to_string(&got).unwrap();
    for secret in SECRETS {
        assert!(!text.contains(secret), "{what}: {text}");
    }
    assert!(two.get("0000").await.unwrap().is_none(), "{what}");
    assert_eq!(one.purge(Duration::from_secs(3600)).await.unwrap(), 1, "{what}: the old job");

    let tick = |action, ms| vec![(action, "service/a".to_owned(), ms)];
    assert_eq!(one.last_tick(Action::CleanService, "service/a").await.unwrap(), None, "{what}");
    let at = now - 10_000;
    assert_eq!(one.claim_ticks(&tick(Action::CleanService, at), "r1").await.unwrap(), [true], "{what}");
    assert_eq!(two.claim_ticks(&tick(Action::CleanService, at), "r2").await.unwrap(), [false], "{what}");
    let mixed = [
        tick(Action::BackupService, at),
        tick(Action::CleanService, at + 5_000),
        tick(Action::CleanService, at),
    ]
    .concat();
    assert_eq!(two.claim_ticks(&mixed, "r2").await.unwrap(), [true, true, false], "{what}");
    assert_eq!(one.last_tick(Action::CleanService, "service/a").await.unwrap(), Some(at + 5_000), "{what}");

    // Leases: a running job whose process stopped renewing is marked interrupted, once.
    let start = |host: &str, at: u64| {
        let target = Target::Node { id: format!("id-{host}"), hostname: host.to_owned() };
        Job::start(
            Action::CleanNode,
            target,
            Trigger::Api,
            "api:admin#1",
            UNIX_EPOCH + Duration::from_millis(at),
        )
    };
    let (dead, alive) = (start("dead", now - 120_000), start("alive", now - 120_000));
    for j in [&dead, &alive] {
        one.record(j).await.unwrap();
    }
    two.heartbeat(std::slice::from_ref(&alive.id), "replica-b").await.unwrap();
    // Stale by the store's clock: the one whose lease was not renewed.
    let lease = Duration::from_secs(45);
    let stale = one.stale(lease).await.unwrap();
    assert_eq!(stale.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(), [dead.id.as_str()], "{what}");
    assert!(one.interrupt(&alive.id, lease, "not stale").await.unwrap().is_none(), "{what}: renewed, kept");
    let marked = one.interrupt(&dead.id, lease, "replica-a stopped").await.unwrap();
    assert_eq!(marked.map(|j| j.id), Some(dead.id.clone()), "{what}");
    assert!(two.interrupt(&dead.id, lease, "again").await.unwrap().is_none(), "{what}: once");
    assert!(one.stale(lease).await.unwrap().is_empty(), "{what}");
    let got = two.get(&dead.id).await.unwrap().unwrap();
    assert_eq!(got.status, Status::Interrupted, "{what}");
    assert_eq!(got.steps.last().map(|s| s.kind.as_str()), Some("interrupted"), "{what}");
    assert_eq!(
        two.get(&alive.id).await.unwrap().unwrap().status,
        Status::Running,
        "{what}: its lease is renewed"
    );
}

fn settings(yaml: &str, env: &[(&str, &str)]) -> Result<StoreSettings, dockhand_host::ConfigError> {
    let file = ConfigFile::parse(yaml, false).unwrap();
    StoreSettings::load(
        &file,
        &Environment::from_vars(env.iter().copied()),
        "/nonexistent/jobs.sqlite".into(),
    )
}

#[tokio::test]
async fn the_store_contract_holds_on_sqlite_and_on_postgresql() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.sqlite");
    let sqlite = StoreSettings::Sqlite(path.clone());
    contract(sqlite.open().await.unwrap(), sqlite.open().await.unwrap(), "sqlite").await;
    // No secret reached the file nor its write-ahead log, and reopening migrates nothing twice.
    for file in [path.clone(), path.with_extension("sqlite-wal")] {
        let bytes = std::fs::read(&file).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        for secret in SECRETS {
            assert!(!text.contains(secret), "{secret} is in {}", file.display());
        }
    }
    let again = sqlite.open().await.unwrap();
    assert_eq!(again.list(&JobFilter::default()).await.unwrap().len(), 4, "the jobs the contract left");

    let mut pg = PgPeer::start();
    let yaml = format!("store:\n  url: {}\n  password_env: PG_TEST_PASSWORD\n", pg.url());
    let settings = settings(&yaml, &[("PG_TEST_PASSWORD", PG_PASSWORD)]).unwrap();
    assert!(!format!("{settings:?}").contains(PG_PASSWORD));
    // Two replicas starting at once: the migrations run once, both connect.
    let (one, two) = tokio::join!(settings.open(), settings.open());
    let (one, two) = (one.unwrap(), two.unwrap());
    contract(Arc::clone(&one), two, "postgresql").await;

    // A burst of listings at once (spread over the store's connections), then the server
    // restarts under them: each connection is made again, and the store answers as before.
    let all = JobFilter::default();
    let mut burst = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (store, all) = (Arc::clone(&one), all.clone());
        burst.spawn(async move { store.list(&all).await.map(|jobs| jobs.len()) });
    }
    while let Some(listed) = burst.join_next().await {
        assert_eq!(listed.unwrap().unwrap(), 4, "a listing of the burst");
    }
    pg.restart();
    let mut failed = 0;
    while let Err(e) = one.list(&all).await {
        failed += 1;
        assert!(failed <= 4, "each broken connection fails one call at most: {e}");
    }
    for _ in 0..8 {
        assert_eq!(one.list(&all).await.unwrap().len(), 4, "after the restart");
    }
}

#[tokio::test]
async fn the_shared_store_speaks_tls_and_verifies_the_server() {
    let ca = dockhand_e2e::pki::TestCa::new("dockhand test PostgreSQL CA");
    let pg = PgPeer::start_tls(&ca);
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.cert_pem()).unwrap();
    let env = [("PG_TEST_PASSWORD", PG_PASSWORD)];
    let tls = format!(
        "store:\n  url: {}\n  password_env: PG_TEST_PASSWORD\n  ca_file: {}\n",
        pg.tls_url(),
        ca_file.display()
    );
    let store = settings(&tls, &env).unwrap().open().await.unwrap();
    let job = job("tls", dockhand_jobs::epoch_ms(SystemTime::now()), Status::Succeeded);
    store.record(&job).await.unwrap();
    assert_eq!(
        store.get(&job.id).await.unwrap().unwrap().id,
        job.id,
        "over TLS (the server takes nothing else)"
    );
    // The server accepts TLS alone.
    let plain = format!("store:\n  url: {}\n  password_env: PG_TEST_PASSWORD\n", pg.url());
    let e = settings(&plain, &env).unwrap().open().await.err().expect("refused").to_string();
    assert!(e.contains("connecting"), "{e}");
    // Without the CA, the server's certificate is not trusted: no connection.
    let untrusted = format!("store:\n  url: {}\n  password_env: PG_TEST_PASSWORD\n", pg.tls_url());
    let e = settings(&untrusted, &env).unwrap().open().await.err().expect("refused").to_string();
    assert!(e.contains("certificate") || e.contains("UnknownIssuer"), "{e}");
    assert!(!e.contains(PG_PASSWORD), "{e}");
}

#[test]
fn store_settings_keep_the_password_out_of_the_url_and_name_their_key() {
    assert!(matches!(settings("{}", &[]).unwrap(), StoreSettings::Sqlite(_)));
    let e = settings("store:\n  url: postgres://u:secretpw@db/x\n", &[]).unwrap_err();
    assert_eq!(e.key, "store.url");
    assert!(!e.to_string().contains("secretpw"), "{e}");
    let e = settings("store:\n  url: postgres://u@db/x\n  password_env: NOPE\n", &[]).unwrap_err();
    assert_eq!(e.key, "store.password_env");
    let e = settings("{}", &[("DOCKHAND_STORE_URL", "mysql://db/x")]).unwrap_err();
    assert_eq!((e.origin.as_str(), e.key.as_str()), ("the environment", "DOCKHAND_STORE_URL"));
    let e = settings("store:\n  uri: postgres://db/x\n", &[]).unwrap_err();
    assert_eq!(e.key, "store");
    let e = settings("store:\n  url: postgres://u@db/x\n  ca_file: /etc/ca.pem\n", &[]).unwrap_err();
    assert_eq!(e.key, "store.ca_file", "a CA without TLS: {e}");
    let e =
        settings("store:\n  url: postgres://u@db/x?sslmode=require\n  ca_file: /nonexistent/ca.pem\n", &[])
            .unwrap_err();
    assert_eq!(e.key, "store.ca_file");
    // R3-13: prefer would fall back to plaintext.
    let e = settings("store:\n  url: postgres://u@db/x?sslmode=prefer\n", &[]).unwrap_err();
    assert!(e.key == "store.url" && e.to_string().contains("use sslmode=require"), "{e}");
    match settings(
        "store:\n  url: postgres://u@db:5433/x\n",
        &[("DOCKHAND_STORE_URL", "postgres://v@other/y")],
    )
    .unwrap()
    {
        StoreSettings::Postgres { shown, .. } => {
            assert_eq!(shown, "postgres://v@other:5432/y", "the variable wins")
        }
        other => panic!("{other:?}"),
    }
}
