//! Tests of what the CLI prints: tables, job lines, error chains and exit codes.

use super::*;

#[test]
fn an_error_chain_is_one_line_without_repeats() {
    let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
    let err = anyhow::Error::new(io).context("cannot connect to unix:///x.sock: No such file or directory");
    let err = err.context("--host-id web");
    assert_eq!(
        one_line(err.chain()),
        "--host-id web: cannot connect to unix:///x.sock: No such file or directory"
    );
}

#[test]
fn ages_read_as_the_docker_cli_writes_them() {
    let cases = [
        (0, "less than a second ago"),
        (1, "1 second ago"),
        (59, "59 seconds ago"),
        (60, "about a minute ago"),
        (119, "about a minute ago"),
        (300, "5 minutes ago"),
        (3600, "about an hour ago"),
        (3 * 3600, "3 hours ago"),
        (47 * 3600, "47 hours ago"),
        (48 * 3600, "2 days ago"),
        (15 * 86_400, "2 weeks ago"),
        (61 * 86_400, "2 months ago"),
        (800 * 86_400, "2 years ago"),
    ];
    for (secs, text) in cases {
        assert_eq!(ago(Duration::from_secs(secs)), text, "{secs}s");
    }
}

#[test]
fn tasks_show_hostnames_and_relative_times() {
    let task: Task = serde_json::from_value(serde_json::json!({
        "ID": "t1234567890abcdef", "NodeID": "n1234567890abcdef", "Slot": 1, "DesiredState": "running",
        "Status": {"State": "running", "Timestamp": "2026-11-28T03:00:00.123456789Z"}
    }))
    .unwrap();
    let hostnames = HashMap::from([("n1234567890abcdef".to_owned(), "node-1".to_owned())]);
    let now = humantime::parse_rfc3339("2026-11-28T03:05:00Z").unwrap();
    let text = tasks("web", &[task], &hostnames, now);
    assert!(text.contains("web.1") && text.contains("node-1"), "{text}");
    assert!(text.contains("Running 4 minutes ago") && text.contains("Running  "), "{text}");
}
