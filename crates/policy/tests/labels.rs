//! The label schema: seed 002's labels, every diagnostic, node labels, and robustness.

// Test code: a panic with the value is the failure report, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use dockhand_policy::{
    AutoUpdate, Defaults, LabelPrefixes, Severity, node_backup_policy, node_policy, service_policy,
};
use proptest::prelude::*;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

#[test]
fn seed_labels_are_read_under_the_compat_prefix() {
    let l = labels(&[
        ("swarm-utils.clean.enable", "true"),
        ("swarm-utils.clean.exec", "rm -rf /cache/*"),
        ("swarm-utils.clean.exec.shell", "/bin/bash"),
        ("swarm-utils.backup.enable", "true"),
        ("swarm-utils.backup.exec", "pg_dump > /backup/db.sql"),
        ("swarm-utils.backup.stop", "true"),
        ("swarm-utils.backup.volume-list-upload", "volume1, volume2,volume3"),
        ("swarm-utils.backup.volume-list-upload.s3.url", "s3-api.domain.com"),
        ("swarm-utils.backup.volume-list-upload.s3.https", "false"),
        ("swarm-utils.backup.volume-list-upload.s3.bucket", "my-bucket"),
        ("swarm-utils.backup.volume-list-upload.s3.retention-days", "8"),
        ("swarm-utils.update.enable", "true"),
        ("swarm-utils.update.registry.auth", "true"),
        ("swarm-utils.update.registry.user", "ci"),
        ("swarm-utils.update.registry.url", "registry.domain.com"),
    ]);
    let d = Defaults::default();
    let (none, _) = service_policy(&l, false, &d, &LabelPrefixes::default());
    assert_eq!(none, Default::default(), "without the compat prefix the seed's labels are not read");

    let (p, diags) = service_policy(&l, false, &d, &LabelPrefixes::with_swarm_utils());
    assert!(diags.is_empty(), "{diags:?}");
    let clean = p.clean.unwrap();
    assert_eq!(
        (clean.exec.as_deref(), clean.shell.as_str(), clean.exec_timeout),
        (Some("rm -rf /cache/*"), "/bin/bash", d.clean_exec_timeout)
    );
    let backup = p.backup.unwrap();
    assert!(backup.stop);
    assert_eq!(backup.volumes, ["volume1", "volume2", "volume3"]);
    assert_eq!((backup.shell.as_str(), backup.upload_timeout), ("/bin/sh", d.backup_upload_timeout));
    assert_eq!(
        (backup.s3.https, backup.s3.retention_days, backup.s3.bucket.as_deref()),
        (Some(false), Some(8), Some("my-bucket"))
    );
    let update = p.update.unwrap();
    assert!(update.registry_auth);
    assert_eq!(
        (update.registry_user.as_deref(), update.registry_url.as_deref()),
        (Some("ci"), Some("registry.domain.com"))
    );
}

#[test]
fn dockhand_labels_win_and_timeouts_override_defaults() {
    let l = labels(&[
        ("swarm-utils.update.enable", "false"),
        ("dockhand.update.enable", "true"),
        ("dockhand.update.timeout", "90s"),
        ("dockhand.clean.enable", "TRUE"),
        ("dockhand.clean.exec.timeout", "120_000"),
        ("dockhand.update.image-allow", "registry.example.com/team/*"),
    ]);
    let (p, diags) = service_policy(&l, false, &Defaults::default(), &LabelPrefixes::with_swarm_utils());
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(p.update.as_ref().unwrap().timeout, Duration::from_secs(90));
    assert_eq!(p.update.unwrap().image_allow.as_deref(), Some("registry.example.com/team/*"));
    assert_eq!(p.clean.unwrap().exec_timeout, Duration::from_millis(120_000));
    assert!(p.backup.is_none());
}

#[test]
fn every_diagnostic_names_key_value_and_why() {
    /// Labels, global or not, the key the diagnostic must name, its severity, and why.
    type Case<'a> = (&'a [(&'a str, &'a str)], bool, &'a str, Severity, &'a str);
    let cases: [Case<'_>; 10] = [
        (&[("dockhand.clean.enable", "yes")], false, "dockhand.clean.enable", Severity::Error, "not a bool"),
        (
            &[("dockhand.clean.enable", "true"), ("dockhand.clean.exec.timeout", "ten minutes")],
            false,
            "dockhand.clean.exec.timeout",
            Severity::Error,
            "bad duration",
        ),
        (
            &[("dockhand.backup.enable", "true"), ("dockhand.backup.volume-list-upload", "a,,b")],
            false,
            "dockhand.backup.volume-list-upload",
            Severity::Error,
            "empty volume name",
        ),
        (
            &[("dockhand.backup.enable", "true"), ("dockhand.backup.volume-list-upload", "a,../etc")],
            false,
            "dockhand.backup.volume-list-upload",
            Severity::Error,
            "not a Docker volume name",
        ),
        (
            &[("dockhand.backup.enable", "true"), ("dockhand.backup.volume-list-upload", "a/b")],
            false,
            "dockhand.backup.volume-list-upload",
            Severity::Error,
            "not a Docker volume name",
        ),
        (
            &[("dockhand.backup.enabel", "true")],
            false,
            "dockhand.backup.enabel",
            Severity::Error,
            "did you mean dockhand.backup.enable?",
        ),
        (
            &[("dockhand.backup.enable", "true"), ("dockhand.backup.stop", "true")],
            true,
            "dockhand.backup.stop",
            Severity::Warning,
            "backed up while it runs",
        ),
        (
            &[
                ("dockhand.update.enable", "true"),
                ("dockhand.update.registry.password", "hunter2-long-password"),
            ],
            false,
            "dockhand.update.registry.password",
            Severity::Warning,
            "named credential",
        ),
        (
            &[("dockhand.update.token", "plain-token-value")],
            false,
            "dockhand.update.token",
            Severity::Warning,
            "dockhand token hash",
        ),
        (
            &[
                ("dockhand.backup.enable", "true"),
                ("dockhand.backup.volume-list-upload.s3.retention-days", "a week"),
            ],
            false,
            "dockhand.backup.volume-list-upload.s3.retention-days",
            Severity::Error,
            "whole number",
        ),
    ];
    // Review finding 7: a mistyped secret label does not print its value.
    let (_, diags) = service_policy(
        &labels(&[
            ("dockhand.backup.enable", "true"),
            ("dockhand.backup.volume-list-upload.s3.secret_key", "AKIAIOSFODNN7EXAMPLEKEY"),
        ]),
        false,
        &Defaults::default(),
        &LabelPrefixes::default(),
    );
    let unknown =
        diags.iter().find(|d| d.message.contains("unknown label")).expect("an unknown-label diagnostic");
    assert!(!unknown.to_string().contains("AKIAIOSFODNN7EXAMPLEKEY"), "{unknown}");
    assert!(unknown.to_string().contains("did you mean"), "{unknown}");
    // Review finding 8: Docker's own pattern, each name quoted in the message.
    for name in [".", "-rf", "a\0b", "$(reboot)", "a b", "~root", "\\x", "..", "a/b"] {
        let (_, diags) = service_policy(
            &labels(&[("dockhand.backup.enable", "true"), ("dockhand.backup.volume-list-upload", name)]),
            false,
            &Defaults::default(),
            &LabelPrefixes::default(),
        );
        assert!(
            diags.iter().any(|d| d.message.contains("not a Docker volume name")
                && d.message.contains(&format!("{name:?}"))),
            "{name:?}: {diags:?}"
        );
    }
    for name in ["db", "db_data.1", "0-x"] {
        assert!(dockhand_policy::valid_volume_name(name), "{name}");
    }
    // Review finding 9: timeouts are capped at 24h, and 0 is refused in both forms.
    for (value, why) in
        [("0", "more than 0"), ("0s", "more than 0"), ("25h", "at most 24h"), ("86400001", "at most 24h")]
    {
        let (_, diags) = service_policy(
            &labels(&[("dockhand.update.enable", "true"), ("dockhand.update.timeout", value)]),
            false,
            &Defaults::default(),
            &LabelPrefixes::default(),
        );
        assert!(
            diags.iter().any(|d| d.key == "dockhand.update.timeout" && d.message.contains(why)),
            "{value}: {diags:?}"
        );
    }
    for (pairs, global, key, severity, why) in cases {
        let (_, diags) =
            service_policy(&labels(pairs), global, &Defaults::default(), &LabelPrefixes::default());
        let found = diags
            .iter()
            .find(|d| d.key == key)
            .unwrap_or_else(|| panic!("no diagnostic for {key}: {diags:?}"));
        assert_eq!(found.severity, severity, "{found}");
        assert!(found.message.contains(why), "{found}");
        assert!(found.to_string().contains(key), "{found}");
    }
    // A secret's value is masked in its diagnostic; a hashed token is not flagged.
    let (_, diags) = service_policy(
        &labels(&[("dockhand.update.registry.password", "hunter2-long-password")]),
        false,
        &Defaults::default(),
        &LabelPrefixes::default(),
    );
    assert!(!diags[0].to_string().contains("hunter2-long-password"), "{}", diags[0]);
    let hashed = dockhand_policy::hash_token("t");
    let (_, diags) = service_policy(
        &labels(&[("dockhand.update.token", &hashed)]),
        false,
        &Defaults::default(),
        &LabelPrefixes::default(),
    );
    assert!(diags.is_empty(), "{diags:?}");
    // Review finding 1: a malformed hash is an error, never taken for a plain token.
    let (_, diags) = service_policy(
        &labels(&[("dockhand.update.token", "SHA256:00")]),
        false,
        &Defaults::default(),
        &LabelPrefixes::default(),
    );
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert!(
        diags[0].to_string().contains("not a token hash") && diags[0].severity == Severity::Error,
        "{}",
        diags[0]
    );
    // CI identity bindings take any claim name.
    let (_, diags) = service_policy(
        &labels(&[("dockhand.update.oidc.project_path", "group/a"), ("dockhand.clean.oidc.ref", "main")]),
        false,
        &Defaults::default(),
        &LabelPrefixes::default(),
    );
    assert!(diags.is_empty(), "{diags:?}");
    // Labels of other prefixes and other areas are none of our business.
    let (_, diags) = service_policy(
        &labels(&[("traefik.enable", "true"), ("dockhand.tenant", "a")]),
        false,
        &Defaults::default(),
        &LabelPrefixes::default(),
    );
    assert!(diags.is_empty(), "{diags:?}");
}

#[test]
fn node_labels() {
    let d = Defaults::default();
    let (p, diags) = node_policy(
        &labels(&[
            ("dockhand.clean.enable", "true"),
            ("dockhand.clean.image.enable", "false"),
            ("dockhand.clean.builder.timeout", "5m"),
            ("dockhand.clean.exec", "find /tmp -mtime +7 -delete"),
            ("dockhand.clean.exec.image", "busybox:1.36"),
            ("dockhand.clean.exec.timeout", "90s"),
        ]),
        &d,
        &LabelPrefixes::default(),
    );
    assert!(diags.is_empty(), "{diags:?}");
    let p = p.unwrap();
    assert!(!p.image.enabled && p.container.enabled && p.builder.enabled);
    assert_eq!(
        (p.builder.timeout, p.container.timeout),
        (Duration::from_secs(300), d.clean_node_container_timeout)
    );
    let exec = p.exec.expect("clean.exec with its image");
    assert_eq!(
        (exec.command.as_str(), exec.image.as_str(), exec.shell.as_str(), exec.timeout),
        ("find /tmp -mtime +7 -delete", "busybox:1.36", d.clean_exec_shell.as_str(), Duration::from_secs(90))
    );
    assert!(!exec.host, "in the host's namespaces only when asked");
    let (p, diags) = node_policy(
        &labels(&[
            ("dockhand.clean.exec", "journalctl --vacuum-time=7d"),
            ("dockhand.clean.exec.image", "busybox:1.36"),
            ("dockhand.clean.exec.host", "true"),
        ]),
        &d,
        &LabelPrefixes::default(),
    );
    assert!(diags.is_empty(), "{diags:?}");
    assert!(p.unwrap().exec.unwrap().host);
    let (_, diags) =
        node_policy(&labels(&[("dockhand.clean.exec.host", "yes please")]), &d, &LabelPrefixes::default());
    assert!(diags.iter().any(|d| d.key == "dockhand.clean.exec.host"), "{diags:?}");
    // Without its image, the exec cannot run: an error naming the label to add.
    let (p, diags) = node_policy(&labels(&[("dockhand.clean.exec", "true")]), &d, &LabelPrefixes::default());
    assert!(p.unwrap().exec.is_none());
    assert!(diags[0].message.contains("dockhand.clean.exec.image"), "{}", diags[0]);
    let (all, _) = node_policy(&labels(&[]), &d, &LabelPrefixes::default());
    let all = all.expect("a node without labels is cleaned, as in the seed");
    assert!(all.container.enabled && all.image.enabled && all.builder.enabled);
    let (none, _) =
        node_policy(&labels(&[("dockhand.clean.enable", "false")]), &d, &LabelPrefixes::default());
    assert!(none.is_none(), "clean.enable=false excludes a node");
    let (_, diags) =
        node_policy(&labels(&[("dockhand.clean.imgae.enable", "true")]), &d, &LabelPrefixes::default());
    assert!(diags[0].message.contains("did you mean dockhand.clean.image.enable?"), "{}", diags[0]);
}

#[test]
fn node_backup_labels() {
    let d = Defaults::default();
    let p = LabelPrefixes::default();
    let (policy, diags) = node_backup_policy(
        &labels(&[
            ("dockhand.backup.enable", "true"),
            ("dockhand.backup.volume-list-upload", "db, cache"),
            ("dockhand.backup.exec", "sqlite3 /volumes/db/app.db .dump > /volumes/db/dump.sql"),
            ("dockhand.backup.exec.image", "keinos/sqlite3:3.46"),
            ("dockhand.backup.target", "offsite"),
            ("dockhand.backup.volume-list-upload.s3.retention-days", "7"),
            ("dockhand.clean.enable", "true"),
        ]),
        &d,
        &p,
    );
    assert!(diags.is_empty(), "{diags:?}");
    let policy = policy.unwrap();
    assert_eq!(policy.volumes, ["db", "cache"]);
    assert_eq!(policy.exec_image.as_deref(), Some("keinos/sqlite3:3.46"));
    assert!(!policy.exec_read_write, "R3-18: the exec sees the volumes read-only unless a label says");
    let (rw, diags) = node_backup_policy(
        &labels(&[
            ("dockhand.backup.enable", "true"),
            ("dockhand.backup.volume-list-upload", "db"),
            ("dockhand.backup.exec", "x"),
            ("dockhand.backup.exec.image", "i"),
            ("dockhand.backup.exec.read-write", "true"),
        ]),
        &d,
        &p,
    );
    assert!(diags.is_empty() && rw.unwrap().exec_read_write, "{diags:?}");
    assert_eq!(
        (policy.target.as_deref(), policy.s3.retention_days, policy.stop),
        (Some("offsite"), Some(7), false)
    );
    let (none, _) = node_backup_policy(&labels(&[("dockhand.clean.enable", "true")]), &d, &p);
    assert!(none.is_none(), "a node backs up only with backup.enable=true");
    // An exec needs an image with its shell; a node has no replicas to stop.
    let (_, diags) = node_backup_policy(
        &labels(&[
            ("dockhand.backup.enable", "true"),
            ("dockhand.backup.exec", "true"),
            ("dockhand.backup.stop", "true"),
        ]),
        &d,
        &p,
    );
    let text: Vec<String> = diags.iter().map(ToString::to_string).collect();
    assert!(text.iter().any(|t| t.contains("dockhand.backup.exec.image")), "{text:?}");
    assert!(
        text.iter().any(|t| t.contains("dockhand.backup.stop") && t.contains("unknown label")),
        "{text:?}"
    );
    // On a service, the image label is not one of its labels.
    let (_, diags) = service_policy(
        &labels(&[("dockhand.backup.enable", "true"), ("dockhand.backup.exec.image", "x")]),
        false,
        &d,
        &p,
    );
    assert!(diags.iter().any(|d| d.key == "dockhand.backup.exec.image"), "{diags:?}");
}

proptest! {
    #[test]
    fn parsing_never_panics(
        pairs in proptest::collection::btree_map(
            "(dockhand|swarm-utils)\\.(clean|backup|update)(\\.[a-z3-]{1,12}){0,3}",
            "\\PC{0,24}",
            0..12,
        ),
        global in any::<bool>(),
    ) {
        let d = Defaults::default();
        let (policy, diags) = service_policy(&pairs, global, &d, &LabelPrefixes::with_swarm_utils());
        // Every diagnostic names a label that was given.
        for diag in &diags {
            prop_assert!(pairs.contains_key(&diag.key), "{diag} names no given label");
        }
        // A global service is never stopped for a backup.
        if global {
            prop_assert!(policy.backup.is_none_or(|b| !b.stop));
        }
        let _ = node_policy(&pairs, &d, &LabelPrefixes::default());
        let _ = node_backup_policy(&pairs, &d, &LabelPrefixes::default());
    }
}

/// Valid label values: what a careful operator writes.
fn valid_labels() -> impl Strategy<Value = BTreeMap<String, String>> {
    let word = "[a-z][a-z0-9_-]{0,10}";
    let timeout = (1u64..100_000).prop_map(|ms| format!("{ms}ms"));
    (
        any::<(bool, bool, bool, bool, bool)>(),
        proptest::collection::vec(word, 0..4),
        (timeout.clone(), timeout.clone(), timeout),
        proptest::option::of("[a-z /*.-]{1,20}"),
        proptest::option::of(0u32..400),
        (
            proptest::option::of(prop_oneof![Just("true"), Just("notify"), Just("false")]),
            proptest::option::of("[a-z0-9][a-z0-9._-]{0,10}"),
            any::<bool>(),
        ),
    )
        .prop_map(|((clean, backup, update, stop, auth), volumes, (t1, t2, t3), exec, days, watch)| {
            let mut l = BTreeMap::new();
            let mut put = |k: &str, v: String| {
                l.insert(format!("dockhand.{k}"), v);
            };
            if clean {
                put("clean.enable", "true".into());
                put("clean.exec.timeout", t1.clone());
                if let Some(exec) = &exec {
                    put("clean.exec", exec.clone());
                }
            }
            if backup {
                put("backup.enable", "true".into());
                put("backup.stop", stop.to_string());
                put("backup.volume-list-upload.timeout", t2.clone());
                let mut unique = volumes.clone();
                unique.dedup();
                if !unique.is_empty() {
                    put("backup.volume-list-upload", unique.join(","));
                }
                if let Some(days) = days {
                    put("backup.volume-list-upload.s3.retention-days", days.to_string());
                }
            }
            if update {
                put("update.enable", "true".into());
                put("update.registry.auth", auth.to_string());
                put("update.timeout", t3.clone());
                put("update.image-allow", "registry.example.com/*".into());
                let (auto, tag, cleanup) = watch;
                if let Some(auto) = auto {
                    put("update.auto", auto.to_owned());
                    put("update.auto.schedule", "0 */5 * * * *".into());
                }
                if let Some(tag) = tag {
                    put("update.auto.tag", tag);
                }
                put("update.cleanup", cleanup.to_string());
            }
            l
        })
}

proptest! {
    #[test]
    fn a_policy_round_trips_through_its_labels(labels in valid_labels()) {
        let d = Defaults::default();
        let prefixes = LabelPrefixes::default();
        let (policy, diags) = service_policy(&labels, false, &d, &prefixes);
        prop_assert!(diags.is_empty(), "{diags:?}");
        let (again, diags) = service_policy(&policy.to_labels("dockhand."), false, &d, &prefixes);
        prop_assert!(diags.is_empty(), "{diags:?}");
        prop_assert_eq!(again, policy);
    }
}

#[test]
fn update_hooks_take_their_shell_and_timeout_and_rollback_is_auto_or_never() {
    let d = Defaults::default();
    let prefixes = LabelPrefixes::default();
    let (p, diags) = service_policy(&labels(&[("dockhand.update.enable", "true")]), false, &d, &prefixes);
    assert!(diags.is_empty(), "{diags:?}");
    let update = p.update.unwrap();
    assert_eq!(
        (update.shell.as_str(), update.exec_timeout, update.rollback),
        ("/bin/sh", d.clean_exec_timeout, true)
    );

    let l = labels(&[
        ("dockhand.update.enable", "true"),
        ("dockhand.update.exec.shell", "/bin/bash"),
        ("dockhand.update.exec.timeout", "2m"),
        ("dockhand.update.rollback", "never"),
    ]);
    let (p, diags) = service_policy(&l, false, &d, &prefixes);
    assert!(diags.is_empty(), "{diags:?}");
    let update = p.update.unwrap();
    assert_eq!(
        (update.shell.as_str(), update.exec_timeout, update.rollback),
        ("/bin/bash", Duration::from_secs(120), false)
    );

    let l = labels(&[("dockhand.update.enable", "true"), ("dockhand.update.rollback", "sometimes")]);
    let (p, diags) = service_policy(&l, false, &d, &prefixes);
    assert!(p.update.unwrap().rollback, "a bad value keeps the default");
    assert!(
        diags.iter().any(|x| x.key == "dockhand.update.rollback" && x.message.contains("auto or never")),
        "{diags:?}"
    );
}

/// R3-11: a service's owner may not make the shared server run a job every second, and an
/// expression that never fires is said so at parse, not paid for at every wake.
#[test]
fn schedule_labels_have_a_minimum_interval() {
    let d = Defaults::default();
    let p = LabelPrefixes::default();
    let schedule = |key: &str, value: &str, d: &Defaults| {
        let enable = if key.starts_with("dockhand.backup") {
            "dockhand.backup.enable"
        } else {
            "dockhand.clean.enable"
        };
        let l = labels(&[(enable, "true"), (key, value)]);
        let (policy, diags) = service_policy(&l, false, d, &p);
        let timing = policy.backup.and_then(|b| b.schedule).or(policy.clean.and_then(|c| c.schedule));
        (timing, diags)
    };
    for (key, value, why) in [
        ("dockhand.backup.schedule", "* * * * * *", "fires 1s apart"),
        ("dockhand.clean.schedule", "*/30 * * * * *", "fires 30s apart"),
        ("dockhand.clean.schedule", "0,1 0 3 * * *", "fires 1s apart"),
        ("dockhand.backup.schedule", "0 0 0 30 2 *", "never fires"),
    ] {
        let (timing, diags) = schedule(key, value, &d);
        assert_eq!(timing, None, "{key}={value}");
        assert!(
            diags
                .iter()
                .any(|x| x.key == key && x.severity == Severity::Error && x.to_string().contains(why)),
            "{key}={value}: {diags:?}"
        );
    }
    for value in ["0 * * * * *", "0 0 3 * * *", "*/5 * * * *", "off"] {
        let (timing, diags) = schedule("dockhand.backup.schedule", value, &d);
        assert!(timing.is_some() && diags.is_empty(), "{value}: {diags:?}");
    }
    // schedule.min_interval moves the bar.
    let mut strict = d.clone();
    strict.label_min_interval = Duration::from_secs(3600);
    let (timing, diags) = schedule("dockhand.backup.schedule", "0 */5 * * * *", &strict);
    assert!(timing.is_none() && diags.iter().any(|x| x.to_string().contains("once per 1h")), "{diags:?}");
}

#[test]
fn watch_labels_say_what_to_follow_and_a_bad_one_says_why() {
    let d = Defaults::default();
    let prefixes = LabelPrefixes::with_swarm_utils();
    let l = labels(&[
        ("swarm-utils.update.enable", "true"),
        ("swarm-utils.update.auto", "notify"),
        ("dockhand.update.auto.schedule", "0 */10 * * * *"),
        ("dockhand.update.auto.tag", "1.4"),
        ("dockhand.update.cleanup", "true"),
    ]);
    let (p, diags) = service_policy(&l, false, &d, &prefixes);
    assert!(diags.is_empty(), "{diags:?}");
    let update = p.update.unwrap();
    assert_eq!(update.auto, AutoUpdate::Notify);
    assert_eq!(update.auto_tag.as_deref(), Some("1.4"));
    assert_eq!(update.auto_schedule.map(|t| t.to_string()).as_deref(), Some("0 */10 * * * *"));
    assert!(update.cleanup);

    // Unset, the watch leaves the service alone.
    let (p, _) = service_policy(&labels(&[("dockhand.update.enable", "true")]), false, &d, &prefixes);
    let update = p.update.unwrap();
    assert_eq!(
        (update.auto, update.auto_tag, update.auto_schedule, update.cleanup),
        (AutoUpdate::Off, None, None, false)
    );

    let bad = labels(&[
        ("dockhand.update.enable", "true"),
        ("dockhand.update.auto", "yes"),
        ("dockhand.update.auto.tag", "-nightly"),
        ("dockhand.update.auto.schedule", "* * * * * *"),
    ]);
    let (p, diags) = service_policy(&bad, false, &d, &prefixes);
    assert_eq!(p.update.unwrap().auto, AutoUpdate::Off, "a bad mode watches nothing");
    let said = |key: &str| diags.iter().find(|d| d.key == key).map(ToString::to_string).unwrap_or_default();
    assert!(said("dockhand.update.auto").contains("expected true, notify or false"), "{diags:?}");
    assert!(said("dockhand.update.auto.tag").contains("not an image tag"), "{diags:?}");
    assert!(said("dockhand.update.auto.schedule").contains("more often than a label may ask"), "{diags:?}");

    // Watching needs update.enable: a warning, not a silent no-op.
    let (p, diags) = service_policy(&labels(&[("dockhand.update.auto", "true")]), false, &d, &prefixes);
    assert!(p.update.is_none());
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(diags[0].severity, Severity::Warning);
    assert!(diags[0].to_string().contains("update.enable is not true"), "{}", diags[0]);
}
