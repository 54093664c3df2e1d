//! `cargo xtask demo`: the README's "main job" on embedded defaults. It brings the private
//! engine up and runs dockhand against it; it grows into the whole maintenance cycle.

use crate::{engine, proc};

pub(crate) fn run() -> anyhow::Result<()> {
    let layout = engine::up()?;
    let dockhand = |args: &[&str]| {
        proc::run(
            crate::cargo()
                .args(["run", "--quiet", "--locked", "--package", "dockhand-cli", "--bin", "dockhand", "--"])
                .args(["--host", &layout.url()])
                .args(args),
        )
    };
    dockhand(&["engine", "info"])?;
    // What cron would do on this swarm now, and why.
    dockhand(&["plan"])?;
    eprintln!("\nthe private engine stays up; stop it with `cargo xtask engine down`");
    Ok(())
}
