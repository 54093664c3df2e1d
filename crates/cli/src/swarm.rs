//! `dockhand services | nodes | tasks ls`.

use std::collections::HashMap;
use std::process::ExitCode;

use anyhow::Context;
use dockhand_engine::Filters;

use crate::args::{Global, NodesCommand, ServicesCommand, TasksCommand};
use crate::context::connect;
use crate::output;

/// `KEY=VALUE` filters from `--filter`; the value may itself hold `=` (`label=a=b`).
fn parse_filters(raw: &[String]) -> anyhow::Result<Filters> {
    let mut filters = Filters::new();
    for item in raw {
        let (key, value) = item.split_once('=').filter(|(k, _)| !k.is_empty()).with_context(|| {
            format!("--filter {item:?}: expected KEY=VALUE, such as label=dockhand.clean.enable=true")
        })?;
        filters.add(key, value);
    }
    Ok(filters)
}

pub(crate) async fn services(global: &Global, cmd: ServicesCommand) -> anyhow::Result<ExitCode> {
    let ServicesCommand::Ls { filters, quiet } = cmd;
    let filters = parse_filters(&filters)?;
    let client = connect(global).await?;
    if global.json {
        // JSON carries the whole service.
        let mut services = client.services(&filters).await?;
        services.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
        if quiet {
            output::ids(true, services.iter().map(|s| s.id.as_str()))?;
        } else {
            output::print(true, &services, String::new)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    // A table needs a few fields: decoding only those keeps a large swarm's listing light.
    let mut services = client.service_summaries(&filters).await?;
    services.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
    if quiet {
        output::ids(false, services.iter().map(|s| s.id.as_str()))?;
    } else {
        output::print(false, &(), || output::services(&services))?;
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn nodes(global: &Global, cmd: NodesCommand) -> anyhow::Result<ExitCode> {
    let NodesCommand::Ls { filters, quiet } = cmd;
    let filters = parse_filters(&filters)?;
    let client = connect(global).await?;
    let mut nodes = client.nodes(&filters).await?;
    nodes.sort_by(|a, b| a.description.hostname.cmp(&b.description.hostname));
    if quiet {
        output::ids(global.json, nodes.iter().map(|n| n.id.as_str()))?;
    } else {
        // The node dockhand talks to is marked, as `docker node ls` marks it.
        let current = client.info().await?.swarm.node_id;
        output::print(global.json, &nodes, || output::nodes(&nodes, &current))?;
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn tasks(global: &Global, cmd: TasksCommand) -> anyhow::Result<ExitCode> {
    let TasksCommand::Ls { service, quiet } = cmd;
    let client = connect(global).await?;
    // Resolve the name first, so that an unknown service is an error, not an empty list.
    let svc = client.service(&service).await?;
    let mut tasks = client.tasks(&Filters::new().with("service", &svc.id)).await?;
    tasks.sort_by(|a, b| (a.slot, &b.status.timestamp).cmp(&(b.slot, &a.status.timestamp)));
    if quiet {
        output::ids(global.json, tasks.iter().map(|t| t.id.as_str()))?;
        return Ok(ExitCode::SUCCESS);
    }
    // Hostnames, as `docker service ps` shows them.
    let hostnames: HashMap<String, String> =
        client.nodes(&Filters::new()).await?.into_iter().map(|n| (n.id, n.description.hostname)).collect();
    let now = std::time::SystemTime::now();
    output::print(global.json, &tasks, || output::tasks(&svc.spec.name, &tasks, &hostnames, now))?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_split_on_the_first_equals() {
        let f = parse_filters(&["label=dockhand.clean.enable=true".into(), "name=web".into()]).unwrap();
        assert_eq!(f.to_json(), r#"{"label":{"dockhand.clean.enable=true":true},"name":{"web":true}}"#);
        let err = parse_filters(&["label".into()]).unwrap_err().to_string();
        assert!(err.contains("--filter \"label\"") && err.contains("KEY=VALUE"), "{err}");
        assert!(parse_filters(&["=x".into()]).is_err());
    }
}
