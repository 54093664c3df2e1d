//! Unused volumes (seed idea 18): the local volumes no container uses, with their size
//! where the engine computed it. Read-only. Today through the engine dockhand is connected
//! to; other nodes come with the helper services.

use dockhand_engine::Client;
use serde::Serialize;

/// One unused volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct UnusedVolume {
    /// The node (hostname) it is on.
    pub node: String,
    /// Its name.
    pub name: String,
    /// Its driver.
    pub driver: String,
    /// Bytes, when the engine reports them.
    pub size: Option<u64>,
}

/// The local volumes on the engine `client` talks to that no container, running or
/// stopped, uses; sorted by name.
pub async fn unused_volumes(client: &Client) -> Result<Vec<UnusedVolume>, dockhand_engine::Error> {
    let node = client.info().await?.name;
    let mut unused: Vec<UnusedVolume> = client
        .volume_usage()
        .await?
        .into_iter()
        .filter(|v| v.scope != "global" && v.usage_data.is_some_and(|u| u.ref_count == 0))
        .map(|v| UnusedVolume {
            node: node.clone(),
            size: v.usage_data.and_then(|u| u64::try_from(u.size).ok()),
            name: v.name,
            driver: v.driver,
        })
        .collect();
    unused.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(unused)
}
