//! Podman's Docker-compatible API (`podman system service`, started by `cargo xtask engine
//! up`): what it serves works, and swarm, which it does not serve, is a clear error.

use dockhand_e2e::peer;
use dockhand_engine::{Client, Error, ExecSpec, Filters, StreamKind};

fn podman() -> Client {
    Client::new(peer("PODMAN_HOST").parse().unwrap()).unwrap()
}

#[tokio::test]
async fn ping_version_and_info() {
    let c = podman();
    let ping = c.ping().await.unwrap();
    assert!(ping.podman.is_some(), "{ping:?}");
    assert!(ping.server.as_deref().is_some_and(|s| s.starts_with("Libpod/")), "{ping:?}");
    let version = c.version().await.unwrap();
    assert!(version.components.iter().any(|comp| comp.name.contains("Podman")), "{version:?}");
    let info = c.info().await.unwrap();
    assert!(!info.swarm.is_active());
    assert!(c.api_version().await.unwrap() >= dockhand_engine::MIN_API_VERSION);
}

#[tokio::test]
async fn containers_images_and_exec() {
    let c = podman();
    let name = peer("PODMAN_CONTAINER");
    let listed = c.containers(&Filters::new().with("name", &name)).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].state, "running");
    assert!(c.container(&name).await.unwrap().state.running);

    let images = c.images(&Filters::new()).await.unwrap();
    assert!(
        images.iter().any(|i| i.repo_tags.iter().any(|t| t.ends_with("dockhand/busybox:test"))),
        "{images:?}"
    );

    let mut out =
        c.exec(&name, &ExecSpec::new(["sh", "-c", "echo from-podman; echo err >&2; exit 3"])).await.unwrap();
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    while let Some(chunk) = out.next().await {
        let chunk = chunk.unwrap();
        match chunk.stream {
            StreamKind::Stderr => stderr.extend_from_slice(&chunk.data),
            _ => stdout.extend_from_slice(&chunk.data),
        }
    }
    assert_eq!(stdout, b"from-podman\n");
    assert_eq!(stderr, b"err\n");
    assert_eq!(out.exit_code().await.unwrap(), 3);
}

#[tokio::test]
async fn swarm_is_not_supported_by_this_engine() {
    let c = podman();
    for err in [
        c.services(&Filters::new()).await.unwrap_err(),
        c.nodes(&Filters::new()).await.unwrap_err(),
        c.tasks(&Filters::new()).await.unwrap_err(),
    ] {
        assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("not supported by this engine") && msg.contains("Podman"), "{msg}");
    }
}
