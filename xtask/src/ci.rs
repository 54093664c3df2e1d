//! `cargo xtask ci`: the README's test command, and what `.ci/run` calls.

use std::time::Instant;

use anyhow::Context;

use crate::{engine, proc};

/// How long CI's soak runs (`cargo xtask soak --minutes 2`; its own default is 10).
const CI_SOAK_MINUTES: f64 = 2.0;

pub(crate) fn run() -> anyhow::Result<()> {
    let started = Instant::now();
    step("tools", || {
        crate::tools::ensure_engine()?;
        crate::tools::ensure_cargo_deny()
    })?;
    step("format", || proc::run(crate::cargo().args(["fmt", "--all", "--", "--check"])))?;
    step("clippy", || {
        proc::run(crate::cargo().args([
            "clippy",
            "--locked",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))
    })?;
    step("tests and the soak against the private engine and the test swarm", || {
        let schemathesis = crate::tools::ensure_schemathesis()?;
        let validator = crate::tools::ensure_openapi_validator()?;
        let postgres = crate::tools::ensure_peers()?;
        let layout = engine::up()?;
        let tests = crate::swarm::up(3).and_then(|()| {
            let mut test = crate::cargo();
            test.args(["test", "--locked", "--workspace", "--all-targets"])
                .env("DOCKHAND_TEST_HOST", layout.url())
                .env("DOCKHAND_TEST_SCHEMATHESIS", &schemathesis)
                .env("DOCKHAND_TEST_OPENAPI_VALIDATOR", &validator)
                .env("DOCKHAND_TEST_PG_BIN", &postgres);
            // The tests find this run's swarm in its swarm.env: node URLs inherited from a
            // shell that ran `eval "$(cargo xtask swarm env)"` elsewhere must not win.
            test.env_remove("DOCKHAND_TEST_NODES").env_remove("DOCKHAND_SWARM_DIR");
            for i in 1..=9 {
                test.env_remove(format!("DOCKHAND_TEST_NODE_{i}"));
            }
            proc::run(&mut test)
        });
        // Faults and load on the same swarm, for two minutes: nothing lost, nothing left.
        let tests = tests.and_then(|()| crate::soak::run(CI_SOAK_MINUTES));
        // Both go down whatever the tests did; a failed stop is reported too.
        let swarm_down = crate::swarm::down();
        let down = engine::down();
        tests.and(swarm_down).and(down)
    })?;
    step("cargo deny", || {
        let mut deny = crate::cargo();
        deny.args(["deny", "--locked", "check", "licenses", "bans", "sources"]);
        proc::run(&mut deny)
    })?;
    step("documentation", || {
        proc::run(
            crate::cargo()
                .args(["doc", "--locked", "--workspace", "--no-deps"])
                .env("RUSTDOCFLAGS", "-D warnings"),
        )?;
        proc::run(crate::cargo().args(["test", "--locked", "--workspace", "--doc"]))
    })?;
    eprintln!("ci: all steps passed in {:.0}s", started.elapsed().as_secs_f64());
    Ok(())
}

fn step(name: &str, f: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<()> {
    eprintln!("\n=== ci: {name}");
    let started = Instant::now();
    let result = f().with_context(|| format!("ci step \"{name}\" failed"));
    eprintln!(
        "=== ci: {name}: {} in {:.0}s; {}",
        if result.is_ok() { "ok" } else { "FAILED" },
        started.elapsed().as_secs_f64(),
        free_disk(),
    );
    result
}

/// The free space on the disk that holds `target/` (the build, the engine's data root, the
/// swarm's nodes and the S3 peer's volumes), for the log: a nearly full disk fails tests in
/// ways that name other things.
fn free_disk() -> String {
    use dockhand_e2e::gib;
    match dockhand_e2e::disk_space(&crate::project_root().join("target")) {
        Ok((free, total)) => {
            format!("{:.1} GiB of {:.1} GiB free on the disk of target/", gib(free), gib(total))
        }
        Err(e) => format!("free space on the disk of target/ unknown: {e}"),
    }
}
