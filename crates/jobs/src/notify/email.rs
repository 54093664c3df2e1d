//! The e-mail channel (`smtp://`): one plain-text message per job, through lettre's SMTP
//! client on tokio, over STARTTLS or TLS (rustls with ring; the system's roots, and the
//! entry's `ca_file` when given), or in the clear when the URL says `encryption=None`.

use std::path::Path;
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::channels::{Encryption, Message, Smtp};

/// Why an e-mail was not delivered, and whether trying again could change that (the server
/// refused it for good: a 5xx).
#[derive(Debug)]
pub(crate) struct NotSent {
    pub(crate) reason: String,
    pub(crate) permanent: bool,
}

/// Sends `message` by `smtp`, trusting `ca_file` too; each exchange within `timeout`.
pub(crate) async fn send(
    smtp: &Smtp,
    ca_file: Option<&Path>,
    message: &Message<'_>,
    timeout: Duration,
) -> Result<(), NotSent> {
    let fail = |reason: String| NotSent { reason, permanent: false };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host)
        .port(smtp.port)
        .timeout(Some(timeout));
    if smtp.encryption != Encryption::None {
        let mut tls = TlsParameters::builder(smtp.host.clone());
        if let Some(path) = ca_file {
            let pem = std::fs::read(path).map_err(|e| fail(format!("{}: {e}", path.display())))?;
            let certificate =
                Certificate::from_pem(&pem).map_err(|e| fail(format!("{}: {e}", path.display())))?;
            tls = tls.add_root_certificate(certificate);
        }
        let tls = tls.build_rustls().map_err(|e| fail(format!("TLS: {e}")))?;
        builder = builder.tls(match smtp.encryption {
            Encryption::ImplicitTls => Tls::Wrapper(tls),
            _ => Tls::Required(tls),
        });
    }
    if let Some((user, password)) = &smtp.login {
        // PLAIN, as shoutrrr's default `auth=Plain`; only ever over TLS unless the URL says
        // `encryption=None`.
        builder = builder
            .credentials(Credentials::new(user.clone(), password.clone()))
            .authentication(vec![Mechanism::Plain]);
    }
    let mail = mail(smtp, message).map_err(fail)?;
    // The whole exchange is bounded too: a server that stops answering mid-way cannot hold
    // the delivery queue.
    match tokio::time::timeout(timeout * 3, builder.build().send(mail)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(NotSent { permanent: e.is_permanent(), reason: describe(&e) }),
        Err(_) => Err(fail(format!("no answer within {}s", (timeout * 3).as_secs()))),
    }
}

/// The message: from, to, a subject (the URL's, else the job's title), and the text with
/// each step on a line.
fn mail(smtp: &Smtp, message: &Message<'_>) -> Result<lettre::Message, String> {
    let address = |text: &str| text.parse::<lettre::Address>().map_err(|e| format!("{text:?}: {e}"));
    let from = Mailbox::new(smtp.from_name.clone(), address(&smtp.from)?);
    let mut builder = lettre::Message::builder()
        .from(from)
        .subject(smtp.subject.clone().unwrap_or_else(|| message.title.to_owned()))
        .header(ContentType::TEXT_PLAIN);
    for to in &smtp.to {
        builder = builder.to(Mailbox::new(None, address(to)?));
    }
    let mut text = format!("{}\n", message.text);
    for step in message.body["steps"].as_array().into_iter().flatten() {
        let field = |k: &str| step[k].as_str().unwrap_or_default().to_owned();
        text.push_str(&format!("\n- {} on {}: {}", field("kind"), field("node"), field("status")));
        if let Some(error) = step["error"].as_str() {
            text.push_str(&format!(": {error}"));
        }
    }
    text.push('\n');
    builder.body(text).map_err(|e| e.to_string())
}

/// lettre's error and its causes; never a credential (lettre does not put one in them).
fn describe(e: &lettre::transport::smtp::Error) -> String {
    dockhand_engine::chain(e)
}
