//! Exec against containers of real swarm services.

use std::collections::HashMap;

use dockhand_e2e::{BUSYBOX_IMAGE, engine, service_with_container, unique_name};
use dockhand_engine::{ExecSpec, MAX_CHUNK, ServiceSpec, StreamKind};

fn sleeper(prefix: &str) -> ServiceSpec {
    ServiceSpec::new(unique_name(prefix), BUSYBOX_IMAGE).with_args(["sleep", "3600"])
}

#[tokio::test]
async fn output_is_demultiplexed_and_the_exit_code_returned() {
    let e = engine().await;
    let (_guard, container) = service_with_container(&e, &sleeper("exec"), "running").await;
    let spec = ExecSpec::new(["sh", "-c", "echo out; echo err >&2; exit 7"]).with_env("X=1");
    let mut output = e.client.exec(&container, &spec).await.unwrap();
    let mut seen: HashMap<StreamKind, Vec<u8>> = HashMap::new();
    while let Some(chunk) = output.next().await {
        let chunk = chunk.unwrap();
        seen.entry(chunk.stream).or_default().extend_from_slice(&chunk.data);
    }
    assert_eq!(seen.get(&StreamKind::Stdout).map(Vec::as_slice), Some(&b"out\n"[..]));
    assert_eq!(seen.get(&StreamKind::Stderr).map(Vec::as_slice), Some(&b"err\n"[..]));
    assert_eq!(output.exit_code().await.unwrap(), 7);
}

#[tokio::test]
async fn fifty_mib_of_interleaved_output_arrives_complete_and_in_order() {
    // Two `seq` streams run at once, one per stream: each must arrive whole and in order.
    // The check reads as it goes and keeps no output: memory stays at one chunk.
    let e = engine().await;
    let (_guard, container) = service_with_container(&e, &sleeper("exec-big"), "running").await;
    const N: u64 = 3_500_000; // about 25 MiB of numbers per stream
    let script = format!("seq 1 {N} & seq 1 {N} >&2; wait");
    let mut output = e.client.exec(&container, &ExecSpec::new(["sh", "-c", &script])).await.unwrap();

    struct Expect {
        next: u64,
        partial: Vec<u8>,
        bytes: u64,
    }
    let mut streams: HashMap<StreamKind, Expect> = HashMap::new();
    let mut switches = 0u64;
    let mut last = None;
    while let Some(chunk) = output.next().await {
        let chunk = chunk.unwrap();
        assert!(chunk.data.len() <= MAX_CHUNK);
        if last.is_some_and(|l| l != chunk.stream) {
            switches += 1;
        }
        last = Some(chunk.stream);
        let s = streams.entry(chunk.stream).or_insert(Expect { next: 1, partial: Vec::new(), bytes: 0 });
        s.bytes += chunk.data.len() as u64;
        s.partial.extend_from_slice(&chunk.data);
        let complete = s.partial.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        for line in s.partial[..complete].split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let n: u64 = std::str::from_utf8(line).unwrap().parse().unwrap();
            assert_eq!(n, s.next, "{:?} out of order", chunk.stream);
            s.next += 1;
        }
        s.partial.drain(..complete);
    }
    for kind in [StreamKind::Stdout, StreamKind::Stderr] {
        let s = &streams[&kind];
        assert_eq!(s.next, N + 1, "{kind:?} is incomplete");
        assert!(s.partial.is_empty());
    }
    let total: u64 = streams.values().map(|s| s.bytes).sum();
    assert!(total > 50 * 1000 * 1000, "{total} bytes");
    assert!(switches > 10, "the two streams were not interleaved ({switches} switches)");
    assert_eq!(output.exit_code().await.unwrap(), 0);
}

#[tokio::test]
async fn a_stopped_container_is_a_conflict() {
    let e = engine().await;
    let spec = ServiceSpec::new(unique_name("exec-done"), BUSYBOX_IMAGE)
        .with_args(["true"])
        .with_restart_condition("none");
    let (_guard, container) = service_with_container(&e, &spec, "complete").await;
    let err = e.client.exec(&container, &ExecSpec::new(["true"])).await.unwrap_err();
    assert!(err.is_conflict(), "{err}");
    assert!(err.to_string().contains("is not running"), "{err}");
}

#[tokio::test]
async fn a_missing_command_is_an_engine_error_not_a_hang() {
    let e = engine().await;
    let (_guard, container) = service_with_container(&e, &sleeper("exec-missing"), "running").await;
    match e.client.exec(&container, &ExecSpec::new(["/no/such/binary"])).await {
        // Docker reports it in the stream (type 3) or as exit code 126/127, by version.
        Ok(mut out) => {
            let mut stream_error = None;
            while let Some(chunk) = out.next().await {
                if let Err(err) = chunk {
                    stream_error = Some(err.to_string());
                    break;
                }
            }
            if stream_error.is_none() {
                let code = out.exit_code().await.unwrap();
                assert!(code == 126 || code == 127, "exit code {code}");
            }
        }
        Err(err) => assert!(err.to_string().contains("no such file"), "{err}"),
    }
    let err = e.client.exec(&container, &ExecSpec::new(Vec::<String>::new())).await.unwrap_err();
    assert!(err.to_string().contains("exec command"), "{err}");
}
