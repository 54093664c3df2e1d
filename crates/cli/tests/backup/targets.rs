//! Each storage target type against its real peer: `storage check`, the round trips, several
//! targets at once, and retention.

use super::*;

/// `storage check` and `storage ls` on each remote target type's real peer, and the local
/// target.
#[test]
fn storage_check_passes_on_every_target_type() {
    for kind in KINDS {
        let peer = Remote::start(kind);
        let dir = tempfile::tempdir().unwrap();
        config(dir.path(), &peer.target_yaml("offsite", "swarm-a"));
        let vars = peer.credentials();
        let env: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let out = dockhand(dir.path(), &["storage", "check"], &env);
        assert!(out.status.success(), "{kind}: {}{}\n{}", stdout(&out), stderr(&out), peer.log());
        let text = stdout(&out);
        assert!(text.contains("offsite: ok (write, read, list, delete)"), "{kind}: {text}");
        assert!(text.contains("local: ok (write, read, list, delete)"), "{kind}: {text}");
        assert!(dir.path().join("data/dockhand/backups").is_dir(), "the local target is under XDG_DATA_HOME");

        let out = dockhand(dir.path(), &["storage", "ls", "--json"], &env);
        let text = stdout(&out);
        assert!(
            out.status.success() && text.contains("\"offsite\"") && text.contains(&format!("\"{kind}\"")),
            "{text}"
        );
        for secret in peer.secrets() {
            assert!(!text.contains(&secret), "{kind}: a credential printed: {text}");
        }
        if let Remote::Azure(azurite) = &peer {
            // A SAS token instead of the account key.
            let sas = azurite.sas();
            config(
                dir.path(),
                &azurite
                    .target_yaml("offsite", "swarm-a")
                    .replace("access_key_env: AZURE_KEY", "sas_env: AZURE_SAS"),
            );
            let out = dockhand(dir.path(), &["storage", "check", "offsite"], &[("AZURE_SAS", &sas)]);
            assert!(
                out.status.success(),
                "with a SAS token: {}{}\n{}",
                stdout(&out),
                stderr(&out),
                peer.log()
            );
            assert!(stdout(&out).contains("offsite: ok (write, read, list, delete)"), "{}", stdout(&out));
        }
        if let Remote::Sftp(sftp) = &peer {
            // A server whose key is not in known_hosts is refused, and the check says so.
            let empty = dir.path().join("empty_known_hosts");
            std::fs::write(&empty, "").unwrap();
            let yaml = sftp.target_yaml("offsite", "swarm-a").replace(
                &format!("known_hosts: {}", sftp.known_hosts.display()),
                &format!("known_hosts: {}", empty.display()),
            );
            config(dir.path(), &yaml);
            let out = dockhand(dir.path(), &["storage", "check", "offsite"], &[]);
            assert_eq!(out.status.code(), Some(1), "{}{}", stdout(&out), stderr(&out));
            assert!(stdout(&out).contains("host key is unknown or has changed"), "{}", stdout(&out));
            assert!(sftp.files().is_empty(), "nothing was written: {:?}", sftp.files());
        }
    }
}

/// A wrong credential fails `storage check` on each remote target type, naming the target
/// and the cause, and never printing the secret.
#[test]
fn a_wrong_secret_fails_the_check_and_says_so() {
    for kind in KINDS {
        let peer = Remote::start(kind);
        let dir = tempfile::tempdir().unwrap();
        let (yaml, vars, wrong) = peer.wrong("offsite", "swarm-a");
        config(dir.path(), &yaml);
        let env: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let out = dockhand(dir.path(), &["storage", "check", "offsite"], &env);
        assert_eq!(out.status.code(), Some(1), "{kind}: {}{}", stdout(&out), stderr(&out));
        let text = stdout(&out);
        assert!(
            text.contains("storage target \"offsite\"") && text.contains("credentials refused"),
            "{kind}: the message names the target and the cause: {text}"
        );
        assert!(
            !text.contains(&wrong) && !stderr(&out).contains(&wrong),
            "{kind}: the secret printed: {text}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("dockhand.yaml"), "{}").unwrap();
    let out = dockhand(dir.path(), &["storage", "check", "nope"], &[]);
    assert!(stderr(&out).contains("storage target \"nope\": no such target"), "{}", stderr(&out));
}

/// One remote target type (`kind`), against its real peer: a backup streams there while
/// nothing in the swarm holds a credential, the volume comes back byte for byte, and
/// `restore --target` picks the target.
async fn round_trip_through(kind: &str) {
    let s = dockhand_e2e::swarm().await;
    let peer = Remote::start(kind);
    let (name, _guard, setup) = remote_service(&s, &peer, &format!("bk-{kind}")).await;

    // While a backup runs, nothing in the swarm holds a credential.
    let container = running_container(s.manager(), &name).await;
    sh(s.manager(), &container, &tree_script(64)).await;
    let mut child = setup.spawn(&s, &["backup", &name]);
    let mut seen = 0;
    while child.try_wait().unwrap().is_none() {
        let text = everything_in_the_swarm(&s).await;
        for secret in peer.secrets() {
            assert!(!text.contains(&secret), "{kind}: a credential in the swarm: {text}");
        }
        seen += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{kind}: {}\n{}\n{}", stdout(&out), stderr(&out), peer.log());
    assert!(seen > 0);

    // S3 keeps the 200 MiB tree it always had; Azure and WebDAV a 64 MiB one, eight 8 MiB
    // parts: enough to stream in parts, for less of a shared CI's time.
    round_trip_of(&s, &setup, &name, if kind == "s3" { 200 } else { 64 }).await;
    let out = setup.run(&s, &["backups", "ls", &name, "--json"]);
    let listed: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2, "{kind}: two backups: {listed}");
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["check"] == "ok" && o["key"].as_str().unwrap().starts_with(&format!("{name}/"))),
        "{kind}: {listed}"
    );
    let files = match &peer {
        Remote::WebDav(dav) => Some(dav.files()),
        Remote::Sftp(sftp) => Some(sftp.files()),
        _ => None,
    };
    if let Some(files) = files {
        // Streamed uploads went through `.dockhand-partial/` and were moved out whole.
        assert!(
            files.iter().all(|f| !f.starts_with(".dockhand-partial/")),
            "a partial upload left: {files:?}"
        );
        assert!(files.iter().any(|f| f.ends_with(".tar.zst")), "{files:?}");
    }
    // `restore --target` picks the target, whatever the labels name: `local` holds
    // nothing of this service, `offsite` its backups.
    let out = setup.run(&s, &["restore", &name, "--target", "local", "--json"]);
    let job = last_job(&out);
    assert_ne!(out.status.code(), Some(0), "{kind}: {job}");
    assert!(job.to_string().contains("no backup"), "{kind}: {job}");
    let out = setup.run(&s, &["restore", &name, "--target", "offsite", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{kind}: {}\n{}", stdout(&out), stderr(&out));
}

/// One test per remote target type, each running `body` against that type's real peer, so
/// that the types run side by side: the table is [`KINDS`], which
/// `every_remote_target_type_has_its_tests` keeps in step with these lists.
macro_rules! per_remote_type {
    ($body:path: $($test:ident => $kind:literal),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $test() {
                $body($kind).await;
            }
        )+
    };
}

per_remote_type! { round_trip_through:
    a_volume_round_trips_through_s3_and_no_secret_reaches_the_swarm => "s3",
    a_volume_round_trips_through_azure_and_no_secret_reaches_the_swarm => "azure",
    a_volume_round_trips_through_webdav_and_no_secret_reaches_the_swarm => "webdav",
    a_volume_round_trips_through_sftp_and_no_secret_reaches_the_swarm => "sftp",
}

per_remote_type! { crate::workers::worker_round_trip_through:
    a_volume_on_a_worker_round_trips_encrypted_through_s3 => "s3",
    a_volume_on_a_worker_round_trips_encrypted_through_azure => "azure",
    a_volume_on_a_worker_round_trips_encrypted_through_webdav => "webdav",
    a_volume_on_a_worker_round_trips_encrypted_through_sftp => "sftp",
}

#[test]
fn every_remote_target_type_has_its_tests() {
    assert_eq!(KINDS, ["s3", "azure", "webdav", "sftp"], "add the new type's tests to per_remote_type!");
}

/// `backup.target=local,offsite`: one archive streamed to both targets at once (through the
/// channel, the real engine and a real S3 peer), a step and a manifest on each, `backups ls`
/// showing each target's copy, and `restore --target` bringing the volume back from either.
/// With a third target whose secret is wrong, the job fails on that one alone: the others
/// hold complete archives, the service runs again, and the secret is printed nowhere.
#[tokio::test]
async fn a_backup_to_several_targets_streams_to_each_and_a_refused_one_fails_alone() {
    let s = dockhand_e2e::swarm().await;
    let peer = Remote::S3(S3Peer::start());
    let broken = peer.target_yaml("broken", "swarm-b").replace("S3_SECRET", "S3_WRONG");
    let mut setup = Setup::new(&format!("{}{broken}", peer.target_yaml("offsite", "swarm-a")));
    setup.extra = peer.credentials();
    setup.extra.push(("S3_WRONG".to_owned(), "not-the-secret-key".to_owned()));
    let client = s.manager();

    let (name, volume) = (unique_name("bk-multi"), unique_name("bk-multi-vol"));
    let labels = [("dockhand.backup.stop", "true"), ("dockhand.backup.target", "local,offsite")];
    client.create_service(&backed_up(&name, &volume, &labels)).await.unwrap();
    let _guard = ServiceGuard::new(s.manager_url(), &name);
    let container = running_container(client, &name).await;
    sh(client, &container, &tree_script(48)).await;
    let before = sh(client, &container, LISTING).await;
    let out = setup.run(&s, &["backup", &name, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}\n{}\n{}", stdout(&out), stderr(&out), peer.log());
    let job = last_job(&out);
    let uploads: Vec<&serde_json::Value> =
        job["steps"].as_array().unwrap().iter().filter(|s| s["kind"] == "upload").collect();
    let on: Vec<&str> = uploads.iter().map(|s| s["storage"].as_str().unwrap_or_default()).collect();
    assert_eq!(on, ["local", "offsite"], "{job}");
    assert!(uploads.iter().all(|s| s["status"] == "succeeded" && s["via"] == "channel"), "{job}");
    let out = setup.run(&s, &["backups", "ls", &name, "--json"]);
    let listed: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let targets: Vec<&str> =
        listed.as_array().unwrap().iter().map(|o| o["target"].as_str().unwrap()).collect();
    assert_eq!(targets, ["local", "offsite"], "{listed}");
    assert!(listed.as_array().unwrap().iter().all(|o| o["check"] == "ok"), "{listed}");
    let text = stdout(&setup.run(&s, &["backups", "ls", &name]));
    assert!(text.starts_with("TARGET") && text.contains("offsite"), "{text}");
    for target in ["offsite", "local"] {
        let container = running_container(client, &name).await;
        sh(client, &container, "rm -rf /data/* && chmod 0755 /data").await;
        let out = setup.run(&s, &["restore", &name, "--target", target, "--json"]);
        assert_eq!(out.status.code(), Some(0), "{target}: {}\n{}", stdout(&out), stderr(&out));
        let container = running_container(client, &name).await;
        assert_eq!(sh(client, &container, LISTING).await, before, "restored from {target}");
    }

    let (name, volume) = (unique_name("bk-multi"), unique_name("bk-multi-vol"));
    let labels = [("dockhand.backup.stop", "true"), ("dockhand.backup.target", "local,broken,offsite")];
    client.create_service(&backed_up(&name, &volume, &labels)).await.unwrap();
    let _guard = ServiceGuard::new(s.manager_url(), &name);
    let container = running_container(client, &name).await;
    sh(client, &container, &tree_script(16)).await;
    let out = setup.run(&s, &["backup", &name, "--json"]);
    assert_ne!(out.status.code(), Some(0), "{}", stdout(&out));
    let job = last_job(&out);
    assert_eq!(job["status"], "failed", "{job}");
    let uploads: Vec<(String, String)> = job["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == "upload")
        .map(|s| (s["storage"].as_str().unwrap().to_owned(), s["status"].as_str().unwrap().to_owned()))
        .collect();
    let expected = [("local", "succeeded"), ("broken", "failed"), ("offsite", "succeeded")];
    assert_eq!(uploads, expected.map(|(a, b)| (a.to_owned(), b.to_owned())), "{job}");
    let why = job["steps"].as_array().unwrap().iter().find_map(|s| s["error"].as_str()).unwrap_or_default();
    assert!(why.contains("storage target \"broken\"") && why.contains("credentials refused"), "{job}");
    for said in [stdout(&out), stderr(&out)] {
        assert!(!said.contains("not-the-secret-key") && !said.contains(SECRET_KEY), "{said}");
    }
    assert_eq!(replicas_and_intent(client, &name).await, (Some(1), None), "the service runs again");
    for target in ["local", "offsite"] {
        let out = setup.run(&s, &["backups", "ls", &name, "--target", target, "--json"]);
        let listed: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        let all = listed.as_array().unwrap();
        assert!(all.len() == 1 && all[0]["check"] == "ok", "{target} keeps a complete archive: {listed}");
    }
    let out = setup.run(&s, &["backups", "ls", &name, "--target", "broken", "--json"]);
    assert_ne!(out.status.code(), Some(0), "the broken target cannot even be listed: {}", stdout(&out));
}

/// The target `keep` of `setup`'s configuration, opened through the library, as dockhand
/// opens it.
fn keep_target(setup: &Setup) -> dockhand_jobs::storage::Storage {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let yaml = std::fs::read_to_string(setup.dir.path().join("dockhand.yaml")).unwrap();
    let file = dockhand_host::ConfigFile::parse(&yaml, false).unwrap();
    let env = dockhand_host::Environment::from_vars(setup.extra.iter().cloned());
    let targets = dockhand_jobs::storage::StorageTargets::load(&file, &env, setup.local_dir()).unwrap();
    dockhand_jobs::storage::Storage::open(targets.get("keep").unwrap()).unwrap()
}

/// On each target type (the local directory and each remote's real peer), retention deletes
/// this service's expired archives of this volume with their manifests, and nothing else.
#[tokio::test]
async fn retention_deletes_only_this_services_expired_archives_of_this_volume() {
    let s = dockhand_e2e::swarm().await;
    let node = s.manager().info().await.unwrap().name;
    for kind in ["local"].into_iter().chain(KINDS) {
        let (name, volume) = (unique_name(&format!("bk-ret{kind}")), unique_name("bk-ret-vol"));
        let labels = [("dockhand.backup.target", "keep")];
        s.manager().create_service(&backed_up(&name, &volume, &labels)).await.unwrap();
        let _guard = ServiceGuard::new(s.manager_url(), &name);
        running_container(s.manager(), &name).await;
        let retention = "      retention_days: 1\n      keep_last: 1\n";
        let peer = (kind != "local").then(|| Remote::start(kind));
        let setup = match &peer {
            Some(peer) => {
                let mut setup = Setup::new(&format!("{}{retention}", peer.target_yaml("keep", "ret")));
                setup.extra = peer.credentials();
                setup
            }
            None => {
                let setup =
                    Setup::new(&format!("    keep:\n      type: local\n      path: LOCAL\n{retention}"));
                let config = setup.dir.path().join("dockhand.yaml");
                let yaml = std::fs::read_to_string(&config).unwrap();
                std::fs::write(&config, yaml.replace("LOCAL", setup.local_dir().to_str().unwrap())).unwrap();
                setup
            }
        };
        let target = keep_target(&setup);
        // Old archives: this service and volume (two), a service whose name starts the
        // same, and another volume of this service.
        let old = |service: &str, vol: &str, ts: &str| format!("{service}/{node}_{vol}_{ts}.tar.zst");
        let mine = [old(&name, &volume, "20200101T000000Z"), old(&name, &volume, "20200102T000000Z")];
        let name2 = format!("{name}2");
        let others = [old(&name2, &volume, "20200101T000000Z"), old(&name, "other-vol", "20200101T000000Z")];
        for key in mine.iter().chain(&others) {
            target.put(key, b"old".to_vec()).await.unwrap();
            target.put(&format!("{key}.manifest.json"), b"{}".to_vec()).await.unwrap();
        }

        let out = setup.run(&s, &["backup", &name, "--json"]);
        let log = peer.as_ref().map(Remote::log).unwrap_or_default();
        assert_eq!(out.status.code(), Some(0), "{kind}: {}\n{}\n{log}", stdout(&out), stderr(&out));
        let job = last_job(&out);
        assert_eq!(steps(&job).last().unwrap(), &("retention".to_owned(), "succeeded".to_owned()), "{job}");
        let left = [target.objects(&name).await.unwrap(), target.objects(&name2).await.unwrap()].concat();
        for key in &mine {
            assert!(!left.contains(key), "{kind}: {key} expired: {left:?}");
            assert!(!left.contains(&format!("{key}.manifest.json")), "{kind}: {left:?}");
        }
        for key in &others {
            assert!(left.contains(key), "{kind}: {key} is not this service's or volume's: {left:?}");
        }
        let newest = job["steps"][0]["object"].as_str().unwrap().to_owned();
        assert!(left.contains(&newest), "{kind}: the newest stays: {newest} in {left:?}");
    }
}

/// The seed's implicit target (its `SWARM_UTILS_S3_*` variables alone, no configuration
/// file) keeps archives `SWARM_UTILS_S3_RETENTION_DAYS` days, 5 when the variable is not
/// set, as the seed's table says: after a backup, this service's archive of 6 days ago is
/// gone, the one of 4 days ago stays.
#[tokio::test]
async fn the_seeds_target_keeps_five_days_by_default() {
    let s = dockhand_e2e::swarm().await;
    let peer = S3Peer::start();
    let (name, volume) = (unique_name("bk-seed-ret"), unique_name("bk-seed-ret-vol"));
    s.manager().create_service(&backed_up(&name, &volume, &[])).await.unwrap();
    let _guard = ServiceGuard::new(s.manager_url(), &name);
    running_container(s.manager(), &name).await;
    let mut setup = Setup::new("    {}\n");
    setup.extra = vec![
        ("SWARM_UTILS_S3_URL".into(), peer.endpoint.trim_start_matches("http://").to_owned()),
        ("SWARM_UTILS_S3_HTTPS".into(), "false".into()),
        ("SWARM_UTILS_S3_BUCKET".into(), dockhand_e2e::s3::BUCKET.into()),
        ("SWARM_UTILS_S3_ACCESS_KEY".into(), ACCESS_KEY.into()),
        ("SWARM_UTILS_S3_SECRET_KEY".into(), SECRET_KEY.into()),
    ];
    let env = dockhand_host::Environment::from_vars(setup.env());
    let file = dockhand_host::ConfigFile::load(Some(&setup.dir.path().join("dockhand.yaml")), &env).unwrap();
    let targets = dockhand_jobs::storage::StorageTargets::load(&file, &env, setup.local_dir()).unwrap();
    let seed = targets.get(dockhand_jobs::storage::SEED_TARGET).unwrap();
    assert_eq!(seed.retention_days, Some(5), "{seed:?}");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let storage = dockhand_jobs::storage::Storage::open(seed).unwrap();
    let node = s.manager().info().await.unwrap().name;
    let day = Duration::from_secs(86_400);
    let old = |days: u32| {
        dockhand_jobs::backup::archive_key(
            &name,
            &node,
            &volume,
            std::time::SystemTime::now() - day * days,
            false,
        )
    };
    let (expired, kept) = (old(6), old(4));
    for key in [&expired, &kept] {
        storage.put(key, b"old".to_vec()).await.unwrap();
        storage
            .put(&format!("{key}{}", dockhand_jobs::backup::MANIFEST_SUFFIX), b"{}".to_vec())
            .await
            .unwrap();
    }

    let out = setup.run(&s, &["backup", &name, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let job = last_job(&out);
    assert_eq!(steps(&job).last().unwrap(), &("retention".to_owned(), "succeeded".to_owned()), "{job}");
    let left: Vec<String> = dockhand_jobs::backup::list_backups(&storage, &name)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert!(!left.contains(&expired), "6 days old, past the seed's 5: {left:?}");
    assert!(left.contains(&kept), "4 days old stays: {left:?}");
    assert_eq!(left.len(), 2, "the one kept and the new one: {left:?}");
}
