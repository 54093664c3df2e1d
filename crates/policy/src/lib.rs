//! `dockhand-policy` turns labels and caller credentials into decisions: typed per-action
//! policies, token authorization, image rules, timeout budgets and redaction.
//!
//! Architecture invariant: this crate does no I/O. It takes label maps, image strings and
//! claims, and returns values; no tokio, no filesystem, no network, no environment.
//!
//! Built so far: seed 002's defaults ([`Defaults`]), timeout budgets ([`budget`]), image
//! references and the update image rule ([`check_image`]), token authorization
//! ([`Authorizer`], [`hash_token`]) and redaction ([`Redactor`]). The label schema and CI
//! identity tokens follow.

mod auth;
pub mod budget;
mod defaults;
mod image;
mod redact;

pub use crate::auth::{Action, Authorizer, Decision, Identity, hash_token};
pub use crate::budget::Budget;
pub use crate::defaults::Defaults;
pub use crate::image::{ImageDenied, ImageError, ImageRef, check_image};
pub use crate::redact::Redactor;
