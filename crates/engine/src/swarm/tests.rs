//! Tests of the swarm calls' types: specs, modes, filters and log options.

use super::*;
use crate::swarm::spec::Service;
use crate::swarm::spec::ServiceSpec;

#[test]
fn unknown_spec_fields_survive_a_round_trip() {
    let wire = r#"{"Name":"web","Labels":{"a":"b"},"TaskTemplate":{"ContainerSpec":{"Image":"nginx",
        "Isolation":"default","Future":{"x":1}},"Resources":{"Limits":{}},"ForceUpdate":3},
        "Mode":{"Replicated":{"Replicas":2}},"UpdateConfig":{"Parallelism":1},"EndpointSpec":{"Mode":"vip"}}"#;
    let spec: ServiceSpec = serde_json::from_str(wire).unwrap();
    assert_eq!(spec.replicas(), Some(2));
    assert_eq!(spec.task_template.container_spec.image, "nginx");
    let back: Value = serde_json::to_value(&spec).unwrap();
    let original: Value = serde_json::from_str(wire).unwrap();
    assert_eq!(back, original);
}

#[test]
fn modes_and_builders() {
    let spec = ServiceSpec::new("x", "img").global().with_constraint("node.id==abc");
    assert!(spec.is_global() && spec.replicas().is_none());
    let json = serde_json::to_value(&spec).unwrap();
    assert_eq!(json["Mode"], serde_json::json!({"Global": {}}));
    assert_eq!(json["TaskTemplate"]["Placement"]["Constraints"][0], "node.id==abc");
}

#[test]
fn large_versions_decode_as_u64() {
    let s: Service = serde_json::from_str(r#"{"ID":"x","Version":{"Index":18446744073709551615}}"#).unwrap();
    assert_eq!(s.version.index, u64::MAX);
}

#[test]
fn path_segments_are_checked_and_encoded() {
    assert!(object("service", "..").is_err());
    assert!(object("service", "").unwrap_err().to_string().contains("service \"\""));
    assert_eq!(object("service", "a/b").unwrap(), "a%2Fb");
}
