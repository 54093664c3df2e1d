//! `dockhand storage ls | check [NAME]`: the storage targets backups go to.

use std::process::ExitCode;

use dockhand_jobs::storage::{Storage, TargetSettings};
use serde::Serialize;

use crate::args::{Global, StorageCommand};
use crate::context::storage_targets;
use crate::output;

/// A target as shown: where it writes, never its credentials.
#[derive(Debug, Serialize)]
struct Shown {
    name: String,
    kind: &'static str,
    location: String,
    origin: String,
    encrypted: bool,
    retention_days: Option<u32>,
    keep_last: u32,
}

impl From<&TargetSettings> for Shown {
    fn from(t: &TargetSettings) -> Self {
        Self {
            name: t.name.clone(),
            kind: t.kind.name(),
            location: t.kind.location(),
            origin: t.origin.clone(),
            encrypted: !t.recipients.is_empty(),
            retention_days: t.retention_days,
            keep_last: t.keep_last,
        }
    }
}

#[derive(Debug, Serialize)]
struct Checked {
    target: String,
    ok: bool,
    passed: Vec<String>,
    error: Option<String>,
}

pub(crate) async fn run(global: &Global, cmd: StorageCommand) -> anyhow::Result<ExitCode> {
    let targets = storage_targets(global)?;
    match cmd {
        StorageCommand::Ls => {
            let mut shown: Vec<Shown> = targets.iter().map(Shown::from).collect();
            shown.extend(targets.problems().map(|(name, problem)| Shown {
                name: name.to_owned(),
                kind: "broken",
                location: problem.to_owned(),
                origin: String::new(),
                encrypted: false,
                retention_days: None,
                keep_last: 0,
            }));
            shown.sort_by(|a, b| a.name.cmp(&b.name));
            output::print(global.json, &shown, || output::storage_targets(&shown_rows(&shown)))?;
            Ok(ExitCode::SUCCESS)
        }
        StorageCommand::Check { name } => {
            let chosen: Vec<&TargetSettings> = match &name {
                Some(name) => vec![targets.get(name)?],
                None => targets.iter().collect(),
            };
            let mut results = Vec::new();
            for target in chosen {
                let result = match Storage::open(target) {
                    Ok(storage) => storage.check().await,
                    Err(e) => Err(e),
                };
                results.push(match result {
                    Ok(report) => {
                        Checked { target: target.name.clone(), ok: true, passed: report.passed, error: None }
                    }
                    Err(e) => Checked {
                        target: target.name.clone(),
                        ok: false,
                        passed: Vec::new(),
                        error: Some(e.to_string()),
                    },
                });
            }
            if name.is_none() {
                results.extend(targets.problems().map(|(name, problem)| Checked {
                    target: name.to_owned(),
                    ok: false,
                    passed: Vec::new(),
                    error: Some(problem.to_owned()),
                }));
                results.sort_by(|a, b| a.target.cmp(&b.target));
            }
            let failed = results.iter().any(|r| !r.ok);
            output::print(global.json, &results, || {
                results
                    .iter()
                    .map(|r| match &r.error {
                        None => format!("{}: ok ({})\n", r.target, r.passed.join(", ")),
                        Some(e) => format!("{}: FAILED: {e}\n", r.target),
                    })
                    .collect()
            })?;
            Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
        }
    }
}

fn shown_rows(shown: &[Shown]) -> Vec<[String; 4]> {
    shown
        .iter()
        .map(|s| {
            let mut notes = Vec::new();
            if s.encrypted {
                notes.push("encrypted".to_owned());
            }
            if let Some(days) = s.retention_days {
                notes.push(format!("retention {days}d, keep {}", s.keep_last));
            }
            if !s.origin.is_empty() {
                notes.push(format!("from {}", s.origin));
            }
            [s.name.clone(), s.kind.to_owned(), s.location.clone(), notes.join(", ")]
        })
        .collect()
}
