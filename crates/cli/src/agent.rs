//! `dockhand agent <verb> ...`: what a helper service runs on a node. It works through the
//! node's engine and prints one JSON line per result for the dockhand that started it.

use std::process::ExitCode;

use dockhand_jobs::AgentTask;

use crate::context::agent_client;
use crate::output;

pub(crate) async fn run(args: &[String]) -> anyhow::Result<ExitCode> {
    let (task, start_by) = AgentTask::from_args(args)?;
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
        let line = tokio::task::spawn_blocking(move || {
            dockhand_jobs::run_volume_agent(
                &task,
                std::io::stdin().lock(),
                std::io::stdout().lock(),
                &|line| {
                    say(&line.to_line());
                },
            )
        })
        .await??;
        say(&line.to_line());
        if line != dockhand_jobs::AgentLine::Done {
            say(&dockhand_jobs::AgentLine::Done.to_line());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let client = agent_client()?;
    dockhand_jobs::run_agent(&client, &task, start_by, &|line| {
        let _ = output::line(&line.to_line());
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}
