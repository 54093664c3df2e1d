//! Backups and restores of a service's volume on the swarm's manager, the node dockhand is
//! connected to.

use super::*;

/// A global service with `backup.stop=true` is backed up while it runs, as seed 002 does
/// (the documentation said it was refused): the job says so in a skipped `stop` step, and
/// `plan` warns.
#[tokio::test]
async fn a_global_service_with_stop_is_backed_up_while_it_runs_and_says_so() {
    let s = dockhand_e2e::swarm().await;
    let (name, volume) = (unique_name("bk-global"), unique_name("bk-global-vol"));
    let spec = backed_up(&name, &volume, &[("dockhand.backup.stop", "true")]).global();
    s.manager().create_service(&spec).await.unwrap();
    let _guard = ServiceGuard::new(s.manager_url(), &name);
    let before = running_container(s.manager(), &name).await;
    let setup = Setup::new("    {}\n");
    let out = setup.run(&s, &["backup", &name, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let job = last_job(&out);
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(
        steps(&job),
        [("stop", "skipped"), ("upload", "succeeded")].map(|(a, b)| (a.to_owned(), b.to_owned())),
        "{job}"
    );
    let why = job["steps"][0]["error"].as_str().unwrap_or_default();
    assert!(why.contains("global service is backed up while it runs"), "{job}");
    assert_eq!(running_container(s.manager(), &name).await, before, "never stopped");
    let service = s.manager().service(&name).await.unwrap();
    assert!(
        service.spec.is_global() && !service.spec.labels.contains_key(dockhand_jobs::backup::INTENT_LABEL)
    );
    let out = setup.run(&s, &["plan"]);
    assert!(
        stdout(&out).contains("backed up while it runs") || stderr(&out).contains("backed up while it runs"),
        "plan warns: {}\n{}",
        stdout(&out),
        stderr(&out)
    );
}

#[tokio::test]
async fn a_volume_round_trips_byte_exact_through_the_local_target() {
    let s = dockhand_e2e::swarm().await;
    let (name, volume, _guard) = stopping_service(&s, "bk-local").await;
    let setup = Setup::new("    {}\n");
    let job = round_trip(&s, &setup, &name).await;
    assert_eq!(job["steps"][1]["via"], "channel", "a local engine: the archive takes dockhand's socket");
    let object = job["steps"][1]["object"].as_str().unwrap().to_owned();
    assert!(object.starts_with(&format!("{name}/")) && object.contains(&format!("_{volume}_")), "{object}");
    let archive = setup.local_dir().join(&object);
    let head = std::fs::read(&archive).unwrap();
    assert_eq!(&head[..4], &[0x28, 0xb5, 0x2f, 0xfd], "a zstd frame");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(format!("{}.manifest.json", archive.display())).unwrap())
            .unwrap();
    assert_eq!(manifest["bytes"].as_u64(), Some(head.len() as u64));
    assert_eq!(manifest["volume"], volume.as_str());
    assert_eq!(manifest["service"], name.as_str());
    assert_eq!(manifest["job"], job["id"]);
    // R3-16: whole volumes, readable by their owner alone.
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let sidecar = std::path::PathBuf::from(format!("{}.manifest.json", archive.display()));
        assert_eq!((mode(&archive), mode(&sidecar)), (0o600, 0o600), "{}", archive.display());
        assert_eq!(mode(archive.parent().unwrap()), 0o700);
        assert_eq!(mode(&setup.local_dir()), 0o700);
    }

    let out = setup.run(&s, &["backups", "ls", &name]);
    assert!(
        out.status.success() && stdout(&out).contains(&object) && stdout(&out).contains(" ok "),
        "{}",
        stdout(&out)
    );
    let target = format!("service/{}", s.manager().service(&name).await.unwrap().id);
    assert_nothing_left(s.manager(), &[target]).await;
}

#[tokio::test]
async fn over_tcp_the_archive_takes_the_exec_stream_and_round_trips_byte_exact() {
    // The private engine, reached over plain TCP: dockhand cannot tell that it shares this
    // host, so no channel is tried and the exec stream carries the archive both ways.
    dockhand_e2e::engine().await;
    let url = dockhand_e2e::peer("TCP_HOST");
    let client = Client::new(url.parse().unwrap()).unwrap();
    let s = TestSwarm { nodes: vec![(url, client)] };
    let (name, _volume, _guard) = stopping_service(&s, "bk-tcp").await;
    // A one-node engine: the image made from dockhand itself, imported over TCP.
    let mut setup = Setup::new("    {}\n");
    setup.own_helper = true;
    let job = round_trip(&s, &setup, &name).await;
    assert_eq!(job["steps"][1]["via"], "exec", "{job}");
    let target = format!("service/{}", s.manager().service(&name).await.unwrap().id);
    assert_nothing_left(s.manager(), &[target]).await;
}
