//! Watch mode's look at the registries: for each watched service (`update.enable=true` and
//! `update.auto` set), the reference it follows, the digest it runs, the digest behind the
//! tag now, and what a tick would do ([`dockhand_policy::decide`]). Each distinct reference
//! is resolved once per look, with the credential matched to its registry, through the
//! engine (`GET /distribution`), as update-service resolves it.
//!
//! In progress (issue 25): `dockhand plan` shows this; the tick that acts on it is not
//! built yet, and neither is the memory of failed digests (the look passes none).

use std::collections::{BTreeSet, HashMap};

use crate::plan::Watched;
use crate::registry::Registries;
use crate::swarm::Swarm;
use dockhand_engine::Service;
use dockhand_policy::{
    AutoUpdate, Defaults, LabelPrefixes, Resolved, TargetLabels, WatchStep, decide, followed, service_policy,
};

/// Every watched service of `services`, by name, with one registry request per distinct
/// reference and credential.
pub async fn look(
    swarm: &dyn Swarm,
    registries: &Registries,
    services: &[Service],
    defaults: &Defaults,
    prefixes: &LabelPrefixes,
) -> Vec<Watched> {
    let mut asked: HashMap<(String, String), Resolved> = HashMap::new();
    let mut out = Vec::new();
    let mut services: Vec<&Service> = services.iter().collect();
    services.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
    for service in services {
        let labels = &service.spec.labels;
        let (policy, _) = service_policy(labels, service.spec.is_global(), defaults, prefixes);
        let Some(policy) = policy.update.filter(|u| u.auto != AutoUpdate::Off) else { continue };
        let view = TargetLabels::resolve(labels, prefixes);
        let name = service.spec.name.clone();
        let decided_by =
            view.get("update.auto").map(|(key, value)| format!("{key}={value}")).unwrap_or_default();
        let image = &service.spec.task_template.container_spec.image;
        let runs = image.split_once('@').map(|(_, digest)| digest.to_owned());
        let mut row = Watched {
            service: name.clone(),
            mode: policy.auto.as_str(),
            decided_by,
            follows: None,
            runs: runs.clone(),
            latest: None,
            next: String::new(),
        };
        let reference = match followed(image, policy.auto_tag.as_deref()) {
            Ok(reference) => reference,
            Err(e) => {
                row.next = format!("skip: {e}");
                out.push(row);
                continue;
            }
        };
        row.follows = Some(reference.to_string());
        let credential = match registries.credential_for(&reference, &name, &policy, &view).await {
            Ok(credential) => credential,
            Err(e) => {
                row.next = format!("skip: {e}");
                out.push(row);
                continue;
            }
        };
        let whose = credential.as_ref().map(|c| c.source.clone()).unwrap_or_default();
        let key = (reference.to_string(), whose);
        let resolved = match asked.get(&key) {
            Some(resolved) => resolved.clone(),
            None => {
                let auth = credential.as_ref().map(|c| &c.auth);
                let resolved = match swarm.distribution(&key.0, auth).await {
                    Ok(found) if !found.descriptor.digest.is_empty() => {
                        Resolved::Digest(found.descriptor.digest)
                    }
                    Ok(_) => Resolved::Failed("the registry gave no digest".to_owned()),
                    Err(e) => Resolved::Failed(e.to_string()),
                };
                asked.insert(key, resolved.clone());
                resolved
            }
        };
        if let Resolved::Digest(digest) = &resolved {
            row.latest = Some(digest.clone());
        }
        row.next = match decide(policy.auto, &reference, runs.as_deref(), &resolved, &BTreeSet::new()) {
            WatchStep::Current => "current".to_owned(),
            WatchStep::Update { image } => format!("update to {image}"),
            WatchStep::Notify { image } => format!("notify {image}"),
            WatchStep::Skip { reason } => format!("skip: {reason}"),
        };
        out.push(row);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::swarm::fake::FakeSwarm;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn registries() -> Registries {
        let file = dockhand_host::ConfigFile::parse("{}", false).unwrap();
        let env = dockhand_host::Environment::from_vars(Vec::<(String, String)>::new());
        Registries::load(&file, &env).unwrap()
    }

    /// A replicated service of `image` with `labels`.
    fn service(swarm: &FakeSwarm, name: &str, image: &str, labels: &[(&str, &str)]) -> Service {
        let id = swarm.add_service(name, 1, labels);
        swarm.set_image(&id, image);
        let mut service = Service::default();
        service.spec = swarm.spec(&id);
        service
    }

    const WATCHED: [(&str, &str); 2] = [("dockhand.update.enable", "true"), ("dockhand.update.auto", "true")];

    #[tokio::test]
    async fn each_tag_is_asked_once_and_each_service_gets_its_next_step() {
        let swarm = FakeSwarm::manager();
        swarm.publish("registry.example.com/team/app:1.4", D2);
        swarm.publish("registry.example.com/team/web:2", D1);
        let mut services: Vec<Service> = (0..20)
            .map(|i| {
                let image = format!("registry.example.com/team/app:1.4@{D1}");
                service(&swarm, &format!("app-{i:02}"), &image, &WATCHED)
            })
            .collect();
        let notify = [("dockhand.update.enable", "true"), ("dockhand.update.auto", "notify")];
        services.push(service(&swarm, "web", &format!("registry.example.com/team/web:2@{D1}"), &notify));
        services.push(service(&swarm, "bare", &format!("registry.example.com/team/app@{D1}"), &WATCHED));
        services.push(service(&swarm, "unwatched", "registry.example.com/team/app:1.4", &[]));

        let rows =
            look(&swarm, &registries(), &services, &Defaults::default(), &LabelPrefixes::default()).await;

        assert_eq!(rows.len(), 22, "the unwatched service is not listed: {rows:?}");
        let app = &rows[0];
        assert_eq!((app.service.as_str(), app.mode), ("app-00", "true"));
        assert_eq!(app.follows.as_deref(), Some("registry.example.com/team/app:1.4"));
        assert_eq!((app.runs.as_deref(), app.latest.as_deref()), (Some(D1), Some(D2)));
        assert_eq!(app.next, format!("update to registry.example.com/team/app:1.4@{D2}"));
        assert_eq!(app.decided_by, "dockhand.update.auto=true");
        let bare = rows.iter().find(|r| r.service == "bare").unwrap();
        assert!(bare.next.starts_with("skip: ") && bare.next.contains("update.auto.tag"), "{bare:?}");
        let web = rows.iter().find(|r| r.service == "web").unwrap();
        assert_eq!((web.mode, web.next.as_str()), ("notify", "current"), "{web:?}");
        assert_eq!(swarm.registry_asked(), 2, "one request per distinct tag, for 21 services");
    }

    #[tokio::test]
    async fn a_registry_that_fails_is_a_skip_naming_it() {
        let swarm = FakeSwarm::manager();
        let services = [service(&swarm, "app", "registry.example.com/team/app:9", &WATCHED)];
        let rows =
            look(&swarm, &registries(), &services, &Defaults::default(), &LabelPrefixes::default()).await;
        assert_eq!(rows.len(), 1);
        let next = &rows[0].next;
        assert!(next.starts_with("skip: registry.example.com/team/app:9: the registry failed"), "{next}");
        assert!(next.contains("manifest unknown"), "{next}");
        assert_eq!((rows[0].runs.as_deref(), rows[0].latest.as_deref()), (None, None));
    }
}
