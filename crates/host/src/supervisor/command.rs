//! The managed engine's command line.

use crate::{HostEntry, ManagedSettings};

/// What to run: program, arguments and added environment, all after `${VAR}` expansion.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CommandSpec {
    /// The executable, as configured (a name on `PATH` or an absolute path).
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Added environment, as `(name, value)`.
    pub env: Vec<(String, String)>,
}

/// The command for a managed host: its configured args, plus `--host <the host's URL>`
/// unless the args already set one (seed 000 names the socket only in `host`, while its
/// unmanaged command line passes it as `--host`). `None` for a host that is not managed.
pub fn command_for(host: &HostEntry) -> Option<CommandSpec> {
    let managed: &ManagedSettings = host.managed.as_ref()?;
    let mut args = managed.args.clone();
    if let Some(url) = &host.host {
        if !sets_host(&args) {
            args.push("--host".to_owned());
            args.push(url.to_string());
        }
    }
    let env = managed
        .env
        .iter()
        .filter_map(|entry| entry.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect();
    Some(CommandSpec { program: managed.executable.clone(), args, env })
}

/// True when the args already give dockerd a listening address.
fn sets_host(args: &[String]) -> bool {
    args.iter().any(|a| {
        a == "--host" || a == "-H" || a.starts_with("--host=") || (a.starts_with("-H") && a.len() > 2)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Environment;
    use crate::HostsConfig;

    fn host(args: &str) -> HostEntry {
        let yaml = format!(
            "docker:\n  hosts:\n    m:\n      type: managed\n      host: unix:///run/m.sock\n      managed:\n        executable: dockerd-rootless.sh\n        env: [\"A=1\", \"B=x=y\"]\n        args: {args}\n"
        );
        HostsConfig::parse(&yaml, false, &Environment::default()).unwrap().get("m").unwrap().clone()
    }

    #[test]
    fn adds_the_host_unless_given() {
        let spec = command_for(&host("[\"--data-root=/d\"]")).unwrap();
        assert_eq!(spec.program, "dockerd-rootless.sh");
        assert_eq!(spec.args, ["--data-root=/d", "--host", "unix:///run/m.sock"]);
        assert_eq!(spec.env, [("A".to_owned(), "1".to_owned()), ("B".to_owned(), "x=y".to_owned())]);
        for given in [
            "[\"--host=unix:///x\"]",
            "[\"--host\", \"unix:///x\"]",
            "[\"-H\", \"unix:///x\"]",
            "[\"-Hunix:///x\"]",
        ] {
            let spec = command_for(&host(given)).unwrap();
            assert!(!spec.args.contains(&"unix:///run/m.sock".to_owned()), "{given}: {:?}", spec.args);
        }
    }
}
