//! Watch mode's decisions, without I/O: which repository and tag a service follows, what
//! one tick does with what the registry answered, and how politely to ask it (Docker
//! Hub's `ratelimit-remaining`).

use std::collections::BTreeSet;
use std::time::Duration;

use crate::{AutoUpdate, ImageError, ImageRef};

/// The repository and tag a service follows: `update.auto.tag` when set, else the tag of
/// the image it runs (`registry/team/app:1.4@sha256:…` follows `registry/team/app:1.4`).
///
/// ```
/// use dockhand_policy::followed;
///
/// let image = "registry.example.com/team/app:1.4@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
/// assert_eq!(followed(image, None).unwrap().to_string(), "registry.example.com/team/app:1.4");
/// assert_eq!(followed(image, Some("1.5")).unwrap().to_string(), "registry.example.com/team/app:1.5");
/// ```
///
/// # Errors
/// When the image is not a reference, or runs by digest alone with no `update.auto.tag`
/// (there is no tag to follow).
pub fn followed(image: &str, auto_tag: Option<&str>) -> Result<ImageRef, ImageError> {
    let running = ImageRef::parse(image)?;
    let tag = match auto_tag.or(running.tag()) {
        Some(tag) => tag.to_owned(),
        None => {
            return Err(ImageError::new(
                image,
                "it runs by digest alone: set update.auto.tag to the tag to follow",
            ));
        }
    };
    ImageRef::parse(&format!("{}:{tag}", running.repository()))
}

/// The distinct `repository:tag` references of `followed`: one registry request each per
/// tick, however many services follow it.
pub fn distinct_references<'a>(followed: impl IntoIterator<Item = &'a ImageRef>) -> BTreeSet<String> {
    followed.into_iter().map(ToString::to_string).collect()
}

/// What the registry said of a followed reference this tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// The digest behind the tag.
    Digest(String),
    /// Not asked: the registry's rate limit is low ([`RateLimit::is_low`]).
    RateLimited {
        /// The requests it said were left.
        remaining: u64,
    },
    /// Not asked: the registry failed lately and is backed off until a later tick.
    BackedOff,
    /// The request failed.
    Failed(String),
}

/// What one tick does for one watched service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchStep {
    /// The service already runs the tag's digest.
    Current,
    /// Run update-service to `image` (the followed reference pinned to the new digest).
    Update {
        /// `repository:tag@digest`.
        image: String,
    },
    /// Record and notify that `image` is available; leave the service (`update.auto=notify`).
    Notify {
        /// `repository:tag@digest`.
        image: String,
    },
    /// Nothing this tick, for a recorded reason.
    Skip {
        /// Why, in words for the job record.
        reason: String,
    },
}

/// One tick's decision for a service in `mode` that runs `pinned` (its digest, if it runs
/// one), follows `followed`, and whose earlier updates to the digests in `failed` failed or
/// were rolled back: those are not tried again until the tag moves on (or an operator
/// forces one).
pub fn decide(
    mode: AutoUpdate,
    followed: &ImageRef,
    pinned: Option<&str>,
    resolved: &Resolved,
    failed: &BTreeSet<String>,
) -> WatchStep {
    let skip = |reason: String| WatchStep::Skip { reason };
    let digest = match resolved {
        Resolved::Digest(digest) => digest,
        Resolved::RateLimited { remaining } => {
            return skip(format!(
                "{}: the registry's rate limit is low ({remaining} requests left): not asked this tick",
                followed.domain()
            ));
        }
        Resolved::BackedOff => {
            return skip(format!("{}: backed off after failing: not asked this tick", followed.domain()));
        }
        Resolved::Failed(error) => return skip(format!("{followed}: the registry failed: {error}")),
    };
    if pinned == Some(digest.as_str()) {
        return WatchStep::Current;
    }
    let image = format!("{followed}@{digest}");
    if failed.contains(digest) {
        return skip(format!(
            "{image}: an update to this digest failed or was rolled back; it waits for the tag to move \
             or for `dockhand update --force`"
        ));
    }
    match mode {
        AutoUpdate::Update => WatchStep::Update { image },
        AutoUpdate::Notify => WatchStep::Notify { image },
        AutoUpdate::Off => skip("update.auto is false".to_owned()),
    }
}

/// A registry's rate limit, from Docker Hub's `ratelimit-remaining` (and `ratelimit-limit`)
/// header: `76;w=21600` is 76 requests left in a window of 21 600 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests left in the window.
    pub remaining: u64,
    /// The window, when the header says it.
    pub window: Option<Duration>,
}

/// Below this many requests left, the watch stops asking a registry until its window ends:
/// the rest are for the pulls that updates make.
pub const RATE_LIMIT_RESERVE: u64 = 10;

impl RateLimit {
    /// Parses a `ratelimit-remaining` value; `None` when it is not one.
    ///
    /// ```
    /// use dockhand_policy::RateLimit;
    /// use std::time::Duration;
    ///
    /// let limit = RateLimit::parse("76;w=21600").unwrap();
    /// assert_eq!((limit.remaining, limit.window), (76, Some(Duration::from_secs(21_600))));
    /// assert!(!limit.is_low());
    /// assert!(RateLimit::parse("3").unwrap().is_low());
    /// ```
    pub fn parse(header: &str) -> Option<Self> {
        let mut parts = header.split(';').map(str::trim);
        let remaining = parts.next()?.parse().ok()?;
        let window =
            parts.find_map(|p| p.strip_prefix("w=")).and_then(|w| w.parse().ok()).map(Duration::from_secs);
        Some(Self { remaining, window })
    }

    /// True when fewer than [`RATE_LIMIT_RESERVE`] requests are left.
    pub fn is_low(&self) -> bool {
        self.remaining < RATE_LIMIT_RESERVE
    }
}

/// How long the watch leaves a registry alone after `failures` failed requests in a row:
/// one tick's worth, doubling, at most an hour.
pub fn backoff(failures: u32, tick: Duration) -> Duration {
    let doubled = tick.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    doubled.min(Duration::from_secs(3600))
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn app() -> ImageRef {
        followed(&format!("registry.example.com/team/app:1.4@{D1}"), None).unwrap()
    }

    #[test]
    fn a_service_follows_its_own_tag_or_the_labelled_one_never_a_bare_digest() {
        assert_eq!(followed("nginx", None).unwrap().to_string(), "docker.io/library/nginx:latest");
        assert_eq!(followed("nginx:1.27", Some("1.28")).unwrap().to_string(), "docker.io/library/nginx:1.28");
        let bare = format!("registry.example.com/team/app@{D1}");
        let err = followed(&bare, None).unwrap_err().to_string();
        assert!(err.contains("update.auto.tag"), "{err}");
        assert_eq!(
            followed(&bare, Some("stable")).unwrap().to_string(),
            "registry.example.com/team/app:stable"
        );
        assert!(followed("Not A Reference", None).is_err());
    }

    #[test]
    fn twenty_services_on_one_tag_are_one_request() {
        let refs: Vec<ImageRef> = (0..20)
            .map(|i| {
                followed(
                    &format!("registry.example.com/team/app:1.4@{}", if i % 2 == 0 { D1 } else { D2 }),
                    None,
                )
                .unwrap()
            })
            .chain([followed("registry.example.com/team/web:2", None).unwrap()])
            .collect();
        let distinct = distinct_references(&refs);
        assert_eq!(
            distinct.into_iter().collect::<Vec<_>>(),
            ["registry.example.com/team/app:1.4", "registry.example.com/team/web:2"]
        );
    }

    #[test]
    fn a_tick_decides_by_the_digest_the_mode_and_what_failed_before() {
        let none = BTreeSet::new();
        let moved = Resolved::Digest(D2.to_owned());
        let pinned = format!("registry.example.com/team/app:1.4@{D2}");
        let table: [(AutoUpdate, Option<&str>, &Resolved, WatchStep); 5] = [
            (AutoUpdate::Update, Some(D1), &moved, WatchStep::Update { image: pinned.clone() }),
            (AutoUpdate::Notify, Some(D1), &moved, WatchStep::Notify { image: pinned.clone() }),
            (AutoUpdate::Update, Some(D2), &moved, WatchStep::Current),
            // A service that runs a tag without a digest yet is pinned by its first update.
            (AutoUpdate::Update, None, &moved, WatchStep::Update { image: pinned.clone() }),
            (AutoUpdate::Notify, Some(D2), &moved, WatchStep::Current),
        ];
        for (mode, running, resolved, expected) in table {
            assert_eq!(decide(mode, &app(), running, resolved, &none), expected, "{mode:?} {running:?}");
        }
        let WatchStep::Skip { reason } = decide(AutoUpdate::Off, &app(), Some(D1), &moved, &none) else {
            panic!("off updates nothing")
        };
        assert!(reason.contains("update.auto is false"), "{reason}");
    }

    #[test]
    fn a_failed_digest_is_skipped_with_its_reason_until_the_tag_moves_on() {
        let failed = BTreeSet::from([D2.to_owned()]);
        let WatchStep::Skip { reason } =
            decide(AutoUpdate::Update, &app(), Some(D1), &Resolved::Digest(D2.to_owned()), &failed)
        else {
            panic!("a failed digest is not tried again")
        };
        assert!(
            reason.contains(D2) && reason.contains("rolled back") && reason.contains("--force"),
            "{reason}"
        );
        // The tag moved on to a third digest: that one is tried.
        let d3 = "sha256:3333333333333333333333333333333333333333333333333333333333333333";
        assert!(matches!(
            decide(AutoUpdate::Update, &app(), Some(D1), &Resolved::Digest(d3.to_owned()), &failed),
            WatchStep::Update { .. }
        ));
    }

    #[test]
    fn a_registry_that_is_limited_failing_or_backed_off_is_a_recorded_skip() {
        let none = BTreeSet::new();
        for (resolved, words) in [
            (Resolved::RateLimited { remaining: 4 }, "4 requests left"),
            (Resolved::BackedOff, "backed off"),
            (Resolved::Failed("401 Unauthorized".to_owned()), "401 Unauthorized"),
        ] {
            let step = decide(AutoUpdate::Update, &app(), Some(D1), &resolved, &none);
            let WatchStep::Skip { reason } = step else { panic!("{resolved:?} updates nothing") };
            assert!(reason.contains(words) && reason.contains("registry.example.com"), "{reason}");
        }
    }

    #[test]
    fn rate_limit_headers_parse_and_the_reserve_is_kept() {
        assert_eq!(RateLimit::parse("100;w=21600").map(|l| l.remaining), Some(100));
        assert_eq!(
            RateLimit::parse(" 9 ").map(|l| (l.remaining, l.window, l.is_low())),
            Some((9, None, true))
        );
        assert_eq!(RateLimit::parse("10").map(|l| l.is_low()), Some(false));
        for bad in ["", "many", "-1;w=60", ";w=60"] {
            assert_eq!(RateLimit::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn backoff_doubles_per_failure_and_stops_at_an_hour() {
        let tick = Duration::from_secs(60);
        let waits: Vec<u64> = (1..=8).map(|n| backoff(n, tick).as_secs()).collect();
        assert_eq!(waits, [60, 120, 240, 480, 960, 1920, 3600, 3600]);
        assert_eq!(backoff(0, tick), tick);
        assert_eq!(backoff(u32::MAX, tick), Duration::from_secs(3600));
    }
}
