//! A backup cut off mid-way (dockhand killed, the S3 peer stopped): the service comes back.

use super::*;

/// Reads `child`'s stdout lines until one contains `marker`: the lines so far, and the
/// channel the rest arrives on.
fn read_until(child: &mut Child, marker: &str) -> (Vec<String>, std::sync::mpsc::Receiver<String>) {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            let hit = line.contains(marker);
            seen.push(line);
            if hit {
                return (seen, rx);
            }
        }
    }
    panic!("no line with {marker:?} within 120 s: {seen:?}");
}

#[tokio::test]
async fn after_kill_9_mid_backup_the_next_command_brings_the_service_back() {
    let s = dockhand_e2e::swarm().await;
    let (name, volume) = (unique_name("bk-kill"), unique_name("bk-kill-vol"));
    let spec = backed_up(&name, &volume, &[("dockhand.backup.stop", "true")]).with_replicas(2);
    s.manager().create_service(&spec).await.unwrap();
    let _guard = ServiceGuard::new(s.manager_url(), &name);
    let setup = Setup::new("    {}\n");
    let container = running_container(s.manager(), &name).await;
    sh(s.manager(), &container, &tree_script(200)).await;
    let target = format!("service/{}", s.manager().service(&name).await.unwrap().id);
    // Three moments: while the tasks stop, when the upload starts, in the middle of it.
    for marker in ["waiting for its tasks to stop", "upload on", "MiB at"] {
        // Any dockhand's next job command brings back every service left scaled down, and
        // the suites beside this one run dockhand too: when one of theirs got there first,
        // the service is back all the same, and this moment is tried again.
        let mut attempts = 0;
        loop {
            attempts += 1;
            let mut child = setup.spawn(&s, &["backup", &name]);
            let (seen, _rest) = read_until(&mut child, marker);
            child.kill().unwrap();
            child.wait().unwrap();
            let (replicas, intent) = replicas_and_intent(s.manager(), &name).await;
            let back_already = (replicas, intent.as_deref()) == (Some(2), None);
            if !back_already {
                assert_eq!(
                    (replicas, intent.as_deref()),
                    (Some(0), Some("2")),
                    "killed at {marker:?} after {seen:?}"
                );
            }

            // The next job command, whatever it does (here a clean-service its labels
            // refuse), brings it back first. When it says nothing of it, another suite's
            // dockhand holds that work at this moment: the service comes back all the same,
            // a moment later.
            let out = setup.run(&s, &["clean", "service", &name]);
            assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
            let ours = stderr(&out).contains("left scaled down");
            let deadline = Instant::now() + Duration::from_secs(if ours { 0 } else { 60 });
            loop {
                let now = replicas_and_intent(s.manager(), &name).await;
                if now == (Some(2), None) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "killed at {marker:?}: not back ({now:?}): {}",
                    stderr(&out)
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            running_container(s.manager(), &name).await;
            if back_already || !stderr(&out).contains("left scaled down") {
                assert!(attempts < 5, "another dockhand brought it back {attempts} times: {}", stderr(&out));
                eprintln!("killed at {marker:?}: another dockhand brought it back first; again");
                continue;
            }
            let jobs = setup.run(&s, &["jobs", "ls", "--json"]);
            assert!(
                stdout(&jobs).contains("\"reconcile\""),
                "a reconcile job is recorded: {}",
                stdout(&jobs)
            );
            break;
        }
    }
    // The volume containers the killed runs left go with the next job on the service.
    let out = setup.run(&s, &["backup", &name]);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let left = s
        .manager()
        .containers(&Filters::new().with("label", format!("dockhand.helper.target={target}")))
        .await
        .unwrap();
    assert!(left.is_empty(), "volume containers left: {left:?}");
    assert_nothing_left(s.manager(), &[target]).await;
}

#[tokio::test]
async fn the_s3_peer_stopped_mid_upload_fails_the_job_and_the_service_comes_back() {
    let s = dockhand_e2e::swarm().await;
    let mut remote = Remote::S3(S3Peer::start());
    let (name, _guard, setup) = remote_service(&s, &remote, "bk-s3down").await;
    let Remote::S3(peer) = &mut remote else { unreachable!("started as S3") };
    let container = running_container(s.manager(), &name).await;
    sh(s.manager(), &container, &tree_script(200)).await;

    let mut child = setup.spawn(&s, &["backup", &name, "--json"]);
    let (mut seen, rest) = read_until(&mut child, "MiB at");
    peer.kill();
    let out = child.wait_with_output().unwrap();
    seen.extend(rest.iter());
    assert_eq!(out.status.code(), Some(1), "{seen:?}\n{}", stderr(&out));
    let job: serde_json::Value = serde_json::from_str(seen.last().unwrap()).unwrap();
    let upload = job["steps"].as_array().unwrap().iter().find(|s| s["kind"] == "upload").unwrap();
    assert_eq!(upload["status"], "failed", "{job}");
    assert!(upload["error"].as_str().unwrap().contains("storage target \"offsite\""), "{job}");
    assert_eq!(steps(&job).last().unwrap(), &("start".to_owned(), "succeeded".to_owned()), "{job}");
    assert_eq!(replicas_and_intent(s.manager(), &name).await, (Some(1), None));

    peer.restart();
    let out = setup.run(&s, &["backups", "ls", &name, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "[]", "no partial object is listed");
}
