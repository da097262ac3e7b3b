//! Endpoints as the proxy sees them, and the cache merging EndpointSlices per Service.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::types::{
    IpFamily, NamespacedName, Protocol, ServicePortName, LABEL_HEADLESS, LABEL_SERVICE_NAME,
    LABEL_SERVICE_PROXY_NAME,
};

/// One backend address of one service port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub port: u16,
    /// `nodeName` of the endpoint, if the slice says.
    pub node_name: Option<String>,
    pub zone: Option<String>,
    /// `hints.forZones[].name`.
    pub zone_hints: BTreeSet<String>,
    /// `hints.forNodes[].name`.
    pub node_hints: BTreeSet<String>,
    /// `conditions.ready` (absent = true).
    pub ready: bool,
    /// `conditions.serving` (absent = true).
    pub serving: bool,
    /// `conditions.terminating` (absent = false).
    pub terminating: bool,
}

impl Endpoint {
    /// A ready, non-terminating endpoint with no node or hints (handy for tests and callers
    /// building endpoints by hand).
    pub fn ready(ip: IpAddr, port: u16) -> Self {
        Endpoint {
            ip,
            port,
            node_name: None,
            zone: None,
            zone_hints: BTreeSet::new(),
            node_hints: BTreeSet::new(),
            ready: true,
            serving: true,
            terminating: false,
        }
    }

    /// `ip:port`, IPv6 as `[ip]:port`: the key endpoints are deduplicated and sorted by.
    pub fn addr_string(&self) -> String {
        SocketAddr::new(self.ip, self.port).to_string()
    }

    /// Runs on the given node.
    pub fn is_local(&self, node_name: &str) -> bool {
        !node_name.is_empty() && self.node_name.as_deref() == Some(node_name)
    }

    pub fn family(&self) -> IpFamily {
        IpFamily::of(&self.ip)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.addr_string())
    }
}

/// Endpoints of every service port, each list deduplicated by `ip:port` and sorted by that
/// string (so `10.244.1.10:80` comes before `10.244.1.2:80`). Both IP families share a list.
pub type EndpointsMap = BTreeMap<ServicePortName, Vec<Endpoint>>;

/// Sorts endpoints by their `ip:port` string, as kube-proxy does.
pub fn sort_endpoints(endpoints: &mut [Endpoint]) {
    endpoints.sort_by_cached_key(Endpoint::addr_string);
}

/// The Service a slice belongs to, or `None` when kube-proxy ignores the slice: no
/// `kubernetes.io/service-name` label, a service-proxy-name or headless label, or no
/// namespace/name.
pub fn slice_service(slice: &EndpointSlice) -> Option<NamespacedName> {
    let labels = slice.metadata.labels.as_ref()?;
    if labels.contains_key(LABEL_SERVICE_PROXY_NAME) || labels.contains_key(LABEL_HEADLESS) {
        return None;
    }
    let service = labels
        .get(LABEL_SERVICE_NAME)
        .filter(|name| !name.is_empty())?;
    let namespace = slice
        .metadata
        .namespace
        .as_deref()
        .filter(|ns| !ns.is_empty())?;
    slice
        .metadata
        .name
        .as_deref()
        .filter(|name| !name.is_empty())?;
    Some(NamespacedName::new(namespace, service.as_str()))
}

/// What the cache keeps of one slice.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SliceInfo {
    /// (port name, protocol, port number), sorted.
    ports: Vec<(String, Protocol, u16)>,
    /// Endpoints with `port` left at 0; the port comes from `ports`.
    endpoints: Vec<Endpoint>,
}

impl SliceInfo {
    fn from_slice(slice: &EndpointSlice) -> SliceInfo {
        let mut ports = Vec::new();
        for port in slice.ports.iter().flatten() {
            // kube-proxy ignores ports without a number and ports with an unknown protocol.
            let Some(number) = port
                .port
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p != 0)
            else {
                continue;
            };
            let Some(protocol) = Protocol::from_api(port.protocol.as_deref()) else {
                continue;
            };
            ports.push((port.name.clone().unwrap_or_default(), protocol, number));
        }
        ports.sort();

        let mut endpoints = Vec::new();
        if matches!(slice.address_type.as_str(), "IPv4" | "IPv6") {
            for endpoint in &slice.endpoints {
                // Only the first address counts (the API allows exactly one today).
                let Some(ip) = endpoint
                    .addresses
                    .first()
                    .and_then(|a| a.parse::<IpAddr>().ok())
                else {
                    continue;
                };
                let conditions = endpoint.conditions.as_ref();
                let hints = endpoint.hints.as_ref();
                endpoints.push(Endpoint {
                    ip,
                    port: 0,
                    node_name: endpoint.node_name.clone(),
                    zone: endpoint.zone.clone(),
                    zone_hints: hints
                        .and_then(|h| h.for_zones.as_ref())
                        .into_iter()
                        .flatten()
                        .map(|z| z.name.clone())
                        .collect(),
                    node_hints: hints
                        .and_then(|h| h.for_nodes.as_ref())
                        .into_iter()
                        .flatten()
                        .map(|n| n.name.clone())
                        .collect(),
                    ready: conditions.and_then(|c| c.ready).unwrap_or(true),
                    serving: conditions.and_then(|c| c.serving).unwrap_or(true),
                    terminating: conditions.and_then(|c| c.terminating).unwrap_or(false),
                });
            }
        }
        SliceInfo { ports, endpoints }
    }
}

/// EndpointSlices grouped by Service and slice name; merges them into per-port endpoint lists.
#[derive(Debug, Clone, Default)]
pub struct EndpointSliceCache {
    slices: BTreeMap<NamespacedName, BTreeMap<String, SliceInfo>>,
}

impl EndpointSliceCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a created or updated slice. Returns the slice's Service when the cached
    /// content changed, `None` when nothing changed or the slice is ignored.
    pub fn update(&mut self, slice: &EndpointSlice) -> Option<NamespacedName> {
        let service = slice_service(slice)?;
        let slice_name = slice.metadata.name.clone().unwrap_or_default();
        let info = SliceInfo::from_slice(slice);
        let by_name = self.slices.entry(service.clone()).or_default();
        if by_name.get(&slice_name) == Some(&info) {
            return None;
        }
        by_name.insert(slice_name, info);
        Some(service)
    }

    /// Forgets a deleted slice. Returns its Service when the slice was known.
    pub fn remove(&mut self, slice: &EndpointSlice) -> Option<NamespacedName> {
        let service = slice_service(slice)?;
        let slice_name = slice.metadata.name.as_deref().unwrap_or_default();
        let by_name = self.slices.get_mut(&service)?;
        by_name.remove(slice_name)?;
        if by_name.is_empty() {
            self.slices.remove(&service);
        }
        Some(service)
    }

    /// Merged endpoints of one Service, per service port: duplicates of an `ip:port` (the same
    /// endpoint listed by two slices while it moves) keep the non-terminating copy.
    pub fn service_endpoints(&self, service: &NamespacedName) -> EndpointsMap {
        let mut merged: BTreeMap<ServicePortName, BTreeMap<String, Endpoint>> = BTreeMap::new();
        let Some(by_name) = self.slices.get(service) else {
            return EndpointsMap::new();
        };
        for info in by_name.values() {
            for (port_name, protocol, number) in &info.ports {
                let key = ServicePortName {
                    service: service.clone(),
                    port: port_name.clone(),
                    protocol: *protocol,
                };
                let set = merged.entry(key).or_default();
                for endpoint in &info.endpoints {
                    let mut endpoint = endpoint.clone();
                    endpoint.port = *number;
                    let addr = endpoint.addr_string();
                    // A copy already seen wins unless it is terminating and this one is not.
                    let replace = set
                        .get(&addr)
                        .is_none_or(|existing| existing.terminating && !endpoint.terminating);
                    if replace {
                        set.insert(addr, endpoint);
                    }
                }
            }
        }
        merged
            .into_iter()
            .filter(|(_, set)| !set.is_empty())
            .map(|(name, set)| (name, set.into_values().collect()))
            .collect()
    }

    /// Merged endpoints of every Service (see [`EndpointSliceCache::service_endpoints`]).
    pub fn endpoints_map(&self) -> EndpointsMap {
        self.slices
            .keys()
            .flat_map(|service| self.service_endpoints(service))
            .collect()
    }

    /// Builds a cache from a list of slices (ignored slices are skipped).
    pub fn from_slices<'a>(slices: impl IntoIterator<Item = &'a EndpointSlice>) -> Self {
        let mut cache = Self::new();
        for slice in slices {
            cache.update(slice);
        }
        cache
    }
}
