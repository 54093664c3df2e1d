//! Engine API versions: parsing, ordering and the range this crate supports.

use std::fmt;
use std::str::FromStr;

/// A Docker Engine API version such as `1.41`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiVersion {
    major: u16,
    minor: u16,
}

/// The oldest engine API this crate talks to (Docker 19.03).
pub const MIN_API_VERSION: ApiVersion = ApiVersion::new(1, 40);

/// The newest engine API this crate knows; newer engines are spoken to at this version.
pub const MAX_API_VERSION: ApiVersion = ApiVersion::new(1, 47);

impl ApiVersion {
    /// A version from its two numbers.
    pub const fn new(major: u16, minor: u16) -> Self {
        Self { major, minor }
    }

    /// The major number (always 1 for today's engines).
    pub const fn major(self) -> u16 {
        self.major
    }

    /// The minor number.
    pub const fn minor(self) -> u16 {
        self.minor
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The error for a string that is not `MAJOR.MINOR`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid API version {input:?}: expected MAJOR.MINOR, such as 1.41")]
pub struct ParseApiVersionError {
    input: String,
}

impl FromStr for ApiVersion {
    type Err = ParseApiVersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseApiVersionError { input: s.to_owned() };
        let (major, minor) = s.trim().split_once('.').ok_or_else(err)?;
        let number = |part: &str| {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err());
            }
            part.parse::<u16>().map_err(|_| err())
        };
        Ok(Self::new(number(major)?, number(minor)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders() {
        let v: ApiVersion = "1.41".parse().unwrap();
        assert_eq!(v, ApiVersion::new(1, 41));
        assert_eq!(v.to_string(), "1.41");
        assert!(ApiVersion::new(1, 9) < ApiVersion::new(1, 10));
        assert!(MIN_API_VERSION < MAX_API_VERSION);
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "1", "1.", ".4", "1.4.1", "v1.41", "1.-1", "1.+2", "99999.1"] {
            let err = bad.parse::<ApiVersion>().unwrap_err();
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }
}
