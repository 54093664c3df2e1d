//! Tests of the catalog: names, keys, manifests, listings, choices and retention.

use super::*;

fn object(volume: &str, ts: &str) -> BackupObject {
    BackupObject {
        key: format!("app/n1_{volume}_{ts}{ARCHIVE_SUFFIX}"),
        node: "n1".into(),
        volume: volume.into(),
        timestamp: ts.into(),
        size: 1,
        manifest: None,
        check: "ok".into(),
    }
}

#[test]
fn names_parse_back_with_underscores_in_the_volume() {
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_855_083);
    let key = archive_key("app", "worker_1", "stack_data_2", at, false);
    assert_eq!(key, "app/worker-1_stack_data_2_20261128T083803Z.tar.zst");
    let name = key.strip_prefix("app/").unwrap();
    assert_eq!(parse_archive_name(name), Some(("worker-1", "stack_data_2", "20261128T083803Z")));
    let sealed = archive_key("app", "n1", "data", at, true);
    assert_eq!(sealed, "app/n1_data_20261128T083803Z.tar.zst.age");
    assert_eq!(parse_archive_name(&sealed["app/".len()..]), Some(("n1", "data", "20261128T083803Z")));
    assert_eq!(parse_archive_name("n_v_notatime.tar.zst"), None);
    assert_eq!(parse_archive_name("n_v_20261128T083803Z.tar.zst.manifest.json"), None);
}

/// R3-05: a manifest larger than the limit is not read into memory.
#[tokio::test]
async fn an_oversized_manifest_is_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let storage =
        Storage::open(&crate::storage::targets::local_target("t", "test", dir.path().join("b"))).unwrap();
    let name = "web/n1_data_20260101T000000Z.tar.zst";
    let put = |key: &str, body: Vec<u8>| {
        let (storage, key) = (storage.clone(), storage.key(key));
        async move { storage.store().put(&key, body.into()).await.unwrap() }
    };
    put(name, b"archive".to_vec()).await;
    let mut huge = br#"{"format": 1, "pad": ""#.to_vec();
    huge.resize(MANIFEST_LIMIT + 10, b'x');
    huge.extend_from_slice(br#""}"#);
    put(&format!("{name}{MANIFEST_SUFFIX}"), huge).await;
    let listed = list_backups(&storage, "web").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(
        listed[0].manifest.is_none() && listed[0].check == "no readable manifest",
        "{:?}",
        listed[0].check
    );
}

/// R3-02: a restore uses only archives of volumes the service mounts, whose manifest
/// says the same: never a volume an object's name chose.
#[test]
fn a_restore_refuses_volumes_the_service_does_not_mount() {
    let service: Service = serde_json::from_value(serde_json::json!({
        "ID": "s1",
        "Spec": {"Name": "web", "Labels": {"com.docker.stack.namespace": "shop"},
            "TaskTemplate": {"ContainerSpec": {"Image": "x", "Mounts": [
                {"Type": "volume", "Source": "shop_web_data", "Target": "/data"},
                {"Type": "bind", "Source": "/etc", "Target": "/etc"}]}}}
    }))
    .unwrap();
    let with_manifest = |volume: &str, says: &str, owner: &str| {
        let mut o = object(volume, "20260101T000000Z");
        o.key = format!("web/n1_{volume}_20260101T000000Z.tar.zst");
        let mut m: Manifest = serde_json::from_value(serde_json::json!({
            "format": 1, "service": owner, "image": "x", "node": "n1", "volume": says,
            "created": "", "bytes": 1, "sha256": "", "compression": "zstd", "level": 3,
            "entries": 1, "content_bytes": 1, "encrypted_to": [], "dockhand_version": "", "job": ""
        }))
        .unwrap();
        m.volume = says.to_owned();
        o.manifest = Some(m);
        o
    };
    assert_eq!(own_archive(&service, &with_manifest("shop_web_data", "shop_web_data", "web")), Ok(()));
    let e = own_archive(&service, &with_manifest("victim", "victim", "web")).unwrap_err().to_string();
    assert!(e.contains("volume victim is not a volume of service web") && e.contains("shop_web_data"), "{e}");
    let e = own_archive(&service, &with_manifest("/etc", "/etc", "web")).unwrap_err().to_string();
    assert!(e.contains("not a volume of service web"), "{e}");
    let e = own_archive(&service, &with_manifest("shop_web_data", "victim", "web")).unwrap_err().to_string();
    assert!(e.contains("manifest says volume \"victim\""), "{e}");
    let e = own_archive(&service, &with_manifest("shop_web_data", "shop_web_data", "other"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("manifest says service \"other\""), "{e}");
}

/// R3-17: under a service called `node`, node backups (`node/<host>/…`) are not its own.
#[test]
fn a_deeper_key_is_not_an_archive_of_the_directory() {
    assert_eq!(parse_archive_name("host1/host1_data_20260101T000000Z.tar.zst"), None);
    assert_eq!(
        parse_archive_name("host1_data_20260101T000000Z.tar.zst"),
        Some(("host1", "data", "20260101T000000Z"))
    );
}

#[test]
fn retention_keeps_the_newest_and_other_volumes() {
    let now = parse_key_timestamp("20261128T000000Z").unwrap();
    let objects = vec![
        object("data", "20261101T000000Z"),
        object("data", "20261110T000000Z"),
        object("data", "20261127T000000Z"),
        object("other", "20260101T000000Z"),
    ];
    let gone: Vec<&str> = expired(&objects, "data", now, 7, 1).iter().map(|o| o.timestamp.as_str()).collect();
    assert_eq!(gone, ["20261110T000000Z", "20261101T000000Z"]);
    // keep-last wins over age: all three are old, the newest two stay.
    let later = parse_key_timestamp("20271128T000000Z").unwrap();
    let gone = expired(&objects, "data", later, 7, 2);
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].timestamp, "20261101T000000Z");
}

fn on(node: &str, volume: &str, ts: &str) -> BackupObject {
    let mut o = object(volume, ts);
    o.node = node.into();
    o.key = format!("app/{node}_{volume}_{ts}{ARCHIVE_SUFFIX}");
    o
}

/// A volume backed up from several nodes: retention keeps each node's newest, a restore
/// takes each node's newest, and one node without a copy stops it.
#[test]
fn a_volume_on_several_nodes_keeps_and_restores_each_nodes_copy() {
    let now = parse_key_timestamp("20261128T000000Z").unwrap();
    let objects = vec![
        on("n1", "data", "20261101T000000Z"),
        on("n1", "data", "20261102T000000Z"),
        on("n2", "data", "20261101T000000Z"),
        on("n3", "data", "20261127T000000Z"),
    ];
    let gone: Vec<&str> = expired(&objects, "data", now, 7, 1).iter().map(|o| o.key.as_str()).collect();
    assert_eq!(gone, ["app/n1_data_20261101T000000Z.tar.zst"], "n2's only copy stays");
    let nodes = ["n1".to_owned(), "n2".to_owned()];
    let chosen: Vec<&str> = choose_per_node(&objects, &RestoreOptions::new(), None, &nodes)
        .unwrap()
        .iter()
        .map(|o| o.key.as_str())
        .collect();
    assert_eq!(chosen, ["app/n1_data_20261102T000000Z.tar.zst", "app/n2_data_20261101T000000Z.tar.zst"]);
    let err = choose_per_node(&objects, &RestoreOptions::new(), None, &["n1".into(), "n4".into()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("no backup of node n4") && err.contains("--node"), "{err}");
    let at = RestoreOptions::new().at("20261101T000000Z");
    assert_eq!(choose_per_node(&objects, &at, Some("data"), &nodes).unwrap().len(), 2);
    assert!(choose_per_node(&objects, &RestoreOptions::new(), Some("other"), &nodes).is_err());
}

#[test]
fn a_restore_picks_the_newest_per_volume_or_what_was_asked() {
    let objects = vec![
        object("data", "20261101T000000Z"),
        object("data", "20261110T000000Z"),
        object("logs", "20261105T000000Z"),
    ];
    let newest = choose_backups(&objects, &RestoreOptions::new(), None).unwrap();
    let ts: Vec<&str> = newest.iter().map(|o| o.timestamp.as_str()).collect();
    assert_eq!(ts, ["20261110T000000Z", "20261105T000000Z"]);
    let at = choose_backups(&objects, &RestoreOptions::new().at("20261101T000000Z"), Some("data")).unwrap();
    assert_eq!(at[0].timestamp, "20261101T000000Z");
    let err = choose_backups(&objects, &RestoreOptions::new().at("20200101T000000Z"), Some("data"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("20200101T000000Z"), "{err}");
    let by_key =
        choose_backups(&objects, &RestoreOptions::new().object(objects[0].key.clone()), None).unwrap();
    assert_eq!(by_key[0].key, objects[0].key);
}

#[test]
fn a_timestamp_of_anyones_bytes_never_panics() {
    for ts in ["2026112\u{e9}T083803Z", "20261128T08380\u{e9}Z", "20261128T083803Z"] {
        let _ = parse_key_timestamp(ts);
    }
    assert!(parse_key_timestamp("2026112xT083803Z").is_none());
    assert!(parse_key_timestamp("20261128T083803Z").is_some());
}

#[test]
fn timestamps_round_trip_and_sort() {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_855_083);
    let ts = key_timestamp(t);
    assert_eq!(ts, "20261128T083803Z");
    assert_eq!(parse_key_timestamp(&ts), Some(t));
    assert!(key_timestamp(t) < key_timestamp(t + Duration::from_secs(1)));
    for bad in ["", "2026", "20261128 083803Z", "20261128T0838030", "20261399T083803Z"] {
        assert_eq!(parse_key_timestamp(bad), None, "{bad}");
    }
}
