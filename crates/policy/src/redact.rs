//! One redactor for everything logged, returned or stored: known secrets, and the generic
//! shapes secrets take (`Authorization:` headers, `user:pass@` in URLs, `password=` pairs).

/// Masks secrets in text.
///
/// A masked value keeps its first 4 characters when it has at least 8 (so at least half of
/// it stays hidden) and is masked wholly otherwise: `hunter2-long` becomes `hunt****`,
/// `pw` becomes `****`. A password in a URL is always masked wholly, by the one rule of
/// [`redact_url`].
///
/// ```
/// use dockhand_policy::Redactor;
///
/// let r = Redactor::new(["s3cret-token-value".to_owned()]);
/// assert_eq!(r.redact("token s3cret-token-value used"), "token s3cr**** used");
/// assert_eq!(r.redact("GET https://ci:pa55word@reg.example.com/v2/"), "GET https://ci:****@reg.example.com/v2/");
/// assert_eq!(r.redact("Authorization: Bearer abcdefgh12345"), "Authorization: Bearer abcd****");
/// ```
#[derive(Clone, Default)]
pub struct Redactor {
    /// Known secrets, longest first, so that a secret inside another is masked as part of it.
    secrets: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} secrets)", self.secrets.len())
    }
}

/// Keys whose `key=value` / `key: value` values are masked wherever they appear.
const SECRET_KEYS: [&str; 8] =
    ["password", "passwd", "secret", "secret-key", "secret_key", "token", "access-key", "access_key"];

fn mask(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    if chars.len() >= 8 {
        format!("{}****", chars[..4].iter().collect::<String>())
    } else {
        "****".to_owned()
    }
}

impl Redactor {
    /// A redactor for these secrets (tokens, registry passwords, S3 keys). Empty ones are
    /// ignored.
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        let mut secrets: Vec<String> = secrets.into_iter().filter(|s| !s.is_empty()).collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Self { secrets }
    }

    /// Adds a secret.
    pub fn add(&mut self, secret: impl Into<String>) {
        let secret = secret.into();
        if !secret.is_empty() && !self.secrets.contains(&secret) {
            self.secrets.push(secret);
            self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    /// `text` with every known secret and every secret-shaped value masked.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), &mask(secret));
            }
        }
        let out = redact_url(&out);
        let out = mask_after(&out, "authorization:", true);
        SECRET_KEYS.iter().fold(out, |text, key| mask_pairs(&text, key))
    }
}

/// The one masking rule for URLs: in every `scheme://user:password@host` of `text`, the
/// password becomes `****`, whatever its length. Used for messages, listings and
/// `config show`, by every crate.
///
/// ```
/// assert_eq!(dockhand_policy::redact_url("ssh://u:hunter2@h/x"), "ssh://u:****@h/x");
/// assert_eq!(dockhand_policy::redact_url("unix:///run/d.sock"), "unix:///run/d.sock");
/// assert_eq!(dockhand_policy::redact_url("tcp://h:2375 and https://a:b@r/"), "tcp://h:2375 and https://a:****@r/");
/// ```
pub fn redact_url(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        out.push_str(&rest[..i + 3]);
        rest = &rest[i + 3..];
        let end =
            rest.find(|c: char| c == '/' || c.is_whitespace() || c == '"' || c == '\'').unwrap_or(rest.len());
        let authority = &rest[..end];
        match authority.rfind('@').and_then(|at| authority[..at].split_once(':').map(|(u, p)| (at, u, p))) {
            Some((at, user, password)) if !password.is_empty() => {
                out.push_str(user);
                out.push_str(":****");
                out.push_str(&authority[at..]);
            }
            _ => out.push_str(authority),
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// After each (case-insensitive) `marker`, masks the value up to the end of the line. With
/// `scheme`, a first word such as `Bearer` or `Basic` stays.
fn mask_after(text: &str, marker: &str, scheme: bool) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    while let Some(found) = lower[pos..].find(marker) {
        let start = pos + found + marker.len();
        out.push_str(&text[pos..start]);
        let line_end = text[start..].find(['\n', '\r', '"']).map_or(text.len(), |i| start + i);
        let value = &text[start..line_end];
        let lead = value.len() - value.trim_start().len();
        out.push_str(&value[..lead]);
        let value = value.trim_start();
        let (keep, secret) = match (scheme, value.split_once(' ')) {
            (true, Some((word, rest))) if !rest.trim().is_empty() => (format!("{word} "), rest.trim()),
            _ => (String::new(), value.trim_end()),
        };
        out.push_str(&keep);
        if !secret.is_empty() {
            out.push_str(&mask(secret));
        }
        pos = line_end;
    }
    out.push_str(&text[pos..]);
    out
}

/// `key=value` and `key: value` (case-insensitive key, not part of a longer word): the
/// value, up to whitespace, `&`, `,`, `;` or a quote, masked.
fn mask_pairs(text: &str, key: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    while let Some(found) = lower[pos..].find(key) {
        let at = pos + found;
        let after = at + key.len();
        let word_start = at == 0 || !text.as_bytes()[at - 1].is_ascii_alphanumeric();
        let sep_len = if text[after..].starts_with('=') {
            1
        } else if text[after..].starts_with(": ") {
            2
        } else if text[after..].starts_with("\":\"") {
            3
        } else {
            0
        };
        if !word_start || sep_len == 0 {
            out.push_str(&text[pos..after]);
            pos = after;
            continue;
        }
        let start = after + sep_len;
        out.push_str(&text[pos..start]);
        let end = text[start..]
            .find(|c: char| c.is_whitespace() || matches!(c, '&' | ',' | ';' | '"' | '\''))
            .map_or(text.len(), |i| start + i);
        let value = &text[start..end];
        if !value.is_empty() && !value.ends_with("****") {
            out.push_str(&mask(value));
        } else {
            out.push_str(value);
        }
        pos = end;
    }
    out.push_str(&text[pos..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn generic_shapes_are_masked() {
        let r = Redactor::default();
        for (input, expected) in [
            ("password=hunter2 user=x", "password=**** user=x"),
            ("s3 secret-key=AKIAABCDEFGHIJKL&x", "s3 secret-key=AKIA****&x"),
            ("{\"token\":\"abcdefghijkl\"}", "{\"token\":\"abcd****\"}"),
            ("authorization: Basic dXNlcjpwYXNzd29yZA==", "authorization: Basic dXNl****"),
            ("see https://user:pw@host/x and ssh://u@h", "see https://user:****@host/x and ssh://u@h"),
            ("mytoken=public tokenizer=x", "mytoken=public tokenizer=x"),
            ("no secrets here", "no secrets here"),
        ] {
            assert_eq!(r.redact(input), expected, "{input}");
        }
    }

    #[test]
    fn a_secret_inside_another_is_masked_with_it() {
        let r = Redactor::new(["abcd".to_owned(), "xxabcdxx-long".to_owned()]);
        assert_eq!(r.redact("k xxabcdxx-long abcd"), "k xxab**** ****");
        assert_eq!(format!("{r:?}"), "Redactor(2 secrets)");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn no_known_secret_survives(
            secrets in proptest::collection::vec("[A-Za-z0-9]{1,24}", 1..5),
            filler in proptest::collection::vec("[ -~]{0,20}", 1..6),
        ) {
            let r = Redactor::new(secrets.clone());
            let mut text = String::new();
            for (i, piece) in filler.iter().enumerate() {
                text.push_str(piece);
                text.push(' ');
                text.push_str(&secrets[i % secrets.len()]);
                text.push(' ');
            }
            let out = r.redact(&text);
            for secret in &secrets {
                // No secret may survive as a word of its own. (Inside a longer word it may:
                // "ab" in a kept prefix "abcd****" of another secret reveals nothing.)
                let standalone = out.split(|c: char| !c.is_ascii_alphanumeric()).any(|w| w == secret);
                prop_assert!(!standalone, "{secret:?} survived in {out:?}");
                if secret.len() >= 8 {
                    prop_assert!(!out.contains(secret.as_str()), "{secret:?} survived in {out:?}");
                }
            }
        }

        #[test]
        fn redaction_never_panics(text in "\\PC{0,200}") {
            let _ = Redactor::new(["x".to_owned()]).redact(&text);
        }
    }
}
