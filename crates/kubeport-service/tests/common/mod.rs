#![allow(dead_code)]
//! Fixtures shared by the integration tests.

use k8s_openapi::api::core::v1::Service;
use kubeport_core::FieldError;
use kubeport_service::{PortRange, ServiceConfig};
use serde_json::{json, Value};

/// A Service named `web` in `default` with the given spec (JSON).
pub fn svc(spec: Value) -> Service {
    named("web", spec)
}

pub fn named(name: &str, spec: Value) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")},
        "spec": spec,
    }))
    .expect("valid Service JSON")
}

/// kubeadm's defaults: 10.96.0.0/12 and 30000-32767.
pub fn cfg() -> ServiceConfig {
    cfg_with("10.96.0.0/12", "30000-32767")
}

pub fn cfg_with(cidr: &str, ports: &str) -> ServiceConfig {
    ServiceConfig {
        cluster_ip_range: cidr.parse().unwrap(),
        node_port_range: ports.parse::<PortRange>().unwrap(),
    }
}

pub fn rendered(errs: &[FieldError]) -> Vec<String> {
    errs.iter().map(|e| e.to_string()).collect()
}

pub fn spec(s: &Service) -> Value {
    serde_json::to_value(s.spec.as_ref().unwrap()).unwrap()
}
