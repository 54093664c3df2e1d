//! Tests of the transfer: progress, and what a restore verifies.

use std::time::Duration;

use object_store::ObjectStoreExt;

use crate::agent::protocol::AgentLine;
use crate::steps::transfer::download::ArchiveStream;
use crate::steps::transfer::download::stage_object;
use crate::steps::transfer::upload::Lines;
use crate::steps::transfer::upload::Transfer;
use crate::storage::Storage;
use sha2::Digest;

/// An archive of one file holding `text`.
fn archive_of(text: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f.txt"), text).unwrap();
    let mut out = Vec::new();
    crate::archive::pack(dir.path(), &mut out, 3, &std::sync::atomic::AtomicU64::new(0)).unwrap();
    out
}

async fn drain(mut stream: ArchiveStream) -> (Vec<u8>, String) {
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk.unwrap());
    }
    (bytes, stream.sha256().await.unwrap())
}

/// R3-02: a restore unpacks the bytes it checked. The object is read once into a
/// private file; a target that then serves another (valid) archive under the same key
/// changes nothing of what is restored.
#[tokio::test]
async fn what_is_restored_is_what_was_verified_even_if_the_target_changes() {
    let dir = tempfile::tempdir().unwrap();
    let storage =
        Storage::open(&crate::storage::targets::local_target("t", "test", dir.path().join("b"))).unwrap();
    let key = storage.key("web/n1_data_20260101T000000Z.tar.zst");
    let (a, b) = (archive_of("the archive that was verified"), archive_of("a swapped archive, also valid"));
    storage.store().put(&key, a.clone().into()).await.unwrap();
    let staged = stage_object(&storage, &key, None, None).await.unwrap();
    let hash = |bytes: &[u8]| hex::encode(sha2::Sha256::digest(bytes));
    assert_eq!((staged.sha256.as_str(), staged.size), (hash(&a).as_str(), a.len() as u64));
    assert_eq!(staged.stats.entries, 2, "the root and one file");
    // Swapped on the target after the check.
    storage.store().put(&key, b.clone().into()).await.unwrap();
    let (sent, sent_hash) = drain(ArchiveStream::staged(&staged).unwrap()).await;
    assert_eq!(sent, a, "the verified bytes, not the target's new ones");
    assert_eq!(sent_hash, staged.sha256);
    // A corrupted object is refused by the check itself.
    let mut broken = a.clone();
    let last = broken.len() - 10;
    broken[last] ^= 0xff;
    storage.store().put(&key, broken.into()).await.unwrap();
    assert!(stage_object(&storage, &key, None, None).await.is_err());
    // With the manifest's hash, that is what decides, and what the error says.
    let err = stage_object(&storage, &key, None, Some(&hash(&a))).await.err().unwrap_or_default();
    assert!(err.contains("the archive is corrupted") && err.contains(&hash(&a)), "{err}");
}

#[test]
fn progress_says_bytes_rate_and_eta() {
    let mib = 1_048_576;
    let backup = Transfer {
        moved: 50 * mib,
        read: Some((100 * mib, 400 * mib)),
        elapsed: Duration::from_secs(10),
        ..Transfer::default()
    };
    assert_eq!(backup.describe(), "read 100.0 of 400.0 MiB, sent 50.0 MiB at 10.0 MiB/s, ETA 30s");
    let restore = Transfer {
        moved: 10 * mib,
        moved_total: Some(10 * mib),
        elapsed: Duration::from_secs(2),
        ..Transfer::default()
    };
    assert_eq!(restore.describe(), "10.0 of 10.0 MiB at 5.0 MiB/s");
    let mut lines = Lines::default();
    let mut seen = Vec::new();
    lines.push(b"{\"agent\":\"size\",\"bytes\":7}\n{\"agent\":\"re", |l| seen.push(l));
    lines.push(b"ad\",\"bytes\":3}\nnoise\n", |l| seen.push(l));
    assert_eq!(seen, [AgentLine::Size { bytes: 7 }, AgentLine::Read { bytes: 3 }]);
}
