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

/// The order of update-service and every way it ends, on the fake swarm: the image is
/// resolved to a digest before anything changes, the hooks run in the tasks around the
/// update, and a failed update is rolled back once (or left, as asked).
mod order {
    use std::sync::Arc;

    use super::*;
    use crate::job::Collect;
    use crate::swarm::fake::{FakeSwarm, context};

    const OLD: &str = "registry.example.com/team/app:1@sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const NEW: &str = "registry.example.com/team/app:2";
    const DIGEST: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    /// The service `app` on `OLD`, two replicas, labelled with `labels` besides
    /// `update.enable`; the registry serves `NEW` as `DIGEST`.
    fn app(labels: &[(&str, &str)]) -> (Arc<FakeSwarm>, String) {
        let swarm = Arc::new(FakeSwarm::manager());
        let mut all = vec![("dockhand.update.enable", "true")];
        all.extend_from_slice(labels);
        let id = swarm.add_service("app", 2, &all);
        swarm.set_image(&id, OLD);
        swarm.publish(NEW, DIGEST);
        (swarm, id)
    }

    async fn update(swarm: &Arc<FakeSwarm>, request: UpdateRequest) -> Job {
        let registries = Registries::load(
            &dockhand_host::ConfigFile::parse("{}", false).unwrap(),
            &dockhand_host::Environment::from_vars::<&str, &str>([]),
        )
        .unwrap();
        update_service(&context(swarm), &registries, "app", &request, &Collect::default()).await.unwrap()
    }

    fn kinds(job: &Job) -> Vec<(&str, Status)> {
        job.steps.iter().map(|s| (s.kind.as_str(), s.status)).collect()
    }

    /// What changed the swarm, renewals and the lock left out.
    fn writes(swarm: &FakeSwarm) -> Vec<String> {
        swarm.log().into_iter().filter(|w| !w.contains("config")).collect()
    }

    fn image(swarm: &FakeSwarm, id: &str) -> String {
        swarm.spec(id).task_template.container_spec.image
    }

    /// A service scaled to zero has no task to replace: the engine never reports its
    /// rolling update completed, and the update is done once its spec is.
    #[tokio::test(start_paused = true)]
    async fn a_service_scaled_to_zero_is_updated_without_waiting_on_tasks() {
        let swarm = Arc::new(FakeSwarm::manager());
        let id = swarm.add_service("app", 0, &[("dockhand.update.enable", "true")]);
        swarm.set_image(&id, OLD);
        swarm.publish(NEW, DIGEST);
        swarm.next_update(&id, "updating", "");
        let job = update(&swarm, UpdateRequest::new(Some(NEW.to_owned()))).await;
        assert_eq!(job.status, Status::Succeeded, "{job:?}");
        assert_eq!(image(&swarm, &id), format!("{NEW}@{DIGEST}"));
    }

    /// In order: the lock, the image resolved to its digest (no write), the pre-hook in
    /// every task, the update pinned by digest, the post-hook in every task, the lock
    /// released.
    #[tokio::test(start_paused = true)]
    async fn an_update_resolves_runs_its_hooks_around_and_deploys_by_digest() {
        let (swarm, id) =
            app(&[("dockhand.update.exec-pre", "drain"), ("dockhand.update.exec-post", "warm")]);
        let job = update(&swarm, UpdateRequest::new(Some(NEW.to_owned()))).await;

        assert_eq!(job.status, Status::Succeeded, "{job:?}");
        let pinned = format!("{NEW}@{DIGEST}");
        let (c0, c1) = (FakeSwarm::container(&id, 0), FakeSwarm::container(&id, 1));
        assert_eq!(
            writes(&swarm),
            [
                format!("exec {c0} /bin/sh -c drain"),
                format!("exec {c1} /bin/sh -c drain"),
                format!("update_service app image={pinned}"),
                format!("exec {c0} /bin/sh -c warm"),
                format!("exec {c1} /bin/sh -c warm"),
            ]
        );
        let log = swarm.log();
        assert!(log.first().is_some_and(|w| w.starts_with("create_config dockhand-lock-service")), "{log:?}");
        assert!(log.last().is_some_and(|w| w.starts_with("remove_config")), "{log:?}");
        use Status::Succeeded as Ok_;
        assert_eq!(
            kinds(&job),
            [
                ("resolve", Ok_),
                ("exec-pre", Ok_),
                ("exec-pre", Ok_),
                ("update", Ok_),
                ("exec-post", Ok_),
                ("exec-post", Ok_)
            ]
        );
        assert_eq!(image(&swarm, &id), pinned);

        // The same again: already up to date, nothing written.
        let before = writes(&swarm).len();
        let again = update(&swarm, UpdateRequest::new(Some(NEW.to_owned()))).await;
        assert_eq!(kinds(&again), [("resolve", Status::Succeeded), ("update", Status::Skipped)], "{again:?}");
        assert_eq!(writes(&swarm).len(), before, "{:?}", swarm.log());
    }

    /// Every way an update fails is rolled back once to the previous image: the engine
    /// paused it, it did not converge in its time, the post-hook failed. When the engine's
    /// own failure action rolls it back, dockhand waits on that rather than roll back again.
    #[tokio::test(start_paused = true)]
    async fn a_failed_update_is_rolled_back_once() {
        for (how, labels, says) in [
            ("paused", &[][..], "update paused: task failed"),
            ("updating", &[("dockhand.update.timeout", "30s")][..], "did not converge"),
            ("completed", &[("dockhand.update.exec-post", "check")][..], ""),
            ("rollback_completed", &[][..], "update rollback completed"),
        ] {
            let (swarm, id) = app(labels);
            swarm.next_update(&id, how, "task failed");
            if how == "completed" {
                swarm.script_exec(&FakeSwarm::container(&id, 1), Some((1, "health check failed")));
            }
            let job = update(&swarm, UpdateRequest::new(Some(NEW.to_owned()))).await;

            assert_eq!(job.status, Status::Failed, "{how}: {job:?}");
            let failed = job.steps.iter().find(|s| s.status == Status::Failed).unwrap();
            assert!(failed.error.as_deref().unwrap_or_default().contains(says), "{how}: {failed:?}");
            let rollback = job.steps.last().unwrap();
            assert_eq!(
                (rollback.kind.as_str(), rollback.status),
                ("rollback", Status::Succeeded),
                "{how}: {job:?}"
            );
            let rollbacks = writes(&swarm).iter().filter(|w| w.starts_with("rollback ")).count();
            let expected = usize::from(how != "rollback_completed");
            assert_eq!(rollbacks, expected, "{how}: {:?}", swarm.log());
            if expected == 1 {
                assert_eq!(image(&swarm, &id), OLD, "{how}");
            }
            assert!(swarm.config_list().is_empty(), "{how}: the lock is released");
        }
    }

    /// `update.rollback=never` and a request's `no_rollback` leave a failed update as it is,
    /// saying why; an image the registry does not know fails at resolve before anything is
    /// written; a failed pre-hook skips the update.
    #[tokio::test(start_paused = true)]
    async fn no_rollback_unknown_images_and_failed_pre_hooks_change_nothing_more() {
        let (swarm, id) = app(&[("dockhand.update.rollback", "never")]);
        swarm.next_update(&id, "paused", "task failed");
        let job = update(&swarm, UpdateRequest::new(Some(NEW.to_owned()))).await;
        let last = job.steps.last().unwrap();
        assert_eq!((last.kind.as_str(), last.status), ("rollback", Status::Skipped), "{job:?}");
        assert!(
            last.error.as_deref().unwrap_or_default().contains("dockhand.update.rollback=never"),
            "{last:?}"
        );
        assert!(!writes(&swarm).iter().any(|w| w.starts_with("rollback ")));

        let (swarm, id) = app(&[]);
        swarm.next_update(&id, "paused", "task failed");
        let job = update(&swarm, UpdateRequest::new(Some(NEW.to_owned())).without_rollback(true)).await;
        let last = job.steps.last().unwrap();
        assert!(
            last.error.as_deref().unwrap_or_default().contains("the request said no rollback"),
            "{last:?}"
        );
        assert!(!writes(&swarm).iter().any(|w| w.starts_with("rollback ")));

        let (swarm, id) = app(&[]);
        let job =
            update(&swarm, UpdateRequest::new(Some("registry.example.com/team/app:9".to_owned()))).await;
        assert_eq!(kinds(&job), [("resolve", Status::Failed)], "{job:?}");
        assert!(job.steps[0].error.as_deref().unwrap_or_default().contains("cannot resolve"), "{job:?}");
        assert!(writes(&swarm).is_empty(), "{:?}", swarm.log());
        assert_eq!(image(&swarm, &id), OLD);

        let (swarm, id) = app(&[("dockhand.update.exec-pre", "drain")]);
        swarm.script_exec(&FakeSwarm::container(&id, 0), Some((2, "busy")));
        let job = update(&swarm, UpdateRequest::new(Some(NEW.to_owned()))).await;
        assert_eq!(job.status, Status::Failed, "{job:?}");
        assert_eq!(job.steps.last().map(|s| (s.kind.as_str(), s.status)), Some(("update", Status::Skipped)));
        assert!(!writes(&swarm).iter().any(|w| w.starts_with("update_service")), "{:?}", swarm.log());
        assert_eq!(image(&swarm, &id), OLD);
    }
}
