//! The test suites side by side: `cargo xtask test`, and CI's test step.
//!
//! `cargo test` runs one test binary after another, and each with as many threads as the
//! machine has cores. The end-to-end suites spend nearly all their time waiting for the
//! swarm (a task to start, a service to converge): the update suite keeps two cores 6 %
//! busy. So the whole suite is built once, and every test binary then runs as a process of
//! its own, all at once, each with [`THREADS`] test threads. Their output goes to a log
//! per binary under `target/suites/`, printed whole when the binary ends.
//!
//! [`PLACED`] names the exceptions: a few tests change what every other suite shares and
//! run after the others, alone; a few long ones run as processes of their own from the
//! start, rather than last in their binary's alphabetical order.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Test threads per binary (`--test-threads`).
const THREADS: usize = 4;

/// Where a test runs, when not with the rest of its binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    /// After the side-by-side phase, with no other suite beside it.
    Alone,
    /// In a process of its own, beside the others from the start.
    Apart,
    /// In a process of its own from the start to the end of the run, beside the alone runs
    /// (and CI's soak) too: for long tests that never touch the test swarm.
    Throughout,
}

/// The tests that do not run with the rest of their binary: `(binary, test, where, why)`,
/// where the test is a name (run with `--exact`, and skipped in its binary's own run) or
/// `*` for the whole binary.
pub(crate) const PLACED: &[(&str, &str, Placement, &str)] = &[
    (
        "dockhand-cli/jobs",
        "*",
        Placement::Alone,
        "clean-node prunes whole nodes: the stopped containers and unused images other suites \
         are about to use",
    ),
    (
        "dockhand-server/server",
        "the_seeds_routes_answer_in_its_form_and_sigterm_leaves_nothing_behind",
        Placement::Alone,
        "the seed's clean-node prunes the manager",
    ),
    (
        "dockhand-server/server",
        "schemathesis_finds_no_server_error_and_no_schema_violation",
        Placement::Throughout,
        "the longest test (two to four minutes), on the private one-node engine alone",
    ),
    (
        "dockhand-server/server",
        "two_replicas_on_one_postgresql_run_every_tick_once_and_see_each_others_jobs",
        Placement::Apart,
        "about a minute of cron ticks",
    ),
    (
        "dockhand-server/server",
        "a_replica_killed_mid_backup_is_marked_interrupted_and_the_service_comes_back",
        Placement::Apart,
        "about a minute of lease expiry",
    ),
];

/// One test binary of the workspace, as `cargo test --no-run` built it.
#[derive(Debug, Clone)]
pub(crate) struct Binary {
    /// `<package>/<target>`, e.g. `dockhand-cli/backup` or `dockhand-jobs/lib`.
    pub(crate) name: String,
    executable: PathBuf,
    /// The package's directory: `cargo test` runs each binary there.
    package_dir: PathBuf,
}

/// Builds every test target of the workspace (and the binaries they run) and answers them.
pub(crate) fn build() -> anyhow::Result<Vec<Binary>> {
    let mut cmd = crate::cargo();
    cmd.args([
        "test",
        "--locked",
        "--workspace",
        "--all-targets",
        "--no-run",
        "--message-format=json-render-diagnostics",
    ])
    .stdout(Stdio::piped());
    eprintln!("$ cargo test --locked --workspace --all-targets --no-run");
    let mut child = cmd.spawn().context("cannot start cargo test --no-run")?;
    let stdout = child.stdout.take().context("cargo's stdout")?;
    let mut binaries = Vec::new();
    for line in BufReader::new(stdout).lines() {
        if let Some(binary) = parse_artifact(&line.context("cargo's output")?) {
            binaries.push(binary);
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("cargo test --no-run failed: {status}");
    }
    binaries.sort_by(|a, b| a.name.cmp(&b.name));
    placed_are_built(&binaries)?;
    Ok(binaries)
}

/// A test binary from one line of cargo's JSON messages, if the line announces one.
fn parse_artifact(line: &str) -> Option<Binary> {
    let message: serde_json::Value = serde_json::from_str(line).ok()?;
    if message["reason"] != "compiler-artifact" || message["profile"]["test"] != true {
        return None;
    }
    let executable = PathBuf::from(message["executable"].as_str()?);
    let target = &message["target"];
    let kind = target["kind"][0].as_str()?;
    let target_name = target["name"].as_str()?;
    let package_dir = Path::new(message["manifest_path"].as_str()?).parent()?.to_path_buf();
    let package = package_name(message["package_id"].as_str()?, &package_dir);
    let short = match kind {
        "lib" => "lib".to_owned(),
        "bin" => format!("bin {target_name}"),
        _ => target_name.to_owned(),
    };
    Some(Binary { name: format!("{package}/{short}"), executable, package_dir })
}

/// The package's name from its id (`path+file:///…/crates/cli#dockhand-cli@0.1.0`, or
/// `…/xtask#0.1.0` when the name is the directory's).
fn package_name(id: &str, dir: &Path) -> String {
    let fragment = id.rsplit_once('#').map_or("", |(_, f)| f);
    match fragment.split_once('@') {
        Some((name, _)) => name.to_owned(),
        None => dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
    }
}

/// One run of a test binary: all its tests, all but some, or one.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    binary: Binary,
    /// Tests skipped (`--skip <name> --exact`).
    skip: Vec<String>,
    /// The one test run (`<name> --exact`), if not all.
    only: Option<String>,
    /// Where it runs and why, if it is one of [`PLACED`].
    placed: Option<(Placement, &'static str)>,
}

impl Run {
    fn label(&self) -> String {
        match &self.only {
            Some(test) => format!("{} {test}", self.binary.name),
            None => self.binary.name.clone(),
        }
    }

    fn args(&self) -> Vec<String> {
        let mut args = vec!["--test-threads".to_owned(), THREADS.to_string()];
        for test in &self.skip {
            args.extend(["--skip".to_owned(), test.clone()]);
        }
        args.extend(self.only.iter().cloned());
        if !self.skip.is_empty() || self.only.is_some() {
            args.push("--exact".to_owned());
        }
        args
    }
}

/// The runs of a test run, by when they run.
#[derive(Debug, Default)]
pub(crate) struct Phases {
    /// From the start to the end: each [`Placement::Throughout`] test.
    throughout: Vec<Run>,
    /// Side by side from the start: every binary without its [`PLACED`] tests, and each
    /// [`Placement::Apart`] test.
    together: Vec<Run>,
    /// Then one after the other: each [`Placement::Alone`] run.
    alone: Vec<Run>,
}

/// The runs of `binaries`, by phase.
pub(crate) fn phases(binaries: &[Binary]) -> Phases {
    let mut phases = Phases::default();
    for binary in binaries {
        let run = |only: Option<&str>, placed: Option<(Placement, &'static str)>| Run {
            binary: binary.clone(),
            skip: Vec::new(),
            only: only.map(str::to_owned),
            placed,
        };
        let mut rest = Some(run(None, None));
        for (_, test, placement, why) in PLACED.iter().filter(|(name, ..)| *name == binary.name) {
            let placed = if *test == "*" {
                rest = None;
                run(None, Some((*placement, why)))
            } else {
                if let Some(rest) = &mut rest {
                    rest.skip.push((*test).to_owned());
                }
                run(Some(test), Some((*placement, why)))
            };
            match placement {
                Placement::Alone => phases.alone.push(placed),
                Placement::Apart => phases.together.push(placed),
                Placement::Throughout => phases.throughout.push(placed),
            }
        }
        phases.together.extend(rest);
    }
    phases
}

/// Fails when [`PLACED`] names a binary the build did not make: a renamed suite must not
/// leave its placed tests to run with the others unnoticed.
fn placed_are_built(binaries: &[Binary]) -> anyhow::Result<()> {
    for (name, test, _, _) in PLACED {
        if !binaries.iter().any(|b| b.name == *name) {
            bail!("{name} (of {test} in PLACED) was not built: is PLACED out of date?");
        }
    }
    Ok(())
}

/// What one binary's run came to.
struct Outcome {
    name: String,
    ok: bool,
    took: Duration,
    tests: usize,
}

/// Runs `binaries` all at once with `env`; every one runs to its end, and this fails when
/// any failed.
pub(crate) fn run_side_by_side(runs: &[Run], env: &[(String, String)]) -> anyhow::Result<()> {
    if runs.is_empty() {
        return Ok(());
    }
    let logs = crate::project_root().join("target").join("suites");
    std::fs::create_dir_all(&logs).with_context(|| format!("cannot create {}", logs.display()))?;
    let started = Instant::now();
    let mut running: BTreeMap<String, (Child, PathBuf, Instant)> = BTreeMap::new();
    for run in runs {
        let binary = &run.binary;
        let log = logs.join(format!("{}.log", run.label().replace(['/', ' '], "-")));
        let out = File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        let mut cmd = Command::new(&binary.executable);
        cmd.args(run.args())
            .current_dir(&binary.package_dir)
            .env("CARGO_MANIFEST_DIR", &binary.package_dir)
            .envs(env.iter().map(|(k, v)| (k, v)))
            // The tests find this checkout's swarm in its swarm.env: node URLs inherited from
            // a shell that ran `eval "$(cargo xtask swarm env)"` elsewhere must not win.
            .env_remove("DOCKHAND_TEST_NODES")
            .env_remove("DOCKHAND_SWARM_DIR")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        for i in 1..=9 {
            cmd.env_remove(format!("DOCKHAND_TEST_NODE_{i}"));
        }
        let child = cmd.spawn().with_context(|| format!("cannot start {}", binary.executable.display()))?;
        running.insert(run.label(), (child, log, Instant::now()));
    }
    eprintln!("suites: {} test binaries started: {}", running.len(), names(&running));
    let mut outcomes = Vec::new();
    let mut said = Instant::now();
    while !running.is_empty() {
        let mut ended = Vec::new();
        for (name, (child, _, _)) in &mut running {
            if let Some(status) = child.try_wait()? {
                ended.push((name.clone(), status.success()));
            }
        }
        for (name, exited_ok) in ended {
            let (_, log, began) = running.remove(&name).expect("it was running");
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let tests = passed(&text);
            eprintln!("\n--- suite {name} ({})\n{text}", log.display());
            let single = runs.iter().any(|r| r.label() == name && r.only.is_some());
            let ok = held(exited_ok, single, tests);
            if exited_ok && !ok {
                eprintln!("--- suite {name}: no test ran: is its name in PLACED out of date?");
            }
            let outcome = Outcome { name, ok, took: began.elapsed(), tests };
            eprintln!(
                "--- suite {}: {} in {:.0}s",
                outcome.name,
                verdict(&outcome),
                outcome.took.as_secs_f64()
            );
            outcomes.push(outcome);
        }
        if !running.is_empty() && said.elapsed() > Duration::from_secs(60) {
            eprintln!(
                "suites: after {:.0}s still running: {}",
                started.elapsed().as_secs_f64(),
                names(&running)
            );
            said = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    outcomes.sort_by_key(|o| std::cmp::Reverse(o.took));
    eprintln!(
        "\nsuites: {} binaries in {:.0}s, longest first:",
        outcomes.len(),
        started.elapsed().as_secs_f64()
    );
    for o in &outcomes {
        eprintln!("  {:>5.0}s  {:<32} {}", o.took.as_secs_f64(), o.name, verdict(o));
    }
    let failed: Vec<&str> = outcomes.iter().filter(|o| !o.ok).map(|o| o.name.as_str()).collect();
    if !failed.is_empty() {
        bail!("failed: {}", failed.join(", "));
    }
    Ok(())
}

fn names(running: &BTreeMap<String, (Child, PathBuf, Instant)>) -> String {
    running.keys().map(String::as_str).collect::<Vec<_>>().join(", ")
}

fn verdict(o: &Outcome) -> String {
    if o.ok { format!("ok, {} tests", o.tests) } else { "FAILED".to_owned() }
}

/// Whether a run held: it exited 0, and a run of one placed test passed it (none passed
/// means PLACED names a test that is not there, and the run proved nothing).
fn held(exited_ok: bool, single: bool, passed: usize) -> bool {
    exited_ok && !(single && passed == 0)
}

/// The tests a libtest run reports as passed.
fn passed(output: &str) -> usize {
    output
        .lines()
        .filter_map(|l| l.strip_prefix("test result: ok. "))
        .filter_map(|rest| rest.split_once(" passed").and_then(|(n, _)| n.parse::<usize>().ok()))
        .sum()
}

/// `cargo xtask test [SUITE…]`: builds the tests, brings the private engine and the test
/// swarm up if they are not (and leaves them up), and runs the suites named (all when none
/// is), side by side.
pub(crate) fn command(only: &[String]) -> anyhow::Result<()> {
    let binaries = build()?;
    let unknown: Vec<&String> = only.iter().filter(|n| !binaries.iter().any(|b| &b.name == *n)).collect();
    if !unknown.is_empty() {
        let known: Vec<&str> = binaries.iter().map(|b| b.name.as_str()).collect();
        bail!("no test binary {unknown:?}; there are: {}", known.join(", "));
    }
    let chosen: Vec<Binary> =
        binaries.into_iter().filter(|b| only.is_empty() || only.contains(&b.name)).collect();
    let env = peers()?;
    run_all(&chosen, &env, || Ok(()))
}

/// Brings the private engine and the test swarm up (both idempotent), installs the other
/// peers' tools (promtool, the browser, Azurite, Apache), and answers what the tests need to find them.
pub(crate) fn peers() -> anyhow::Result<Vec<(String, String)>> {
    let schemathesis = crate::tools::ensure_schemathesis()?;
    let validator = crate::tools::ensure_openapi_validator()?;
    let postgres = crate::tools::ensure_peers()?;
    crate::tools::ensure_promtool()?;
    crate::tools::ensure_browser()?;
    let smtp_python = crate::tools::ensure_aiosmtpd()?;
    let azurite = crate::tools::ensure_azurite()?;
    crate::tools::ensure_apache()?;
    let layout = crate::engine::up()?;
    crate::swarm::up(3)?;
    let path = |p: &Path| p.display().to_string();
    Ok(vec![
        ("DOCKHAND_TEST_HOST".to_owned(), layout.url()),
        ("DOCKHAND_TEST_SCHEMATHESIS".to_owned(), path(&schemathesis)),
        ("DOCKHAND_TEST_OPENAPI_VALIDATOR".to_owned(), path(&validator)),
        ("DOCKHAND_TEST_PG_BIN".to_owned(), path(&postgres)),
        ("DOCKHAND_TEST_SMTP_PYTHON".to_owned(), path(&smtp_python)),
        ("DOCKHAND_TEST_AZURITE".to_owned(), path(&azurite)),
    ])
}

/// Everything: the [`Placement::Throughout`] runs in a thread of their own, and meanwhile
/// the side-by-side phase, then each [`Placement::Alone`] run by itself, then `then` (CI's
/// soak) if all passed so far. Every phase runs whatever the one before came to, so one
/// failure does not hide another.
pub(crate) fn run_all(
    binaries: &[Binary],
    env: &[(String, String)],
    then: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let Phases { throughout, together, alone } = phases(binaries);
    let shared = env.to_vec();
    let throughout = std::thread::spawn(move || run_side_by_side(&throughout, &shared));
    let mut result = run_side_by_side(&together, env);
    for run in &alone {
        let why = run.placed.map_or("", |(_, why)| why);
        eprintln!("\nsuites: {} runs alone: {why}", run.label());
        result = result.and(run_side_by_side(std::slice::from_ref(run), env));
    }
    let result = result.and_then(|()| then());
    let throughout = throughout.join().map_err(|_| anyhow::anyhow!("the runs throughout panicked"))?;
    result.and(throughout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_messages_name_each_test_binary_by_package_and_target() {
        let line = r#"{"reason":"compiler-artifact","package_id":"path+file:///w/crates/cli#dockhand-cli@0.1.0","manifest_path":"/w/crates/cli/Cargo.toml","target":{"kind":["test"],"name":"backup"},"profile":{"test":true},"executable":"/w/target/debug/deps/backup-1"}"#;
        let b = parse_artifact(line).unwrap();
        assert_eq!(b.name, "dockhand-cli/backup");
        assert_eq!(b.package_dir, Path::new("/w/crates/cli"));
        let lib = line.replace(r#"["test"]"#, r#"["lib"]"#);
        assert_eq!(parse_artifact(&lib).unwrap().name, "dockhand-cli/lib");
        let xtask =
            line.replace("crates/cli#dockhand-cli@0.1.0", "xtask#0.1.0").replace("crates/cli/", "xtask/");
        assert_eq!(parse_artifact(&xtask).unwrap().name, "xtask/backup");
        // Not a test binary: a build of the library for others, or a test target's rmeta.
        assert!(parse_artifact(&line.replace(r#""test":true"#, r#""test":false"#)).is_none());
        assert!(
            parse_artifact(
                &line.replace(r#""executable":"/w/target/debug/deps/backup-1""#, r#""executable":null"#)
            )
            .is_none()
        );
        assert!(parse_artifact(r#"{"reason":"build-finished","success":true}"#).is_none());
    }

    #[test]
    fn the_passed_tests_of_every_result_line_add_up() {
        let out =
            "running 3 tests\ntest result: ok. 2 passed; 0 failed\n\ntest result: ok. 5 passed; 1 ignored\n";
        assert_eq!(passed(out), 7);
        assert_eq!(passed("test result: FAILED. 2 passed; 1 failed"), 0);
        // A run of one placed test that ran none does not hold; a whole binary of none does.
        assert!(!held(true, true, 0));
        assert!(held(true, true, 1) && held(true, false, 0));
        assert!(!held(false, false, 3));
    }

    #[test]
    fn placed_tests_leave_their_binarys_run_and_a_missing_binary_is_an_error() {
        let b = |name: &str| Binary {
            name: name.to_owned(),
            executable: PathBuf::new(),
            package_dir: PathBuf::new(),
        };
        let built = [b("dockhand-cli/backup"), b("dockhand-cli/jobs"), b("dockhand-server/server")];
        let Phases { throughout, together, alone } = phases(&built);
        let labels = |runs: &[Run]| runs.iter().map(Run::label).collect::<Vec<_>>();
        let threads = THREADS.to_string();
        let named = |placement: Placement| -> Vec<&str> {
            PLACED.iter().filter(|p| p.2 == placement && p.1 != "*").map(|p| p.1).collect()
        };
        // The jobs binary runs whole, alone; the seed's routes test alone after it.
        assert_eq!(
            labels(&alone),
            ["dockhand-cli/jobs".to_owned(), format!("dockhand-server/server {}", PLACED[1].1)]
        );
        assert_eq!(alone[0].args(), ["--test-threads", &threads]);
        assert_eq!(alone[1].args(), ["--test-threads", &threads, PLACED[1].1, "--exact"]);
        // Each Apart test is a run of its own beside the rest; each Throughout one too, in
        // its own phase.
        assert_eq!(together[0].label(), "dockhand-cli/backup");
        assert_eq!(together.len(), 2 + named(Placement::Apart).len());
        for test in named(Placement::Apart) {
            assert!(together.iter().any(|r| r.only.as_deref() == Some(test)), "{test} runs apart");
        }
        assert_eq!(
            throughout.iter().filter_map(|r| r.only.as_deref()).collect::<Vec<_>>(),
            named(Placement::Throughout)
        );
        // The rest of the server binary skips every one of its placed tests.
        let server = together.last().unwrap();
        assert_eq!(server.label(), "dockhand-server/server");
        assert_eq!(server.skip.len(), PLACED.len() - 1);
        assert_eq!(server.args().last().map(String::as_str), Some("--exact"));
        assert!(placed_are_built(&built).is_ok());
        assert!(placed_are_built(&built[..1]).is_err(), "PLACED names binaries not built");
        // A run of some binaries places the tests of those it has.
        assert_eq!(labels(&phases(&built[..1]).together), ["dockhand-cli/backup"]);
    }
}
