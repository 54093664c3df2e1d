//! Each channel's request against a loopback receiver that accepts only its service's
//! documented format: the list form of `notifications` (ntfy and Gotify on loopback over
//! plain HTTP, a generic webhook), and Slack, Discord and Teams sent to the receiver in
//! place of their SaaS hosts.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dockhand_host::{ConfigFile, Environment};
use dockhand_policy::Redactor;

use super::*;
use crate::test_peer::{Answer, Heard, Peer};

const TOKEN: &str = "g0tify-app-t0ken";
const SIGNING: &str = "webhook-signing-key-0123456789";

fn json_of(heard: &Heard) -> Option<serde_json::Value> {
    (heard.headers.get("content-type").map(String::as_str) == Some("application/json"))
        .then(|| serde_json::from_str(&heard.body).ok())
        .flatten()
}

fn text(value: &serde_json::Value, key: &str, max: usize) -> bool {
    value[key].as_str().is_some_and(|t| !t.is_empty() && t.chars().count() <= max)
}

/// Whether `heard` is what its service documents (Slack incoming webhooks, Discord's
/// execute webhook, the Office 365 connector card, ntfy's JSON publish, Gotify's message).
fn documented(heard: &Heard) -> bool {
    let Some(json) = json_of(heard) else { return false };
    match heard.target.as_str() {
        "/slack/services/T0/B0/XYZ" => text(&json, "text", 40_000),
        "/discord/api/webhooks/42/t0k" => text(&json, "content", 2000),
        "/teams/webhookb2/g@t/IncomingWebhook/a/o" => {
            json["@type"] == "MessageCard"
                && json["@context"].as_str().is_some_and(|c| c.contains("schema.org/extensions"))
                && (text(&json, "text", 28_000) || text(&json, "summary", 28_000))
        }
        "/" => {
            json["topic"].as_str().is_some_and(|t| {
                (1..=64).contains(&t.len())
                    && t.chars().all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
            }) && text(&json, "message", 4096)
                && json["title"].is_string()
                && json["tags"].as_array().is_some_and(|tags| tags.iter().all(serde_json::Value::is_string))
                && json["priority"].as_u64().is_some_and(|p| (1..=5).contains(&p))
                && heard.headers.get("authorization").map(String::as_str) == Some("Basic b3BzOnB3")
        }
        "/gotify/message" => {
            heard.headers.get("x-gotify-key").map(String::as_str) == Some(TOKEN)
                && text(&json, "message", 65_536)
                && json["title"].is_string()
                && json["priority"].is_u64()
        }
        "/hook" => {
            // GitHub's scheme: HMAC-SHA256 of the exact body, hex, under the shared key.
            let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SIGNING.as_bytes());
            let expected = format!("sha256={}", hex::encode(ring::hmac::sign(&key, heard.body.as_bytes())));
            json["job"]["status"] == "failed"
                && json["text"].is_string()
                && heard.headers.get("x-dockhand-signature-256") == Some(&expected)
        }
        _ => false,
    }
}

#[tokio::test]
async fn every_channel_gets_its_documented_format_and_a_bad_one_is_reported() {
    let peer = Peer::start(|heard| -> Answer {
        if documented(heard) { (200, vec![], "{}".to_owned()) } else { (400, vec![], String::new()) }
    })
    .await;
    let at = &peer.address;
    let yaml = "notifications:\n  - name: ntfy\n    url_env: NTFY\n  - name: gotify\n    url_env: GOTIFY\n  \
                - name: hook\n    url_env: HOOK\n    secret_env: SIGNING\n";
    let env = Environment::from_vars([
        ("NTFY", format!("ntfy://ops:pw@{at}/dockhand-ops?scheme=http&tags=swarm")),
        ("GOTIFY", format!("gotify://{at}/gotify/{TOKEN}?disabletls=yes")),
        ("HOOK", format!("generic+http://{at}/hook")),
        ("SIGNING", SIGNING.to_owned()),
    ]);
    let (mut hooks, warnings) = load_webhooks(&ConfigFile::parse(yaml, false).unwrap(), &env).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    for (name, url, path) in [
        ("slack", "slack://hook:T0-B0-XYZ@webhook", "slack/services/T0/B0/XYZ"),
        ("discord", "discord://t0k@42", "discord/api/webhooks/42/t0k"),
        (
            "teams",
            "teams://g@t/a/o?host=example.webhook.office.com",
            "teams/webhookb2/g@t/IncomingWebhook/a/o",
        ),
    ] {
        let mut hook = Webhook::new(name, url).unwrap();
        hook.channel = hook.channel.with_endpoint(&format!("http://{at}/{path}"));
        hooks.push(hook);
    }
    // A channel whose service refuses the request: reported, by name.
    let mut wrong = Webhook::new("wrong", "discord://t0k@42").unwrap();
    wrong.channel = wrong.channel.with_endpoint(&format!("http://{at}/nowhere"));
    hooks.push(wrong);

    let deliveries: Arc<Mutex<Vec<Delivery>>> = Arc::default();
    let heard = Arc::clone(&deliveries);
    let report = Arc::new(move |d: Delivery| heard.lock().unwrap().push(d));
    let notifier =
        Notifier::start(hooks, None, Redactor::default(), Duration::from_millis(10), report).unwrap();
    let target = Target::Service { id: "s1".to_owned(), name: "db".to_owned() };
    let now = std::time::SystemTime::now();
    let mut job =
        Job::start(crate::job::Action::BackupService, target, crate::job::Trigger::Cron, "cron", now);
    job.finish(now, Some(Status::Failed));
    notifier.job_finished(&job);

    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while deliveries.lock().unwrap().len() < 7 {
        assert!(std::time::Instant::now() < deadline, "{:?}", deliveries.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let got = deliveries.lock().unwrap().clone();
    for name in ["ntfy", "gotify", "hook", "slack", "discord", "teams"] {
        assert!(
            got.contains(&Delivery::Sent { webhook: name.to_owned() }),
            "{name}: {got:?}\n{:#?}",
            peer.heard()
        );
    }
    assert!(
        got.iter().any(|d| matches!(d, Delivery::Failed { webhook, reason } if webhook == "wrong" && reason.contains("404") || reason.contains("400"))),
        "{got:?}"
    );
}
