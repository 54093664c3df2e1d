//! Preflight checks for a managed host: what must hold before its engine can start, each
//! failure naming the fix.

use std::path::{Path, PathBuf};

use crate::HostEntry;

/// The most bytes a unix socket path may have (`sun_path` is 108 with its NUL).
pub const MAX_SOCKET_PATH: usize = 107;

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Check {
    /// What was checked, such as `executable` or `subuid`.
    pub name: &'static str,
    /// True when it holds.
    pub ok: bool,
    /// What was found, or what is wrong and how to fix it.
    pub detail: String,
}

impl Check {
    fn pass(name: &'static str, detail: impl Into<String>) -> Self {
        Self { name, ok: true, detail: detail.into() }
    }

    fn fail(name: &'static str, detail: impl Into<String>) -> Self {
        Self { name, ok: false, detail: detail.into() }
    }

    pub(crate) fn pass_engine(detail: String) -> Self {
        Self::pass("engine", detail)
    }

    pub(crate) fn fail_engine(detail: String) -> Self {
        Self::fail("engine", detail)
    }

    pub(crate) fn fail_config(detail: String) -> Self {
        Self::fail("config", detail)
    }
}

/// Where the checks look: the real system by default, other files in tests.
#[derive(Debug, Clone)]
pub struct System {
    /// The directories of `PATH`.
    pub path: Vec<PathBuf>,
    /// The effective user id.
    pub uid: u32,
    /// `/etc/passwd`, for the user's name.
    pub passwd: PathBuf,
    /// `/etc/subuid`.
    pub subuid: PathBuf,
    /// `/etc/subgid`.
    pub subgid: PathBuf,
    /// `/dev/net/tun`.
    pub tun: PathBuf,
    /// `XDG_RUNTIME_DIR`, if set.
    pub runtime_dir: Option<PathBuf>,
}

impl System {
    /// This machine, with `PATH` and `XDG_RUNTIME_DIR` from `env`.
    pub fn current(env: &crate::Environment) -> Self {
        Self {
            path: std::env::split_paths(env.get("PATH").unwrap_or("/usr/local/bin:/usr/bin:/bin")).collect(),
            uid: current_uid(),
            passwd: "/etc/passwd".into(),
            subuid: "/etc/subuid".into(),
            subgid: "/etc/subgid".into(),
            tun: "/dev/net/tun".into(),
            runtime_dir: env.get("XDG_RUNTIME_DIR").map(PathBuf::from),
        }
    }

    /// The executable for `name`: itself when it has a `/`, else the first on `PATH`.
    pub fn find(&self, name: &str) -> Option<PathBuf> {
        if name.contains('/') {
            return is_executable(Path::new(name)).then(|| PathBuf::from(name));
        }
        self.path.iter().map(|dir| dir.join(name)).find(|p| is_executable(p))
    }

    fn user_name(&self) -> Option<String> {
        let text = std::fs::read_to_string(&self.passwd).ok()?;
        text.lines().find_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let uid: u32 = fields.nth(1)?.parse().ok()?;
            (uid == self.uid).then(|| name.to_owned())
        })
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The effective uid, from `/proc/self/status` (no `unsafe` needed).
fn current_uid() -> u32 {
    crate::procfs::effective_uid().unwrap_or(u32::MAX)
}

/// Runs the checks for `host` (a managed host; others pass trivially). The rootless checks
/// apply when the executable is a rootless launcher (`dockerd-rootless.sh` or any name with
/// `rootless` in it).
pub fn preflight(host: &HostEntry, system: &System) -> Vec<Check> {
    let Some(managed) = &host.managed else { return Vec::new() };
    let mut checks = Vec::new();
    let exe = system.find(&managed.executable);
    checks.push(match &exe {
        Some(path) => Check::pass("executable", format!("{}", path.display())),
        None => Check::fail(
            "executable",
            format!(
                "{:?} is not found on PATH or not executable; install it (Debian: docker.io provides \
                 /usr/share/docker.io/contrib/dockerd-rootless.sh; add that directory to PATH) or give an absolute path",
                managed.executable
            ),
        ),
    });
    if let Some(socket) = host.host.as_ref().and_then(|h| h.socket_path()) {
        let len = socket.as_os_str().len();
        checks.push(if len <= MAX_SOCKET_PATH {
            Check::pass("socket path", format!("{} ({len} bytes)", socket.display()))
        } else {
            Check::fail(
                "socket path",
                format!("{} is {len} bytes, over the {MAX_SOCKET_PATH} a unix socket allows; choose a shorter host path", socket.display()),
            )
        });
    }
    let rootless = managed.executable.contains("rootless");
    if !rootless {
        return checks;
    }
    checks.push(if system.uid == 0 {
        Check::fail("user", "dockerd-rootless.sh refuses to run as root: run dockhand as an ordinary user")
    } else {
        Check::pass("user", format!("uid {}", system.uid))
    });
    for tool in ["newuidmap", "newgidmap"] {
        checks.push(
            match system.find(tool).or_else(|| {
                System { path: vec!["/usr/bin".into(), "/usr/sbin".into()], ..system.clone() }.find(tool)
            }) {
                Some(path) => Check::pass(tool_name(tool), path.display().to_string()),
                None => Check::fail(
                    tool_name(tool),
                    format!("{tool} is missing: install the uidmap package (apt-get install uidmap)"),
                ),
            },
        );
    }
    let user = system.user_name();
    for (name, file) in [("subuid", &system.subuid), ("subgid", &system.subgid)] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let has = text.lines().any(|line| {
            let owner = line.split(':').next().unwrap_or("");
            owner == system.uid.to_string() || user.as_deref() == Some(owner)
        });
        checks.push(if has {
            Check::pass(name, format!("{} has a range for {}", file.display(), user.as_deref().unwrap_or("this user")))
        } else {
            Check::fail(
                name,
                format!(
                    "{} has no range for {} (uid {}): add one, e.g. `usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {}`",
                    file.display(),
                    user.as_deref().unwrap_or("this user"),
                    system.uid,
                    user.as_deref().unwrap_or("USER")
                ),
            )
        });
    }
    checks.push(match &system.runtime_dir {
        None => Check::fail(
            "XDG_RUNTIME_DIR",
            "is not set: log in through a session that sets it, or export it (e.g. /run/user/$UID)",
        ),
        Some(dir) => {
            let probe = dir.join(format!(".dockhand-probe-{}", std::process::id()));
            match std::fs::write(&probe, b"") {
                Ok(()) => {
                    let _ = std::fs::remove_file(&probe);
                    Check::pass("XDG_RUNTIME_DIR", dir.display().to_string())
                }
                Err(e) => Check::fail("XDG_RUNTIME_DIR", format!("{} is not writable: {e}", dir.display())),
            }
        }
    });
    checks.push(match std::fs::OpenOptions::new().read(true).write(true).open(&system.tun) {
        Ok(_) => Check::pass("/dev/net/tun", "readable and writable"),
        Err(e) => Check::fail(
            "/dev/net/tun",
            format!(
                "{} cannot be opened ({e}): slirp4netns needs it (as root: chmod 666 {})",
                system.tun.display(),
                system.tun.display()
            ),
        ),
    });
    checks
}

fn tool_name(tool: &str) -> &'static str {
    if tool == "newuidmap" { "newuidmap" } else { "newgidmap" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Environment;
    use crate::HostsConfig;

    fn managed(executable: &str, socket: &str) -> HostEntry {
        let yaml = format!(
            "docker:\n  hosts:\n    m:\n      type: managed\n      host: unix://{socket}\n      managed:\n        executable: {executable}\n"
        );
        HostsConfig::parse(&yaml, false, &Environment::default()).unwrap().get("m").unwrap().clone()
    }

    struct Fixture {
        dir: tempfile::TempDir,
    }

    impl Fixture {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let bin = dir.path().join("bin");
            std::fs::create_dir_all(&bin).unwrap();
            for exe in ["dockerd-rootless.sh", "newuidmap", "newgidmap"] {
                std::fs::write(bin.join(exe), "#!/bin/sh\n").unwrap();
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(bin.join(exe), std::fs::Permissions::from_mode(0o755)).unwrap();
            }
            std::fs::write(
                dir.path().join("passwd"),
                "root:x:0:0::/root:/bin/sh\nops:x:1000:1000::/home/ops:/bin/sh\n",
            )
            .unwrap();
            std::fs::write(dir.path().join("subuid"), "ops:100000:65536\n").unwrap();
            std::fs::write(dir.path().join("subgid"), "1000:100000:65536\n").unwrap();
            std::fs::write(dir.path().join("tun"), "").unwrap();
            std::fs::create_dir_all(dir.path().join("run")).unwrap();
            Self { dir }
        }

        fn system(&self) -> System {
            let d = self.dir.path();
            System {
                path: vec![d.join("bin")],
                uid: 1000,
                passwd: d.join("passwd"),
                subuid: d.join("subuid"),
                subgid: d.join("subgid"),
                tun: d.join("tun"),
                runtime_dir: Some(d.join("run")),
            }
        }
    }

    fn failed(checks: &[Check]) -> Vec<(&'static str, &str)> {
        checks.iter().filter(|c| !c.ok).map(|c| (c.name, c.detail.as_str())).collect()
    }

    #[test]
    fn a_prepared_user_passes_every_check() {
        let f = Fixture::new();
        let checks = preflight(&managed("dockerd-rootless.sh", "/run/user/1000/d.sock"), &f.system());
        assert_eq!(failed(&checks), vec![]);
        let names: Vec<&str> = checks.iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            [
                "executable",
                "socket path",
                "user",
                "newuidmap",
                "newgidmap",
                "subuid",
                "subgid",
                "XDG_RUNTIME_DIR",
                "/dev/net/tun"
            ]
        );
    }

    #[test]
    fn each_failure_names_its_fix() {
        let f = Fixture::new();
        let mut sys = f.system();
        sys.uid = 1001; // no passwd entry, no sub-ids
        sys.runtime_dir = None;
        sys.tun = f.dir.path().join("no-tun");
        let long = format!("/{}/d.sock", "x".repeat(120));
        let checks = preflight(&managed("no-such-dockerd-rootless", &long), &sys);
        let failures = failed(&checks);
        let find = |name: &str| {
            failures
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, d)| *d)
                .unwrap_or_else(|| panic!("{name} passed"))
        };
        assert!(find("executable").contains("not found on PATH"));
        assert!(find("socket path").contains("over the 107"));
        assert!(find("subuid").contains("usermod --add-subuids"));
        assert!(find("subgid").contains("usermod"));
        assert!(find("XDG_RUNTIME_DIR").contains("is not set"));
        assert!(find("/dev/net/tun").contains("chmod 666"));

        sys.uid = 0;
        let checks = preflight(&managed("dockerd-rootless.sh", "/run/d.sock"), &sys);
        assert!(failed(&checks).iter().any(|(n, d)| *n == "user" && d.contains("as root")));
    }

    #[test]
    fn a_plain_dockerd_skips_the_rootless_checks() {
        let f = Fixture::new();
        let mut sys = f.system();
        sys.uid = 0;
        std::fs::write(f.dir.path().join("bin/dockerd"), "").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(f.dir.path().join("bin/dockerd"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        let checks = preflight(&managed("dockerd", "/run/d.sock"), &sys);
        assert_eq!(checks.iter().map(|c| c.name).collect::<Vec<_>>(), ["executable", "socket path"]);
        assert!(checks.iter().all(|c| c.ok));
    }
}
