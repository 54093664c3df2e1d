//! What a fresh machine lacks, installed on demand: Debian's engine and sshd packages (as root;
//! otherwise the exact command is printed) and cargo-deny.

use std::process::Command;

use anyhow::bail;

use crate::proc;

/// Executables the private engine needs, and the Debian package of each.
const ENGINE_TOOLS: [(&str, &str); 18] = [
    // The tests' own helpers: in Debian's base image, named here so a leaner one still works.
    ("openssl", "openssl"),
    ("pkill", "procps"),
    ("useradd", "passwd"),
    ("curl", "curl"),
    ("podman", "podman"),
    ("rootlesskit", "rootlesskit"),
    ("newuidmap", "uidmap"),
    ("slirp4netns", "slirp4netns"),
    ("runuser", "util-linux"),
    ("dockerd", "docker.io"),
    ("containerd", "containerd"),
    ("runc", "runc"),
    ("docker", "docker.io"),
    ("tar", "tar"),
    ("busybox", "busybox-static"),
    ("sshd", "openssh-server"),
    ("ssh", "openssh-client"),
    ("ssh-keygen", "openssh-client"),
];

/// Installs the engine's packages when one of its executables is missing.
pub(crate) fn ensure_engine() -> anyhow::Result<()> {
    let mut packages: Vec<&str> =
        ENGINE_TOOLS.iter().filter(|(exe, _)| proc::which(exe).is_none()).map(|&(_, pkg)| pkg).collect();
    packages.dedup();
    apt_install(&packages)
}

/// Installs what the test swarm needs beside the engine: `ip` (iproute2), `nsenter` and
/// `unshare` (util-linux).
pub(crate) fn ensure_swarm() -> anyhow::Result<()> {
    let mut packages: Vec<&str> = [("ip", "iproute2"), ("nsenter", "util-linux"), ("unshare", "util-linux")]
        .iter()
        .filter(|(exe, _)| proc::which(exe).is_none())
        .map(|&(_, pkg)| pkg)
        .collect();
    packages.dedup();
    apt_install(&packages)
}

/// Installs what the benchmarks compare against or measure with: curl and GNU time.
pub(crate) fn ensure_bench() -> anyhow::Result<()> {
    let mut packages = Vec::new();
    if proc::which("curl").is_none() {
        packages.push("curl");
    }
    if !std::path::Path::new("/usr/bin/time").is_file() {
        packages.push("time");
    }
    apt_install(&packages)
}

/// Installs cargo-deny from crates.io when it is missing.
pub(crate) fn ensure_cargo_deny() -> anyhow::Result<()> {
    let installed = crate::cargo().args(["deny", "--version"]).output().is_ok_and(|o| o.status.success());
    if installed {
        return Ok(());
    }
    eprintln!("cargo-deny is missing: installing it from crates.io (a few minutes on 2 cores)");
    proc::run(crate::cargo().args(["install", "--locked", "cargo-deny"]))
}

fn apt_install(packages: &[&str]) -> anyhow::Result<()> {
    if packages.is_empty() {
        return Ok(());
    }
    let list = packages.join(" ");
    if !rustix::process::geteuid().is_root() {
        bail!("missing packages: install them with `sudo apt-get update && sudo apt-get install -y {list}`");
    }
    eprintln!("installing {list}");
    proc::run(Command::new("apt-get").arg("update"))?;
    proc::run(
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends"])
            .args(packages)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}
