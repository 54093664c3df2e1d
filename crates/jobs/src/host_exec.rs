//! A node's `clean.exec` with `clean.exec.host=true`: the command runs in the host's
//! namespaces, for commands that act on the host itself (`journalctl --vacuum-time=7d`).
//!
//! Swarm services cannot be given these capabilities, so the container is made through the node's engine
//! (directly on the node dockhand is connected to, else by the agent of a helper there): a
//! root container of `clean.exec.image` with the capabilities to enter other namespaces
//! (see [`HOST_CAPS`]), in the host's PID namespace, that enters the
//! mount, UTS, IPC, network and PID namespaces of its parent, the container runtime's shim
//! (`nsenter -t $PPID -m -u -i -n -p`), which are the node's own: the host's on a plain
//! machine, and a node's own where engines run in namespaces of their own (as in the test
//! swarm). Not pid 1's: an init may forbid access to its namespaces (it does on the
//! machines dockhand is tested on), and pid 1 is not the node where several engines share
//! a machine. The command is `<shell> -c <command>`, passed to that constant wrapper as
//! arguments, never spliced into its text. The image is never pulled (a container that is
//! root on the host runs only what the node already has) and must hold `sh` and `nsenter`
//! (busybox has both); the shell is the host's, since the command runs in the host's mount
//! namespace. The container is removed on every path.

use std::time::{Duration, SystemTime};

use dockhand_engine::{Client, LogsOptions, NewContainer};

use crate::job::{Status, Step};
use crate::tail::Tail;

/// The label of a host exec's container, whose value is the node's job step.
pub(crate) const HOST_EXEC_LABEL: &str = "dockhand.host-exec";
/// The capabilities it adds to the engine's defaults: entering another process's
/// namespaces (`SYS_ADMIN`, `SYS_PTRACE` to open the shim's), and reading any file
/// (`DAC_READ_SEARCH`); with seccomp, AppArmor and SELinux labels off. Not `--privileged`:
/// that asks for every capability the engine knows, and runc refuses to start it on a host
/// whose bounding set lacks one (the machines dockhand is tested on lack `SYS_RESOURCE`).
const HOST_CAPS: &[&str] = &["SYS_ADMIN", "SYS_PTRACE", "DAC_READ_SEARCH"];
/// How much of what the command printed a step keeps.
const TAIL_BYTES: usize = 2048;

/// The entrypoint: into the namespaces of the shim, then the command given as arguments.
fn entrypoint() -> Vec<String> {
    ["/bin/sh", "-c", r#"exec nsenter -t "$PPID" -m -u -i -n -p -- "$@""#, "dockhand-host-exec"]
        .map(str::to_owned)
        .to_vec()
}

/// The container's spec: nothing in it comes from a request; `argv` is the label's command
/// as its own argument.
pub(crate) fn spec(image: &str, argv: &[String]) -> NewContainer {
    let mut spec = NewContainer::new(image, argv.iter().cloned());
    spec.entrypoint = Some(entrypoint());
    spec.host_config.pid_mode = "host".to_owned();
    spec.host_config.cap_add = HOST_CAPS.iter().map(|c| (*c).to_owned()).collect();
    spec.host_config.security_opt =
        ["seccomp=unconfined", "apparmor=unconfined", "label=disable"].map(str::to_owned).to_vec();
    spec.with_label(HOST_EXEC_LABEL, "clean-exec")
}

/// Runs `argv` on the host of the engine `client` talks to, as the step `exec` on `node`,
/// within `timeout`.
pub(crate) async fn host_exec_step(
    client: &Client,
    image: &str,
    argv: &[String],
    timeout: Duration,
    node: &str,
) -> Step {
    let mut step = Step::start("exec", SystemTime::now());
    step.node = Some(node.to_owned());
    match host_exec(client, image, argv, timeout).await {
        Ok(said) => {
            step.finish(Status::Succeeded, SystemTime::now(), None);
            step.output_tail = (!said.is_empty()).then_some(said);
        }
        Err((why, said)) => {
            step.finish(Status::Failed, SystemTime::now(), Some(why));
            step.output_tail = (!said.is_empty()).then_some(said);
        }
    }
    step
}

/// The tail of what it printed, or why it failed and that tail.
async fn host_exec(
    client: &Client,
    image: &str,
    argv: &[String],
    timeout: Duration,
) -> Result<String, (String, String)> {
    let failed = |why: String| (why, String::new());
    if let Err(e) = client.image(image).await {
        return Err(failed(if e.is_not_found() {
            format!(
                "the image {image} (clean.exec.image) is not on this node: a host exec runs as root on the host, \
                 so it never pulls; pull it on the node"
            )
        } else {
            format!("cannot read the image {image}: {e}")
        }));
    }
    let name = format!("dh-host-exec-{}", crate::job::epoch_ms(SystemTime::now()));
    let id = client
        .run_container(&name, &spec(image, argv))
        .await
        .map_err(|e| failed(format!("cannot start the host exec's container: {e}")))?;
    let ended = tokio::time::timeout(timeout, async {
        loop {
            let state = client.container(&id).await?.state;
            if !state.running && state.status != "created" {
                return Ok::<_, dockhand_engine::Error>(state.exit_code);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    let said = output(client, &id).await;
    // Whatever happened: it is gone (a command still running is killed).
    let removed = client.remove_container(&id).await;
    match (ended, removed) {
        (Err(_), _) => Err((
            format!("the command did not end within {}", dockhand_policy::format_go_duration(timeout)),
            said,
        )),
        (Ok(Err(e)), _) => Err((format!("cannot follow the host exec's container: {e}"), said)),
        (Ok(Ok(0)), Ok(())) => Ok(said),
        (Ok(Ok(0)), Err(e)) => Err((format!("cannot remove the host exec's container {name}: {e}"), said)),
        (Ok(Ok(code)), _) => Err((format!("the command exited with {code}"), said)),
    }
}

/// The tail of a container's stdout and stderr, or why it could not be read.
async fn output(client: &Client, id: &str) -> String {
    let mut tail = Tail::new(TAIL_BYTES);
    match client.container_logs(id, &LogsOptions::default()).await {
        Ok(mut logs) => {
            while let Some(chunk) = logs.next().await {
                match chunk {
                    Ok(chunk) => tail.push(&chunk.data),
                    Err(e) => {
                        tail.push(format!("\n(its output could not be read further: {e})").as_bytes());
                        break;
                    }
                }
            }
        }
        Err(e) => tail.push(format!("(its output could not be read: {e})").as_bytes()),
    }
    tail.text()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_enters_every_namespace_of_pid_1_as_its_own_argv() {
        let argv = ["/bin/sh", "-c", "journalctl --vacuum-time=7d; echo $(hostname)"].map(str::to_owned);
        let spec = spec("busybox:1", &argv);
        let json = serde_json::to_value(&spec).unwrap();
        let wrapper = r#"exec nsenter -t "$PPID" -m -u -i -n -p -- "$@""#;
        assert_eq!(json["Entrypoint"], serde_json::json!(["/bin/sh", "-c", wrapper, "dockhand-host-exec"]));
        assert_eq!(json["Cmd"], serde_json::json!(argv), "the label's text is one argument, never split");
        assert_eq!(
            json["HostConfig"]["CapAdd"],
            serde_json::json!(["SYS_ADMIN", "SYS_PTRACE", "DAC_READ_SEARCH"])
        );
        assert_eq!(json["HostConfig"]["SecurityOpt"][0], "seccomp=unconfined");
        assert_eq!(json["HostConfig"]["PidMode"], "host");
        assert_eq!(json["Labels"][HOST_EXEC_LABEL], "clean-exec");
    }
}
