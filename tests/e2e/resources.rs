//! Containers, archives, images, build cache, volumes, networks and events against the
//! real engine.

use std::time::Duration;

use dockhand_e2e::{BUSYBOX_IMAGE, engine, service_with_container, unique_name};
use dockhand_engine::{ApiVersion, ExecSpec, Filters, ServiceSpec};

/// The process's peak resident memory, in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_container_shows_its_volume_and_its_files_stream_as_tar() {
    let e = engine().await;
    let volume = unique_name("vol");
    let spec = ServiceSpec::new(unique_name("files"), BUSYBOX_IMAGE)
        .with_args(["sleep", "3600"])
        .with_volume(&volume, "/data");
    let (_guard, container) = service_with_container(&e, &spec, "running").await;

    let listed = e.client.containers(&Filters::new().with("id", &container)).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, "running");
    assert_eq!(listed[0].labels.get("com.docker.swarm.service.name"), Some(&spec.name));

    let inspect = e.client.container(&container).await.unwrap();
    assert!(inspect.state.running);
    let mount = inspect.mounts.iter().find(|m| m.destination == "/data").expect("the volume is mounted");
    assert_eq!((mount.kind.as_str(), mount.name.as_str()), ("volume", volume.as_str()));
    assert_eq!(e.client.volume(&volume).await.unwrap().driver, "local");
    let vols = e.client.volumes(&Filters::new().with("name", &volume)).await.unwrap();
    assert_eq!(vols.len(), 1);

    // A file of 1 GiB in the volume, streamed out as a tar without being held in memory.
    let dd = ExecSpec::new(["dd", "if=/dev/zero", "of=/data/big", "bs=1048576", "count=1024"]);
    assert_eq!(e.client.exec(&container, &dd).await.unwrap().exit_code().await.unwrap(), 0);

    let stat = e.client.archive_stat(&container, "/data/big").await.unwrap();
    assert_eq!((stat.name.as_str(), stat.size, stat.is_dir()), ("big", 1 << 30, false));
    let dir = e.client.archive_stat(&container, "/data").await.unwrap();
    assert!(dir.is_dir());

    let before = peak_rss_kib();
    let (stat, body) = e.client.archive(&container, "/data/big").await.unwrap();
    assert_eq!(stat.size, 1 << 30);
    let bytes = body.drain().await.unwrap();
    let growth = peak_rss_kib().saturating_sub(before);
    // The tar holds the file plus headers and padding.
    assert!(bytes > 1 << 30 && bytes < (1 << 30) + (1 << 20), "{bytes} bytes");
    assert!(growth < 256 * 1024, "streaming 1 GiB raised peak memory by {growth} KiB");

    let missing = e.client.archive_stat(&container, "/no/such/path").await.unwrap_err();
    assert!(missing.is_not_found(), "{missing}");
}

#[tokio::test]
async fn prunes_report_what_they_removed() {
    let e = engine().await;
    // A stopped container: a task that ran `true` and is not restarted.
    let spec = ServiceSpec::new(unique_name("prune"), BUSYBOX_IMAGE)
        .with_args(["true"])
        .with_restart_condition("none");
    let (guard, container) = service_with_container(&e, &spec, "complete").await;
    // Removing the service leaves no container behind on its own only later: prune now.
    let report = e
        .client
        .prune_containers(
            &Filters::new().with("label", format!("com.docker.swarm.service.name={}", spec.name)),
        )
        .await
        .unwrap();
    assert!(report.deleted.contains(&container), "{report:?}");
    drop(guard);

    // Nothing dangling and no build cache on the test engine: empty, but well-formed.
    let images = e.client.prune_images(&Filters::new().with("dangling", "true")).await.unwrap();
    assert!(images.deleted.is_empty(), "{images:?}");
    let cache = e.client.prune_build_cache(&Filters::new()).await.unwrap();
    assert_eq!(cache.space_reclaimed, 0);

    // A volume nobody uses is pruned; filters narrow it to ours.
    let lonely = unique_name("lonely");
    let spec = ServiceSpec::new(unique_name("vol-user"), BUSYBOX_IMAGE)
        .with_args(["true"])
        .with_restart_condition("none")
        .with_volume(&lonely, "/x");
    let (guard, container) = service_with_container(&e, &spec, "complete").await;
    drop(guard);
    let _ = e.client.prune_containers(&Filters::new().with("id", &container)).await;
    for _ in 0..100 {
        if e.client.containers(&Filters::new().with("id", &container)).await.unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // From API 1.42 a prune spares named volumes unless asked with `all=true`.
    let filters = if e.client.api_version().await.unwrap() >= ApiVersion::new(1, 42) {
        Filters::new().with("all", "true")
    } else {
        Filters::new()
    };
    let volumes = e.client.prune_volumes(&filters).await.unwrap();
    assert!(volumes.deleted.contains(&lonely), "{volumes:?}");
    assert!(e.client.volumes(&Filters::new().with("name", &lonely)).await.unwrap().is_empty());
}

#[tokio::test]
async fn images_and_networks_are_listed_and_inspected() {
    let e = engine().await;
    let images = e.client.images(&Filters::new().with("reference", BUSYBOX_IMAGE)).await.unwrap();
    assert_eq!(images.len(), 1, "{images:?}");
    assert!(images[0].repo_tags.iter().any(|t| t == BUSYBOX_IMAGE));
    let inspect = e.client.image(BUSYBOX_IMAGE).await.unwrap();
    assert_eq!(inspect.id, images[0].id);
    assert!(e.client.image("dockhand/no-such-image:x").await.unwrap_err().is_not_found());

    let networks = e.client.networks(&Filters::new().with("driver", "overlay")).await.unwrap();
    let ingress = networks.iter().find(|n| n.ingress).expect("a swarm has an ingress network");
    assert_eq!(ingress.scope, "swarm");
    assert_eq!(e.client.network(&ingress.id).await.unwrap().name, ingress.name);
}

#[tokio::test]
async fn events_show_a_container_created_while_listening() {
    let e = engine().await;
    let name = unique_name("events");
    let filters = Filters::new()
        .with("type", "container")
        .with("label", format!("com.docker.swarm.service.name={name}"));
    let mut events =
        e.client.events(&filters).await.unwrap().with_idle_timeout(Some(Duration::from_secs(60)));
    let spec = ServiceSpec::new(&name, BUSYBOX_IMAGE).with_args(["sleep", "3600"]);
    let (_guard, container) = service_with_container(&e, &spec, "running").await;
    loop {
        let event = events.next().await.expect("the stream stays open").unwrap();
        assert_eq!(event.kind, "container");
        if event.action == "create" {
            assert_eq!(event.actor.id, container);
            break;
        }
    }
}
