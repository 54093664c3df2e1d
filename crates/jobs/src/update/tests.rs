//! Tests of update-service's plan and decisions.

use dockhand_engine::{Client, Endpoint, ServiceSpec};

use super::*;
use crate::job::Trigger;

fn service(image: &str, labels: &[(&str, &str)]) -> Service {
    let mut spec = ServiceSpec::new("web", image);
    for (k, v) in labels {
        spec = spec.with_label(*k, *v);
    }
    let mut service = Service::default();
    service.spec = spec;
    service
}

fn ctx() -> JobContext {
    let client = Client::new(Endpoint::unix("/nonexistent.sock")).unwrap();
    JobContext::new(client, "test", Trigger::Cli, "test")
}

#[test]
fn the_policy_decides_first_and_names_the_rule() {
    let ctx = ctx();
    let off = service("r.example.com/team/app:v1", &[]);
    let UpdatePlan::Refuse(why) =
        plan_update(&off, Some("r.example.com/team/app:v2"), &ctx.defaults, &ctx.prefixes)
    else {
        panic!("deployed without update.enable");
    };
    assert!(why.contains("dockhand.update.enable=true"), "{why}");

    let on = service("r.example.com/team/app:v1@sha256:aaaa", &[("dockhand.update.enable", "true")]);
    let UpdatePlan::Refuse(why) =
        plan_update(&on, Some("evil.example.com/miner"), &ctx.defaults, &ctx.prefixes)
    else {
        panic!("another repository deployed without update.image-allow");
    };
    assert!(why.contains("dockhand.update.image-allow") && why.contains("service web"), "{why}");

    // Without an image: the current tag, its digest dropped, resolved again.
    let UpdatePlan::Deploy { reference, digest, .. } = plan_update(&on, None, &ctx.defaults, &ctx.prefixes)
    else {
        panic!()
    };
    assert_eq!((reference.as_str(), digest), ("r.example.com/team/app:v1", None));
    // A reference that pins its own digest keeps it.
    let digest = format!("sha256:{}", "b".repeat(64));
    let asked = format!("r.example.com/team/app:v2@{digest}");
    let pinned = digest;
    let UpdatePlan::Deploy { reference, digest, .. } =
        plan_update(&on, Some(&asked), &ctx.defaults, &ctx.prefixes)
    else {
        panic!()
    };
    assert_eq!((reference.as_str(), digest.as_deref()), ("r.example.com/team/app:v2", Some(pinned.as_str())));
}
