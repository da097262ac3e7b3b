//! Endpoint selection: which endpoints the Cluster and Local traffic policies use on this node.

use std::collections::BTreeMap;

use crate::endpoints::Endpoint;
use crate::service::ServicePortInfo;
use crate::types::NodeInfo;

/// Topology filter applied to the Cluster endpoints, chosen from the endpoints' hints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopologyMode {
    /// No filtering.
    None,
    /// Only endpoints hinted for this node's zone.
    PreferSameZone,
    /// Only endpoints hinted for this node.
    PreferSameNode,
}

/// Result of [`categorize_endpoints`]; every list is sorted by `ip:port`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CategorizedEndpoints {
    /// Endpoints for "Cluster" traffic policy (empty when the port never uses it).
    pub cluster: Vec<Endpoint>,
    /// Endpoints for "Local" traffic policy (empty when the port never uses it).
    pub local: Vec<Endpoint>,
    /// Union of `cluster` and `local`: every endpoint this node may send traffic to.
    pub all_reachable: Vec<Endpoint>,
    /// Some usable endpoint exists anywhere in the cluster (even if none is reachable here).
    pub has_any_endpoints: bool,
    /// Topology filter used for `cluster`.
    pub topology_mode: Option<TopologyMode>,
}

/// Picks the topology mode from the Ready endpoints' hints: same-node when the gate is on,
/// every Ready endpoint has node hints and one names this node; else same-zone when every
/// Ready endpoint has zone hints and one names this node's zone; else none.
pub fn topology_mode_from_hints(
    endpoints: &[Endpoint],
    node_name: &str,
    zone: &str,
    prefer_same_node_hints: bool,
) -> TopologyMode {
    let ready: Vec<&Endpoint> = endpoints.iter().filter(|ep| ep.ready).collect();
    if ready.is_empty() {
        return TopologyMode::None;
    }
    if prefer_same_node_hints
        && ready.iter().all(|ep| !ep.node_hints.is_empty())
        && ready.iter().any(|ep| ep.node_hints.contains(node_name))
    {
        return TopologyMode::PreferSameNode;
    }
    if ready.iter().all(|ep| !ep.zone_hints.is_empty())
        && ready.iter().any(|ep| ep.zone_hints.contains(zone))
    {
        return TopologyMode::PreferSameZone;
    }
    TopologyMode::None
}

fn available_for_topology(
    endpoint: &Endpoint,
    mode: TopologyMode,
    node_name: &str,
    zone: &str,
) -> bool {
    match mode {
        TopologyMode::None => true,
        TopologyMode::PreferSameNode => endpoint.node_hints.contains(node_name),
        TopologyMode::PreferSameZone => endpoint.zone_hints.contains(zone),
    }
}

/// Splits a service port's endpoints (sorted by `ip:port`, of the port's family) into the
/// Cluster and Local policy sets, kube-proxy's `CategorizeEndpoints`:
/// - Cluster: Ready endpoints passing the topology filter; if none, every Serving∧Terminating
///   endpoint.
/// - Local: local Ready endpoints; if none, local Serving∧Terminating endpoints (a fallback
///   independent of the Cluster one).
/// - "has any endpoints": some Ready or Serving∧Terminating endpoint exists anywhere.
pub fn categorize_endpoints(
    endpoints: &[Endpoint],
    service: &ServicePortInfo,
    node: &NodeInfo,
    prefer_same_node_hints: bool,
) -> CategorizedEndpoints {
    let mut result = CategorizedEndpoints::default();
    if endpoints.is_empty() {
        return result;
    }
    let node_name = node.name.as_str();
    let zone = node.zone().unwrap_or("");

    if service.uses_cluster_endpoints() {
        let mode = topology_mode_from_hints(endpoints, node_name, zone, prefer_same_node_hints);
        result.topology_mode = Some(mode);
        result.cluster = endpoints
            .iter()
            .filter(|ep| ep.ready && available_for_topology(ep, mode, node_name, zone))
            .cloned()
            .collect();
        // The topology mode is only chosen when a hinted Ready endpoint exists, so an empty
        // list here means there is no Ready endpoint at all.
        if result.cluster.is_empty() {
            result.cluster = endpoints
                .iter()
                .filter(|ep| ep.serving && ep.terminating)
                .cloned()
                .collect();
        }
        result.has_any_endpoints = !result.cluster.is_empty();
    }

    if !service.uses_local_endpoints() {
        result.all_reachable = result.cluster.clone();
        return result;
    }

    let usable = |ep: &&Endpoint| ep.ready || (ep.serving && ep.terminating);
    if endpoints.iter().any(|ep| usable(&ep)) {
        result.has_any_endpoints = true;
    }
    let local_ready: Vec<Endpoint> = endpoints
        .iter()
        .filter(|ep| ep.is_local(node_name) && ep.ready)
        .cloned()
        .collect();
    result.local = if local_ready.is_empty() {
        endpoints
            .iter()
            .filter(|ep| ep.is_local(node_name) && ep.serving && ep.terminating)
            .cloned()
            .collect()
    } else {
        local_ready
    };

    if !service.uses_cluster_endpoints() {
        result.all_reachable = result.local.clone();
        return result;
    }

    let mut union: BTreeMap<String, Endpoint> = BTreeMap::new();
    for endpoint in result.cluster.iter().chain(result.local.iter()) {
        union
            .entry(endpoint.addr_string())
            .or_insert_with(|| endpoint.clone());
    }
    result.all_reachable = union.into_values().collect();
    result
}
