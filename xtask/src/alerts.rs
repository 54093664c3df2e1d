//! `deploy/alerts.yml`, dockhand-server's Prometheus alerting rules, checked with `promtool`
//! (Debian's `prometheus` package, which `cargo xtask ci` installs): the rules parse, and
//! their unit tests (`deploy/alerts.test.yml`, series shaped as the server exports them)
//! pass. The metric names they use are checked against the server's own output by the
//! server's `metrics::tests`.

use std::process::Command;

/// `promtool check rules` and `promtool test rules` on the shipped rules. Fails, never
/// skips, without promtool.
#[test]
fn the_alert_rules_pass_their_promtool_tests() {
    let promtool = crate::proc::which("promtool")
        .expect("promtool is not installed: `cargo xtask ci` installs it (Debian: prometheus)");
    let deploy = crate::project_root().join("deploy");
    for args in [["check", "rules", "alerts.yml"], ["test", "rules", "alerts.test.yml"]] {
        let out = Command::new(&promtool).args(args).current_dir(&deploy).output().expect("promtool runs");
        assert!(
            out.status.success(),
            "promtool {}:\n{}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
