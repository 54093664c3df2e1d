//! Finding what a job works on: the manager it must run on, a service or node by name or
//! ID, node hostnames, and where a budget came from.

use std::collections::BTreeMap;

use dockhand_engine::{Filters, Node, Service};
use dockhand_policy::TargetLabels;

use crate::runner::{JobContext, JobError};
use crate::swarm::Connected;

pub(crate) async fn manager(ctx: &JobContext) -> Result<Connected, JobError> {
    let connected = Connected::read(&*ctx.swarm).await?;
    if !connected.manager {
        return Err(JobError::NotManager(connected.name));
    }
    Ok(connected)
}

/// `service` (a name or ID), or the job error that says there is none.
pub(crate) async fn find_service(ctx: &JobContext, service: &str) -> Result<Service, JobError> {
    match ctx.swarm.service(service).await {
        Ok(s) => Ok(s),
        Err(e) if e.is_not_found() => Err(JobError::UnknownService(service.to_owned())),
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn budget_source(view: &TargetLabels<'_>, label: &str) -> String {
    match view.get(label) {
        Some((key, _)) => format!("label {key}"),
        None => "the default".to_owned(),
    }
}

/// The node `wanted` names: its ID, or a hostname only one node has.
pub fn find_node<'n>(nodes: &'n [Node], wanted: &str) -> Result<&'n Node, JobError> {
    if let Some(exact) = nodes.iter().find(|n| n.id == wanted) {
        return Ok(exact);
    }
    let found: Vec<&Node> = nodes.iter().filter(|n| n.description.hostname == wanted).collect();
    match found.as_slice() {
        [] => Err(JobError::UnknownNode(wanted.to_owned())),
        [one] => Ok(one),
        many => Err(JobError::AmbiguousHostname {
            name: wanted.to_owned(),
            ids: many.iter().map(|n| n.id.clone()).collect(),
        }),
    }
}

/// The swarm's node hostnames by node ID, read once per command.
pub(crate) async fn hostnames(ctx: &JobContext) -> Result<BTreeMap<String, String>, dockhand_engine::Error> {
    let nodes = ctx.swarm.nodes(&Filters::new()).await?;
    Ok(nodes.into_iter().map(|n| (n.id, n.description.hostname)).collect())
}

/// The real names of the volumes `service` mounts.
pub fn service_volumes(service: &Service) -> Vec<String> {
    volume_mounts(service).into_iter().map(str::to_owned).collect()
}

/// The real name of volume `wanted` of `service`: as named, or as its stack prefixes it
/// (`<stack>_<volume>`); with how it was matched.
pub fn resolve_volume(service: &Service, wanted: &str) -> Result<(String, String), NotMounted> {
    let mounts = volume_mounts(service);
    if mounts.contains(&wanted) {
        return Ok((wanted.to_owned(), format!("volume {wanted}")));
    }
    if let Some(stack) = service.spec.labels.get("com.docker.stack.namespace") {
        let prefixed = format!("{stack}_{wanted}");
        if mounts.contains(&prefixed.as_str()) {
            return Ok((
                prefixed.clone(),
                format!("volume {wanted} is {prefixed} (stack {stack} prefixes it)"),
            ));
        }
    }
    Err(NotMounted(format!(
        "service {} mounts no volume {wanted:?}{}; it mounts: {}",
        service.spec.name,
        service
            .spec
            .labels
            .get("com.docker.stack.namespace")
            .map(|s| format!(" (nor {s}_{wanted})"))
            .unwrap_or_default(),
        mounted(service)
    )))
}

/// A volume a service does not mount: which, and what it mounts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotMounted(String);

/// The named volumes `service` mounts.
fn volume_mounts(service: &Service) -> Vec<&str> {
    service
        .spec
        .task_template
        .container_spec
        .mounts
        .iter()
        .filter(|m| m.kind == "volume")
        .map(|m| m.source.as_str())
        .collect()
}

/// What `service` mounts, for messages: its volumes, or "no volume".
pub(crate) fn mounted(service: &Service) -> String {
    let mounts = volume_mounts(service);
    if mounts.is_empty() { "no volume".to_owned() } else { mounts.join(", ") }
}
