//! `dockhand-server`: reads its flags, sets up the redacted JSON log, and serves until
//! SIGTERM or SIGINT. Everything else is in the library.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use dockhand_server::{DEFAULT_LISTEN, DEFAULT_STATE_DIR, Server, Settings};

/// dockhand's HTTP service, deployed inside the swarm it maintains.
#[derive(Debug, Parser)]
#[command(name = "dockhand-server", version, about)]
struct Args {
    /// Where to listen.
    #[arg(long, env = "DOCKHAND_LISTEN", default_value = DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// The job store and the `local` backup target live here.
    #[arg(long, env = "DOCKHAND_STATE_DIR", default_value = DEFAULT_STATE_DIR)]
    state_dir: PathBuf,
    /// The configuration file (the CLI's).
    #[arg(long, env = "DOCKHAND_CONFIG")]
    config: Option<PathBuf>,
    /// A named host of the configuration, instead of DOCKER_HOST or /var/run/docker.sock.
    #[arg(long, env = "DOCKHAND_HOST_ID")]
    host_id: Option<String>,
    /// The image helper services run (default: the server's own service image).
    #[arg(long, env = "DOCKHAND_HELPER_IMAGE")]
    helper_image: Option<String>,
    /// Serve HTTPS with this PEM certificate chain (read again on SIGHUP).
    #[arg(long, env = "DOCKHAND_TLS_CERT_FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's PEM private key.
    #[arg(long, env = "DOCKHAND_TLS_KEY_FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Print the OpenAPI document (YAML) and exit.
    #[arg(long)]
    openapi: bool,
    /// Ask the server at --listen for /healthz and exit 0 when it answers 200 (the image's
    /// healthcheck: it has no curl).
    #[arg(long)]
    healthcheck: bool,
}

fn environment() -> dockhand_host::Environment {
    dockhand_host::Environment::from_vars(
        std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
    )
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}

/// Exits 0 when it stopped on a signal (or printed what was asked), 1 when it could not
/// start or serve: the error's chain on one line of stderr, never a backtrace
/// (`RUST_BACKTRACE` is for panics).
fn main() -> std::process::ExitCode {
    // One crypto provider for the process, ring, as every TLS of dockhand's uses: the S3
    // client's reqwest takes the process's (the libraries never install one).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return fail(&anyhow::Error::from(e)),
    };
    match runtime.block_on(run(Args::parse())) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

#[allow(clippy::print_stderr)] // Before the log is set up, and for a person: the one line of a failed start.
fn fail(err: &anyhow::Error) -> std::process::ExitCode {
    eprintln!("dockhand-server: error: {err:#}");
    std::process::ExitCode::FAILURE
}

async fn run(args: Args) -> anyhow::Result<()> {
    if args.openapi {
        use std::io::Write;
        std::io::stdout().write_all(dockhand_server::openapi_yaml().as_bytes())?;
        return Ok(());
    }
    let tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => Some(dockhand_server::TlsFiles { cert, key }),
        _ => None,
    };
    if args.healthcheck {
        return Ok(dockhand_server::healthcheck(args.listen, tls.as_ref()).await?);
    }
    let settings = Settings {
        listen: args.listen,
        state_dir: args.state_dir,
        config: args.config,
        host_id: args.host_id,
        helper_image: args.helper_image,
        tls,
    };
    let server = Server::prepare(settings, environment()).await?;
    let filter = tracing_subscriber::EnvFilter::try_from_env("DOCKHAND_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .with_env_filter(filter)
        .with_writer(server.log_writer())
        .init();
    for note in server.notes() {
        tracing::info!("{note}");
    }
    for warning in server.warnings() {
        tracing::warn!("{warning}");
    }
    server.run(shutdown_signal()).await?;
    Ok(())
}
