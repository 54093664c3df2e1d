//! Which image helpers run: a configured one (pinned by digest, pulled with its registry's
//! credential), the image of the service dockhand runs in, or the image made from
//! dockhand's own executable on the connected node ([`HelperSettings`]).

use std::sync::Arc;
use std::time::Duration;

use dockhand_engine::{Client, ServiceSpec};

use super::AGENT_SOCKET;

use crate::own_image::OwnExecutable;

/// How helpers are made.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HelperSettings {
    /// The image, whose entrypoint is `dockhand` (inside a swarm service: the image dockhand
    /// runs from, pinned by digest). Empty when none was given or can be vouched for: the
    /// helpers on the connected node then run the image made from dockhand's own executable
    /// ([`HelperSettings::own`]), and the others fail with [`HelperSettings::missing`].
    pub image: String,
    /// Why there is no image, and what to set.
    pub missing: String,
    /// Without an image: the one made from dockhand's own executable on the node it is
    /// connected to, made the first time a helper there needs it.
    pub own: Option<OwnHelperImage>,
    /// The credential nodes pull [`HelperSettings::image`] with (sent when a helper is
    /// created, as `docker service create --with-registry-auth`; never in its spec).
    pub auth: Option<dockhand_engine::RegistryAuth>,
    /// The engine socket's path on the nodes, bind-mounted into the helper.
    pub socket: String,
    /// How long a helper may stay pending before it is removed and its step fails.
    pub pending_timeout: Duration,
    /// How often a helper's task is looked at.
    pub poll: Duration,
}

/// The helper image made from dockhand's own executable on the engine it is connected to
/// ([`crate::ensure_own_image`]), for the helpers on that node; made once, when first needed.
#[derive(Debug, Clone)]
pub struct OwnHelperImage {
    client: Client,
    executable: OwnExecutable,
    node_id: String,
    node_name: String,
    made: Arc<tokio::sync::Mutex<Option<String>>>,
}

impl PartialEq for OwnHelperImage {
    fn eq(&self, other: &Self) -> bool {
        (&self.executable, &self.node_id) == (&other.executable, &other.node_id)
    }
}

impl Eq for OwnHelperImage {}

impl OwnHelperImage {
    /// The image of `executable`, made on `client`'s engine, whose swarm node is `node_id`.
    pub fn new(client: Client, executable: OwnExecutable, node_id: &str, node_name: &str) -> Self {
        Self {
            client,
            executable,
            node_id: node_id.to_owned(),
            node_name: node_name.to_owned(),
            made: Arc::new(tokio::sync::Mutex::new(None)),
        }
    }

    /// Its image ID, made on the engine the first time, and again when it has gone since (a
    /// clean-node prunes unused images).
    async fn id(&self) -> Result<String, String> {
        let mut made = self.made.lock().await;
        if let Some(id) = made.as_ref() {
            if self.client.image(id).await.is_ok() {
                return Ok(id.clone());
            }
        }
        let id = crate::own_image::ensure_own_image(&self.client, &self.executable)
            .await
            .map_err(|e| e.to_string())?;
        *made = Some(id.clone());
        Ok(id)
    }
}

/// No helper can run: why, and what to set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NoHelperImage(String);

/// What to set when dockhand cannot vouch for a helper image.
const SET_HELPER_IMAGE: &str = "set --helper-image (DOCKHAND_HELPER_IMAGE) to dockhand's own image, pinned by digest \
     (registry.example.com/dockhand@sha256:…, which `dockhand helper-image push REGISTRY/REPO` makes), or to a tag \
     every node already has";

impl HelperSettings {
    /// No image: every helper fails with `why`, which says what to set (R3-04: never a
    /// public name that a node would pull).
    pub fn without_image(why: impl Into<String>) -> Self {
        let mut settings = Self::new("");
        settings.missing = why.into();
        settings
    }

    /// Nodes pull the image with `auth`.
    pub fn with_auth(mut self, auth: Option<dockhand_engine::RegistryAuth>) -> Self {
        self.auth = auth;
        self
    }

    /// Creates a helper's service of `image`, with the pull credential when it is the
    /// configured image (the one made here is run by its ID and never pulled).
    pub(crate) async fn create(
        &self,
        client: &Client,
        spec: &ServiceSpec,
    ) -> Result<dockhand_engine::ServiceCreated, dockhand_engine::Error> {
        match &self.auth {
            Some(auth) if !self.image.is_empty() && spec.task_template.container_spec.image == self.image => {
                client.create_service_with_auth(spec, auth).await
            }
            _ => client.create_service(spec).await,
        }
    }

    /// Without an image, helpers on the connected node run `own`.
    pub fn with_own_image(mut self, own: OwnHelperImage) -> Self {
        self.own = Some(own);
        self
    }

    /// Whether any helper can run: an image is set, or one can be made here. Else why not,
    /// and what to set.
    pub fn check(&self) -> Result<(), NoHelperImage> {
        if self.image.is_empty() && self.own.is_none() {
            return Err(NoHelperImage(self.why_none()));
        }
        Ok(())
    }

    fn why_none(&self) -> String {
        let why = if self.missing.is_empty() { "no helper image is set" } else { &self.missing };
        format!("{why}: {SET_HELPER_IMAGE}")
    }

    /// The image a container on the connected node runs (a volume's relay or reader), or
    /// why there is none.
    pub(crate) async fn image_here(&self) -> Result<String, String> {
        match &self.own {
            Some(own) if self.image.is_empty() => own.id().await,
            _ if self.image.is_empty() => Err(self.why_none()),
            _ => Ok(self.image.clone()),
        }
    }

    /// The image a helper on the node `node_id` runs, or why there is none.
    pub(crate) async fn image_for(&self, node_id: &str) -> Result<String, String> {
        if !self.image.is_empty() {
            return Ok(self.image.clone());
        }
        match &self.own {
            Some(own) if own.node_id == node_id => own.id().await,
            Some(own) => Err(format!(
                "{}; the image made from this dockhand is on {} only",
                self.why_none(),
                own.node_name
            )),
            None => Err(self.why_none()),
        }
    }

    /// `image`, the socket `/var/run/docker.sock` and the seed's 20 s pending timeout.
    pub fn new(image: impl Into<String>) -> Self {
        Self {
            image: image.into(),
            missing: String::new(),
            own: None,
            auth: None,
            socket: AGENT_SOCKET.to_owned(),
            pending_timeout: Duration::from_secs(20),
            poll: Duration::from_millis(200),
        }
    }

    /// Sets the socket path on the nodes.
    pub fn with_socket(mut self, socket: impl Into<String>) -> Self {
        self.socket = socket.into();
        self
    }

    /// Sets the pending timeout.
    pub fn with_pending_timeout(mut self, timeout: Duration) -> Self {
        self.pending_timeout = timeout;
        self
    }
}

/// The image of the swarm service this process runs in, as the service's spec names it (the
/// swarm pins it by digest when the image came from a registry): what helpers must run, so
/// that they run the same dockhand. `None` outside a swarm task.
pub async fn own_service_image(client: &Client) -> Option<String> {
    let mountinfo = dockhand_host::procfs::self_mountinfo().ok()?;
    let container = container_id_from_mountinfo(&mountinfo)?;
    let inspect = client.container(&container).await.ok()?;
    let service = inspect.config.labels.get("com.docker.swarm.service.id")?;
    let image = client.service(service).await.ok()?.spec.task_template.container_spec.image;
    (!image.is_empty()).then_some(image)
}

/// The image helpers run (R3-04), in this order: `explicit` (`--helper-image`, the
/// operator's word); inside a swarm service, the service's own image, which must be pinned
/// by digest. Without either, helpers on the node `client` talks to run the image made from
/// `own` (dockhand's own executable, imported there and run by its ID), and helpers on other
/// nodes have no image, with why. A tag a node would pull from whatever registry answers
/// for it is never used.
pub async fn helper_image(
    client: &Client,
    explicit: Option<&str>,
    own: Option<OwnExecutable>,
) -> HelperSettings {
    if let Some(image) = explicit.map(str::trim).filter(|i| !i.is_empty()) {
        return HelperSettings::new(image);
    }
    let settings = match own_service_image(client).await {
        Some(image) if pinned(&image) => return HelperSettings::new(image),
        Some(image) => HelperSettings::without_image(format!(
            "this service runs {image}, which is not pinned by digest: a node that pulls that name could get \
             another image, and helpers hold the node's engine socket"
        )),
        None => {
            HelperSettings::without_image("no helper image is set for the nodes dockhand is not connected to")
        }
    };
    let connected = crate::swarm::Connected::read(client).await.ok().filter(|c| !c.node_id.is_empty());
    match (own, connected) {
        (Some(own), Some(here)) => {
            settings.with_own_image(OwnHelperImage::new(client.clone(), own, &here.node_id, &here.name))
        }
        _ => settings,
    }
}

/// True when `image` names its content: `name@sha256:<64 hex>`.
pub(crate) fn pinned(image: &str) -> bool {
    image.rsplit_once("@sha256:").is_some_and(|(name, hex)| {
        !name.is_empty() && hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

/// The container ID in a container's own mount table: Docker bind-mounts
/// `.../containers/<id>/hostname` (and `hosts`, `resolv.conf`) into every container.
pub(crate) fn container_id_from_mountinfo(mountinfo: &str) -> Option<String> {
    mountinfo.lines().find_map(|line| {
        let root = line.split_whitespace().nth(3)?;
        let rest = &root[root.find("/containers/")? + "/containers/".len()..];
        let (id, file) = rest.split_once('/')?;
        let is_id = id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit());
        (is_id && matches!(file, "hostname" | "hosts" | "resolv.conf")).then(|| id.to_owned())
    })
}

impl Default for HelperSettings {
    /// No image yet: a front-end sets one with [`helper_image`].
    fn default() -> Self {
        Self::without_image("no helper image was chosen")
    }
}
