//! `dockhand services | nodes | tasks ls`.

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
    let ServicesCommand::Ls { filters } = cmd;
    let filters = parse_filters(&filters)?;
    let mut services = connect(global).await?.services(&filters).await?;
    services.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
    output::print(global.json, &services, || output::services(&services))?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn nodes(global: &Global, cmd: NodesCommand) -> anyhow::Result<ExitCode> {
    let NodesCommand::Ls { filters } = cmd;
    let filters = parse_filters(&filters)?;
    let mut nodes = connect(global).await?.nodes(&filters).await?;
    nodes.sort_by(|a, b| a.description.hostname.cmp(&b.description.hostname));
    output::print(global.json, &nodes, || output::nodes(&nodes))?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn tasks(global: &Global, cmd: TasksCommand) -> anyhow::Result<ExitCode> {
    let TasksCommand::Ls { service } = cmd;
    let client = connect(global).await?;
    // Resolve the name first, so that an unknown service is an error, not an empty list.
    let svc = client.service(&service).await?;
    let mut tasks = client.tasks(&Filters::new().with("service", &svc.id)).await?;
    tasks.sort_by(|a, b| (a.slot, &b.status.timestamp).cmp(&(b.slot, &a.status.timestamp)));
    output::print(global.json, &tasks, || output::tasks(&svc.spec.name, &tasks))?;
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
