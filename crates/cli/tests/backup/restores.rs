//! What a restore refuses, and the seed's archives.

use super::*;

/// Archives the seed's tool wrote to S3 (offen/docker-volume-backup: `<node>_<volume>_<date>.tar.gz`,
/// the volume under `backup/<volume>/`, made here by GNU tar as the seed's container does)
/// are listed by `backups ls --foreign` and restored with `restore --object KEY`, so a
/// migrating operator keeps their history; one of a volume the service does not mount is
/// refused before anything is touched.
#[tokio::test]
async fn the_seeds_archives_are_listed_and_restored() {
    let s = dockhand_e2e::swarm().await;
    let peer = Remote::S3(S3Peer::start());
    let (name, volume) = (unique_name("bk-seed"), unique_name("bk-seed-vol"));
    let labels = [("dockhand.backup.stop", "true"), ("dockhand.backup.target", "offsite")];
    s.manager().create_service(&backed_up(&name, &volume, &labels)).await.unwrap();
    let _guard = ServiceGuard::new(s.manager_url(), &name);
    let setup = Setup::offsite(&peer);

    // The seed's archive: its volume and another one, as its backup container mounts them.
    let made = tempfile::tempdir().unwrap();
    let root = made.path().join("backup");
    std::fs::create_dir_all(root.join(&volume).join("dir")).unwrap();
    std::fs::create_dir_all(root.join("other-vol")).unwrap();
    std::fs::write(root.join(&volume).join("hello.txt"), "from the seed\n").unwrap();
    std::fs::write(root.join(&volume).join("dir/x"), "x\n").unwrap();
    std::fs::write(root.join("other-vol/y"), "not this volume\n").unwrap();
    let tarball = made.path().join("seed.tar.gz");
    let tar = Command::new("tar")
        .arg("-C")
        .arg(made.path())
        .args(["--numeric-owner", "-czf"])
        .arg(&tarball)
        .arg("backup")
        .output()
        .unwrap();
    assert!(tar.status.success(), "{}", String::from_utf8_lossy(&tar.stderr));
    let env = dockhand_host::Environment::from_vars(setup.env());
    let file = dockhand_host::ConfigFile::load(Some(&setup.dir.path().join("dockhand.yaml")), &env).unwrap();
    let targets = dockhand_jobs::storage::StorageTargets::load(&file, &env, setup.local_dir()).unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let storage = dockhand_jobs::storage::Storage::open(targets.get("offsite").unwrap()).unwrap();
    let key = format!("node1_{volume}_2026-11-01T03-00-00.tar.gz");
    let other = "node1_other-vol_2026-11-01T03-00-00.tar.gz";
    for k in [key.as_str(), other] {
        let bytes = std::fs::read(&tarball).unwrap();
        storage.put(k, bytes).await.unwrap();
    }

    let out = setup.run(&s, &["backups", "ls", &name, "--foreign", "--json"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let listed: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1, "only the service's own volume: {listed:?}");
    assert_eq!(
        (listed[0]["key"].as_str(), listed[0]["volume"].as_str()),
        (Some(key.as_str()), Some(volume.as_str()))
    );
    assert_eq!(listed[0]["check"], dockhand_jobs::backup::FOREIGN_CHECK);

    let container = running_container(s.manager(), &name).await;
    sh(s.manager(), &container, "echo junk > /data/junk").await;
    let refused = setup.run(&s, &["restore", &name, "--object", other, "--json"]);
    assert_eq!(refused.status.code(), Some(1), "{}\n{}", stdout(&refused), stderr(&refused));
    let job = last_job(&refused);
    assert!(job["steps"][0]["error"].as_str().unwrap().contains("is not a volume of service"), "{job}");
    assert_eq!(steps(&job).len(), 1, "nothing touched: {job}");

    let out = setup.run(&s, &["restore", &name, "--object", &key, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let job = last_job(&out);
    let kinds: Vec<String> = steps(&job).into_iter().map(|(k, _)| k).collect();
    assert_eq!(kinds, ["verify", "stop", "restore", "start"], "{job}");
    assert!(job["steps"][0]["output_tail"].as_str().unwrap().contains("seed's tool"), "{job}");
    let container = running_container(s.manager(), &name).await;
    let listing = sh(s.manager(), &container, "cd /data && find . | sort && cat hello.txt").await;
    assert_eq!(listing, ".\n./dir\n./dir/x\n./hello.txt\nfrom the seed\n", "{job}");
}

#[tokio::test]
async fn restore_refuses_a_corrupted_archive_and_touches_nothing() {
    let s = dockhand_e2e::swarm().await;
    let (name, _volume, _guard) = stopping_service(&s, "bk-bad").await;
    let setup = Setup::new("    {}\n");
    let container = running_container(s.manager(), &name).await;
    sh(s.manager(), &container, &tree_script(4)).await;
    let out = setup.run(&s, &["backup", name.as_str(), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let object = last_job(&out)["steps"][1]["object"].as_str().unwrap().to_owned();
    let archive = setup.local_dir().join(&object);
    let mut bytes = std::fs::read(&archive).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&archive, bytes).unwrap();

    let container = running_container(s.manager(), &name).await;
    sh(s.manager(), &container, "echo changed-since > /data/marker").await;
    let before = sh(s.manager(), &container, LISTING).await;
    let out = setup.run(&s, &["restore", &name, "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}\n{}", stdout(&out), stderr(&out));
    let job = last_job(&out);
    assert_eq!(steps(&job), [("verify".to_owned(), "failed".to_owned())], "{job}");
    assert!(job["steps"][0]["error"].as_str().unwrap().contains("corrupted"), "{job}");
    // Never stopped, never touched.
    assert_eq!(running_container(s.manager(), &name).await, container, "the same task still runs");
    assert_eq!(sh(s.manager(), &container, LISTING).await, before);
}

/// R3-02: an object planted under the service's directory, named for another volume (with
/// a manifest that matches it), is refused before anything is touched: the victim volume
/// keeps its contents and the service is never stopped.
#[tokio::test]
async fn restore_refuses_an_archive_of_a_volume_the_service_does_not_mount() {
    let s = dockhand_e2e::swarm().await;
    let (name, volume, _guard) = stopping_service(&s, "bk-plant").await;
    let setup = Setup::new("    {}\n");
    let container = running_container(s.manager(), &name).await;
    sh(s.manager(), &container, &tree_script(1)).await;
    let out = setup.run(&s, &["backup", name.as_str(), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let object = last_job(&out)["steps"][1]["object"].as_str().unwrap().to_owned();

    // A victim volume beside it, with contents of its own.
    let victim = unique_name("bk-victim");
    let holder = unique_name("bk-victim-holder");
    let spec = ServiceSpec::new(&holder, BUSYBOX_IMAGE)
        .with_args(["sh", "-c", "echo untouched > /v/mine; trap 'exit 0' TERM; while true; do sleep 1; done"])
        .with_volume(&victim, "/v")
        .with_constraint("node.role==manager");
    s.manager().create_service(&spec).await.unwrap();
    let _holder = ServiceGuard::new(s.manager_url(), &holder);
    let victim_container = running_container(s.manager(), &holder).await;
    let victim_before = sh(s.manager(), &victim_container, "sleep 1; ls -la /v; cat /v/mine").await;
    assert!(victim_before.contains("untouched"), "{victim_before}");

    // The planted object: the real archive under a newer name for the victim volume, with
    // a manifest that agrees with its name and its bytes.
    let dir = setup.local_dir();
    let real = dir.join(&object);
    let newer = object.replace(&format!("_{volume}_"), &format!("_{victim}_")).replace("_20", "_29");
    let planted = dir.join(&newer);
    std::fs::copy(&real, &planted).unwrap();
    let manifest = std::fs::read_to_string(format!("{}.manifest.json", real.display())).unwrap();
    let manifest =
        manifest.replace(&format!("\"volume\": \"{volume}\""), &format!("\"volume\": \"{victim}\""));
    std::fs::write(format!("{}.manifest.json", planted.display()), manifest).unwrap();

    // The backup stopped the service and started it again: a new task.
    let container = running_container(s.manager(), &name).await;
    let before = sh(s.manager(), &container, LISTING).await;
    let out = setup.run(&s, &["restore", &name, "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}\n{}", stdout(&out), stderr(&out));
    let job = last_job(&out);
    assert_eq!(steps(&job), [("verify".to_owned(), "failed".to_owned())], "{job}");
    let error = job["steps"][0]["error"].as_str().unwrap();
    assert!(error.contains(&format!("volume {victim} is not a volume of service {name}")), "{job}");
    assert!(error.contains(&volume), "names what the service mounts: {job}");
    assert_eq!(
        sh(s.manager(), &victim_container, "ls -la /v; cat /v/mine").await,
        victim_before,
        "the victim is untouched"
    );
    assert_eq!(running_container(s.manager(), &name).await, container, "never stopped");
    assert_eq!(sh(s.manager(), &container, LISTING).await, before);
    // --volume that the service does not mount is an error, never a raw name.
    let out = setup.run(&s, &["restore", &name, "--volume", &victim, "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}\n{}", stdout(&out), stderr(&out));
    assert!(
        last_job(&out)["steps"][0]["error"].as_str().unwrap().contains("mounts no volume"),
        "{}",
        stdout(&out)
    );
}
