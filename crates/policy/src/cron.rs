//! Cron expressions as the seed writes them (`0 0 3 * * *`: seconds first), or the classic
//! five fields, and when they fire in a time zone. Pure: the caller gives the times.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// A schedule that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{text:?} is not a cron expression ({reason}); write `off` or six fields with seconds first, such as `0 0 3 * * *`"
)]
pub struct CronError {
    /// What was given.
    pub text: String,
    /// What the parser said.
    pub reason: String,
}

/// A parsed cron expression with its text.
#[derive(Debug, Clone)]
pub struct CronExpr {
    text: String,
    cron: std::sync::Arc<croner::Cron>,
}

impl PartialEq for CronExpr {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for CronExpr {}

impl CronExpr {
    /// Parses six fields (seconds first, as in the seed), five (minute first) or seven
    /// (with a year).
    pub fn parse(text: &str) -> Result<Self, CronError> {
        let text = text.trim();
        let parser = croner::parser::CronParser::builder().seconds(croner::parser::Seconds::Optional).build();
        let cron =
            parser.parse(text).map_err(|e| CronError { text: text.to_owned(), reason: e.to_string() })?;
        Ok(Self { text: text.to_owned(), cron: std::sync::Arc::new(cron) })
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first time it fires strictly after `after`, read in `zone`.
    pub fn next_after(&self, after: DateTime<Utc>, zone: Tz) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&zone);
        self.cron.find_next_occurrence(&local, false).ok().map(|t| t.with_timezone(&Utc))
    }

    /// The times it fires in `(after, until]`, read in `zone`: the last of them and how
    /// many there are (counting stops at `limit`).
    pub fn fired_between(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        zone: Tz,
        limit: usize,
    ) -> Option<(DateTime<Utc>, usize)> {
        let mut last = None;
        let mut count = 0;
        let mut at = after;
        while count < limit {
            match self.next_after(at, zone) {
                Some(t) if t <= until => {
                    last = Some(t);
                    count += 1;
                    at = t;
                }
                _ => break,
            }
        }
        // Past the limit, the last time is found directly.
        if count == limit {
            let local = until.with_timezone(&zone);
            let latest = self.cron.find_previous_occurrence(&local, true).ok().map(|t| t.with_timezone(&Utc));
            if let Some(t) = latest.filter(|t| *t > after) {
                last = Some(t);
            }
        }
        last.map(|t| (t, count))
    }

    /// The shortest gap between two of its times, over its first 128 times from 2026-01-01
    /// UTC (the fields are a cross product, so the tightest gap shows early); `None` when it
    /// never fires. Remembered per expression (about 0.1 ms to work out, 5 ms for one that
    /// never fires), since labels are read again at every scheduler wake.
    pub fn shortest_gap(&self) -> Option<std::time::Duration> {
        use std::collections::HashMap;
        use std::sync::Mutex;
        static KNOWN: Mutex<Option<HashMap<String, Option<std::time::Duration>>>> = Mutex::new(None);
        if let Some(known) =
            KNOWN.lock().ok().and_then(|k| k.as_ref().and_then(|m| m.get(&self.text).copied()))
        {
            return known;
        }
        let gap = self.work_out_shortest_gap();
        if let Ok(mut known) = KNOWN.lock() {
            let map = known.get_or_insert_with(HashMap::new);
            if map.len() >= 4096 {
                map.clear();
            }
            map.insert(self.text.clone(), gap);
        }
        gap
    }

    fn work_out_shortest_gap(&self) -> Option<std::time::Duration> {
        let mut at = DateTime::<Utc>::from_timestamp(1_767_225_600, 0)?;
        let mut prev = self.next_after(at, Tz::UTC)?;
        let mut gap: Option<chrono::TimeDelta> = None;
        for _ in 0..128 {
            at = prev;
            let Some(next) = self.next_after(at, Tz::UTC) else { break };
            let d = next - prev;
            gap = Some(gap.map_or(d, |g| g.min(d)));
            prev = next;
        }
        // One time only (a year field): as far apart as can be.
        Some(gap.and_then(|g| g.to_std().ok()).unwrap_or(std::time::Duration::MAX))
    }

    /// The last time it fired strictly before `before`, read in `zone`.
    pub fn previous_before(&self, before: DateTime<Utc>, zone: Tz) -> Option<DateTime<Utc>> {
        let local = before.with_timezone(&zone);
        self.cron.find_previous_occurrence(&local, false).ok().map(|t| t.with_timezone(&Utc))
    }
}

impl std::fmt::Display for CronExpr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// A schedule setting: `off`, or an expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Timing {
    /// Never by cron.
    Off,
    /// When the expression fires.
    Cron(CronExpr),
}

impl Timing {
    /// `off` (also `false`, as the seed's switches say it), or a cron expression.
    pub fn parse(text: &str) -> Result<Self, CronError> {
        match text.trim().to_ascii_lowercase().as_str() {
            "off" | "false" | "never" => Ok(Self::Off),
            _ => CronExpr::parse(text).map(Self::Cron),
        }
    }

    /// The expression, unless off.
    pub fn cron(&self) -> Option<&CronExpr> {
        match self {
            Self::Off => None,
            Self::Cron(c) => Some(c),
        }
    }
}

impl std::fmt::Display for Timing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Off => f.write_str("off"),
            Self::Cron(c) => c.fmt(f),
        }
    }
}

/// A name that is no IANA time zone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an IANA time zone, such as UTC or Europe/Berlin")]
pub struct ZoneError(pub String);

/// A time zone by its IANA name (`Europe/Berlin`, `UTC`).
pub fn parse_zone(name: &str) -> Result<Tz, ZoneError> {
    name.trim().parse::<Tz>().map_err(|_| ZoneError(name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    #[test]
    fn the_seeds_expression_fires_at_three_with_seconds_first() {
        let cron = CronExpr::parse("0 0 3 * * *").unwrap();
        let next = cron.next_after(utc(2026, 11, 28, 12, 0, 0), Tz::UTC).unwrap();
        assert_eq!(next, utc(2026, 11, 29, 3, 0, 0));
        let berlin = parse_zone("Europe/Berlin").unwrap();
        assert_eq!(cron.next_after(utc(2026, 11, 28, 12, 0, 0), berlin).unwrap(), utc(2026, 11, 29, 2, 0, 0));
        let five = CronExpr::parse("*/5 * * * * *").unwrap();
        assert_eq!(five.next_after(utc(2026, 1, 1, 0, 0, 3), Tz::UTC).unwrap(), utc(2026, 1, 1, 0, 0, 5));
        let minute = CronExpr::parse("30 2 * * *").unwrap();
        assert_eq!(minute.next_after(utc(2026, 1, 1, 0, 0, 0), Tz::UTC).unwrap(), utc(2026, 1, 1, 2, 30, 0));
    }

    #[test]
    fn bad_expressions_and_zones_say_what_was_wrong() {
        let e = CronExpr::parse("0 0 25 * * *").unwrap_err();
        assert!(e.to_string().contains("\"0 0 25 * * *\""), "{e}");
        assert!(CronExpr::parse("every day").is_err());
        assert_eq!(Timing::parse("off").unwrap(), Timing::Off);
        assert_eq!(Timing::parse(" FALSE ").unwrap(), Timing::Off);
        assert!(parse_zone("Mars/Olympus").unwrap_err().to_string().contains("Mars/Olympus"));
    }

    #[test]
    fn fired_between_counts_and_finds_the_last() {
        let five = CronExpr::parse("*/5 * * * * *").unwrap();
        let (last, n) =
            five.fired_between(utc(2026, 1, 1, 0, 0, 0), utc(2026, 1, 1, 0, 1, 2), Tz::UTC, 100).unwrap();
        assert_eq!((last, n), (utc(2026, 1, 1, 0, 1, 0), 12));
        let (last, n) =
            five.fired_between(utc(2026, 1, 1, 0, 0, 0), utc(2026, 1, 2, 0, 0, 0), Tz::UTC, 10).unwrap();
        assert_eq!((last, n), (utc(2026, 1, 2, 0, 0, 0), 10));
        assert!(
            five.fired_between(utc(2026, 1, 1, 0, 0, 0), utc(2026, 1, 1, 0, 0, 4), Tz::UTC, 10).is_none()
        );
        assert_eq!(five.previous_before(utc(2026, 1, 1, 0, 0, 5), Tz::UTC), Some(utc(2026, 1, 1, 0, 0, 0)));
        let daily = CronExpr::parse("0 0 3 * * *").unwrap();
        assert_eq!(daily.previous_before(utc(2026, 1, 2, 3, 0, 0), Tz::UTC), Some(utc(2026, 1, 1, 3, 0, 0)));
    }
}
