//! The seed's implicit target, `swarm-utils`: its `SWARM_UTILS_S3_*` variables, overridden
//! per service by `backup.volume-list-upload.s3.*` labels, with the rule that keeps the
//! server's keys on the server's own endpoint and bucket (R3-05).

use std::collections::BTreeMap;

use dockhand_host::ConfigError;

use crate::archive::DEFAULT_ZSTD_LEVEL;
use crate::secret::Secret;
use crate::storage::kinds::{S3Target, TargetKind, TargetSettings, check_endpoint};

/// The implicit target of the seed's `SWARM_UTILS_S3_*` variables and `s3.*` labels.
pub const SEED_TARGET: &str = "swarm-utils";

/// `SWARM_UTILS_S3_RETENTION_DAYS` when it is not set, as seed 002's table says.
pub(crate) const SEED_RETENTION_DAYS: u32 = 5;

/// The seed's implicit target: `SWARM_UTILS_S3_*` variables, overridden by a service's
/// `backup.volume-list-upload.s3.*` labels.
pub(crate) fn seed_target(
    env: &BTreeMap<String, String>,
    labels: &dockhand_policy::S3Labels,
) -> Result<TargetSettings, ConfigError> {
    let var = |name: &str| env.get(&format!("SWARM_UTILS_S3_{name}")).filter(|v| !v.is_empty()).cloned();
    let missing = |what: &str, label: &str| {
        ConfigError::environment(
            format!("SWARM_UTILS_S3_{what}"),
            format!("not set, and no backup.volume-list-upload.s3.{label} label names it"),
        )
    };
    let url = labels.url.clone().or_else(|| var("URL")).ok_or_else(|| missing("URL", "url"))?;
    let https = match labels.https {
        Some(https) => https,
        None => match var("HTTPS").as_deref() {
            None => true,
            Some(v) => v.eq_ignore_ascii_case("true") || v == "1",
        },
    };
    let endpoint = if url.starts_with("http://") || url.starts_with("https://") {
        url
    } else {
        format!("{}://{url}", if https { "https" } else { "http" })
    };
    check_endpoint(&endpoint).map_err(|detail| ConfigError::environment("SWARM_UTILS_S3_URL", detail))?;
    // R3-05: the server's keys go only to the endpoint and bucket its variables name. A
    // label that moves either must carry its own keys, or the operator's key would sign
    // requests to wherever a service's owner points it.
    let bucket =
        labels.bucket.clone().or_else(|| var("BUCKET")).ok_or_else(|| missing("BUCKET", "bucket"))?;
    let env_endpoint = var("URL").map(|u| {
        let u = if u.starts_with("http://") || u.starts_with("https://") {
            u
        } else {
            let https = var("HTTPS").as_deref().is_none_or(|v| v.eq_ignore_ascii_case("true") || v == "1");
            format!("{}://{u}", if https { "https" } else { "http" })
        };
        u.trim_end_matches('/').to_owned()
    });
    let moved_endpoint =
        labels.url.is_some() && env_endpoint.as_deref() != Some(endpoint.trim_end_matches('/'));
    let moved_bucket = labels.bucket.is_some() && var("BUCKET").as_deref() != labels.bucket.as_deref();
    let own_keys = labels.access_key.is_some() && labels.secret_key.is_some();
    if (moved_endpoint || moved_bucket) && !own_keys {
        let (label, place) = if moved_endpoint {
            ("url", format!("the endpoint {endpoint}"))
        } else {
            ("bucket", format!("the bucket {bucket}"))
        };
        return Err(ConfigError::new(
            "its labels",
            format!("backup.volume-list-upload.s3.{label}"),
            format!(
                "names {place}, which the server's SWARM_UTILS_S3_* settings do not: such a label must carry its \
                 own keys (backup.volume-list-upload.s3.access-key and .s3.secret-key); the server's keys go \
                 only to its own endpoint and bucket"
            ),
        ));
    }
    let retention_days = match labels.retention_days {
        Some(days) => Some(days),
        None => match var("RETENTION_DAYS") {
            // The seed's table gives 5 as the variable's default: a migrated cluster keeps
            // the retention it had.
            None => Some(SEED_RETENTION_DAYS),
            Some(v) => Some(v.replace('_', "").parse().map_err(|_| {
                ConfigError::environment(
                    "SWARM_UTILS_S3_RETENTION_DAYS",
                    format!("{v:?} is not a number of days"),
                )
            })?),
        },
    };
    Ok(TargetSettings {
        name: SEED_TARGET.to_owned(),
        origin: ConfigError::ENVIRONMENT.to_owned(),
        kind: TargetKind::S3(S3Target {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            region: "us-east-1".into(),
            bucket,
            prefix: String::new(),
            path_style: true,
            access_key_id: Secret::new(
                labels
                    .access_key
                    .clone()
                    .or_else(|| var("ACCESS_KEY"))
                    .ok_or_else(|| missing("ACCESS_KEY", "access-key"))?,
            ),
            secret_access_key: Secret::new(
                labels
                    .secret_key
                    .clone()
                    .or_else(|| var("SECRET_KEY"))
                    .ok_or_else(|| missing("SECRET_KEY", "secret-key"))?,
            ),
        }),
        zstd_level: DEFAULT_ZSTD_LEVEL,
        retention_days,
        keep_last: 1,
        recipients: Vec::new(),
        identity_file: None,
    })
}
