//! Tests of storage targets: the configuration, the seed's variables, keys and the check.

use std::collections::BTreeMap;
use std::path::PathBuf;

use dockhand_host::{ConfigFile, Environment};
use dockhand_policy::BackupPolicy;

use super::*;
use crate::storage::SEED_TARGET;
use crate::storage::TargetKind;
use crate::storage::error::StorageError;
use crate::storage::seed::SEED_RETENTION_DAYS;
use crate::storage::targets::StorageTargets;
use crate::storage::targets::local_target;

fn env(vars: &[(&str, &str)]) -> Environment {
    Environment::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
}

/// The targets, or the first error: a broken target's included.
fn load(yaml: &str, vars: &[(&str, &str)]) -> Result<StorageTargets, StorageError> {
    let file = ConfigFile::parse(yaml, false).unwrap();
    let targets = StorageTargets::load(&file, &env(vars), PathBuf::from("/data/backups"))?;
    if let Some((name, _)) = targets.problems().next() {
        return Err(targets.get(name).unwrap_err());
    }
    Ok(targets)
}

#[test]
fn local_is_the_embedded_default() {
    let targets = load("{}", &[]).unwrap();
    let local = targets.get("local").unwrap();
    assert_eq!(local.kind, TargetKind::Local { path: "/data/backups".into() });
    assert_eq!(targets.for_service(&policy(None)).unwrap().remove(0).name, "local");
}

fn policy(target: Option<&str>) -> BackupPolicy {
    let mut labels = BTreeMap::new();
    labels.insert("dockhand.backup.enable".to_owned(), "true".to_owned());
    if let Some(t) = target {
        labels.insert("dockhand.backup.target".to_owned(), t.to_owned());
    }
    let defaults = dockhand_policy::Defaults::default();
    let prefixes = dockhand_policy::LabelPrefixes::default();
    dockhand_policy::service_policy(&labels, false, &defaults, &prefixes).0.backup.unwrap()
}

#[test]
fn s3_credentials_come_from_files_or_variables_never_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "s3cr3t\n").unwrap();
    let yaml = format!(
        "storage:\n  targets:\n    offsite:\n      type: s3\n      endpoint: http://127.0.0.1:8333\n      bucket: b\n      \
         prefix: /swarm-a/\n      access_key_id_env: MY_KEY\n      secret_access_key_file: {}\n",
        secret.display()
    );
    let targets = load(&yaml, &[("MY_KEY", "AKIA1")]).unwrap();
    let offsite = targets.get("offsite").unwrap();
    let TargetKind::S3(s3) = &offsite.kind else { panic!("not s3") };
    assert_eq!(s3.secret_access_key.expose(), "s3cr3t");
    assert_eq!(s3.prefix, "swarm-a");
    assert!(!format!("{offsite:?}").contains("s3cr3t"), "a secret printed: {offsite:?}");
    assert_eq!(targets.for_service(&policy(Some("offsite"))).unwrap().remove(0).name, "offsite");

    let literal = "storage:\n  targets:\n    x:\n      type: s3\n      endpoint: http://h\n      bucket: b\n      \
                   secret_access_key: hunter2\n";
    let err = load(literal, &[("AWS_ACCESS_KEY_ID", "AKIA1")]).unwrap_err().to_string();
    assert!(err.contains("storage.targets.x.secret_access_key") && !err.contains("hunter2"), "{err}");
    let unset = "storage:\n  targets:\n    x:\n      type: s3\n      endpoint: http://h\n      bucket: b\n";
    let err = load(unset, &[]).unwrap_err().to_string();
    assert!(
        err.contains("storage.targets.x.access_key_id_env") && err.contains("AWS_ACCESS_KEY_ID"),
        "{err}"
    );
}

#[test]
fn bad_entries_are_named() {
    for (yaml, want) in [
        ("storage:\n  targets:\n    x:\n      type: ftp\n", "storage.targets.x.type"),
        ("storage:\n  targets:\n    x:\n      type: local\n", "storage.targets.x.path"),
        ("storage:\n  targets:\n    x:\n      type: local\n      path: rel\n", "not an absolute path"),
        ("storage:\n  targets:\n    x:\n      type: local\n      path: /a\n      colour: red\n", "colour"),
        (
            "storage:\n  targets:\n    x:\n      type: s3\n      endpoint: s3.example.com\n      bucket: b\n",
            "http://",
        ),
        (
            "storage:\n  targets:\n    x:\n      type: local\n      path: /a\n      compression_level: 40\n",
            "zstd level",
        ),
        ("storage:\n  targets: [1]\n", "storage.targets"),
        (
            "storage:\n  targets:\n    x:\n      type: local\n      path: /a\n      encryption:\n        recipients: [age1x]\n",
            "storage.targets.x.encryption.recipients: entry 0 (\"age1x\") is not an age X25519 recipient",
        ),
        (
            "storage:\n  targets:\n    x:\n      type: local\n      path: /a\n      encryption:\n        identity_file: /k\n",
            "storage.targets.x.encryption.recipients: encryption needs at least one age recipient",
        ),
    ] {
        let err = load(yaml, &[]).unwrap_err().to_string();
        assert!(err.contains(want), "{yaml}: {err}");
    }
    let err = load("{}", &[]).unwrap().get("nope").unwrap_err().to_string();
    assert!(err.contains("\"nope\"") && err.contains("local"), "{err}");
}

#[test]
fn the_seed_variables_and_labels_form_a_target() {
    let vars = [
        ("SWARM_UTILS_S3_URL", "s3-api.example.com"),
        ("SWARM_UTILS_S3_HTTPS", "false"),
        ("SWARM_UTILS_S3_BUCKET", "seed-bucket"),
        ("SWARM_UTILS_S3_ACCESS_KEY", "AK"),
        ("SWARM_UTILS_S3_SECRET_KEY", "SK"),
        ("SWARM_UTILS_S3_RETENTION_DAYS", "5"),
    ];
    let targets = load("{}", &vars).unwrap();
    let seed = targets.for_service(&policy(None)).unwrap().remove(0);
    assert_eq!(seed.name, SEED_TARGET);
    assert_eq!(seed.retention_days, Some(5));
    let TargetKind::S3(s3) = &seed.kind else { panic!("not s3") };
    assert_eq!(s3.endpoint, "http://s3-api.example.com");

    let mut labels = BTreeMap::new();
    labels.insert("swarm-utils.backup.enable".to_owned(), "true".to_owned());
    labels.insert("swarm-utils.backup.volume-list-upload.s3.bucket".to_owned(), "other".to_owned());
    let prefixes = dockhand_policy::LabelPrefixes::with_swarm_utils();
    let defaults = dockhand_policy::Defaults::default();
    let p = dockhand_policy::service_policy(&labels, false, &defaults, &prefixes).0.backup.unwrap();
    // R3-05: another bucket takes its own keys, never the server's.
    let err = targets.for_service(&p).unwrap_err().to_string();
    assert!(err.contains("backup.volume-list-upload.s3.bucket") && err.contains("own keys"), "{err}");
    labels.insert("swarm-utils.backup.volume-list-upload.s3.access-key".to_owned(), "AK2".to_owned());
    labels.insert("swarm-utils.backup.volume-list-upload.s3.secret-key".to_owned(), "SK2".to_owned());
    let p = dockhand_policy::service_policy(&labels, false, &defaults, &prefixes).0.backup.unwrap();
    let TargetKind::S3(s3) = targets.for_service(&p).unwrap().remove(0).kind else { panic!("not s3") };
    assert_eq!((s3.bucket.as_str(), s3.access_key_id.expose()), ("other", "AK2"));

    // Without the variable, the seed's default of 5 days, not "keep all".
    let unset: Vec<_> = vars.iter().copied().filter(|(k, _)| *k != "SWARM_UTILS_S3_RETENTION_DAYS").collect();
    let seed = load("{}", &unset).unwrap().for_service(&policy(None)).unwrap().remove(0);
    assert_eq!(seed.retention_days, Some(SEED_RETENTION_DAYS));

    let err = load("{}", &[("SWARM_UTILS_S3_URL", "h")]).unwrap_err().to_string();
    assert!(err.contains("SWARM_UTILS_S3_BUCKET"), "{err}");
}

/// R3-05: a label may not point the server's keys at another endpoint or bucket.
#[test]
fn labels_never_send_the_servers_keys_elsewhere() {
    let service = |pairs: &[(&str, &str)]| {
        let mut labels: BTreeMap<String, String> =
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        labels.insert("dockhand.backup.enable".into(), "true".into());
        let (prefixes, defaults) =
            (dockhand_policy::LabelPrefixes::default(), dockhand_policy::Defaults::default());
        dockhand_policy::service_policy(&labels, false, &defaults, &prefixes).0.backup.unwrap()
    };
    let url = "dockhand.backup.volume-list-upload.s3.url";
    let no_url = [
        ("SWARM_UTILS_S3_BUCKET", "b"),
        ("SWARM_UTILS_S3_ACCESS_KEY", "AK"),
        ("SWARM_UTILS_S3_SECRET_KEY", "SK"),
    ];
    let targets = load("{}", &no_url).unwrap();
    let err = targets.for_service(&service(&[(url, "https://evil.example")])).unwrap_err().to_string();
    assert!(err.contains("s3.url") && err.contains("https://evil.example") && !err.contains("SK"), "{err}");
    let with_url = [("SWARM_UTILS_S3_URL", "s3.example.com"), no_url[0], no_url[1], no_url[2]];
    let targets = load("{}", &with_url).unwrap();
    assert!(targets.for_service(&service(&[(url, "http://10.0.0.5:9000")])).is_err());
    // The server's own endpoint, written out, moves nothing.
    let same = targets.for_service(&service(&[(url, "s3.example.com")])).unwrap().remove(0);
    let TargetKind::S3(s3) = same.kind else { panic!("not s3") };
    assert_eq!(s3.access_key_id.expose(), "AK");
    // With its own keys, a label may name its own place.
    let own = targets
        .for_service(&service(&[
            (url, "https://other.example"),
            ("dockhand.backup.volume-list-upload.s3.access-key", "AK2"),
            ("dockhand.backup.volume-list-upload.s3.secret-key", "SK2"),
        ]))
        .unwrap()
        .remove(0);
    let TargetKind::S3(s3) = own.kind else { panic!("not s3") };
    assert_eq!((s3.endpoint.as_str(), s3.access_key_id.expose()), ("https://other.example", "AK2"));
}

#[test]
fn keys_live_under_the_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = local_target("t", "test", dir.path().to_owned());
    let storage = Storage::open(&settings).unwrap();
    assert_eq!(storage.key("app/n_v_1.tar.zst").as_ref(), "app/n_v_1.tar.zst");
    settings.kind = TargetKind::Local { path: dir.path().join("sub") };
    assert!(Storage::open(&settings).is_ok());
}

#[tokio::test]
async fn a_local_target_passes_its_check() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(&local_target("t", "test", dir.path().join("b"))).unwrap();
    let report = storage.check().await.unwrap();
    assert_eq!(report.passed, ["write", "read", "list", "delete"]);
}

/// The library installs no crypto provider (no test of this crate's does either): an S3
/// target in a program that chose none is refused by name, before any request.
#[test]
fn an_s3_target_needs_the_programs_crypto_provider() {
    assert!(rustls::crypto::CryptoProvider::get_default().is_none(), "a test of dockhand-jobs installed one");
    let vars = [
        ("SWARM_UTILS_S3_URL", "127.0.0.1:9"),
        ("SWARM_UTILS_S3_HTTPS", "false"),
        ("SWARM_UTILS_S3_BUCKET", "b"),
        ("SWARM_UTILS_S3_ACCESS_KEY", "AK"),
        ("SWARM_UTILS_S3_SECRET_KEY", "SK"),
    ];
    let targets = load("{}", &vars).unwrap();
    let seed = targets.for_service(&policy(None)).unwrap().remove(0);
    let Err(err) = Storage::open(&seed) else { panic!("opened without a crypto provider") };
    assert!(matches!(&err, StorageError::Operation { problem: Problem::CryptoProvider, .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("no rustls crypto provider") && text.contains("http://127.0.0.1:9"), "{text}");
}

fn azure(fields: &str) -> String {
    format!("storage:\n  targets:\n    far:\n      type: azure\n{fields}")
}

#[test]
fn an_azure_target_takes_a_key_or_a_sas_from_outside_the_file_and_says_what_is_wrong() {
    let key = "ZG9ja2hhbmQtdGVzdC1henVyaXRlLWtleS0wMTIzNDU=";
    let yaml = azure("      account: backupsweu\n      container: swarm-backups\n      prefix: /a/\n");
    let targets = load(&yaml, &[("AZURE_STORAGE_KEY", key)]).unwrap();
    let far = targets.get("far").unwrap();
    let TargetKind::Azure(az) = &far.kind else { panic!("not azure: {far:?}") };
    assert_eq!(az.endpoint, "https://backupsweu.blob.core.windows.net");
    assert_eq!((az.prefix.as_str(), far.kind.name()), ("a", "azure"));
    assert_eq!(far.kind.location(), "https://backupsweu.blob.core.windows.net/swarm-backups/a");
    assert!(!format!("{far:?} {far}").contains(key), "a secret printed: {far:?}");
    assert!(targets.secrets().contains(&key.to_owned()));

    let sas = "?sv=2021-08-06&sr=c&sp=racwdl&se=2099-01-01T00%3A00%3A00Z&sig=ab%2Bc%2Fd%3D";
    let yaml = azure(
        "      account: dev1\n      container: c-1\n      endpoint: http://127.0.0.1:10000/dev1/\n      sas_env: SAS\n",
    );
    let targets = load(&yaml, &[("SAS", sas)]).unwrap();
    let far = targets.get("far").unwrap();
    let TargetKind::Azure(az) = &far.kind else { panic!("not azure") };
    assert_eq!(az.endpoint, "http://127.0.0.1:10000/dev1");
    assert_eq!(az.credential, AzureCredential::Sas(crate::Secret::new(&sas[1..])));
    // The token and its signature, as written and decoded, are masked wherever they appear.
    let secrets = targets.secrets();
    assert!(
        secrets.contains(&"ab%2Bc%2Fd%3D".to_owned()) && secrets.contains(&"ab+c/d=".to_owned()),
        "{secrets:?}"
    );
    let scrubbed = super::scrub(&far.kind, "error sending request for url (http://h/c?sig=ab%2Bc%2Fd%3D)");
    assert!(!scrubbed.contains("ab%2B"), "{scrubbed}");

    for (fields, vars, key, words) in [
        (
            "      container: c-1\n",
            &[("AZURE_STORAGE_KEY", key)][..],
            "storage.targets.far.account",
            "storage account",
        ),
        (
            "      account: Dev_1\n      container: c-1\n",
            &[("AZURE_STORAGE_KEY", key)],
            "account",
            "lowercase",
        ),
        (
            "      account: dev1\n      container: C--1\n",
            &[("AZURE_STORAGE_KEY", key)],
            "container",
            "container name",
        ),
        (
            "      account: dev1\n      container: c-1\n",
            &[],
            "access_key_env",
            "AZURE_STORAGE_KEY is not set",
        ),
        (
            "      account: dev1\n      container: c-1\n      access_key: x\n",
            &[],
            "access_key",
            "access_key_env",
        ),
        (
            "      account: dev1\n      container: c-1\n      access_key_env: K\n",
            &[("K", "not base64!")],
            "access_key_env",
            "not base64",
        ),
        (
            "      account: dev1\n      container: c-1\n      access_key_env: K\n      sas_env: S\n",
            &[("K", key), ("S", "sv=1")],
            "sas",
            "not both",
        ),
        (
            "      account: dev1\n      container: c-1\n      bucket: b\n",
            &[("AZURE_STORAGE_KEY", key)],
            "bucket",
            "type: s3",
        ),
    ] {
        let err = load(&azure(fields), vars).unwrap_err().to_string();
        assert!(err.contains(key) && err.contains(words), "{fields}: {err}");
    }
    let s3_with_container = "storage:\n  targets:\n    x:\n      type: s3\n      endpoint: http://h\n      bucket: b\n      container: c\n";
    let err =
        load(s3_with_container, &[("AWS_ACCESS_KEY_ID", "a"), ("AWS_SECRET_ACCESS_KEY", "b")]).unwrap_err();
    assert!(err.to_string().contains("container belongs to `type: azure`"), "{err}");
}

#[test]
fn a_webdav_target_takes_its_password_from_outside_the_file_and_says_what_is_wrong() {
    let yaml = "storage:\n  targets:\n    nas:\n      type: webdav\n      url: https://nas.example.com/dav/\n      \
                username: backup\n      password_env: NAS_PASSWORD\n      prefix: /swarm-a/\n";
    let targets = load(yaml, &[("NAS_PASSWORD", "hunter22")]).unwrap();
    let nas = targets.get("nas").unwrap();
    let TargetKind::WebDav(dav) = &nas.kind else { panic!("not webdav: {nas:?}") };
    assert_eq!(
        (dav.url.as_str(), dav.username.as_str(), dav.prefix.as_str()),
        ("https://nas.example.com/dav", "backup", "swarm-a")
    );
    assert_eq!(nas.kind.location(), "https://nas.example.com/dav/swarm-a");
    assert_eq!(
        nas.to_string(),
        "storage target \"nas\" (webdav https://nas.example.com/dav, prefix swarm-a)"
    );
    assert!(!format!("{nas:?}").contains("hunter22") && targets.secrets().contains(&"hunter22".to_owned()));

    let entry = |fields: &str| format!("storage:\n  targets:\n    nas:\n      type: webdav\n{fields}");
    for (fields, vars, key, words) in [
        ("      username: u\n", &[("WEBDAV_PASSWORD", "p")][..], "storage.targets.nas.url", "url"),
        (
            "      url: https://u:p@h/dav\n      username: u\n",
            &[("WEBDAV_PASSWORD", "p")],
            "url",
            "credentials do not go in the URL",
        ),
        ("      url: ftp://h/dav\n      username: u\n", &[("WEBDAV_PASSWORD", "p")], "url", "not an http"),
        ("      url: https://h/dav\n", &[("WEBDAV_PASSWORD", "p")], "username", "needs a username"),
        ("      url: https://h/dav\n      username: u\n", &[], "password_env", "WEBDAV_PASSWORD is not set"),
        ("      url: https://h/dav\n      username: u\n      password: p\n", &[], "password", "password_env"),
        (
            "      url: https://h/dav\n      username: u\n      ca_file: /nonexistent/ca.pem\n",
            &[("WEBDAV_PASSWORD", "p")],
            "ca_file",
            "/nonexistent/ca.pem",
        ),
        (
            "      url: https://h/dav\n      username: u\n      bucket: b\n",
            &[("WEBDAV_PASSWORD", "p")],
            "bucket",
            "type: s3",
        ),
    ] {
        let err = load(&entry(fields), vars).unwrap_err().to_string();
        assert!(err.contains(key) && err.contains(words), "{fields}: {err}");
    }
}

#[test]
fn an_sftp_target_names_its_server_and_directory_in_one_url_and_says_what_is_wrong() {
    let key = tempfile::NamedTempFile::new().unwrap();
    let yaml = format!(
        "storage:\n  targets:\n    far:\n      type: sftp\n      url: sftp://backup@store.example.com:2222/srv/backups/\n      \
         identity_file: {}\n      prefix: /swarm-a/\n",
        key.path().display()
    );
    let targets = load(&yaml, &[]).unwrap();
    let far = targets.get("far").unwrap();
    let TargetKind::Sftp(sftp) = &far.kind else { panic!("not sftp: {far:?}") };
    assert_eq!(
        (sftp.endpoint.user(), sftp.endpoint.host(), sftp.endpoint.port(), sftp.path.as_str()),
        (Some("backup"), "store.example.com", Some(2222), "/srv/backups")
    );
    assert_eq!(sftp.identity_file.as_deref(), Some(key.path()));
    assert_eq!(far.kind.location(), "sftp://backup@store.example.com:2222/srv/backups/swarm-a");
    assert_eq!(
        far.to_string(),
        "storage target \"far\" (sftp sftp://backup@store.example.com:2222/srv/backups, prefix swarm-a)"
    );
    assert!(far.kind.secrets().is_empty(), "the key stays in its file");

    // `/~/` is the login directory; no path is the login directory itself.
    let parse = |url: &str| crate::storage::kinds::parse_sftp_url(url).map(|(_, path)| path);
    assert_eq!(parse("sftp://h/~/backups").unwrap(), "backups");
    assert_eq!(parse("sftp://h/~").unwrap(), "");
    assert_eq!(parse("sftp://h").unwrap(), "");
    assert_eq!(parse("sftp://[::1]:22/b").unwrap(), "/b");

    let entry = |fields: &str| format!("storage:\n  targets:\n    far:\n      type: sftp\n{fields}");
    for (fields, key, words) in [
        ("      prefix: p\n", "storage.targets.far.url", "needs its url"),
        ("      url: https://h/dav\n", "url", "not an sftp:// URL"),
        ("      url: sftp://u:hunter22@h/b\n", "url", "must not carry a password"),
        ("      url: sftp:///b\n", "url", "has no host"),
        ("      url: sftp://h:99999/b\n", "url", "invalid port"),
        ("      url: sftp://h/b/../c\n", "url", "'..'"),
        ("      url: sftp://h/b\n      identity_file: id\n", "identity_file", "not an absolute path"),
        ("      url: sftp://h/b\n      known_hosts: /nonexistent/kh\n", "known_hosts", "/nonexistent/kh"),
        ("      url: sftp://h/b\n      username: u\n", "username", "type: webdav"),
        ("      url: sftp://h/b\n      endpoint: https://h\n", "endpoint", "url"),
    ] {
        let err = load(&entry(fields), &[]).unwrap_err().to_string();
        assert!(err.contains(key) && err.contains(words), "{fields}: {err}");
        assert!(!err.contains("hunter22"), "a password printed: {err}");
    }
}

#[test]
fn an_empty_credential_masks_nothing() {
    // The seed's labels can name an empty key (`backup.volume-list-upload.s3.access-key=`).
    let kind = TargetKind::S3(crate::storage::S3Target {
        endpoint: "http://h".into(),
        region: "us-east-1".into(),
        bucket: "b".into(),
        prefix: String::new(),
        path_style: true,
        access_key_id: crate::Secret::new(""),
        secret_access_key: crate::Secret::new("s3cr3t"),
    });
    assert_eq!(super::scrub(&kind, "refused: s3cr3t at http://h"), "refused: *** at http://h");
}
