//! `dockhand exec [-i] [-t] CONTAINER CMD [ARG...]`: streams the command's stdout and stderr to
//! ours, sends our stdin with `-i`, and exits with the command's exit code.

use std::io::{IsTerminal, Read, Write};
use std::process::ExitCode;

use dockhand_engine::{ExecSpec, ExecStdin, StreamKind};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::args::{ExecArgs, Global};
use crate::context::connect;

pub(crate) async fn run(global: &Global, args: ExecArgs) -> anyhow::Result<ExitCode> {
    if global.json {
        anyhow::bail!("exec does not take --json: its output is the command's own");
    }
    let mut spec = ExecSpec::new(args.cmd).with_stdin(args.interactive).with_tty(args.tty);
    for entry in args.env {
        spec = spec.with_env(entry);
    }
    if let Some(user) = args.user {
        spec = spec.with_user(user);
    }
    if let Some(dir) = args.workdir {
        spec = spec.with_working_dir(dir);
    }
    let mut output = connect(global).await?.exec(&args.container, &spec).await?;
    // A terminal on both ends: ours goes raw, so that keys reach the command as typed.
    let _raw =
        (args.tty && args.interactive && std::io::stdin().is_terminal()).then(RawTerminal::enter).flatten();
    if let Some(stdin) = output.take_stdin() {
        tokio::spawn(forward_stdin(stdin));
    }
    let (mut stdout, mut stderr) = (std::io::stdout(), std::io::stderr());
    while let Some(chunk) = output.next().await {
        let chunk = chunk?;
        // Written as it arrives: a long-running command shows its progress.
        match chunk.stream {
            StreamKind::Stderr => {
                stderr.write_all(&chunk.data)?;
                stderr.flush()?;
            }
            StreamKind::Stdout | StreamKind::Stdin => {
                stdout.write_all(&chunk.data)?;
                stdout.flush()?;
            }
        }
    }
    let code = output.exit_code().await?;
    // As a shell does: the low 8 bits.
    Ok(ExitCode::from((code & 0xff) as u8))
}

/// Copies our stdin to the command's, then closes it (end-of-file). Stdin is read on a
/// thread of its own: a blocking read must not hold the runtime when the command ends first.
async fn forward_stdin(mut stdin: ExecStdin) {
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(4);
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 32 * 1024];
        let mut input = std::io::stdin().lock();
        while let Ok(n) = input.read(&mut buf) {
            if n == 0 || tx.blocking_send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    while let Some(data) = rx.recv().await {
        if stdin.write_all(&data).await.is_err() {
            return;
        }
    }
    let _ = stdin.shutdown().await;
}

/// Our terminal in raw mode while it lives; the previous mode comes back on drop.
struct RawTerminal {
    saved: rustix::termios::Termios,
}

impl RawTerminal {
    fn enter() -> Option<Self> {
        let fd = rustix::stdio::stdin();
        let saved = rustix::termios::tcgetattr(fd).ok()?;
        let mut raw = saved.clone();
        raw.make_raw();
        rustix::termios::tcsetattr(fd, rustix::termios::OptionalActions::Now, &raw).ok()?;
        Some(Self { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(
            rustix::stdio::stdin(),
            rustix::termios::OptionalActions::Now,
            &self.saved,
        );
    }
}
