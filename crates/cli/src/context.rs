//! The command context: the process environment, the configuration, the host registry, and
//! the engine a command talks to. Every command module takes what it needs from here; this
//! module prints nothing.

use dockhand_engine::Client;
use dockhand_host::{ConnectOptions, EngineChoice, Environment, HostRegistry, HostsConfig};
use dockhand_jobs::config::{Configuration, StatePaths};

use crate::args::Global;

/// The process environment. Variables that are not UTF-8 cannot name an engine or a
/// setting; skipping them beats a panic.
pub(crate) fn environment() -> Environment {
    Environment::from_vars(
        std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
    )
}

/// The configuration from `--config` (which must exist and parse) or the default file,
/// read once per process: every section (hosts, storage, registries, labels, schedule,
/// defaults) is parsed from this one reading, once, when a command first needs it.
pub(crate) fn configuration(global: &Global) -> anyhow::Result<&'static Configuration> {
    static CONFIG: std::sync::OnceLock<Configuration> = std::sync::OnceLock::new();
    if CONFIG.get().is_none() {
        let env = environment();
        let file = dockhand_host::ConfigFile::load(global.config.as_deref(), &env)?;
        // Without XDG_*_HOME and HOME these stay empty; `storage_targets` and `store` say so.
        let paths = StatePaths::new(
            dockhand_jobs::storage::default_local_path(&env).unwrap_or_default(),
            dockhand_jobs::store::default_store_path(&env).unwrap_or_default(),
        );
        let _ = CONFIG.set(Configuration::new(file, env, paths));
    }
    CONFIG.get().ok_or_else(|| anyhow::anyhow!("the configuration could not be kept"))
}

/// The configuration file, for its notes.
pub(crate) fn config_file(global: &Global) -> anyhow::Result<&'static dockhand_host::ConfigFile> {
    Ok(configuration(global)?.file())
}

/// The hosts of the configuration, with env overrides. A host entry that does not validate
/// is kept aside: using it is an error, but it does not stop the others.
pub(crate) fn load(global: &Global) -> anyhow::Result<HostsConfig> {
    Ok(configuration(global)?.hosts()?)
}

/// The host registry over that configuration, with the global `--timeout`.
pub(crate) fn registry(global: &Global) -> anyhow::Result<HostRegistry> {
    let registry = HostRegistry::new(load(global)?, environment());
    Ok(match global.timeout {
        Some(timeout) => registry.with_timeout(timeout),
        None => registry,
    })
}

/// The registry the command connects through, kept for the whole process: a managed
/// engine it starts on demand (`--host-id`) lives as long as the command, not as long as a
/// statement (its spawner thread and parent-death signal go with the registry), and is
/// stopped in stages by [`stop_started_hosts`] when the command ends.
static CONNECTED: std::sync::OnceLock<HostRegistry> = std::sync::OnceLock::new();

fn connected_registry(global: &Global) -> anyhow::Result<&'static HostRegistry> {
    if CONNECTED.get().is_none() {
        let _ = CONNECTED.set(registry(global)?);
    }
    CONNECTED.get().ok_or_else(|| anyhow::anyhow!("the host registry could not be kept"))
}

/// Stops the managed engines the command started, once it is done: nothing is left behind.
pub(crate) async fn stop_started_hosts() -> anyhow::Result<()> {
    if let Some(registry) = CONNECTED.get() {
        registry.shutdown().await?;
    }
    Ok(())
}

/// The storage targets of the configuration, with `local` under
/// `$XDG_DATA_HOME/dockhand/backups`.
pub(crate) fn storage_targets(global: &Global) -> anyhow::Result<dockhand_jobs::storage::StorageTargets> {
    if dockhand_jobs::storage::default_local_path(&environment()).is_none() {
        anyhow::bail!("neither XDG_DATA_HOME nor HOME is set: no place for the local storage target");
    }
    Ok(configuration(global)?.storage()?.clone())
}

/// The registry credentials of the configuration file, the seed's variables and the docker
/// CLI's `config.json`.
pub(crate) fn registries(global: &Global) -> anyhow::Result<dockhand_jobs::update::Registries> {
    Ok(configuration(global)?.registries()?.clone())
}

/// Ends a job command: the printer's last words, the record, each job's summary, and the
/// exit code of how they ended.
pub(crate) async fn finish(
    printer: &crate::output::JobPrinter,
    jobs: &[dockhand_jobs::Job],
) -> anyhow::Result<std::process::ExitCode> {
    printer.done();
    for warning in record(jobs).await {
        crate::output::warning(&warning);
    }
    for job in jobs {
        printer.summary(job)?;
    }
    Ok(crate::output::exit_code(jobs))
}

/// Records `jobs` in the job store; what could not be recorded comes back as warnings (the
/// jobs ran: a store that cannot take their record is reported, not fatal).
pub(crate) async fn record(jobs: &[dockhand_jobs::Job]) -> Vec<String> {
    use dockhand_jobs::store::JobStore;
    match store() {
        Ok(store) => {
            let mut warnings = Vec::new();
            for job in jobs {
                if let Err(e) = store.record(job).await {
                    warnings.push(format!("job {} is not recorded: {e:#}", job.id));
                }
            }
            warnings
        }
        Err(e) => vec![format!("the jobs are not recorded: {e:#}")],
    }
}

/// Before a job works on a swarm manager: a service that a stopped backup or restore left
/// scaled down (its intent label, no live lock) is scaled back and recorded as a
/// `reconcile` job. Returns what to tell the operator; a failure here is a warning, never
/// the command's end. One `GET /info` and one filtered service listing; an engine that is
/// no swarm manager has nothing to reconcile.
pub(crate) async fn reconcile(global: &Global, client: &Client) -> Vec<String> {
    let host = dockhand_jobs::local_hostname();
    let user = environment().get("USER").unwrap_or("unknown").to_owned();
    let mut ctx = dockhand_jobs::JobContext::new(
        client.clone(),
        &host,
        dockhand_jobs::Trigger::Cli,
        format!("cli:{user}"),
    );
    if let Ok(defaults) = defaults(global) {
        ctx.defaults = defaults;
    }
    let sink = dockhand_jobs::Collect::default();
    match dockhand_jobs::backup::reconcile(&ctx, &sink).await {
        Ok(jobs) if jobs.is_empty() => Vec::new(),
        Ok(jobs) => {
            let mut notes: Vec<String> = jobs
                .iter()
                .map(|j| {
                    let done = j
                        .steps
                        .iter()
                        .filter_map(|s| s.output_tail.clone().or(s.error.clone()))
                        .collect::<Vec<_>>();
                    format!(
                        "{} was left scaled down by a backup or restore that stopped: {} ({}; job {})",
                        j.target.describe(),
                        format!("{:?}", j.status).to_lowercase(),
                        done.join("; "),
                        j.id
                    )
                })
                .collect();
            notes.extend(record(&jobs).await);
            notes
        }
        Err(e) => vec![format!("cannot check for services a stopped backup left scaled down: {e}")],
    }
}

/// The job store: `$XDG_STATE_HOME/dockhand/jobs.sqlite` (default `~/.local/state`).
pub(crate) fn store() -> anyhow::Result<dockhand_jobs::store::SqliteStore> {
    let path = dockhand_jobs::store::default_store_path(&environment()).ok_or_else(|| {
        anyhow::anyhow!("neither XDG_STATE_HOME nor HOME is set: no place for the job store")
    })?;
    Ok(dockhand_jobs::store::SqliteStore::open(&path)?)
}

/// Which engine the flags name: `--host-id`, else the docker CLI's flags, variables and
/// contexts.
pub(crate) fn choice(global: &Global) -> EngineChoice {
    if let Some(id) = &global.host_id {
        return EngineChoice::Named(id.clone());
    }
    let mut opts = ConnectOptions::default();
    opts.host = global.host.clone();
    opts.context = global.context.clone();
    opts.tls = global.tls;
    opts.tls_verify = global.tlsverify;
    opts.tls_ca_cert = global.tlscacert.clone();
    opts.tls_cert = global.tlscert.clone();
    opts.tls_key = global.tlskey.clone();
    EngineChoice::Docker(opts)
}

/// The client for the engine the flags name: what reads (a ping, a listing, an exec) use.
pub(crate) async fn connect(global: &Global) -> anyhow::Result<Client> {
    Ok(connected_registry(global)?.connect_to(&choice(global)).await?)
}

/// [`connect`] for a job: on a swarm manager, services that a stopped backup or restore
/// left scaled down are brought back first ([`reconcile`]), and logged. Reads skip this:
/// it costs a ping or a listing several calls, and protects nothing there.
pub(crate) async fn connect_for_jobs(global: &Global) -> anyhow::Result<Client> {
    let client = connect(global).await?;
    for note in reconcile(global, &client).await {
        tracing::warn!("{note}");
    }
    Ok(client)
}

/// The job context for a command: the engine, its locks held as this process, the helper
/// settings and concurrency from the flags, and `cli:<user>` as the caller.
pub(crate) async fn job_context(
    global: &Global,
    opts: &crate::args::JobOptions,
) -> anyhow::Result<dockhand_jobs::JobContext> {
    // The defaults, the label prefixes, the registries and a redactor of the
    // configuration's secrets (R3-14), as the server makes them; a section that does not
    // load and that the job uses is the command's own error, later.
    let mut choices = configuration(global)?.context_choices()?;
    let client = connect_for_jobs(global).await?;
    let user = environment().get("USER").unwrap_or("unknown").to_owned();
    // Inside a swarm service, helpers run the image dockhand itself runs from; without an
    // image, helpers on the connected node run one made from this executable, and a job
    // that needs a helper elsewhere fails saying what to set (R3-04). A configured image
    // is pulled with its registry's credential, when there is one.
    choices.helper_image = opts.helper_image.as_deref();
    choices.own = Some(dockhand_jobs::OwnExecutable::running());
    choices.helper_socket = Some(&opts.helper_socket);
    choices.pending_timeout = opts.pending_timeout;
    if let Some(lease) = opts.lock_lease {
        choices.locks = choices.locks.with_lease(lease);
    }
    let mut ctx = dockhand_jobs::JobContext::assemble(
        client,
        dockhand_jobs::Trigger::Cli,
        format!("cli:{user}"),
        choices,
    )
    .await?;
    ctx.concurrency = usize::from(opts.concurrency);
    Ok(ctx)
}

/// The seed's defaults, with its `SWARM_UTILS_*` variables from the environment.
pub(crate) fn defaults(global: &Global) -> anyhow::Result<dockhand_policy::Defaults> {
    Ok(configuration(global)?.defaults()?.clone())
}

/// Cancels `token` on the first SIGINT or SIGTERM: the job stops at its next safe point and
/// cleans up what it started. The handlers are in place when this returns.
pub(crate) fn cancel_on_signal(token: tokio_util::sync::CancellationToken) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        token.cancel();
    });
    Ok(())
}

/// The engine an agent works on: `DOCKER_HOST` when set, else the socket a helper mounts.
pub(crate) fn agent_client() -> anyhow::Result<Client> {
    let endpoint = match environment().get("DOCKER_HOST") {
        Some(url) => url.parse::<dockhand_engine::Endpoint>()?,
        None => dockhand_engine::Endpoint::unix("/var/run/docker.sock"),
    };
    Ok(Client::new(endpoint)?)
}
