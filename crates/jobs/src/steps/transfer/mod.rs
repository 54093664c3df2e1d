//! Moving a volume's bytes between a node and a storage target.
//!
//! On the node dockhand is connected to, no helper service is needed: a plain container of
//! the helper image mounts the volume (and nothing else: no network, no engine socket) and
//! holds still; dockhand execs `dockhand agent pack` in it and reads the archive from the
//! exec's stdout, or execs `dockhand agent unpack` and writes the archive to its stdin. The
//! bytes go through dockhand's own process, so a storage credential never leaves it.

pub(crate) mod container;
pub(crate) mod download;
#[cfg(test)]
pub(crate) mod fake;
pub(crate) mod fanout;
pub(crate) mod io;
pub(crate) mod remote;
pub(crate) mod upload;

#[cfg(test)]
mod tests;
