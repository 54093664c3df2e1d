//! Tests of helper services: their specs, hardening, and the container's own ID.

use super::image::{HelperSettings, OwnHelperImage, container_id_from_mountinfo, pinned};
use super::*;
use crate::own_image::OwnExecutable;

#[test]
fn the_container_id_comes_from_the_hostname_mount() {
    let id = "6f1a".repeat(16);
    let mountinfo = format!(
        "591 590 0:52 / / rw,relatime - overlay overlay rw\n\
         601 591 8:1 /var/lib/docker/containers/{id}/hostname /etc/hostname rw - ext4 /dev/sda1 rw\n"
    );
    assert_eq!(container_id_from_mountinfo(&mountinfo), Some(id));
    assert_eq!(container_id_from_mountinfo("22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"), None);
    let short = "601 591 8:1 /var/lib/docker/containers/abc/hostname /etc/hostname rw - ext4 x rw";
    assert_eq!(container_id_from_mountinfo(short), None);
}

/// R3-18: helpers drop every capability but what their volume work needs, gain no
/// privileges and run on a read-only root; a node's backup.exec sees its volumes
/// read-only unless a label says otherwise.
#[test]
fn helpers_are_hardened_and_exec_volumes_read_only() {
    let run = |access: Access| HelperRun {
        job: "j1",
        action: "clean-node",
        target: "node/n1".into(),
        node_id: "n1",
        node_name: "node1",
        task: AgentTask::Hold { seconds: 60 },
        timeout: Duration::from_secs(60),
        access,
    };
    let settings = HelperSettings::new("img@sha256:x");
    let socket = Access { socket: true, volume: None, network: None };
    let reading = Access { socket: false, volume: Some(("v".into(), true)), network: None };
    let writing = Access { socket: false, volume: Some(("v".into(), false)), network: None };
    for (access, caps) in
        [(socket, vec![]), (reading, vec!["CAP_DAC_READ_SEARCH"]), (writing, VOLUME_WRITE_CAPS.to_vec())]
    {
        let json = serde_json::to_value(spec(&settings, "img@sha256:x", &run(access))).unwrap();
        let c = &json["TaskTemplate"]["ContainerSpec"];
        assert_eq!(c["CapabilityDrop"], serde_json::json!(["ALL"]), "{c}");
        assert_eq!(c["CapabilityAdd"].as_array().map(Vec::len).unwrap_or(0), caps.len(), "{c}");
        assert_eq!(
            (c["ReadOnly"].as_bool(), c["Privileges"]["NoNewPrivileges"].as_bool()),
            (Some(true), Some(true))
        );
    }
    let volumes = ["db".to_owned()];
    let command = |read_write| CommandRun {
        job: "j1",
        action: "backup-node",
        target: "node/n1".into(),
        node_id: "n1",
        node_name: "node1",
        image: "keinos/sqlite3:3.46",
        argv: vec!["/bin/sh".into(), "-c".into(), "true".into()],
        volumes: &volumes,
        read_write,
        timeout: Duration::from_secs(60),
    };
    let mount = |read_write| {
        let json = serde_json::to_value(command_spec(&command(read_write))).unwrap();
        json["TaskTemplate"]["ContainerSpec"]["Mounts"][0]["ReadOnly"].as_bool().unwrap_or(false)
    };
    assert!(mount(false), "read-only by default");
    assert!(!mount(true), "backup.exec.read-write=true");
}

/// R3-04: only a digest names what every node runs; without an image, a helper's error
/// says why and what to set.
#[test]
fn a_helper_image_is_pinned_or_absent_with_a_reason() {
    let hex = "a".repeat(64);
    assert!(pinned(&format!("registry.example.com/dockhand@sha256:{hex}")));
    assert!(pinned(&format!("dockhand/dockhand:0.1.0@sha256:{hex}")));
    for not in
        ["dockhand/dockhand:0.1.0", &format!("@sha256:{hex}"), "x@sha256:abc", &format!("sha256:{hex}")]
    {
        assert!(!pinned(not), "{not}");
    }
    let none = HelperSettings::default();
    let e = none.check().unwrap_err().to_string();
    assert!(e.contains("--helper-image") && e.contains("DOCKHAND_HELPER_IMAGE"), "{e}");
    assert!(e.contains("dockhand helper-image push"), "{e}");
    let why = HelperSettings::without_image("this service runs x:1, which is not pinned");
    assert!(
        why.check().unwrap_err().to_string().starts_with("this service runs x:1, which is not pinned: set")
    );
    assert_eq!(HelperSettings::new("img@sha256:x").check(), Ok(()));
}

#[tokio::test]
async fn without_an_image_only_the_connected_node_runs_dockhands_own() {
    let client = Client::new("unix:///nonexistent/docker.sock".parse().unwrap()).unwrap();
    let own = OwnHelperImage::new(client, OwnExecutable::running(), "node-a", "host-a");
    let settings = HelperSettings::without_image("no helper image is set").with_own_image(own);
    assert_eq!(settings.check(), Ok(()));
    let elsewhere = settings.image_for("node-b").await.unwrap_err();
    assert!(
        elsewhere.contains("host-a only") && elsewhere.contains("dockhand helper-image push"),
        "{elsewhere}"
    );
    // Here, it is made on the engine: with none answering, why it cannot be.
    let here = settings.image_for("node-a").await.unwrap_err();
    assert!(here.contains("import the helper image dockhand/helper:"), "{here}");
    assert_eq!(HelperSettings::new("img@sha256:x").image_for("node-b").await.unwrap(), "img@sha256:x");
}
