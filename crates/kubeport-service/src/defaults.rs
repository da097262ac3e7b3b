//! `SetDefaults_Service` (pkg/apis/core/v1/defaults.go). IP-family fields are defaulted at
//! allocation time, not here.

use crate::util::{
    externally_accessible, spec_mut, TYPE_CLUSTER_IP, TYPE_LOAD_BALANCER, TYPE_NODE_PORT,
};
use k8s_openapi::api::core::v1::{ClientIPConfig, Service, SessionAffinityConfig};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// `DefaultClientIPServiceAffinitySeconds`: three hours.
pub const DEFAULT_CLIENT_IP_AFFINITY_SECONDS: i32 = 10800;

/// Applies kube-apiserver's v1 defaults to a decoded Service, in place.
pub fn set_defaults(svc: &mut Service) {
    {
        let spec = spec_mut(svc);
        if spec.session_affinity.as_deref().unwrap_or("").is_empty() {
            spec.session_affinity = Some("None".into());
        }
        match spec.session_affinity.as_deref() {
            Some("None") => spec.session_affinity_config = None,
            Some("ClientIP") => {
                let has_timeout = spec
                    .session_affinity_config
                    .as_ref()
                    .and_then(|c| c.client_ip.as_ref())
                    .and_then(|c| c.timeout_seconds)
                    .is_some();
                if !has_timeout {
                    spec.session_affinity_config = Some(SessionAffinityConfig {
                        client_ip: Some(ClientIPConfig {
                            timeout_seconds: Some(DEFAULT_CLIENT_IP_AFFINITY_SECONDS),
                        }),
                    });
                }
            }
            _ => {}
        }
        if spec.type_.as_deref().unwrap_or("").is_empty() {
            spec.type_ = Some(TYPE_CLUSTER_IP.into());
        }
        for p in spec.ports.iter_mut().flatten() {
            if p.protocol.as_deref().unwrap_or("").is_empty() {
                p.protocol = Some("TCP".into());
            }
            let unset = match &p.target_port {
                None => true,
                Some(IntOrString::Int(0)) => true,
                Some(IntOrString::String(s)) => s.is_empty(),
                Some(IntOrString::Int(_)) => false,
            };
            if unset {
                p.target_port = Some(IntOrString::Int(p.port));
            }
        }
    }
    let accessible = externally_accessible(svc);
    let spec = spec_mut(svc);
    if accessible
        && spec
            .external_traffic_policy
            .as_deref()
            .unwrap_or("")
            .is_empty()
    {
        spec.external_traffic_policy = Some("Cluster".into());
    }
    let t = spec.type_.clone().unwrap_or_default();
    if spec.internal_traffic_policy.is_none()
        && (t == TYPE_NODE_PORT || t == TYPE_LOAD_BALANCER || t == TYPE_CLUSTER_IP)
    {
        spec.internal_traffic_policy = Some("Cluster".into());
    }
    if t == TYPE_LOAD_BALANCER {
        if spec.allocate_load_balancer_node_ports.is_none() {
            spec.allocate_load_balancer_node_ports = Some(true);
        }
        default_ingress_ip_mode(svc);
    }
}

/// LoadBalancerIPMode (GA): ingress points with an IP and no `ipMode` get `VIP`.
pub(crate) fn default_ingress_ip_mode(svc: &mut Service) {
    let ingress = svc
        .status
        .as_mut()
        .and_then(|s| s.load_balancer.as_mut())
        .and_then(|lb| lb.ingress.as_mut());
    for ing in ingress.into_iter().flatten() {
        if ing.ip.as_deref().is_some_and(|ip| !ip.is_empty()) && ing.ip_mode.is_none() {
            ing.ip_mode = Some("VIP".into());
        }
    }
}
