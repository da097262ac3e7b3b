//! Read helpers over `k8s_openapi` Services that behave like Go's zero values (an absent
//! string is `""`, an absent list is empty), plus kube's small predicates.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};

pub(crate) const TYPE_CLUSTER_IP: &str = "ClusterIP";
pub(crate) const TYPE_NODE_PORT: &str = "NodePort";
pub(crate) const TYPE_LOAD_BALANCER: &str = "LoadBalancer";
pub(crate) const TYPE_EXTERNAL_NAME: &str = "ExternalName";
pub(crate) const CLUSTER_IP_NONE: &str = "None";
pub(crate) const POLICY_SINGLE: &str = "SingleStack";
pub(crate) const POLICY_PREFER_DUAL: &str = "PreferDualStack";
pub(crate) const POLICY_REQUIRE_DUAL: &str = "RequireDualStack";
pub(crate) const ETP_LOCAL: &str = "Local";

pub(crate) fn spec_mut(svc: &mut Service) -> &mut ServiceSpec {
    svc.spec.get_or_insert_with(Default::default)
}

pub(crate) fn str_of(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("")
}

pub(crate) fn list_of(v: &Option<Vec<String>>) -> &[String] {
    v.as_deref().unwrap_or(&[])
}

pub(crate) fn svc_type(svc: &Service) -> &str {
    svc.spec.as_ref().map(|s| str_of(&s.type_)).unwrap_or("")
}

pub(crate) fn cluster_ip(svc: &Service) -> &str {
    svc.spec
        .as_ref()
        .map(|s| str_of(&s.cluster_ip))
        .unwrap_or("")
}

pub(crate) fn cluster_ips(svc: &Service) -> &[String] {
    svc.spec
        .as_ref()
        .map(|s| list_of(&s.cluster_ips))
        .unwrap_or(&[])
}

pub(crate) fn ip_families(svc: &Service) -> &[String] {
    svc.spec
        .as_ref()
        .map(|s| list_of(&s.ip_families))
        .unwrap_or(&[])
}

pub(crate) fn ip_family_policy(svc: &Service) -> Option<&str> {
    svc.spec
        .as_ref()
        .and_then(|s| s.ip_family_policy.as_deref())
}

pub(crate) fn ports(svc: &Service) -> &[ServicePort] {
    svc.spec
        .as_ref()
        .and_then(|s| s.ports.as_deref())
        .unwrap_or(&[])
}

pub(crate) fn external_ips(svc: &Service) -> &[String] {
    svc.spec
        .as_ref()
        .map(|s| list_of(&s.external_ips))
        .unwrap_or(&[])
}

pub(crate) fn etp(svc: &Service) -> &str {
    svc.spec
        .as_ref()
        .map(|s| str_of(&s.external_traffic_policy))
        .unwrap_or("")
}

pub(crate) fn hc_node_port(svc: &Service) -> i32 {
    svc.spec
        .as_ref()
        .and_then(|s| s.health_check_node_port)
        .unwrap_or(0)
}

pub(crate) fn node_port(p: &ServicePort) -> i32 {
    p.node_port.unwrap_or(0)
}

pub(crate) fn selector_is_empty(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .map(|m| m.is_empty())
        .unwrap_or(true)
}

/// `isHeadlessService`: exactly one clusterIP, and it is `None`.
pub(crate) fn is_headless(svc: &Service) -> bool {
    let ips = cluster_ips(svc);
    ips.len() == 1 && ips[0] == CLUSTER_IP_NONE
}

/// `ExternallyAccessible`: NodePort, LoadBalancer, or ClusterIP with external IPs.
pub(crate) fn externally_accessible(svc: &Service) -> bool {
    let t = svc_type(svc);
    t == TYPE_LOAD_BALANCER
        || t == TYPE_NODE_PORT
        || (t == TYPE_CLUSTER_IP && !external_ips(svc).is_empty())
}

/// `NeedsHealthCheck`: a LoadBalancer with `externalTrafficPolicy: Local`.
pub(crate) fn needs_health_check(svc: &Service) -> bool {
    svc_type(svc) == TYPE_LOAD_BALANCER && externally_accessible(svc) && etp(svc) == ETP_LOCAL
}

pub(crate) fn needs_cluster_ip(svc: &Service) -> bool {
    svc_type(svc) != TYPE_EXTERNAL_NAME
}

pub(crate) fn needs_node_port(svc: &Service) -> bool {
    let t = svc_type(svc);
    t == TYPE_NODE_PORT || t == TYPE_LOAD_BALANCER
}

/// The strategy's `needsHCNodePort` (type and policy only).
pub(crate) fn needs_hc_node_port(svc: &Service) -> bool {
    svc_type(svc) == TYPE_LOAD_BALANCER && etp(svc) == ETP_LOCAL
}

/// `sameClusterIPs`: singular and plural both equal.
pub(crate) fn same_cluster_ips(a: &Service, b: &Service) -> bool {
    cluster_ip(a) == cluster_ip(b) && cluster_ips(a) == cluster_ips(b)
}

pub(crate) fn same_ip_families(a: &Service, b: &Service) -> bool {
    ip_families(a) == ip_families(b)
}

/// Replaces empty lists by absent ones so that Services serialise as kube-apiserver's do
/// (Go omits empty slices).
pub(crate) fn none_if_empty(v: &mut Option<Vec<String>>) {
    if v.as_ref().is_some_and(|l| l.is_empty()) {
        *v = None;
    }
}
