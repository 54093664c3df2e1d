//! The swarm as the jobs see it: the narrow set of engine effects that the runner, the
//! locks, the stop and start of a service, the lookups and an update (the registry's
//! digest, the update with its credentials, the rollback) use ([`Swarm`]), implemented by
//! [`dockhand_engine::Client`] and, in this crate's tests, by an in-memory swarm
//! (`fake.rs`); and which engine dockhand is connected to ([`Connected`]).
//!
//! What only a real engine shows (helper services, a task's logs) stays on the `Client`,
//! and a volume's bytes go through `steps::transfer::io::VolumeIo`; what decides the order of steps and every exit path goes through here, so
//! it is tested in milliseconds.

use dockhand_engine::{
    Client, ConfigSpec, ContainerSummary, DistributionInspect, Error, ExecSpec, Filters, ImageInspect, Info,
    Network, Node, RegistryAuth, Service, ServiceSpec, SwarmConfig, Task, UpdateOptions,
};

#[cfg(test)]
pub(crate) mod fake;

/// The engine effects the jobs' logic uses. Every method is the Engine API call of the
/// same name; `update_service` and `update_config` are compare-and-swap on `version`.
#[async_trait::async_trait]
pub trait Swarm: Send + Sync + std::fmt::Debug {
    /// `GET /info`.
    async fn info(&self) -> Result<Info, Error>;
    /// `GET /nodes`.
    async fn nodes(&self, filters: &Filters) -> Result<Vec<Node>, Error>;
    /// `GET /services/{id}` (a name or an ID).
    async fn service(&self, id: &str) -> Result<Service, Error>;
    /// `GET /services`.
    async fn services(&self, filters: &Filters) -> Result<Vec<Service>, Error>;
    /// `POST /services/{id}/update?version=`: the whole spec, if nobody changed it since
    /// `version`; with `options`' credentials for the pull (`X-Registry-Auth`) or its
    /// rollback to the previous spec.
    async fn update_service(
        &self,
        id: &str,
        version: u64,
        spec: &ServiceSpec,
        options: &UpdateOptions,
    ) -> Result<(), Error>;
    /// `DELETE /services/{id}`.
    async fn remove_service(&self, id: &str) -> Result<(), Error>;
    /// `GET /tasks`.
    async fn tasks(&self, filters: &Filters) -> Result<Vec<Task>, Error>;
    /// `GET /tasks/{id}`.
    async fn task(&self, id: &str) -> Result<Task, Error>;
    /// `GET /distribution/{name}/json`: what the image's registry says of `image`.
    async fn distribution(
        &self,
        image: &str,
        auth: Option<&RegistryAuth>,
    ) -> Result<DistributionInspect, Error>;
    /// `GET /images/{name}/json`: the image on the connected node.
    async fn image(&self, name: &str) -> Result<ImageInspect, Error>;
    /// `DELETE /images/{name}?force=true`: the image on the connected node, all its tags.
    async fn remove_image(&self, name: &str) -> Result<(), Error>;
    /// `GET /configs`.
    async fn configs(&self, filters: &Filters) -> Result<Vec<SwarmConfig>, Error>;
    /// `GET /configs/{id}` (a name or an ID).
    async fn config(&self, id: &str) -> Result<SwarmConfig, Error>;
    /// `POST /configs/create`: exclusive across the swarm (a second create of one name
    /// is a conflict).
    async fn create_config(&self, spec: &ConfigSpec) -> Result<String, Error>;
    /// `POST /configs/{id}/update?version=`.
    async fn update_config(&self, id: &str, version: u64, spec: &ConfigSpec) -> Result<(), Error>;
    /// `DELETE /configs/{id}`.
    async fn remove_config(&self, id: &str) -> Result<(), Error>;
    /// `GET /containers/json?all=true`.
    async fn containers(&self, filters: &Filters) -> Result<Vec<ContainerSummary>, Error>;
    /// `DELETE /containers/{id}?force=true` (one already gone is not an error).
    async fn remove_container(&self, id: &str) -> Result<(), Error>;
    /// `GET /networks`.
    async fn networks(&self, filters: &Filters) -> Result<Vec<Network>, Error>;
    /// `DELETE /networks/{id}` (one already gone is not an error).
    async fn remove_network(&self, id: &str) -> Result<(), Error>;
    /// `POST /containers/prune`, sparing the containers labelled `sparing` (`label!=…`): the
    /// bytes reclaimed.
    async fn prune_containers(&self, sparing: &str) -> Result<u64, Error>;
    /// `POST /images/prune?filters={"dangling":["false"]}` (every unused image): the bytes
    /// reclaimed.
    async fn prune_images(&self) -> Result<u64, Error>;
    /// `POST /build/prune`: the bytes reclaimed.
    async fn prune_build_cache(&self) -> Result<u64, Error>;
    /// Runs `argv` in `container` (an exec, its argv as given, no shell), handing each
    /// chunk of its output to `output`; its exit code.
    async fn exec(
        &self,
        container: &str,
        argv: &[String],
        output: &mut (dyn for<'b> FnMut(&'b [u8]) + Send),
    ) -> Result<i64, Error>;
}

#[async_trait::async_trait]
impl Swarm for Client {
    async fn info(&self) -> Result<Info, Error> {
        Client::info(self).await
    }
    async fn nodes(&self, filters: &Filters) -> Result<Vec<Node>, Error> {
        Client::nodes(self, filters).await
    }
    async fn service(&self, id: &str) -> Result<Service, Error> {
        Client::service(self, id).await
    }
    async fn services(&self, filters: &Filters) -> Result<Vec<Service>, Error> {
        Client::services(self, filters).await
    }
    async fn update_service(
        &self,
        id: &str,
        version: u64,
        spec: &ServiceSpec,
        options: &UpdateOptions,
    ) -> Result<(), Error> {
        Client::update_service(self, id, version, spec, options).await.map(|_| ())
    }
    async fn remove_service(&self, id: &str) -> Result<(), Error> {
        Client::remove_service(self, id).await
    }
    async fn tasks(&self, filters: &Filters) -> Result<Vec<Task>, Error> {
        Client::tasks(self, filters).await
    }
    async fn task(&self, id: &str) -> Result<Task, Error> {
        Client::task(self, id).await
    }
    async fn distribution(
        &self,
        image: &str,
        auth: Option<&RegistryAuth>,
    ) -> Result<DistributionInspect, Error> {
        Client::distribution(self, image, auth).await
    }
    async fn image(&self, name: &str) -> Result<ImageInspect, Error> {
        Client::image(self, name).await
    }
    async fn remove_image(&self, name: &str) -> Result<(), Error> {
        Client::remove_image(self, name).await
    }
    async fn configs(&self, filters: &Filters) -> Result<Vec<SwarmConfig>, Error> {
        Client::configs(self, filters).await
    }
    async fn config(&self, id: &str) -> Result<SwarmConfig, Error> {
        Client::config(self, id).await
    }
    async fn create_config(&self, spec: &ConfigSpec) -> Result<String, Error> {
        Client::create_config(self, spec).await
    }
    async fn update_config(&self, id: &str, version: u64, spec: &ConfigSpec) -> Result<(), Error> {
        Client::update_config(self, id, version, spec).await
    }
    async fn remove_config(&self, id: &str) -> Result<(), Error> {
        Client::remove_config(self, id).await
    }
    async fn containers(&self, filters: &Filters) -> Result<Vec<ContainerSummary>, Error> {
        Client::containers(self, filters).await
    }
    async fn remove_container(&self, id: &str) -> Result<(), Error> {
        Client::remove_container(self, id).await
    }
    async fn networks(&self, filters: &Filters) -> Result<Vec<Network>, Error> {
        Client::networks(self, filters).await
    }
    async fn remove_network(&self, id: &str) -> Result<(), Error> {
        Client::remove_network(self, id).await
    }
    async fn prune_containers(&self, sparing: &str) -> Result<u64, Error> {
        let others = Filters::new().with("label!", sparing);
        Ok(Client::prune_containers(self, &others).await?.space_reclaimed)
    }
    async fn prune_images(&self) -> Result<u64, Error> {
        Ok(Client::prune_images(self, &Filters::new().with("dangling", "false")).await?.space_reclaimed)
    }
    async fn prune_build_cache(&self) -> Result<u64, Error> {
        Ok(Client::prune_build_cache(self, &Filters::new()).await?.space_reclaimed)
    }
    async fn exec(
        &self,
        container: &str,
        argv: &[String],
        output: &mut (dyn for<'b> FnMut(&'b [u8]) + Send),
    ) -> Result<i64, Error> {
        let spec = ExecSpec::new(argv.iter().cloned());
        let mut stream = Client::exec(self, container, &spec).await?;
        while let Some(chunk) = stream.next().await {
            output(&chunk?.data);
        }
        stream.exit_code().await
    }
}

/// Reads `id`'s spec, lets `change` edit it, and writes it back at the version read; when
/// someone else changed the service in between (`update out of sequence`), reads it again
/// and retries, up to 10 times. `change` runs on each fresh read.
pub(crate) async fn modify_service(
    swarm: &dyn Swarm,
    id: &str,
    options: &UpdateOptions,
    mut change: impl FnMut(&mut ServiceSpec) -> Result<(), Error> + Send,
) -> Result<(), Error> {
    let mut attempt = 0;
    loop {
        let service = swarm.service(id).await?;
        let mut spec = service.spec.clone();
        change(&mut spec)?;
        match swarm.update_service(&service.id, service.version.index, &spec, options).await {
            Err(e) if attempt < 10 && e.is_out_of_sequence() => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(50 * attempt)).await;
            }
            result => return result,
        }
    }
}

/// The engine dockhand is connected to: whether it manages a swarm, and which node it is.
#[derive(Debug, Clone)]
pub(crate) struct Connected {
    pub(crate) manager: bool,
    pub(crate) node_id: String,
    pub(crate) name: String,
}

impl Connected {
    pub(crate) async fn read(swarm: &dyn Swarm) -> Result<Self, Error> {
        let info: Info = swarm.info().await?;
        Ok(Self {
            manager: info.swarm.is_active() && info.swarm.control_available,
            node_id: info.swarm.node_id,
            name: info.name,
        })
    }
}
