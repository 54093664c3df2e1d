//! The environment-override grammar of the `docker.hosts` section:
//! `DOCKHAND_DOCKER_HOSTS_<ID>_<PARAM>=value`, and the variables `${NAME}` may use.

use std::collections::BTreeMap;

use figment::providers::{Format, Yaml};
use figment::value::{Dict, Tag, Value};

use crate::{ConfigError, Environment};

/// The prefix of environment overrides.
pub const ENV_PREFIX: &str = "DOCKHAND_DOCKER_HOSTS_";

/// The parameters an environment override can set, as they appear in its name.
const ENV_PARAMS: [(&str, &[&str]); 13] = [
    ("MANAGED_HEALTHCHECK_INTERVAL", &["managed", "healthcheck", "interval"]),
    ("MANAGED_HEALTHCHECK_RETRIES", &["managed", "healthcheck", "retries"]),
    ("MANAGED_EXECUTABLE", &["managed", "executable"]),
    ("MANAGED_LOGPREFIX", &["managed", "logprefix"]),
    ("MANAGED_LOGLEVEL", &["managed", "loglevel"]),
    ("MANAGED_ARGS", &["managed", "args"]),
    ("MANAGED_ENV", &["managed", "env"]),
    ("CLIENTTLS_CERT", &["clienttls", "cert"]),
    ("CLIENTTLS_KEY", &["clienttls", "key"]),
    ("CLIENTTLS_CA", &["clienttls", "ca"]),
    ("DISABLED", &["disabled"]),
    ("HOST", &["host"]),
    ("TYPE", &["type"]),
];

/// How a host id appears in a variable name: uppercased, every character outside
/// `A-Z0-9` turned into `_`.
pub fn env_id(id: &str) -> String {
    id.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect()
}

/// Applies `DOCKHAND_DOCKER_HOSTS_<ID>_<PARAM>` variables; returns `(host id, variable)`.
pub(crate) fn apply_env(
    hosts: &mut Dict,
    env: &Environment,
    problems: &mut Vec<ConfigError>,
) -> Vec<(String, String)> {
    let mut applied = Vec::new();
    for (var, value) in env.vars_with_prefix(ENV_PREFIX) {
        let rest = &var[ENV_PREFIX.len()..];
        let Some((param, path)) = ENV_PARAMS.iter().find(|(param, _)| {
            rest.len() > param.len() + 1
                && rest.ends_with(param)
                && rest[..rest.len() - param.len()].ends_with('_')
        }) else {
            let names: Vec<&str> = ENV_PARAMS.iter().map(|(p, _)| *p).collect();
            problems.push(ConfigError::new(
                ConfigError::ENVIRONMENT,
                var,
                format!("expected {ENV_PREFIX}<ID>_<PARAM> with PARAM one of {}", names.join(", ")),
            ));
            continue;
        };
        let id_part = &rest[..rest.len() - param.len() - 1];
        let matching: Vec<String> = hosts.keys().filter(|id| env_id(id) == id_part).cloned().collect();
        let id = match matching.as_slice() {
            [one] => one.clone(),
            [] => id_part.to_lowercase(),
            many => {
                problems.push(ConfigError::new(
                    ConfigError::ENVIRONMENT,
                    var,
                    format!("names more than one host ({}); rename one of them", many.join(", ")),
                ));
                continue;
            }
        };
        let is_list = path.last().is_some_and(|leaf| *leaf == "env" || *leaf == "args");
        let parsed = if is_list { parse_list(value) } else { parse_scalar(value) };
        let entry = hosts.entry(id.clone()).or_insert_with(|| Value::Dict(Tag::Default, Dict::new()));
        set_path(entry, path, parsed);
        applied.push((id, var.to_owned()));
    }
    applied
}

/// A list from a variable: `[a, b]` in YAML flow syntax, or one plain value.
fn parse_list(value: &str) -> Value {
    if value.trim_start().starts_with('[') {
        if let Ok(Value::Array(tag, items)) =
            figment::Figment::from(Yaml::string(&format!("v: {value}"))).extract_inner::<Value>("v")
        {
            return Value::Array(tag, items);
        }
    }
    Value::Array(Tag::Default, vec![Value::String(Tag::Default, value.to_owned())])
}

/// A scalar from a variable: `true`/`false` and whole numbers become such, the rest text.
fn parse_scalar(value: &str) -> Value {
    match value {
        "true" => Value::Bool(Tag::Default, true),
        "false" => Value::Bool(Tag::Default, false),
        v => match v.parse::<u32>() {
            Ok(n) if !v.starts_with('0') || v == "0" => Value::from(n),
            _ => Value::String(Tag::Default, v.to_owned()),
        },
    }
}

fn set_path(value: &mut Value, path: &[&str], leaf: Value) {
    let Some((first, rest)) = path.split_first() else {
        *value = leaf;
        return;
    };
    if !matches!(value, Value::Dict(..)) {
        *value = Value::Dict(Tag::Default, Dict::new());
    }
    if let Value::Dict(_, dict) = value {
        let child = dict.entry((*first).to_owned()).or_insert_with(|| Value::Dict(Tag::Default, Dict::new()));
        set_path(child, rest, leaf);
    }
}

/// The variables `${NAME}` may use: the environment, plus `USER_CACHE_DIR` (`$HOME/.cache`).
pub(crate) fn expansion_vars(env: &Environment) -> BTreeMap<String, String> {
    let mut vars: BTreeMap<String, String> =
        env.vars_with_prefix("").map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    if let (false, Some(home)) = (vars.contains_key("USER_CACHE_DIR"), env.get("HOME")) {
        vars.insert("USER_CACHE_DIR".to_owned(), format!("{}/.cache", home.trim_end_matches('/')));
    }
    vars
}
