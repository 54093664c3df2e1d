//! Small process helpers: run a command and check it, signal processes, walk /proc.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use dockhand_host::procfs;
use rustix::process::{Pid, Signal};

/// Runs `cmd`, echoing it, and fails if it does not exit 0.
pub(crate) fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let shown = show(cmd);
    eprintln!("$ {shown}");
    let status = cmd.status().with_context(|| format!("cannot start `{shown}`"))?;
    if !status.success() {
        bail!("`{shown}` failed: {status}");
    }
    Ok(())
}

/// Runs `cmd` quietly and returns its stdout; fails with its stderr.
pub(crate) fn output(cmd: &mut Command) -> anyhow::Result<String> {
    let shown = show(cmd);
    let out = cmd.output().with_context(|| format!("cannot start `{shown}`"))?;
    if !out.status.success() {
        bail!("`{shown}` failed: {}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// [`output`], with `input` written to its stdin (a password, never in argv).
pub(crate) fn output_with_stdin(cmd: &mut Command, input: &[u8]) -> anyhow::Result<String> {
    use std::io::Write;
    let shown = show(cmd);
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start `{shown}`"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input)?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("`{shown}` failed: {}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn show(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Finds an executable on `PATH`, or in the sbin directories a non-root `PATH` lacks.
pub(crate) fn which(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(Into::into))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// True when the process exists and is not a zombie.
pub(crate) fn alive(pid: i32) -> bool {
    u32::try_from(pid).is_ok_and(procfs::alive)
}

/// Sends `signal` to `pid`, ignoring a process that is already gone.
pub(crate) fn signal(pid: i32, signal: Signal) {
    if let Some(pid) = Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(pid, signal);
    }
}

/// Waits until `pid` is gone, up to `timeout`; true if it went.
pub(crate) fn wait_gone(pid: i32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while alive(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    true
}

/// Reads a pid file; `None` when absent or not a number.
pub(crate) fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The command line of `pid`, its arguments joined with spaces.
pub(crate) fn cmdline(pid: i32) -> String {
    u32::try_from(pid).ok().and_then(procfs::process).map(|p| p.cmdline.join(" ")).unwrap_or_default()
}

/// Every live process named one of `names` whose command line mentions `needle`, with all
/// its descendants (a container's processes are children of its shim).
pub(crate) fn processes_mentioning(needle: &str, names: &[&str]) -> BTreeSet<i32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    let mut roots = Vec::new();
    let me = std::process::id();
    for p in procfs::processes() {
        if p.pid == me {
            continue;
        }
        children.entry(p.ppid).or_default().push(p.pid);
        if names.iter().any(|n| p.name.starts_with(n)) && p.cmdline.join(" ").contains(needle) {
            roots.push(p.pid);
        }
    }
    let mut found = BTreeSet::new();
    while let Some(pid) = roots.pop() {
        if found.insert(pid) {
            roots.extend(children.get(&pid).into_iter().flatten().copied());
        }
    }
    found.into_iter().filter(|&pid| procfs::alive(pid)).filter_map(|pid| i32::try_from(pid).ok()).collect()
}

/// Live processes whose real uid is `uid`.
pub(crate) fn processes_of(uid: u32) -> Vec<i32> {
    procfs::processes()
        .into_iter()
        .filter(|p| p.uid == uid && p.is_alive())
        .filter_map(|p| i32::try_from(p.pid).ok())
        .collect()
}

/// Mount points at or below `dir`, deepest first.
pub(crate) fn mounts_below(dir: &Path) -> Vec<std::path::PathBuf> {
    procfs::mounts_below(&procfs::mount_points(), dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_itself_alive_and_a_bogus_pid_dead() {
        assert!(alive(std::process::id() as i32));
        assert!(!alive(i32::MAX));
    }
}
