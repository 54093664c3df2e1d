//! `dockhand-policy` turns labels and caller credentials into decisions: typed per-action
//! policies, token authorization, image rules, timeout budgets and redaction.
//!
//! Architecture invariant: this crate does no I/O. It takes label maps, image strings and
//! claims, and returns values; no tokio, no filesystem, no network, no environment.
//!
//! Built so far: seed 002's defaults ([`Defaults`]), timeout budgets ([`budget`]), image
//! references and the update image rule ([`check_image`]), token authorization
//! ([`Authorizer`], [`hash_token`]), redaction ([`Redactor`]) and the label schema
//! ([`service_policy`], [`node_policy`]), and CI identity tokens ([`OidcVerifier`], whose
//! claims [`Authorizer::authorize`] decides on as [`Credential::Ci`]), and watch mode's
//! decisions ([`followed`], [`decide`], [`RateLimit`]).

mod auth;
pub mod budget;
mod cron;
mod decision;
mod defaults;
mod duration;
#[doc(hidden)]
pub mod fuzzing;
mod image;
mod labels;
mod oidc;
mod redact;
mod watch;

pub use crate::auth::{Authorizer, Credential, TokenLabel, hash_token};
pub use crate::budget::JobBudget;
pub use crate::cron::{CronError, CronExpr, Timing, ZoneError, parse_zone};
pub use crate::decision::{Decision, Identity, Permission};
pub use crate::defaults::{Defaults, DefaultsError};
pub use crate::duration::{DurationError, DurationProblem, format_go_duration, parse_go_duration};
pub use crate::image::{ImageDenied, ImageError, ImageRef, check_image};
pub use crate::labels::policy::{
    AutoUpdate, BackupPolicy, CleanPolicy, NodeCleanPolicy, NodeExec, PruneStep, S3Labels, ServicePolicy,
    UpdatePolicy,
};
pub use crate::labels::read::{GLOBAL_NOT_STOPPED, node_backup_policy, node_policy, service_policy};
pub use crate::labels::{Diagnostic, LabelPrefixes, MAX_TIMEOUT, Severity, TargetLabels, valid_volume_name};
pub use crate::oidc::{OidcError, OidcVerifier, describe};
pub use crate::redact::{Redactor, redact_url};
pub use crate::watch::{
    RATE_LIMIT_RESERVE, RateLimit, Resolved, WatchStep, backoff, decide, distinct_references, followed,
};
pub use chrono_tz::Tz;
