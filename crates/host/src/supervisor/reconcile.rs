//! What to do at start when an engine from an earlier run may still be there: seed 000's
//! known problem (after a SIGKILL of the application, the rootless engine keeps running and
//! the next start fails on rootlesskit's state-dir lock).

/// What a start finds, probed without blocking: rootlesskit's state-dir lock, the pids in
/// its `child_pid` file and the dockerd pidfile (kept only when those processes' command
/// lines match this host's configuration), and whether the socket answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Leftover {
    /// Another process holds rootlesskit's state-dir lock.
    pub lock_held: bool,
    /// Live processes of an earlier engine for this host (rootlesskit, dockerd).
    pub pids: Vec<u32>,
    /// Live processes that hold the lock or the pidfile but do not match this host's
    /// configuration.
    pub foreign_pids: Vec<u32>,
    /// The host's socket answers a ping.
    pub socket_answers: bool,
}

/// The configured policy for a leftover engine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnLeftover {
    /// Keep supervising a healthy engine that matches the configuration (the default).
    #[default]
    Adopt,
    /// Stop it and start a fresh one.
    Replace,
    /// Refuse to start, saying which processes to stop.
    Fail,
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReconcileAction {
    /// Nothing is left: start.
    Start,
    /// Supervise the running engine as if it had been started now.
    Adopt {
        /// Its processes.
        pids: Vec<u32>,
    },
    /// Stop these processes (staged: SIGTERM, grace, SIGKILL), then start.
    Replace {
        /// Its processes.
        pids: Vec<u32>,
    },
    /// Do not start.
    Refuse {
        /// Why, with the pids and how to stop them.
        message: String,
    },
}

/// Decides, for host `id`, what a start does with what it found.
pub fn reconcile(id: &str, found: &Leftover, policy: OnLeftover) -> ReconcileAction {
    let pid_list = |pids: &[u32]| pids.iter().map(u32::to_string).collect::<Vec<_>>().join(" ");
    if !found.foreign_pids.is_empty() {
        return ReconcileAction::Refuse {
            message: format!(
                "host {id:?}: the state directory or pidfile is held by processes that do not match this host's \
                 configuration (pids {}); stop them (kill -TERM {}) or give this host its own directories",
                pid_list(&found.foreign_pids),
                pid_list(&found.foreign_pids)
            ),
        };
    }
    if found.pids.is_empty() && !found.lock_held && !found.socket_answers {
        return ReconcileAction::Start;
    }
    if found.pids.is_empty() {
        // A lock or a socket with no process of ours behind it: a stale lock is free to take,
        // but a socket that answers belongs to someone else.
        return if found.socket_answers {
            ReconcileAction::Refuse {
                message: format!(
                    "host {id:?}: its socket answers, but no engine process of this host is running: \
                     another engine serves that socket; stop it or choose another host path"
                ),
            }
        } else {
            ReconcileAction::Start
        };
    }
    match policy {
        OnLeftover::Adopt if found.socket_answers => ReconcileAction::Adopt { pids: found.pids.clone() },
        // Not healthy: adopting it would supervise a broken engine.
        OnLeftover::Adopt | OnLeftover::Replace => ReconcileAction::Replace { pids: found.pids.clone() },
        OnLeftover::Fail => ReconcileAction::Refuse {
            message: format!(
                "host {id:?}: an engine from an earlier run is still running (pids {}); stop it with \
                 `kill -TERM {}` (rootlesskit's pid first), or set the leftover policy to adopt or replace",
                pid_list(&found.pids),
                found.pids.first().map(u32::to_string).unwrap_or_default()
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn left(lock: bool, pids: &[u32], foreign: &[u32], answers: bool) -> Leftover {
        Leftover {
            lock_held: lock,
            pids: pids.to_vec(),
            foreign_pids: foreign.to_vec(),
            socket_answers: answers,
        }
    }

    #[test]
    fn the_decision_table() {
        use OnLeftover::*;
        use ReconcileAction::*;
        let cases = [
            (left(false, &[], &[], false), Adopt, Start),
            (left(true, &[], &[], false), Fail, Start), // a stale lock: nobody holds it alive
            (
                left(true, &[10, 11], &[], true),
                OnLeftover::Adopt,
                ReconcileAction::Adopt { pids: vec![10, 11] },
            ),
            (
                left(true, &[10, 11], &[], false),
                OnLeftover::Adopt,
                ReconcileAction::Replace { pids: vec![10, 11] },
            ),
            (left(true, &[10], &[], true), OnLeftover::Replace, ReconcileAction::Replace { pids: vec![10] }),
        ];
        for (found, policy, expected) in cases {
            assert_eq!(reconcile("local", &found, policy), expected, "{found:?} {policy:?}");
        }
    }

    #[test]
    fn refusals_give_pids_and_the_fix() {
        let ReconcileAction::Refuse { message } =
            reconcile("local", &left(true, &[10, 11], &[], true), OnLeftover::Fail)
        else {
            panic!("expected a refusal")
        };
        assert!(message.contains("pids 10 11") && message.contains("kill -TERM 10"), "{message}");

        let ReconcileAction::Refuse { message } =
            reconcile("local", &left(true, &[], &[99], true), OnLeftover::Adopt)
        else {
            panic!("expected a refusal")
        };
        assert!(message.contains("pids 99") && message.contains("do not match"), "{message}");

        let ReconcileAction::Refuse { message } =
            reconcile("local", &left(false, &[], &[], true), OnLeftover::Replace)
        else {
            panic!("expected a refusal")
        };
        assert!(message.contains("another engine serves that socket"), "{message}");
    }
}
