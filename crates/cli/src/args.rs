//! The command line, as clap types.

use std::path::PathBuf;

use clap::{Args as ClapArgs, Parser, Subcommand};

/// Keeps Docker hosts and swarms in order.
#[derive(Debug, Parser)]
#[command(name = "dockhand", version, about, propagate_version = true)]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Options every command takes.
#[derive(Debug, ClapArgs)]
pub(crate) struct Global {
    /// The engine to talk to, as a URL such as unix:///var/run/docker.sock (beats DOCKER_HOST).
    #[arg(short = 'H', long = "host", global = true, value_name = "URL", help_heading = "Engine connection")]
    pub(crate) host: Option<String>,

    /// The docker context to use (beats DOCKER_HOST and DOCKER_CONTEXT).
    #[arg(long, global = true, value_name = "NAME", help_heading = "Engine connection")]
    pub(crate) context: Option<String>,

    /// A host from the configuration's docker.hosts, by id (instead of -H or --context).
    #[arg(long = "host-id", global = true, value_name = "ID", conflicts_with_all = ["host", "context"], help_heading = "Engine connection")]
    pub(crate) host_id: Option<String>,

    /// The configuration file [default: $XDG_CONFIG_HOME/dockhand/dockhand.yaml].
    #[arg(long, global = true, value_name = "FILE", help_heading = "Global options")]
    pub(crate) config: Option<PathBuf>,

    /// Use TLS, without verifying the engine (implied by --tlsverify).
    #[arg(long, global = true, help_heading = "Engine connection")]
    pub(crate) tls: bool,

    /// Use TLS and verify the engine against the CA.
    #[arg(long, global = true, help_heading = "Engine connection")]
    pub(crate) tlsverify: bool,

    /// Trust only certificates signed by this CA [default: $DOCKER_CERT_PATH/ca.pem].
    #[arg(long, global = true, value_name = "FILE", help_heading = "Engine connection")]
    pub(crate) tlscacert: Option<PathBuf>,

    /// The client certificate [default: $DOCKER_CERT_PATH/cert.pem].
    #[arg(long, global = true, value_name = "FILE", help_heading = "Engine connection")]
    pub(crate) tlscert: Option<PathBuf>,

    /// The client key [default: $DOCKER_CERT_PATH/key.pem].
    #[arg(long, global = true, value_name = "FILE", help_heading = "Engine connection")]
    pub(crate) tlskey: Option<PathBuf>,

    /// Print JSON instead of text.
    #[arg(long, global = true, help_heading = "Global options")]
    pub(crate) json: bool,

    /// How long to wait for each answer of the engine, in Go syntax such as 10s or 1m30s
    /// [default: 120s; hosts ls probes each host for at most 5s].
    #[arg(long, global = true, value_name = "DURATION", env = "DOCKHAND_TIMEOUT", value_parser = parse_duration, help_heading = "Engine connection")]
    pub(crate) timeout: Option<std::time::Duration>,

    /// More log output on stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true, help_heading = "Global options")]
    pub(crate) verbose: u8,
}

/// The command groups.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Talk to one engine directly.
    #[command(subcommand)]
    Engine(EngineCommand),
    /// Swarm services.
    #[command(subcommand)]
    Services(ServicesCommand),
    /// Swarm nodes.
    #[command(subcommand)]
    Nodes(NodesCommand),
    /// Swarm tasks.
    #[command(subcommand)]
    Tasks(TasksCommand),
    /// Run a command in a running container; exits with the command's exit code.
    Exec(ExecArgs),
    /// The configured docker hosts.
    #[command(subcommand)]
    Hosts(HostsCommand),
    /// One managed host.
    #[command(subcommand)]
    Host(HostCommand),
    /// The configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Tokens for service labels.
    #[command(subcommand)]
    Token(TokenCommand),
    /// The helper image, made from this executable.
    #[command(subcommand)]
    HelperImage(HelperImageCommand),
    /// What cron would do now: per target and action, enabled or not, which label or
    /// default decided, and the timeout budget.
    Plan,
    /// Volumes (also `dockhand volume`).
    #[command(subcommand, visible_alias = "volume")]
    Volumes(VolumesCommand),
    /// Run a clean-up job.
    #[command(subcommand)]
    Clean(CleanCommand),
    /// The jobs dockhand ran, from the job store.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// The swarm-wide locks jobs hold (one operation per target at a time).
    #[command(subcommand)]
    Locks(LocksCommand),
    /// Storage targets, where backups go.
    #[command(subcommand)]
    Storage(StorageCommand),
    /// Back a service's volumes up to its storage target (backup-service). Exit codes as
    /// for clean node.
    Backup(BackupArgs),
    /// The backups on a storage target.
    #[command(subcommand)]
    Backups(BackupsCommand),
    /// Restore a service's volumes from its storage target: every archive is checked
    /// against its manifest first; the service is stopped and started again.
    Restore(RestoreArgs),
    /// Deploy a new image to a service (update-service): checked against its labels,
    /// pinned by digest, with its hooks, waited on until it converges, and rolled back when
    /// it fails. Exit codes as for clean node.
    Update(UpdateArgs),
    /// Print the shell completion script for bash, zsh or fish.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Write a man page per command (dockhand.1, dockhand-clean-node.1…) into a directory.
    Man {
        /// The directory.
        #[arg(long, value_name = "DIR", default_value = "man")]
        dir: PathBuf,
    },
    /// What a helper service runs on a node: `dockhand agent <verb> ...`, written by dockhand
    /// itself (internal).
    #[command(hide = true)]
    Agent {
        /// The verb and its typed arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// A shell `dockhand completions` writes for.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Shell {
    /// bash (bash-completion).
    Bash,
    /// zsh.
    Zsh,
    /// fish.
    Fish,
}

/// `dockhand clean ...`
#[derive(Debug, Subcommand)]
pub(crate) enum CleanCommand {
    /// Prune a node's stopped containers, unused images and build cache (never volumes).
    /// Exits 0 when it succeeded, 1 when a step failed, 3 when labels refuse the node, 4
    /// when another job holds its lock, 130 when interrupted.
    Node {
        /// The node's hostname or ID [default: the node of the engine dockhand talks to].
        #[arg(conflicts_with = "all")]
        node: Option<String>,
        /// Every node of the swarm, several at once.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        jobs: JobOptions,
    },
    /// Run the service's clean.exec in every running task, on whatever node. Exit codes as
    /// for clean node.
    Service {
        /// The service's name or ID.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        service: Option<String>,
        /// Every service whose labels enable clean-service, several at once.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        jobs: JobOptions,
    },
}

/// How jobs work on other nodes, and how much at once.
#[derive(Debug, Clone, ClapArgs)]
#[command(next_help_heading = "Job options")]
pub(crate) struct JobOptions {
    /// The image of helper services, pinned by digest; its entrypoint must be dockhand
    /// (`dockhand helper-image push` makes one) [default: on the connected node, an image
    /// made from this executable; elsewhere, none].
    #[arg(long, env = "DOCKHAND_HELPER_IMAGE", value_name = "IMAGE")]
    pub(crate) helper_image: Option<String>,
    /// The engine socket's path on the nodes, bind-mounted into helpers.
    #[arg(long, env = "DOCKHAND_HELPER_SOCKET", value_name = "PATH", default_value = "/var/run/docker.sock")]
    pub(crate) helper_socket: String,
    /// How long a helper may stay pending before its step fails, in Go syntax [default: 20s,
    /// SWARM_UTILS_PENDING_SERVICE_TIMEOUT].
    #[arg(long, env = "DOCKHAND_PENDING_TIMEOUT", value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) pending_timeout: Option<std::time::Duration>,
    /// How long a job's lock stays held without renewal; a dockhand killed mid-job blocks
    /// its target for at most this long [default: 30s].
    #[arg(long, env = "DOCKHAND_LOCK_LEASE", value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) lock_lease: Option<std::time::Duration>,
    /// How many tasks, nodes or services are worked on at once.
    #[arg(long, env = "DOCKHAND_CONCURRENCY", value_name = "N", default_value_t = 8,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) concurrency: u16,
}

/// `dockhand volumes ...`
#[derive(Debug, Subcommand)]
pub(crate) enum VolumesCommand {
    /// The local volumes no container uses (running or stopped), with their size: on every
    /// node of the swarm (through helpers), or on the engine itself when it is not a manager.
    Unused {
        #[command(flatten)]
        jobs: JobOptions,
    },
    /// Move a volume's contents from one node to another, streamed node to node (the
    /// destination's contents are replaced). With --service, the service is stopped, its
    /// placement moved to the new node, and started again. Exit codes as for clean node.
    Move {
        /// The volume (with --service, as the service names it; a stack prefix is optional).
        volume: String,
        /// The node it is on (hostname or ID).
        #[arg(long, value_name = "NODE")]
        from: String,
        /// The node it goes to (hostname or ID).
        #[arg(long, value_name = "NODE")]
        to: String,
        /// The service that uses it.
        #[arg(long, value_name = "SERVICE")]
        service: Option<String>,
        #[command(flatten)]
        jobs: JobOptions,
    },
}

/// `dockhand jobs ...`
#[derive(Debug, Subcommand)]
pub(crate) enum JobsCommand {
    /// List jobs, newest first.
    #[command(alias = "list")]
    Ls {
        /// Only jobs on this target, as listed: `node/<hostname>` or `service/<name>`.
        #[arg(long)]
        target: Option<String>,
        /// Only jobs that ended this way: succeeded, failed, cancelled, refused or busy.
        #[arg(long, value_parser = ["running", "succeeded", "failed", "cancelled", "refused", "busy"])]
        status: Option<String>,
    },
    /// Show one job with its steps.
    Show {
        /// The job's ID.
        id: String,
    },
}

/// `dockhand locks ...`
#[derive(Debug, Subcommand)]
pub(crate) enum LocksCommand {
    /// List the locks: target, job, holder, and when the lease ends.
    #[command(alias = "list")]
    Ls,
}

/// `dockhand token ...`
#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Read a token on stdin and print `sha256:<hex>` of it, for a `*.token` label: the
    /// label then never shows a usable token.
    Hash,
}

/// `dockhand helper-image ...`
#[derive(Debug, Subcommand)]
pub(crate) enum HelperImageCommand {
    /// Make the helper image from this executable on the connected engine, push it to
    /// REPOSITORY (`registry.example.com/team/dockhand-helper`) and print the reference to
    /// set as `--helper-image` (DOCKHAND_HELPER_IMAGE): `REPOSITORY@sha256:...`. The
    /// credential is the named one of `--registry`, else the docker CLI's `config.json`.
    Push {
        /// Where to push it, without a tag (the tag is dockhand's version and build).
        repository: String,
        /// A named registry credential of the configuration (`registries.NAME`).
        #[arg(long, value_name = "NAME")]
        registry: Option<String>,
    },
}

/// `dockhand hosts ...`
#[derive(Debug, Subcommand)]
pub(crate) enum HostsCommand {
    /// List the hosts: id, type, URL, disabled, reachable, API version.
    #[command(alias = "list")]
    Ls,
    /// Check that a host (or every enabled host) answers; exits 1 if one does not.
    Check {
        /// The host id [default: every enabled host].
        id: Option<String>,
    },
}

/// `dockhand host ...`
#[derive(Debug, Subcommand)]
pub(crate) enum HostCommand {
    /// Start a managed host and supervise it in the foreground until Ctrl-C (or SIGTERM),
    /// then stop it cleanly.
    Run {
        /// The managed host's id.
        id: String,
        /// What to do with an engine an earlier run left: adopt, replace or fail.
        #[arg(long, value_name = "POLICY", default_value = "adopt", value_parser = ["adopt", "replace", "fail"])]
        on_leftover: String,
        /// How long the engine may take to stop after SIGTERM, in Go syntax.
        #[arg(long, value_name = "DURATION", default_value = "45s")]
        grace: String,
    },
}

/// `dockhand config ...`
#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Show the effective configuration, where each part came from, secrets masked.
    Show,
}

/// A Go duration from the command line.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    match dockhand_policy::parse_go_duration(text) {
        Ok(d) if d.is_zero() => Err("must be more than 0".to_owned()),
        Ok(d) => Ok(d),
        Err(e) => Err(e.to_string()),
    }
}

/// `dockhand exec [OPTIONS] CONTAINER CMD [ARG...]`
#[derive(Debug, ClapArgs)]
pub(crate) struct ExecArgs {
    /// Keep stdin open and send ours to the command.
    #[arg(short, long)]
    pub(crate) interactive: bool,
    /// Allocate a pseudo-TTY (stdout and stderr become one stream).
    #[arg(short, long)]
    pub(crate) tty: bool,
    /// The container's ID or name.
    pub(crate) container: String,
    /// Set an environment variable (NAME=value); repeatable.
    #[arg(short, long = "env", value_name = "NAME=VALUE")]
    pub(crate) env: Vec<String>,
    /// Run as this user (name, uid or uid:gid).
    #[arg(short, long)]
    pub(crate) user: Option<String>,
    /// Run in this directory.
    #[arg(short, long, value_name = "DIR")]
    pub(crate) workdir: Option<String>,
    /// The command and its arguments, as docker takes them (`--` before them is optional).
    /// No shell is involved.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true, value_name = "CMD")]
    pub(crate) cmd: Vec<String>,
}

/// `dockhand services ...`
#[derive(Debug, Subcommand)]
pub(crate) enum ServicesCommand {
    /// List services, with their replicas and image.
    #[command(alias = "list")]
    Ls {
        /// Filter as the Engine API does, such as `label=dockhand.clean.enable=true` or
        /// `name=web`; repeat to add more.
        #[arg(short, long = "filter", value_name = "KEY=VALUE")]
        filters: Vec<String>,
        /// Print only the IDs.
        #[arg(short, long)]
        quiet: bool,
    },
}

/// `dockhand nodes ...`
#[derive(Debug, Subcommand)]
pub(crate) enum NodesCommand {
    /// List the swarm's nodes.
    #[command(alias = "list")]
    Ls {
        /// Filter as the Engine API does, such as `role=manager` or `label=zone=a`.
        #[arg(short, long = "filter", value_name = "KEY=VALUE")]
        filters: Vec<String>,
        /// Print only the IDs.
        #[arg(short, long)]
        quiet: bool,
    },
}

/// `dockhand tasks ...`
#[derive(Debug, Subcommand)]
pub(crate) enum TasksCommand {
    /// List a service's tasks.
    #[command(alias = "list")]
    Ls {
        /// The service's name or ID.
        service: String,
        /// Print only the IDs.
        #[arg(short, long)]
        quiet: bool,
    },
}

/// `dockhand engine ...`
#[derive(Debug, Subcommand)]
pub(crate) enum EngineCommand {
    /// Check that the engine answers, and show what its ping says.
    Ping,
    /// Show the engine's version and the API version in use.
    Version,
    /// Show what the engine knows about its host and swarm.
    Info,
}

/// `dockhand storage ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum StorageCommand {
    /// The storage targets: the configured ones, `local`, and `swarm-utils` when the seed's
    /// SWARM_UTILS_S3_* variables are set.
    Ls,
    /// Write, read, list and delete a probe object on a target (every target when none is
    /// named); names what failed: DNS, TLS, credentials, bucket or permissions.
    Check {
        /// The target's name.
        name: Option<String>,
    },
}

/// `dockhand backup SERVICE | --all`.
#[derive(Debug, ClapArgs)]
pub(crate) struct BackupArgs {
    /// The service's name or ID; or `node`, then a node's hostname or ID (or --all).
    #[arg(value_name = "SERVICE|node", required_unless_present = "all")]
    pub(crate) service: Option<String>,
    /// After `node`: the node whose labelled volumes to back up.
    #[arg(value_name = "NODE")]
    pub(crate) node: Option<String>,
    /// Every service (or, after `node`, every node) whose labels enable backups, one after
    /// the other.
    #[arg(long)]
    pub(crate) all: bool,
    #[command(flatten)]
    pub(crate) jobs: JobOptions,
}

/// `dockhand update SERVICE [--image REF] [--force] [--no-rollback]`, or
/// `dockhand update --image-of REF`.
#[derive(Debug, ClapArgs)]
pub(crate) struct UpdateArgs {
    /// The service's name or ID.
    #[arg(required_unless_present = "image_of", conflicts_with = "image_of")]
    pub(crate) service: Option<String>,
    /// Update every service that runs this reference's repository (whatever its tag) and
    /// has `update.enable=true` to this reference, each its own job, up to `--concurrency` at once.
    #[arg(long, value_name = "REF", conflicts_with = "image")]
    pub(crate) image_of: Option<String>,
    /// The image reference to deploy (`name:tag`, or `name@sha256:…`); without it, the
    /// service's current tag is resolved and deployed again.
    #[arg(long, value_name = "REF")]
    pub(crate) image: Option<String>,
    /// Recreate the tasks even when the image's digest is unchanged.
    #[arg(long)]
    pub(crate) force: bool,
    /// Leave a failed update as it is instead of rolling back (`update.rollback=never`).
    #[arg(long)]
    pub(crate) no_rollback: bool,
    #[command(flatten)]
    pub(crate) jobs: JobOptions,
}

/// `dockhand backups ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum BackupsCommand {
    /// A service's backups on its target: volume, node, time, size and the manifest check.
    Ls {
        /// The service's name (as its backups are named); or `node`, then a node's hostname.
        #[arg(value_name = "SERVICE|node")]
        service: String,
        /// After `node`: the node.
        #[arg(value_name = "NODE")]
        node: Option<String>,
        /// The target to look on [default: the one the service's labels name, else local].
        #[arg(long, value_name = "NAME")]
        target: Option<String>,
        /// The archives the seed's tool (swarm-utils, through offen/docker-volume-backup)
        /// wrote on the target, `<node>_<volume>_<date>.tar.gz` anywhere under its prefix:
        /// of the service's volumes when it exists, else all. `restore SERVICE --object KEY`
        /// restores one.
        #[arg(long)]
        foreign: bool,
    },
}

/// `dockhand restore SERVICE ...`.
#[derive(Debug, ClapArgs)]
pub(crate) struct RestoreArgs {
    /// The service's name or ID; or `node`, then a node's hostname or ID.
    #[arg(value_name = "SERVICE|node")]
    pub(crate) service: String,
    /// After `node`: the node whose backups to restore.
    #[arg(value_name = "NODE")]
    pub(crate) node_backup: Option<String>,
    /// Only this volume (as labelled, or its real name) [default: every volume backed up].
    #[arg(long, value_name = "VOLUME")]
    pub(crate) volume: Option<String>,
    /// The backup taken at this UTC timestamp, as in its name (20261128T083803Z)
    /// [default: the newest].
    #[arg(long, value_name = "TIMESTAMP", conflicts_with = "object")]
    pub(crate) at: Option<String>,
    /// Exactly this object, its key as `backups ls` shows it.
    #[arg(long, value_name = "KEY")]
    pub(crate) object: Option<String>,
    /// The node to restore on [default: where the service's tasks run; for `node`, that
    /// node. An object's name never decides it].
    #[arg(long, value_name = "NODE")]
    pub(crate) node: Option<String>,
    /// Restore a global service's volumes although it cannot be stopped, or a node's volume
    /// although running containers mount it.
    #[arg(long)]
    pub(crate) force: bool,
    /// The age identity file that decrypts encrypted archives [default: the target's
    /// encryption.identity_file].
    #[arg(long, value_name = "FILE")]
    pub(crate) identity: Option<std::path::PathBuf>,
    /// The storage target to restore from [default: the one the labels name, else local],
    /// as `backups ls --target` looks on it.
    #[arg(long, value_name = "NAME")]
    pub(crate) target: Option<String>,
    #[command(flatten)]
    pub(crate) jobs: JobOptions,
}
