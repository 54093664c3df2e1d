//! The ssh transport against a real sshd on loopback (started by `cargo xtask engine up`),
//! reaching the private engine's socket through `docker system dial-stdio`, or by
//! forwarding the socket where the remote has no docker CLI.

use std::path::PathBuf;
use std::time::Duration;

use dockhand_e2e::{engine, peer};
use dockhand_engine::{Client, HostKeyChecking, SshSettings};

/// The private engine's socket path, which the ssh URLs name.
fn socket() -> String {
    dockhand_e2e::engine_url().trim_start_matches("unix://").to_owned()
}

/// A private copy of the test ssh config, so that this test's ssh processes can be told
/// from those of tests running beside it.
fn own_config() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ssh_config");
    std::fs::copy(peer("SSH_CONFIG"), &path).unwrap();
    (dir, path)
}

fn client(url: &str, config: &std::path::Path) -> Client {
    Client::builder(url.parse().unwrap()).ssh(SshSettings::new().with_config_file(config)).build().unwrap()
}

/// ssh master processes (`ssh ... -M ...`) started with this config file.
fn masters(config: &std::path::Path) -> usize {
    let needle = config.display().to_string();
    dockhand_host::procfs::processes()
        .into_iter()
        .filter(dockhand_host::procfs::ProcessInfo::is_alive)
        .map(|p| p.cmdline)
        .filter(|args| args.first().is_some_and(|a| a.ends_with("ssh")))
        .filter(|args| args.iter().any(|a| a == "-M") && args.iter().any(|a| a.contains(&needle)))
        .count()
}

#[tokio::test]
async fn dial_stdio_reaches_the_engine_and_twenty_requests_share_one_master() {
    let unix = engine().await.client.info().await.unwrap();
    let (_dir, config) = own_config();
    let url = format!("{}{}", peer("SSH_HOST"), socket());
    let c = client(&url, &config);

    let calls: Vec<_> = (0..20)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.info().await })
        })
        .collect();
    for call in calls {
        let info = call.await.unwrap().unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(info.swarm.node_id, unix.swarm.node_id);
    }
    assert_eq!(masters(&config), 1, "20 concurrent requests must share one ssh master");

    // Dropping the client closes its master.
    drop(c);
    for _ in 0..50 {
        if masters(&config) == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the ssh master outlived its client");
}

#[tokio::test]
async fn without_a_remote_docker_cli_the_socket_is_forwarded() {
    let unix = engine().await.client.info().await.unwrap();
    let (_dir, config) = own_config();
    let url = format!("{}{}", peer("SSH_NODOCKER_HOST"), socket());
    let info = client(&url, &config).info().await.unwrap_or_else(|e| panic!("{url}: {e}"));
    assert_eq!(info.swarm.node_id, unix.swarm.node_id);
}

#[tokio::test]
async fn an_unknown_host_key_is_refused_with_what_ssh_said() {
    let (dir, config) = own_config();
    let empty = dir.path().join("known_hosts");
    std::fs::write(&empty, "").unwrap();
    let url = format!("{}{}", peer("SSH_HOST"), socket());
    let c = Client::builder(url.parse().unwrap())
        .ssh(SshSettings::new().with_config_file(&config).with_known_hosts(&empty))
        .build()
        .unwrap();
    let err = c.ping().await.unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&url), "{msg}");
    assert!(msg.contains("Host key verification failed"), "{msg}");
    assert!(msg.contains("ssh-keyscan -p ") && msg.contains("StrictHostKeyChecking"), "no fix named: {msg}");
}

/// The test config, rewritten as a user who trusts every host would write it:
/// `StrictHostKeyChecking no` with `UserKnownHostsFile /dev/null`.
fn trusting_config() -> (tempfile::TempDir, PathBuf) {
    let (dir, path) = own_config();
    let text = std::fs::read_to_string(&path).unwrap();
    let text: String = text
        .lines()
        .map(|l| match l.split_whitespace().next() {
            Some("UserKnownHostsFile") => "    UserKnownHostsFile /dev/null".to_owned(),
            Some("StrictHostKeyChecking") => "    StrictHostKeyChecking no".to_owned(),
            _ => l.to_owned(),
        })
        .map(|l| l + "\n")
        .collect();
    assert!(text.contains("StrictHostKeyChecking no") && text.contains("/dev/null"), "{text}");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

#[tokio::test]
async fn host_key_checking_follows_the_users_ssh_config_as_the_docker_cli_does() {
    let unix = engine().await.client.info().await.unwrap();
    let (_dir, config) = trusting_config();
    let url = format!("{}{}", peer("SSH_HOST"), socket());
    let info = client(&url, &config).info().await.unwrap_or_else(|e| panic!("{url}: {e}"));
    assert_eq!(info.swarm.node_id, unix.swarm.node_id);
}

#[tokio::test]
async fn dockhands_own_setting_overrides_the_ssh_config() {
    let (_dir, config) = trusting_config();
    let url = format!("{}{}", peer("SSH_HOST"), socket());
    let c = Client::builder(url.parse().unwrap())
        .ssh(SshSettings::new().with_config_file(&config).with_host_key_checking(HostKeyChecking::Strict))
        .build()
        .unwrap();
    let msg = c.ping().await.unwrap_err().to_string();
    assert!(msg.contains("Host key verification failed") && msg.contains("ssh-keyscan"), "{msg}");
}

#[tokio::test]
async fn a_wrong_remote_socket_reports_the_remote_error() {
    let (_dir, config) = own_config();
    let url = format!("{}/nonexistent/docker.sock", peer("SSH_HOST"));
    let err = client(&url, &config).ping().await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("ssh said:") && msg.contains("/nonexistent/docker.sock"), "{msg}");
}
