//! `dockhand-engine` against the real engine over its unix socket.

use dockhand_e2e::engine;
use dockhand_engine::{ApiVersion, Client, Endpoint, MAX_API_VERSION, MIN_API_VERSION};

#[tokio::test]
async fn ping_reads_the_headers() {
    let e = engine().await;
    let ping = e.client.ping().await.unwrap();
    let engine_api = ping.api_version.expect("the engine sends API-Version");
    assert!(engine_api >= MIN_API_VERSION, "{engine_api}");
    assert_eq!(ping.os_type.as_deref(), Some("linux"));
    assert!(ping.server.as_deref().is_some_and(|s| s.starts_with("Docker/")), "{:?}", ping.server);
    // Engines send the Swarm header from API 1.44 on; when they do, it must say active.
    if engine_api >= ApiVersion::new(1, 44) {
        assert_eq!(ping.swarm.as_deref(), Some("active/manager"));
    } else {
        assert_eq!(ping.swarm, None);
    }
}

#[tokio::test]
async fn negotiates_the_lower_of_both_versions() {
    let e = engine().await;
    let engine_api = e.client.ping().await.unwrap().api_version.unwrap();
    let used = e.client.api_version().await.unwrap();
    assert_eq!(used, engine_api.min(MAX_API_VERSION));

    let version = e.client.version().await.unwrap();
    assert_eq!(version.api_version.parse::<ApiVersion>().unwrap(), engine_api);
    assert!(!version.version.is_empty());
    assert!(version.components.iter().any(|c| c.name == "Engine"), "{:?}", version.components);
}

#[tokio::test]
async fn info_shows_an_active_swarm_manager() {
    let e = engine().await;
    let info = e.client.info().await.unwrap();
    assert!(info.swarm.is_active(), "swarm state is {:?}", info.swarm.local_node_state);
    assert!(info.swarm.control_available, "the test node must be a manager");
    assert_eq!(info.swarm.nodes, 1);
    assert!(!info.swarm.node_id.is_empty());
    assert!(info.ncpu >= 1);
    assert!(!info.server_version.is_empty());
}

#[tokio::test]
async fn calls_use_versioned_paths() {
    // A pinned version the engine does not know proves the version is in the path: the
    // engine itself refuses it, and the error carries its status and message.
    let e = engine().await;
    let endpoint: Endpoint = e.url.parse().unwrap();
    let pinned = Client::builder(endpoint).api_version(ApiVersion::new(1, 99)).build().unwrap();
    let err = pinned.info().await.unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("/v1.99/info"), "{msg}");
    assert!(msg.contains("1.99") && msg.contains("too new"), "{msg}");
    assert!(msg.contains(&e.url), "{msg}");
}

#[tokio::test]
async fn concurrent_first_calls_share_one_negotiation() {
    let e = engine().await;
    let fresh = Client::new(e.url.parse().unwrap()).unwrap();
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let c = fresh.clone();
            tokio::spawn(async move { c.api_version().await })
        })
        .collect();
    let mut versions = Vec::new();
    for call in calls {
        versions.push(call.await.unwrap().unwrap());
    }
    versions.dedup();
    assert_eq!(versions.len(), 1, "{versions:?}");
}

#[tokio::test]
async fn a_missing_socket_is_named_in_the_error() {
    let client = Client::new("unix:///nonexistent/dockhand-test.sock".parse().unwrap()).unwrap();
    let err = client.info().await.unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("unix:///nonexistent/dockhand-test.sock"), "{msg}");
    assert!(msg.contains("No such file or directory"), "{msg}");
}
