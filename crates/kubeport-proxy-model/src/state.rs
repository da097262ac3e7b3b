//! The desired state of the proxy on one node, computed from Services, endpoints, the node
//! and the proxy configuration. Backends (nftables, iptables) translate it into rules.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::Service;

use crate::endpoints::{Endpoint, EndpointsMap};
use crate::service::{service_port_infos, ServicePortInfo};
use crate::topology::{categorize_endpoints, TopologyMode};
use crate::types::{IpFamily, NamespacedName, NodeInfo, NodePortAddresses, Protocol, ProxyConfig};

/// How a service address is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FrontendKind {
    ClusterIp,
    NodePort,
    ExternalIp,
    LoadBalancer,
}

/// One address:port a service port listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Frontend {
    pub kind: FrontendKind,
    pub ip: IpAddr,
    pub port: u16,
    pub protocol: Protocol,
}

/// Where traffic of one kind (internal = ClusterIP, external = NodePort/externalIPs/LB IPs)
/// goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrafficTarget {
    /// Load-balanced over the Cluster-policy endpoints.
    ClusterEndpoints,
    /// Load-balanced over the Local-policy (this node's) endpoints.
    LocalEndpoints,
    /// No usable endpoint anywhere: reject (ICMP port unreachable / TCP reset).
    Reject,
    /// Endpoints exist, but none on this node for a Local policy: drop.
    Drop,
}

/// Which ClusterIP traffic is masqueraded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterIpMasquerade {
    /// `--masquerade-all`.
    All,
    /// Traffic whose source is outside these (pod) CIDRs: off-cluster clients.
    NotFrom(Vec<IpNet>),
    /// No local-traffic detector: nothing.
    Never,
}

/// Desired state of one service port in one IP family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePortState {
    /// The port as projected from the Service.
    pub info: ServicePortInfo,
    /// Addresses the port answers on (ClusterIP, NodePort on each nodeport address,
    /// externalIPs, LB IPs), sorted.
    pub frontends: Vec<Frontend>,
    /// Endpoints used by the Cluster policy (after topology and terminating fallback).
    pub cluster_endpoints: Vec<Endpoint>,
    /// Endpoints used by the Local policy.
    pub local_endpoints: Vec<Endpoint>,
    /// Union of both: every endpoint this node may forward to.
    pub reachable_endpoints: Vec<Endpoint>,
    /// Some usable endpoint exists anywhere in the cluster.
    pub has_endpoints: bool,
    /// `local_endpoints` is not empty.
    pub has_local_endpoints: bool,
    /// Fate of ClusterIP traffic.
    pub internal_target: TrafficTarget,
    /// Fate of NodePort/externalIP/LB traffic; `None` when not externally accessible.
    pub external_target: Option<TrafficTarget>,
    /// Masquerading of ClusterIP traffic.
    pub cluster_ip_masquerade: ClusterIpMasquerade,
    /// External traffic is masqueraded unconditionally (externalTrafficPolicy Cluster).
    pub masquerade_external: bool,
    /// Distinct IPs of Ready (not terminating) endpoints on this node.
    pub local_ready_endpoints: usize,
    /// Topology filter applied to `cluster_endpoints`.
    pub topology_mode: Option<TopologyMode>,
}

/// Node addresses accepting NodePort traffic in one family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodePortTargets {
    /// Every local address (`fib daddr type local`), loopback excluded.
    AllLocalAddresses,
    /// Only these addresses.
    Addresses(Vec<IpAddr>),
}

/// Per-family settings the backends need besides the service ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilySettings {
    pub family: IpFamily,
    /// Primary node address of the family.
    pub node_ip: Option<IpAddr>,
    /// Pod CIDRs of the family (local-traffic detector); empty = no detector.
    pub local_traffic_cidrs: Vec<IpNet>,
    /// Service CIDRs of the family.
    pub service_cidrs: Vec<IpNet>,
    pub node_ports: NodePortTargets,
}

/// One healthCheckNodePort to serve (LoadBalancer Services with externalTrafficPolicy Local).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheckService {
    pub service: NamespacedName,
    pub node_port: u16,
    /// Distinct IPs of this node's Ready endpoints of the Service (largest over the families).
    pub local_endpoints: usize,
}

/// Everything the proxy should program on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyState {
    /// Mark bit requesting masquerade (`1 << masqueradeBit`).
    pub masquerade_mark: u32,
    pub masquerade_all: bool,
    /// IPv4 then IPv6.
    pub families: Vec<FamilySettings>,
    /// Sorted by (family, port name).
    pub service_ports: Vec<ServicePortState>,
    /// Sorted by Service name.
    pub health_checks: Vec<HealthCheckService>,
}

impl ProxyState {
    /// Settings of one family.
    pub fn family(&self, family: IpFamily) -> &FamilySettings {
        self.families
            .iter()
            .find(|settings| settings.family == family)
            .expect("ProxyState carries settings for both families")
    }

    /// Service ports of one family, in order.
    pub fn service_ports_of(&self, family: IpFamily) -> impl Iterator<Item = &ServicePortState> {
        self.service_ports
            .iter()
            .filter(move |state| state.info.family == family)
    }
}

fn family_settings(family: IpFamily, node: &NodeInfo, config: &ProxyConfig) -> FamilySettings {
    let of_family = |nets: &[IpNet]| -> Vec<IpNet> {
        nets.iter()
            .copied()
            .filter(|net| IpFamily::of_net(net) == family)
            .collect()
    };
    let node_ports = match &config.nodeport_addresses {
        NodePortAddresses::Primary => NodePortTargets::Addresses(
            node.primary_ip(family)
                .filter(|ip| !ip.is_loopback())
                .into_iter()
                .collect(),
        ),
        NodePortAddresses::Cidrs(cidrs) => {
            let cidrs = of_family(cidrs);
            // Like kube-proxy, no CIDR of this family (or a zero CIDR) means every address.
            if cidrs.is_empty() || cidrs.iter().any(|net| net.prefix_len() == 0) {
                NodePortTargets::AllLocalAddresses
            } else {
                let mut addresses: Vec<IpAddr> = Vec::new();
                for ip in &node.ips {
                    if IpFamily::of(ip) == family
                        && !ip.is_loopback()
                        && cidrs.iter().any(|net| net.contains(ip))
                        && !addresses.contains(ip)
                    {
                        addresses.push(*ip);
                    }
                }
                NodePortTargets::Addresses(addresses)
            }
        }
    };
    FamilySettings {
        family,
        node_ip: node.primary_ip(family),
        local_traffic_cidrs: of_family(&config.cluster_cidrs),
        service_cidrs: of_family(&config.service_cidrs),
        node_ports,
    }
}

fn node_port_ips(settings: &FamilySettings, node: &NodeInfo) -> Vec<IpAddr> {
    match &settings.node_ports {
        NodePortTargets::Addresses(addresses) => addresses.clone(),
        NodePortTargets::AllLocalAddresses => node
            .ips
            .iter()
            .copied()
            .filter(|ip| IpFamily::of(ip) == settings.family && !ip.is_loopback())
            .collect(),
    }
}

fn distinct_local_ready_ips<'a>(
    endpoints: impl IntoIterator<Item = &'a Endpoint>,
    node_name: &str,
) -> BTreeSet<IpAddr> {
    endpoints
        .into_iter()
        .filter(|ep| ep.ready && !ep.terminating && ep.is_local(node_name))
        .map(|ep| ep.ip)
        .collect()
}

/// Where traffic governed by one traffic policy goes.
fn policy_target(
    has_endpoints: bool,
    policy_local: bool,
    has_local_endpoints: bool,
) -> TrafficTarget {
    match (has_endpoints, policy_local, has_local_endpoints) {
        (false, _, _) => TrafficTarget::Reject,
        (true, false, _) => TrafficTarget::ClusterEndpoints,
        (true, true, true) => TrafficTarget::LocalEndpoints,
        (true, true, false) => TrafficTarget::Drop,
    }
}

/// Computes the desired state. Pure and deterministic: the same inputs always give the same
/// (sorted) output.
pub fn compute<'a>(
    services: impl IntoIterator<Item = &'a Service>,
    endpoints: &EndpointsMap,
    node: &NodeInfo,
    config: &ProxyConfig,
) -> ProxyState {
    let families: Vec<FamilySettings> = IpFamily::ALL
        .iter()
        .map(|family| family_settings(*family, node, config))
        .collect();
    let settings_of = |family: IpFamily| -> &FamilySettings {
        families
            .iter()
            .find(|settings| settings.family == family)
            .expect("both families")
    };

    let mut infos: Vec<ServicePortInfo> =
        services.into_iter().flat_map(service_port_infos).collect();
    infos.sort_by(|a, b| (a.family, &a.name).cmp(&(b.family, &b.name)));
    infos.dedup_by(|a, b| a.family == b.family && a.name == b.name);

    // Local Ready endpoint IPs per (Service, family), for the health check server.
    let mut local_ready_by_service: BTreeMap<(NamespacedName, IpFamily), BTreeSet<IpAddr>> =
        BTreeMap::new();

    let mut service_ports = Vec::with_capacity(infos.len());
    for info in infos {
        let settings = settings_of(info.family);
        let port_endpoints: Vec<Endpoint> = endpoints
            .get(&info.name)
            .into_iter()
            .flatten()
            .filter(|ep| ep.family() == info.family)
            .cloned()
            .collect();
        let categorized =
            categorize_endpoints(&port_endpoints, &info, node, config.prefer_same_node_hints);
        let local_ready = distinct_local_ready_ips(&port_endpoints, &node.name);
        local_ready_by_service
            .entry((info.name.service.clone(), info.family))
            .or_default()
            .extend(local_ready.iter().copied());

        let has_endpoints = categorized.has_any_endpoints;
        let has_local_endpoints = !categorized.local.is_empty();
        let internal_target = policy_target(
            has_endpoints,
            info.internal_policy_local,
            has_local_endpoints,
        );
        let external_target = info.externally_accessible().then_some(policy_target(
            has_endpoints,
            info.external_policy_local,
            has_local_endpoints,
        ));
        let cluster_ip_masquerade = if config.masquerade_all {
            ClusterIpMasquerade::All
        } else if settings.local_traffic_cidrs.is_empty() {
            ClusterIpMasquerade::Never
        } else {
            ClusterIpMasquerade::NotFrom(settings.local_traffic_cidrs.clone())
        };

        let protocol = info.name.protocol;
        let mut frontends = vec![Frontend {
            kind: FrontendKind::ClusterIp,
            ip: info.cluster_ip,
            port: info.port,
            protocol,
        }];
        if let Some(node_port) = info.node_port {
            for ip in node_port_ips(settings, node) {
                frontends.push(Frontend {
                    kind: FrontendKind::NodePort,
                    ip,
                    port: node_port,
                    protocol,
                });
            }
        }
        for ip in &info.external_ips {
            frontends.push(Frontend {
                kind: FrontendKind::ExternalIp,
                ip: *ip,
                port: info.port,
                protocol,
            });
        }
        for ip in &info.load_balancer_ips {
            frontends.push(Frontend {
                kind: FrontendKind::LoadBalancer,
                ip: *ip,
                port: info.port,
                protocol,
            });
        }
        frontends.sort();
        frontends.dedup();

        service_ports.push(ServicePortState {
            masquerade_external: info.externally_accessible() && !info.external_policy_local,
            frontends,
            cluster_endpoints: categorized.cluster,
            local_endpoints: categorized.local,
            reachable_endpoints: categorized.all_reachable,
            has_endpoints,
            has_local_endpoints,
            internal_target,
            external_target,
            cluster_ip_masquerade,
            local_ready_endpoints: local_ready.len(),
            topology_mode: categorized.topology_mode,
            info,
        });
    }

    let mut health_checks: BTreeMap<NamespacedName, HealthCheckService> = BTreeMap::new();
    for state in &service_ports {
        let Some(node_port) = state.info.health_check_node_port else {
            continue;
        };
        let service = &state.info.name.service;
        let local = local_ready_by_service
            .get(&(service.clone(), state.info.family))
            .map_or(0, BTreeSet::len);
        let entry = health_checks
            .entry(service.clone())
            .or_insert_with(|| HealthCheckService {
                service: service.clone(),
                node_port,
                local_endpoints: 0,
            });
        entry.local_endpoints = entry.local_endpoints.max(local);
    }

    ProxyState {
        masquerade_mark: config.masquerade_mark(),
        masquerade_all: config.masquerade_all,
        families,
        service_ports,
        health_checks: health_checks.into_values().collect(),
    }
}
