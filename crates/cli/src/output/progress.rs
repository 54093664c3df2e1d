//! A running job as the CLI draws it: JSON lines of its events with `--json`; on a
//! terminal, a spinner per node or task while it waits; on a pipe, one plain line per step.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::time::Duration;

use super::{bytes, columns, line};

/// Draws a running job: JSON lines of its events (`--json`); on a terminal, a spinner per
/// node or task while it waits; on a pipe, one plain line per step.
pub(crate) struct JobPrinter {
    json: bool,
    tty: Option<Spinners>,
}

struct Spinners {
    multi: indicatif::MultiProgress,
    bars: std::sync::Mutex<HashMap<String, indicatif::ProgressBar>>,
}

/// What a step is about: its node and task, or its node and kind.
fn step_key(step: &dockhand_jobs::Step) -> String {
    let node = step.node.as_deref().unwrap_or("-");
    match &step.task {
        Some(task) => format!("{node} task {task}"),
        None => format!("{node} {}", step.kind),
    }
}

/// Where a step runs, for people: its node, and its task if it has one.
fn step_place(step: &dockhand_jobs::Step) -> String {
    let node = step.node.as_deref().unwrap_or("-");
    match &step.task {
        Some(task) => format!("{node} task {task}"),
        None => node.to_owned(),
    }
}

fn step_line(step: &dockhand_jobs::Step) -> String {
    let status = format!("{:?}", step.status).to_lowercase();
    let mut text = format!("{} on {}: {status}", step.kind, step_place(step));
    if let Some(bytes_reclaimed) = step.reclaimed_bytes {
        let _ = write!(text, ", {} reclaimed", bytes(bytes_reclaimed));
    }
    if let (Some(object), Some(n)) = (&step.object, step.bytes) {
        let _ = write!(text, ", {object} ({})", bytes(n));
    }
    if let Some(error) = &step.error {
        let _ = write!(text, " ({error})");
    }
    text
}

impl JobPrinter {
    pub(crate) fn new(json: bool) -> Self {
        use std::io::IsTerminal;
        let tty = (!json && std::io::stderr().is_terminal()).then(|| Spinners {
            multi: indicatif::MultiProgress::new(),
            bars: std::sync::Mutex::new(HashMap::new()),
        });
        Self { json, tty }
    }

    /// Clears what spinners are left.
    pub(crate) fn done(&self) {
        if let Some(tty) = &self.tty {
            if let Ok(mut bars) = tty.bars.lock() {
                bars.drain().for_each(|(_, bar)| bar.finish_and_clear());
            }
        }
    }

    fn draw(tty: &Spinners, event: &dockhand_jobs::Event) {
        use dockhand_jobs::Event;
        let Ok(mut bars) = tty.bars.lock() else { return };
        match event {
            Event::StepStarted { step, .. } => {
                let bar = tty.multi.add(indicatif::ProgressBar::new_spinner());
                bar.set_message(format!("{} on {} ...", step.kind, step_place(step)));
                bar.enable_steady_tick(Duration::from_millis(120));
                if let Some(old) = bars.insert(step_key(step), bar) {
                    old.finish_and_clear();
                }
            }
            Event::StepFinished { step, .. } => match bars.remove(&step_key(step)) {
                Some(bar) => bar.finish_with_message(step_line(step)),
                None => {
                    let _ = tty.multi.println(step_line(step));
                }
            },
            Event::Progress { message, .. } => {
                let _ = tty.multi.println(message);
            }
            Event::JobFinished { .. } => bars.drain().for_each(|(_, bar)| bar.finish_and_clear()),
            _ => {}
        }
    }

    /// The closing table (text), or the job (JSON).
    pub(crate) fn summary(&self, job: &dockhand_jobs::Job) -> anyhow::Result<()> {
        if self.json {
            return line(&serde_json::to_string(job)?);
        }
        let rows = job
            .steps
            .iter()
            .map(|s| {
                [
                    s.kind.clone(),
                    s.node.clone().unwrap_or_else(|| "-".to_owned()),
                    s.task.as_deref().map_or_else(|| "-".to_owned(), |t| t.get(..12).unwrap_or(t).to_owned()),
                    format!("{:?}", s.status).to_lowercase(),
                    s.exit_code.map_or_else(|| "-".to_owned(), |c| c.to_string()),
                    s.reclaimed_bytes.or(s.bytes).map_or_else(|| "-".to_owned(), bytes),
                    format!("{:.1}s", s.duration_ms as f64 / 1000.0),
                    s.error.clone().unwrap_or_default(),
                ]
            })
            .collect();
        let mut text = columns(["STEP", "NODE", "TASK", "STATUS", "EXIT", "BYTES", "TIME", "ERROR"], rows);
        // What a failed step printed last (a command's output, a failed task's logs).
        for s in job.steps.iter().filter(|s| s.status == dockhand_jobs::Status::Failed) {
            let Some(tail) = s.output_tail.as_deref().map(str::trim_end).filter(|t| !t.is_empty()) else {
                continue;
            };
            let place = [s.node.as_deref(), s.task.as_deref().map(|t| t.get(..12).unwrap_or(t))]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
            let place = if place.is_empty() { String::new() } else { format!(" ({place})") };
            let _ = writeln!(text, "--- {}{place}, last output:\n{tail}", s.kind);
        }
        let _ = writeln!(
            text,
            "{} {} by {}: {} (job {})",
            job.action.as_str(),
            job.target.describe(),
            job.caller,
            format!("{:?}", job.status).to_lowercase(),
            job.id
        );
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(text.as_bytes())?;
        stdout.flush()?;
        Ok(())
    }
}

impl dockhand_jobs::Sink for JobPrinter {
    fn event(&self, event: &dockhand_jobs::Event) {
        // A closed pipe or a full disk must not stop the job: printing is best effort here,
        // and the summary reports the error.
        if self.json {
            if let Ok(text) = serde_json::to_string(event) {
                let _ = line(&text);
            }
            return;
        }
        if let Some(tty) = &self.tty {
            return Self::draw(tty, event);
        }
        match event {
            dockhand_jobs::Event::StepStarted { step, .. } => {
                let _ = line(&format!("{} on {} ...", step.kind, step_place(step)));
            }
            dockhand_jobs::Event::StepFinished { step, .. } => {
                let _ = line(&step_line(step));
            }
            dockhand_jobs::Event::Progress { message, .. } => {
                let _ = line(message);
            }
            _ => {}
        }
    }
}
