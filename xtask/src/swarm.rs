//! The test swarm of several nodes: `cargo xtask swarm up [--nodes N] | down | env`.
//!
//! Each node is a real `dockerd` with its own `containerd`, in network, mount and UTS
//! namespaces of its own, so that every node has its own `/var/run/docker.sock` (what a
//! helper container mounts), its own hostname and its own address. The nodes' network
//! namespaces hang off a bridge in a namespace of its own; traffic goes only between them
//! and the test run's own host, which joins the bridge as `.254` (an operator's machine on
//! the swarm's network: dockhand-server in a test asks the test registry directly).
//! Everything lives under `target/dh-swarm/` (or `$DOCKHAND_SWARM_DIR`); the namespaces are
//! named `dhs-*`. The test images are imported into every node. `swarm.env` names the nodes
//! for the test harness.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use dockhand_engine::{Client, Endpoint};
use rustix::process::Signal;

use crate::engine::{containerd_config, pid_of, runtime, spawn_daemon, stop, tail, wait_for};
use crate::proc;

/// How long a node's engine may take to answer its first ping.
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// The namespace that holds the bridge between the nodes.
const BRIDGE_NS: &str = "dhs-br";
/// The nodes' subnet; node `i` is `.i`. A documentation range (RFC 5737), never routed:
/// it exists only inside our namespaces.
const SUBNET: &str = "198.51.100";
/// The host's end of its link to the bridge.
const HOST_LINK: &str = "dhs-host";

/// Where the swarm keeps everything.
pub(crate) struct Swarm {
    dir: PathBuf,
}

/// One node of the swarm.
pub(crate) struct Node {
    index: usize,
    dir: PathBuf,
}

impl Node {
    fn name(&self) -> String {
        format!("node{}", self.index)
    }

    fn netns(&self) -> String {
        format!("dhs-n{}", self.index)
    }

    fn address(&self) -> String {
        format!("{SUBNET}.{}", self.index)
    }

    /// The socket the test run reaches this node's engine on.
    fn socket(&self) -> PathBuf {
        self.dir.join("docker.sock")
    }

    fn url(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    fn pidfile(&self) -> PathBuf {
        self.dir.join("docker.pid")
    }

    fn log(&self) -> PathBuf {
        self.dir.join("dockerd.log")
    }
}

impl crate::images::ImageHost for Node {
    fn docker(&self) -> anyhow::Result<Command> {
        crate::engine::docker_cli(&self.url(), &self.dir.join("docker-config"))
    }

    fn scratch(&self) -> PathBuf {
        self.dir.clone()
    }
}

impl Swarm {
    pub(crate) fn new() -> Self {
        let dir = std::env::var_os("DOCKHAND_SWARM_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| crate::project_root().join("target").join("dh-swarm"));
        Self { dir }
    }

    fn node(&self, index: usize) -> Node {
        Node { index, dir: self.dir.join(format!("n{index}")) }
    }

    /// The nodes a running swarm has, from its env file.
    fn nodes(&self) -> Vec<Node> {
        let count = fs::read_to_string(self.env_file())
            .ok()
            .and_then(|text| {
                text.lines().find_map(|l| l.strip_prefix("export DOCKHAND_TEST_NODES=")?.trim().parse().ok())
            })
            .unwrap_or(0);
        (1..=count).map(|i| self.node(i)).collect()
    }

    fn env_file(&self) -> PathBuf {
        self.dir.join("swarm.env")
    }
}

/// `cargo xtask swarm up`: the swarm of `nodes` nodes, started once, with the test images
/// on every node. All or nothing: a failure stops what was started.
pub(crate) fn up(nodes: usize) -> anyhow::Result<()> {
    if !(2..=9).contains(&nodes) {
        bail!("--nodes must be 2 to 9, not {nodes}");
    }
    crate::tools::ensure_engine()?;
    crate::tools::ensure_swarm()?;
    let swarm = Swarm::new();
    let runtime = runtime()?;
    let existing = swarm.nodes();
    let registry_alive =
        pid_of(&swarm.dir.join("registry").join("registry.pid"), &swarm.dir.display().to_string()).is_some();
    if existing.len() == nodes && registry_alive && existing.iter().all(|n| node_answers(n, &runtime)) {
        // Tests may prune a node's images (clean-node), and a new dockhand:dev replaces the
        // image the pinned reference named: put back what is missing.
        for node in &existing {
            crate::images::ensure(node, crate::images::Build::Test)
                .with_context(|| format!("cannot put the test images on {}", node.name()))?;
        }
        let pinned = settings()?
            .get("DOCKHAND_TEST_PINNED_HELPER")
            .cloned()
            .context("swarm.env names no DOCKHAND_TEST_PINNED_HELPER")?;
        pull_pinned(&swarm, &existing, &pinned)?;
        join_host()?;
        eprintln!("swarm already up: {nodes} nodes, manager {}", existing[0].url());
        return Ok(());
    }
    down_quietly(&swarm)?;
    if let Err(err) = start(&swarm, nodes, &runtime) {
        eprintln!("swarm up failed: stopping what it started");
        if let Err(down) = down_quietly(&swarm) {
            eprintln!("and the stop failed too: {down:#}");
        }
        return Err(err);
    }
    print!("{}", fs::read_to_string(swarm.env_file())?);
    Ok(())
}

/// `cargo xtask swarm down`: stops every node, removes the namespaces, mounts and state, and
/// checks that nothing is left.
pub(crate) fn down() -> anyhow::Result<()> {
    let swarm = Swarm::new();
    down_quietly(&swarm)?;
    eprintln!("swarm down: no process, namespace, mount or state left under {}", swarm.dir.display());
    Ok(())
}

/// The settings of the running swarm (`swarm.env`), by variable name.
pub(crate) fn settings() -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    let swarm = Swarm::new();
    let text = fs::read_to_string(swarm.env_file())
        .with_context(|| "the test swarm is not up (start it with `cargo xtask swarm up`)".to_owned())?;
    Ok(text
        .lines()
        .filter_map(|l| l.strip_prefix("export ")?.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect())
}

/// `cargo xtask swarm env`: the `export` lines of a running swarm.
pub(crate) fn env() -> anyhow::Result<()> {
    let swarm = Swarm::new();
    let text = fs::read_to_string(swarm.env_file())
        .with_context(|| "the test swarm is not up (start it with `cargo xtask swarm up`)".to_owned())?;
    print!("{text}");
    Ok(())
}

fn node_answers(node: &Node, runtime: &tokio::runtime::Runtime) -> bool {
    pid_of(&node.pidfile(), &node.dir.display().to_string()).is_some()
        && Client::new(Endpoint::unix(node.socket())).is_ok_and(|c| runtime.block_on(c.ping()).is_ok())
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    proc::output(
        Command::new(proc::which("ip").context("ip is not installed (Debian: iproute2)")?).args(args),
    )
    .map(|_| ())
}

/// The host's link to the bridge: `dhs-host` here, `ph` on the bridge, the host at
/// `.254`. Deleting the bridge's namespace deletes both ends. Made when missing (a swarm
/// started before the link existed gets it too).
fn join_host() -> anyhow::Result<()> {
    let ip_path = proc::which("ip").context("ip is not installed (Debian: iproute2)")?;
    let present =
        Command::new(&ip_path).args(["link", "show", HOST_LINK]).output().is_ok_and(|o| o.status.success());
    if present {
        return Ok(());
    }
    ip(&["link", "add", HOST_LINK, "type", "veth", "peer", "name", "ph", "netns", BRIDGE_NS])?;
    ip(&["-n", BRIDGE_NS, "link", "set", "ph", "master", "br0"])?;
    ip(&["-n", BRIDGE_NS, "link", "set", "ph", "up"])?;
    ip(&["addr", "add", &format!("{SUBNET}.254/24"), "dev", HOST_LINK])?;
    ip(&["link", "set", HOST_LINK, "up"])
}

fn start(swarm: &Swarm, count: usize, runtime: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    fs::create_dir_all(&swarm.dir)?;
    let nodes: Vec<Node> = (1..=count).map(|i| swarm.node(i)).collect();
    // The network: a bridge in a namespace of its own, one veth pair per node.
    ip(&["netns", "add", BRIDGE_NS])?;
    ip(&["-n", BRIDGE_NS, "link", "add", "br0", "type", "bridge"])?;
    ip(&["-n", BRIDGE_NS, "link", "set", "br0", "up"])?;
    for node in &nodes {
        let (ns, veth, port) = (node.netns(), format!("dhs-v{}", node.index), format!("p{}", node.index));
        ip(&["netns", "add", &ns])?;
        ip(&["link", "add", &veth, "netns", &ns, "type", "veth", "peer", "name", &port, "netns", BRIDGE_NS])?;
        ip(&["-n", BRIDGE_NS, "link", "set", &port, "master", "br0"])?;
        ip(&["-n", BRIDGE_NS, "link", "set", &port, "up"])?;
        ip(&["-n", &ns, "addr", "add", &format!("{}/24", node.address()), "dev", &veth])?;
        ip(&["-n", &ns, "link", "set", &veth, "up"])?;
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
    }
    join_host()?;
    for node in &nodes {
        start_node(node)?;
    }
    for node in &nodes {
        let client = Client::new(Endpoint::unix(node.socket()))?;
        wait_for(READY_TIMEOUT, || Ok(runtime.block_on(client.ping()).is_ok()))
            .with_context(|| format!("{} did not start\n{}", node.name(), tail(&node.log())))?;
    }
    eprintln!("{count} node engines ready");
    // The swarm: node1 is the manager, the others join as workers.
    let manager = &nodes[0];
    let docker = |node: &Node| crate::images::ImageHost::docker(node);
    let listen = format!("{}:2377", manager.address());
    proc::output(
        docker(manager)?
            .args(["swarm", "init", "--advertise-addr", &manager.address()])
            .args(["--listen-addr", &listen]),
    )
    .context("cannot initialize the swarm")?;
    let token = proc::output(docker(manager)?.args(["swarm", "join-token", "-q", "worker"]))?;
    for node in &nodes[1..] {
        let own = format!("{}:2377", node.address());
        proc::output(docker(node)?.args(["swarm", "join", "--token", token.trim()]).args([
            "--advertise-addr",
            &node.address(),
            "--listen-addr",
            &own,
            &listen,
        ]))
        .with_context(|| format!("{} cannot join the swarm", node.name()))?;
    }
    let client = Client::new(Endpoint::unix(manager.socket()))?;
    wait_for(READY_TIMEOUT, || {
        let listed = runtime.block_on(client.nodes(&dockhand_engine::Filters::new()))?;
        Ok(listed.len() == count && listed.iter().all(|n| n.status.state == "ready"))
    })
    .context("the nodes did not all become ready in the swarm")?;
    eprintln!("swarm of {count} nodes formed, manager {}", manager.name());
    for node in &nodes {
        crate::images::ensure(node, crate::images::Build::Test)
            .with_context(|| format!("cannot put the test images on {}", node.name()))?;
    }
    let password = start_registry(swarm, manager)?;
    let pinned = pin_helper_image(swarm, &nodes)?;
    let mut env = format!(
        "export DOCKER_HOST={}\nexport DOCKHAND_TEST_NODES={count}\nexport DOCKHAND_TEST_PINNED_HELPER={pinned}\n",
        manager.url()
    );
    for node in &nodes {
        env.push_str(&format!("export DOCKHAND_TEST_NODE_{}={}\n", node.index, node.url()));
    }
    env.push_str(&format!(
        "export DOCKHAND_TEST_REGISTRY={}\nexport DOCKHAND_TEST_REGISTRY_USER={REGISTRY_USER}\n\
         export DOCKHAND_TEST_REGISTRY_PASSWORD={password}\n",
        registry_address()
    ));
    fs::write(swarm.env_file(), env)?;
    Ok(())
}

/// The test registry's user.
const REGISTRY_USER: &str = "ciuser";
/// The test registry's port, on the manager's address.
const REGISTRY_PORT: u16 = 5000;
/// The images pushed to it: `team/app:v1` and `v2` (good; they differ by one file) and
/// `broken` (its command exits 1 at once).
const REGISTRY_IMAGES: [(&str, &str); 3] = [
    ("v1", "trap 'exit 0' TERM; while true; do sleep 1; done"),
    ("v2", "trap 'exit 0' TERM; while true; do sleep 1; done"),
    ("broken", "echo 'cannot start: the broken image exits at once' >&2; exit 1"),
];

fn registry_address() -> String {
    format!("{SUBNET}.1:{REGISTRY_PORT}")
}

/// Starts Debian's `docker-registry` with htpasswd authentication (a fresh random password)
/// inside the manager's network namespace, reachable by every node, and pushes the test
/// images to it through the manager's engine. The password it returns goes to `swarm.env`.
fn start_registry(swarm: &Swarm, manager: &Node) -> anyhow::Result<String> {
    let dir = swarm.dir.join("registry");
    fs::create_dir_all(dir.join("data"))?;
    let mut random = [0u8; 12];
    fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut random))?;
    let password: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let htpasswd = proc::which("htpasswd").context("htpasswd is not installed (Debian: apache2-utils)")?;
    let hashed = proc::output(Command::new(htpasswd).args(["-Bbn", REGISTRY_USER, &password]))?;
    fs::write(dir.join("htpasswd"), hashed.trim())?;
    let config = dir.join("config.yml");
    fs::write(
        &config,
        format!(
            "version: 0.1\nlog: {{ level: warn }}\nstorage: {{ filesystem: {{ rootdirectory: {} }} }}\n\
             http: {{ addr: \"{}\" }}\nauth: {{ htpasswd: {{ realm: dockhand-test, path: {} }} }}\n",
            dir.join("data").display(),
            registry_address(),
            dir.join("htpasswd").display()
        ),
    )?;
    let registry = proc::which("docker-registry")
        .context("docker-registry is not installed (Debian: docker-registry)")?;
    let nsenter = proc::which("nsenter").context("nsenter is not installed (Debian: util-linux)")?;
    let mut cmd = Command::new(nsenter);
    cmd.arg(format!("--net=/run/netns/{}", manager.netns())).arg(registry).arg("serve").arg(&config);
    let pid = spawn_daemon(&mut cmd, &dir.join("registry.log"))?;
    fs::write(dir.join("registry.pid"), pid.to_string())?;
    // Log in and push through the manager's engine, which reaches the registry from the
    // nodes' network: a CLI configuration of the setup's own.
    let docker = |args: &[&str]| -> anyhow::Result<Command> {
        let mut cmd = crate::images::ImageHost::docker(manager)?;
        cmd.env("DOCKER_CONFIG", dir.join("docker-config")).args(args);
        Ok(cmd)
    };
    let address = registry_address();
    wait_for(READY_TIMEOUT, || {
        let mut login = docker(&["login", &address, "-u", REGISTRY_USER, "--password-stdin"])?;
        Ok(proc::output_with_stdin(&mut login, password.as_bytes()).is_ok())
    })
    .with_context(|| format!("the test registry did not answer\n{}", tail(&dir.join("registry.log"))))?;
    for (tag, script) in REGISTRY_IMAGES {
        let image = format!("{address}/team/app:{tag}");
        let change = format!("CMD [\"sh\", \"-c\", {}]", serde_json::to_string(script)?);
        crate::images::version_image(|| docker(&[]), tag, &image, Some(&change))?;
        proc::output(&mut docker(&["push", &image])?).with_context(|| format!("cannot push {image}"))?;
        proc::output(&mut docker(&["image", "rm", &image])?)?;
    }
    eprintln!("test registry at {address} (user {REGISTRY_USER}) holds team/app:v1, v2 and broken");
    Ok(password)
}

/// dockhand's test image pushed to the test registry and pulled by digest on every node, so
/// that a service can run it pinned (`<registry>/dockhand/dockhand@sha256:…`) the way an
/// operator deploys it, and its helpers run it by that digest (R3-04). Returns the pinned
/// reference.
fn pin_helper_image(swarm: &Swarm, nodes: &[Node]) -> anyhow::Result<String> {
    let config = swarm.dir.join("registry").join("docker-config");
    let docker = |node: &Node, args: &[&str]| -> anyhow::Result<Command> {
        let mut cmd = crate::images::ImageHost::docker(node)?;
        cmd.env("DOCKER_CONFIG", &config).args(args);
        Ok(cmd)
    };
    let manager = nodes.first().context("a swarm has a manager")?;
    let tagged = format!("{}/dockhand/dockhand:dev", registry_address());
    proc::output(&mut docker(manager, &["tag", crate::images::DOCKHAND_IMAGE, &tagged])?)?;
    proc::output(&mut docker(manager, &["push", &tagged])?)
        .with_context(|| format!("cannot push {tagged}"))?;
    let pinned = proc::output(&mut docker(
        manager,
        &["image", "inspect", "--format", "{{index .RepoDigests 0}}", &tagged],
    )?)?
    .trim()
    .to_owned();
    pull_pinned(swarm, nodes, &pinned)?;
    eprintln!("dockhand's test image pinned as {pinned} on every node");
    Ok(pinned)
}

/// Pulls the pinned helper image on every node that lacks it.
fn pull_pinned(swarm: &Swarm, nodes: &[Node], pinned: &str) -> anyhow::Result<()> {
    let config = swarm.dir.join("registry").join("docker-config");
    for node in nodes {
        let mut docker = crate::images::ImageHost::docker(node)?;
        docker.env("DOCKER_CONFIG", &config);
        if proc::output(docker.args(["image", "inspect", "--format", "{{.Id}}", pinned])).is_ok() {
            continue;
        }
        let mut docker = crate::images::ImageHost::docker(node)?;
        docker.env("DOCKER_CONFIG", &config);
        proc::output(docker.args(["pull", pinned]))
            .with_context(|| format!("cannot pull {pinned} on {}", node.name()))?;
    }
    Ok(())
}

/// Starts one node's containerd and dockerd inside its namespaces.
fn start_node(node: &Node) -> anyhow::Result<()> {
    for sub in ["run", "data", "exec", "docker-config"] {
        fs::create_dir_all(node.dir.join(sub))?;
    }
    let containerd_socket = node.dir.join("containerd").join("containerd.sock");
    let config = containerd_config(&node.dir.join("containerd"), &containerd_socket)?;
    let daemon_json = node.dir.join("daemon.json");
    // The test registry is plain HTTP on the manager's address.
    fs::write(&daemon_json, format!("{{\"insecure-registries\": [\"{}\"]}}\n", registry_address()))?;
    let containerd = proc::which("containerd").context("containerd is not installed")?;
    let dockerd = proc::which("dockerd").context("dockerd is not installed")?;
    // Runs in the node's mount namespace: its own /var/run (so the node's engine answers on
    // /var/run/docker.sock for the containers it runs) and its own hostname. Every path is
    // passed as an argument, never spliced into the script.
    let script = node.dir.join("start.sh");
    fs::write(
        &script,
        "set -e\n\
         mount --make-rprivate /\n\
         mount --bind \"$1\" /var/run\n\
         hostname \"$2\"\n\
         \"$3\" --config \"$4\" >\"$5\" 2>&1 &\n\
         echo $! >\"$6\"\n\
         shift 6\n\
         exec \"$@\"\n",
    )?;
    let nsenter = proc::which("nsenter").context("nsenter is not installed (Debian: util-linux)")?;
    let mut cmd = Command::new(nsenter);
    cmd.arg(format!("--net=/run/netns/{}", node.netns()))
        .args(["unshare", "--mount", "--uts", "sh"])
        .arg(&script)
        .arg(node.dir.join("run"))
        .arg(node.name())
        .arg(containerd)
        .arg(config)
        .arg(node.dir.join("containerd.log"))
        .arg(node.dir.join("containerd.pid"))
        .arg(dockerd)
        .args(dockerd_args(node));
    let pid = spawn_daemon(&mut cmd, &node.log())?;
    eprintln!("{} starting (pid {pid}) at {}", node.name(), node.address());
    Ok(())
}

/// A node's `dockerd` arguments: the same at its start and at a restart.
fn dockerd_args(node: &Node) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> =
        ["-H", "unix:///var/run/docker.sock", "-H"].into_iter().map(Into::into).collect();
    args.push(node.url().into());
    args.push("--containerd".into());
    args.push(node.dir.join("containerd").join("containerd.sock").into());
    args.push("--data-root".into());
    args.push(node.dir.join("data").into());
    args.push("--exec-root".into());
    args.push(node.dir.join("exec").into());
    args.push("--pidfile".into());
    args.push(node.pidfile().into());
    args.push("--config-file".into());
    args.push(node.dir.join("daemon.json").into());
    args.push("--bridge=none".into());
    args.push("--iptables=false".into());
    args
}

/// Restarts node `index`'s `dockerd` (SIGTERM, as `systemctl restart docker` does; its
/// containers stop with it) inside the namespaces its containerd still holds, and waits
/// until it answers again. A fault for `cargo xtask soak`.
pub(crate) fn restart_engine(index: usize) -> anyhow::Result<()> {
    let swarm = Swarm::new();
    let node = swarm.node(index);
    let mark = node.dir.display().to_string();
    let dockerd_pid =
        pid_of(&node.pidfile(), &mark).with_context(|| format!("{} has no dockerd", node.name()))?;
    let containerd_pid = pid_of(&node.dir.join("containerd.pid"), &mark)
        .with_context(|| format!("{} has no containerd", node.name()))?;
    stop(dockerd_pid, Duration::from_secs(60));
    let nsenter = proc::which("nsenter").context("nsenter is not installed (Debian: util-linux)")?;
    let dockerd = proc::which("dockerd").context("dockerd is not installed")?;
    let mut cmd = Command::new(nsenter);
    cmd.arg(format!("--target={containerd_pid}"))
        .args(["--mount", "--uts", "--net", "--"])
        .arg(dockerd)
        .args(dockerd_args(&node));
    let log = node.dir.join("dockerd-restarted.log");
    let pid = spawn_daemon(&mut cmd, &log)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let client = Client::new(Endpoint::unix(node.socket()))?;
    wait_for(READY_TIMEOUT, || Ok(runtime.block_on(client.ping()).is_ok())).with_context(|| {
        format!("{} did not answer after its restart (pid {pid})\n{}", node.name(), tail(&log))
    })?;
    Ok(())
}

/// Stops every node (dockerd, then containerd), removes the namespaces and the state, and
/// fails when a process, a mount or a namespace survives.
fn down_quietly(swarm: &Swarm) -> anyhow::Result<()> {
    let mark = swarm.dir.display().to_string();
    let nodes: Vec<Node> = (1..=9).map(|i| swarm.node(i)).filter(|n| n.dir.exists()).collect();
    for node in &nodes {
        if let Some(pid) = pid_of(&node.pidfile(), &node.dir.display().to_string()) {
            stop(pid, Duration::from_secs(60));
        }
        if let Some(pid) = pid_of(&node.dir.join("containerd.pid"), &node.dir.display().to_string()) {
            stop(pid, Duration::from_secs(20));
        }
    }
    for pid in proc::processes_mentioning(
        &mark,
        &["dockerd", "containerd", "runc", "nsenter", "unshare", "sh", "docker-registry"],
    ) {
        proc::signal(pid, Signal::KILL);
        proc::wait_gone(pid, Duration::from_secs(5));
    }
    // The nodes' own mounts lived in their mount namespaces and went with them; anything in
    // ours is a leftover.
    for mount in proc::mounts_below(&swarm.dir) {
        rustix::mount::unmount(&mount, rustix::mount::UnmountFlags::DETACH)
            .with_context(|| format!("cannot unmount {}", mount.display()))?;
    }
    for ns in our_namespaces()? {
        ip(&["netns", "del", &ns])?;
    }
    if swarm.dir.exists() {
        fs::remove_dir_all(&swarm.dir).with_context(|| format!("cannot remove {}", swarm.dir.display()))?;
    }
    let left = proc::processes_mentioning(
        &mark,
        &["dockerd", "containerd", "runc", "nsenter", "unshare", "sh", "docker-registry"],
    );
    if !left.is_empty() {
        bail!("processes survived the swarm's stop: {left:?}");
    }
    let mounts = proc::mounts_below(&swarm.dir);
    if !mounts.is_empty() {
        bail!("mounts survived the swarm's stop: {mounts:?}");
    }
    let namespaces = our_namespaces()?;
    if !namespaces.is_empty() {
        bail!("network namespaces survived the swarm's stop: {namespaces:?}");
    }
    Ok(())
}

/// The network namespaces this swarm made (`dhs-*`).
fn our_namespaces() -> anyhow::Result<Vec<String>> {
    let dir = Path::new("/run/netns");
    if !dir.exists() {
        return Ok(Vec::new());
    }
    Ok(fs::read_dir(dir)?
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| name.starts_with("dhs-"))
        .collect())
}
