//! Who may do what: admin tokens, and per-target tokens in `<action>.token` labels, plain or
//! hashed, compared in constant time. A scope selector limits every caller, admins included.

use std::collections::BTreeMap;
use std::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::decision::{Decision, Identity, Permission};
use crate::{LabelPrefixes, TargetLabels};

/// `sha256:<hex>` of a token: what a token label may hold instead of the token itself, so
/// that `docker service inspect` never shows a usable token.
///
/// ```
/// let label = dockhand_policy::hash_token("");
/// assert_eq!(label, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
/// ```
pub fn hash_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for byte in digest {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// Constant-time equality of two secrets, whatever their lengths: both sides are hashed to
/// fixed-length SHA-256 digests first, so neither the content nor the length leaks
/// through timing (review finding 12).
fn same(a: &[u8], b: &[u8]) -> bool {
    let (a, b) = (Sha256::digest(a), Sha256::digest(b));
    bool::from(a.as_slice().ct_eq(b.as_slice()))
}

/// What a token label holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenLabel<'a> {
    /// `sha256:<64 hex digits>`, the prefix in any case: the hash of the token.
    Hash(&'a str),
    /// A label that starts like a hash (`sha256:`, any case) but is not one: never a
    /// token, only a diagnostic.
    MalformedHash,
    /// The token itself (seed behaviour).
    Plain(&'a str),
}

impl<'a> TokenLabel<'a> {
    /// Reads a token label's value (review finding 1: `SHA256:` is a hash too, and a
    /// malformed hash is never a plain token).
    pub fn parse(value: &'a str) -> Self {
        let value = value.trim();
        match value.get(..7) {
            Some(prefix) if prefix.eq_ignore_ascii_case("sha256:") => {
                let hex = &value[7..];
                if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    Self::Hash(hex)
                } else {
                    Self::MalformedHash
                }
            }
            _ => Self::Plain(value),
        }
    }
}

/// Does `token` match a label value (the token itself, or `sha256:<hex>` of it)?
fn label_matches(label: &str, token: &str) -> bool {
    if token.is_empty() {
        return false;
    }
    match TokenLabel::parse(label) {
        TokenLabel::Hash(hex) => {
            same(hex.to_ascii_lowercase().as_bytes(), &hash_token(token).as_bytes()[7..])
        }
        TokenLabel::MalformedHash => false,
        TokenLabel::Plain("") => false,
        TokenLabel::Plain(plain) => same(plain.as_bytes(), token.as_bytes()),
    }
}

/// What a caller presents.
#[derive(Debug, Clone, Copy)]
pub enum Credential<'a> {
    /// A token: an admin token or the target's `<action>.token`.
    Token(&'a str),
    /// The claims of a verified CI identity token ([`crate::OidcVerifier::verify`]).
    Ci(&'a BTreeMap<String, serde_json::Value>),
}

impl<'a> From<&'a str> for Credential<'a> {
    fn from(token: &'a str) -> Self {
        Self::Token(token)
    }
}

impl<'a> From<&'a String> for Credential<'a> {
    fn from(token: &'a String) -> Self {
        Self::Token(token)
    }
}

/// Decides who may act on which target.
#[derive(Clone)]
pub struct Authorizer {
    admins: Vec<String>,
    prefixes: LabelPrefixes,
    scope: Option<(String, String)>,
    /// More than one trusted CI issuer: bindings must name theirs (`<action>.oidc.iss`).
    several_issuers: bool,
}

impl fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authorizer")
            .field("admins", &format_args!("{} token(s)", self.admins.len()))
            .field("prefixes", &self.prefixes)
            .field("scope", &self.scope)
            .finish()
    }
}

impl Authorizer {
    /// Admin tokens (empty ones are dropped) and the label prefixes to read:
    /// `dockhand.`, or for a migrating cluster [`LabelPrefixes::with_swarm_utils`]. Labels
    /// are read through [`TargetLabels`]: per key, the first prefix wins.
    pub fn new(admins: impl IntoIterator<Item = String>, prefixes: &LabelPrefixes) -> Self {
        Self {
            admins: admins.into_iter().filter(|t| !t.trim().is_empty()).collect(),
            prefixes: prefixes.clone(),
            scope: None,
            several_issuers: false,
        }
    }

    /// How many CI issuers the server trusts. With more than one, a target's
    /// `<action>.oidc.*` labels bind only with an `<action>.oidc.iss` label that names the
    /// issuer exactly (R3-10): the same claim (`project_path=group/app`) may belong to
    /// someone else on another issuer.
    pub fn with_oidc_issuers(mut self, count: usize) -> Self {
        self.several_issuers = count > 1;
        self
    }

    /// The label prefixes it reads.
    pub fn prefixes(&self) -> &LabelPrefixes {
        &self.prefixes
    }

    /// Limits every caller, admins included, to targets labelled `key=value` (several
    /// dockhand instances in one swarm, seed idea 20).
    pub fn with_scope(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.scope = Some((key.into(), value.into()));
        self
    }

    /// True when this instance is limited to a scope (`scope.selector`).
    pub fn has_scope(&self) -> bool {
        self.scope.is_some()
    }

    /// True when a target with `labels` is within this instance's scope: what cron and
    /// listings use, where there is no caller to authorize.
    pub fn in_scope(&self, labels: &BTreeMap<String, String>) -> bool {
        self.scope.as_ref().is_none_or(|(key, value)| labels.get(key) == Some(value))
    }

    /// Which admin token `token` is (from 1), if any. Every admin token is compared, matched
    /// or not, so timing tells nothing. The scope still limits an admin: this only says who
    /// the caller is (what a server needs to know before it may say "no such service").
    pub fn admin(&self, token: &str) -> Option<usize> {
        let mut admin = None;
        if token.is_empty() {
            return None;
        }
        for (i, candidate) in self.admins.iter().enumerate() {
            if same(candidate.as_bytes(), token.as_bytes()) && admin.is_none() {
                admin = Some(i + 1);
            }
        }
        admin
    }

    /// Decides whether a caller with `credential` (a token, or verified CI claims) may do
    /// `action` on the target `name` with `labels`. The one entry point for every caller:
    /// the scope is checked first, for admins, tokens and CI identities alike.
    pub fn authorize<'c>(
        &self,
        action: Permission,
        name: &str,
        labels: &BTreeMap<String, String>,
        credential: impl Into<Credential<'c>>,
    ) -> Decision {
        let deny = |reason: String| Decision::Deny { reason };
        if let (false, Some((key, value))) = (self.in_scope(labels), &self.scope) {
            return deny(format!("{name} is outside this instance's scope ({key}={value})"));
        }
        let token = match credential.into() {
            Credential::Token(token) => token,
            Credential::Ci(claims) => {
                return crate::oidc::authorize_claims(
                    action,
                    name,
                    labels,
                    claims,
                    &self.prefixes,
                    self.several_issuers,
                );
            }
        };
        if token.is_empty() {
            return deny("no token was given".to_owned());
        }
        if let Some(n) = self.admin(token) {
            return Decision::Allow { who: Identity::Admin(n) };
        }
        let view = TargetLabels::resolve(labels, &self.prefixes);
        let short = format!("{}.token", action.as_str());
        let Some((key, label)) = view.get(&short) else {
            let key = view.key_for(&short);
            return deny(format!("{name} has no {key} label: only admins may {} it", action.as_str()));
        };
        if label_matches(label, token) {
            let hash = hash_token(token);
            Decision::Allow { who: Identity::Token { hash_prefix: hash[..15].to_owned() } }
        } else {
            deny(format!("the token does not match {key} on {name}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn the_authorization_matrix() {
        let auth = Authorizer::new(
            ["root-1".to_owned(), "root-2".to_owned(), String::new()],
            &LabelPrefixes::default(),
        );
        let web = labels(&[
            ("dockhand.update.token", "tok-web"),
            ("dockhand.clean.token", &hash_token("tok-clean")),
        ]);
        let api = labels(&[("dockhand.update.token", "tok-api")]);
        let bare = labels(&[("dockhand.update.enable", "true")]);
        // Review finding 1: the prefix in upper case, as `docker service inspect` may show
        // what an operator typed; and a malformed hash.
        let upper_hash = format!("SHA256:{}", hash_token("tok-db")[7..].to_ascii_uppercase());
        let db =
            labels(&[("dockhand.update.token", &upper_hash), ("dockhand.backup.token", "Sha256:abc123")]);
        let allow = |who: Identity| Decision::Allow { who };
        let clean_hash = hash_token("tok-clean");
        type Row<'a> =
            (&'a str, Permission, &'a str, &'a BTreeMap<String, String>, &'a str, Result<Identity, &'a str>);
        let rows: Vec<Row<'_>> = vec![
            ("admin", Permission::Update, "web", &web, "root-2", Ok(Identity::Admin(2))),
            (
                "admin on a target without labels",
                Permission::Backup,
                "bare",
                &bare,
                "root-1",
                Ok(Identity::Admin(1)),
            ),
            (
                "the right token for the right action",
                Permission::Update,
                "web",
                &web,
                "tok-web",
                Ok(Identity::Token { hash_prefix: hash_token("tok-web")[..15].to_owned() }),
            ),
            (
                "the right token for the wrong action",
                Permission::Backup,
                "web",
                &web,
                "tok-web",
                Err("has no dockhand.backup.token"),
            ),
            (
                "another service's token",
                Permission::Update,
                "web",
                &web,
                "tok-api",
                Err("does not match dockhand.update.token on web"),
            ),
            (
                "a hashed label, the right token",
                Permission::Clean,
                "web",
                &web,
                "tok-clean",
                Ok(Identity::Token { hash_prefix: hash_token("tok-clean")[..15].to_owned() }),
            ),
            (
                "a hashed label, a wrong token",
                Permission::Clean,
                "web",
                &web,
                "tok-web",
                Err("does not match dockhand.clean.token"),
            ),
            (
                "a hashed label, its hash as the token",
                Permission::Clean,
                "web",
                &web,
                &clean_hash,
                Err("does not match"),
            ),
            ("an empty token", Permission::Update, "web", &web, "", Err("no token")),
            (
                "a target without a token label",
                Permission::Update,
                "bare",
                &bare,
                "tok-web",
                Err("only admins may update it"),
            ),
            (
                "finding 1: an upper-case SHA256: label, the real token",
                Permission::Update,
                "db",
                &db,
                "tok-db",
                Ok(Identity::Token { hash_prefix: hash_token("tok-db")[..15].to_owned() }),
            ),
            (
                "finding 1: an upper-case SHA256: label, the label itself as the token",
                Permission::Update,
                "db",
                &db,
                &upper_hash,
                Err("does not match dockhand.update.token on db"),
            ),
            (
                "finding 1: a malformed hash label is never a plain token",
                Permission::Backup,
                "db",
                &db,
                "Sha256:abc123",
                Err("does not match dockhand.backup.token on db"),
            ),
            (
                "a token meant for another service, on it",
                Permission::Update,
                "api",
                &api,
                "tok-api",
                Ok(Identity::Token { hash_prefix: hash_token("tok-api")[..15].to_owned() }),
            ),
        ];
        for (name, action, target, labels, token, expected) in rows {
            let decision = auth.authorize(action, target, labels, token);
            match expected {
                Ok(who) => assert_eq!(decision, allow(who), "{name}"),
                Err(why) => match &decision {
                    Decision::Deny { reason } => {
                        assert!(reason.contains(why), "{name}: {reason}");
                        assert!(
                            !reason.contains("tok-") && !reason.contains("root-"),
                            "{name}: a secret in {reason}"
                        );
                    }
                    Decision::Allow { .. } => panic!("{name}: allowed"),
                },
            }
        }
    }

    #[test]
    fn with_several_issuers_a_binding_names_its_own() {
        let claims = |iss: &str| -> BTreeMap<String, serde_json::Value> {
            [("iss", iss), ("project_path", "group/app")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), serde_json::Value::String(v.to_owned())))
                .collect()
        };
        let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
        };
        let (a, b) = ("https://gitlab.example.com", "https://gitlab.com");
        let unpinned = labels(&[("dockhand.update.oidc.project_path", "group/app")]);
        let pinned =
            labels(&[("dockhand.update.oidc.project_path", "group/app"), ("dockhand.update.oidc.iss", a)]);
        let globbed = labels(&[
            ("dockhand.update.oidc.project_path", "group/app"),
            ("dockhand.update.oidc.iss", "https://*"),
        ]);
        let one = Authorizer::new([], &LabelPrefixes::default()).with_oidc_issuers(1);
        let two = Authorizer::new([], &LabelPrefixes::default()).with_oidc_issuers(2);
        let allowed = |auth: &Authorizer, labels: &BTreeMap<String, String>, iss: &str| {
            auth.authorize(Permission::Update, "web", labels, Credential::Ci(&claims(iss))).is_allowed()
        };
        assert!(allowed(&one, &unpinned, a), "one issuer: the binding is its");
        // R3-10: B's group/app is not A's.
        assert!(!allowed(&two, &unpinned, b));
        assert!(!allowed(&two, &unpinned, a), "an unpinned binding binds nothing with several issuers");
        match two.authorize(Permission::Update, "web", &unpinned, Credential::Ci(&claims(a))) {
            Decision::Deny { reason } => assert!(reason.contains("dockhand.update.oidc.iss"), "{reason}"),
            other => panic!("{other:?}"),
        }
        assert!(allowed(&two, &pinned, a) && !allowed(&two, &pinned, b));
        assert!(allowed(&one, &pinned, &format!("{a}/")), "a trailing slash is the same issuer");
        assert!(!allowed(&two, &globbed, a), "iss is compared exactly, never as a glob");
    }

    #[test]
    fn an_out_of_scope_target_is_refused_even_to_admins() {
        let auth = Authorizer::new(["root".to_owned()], &LabelPrefixes::default())
            .with_scope("dockhand.tenant", "team-a");
        let theirs = labels(&[("dockhand.tenant", "team-b"), ("dockhand.update.token", "t")]);
        let ours = labels(&[("dockhand.tenant", "team-a"), ("dockhand.update.token", "t")]);
        let Decision::Deny { reason } = auth.authorize(Permission::Update, "x", &theirs, "root") else {
            panic!("allowed")
        };
        assert!(reason.contains("outside this instance's scope (dockhand.tenant=team-a)"), "{reason}");
        assert!(auth.authorize(Permission::Update, "x", &ours, "root").is_allowed());
        assert!(auth.in_scope(&ours) && !auth.in_scope(&theirs));
        assert!(
            Authorizer::new([], &LabelPrefixes::default()).in_scope(&theirs),
            "no scope: everything is in it"
        );
        assert!(auth.authorize(Permission::Update, "x", &ours, "t").is_allowed());
    }

    #[test]
    fn the_seed_prefix_is_read_when_configured() {
        let seed = labels(&[("swarm-utils.update.token", "legacy")]);
        assert!(
            !Authorizer::new([], &LabelPrefixes::default())
                .authorize(Permission::Update, "x", &seed, "legacy")
                .is_allowed()
        );
        assert!(
            Authorizer::new([], &LabelPrefixes::with_swarm_utils())
                .authorize(Permission::Update, "x", &seed, "legacy")
                .is_allowed()
        );
    }

    /// Both prefixes on one service, disagreeing: per key the first prefix (`dockhand.`)
    /// wins; a key only the seed's prefix carries still counts.
    #[test]
    fn when_both_prefixes_disagree_dockhand_wins_per_key() {
        let both = labels(&[
            ("dockhand.update.token", "new-token"),
            ("swarm-utils.update.token", "old-token"),
            ("swarm-utils.clean.token", "seed-clean"),
        ]);
        let auth = Authorizer::new([], &LabelPrefixes::with_swarm_utils());
        assert!(auth.authorize(Permission::Update, "web", &both, "new-token").is_allowed());
        let Decision::Deny { reason } = auth.authorize(Permission::Update, "web", &both, "old-token") else {
            panic!("the overridden seed token was accepted");
        };
        assert!(reason.contains("dockhand.update.token"), "{reason}");
        assert!(auth.authorize(Permission::Clean, "web", &both, "seed-clean").is_allowed());
        // Without the seed prefix configured, its labels count for nothing.
        let strict = Authorizer::new([], &LabelPrefixes::default());
        assert!(!strict.authorize(Permission::Clean, "web", &both, "seed-clean").is_allowed());
    }

    /// The authorization matrix for CI identities (claims already verified), through the
    /// same entry point as tokens.
    #[test]
    fn the_ci_identity_matrix() {
        let claims = |project: &str| -> BTreeMap<String, serde_json::Value> {
            [("project_path", project), ("ref", "main")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), serde_json::Value::from(v)))
                .collect()
        };
        let group =
            labels(&[("dockhand.update.oidc.project_path", "group/*"), ("dockhand.tenant", "team-a")]);
        let other_tenant =
            labels(&[("dockhand.update.oidc.project_path", "group/*"), ("dockhand.tenant", "team-b")]);
        let deep =
            labels(&[("dockhand.update.oidc.project_path", "group/**"), ("dockhand.tenant", "team-a")]);
        let auth = Authorizer::new([], &LabelPrefixes::default()).with_scope("dockhand.tenant", "team-a");
        let rows = [
            ("a project of the group", &group, "group/app", Ok(())),
            (
                "finding 10: a subgroup's project does not match group/*",
                &group,
                "group/sub/app",
                Err("does not match"),
            ),
            ("finding 10: group/** is how subgroups are allowed", &deep, "group/sub/app", Ok(())),
            (
                "finding 3: another tenant's service, a matching identity",
                &other_tenant,
                "group/app",
                Err("outside"),
            ),
        ];
        for (name, labels, project, expected) in rows {
            let c = claims(project);
            match (auth.authorize(Permission::Update, "web", labels, Credential::Ci(&c)), expected) {
                (Decision::Allow { .. }, Ok(())) => {}
                (Decision::Deny { reason }, Err(part)) => assert!(reason.contains(part), "{name}: {reason}"),
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn token_labels_are_read_case_insensitively_and_validated() {
        let hex = &hash_token("t")[7..];
        assert_eq!(TokenLabel::parse(&format!("sha256:{hex}")), TokenLabel::Hash(hex));
        assert_eq!(TokenLabel::parse(&format!("SHA256:{hex}")), TokenLabel::Hash(hex));
        assert_eq!(TokenLabel::parse(&format!(" Sha256:{hex} ")), TokenLabel::Hash(hex));
        for bad in ["sha256:", "SHA256:abc", &format!("sha256:{hex}0"), &format!("sha256:{}g", &hex[1..])] {
            assert_eq!(TokenLabel::parse(bad), TokenLabel::MalformedHash, "{bad}");
        }
        assert_eq!(TokenLabel::parse("plain-token"), TokenLabel::Plain("plain-token"));
    }

    /// Review finding 12: tokens of different lengths take the same path (both sides are
    /// hashed to 32 bytes first), and equal ones still match.
    #[test]
    fn comparison_does_not_depend_on_length() {
        assert!(same(b"a", b"a") && same(b"", b""));
        assert!(!same(b"a", b"ab") && !same(b"ab", b"a") && !same(b"x", b""));
    }

    #[test]
    fn empty_labels_and_debug_leak_nothing() {
        assert!(!label_matches("", ""));
        assert!(!label_matches("  ", "x"));
        assert!(!label_matches("sha256:", ""));
        let shown = format!("{:?}", Authorizer::new(["hunter2".to_owned()], &LabelPrefixes::default()));
        assert!(!shown.contains("hunter2") && shown.contains("1 token(s)"), "{shown}");
        assert_eq!(Identity::Admin(2).to_string(), "admin#2");
        assert!(hash_token("x").len() == 71 && hash_token("x") != hash_token("y"));
        // The known SHA-256 of the empty string.
        assert_eq!(hash_token(""), "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }
}
