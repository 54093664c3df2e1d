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
    let mut binaries = Vec::new();
    step("build the tests", || {
        binaries = crate::suites::build()?;
        Ok(())
    })?;
    step("doctests", || proc::run(crate::cargo().args(["test", "--locked", "--workspace", "--doc"])))?;
    // The lints, the documentation and cargo-deny run beside the suites, which mostly wait
    // for the swarm and leave the CPU idle: niced, in a target directory of their own (no
    // wait on target/'s lock, which the suites' image builds take), printed when they end.
    let checks = std::thread::spawn(checks_beside);
    let tests = step("tests and the soak against the private engine and the test swarm", || {
        // After the suites, faults and load on the same swarm for two minutes: nothing lost,
        // nothing left.
        let soak = || crate::soak::run(CI_SOAK_MINUTES);
        let mut env = Vec::new();
        let tests = step("the private engine and the test swarm up", || {
            env = crate::suites::peers()?;
            Ok(())
        })
        .and_then(|()| crate::suites::run_all(&binaries, &env, || step("soak", soak)));
        // Both go down whatever the tests did; a failed stop is reported too.
        let swarm_down = crate::swarm::down();
        let down = engine::down();
        tests.and(swarm_down).and(down)
    });
    let checks = checks.join().map_err(|_| anyhow::anyhow!("the checks beside the tests panicked"))?;
    tests.and(checks)?;
    eprintln!("ci: all steps passed in {:.0}s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Clippy, the documentation and cargo-deny, one after the other, each with its output
/// captured and printed when it ends.
fn checks_beside() -> anyhow::Result<()> {
    let clippy = captured(
        "clippy",
        &["clippy", "--locked", "--workspace", "--all-targets", "--", "-D", "warnings"],
        &[],
    );
    let doc = captured(
        "documentation",
        &["doc", "--locked", "--workspace", "--no-deps"],
        &[("RUSTDOCFLAGS", "-D warnings")],
    );
    let deny = captured("cargo deny", &["deny", "--locked", "check", "licenses", "bans", "sources"], &[]);
    clippy.and(doc).and(deny)
}

/// `nice -n 19 cargo <args>` in `target/lint/`, its output kept and printed once it ends.
fn captured(name: &str, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<()> {
    let root = crate::project_root();
    let log = root.join("target").join("suites").join(format!("ci-{}.log", name.replace(' ', "-")));
    std::fs::create_dir_all(log.parent().expect("a directory"))?;
    let out = std::fs::File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let began = Instant::now();
    let status = std::process::Command::new("nice")
        .args(["-n", "19"])
        .arg(cargo)
        .args(args)
        .current_dir(&root)
        .env("CARGO_TARGET_DIR", root.join("target").join("lint"))
        .envs(env.iter().copied())
        .stdout(out.try_clone()?)
        .stderr(out)
        .status()
        .with_context(|| format!("cannot start cargo {}", args.join(" ")))?;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    eprintln!(
        "\n=== ci: {name} (beside the tests): {} in {:.0}s\n$ cargo {}\n{text}",
        if status.success() { "ok" } else { "FAILED" },
        began.elapsed().as_secs_f64(),
        args.join(" ")
    );
    if !status.success() {
        anyhow::bail!("ci step \"{name}\" failed: {status}");
    }
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
