//! `cargo xtask demo`: the README's "main job" on embedded defaults. It brings the private
//! engine up, deploys a small labelled stack on it, and runs dockhand's maintenance cycle:
//! what cron would do (`plan`), clean-node, clean-service, and the job table.

use std::fs;
use std::time::Duration;

use anyhow::bail;
use dockhand_engine::{Client, Endpoint, Filters};

use crate::images::ImageHost;
use crate::{engine, proc};

const STACK: &str = "dhdemo";

/// A web service whose labels let dockhand clear its cache, and a worker without labels.
const COMPOSE: &str = r#"version: "3.8"
services:
  web:
    image: dockhand/busybox:test
    command: ["sh", "-c", "mkdir -p /tmp/cache && head -c 1000000 /dev/zero > /tmp/cache/blob && sleep 86400"]
    deploy:
      replicas: 2
      labels:
        dockhand.clean.enable: "true"
        dockhand.clean.exec: "du -sh /tmp/cache; rm -rf /tmp/cache/*; echo cache cleared"
        dockhand.clean.exec.timeout: "30s"
  worker:
    image: dockhand/busybox:test
    command: ["sleep", "86400"]
"#;

pub(crate) fn run() -> anyhow::Result<()> {
    let layout = engine::up()?;
    let dockhand = |args: &[&str]| {
        proc::run(
            crate::cargo()
                .args(["run", "--quiet", "--locked", "--package", "dockhand-cli", "--bin", "dockhand", "--"])
                .args(["--host", &layout.url()])
                .args(args),
        )
    };
    dockhand(&["engine", "info"])?;

    let compose = layout.scratch().join("demo-stack.yml");
    fs::write(&compose, COMPOSE)?;
    eprintln!("\n== deploying the stack {STACK} (web: 2 replicas with clean labels; worker: none)");
    proc::run(layout.docker()?.args(["stack", "deploy", "--compose-file"]).arg(&compose).arg(STACK))?;
    wait_for_web(&layout)?;

    eprintln!("\n== what cron would do now, and why");
    dockhand(&["plan"])?;
    eprintln!("\n== clean-node on this node: stopped containers, unused images, build cache");
    dockhand(&["clean", "node"])?;
    eprintln!("\n== clean-service: the web service's clean.exec in each of its tasks");
    dockhand(&["clean", "service", &format!("{STACK}_web")])?;
    eprintln!("\n== the jobs dockhand ran");
    dockhand(&["jobs", "ls"])?;

    proc::run(layout.docker()?.args(["stack", "rm", STACK]))?;
    // clean-node took the images nothing used: put the test images back.
    crate::images::ensure(&layout)?;
    eprintln!("\nthe private engine stays up; stop it with `cargo xtask engine down`");
    Ok(())
}

/// Waits up to a minute for both web tasks to run.
fn wait_for_web(layout: &engine::Layout) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let client = Client::new(Endpoint::unix(layout.socket()))?;
    let service = format!("{STACK}_web");
    runtime.block_on(async {
        for _ in 0..300 {
            let filters = Filters::new().with("service", &service).with("desired-state", "running");
            let running =
                client.tasks(&filters).await?.iter().filter(|t| t.status.state == "running").count();
            if running == 2 {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        bail!("the {service} tasks did not start within a minute")
    })
}
