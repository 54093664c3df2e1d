//! Tests of registry credentials: which registry each may go to, and where each is read from.

use super::*;

#[test]
fn registry_keys_compare_by_host_as_the_cli_does() {
    assert_eq!(key_host("https://index.docker.io/v1/"), "docker.io");
    assert_eq!(key_host("registry-1.docker.io"), "docker.io");
    assert_eq!(key_host("http://Registry.Example.com:5000/v2/"), "registry.example.com:5000");
    assert_eq!(key_host("registry.example.com"), "registry.example.com");
    let hub = ImageRef::parse("nginx:1.27").unwrap();
    assert_eq!(server_key(&hub), DOCKER_HUB_SERVER);
    let private = ImageRef::parse("127.0.0.1:5000/team/app:v2").unwrap();
    assert_eq!(server_key(&private), "127.0.0.1:5000");
}

async fn from_file(json: &str, image: &str) -> Result<Option<PullCredential>, RegistryError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(&path, json).unwrap();
    docker_config_credential(&path, &ImageRef::parse(image).unwrap()).await
}

#[tokio::test]
async fn auths_give_user_and_password_or_an_identity_token() {
    let auth = base64::engine::general_purpose::STANDARD.encode("ci:s3cret");
    let json = format!(
        r#"{{"auths": {{"https://index.docker.io/v1/": {{"auth": "{auth}"}},
            "r.example.com": {{"identitytoken": "tok"}}}}}}"#
    );
    let hub = from_file(&json, "nginx").await.unwrap().unwrap();
    assert_eq!(hub.auth, RegistryAuth::password("ci", "s3cret", DOCKER_HUB_SERVER));
    assert_eq!(hub.username.as_deref(), Some("ci"));
    assert!(hub.source.contains("auths.https://index.docker.io/v1/"), "{}", hub.source);
    let private = from_file(&json, "r.example.com/app").await.unwrap().unwrap();
    assert_eq!(private.auth, RegistryAuth::IdentityToken("tok".into()));
    assert_eq!(from_file(&json, "other.example.com/app").await.unwrap(), None);
    assert_eq!(from_file("{}", "nginx").await.unwrap(), None);
}

#[tokio::test]
async fn a_bad_file_names_itself_and_never_the_secret() {
    let err = from_file("{not json", "nginx").await.unwrap_err().to_string();
    assert!(err.contains("config.json") && err.contains("not valid JSON"), "{err}");
    let json = r#"{"auths": {"r.example.com": {"auth": "bm9jb2xvbg=="}}}"#; // "nocolon"
    let err = from_file(json, "r.example.com/app").await.unwrap_err().to_string();
    assert!(err.contains("auths.r.example.com.auth") && !err.contains("nocolon"), "{err}");
}

fn load(yaml: &str, vars: &[(&str, &str)]) -> Registries {
    let file = ConfigFile::parse(yaml, false).unwrap();
    Registries::load(&file, &Environment::from_vars(vars.iter().copied())).unwrap()
}

fn update_policy(pairs: &[(&str, &str)]) -> (UpdatePolicy, BTreeMap<String, String>) {
    let labels: BTreeMap<String, String> =
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let prefixes = dockhand_policy::LabelPrefixes::default();
    let (policy, _) =
        dockhand_policy::service_policy(&labels, false, &dockhand_policy::Defaults::default(), &prefixes);
    (policy.update.unwrap(), labels)
}

#[tokio::test]
async fn the_seeds_labels_fall_back_to_its_variables_and_a_missing_value_names_both() {
    let image = ImageRef::parse("registry.domain.com/team/app:v2").unwrap();
    let prefixes = dockhand_policy::LabelPrefixes::default();
    let (policy, labels) = update_policy(&[
        ("dockhand.update.enable", "true"),
        ("dockhand.update.registry.auth", "true"),
        ("dockhand.update.registry.user", "ci"),
    ]);
    let view = TargetLabels::resolve(&labels, &prefixes);
    let vars = [
        ("SWARM_UTILS_REGISTRY_PASSWORD", "pw-from-env"),
        ("SWARM_UTILS_REGISTRY_URL", "registry.domain.com"),
    ];
    let found = load("{}", &vars).credential_for(&image, "web", &policy, &view).await.unwrap().unwrap();
    assert_eq!(found.auth, RegistryAuth::password("ci", "pw-from-env", "registry.domain.com"));
    assert!(
        found.source.contains("dockhand.update.registry.user")
            && found.source.contains("SWARM_UTILS_REGISTRY_PASSWORD"),
        "{}",
        found.source
    );
    let err =
        load("{}", &vars[..1]).credential_for(&image, "web", &policy, &view).await.unwrap_err().to_string();
    assert!(
        err.contains("dockhand.update.registry.url")
            && err.contains("SWARM_UTILS_REGISTRY_URL")
            && !err.contains("pw-from-env"),
        "{err}"
    );
}

#[tokio::test]
async fn a_named_credential_comes_first_and_a_wrong_entry_names_its_key() {
    let image = ImageRef::parse("registry.domain.com/team/app:v2").unwrap();
    let prefixes = dockhand_policy::LabelPrefixes::default();
    let yaml = "registries:\n  ci:\n    url: registry.domain.com\n    username: bot\n    password_env: REG_PW\n  \
                bad:\n    url: r.example.com\n    username: u\n    password: literal\n";
    let registries = load(yaml, &[("REG_PW", "s3cret")]);
    let (policy, labels) = update_policy(&[
        ("dockhand.update.enable", "true"),
        ("dockhand.update.registry", "ci"),
        ("dockhand.update.registry.auth", "true"),
    ]);
    let view = TargetLabels::resolve(&labels, &prefixes);
    let found = registries.credential_for(&image, "web", &policy, &view).await.unwrap().unwrap();
    assert_eq!(found.auth, RegistryAuth::password("bot", "s3cret", "registry.domain.com"));
    assert!(!format!("{found:?}").contains("s3cret"));
    let (policy, labels) =
        update_policy(&[("dockhand.update.enable", "true"), ("dockhand.update.registry", "bad")]);
    let view = TargetLabels::resolve(&labels, &prefixes);
    let err = registries.credential_for(&image, "web", &policy, &view).await.unwrap_err().to_string();
    assert!(err.contains("registries.bad.password") && err.contains("password_env"), "{err}");
    assert!(!err.contains("literal"), "{err}");
    let (policy, labels) =
        update_policy(&[("dockhand.update.enable", "true"), ("dockhand.update.registry", "nope")]);
    let view = TargetLabels::resolve(&labels, &prefixes);
    let err = registries.credential_for(&image, "web", &policy, &view).await.unwrap_err().to_string();
    assert!(err.contains("dockhand.update.registry on service web") && err.contains("only ci"), "{err}");
}

/// R3-01: a named or seed credential goes only to its own registry.
#[tokio::test]
async fn a_credential_is_never_offered_to_another_registry() {
    let prefixes = dockhand_policy::LabelPrefixes::default();
    let yaml = "registries:\n  ci:\n    url: registry.example.com\n    username: bot\n    password_env: REG_PW\n  \
                hub:\n    url: https://index.docker.io/v1/\n    username: hubbot\n    password_env: REG_PW\n";
    let registries = load(yaml, &[("REG_PW", "s3cret")]);
    let (policy, labels) =
        update_policy(&[("dockhand.update.enable", "true"), ("dockhand.update.registry", "ci")]);
    let view = TargetLabels::resolve(&labels, &prefixes);
    let evil = ImageRef::parse("evil.example.net/x:1").unwrap();
    let err = registries.credential_for(&evil, "web", &policy, &view).await.unwrap_err().to_string();
    assert!(
        err.contains("named credential ci")
            && err.contains("registry.example.com")
            && err.contains("not evil.example.net")
            && !err.contains("s3cret"),
        "{err}"
    );
    // The same host, written as the CLI would: default port, scheme, case.
    for ok in ["registry.example.com/team/app:1", "Registry.Example.com:443/team/app:1"] {
        let image = ImageRef::parse(&ok.to_ascii_lowercase()).unwrap();
        assert!(registries.credential_for(&image, "web", &policy, &view).await.unwrap().is_some(), "{ok}");
    }
    let (hub_policy, hub_labels) =
        update_policy(&[("dockhand.update.enable", "true"), ("dockhand.update.registry", "hub")]);
    let hub_view = TargetLabels::resolve(&hub_labels, &prefixes);
    let nginx = ImageRef::parse("nginx:1.27").unwrap();
    assert!(registries.credential_for(&nginx, "web", &hub_policy, &hub_view).await.unwrap().is_some());
    assert!(registries.credential_for(&evil, "web", &hub_policy, &hub_view).await.is_err());

    // The seed's labels and variables.
    let (policy, labels) =
        update_policy(&[("dockhand.update.enable", "true"), ("dockhand.update.registry.auth", "true")]);
    let view = TargetLabels::resolve(&labels, &prefixes);
    let vars = [
        ("SWARM_UTILS_REGISTRY_USER", "ci"),
        ("SWARM_UTILS_REGISTRY_PASSWORD", "pw-from-env"),
        ("SWARM_UTILS_REGISTRY_URL", "registry.example.com"),
    ];
    let err = load("{}", &vars).credential_for(&evil, "web", &policy, &view).await.unwrap_err().to_string();
    assert!(
        err.contains("SWARM_UTILS_REGISTRY_URL")
            && err.contains("not evil.example.net")
            && !err.contains("pw-from"),
        "{err}"
    );
}

#[tokio::test]
async fn a_helper_name_cannot_leave_path() {
    let json = r#"{"credsStore": "../../bin/sh"}"#;
    let err = from_file(json, "nginx").await.unwrap_err().to_string();
    assert!(err.contains("credsStore") && err.contains("not a helper name"), "{err}");
    let missing = r#"{"credHelpers": {"r.example.com": "dockhand-test-none"}}"#;
    let err = from_file(missing, "r.example.com/app").await.unwrap_err().to_string();
    assert!(err.contains("credHelpers.r.example.com") && err.contains("cannot run"), "{err}");
}
