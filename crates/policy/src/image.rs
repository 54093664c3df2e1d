//! Image references, normalized as Docker does, and the rule that decides which images an
//! update may deploy (seed 002's hole 1: "any image").

use std::fmt;

/// A parsed, normalized image reference: `docker.io/library/nginx:latest`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<String>,
}

/// Why a reference is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image reference {input:?}: {reason}")]
pub struct ImageError {
    input: String,
    reason: String,
}

impl ImageError {
    pub(crate) fn new(input: &str, reason: &str) -> Self {
        Self { input: input.to_owned(), reason: reason.to_owned() }
    }
}

const DEFAULT_DOMAIN: &str = "docker.io";

impl ImageRef {
    /// Parses and normalizes: `nginx` → `docker.io/library/nginx:latest`,
    /// `registry:5000/team/app@sha256:…` keeps its registry and digest.
    ///
    /// ```
    /// use dockhand_policy::ImageRef;
    ///
    /// assert_eq!(ImageRef::parse("nginx").unwrap().to_string(), "docker.io/library/nginx:latest");
    /// assert_eq!(
    ///     ImageRef::parse("localhost:5000/app:1.2").unwrap().to_string(),
    ///     "localhost:5000/app:1.2"
    /// );
    /// ```
    pub fn parse(input: &str) -> Result<Self, ImageError> {
        let err = |reason: &str| ImageError::new(input, reason);
        if input.is_empty() {
            return Err(err("it is empty"));
        }
        if input.len() > 512 {
            return Err(err("it is longer than 512 characters"));
        }
        let (name, digest) = match input.split_once('@') {
            Some((name, digest)) => (name, Some(parse_digest(digest).map_err(|r| err(&r))?)),
            None => (input, None),
        };
        // A tag is after the last ':' that comes after the last '/'.
        let last_slash = name.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name[last_slash..].rfind(':') {
            Some(i) => {
                let tag = &name[last_slash + i + 1..];
                if tag.is_empty()
                    || tag.len() > 128
                    || !tag.chars().next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                    || !tag.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
                {
                    return Err(err(&format!("invalid tag {tag:?}")));
                }
                (&name[..last_slash + i], Some(tag.to_owned()))
            }
            None => (name, None),
        };
        // The first component is a registry when it has '.' or ':', is localhost, or has
        // upper case (which a repository path may not).
        let (domain, path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains(['.', ':'])
                    || first == "localhost"
                    || first.chars().any(|c| c.is_ascii_uppercase()) =>
            {
                (first.to_owned(), rest.to_owned())
            }
            _ => (DEFAULT_DOMAIN.to_owned(), name.to_owned()),
        };
        let domain = if domain == "index.docker.io" { DEFAULT_DOMAIN.to_owned() } else { domain };
        validate_domain(&domain).map_err(|r| err(&r))?;
        validate_path(&path).map_err(|r| err(&r))?;
        let path =
            if domain == DEFAULT_DOMAIN && !path.contains('/') { format!("library/{path}") } else { path };
        let tag = if tag.is_none() && digest.is_none() { Some("latest".to_owned()) } else { tag };
        Ok(Self { domain, path, tag, digest })
    }

    /// `domain/path`, without tag or digest.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The registry host (`docker.io`, `registry.example.com:5000`).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The tag, if any (`latest` when neither tag nor digest was given).
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if any (`sha256:…`).
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

fn parse_digest(digest: &str) -> Result<String, String> {
    let (algorithm, hex) = digest.split_once(':').ok_or_else(|| format!("invalid digest {digest:?}"))?;
    let want = match algorithm {
        "sha256" => 64,
        "sha512" => 128,
        _ => return Err(format!("unsupported digest algorithm {algorithm:?}")),
    };
    if hex.len() != want || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(format!("invalid {algorithm} digest: expected {want} lowercase hex digits"));
    }
    Ok(digest.to_owned())
}

fn validate_domain(domain: &str) -> Result<(), String> {
    let (host, port) = match domain.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (domain, None),
    };
    if host.is_empty()
        || !host
            .split('.')
            .all(|label| !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
    {
        return Err(format!("invalid registry {domain:?}"));
    }
    if let Some(port) = port {
        if port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(format!("invalid registry port {port:?}"));
        }
    }
    Ok(())
}

fn validate_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("the repository name is empty".to_owned());
    }
    if path.chars().any(|c| c.is_ascii_uppercase()) {
        return Err("repository names must be lowercase".to_owned());
    }
    for component in path.split('/') {
        let ok = !component.is_empty()
            && component.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && component.chars().last().is_some_and(|c| c.is_ascii_alphanumeric())
            && component
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
        if !ok {
            return Err(format!("invalid path component {component:?}"));
        }
    }
    Ok(())
}

/// Why an image was refused: which rule refused it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ImageDenied {
    /// The requested reference is not valid.
    #[error(transparent)]
    Invalid(#[from] ImageError),
    /// No `image-allow` glob matches.
    #[error("image {image} matches none of the allowed patterns in {label} ({patterns})")]
    NotAllowed {
        /// The normalized image.
        image: String,
        /// The label holding the patterns.
        label: String,
        /// The patterns.
        patterns: String,
    },
    /// Without `image-allow`, only the service's own repository may be deployed.
    #[error(
        "image {image} is not in the service's repository {repository}; to allow other images, set {label}"
    )]
    OtherRepository {
        /// The normalized image.
        image: String,
        /// The service's current repository.
        repository: String,
        /// The label that would allow more.
        label: String,
    },
}

/// Decides whether `requested` may replace `current` on a service. `allow` is the value of
/// the `update.image-allow` label (`label` names it, for messages): globs separated by commas
/// or spaces, matched against the normalized reference by these rules (`*`
/// stays within a path segment, and within a DNS label in the host; `**` crosses `/`). With
/// no such label, only `current`'s repository is allowed, with any tag or digest.
pub fn check_image(
    requested: &str,
    current: &str,
    allow: Option<&str>,
    label: &str,
) -> Result<ImageRef, ImageDenied> {
    let image = ImageRef::parse(requested)?;
    let normalized = image.to_string();
    match allow.map(str::trim).filter(|a| !a.is_empty()) {
        Some(patterns) => {
            if patterns
                .split([',', ' '])
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .any(|p| image_glob(p, &normalized))
            {
                Ok(image)
            } else {
                Err(ImageDenied::NotAllowed {
                    image: normalized,
                    label: label.to_owned(),
                    patterns: patterns.to_owned(),
                })
            }
        }
        None => {
            let current = ImageRef::parse(current)?;
            if current.repository() == image.repository() {
                Ok(image)
            } else {
                Err(ImageDenied::OtherRepository {
                    image: normalized,
                    repository: current.repository(),
                    label: label.to_owned(),
                })
            }
        }
    }
}

/// Glob match for claims and paths: `*` any run of characters but `/`, `**` any run
/// including `/`, `?` one character but `/`, the rest literal. So `group/*` matches
/// `group/app` and not `group/sub/app` (review finding 10).
pub(crate) fn glob(pattern: &str, text: &str) -> bool {
    glob_with(pattern, text, &['/'])
}

/// Glob match for an image reference: the host (up to the first `/`) must match whole, its
/// `*` staying within one DNS label (no `.`, `:` or `/`), and the rest as [`glob`]. So
/// `*.example.com/team/*` matches `a.example.com/team/app:1` and not
/// `evil.com/x.example.com/team/app:1`; `registry.example.com*` matches nothing under
/// `registry.example.com.evil.io`. A pattern that starts with `**` matches anything.
pub(crate) fn image_glob(pattern: &str, reference: &str) -> bool {
    if pattern.starts_with("**") {
        return glob_with(pattern, reference, &[]);
    }
    let (p_host, p_rest) = pattern.split_once('/').unwrap_or((pattern, ""));
    let (r_host, r_rest) = reference.split_once('/').unwrap_or((reference, ""));
    glob_with(p_host, r_host, &['/', '.', ':']) && glob_with(p_rest, r_rest, &['/'])
}

/// The matcher: `*` matches any run without a character of `stops`, `**` any run at all,
/// `?` one character not in `stops`. Backtracking is bounded by the lengths (dynamic
/// programming over pattern and text positions).
fn glob_with(pattern: &str, text: &str, stops: &[char]) -> bool {
    #[derive(Clone, Copy, PartialEq)]
    enum Tok {
        Lit(char),
        One,
        Star,
        DoubleStar,
    }
    let mut toks = Vec::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        toks.push(match c {
            '*' if chars.peek() == Some(&'*') => {
                while chars.peek() == Some(&'*') {
                    chars.next();
                }
                Tok::DoubleStar
            }
            '*' => Tok::Star,
            '?' => Tok::One,
            c => Tok::Lit(c),
        });
    }
    let t: Vec<char> = text.chars().collect();
    // reach[j]: the pattern prefix read so far matches text[..j]. Each token is one pass
    // over the text, so a match costs pattern × text, whatever the stars (a label's
    // pattern of 50 000 `*a` against a 512-character reference stays in milliseconds).
    let mut reach = vec![false; t.len() + 1];
    reach[0] = true;
    for tok in toks {
        let mut next = vec![false; t.len() + 1];
        match tok {
            Tok::Lit(c) => {
                for j in 0..t.len() {
                    next[j + 1] = reach[j] && t[j] == c;
                }
            }
            Tok::One => {
                for j in 0..t.len() {
                    next[j + 1] = reach[j] && !stops.contains(&t[j]);
                }
            }
            // A star carries a match forward, a single one up to the next stop.
            Tok::Star | Tok::DoubleStar => {
                next[0] = reach[0];
                for j in 1..=t.len() {
                    let crosses = tok == Tok::DoubleStar || !stops.contains(&t[j - 1]);
                    next[j] = reach[j] || (next[j - 1] && crosses);
                }
            }
        }
        if !next.contains(&true) {
            return false;
        }
        reach = next;
    }
    reach[t.len()]
}

#[cfg(test)]
mod tests {
    /// The review's note: a very long pattern costs pattern × text, not more (the old
    /// matcher took pattern × text², seconds for this one).
    #[test]
    fn a_huge_pattern_costs_its_length_times_the_texts() {
        let pattern = "*a".repeat(50_000);
        let reference = format!("registry.example.com/{}", "a".repeat(490));
        assert!(!super::image_glob(&pattern, &reference));
        assert!(!super::glob(&pattern, &"b".repeat(512)));
        assert!(super::glob(&"*a".repeat(5_000), &"a".repeat(5_000)));
    }

    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn references_normalize_as_docker_does() {
        let digest_ref = format!("nginx@{D}");
        let tagged_digest = format!("registry.example.com/team/app:1.0@{D}");
        let cases: Vec<(&str, String)> = vec![
            ("nginx", "docker.io/library/nginx:latest".into()),
            ("nginx:1.27", "docker.io/library/nginx:1.27".into()),
            ("library/nginx", "docker.io/library/nginx:latest".into()),
            ("docker.io/nginx", "docker.io/library/nginx:latest".into()),
            ("index.docker.io/library/nginx:1", "docker.io/library/nginx:1".into()),
            ("bitnami/redis:7.2", "docker.io/bitnami/redis:7.2".into()),
            ("ghcr.io/org/app:v1.2.3", "ghcr.io/org/app:v1.2.3".into()),
            ("registry.example.com:5000/team/app", "registry.example.com:5000/team/app:latest".into()),
            ("localhost:5000/app:dev", "localhost:5000/app:dev".into()),
            ("localhost/app", "localhost/app:latest".into()),
            ("10.0.0.5:5000/a/b/c:x", "10.0.0.5:5000/a/b/c:x".into()),
            (&digest_ref, format!("docker.io/library/nginx@{D}")),
            (&tagged_digest, format!("registry.example.com/team/app:1.0@{D}")),
            (
                "my.registry/sub_dir/image-name.v2:tag_1.0-rc",
                "my.registry/sub_dir/image-name.v2:tag_1.0-rc".into(),
            ),
            ("Registry.Example.com/app", "Registry.Example.com/app:latest".into()),
        ];
        for (input, expected) in &cases {
            assert_eq!(ImageRef::parse(input).unwrap().to_string(), *expected, "{input}");
        }
    }

    #[test]
    fn invalid_references_say_why() {
        for (input, why) in [
            ("", "empty"),
            ("Nginx", "lowercase"),
            ("docker.io/Library/nginx", "lowercase"),
            ("nginx:", "invalid tag"),
            ("nginx:-x", "invalid tag"),
            ("nginx:a/b", "invalid registry port \"a\""),
            ("nginx@sha256:abc", "64 lowercase hex"),
            ("nginx@md5:abc", "unsupported digest"),
            ("registry:0/app", "port"),
            ("registry:99999/app", "port"),
            ("a//b", "invalid path component"),
            ("-app", "invalid path component"),
            ("app_", "invalid path component"),
        ] {
            let msg = ImageRef::parse(input).unwrap_err().to_string();
            assert!(msg.contains(&format!("{input:?}")) && msg.contains(why), "{input}: {msg}");
        }
    }

    #[test]
    fn without_a_rule_only_the_services_repository_is_allowed() {
        let label = "dockhand.update.image-allow";
        let ok = check_image(
            "registry.example.com/team/app:2.0",
            "registry.example.com/team/app:1.0",
            None,
            label,
        )
        .unwrap();
        assert_eq!(ok.tag(), Some("2.0"));
        assert!(
            check_image(
                &format!("registry.example.com/team/app@{D}"),
                "registry.example.com/team/app:1.0",
                None,
                label
            )
            .is_ok()
        );
        assert!(check_image("nginx:1.27", "nginx", None, label).is_ok());
        let msg = check_image("evil/miner:latest", "registry.example.com/team/app:1.0", None, label)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("docker.io/evil/miner:latest")
                && msg.contains("registry.example.com/team/app")
                && msg.contains(label),
            "{msg}"
        );
    }

    #[test]
    fn an_allow_rule_is_globs_over_the_normalized_reference() {
        let label = "dockhand.update.image-allow";
        let allow = Some("registry.example.com/team/*, docker.io/library/nginx:1.*");
        assert!(check_image("registry.example.com/team/other:9", "x", allow, label).is_ok());
        assert!(check_image("nginx:1.27", "x", allow, label).is_ok());
        let msg = check_image("nginx:latest", "x", allow, label).unwrap_err().to_string();
        assert!(
            msg.contains("docker.io/library/nginx:latest") && msg.contains("registry.example.com/team/*"),
            "{msg}"
        );
        assert!(matches!(check_image("NOPE", "x", allow, label), Err(ImageDenied::Invalid(_))));
        assert!(glob("a*b?d", "axxbcd") && !glob("a*b?d", "axxbd") && glob("*", "") && !glob("a", "ab"));
        // Review finding 10: `*` stops at `/`; `**` crosses it.
        assert!(glob("group/*", "group/app") && !glob("group/*", "group/sub/app"));
        assert!(glob("group/**", "group/sub/app") && !glob("group/?", "group//"));
        let cases = [
            ("*.example.com/team/*", "a.example.com/team/app:1", true),
            ("*.example.com/team/*", "evil.com/x.example.com/team/app:1", false),
            ("*.example.com/team/*", "a.b.example.com/team/app:1", false),
            ("registry.example.com*", "registry.example.com.evil.io/team/app:1", false),
            ("registry.example.com*/**", "registry.example.com.evil.io/team/app:1", false),
            ("registry.example.com/team/*", "registry.example.com/team/app:1.2", true),
            ("registry.example.com/team/*", "registry.example.com/team/sub/app:1", false),
            ("registry.example.com/team/**", "registry.example.com/team/sub/app:1", true),
            ("registry.example.com:5000/team/*", "registry.example.com:5000/team/app:v1", true),
            ("registry.example.com*/team/*", "registry.example.com:5000/team/app:v1", false),
            ("docker.io/library/nginx:1.*", "docker.io/library/nginx:1.27", true),
            ("**", "anything.io/at/all:x", true),
        ];
        for (pattern, reference, expected) in cases {
            assert_eq!(image_glob(pattern, reference), expected, "{pattern} ~ {reference}");
        }
    }
}
