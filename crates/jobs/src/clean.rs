//! Cleaning: clean-node (prunes on a node, and its optional exec), clean-service (an exec in
//! every running task), and the unused volumes of every node.

pub use crate::agent::protocol::UnusedVolume;
pub use crate::clean_node::{NodePlan, clean_all_nodes, clean_node, plan_clean_node};
pub use crate::clean_service::{ServicePlan, clean_all_services, clean_service, plan_clean_service};
pub use crate::steps::lookup::find_node;
pub use crate::volumes::unused_volumes_everywhere;
