//! A registry on loopback without authentication (Debian's `docker-registry`), for the
//! demo's watch mode and `cargo xtask bench watch`: an engine pulls from `127.0.0.1` over
//! plain HTTP without being told. Stopped when dropped; its access log counts requests.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::proc;

/// A running registry.
pub(crate) struct LocalRegistry {
    child: std::process::Child,
    /// `127.0.0.1:<port>`.
    pub(crate) address: String,
    log: PathBuf,
}

impl LocalRegistry {
    /// Starts one keeping its data and log in `dir` (emptied first), and waits until it
    /// answers.
    pub(crate) fn start(dir: &Path) -> anyhow::Result<Self> {
        crate::tools::ensure_swarm()?;
        let _ = fs::remove_dir_all(dir);
        fs::create_dir_all(dir.join("data"))?;
        let address = format!("127.0.0.1:{}", crate::bench_server::free_port()?);
        let config = dir.join("config.yml");
        fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{ level: warn }}\nstorage: {{ filesystem: {{ rootdirectory: {} }} }}\n\
                 http: {{ addr: \"{address}\" }}\n",
                dir.join("data").display()
            ),
        )?;
        let registry = proc::which("docker-registry").context("docker-registry is not installed")?;
        let log = dir.join("registry.log");
        let out = fs::File::create(&log)?;
        let child = std::process::Command::new(registry)
            .arg("serve")
            .arg(&config)
            .stderr(out.try_clone()?)
            .stdout(out)
            .spawn()?;
        let started = Self { child, address, log };
        for _ in 0..100 {
            if std::net::TcpStream::connect(&started.address).is_ok() {
                return Ok(started);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("the local registry did not answer:\n{}", started.said())
    }

    /// What it logged.
    pub(crate) fn said(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// How many manifest requests by `tag` of `repository` its access log holds.
    pub(crate) fn manifest_heads(&self, repository: &str, tag: &str) -> usize {
        let asked = format!("\"HEAD /v2/{repository}/manifests/{tag} ");
        self.said().lines().filter(|l| l.contains(&asked)).count()
    }

    /// Pushes the local image `from` as `to` (a reference in this registry) through the
    /// engine `docker` talks to.
    pub(crate) fn push(
        &self,
        docker: impl Fn() -> anyhow::Result<std::process::Command>,
        from: &str,
        to: &str,
    ) -> anyhow::Result<()> {
        proc::output(docker()?.args(["tag", from, to]))?;
        for _ in 0..50 {
            if docker()?.args(["push", to]).output()?.status.success() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        bail!("cannot push {to}:\n{}", self.said())
    }
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
