//! `dockhand exec CONTAINER -- CMD...`: streams the command's stdout and stderr to ours and
//! exits with its exit code.

use std::io::Write;
use std::process::ExitCode;

use dockhand_engine::{ExecSpec, StreamKind};

use crate::args::{ExecArgs, Global};
use crate::context::connect;

pub(crate) async fn run(global: &Global, args: ExecArgs) -> anyhow::Result<ExitCode> {
    let mut spec = ExecSpec::new(args.cmd);
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
