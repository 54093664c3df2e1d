//! The `docker.hosts` configuration: seed 000's examples, case-insensitive keys, TOML,
//! environment overrides, expansion, and every validation error with its message.

// Test code: a panic with the value is the failure report, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use dockhand_host::Environment;
use dockhand_host::{Error, HostType, HostsConfig, Origin, env_id};

fn env(vars: &[(&str, &str)]) -> Environment {
    let mut all = vec![("HOME", "/home/u"), ("USER", "u")];
    all.extend_from_slice(vars);
    Environment::from_vars(all)
}

fn parse(yaml: &str, vars: &[(&str, &str)]) -> HostsConfig {
    HostsConfig::parse(yaml, false, &env(vars)).unwrap_or_else(|e| panic!("{e}\n---\n{yaml}"))
}

fn problems(yaml: &str, vars: &[(&str, &str)]) -> Vec<String> {
    match HostsConfig::parse(yaml, false, &env(vars)) {
        Err(Error::Invalid(list)) => list.iter().map(ToString::to_string).collect(),
        other => panic!("expected validation errors, got {other:?}"),
    }
}

fn url(config: &HostsConfig, id: &str) -> String {
    config.get(id).unwrap().host.as_ref().map(ToString::to_string).unwrap_or_default()
}

/// Three files that exist, standing in for the seed's /path/to/*.pem.
fn tls_files() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    for f in ["ca.pem", "cert.pem", "key.pem"] {
        std::fs::write(dir.path().join(f), "x").unwrap();
    }
    let p = dir.path().display().to_string();
    (dir, p)
}

#[test]
fn seed_external_hosts_example() {
    // Seed 000's first example, remote3's `clienttls: ...` placeholder given real files.
    let (_dir, p) = tls_files();
    let yaml = format!(
        r#"docker:
  hosts:
    default:
      type: external
      host: "unix:///path/to/docker.sock"
    remote1:
      type: external
      host: "ssh://docker-user@docker-host"
    remote2:
      type: external
      host: "http://docker-host-ip-address:2375"
    remote3:
      type: external
      host: "https://docker-host-ip-address:2376"
      clienttls:
        ca:   "{p}/ca.pem"
        cert: "{p}/cert.pem"
        key:  "{p}/key.pem"
"#
    );
    let c = parse(&yaml, &[]);
    assert_eq!(url(&c, "default"), "unix:///path/to/docker.sock");
    assert_eq!(url(&c, "remote1"), "ssh://docker-user@docker-host");
    assert_eq!(url(&c, "remote2"), "http://docker-host-ip-address:2375");
    assert_eq!(url(&c, "remote3"), "https://docker-host-ip-address:2376");
    let tls = c.get("remote3").unwrap().clienttls.as_ref().unwrap();
    assert_eq!(tls.ca, Path::new(&p).join("ca.pem"));
    assert!(c.hosts().all(|h| h.kind == HostType::External && !h.disabled));
    assert_eq!(c.origin(), &Origin::File("<text>.yaml".into()));
}

#[test]
fn seed_default_socket_example_leaves_host_unset() {
    let c = parse("docker:\n  hosts:\n    default:\n      type: external\n", &[]);
    assert_eq!(c.get("default").unwrap().host, None);
}

#[test]
fn seed_recommended_rootless_example() {
    let yaml = r#"docker:
  hosts:
    local:
      type: managed
      host: "unix://${USER_CACHE_DIR}/svacer-docker-host/svacer-docker.sock"

      managed:
        executable: "dockerd-rootless.sh"
        env:
          - "DOCKERD_ROOTLESS_ROOTLESSKIT_STATE_DIR=${USER_CACHE_DIR}/svacer-docker-host/state-dir/"
        args:
          - "--data-root=${USER_CACHE_DIR}/svacer-docker-host/data-root/"
          - "--exec-root=${USER_CACHE_DIR}/svacer-docker-host/exec-root/"
          - "--pidfile=${USER_CACHE_DIR}/svacer-docker-host/svacer-docker.pid"
        logLevel: info
        logPrefix: "DOCKER HOST: "
        healthCheck:
          interval: 1s
          retries: 10
"#;
    let c = parse(yaml, &[]);
    let local = c.get("local").unwrap();
    assert_eq!(local.kind, HostType::Managed);
    assert_eq!(url(&c, "local"), "unix:///home/u/.cache/svacer-docker-host/svacer-docker.sock");
    let m = local.managed.as_ref().unwrap();
    assert_eq!(m.executable, "dockerd-rootless.sh");
    assert_eq!(
        m.env,
        ["DOCKERD_ROOTLESS_ROOTLESSKIT_STATE_DIR=/home/u/.cache/svacer-docker-host/state-dir/"]
    );
    assert_eq!(m.args[2], "--pidfile=/home/u/.cache/svacer-docker-host/svacer-docker.pid");
    assert_eq!((m.log_level.as_str(), m.log_prefix.as_str()), ("info", "DOCKER HOST: "));
    assert_eq!((m.health_interval, m.health_retries), (Duration::from_secs(1), 10));
}

#[test]
fn seed_unmanaged_example_expands_user() {
    let yaml = "docker:\n  hosts:\n    unmanaged:\n      type: external\n      host: \"unix:///home/${USER}/.cache/svacer-docker-host/svacer-docker.sock\"\n";
    assert_eq!(
        url(&parse(yaml, &[]), "unmanaged"),
        "unix:///home/u/.cache/svacer-docker-host/svacer-docker.sock"
    );
}

#[test]
fn the_default_configuration_is_seed_000s() {
    for c in [HostsConfig::defaults(&env(&[])).unwrap(), parse("other: 1\n", &[]), parse("", &[])] {
        assert_eq!(c.origin(), &Origin::Defaults);
        let ids: Vec<&str> = c.hosts().map(|h| h.id.as_str()).collect();
        assert_eq!(ids, ["default", "local"]);
        let default = c.get("default").unwrap();
        assert_eq!((default.kind, default.host.clone(), default.disabled), (HostType::External, None, false));
        let local = c.get("local").unwrap();
        assert!(local.disabled && local.kind == HostType::Managed);
        assert_eq!(url(&c, "local"), "unix:///home/u/.cache/dockhand-docker-host/dockhand-docker.sock");
        let m = local.managed.as_ref().unwrap();
        assert_eq!(
            m.env,
            ["DOCKERD_ROOTLESS_ROOTLESSKIT_STATE_DIR=/home/u/.cache/dockhand-docker-host/state-dir/"]
        );
        assert_eq!(
            m.args,
            [
                "--data-root=/home/u/.cache/dockhand-docker-host/data-root/",
                "--exec-root=/home/u/.cache/dockhand-docker-host/exec-root/",
                "--pidfile=/home/u/.cache/dockhand-docker-host/dockhand-docker.pid"
            ]
        );
        assert_eq!(
            (m.log_level.as_str(), m.log_prefix.as_str(), m.health_retries),
            ("info", "DOCKER HOST: ", 10)
        );
    }
}

#[test]
fn a_docker_section_replaces_the_defaults_wholly() {
    let c = parse("docker:\n  hosts:\n    only:\n      type: remote\n      host: tcp://10.0.0.1:2375\n", &[]);
    assert_eq!(c.hosts().map(|h| h.id.as_str()).collect::<Vec<_>>(), ["only"]);
}

#[test]
fn keys_are_case_insensitive_and_toml_works() {
    let yaml = "Docker:\n  Hosts:\n    Box:\n      TYPE: managed\n      Host: unix:///run/x.sock\n      Managed:\n        Executable: dockerd\n        LOGLEVEL: Debug\n        HealthCheck: {Interval: 1m30s, Retries: 3}\n";
    let c = parse(yaml, &[]);
    let m = c.get("Box").unwrap().managed.as_ref().unwrap();
    assert_eq!(
        (m.log_level.as_str(), m.health_interval, m.health_retries),
        ("debug", Duration::from_secs(90), 3)
    );

    let toml = "[docker.hosts.local]\ntype = \"managed\"\nhost = \"unix:///run/y.sock\"\n[docker.hosts.local.managed]\nexecutable = \"dockerd\"\nlogLevel = \"warn\"\n[docker.hosts.local.managed.healthCheck]\ninterval = \"500ms\"\n";
    let c = HostsConfig::parse(toml, true, &env(&[])).unwrap();
    let m = c.get("local").unwrap().managed.as_ref().unwrap();
    assert_eq!((m.log_level.as_str(), m.health_interval), ("warn", Duration::from_millis(500)));
}

#[test]
fn environment_overrides() {
    // The seed's example: enable the default managed host.
    let c = HostsConfig::defaults(&env(&[("DOCKHAND_DOCKER_HOSTS_LOCAL_DISABLED", "false")])).unwrap();
    let local = c.get("local").unwrap();
    assert!(!local.disabled);
    assert_eq!(local.overridden_by, ["DOCKHAND_DOCKER_HOSTS_LOCAL_DISABLED"]);

    // A new host made by variables alone; lists in YAML flow syntax.
    let c = HostsConfig::defaults(&env(&[
        ("DOCKHAND_DOCKER_HOSTS_REMOTE1_TYPE", "remote"),
        ("DOCKHAND_DOCKER_HOSTS_REMOTE1_HOST", "ssh://u@h"),
        ("DOCKHAND_DOCKER_HOSTS_LOCAL_MANAGED_ARGS", "[--debug, --data-root=/d]"),
        ("DOCKHAND_DOCKER_HOSTS_LOCAL_MANAGED_HEALTHCHECK_RETRIES", "4"),
    ]))
    .unwrap();
    assert_eq!(url(&c, "remote1"), "ssh://u@h");
    let m = c.get("local").unwrap().managed.as_ref().unwrap();
    assert_eq!(
        (m.args.as_slice(), m.health_retries),
        (["--debug".to_owned(), "--data-root=/d".to_owned()].as_slice(), 4)
    );

    // Ids with dashes and mixed case map to upper case with `_`.
    assert_eq!(env_id("build-Box.2"), "BUILD_BOX_2");
    let yaml = "docker:\n  hosts:\n    build-Box:\n      type: remote\n      host: tcp://a:1\n";
    let c = parse(yaml, &[("DOCKHAND_DOCKER_HOSTS_BUILD_BOX_HOST", "tcp://b:2")]);
    assert_eq!(url(&c, "build-Box"), "tcp://b:2");

    // Two ids that map to one name, and a name with no parameter, are errors.
    let yaml = "docker:\n  hosts:\n    a-b:\n      type: external\n    a_b:\n      type: external\n";
    let errs = problems(yaml, &[("DOCKHAND_DOCKER_HOSTS_A_B_DISABLED", "true")]);
    assert!(
        errs[0].contains("DOCKHAND_DOCKER_HOSTS_A_B_DISABLED") && errs[0].contains("more than one host"),
        "{errs:?}"
    );
    let errs = problems(yaml, &[("DOCKHAND_DOCKER_HOSTS_A_B_COLOUR", "red")]);
    assert!(
        errs[0].contains("the environment: DOCKHAND_DOCKER_HOSTS_A_B_COLOUR") && errs[0].contains("PARAM"),
        "{errs:?}"
    );
}

#[test]
fn an_unknown_variable_is_an_error_naming_it() {
    let yaml = "docker:\n  hosts:\n    x:\n      type: remote\n      host: tcp://${NOPE_HOST}:2375\n";
    let errs = problems(yaml, &[]);
    assert!(errs[0].contains("docker.hosts.x.host") && errs[0].contains("${NOPE_HOST}"), "{errs:?}");
    let yaml = "docker:\n  hosts:\n    x:\n      type: managed\n      host: unix:///r.sock\n      managed:\n        executable: d\n        args: [\"--a=${MISSING}\"]\n";
    let errs = problems(yaml, &[]);
    assert!(errs[0].contains("docker.hosts.x.managed.args[0]") && errs[0].contains("${MISSING}"), "{errs:?}");
}

#[test]
fn every_validation_error_names_file_host_and_key() {
    let cases: [(&str, &str, &str); 9] = [
        ("r:\n      type: remote\n", "docker.hosts.r.host", "required for a remote host"),
        (
            "s:\n      type: external\n      host: https://h:2376\n",
            "docker.hosts.s.clienttls",
            "required for an https://",
        ),
        ("t:\n      type: swarmy\n", "docker.hosts.t.type", "unknown type \"swarmy\""),
        (
            "u:\n      type: external\n      clienttls: {ca: /nonexistent/ca.pem}\n",
            "docker.hosts.u.clienttls.ca",
            "cannot read /nonexistent/ca.pem",
        ),
        (
            "m:\n      type: managed\n      host: tcp://h:1\n      managed: {executable: d}\n",
            "docker.hosts.m.host",
            "expected unix:///path",
        ),
        (
            "n:\n      type: managed\n      host: unix:///x.sock\n",
            "docker.hosts.n.managed",
            "is required for a managed host",
        ),
        ("k:\n      type: external\n      colour: red\n", "docker.hosts.k", "unknown key \"colour\""),
        (
            "d:\n      type: managed\n      host: unix:///x.sock\n      managed: {executable: d, healthCheck: {interval: 10}}\n",
            "docker.hosts.d.managed.healthcheck.interval",
            "without a unit",
        ),
        ("h:\n      type: external\n      host: gopher://x\n", "docker.hosts.h.host", "unsupported scheme"),
    ];
    for (host, key, message) in cases {
        let yaml = format!("docker:\n  hosts:\n    {host}");
        let errs = problems(&yaml, &[]);
        assert!(
            errs.iter().any(|e| e.starts_with("<text>.yaml: ") && e.contains(key) && e.contains(message)),
            "{key}: {errs:?}"
        );
    }
}

#[test]
fn a_file_is_loaded_and_named_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dockhand.yaml");
    std::fs::write(&path, "docker:\n  hosts:\n    r:\n      type: remote\n").unwrap();
    let msg = HostsConfig::load(Some(&path), &env(&[])).unwrap_err().to_string();
    assert!(msg.contains(&format!("{}: docker.hosts.r.host", path.display())), "{msg}");
    let missing = dir.path().join("nope.yaml");
    let msg = HostsConfig::load(Some(&missing), &env(&[])).unwrap_err().to_string();
    assert!(msg.contains("nope.yaml") && msg.contains("no such file"), "{msg}");

    // The default path is used when present, and skipped when not.
    let xdg = dir.path().join("xdg");
    std::fs::create_dir_all(xdg.join("dockhand")).unwrap();
    let xdg_env = env(&[("XDG_CONFIG_HOME", xdg.to_str().unwrap())]);
    assert_eq!(HostsConfig::load(None, &xdg_env).unwrap().origin(), &Origin::Defaults);
    std::fs::write(
        xdg.join("dockhand/dockhand.yaml"),
        "docker:\n  hosts:\n    mine:\n      type: external\n",
    )
    .unwrap();
    let c = HostsConfig::load(None, &xdg_env).unwrap();
    assert!(c.get("mine").is_some() && c.get("local").is_none());
}

#[test]
fn feature_host_references_must_exist_and_be_enabled() {
    let c = HostsConfig::defaults(&env(&[])).unwrap();
    assert!(c.require("default", "jobs.docker.hostid").is_ok());
    let missing = c.require("nope", "jobs.docker.hostid").unwrap_err().to_string();
    assert!(
        missing.contains("jobs.docker.hostid")
            && missing.contains("\"nope\" does not exist")
            && missing.contains("default, local"),
        "{missing}"
    );
    let disabled = c.require("local", "jobs.docker.hostid").unwrap_err().to_string();
    assert!(disabled.contains("\"local\" is disabled"), "{disabled}");
}

#[test]
fn binding_to_all_addresses_on_a_remote_host_is_flagged() {
    let c = parse(
        "docker:\n  hosts:\n    far:\n      type: remote\n      host: tcp://10.0.0.5:2375\n    near:\n      type: external\n      host: unix:///x.sock\n",
        &[],
    );
    let warning = c.get("far").unwrap().unreachable_binding("0.0.0.0").unwrap();
    assert!(warning.contains("\"far\"") && warning.contains("0.0.0.0"), "{warning}");
    assert_eq!(c.get("far").unwrap().unreachable_binding("10.0.0.5"), None);
    assert_eq!(c.get("near").unwrap().unreachable_binding("0.0.0.0"), None);
}

#[test]
fn an_unknown_key_is_named_plainly_and_a_yaml_error_names_its_file_once() {
    let msg = problems(
        "docker:\n  hosts:\n    a:\n      type: remote\n      host: tcp://h:1\n      hots: 1\n",
        &[],
    )
    .join("\n");
    assert!(msg.contains("docker.hosts.a.hots: unknown key \"hots\": expected one of type, host"), "{msg}");
    assert!(!msg.contains('`'), "nested backticks: {msg}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.yaml");
    std::fs::write(&file, "docker: [unclosed\n").unwrap();
    let msg = HostsConfig::load(Some(&file), &env(&[])).unwrap_err().to_string();
    assert_eq!(msg.matches(&file.display().to_string()).count(), 1, "{msg}");
}

#[test]
fn a_bad_entry_is_kept_aside_by_a_partial_load() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dockhand.yaml");
    std::fs::write(
        &file,
        "docker:\n  hosts:\n    good: {type: remote, host: \"tcp://h:1\"}\n    bad: {type: remote}\n",
    )
    .unwrap();
    assert!(matches!(HostsConfig::load(Some(&file), &env(&[])), Err(Error::Invalid(_))));
    let config = HostsConfig::load_partial(Some(&file), &env(&[])).unwrap();
    assert!(config.get("good").is_some() && config.get("bad").is_none());
    let broken: Vec<_> = config.broken().collect();
    assert_eq!(broken.len(), 1);
    assert_eq!(broken[0].0, "bad");
    assert!(broken[0].1[0].to_string().contains("docker.hosts.bad.host"), "{:?}", broken[0].1);
}

/// The supervisor unmounts what a killed engine leaves within its data and exec roots:
/// an empty, relative or `/` root is refused when the configuration is loaded.
#[test]
fn data_and_exec_roots_must_be_absolute_and_not_the_root() {
    for (arg, shown) in
        [("--data-root=${EMPTY}", "\"\""), ("--data-root=data", "\"data\""), ("--exec-root=/", "\"/\"")]
    {
        let yaml = format!(
            "docker:\n  hosts:\n    m:\n      type: managed\n      host: unix:///run/m.sock\n      managed:\n        executable: dockerd\n        args: [\"{arg}\"]\n"
        );
        let msg = problems(&yaml, &[("EMPTY", "")]).join("\n");
        assert!(msg.contains("docker.hosts.m.managed.args") && msg.contains(shown), "{arg}: {msg}");
    }
    parse(
        "docker:\n  hosts:\n    m:\n      type: managed\n      host: unix:///run/m.sock\n      managed:\n        executable: dockerd\n        args: [\"--data-root=/var/lib/m\"]\n",
        &[],
    );
}
