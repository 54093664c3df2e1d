//! Notification channels, configured as URLs in the style of shoutrrr (which watchtower and
//! gantry users already write): each URL names a service and its credentials, and becomes
//! one HTTPS request in that service's documented format.
//!
//! | URL | request |
//! |---|---|
//! | `https://…`, `http://…` (a webhook, as before) | dockhand's JSON body |
//! | `generic+https://host/path`, `generic://host/path` | dockhand's JSON body, to `https://host/path` |
//! | `slack://hook:A-B-C@webhook`, `slack://A/B/C` | `{"text": …}` to `https://hooks.slack.com/services/A/B/C` |
//! | `discord://token@id` | `{"content": …}` to `https://discord.com/api/webhooks/id/token` |
//! | `teams://group@tenant/altId/groupOwner?host=org.webhook.office.com` | a `MessageCard` to `https://host/webhookb2/group@tenant/IncomingWebhook/altId/groupOwner` |
//! | `ntfy://[user:password@]host/topic[?scheme=http]` | ntfy's JSON publish (`topic`, `title`, `message`, `tags`, `priority`) to `https://host/` |
//! | `gotify://host[/path]/token[?disabletls=yes]` | `{"title", "message", "priority"}` to `https://host/path/message`, the token in `X-Gotify-Key` |
//! | `smtp://[user:password@]host[:port]/?from=…&to=…[&encryption=None\|ExplicitTLS\|ImplicitTLS\|Auto]` | an e-mail (`email.rs`) |
//!
//! A channel's URL is a secret: errors name the channel's kind and its endpoint's host, never
//! its path, query or credentials.

use reqwest::Url;

/// Where and how one notification goes.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Channel {
    kind: Kind,
    /// The URL the request goes to.
    endpoint: String,
}

#[derive(Clone, PartialEq, Eq)]
enum Kind {
    /// dockhand's own JSON body (`http(s)://`, `generic://`).
    Generic,
    Slack,
    Discord,
    Teams,
    Ntfy {
        topic: String,
        login: Option<(String, String)>,
        priority: Option<u8>,
        tags: Vec<String>,
    },
    Gotify {
        token: String,
        priority: Option<u8>,
    },
    Smtp(Box<Smtp>),
}

/// An e-mail channel: where to deliver, as whom, and to whom.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Smtp {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) login: Option<(String, String)>,
    pub(crate) from: String,
    pub(crate) from_name: Option<String>,
    pub(crate) to: Vec<String>,
    pub(crate) encryption: Encryption,
    pub(crate) subject: Option<String>,
}

/// How an e-mail channel's connection is protected (shoutrrr's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encryption {
    /// Plain SMTP: for a relay on a trusted network only.
    None,
    /// STARTTLS, required.
    ExplicitTls,
    /// TLS from the first byte (SMTPS).
    ImplicitTls,
}

/// What a notification says: a one-line `text` (with an emoji), a short `title`, whether it
/// is bad news, and dockhand's whole JSON body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Message<'a> {
    pub(crate) title: &'a str,
    pub(crate) text: &'a str,
    pub(crate) bad: bool,
    pub(crate) body: &'a serde_json::Value,
}

/// One request to make: its URL, headers and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Request {
    pub(crate) url: String,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) json: serde_json::Value,
}

impl Channel {
    /// Parses a channel URL; the error says what is wrong without repeating the URL.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let url = Url::parse(text.trim()).map_err(|e| format!("not a URL ({e}); the value is not shown"))?;
        let scheme = url.scheme().to_owned();
        let host =
            || url.host_str().filter(|h| !h.is_empty()).ok_or_else(|| format!("{scheme}:// needs a host"));
        let host_port = || -> Result<String, String> {
            Ok(match url.port() {
                Some(port) => format!("{}:{port}", host()?),
                None => host()?.to_owned(),
            })
        };
        let segments: Vec<String> = url
            .path_segments()
            .map(|s| s.filter(|p| !p.is_empty()).map(decode).collect())
            .unwrap_or_default();
        let param = |name: &str| {
            url.query_pairs().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.into_owned())
        };
        let priority = |max: u8| -> Result<Option<u8>, String> {
            param("priority")
                .map(|p| {
                    p.parse::<u8>()
                        .ok()
                        .filter(|n| (1..=max).contains(n))
                        .ok_or_else(|| format!("priority={p}: expected 1 to {max}"))
                })
                .transpose()
        };
        let (kind, endpoint) = match scheme.as_str() {
            "http" | "https" => (Kind::Generic, url.to_string()),
            "generic" | "generic+https" | "generic+http" => {
                let scheme = if scheme == "generic+http" { "http" } else { "https" };
                let mut endpoint = url.to_string();
                endpoint.replace_range(..url.scheme().len(), scheme);
                (Kind::Generic, endpoint)
            }
            "slack" => {
                let tokens: Vec<String> = if url.username() == "hook" {
                    decode(url.password().unwrap_or_default()).split('-').map(str::to_owned).collect()
                } else {
                    std::iter::once(decode(host()?)).chain(segments.iter().cloned()).collect()
                };
                if tokens.len() != 3 || tokens.iter().any(|t| t.is_empty() || !is_token(t)) {
                    return Err("slack:// needs a webhook's three tokens: slack://hook:A-B-C@webhook or slack://A/B/C"
                        .to_owned());
                }
                (Kind::Slack, format!("https://hooks.slack.com/services/{}", tokens.join("/")))
            }
            "discord" => {
                let (token, id) = (decode(url.username()), decode(host()?));
                if token.is_empty() || !is_token(&token) || !id.chars().all(|c| c.is_ascii_digit()) {
                    return Err("discord:// needs a webhook's token and ID: discord://token@id".to_owned());
                }
                (Kind::Discord, format!("https://discord.com/api/webhooks/{id}/{token}"))
            }
            "teams" => {
                let (group, tenant) = (decode(url.username()), decode(host()?));
                let host = param("host").unwrap_or_else(|| "outlook.office.com".to_owned());
                let parts = [&group, &tenant].into_iter().chain(&segments);
                if segments.len() != 2
                    || parts.clone().any(|p| p.is_empty() || !is_token(p))
                    || !is_host(&host)
                {
                    return Err(
                        "teams:// needs teams://group@tenant/altId/groupOwner?host=org.webhook.office.com"
                            .to_owned(),
                    );
                }
                let (alt, owner) = (&segments[0], &segments[1]);
                (
                    Kind::Teams,
                    format!("https://{host}/webhookb2/{group}@{tenant}/IncomingWebhook/{alt}/{owner}"),
                )
            }
            "ntfy" => {
                let [topic] = segments.as_slice() else {
                    return Err("ntfy:// needs one topic: ntfy://[user:password@]host/topic".to_owned());
                };
                let scheme = param("scheme").unwrap_or_else(|| "https".to_owned());
                if !matches!(scheme.as_str(), "https" | "http") {
                    return Err(format!("scheme={scheme}: expected https or http"));
                }
                let login = (!url.username().is_empty())
                    .then(|| (decode(url.username()), decode(url.password().unwrap_or_default())));
                let tags = param("tags")
                    .map(|t| {
                        t.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned).collect()
                    })
                    .unwrap_or_default();
                let kind = Kind::Ntfy { topic: topic.clone(), login, priority: priority(5)?, tags };
                (kind, format!("{scheme}://{}/", host_port()?))
            }
            "gotify" => {
                let Some((token, path)) = segments.split_last() else {
                    return Err("gotify:// needs an application token: gotify://host[/path]/token".to_owned());
                };
                let plain = param("disabletls")
                    .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "yes" | "true"));
                let scheme = if plain { "http" } else { "https" };
                let path: String = path.iter().map(|p| format!("/{p}")).collect();
                let kind = Kind::Gotify { token: token.clone(), priority: priority(10)? };
                (kind, format!("{scheme}://{}{path}/message", host_port()?))
            }
            "smtp" => {
                let smtp = smtp(&url, &param)?;
                let endpoint = format!("smtp://{}:{}", smtp.host, smtp.port);
                (Kind::Smtp(Box::new(smtp)), endpoint)
            }
            other => {
                return Err(format!(
                    "{other}:// is not a channel: expected https, generic, slack, discord, teams, ntfy, gotify or smtp"
                ));
            }
        };
        Ok(Self { kind, endpoint })
    }

    /// The channel's kind: `webhook`, `slack`, `discord`, `teams`, `ntfy`, `gotify`, `smtp`.
    pub(crate) fn kind(&self) -> &'static str {
        match self.kind {
            Kind::Generic => "webhook",
            Kind::Slack => "slack",
            Kind::Discord => "discord",
            Kind::Teams => "teams",
            Kind::Ntfy { .. } => "ntfy",
            Kind::Gotify { .. } => "gotify",
            Kind::Smtp(_) => "smtp",
        }
    }

    /// The channel's kind and its endpoint's scheme and host, for messages.
    pub(crate) fn shown(&self) -> String {
        let kind = self.kind();
        let at = Url::parse(&self.endpoint)
            .map(|u| format!("{}://{}", u.scheme(), u.host_str().unwrap_or("?")))
            .unwrap_or_else(|_| "?".to_owned());
        format!("{kind} at {at}")
    }

    /// Sends to `endpoint` instead (tests: a loopback receiver in place of a SaaS host).
    #[cfg(test)]
    pub(crate) fn with_endpoint(mut self, endpoint: &str) -> Self {
        self.endpoint = endpoint.to_owned();
        self
    }

    /// Whether this channel is a webhook (dockhand's own body).
    pub(crate) fn is_webhook(&self) -> bool {
        self.kind == Kind::Generic
    }

    /// The e-mail channel's settings, when this is one.
    pub(crate) fn email(&self) -> Option<&Smtp> {
        match &self.kind {
            Kind::Smtp(smtp) => Some(smtp),
            _ => None,
        }
    }

    /// The HTTP request that tells this channel `message` (an e-mail channel has none: see
    /// [`Channel::email`]).
    pub(crate) fn request(&self, message: &Message<'_>) -> Request {
        let url = self.endpoint.clone();
        let (headers, json) = match &self.kind {
            Kind::Smtp(_) => (Vec::new(), serde_json::Value::Null),
            Kind::Generic => (Vec::new(), message.body.clone()),
            Kind::Slack => (Vec::new(), serde_json::json!({ "text": message.text })),
            Kind::Discord => (Vec::new(), serde_json::json!({ "content": bounded(message.text, 2000) })),
            Kind::Teams => (
                Vec::new(),
                serde_json::json!({
                    "@type": "MessageCard",
                    "@context": "https://schema.org/extensions",
                    "summary": message.title,
                    "themeColor": if message.bad { "D70000" } else { "2EB886" },
                    "title": message.title,
                    "text": message.text,
                }),
            ),
            Kind::Ntfy { topic, login, priority, tags } => {
                let mut tags = tags.clone();
                tags.push(if message.bad { "x".to_owned() } else { "white_check_mark".to_owned() });
                let headers = login
                    .iter()
                    .map(|(user, password)| {
                        use base64::Engine as _;
                        let pair =
                            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                        ("authorization", format!("Basic {pair}"))
                    })
                    .collect();
                let priority = priority.unwrap_or(if message.bad { 4 } else { 3 });
                let json = serde_json::json!({
                    "topic": topic,
                    "title": message.title,
                    "message": message.text,
                    "tags": tags,
                    "priority": priority,
                });
                (headers, json)
            }
            Kind::Gotify { token, priority } => (
                vec![("x-gotify-key", token.clone())],
                serde_json::json!({
                    "title": message.title,
                    "message": message.text,
                    "priority": priority.unwrap_or(if message.bad { 8 } else { 4 }),
                }),
            ),
        };
        Request { url, headers, json }
    }
}

/// An `smtp://` URL's settings: `from` (or `fromaddress`), `to` (or `toaddresses`,
/// comma-separated), `encryption` (`None`, `ExplicitTLS`, `ImplicitTLS`, `Auto`: implicit
/// on port 465, else STARTTLS), `fromname`, `subject`; the port defaults to 25.
fn smtp(url: &Url, param: &dyn Fn(&str) -> Option<String>) -> Result<Smtp, String> {
    let host = url.host_str().filter(|h| !h.is_empty()).ok_or("smtp:// needs a host")?.to_owned();
    let port = url.port().unwrap_or(25);
    let from = param("from").or_else(|| param("fromaddress")).filter(|f| f.contains('@'));
    let from = from.ok_or("smtp:// needs from=address (or fromaddress=)")?;
    let to: Vec<String> = param("to")
        .or_else(|| param("toaddresses"))
        .map(|t| t.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default();
    if to.is_empty() || to.iter().any(|t| !t.contains('@')) {
        return Err("smtp:// needs to=address[,address…] (or toaddresses=)".to_owned());
    }
    let encryption =
        match param("encryption").unwrap_or_else(|| "Auto".to_owned()).to_ascii_lowercase().as_str() {
            "none" => Encryption::None,
            "explicittls" => Encryption::ExplicitTls,
            "implicittls" => Encryption::ImplicitTls,
            "auto" if port == 465 => Encryption::ImplicitTls,
            "auto" => Encryption::ExplicitTls,
            other => {
                return Err(format!("encryption={other}: expected None, ExplicitTLS, ImplicitTLS or Auto"));
            }
        };
    let login = (!url.username().is_empty())
        .then(|| (decode(url.username()), decode(url.password().unwrap_or_default())));
    Ok(Smtp {
        host,
        port,
        login,
        from,
        from_name: param("fromname"),
        to,
        encryption,
        subject: param("subject"),
    })
}

/// A percent-decoded URL part.
fn decode(part: &str) -> String {
    let bytes = part.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%').then(|| part.get(i + 1..i + 3)).flatten();
        if let Some(byte) = escaped.and_then(|hex| u8::from_str_radix(hex, 16).ok()) {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A token that is safe in a URL path: letters, digits, `-`, `_`, `.`.
fn is_token(text: &str) -> bool {
    text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A host name (or `host:port`).
fn is_host(text: &str) -> bool {
    !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ':'))
}

/// At most `max` characters of `text`, its start kept.
fn bounded(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(body: &serde_json::Value) -> Message<'_> {
        Message {
            title: "dockhand backup-service on service/db failed",
            text: "❌ it failed",
            bad: true,
            body,
        }
    }

    #[test]
    fn each_form_becomes_its_services_documented_request() {
        let body = serde_json::json!({ "text": "x", "job": {} });
        let table: [(&str, &str, serde_json::Value); 7] = [
            ("https://hooks.example.com/a?b=c", "https://hooks.example.com/a?b=c", body.clone()),
            ("generic+https://hooks.example.com/a", "https://hooks.example.com/a", body.clone()),
            (
                "slack://hook:T000-B000-XXXX@webhook",
                "https://hooks.slack.com/services/T000/B000/XXXX",
                serde_json::json!({ "text": "❌ it failed" }),
            ),
            (
                "slack://T000/B000/XXXX",
                "https://hooks.slack.com/services/T000/B000/XXXX",
                serde_json::json!({ "text": "❌ it failed" }),
            ),
            (
                "discord://t0ken@123456",
                "https://discord.com/api/webhooks/123456/t0ken",
                serde_json::json!({ "content": "❌ it failed" }),
            ),
            (
                "ntfy://ntfy.example.com/ops?tags=swarm",
                "https://ntfy.example.com/",
                serde_json::json!({
                    "topic": "ops", "title": "dockhand backup-service on service/db failed",
                    "message": "❌ it failed", "tags": ["swarm", "x"], "priority": 4
                }),
            ),
            (
                "gotify://push.example.com/sub/AbC123?priority=9",
                "https://push.example.com/sub/message",
                serde_json::json!({
                    "title": "dockhand backup-service on service/db failed", "message": "❌ it failed", "priority": 9
                }),
            ),
        ];
        for (url, endpoint, json) in table {
            let channel = Channel::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            let request = channel.request(&message(&body));
            assert_eq!((request.url.as_str(), &request.json), (endpoint, &json), "{url}");
        }
        let gotify = Channel::parse("gotify://push.example.com/sub/AbC123").unwrap().request(&message(&body));
        assert_eq!(gotify.headers, [("x-gotify-key", "AbC123".to_owned())]);
        let teams = Channel::parse("teams://g1@t1/alt/owner?host=org.webhook.office.com").unwrap();
        let request = teams.request(&message(&body));
        assert_eq!(request.url, "https://org.webhook.office.com/webhookb2/g1@t1/IncomingWebhook/alt/owner");
        assert_eq!(request.json["@type"], "MessageCard");
        assert_eq!(request.json["text"], "❌ it failed");
        let plain = Channel::parse("ntfy://u:p%40ss@127.0.0.1:8080/ops?scheme=http").unwrap();
        let request = plain.request(&message(&body));
        assert_eq!(request.url, "http://127.0.0.1:8080/");
        assert_eq!(request.headers, [("authorization", "Basic dTpwQHNz".to_owned())]);
    }

    #[test]
    fn a_wrong_url_says_what_is_wrong_without_repeating_it() {
        let table = [
            ("slack://only-one", "three tokens"),
            ("discord://@123", "token and ID"),
            ("discord://tok@not-a-number", "token and ID"),
            ("teams://g@t/alt", "teams://group@tenant"),
            ("ntfy://ntfy.sh", "one topic"),
            ("ntfy://ntfy.sh/t?scheme=ftp", "scheme=ftp"),
            ("ntfy://ntfy.sh/t?priority=9", "priority=9"),
            ("gotify://push.example.com", "application token"),
            ("telegram://t0k3n@telegram", "telegram:// is not a channel"),
            ("smtp://u:s3cret@mail.example.com/?to=a@example.com", "from=address"),
            ("smtp://mail.example.com/?from=d@example.com", "to=address"),
            ("smtp://mail.example.com/?from=d@example.com&to=a@x&encryption=Maybe", "encryption=maybe"),
            ("not a url s3cret", "not a URL"),
        ];
        for (url, said) in table {
            let err = Channel::parse(url).err().unwrap_or_else(|| panic!("{url} parsed"));
            assert!(err.contains(said), "{url}: {err}");
            assert!(!err.contains("s3cret") && !err.contains("t0k3n"), "{err}");
        }
        let shown = Channel::parse("discord://t0k3n@123").unwrap().shown();
        assert_eq!(shown, "discord at https://discord.com");
    }

    #[test]
    fn an_smtp_url_takes_shoutrrrs_parameters() {
        let url = "smtp://ci:pa%24s@mail.example.com:587/?fromaddress=dockhand@example.com&toaddresses=a@example.com,b@example.com&encryption=ExplicitTLS&fromname=dockhand";
        let channel = Channel::parse(url).unwrap();
        let smtp = channel.email().unwrap();
        assert_eq!(
            (smtp.host.as_str(), smtp.port, smtp.encryption),
            ("mail.example.com", 587, Encryption::ExplicitTls)
        );
        assert_eq!(smtp.login, Some(("ci".to_owned(), "pa$s".to_owned())));
        assert_eq!(smtp.to, ["a@example.com", "b@example.com"]);
        assert_eq!(smtp.from_name.as_deref(), Some("dockhand"));
        assert_eq!(channel.shown(), "smtp at smtp://mail.example.com");
        let auto = |port: u16| {
            let url = format!("smtp://m.example.com:{port}/?from=d@example.com&to=a@example.com");
            Channel::parse(&url).unwrap().email().unwrap().encryption
        };
        assert_eq!(
            (auto(465), auto(587), auto(25)),
            (Encryption::ImplicitTls, Encryption::ExplicitTls, Encryption::ExplicitTls)
        );
        let plain =
            Channel::parse("smtp://relay/?from=d@example.com&to=a@example.com&encryption=None").unwrap();
        assert_eq!(plain.email().unwrap().encryption, Encryption::None);
        assert_eq!(plain.email().unwrap().port, 25);
    }

    #[test]
    fn discord_content_is_cut_to_its_limit() {
        let long = "é".repeat(2500);
        let body = serde_json::json!({});
        let request = Channel::parse("discord://t@1").unwrap().request(&Message {
            title: "t",
            text: &long,
            bad: false,
            body: &body,
        });
        assert!(request.json["content"].as_str().unwrap().chars().count() <= 2000);
    }
}
