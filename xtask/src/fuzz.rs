//! `cargo xtask fuzz [SECONDS]`: runs each cargo-fuzz target (`fuzz/`) for a bounded time
//! (default 60 s each), installing cargo-fuzz when missing. The targets need nightly-only
//! compiler flags (sanitizers); `RUSTC_BOOTSTRAP=1` lets the stable toolchain, the only one
//! these machines have, accept them. `cargo test` replays the corpus without them.

use crate::proc;

const TARGETS: [&str; 6] = ["labels", "image_ref", "jwt", "redact", "restore", "agent_codec"];

pub(crate) fn run(seconds: u64) -> anyhow::Result<()> {
    let installed = crate::cargo().args(["fuzz", "--version"]).output().is_ok_and(|o| o.status.success());
    if !installed {
        eprintln!("cargo-fuzz is missing: installing it from crates.io");
        proc::run(crate::cargo().args(["install", "--locked", "cargo-fuzz"]))?;
    }
    let dir = crate::project_root().join("fuzz");
    for target in TARGETS {
        // libFuzzer writes new inputs to the first corpus directory: a scratch one, so the
        // committed corpus (the second, read) only changes when someone copies a find in.
        let scratch = crate::project_root().join("target").join("fuzz-corpus").join(target);
        std::fs::create_dir_all(&scratch)?;
        let corpus = dir.join("corpus").join(target);
        proc::run(
            crate::cargo()
                .current_dir(&dir)
                .env("RUSTC_BOOTSTRAP", "1")
                .args(["fuzz", "run", target])
                .arg(&scratch)
                .arg(&corpus)
                .arg("--")
                .arg(format!("-max_total_time={seconds}")),
        )?;
    }
    eprintln!("fuzz: {} targets ran {seconds}s each without a crash", TARGETS.len());
    Ok(())
}
