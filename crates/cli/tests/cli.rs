//! The `dockhand` binary against the real engine, through the shared e2e harness.

// Test code: a panic with the value is the failure report, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use dockhand_e2e::{BUSYBOX_IMAGE, ServiceGuard, engine_url, peer, service_with_container, unique_name};
use dockhand_engine::ServiceSpec;

/// Runs the `dockhand` binary cargo built for these tests.
fn dockhand(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    dockhand_e2e::run(env!("CARGO_BIN_EXE_dockhand").as_ref(), args, env)
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn info_json_reports_the_swarm() {
    let url = dockhand_e2e::engine().await.url;
    let out = dockhand(&["--host", &url, "engine", "info", "--json"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(info["Swarm"]["LocalNodeState"], "active", "{info}");
    assert_eq!(info["OSType"], "linux");
}

#[tokio::test]
async fn docker_host_is_honoured_and_text_is_the_default() {
    let url = dockhand_e2e::engine().await.url;
    let out = dockhand(&["engine", "ping"], &[("DOCKER_HOST", &url)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("Status:") && text.contains("OK"), "{text}");
    assert!(text.contains(&url), "{text}");

    let out = dockhand(&["engine", "version"], &[("DOCKER_HOST", &url)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("API version:"), "{}", stdout(&out));
}

#[tokio::test]
async fn the_flag_beats_docker_host() {
    let url = dockhand_e2e::engine().await.url;
    let out =
        dockhand(&["-H", &url, "engine", "ping", "--json"], &[("DOCKER_HOST", "unix:///nonexistent.sock")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ping: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(ping["Endpoint"], url.as_str());
    assert_eq!(ping["OSType"], "linux");
    assert!(ping["NegotiatedApiVersion"].as_str().is_some_and(|v| v.starts_with("1.")), "{ping}");
}

#[test]
fn a_missing_socket_fails_with_its_path() {
    let out = dockhand(&["-H", "unix:///nonexistent/dockhand.sock", "engine", "info"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("unix:///nonexistent/dockhand.sock"), "{err}");
    assert!(err.starts_with("dockhand: error:"), "{err}");
}

#[test]
fn a_bad_url_is_quoted_with_the_accepted_forms() {
    let out = dockhand(&["engine", "ping"], &[("DOCKER_HOST", "gopher://x:1")]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("\"gopher://x:1\"") && err.contains("unix:///"), "{err}");
    assert!(err.contains("DOCKER_HOST"), "{err}");
}

#[test]
fn the_default_engine_url_points_at_the_private_engine() {
    // Guards the harness itself: it must never fall back to the system socket.
    assert!(!engine_url().contains("/var/run/docker.sock"), "{}", engine_url());
}

#[test]
fn tls_from_the_environment_as_the_docker_cli_reads_it() {
    let cert_path = peer("TLS_DIR");
    let host = peer("TLS_HOST");
    let out = dockhand(
        &["engine", "version", "--json"],
        &[("DOCKER_HOST", &host), ("DOCKER_TLS_VERIFY", "1"), ("DOCKER_CERT_PATH", &cert_path)],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let version: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(version["ApiVersion"].as_str().is_some_and(|v| v.starts_with("1.")), "{version}");
}

#[test]
fn tls_from_flags() {
    let dir = std::path::PathBuf::from(peer("TLS_DIR"));
    let file = |name: &str| dir.join(name).display().to_string();
    let host = peer("TLS_HOST");
    let (ca, cert, key) = (file("ca.pem"), file("cert.pem"), file("key.pem"));
    let args = [
        "-H",
        &host,
        "--tlsverify",
        "--tlscacert",
        &ca,
        "--tlscert",
        &cert,
        "--tlskey",
        &key,
        "engine",
        "ping",
    ];
    let out = dockhand(&args, &[]);
    assert!(out.status.success(), "{}", stderr(&out));

    // Without the client certificate the daemon refuses, and the error names the engine.
    let out = dockhand(
        &["-H", &host, "--tlsverify", "--tlscacert", &ca, "engine", "ping"],
        &[("HOME", "/nonexistent")],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains(host.trim_start_matches("tcp://")), "{err}");
}

#[test]
fn a_docker_context_made_by_the_docker_cli_is_followed() {
    // The real docker CLI writes the context (meta.json under the SHA-256 of its name, and
    // currentContext in config.json); dockhand must read it as the CLI does.
    let config = tempfile::tempdir().unwrap();
    let cfg = config.path().to_str().unwrap();
    let name = "dockhand-e2e";
    let docker = |args: &[&str]| {
        let out = std::process::Command::new("docker")
            .arg("--config")
            .arg(cfg)
            .args(args)
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT")
            .output()
            .expect("the docker CLI is installed with the engine");
        assert!(out.status.success(), "docker {args:?}: {}", stderr(&out));
    };
    docker(&["context", "create", name, "--docker", &format!("host={}", engine_url())]);
    docker(&["context", "use", name]);

    let out = dockhand(&["engine", "info", "--json"], &[("DOCKER_CONFIG", cfg)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["Swarm"]["LocalNodeState"], "active");

    let out = dockhand(&["engine", "ping"], &[("DOCKER_CONFIG", cfg), ("DOCKER_CONTEXT", name)]);
    assert!(out.status.success(), "{}", stderr(&out));

    let out = dockhand(&["--context", "missing", "engine", "ping"], &[("DOCKER_CONFIG", cfg)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("context \"missing\" (from --context)"), "{}", stderr(&out));

    let out =
        dockhand(&["--context", name, "-H", &engine_url(), "engine", "ping"], &[("DOCKER_CONFIG", cfg)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("conflicting"), "{}", stderr(&out));
}

#[tokio::test]
async fn services_nodes_and_tasks_are_listed() {
    let e = dockhand_e2e::engine().await;
    let name = unique_name("cli");
    let spec = ServiceSpec::new(&name, BUSYBOX_IMAGE)
        .with_label("dockhand.test", &name)
        .with_args(["sleep", "3600"]);
    e.client.create_service(&spec).await.unwrap();
    let _guard = ServiceGuard::new(&e.url, &name);
    let label = format!("label=dockhand.test={name}");

    let out = dockhand(&["-H", &e.url, "services", "ls", "--filter", &label], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("ID") && text.contains(&name) && text.contains("replicated"), "{text}");
    assert_eq!(text.lines().count(), 2, "one header, one service: {text}");

    let out = dockhand(&["-H", &e.url, "services", "ls", "--filter", &label, "--json"], &[]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json[0]["Spec"]["Name"], name.as_str());
    assert_eq!(json[0]["Spec"]["Labels"]["dockhand.test"], name.as_str());

    let out = dockhand(&["-H", &e.url, "tasks", "ls", &name], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&format!("{name}.1")), "{}", stdout(&out));

    let out = dockhand(&["-H", &e.url, "nodes", "ls"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("Leader") && stdout(&out).contains("ready"), "{}", stdout(&out));

    // docker CLI habits: -q prints IDs; the current node is marked; tasks show hostnames
    // and how long ago their state began.
    let svc = e.client.service(&name).await.unwrap();
    let out = dockhand(&["-H", &e.url, "services", "ls", "-q", "--filter", &label], &[]);
    assert_eq!(stdout(&out), format!("{}\n", svc.id), "{}", stderr(&out));
    let info = e.client.info().await.unwrap();
    let out = dockhand(&["-H", &e.url, "nodes", "ls"], &[]);
    let mine = format!("{} *", &info.swarm.node_id[..12]);
    assert!(stdout(&out).lines().any(|l| l.starts_with(&mine)), "{mine} not marked: {}", stdout(&out));
    let out = dockhand(&["-H", &e.url, "nodes", "ls", "-q"], &[]);
    assert!(stdout(&out).lines().any(|l| l == info.swarm.node_id), "{}", stdout(&out));
    // A task shows its node once the scheduler has placed it.
    dockhand_e2e::wait_for_task(&e.client, &name, "running").await;
    let out = dockhand(&["-H", &e.url, "tasks", "ls", &name], &[]);
    let text = stdout(&out);
    assert!(text.contains(&format!(" {} ", info.name)), "no hostname {}: {text}", info.name);
    assert!(text.contains(" ago") && !text.contains("T0") && !text.contains("T1"), "{text}");
    let out = dockhand(&["-H", &e.url, "tasks", "ls", "-q", &name], &[]);
    assert_eq!(stdout(&out).lines().count(), 1, "{}", stdout(&out));
}

#[tokio::test]
async fn json_into_a_closed_pipe_exits_0() {
    let url = dockhand_e2e::engine().await.url;
    for args in [&["services", "ls", "--json"][..], &["nodes", "ls", "--json"], &["engine", "info", "--json"]]
    {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dockhand"))
            .args(["-H", &url])
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes away before the first byte: the write gets EPIPE.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).is_empty(), "{args:?}: {}", stderr(&out));
    }
}

#[tokio::test]
async fn an_unknown_service_and_a_bad_filter_are_errors() {
    let url = dockhand_e2e::engine().await.url;
    let out = dockhand(&["-H", &url, "tasks", "ls", "dh-no-such-service"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("404") && err.contains("dh-no-such-service"), "{err}");

    let out = dockhand(&["-H", &url, "services", "ls", "--filter", "oops"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--filter \"oops\""), "{}", stderr(&out));
}

#[tokio::test]
async fn exec_streams_output_and_exits_with_the_commands_code() {
    let e = dockhand_e2e::engine().await;
    let spec = ServiceSpec::new(unique_name("cli-exec"), BUSYBOX_IMAGE).with_args(["sleep", "3600"]);
    let (_guard, container) = service_with_container(&e, &spec, "running").await;
    let args =
        ["-H", e.url.as_str(), "exec", "-e", "GREETING=hi there", "-w", "/tmp", container.as_str(), "--"];
    // Arguments reach the command as given: no shell splits or expands them.
    let script = "echo \"$GREETING\" from $(pwd); echo \"$1\" >&2; exit 42";
    let out = dockhand(&[&args[..], &["sh", "-c", script, "sh", "a $HOME; b"]].concat(), &[]);
    assert_eq!(out.status.code(), Some(42), "{}", stderr(&out));
    assert_eq!(stdout(&out), "hi there from /tmp\n");
    assert_eq!(stderr(&out), "a $HOME; b\n");

    let out = dockhand(&["-H", &e.url, "exec", "dh-no-such-container", "--", "true"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("dh-no-such-container"), "{}", stderr(&out));

    // As docker takes it: the command right after the container, options of its own included.
    let out = dockhand(&["-H", &e.url, "exec", &container, "echo", "-n", "hi"], &[]);
    assert_eq!((out.status.code(), stdout(&out).as_str()), (Some(0), "hi"), "{}", stderr(&out));

    // -i sends our stdin, and closes it at its end.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dockhand"))
        .args(["-H", &e.url, "exec", "-i", &container, "sh", "-c", "tr a-z A-Z; echo done"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"piped input\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(stdout(&out), "PIPED INPUT\ndone\n", "{}", stderr(&out));

    // -t: one raw stream from a TTY.
    let out =
        dockhand(&["-H", &e.url, "exec", "-t", &container, "sh", "-c", "tty >/dev/null && echo tty"], &[]);
    assert_eq!(stdout(&out).trim_end(), "tty", "{}", stderr(&out));

    let out = dockhand(&["-H", &e.url, "exec", "--json", &container, "true"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--json"), "{}", stderr(&out));
}

/// A configuration naming the test engine, an unreachable host and a disabled one.
fn hosts_config(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("dockhand.yaml");
    let tls = std::path::PathBuf::from(peer("TLS_DIR"));
    std::fs::write(
        &path,
        format!(
            r#"docker:
  hosts:
    test:
      type: external
      host: "{}"
    secure:
      type: remote
      host: "{}"
      clientTLS:
        CA: "{}"
        cert: "{}"
        key: "{}"
    gone:
      type: remote
      host: "unix:///nonexistent/docker.sock"
    off:
      type: remote
      host: "unix:///nonexistent/off.sock"
      disabled: true
    man:
      type: managed
      host: "unix:///nonexistent/managed.sock"
      managed:
        executable: no-such-dockerd
    bad:
      type: remote
"#,
            engine_url(),
            peer("TLS_HOST"),
            tls.join("ca.pem").display(),
            tls.join("cert.pem").display(),
            tls.join("key.pem").display(),
        ),
    )
    .unwrap();
    path
}

#[test]
fn hosts_are_listed_checked_and_used_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let config = hosts_config(dir.path());
    let cfg = config.to_str().unwrap();

    let out = dockhand(&["--config", cfg, "hosts", "ls", "--json"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let hosts: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let by_id = |id: &str| hosts.as_array().unwrap().iter().find(|h| h["id"] == id).unwrap().clone();
    assert_eq!(by_id("test")["reachable"], true);
    assert_eq!(by_id("secure")["reachable"], true, "{hosts}");
    assert_eq!(by_id("gone")["reachable"], false);
    assert!(by_id("gone")["error"].as_str().unwrap().contains("/nonexistent/docker.sock"));
    assert_eq!(by_id("off")["disabled"], true);
    // One bad entry is reported, and spoils nothing else.
    assert_eq!(by_id("bad")["reachable"], false);
    assert!(by_id("bad")["error"].as_str().unwrap().contains("docker.hosts.bad"), "{hosts}");
    let out = dockhand(&["--config", cfg, "--host-id", "bad", "engine", "ping"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("docker.hosts.bad"), "{}", stderr(&out));

    let out = dockhand(&["--config", cfg, "hosts", "check"], &[]);
    assert_eq!(out.status.code(), Some(1), "one host is unreachable");
    let text = stdout(&out);
    assert!(
        text.contains("test: ok")
            && text.contains("secure: ok")
            && text.contains("gone: FAILED")
            && text.contains("bad: FAILED"),
        "{text}"
    );
    let out = dockhand(&["--config", cfg, "hosts", "check", "test"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    // --host-id reaches the engine through the configuration, TLS included.
    let out = dockhand(&["--config", cfg, "--host-id", "secure", "engine", "version", "--json"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = dockhand(&["--config", cfg, "--host-id", "off", "engine", "ping"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("DOCKHAND_DOCKER_HOSTS_OFF_DISABLED=false"), "{}", stderr(&out));
    let out = dockhand(&["--config", cfg, "--host-id", "nope", "engine", "ping"], &[]);
    assert!(
        stderr(&out).contains("no such host") && stderr(&out).contains("bad, gone, man, off, secure, test"),
        "{}",
        stderr(&out)
    );
    let out = dockhand(&["--config", cfg, "--host-id", "test", "-H", &engine_url(), "engine", "ping"], &[]);
    assert_eq!(out.status.code(), Some(2), "clap refuses --host-id with -H");

    // host run refuses a disabled host as --host-id does, and runs the preflight first.
    let out = dockhand(&["--config", cfg, "host", "run", "off"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("DOCKHAND_DOCKER_HOSTS_OFF_DISABLED=false"), "{}", stderr(&out));
    let out = dockhand(&["--config", cfg, "host", "run", "man"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot start") && stderr(&out).contains("no-such-dockerd"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_explicit_config_must_exist_and_parse_for_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.yaml");
    let broken = dir.path().join("broken.yaml");
    std::fs::write(&broken, "docker: [unclosed\n").unwrap();
    for file in [&missing, &broken] {
        let file = file.to_str().unwrap();
        for args in [&["engine", "ping"][..], &["services", "ls"], &["hosts", "ls"], &["config", "show"]] {
            let out =
                dockhand(&[&["--config", file, "-H", "unix:///nonexistent.sock"][..], args].concat(), &[]);
            assert_eq!(out.status.code(), Some(1), "{args:?}");
            assert!(stderr(&out).contains(file), "{args:?}: {}", stderr(&out));
        }
    }
}

/// A unix socket that accepts connections and never answers.
fn silent_engine(dir: &std::path::Path) -> (std::path::PathBuf, std::os::unix::net::UnixListener) {
    let path = dir.join("silent.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    (path, listener)
}

#[test]
fn timeout_bounds_a_silent_engine_and_hosts_ls_probes_each_host_with_a_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let (sock, _listener) = silent_engine(dir.path());
    let url = format!("unix://{}", sock.display());
    let out = dockhand(&["--timeout", "1s", "-H", &url, "engine", "ping"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains(&url) && stderr(&out).contains("1s"), "{}", stderr(&out));

    let config = dir.path().join("dockhand.yaml");
    std::fs::write(
        &config,
        format!(
            "docker:\n  hosts:\n    silent: {{type: remote, host: \"{url}\"}}\n    \
             silent2: {{type: remote, host: \"{url}\"}}\n    test: {{type: external, host: \"{}\"}}\n",
            engine_url()
        ),
    )
    .unwrap();
    let out = dockhand(&["--config", config.to_str().unwrap(), "hosts", "ls", "--json"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let hosts: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let by_id = |id: &str| hosts.as_array().unwrap().iter().find(|h| h["id"] == id).unwrap().clone();
    assert_eq!(by_id("test")["reachable"], true, "{hosts}");
    for id in ["silent", "silent2"] {
        assert_eq!(by_id(id)["error"], "no answer within 5s", "{hosts}");
    }
    let out =
        dockhand(&["--config", config.to_str().unwrap(), "--timeout", "1s", "hosts", "ls", "--json"], &[]);
    let hosts: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let silent = hosts.as_array().unwrap().iter().find(|h| h["id"] == "silent").unwrap();
    assert!(silent["error"].as_str().unwrap().contains("timed out after 1s"), "{hosts}");
}

#[test]
fn config_show_names_sources_and_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let config = hosts_config(dir.path());
    let cfg = config.to_str().unwrap();
    let out =
        dockhand(&["--config", cfg, "config", "show"], &[("DOCKHAND_DOCKER_HOSTS_OFF_DISABLED", "false")]);
    // The invalid entry is named, and fails the command; the rest is shown.
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with(&format!("# from {cfg}")), "{text}");
    assert!(text.contains("# bad: INVALID") && text.contains("docker.hosts.bad.host"), "{text}");
    assert!(text.contains("off:  # changed by DOCKHAND_DOCKER_HOSTS_OFF_DISABLED"), "{text}");

    // Without a file: seed 000's defaults, under HOME.
    let home = dir.path().join("home");
    let out = dockhand(
        &["config", "show"],
        &[("HOME", home.to_str().unwrap()), ("XDG_CONFIG_HOME", "/nonexistent")],
    );
    let text = stdout(&out);
    assert!(text.starts_with("# from the built-in defaults"), "{text}");
    assert!(
        text.contains(&format!("{}/.cache/dockhand-docker-host/dockhand-docker.sock", home.display())),
        "{text}"
    );
    assert!(text.contains("executable: \"dockerd-rootless.sh\""), "{text}");

    // Secrets in a managed host's env are masked.
    let out = dockhand(
        &["--config", cfg, "config", "show"],
        &[("DOCKHAND_DOCKER_HOSTS_MAN_MANAGED_ENV", "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI-K7MDENG")],
    );
    let text = stdout(&out);
    assert!(
        !text.contains("wJalrXUtnFEMI-K7MDENG") && text.contains("AWS_SECRET_ACCESS_KEY=wJal****"),
        "{text}"
    );

    // A broken file is reported with its path and key.
    std::fs::write(&config, "docker:\n  hosts:\n    r:\n      type: remote\n").unwrap();
    let out = dockhand(&["--config", cfg, "config", "show"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains(&format!("{cfg}: docker.hosts.r.host: is required for a remote host")),
        "{}",
        stdout(&out)
    );
}

/// A whole seed-000 `svacer.cfg` pasted in, with its `xsvacer:` root: its hosts are read, and
/// a note says the root is no longer needed. (It fell back to the defaults before.)
#[test]
fn a_seed_config_under_its_xsvacer_root_is_read_with_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("svacer.yaml");
    std::fs::write(
        &config,
        "xsvacer:\n  docker:\n    hosts:\n      remote1:\n        type: remote\n        host: ssh://ops@build.example.com\n",
    )
    .unwrap();
    let out = dockhand(&["--config", config.to_str().unwrap(), "config", "show"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("ssh://ops@build.example.com"), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("dockhand: note:") && stderr(&out).contains("no longer needed"),
        "{}",
        stderr(&out)
    );
}

/// `--host-id` names a managed host whose engine is down, the way a user runs it: each
/// command starts the engine, gets its answer from it, and leaves nothing behind when it
/// ends. (Before, the engine was stopped at once: the registry that started it was dropped
/// at the end of the statement that connected, and its parent-death signal went off.)
#[tokio::test]
async fn a_command_on_a_managed_host_starts_its_engine_answers_and_leaves_nothing() {
    dockhand_e2e::engine().await;
    let dir = tempfile::Builder::new().prefix("dhcmd").tempdir_in("/tmp").unwrap();
    let config = dir.path().join("dockhand.yaml");
    std::fs::write(&config, dockhand_e2e::managed_dockerd_yaml(dir.path(), "ondemand")).unwrap();
    let data_root = dir.path().join("data").display().to_string();
    // Twice each: a second command starts the engine again, after the first left nothing.
    for args in [&["engine", "info", "--json"][..], &["engine", "ping"], &["engine", "info", "--json"]] {
        let mut all = vec!["--config", config.to_str().unwrap(), "--host-id", "ondemand"];
        all.extend_from_slice(args);
        let out = dockhand(&all, &[]);
        assert!(out.status.success(), "{args:?}: {}\n{}", stdout(&out), stderr(&out));
        if args.contains(&"info") {
            assert!(stdout(&out).contains(&data_root), "the managed engine answered: {}", stdout(&out));
        }
        let left = dockhand_e2e::processes_naming(dir.path());
        assert!(left.is_empty(), "{args:?}: the engine outlived the command: {left:?}\n{}", stderr(&out));
        let mounts = dockhand_e2e::mounts_naming(dir.path());
        assert!(mounts.is_empty(), "{args:?}: mounts left: {mounts:?}");
    }
}

/// Seed 000's known problem, as trials: `dockhand host run` is SIGKILLed at pseudo-random
/// moments (before the engine is ready, while it runs, while it stops). After each, no
/// engine may outlive its supervisor (the parent-death signal stops it), and the next run
/// must start without any lock error. Finally a run stopped by SIGTERM leaves nothing.
#[tokio::test]
async fn host_run_survives_ten_sigkills_and_stops_cleanly() {
    dockhand_e2e::engine().await;
    let dir = tempfile::Builder::new().prefix("dhrun").tempdir_in("/tmp").unwrap();
    let config = dir.path().join("dockhand.yaml");
    std::fs::write(&config, dockhand_e2e::managed_dockerd_yaml(dir.path(), "sup")).unwrap();
    let socket = dir.path().join("d.sock");
    let bin = env!("CARGO_BIN_EXE_dockhand");
    let run = |log: &str| {
        let log = std::fs::File::create(dir.path().join(log)).unwrap();
        std::process::Command::new(bin)
            .args(["--config", config.to_str().unwrap(), "host", "run", "sup", "--grace", "20s"])
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap()
    };
    let answers = || async {
        dockhand_engine::Client::new(dockhand_engine::Endpoint::unix(&socket)).unwrap().ping().await.is_ok()
    };
    let signal = |pid: u32, sig: &str| {
        let _ = std::process::Command::new("kill").args([sig, &pid.to_string()]).status();
    };
    // A fixed-seed generator: the moments vary per trial but a failure can be replayed.
    let mut seed: u64 = 0x5eed_d0c4;
    let mut next = move |n: u64| {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    for trial in 0..10 {
        let mut child = run(&format!("trial-{trial}.log"));
        let moment = next(3);
        match moment {
            // Before ready: somewhere in the first second.
            0 => tokio::time::sleep(std::time::Duration::from_millis(next(1000))).await,
            // While ready.
            1 | 2 => {
                for _ in 0..300 {
                    if answers().await {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                if moment == 2 {
                    // While stopping: SIGTERM starts the staged stop, SIGKILL interrupts it.
                    signal(child.id(), "-TERM");
                    tokio::time::sleep(std::time::Duration::from_millis(next(300))).await;
                }
            }
            _ => unreachable!(),
        }
        signal(child.id(), "-KILL");
        let _ = child.wait();
        let mut gone = false;
        for _ in 0..300 {
            if dockhand_e2e::processes_naming(dir.path()).is_empty() {
                gone = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let log = std::fs::read_to_string(dir.path().join(format!("trial-{trial}.log"))).unwrap_or_default();
        assert!(
            gone,
            "trial {trial} (moment {moment}): the engine outlived its supervisor: {:?}\n{log}",
            dockhand_e2e::processes_naming(dir.path())
        );
        assert!(
            !log.contains("another RootlessKit") && !log.contains("already supervises"),
            "trial {trial}: {log}"
        );
    }

    // A clean run after the trials: ready, then SIGTERM stops it and leaves nothing.
    let mut child = run("final.log");
    let mut ready = false;
    for _ in 0..300 {
        if answers().await {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let log = || std::fs::read_to_string(dir.path().join("final.log")).unwrap_or_default();
    assert!(ready, "the engine did not start after the trials:\n{}", log());
    signal(child.id(), "-TERM");
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}:\n{}", log());
    assert!(log().contains("SUPERVISED: "), "the engine's output is logged with its prefix:\n{}", log());
    assert!(dockhand_e2e::processes_naming(dir.path()).is_empty());
    assert!(!answers().await);
    let mounts = dockhand_e2e::mounts_naming(dir.path());
    assert!(mounts.is_empty(), "mounts left: {mounts:?}");
}

/// The seed's default configuration, with its managed host enabled by the seed's variable,
/// run by an unprivileged user: the real `dockerd-rootless.sh` starts, reports rootless,
/// survives SIGKILLs of `dockhand` without leaving an engine (so no "another RootlessKit is
/// running" on the next start), and stops cleanly with the state-dir lock free.
#[tokio::test]
async fn the_default_managed_host_runs_rootless_as_an_ordinary_user() {
    dockhand_e2e::engine().await;
    let user = peer("ROOTLESS_USER");
    let runtime = peer("ROOTLESS_RUNTIME_DIR");
    let home = std::fs::read_to_string("/etc/passwd")
        .unwrap()
        .lines()
        .find_map(|l| l.starts_with(&format!("{user}:")).then(|| l.split(':').nth(5).unwrap().to_owned()))
        .expect("the test user exists");
    let base = std::path::PathBuf::from(&home).join(".cache/dockhand-docker-host");
    let socket = base.join("dockhand-docker.sock");
    let bin = env!("CARGO_BIN_EXE_dockhand");
    let logs = tempfile::tempdir().unwrap();
    let run = |name: &str| {
        let log = std::fs::File::create(logs.path().join(name)).unwrap();
        std::process::Command::new("runuser")
            .args(["-u", &user, "--", "env", "-i"])
            .arg(format!("HOME={home}"))
            .arg(format!("USER={user}"))
            .arg(format!("XDG_RUNTIME_DIR={runtime}"))
            // The user has no dockhand.yaml there: the built-in defaults apply. (dockerd uses
            // this directory too, so it must be a real one.)
            .arg(format!("XDG_CONFIG_HOME={home}/.config"))
            .arg("PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin:/usr/share/docker.io/contrib")
            .arg("DOCKHAND_DOCKER_HOSTS_LOCAL_DISABLED=false")
            .args([bin, "host", "run", "local", "--grace", "20s"])
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap()
    };
    let client = dockhand_engine::Client::new(dockhand_engine::Endpoint::unix(&socket)).unwrap();
    // Ready, or false as soon as dockhand exits (its log then says why).
    async fn wait_ready(client: &dockhand_engine::Client, child: &mut std::process::Child) -> bool {
        for _ in 0..600 {
            if client.ping().await.is_ok() {
                return true;
            }
            if child.try_wait().ok().flatten().is_some() {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        false
    }
    // The user's processes that still run (a zombie runs nothing; its parent reaps it).
    let uid_processes = || {
        let out =
            std::process::Command::new("ps").args(["-u", &user, "-o", "pid=,stat=,args="]).output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.split_whitespace().nth(1).is_some_and(|stat| stat.starts_with('Z')))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let log = |name: &str| std::fs::read_to_string(logs.path().join(name)).unwrap_or_default();

    // SIGKILL `dockhand` three times, once before ready and twice while ready.
    for trial in 0..3 {
        let name = format!("rootless-{trial}.log");
        let mut child = run(&name);
        if trial == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        } else {
            assert!(wait_ready(&client, &mut child).await, "trial {trial}: not ready:\n{}", log(&name));
            if trial == 1 {
                assert!(client.info().await.unwrap().is_rootless(), "the engine must be rootless");
            }
        }
        // `runuser` is the child; dockhand is its child: kill dockhand itself.
        let _ = std::process::Command::new("pkill")
            .args(["-KILL", "-u", &user, "-f", "dockhand host run"])
            .status();
        let _ = child.wait();
        let mut gone = false;
        for _ in 0..200 {
            if uid_processes().is_empty() {
                gone = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(
            gone,
            "trial {trial}: the rootless engine outlived dockhand:\n{}\n{}",
            uid_processes(),
            log(&name)
        );
        assert!(!log(&name).contains("another RootlessKit"), "trial {trial}:\n{}", log(&name));
    }

    // A clean run: ready, rootless, then SIGTERM stops it and leaves nothing.
    let mut child = run("rootless-final.log");
    assert!(
        wait_ready(&client, &mut child).await,
        "not ready after the trials:\n{}",
        log("rootless-final.log")
    );
    assert!(client.info().await.unwrap().is_rootless());
    let _ =
        std::process::Command::new("pkill").args(["-TERM", "-u", &user, "-f", "dockhand host run"]).status();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}:\n{}", log("rootless-final.log"));
    assert!(uid_processes().is_empty(), "left: {}", uid_processes());
    assert!(client.ping().await.is_err());
    // rootlesskit's state-dir lock is free: gone (a clean rootlesskit removes it) or lockable.
    if let Ok(lock) = std::fs::File::open(base.join("state-dir/lock")) {
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive)
            .expect("the state-dir lock is free");
    }
}

#[test]
fn token_hash_reads_stdin_and_prints_the_label_value() {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dockhand"))
        .args(["token", "hash"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"s3cret\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(stdout(&out).trim(), dockhand_policy::hash_token("s3cret"));
    let out = dockhand(&["token", "hash"], &[]);
    assert_eq!(out.status.code(), Some(1), "an empty stdin is refused");
    assert!(stderr(&out).contains("no token on stdin"), "{}", stderr(&out));
}

#[tokio::test]
async fn locks_ls_shows_a_held_lock() {
    let e = dockhand_e2e::engine().await;
    let target = dockhand_jobs::LockTarget::Service(unique_name("cli-lock"));
    let locks = dockhand_jobs::Locks::new(
        e.client.clone(),
        dockhand_jobs::Locks::process_holder("cli-test"),
        dockhand_jobs::LockSettings::default(),
    );
    let guard = locks.acquire(&target, "job-cli").await.unwrap();
    let out = dockhand(&["-H", &e.url, "locks", "ls", "--json"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mine = listed.as_array().unwrap().iter().find(|l| l["target"] == target.label().as_str()).cloned();
    assert_eq!(mine.as_ref().map(|l| l["job"].clone()), Some(serde_json::json!("job-cli")), "{listed}");
    let out = dockhand(&["-H", &e.url, "locks", "ls"], &[]);
    let text = stdout(&out);
    assert!(text.starts_with("TARGET") && text.contains("job-cli") && text.contains("s left"), "{text}");
    guard.release().await.unwrap();
    let out = dockhand(&["-H", &e.url, "locks", "ls"], &[]);
    assert!(!stdout(&out).contains(&target.label()), "{}", stdout(&out));
}

#[tokio::test]
async fn plan_says_what_cron_would_do_and_why() {
    let e = dockhand_e2e::engine().await;
    let name = unique_name("plan");
    let spec = dockhand_engine::ServiceSpec::new(&name, BUSYBOX_IMAGE)
        .with_label("dockhand.clean.enable", "true")
        .with_label("dockhand.clean.exec.timeout", "2m")
        .with_label("dockhand.backup.enabel", "true")
        .with_args(["sleep", "3600"]);
    e.client.create_service(&spec).await.unwrap();
    let _guard = ServiceGuard::new(&e.url, &name);
    let out = dockhand(&["-H", &e.url, "plan", "--json"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = |action: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["target"] == format!("service/{name}").as_str() && r["action"] == action)
            .cloned()
            .unwrap_or_else(|| panic!("no {action} row: {rows}"))
    };
    let clean = row("clean-service");
    assert_eq!(clean["enabled"], true);
    assert_eq!(clean["decided_by"], "dockhand.clean.enable=true");
    assert!(clean["budget_ms"].as_u64().unwrap() >= 120_000, "{clean}");
    let backup = row("backup-service");
    assert_eq!(backup["enabled"], false);
    assert!(
        backup["diagnostics"][0].as_str().unwrap().contains("did you mean dockhand.backup.enable"),
        "{backup}"
    );
    assert!(rows.as_array().unwrap().iter().any(|r| r["action"] == "clean-node"), "{rows}");
    let out = dockhand(&["-H", &e.url, "plan"], &[]);
    let text = stdout(&out);
    assert!(text.starts_with("TARGET") && text.contains(&format!("service/{name}")), "{text}");
}

/// `volumes unused`: a volume no container uses is listed with its size; one a running
/// service uses is not.
#[tokio::test]
async fn volumes_unused_lists_only_volumes_nothing_uses() {
    let e = dockhand_e2e::engine().await;
    let (unused, used) = (unique_name("vol-unused"), unique_name("vol-used"));
    e.client.create_volume(&unused, &std::collections::BTreeMap::new()).await.unwrap();
    let name = unique_name("vol-user");
    let spec = dockhand_engine::ServiceSpec::new(&name, BUSYBOX_IMAGE)
        .with_volume(&used, "/data")
        .with_args(["sleep", "3600"]);
    let (_guard, _container) = service_with_container(&e, &spec, "running").await;
    let out = dockhand(&["-H", &e.url, "volumes", "unused", "--json"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = listed.as_array().unwrap().iter().filter_map(|v| v["name"].as_str()).collect();
    assert!(names.contains(&unused.as_str()), "{listed}");
    assert!(!names.contains(&used.as_str()), "a volume in use is listed: {listed}");
    let mine = listed.as_array().unwrap().iter().find(|v| v["name"] == unused.as_str()).unwrap();
    assert!(mine["size"].is_u64() && mine["node"].is_string(), "{mine}");
    let out = dockhand(&["-H", &e.url, "volumes", "unused"], &[]);
    assert!(stdout(&out).starts_with("NODE") && stdout(&out).contains(&unused), "{}", stdout(&out));
}

/// The seed's `SWARM_UTILS_*` variables still set the defaults; a bad one is named.
#[tokio::test]
async fn the_seeds_variables_set_the_defaults() {
    let e = dockhand_e2e::engine().await;
    let node_budget = |env: &[(&str, &str)]| {
        let out = dockhand(&["-H", &e.url, "plan", "--json"], env);
        assert!(out.status.success(), "{}", stderr(&out));
        let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let node = rows.as_array().unwrap().iter().find(|r| r["action"] == "clean-node").cloned().unwrap();
        node["budget_ms"].as_u64().unwrap()
    };
    let before = node_budget(&[]);
    let after = node_budget(&[("SWARM_UTILS_CLEAN_NODE_IMAGE_TIMEOUT", "160_000")]);
    assert_eq!(after, before + 100_000, "the image prune's 60 s became 160 s");
    let out = dockhand(&["-H", &e.url, "plan"], &[("SWARM_UTILS_LOCK_TIMEOUT", "10s")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("the environment: SWARM_UTILS_LOCK_TIMEOUT: \"10s\""), "{}", stderr(&out));
}

/// R3-18: a volume task started after its start-by time does nothing: a late `serve-pack`
/// never listens, so it cannot serve a volume to whoever connects first.
#[test]
fn a_late_volume_agent_does_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().to_str().unwrap();
    for verb in [
        vec!["serve-pack", "--dir", dir, "--level", "1", "--port", "0", "--seconds", "1"],
        vec!["serve-unpack", "--dir", dir, "--port", "0", "--seconds", "1"],
        vec!["pack", "--dir", dir, "--level", "1"],
    ] {
        let mut args = vec!["agent", "--start-by", "1"];
        args.extend(verb.iter().copied());
        let out = dockhand(&args, &[]);
        assert!(!out.status.success(), "{verb:?}: {}", stdout(&out));
        assert!(stderr(&out).contains("after its start-by time"), "{verb:?}: {}", stderr(&out));
        assert!(!stdout(&out).contains("listening"), "{verb:?}: {}", stdout(&out));
    }
}

/// Every command's `--help` groups the engine connection, the job options and the global
/// options under their own headings, after the command's own options.
#[test]
fn help_puts_connection_and_job_flags_under_their_own_headings() {
    let out = dockhand(&["restore", "--help"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let help = stdout(&out);
    let at = |needle: &str| help.find(needle).unwrap_or_else(|| panic!("no {needle:?} in:\n{help}"));
    let (own, jobs, connection, global) =
        (at("\nOptions:"), at("\nJob options:"), at("\nEngine connection:"), at("\nGlobal options:"));
    assert!(own < jobs && jobs < connection && connection < global, "{help}");
    for flag in ["--identity", "--force"] {
        assert!(at(flag) > own && at(flag) < jobs, "{flag} is not among restore's own options:\n{help}");
    }
    for flag in ["--helper-image", "--concurrency"] {
        assert!(at(flag) > jobs && at(flag) < connection, "{flag} is not a job option:\n{help}");
    }
    for flag in ["--tlsverify", "--host <URL>", "--context", "--timeout"] {
        assert!(
            at(flag) > connection && at(flag) < global,
            "{flag} is not an engine connection flag:\n{help}"
        );
    }
    for flag in ["--json", "--config", "--verbose"] {
        assert!(at(flag) > global, "{flag} is not a global option:\n{help}");
    }
    // A command without job options has no such heading.
    let help = stdout(&dockhand(&["services", "ls", "--help"], &[]));
    assert!(!help.contains("Job options:") && help.contains("Engine connection:"), "{help}");
}

/// `dockhand completions SHELL` prints a script its shell accepts (bash is checked with
/// `bash -n`), naming the commands; an unknown shell is an error naming the choices.
#[test]
fn completions_are_scripts_for_bash_zsh_and_fish() {
    let bash = dockhand(&["completions", "bash"], &[]);
    assert!(bash.status.success(), "{}", stderr(&bash));
    let script = stdout(&bash);
    assert!(script.contains("restore") && script.contains("--tlsverify"), "{script}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dockhand.bash");
    std::fs::write(&file, &script).unwrap();
    let checked = std::process::Command::new("bash").arg("-n").arg(&file).output().unwrap();
    assert!(checked.status.success(), "bash -n: {}", String::from_utf8_lossy(&checked.stderr));
    let zsh = stdout(&dockhand(&["completions", "zsh"], &[]));
    assert!(zsh.starts_with("#compdef dockhand"), "{zsh}");
    let fish = stdout(&dockhand(&["completions", "fish"], &[]));
    assert!(fish.contains("complete -c dockhand"), "{fish}");
    let wrong = dockhand(&["completions", "powershell"], &[]);
    assert_eq!(wrong.status.code(), Some(2));
    assert!(stderr(&wrong).contains("bash, zsh, fish"), "{}", stderr(&wrong));
}

/// `dockhand man --dir DIR` writes a roff page per visible command, named as `man`
/// finds them (`dockhand-clean-node.1`); the internal `agent` has none.
#[test]
fn man_writes_a_page_per_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = dockhand(&["man", "--dir", dir.path().to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let listed = stdout(&out);
    for page in ["dockhand.1", "dockhand-clean-node.1", "dockhand-restore.1", "dockhand-update.1"] {
        let text = std::fs::read_to_string(dir.path().join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.starts_with(".ie") || text.contains(".TH"), "{page} is not roff:\n{text}");
        assert!(listed.contains(page), "{listed}");
    }
    let restore = std::fs::read_to_string(dir.path().join("dockhand-restore.1")).unwrap();
    assert!(restore.contains("identity") && restore.contains("tlsverify"), "{restore}");
    assert!(!dir.path().join("dockhand-agent.1").exists(), "the internal agent has a page");
    assert!(!dir.path().join("dockhand-help.1").exists());
}
