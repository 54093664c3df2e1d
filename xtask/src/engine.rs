//! The private test engine: a `dockerd` with its own `containerd`, socket, data root, exec
//! root, pid files and daemon config, all under `target/dh-engine/` (or
//! `$DOCKHAND_ENGINE_DIR`). It answers on its unix socket and on plain TCP on loopback; a
//! second `dockerd --tlsverify` beside it is the TLS peer. `test-peers.env` names them all. It never uses `/var/run/docker.sock`, the system containerd or
//! `/etc/docker/daemon.json`, so it cannot disturb an engine the user runs.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use dockhand_engine::{Client, Endpoint, TlsSettings};
use rustix::process::Signal;

use crate::proc;

/// How long the engine may take to answer its first ping.
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// How long `dockerd` may take to stop its containers and exit on SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(60);
/// A unix socket path must fit in `sun_path` (108 bytes with its NUL).
const MAX_SOCKET_PATH: usize = 107;
/// Process names that belong to an engine, for the sweep after a stop.
const ENGINE_PROCESSES: [&str; 8] =
    ["dockerd", "containerd", "docker-proxy", "runc", "sshd", "ssh", "podman", "conmon"];

/// Where the private engine keeps everything.
pub(crate) struct Layout {
    dir: PathBuf,
}

impl Layout {
    pub(crate) fn new() -> Self {
        let dir = std::env::var_os("DOCKHAND_ENGINE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| crate::project_root().join("target").join("dh-engine"));
        Self { dir }
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn socket(&self) -> PathBuf {
        self.dir.join("docker.sock")
    }

    pub(crate) fn url(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    fn pidfile(&self) -> PathBuf {
        self.dir.join("dockerd.pid")
    }

    /// The TLS peer: a second dockerd, TCP with `--tlsverify` only.
    fn tls_pidfile(&self) -> PathBuf {
        self.dir.join("dockerd-tls.pid")
    }

    fn tls_log(&self) -> PathBuf {
        self.dir.join("dockerd-tls.log")
    }

    /// The TLS peer's certificates: `ca.pem`, `server-*.pem`, and the client's `cert.pem`
    /// and `key.pem`, as `DOCKER_CERT_PATH` expects them.
    fn tls_dir(&self) -> PathBuf {
        self.dir.join("tls")
    }

    /// `KEY=VALUE` lines naming every test peer, read by the e2e harness.
    fn peers_file(&self) -> PathBuf {
        self.dir.join("test-peers.env")
    }

    fn log(&self) -> PathBuf {
        self.dir.join("dockerd.log")
    }

    fn containerd(&self) -> PathBuf {
        self.dir.join("containerd")
    }

    fn containerd_socket(&self) -> PathBuf {
        self.containerd().join("containerd.sock")
    }

    fn containerd_pidfile(&self) -> PathBuf {
        self.dir.join("containerd.pid")
    }

    fn containerd_log(&self) -> PathBuf {
        self.dir.join("containerd.log")
    }

    /// A docker CLI config directory of our own, so the CLI never reads the user's.
    pub(crate) fn docker_config(&self) -> PathBuf {
        self.dir.join("docker-config")
    }

    /// The docker CLI, pointed at this engine only.
    pub(crate) fn docker(&self) -> anyhow::Result<Command> {
        docker_cli(&self.url(), &self.docker_config())
    }
}

/// The docker CLI pointed at the engine `url` only, with a config directory of its own, so
/// it never reads the user's contexts or credentials.
pub(crate) fn docker_cli(url: &str, config: &Path) -> anyhow::Result<Command> {
    let docker = proc::which("docker").context("the docker CLI is not installed")?;
    let mut cmd = Command::new(docker);
    cmd.env("DOCKER_HOST", url)
        .env("DOCKER_CONFIG", config)
        .env_remove("DOCKER_CONTEXT")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH");
    Ok(cmd)
}

impl crate::images::ImageHost for Layout {
    fn docker(&self) -> anyhow::Result<Command> {
        Layout::docker(self)
    }

    fn scratch(&self) -> PathBuf {
        self.dir.clone()
    }
}

/// `cargo xtask engine up`: start (once), join a swarm, create the images.
pub(crate) fn up() -> anyhow::Result<Layout> {
    let layout = Layout::new();
    let socket_len = layout.socket().as_os_str().len();
    if socket_len > MAX_SOCKET_PATH {
        bail!(
            "the engine socket {} is {socket_len} bytes long, over the {MAX_SOCKET_PATH} a unix socket allows; \
             set DOCKHAND_ENGINE_DIR to a shorter directory",
            layout.socket().display()
        );
    }
    crate::tools::ensure_engine()?;
    let runtime = runtime()?;
    let client = Client::new(Endpoint::unix(layout.socket()))?;

    let missing = missing_peers(&layout);
    if missing.is_empty() && runtime.block_on(client.ping()).is_ok() {
        eprintln!("engine already up at {}", layout.url());
        return Ok(layout);
    }
    if !missing.is_empty() && layout.peers_file().exists() {
        eprintln!("the engine lacks {}: starting it all again", missing.join(", "));
    }
    // Whatever a crashed run left behind goes first: processes, mounts, state.
    teardown(&layout)?;
    // All or nothing: a failure stops whatever did start.
    if let Err(err) =
        start(&layout, &runtime, &client).and_then(|()| join_swarm_and_load(&layout, &runtime, &client))
    {
        eprintln!("engine up failed: stopping what it started");
        if let Err(down) = teardown(&layout) {
            eprintln!("and the stop failed too: {down:#}");
        }
        return Err(err);
    }
    eprintln!("engine up: {}", layout.url());
    Ok(layout)
}

/// The peers of a complete engine that are not running: each daemon is checked against
/// its pid file and command line, and the peers file must exist.
fn missing_peers(layout: &Layout) -> Vec<&'static str> {
    let mark = layout.dir().display().to_string();
    let ssh_pid = layout.dir().join("ssh").join("sshd.pid");
    let podman_pid = layout.dir().join("podman").join("podman.pid");
    [
        ("containerd", pid_of(&layout.containerd_pidfile(), &mark).is_some()),
        ("dockerd", running_pid(layout).is_some()),
        ("the TLS dockerd", pid_of(&layout.tls_pidfile(), &mark).is_some()),
        ("sshd", pid_of(&ssh_pid, &mark).is_some()),
        ("the Podman service", pid_of(&podman_pid, &mark).is_some()),
        ("the peers file", layout.peers_file().exists()),
        (
            "the S3 peer's binary",
            fs::read_to_string(layout.peers_file()).is_ok_and(|peers| {
                peers
                    .lines()
                    .filter_map(|l| l.strip_prefix("DOCKHAND_TEST_WEED="))
                    .any(|p| Path::new(p).is_file())
            }),
        ),
    ]
    .into_iter()
    .filter(|(_, up)| !up)
    .map(|(name, _)| name)
    .collect()
}

/// Joins a swarm of its own and creates the test images.
fn join_swarm_and_load(
    layout: &Layout,
    runtime: &tokio::runtime::Runtime,
    client: &Client,
) -> anyhow::Result<()> {
    let info = runtime.block_on(client.info())?;
    if !info.swarm.is_active() {
        // Free ports of our own, so a swarm the user runs (2377, VXLAN 4789) is not disturbed.
        let listen = format!("127.0.0.1:{}", free_port(1024..65535)?);
        let data_path_port = free_port(40000..49151)?.to_string();
        proc::output(
            layout
                .docker()?
                .args(["swarm", "init", "--advertise-addr", &listen, "--listen-addr", &listen])
                .args(["--data-path-port", &data_path_port]),
        )
        .context("cannot initialize the swarm")?;
        eprintln!("swarm initialized");
    }
    crate::images::ensure(layout, crate::images::Build::Test)?;
    Ok(())
}

/// `cargo xtask engine down`: stop everything and leave no process, mount or state behind.
pub(crate) fn down() -> anyhow::Result<()> {
    let layout = Layout::new();
    teardown(&layout)?;
    eprintln!("engine down: no process, mount or state left under {}", layout.dir().display());
    Ok(())
}

/// `cargo xtask engine status`.
pub(crate) fn status() -> anyhow::Result<()> {
    let layout = Layout::new();
    let Some(pid) = running_pid(&layout) else {
        bail!("the private engine is not running (start it with `cargo xtask engine up`)");
    };
    let runtime = runtime()?;
    let client = Client::new(Endpoint::unix(layout.socket()))?;
    let info = runtime.block_on(client.info())?;
    let api = runtime.block_on(client.api_version())?;
    println!("running:  dockerd pid {pid}");
    println!("host:     {}", layout.url());
    println!("version:  {} (API {api})", info.server_version);
    println!("swarm:    {}", info.swarm.local_node_state);
    Ok(())
}

/// A port in `range` that is free for both TCP and UDP on loopback right now, and not
/// handed out before by this process (nothing binds it until its daemon starts).
fn free_port(range: std::ops::Range<u16>) -> anyhow::Result<u16> {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().map_err(|_| anyhow::anyhow!("port list poisoned"))?;
    // Start at a point derived from our pid, so parallel checkouts do not race for one port.
    let span = range.end - range.start;
    let offset = (std::process::id() % u32::from(span)) as u16;
    let port = (0..span)
        .map(|i| range.start + (offset + i) % span)
        .find(|port| {
            !given.contains(port)
                && std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok()
                && std::net::UdpSocket::bind(("0.0.0.0", *port)).is_ok()
        })
        .with_context(|| format!("no free port in {range:?}"))?;
    given.push(port);
    Ok(port)
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

/// The pid of our `dockerd`, if it runs (checked against its command line, not just the
/// pid file, since pids are reused).
fn running_pid(layout: &Layout) -> Option<i32> {
    pid_of(&layout.pidfile(), &layout.url())
}

/// The pid in `pidfile`, if that process lives and its command line contains `mark`.
pub(crate) fn pid_of(pidfile: &Path, mark: &str) -> Option<i32> {
    let pid = proc::read_pid(pidfile)?;
    (proc::alive(pid) && proc::cmdline(pid).contains(mark)).then_some(pid)
}

fn start(layout: &Layout, runtime: &tokio::runtime::Runtime, client: &Client) -> anyhow::Result<()> {
    let dir = layout.dir();
    fs::create_dir_all(layout.containerd())?;
    fs::create_dir_all(layout.docker_config())?;

    // containerd, ours alone: its own socket, root, state and opt directories.
    let config = containerd_config(&layout.containerd(), &layout.containerd_socket())?;
    let containerd = spawn_daemon(
        Command::new(proc::which("containerd").context("containerd is not installed")?)
            .arg("--config")
            .arg(&config),
        &layout.containerd_log(),
    )?;
    fs::write(layout.containerd_pidfile(), containerd.to_string())?;
    wait_for(READY_TIMEOUT, || {
        if !proc::alive(containerd) {
            bail!("containerd exited at start\n{}", tail(&layout.containerd_log()));
        }
        Ok(layout.containerd_socket().exists())
    })
    .with_context(|| format!("containerd did not start\n{}", tail(&layout.containerd_log())))?;

    // dockerd, with its own config file so /etc/docker/daemon.json is never read, and no
    // bridge or iptables rules that could clash with an engine already on this machine.
    let daemon_json = dir.join("daemon.json");
    fs::write(&daemon_json, "{}\n")?;
    // The same engine also answers plain TCP on loopback, for the tcp transport's tests.
    let tcp_url = format!("tcp://127.0.0.1:{}", free_port(1024..65535)?);
    let dockerd = spawn_daemon(
        Command::new(proc::which("dockerd").context("dockerd is not installed")?)
            .arg("--host")
            .arg(layout.url())
            .arg("--host")
            .arg(&tcp_url)
            .arg("--containerd")
            .arg(layout.containerd_socket())
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(layout.pidfile())
            .arg("--config-file")
            .arg(&daemon_json)
            .args(["--bridge=none", "--iptables=false"]),
        &layout.log(),
    )?;
    let started = Instant::now();
    wait_for(READY_TIMEOUT, || {
        if !proc::alive(dockerd) {
            bail!("dockerd exited at start");
        }
        Ok(runtime.block_on(client.ping()).is_ok())
    })
    .with_context(|| format!("the private engine did not start\n{}", tail(&layout.log())))?;
    eprintln!("dockerd pid {dockerd} ready in {:.1}s", started.elapsed().as_secs_f64());

    let tls_url = start_tls_peer(layout, runtime, &daemon_json)?;
    let ssh = start_ssh_peer(layout)?;
    let podman = start_podman_peer(layout, runtime)?;
    let (rootless_user, rootless_runtime) = prepare_rootless_user()?;
    // The S3 peer is a binary each test starts on ports of its own; here it is only fetched.
    let weed = crate::tools::ensure_weed()?;
    fs::write(
        layout.peers_file(),
        format!(
            "DOCKHAND_TEST_HOST={}\nDOCKHAND_TEST_TCP_HOST={tcp_url}\nDOCKHAND_TEST_TLS_HOST={tls_url}\n\
             DOCKHAND_TEST_TLS_DIR={}\nDOCKHAND_TEST_SSH_HOST={}\nDOCKHAND_TEST_SSH_NODOCKER_HOST={}\n\
             DOCKHAND_TEST_SSH_CONFIG={}\nDOCKHAND_TEST_PODMAN_HOST={podman}\n\
             DOCKHAND_TEST_PODMAN_CONTAINER={PODMAN_CONTAINER}\nDOCKHAND_TEST_ROOTLESS_USER={rootless_user}\n\
             DOCKHAND_TEST_ROOTLESS_RUNTIME_DIR={}\nDOCKHAND_TEST_WEED={}\n",
            layout.url(),
            layout.tls_dir().display(),
            ssh.url,
            ssh.nodocker_url,
            ssh.config.display(),
            rootless_runtime.display(),
            weed.display(),
        ),
    )?;
    Ok(())
}

/// Writes a containerd config under `dir` with its own root, state, opt directory and
/// `socket`, the CRI plugin off; returns its path.
pub(crate) fn containerd_config(dir: &Path, socket: &Path) -> anyhow::Result<PathBuf> {
    fs::create_dir_all(dir)?;
    let config = dir.join("config.toml");
    fs::write(
        &config,
        format!(
            "version = 2\nroot = {root:?}\nstate = {state:?}\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = {sock:?}\n[ttrpc]\n  address = \"{sock}.ttrpc\"\n\
             [plugins.\"io.containerd.internal.v1.opt\"]\n  path = {opt:?}\n",
            root = dir.join("root").display().to_string(),
            state = dir.join("state").display().to_string(),
            sock = socket.display().to_string(),
            opt = dir.join("opt").display().to_string(),
        ),
    )?;
    Ok(config)
}

/// The unprivileged user the rootless managed-host tests run as.
const ROOTLESS_USER: &str = "dockhand-rootless";

/// Prepares what a rootless engine needs, as the notes say: an ordinary user with sub-ids
/// (`useradd -m` writes them), its runtime directory, and `/dev/net/tun` open to it (root-only
/// on these machines). Returns the user and its `XDG_RUNTIME_DIR`.
fn prepare_rootless_user() -> anyhow::Result<(String, PathBuf)> {
    if !rustix::process::geteuid().is_root() {
        bail!("the rootless tests need root to prepare their user: run `cargo xtask engine up` as root");
    }
    let exists =
        Command::new("id").arg(ROOTLESS_USER).stdout(Stdio::null()).stderr(Stdio::null()).status()?.success();
    if !exists {
        proc::output(Command::new("useradd").args(["--create-home", "--shell", "/bin/sh", ROOTLESS_USER]))?;
    }
    let uid = proc::output(Command::new("id").args(["-u", ROOTLESS_USER]))?.trim().to_owned();
    let runtime = PathBuf::from(format!("/run/user/{uid}"));
    fs::create_dir_all(&runtime)?;
    proc::output(Command::new("chown").arg(format!("{ROOTLESS_USER}:")).arg(&runtime))?;
    proc::output(Command::new("chmod").arg("700").arg(&runtime))?;
    proc::output(Command::new("chmod").args(["666", "/dev/net/tun"]))?;
    Ok((ROOTLESS_USER.to_owned(), runtime))
}

/// The container the Podman peer runs for exec tests.
const PODMAN_CONTAINER: &str = "dockhand-podman-test";

/// Podman's Docker-compatible API (`podman system service`) with storage, run and tmp
/// directories of its own, and one running container. Returns its URL.
fn start_podman_peer(layout: &Layout, runtime: &tokio::runtime::Runtime) -> anyhow::Result<String> {
    let dir = layout.dir().join("podman");
    fs::create_dir_all(&dir)?;
    let exe = proc::which("podman").context("podman is not installed")?;
    let oci_runtime = podman_runtime(&fs::read_to_string("/proc/self/mounts")?)?;
    let podman = || {
        let mut cmd = Command::new(&exe);
        cmd.arg("--root")
            .arg(dir.join("storage"))
            .arg("--runroot")
            .arg(dir.join("run"))
            .arg("--tmpdir")
            .arg(dir.join("tmp"))
            .args(["--events-backend=file", "--cgroup-manager=cgroupfs", "--log-level=error"]);
        if let Some(runtime) = &oci_runtime {
            cmd.arg("--runtime").arg(runtime);
        }
        cmd
    };
    let socket = dir.join("podman.sock");
    let url = format!("unix://{}", socket.display());
    let pid =
        spawn_daemon(podman().args(["system", "service", "--time=0"]).arg(&url), &dir.join("podman.log"))?;
    let client = Client::new(Endpoint::unix(&socket))?;
    wait_for(READY_TIMEOUT, || {
        if !proc::alive(pid) {
            bail!("podman system service exited at start");
        }
        Ok(runtime.block_on(client.ping()).is_ok())
    })
    .with_context(|| format!("the Podman test peer did not start\n{}", tail(&dir.join("podman.log"))))?;
    fs::write(dir.join("podman.pid"), pid.to_string())?;
    let rootfs = crate::images::busybox_rootfs(layout)?;
    let mut import = podman();
    import.args(["import", "-", "dockhand/busybox:test"]);
    crate::images::import_with(import, &rootfs, "dockhand/busybox:test (podman)")?;
    // The sandbox's hard NOFILE limit is below Podman's default: ask for less.
    proc::output(podman().args(["run", "-d", "--name", PODMAN_CONTAINER, "--network", "none"]).args([
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
        "dockhand/busybox:test",
        "sleep",
        "100000000",
    ]))
    .context("cannot start the Podman test container")?;
    eprintln!("podman pid {pid} ready at {url}");
    Ok(url)
}

/// The OCI runtime Podman must use on this host, or `None` for its default (crun).
///
/// crun refuses every container on a *hybrid* cgroup host, one whose cgroup v2 hierarchy
/// holds a controller (such as `hugetlb`) while the others are mounted as v1: "cgroups in
/// hybrid mode not supported". runc, which docker.io installs, works there.
fn podman_runtime(mounts: &str) -> anyhow::Result<Option<PathBuf>> {
    if !cgroup_hybrid(mounts, |dir| fs::read_to_string(dir.join("cgroup.controllers")).ok()) {
        return Ok(None);
    }
    let runc = proc::which("runc").context(
        "this host mixes cgroup v1 and v2, where Podman needs runc: it is not installed (Debian: runc)",
    )?;
    eprintln!("cgroups: hybrid v1/v2 host, the Podman peer uses {}", runc.display());
    Ok(Some(runc))
}

/// True when `mounts` (the text of `/proc/self/mounts`) has v1 cgroup hierarchies beside a
/// cgroup2 one whose `cgroup.controllers`, as `controllers` reads it, names a controller.
fn cgroup_hybrid(mounts: &str, controllers: impl Fn(&Path) -> Option<String>) -> bool {
    let mut v1 = false;
    let mut v2_with_controllers = false;
    for line in mounts.lines() {
        let mut fields = line.split_whitespace();
        let (Some(_), Some(dir), Some(kind)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        match kind {
            "cgroup" => v1 = true,
            "cgroup2" => {
                let dir = Path::new(&dockhand_host::procfs::unescape_mount_path(dir)).to_owned();
                v2_with_controllers |= controllers(&dir).is_some_and(|c| !c.trim().is_empty());
            }
            _ => {}
        }
    }
    v1 && v2_with_controllers
}

/// The ssh peer, as the tests reach it.
struct SshPeer {
    /// `ssh://USER@127.0.0.1:PORT`: a remote with the docker CLI.
    url: String,
    /// The same sshd on another port, where `docker` is not on the PATH: the transport
    /// must fall back to forwarding the socket.
    nodocker_url: String,
    /// An ssh client config with the test key and a known_hosts file holding the host key.
    config: PathBuf,
}

/// A real sshd on loopback with keys made now, logging in as the current user by key only.
fn start_ssh_peer(layout: &Layout) -> anyhow::Result<SshPeer> {
    let dir = layout.dir().join("ssh");
    fs::create_dir_all(&dir)?;
    let keygen = proc::which("ssh-keygen").context("ssh-keygen is not installed (Debian: openssh-client)")?;
    for (file, comment) in [("host_key", "dockhand-test-host"), ("id_ed25519", "dockhand-test-client")] {
        proc::output(
            Command::new(&keygen)
                .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
                .arg(dir.join(file)),
        )?;
    }
    fs::copy(dir.join("id_ed25519.pub"), dir.join("authorized_keys"))?;
    let (port, nodocker_port) = (free_port(1024..65535)?, free_port(1024..65535)?);
    let host_key = fs::read_to_string(dir.join("host_key.pub"))?;
    let host_key = host_key.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    fs::write(
        dir.join("known_hosts"),
        format!("[127.0.0.1]:{port},[127.0.0.1]:{nodocker_port} {host_key}\n"),
    )?;
    let d = dir.display();
    let config = dir.join("sshd_config");
    fs::write(
        &config,
        format!(
            "ListenAddress 127.0.0.1:{port}\nListenAddress 127.0.0.1:{nodocker_port}\nHostKey {d}/host_key\n\
             PidFile {d}/sshd.pid\nAuthorizedKeysFile {d}/authorized_keys\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\n\
             MaxSessions 10\nAllowStreamLocalForwarding yes\n\
             Match LocalPort {nodocker_port}\n    SetEnv PATH=/nonexistent\n"
        ),
    )?;
    let client_config = dir.join("ssh_config");
    fs::write(
        &client_config,
        format!(
            "Host *\n    IdentityFile {d}/id_ed25519\n    IdentitiesOnly yes\n    UserKnownHostsFile {d}/known_hosts\n    \
             StrictHostKeyChecking yes\n    BatchMode yes\n"
        ),
    )?;
    // sshd's privilege separation directory.
    fs::create_dir_all("/run/sshd")?;
    let sshd = proc::which("sshd").context("sshd is not installed (Debian: openssh-server)")?;
    let pid = spawn_daemon(Command::new(sshd).args(["-D", "-e", "-f"]).arg(&config), &dir.join("sshd.log"))?;
    wait_for(READY_TIMEOUT, || {
        if !proc::alive(pid) {
            bail!("sshd exited at start");
        }
        Ok(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok())
    })
    .with_context(|| format!("the ssh test peer did not start\n{}", tail(&dir.join("sshd.log"))))?;
    let user = if rustix::process::geteuid().is_root() {
        "root".to_owned()
    } else {
        std::env::var("USER").context("USER is not set: the ssh peer logs in as the current user")?
    };
    eprintln!("sshd pid {pid} ready on 127.0.0.1:{port} and :{nodocker_port}");
    Ok(SshPeer {
        url: format!("ssh://{user}@127.0.0.1:{port}"),
        nodocker_url: format!("ssh://{user}@127.0.0.1:{nodocker_port}"),
        config: client_config,
    })
}

/// A second dockerd that listens only on TCP with `--tlsverify`, using certificates made
/// now. It shares our containerd under namespaces of its own; it is not in the swarm.
fn start_tls_peer(
    layout: &Layout,
    runtime: &tokio::runtime::Runtime,
    daemon_json: &Path,
) -> anyhow::Result<String> {
    let dir = layout.dir();
    let tls = layout.tls_dir();
    dockhand_e2e::pki::TestCa::new("dockhand test CA").write_set(&tls)?;
    let url = format!("tcp://127.0.0.1:{}", free_port(1024..65535)?);
    let pid = spawn_daemon(
        Command::new(proc::which("dockerd").context("dockerd is not installed")?)
            .arg("--host")
            .arg(&url)
            .arg("--tlsverify")
            .arg("--tlscacert")
            .arg(tls.join("ca.pem"))
            .arg("--tlscert")
            .arg(tls.join("server-cert.pem"))
            .arg("--tlskey")
            .arg(tls.join("server-key.pem"))
            .arg("--containerd")
            .arg(layout.containerd_socket())
            .args([
                "--containerd-namespace",
                "dockhand-tls",
                "--containerd-plugins-namespace",
                "dockhand-tls-plugins",
            ])
            .arg("--data-root")
            .arg(dir.join("tls-data"))
            .arg("--exec-root")
            .arg(dir.join("tls-exec"))
            .arg("--pidfile")
            .arg(layout.tls_pidfile())
            .arg("--config-file")
            .arg(daemon_json)
            .args(["--bridge=none", "--iptables=false"]),
        &layout.tls_log(),
    )?;
    let settings = TlsSettings::verified(tls.join("ca.pem"))
        .with_client_identity(tls.join("cert.pem"), tls.join("key.pem"));
    let client = Client::builder(url.parse()?).tls(settings).build()?;
    wait_for(READY_TIMEOUT, || {
        if !proc::alive(pid) {
            bail!("the TLS dockerd exited at start");
        }
        Ok(runtime.block_on(client.ping()).is_ok())
    })
    .with_context(|| format!("the TLS test engine did not start\n{}", tail(&layout.tls_log())))?;
    eprintln!("TLS dockerd pid {pid} ready at {url}");
    Ok(url)
}

/// Starts a daemon detached from us: own process group, stdin closed, output to `log`.
pub(crate) fn spawn_daemon(cmd: &mut Command, log: &Path) -> anyhow::Result<i32> {
    let out = fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    let err = out.try_clone()?;
    let child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start {:?}", cmd.get_program()))?;
    Ok(child.id() as i32)
}

pub(crate) fn wait_for(
    timeout: Duration,
    mut ready: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if ready()? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("timed out after {}s", timeout.as_secs());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Stops our daemons gracefully, then kills and unmounts whatever is left, then removes
/// the state, and checks that nothing remains.
fn teardown(layout: &Layout) -> anyhow::Result<()> {
    let dir = layout.dir();
    let mark = dir.display().to_string();
    for pid in [running_pid(layout), pid_of(&layout.tls_pidfile(), &mark)].into_iter().flatten() {
        stop(pid, STOP_GRACE);
    }
    if let Some(pid) = pid_of(&layout.containerd_pidfile(), &mark) {
        stop(pid, Duration::from_secs(20));
    }
    // A rootless engine a failed test left runs as the test user and names its own
    // directories: everything that user runs is ours to stop.
    if let Ok(uid) = proc::output(Command::new("id").args(["-u", ROOTLESS_USER])) {
        if let Ok(uid) = uid.trim().parse::<u32>() {
            for pid in proc::processes_of(uid) {
                proc::signal(pid, Signal::KILL);
                proc::wait_gone(pid, Duration::from_secs(5));
            }
        }
    }
    for pid in proc::processes_mentioning(&mark, &ENGINE_PROCESSES) {
        proc::signal(pid, Signal::KILL);
        proc::wait_gone(pid, Duration::from_secs(5));
    }
    for mount in proc::mounts_below(dir) {
        rustix::mount::unmount(&mount, rustix::mount::UnmountFlags::DETACH)
            .with_context(|| format!("cannot unmount {}", mount.display()))?;
    }
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("cannot remove {}", dir.display()))?;
    }
    let left = proc::processes_mentioning(&mark, &ENGINE_PROCESSES);
    if !left.is_empty() {
        bail!("processes survived the engine's stop: {left:?}");
    }
    let mounts = proc::mounts_below(dir);
    if !mounts.is_empty() {
        bail!("mounts survived the engine's stop: {mounts:?}");
    }
    Ok(())
}

/// SIGTERM, a grace period, then SIGKILL. Only the daemon itself is signalled: its
/// children are its to stop, and the sweep catches what it could not.
pub(crate) fn stop(pid: i32, grace: Duration) {
    proc::signal(pid, Signal::TERM);
    if !proc::wait_gone(pid, grace) {
        eprintln!("pid {pid} did not stop in {}s: killing it", grace.as_secs());
        proc::signal(pid, Signal::KILL);
        proc::wait_gone(pid, Duration::from_secs(5));
    }
}

/// The last lines of a log, for error messages.
pub(crate) fn tail(log: &Path) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(30);
    format!("last lines of {}:\n{}", log.display(), lines[start..].join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "tmpfs /sys/fs/cgroup tmpfs rw 0 0\n\
        cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0\n\
        cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n";
    const UNIFIED: &str = "cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n";
    const LEGACY_WITH_EMPTY_V2: &str = "cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n\
        cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n";

    fn controllers(present: &'static str) -> impl Fn(&Path) -> Option<String> {
        move |_| Some(present.to_owned())
    }

    #[test]
    fn a_v2_controller_beside_v1_hierarchies_is_hybrid() {
        assert!(cgroup_hybrid(HYBRID, controllers("hugetlb\n")));
    }

    #[test]
    fn pure_v2_and_plain_legacy_hosts_are_not_hybrid() {
        assert!(!cgroup_hybrid(UNIFIED, controllers("cpu memory pids\n")));
        assert!(!cgroup_hybrid(LEGACY_WITH_EMPTY_V2, controllers("\n")));
        assert!(!cgroup_hybrid(LEGACY_WITH_EMPTY_V2, |_| None));
    }

    #[test]
    fn this_host_is_classified_without_error() {
        let mounts = fs::read_to_string("/proc/self/mounts").expect("/proc/self/mounts");
        // Either answer is right for some host; the classification must agree with the
        // mount table read by hand.
        let v1 = mounts.lines().any(|l| l.split_whitespace().nth(2) == Some("cgroup"));
        let hybrid = cgroup_hybrid(&mounts, |d| fs::read_to_string(d.join("cgroup.controllers")).ok());
        assert!(!hybrid || v1, "a host without v1 hierarchies was called hybrid");
    }
}
