//! The SFTP store against a real sshd with its `internal-sftp` subsystem on loopback
//! ([`SftpPeer`]): what the store promises beyond the round trips the end-to-end tests
//! make (an object appears only when complete, a cut-off upload leaves nothing, listings
//! hide the partial files, refusals are named).

use futures_util::TryStreamExt;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload};

use dockhand_e2e::sftp::SftpPeer;

use super::SftpStore;
use crate::storage::error::{Problem, classify};
use crate::storage::kinds::{SftpTarget, parse_sftp_url};

fn target(peer: &SftpPeer, identity: &std::path::Path, known_hosts: &std::path::Path) -> SftpTarget {
    let (endpoint, path) = parse_sftp_url(&peer.url).unwrap();
    SftpTarget {
        url: peer.url.clone(),
        endpoint,
        path,
        identity_file: Some(identity.to_owned()),
        known_hosts: Some(known_hosts.to_owned()),
        prefix: String::new(),
    }
}

fn store(peer: &SftpPeer) -> SftpStore {
    SftpStore::new(&target(peer, &peer.identity_file, &peer.known_hosts))
}

async fn names(store: &SftpStore, prefix: Option<&Path>) -> Vec<String> {
    let listed: Vec<_> = store.list(prefix).try_collect().await.unwrap();
    let mut names: Vec<String> = listed.iter().map(|o| o.location.to_string()).collect();
    names.sort();
    names
}

#[tokio::test]
async fn objects_are_written_read_listed_and_deleted() {
    let peer = SftpPeer::start();
    let store = store(&peer);
    store.put(&Path::from("svc/a/one.tar.zst"), PutPayload::from_static(b"0123456789")).await.unwrap();
    store.put(&Path::from("svc/two.json"), PutPayload::from_static(b"{}")).await.unwrap();
    assert_eq!(names(&store, None).await, ["svc/a/one.tar.zst", "svc/two.json"]);
    assert_eq!(names(&store, Some(&Path::from("svc/a"))).await, ["svc/a/one.tar.zst"]);
    assert!(names(&store, Some(&Path::from("nothing-here"))).await.is_empty());
    let level = store.list_with_delimiter(Some(&Path::from("svc"))).await.unwrap();
    assert_eq!(level.common_prefixes, [Path::from("svc/a")]);
    assert_eq!(level.objects.iter().map(|o| o.location.to_string()).collect::<Vec<_>>(), ["svc/two.json"]);

    let key = Path::from("svc/a/one.tar.zst");
    let got = store.get(&key).await.unwrap();
    assert_eq!(got.meta.size, 10);
    assert_eq!(got.bytes().await.unwrap().as_ref(), b"0123456789");
    let options = GetOptions { range: Some(GetRange::Bounded(2..5)), ..Default::default() };
    assert_eq!(store.get_opts(&key, options).await.unwrap().bytes().await.unwrap().as_ref(), b"234");
    assert_eq!(store.head(&key).await.unwrap().size, 10);

    store.delete(&key).await.unwrap();
    let gone = store.get(&key).await.unwrap_err();
    assert!(matches!(gone, object_store::Error::NotFound { .. }), "{gone}");
    let again = store.delete(&key).await.unwrap_err();
    assert!(matches!(again, object_store::Error::NotFound { .. }), "{again}");
    // Every write went through `.dockhand-partial/` and left nothing there.
    assert_eq!(peer.files(), ["svc/two.json"]);
}

#[tokio::test]
async fn a_streamed_object_appears_only_when_complete_and_a_cut_off_one_never() {
    let peer = SftpPeer::start();
    let store = store(&peer);
    let key = Path::from("svc/vol.tar.zst");
    let part = |byte: u8| PutPayload::from(vec![byte; 3 * 1024 * 1024]);
    let mut upload = store.put_multipart(&key).await.unwrap();
    for byte in [1u8, 2, 3] {
        upload.put_part(part(byte)).await.unwrap();
    }
    assert!(names(&store, None).await.is_empty(), "listed before it was complete");
    assert!(store.get(&key).await.is_err(), "readable before it was complete");
    upload.complete().await.unwrap();
    let bytes = store.get(&key).await.unwrap().bytes().await.unwrap();
    assert_eq!(bytes.len(), 9 * 1024 * 1024);
    assert!(
        bytes[..3 * 1024 * 1024].iter().all(|b| *b == 1) && bytes[6 * 1024 * 1024..].iter().all(|b| *b == 3)
    );

    // Aborted: nothing under its name, the partial file removed.
    let other = Path::from("svc/aborted.tar.zst");
    let mut upload = store.put_multipart(&other).await.unwrap();
    upload.put_part(part(4)).await.unwrap();
    upload.abort().await.unwrap();
    // Dropped mid-way (a cancelled job): the same, once its clean-up ran.
    let dropped = Path::from("svc/dropped.tar.zst");
    let mut upload = store.put_multipart(&dropped).await.unwrap();
    upload.put_part(part(5)).await.unwrap();
    drop(upload);
    let since = std::time::Instant::now();
    while peer.files() != ["svc/vol.tar.zst"] && since.elapsed() < std::time::Duration::from_secs(10) {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(peer.files(), ["svc/vol.tar.zst"]);
    assert_eq!(names(&store, None).await, ["svc/vol.tar.zst"]);
}

#[tokio::test]
async fn a_refused_key_and_an_unknown_host_key_are_named() {
    let peer = SftpPeer::start();
    let refused = SftpStore::new(&target(&peer, &peer.wrong_identity_file, &peer.known_hosts));
    let err = refused.put(&Path::from("x"), PutPayload::from_static(b"x")).await.unwrap_err();
    assert_eq!(classify(&err), Problem::Credentials, "{err}");

    let empty = tempfile::NamedTempFile::new().unwrap();
    let unknown = SftpStore::new(&target(&peer, &peer.identity_file, empty.path()));
    let err = unknown.put(&Path::from("x"), PutPayload::from_static(b"x")).await.unwrap_err();
    assert_eq!(classify(&err), Problem::HostKey, "{err}");
    assert!(err.to_string().contains("ssh-keyscan"), "the hint says how to add the key: {err}");
    assert!(peer.files().is_empty());
}
