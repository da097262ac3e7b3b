//! What the proxy needs from a Service: one [`ServicePortInfo`] per (IP family, port).

use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::Service;

use crate::types::{
    IpFamily, NamespacedName, Protocol, ServicePortName, LABEL_HEADLESS, LABEL_SERVICE_PROXY_NAME,
};

/// Session affinity timeout used when a ClientIP Service carries no explicit timeout
/// (the API server defaults `timeoutSeconds` to this value).
pub const DEFAULT_CLIENT_IP_TIMEOUT_SECONDS: u32 = 10800;

/// Session affinity of a service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SessionAffinity {
    #[default]
    None,
    /// Sticky per client address for this many seconds.
    ClientIp { timeout_seconds: u32 },
}

/// One port of a Service in one IP family, reduced to what the proxy uses
/// (kube-proxy's `BaseServicePortInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePortInfo {
    pub name: ServicePortName,
    pub family: IpFamily,
    pub cluster_ip: IpAddr,
    pub port: u16,
    /// `None` when the port has no nodePort.
    pub node_port: Option<u16>,
    /// `spec.externalIPs` of this family.
    pub external_ips: Vec<IpAddr>,
    /// `status.loadBalancer.ingress[].ip` of this family whose `ipMode` is VIP (or unset).
    pub load_balancer_ips: Vec<IpAddr>,
    /// `spec.loadBalancerSourceRanges` of this family (whitespace tolerated, host bits cleared).
    pub load_balancer_source_ranges: Vec<IpNet>,
    pub session_affinity: SessionAffinity,
    /// Externally accessible and `externalTrafficPolicy: Local`.
    pub external_policy_local: bool,
    /// `internalTrafficPolicy: Local`.
    pub internal_policy_local: bool,
    /// Set for type LoadBalancer with `externalTrafficPolicy: Local`.
    pub health_check_node_port: Option<u16>,
}

impl ServicePortInfo {
    /// Reachable through something other than the ClusterIP (NodePort, externalIPs, LB IPs).
    pub fn externally_accessible(&self) -> bool {
        self.node_port.is_some()
            || !self.load_balancer_ips.is_empty()
            || !self.external_ips.is_empty()
    }

    /// Traffic is ever sent to endpoints chosen by the "Cluster" policy. Even with
    /// `externalTrafficPolicy: Local` they are needed to short-circuit pod and host traffic.
    pub fn uses_cluster_endpoints(&self) -> bool {
        !self.internal_policy_local || self.externally_accessible()
    }

    /// Traffic is ever sent to endpoints chosen by the "Local" policy.
    pub fn uses_local_endpoints(&self) -> bool {
        self.internal_policy_local || (self.external_policy_local && self.externally_accessible())
    }
}

fn has_label(service: &Service, key: &str) -> bool {
    service
        .metadata
        .labels
        .as_ref()
        .is_some_and(|labels| labels.contains_key(key))
}

/// kube-proxy ignores ExternalName and headless Services, and (through its informer's label
/// selector) Services labelled with a service-proxy-name or as headless.
pub fn should_skip_service(service: &Service) -> bool {
    if has_label(service, LABEL_SERVICE_PROXY_NAME) || has_label(service, LABEL_HEADLESS) {
        return true;
    }
    let Some(spec) = service.spec.as_ref() else {
        return true;
    };
    if spec.type_.as_deref() == Some("ExternalName") {
        return true;
    }
    !matches!(spec.cluster_ip.as_deref(), Some(ip) if !ip.is_empty() && ip != "None")
}

/// Namespace and name of a Service.
pub fn service_name(service: &Service) -> NamespacedName {
    NamespacedName::new(
        service.metadata.namespace.clone().unwrap_or_default(),
        service.metadata.name.clone().unwrap_or_default(),
    )
}

/// The ClusterIPs of a Service, at most one per family (`spec.clusterIPs`, falling back to
/// `spec.clusterIP`); unparsable entries are ignored.
fn cluster_ips(service: &Service) -> Vec<IpAddr> {
    let Some(spec) = service.spec.as_ref() else {
        return Vec::new();
    };
    let listed: Vec<&String> = match spec.cluster_ips.as_ref() {
        Some(ips) if !ips.is_empty() => ips.iter().collect(),
        _ => spec.cluster_ip.iter().collect(),
    };
    let mut result: Vec<IpAddr> = Vec::new();
    for text in listed {
        if let Ok(ip) = text.trim().parse::<IpAddr>() {
            if !result
                .iter()
                .any(|known| IpFamily::of(known) == IpFamily::of(&ip))
            {
                result.push(ip);
            }
        }
    }
    result
}

fn port_number(value: Option<i32>) -> Option<u16> {
    value
        .and_then(|v| u16::try_from(v).ok())
        .filter(|v| *v != 0)
}

/// Projects a Service onto its proxied ports: one entry per port and per IP family that has a
/// ClusterIP. Returns nothing for Services the proxy ignores (see [`should_skip_service`]).
/// Ports with an unknown protocol or an out-of-range number are skipped.
pub fn service_port_infos(service: &Service) -> Vec<ServicePortInfo> {
    if should_skip_service(service) {
        return Vec::new();
    }
    let Some(spec) = service.spec.as_ref() else {
        return Vec::new();
    };
    let svc_name = service_name(service);
    let service_type = spec.type_.as_deref().unwrap_or("ClusterIP");
    let external_ips_all: Vec<IpAddr> = spec
        .external_ips
        .iter()
        .flatten()
        .filter_map(|ip| ip.trim().parse::<IpAddr>().ok())
        .collect();
    let externally_accessible_type = service_type == "LoadBalancer"
        || service_type == "NodePort"
        || (service_type == "ClusterIP" && !external_ips_all.is_empty());
    let external_policy_local =
        externally_accessible_type && spec.external_traffic_policy.as_deref() == Some("Local");
    let internal_policy_local = spec.internal_traffic_policy.as_deref() == Some("Local");
    let session_affinity = if spec.session_affinity.as_deref() == Some("ClientIP") {
        let timeout = spec
            .session_affinity_config
            .as_ref()
            .and_then(|config| config.client_ip.as_ref())
            .and_then(|client_ip| client_ip.timeout_seconds)
            .and_then(|seconds| u32::try_from(seconds).ok())
            .filter(|seconds| *seconds > 0)
            .unwrap_or(DEFAULT_CLIENT_IP_TIMEOUT_SECONDS);
        SessionAffinity::ClientIp {
            timeout_seconds: timeout,
        }
    } else {
        SessionAffinity::None
    };
    let health_check_node_port = if service_type == "LoadBalancer" && external_policy_local {
        port_number(spec.health_check_node_port)
    } else {
        None
    };
    let source_ranges_all: Vec<IpNet> = spec
        .load_balancer_source_ranges
        .iter()
        .flatten()
        .filter_map(|range| range.trim().parse::<IpNet>().ok())
        .map(|net| net.trunc())
        .collect();
    let lb_ips_all: Vec<IpAddr> = service
        .status
        .as_ref()
        .and_then(|status| status.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter(|ingress| matches!(ingress.ip_mode.as_deref(), None | Some("VIP")))
        .filter_map(|ingress| ingress.ip.as_deref())
        .filter_map(|ip| ip.trim().parse::<IpAddr>().ok())
        .collect();

    let mut infos = Vec::new();
    for cluster_ip in cluster_ips(service) {
        let family = IpFamily::of(&cluster_ip);
        let of_family = |ips: &[IpAddr]| -> Vec<IpAddr> {
            ips.iter()
                .copied()
                .filter(|ip| IpFamily::of(ip) == family)
                .collect()
        };
        for port in spec.ports.iter().flatten() {
            let Some(protocol) = Protocol::from_api(port.protocol.as_deref()) else {
                continue;
            };
            let Some(port_number_value) = port_number(Some(port.port)) else {
                continue;
            };
            infos.push(ServicePortInfo {
                name: ServicePortName {
                    service: svc_name.clone(),
                    port: port.name.clone().unwrap_or_default(),
                    protocol,
                },
                family,
                cluster_ip,
                port: port_number_value,
                node_port: port_number(port.node_port),
                external_ips: of_family(&external_ips_all),
                load_balancer_ips: of_family(&lb_ips_all),
                load_balancer_source_ranges: source_ranges_all
                    .iter()
                    .copied()
                    .filter(|net| IpFamily::of_net(net) == family)
                    .collect(),
                session_affinity,
                external_policy_local,
                internal_policy_local,
                health_check_node_port,
            });
        }
    }
    infos
}
