//! Entry points shared by the cargo-fuzz targets (`fuzz/`) and the corpus replay test
//! (`crates/jobs/tests/fuzz_corpus.rs`): the restore path's archive names and manifests, and the agent
//! codec. Each takes raw bytes and must never panic.

use std::time::{Duration, UNIX_EPOCH};

use crate::agent::protocol::AgentLine;
use crate::agent::protocol::AgentTask;
use crate::steps::catalog::BackupObject;
use crate::steps::catalog::Manifest;
use crate::steps::catalog::archive_key;
use crate::steps::catalog::parse_archive_name;

/// Archive names and manifests, as a restore reads them from a target anyone may write to:
/// the first line is an object's name under a service's directory, the rest its manifest.
pub fn restore(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (name, manifest) = text.split_once('\n').unwrap_or((&text, ""));
    if let Some((node, volume, ts)) = parse_archive_name(name) {
        assert!(!node.contains('/') && !volume.is_empty(), "{name:?}");
        assert!(!node.contains('_'), "the node part has no '_': {name:?}");
        // What a backup writes parses back to itself.
        if let Some(at) = crate::steps::catalog::parse_key_timestamp(ts) {
            let at = at.max(UNIX_EPOCH + Duration::from_secs(1));
            let key = archive_key("svc", node, volume, at, name.ends_with(".age"));
            let again = parse_archive_name(key.trim_start_matches("svc/"));
            assert_eq!(again.map(|(n, v, _)| (n, v)), Some((node, volume)), "{key}");
        }
    }
    let Ok(manifest) = serde_json::from_str::<Manifest>(manifest) else { return };
    let object = BackupObject {
        key: format!("svc/{name}"),
        node: manifest.node.clone(),
        volume: manifest.volume.clone(),
        timestamp: String::new(),
        size: manifest.bytes,
        manifest: Some(manifest.clone()),
        check: String::new(),
    };
    let service: dockhand_engine::Service = serde_json::from_value(serde_json::json!({
        "ID": "s", "Spec": {"Name": "svc", "TaskTemplate": {"ContainerSpec": {"Image": "x",
            "Mounts": [{"Type": "volume", "Source": "data", "Target": "/data"}]}}}
    }))
    .expect("a service");
    if crate::steps::catalog::own_archive(&service, &object).is_ok() {
        assert_eq!((manifest.volume.as_str(), manifest.service.as_str()), ("data", "svc"), "{manifest:?}");
    }
}

/// The agent codec: argument lists (NUL-separated) and report lines (newline-separated)
/// round-trip through their own encoders, and nothing panics.
pub fn agent_codec(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let args: Vec<String> = text.split('\0').map(str::to_owned).collect();
    if let Ok((task, start_by)) = AgentTask::from_args(&args) {
        let written = task.to_args(start_by);
        let again = AgentTask::from_args(&written[1..]).expect("what to_args writes parses");
        assert_eq!(again, (task, start_by), "{written:?}");
    }
    let _ = crate::agent::protocol::split_out(&args);
    for line in text.lines() {
        if let Some(parsed) = AgentLine::parse(line) {
            assert_eq!(AgentLine::parse(&parsed.to_line()).as_ref(), Some(&parsed), "{line}");
        }
    }
}
