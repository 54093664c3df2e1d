//! Where an engine listens, parsed from the URL forms the docker CLI accepts.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::Error;

/// The address of a Docker engine.
///
/// Parsed from a URL; [`Display`](fmt::Display) gives the URL back, so errors and
/// logs can name the endpoint exactly as the user wrote it.
///
/// ```
/// use dockhand_engine::Endpoint;
///
/// let ep: Endpoint = "unix:///run/docker.sock".parse().unwrap();
/// assert_eq!(ep.to_string(), "unix:///run/docker.sock");
/// assert_eq!(Endpoint::default().to_string(), "unix:///var/run/docker.sock");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Endpoint {
    /// A unix domain socket at an absolute path.
    Unix(PathBuf),
}

/// The forms [`Endpoint`] accepts, for error messages.
const ACCEPTED: &str = "unix:///absolute/path";

/// The socket a local engine listens on when nothing else is configured.
const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

impl Endpoint {
    /// A unix-socket endpoint.
    pub fn unix(path: impl Into<PathBuf>) -> Self {
        Self::Unix(path.into())
    }

    /// The socket path, for a unix endpoint.
    pub fn socket_path(&self) -> Option<&Path> {
        match self {
            Self::Unix(path) => Some(path),
        }
    }
}

impl Default for Endpoint {
    /// `unix:///var/run/docker.sock`, as the docker CLI uses when no host is given.
    fn default() -> Self {
        Self::Unix(PathBuf::from(DEFAULT_SOCKET))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unix(path) => write!(f, "unix://{}", path.display()),
        }
    }
}

impl FromStr for Endpoint {
    type Err = Error;

    fn from_str(input: &str) -> Result<Self, Error> {
        let invalid = |reason: &str| Error::InvalidEndpoint {
            input: input.to_owned(),
            reason: format!("{reason}; accepted forms: {ACCEPTED}"),
        };
        let Some((scheme, rest)) = input.split_once("://") else {
            return Err(invalid("missing scheme"));
        };
        match scheme {
            "unix" => {
                if rest.is_empty() {
                    return Err(invalid("the socket path is empty"));
                }
                if !rest.starts_with('/') {
                    return Err(invalid("the socket path must be absolute"));
                }
                if rest.contains(['?', '#']) {
                    return Err(invalid("a socket URL takes no query or fragment"));
                }
                Ok(Self::Unix(PathBuf::from(rest)))
            }
            other => Err(invalid(&format!("unsupported scheme {other:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_round_trips() {
        let ep: Endpoint = "unix:///tmp/x/docker.sock".parse().unwrap();
        assert_eq!(ep, Endpoint::unix("/tmp/x/docker.sock"));
        assert_eq!(ep.to_string(), "unix:///tmp/x/docker.sock");
        assert_eq!(ep.socket_path(), Some(Path::new("/tmp/x/docker.sock")));
    }

    #[test]
    fn rejects_with_input_and_forms() {
        for (input, why) in [
            ("", "missing scheme"),
            ("/var/run/docker.sock", "missing scheme"),
            ("unix://", "empty"),
            ("unix://relative.sock", "absolute"),
            ("unix:///a.sock?x=1", "query"),
            ("gopher://h:1", "unsupported scheme \"gopher\""),
        ] {
            let msg = input.parse::<Endpoint>().unwrap_err().to_string();
            assert!(msg.contains(&format!("{input:?}")), "{msg}");
            assert!(msg.contains(why), "{msg}");
            assert!(msg.contains(ACCEPTED), "{msg}");
        }
    }
}
