//! Storage targets and backups through the `dockhand` binary, against a real S3 endpoint on
//! loopback (SeaweedFS, which checks request signatures) and the local target.

// Test code: a panic with the value is the failure report, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Output;

use dockhand_e2e::remote::{KINDS, Remote};
use dockhand_e2e::s3::{ACCESS_KEY, S3Peer, SECRET_KEY};
use dockhand_e2e::{stderr, stdout};

/// Runs `dockhand` with a configuration file and data directory of the test's own.
fn dockhand(dir: &Path, args: &[&str], extra: &[(&str, &str)]) -> Output {
    let config = dir.join("dockhand.yaml");
    let mut all = vec!["--config", config.to_str().unwrap()];
    all.extend_from_slice(args);
    let data = dir.join("data");
    let state = dir.join("state");
    let mut env =
        vec![("XDG_DATA_HOME", data.to_str().unwrap()), ("XDG_STATE_HOME", state.to_str().unwrap())];
    env.extend_from_slice(extra);
    dockhand_e2e::run(env!("CARGO_BIN_EXE_dockhand").as_ref(), &all, &env)
}

fn config(dir: &Path, targets: &str) {
    std::fs::write(dir.join("dockhand.yaml"), format!("storage:\n  targets:\n{targets}")).unwrap();
}

/// `storage check` and `storage ls` on each remote target type's real peer, and the local
/// target.
#[test]
fn storage_check_passes_on_every_target_type() {
    for kind in KINDS {
        let peer = Remote::start(kind);
        let dir = tempfile::tempdir().unwrap();
        config(dir.path(), &peer.target_yaml("offsite", "swarm-a"));
        let vars = peer.credentials();
        let env: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let out = dockhand(dir.path(), &["storage", "check"], &env);
        assert!(out.status.success(), "{kind}: {}{}\n{}", stdout(&out), stderr(&out), peer.log());
        let text = stdout(&out);
        assert!(text.contains("offsite: ok (write, read, list, delete)"), "{kind}: {text}");
        assert!(text.contains("local: ok (write, read, list, delete)"), "{kind}: {text}");
        assert!(dir.path().join("data/dockhand/backups").is_dir(), "the local target is under XDG_DATA_HOME");

        let out = dockhand(dir.path(), &["storage", "ls", "--json"], &env);
        let text = stdout(&out);
        assert!(
            out.status.success() && text.contains("\"offsite\"") && text.contains(&format!("\"{kind}\"")),
            "{text}"
        );
        for secret in peer.secrets() {
            assert!(!text.contains(&secret), "{kind}: a credential printed: {text}");
        }
        if let Remote::Azure(azurite) = &peer {
            // A SAS token instead of the account key.
            let sas = azurite.sas();
            config(
                dir.path(),
                &azurite
                    .target_yaml("offsite", "swarm-a")
                    .replace("access_key_env: AZURE_KEY", "sas_env: AZURE_SAS"),
            );
            let out = dockhand(dir.path(), &["storage", "check", "offsite"], &[("AZURE_SAS", &sas)]);
            assert!(
                out.status.success(),
                "with a SAS token: {}{}\n{}",
                stdout(&out),
                stderr(&out),
                peer.log()
            );
            assert!(stdout(&out).contains("offsite: ok (write, read, list, delete)"), "{}", stdout(&out));
        }
        if let Remote::Sftp(sftp) = &peer {
            // A server whose key is not in known_hosts is refused, and the check says so.
            let empty = dir.path().join("empty_known_hosts");
            std::fs::write(&empty, "").unwrap();
            let yaml = sftp.target_yaml("offsite", "swarm-a").replace(
                &format!("known_hosts: {}", sftp.known_hosts.display()),
                &format!("known_hosts: {}", empty.display()),
            );
            config(dir.path(), &yaml);
            let out = dockhand(dir.path(), &["storage", "check", "offsite"], &[]);
            assert_eq!(out.status.code(), Some(1), "{}{}", stdout(&out), stderr(&out));
            assert!(stdout(&out).contains("host key is unknown or has changed"), "{}", stdout(&out));
            assert!(sftp.files().is_empty(), "nothing was written: {:?}", sftp.files());
        }
    }
}

/// A wrong credential fails `storage check` on each remote target type, naming the target
/// and the cause, and never printing the secret.
#[test]
fn a_wrong_secret_fails_the_check_and_says_so() {
    for kind in KINDS {
        let peer = Remote::start(kind);
        let dir = tempfile::tempdir().unwrap();
        let (yaml, vars, wrong) = peer.wrong("offsite", "swarm-a");
        config(dir.path(), &yaml);
        let env: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let out = dockhand(dir.path(), &["storage", "check", "offsite"], &env);
        assert_eq!(out.status.code(), Some(1), "{kind}: {}{}", stdout(&out), stderr(&out));
        let text = stdout(&out);
        assert!(
            text.contains("storage target \"offsite\"") && text.contains("credentials refused"),
            "{kind}: the message names the target and the cause: {text}"
        );
        assert!(
            !text.contains(&wrong) && !stderr(&out).contains(&wrong),
            "{kind}: the secret printed: {text}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("dockhand.yaml"), "{}").unwrap();
    let out = dockhand(dir.path(), &["storage", "check", "nope"], &[]);
    assert!(stderr(&out).contains("storage target \"nope\": no such target"), "{}", stderr(&out));
}

// ---------------------------------------------------------------------------------------
// Backups of a service's volume on the swarm's manager (the node dockhand is connected to).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dockhand_e2e::{BUSYBOX_IMAGE, ServiceGuard, TestSwarm, assert_nothing_left, last_job, unique_name};
use dockhand_engine::{Client, ExecSpec, Filters, ServiceSpec};

/// A test's own configuration, data and state directories.
struct Setup {
    dir: tempfile::TempDir,
    extra: Vec<(String, String)>,
    /// No `--helper-image`: on the manager, helpers run the image dockhand makes from
    /// itself. Else the image `dockhand helper-image push` put in the test registry, which
    /// nodes pull with the credentials of `config.json`.
    own_helper: bool,
}

impl Setup {
    fn new(targets: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        config(dir.path(), targets);
        Self { dir, extra: Vec::new(), own_helper: false }
    }

    /// The target `offsite` on `peer`, with its credentials in the environment.
    fn offsite(peer: &Remote) -> Self {
        let mut setup = Self::new(&peer.target_yaml("offsite", "swarm-a"));
        setup.extra = peer.credentials();
        setup
    }

    fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("XDG_DATA_HOME".to_owned(), self.dir.path().join("data").display().to_string()),
            ("XDG_STATE_HOME".to_owned(), self.dir.path().join("state").display().to_string()),
        ];
        if !self.own_helper {
            let pushed =
                dockhand_e2e::pushed_helper_image(std::path::Path::new(env!("CARGO_BIN_EXE_dockhand")));
            env.push(("DOCKHAND_HELPER_IMAGE".to_owned(), pushed));
            env.push(("DOCKER_CONFIG".to_owned(), dockhand_e2e::swarm_docker_config().display().to_string()));
        }
        env.extend(self.extra.iter().cloned());
        env
    }

    fn local_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("data/dockhand/backups")
    }

    fn command(&self, s: &TestSwarm, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dockhand"));
        for var in ["DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"] {
            cmd.env_remove(var);
        }
        cmd.env_remove("DOCKHAND_HELPER_IMAGE");
        let config = self.dir.path().join("dockhand.yaml");
        cmd.args(["-H", s.manager_url(), "--config", config.to_str().unwrap()]).args(args);
        cmd.envs(self.env());
        cmd
    }

    fn run(&self, s: &TestSwarm, args: &[&str]) -> Output {
        self.command(s, args).output().unwrap()
    }

    fn spawn(&self, s: &TestSwarm, args: &[&str]) -> Child {
        self.command(s, args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
    }
}

/// A busybox service on the manager with `volume` at /data and backup labels; it stops at
/// once on SIGTERM.
fn backed_up(name: &str, volume: &str, extra: &[(&str, &str)]) -> ServiceSpec {
    let mut spec = ServiceSpec::new(name, BUSYBOX_IMAGE)
        .with_args(["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"])
        .with_volume(volume, "/data")
        .with_constraint("node.role==manager")
        .with_label("dockhand.backup.enable", "true")
        .with_label("dockhand.backup.volume-list-upload", volume);
    for (k, v) in extra {
        spec = spec.with_label(*k, *v);
    }
    spec
}

async fn running_container(client: &Client, service: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let tasks = client.tasks(&Filters::new().with("service", service)).await.unwrap();
        let running = tasks
            .iter()
            .find(|t| t.status.state == "running" && t.desired_state == "running")
            .and_then(|t| t.status.container_status.as_ref().map(|c| c.container_id.clone()));
        if let Some(id) = running.filter(|id| !id.is_empty()) {
            return id;
        }
        assert!(Instant::now() < deadline, "no running task of {service} within 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn sh(client: &Client, container: &str, script: &str) -> String {
    let out = client.exec(container, &ExecSpec::new(["sh", "-c", script])).await.unwrap();
    let mut out = out;
    let mut text = Vec::new();
    while let Some(chunk) = out.next().await {
        text.extend_from_slice(&chunk.unwrap().data);
    }
    let code = out.exit_code().await.unwrap();
    let text = String::from_utf8_lossy(&text).into_owned();
    assert_eq!(code, 0, "{script}: {text}");
    text
}

/// Random data, symlinks (one dangling), a hard link, odd modes, owners other than root,
/// an empty directory and a name with spaces and UTF-8.
fn tree_script(mib: u32) -> String {
    format!(
        "set -e; cd /data; rm -rf /data/*; mkdir -p 'dir one/empty' deep/er/est; \
         head -c {} /dev/urandom > big.bin; head -c 4096 /dev/urandom > 'dir one/small'; \
         ln big.bin hard.bin; ln -s big.bin link; ln -s /nowhere dangling; \
         echo 'grüße' > 'deep/er/est/naïve file – ü.txt'; \
         chown 1234:5678 big.bin; chown -h 42:43 link; chown 999:999 'dir one/empty'; \
         chmod 4750 'dir one/small'; chmod 0700 'dir one/empty'; chmod 0751 deep; \
         touch -d '2001-02-03 04:05:06' deep/er; chown 70:70 /data; chmod 0750 /data",
        u64::from(mib) * 1024 * 1024
    )
}

/// Every path under /data with type and mode, owner, size, mtime, link target and a hash.
const LISTING: &str = "cd /data && find . | sort | while read -r f; do \
     stat -c '%n %f %u:%g %s %Y' \"$f\"; \
     if [ -L \"$f\" ]; then readlink \"$f\"; elif [ -f \"$f\" ]; then sha256sum \"$f\" | cut -c1-64; fi; done";

async fn replicas_and_intent(client: &Client, service: &str) -> (Option<u64>, Option<String>) {
    let s = client.service(service).await.unwrap();
    (s.spec.replicas(), s.spec.labels.get(dockhand_jobs::backup::INTENT_LABEL).cloned())
}

fn steps(job: &serde_json::Value) -> Vec<(String, String)> {
    job["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["kind"].as_str().unwrap().to_owned(), s["status"].as_str().unwrap().to_owned()))
        .collect()
}

/// A service on the manager with a fresh volume and `backup.stop=true`; its name, its
/// volume's, and the guard that removes it.
async fn stopping_service(s: &TestSwarm, prefix: &str) -> (String, String, ServiceGuard) {
    let (name, volume) = (unique_name(prefix), unique_name(&format!("{prefix}-vol")));
    let spec = backed_up(&name, &volume, &[("dockhand.backup.stop", "true")]);
    s.manager().create_service(&spec).await.unwrap();
    let guard = ServiceGuard::new(s.manager_url(), &name);
    (name, volume, guard)
}

/// A stopping service whose labels name the target `offsite` on `peer`, and a setup with
/// that target's credentials.
async fn remote_service(s: &TestSwarm, peer: &Remote, prefix: &str) -> (String, ServiceGuard, Setup) {
    let (name, volume) = (unique_name(prefix), unique_name(&format!("{prefix}-vol")));
    let labels = [("dockhand.backup.stop", "true"), ("dockhand.backup.target", "offsite")];
    s.manager().create_service(&backed_up(&name, &volume, &labels)).await.unwrap();
    let guard = ServiceGuard::new(s.manager_url(), &name);
    (name, guard, Setup::offsite(peer))
}

/// Backs up, wipes, restores and compares; returns the backup job.
async fn round_trip(s: &TestSwarm, setup: &Setup, name: &str) -> serde_json::Value {
    round_trip_of(s, setup, name, 200).await
}

/// [`round_trip`] of a tree whose big file is `mib` MiB.
async fn round_trip_of(s: &TestSwarm, setup: &Setup, name: &str, mib: u32) -> serde_json::Value {
    let client = s.manager();
    let container = running_container(client, name).await;
    sh(client, &container, &tree_script(mib)).await;
    let before = sh(client, &container, LISTING).await;

    let out = setup.run(s, &["backup", name, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let job = last_job(&out);
    assert_eq!(
        steps(&job),
        [("stop", "succeeded"), ("upload", "succeeded"), ("start", "succeeded")]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    assert_eq!(
        replicas_and_intent(client, name).await,
        (Some(1), None),
        "the service is back, its label gone"
    );

    let container = running_container(client, name).await;
    sh(client, &container, "rm -rf /data/* && echo junk > /data/junk && chmod 0755 /data").await;
    let out = setup.run(s, &["restore", name, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let restored = last_job(&out);
    let kinds: Vec<String> = steps(&restored).into_iter().map(|(k, _)| k).collect();
    assert_eq!(kinds, ["verify", "stop", "restore", "start"], "{restored}");
    assert_eq!(restored["status"], "succeeded", "{restored}");
    // The archive goes back the way it came out: dockhand's channel where the engine is
    // local, else the exec stream.
    assert_eq!(restored["steps"][2]["via"], job["steps"][1]["via"], "{restored}\n{job}");
    let container = running_container(client, name).await;
    let after = sh(client, &container, LISTING).await;
    assert_eq!(before, after, "the volume came back byte for byte");
    let big = format!("big.bin 81a4 1234:5678 {}", u64::from(mib) * 1024 * 1024);
    assert!(before.contains(&big), "{before}");
    job
}

/// A global service with `backup.stop=true` is backed up while it runs, as seed 002 does
/// (the documentation said it was refused): the job says so in a skipped `stop` step, and
/// `plan` warns.
#[tokio::test]
async fn a_global_service_with_stop_is_backed_up_while_it_runs_and_says_so() {
    let s = dockhand_e2e::swarm().await;
    let (name, volume) = (unique_name("bk-global"), unique_name("bk-global-vol"));
    let spec = backed_up(&name, &volume, &[("dockhand.backup.stop", "true")]).global();
    s.manager().create_service(&spec).await.unwrap();
    let _guard = ServiceGuard::new(s.manager_url(), &name);
    let before = running_container(s.manager(), &name).await;
    let setup = Setup::new("    {}\n");
    let out = setup.run(&s, &["backup", &name, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let job = last_job(&out);
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(
        steps(&job),
        [("stop", "skipped"), ("upload", "succeeded")].map(|(a, b)| (a.to_owned(), b.to_owned())),
        "{job}"
    );
    let why = job["steps"][0]["error"].as_str().unwrap_or_default();
    assert!(why.contains("global service is backed up while it runs"), "{job}");
    assert_eq!(running_container(s.manager(), &name).await, before, "never stopped");
    let service = s.manager().service(&name).await.unwrap();
    assert!(
        service.spec.is_global() && !service.spec.labels.contains_key(dockhand_jobs::backup::INTENT_LABEL)
    );
    let out = setup.run(&s, &["plan"]);
    assert!(
        stdout(&out).contains("backed up while it runs") || stderr(&out).contains("backed up while it runs"),
        "plan warns: {}\n{}",
        stdout(&out),
        stderr(&out)
    );
}

#[tokio::test]
async fn a_volume_round_trips_byte_exact_through_the_local_target() {
    let s = dockhand_e2e::swarm().await;
    let (name, volume, _guard) = stopping_service(&s, "bk-local").await;
    let setup = Setup::new("    {}\n");
    let job = round_trip(&s, &setup, &name).await;
    assert_eq!(job["steps"][1]["via"], "channel", "a local engine: the archive takes dockhand's socket");
    let object = job["steps"][1]["object"].as_str().unwrap().to_owned();
    assert!(object.starts_with(&format!("{name}/")) && object.contains(&format!("_{volume}_")), "{object}");
    let archive = setup.local_dir().join(&object);
    let head = std::fs::read(&archive).unwrap();
    assert_eq!(&head[..4], &[0x28, 0xb5, 0x2f, 0xfd], "a zstd frame");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(format!("{}.manifest.json", archive.display())).unwrap())
            .unwrap();
    assert_eq!(manifest["bytes"].as_u64(), Some(head.len() as u64));
    assert_eq!(manifest["volume"], volume.as_str());
    assert_eq!(manifest["service"], name.as_str());
    assert_eq!(manifest["job"], job["id"]);
    // R3-16: whole volumes, readable by their owner alone.
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let sidecar = std::path::PathBuf::from(format!("{}.manifest.json", archive.display()));
        assert_eq!((mode(&archive), mode(&sidecar)), (0o600, 0o600), "{}", archive.display());
        assert_eq!(mode(archive.parent().unwrap()), 0o700);
        assert_eq!(mode(&setup.local_dir()), 0o700);
    }

    let out = setup.run(&s, &["backups", "ls", &name]);
    assert!(
        out.status.success() && stdout(&out).contains(&object) && stdout(&out).contains(" ok "),
        "{}",
        stdout(&out)
    );
    let target = format!("service/{}", s.manager().service(&name).await.unwrap().id);
    assert_nothing_left(s.manager(), &[target]).await;
}

#[tokio::test]
async fn over_tcp_the_archive_takes_the_exec_stream_and_round_trips_byte_exact() {
    // The private engine, reached over plain TCP: dockhand cannot tell that it shares this
    // host, so no channel is tried and the exec stream carries the archive both ways.
    dockhand_e2e::engine().await;
    let url = dockhand_e2e::peer("TCP_HOST");
    let client = Client::new(url.parse().unwrap()).unwrap();
    let s = TestSwarm { nodes: vec![(url, client)] };
    let (name, _volume, _guard) = stopping_service(&s, "bk-tcp").await;
    // A one-node engine: the image made from dockhand itself, imported over TCP.
    let mut setup = Setup::new("    {}\n");
    setup.own_helper = true;
    let job = round_trip(&s, &setup, &name).await;
    assert_eq!(job["steps"][1]["via"], "exec", "{job}");
    let target = format!("service/{}", s.manager().service(&name).await.unwrap().id);
    assert_nothing_left(s.manager(), &[target]).await;
}

/// Every service spec and every helper container in the swarm, as JSON text.
async fn everything_in_the_swarm(s: &TestSwarm) -> String {
    let mut text = String::new();
    for service in s.manager().services(&Filters::new()).await.unwrap() {
        text.push_str(&serde_json::to_string(&service.spec).unwrap());
    }
    for (_, node) in &s.nodes {
        let helpers = node.containers(&Filters::new().with("label", "dockhand.helper")).await.unwrap();
        for c in helpers {
            if let Ok(inspect) = node.container(&c.id).await {
                text.push_str(&serde_json::to_string(&inspect).unwrap());
            }
        }
    }
    text
}

/// One remote target type (`kind`), against its real peer: a backup streams there while
/// nothing in the swarm holds a credential, the volume comes back byte for byte, and
/// `restore --target` picks the target.
async fn round_trip_through(kind: &str) {
    let s = dockhand_e2e::swarm().await;
    let peer = Remote::start(kind);
    let (name, _guard, setup) = remote_service(&s, &peer, &format!("bk-{kind}")).await;

    // While a backup runs, nothing in the swarm holds a credential.
    let container = running_container(s.manager(), &name).await;
    sh(s.manager(), &container, &tree_script(64)).await;
    let mut child = setup.spawn(&s, &["backup", &name]);
    let mut seen = 0;
    while child.try_wait().unwrap().is_none() {
        let text = everything_in_the_swarm(&s).await;
        for secret in peer.secrets() {
            assert!(!text.contains(&secret), "{kind}: a credential in the swarm: {text}");
        }
        seen += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{kind}: {}\n{}\n{}", stdout(&out), stderr(&out), peer.log());
    assert!(seen > 0);

    // S3 keeps the 200 MiB tree it always had; Azure and WebDAV a 64 MiB one, eight 8 MiB
    // parts: enough to stream in parts, for less of a shared CI's time.
    round_trip_of(&s, &setup, &name, if kind == "s3" { 200 } else { 64 }).await;
    let out = setup.run(&s, &["backups", "ls", &name, "--json"]);
    let listed: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2, "{kind}: two backups: {listed}");
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["check"] == "ok" && o["key"].as_str().unwrap().starts_with(&format!("{name}/"))),
        "{kind}: {listed}"
    );
    let files = match &peer {
        Remote::WebDav(dav) => Some(dav.files()),
        Remote::Sftp(sftp) => Some(sftp.files()),
        _ => None,
    };
    if let Some(files) = files {
        // Streamed uploads went through `.dockhand-partial/` and were moved out whole.
        assert!(
            files.iter().all(|f| !f.starts_with(".dockhand-partial/")),
            "a partial upload left: {files:?}"
        );
        assert!(files.iter().any(|f| f.ends_with(".tar.zst")), "{files:?}");
    }
    // `restore --target` picks the target, whatever the labels name: `local` holds
    // nothing of this service, `offsite` its backups.
    let out = setup.run(&s, &["restore", &name, "--target", "local", "--json"]);
    let job = last_job(&out);
    assert_ne!(out.status.code(), Some(0), "{kind}: {job}");
    assert!(job.to_string().contains("no backup"), "{kind}: {job}");
    let out = setup.run(&s, &["restore", &name, "--target", "offsite", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{kind}: {}\n{}", stdout(&out), stderr(&out));
}

/// One test per remote target type, each running `body` against that type's real peer, so
/// that the types run side by side: the table is [`KINDS`], which
/// `every_remote_target_type_has_its_tests` keeps in step with these lists.
macro_rules! per_remote_type {
    ($body:ident: $($test:ident => $kind:literal),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $test() {
                $body($kind).await;
            }
        )+
    };
}

per_remote_type! { round_trip_through:
    a_volume_round_trips_through_s3_and_no_secret_reaches_the_swarm => "s3",
    a_volume_round_trips_through_azure_and_no_secret_reaches_the_swarm => "azure",
    a_volume_round_trips_through_webdav_and_no_secret_reaches_the_swarm => "webdav",
    a_volume_round_trips_through_sftp_and_no_secret_reaches_the_swarm => "sftp",
}

per_remote_type! { worker_round_trip_through:
    a_volume_on_a_worker_round_trips_encrypted_through_s3 => "s3",
    a_volume_on_a_worker_round_trips_encrypted_through_azure => "azure",
    a_volume_on_a_worker_round_trips_encrypted_through_webdav => "webdav",
    a_volume_on_a_worker_round_trips_encrypted_through_sftp => "sftp",
}

#[test]
fn every_remote_target_type_has_its_tests() {
    assert_eq!(KINDS, ["s3", "azure", "webdav", "sftp"], "add the new type's tests to per_remote_type!");
}

/// `backup.target=local,offsite`: one archive streamed to both targets at once (through the
/// channel, the real engine and a real S3 peer), a step and a manifest on each, `backups ls`
/// showing each target's copy, and `restore --target` bringing the volume back from either.
/// With a third target whose secret is wrong, the job fails on that one alone: the others
/// hold complete archives, the service runs again, and the secret is printed nowhere.
#[tokio::test]
async fn a_backup_to_several_targets_streams_to_each_and_a_refused_one_fails_alone() {
    let s = dockhand_e2e::swarm().await;
    let peer = Remote::S3(S3Peer::start());
    let broken = peer.target_yaml("broken", "swarm-b").replace("S3_SECRET", "S3_WRONG");
    let mut setup = Setup::new(&format!("{}{broken}", peer.target_yaml("offsite", "swarm-a")));
    setup.extra = peer.credentials();
    setup.extra.push(("S3_WRONG".to_owned(), "not-the-secret-key".to_owned()));
    let client = s.manager();

    let (name, volume) = (unique_name("bk-multi"), unique_name("bk-multi-vol"));
    let labels = [("dockhand.backup.stop", "true"), ("dockhand.backup.target", "local,offsite")];
    client.create_service(&backed_up(&name, &volume, &labels)).await.unwrap();
    let _guard = ServiceGuard::new(s.manager_url(), &name);
    let container = running_container(client, &name).await;
    sh(client, &container, &tree_script(48)).await;
    let before = sh(client, &container, LISTING).await;
    let out = setup.run(&s, &["backup", &name, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}\n{}\n{}", stdout(&out), stderr(&out), peer.log());
    let job = last_job(&out);
    let uploads: Vec<&serde_json::Value> =
        job["steps"].as_array().unwrap().iter().filter(|s| s["kind"] == "upload").collect();
    let on: Vec<&str> = uploads.iter().map(|s| s["storage"].as_str().unwrap_or_default()).collect();
    assert_eq!(on, ["local", "offsite"], "{job}");
    assert!(uploads.iter().all(|s| s["status"] == "succeeded" && s["via"] == "channel"), "{job}");
    let out = setup.run(&s, &["backups", "ls", &name, "--json"]);
    let listed: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let targets: Vec<&str> =
        listed.as_array().unwrap().iter().map(|o| o["target"].as_str().unwrap()).collect();
    assert_eq!(targets, ["local", "offsite"], "{listed}");
    assert!(listed.as_array().unwrap().iter().all(|o| o["check"] == "ok"), "{listed}");
    let text = stdout(&setup.run(&s, &["backups", "ls", &name]));
    assert!(text.starts_with("TARGET") && text.contains("offsite"), "{text}");
    for target in ["offsite", "local"] {
        let container = running_container(client, &name).await;
        sh(client, &container, "rm -rf /data/* && chmod 0755 /data").await;
        let out = setup.run(&s, &["restore", &name, "--target", target, "--json"]);
        assert_eq!(out.status.code(), Some(0), "{target}: {}\n{}", stdout(&out), stderr(&out));
        let container = running_container(client, &name).await;
        assert_eq!(sh(client, &container, LISTING).await, before, "restored from {target}");
    }

    let (name, volume) = (unique_name("bk-multi"), unique_name("bk-multi-vol"));
    let labels = [("dockhand.backup.stop", "true"), ("dockhand.backup.target", "local,broken,offsite")];
    client.create_service(&backed_up(&name, &volume, &labels)).await.unwrap();
    let _guard = ServiceGuard::new(s.manager_url(), &name);
    let container = running_container(client, &name).await;
    sh(client, &container, &tree_script(16)).await;
    let out = setup.run(&s, &["backup", &name, "--json"]);
    assert_ne!(out.status.code(), Some(0), "{}", stdout(&out));
    let job = last_job(&out);
    assert_eq!(job["status"], "failed", "{job}");
    let uploads: Vec<(String, String)> = job["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == "upload")
        .map(|s| (s["storage"].as_str().unwrap().to_owned(), s["status"].as_str().unwrap().to_owned()))
        .collect();
    let expected = [("local", "succeeded"), ("broken", "failed"), ("offsite", "succeeded")];
    assert_eq!(uploads, expected.map(|(a, b)| (a.to_owned(), b.to_owned())), "{job}");
    let why = job["steps"].as_array().unwrap().iter().find_map(|s| s["error"].as_str()).unwrap_or_default();
    assert!(why.contains("storage target \"broken\"") && why.contains("credentials refused"), "{job}");
    for said in [stdout(&out), stderr(&out)] {
        assert!(!said.contains("not-the-secret-key") && !said.contains(SECRET_KEY), "{said}");
    }
    assert_eq!(replicas_and_intent(client, &name).await, (Some(1), None), "the service runs again");
    for target in ["local", "offsite"] {
        let out = setup.run(&s, &["backups", "ls", &name, "--target", target, "--json"]);
        let listed: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        let all = listed.as_array().unwrap();
        assert!(all.len() == 1 && all[0]["check"] == "ok", "{target} keeps a complete archive: {listed}");
    }
    let out = setup.run(&s, &["backups", "ls", &name, "--target", "broken", "--json"]);
    assert_ne!(out.status.code(), Some(0), "the broken target cannot even be listed: {}", stdout(&out));
}

/// Archives the seed's tool wrote to S3 (offen/docker-volume-backup: `<node>_<volume>_<date>.tar.gz`,
/// the volume under `backup/<volume>/`, made here by GNU tar as the seed's container does)
/// are listed by `backups ls --foreign` and restored with `restore --object KEY`, so a
/// migrating operator keeps their history; one of a volume the service does not mount is
/// refused before anything is touched.
#[tokio::test]
async fn the_seeds_archives_are_listed_and_restored() {
    let s = dockhand_e2e::swarm().await;
    let peer = Remote::S3(S3Peer::start());
    let (name, volume) = (unique_name("bk-seed"), unique_name("bk-seed-vol"));
    let labels = [("dockhand.backup.stop", "true"), ("dockhand.backup.target", "offsite")];
    s.manager().create_service(&backed_up(&name, &volume, &labels)).await.unwrap();
    let _guard = ServiceGuard::new(s.manager_url(), &name);
    let setup = Setup::offsite(&peer);

    // The seed's archive: its volume and another one, as its backup container mounts them.
    let made = tempfile::tempdir().unwrap();
    let root = made.path().join("backup");
    std::fs::create_dir_all(root.join(&volume).join("dir")).unwrap();
    std::fs::create_dir_all(root.join("other-vol")).unwrap();
    std::fs::write(root.join(&volume).join("hello.txt"), "from the seed\n").unwrap();
    std::fs::write(root.join(&volume).join("dir/x"), "x\n").unwrap();
    std::fs::write(root.join("other-vol/y"), "not this volume\n").unwrap();
    let tarball = made.path().join("seed.tar.gz");
    let tar = Command::new("tar")
        .arg("-C")
        .arg(made.path())
        .args(["--numeric-owner", "-czf"])
        .arg(&tarball)
        .arg("backup")
        .output()
        .unwrap();
    assert!(tar.status.success(), "{}", String::from_utf8_lossy(&tar.stderr));
    let env = dockhand_host::Environment::from_vars(setup.env());
    let file = dockhand_host::ConfigFile::load(Some(&setup.dir.path().join("dockhand.yaml")), &env).unwrap();
    let targets = dockhand_jobs::storage::StorageTargets::load(&file, &env, setup.local_dir()).unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let storage = dockhand_jobs::storage::Storage::open(targets.get("offsite").unwrap()).unwrap();
    let key = format!("node1_{volume}_2026-11-01T03-00-00.tar.gz");
    let other = "node1_other-vol_2026-11-01T03-00-00.tar.gz";
    for k in [key.as_str(), other] {
        let bytes = std::fs::read(&tarball).unwrap();
        storage.put(k, bytes).await.unwrap();
    }

    let out = setup.run(&s, &["backups", "ls", &name, "--foreign", "--json"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let listed: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1, "only the service's own volume: {listed:?}");
    assert_eq!(
        (listed[0]["key"].as_str(), listed[0]["volume"].as_str()),
        (Some(key.as_str()), Some(volume.as_str()))
    );
    assert_eq!(listed[0]["check"], dockhand_jobs::backup::FOREIGN_CHECK);

    let container = running_container(s.manager(), &name).await;
    sh(s.manager(), &container, "echo junk > /data/junk").await;
    let refused = setup.run(&s, &["restore", &name, "--object", other, "--json"]);
    assert_eq!(refused.status.code(), Some(1), "{}\n{}", stdout(&refused), stderr(&refused));
    let job = last_job(&refused);
    assert!(job["steps"][0]["error"].as_str().unwrap().contains("is not a volume of service"), "{job}");
    assert_eq!(steps(&job).len(), 1, "nothing touched: {job}");

    let out = setup.run(&s, &["restore", &name, "--object", &key, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let job = last_job(&out);
    let kinds: Vec<String> = steps(&job).into_iter().map(|(k, _)| k).collect();
    assert_eq!(kinds, ["verify", "stop", "restore", "start"], "{job}");
    assert!(job["steps"][0]["output_tail"].as_str().unwrap().contains("seed's tool"), "{job}");
    let container = running_container(s.manager(), &name).await;
    let listing = sh(s.manager(), &container, "cd /data && find . | sort && cat hello.txt").await;
    assert_eq!(listing, ".\n./dir\n./dir/x\n./hello.txt\nfrom the seed\n", "{job}");
}

#[tokio::test]
async fn restore_refuses_a_corrupted_archive_and_touches_nothing() {
    let s = dockhand_e2e::swarm().await;
    let (name, _volume, _guard) = stopping_service(&s, "bk-bad").await;
    let setup = Setup::new("    {}\n");
    let container = running_container(s.manager(), &name).await;
    sh(s.manager(), &container, &tree_script(4)).await;
    let out = setup.run(&s, &["backup", name.as_str(), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let object = last_job(&out)["steps"][1]["object"].as_str().unwrap().to_owned();
    let archive = setup.local_dir().join(&object);
    let mut bytes = std::fs::read(&archive).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&archive, bytes).unwrap();

    let container = running_container(s.manager(), &name).await;
    sh(s.manager(), &container, "echo changed-since > /data/marker").await;
    let before = sh(s.manager(), &container, LISTING).await;
    let out = setup.run(&s, &["restore", &name, "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}\n{}", stdout(&out), stderr(&out));
    let job = last_job(&out);
    assert_eq!(steps(&job), [("verify".to_owned(), "failed".to_owned())], "{job}");
    assert!(job["steps"][0]["error"].as_str().unwrap().contains("corrupted"), "{job}");
    // Never stopped, never touched.
    assert_eq!(running_container(s.manager(), &name).await, container, "the same task still runs");
    assert_eq!(sh(s.manager(), &container, LISTING).await, before);
}

/// R3-02: an object planted under the service's directory, named for another volume (with
/// a manifest that matches it), is refused before anything is touched: the victim volume
/// keeps its contents and the service is never stopped.
#[tokio::test]
async fn restore_refuses_an_archive_of_a_volume_the_service_does_not_mount() {
    let s = dockhand_e2e::swarm().await;
    let (name, volume, _guard) = stopping_service(&s, "bk-plant").await;
    let setup = Setup::new("    {}\n");
    let container = running_container(s.manager(), &name).await;
    sh(s.manager(), &container, &tree_script(1)).await;
    let out = setup.run(&s, &["backup", name.as_str(), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let object = last_job(&out)["steps"][1]["object"].as_str().unwrap().to_owned();

    // A victim volume beside it, with contents of its own.
    let victim = unique_name("bk-victim");
    let holder = unique_name("bk-victim-holder");
    let spec = ServiceSpec::new(&holder, BUSYBOX_IMAGE)
        .with_args(["sh", "-c", "echo untouched > /v/mine; trap 'exit 0' TERM; while true; do sleep 1; done"])
        .with_volume(&victim, "/v")
        .with_constraint("node.role==manager");
    s.manager().create_service(&spec).await.unwrap();
    let _holder = ServiceGuard::new(s.manager_url(), &holder);
    let victim_container = running_container(s.manager(), &holder).await;
    let victim_before = sh(s.manager(), &victim_container, "sleep 1; ls -la /v; cat /v/mine").await;
    assert!(victim_before.contains("untouched"), "{victim_before}");

    // The planted object: the real archive under a newer name for the victim volume, with
    // a manifest that agrees with its name and its bytes.
    let dir = setup.local_dir();
    let real = dir.join(&object);
    let newer = object.replace(&format!("_{volume}_"), &format!("_{victim}_")).replace("_20", "_29");
    let planted = dir.join(&newer);
    std::fs::copy(&real, &planted).unwrap();
    let manifest = std::fs::read_to_string(format!("{}.manifest.json", real.display())).unwrap();
    let manifest =
        manifest.replace(&format!("\"volume\": \"{volume}\""), &format!("\"volume\": \"{victim}\""));
    std::fs::write(format!("{}.manifest.json", planted.display()), manifest).unwrap();

    // The backup stopped the service and started it again: a new task.
    let container = running_container(s.manager(), &name).await;
    let before = sh(s.manager(), &container, LISTING).await;
    let out = setup.run(&s, &["restore", &name, "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}\n{}", stdout(&out), stderr(&out));
    let job = last_job(&out);
    assert_eq!(steps(&job), [("verify".to_owned(), "failed".to_owned())], "{job}");
    let error = job["steps"][0]["error"].as_str().unwrap();
    assert!(error.contains(&format!("volume {victim} is not a volume of service {name}")), "{job}");
    assert!(error.contains(&volume), "names what the service mounts: {job}");
    assert_eq!(
        sh(s.manager(), &victim_container, "ls -la /v; cat /v/mine").await,
        victim_before,
        "the victim is untouched"
    );
    assert_eq!(running_container(s.manager(), &name).await, container, "never stopped");
    assert_eq!(sh(s.manager(), &container, LISTING).await, before);
    // --volume that the service does not mount is an error, never a raw name.
    let out = setup.run(&s, &["restore", &name, "--volume", &victim, "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}\n{}", stdout(&out), stderr(&out));
    assert!(
        last_job(&out)["steps"][0]["error"].as_str().unwrap().contains("mounts no volume"),
        "{}",
        stdout(&out)
    );
}

/// The target `keep` of `setup`'s configuration, opened through the library, as dockhand
/// opens it.
fn keep_target(setup: &Setup) -> dockhand_jobs::storage::Storage {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let yaml = std::fs::read_to_string(setup.dir.path().join("dockhand.yaml")).unwrap();
    let file = dockhand_host::ConfigFile::parse(&yaml, false).unwrap();
    let env = dockhand_host::Environment::from_vars(setup.extra.iter().cloned());
    let targets = dockhand_jobs::storage::StorageTargets::load(&file, &env, setup.local_dir()).unwrap();
    dockhand_jobs::storage::Storage::open(targets.get("keep").unwrap()).unwrap()
}

/// On each target type (the local directory and each remote's real peer), retention deletes
/// this service's expired archives of this volume with their manifests, and nothing else.
#[tokio::test]
async fn retention_deletes_only_this_services_expired_archives_of_this_volume() {
    let s = dockhand_e2e::swarm().await;
    let node = s.manager().info().await.unwrap().name;
    for kind in ["local"].into_iter().chain(KINDS) {
        let (name, volume) = (unique_name(&format!("bk-ret{kind}")), unique_name("bk-ret-vol"));
        let labels = [("dockhand.backup.target", "keep")];
        s.manager().create_service(&backed_up(&name, &volume, &labels)).await.unwrap();
        let _guard = ServiceGuard::new(s.manager_url(), &name);
        running_container(s.manager(), &name).await;
        let retention = "      retention_days: 1\n      keep_last: 1\n";
        let peer = (kind != "local").then(|| Remote::start(kind));
        let setup = match &peer {
            Some(peer) => {
                let mut setup = Setup::new(&format!("{}{retention}", peer.target_yaml("keep", "ret")));
                setup.extra = peer.credentials();
                setup
            }
            None => {
                let setup =
                    Setup::new(&format!("    keep:\n      type: local\n      path: LOCAL\n{retention}"));
                let config = setup.dir.path().join("dockhand.yaml");
                let yaml = std::fs::read_to_string(&config).unwrap();
                std::fs::write(&config, yaml.replace("LOCAL", setup.local_dir().to_str().unwrap())).unwrap();
                setup
            }
        };
        let target = keep_target(&setup);
        // Old archives: this service and volume (two), a service whose name starts the
        // same, and another volume of this service.
        let old = |service: &str, vol: &str, ts: &str| format!("{service}/{node}_{vol}_{ts}.tar.zst");
        let mine = [old(&name, &volume, "20200101T000000Z"), old(&name, &volume, "20200102T000000Z")];
        let name2 = format!("{name}2");
        let others = [old(&name2, &volume, "20200101T000000Z"), old(&name, "other-vol", "20200101T000000Z")];
        for key in mine.iter().chain(&others) {
            target.put(key, b"old".to_vec()).await.unwrap();
            target.put(&format!("{key}.manifest.json"), b"{}".to_vec()).await.unwrap();
        }

        let out = setup.run(&s, &["backup", &name, "--json"]);
        let log = peer.as_ref().map(Remote::log).unwrap_or_default();
        assert_eq!(out.status.code(), Some(0), "{kind}: {}\n{}\n{log}", stdout(&out), stderr(&out));
        let job = last_job(&out);
        assert_eq!(steps(&job).last().unwrap(), &("retention".to_owned(), "succeeded".to_owned()), "{job}");
        let left = [target.objects(&name).await.unwrap(), target.objects(&name2).await.unwrap()].concat();
        for key in &mine {
            assert!(!left.contains(key), "{kind}: {key} expired: {left:?}");
            assert!(!left.contains(&format!("{key}.manifest.json")), "{kind}: {left:?}");
        }
        for key in &others {
            assert!(left.contains(key), "{kind}: {key} is not this service's or volume's: {left:?}");
        }
        let newest = job["steps"][0]["object"].as_str().unwrap().to_owned();
        assert!(left.contains(&newest), "{kind}: the newest stays: {newest} in {left:?}");
    }
}

/// The seed's implicit target (its `SWARM_UTILS_S3_*` variables alone, no configuration
/// file) keeps archives `SWARM_UTILS_S3_RETENTION_DAYS` days, 5 when the variable is not
/// set, as the seed's table says: after a backup, this service's archive of 6 days ago is
/// gone, the one of 4 days ago stays.
#[tokio::test]
async fn the_seeds_target_keeps_five_days_by_default() {
    let s = dockhand_e2e::swarm().await;
    let peer = S3Peer::start();
    let (name, volume) = (unique_name("bk-seed-ret"), unique_name("bk-seed-ret-vol"));
    s.manager().create_service(&backed_up(&name, &volume, &[])).await.unwrap();
    let _guard = ServiceGuard::new(s.manager_url(), &name);
    running_container(s.manager(), &name).await;
    let mut setup = Setup::new("    {}\n");
    setup.extra = vec![
        ("SWARM_UTILS_S3_URL".into(), peer.endpoint.trim_start_matches("http://").to_owned()),
        ("SWARM_UTILS_S3_HTTPS".into(), "false".into()),
        ("SWARM_UTILS_S3_BUCKET".into(), dockhand_e2e::s3::BUCKET.into()),
        ("SWARM_UTILS_S3_ACCESS_KEY".into(), ACCESS_KEY.into()),
        ("SWARM_UTILS_S3_SECRET_KEY".into(), SECRET_KEY.into()),
    ];
    let env = dockhand_host::Environment::from_vars(setup.env());
    let file = dockhand_host::ConfigFile::load(Some(&setup.dir.path().join("dockhand.yaml")), &env).unwrap();
    let targets = dockhand_jobs::storage::StorageTargets::load(&file, &env, setup.local_dir()).unwrap();
    let seed = targets.get(dockhand_jobs::storage::SEED_TARGET).unwrap();
    assert_eq!(seed.retention_days, Some(5), "{seed:?}");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let storage = dockhand_jobs::storage::Storage::open(seed).unwrap();
    let node = s.manager().info().await.unwrap().name;
    let day = Duration::from_secs(86_400);
    let old = |days: u32| {
        dockhand_jobs::backup::archive_key(
            &name,
            &node,
            &volume,
            std::time::SystemTime::now() - day * days,
            false,
        )
    };
    let (expired, kept) = (old(6), old(4));
    for key in [&expired, &kept] {
        storage.put(key, b"old".to_vec()).await.unwrap();
        storage
            .put(&format!("{key}{}", dockhand_jobs::backup::MANIFEST_SUFFIX), b"{}".to_vec())
            .await
            .unwrap();
    }

    let out = setup.run(&s, &["backup", &name, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let job = last_job(&out);
    assert_eq!(steps(&job).last().unwrap(), &("retention".to_owned(), "succeeded".to_owned()), "{job}");
    let left: Vec<String> = dockhand_jobs::backup::list_backups(&storage, &name)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert!(!left.contains(&expired), "6 days old, past the seed's 5: {left:?}");
    assert!(left.contains(&kept), "4 days old stays: {left:?}");
    assert_eq!(left.len(), 2, "the one kept and the new one: {left:?}");
}

/// Reads `child`'s stdout lines until one contains `marker`: the lines so far, and the
/// channel the rest arrives on.
fn read_until(child: &mut Child, marker: &str) -> (Vec<String>, std::sync::mpsc::Receiver<String>) {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            let hit = line.contains(marker);
            seen.push(line);
            if hit {
                return (seen, rx);
            }
        }
    }
    panic!("no line with {marker:?} within 120 s: {seen:?}");
}

#[tokio::test]
async fn after_kill_9_mid_backup_the_next_command_brings_the_service_back() {
    let s = dockhand_e2e::swarm().await;
    let (name, volume) = (unique_name("bk-kill"), unique_name("bk-kill-vol"));
    let spec = backed_up(&name, &volume, &[("dockhand.backup.stop", "true")]).with_replicas(2);
    s.manager().create_service(&spec).await.unwrap();
    let _guard = ServiceGuard::new(s.manager_url(), &name);
    let setup = Setup::new("    {}\n");
    let container = running_container(s.manager(), &name).await;
    sh(s.manager(), &container, &tree_script(200)).await;
    let target = format!("service/{}", s.manager().service(&name).await.unwrap().id);
    // Three moments: while the tasks stop, when the upload starts, in the middle of it.
    for marker in ["waiting for its tasks to stop", "upload on", "MiB at"] {
        // Any dockhand's next job command brings back every service left scaled down, and
        // the suites beside this one run dockhand too: when one of theirs got there first,
        // the service is back all the same, and this moment is tried again.
        let mut attempts = 0;
        loop {
            attempts += 1;
            let mut child = setup.spawn(&s, &["backup", &name]);
            let (seen, _rest) = read_until(&mut child, marker);
            child.kill().unwrap();
            child.wait().unwrap();
            let (replicas, intent) = replicas_and_intent(s.manager(), &name).await;
            let back_already = (replicas, intent.as_deref()) == (Some(2), None);
            if !back_already {
                assert_eq!(
                    (replicas, intent.as_deref()),
                    (Some(0), Some("2")),
                    "killed at {marker:?} after {seen:?}"
                );
            }

            // The next job command, whatever it does (here a clean-service its labels
            // refuse), brings it back first. When it says nothing of it, another suite's
            // dockhand holds that work at this moment: the service comes back all the same,
            // a moment later.
            let out = setup.run(&s, &["clean", "service", &name]);
            assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
            let ours = stderr(&out).contains("left scaled down");
            let deadline = Instant::now() + Duration::from_secs(if ours { 0 } else { 60 });
            loop {
                let now = replicas_and_intent(s.manager(), &name).await;
                if now == (Some(2), None) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "killed at {marker:?}: not back ({now:?}): {}",
                    stderr(&out)
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            running_container(s.manager(), &name).await;
            if back_already || !stderr(&out).contains("left scaled down") {
                assert!(attempts < 5, "another dockhand brought it back {attempts} times: {}", stderr(&out));
                eprintln!("killed at {marker:?}: another dockhand brought it back first; again");
                continue;
            }
            let jobs = setup.run(&s, &["jobs", "ls", "--json"]);
            assert!(
                stdout(&jobs).contains("\"reconcile\""),
                "a reconcile job is recorded: {}",
                stdout(&jobs)
            );
            break;
        }
    }
    // The volume containers the killed runs left go with the next job on the service.
    let out = setup.run(&s, &["backup", &name]);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let left = s
        .manager()
        .containers(&Filters::new().with("label", format!("dockhand.helper.target={target}")))
        .await
        .unwrap();
    assert!(left.is_empty(), "volume containers left: {left:?}");
    assert_nothing_left(s.manager(), &[target]).await;
}

#[tokio::test]
async fn the_s3_peer_stopped_mid_upload_fails_the_job_and_the_service_comes_back() {
    let s = dockhand_e2e::swarm().await;
    let mut remote = Remote::S3(S3Peer::start());
    let (name, _guard, setup) = remote_service(&s, &remote, "bk-s3down").await;
    let Remote::S3(peer) = &mut remote else { unreachable!("started as S3") };
    let container = running_container(s.manager(), &name).await;
    sh(s.manager(), &container, &tree_script(200)).await;

    let mut child = setup.spawn(&s, &["backup", &name, "--json"]);
    let (mut seen, rest) = read_until(&mut child, "MiB at");
    peer.kill();
    let out = child.wait_with_output().unwrap();
    seen.extend(rest.iter());
    assert_eq!(out.status.code(), Some(1), "{seen:?}\n{}", stderr(&out));
    let job: serde_json::Value = serde_json::from_str(seen.last().unwrap()).unwrap();
    let upload = job["steps"].as_array().unwrap().iter().find(|s| s["kind"] == "upload").unwrap();
    assert_eq!(upload["status"], "failed", "{job}");
    assert!(upload["error"].as_str().unwrap().contains("storage target \"offsite\""), "{job}");
    assert_eq!(steps(&job).last().unwrap(), &("start".to_owned(), "succeeded".to_owned()), "{job}");
    assert_eq!(replicas_and_intent(s.manager(), &name).await, (Some(1), None));

    peer.restart();
    let out = setup.run(&s, &["backups", "ls", &name, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "[]", "no partial object is listed");
}

/// A task's container on whatever node, and that node's client.
async fn task_container(s: &TestSwarm, service: &str) -> (Client, String) {
    let container = running_container(s.manager(), service).await;
    for (_, node) in &s.nodes {
        if node.container(&container).await.is_ok() {
            return (node.clone(), container);
        }
    }
    panic!("no node has container {container}");
}

/// Tests that move bytes between nodes run two at a time: each makes and removes overlay
/// networks, and on a 2-core machine a dozen of them at once mostly measure the scheduler.
static BETWEEN_NODES: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// A backed-up service pinned to the node `node_id`, its volume filled with the test tree
/// of `mib` MiB: the guard that removes it, and the volume's listing.
async fn on_worker(
    s: &TestSwarm,
    node_id: &str,
    name: &str,
    volume: &str,
    labels: &[(&str, &str)],
    mib: u32,
) -> (ServiceGuard, String) {
    let mut spec = backed_up(name, volume, labels);
    spec.task_template.placement = None;
    let spec = spec.with_constraint(format!("node.id=={node_id}"));
    s.manager().create_service(&spec).await.unwrap();
    let guard = ServiceGuard::new(s.manager_url(), name);
    let (node, container) = task_container(s, name).await;
    sh(&node, &container, &tree_script(mib)).await;
    (guard, sh(&node, &container, LISTING).await)
}

/// With only the `dockhand` binary, a first backup and restore on the node dockhand is
/// connected to need no image of ours (issue 23, defect 4): helpers there run an image
/// dockhand makes from its own executable, `dockhand/helper:<version>-<build>`, by its ID.
/// On another node nothing can be made: the job fails before it stops anything, saying
/// what to run.
#[tokio::test]
async fn a_first_backup_needs_no_image_of_ours() {
    let s = dockhand_e2e::swarm().await;
    let (name, _volume, _guard) = stopping_service(&s, "bk-own").await;
    let mut setup = Setup::new("    {}\n");
    setup.own_helper = true;
    let job = round_trip(&s, &setup, &name).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let made = s.manager().images(&Filters::new().with("reference", "dockhand/helper")).await.unwrap();
    let version = format!("dockhand/helper:{}-", env!("CARGO_PKG_VERSION"));
    assert!(made.iter().any(|i| i.repo_tags.iter().any(|t| t.starts_with(&version))), "{made:?}");

    let _between_nodes = BETWEEN_NODES.acquire().await.unwrap();
    let ids = dockhand_e2e::node_ids(&s).await;
    let (worker, volume) = (unique_name("bk-own-worker"), unique_name("bk-own-worker-vol"));
    let (_worker_guard, _) =
        on_worker(&s, &ids[1].0, &worker, &volume, &[("dockhand.backup.stop", "true")], 1).await;
    let out = setup.run(&s, &["backup", &worker, "--json"]);
    let text = format!("{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("dockhand helper-image push") && text.contains("DOCKHAND_HELPER_IMAGE"), "{text}");
    assert_eq!(replicas_and_intent(s.manager(), &worker).await, (Some(1), None), "{text}");
    let target = format!("service/{}", s.manager().service(&worker).await.unwrap().id);
    assert_nothing_left(s.manager(), &[target]).await;
}

/// `dockhand helper-image push REPOSITORY` makes the same image, pushes it with the
/// registry's credential from `config.json` and prints the digest reference to configure;
/// a worker that lacks it pulls it with that credential when a helper needs it. Without
/// the credential the registry refuses the push, and the error says so.
#[tokio::test]
async fn a_pushed_helper_image_is_pulled_by_a_worker_with_the_registrys_credential() {
    let s = dockhand_e2e::swarm().await;
    let (registry, _, _) = dockhand_e2e::swarm_registry();
    let repository = format!("{registry}/{}", unique_name("dh-helper"));
    let push = |config: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_dockhand"))
            .args(["-H", s.manager_url(), "helper-image", "push", &repository])
            .env("DOCKER_CONFIG", config)
            .env_remove("DOCKHAND_HELPER_IMAGE")
            .output()
            .unwrap()
    };
    let nowhere = tempfile::tempdir().unwrap();
    let refused = push(nowhere.path());
    assert_eq!(refused.status.code(), Some(1), "{}", stdout(&refused));
    assert!(stderr(&refused).contains(&format!("push {repository}:")), "{}", stderr(&refused));
    let out = push(&dockhand_e2e::swarm_docker_config());
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let pushed = stdout(&out).trim().to_owned();
    let digest = pushed.strip_prefix(&format!("{repository}@sha256:")).unwrap_or_default();
    assert!(digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()), "{pushed}");

    let _between_nodes = BETWEEN_NODES.acquire().await.unwrap();
    let ids = dockhand_e2e::node_ids(&s).await;
    let worker = &s.nodes[2].1;
    assert!(worker.image(&pushed).await.is_err(), "node3 does not have {pushed} yet");
    let (name, volume) = (unique_name("bk-pushed"), unique_name("bk-pushed-vol"));
    let (_guard, _) = on_worker(&s, &ids[2].0, &name, &volume, &[], 1).await;
    let mut setup = Setup::new("    {}\n");
    setup.extra = vec![("DOCKHAND_HELPER_IMAGE".into(), pushed.clone())];
    let out = setup.run(&s, &["backup", &name, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    assert!(worker.image(&pushed).await.is_ok(), "node3 pulled {pushed}");
}

#[tokio::test]
async fn a_volume_on_a_worker_round_trips_byte_exact_through_a_helper() {
    let s = dockhand_e2e::swarm().await;
    let _between_nodes = BETWEEN_NODES.acquire().await.unwrap();
    let ids = dockhand_e2e::node_ids(&s).await;
    let (name, volume) = (unique_name("bk-worker"), unique_name("bk-worker-vol"));
    let (_guard, before) =
        on_worker(&s, &ids[1].0, &name, &volume, &[("dockhand.backup.stop", "true")], 200).await;
    let setup = Setup::new("    {}\n");

    let out = setup.run(&s, &["backup", &name, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let job = last_job(&out);
    let upload = &job["steps"][1];
    assert_eq!(upload["node"], ids[1].1.as_str(), "{job}");
    assert!(upload["object"].as_str().unwrap().contains(&format!("/{}_{volume}_", ids[1].1)), "{job}");
    assert_eq!(upload["via"], "channel", "the relay beside dockhand writes to its channel: {job}");

    let (node, container) = task_container(&s, &name).await;
    sh(&node, &container, "rm -rf /data/* && echo junk > /data/junk").await;
    let out = setup.run(&s, &["restore", &name, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let restored = last_job(&out);
    assert_eq!(restored["steps"][2]["via"], "network", "the relay sends it to the node's helper: {restored}");
    let (node, container) = task_container(&s, &name).await;
    assert_eq!(before, sh(&node, &container, LISTING).await, "the worker's volume came back byte for byte");

    let target = format!("service/{}", s.manager().service(&name).await.unwrap().id);
    assert_nothing_left(s.manager(), std::slice::from_ref(&target)).await;
    let label = format!("dockhand.helper.target={target}");
    let networks = s.manager().networks(&Filters::new().with("label", label.clone())).await.unwrap();
    assert!(networks.is_empty(), "transfer networks left: {networks:?}");
    let relays = s.manager().containers(&Filters::new().with("label", label)).await.unwrap();
    assert!(relays.is_empty(), "relay containers left: {relays:?}");
}

/// The running container of `service` on the node `client` talks to.
async fn container_on(client: &Client, service: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let filters = Filters::new()
            .with("label", format!("com.docker.swarm.service.name={service}"))
            .with("status", "running");
        if let Some(c) = client.containers(&filters).await.unwrap().into_iter().next() {
            return c.id;
        }
        assert!(Instant::now() < deadline, "no running task of {service} on this node within 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A `local` volume is one per node: a service whose tasks run on several nodes (here a
/// global service on the two workers) is backed up from every one of them, one archive per
/// node (the seed's `node_volume_date`), and `restore` brings each node's copy back to its
/// own node.
#[tokio::test]
async fn a_volume_on_several_nodes_is_backed_up_and_restored_per_node() {
    let s = dockhand_e2e::swarm().await;
    let _between_nodes = BETWEEN_NODES.acquire().await.unwrap();
    let ids = dockhand_e2e::node_ids(&s).await;
    let (name, volume) = (unique_name("bk-spread"), unique_name("bk-spread-vol"));
    let mut spec = backed_up(&name, &volume, &[]).global();
    spec.task_template.placement = None;
    s.manager().create_service(&spec.with_constraint("node.role==worker")).await.unwrap();
    let _guard = ServiceGuard::new(s.manager_url(), &name);
    for i in [1, 2] {
        let container = container_on(&s.nodes[i].1, &name).await;
        sh(&s.nodes[i].1, &container, &format!("echo {} > /data/who", ids[i].1)).await;
    }
    let setup = Setup::new("    {}\n");
    let out = setup.run(&s, &["backup", &name, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let job = last_job(&out);
    let uploads: Vec<&serde_json::Value> =
        job["steps"].as_array().unwrap().iter().filter(|s| s["kind"] == "upload").collect();
    assert_eq!(uploads.len(), 2, "one archive per node: {job}");
    for i in [1, 2] {
        let host = ids[i].1.as_str();
        let upload =
            uploads.iter().find(|u| u["node"] == host).unwrap_or_else(|| panic!("none of {host}: {job}"));
        assert!(upload["object"].as_str().unwrap().contains(&format!("/{host}_{volume}_")), "{job}");
    }
    for i in [1, 2] {
        let container = container_on(&s.nodes[i].1, &name).await;
        sh(&s.nodes[i].1, &container, "rm -f /data/who && echo junk > /data/junk").await;
    }
    // A global service is restored under its running tasks only with --force.
    let out = setup.run(&s, &["restore", &name, "--force", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let job = last_job(&out);
    let kinds: Vec<String> = steps(&job).into_iter().map(|(k, _)| k).collect();
    assert_eq!(kinds, ["verify", "restore", "restore"], "{job}");
    for i in [1, 2] {
        let container = container_on(&s.nodes[i].1, &name).await;
        let back = sh(&s.nodes[i].1, &container, "cat /data/who; ls /data").await;
        assert_eq!(back, format!("{}\nwho\n", ids[i].1), "node {}'s own copy, and only it: {job}", ids[i].1);
    }
    let target = format!("service/{}", s.manager().service(&name).await.unwrap().id);
    assert_nothing_left(s.manager(), &[target]).await;
}

#[tokio::test]
async fn volume_move_streams_node_to_node_and_moves_the_service() {
    let s = dockhand_e2e::swarm().await;
    let _node_jobs = dockhand_e2e::node_jobs_turn().await;
    let _between_nodes = BETWEEN_NODES.acquire().await.unwrap();
    let ids = dockhand_e2e::node_ids(&s).await;
    let (name, volume) = (unique_name("mv"), unique_name("mv-vol"));
    let (_guard, before) = on_worker(&s, &ids[1].0, &name, &volume, &[], 64).await;
    let setup = Setup::new("    {}\n");

    let args =
        ["volume", "move", &volume, "--from", &ids[1].1, "--to", &ids[2].1, "--service", &name, "--json"];
    let out = setup.run(&s, &args);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let job = last_job(&out);
    let kinds: Vec<String> = steps(&job).into_iter().map(|(k, _)| k).collect();
    assert_eq!(kinds, ["stop", "move", "placement", "start"], "{job}");

    let service = s.manager().service(&name).await.unwrap();
    let constraints = service.spec.task_template.placement.map(|p| p.constraints).unwrap_or_default();
    assert_eq!(constraints, [format!("node.id=={}", ids[2].0)]);
    let (node, container) = task_container(&s, &name).await;
    assert_eq!(node.info().await.unwrap().swarm.node_id, ids[2].0, "the service runs on the new node");
    assert_eq!(before, sh(&node, &container, LISTING).await, "the volume moved byte for byte");
    let target = format!("service/{}", service.id);
    assert_nothing_left(s.manager(), std::slice::from_ref(&target)).await;
    let networks = s
        .manager()
        .networks(&Filters::new().with("label", format!("dockhand.helper.target={target}")))
        .await
        .unwrap();
    assert!(networks.is_empty(), "transfer networks left: {networks:?}");
}

/// A volume on a worker, through its helper, to the remote target type `kind` and back,
/// encrypted with age on the way out and decrypted with the target's identity file.
async fn worker_round_trip_through(kind: &str) {
    use age::secrecy::ExposeSecret;
    let s = dockhand_e2e::swarm().await;
    let _between_nodes = BETWEEN_NODES.acquire().await.unwrap();
    let ids = dockhand_e2e::node_ids(&s).await;
    let key = age::x25519::Identity::generate();
    let keys = tempfile::tempdir().unwrap();
    let identity = keys.path().join("identity.txt");
    std::fs::write(&identity, format!("{}\n", key.to_string().expose_secret())).unwrap();
    let encryption = format!(
        "      encryption:\n        recipients: [{}]\n        identity_file: {}\n",
        key.to_public(),
        identity.display()
    );
    let peer = Remote::start(kind);
    let (name, volume) = (unique_name(&format!("bk-w{kind}")), unique_name(&format!("bk-w{kind}-vol")));
    let labels = [("dockhand.backup.stop", "true"), ("dockhand.backup.target", "offsite")];
    let (_guard, before) = on_worker(&s, &ids[2].0, &name, &volume, &labels, 64).await;
    let mut setup = Setup::new(&format!("{}{encryption}", peer.target_yaml("offsite", "swarm-a")));
    setup.extra = peer.credentials();

    let out = setup.run(&s, &["backup", &name, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{kind}: {}\n{}\n{}", stdout(&out), stderr(&out), peer.log());
    let job = last_job(&out);
    assert_eq!(job["steps"][1]["node"], ids[2].1.as_str());
    assert!(job["steps"][1]["object"].as_str().unwrap().ends_with(".tar.zst.age"), "{kind}: {job}");
    let (node, container) = task_container(&s, &name).await;
    sh(&node, &container, "rm -rf /data/*").await;
    let out = setup.run(&s, &["restore", &name, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{kind}: {}\n{}", stdout(&out), stderr(&out));
    let (node, container) = task_container(&s, &name).await;
    assert_eq!(before, sh(&node, &container, LISTING).await, "{kind}: byte for byte through the peer");
}

#[tokio::test]
async fn an_encrypted_backup_on_a_worker_is_no_readable_tar_and_restores_with_the_identity() {
    use age::secrecy::ExposeSecret;
    let s = dockhand_e2e::swarm().await;
    let _between_nodes = BETWEEN_NODES.acquire().await.unwrap();
    let ids = dockhand_e2e::node_ids(&s).await;
    let key = age::x25519::Identity::generate();
    let recipient = key.to_public().to_string();
    let (name, volume) = (unique_name("bk-age"), unique_name("bk-age-vol"));
    let labels = [("dockhand.backup.stop", "true"), ("dockhand.backup.target", "vault")];
    let (_guard, before) = on_worker(&s, &ids[1].0, &name, &volume, &labels, 200).await;
    let setup = Setup::new("");
    let vault = setup.dir.path().join("vault");
    config(
        setup.dir.path(),
        &format!(
            "    vault:\n      type: local\n      path: {}\n      encryption:\n        recipients: [{recipient}]\n",
            vault.display()
        ),
    );
    let identity = setup.dir.path().join("identity.txt");
    std::fs::write(&identity, format!("{}\n", key.to_string().expose_secret())).unwrap();

    let out = setup.run(&s, &["backup", &name, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let object = last_job(&out)["steps"][1]["object"].as_str().unwrap().to_owned();
    assert!(object.ends_with(".tar.zst.age"), "{object}");
    let archive = std::fs::read(vault.join(&object)).unwrap();
    assert!(archive.starts_with(b"age-encryption.org/v1\n"), "an age file");
    assert!(
        dockhand_jobs::backup::verify(archive.as_slice()).is_err(),
        "the object is not a readable archive"
    );
    assert!(!archive.windows(9).any(|w| w == b"big.bin\0\0"), "no tar header in the clear");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(vault.join(format!("{object}.manifest.json"))).unwrap())
            .unwrap();
    assert_eq!(manifest["encrypted_to"], serde_json::json!([recipient]), "{manifest}");
    assert_eq!(manifest["bytes"].as_u64(), Some(archive.len() as u64));
    let text = serde_json::to_string(&manifest).unwrap();
    assert!(!text.contains("AGE-SECRET-KEY"), "{text}");

    let (node, container) = task_container(&s, &name).await;
    sh(&node, &container, "rm -rf /data/* && echo junk > /data/junk").await;
    let damaged = sh(&node, &container, LISTING).await;
    // Without the identity: refused before the service is touched.
    let out = setup.run(&s, &["restore", &name, "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}\n{}", stdout(&out), stderr(&out));
    let job = last_job(&out);
    let error = job["steps"][0]["error"].as_str().unwrap();
    assert!(error.contains("--identity") && error.contains(&recipient), "{job}");
    assert_eq!(task_container(&s, &name).await.1, container, "the same task still runs");
    // With another identity: refused too, naming the file.
    let wrong = setup.dir.path().join("wrong.txt");
    let other = age::x25519::Identity::generate();
    std::fs::write(&wrong, format!("{}\n", other.to_string().expose_secret())).unwrap();
    let out = setup.run(&s, &["restore", &name, "--identity", wrong.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}\n{}", stdout(&out), stderr(&out));
    let job = last_job(&out);
    assert!(job["steps"][0]["error"].as_str().unwrap().contains("wrong.txt"), "{job}");
    assert!(!stdout(&out).contains("AGE-SECRET-KEY") && !stderr(&out).contains("AGE-SECRET-KEY"));
    assert_eq!(sh(&node, &container, LISTING).await, damaged, "untouched");

    let out = setup.run(&s, &["restore", &name, "--identity", identity.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let (node, container) = task_container(&s, &name).await;
    assert_eq!(before, sh(&node, &container, LISTING).await, "decrypted byte for byte");
}

/// Sets (or, with `None`, removes) `dockhand.*` labels on a node.
async fn label_node(s: &TestSwarm, id: &str, labels: &[(&str, Option<&str>)]) {
    let node = s.manager().node(id).await.unwrap();
    let mut spec = node.spec.clone();
    for (key, value) in labels {
        match value {
            Some(v) => spec.labels.insert(format!("dockhand.{key}"), (*v).to_owned()),
            None => spec.labels.remove(&format!("dockhand.{key}")),
        };
    }
    s.manager().update_node(id, node.version.index, &spec).await.unwrap();
}

#[tokio::test]
async fn a_nodes_labelled_volume_is_backed_up_after_its_exec_and_restored() {
    let s = dockhand_e2e::swarm().await;
    let _node_jobs = dockhand_e2e::node_jobs_turn().await;
    let _between_nodes = BETWEEN_NODES.acquire().await.unwrap();
    let ids = dockhand_e2e::node_ids(&s).await;
    let (node_id, hostname) = ids[2].clone();
    let (name, volume) = (unique_name("nb"), unique_name("nb-vol"));
    let (guard, _) = on_worker(&s, &node_id, &name, &volume, &[], 8).await;
    let exec = format!("echo dumped > /volumes/{volume}/dump.txt && ls /volumes && ls / | grep -c . ");
    // The exec writes its dump into the volume: read-write, which a label must ask for.
    let keys = [
        "backup.enable",
        "backup.volume-list-upload",
        "backup.exec",
        "backup.exec.image",
        "backup.exec.read-write",
    ];
    label_node(
        &s,
        &node_id,
        &[
            (keys[0], Some("true")),
            (keys[1], Some(volume.as_str())),
            (keys[2], Some(exec.as_str())),
            (keys[3], Some(BUSYBOX_IMAGE)),
            (keys[4], Some("true")),
        ],
    )
    .await;
    let setup = Setup::new("    {}\n");

    let out = setup.run(&s, &["backup", "node", &hostname, "--json"]);
    label_node(&s, &node_id, &keys.map(|k| (k, None))).await;
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let job = last_job(&out);
    assert_eq!(job["action"], "backup-node", "{job}");
    let kinds: Vec<String> = steps(&job).into_iter().map(|(k, _)| k).collect();
    assert_eq!(kinds, ["exec", "upload"], "{job}");
    // The exec ran on the node, in its own image, with the volume and nothing else mounted.
    let said = job["steps"][0]["output_tail"].as_str().unwrap();
    assert!(said.contains(&volume), "{job}");
    assert_eq!(job["steps"][0]["node"], hostname.as_str(), "{job}");
    let object = job["steps"][1]["object"].as_str().unwrap().to_owned();
    assert!(object.starts_with(&format!("node/{hostname}/{hostname}_{volume}_")), "{object}");
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(setup.local_dir().join(format!("{object}.manifest.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["service"], "node", "{manifest}");
    let out = setup.run(&s, &["backups", "ls", "node", &hostname]);
    assert!(out.status.success() && stdout(&out).contains(&object), "{}\n{}", stdout(&out), stderr(&out));

    let (node, container) = task_container(&s, &name).await;
    let before = sh(&node, &container, LISTING).await;
    assert!(before.contains("dump.txt"), "the exec wrote into the volume before the upload: {before}");
    sh(&node, &container, "rm -rf /data/* && echo junk > /data/junk").await;
    // A volume a running container mounts is refused, and left alone.
    let out = setup.run(&s, &["restore", "node", &hostname, "--json"]);
    assert_ne!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let job = last_job(&out);
    assert_eq!(steps(&job).last().unwrap(), &("restore".to_owned(), "refused".to_owned()), "{job}");
    assert!(job["steps"][1]["error"].as_str().unwrap().contains("running containers"), "{job}");
    assert!(sh(&node, &container, LISTING).await.contains("junk"));

    // With nothing mounting it, the volume comes back byte for byte.
    drop(guard);
    let deadline = Instant::now() + Duration::from_secs(60);
    let in_use = Filters::new().with("volume", volume.as_str()).with("status", "running");
    while !node.containers(&in_use).await.unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the service's container did not stop");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let out = setup.run(&s, &["restore", "node", &hostname, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let name = unique_name("nb-after");
    let mut spec = backed_up(&name, &volume, &[]);
    spec.task_template.placement = None;
    s.manager().create_service(&spec.with_constraint(format!("node.id=={node_id}"))).await.unwrap();
    let _guard = ServiceGuard::new(s.manager_url(), &name);
    let (node, container) = task_container(&s, &name).await;
    assert_eq!(before, sh(&node, &container, LISTING).await, "the node's volume came back byte for byte");
    assert_nothing_left(s.manager(), &[format!("node/{node_id}")]).await;
}
