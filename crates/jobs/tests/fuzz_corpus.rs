//! Replays the fuzz corpus (`fuzz/corpus/<target>/`) of the jobs' targets through their own
//! entry points, under `cargo test`: what fuzzing once found stays fixed.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target);
    let mut inputs = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("a corpus entry").path();
        run(&std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())));
        inputs += 1;
    }
    assert!(inputs >= 3, "{target}: only {inputs} corpus inputs");
}

#[test]
fn restore_corpus() {
    replay("restore", dockhand_jobs::fuzzing::restore);
}

#[test]
fn agent_codec_corpus() {
    replay("agent_codec", dockhand_jobs::fuzzing::agent_codec);
}
