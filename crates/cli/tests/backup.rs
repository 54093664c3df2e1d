//! Storage targets and backups through the `dockhand` binary, against a real S3 endpoint on
//! loopback (SeaweedFS, which checks request signatures) and the local target.

// Test code: a panic with the value is the failure report, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Output;

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

#[test]
fn storage_check_passes_on_the_s3_peer_and_the_local_target() {
    let peer = S3Peer::start();
    let dir = tempfile::tempdir().unwrap();
    config(dir.path(), &peer.target_yaml("offsite", "swarm-a"));
    let out =
        dockhand(dir.path(), &["storage", "check"], &[("S3_KEY", ACCESS_KEY), ("S3_SECRET", SECRET_KEY)]);
    assert!(out.status.success(), "{}{}\n{}", stdout(&out), stderr(&out), peer.log());
    let text = stdout(&out);
    assert!(text.contains("offsite: ok (write, read, list, delete)"), "{text}");
    assert!(text.contains("local: ok (write, read, list, delete)"), "{text}");
    assert!(dir.path().join("data/dockhand/backups").is_dir(), "the local target is under XDG_DATA_HOME");

    let out = dockhand(
        dir.path(),
        &["storage", "ls", "--json"],
        &[("S3_KEY", ACCESS_KEY), ("S3_SECRET", SECRET_KEY)],
    );
    let text = stdout(&out);
    assert!(out.status.success() && text.contains("\"offsite\""), "{text}");
    assert!(!text.contains(SECRET_KEY) && !text.contains(ACCESS_KEY), "a credential printed: {text}");
}

#[test]
fn a_wrong_secret_key_fails_the_check_and_says_so() {
    let peer = S3Peer::start();
    let dir = tempfile::tempdir().unwrap();
    config(dir.path(), &peer.target_yaml("offsite", "swarm-a"));
    let wrong = "not-the-secret-key";
    let out = dockhand(
        dir.path(),
        &["storage", "check", "offsite"],
        &[("S3_KEY", ACCESS_KEY), ("S3_SECRET", wrong)],
    );
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("storage target \"offsite\"") && text.contains("credentials refused"),
        "the message names the target and the cause: {text}"
    );
    assert!(!text.contains(wrong) && !stderr(&out).contains(wrong), "the secret printed: {text}");

    let out = dockhand(dir.path(), &["storage", "check", "nope"], &[]);
    assert!(stderr(&out).contains("storage target \"nope\": no such target"), "{}", stderr(&out));
}
