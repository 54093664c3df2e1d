//! The test images, made locally with no registry:
//!
//! - `dockhand/busybox:test`: Debian's static busybox with its applets, for services
//!   that need a shell, `sleep` or `tar`;
//! - `dockhand/dockhand:dev`: the `dockhand` and `dockhand-server` binaries in an image
//!   built from scratch: the image helper services and the server run. For the tests
//!   ([`Build::Test`]) they are the debug build the tests use, with the libraries they
//!   link; for a release, the demo and the benchmarks ([`Build::Release`]), the static,
//!   optimised ones;
//! - `dockhand/curl:test`: busybox plus the machine's own `curl` and the libraries it
//!   links, for a CI job's call over HTTPS on the overlay network (`curl --cacert`).

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

use crate::proc;

/// An engine to put the images on: how to run the docker CLI against it, and a scratch
/// directory of its own.
pub(crate) trait ImageHost {
    /// The docker CLI, pointed at this engine only.
    fn docker(&self) -> anyhow::Result<Command>;
    /// Where root filesystems are assembled.
    fn scratch(&self) -> std::path::PathBuf;
}

/// The busybox-based test image.
pub(crate) const BUSYBOX_IMAGE: &str = "dockhand/busybox:test";
/// dockhand's own image, built from this checkout.
pub(crate) const DOCKHAND_IMAGE: &str = "dockhand/dockhand:dev";
/// busybox and curl: what a CI job calls the server over HTTPS with.
pub(crate) const CURL_IMAGE: &str = "dockhand/curl:test";

/// The cargo arguments that name the image's two binaries.
const THE_BINARIES: [&str; 8] = [
    "--package",
    "dockhand-cli",
    "--package",
    "dockhand-server",
    "--bin",
    "dockhand",
    "--bin",
    "dockhand-server",
];

/// Which binaries go into `dockhand/dockhand:dev`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Build {
    /// The debug build the tests run ([`test_binaries`]), with the loader and the libraries
    /// it links at their own paths: no second, optimised build of the whole tree for a test
    /// run.
    Test,
    /// Static and optimised (the `image` profile): what ships, what the demo deploys and
    /// what the benchmarks measure.
    Release,
}

impl Build {
    /// Builds the two binaries and answers their paths.
    fn binaries(self) -> anyhow::Result<[std::path::PathBuf; 2]> {
        match self {
            Self::Release => static_binaries(),
            Self::Test => test_binaries(),
        }
    }
}

/// `dockhand` and `dockhand-server` as the test build makes them: the binaries the tests
/// run (`CARGO_BIN_EXE_*`), which the helpers in the test image and the soak's replicas
/// must be too. A `cargo build` of the two packages alone resolves other features and
/// would build them a second time, differently.
/// Built once per process: `swarm up` puts the image on every node, and each asks.
pub(crate) fn test_binaries() -> anyhow::Result<[std::path::PathBuf; 2]> {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    if BUILT.get().is_none() {
        crate::suites::build()?;
        let _ = BUILT.set(());
    }
    let built = crate::project_root().join("target").join("debug");
    Ok([built.join("dockhand"), built.join("dockhand-server")])
}

pub(crate) fn ensure(layout: &dyn ImageHost, build: Build) -> anyhow::Result<()> {
    if !exists(layout, BUSYBOX_IMAGE)? {
        busybox(layout)?;
    }
    if !exists(layout, CURL_IMAGE)? {
        curl(layout)?;
    }
    // Always rebuilt: cargo only relinks when the code changed, and an import is quick.
    dockhand(layout, build)
}

fn exists(layout: &dyn ImageHost, image: &str) -> anyhow::Result<bool> {
    let status = layout
        .docker()?
        .args(["image", "inspect", "--format", "{{.Id}}", image])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    Ok(status.success())
}

/// `cargo xtask image`: the image helpers and the server run, tagged with the version and
/// saved to a file an operator can `docker load` on a manager.
pub(crate) fn release() -> anyhow::Result<()> {
    let layout = crate::engine::up()?;
    dockhand(&layout, Build::Release)?;
    let tagged = format!("dockhand/dockhand:{}", env!("CARGO_PKG_VERSION"));
    proc::run(layout.docker()?.args(["tag", DOCKHAND_IMAGE, &tagged]))?;
    let file = crate::project_root()
        .join("target")
        .join(format!("dockhand-image-{}.tar", env!("CARGO_PKG_VERSION")));
    proc::run(layout.docker()?.args(["save", "--output"]).arg(&file).arg(&tagged))?;
    eprintln!("{tagged}: saved to {}", file.display());
    Ok(())
}

/// A busybox root filesystem: the static binary and a symlink per applet.
pub(crate) fn busybox_rootfs(layout: &dyn ImageHost) -> anyhow::Result<std::path::PathBuf> {
    let busybox = proc::which("busybox").context("busybox is not installed (Debian: busybox-static)")?;
    let rootfs = layout.scratch().join("images").join("busybox");
    let _ = fs::remove_dir_all(&rootfs);
    let bin = rootfs.join("bin");
    fs::create_dir_all(&bin)?;
    fs::create_dir_all(rootfs.join("tmp"))?;
    fs::copy(&busybox, bin.join("busybox"))?;
    let applets = proc::output(Command::new(&busybox).arg("--list"))?;
    for applet in applets.lines().map(str::trim).filter(|a| !a.is_empty() && *a != "busybox") {
        symlink("busybox", bin.join(applet))?;
    }
    Ok(rootfs)
}

fn busybox(layout: &dyn ImageHost) -> anyhow::Result<()> {
    let rootfs = busybox_rootfs(layout)?;
    import(layout, &rootfs, BUSYBOX_IMAGE, &[])?;
    // The image only works if busybox really is static: prove it by running it.
    let out = proc::output(layout.docker()?.args([
        "run",
        "--rm",
        "--network",
        "none",
        BUSYBOX_IMAGE,
        "echo",
        "ok",
    ]))
    .context("the busybox test image does not run (is /bin/busybox the static one, from busybox-static?)")?;
    if out.trim() != "ok" {
        bail!("the busybox test image printed {out:?} instead of \"ok\"");
    }
    Ok(())
}

/// busybox's root filesystem with `curl` and every library `ldd` says it loads, each at
/// its own path (the loader included), so the host's curl runs as it is.
fn curl(layout: &dyn ImageHost) -> anyhow::Result<()> {
    let curl = proc::which("curl").context("curl is not installed (Debian: curl)")?;
    let rootfs = busybox_rootfs(layout)?;
    let inside = rootfs.join(curl.strip_prefix("/").unwrap_or(&curl));
    if let Some(dir) = inside.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::copy(&curl, &inside).with_context(|| format!("cannot copy {}", curl.display()))?;
    copy_libraries(&rootfs, &curl)?;
    // curl is /usr/bin/curl on the host; busybox has no applet of that name to clash with.
    import(layout, &rootfs, CURL_IMAGE, &[])?;
    let out = proc::output(layout.docker()?.args([
        "run",
        "--rm",
        "--network",
        "none",
        CURL_IMAGE,
        "curl",
        "--version",
    ]))
    .context("the curl test image does not run")?;
    if !out.starts_with("curl ") {
        bail!("the curl test image printed {out:?} instead of its version");
    }
    Ok(())
}

/// Copies every library `ldd` says `binary` loads into `rootfs`, each at its own path (the
/// loader included), so that the binary runs there as it does on this machine.
fn copy_libraries(rootfs: &Path, binary: &Path) -> anyhow::Result<()> {
    let linked = proc::output(Command::new("ldd").arg(binary))
        .with_context(|| format!("cannot list the libraries of {}", binary.display()))?;
    for line in linked.lines() {
        // `libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x…)` or `/lib64/ld-linux-x86-64.so.2 (0x…)`
        let path = line.split("=>").nth(1).unwrap_or(line).split_whitespace().next().unwrap_or_default();
        if !path.starts_with('/') {
            continue;
        }
        let file = Path::new(path);
        let inside = rootfs.join(file.strip_prefix("/").unwrap_or(file));
        if let Some(dir) = inside.parent() {
            fs::create_dir_all(dir)?;
        }
        // The real file behind any symlink, under the link's name.
        fs::copy(file, &inside).with_context(|| format!("cannot copy {}", file.display()))?;
    }
    Ok(())
}

/// `cargo xtask dist`: the static `dockhand` and `dockhand-server` release binaries, copied
/// to `target/dist/`. A static `dockhand` makes a helper image of one file.
pub(crate) fn dist() -> anyhow::Result<()> {
    let dist = crate::project_root().join("target").join("dist");
    fs::create_dir_all(&dist)?;
    for binary in static_binaries()? {
        let name = binary.file_name().context("a binary has a name")?;
        fs::copy(&binary, dist.join(name)).with_context(|| format!("cannot copy {}", binary.display()))?;
        eprintln!("{}", dist.join(name).display());
    }
    Ok(())
}

/// What the static binaries are built with.
const STATIC_RUSTFLAGS: &str = "-C target-feature=+crt-static -C link-arg=-Wl,-z,pack-relative-relocs";

/// Builds both binaries static (`crt-static`, the `image` profile) and answers their paths.
///
/// They stay position-independent (the kernel loads them at a random address) with their
/// relative relocations packed (`-z pack-relative-relocs`, glibc's DT_RELR): the 1.5 MiB
/// table of one entry per pointer that start-up read whole, and kept resident, is 25 KiB
/// (measured by `cargo xtask bench server`, docs/benchmarks.md).
pub(crate) fn static_binaries() -> anyhow::Result<[std::path::PathBuf; 2]> {
    let target = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    let target_dir = crate::project_root().join("target").join("static");
    proc::run(
        crate::cargo()
            .args(["build", "--locked", "--profile", "image"])
            .args(THE_BINARIES)
            .args(["--target", &target])
            .arg("--target-dir")
            .arg(&target_dir)
            .env("RUSTFLAGS", STATIC_RUSTFLAGS),
    )?;
    let built = target_dir.join(&target).join("image");
    Ok([built.join("dockhand"), built.join("dockhand-server")])
}

fn dockhand(layout: &dyn ImageHost, build: Build) -> anyhow::Result<()> {
    let binaries = build.binaries()?;
    // The image records which build it holds; unchanged binaries are not imported again.
    let mut stamp = String::new();
    for binary in &binaries {
        let meta = fs::metadata(binary).with_context(|| format!("cannot read {}", binary.display()))?;
        let mtime = meta.modified()?.duration_since(std::time::UNIX_EPOCH)?.as_nanos();
        stamp.push_str(&format!("{}-{mtime}.", meta.len()));
    }
    let current = proc::output(layout.docker()?.args([
        "image",
        "inspect",
        "--format",
        "{{index .Config.Labels \"dockhand.build\"}}",
        DOCKHAND_IMAGE,
    ]));
    if current.is_ok_and(|label| label.trim() == stamp) {
        eprintln!("{DOCKHAND_IMAGE} is up to date");
        return Ok(());
    }
    let rootfs = layout.scratch().join("images").join("dockhand");
    let _ = fs::remove_dir_all(&rootfs);
    fs::create_dir_all(rootfs.join("usr/local/bin"))?;
    fs::create_dir_all(rootfs.join("tmp"))?;
    for binary in &binaries {
        let name = binary.file_name().context("a binary has a name")?;
        fs::copy(binary, rootfs.join("usr/local/bin").join(name))
            .with_context(|| format!("cannot copy {}", binary.display()))?;
        if build == Build::Test {
            copy_libraries(&rootfs, binary)?;
        }
    }
    // The server's state directory, and where it listens by default (the seed's port).
    fs::create_dir_all(rootfs.join("var/lib/dockhand"))?;
    let label = format!("LABEL dockhand.build={stamp}");
    import(layout, &rootfs, DOCKHAND_IMAGE, &["ENTRYPOINT [\"/usr/local/bin/dockhand\"]", &label])?;
    // The image this one replaces is left untagged: remove it.
    proc::output(layout.docker()?.args(["image", "prune", "--force"]))?;
    let out = proc::output(layout.docker()?.args([
        "run",
        "--rm",
        "--network",
        "none",
        DOCKHAND_IMAGE,
        "--version",
    ]))
    .context("the dockhand image does not run (is the binary static, or are its libraries in it?)")?;
    eprintln!("{DOCKHAND_IMAGE}: {}", out.trim());
    Ok(())
}

/// Commits `image`: the test busybox with `/version` holding `version`, plus `change` (a
/// Dockerfile instruction such as `CMD [...]`) when given. `docker` makes a CLI command for
/// the engine it is built on.
pub(crate) fn version_image(
    docker: impl Fn() -> anyhow::Result<Command>,
    version: &str,
    image: &str,
    change: Option<&str>,
) -> anyhow::Result<()> {
    let name = format!("dh-build-{}", image.replace(['/', ':', '.'], "-"));
    let _ = docker()?.args(["rm", "-f", &name]).output();
    let script = format!("echo {version} > /version");
    proc::output(docker()?.args([
        "run",
        "--name",
        &name,
        "--network",
        "none",
        BUSYBOX_IMAGE,
        "sh",
        "-c",
        &script,
    ]))?;
    let mut commit = docker()?;
    commit.arg("commit");
    if let Some(change) = change {
        commit.args(["--change", change]);
    }
    proc::output(commit.args([&name, image]))?;
    proc::output(docker()?.args(["rm", "-f", &name]))?;
    Ok(())
}

/// `tar -C rootfs -c . | docker import - image`, with Dockerfile-style `changes`.
fn import(layout: &dyn ImageHost, rootfs: &Path, image: &str, changes: &[&str]) -> anyhow::Result<()> {
    let mut docker = layout.docker()?;
    docker.arg("import");
    for change in changes {
        docker.args(["--change", change]);
    }
    docker.args(["-", image]);
    import_with(docker, rootfs, image)
}

/// `tar -C rootfs -c . | <importer>`: the importer reads the tar on stdin.
pub(crate) fn import_with(mut importer: Command, rootfs: &Path, image: &str) -> anyhow::Result<()> {
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(rootfs)
        .args(["--owner=0", "--group=0", "-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot run tar")?;
    let stdout = tar.stdout.take().context("tar has no stdout")?;
    importer.stdin(stdout);
    let imported = proc::output(&mut importer);
    let tarred = tar.wait()?;
    imported.with_context(|| format!("cannot import {image}"))?;
    if !tarred.success() {
        bail!("tar of {} failed: {tarred}", rootfs.display());
    }
    eprintln!("image {image} created");
    Ok(())
}
