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

/// Keys whose values are masked wherever they appear: `key=value`, `key: value`,
/// `"key": "value"` (quoted, with or without spaces, JSON escapes included), `--key value`
/// and `--key=value`.
const SECRET_KEYS: [&str; 16] = [
    "password",
    "passwd",
    "passphrase",
    "secret",
    "secret-key",
    "secret_key",
    "client_secret",
    "client-secret",
    "token",
    "access-key",
    "access_key",
    "api_key",
    "api-key",
    "apikey",
    "private_key",
    "private-key",
];

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

    /// `text` with every known secret and every secret-shaped value masked. A known secret
    /// is found as it is, JSON-escaped, percent-encoded (however much of it), and split
    /// across lines.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.secrets {
            let masked = mask(secret);
            for form in forms(secret) {
                out = mask_in_view(&out, &form, &masked, false);
                out = mask_in_view(&out, &form, &masked, true);
            }
        }
        let out = redact_url(&out);
        let out = mask_after(&out, "authorization:", true);
        let out = mask_after(&out, "x-registry-auth:", false);
        SECRET_KEYS.iter().fold(out, |text, key| mask_pairs(&text, key))
    }
}

/// The forms a secret takes in text: itself, and JSON-escaped.
fn forms(secret: &str) -> Vec<String> {
    let json = serde_json::to_string(secret).unwrap_or_default();
    let json = json.get(1..json.len().saturating_sub(1)).unwrap_or_default().to_owned();
    if json == secret || json.is_empty() { vec![secret.to_owned()] } else { vec![secret.to_owned(), json] }
}

/// Every occurrence of `needle` in a view of `text` without line breaks (`\n`, `\r`), and
/// with `%XX` escapes decoded when `decode`, replaced in `text` by `masked`.
fn mask_in_view(text: &str, needle: &str, masked: &str, decode: bool) -> String {
    if needle.is_empty() || !(text.contains(['\n', '\r']) || (decode && text.contains('%'))) {
        return text.replace(needle, masked);
    }
    let hex = |b: u8| char::from(b).to_digit(16);
    // The view, and for each of its bytes the range of `text` it came from.
    let bytes = text.as_bytes();
    let (mut view, mut from) = (Vec::with_capacity(bytes.len()), Vec::with_capacity(bytes.len()));
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\n' | b'\r' => i += 1,
            b'%' if decode && i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    view.push(u8::try_from(h * 16 + l).unwrap_or(b'%'));
                    from.push((i, i + 3));
                    i += 3;
                }
                _ => {
                    view.push(b'%');
                    from.push((i, i + 1));
                    i += 1;
                }
            },
            b => {
                view.push(b);
                from.push((i, i + 1));
                i += 1;
            }
        }
    }
    let needle = needle.as_bytes();
    let mut out = String::with_capacity(text.len());
    let (mut pos, mut j) = (0, 0);
    while j + needle.len() <= view.len() {
        if &view[j..j + needle.len()] != needle {
            j += 1;
            continue;
        }
        let (start, end) = (from[j].0, from[j + needle.len() - 1].1);
        // Only where the match starts and ends on character boundaries of the text.
        if text.is_char_boundary(start) && text.is_char_boundary(end) && start >= pos {
            out.push_str(&text[pos..start]);
            out.push_str(masked);
            pos = end;
        }
        j += needle.len();
    }
    out.push_str(&text[pos..]);
    out
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

/// `key=value`, `key: value`, `"key": "value"` and `--key value` (case-insensitive key,
/// not part of a longer word): the value masked. A quoted value runs to its closing quote
/// (JSON escapes such as `\"` inside it included); a bare one to whitespace, `&`, `,`, `;`
/// or a quote.
fn mask_pairs(text: &str, key: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    let mut search = 0;
    while let Some(found) = lower[search..].find(key) {
        let at = search + found;
        let after = at + key.len();
        search = after;
        // `_` before the key is a boundary (`AWS_SECRET_ACCESS_KEY=`), after it is not (`TOKEN_FILE=`).
        let word_start = at == 0 || !bytes[at - 1].is_ascii_alphanumeric();
        let word_end = bytes.get(after).is_none_or(|b| !(b.is_ascii_alphanumeric() || *b == b'_'));
        if !word_start || !word_end {
            continue;
        }
        let flag = at >= 2 && &bytes[at - 2..at] == b"--";
        let Some(start) = value_start(text, after, flag) else { continue };
        let end = value_end(text, start);
        let value = &text[start..end];
        if value.is_empty() || value.ends_with("****") {
            continue;
        }
        out.push_str(&text[pos..start]);
        out.push_str(&mask(value));
        pos = end;
        search = end;
    }
    out.push_str(&text[pos..]);
    out
}

/// Where the value after a key ending at `after` starts: past a closing quote of the key,
/// spaces, `=` or `:`, spaces, and an opening quote; for a `--key`, one space is a
/// separator too. `None` when no value follows.
fn value_start(text: &str, after: usize, flag: bool) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut i = after;
    if matches!(bytes.get(i), Some(b'"' | b'\'')) {
        i += 1;
    }
    let spaces = |mut i: usize| {
        while bytes.get(i) == Some(&b' ') || bytes.get(i) == Some(&b'\t') {
            i += 1;
        }
        i
    };
    let before_sep = spaces(i);
    i = match bytes.get(before_sep) {
        Some(b'=' | b':') => spaces(before_sep + 1),
        Some(_) if flag && before_sep > i => before_sep,
        _ => return None,
    };
    if matches!(bytes.get(i), Some(b'"' | b'\'')) {
        i += 1;
    }
    (i < text.len()).then_some(i)
}

/// Where a value starting at `start` ends: at its closing quote when it was opened by one
/// (a backslash escapes the next character), else at a delimiter.
fn value_end(text: &str, start: usize) -> usize {
    let bytes = text.as_bytes();
    match start.checked_sub(1).map(|i| bytes[i]) {
        Some(quote @ (b'"' | b'\'')) => {
            let mut i = start;
            while i < bytes.len() && bytes[i] != quote {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            i.min(bytes.len())
        }
        _ => text[start..]
            .find(|c: char| c.is_whitespace() || matches!(c, '&' | ',' | ';' | '"' | '\''))
            .map_or(text.len(), |i| start + i),
    }
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

    /// Review finding 7: the shapes that used to come through unmasked.
    #[test]
    fn review_shapes_are_masked() {
        let r = Redactor::default();
        for (input, expected) in [
            ("password=\"hunter2 with spaces\" next", "password=\"hunt****\" next"),
            ("{\"password\": \"s3cr3t-value\"}", "{\"password\": \"s3cr****\"}"),
            ("{\"password\" : \"ab\\\"cdefgh\"}", "{\"password\" : \"ab\\\"****\"}"),
            ("docker login --password s3cr3t-value -u x", "docker login --password s3cr**** -u x"),
            ("run --token=abcdefghij", "run --token=abcd****"),
            ("api_key=AKIA1234567890", "api_key=AKIA****"),
            ("{\"apiKey\":\"zzzzzzzzzz\"}", "{\"apiKey\":\"zzzz****\"}"),
            ("X-Registry-Auth: eyJ1c2VybmFtZSI6ImNpIn0=", "X-Registry-Auth: eyJ1****"),
            ("client_secret: abcdefghijk", "client_secret: abcd****"),
            ("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI-K7", "AWS_SECRET_ACCESS_KEY=wJal****"),
            ("TOKEN_FILE=/run/secrets/t", "TOKEN_FILE=/run/secrets/t"),
        ] {
            assert_eq!(r.redact(input), expected, "{input}");
        }
        let known = Redactor::new(["pa ss\"wo/rd-123".to_owned()]);
        for (input, survives) in [
            ("json {\"p\":\"pa ss\\\"wo/rd-123\"}", "wo/rd"),
            ("url ?p=pa%20ss%22wo%2Frd-123&x", "wo%2Frd"),
            ("wrapped pa ss\"wo/\nrd-123 end", "rd-123"),
            ("wrapped pa ss\"wo/\r\nrd-123 end", "rd-123"),
        ] {
            let out = known.redact(input);
            assert!(!out.contains(survives) && out.contains("pa s****"), "{input:?} -> {out:?}");
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

        /// Known secrets in every shape of finding 7 never survive.
        #[test]
        fn no_known_secret_survives_in_any_shape(
            secret in "[A-Za-z0-9 \"/%&:=+-]{8,24}",
            shape in 0usize..7,
            cut in 1usize..7,
        ) {
            let json = serde_json::to_string(&secret).unwrap();
            let percent: String = secret
                .bytes()
                .enumerate()
                .map(|(i, b)| if b.is_ascii_alphanumeric() && i % 3 != 0 { char::from(b).to_string() } else { format!("%{b:02X}") })
                .collect();
            let split = format!("{}\n{}", &secret[..cut], &secret[cut..]);
            let text = match shape {
                0 => format!("password={json} x"),
                1 => format!("{{\"password\": {json}}}"),
                2 => format!("--password {secret}"),
                3 => format!("log {json} end"),
                4 => format!("GET /x?p={percent} HTTP/1.1"),
                5 => format!("line {split} end"),
                _ => format!("X-Registry-Auth: {secret}"),
            };
            let out = Redactor::new([secret.clone()]).redact(&text);
            for form in [secret.clone(), json[1..json.len() - 1].to_owned(), percent] {
                prop_assert!(!out.contains(&form), "{form:?} survived in {out:?}");
            }
            prop_assert!(!out.replace(['\n', '\r'], "").contains(&secret), "{secret:?} survived in {out:?}");
        }
    }
}
