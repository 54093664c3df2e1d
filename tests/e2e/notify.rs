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

/// An `smtp://` channel delivers to a real SMTP server (aiosmtpd) over required STARTTLS,
/// verified with the entry's `ca_file`, logged in: the message has the job's title as its
/// subject, reaches every recipient, and carries the redacted text; a refused login is a
/// final failure that names no password.
#[tokio::test]
async fn an_email_channel_delivers_over_starttls_with_a_login() {
    let server = dockhand_e2e::smtp::SmtpServer::start("ci", "m@il-pw-77");
    let url = |password: &str| {
        format!(
            "smtp://ci:{password}@127.0.0.1:{}/?from=dockhand@example.com&fromname=dockhand\
             &to=ops@example.com,dev@example.com&encryption=ExplicitTLS",
            server.port
        )
    };
    let yaml = format!(
        "notifications:\n  - name: mail\n    url_env: MAIL\n    ca_file: {}\n  - name: wrong\n    url_env: WRONG\n    \
         ca_file: {}\n",
        server.ca_file.display(),
        server.ca_file.display()
    );
    let env = dockhand_host::Environment::from_vars([("MAIL", url("m@il-pw-77")), ("WRONG", url("not-it"))]);
    let file = dockhand_host::ConfigFile::parse(&yaml, false).unwrap();
    let (hooks, warnings) = dockhand_jobs::notify::load_webhooks(&file, &env).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    let (seen, report) = collecting();
    let redactor = Redactor::new(["tok-secret-42".to_owned()]);
    let notifier = Notifier::start(hooks, None, redactor, Duration::from_millis(10), report).unwrap();
    notifier.job_finished(&job(Status::Failed));
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.lock().unwrap().len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let both = seen.lock().unwrap().clone();
    assert_eq!(both.len(), 2, "{both:?}");
    assert!(both.contains(&Delivery::Sent { webhook: "mail".into() }), "{both:?}");
    let refused = both.iter().find_map(|d| match d {
        Delivery::Failed { webhook, reason } if webhook == "wrong" => Some(reason.clone()),
        _ => None,
    });
    let refused = refused.unwrap_or_else(|| panic!("{both:?}"));
    assert!(!refused.contains("not-it") && !refused.contains("m@il-pw-77"), "{refused}");
    let messages = server.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    let (mail, recipients) = &messages[0];
    assert_eq!(recipients, "ops@example.com,dev@example.com");
    assert!(mail.contains("Subject: dockhand backup-service on service/db: failed"), "{mail}");
    assert!(mail.contains("From: dockhand <dockhand@example.com>"), "{mail}");
    assert!(mail.contains("upload on"), "{mail}");
    assert!(!mail.contains("tok-secret-42"), "the token is in the mail: {mail}");
}
