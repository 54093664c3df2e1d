//! The vocabulary of an authorization: what a caller asks to do ([`Permission`]), who the
//! caller turned out to be ([`Identity`]), and the answer ([`Decision`]). Token and CI
//! identity checks both answer in it.

use std::fmt;

/// A job a caller asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// clean-service or clean-node.
    Clean,
    /// backup-service.
    Backup,
    /// update-service.
    Update,
}

impl Permission {
    /// The label segment: `clean`, `backup`, `update`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Clean => "clean",
            Self::Backup => "backup",
            Self::Update => "update",
        }
    }
}

/// Who a decision let through, described without any secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// The n-th configured admin token (from 1).
    Admin(usize),
    /// A target's token, by the first 8 hex digits of its SHA-256.
    Token {
        /// `sha256:` and 8 hex digits.
        hash_prefix: String,
    },
    /// A verified CI identity token.
    Ci {
        /// Such as `gitlab:group/project@refs/heads/main`.
        description: String,
    },
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Admin(n) => write!(f, "admin#{n}"),
            Self::Token { hash_prefix } => write!(f, "token {hash_prefix}"),
            Self::Ci { description } => f.write_str(description),
        }
    }
}

/// An authorization decision. A reason never contains a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed, for this caller.
    Allow {
        /// Who.
        who: Identity,
    },
    /// Refused.
    Deny {
        /// Why, for the caller and the log.
        reason: String,
    },
}

impl Decision {
    /// True when allowed.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Self::Allow { .. })
    }
}
