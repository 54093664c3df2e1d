//! Replays the fuzz corpus (`fuzz/corpus/<target>/`) through the fuzz targets' own entry
//! points, under `cargo test`: what fuzzing once found stays fixed. Every target's corpus
//! is replayed here, the policy's as well as the jobs' (the jobs crate sees both).
//! `cargo xtask fuzz` runs the fuzzers themselves.

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
fn labels_corpus() {
    replay("labels", dockhand_policy::fuzzing::labels);
}

#[test]
fn image_ref_corpus() {
    replay("image_ref", dockhand_policy::fuzzing::image_ref);
}

#[test]
fn jwt_corpus() {
    replay("jwt", dockhand_policy::fuzzing::jwt);
}

#[test]
fn redact_corpus() {
    replay("redact", dockhand_policy::fuzzing::redact);
}

#[test]
fn restore_corpus() {
    replay("restore", dockhand_jobs::fuzzing::restore);
}

#[test]
fn agent_codec_corpus() {
    replay("agent_codec", dockhand_jobs::fuzzing::agent_codec);
}
