//! The managed-host supervisor's decisions, kept free of process effects so each has unit
//! tests: the command line, how daemon output maps to log levels, when to restart, and
//! what to do with an engine a killed dockhand left running. The process side (spawn with a
//! parent-death signal, staged stop, readiness and liveness pings) builds on these.

mod backoff;
mod command;
mod logs;
mod process;
mod reconcile;
mod run;

pub use backoff::{Backoff, RestartDecision};

pub use command::{CommandSpec, command_for};
pub use logs::{LastLines, classify};
pub use process::{HeldLock, LogSink, OsProcesses, ProcessEffects, Sig, socket_mode_warning};
pub use reconcile::{Leftover, OnLeftover, ReconcileAction, reconcile};
pub use run::{Supervisor, SupervisorOptions};
