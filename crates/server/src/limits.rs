//! What one client address may hold at once (R3-12): a share of the connections and of the
//! event streams, so that a container on the network that opens and keeps many cannot
//! starve the CI jobs of everyone else.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Connections one address may hold at once.
pub const CONNECTIONS_PER_CLIENT: usize = 64;
/// Event streams (`/v1/jobs/{id}/events`) one address may follow at once.
pub const STREAMS_PER_CLIENT: usize = 16;
/// How long one event stream lasts at most; a client follows on with a new one.
pub const STREAM_MAX: std::time::Duration = std::time::Duration::from_secs(3600);

/// Counts what each address holds, up to `cap` each.
#[derive(Debug)]
pub(crate) struct PerClient {
    cap: usize,
    held: Mutex<HashMap<IpAddr, usize>>,
}

/// One thing an address holds; given back when dropped.
#[derive(Debug)]
pub(crate) struct Held {
    owner: Arc<PerClient>,
    client: IpAddr,
}

impl PerClient {
    /// Up to `cap` at once per address.
    pub(crate) fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self { cap, held: Mutex::new(HashMap::new()) })
    }

    /// One more for `client`, or `None` when it holds `cap` already.
    pub(crate) fn take(self: &Arc<Self>, client: IpAddr) -> Option<Held> {
        let mut held = self.held.lock().ok()?;
        let n = held.entry(client).or_insert(0);
        if *n >= self.cap {
            return None;
        }
        *n += 1;
        Some(Held { owner: Arc::clone(self), client })
    }

    /// How many `client` holds now.
    #[cfg(test)]
    fn held_by(&self, client: IpAddr) -> usize {
        self.held.lock().ok().and_then(|h| h.get(&client).copied()).unwrap_or(0)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Ok(mut held) = self.owner.held.lock()
            && let Some(n) = held.get_mut(&self.client)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_holds_its_share_and_gives_it_back() {
        let limits = PerClient::new(2);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let one = limits.take(a).unwrap();
        let two = limits.take(a).unwrap();
        assert!(limits.take(a).is_none(), "a third from the same address");
        assert!(limits.take(b).is_some(), "another address is not held back");
        drop(one);
        assert_eq!(limits.held_by(a), 1);
        assert!(limits.take(a).is_some());
        drop(two);
    }
}
