//! Job notifications against a real webhook receiver on loopback: what arrives, what is
//! redacted, and a receiver that is down.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use dockhand_e2e::webhook::{WebhookReceiver, free_port};
use dockhand_jobs::notify::{Delivery, Notifier, Webhook};
use dockhand_jobs::{Action, Job, Status, Step, Target, Trigger};
use dockhand_policy::Redactor;

fn job(status: Status) -> Job {
    let now = SystemTime::now();
    let target = Target::Service { id: "id-db".into(), name: "db".into() };
    let mut job = Job::start(Action::BackupService, target, Trigger::Cron, "token tok-secret-42", now);
    let mut step = Step::start("upload", now);
    step.output_tail = Some("connecting with password=hunter2-very-secret\nupload failed".into());
    step.finish(status, now, Some("the S3 peer answered 403 with token tok-secret-42".into()));
    job.steps.push(step);
    job.finish(now, Some(status));
    job
}

type Seen = Arc<Mutex<Vec<Delivery>>>;

fn collecting() -> (Seen, Arc<dyn Fn(Delivery) + Send + Sync>) {
    let seen: Seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    (seen, Arc::new(move |d| sink.lock().unwrap().push(d)))
}

async fn until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_failed_job_reaches_the_webhook_redacted_and_a_success_does_not() {
    let receiver = WebhookReceiver::start();
    let (seen, report) = collecting();
    let hook = Webhook::new("ops", receiver.url.clone()).unwrap();
    let redactor = Redactor::new(["tok-secret-42".to_owned()]);
    let notifier = Notifier::start(vec![hook], None, redactor, Duration::from_millis(10), report).unwrap();
    notifier.job_finished(&job(Status::Succeeded));
    let failed = job(Status::Failed);
    notifier.job_finished(&failed);
    let bodies = until("the failed job's notification", || {
        let b = receiver.bodies();
        (!b.is_empty()).then_some(b)
    })
    .await;
    assert_eq!(bodies.len(), 1, "only the failure (FIFO: the success came first): {bodies:?}");
    let body = &bodies[0];
    assert_eq!(body["job"]["id"], failed.id.as_str());
    assert_eq!(body["job"]["status"], "failed");
    let text = body["text"].as_str().unwrap();
    assert!(
        text.contains("backup-service") && text.contains("service/db") && text.contains("failed"),
        "{text}"
    );
    assert!(body["steps"][0]["output_tail"].as_str().unwrap().contains("upload failed"), "{body}");
    let all = body.to_string();
    for secret in ["hunter2-very-secret", "tok-secret-42"] {
        assert!(!all.contains(secret), "{secret} in {all}");
    }
    let delivered = until("the report", || seen.lock().unwrap().first().cloned()).await;
    assert_eq!(delivered, Delivery::Sent { webhook: "ops".into() });
}

#[tokio::test]
async fn a_webhook_that_is_down_is_retried_reported_and_never_holds_the_job() {
    let port = free_port(); // nothing listens there
    let (seen, report) = collecting();
    let hook = Webhook::new("down", format!("http://127.0.0.1:{port}/hooks/T0SECRETPATH")).unwrap();
    let notifier =
        Notifier::start(vec![hook], None, Redactor::default(), Duration::from_millis(10), report).unwrap();
    // `job_finished` is not async: it only queues.
    notifier.job_finished(&job(Status::Failed));
    let failed = until("the failure report", || seen.lock().unwrap().first().cloned()).await;
    match failed {
        Delivery::Failed { webhook, reason } => {
            assert_eq!(webhook, "down");
            assert!(!reason.contains("T0SECRETPATH"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}
