//! The swarm as the jobs see it: which engine dockhand is connected to ([`Connected`]).

use dockhand_engine::{Client, Info};

/// The engine dockhand is connected to: whether it manages a swarm, and which node it is.
#[derive(Debug, Clone)]
pub(crate) struct Connected {
    pub(crate) manager: bool,
    pub(crate) node_id: String,
    pub(crate) name: String,
}

impl Connected {
    pub(crate) async fn read(client: &Client) -> Result<Self, dockhand_engine::Error> {
        let info: Info = client.info().await?;
        Ok(Self {
            manager: info.swarm.is_active() && info.swarm.control_available,
            node_id: info.swarm.node_id,
            name: info.name,
        })
    }
}
