//! `dockhand clean node [NODE]`: runs clean-node and maps how it ended to an exit code.

use std::process::ExitCode;

use dockhand_jobs::{JobContext, JobStore, LockSettings, Locks, Status, Trigger, clean_node};
use dockhand_policy::{Defaults, LabelPrefixes};

use crate::args::{CleanCommand, Global};
use crate::context::{connect, environment, store};
use crate::output;

pub(crate) async fn run(global: &Global, cmd: CleanCommand) -> anyhow::Result<ExitCode> {
    let CleanCommand::Node { node } = cmd;
    let client = connect(global).await?;
    let env = environment();
    let user = env.get("USER").unwrap_or("unknown").to_owned();
    let host = client.info().await.map(|i| i.name).unwrap_or_default();
    let defaults = Defaults::default();
    let settings = LockSettings::default().with_acquire_timeout(defaults.lock_timeout);
    let ctx = JobContext {
        locks: Locks::new(client.clone(), Locks::process_holder(&host), settings),
        client,
        defaults,
        prefixes: LabelPrefixes::default(),
        trigger: Trigger::Cli,
        caller: format!("cli:{user}"),
    };
    let printer = output::JobPrinter::new(global.json);
    let job = clean_node(&ctx, node.as_deref(), &printer).await?;
    // The job ran: a store that cannot take its record is reported, not fatal.
    let recorded = match store() {
        Ok(store) => store.record(&job).await.map_err(anyhow::Error::from),
        Err(e) => Err(e),
    };
    if let Err(e) = recorded {
        output::warning(&format!("job {} is not recorded: {e:#}", job.id));
    }
    printer.summary(&job)?;
    Ok(ExitCode::from(exit_code(job.status)))
}

/// The documented exit codes: 0 succeeded, 1 failed, 3 refused by policy, 4 busy.
fn exit_code(status: Status) -> u8 {
    match status {
        Status::Succeeded => 0,
        Status::Refused => 3,
        Status::Busy => 4,
        _ => 1,
    }
}
