//! `dockhand completions SHELL` and `dockhand man DIR`: shell completions and man pages,
//! made from the same clap types that parse the command line, so they cannot drift.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::CommandFactory as _;

use crate::args::{Args, Shell};

/// Writes the completion script for `shell` to stdout.
pub(crate) fn completions(shell: Shell) -> anyhow::Result<ExitCode> {
    let mut command = Args::command();
    let mut out = Vec::new();
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(shell, &mut command, "dockhand", &mut out);
    std::io::stdout().lock().write_all(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// Writes one man page per command into `dir`: `dockhand.1`, `dockhand-clean.1`,
/// `dockhand-clean-node.1`… (hidden commands have none). Prints each file's path.
pub(crate) fn man(dir: &Path) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    clap_mangen::generate_to(Args::command(), dir)
        .with_context(|| format!("cannot write into {}", dir.display()))?;
    let mut pages: Vec<_> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "1"))
        .collect();
    pages.sort();
    let mut stdout = std::io::stdout().lock();
    for path in pages {
        writeln!(stdout, "{}", path.display())?;
    }
    Ok(ExitCode::SUCCESS)
}
