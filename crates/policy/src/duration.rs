//! Durations written as Go writes them: `1s`, `500ms`, `1m30s`, `1.5h`, `2us`.

use std::time::Duration;

/// A duration that is not Go syntax.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {problem} (Go syntax, such as 1s, 500ms or 1m30s)")]
pub struct DurationError {
    /// The text as given.
    pub input: String,
    /// What is wrong with it.
    pub problem: DurationProblem,
}

/// What is wrong with a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurationProblem {
    /// Nothing was given.
    #[error("it is empty")]
    Empty,
    /// A minus sign.
    #[error("it is negative")]
    Negative,
    /// Such as `s` alone.
    #[error("a unit without a number")]
    UnitWithoutNumber,
    /// Such as `1..5s`.
    #[error("a malformed number")]
    MalformedNumber,
    /// Such as `15`.
    #[error("a number without a unit")]
    NumberWithoutUnit,
    /// Such as `5d`.
    #[error("unknown unit {0:?}")]
    UnknownUnit(String),
    /// More than `u64::MAX` nanoseconds.
    #[error("it is too large")]
    TooLarge,
}

/// Parses a Go duration string. Units: `ns`, `us` (or `µs`), `ms`, `s`, `m`, `h`; each
/// number may have a fraction; `0` alone is zero. Negative durations are refused.
pub fn parse_go_duration(text: &str) -> Result<Duration, DurationError> {
    let err = |why: DurationProblem| DurationError { input: text.to_owned(), problem: why };
    let s = text.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(err(DurationProblem::Empty));
    }
    if s.starts_with('-') {
        return Err(err(DurationProblem::Negative));
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if number_len == 0 {
            return Err(err(DurationProblem::UnitWithoutNumber));
        }
        let number: f64 = rest[..number_len].parse().map_err(|_| err(DurationProblem::MalformedNumber))?;
        rest = &rest[number_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let nanos_per = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(err(DurationProblem::NumberWithoutUnit)),
            other => return Err(err(DurationProblem::UnknownUnit(other.to_owned()))),
        };
        rest = &rest[unit_len..];
        total += number * nanos_per;
    }
    if !total.is_finite() || total > u64::MAX as f64 {
        return Err(err(DurationProblem::TooLarge));
    }
    Ok(Duration::from_nanos(total.round() as u64))
}

/// Formats a duration the way Go prints it: `1m30s`, `500ms`, `0s`.
pub fn format_go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    if nanos < 1_000_000_000 {
        return match nanos {
            n if n % 1_000_000 == 0 => format!("{}ms", n / 1_000_000),
            n if n % 1_000 == 0 => format!("{}us", n / 1_000),
            n => format!("{n}ns"),
        };
    }
    let (h, rem) = (nanos / 3_600_000_000_000, nanos % 3_600_000_000_000);
    let (m, rem) = (rem / 60_000_000_000, rem % 60_000_000_000);
    let secs = rem as f64 / 1e9;
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    let secs = format!("{secs:.9}");
    let secs = secs.trim_end_matches('0').trim_end_matches('.');
    out.push_str(&format!("{secs}s"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_syntax() {
        for (text, ms) in [
            ("1s", 1000),
            ("500ms", 500),
            ("1m30s", 90_000),
            ("1.5h", 5_400_000),
            ("2h45m", 9_900_000),
            ("0", 0),
            ("+3s", 3000),
            ("1000us", 1),
            ("1000000ns", 1),
        ] {
            assert_eq!(parse_go_duration(text).unwrap(), Duration::from_millis(ms), "{text}");
        }
    }

    #[test]
    fn refuses_with_the_text() {
        for (text, why) in [
            ("", "empty"),
            ("10", "without a unit"),
            ("1x", "unknown unit"),
            ("-1s", "negative"),
            ("s", "without a number"),
            ("1..2s", "malformed"),
        ] {
            let msg = parse_go_duration(text).unwrap_err().to_string();
            assert!(msg.contains(&format!("{text:?}")) && msg.contains(why), "{msg}");
        }
    }

    #[test]
    fn formats_like_go() {
        for (d, text) in [
            (Duration::from_secs(1), "1s"),
            (Duration::from_millis(500), "500ms"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::ZERO, "0s"),
        ] {
            assert_eq!(format_go_duration(d), text);
            assert_eq!(parse_go_duration(text).unwrap(), d);
        }
    }
}
