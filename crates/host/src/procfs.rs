//! The one reader of `/proc` and the mount table, shared by the supervisor, xtask and the
//! test harness: processes (pid, parent, uid, state, name, command line, executable) and
//! mount points, with mountinfo's octal escapes decoded.

use std::path::{Path, PathBuf};

/// One process, as `/proc/PID` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProcessInfo {
    /// Its pid.
    pub pid: u32,
    /// Its parent's pid.
    pub ppid: u32,
    /// Its real uid.
    pub uid: u32,
    /// Its state letter (`R`, `S`, `Z`, ...).
    pub state: char,
    /// Its name (`comm`, at most 15 bytes).
    pub name: String,
    /// Its command line, argument by argument.
    pub cmdline: Vec<String>,
    /// The executable it runs, when it can be read.
    pub exe: Option<PathBuf>,
}

impl ProcessInfo {
    /// True unless it is a zombie.
    pub fn is_alive(&self) -> bool {
        self.state != 'Z' && self.state != 'X'
    }
}

/// `pid`'s `/proc` entry; `None` when it is gone.
pub fn process(pid: u32) -> Option<ProcessInfo> {
    let dir = PathBuf::from(format!("/proc/{pid}"));
    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
    let (head, rest) = stat.rsplit_once(')')?;
    let name = head.split_once('(').map(|(_, n)| n.to_owned()).unwrap_or_default();
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let uid = std::fs::read_to_string(dir.join("status"))
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Uid:"))?.split_whitespace().next()?.parse().ok())
        .unwrap_or(u32::MAX);
    let cmdline = std::fs::read(dir.join("cmdline"))
        .map(|raw| {
            raw.split(|&b| b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default();
    let exe = std::fs::read_link(dir.join("exe")).ok();
    Some(ProcessInfo { pid, ppid, uid, state, name, cmdline, exe })
}

/// Every process that can be read now.
pub fn processes() -> Vec<ProcessInfo> {
    let mut all: Vec<ProcessInfo> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(process)
        .collect();
    all.sort_by_key(|p| p.pid);
    all
}

/// True when `pid` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    process(pid).is_some_and(|p| p.is_alive())
}

/// This process's effective uid, from `/proc/self/status`.
pub fn effective_uid() -> Option<u32> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The running executable, as the kernel names it for this process (`/proc/self/exe`):
/// readable even when the file was replaced or deleted since it started.
pub const SELF_EXE: &str = "/proc/self/exe";

/// Where this process's memory map is.
pub const SELF_MAPS: &str = "/proc/self/maps";

/// This process's memory map ([`SELF_MAPS`]): the files it has mapped, its shared
/// libraries among them.
pub fn self_maps() -> std::io::Result<String> {
    std::fs::read_to_string(SELF_MAPS)
}

/// This process's mount table (`/proc/self/mountinfo`), as text.
pub fn self_mountinfo() -> std::io::Result<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
}

/// This machine's hostname (`/proc/sys/kernel/hostname`), trimmed; `None` when unreadable
/// or empty.
pub fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
}

/// This boot's ID (`/proc/sys/kernel/random/boot_id`), trimmed; empty when unreadable.
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|b| b.trim().to_owned())
        .unwrap_or_default()
}

/// This process's PID namespace (`readlink /proc/self/ns/pid`, such as
/// `pid:[4026531836]`); empty when unreadable.
pub fn pid_namespace() -> String {
    std::fs::read_link("/proc/self/ns/pid").map(|l| l.display().to_string()).unwrap_or_default()
}

/// When `pid` started, in clock ticks since boot (`/proc/<pid>/stat`, field 22); `None`
/// when it does not run.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `comm` is in parentheses and may hold spaces: the fields after the last `)` count.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// Every mount point of this process's mount namespace, from `/proc/self/mountinfo`.
pub fn mount_points() -> Vec<PathBuf> {
    parse_mount_points(&std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default())
}

/// The mount points (field 5) of a mountinfo table.
pub fn parse_mount_points(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape_mount_path(p)))
        .collect()
}

/// The mount points at or below `dir` (a dockerd bind-mounts its data root onto itself),
/// deepest first, compared by whole path components (`/d.bak` is not below `/d`). `dir`
/// must be absolute and not `/`: anything else gives nothing, so that a bad root can never
/// select every mount.
pub fn mounts_below(points: &[PathBuf], dir: &Path) -> Vec<PathBuf> {
    if !dir.is_absolute() || dir.parent().is_none() {
        return Vec::new();
    }
    let mut found: Vec<PathBuf> = points.iter().filter(|p| p.starts_with(dir)).cloned().collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo` (octal).
pub fn unescape_mount_path(raw: &str) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal.and_then(|d| u8::from_str_radix(std::str::from_utf8(d).ok()?, 8).ok()) {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape_mount_path(r"/a\040b\011c\012d\134e"), "/a b\tc\nd\\e");
        assert_eq!(unescape_mount_path(r"/plain\x"), r"/plain\x");
        let table =
            "36 35 98:0 / /mnt/a\\040b rw - ext4 /dev/x rw\n37 35 98:0 / /mnt/c rw - ext4 /dev/y rw\n";
        assert_eq!(parse_mount_points(table), [PathBuf::from("/mnt/a b"), PathBuf::from("/mnt/c")]);
    }

    #[test]
    fn only_within_an_absolute_root_deepest_first() {
        let points: Vec<PathBuf> =
            ["/", "/d", "/d/x", "/d/x/y", "/d.bak/z", "/e"].iter().map(PathBuf::from).collect();
        assert_eq!(
            mounts_below(&points, Path::new("/d")),
            [PathBuf::from("/d/x/y"), PathBuf::from("/d/x"), PathBuf::from("/d")]
        );
        assert!(mounts_below(&points, Path::new("")).is_empty());
        assert!(mounts_below(&points, Path::new("/")).is_empty());
        assert!(mounts_below(&points, Path::new("d")).is_empty());
    }

    #[test]
    fn this_process_is_seen() {
        let me = process(std::process::id()).expect("own /proc entry");
        assert!(me.is_alive() && !me.cmdline.is_empty() && me.exe.is_some(), "{me:?}");
        assert!(processes().iter().any(|p| p.pid == me.pid));
        assert!(!alive(u32::MAX));
        assert!(mount_points().iter().any(|p| p == Path::new("/")));
    }
}
