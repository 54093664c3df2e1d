//! `dockhand agent <verb> ...`: what a helper service runs on a node. It works through the
//! node's engine and prints one JSON line per result for the dockhand that started it.

use std::io::Write;
use std::process::ExitCode;

use dockhand_jobs::agent::AgentTask;

use crate::context::agent_client;
use crate::output;

pub(crate) async fn run(args: &[String]) -> anyhow::Result<ExitCode> {
    let (out, args) = dockhand_jobs::agent::split_out(args)?;
    let (task, start_by) = AgentTask::from_args(args)?;
    // Late, it does nothing, whatever the task (a volume task too).
    dockhand_jobs::agent::check_start_by(start_by)?;
    // The channel dockhand listens on, connected first: an agent that cannot reach it
    // fails before it does anything.
    let channel = match &out {
        Some(path) => Some(std::os::unix::net::UnixStream::connect(path).map_err(|e| {
            anyhow::anyhow!("dockhand agent: cannot connect to dockhand's channel {}: {e}", path.display())
        })?),
        None => None,
    };
    if task.is_volume_task() {
        // With archive bytes on stdin or stdout, the report goes to stderr; a helper's
        // (`serve-*`) goes to stdout, where its service logs are read.
        let on_stderr = task.data_on_stdio();
        let say = move |text: &str| {
            if on_stderr {
                output::report(text);
            } else {
                let _ = output::line(text);
            }
        };
        let line = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let report = |line: dockhand_jobs::agent::AgentLine| say(&line.to_line());
            let Some(channel) = channel else {
                return Ok(dockhand_jobs::agent::run_volume_agent(
                    &task,
                    std::io::stdin().lock(),
                    std::io::stdout().lock(),
                    &report,
                )?);
            };
            if task.reads_archive() {
                // The archive comes over the channel; stdout stays for nothing.
                let reader = std::io::BufReader::with_capacity(1 << 20, &channel);
                return Ok(dockhand_jobs::agent::run_volume_agent(&task, reader, std::io::sink(), &report)?);
            }
            let mut writer = std::io::BufWriter::with_capacity(1 << 20, &channel);
            let line =
                dockhand_jobs::agent::run_volume_agent(&task, std::io::stdin().lock(), &mut writer, &report)?;
            writer.flush()?;
            drop(writer);
            channel.shutdown(std::net::Shutdown::Write)?;
            Ok(line)
        })
        .await??;
        say(&line.to_line());
        if line != dockhand_jobs::agent::AgentLine::Done {
            say(&dockhand_jobs::agent::AgentLine::Done.to_line());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let client = agent_client()?;
    dockhand_jobs::agent::run_agent(&client, &task, start_by, &|line| {
        let _ = output::line(&line.to_line());
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}
