//! Where an engine listens, parsed from the URL forms the docker CLI accepts.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::Error;

/// The address of a Docker engine.
///
/// Parsed from a URL; [`Display`](fmt::Display) gives a URL back, so errors and logs can
/// name the endpoint as the user wrote it.
///
/// ```
/// use dockhand_engine::Endpoint;
///
/// let ep: Endpoint = "unix:///run/docker.sock".parse().unwrap();
/// assert_eq!(ep.to_string(), "unix:///run/docker.sock");
/// assert_eq!(Endpoint::default().to_string(), "unix:///var/run/docker.sock");
///
/// // The bare HOST:PORT form means plain TCP, as DOCKER_HOST=5.23.52.111:9002 does.
/// let ep: Endpoint = "5.23.52.111:9002".parse().unwrap();
/// assert_eq!(ep.to_string(), "tcp://5.23.52.111:9002");
///
/// let ep: Endpoint = "ssh://deploy@build-1:2222/run/user/1000/docker.sock".parse().unwrap();
/// assert_eq!(ep.to_string(), "ssh://deploy@build-1:2222/run/user/1000/docker.sock");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Endpoint {
    /// A unix domain socket at an absolute path.
    Unix(PathBuf),
    /// An engine over TCP: `tcp://`, `http://`, `https://` or bare `HOST:PORT`.
    Tcp(TcpEndpoint),
    /// An engine reached over ssh: `ssh://[user@]host[:port][/remote/socket]`.
    Ssh(SshEndpoint),
}

/// How a TCP endpoint was written, which decides TLS and the default port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TcpScheme {
    /// `tcp://` or bare `HOST:PORT`: TLS when TLS settings are given (port 2376), else
    /// plain (port 2375).
    Tcp,
    /// `http://`: always plain.
    Http,
    /// `https://`: always TLS.
    Https,
}

/// A TCP endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TcpEndpoint {
    scheme: TcpScheme,
    host: String,
    port: Option<u16>,
}

/// The port of a plain-TCP engine when the URL names none.
pub const DEFAULT_TCP_PORT: u16 = 2375;
/// The port of a TLS engine when the URL names none.
pub const DEFAULT_TLS_PORT: u16 = 2376;

impl TcpEndpoint {
    /// How the endpoint was written.
    pub fn scheme(&self) -> TcpScheme {
        self.scheme
    }

    /// The host name or IP address (without brackets for IPv6).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port as written, if any.
    pub fn explicit_port(&self) -> Option<u16> {
        self.port
    }

    /// The port to dial: the written one, else 2376 with TLS and 2375 without.
    pub fn port(&self, tls: bool) -> u16 {
        self.port.unwrap_or(if tls { DEFAULT_TLS_PORT } else { DEFAULT_TCP_PORT })
    }

    /// Whether this endpoint uses TLS, given whether TLS settings were supplied.
    pub fn uses_tls(&self, tls_configured: bool) -> bool {
        match self.scheme {
            TcpScheme::Tcp => tls_configured,
            TcpScheme::Http => false,
            TcpScheme::Https => true,
        }
    }
}

/// An ssh endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SshEndpoint {
    user: Option<String>,
    host: String,
    port: Option<u16>,
    socket: Option<String>,
}

impl SshEndpoint {
    /// The remote user, if given (else ssh's own default).
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// The remote host.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The ssh port, if given (else ssh's own default).
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The remote engine socket, if the URL has a path.
    pub fn socket(&self) -> Option<&str> {
        self.socket.as_deref()
    }

    /// `[user@]host`, as ssh takes it.
    pub fn destination(&self) -> String {
        match &self.user {
            Some(user) => format!("{user}@{}", self.host),
            None => self.host.clone(),
        }
    }
}

/// The forms [`Endpoint`] accepts, for error messages.
const ACCEPTED: &str = "unix:///path, tcp://HOST[:PORT], http://HOST:PORT, https://HOST:PORT, \
                        ssh://[USER@]HOST[:PORT][/SOCKET], HOST:PORT";

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
            _ => None,
        }
    }
}

impl Default for Endpoint {
    /// `unix:///var/run/docker.sock`, as the docker CLI uses when no host is given.
    fn default() -> Self {
        Self::Unix(PathBuf::from(DEFAULT_SOCKET))
    }
}

/// Writes a host for a URL, bracketing IPv6 addresses.
fn write_host(f: &mut fmt::Formatter<'_>, host: &str) -> fmt::Result {
    if host.contains(':') { write!(f, "[{host}]") } else { f.write_str(host) }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unix(path) => write!(f, "unix://{}", path.display()),
            Self::Tcp(tcp) => {
                let scheme = match tcp.scheme {
                    TcpScheme::Tcp => "tcp",
                    TcpScheme::Http => "http",
                    TcpScheme::Https => "https",
                };
                write!(f, "{scheme}://")?;
                write_host(f, &tcp.host)?;
                match tcp.port {
                    Some(port) => write!(f, ":{port}"),
                    None => Ok(()),
                }
            }
            Self::Ssh(ssh) => {
                f.write_str("ssh://")?;
                if let Some(user) = &ssh.user {
                    write!(f, "{user}@")?;
                }
                write_host(f, &ssh.host)?;
                if let Some(port) = ssh.port {
                    write!(f, ":{port}")?;
                }
                f.write_str(ssh.socket.as_deref().unwrap_or(""))
            }
        }
    }
}

impl FromStr for Endpoint {
    type Err = Error;

    fn from_str(input: &str) -> Result<Self, Error> {
        let invalid = |reason: &str| Error::InvalidEndpoint {
            input: dockhand_policy::redact_url(input),
            reason: format!("{reason}; accepted forms: {ACCEPTED}"),
        };
        if input.trim() != input || input.is_empty() {
            return Err(invalid("empty or surrounded by spaces"));
        }
        let Some((scheme, rest)) = input.split_once("://") else {
            if input.starts_with('/') {
                return Err(invalid(&format!("a socket path needs the unix:// scheme, as unix://{input}")));
            }
            // The bare HOST:PORT form of DOCKER_HOST.
            let (host, port) = host_port(input).map_err(|why| invalid(&why))?;
            let port = port.ok_or_else(|| invalid("a HOST:PORT address needs its port"))?;
            return Ok(Self::Tcp(TcpEndpoint { scheme: TcpScheme::Tcp, host, port: Some(port) }));
        };
        if rest.contains(['?', '#']) {
            return Err(invalid("an engine URL takes no query or fragment"));
        }
        match scheme {
            "unix" => {
                if rest.is_empty() {
                    return Err(invalid("the socket path is empty"));
                }
                if !rest.starts_with('/') {
                    return Err(invalid("the socket path must be absolute"));
                }
                Ok(Self::Unix(PathBuf::from(rest)))
            }
            "tcp" | "http" | "https" => {
                let scheme = match scheme {
                    "tcp" => TcpScheme::Tcp,
                    "http" => TcpScheme::Http,
                    _ => TcpScheme::Https,
                };
                let authority = rest.strip_suffix('/').unwrap_or(rest);
                if authority.contains('/') {
                    return Err(invalid("a TCP engine URL takes no path"));
                }
                if authority.contains('@') {
                    return Err(invalid("a TCP engine URL takes no user or password"));
                }
                let (host, port) = host_port(authority).map_err(|why| invalid(&why))?;
                // `tcp://:2375` means the local host, as in the docker CLI.
                let host = if host.is_empty() { "localhost".to_owned() } else { host };
                Ok(Self::Tcp(TcpEndpoint { scheme, host, port }))
            }
            "ssh" => {
                let (authority, socket) = match rest.find('/') {
                    Some(i) => (&rest[..i], Some(&rest[i..])),
                    None => (rest, None),
                };
                let socket = socket.filter(|s| *s != "/").map(str::to_owned);
                let (user, hostport) = match authority.rsplit_once('@') {
                    Some((user, hostport)) => {
                        if user.contains(':') {
                            return Err(invalid(
                                "an ssh URL must not carry a password: use an ssh key or agent",
                            ));
                        }
                        if user.is_empty() {
                            return Err(invalid("the ssh user is empty"));
                        }
                        (Some(user.to_owned()), hostport)
                    }
                    None => (None, authority),
                };
                let (host, port) = host_port(hostport).map_err(|why| invalid(&why))?;
                if host.is_empty() {
                    return Err(invalid("the ssh host is empty"));
                }
                if host.starts_with('-') || user.as_deref().is_some_and(|u| u.starts_with('-')) {
                    return Err(invalid("an ssh host or user must not start with '-'"));
                }
                Ok(Self::Ssh(SshEndpoint { user, host, port, socket }))
            }
            other => Err(invalid(&format!("unsupported scheme {other:?}"))),
        }
    }
}

/// Splits `host[:port]` or `[v6][:port]`.
fn host_port(text: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("an IPv6 address lacks its closing ']'")?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':').ok_or("junk after the IPv6 address")?)),
        }
    } else {
        match text.rsplit_once(':') {
            Some((host, _)) if host.contains(':') => {
                return Err("an IPv6 address must be in brackets, as [::1]:2375".to_owned());
            }
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if host.contains(|c: char| c.is_whitespace() || c == '/' || c == '@') {
        return Err(format!("invalid host {host:?}"));
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(0) | Err(_) => return Err(format!("invalid port {p:?}: expected 1 to 65535")),
            Ok(port) => Some(port),
        },
    };
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(scheme: TcpScheme, host: &str, port: Option<u16>) -> Endpoint {
        Endpoint::Tcp(TcpEndpoint { scheme, host: host.to_owned(), port })
    }

    fn ssh(user: Option<&str>, host: &str, port: Option<u16>, socket: Option<&str>) -> Endpoint {
        Endpoint::Ssh(SshEndpoint {
            user: user.map(str::to_owned),
            host: host.to_owned(),
            port,
            socket: socket.map(str::to_owned),
        })
    }

    #[test]
    fn parses_every_form() {
        use TcpScheme::*;
        let cases = [
            ("unix:///tmp/x/docker.sock", Endpoint::unix("/tmp/x/docker.sock"), "unix:///tmp/x/docker.sock"),
            ("tcp://10.0.0.5:2375", tcp(Tcp, "10.0.0.5", Some(2375)), "tcp://10.0.0.5:2375"),
            ("tcp://docker-host", tcp(Tcp, "docker-host", None), "tcp://docker-host"),
            ("tcp://docker-host:2376/", tcp(Tcp, "docker-host", Some(2376)), "tcp://docker-host:2376"),
            ("tcp://:2375", tcp(Tcp, "localhost", Some(2375)), "tcp://localhost:2375"),
            ("tcp://[::1]:2375", tcp(Tcp, "::1", Some(2375)), "tcp://[::1]:2375"),
            (
                "http://docker-host-ip-address:2375",
                tcp(Http, "docker-host-ip-address", Some(2375)),
                "http://docker-host-ip-address:2375",
            ),
            ("https://10.1.2.3:2376", tcp(Https, "10.1.2.3", Some(2376)), "https://10.1.2.3:2376"),
            ("5.23.52.111:9002", tcp(Tcp, "5.23.52.111", Some(9002)), "tcp://5.23.52.111:9002"),
            ("[fe80::1]:2375", tcp(Tcp, "fe80::1", Some(2375)), "tcp://[fe80::1]:2375"),
            (
                "ssh://docker-user@docker-host",
                ssh(Some("docker-user"), "docker-host", None, None),
                "ssh://docker-user@docker-host",
            ),
            ("ssh://h", ssh(None, "h", None, None), "ssh://h"),
            ("ssh://u@h:2222", ssh(Some("u"), "h", Some(2222), None), "ssh://u@h:2222"),
            ("ssh://u@h/", ssh(Some("u"), "h", None, None), "ssh://u@h"),
            (
                "ssh://u@[::1]:22/run/d.sock",
                ssh(Some("u"), "::1", Some(22), Some("/run/d.sock")),
                "ssh://u@[::1]:22/run/d.sock",
            ),
        ];
        for (input, expected, shown) in cases {
            let parsed: Endpoint = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(parsed, expected, "{input}");
            assert_eq!(parsed.to_string(), shown, "{input}");
            assert_eq!(shown.parse::<Endpoint>().unwrap(), expected, "{shown} must round-trip");
        }
    }

    #[test]
    fn tcp_ports_and_tls_follow_the_scheme() {
        let Endpoint::Tcp(t) = "tcp://h".parse().unwrap() else { unreachable!() };
        assert_eq!((t.port(false), t.port(true)), (2375, 2376));
        assert!(!t.uses_tls(false) && t.uses_tls(true));
        let Endpoint::Tcp(t) = "http://h:1".parse().unwrap() else { unreachable!() };
        assert!(!t.uses_tls(true));
        let Endpoint::Tcp(t) = "https://h".parse().unwrap() else { unreachable!() };
        assert!(t.uses_tls(false));
        assert_eq!(t.port(true), 2376);
    }

    #[test]
    fn rejects_with_input_and_forms() {
        for (input, why) in [
            ("", "empty"),
            (" unix:///x", "spaces"),
            ("/var/run/docker.sock", "unix:///var/run/docker.sock"),
            ("docker-host", "needs its port"),
            ("unix://", "empty"),
            ("unix://relative.sock", "absolute"),
            ("unix:///a.sock?x=1", "query"),
            ("tcp://h:2375/v1.41", "no path"),
            ("tcp://h:0", "invalid port \"0\""),
            ("tcp://h:99999", "invalid port"),
            ("tcp://h:x", "invalid port"),
            ("tcp://u@h:1", "no user"),
            ("tcp://::1:2375", "brackets"),
            ("tcp://[::1", "closing"),
            ("https://h:1#frag", "fragment"),
            ("ssh://u:secret@h", "password"),
            ("ssh://u@h?x=1", "query"),
            ("ssh://@h", "user is empty"),
            ("ssh://u@", "host is empty"),
            ("ssh://-oProxyCommand=x", "'-'"),
            ("gopher://h:1", "unsupported scheme \"gopher\""),
        ] {
            let msg = input.parse::<Endpoint>().unwrap_err().to_string();
            let shown = dockhand_policy::redact_url(input);
            assert!(msg.contains(&format!("{shown:?}")), "{input}: {msg}");
            assert!(msg.contains(why), "{input}: {msg}");
            assert!(msg.contains(ACCEPTED), "{input}: {msg}");
        }
    }

    #[test]
    fn a_refused_password_never_reaches_the_error() {
        for input in ["ssh://u:hunter2@h/run/d.sock", "tcp://u:hunter2@h:1", "https://u:hunter2@h"] {
            let msg = input.parse::<Endpoint>().unwrap_err().to_string();
            assert!(!msg.contains("hunter2"), "{msg}");
            assert!(msg.contains("u:****@h"), "{msg}");
        }
    }
}
