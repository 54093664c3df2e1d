//! `cargo xtask demo`: the README's "main job" on embedded defaults. It brings the private
//! engine up, deploys a small labelled stack on it, and runs dockhand's maintenance cycle:
//! what cron would do (`plan`), a backup of the stack's volume to the embedded `local`
//! storage target, damage and a restore, clean-node, clean-service, update-service from one
//! local tag to another and then to a broken one (and the rollback), and the job table; then
//! `dockhand-server` deployed with `deploy/stack.yml`, and one update triggered the way CI
//! does it, over the overlay network; and watch mode: a local registry, the web service
//! following its tag there, a new image pushed under that tag, and `dockhand-server`'s tick
//! updating the service by itself.

use std::fs;
use std::time::Duration;

use anyhow::bail;
use dockhand_engine::{Client, Endpoint, Filters};

use crate::images::ImageHost;
use crate::{engine, proc};

const STACK: &str = "dhdemo";

/// A web service whose labels let dockhand clear its cache and update it, a worker without
/// labels, and a db with a volume to back up.
const COMPOSE: &str = r#"version: "3.8"
services:
  web:
    image: dhdemo/web:1
    command: ["sh", "-c", "mkdir -p /tmp/cache && head -c 1000000 /dev/zero > /tmp/cache/blob && sleep 86400"]
    deploy:
      replicas: 2
      labels:
        dockhand.clean.enable: "true"
        dockhand.clean.exec: "du -sh /tmp/cache; rm -rf /tmp/cache/*; echo cache cleared"
        dockhand.clean.exec.timeout: "30s"
        dockhand.update.enable: "true"
        dockhand.update.exec-post: "cat /version"
        dockhand.update.token: "demo-ci-token"
  worker:
    image: dockhand/busybox:test
    command: ["sleep", "86400"]
  db:
    image: dockhand/busybox:test
    command: ["sh", "-c", "test -f /data/important.txt || echo 'the data that matters' > /data/important.txt; trap 'exit 0' TERM; while true; do sleep 1; done"]
    volumes:
      - data:/data
    deploy:
      labels:
        dockhand.backup.enable: "true"
        dockhand.backup.volume-list-upload: "data"
        dockhand.backup.stop: "true"
volumes:
  data:
"#;

pub(crate) fn run() -> anyhow::Result<()> {
    let layout = engine::up()?;
    // The server's stack runs dockhand's image: this checkout's, whatever was there. The
    // CLI needs no image: its volume containers run one it makes from itself.
    crate::images::ensure(&layout, crate::images::Build::Release)?;
    let dockhand = |args: &[&str]| {
        proc::run(
            crate::cargo()
                .args(["run", "--quiet", "--locked", "--package", "dockhand-cli", "--bin", "dockhand", "--"])
                .args(["--host", &layout.url()])
                .args(args)
                .env_remove("DOCKHAND_HELPER_IMAGE"),
        )
    };
    dockhand(&["engine", "info"])?;
    // What a demo that stopped half-way left: its stacks go first, so that its tasks do not
    // keep an old image that the new tags would leave unused (and clean-node would prune).
    let mut leftover = false;
    for stack in [STACK, "dockhand"] {
        leftover |= layout.docker()?.args(["stack", "rm", stack]).output()?.status.success();
    }
    if leftover {
        for _ in 0..100 {
            let left = proc::output(layout.docker()?.args([
                "ps",
                "-aq",
                "--filter",
                "label=com.docker.stack.namespace",
            ]))?;
            if left.trim().is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    // The web service's image, a local tag (no registry here): busybox with /version.
    demo_image(&layout, "1", false)?;
    let compose = layout.scratch().join("demo-stack.yml");
    fs::write(&compose, COMPOSE)?;
    eprintln!(
        "\n== deploying the stack {STACK} (web: 2 replicas with clean labels; worker: none; db: a volume with backup labels)"
    );
    proc::run(layout.docker()?.args(["stack", "deploy", "--compose-file"]).arg(&compose).arg(STACK))?;
    wait_for_running(&layout, "web", 2)?;
    wait_for_running(&layout, "db", 1)?;

    eprintln!("\n== what cron would do now, and why");
    dockhand(&["plan"])?;
    let db = format!("{STACK}_db");
    eprintln!("\n== backup-service: {db}'s volume to the local storage target (stopped meanwhile)");
    dockhand(&["backup", &db])?;
    dockhand(&["backups", "ls", &db])?;
    eprintln!("\n== damage: the file in the volume is overwritten");
    db_shell(&layout, "echo DAMAGED > /data/important.txt")?;
    eprintln!("{}", db_shell(&layout, "cat /data/important.txt")?.trim());
    eprintln!("\n== restore: checked against its manifest, the service stopped and started again");
    dockhand(&["restore", &db])?;
    wait_for_running(&layout, "db", 1)?;
    let back = db_shell(&layout, "cat /data/important.txt")?;
    eprintln!("{}", back.trim());
    if back.trim() != "the data that matters" {
        bail!("the restore did not bring the data back: {back:?}");
    }
    eprintln!("\n== clean-node on this node: stopped containers, unused images, build cache");
    dockhand(&["clean", "node"])?;
    eprintln!("\n== clean-service: the web service's clean.exec in each of its tasks");
    dockhand(&["clean", "service", &format!("{STACK}_web")])?;
    // After clean-node, which removes images nothing uses.
    demo_image(&layout, "2", false)?;
    demo_image(&layout, "broken", true)?;
    let web = format!("{STACK}_web");
    eprintln!(
        "\n== update-service: {web} from dhdemo/web:1 to dhdemo/web:2 (local tags: deployed by tag, unpinned)"
    );
    dockhand(&["update", &web, "--image", "dhdemo/web:2"])?;
    eprintln!("\n== update-service to a broken image: why it failed, and the rollback to dhdemo/web:2");
    let status = crate::cargo()
        .args(["run", "--quiet", "--locked", "--package", "dockhand-cli", "--bin", "dockhand", "--"])
        .args(["--host", &layout.url(), "update", &web, "--image", "dhdemo/web:broken"])
        .env_remove("DOCKHAND_HELPER_IMAGE")
        .status()?;
    if status.code() != Some(1) {
        bail!("the update to the broken image should fail with exit code 1, not {status}");
    }
    let now = proc::output(layout.docker()?.args([
        "service",
        "inspect",
        "--format",
        "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
        &web,
    ]))?;
    eprintln!("{web} runs {} again", now.trim());
    if now.trim() != "dhdemo/web:2" {
        bail!("the rollback did not bring dhdemo/web:2 back: {now:?}");
    }
    eprintln!("\n== the jobs dockhand ran");
    dockhand(&["jobs", "ls"])?;
    server(&layout, &web)?;
    watch(&layout, &web)?;

    proc::run(layout.docker()?.args(["stack", "rm", STACK]))?;
    // The volume goes once the stack's containers are gone.
    for _ in 0..50 {
        let removed = layout.docker()?.args(["volume", "rm", &format!("{STACK}_data")]).output()?;
        if removed.status.success() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ =
        layout.docker()?.args(["image", "rm", "dhdemo/web:1", "dhdemo/web:2", "dhdemo/web:broken"]).output();
    // clean-node took the images nothing used: put the test images back.
    crate::images::ensure(&layout, crate::images::Build::Release)?;
    eprintln!("\nthe private engine stays up; stop it with `cargo xtask engine down`");
    Ok(())
}

/// dockhand-server deployed with `deploy/stack.yml` on the private engine, serving HTTPS
/// from two swarm secrets, then one update triggered the way seed 002's GitLab job does it: a
/// container on the overlay network posts `{token, serviceName, image, isForce}` to
/// `https://swarm-utils:3000/api/update/service`, checking the certificate with the CA.
fn server(layout: &engine::Layout, web: &str) -> anyhow::Result<()> {
    eprintln!(
        "\n== dockhand-server: deploy/stack.yml on this swarm (admin token and a TLS pair for the names \
         dockhand and swarm-utils as swarm secrets)"
    );
    // clean-node took the images nothing used, dockhand's own among them.
    crate::images::ensure(layout, crate::images::Build::Release)?;
    let ca = dockhand_e2e::pki::TestCa::new("dockhand demo CA");
    let pair = ca.server_for(&["dockhand", "swarm-utils"]);
    for (name, value) in [
        ("dockhand_admin_tokens", format!("demo-admin-{}\n", std::process::id())),
        ("dockhand_tls_cert", pair.cert_pem),
        ("dockhand_tls_key", pair.key_pem),
    ] {
        let _ = proc::output(layout.docker()?.args(["secret", "rm", name]));
        let mut secret = layout.docker()?;
        secret.args(["secret", "create", name, "-"]);
        proc::output_with_stdin(&mut secret, value.as_bytes())?;
    }
    let stack = crate::project_root().join("deploy").join("stack.yml");
    // The image is this checkout's, loaded here, not pulled: a tag, named for helpers too.
    proc::run(
        layout
            .docker()?
            .args(["stack", "deploy", "--detach=true", "--compose-file"])
            .arg(&stack)
            .arg("dockhand")
            .env("DOCKHAND_IMAGE", crate::images::DOCKHAND_IMAGE)
            .env("DOCKHAND_HELPER_IMAGE", crate::images::DOCKHAND_IMAGE)
            .env("DOCKHAND_DOCKER_SOCKET", layout.socket()),
    )?;
    let body = dockhand_e2e::seed_update_body("demo-ci-token", web, "dhdemo/web:1");
    eprintln!(
        "\n== a CI job on the overlay network posts the seed's request over HTTPS (curl --cacert): {body}"
    );
    let answer = proc::output(layout.docker()?.args([
        "run",
        "--rm",
        "--network",
        "dockhand",
        "-e",
        &format!("CA={}", ca.cert_pem()),
        "-e",
        &format!("BODY={body}"),
        "-e",
        "URL=https://swarm-utils:3000/api/update/service",
        crate::images::CURL_IMAGE,
        "sh",
        "-c",
        dockhand_e2e::OVERLAY_HTTPS_SCRIPT,
    ]));
    let logs = proc::output(layout.docker()?.args(["service", "logs", "--raw", "dockhand_server"]));
    for cleanup in [
        vec!["stack", "rm", "dockhand"],
        vec!["secret", "rm", "dockhand_admin_tokens", "dockhand_tls_cert", "dockhand_tls_key"],
    ] {
        let _ = proc::output(layout.docker()?.args(&cleanup));
    }
    for _ in 0..50 {
        let gone = layout.docker()?.args(["network", "rm", "dockhand"]).output()?;
        let vol = layout.docker()?.args(["volume", "rm", "dockhand_state"]).output()?;
        if gone.status.success() && vol.status.success() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let answer = answer?;
    let status = answer.trim_end().lines().last().unwrap_or_default().to_owned();
    let json = answer.trim_end().rsplit_once('\n').map_or("", |(b, _)| b);
    eprintln!("HTTPS {status}\n{json}");
    if status != "200" || !json.contains(r#""message":"Ok""#) {
        bail!("the server did not update {web}:\n{answer}\n{}", logs.unwrap_or_default());
    }
    let now = proc::output(layout.docker()?.args([
        "service",
        "inspect",
        "--format",
        "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
        web,
    ]))?;
    eprintln!("{web} runs {} (updated by dockhand-server)", now.trim());
    if now.trim() != "dhdemo/web:1" {
        bail!("the server's update did not deploy dhdemo/web:1: {now:?}");
    }
    Ok(())
}

/// Stops a child process when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Watch mode on the web service: a local registry on loopback (no authentication; the
/// engine pulls from loopback over plain HTTP), the service following `live` there, a new
/// image pushed under that tag, and `dockhand-server` (the host binary, cron every two
/// seconds) updating the service at its next tick, pinned to the new digest.
fn watch(layout: &engine::Layout, web: &str) -> anyhow::Result<()> {
    let registry = crate::local_registry::LocalRegistry::start(&layout.scratch().join("demo-registry"))?;
    let address = registry.address.clone();
    let live = format!("{address}/dhdemo/web:live");
    eprintln!("\n== watch mode: a local registry at {address}; {web} follows {live}");
    let pushed = |from: &str| registry.push(|| layout.docker(), from, &live);
    demo_image(layout, "2", false)?;
    demo_image(layout, "3", false)?;
    pushed("dhdemo/web:2")?;
    // The operator's part: the service runs the registry's tag, and its labels ask for it.
    proc::output(layout.docker()?.args([
        "service",
        "update",
        "--quiet",
        "--image",
        &live,
        "--label-add",
        "dockhand.update.auto=true",
        web,
    ]))?;
    let image_of = || -> anyhow::Result<String> {
        let format = "{{.Spec.TaskTemplate.ContainerSpec.Image}}";
        Ok(proc::output(layout.docker()?.args(["service", "inspect", "--format", format, web]))?
            .trim()
            .to_owned())
    };
    let before = image_of()?;
    eprintln!("{web} runs {before}");
    eprintln!("\n== CI pushes a new image under the same tag: dhdemo/web:3 as {live}");
    pushed("dhdemo/web:3")?;

    let [_, server] = crate::images::static_binaries()?;
    let state = layout.scratch().join("demo-watch-server");
    let _ = fs::remove_dir_all(&state);
    fs::create_dir_all(&state)?;
    let settings = state.join("dockhand.yaml");
    fs::write(
        &settings,
        "schedule:\n  update-service: \"*/2 * * * * *\"\n  clean-node: \"off\"\n  clean-service: \"off\"\n  \
         backup-service: \"off\"\n  backup-node: \"off\"\n",
    )?;
    eprintln!("\n== dockhand-server with schedule.update-service: \"*/2 * * * * *\" (watch mode's tick)");
    let log = state.join("server.log");
    let listen = format!("127.0.0.1:{}", crate::bench_server::free_port()?);
    let admin = format!("demo-admin-{}", std::process::id());
    let viewer = format!("demo-viewer-{}", std::process::id());
    let _server = Child(
        std::process::Command::new(server)
            .args(["--listen", &listen, "--state-dir"])
            .arg(state.join("state"))
            .arg("--config")
            .arg(&settings)
            .env("DOCKER_HOST", layout.url())
            .env("DOCKHAND_ADMIN_TOKENS", &admin)
            .env("DOCKHAND_VIEWER_TOKENS", &viewer)
            .env("DOCKHAND_HELPER_IMAGE", crate::images::DOCKHAND_IMAGE)
            .stderr(fs::File::create(&log)?)
            .stdout(std::process::Stdio::null())
            .spawn()?,
    );
    let mut now = before.clone();
    for _ in 0..300 {
        now = image_of()?;
        if now != before && now.starts_with(&format!("{live}@sha256:")) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let said = fs::read_to_string(&log).unwrap_or_default();
    for line in said.lines().filter(|l| l.contains("cron: ran") || l.contains("watch: looked")).take(4) {
        eprintln!("{line}");
    }
    if now == before {
        bail!("watch mode did not update {web} within a minute; the server said:\n{said}");
    }
    eprintln!("{web} now runs {now}: updated by the watch, pinned to the new digest");
    status_page(&format!("http://{listen}"), &admin, &viewer)?;
    // The stack's web service goes with the stack; the tag's image goes here.
    let _ = layout.docker()?.args(["image", "rm", &live, "dhdemo/web:3"]).output();
    Ok(())
}

/// The status page as an operator's browser shows it: a backup of the db and a clean of the
/// web service asked of the server over the API, then a viewer signs in, in headless
/// Chromium, and the page is saved to `target/status-page.png` (the README shows a copy).
fn status_page(url: &str, admin: &str, viewer: &str) -> anyhow::Result<()> {
    crate::tools::ensure_browser()?;
    eprintln!("\n== the status page: a backup and a clean over the API, then a viewer signs in");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::new();
        for path in [format!("/v1/services/{STACK}_db/backup"), format!("/v1/services/{STACK}_web/clean")] {
            // The web service may still be held by the watch's update (it watches the
            // rollout): a busy target is asked again, for up to two minutes.
            for attempt in 1..=24 {
                let answer = http
                    .post(format!("{url}{path}"))
                    .bearer_auth(admin)
                    .header("content-type", "application/json")
                    .body("{}")
                    .send()
                    .await?;
                let status = answer.status();
                let job: serde_json::Value = answer.json().await?;
                if status.as_u16() == 409 && attempt < 24 {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    continue;
                }
                eprintln!("POST {path}: {status}, job {} {}", job["id"], job["status"]);
                if !status.is_success() {
                    bail!("the server refused {path}: {job}");
                }
                break;
            }
        }
        let browser = dockhand_e2e::browser::Browser::start(1280, 1000).await?;
        browser.open(&format!("{url}/")).await?;
        browser.type_into("#token", viewer).await?;
        browser.click("button[type=submit]").await?;
        browser.wait_for(Duration::from_secs(10), |page| page.contains("viewer#1")).await?;
        let shot = crate::project_root().join("target").join("status-page.png");
        browser.screenshot(&shot).await?;
        eprintln!("the status page, as a viewer sees it: {}", shot.display());
        Ok(())
    })
}

/// `dhdemo/web:<tag>`: the test busybox with `/version` saying `tag`; a broken one's
/// entrypoint exits 1 at once, whatever the service's command.
fn demo_image(layout: &engine::Layout, tag: &str, broken: bool) -> anyhow::Result<()> {
    let change = r#"ENTRYPOINT ["sh", "-c", "echo 'dhdemo/web:broken cannot start' >&2; exit 1"]"#;
    crate::images::version_image(
        || layout.docker(),
        tag,
        &format!("dhdemo/web:{tag}"),
        broken.then_some(change),
    )
}

/// Runs `script` in the db service's running container; its output.
fn db_shell(layout: &engine::Layout, script: &str) -> anyhow::Result<String> {
    let id = proc::output(layout.docker()?.args([
        "ps",
        "-q",
        "--filter",
        &format!("label=com.docker.swarm.service.name={STACK}_db"),
    ]))?;
    let id = id.lines().next().unwrap_or_default().trim().to_owned();
    if id.is_empty() {
        bail!("no running container of {STACK}_db");
    }
    proc::output(layout.docker()?.args(["exec", &id, "sh", "-c", script]))
}

/// Waits up to a minute for `count` tasks of the stack's `service` to run.
fn wait_for_running(layout: &engine::Layout, service: &str, count: usize) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let client = Client::new(Endpoint::unix(layout.socket()))?;
    let service = format!("{STACK}_{service}");
    runtime.block_on(async {
        for _ in 0..300 {
            let filters = Filters::new().with("service", &service).with("desired-state", "running");
            let running =
                client.tasks(&filters).await?.iter().filter(|t| t.status.state == "running").count();
            if running == count {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        bail!("the {service} tasks did not start within a minute")
    })
}
