//! Pure endpoint computation: which pods back a Service, on which ports, with which
//! conditions; how endpoints are packed into EndpointSlices (at most `max` each, new endpoints
//! going to the slice closest to full, a placeholder slice when there are none); and the legacy
//! Endpoints subsets with their repacking and 1000-address cap. No I/O here.

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort as CoreEndpointPort, EndpointSubset, ObjectReference, Pod,
    Service, ServicePort,
};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use crate::podutil;

pub const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";
pub const LABEL_MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
pub const LABEL_HEADLESS: &str = "service.kubernetes.io/headless";
/// The EndpointSlice controller's `managed-by` value.
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";
pub const ANNOTATION_TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";
pub const ANNOTATION_OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";
pub const LABEL_ZONE: &str = "topology.kubernetes.io/zone";
/// kube-controller-manager's `--max-endpoints-per-slice` default.
pub const DEFAULT_MAX_ENDPOINTS_PER_SLICE: usize = 100;
/// Addresses an Endpoints object may hold before it is truncated.
pub const ENDPOINTS_MAX_CAPACITY: usize = 1000;

fn spec(svc: &Service) -> Option<&k8s_openapi::api::core::v1::ServiceSpec> {
    svc.spec.as_ref()
}

fn is_headless(svc: &Service) -> bool {
    !matches!(spec(svc).and_then(|s| s.cluster_ip.as_deref()), Some(ip) if !ip.is_empty() && ip != "None")
}

fn publish_not_ready(svc: &Service) -> bool {
    spec(svc)
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false)
}

/// Whether a pod can be an endpoint: not terminal, has an IP, and (unless
/// `include_terminating`) not being deleted (kube's ShouldPodBeInEndpoints).
pub fn should_pod_be_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    if podutil::is_terminal(pod) {
        return false;
    }
    if pod_ips(pod).is_empty() {
        return false;
    }
    include_terminating || pod.metadata.deletion_timestamp.is_none()
}

/// The pod's IPs: `status.podIPs`, else `status.podIP`.
pub fn pod_ips(pod: &Pod) -> Vec<String> {
    let Some(st) = pod.status.as_ref() else {
        return Vec::new();
    };
    let mut ips: Vec<String> = st
        .pod_ips
        .iter()
        .flatten()
        .map(|p| p.ip.clone())
        .filter(|ip| !ip.is_empty())
        .collect();
    if ips.is_empty() {
        if let Some(ip) = st.pod_ip.as_ref().filter(|ip| !ip.is_empty()) {
            ips.push(ip.clone());
        }
    }
    ips
}

/// The container port a Service port targets on this pod: a number verbatim; a name is the
/// first container port with that name and protocol (then restartable init containers).
pub fn find_port(pod: &Pod, port: &ServicePort) -> Option<i32> {
    let protocol = port.protocol.as_deref().unwrap_or("TCP");
    match port
        .target_port
        .clone()
        .unwrap_or(IntOrString::Int(port.port))
    {
        IntOrString::Int(n) => Some(n),
        IntOrString::String(name) => {
            if let Ok(n) = name.parse::<i32>() {
                return Some(n);
            }
            let spec = pod.spec.as_ref()?;
            let sidecars = spec
                .init_containers
                .iter()
                .flatten()
                .filter(|c| c.restart_policy.as_deref() == Some("Always"));
            spec.containers
                .iter()
                .chain(sidecars)
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| {
                    p.name.as_deref() == Some(name.as_str())
                        && p.protocol.as_deref().unwrap_or("TCP") == protocol
                })
                .map(|p| p.container_port)
        }
    }
}

/// EndpointSlice ports for one pod: one per Service port whose target exists on the pod.
pub fn endpoint_ports(svc: &Service, pod: &Pod) -> Vec<EndpointPort> {
    spec(svc)
        .and_then(|s| s.ports.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|sp| {
            find_port(pod, sp).map(|n| EndpointPort {
                name: Some(sp.name.clone().unwrap_or_default()),
                port: Some(n),
                protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: sp.app_protocol.clone(),
            })
        })
        .collect()
}

/// Slice address types for a Service: from `ipFamilies`, else the clusterIP's family, else
/// both (headless without families).
pub fn address_types(svc: &Service) -> Vec<&'static str> {
    let mut out = Vec::new();
    for f in spec(svc)
        .and_then(|s| s.ip_families.as_ref())
        .into_iter()
        .flatten()
    {
        match f.as_str() {
            "IPv4" if !out.contains(&"IPv4") => out.push("IPv4"),
            "IPv6" if !out.contains(&"IPv6") => out.push("IPv6"),
            _ => {}
        }
    }
    if !out.is_empty() {
        return out;
    }
    match spec(svc).and_then(|s| s.cluster_ip.as_deref()) {
        Some(ip) if !ip.is_empty() && ip != "None" => {
            vec![if ip.contains(':') { "IPv6" } else { "IPv4" }]
        }
        _ => vec!["IPv4", "IPv6"],
    }
}

fn is_family(ip: &str, address_type: &str) -> bool {
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => address_type == "IPv4",
        Ok(IpAddr::V6(_)) => address_type == "IPv6",
        Err(_) => false,
    }
}

fn should_set_hostname(pod: &Pod, svc: &Service) -> bool {
    let Some(ps) = pod.spec.as_ref() else {
        return false;
    };
    ps.hostname.as_ref().is_some_and(|h| !h.is_empty())
        && ps.subdomain.is_some()
        && ps.subdomain == svc.metadata.name
        && pod.metadata.namespace == svc.metadata.namespace
}

fn pod_ref(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        ..Default::default()
    }
}

/// The slice endpoint for a pod: `serving` = Ready, `terminating` = being deleted,
/// `ready` = publishNotReadyAddresses || (serving && !terminating).
pub fn pod_to_endpoint(
    pod: &Pod,
    zone: Option<&str>,
    svc: &Service,
    address_type: &str,
) -> Endpoint {
    let serving = podutil::is_pod_ready(pod);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let ready = publish_not_ready(svc) || (serving && !terminating);
    let node = podutil::node_name(pod);
    Endpoint {
        addresses: pod_ips(pod)
            .into_iter()
            .filter(|ip| is_family(ip, address_type))
            .map(|ip| ip.parse::<IpAddr>().map(|a| a.to_string()).unwrap_or(ip))
            .collect(),
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        hostname: should_set_hostname(pod, svc)
            .then(|| pod.spec.as_ref().and_then(|s| s.hostname.clone()))
            .flatten(),
        node_name: (!node.is_empty()).then(|| node.to_string()),
        target_ref: Some(pod_ref(pod)),
        zone: zone.filter(|z| !z.is_empty()).map(String::from),
        ..Default::default()
    }
}

/// Identity of an endpoint (addresses, hostname, pod): endpoints with the same identity are
/// the same endpoint, possibly with changed conditions. Orders by IP numerically.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct EndpointKey {
    addresses: Vec<(Option<IpAddr>, String)>,
    hostname: String,
    namespace: String,
    name: String,
}

pub fn endpoint_key(ep: &Endpoint) -> EndpointKey {
    let mut addresses: Vec<(Option<IpAddr>, String)> = ep
        .addresses
        .iter()
        .map(|a| (a.parse().ok(), a.clone()))
        .collect();
    addresses.sort();
    let r = ep.target_ref.as_ref();
    EndpointKey {
        addresses,
        hostname: ep.hostname.clone().unwrap_or_default(),
        namespace: r.and_then(|r| r.namespace.clone()).unwrap_or_default(),
        name: r.and_then(|r| r.name.clone()).unwrap_or_default(),
    }
}

/// A canonical key for a port list (order-insensitive), grouping slices by ports.
pub fn ports_key(ports: &[EndpointPort]) -> String {
    let mut parts: Vec<String> = ports
        .iter()
        .map(|p| {
            format!(
                "{}/{}/{}/{}",
                p.name.as_deref().unwrap_or_default(),
                p.protocol.as_deref().unwrap_or_default(),
                p.port.unwrap_or_default(),
                p.app_protocol.as_deref().unwrap_or_default()
            )
        })
        .collect();
    parts.sort();
    parts.join(",")
}

/// Desired endpoints of one port list.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DesiredGroup {
    pub ports: Vec<EndpointPort>,
    pub endpoints: BTreeMap<EndpointKey, Endpoint>,
}

/// How the controller learns about a pod's node.
pub enum NodeInfo<'a> {
    /// The node exists; its zone label, if any.
    Found(Option<&'a str>),
    Missing,
}

/// The desired endpoints of one address type, grouped by port list, and the names of pods
/// left out because their node is unknown (they are retried later, as kube does).
pub fn desired_endpoints<'a>(
    svc: &Service,
    pods: &[Arc<Pod>],
    node: impl Fn(&str) -> NodeInfo<'a>,
    address_type: &str,
) -> (BTreeMap<String, DesiredGroup>, Vec<String>) {
    let mut groups: BTreeMap<String, DesiredGroup> = BTreeMap::new();
    let mut missing = Vec::new();
    for pod in pods {
        if !should_pod_be_in_endpoints(pod, true) {
            continue;
        }
        let ports = endpoint_ports(svc, pod);
        let zone = match node(podutil::node_name(pod)) {
            NodeInfo::Found(z) => z,
            NodeInfo::Missing => {
                if !publish_not_ready(svc) {
                    missing.push(pod.metadata.name.clone().unwrap_or_default());
                    continue;
                }
                None
            }
        };
        let ep = pod_to_endpoint(pod, zone, svc, address_type);
        let group = groups
            .entry(ports_key(&ports))
            .or_insert_with(|| DesiredGroup {
                ports,
                endpoints: BTreeMap::new(),
            });
        if !ep.addresses.is_empty() {
            group.endpoints.insert(endpoint_key(&ep), ep);
        }
    }
    (groups, missing)
}

/// Slice labels for a Service: its labels (reserved keys excluded), `headless` if it has no
/// cluster IP, service-name and managed-by; and whether the copied Service labels differ from
/// the slice's current ones.
pub fn slice_labels(
    current: &BTreeMap<String, String>,
    svc: &Service,
) -> (BTreeMap<String, String>, bool) {
    let reserved =
        |k: &str| k == LABEL_SERVICE_NAME || k == LABEL_MANAGED_BY || k == LABEL_HEADLESS;
    let cur: BTreeMap<&String, &String> = current.iter().filter(|(k, _)| !reserved(k)).collect();
    let mut out: BTreeMap<String, String> = svc
        .metadata
        .labels
        .iter()
        .flatten()
        .filter(|(k, _)| !reserved(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let changed = cur.len() != out.len() || cur.iter().any(|(k, v)| out.get(*k) != Some(*v));
    if is_headless(svc) {
        out.insert(LABEL_HEADLESS.into(), String::new());
    }
    out.insert(
        LABEL_SERVICE_NAME.into(),
        svc.metadata.name.clone().unwrap_or_default(),
    );
    out.insert(LABEL_MANAGED_BY.into(), MANAGED_BY.into());
    (out, changed)
}

/// A new, unnamed slice for a Service (`generateName: <svc>-`, controller owner reference).
pub fn new_slice(svc: &Service, ports: Vec<EndpointPort>, address_type: &str) -> EndpointSlice {
    let name = svc.metadata.name.clone().unwrap_or_default();
    let (labels, _) = slice_labels(&BTreeMap::new(), svc);
    EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(format!("{name}-")),
            namespace: svc.metadata.namespace.clone(),
            labels: Some(labels),
            owner_references: Some(vec![podutil::controller_ref(
                "v1",
                "Service",
                &name,
                svc.metadata.uid.as_deref().unwrap_or_default(),
            )]),
            ..Default::default()
        },
        address_type: address_type.to_string(),
        endpoints: Vec::new(),
        ports: Some(ports),
    }
}

/// Whether the slice has a controller owner reference to this Service.
pub fn owned_by(slice: &EndpointSlice, svc: &Service) -> bool {
    slice.metadata.owner_references.iter().flatten().any(|o| {
        o.kind == "Service" && o.api_version == "v1" && Some(&o.uid) == svc.metadata.uid.as_ref()
    })
}

/// What to write to bring a Service's slices to the desired state.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SlicePlan {
    pub create: Vec<EndpointSlice>,
    pub update: Vec<EndpointSlice>,
    pub delete: Vec<EndpointSlice>,
}

impl SlicePlan {
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

fn slice_ports(slice: &EndpointSlice) -> &[EndpointPort] {
    slice.ports.as_deref().unwrap_or_default()
}

/// Plans the slices of one address type (kube's reconcileByAddressType): existing slices
/// keep their still-desired endpoints in place; leftovers first fill slices that change
/// anyway (fullest first), then the unchanged slice that ends up closest to full, then new
/// slices; a placeholder slice exists when nothing else does; a create and a delete of the
/// same address type become one update.
pub fn plan_slices(
    svc: &Service,
    existing: &[EndpointSlice],
    desired: BTreeMap<String, DesiredGroup>,
    address_type: &str,
    max: usize,
) -> SlicePlan {
    let max = max.max(1);
    let mut plan = SlicePlan::default();
    let mut existing_by_ports: BTreeMap<String, Vec<&EndpointSlice>> = BTreeMap::new();
    for s in existing {
        if owned_by(s, svc) {
            existing_by_ports
                .entry(ports_key(slice_ports(s)))
                .or_default()
                .push(s);
        } else {
            plan.delete.push(s.clone());
        }
    }
    let desired_keys: BTreeSet<String> = desired.keys().cloned().collect();
    for (key, group) in desired {
        let slices = existing_by_ports.get(&key).cloned().unwrap_or_default();
        let (c, u, d) = plan_port_group(svc, &slices, group, address_type, max);
        plan.create.extend(c);
        plan.update.extend(u);
        plan.delete.extend(d);
    }
    for (key, slices) in &existing_by_ports {
        if !desired_keys.contains(key) {
            plan.delete.extend(slices.iter().map(|s| (*s).clone()));
        }
    }
    if existing.len() == plan.delete.len() && plan.create.is_empty() {
        let placeholder = new_slice(svc, Vec::new(), address_type);
        if plan.delete.len() == 1 && placeholder_equal(&plan.delete[0], &placeholder) {
            plan.delete.clear();
        } else {
            plan.create.push(placeholder);
        }
    }
    // Reuse a slice that would be deleted instead of creating another one.
    while !plan.create.is_empty() {
        let Some(i) = plan
            .delete
            .iter()
            .position(|d| d.address_type == address_type && owned_by(d, svc))
        else {
            break;
        };
        let old = plan.delete.remove(i);
        let mut s = plan.create.pop().unwrap();
        s.metadata.name = old.metadata.name.clone();
        s.metadata.generate_name = old.metadata.generate_name.clone();
        s.metadata.resource_version = old.metadata.resource_version.clone();
        s.metadata.uid = old.metadata.uid.clone();
        s.metadata.annotations = old.metadata.annotations.clone();
        plan.update.push(s);
    }
    plan
}

/// kube compares placeholders on namespace, labels, ports, address type and endpoints only.
fn placeholder_equal(a: &EndpointSlice, b: &EndpointSlice) -> bool {
    a.metadata.namespace == b.metadata.namespace
        && a.metadata.labels.clone().unwrap_or_default()
            == b.metadata.labels.clone().unwrap_or_default()
        && a.address_type == b.address_type
        && a.endpoints.is_empty()
        && b.endpoints.is_empty()
        && slice_ports(a).is_empty()
        && slice_ports(b).is_empty()
}

type Planned = (Vec<EndpointSlice>, Vec<EndpointSlice>, Vec<EndpointSlice>);

fn plan_port_group(
    svc: &Service,
    existing: &[&EndpointSlice],
    group: DesiredGroup,
    address_type: &str,
    max: usize,
) -> Planned {
    let mut desired = group.endpoints;
    let mut by_name: BTreeMap<String, EndpointSlice> = BTreeMap::new();
    let mut unchanged: BTreeSet<String> = BTreeSet::new();
    let mut to_update: BTreeSet<String> = BTreeSet::new();
    let mut to_delete: BTreeSet<String> = BTreeSet::new();

    // 1. Keep desired endpoints where they are; drop the others.
    for s in existing {
        let name = s.metadata.name.clone().unwrap_or_default();
        let mut kept = Vec::new();
        let mut changed = false;
        for ep in &s.endpoints {
            if let Some(want) = desired.remove(&endpoint_key(ep)) {
                if &want != ep {
                    changed = true;
                }
                kept.push(want);
            }
        }
        let (labels, labels_changed) =
            slice_labels(&s.metadata.labels.clone().unwrap_or_default(), svc);
        if changed || kept.len() != s.endpoints.len() {
            if kept.is_empty() {
                to_delete.insert(name.clone());
                by_name.insert(name, (*s).clone());
            } else {
                let mut copy = (*s).clone();
                copy.endpoints = kept;
                copy.metadata.labels = Some(labels);
                to_update.insert(name.clone());
                by_name.insert(name, copy);
            }
        } else if labels_changed {
            let mut copy = (*s).clone();
            copy.metadata.labels = Some(labels);
            to_update.insert(name.clone());
            by_name.insert(name, copy);
        } else {
            unchanged.insert(name.clone());
            by_name.insert(name, (*s).clone());
        }
    }

    // 2. Fill slices that are being updated anyway, fullest first.
    if !desired.is_empty() && !to_update.is_empty() {
        let mut names: Vec<String> = to_update.iter().cloned().collect();
        names.sort_by_key(|n| std::cmp::Reverse(by_name[n].endpoints.len()));
        for n in names {
            let s = by_name.get_mut(&n).unwrap();
            while s.endpoints.len() < max {
                let Some((_, ep)) = desired.pop_first() else {
                    break;
                };
                s.endpoints.push(ep);
            }
        }
    }

    // 3. Put leftovers into the unchanged slice closest to full, or into new slices.
    let mut create = Vec::new();
    while !desired.is_empty() {
        let mut fill: Option<EndpointSlice> = None;
        if desired.len() < max && !unchanged.is_empty() {
            let mut best: Option<(usize, &String)> = None;
            for n in &unchanged {
                let len = by_name[n].endpoints.len();
                if len + desired.len() <= max {
                    let diff = max - (len + desired.len());
                    if best.is_none_or(|(d, _)| diff < d) {
                        best = Some((diff, n));
                    }
                }
            }
            fill = best.map(|(_, n)| by_name[n].clone());
        }
        let mut s = fill.unwrap_or_else(|| new_slice(svc, group.ports.clone(), address_type));
        while s.endpoints.len() < max {
            let Some((_, ep)) = desired.pop_first() else {
                break;
            };
            s.endpoints.push(ep);
        }
        match s.metadata.name.clone() {
            Some(n) => {
                unchanged.remove(&n);
                to_update.insert(n.clone());
                by_name.insert(n, s);
            }
            None => create.push(s),
        }
    }
    let update = to_update.iter().map(|n| by_name[n].clone()).collect();
    let delete = to_delete.iter().map(|n| by_name[n].clone()).collect();
    (create, update, delete)
}

// ---- legacy Endpoints ----

/// The pod IP used in Endpoints: the first pod IP of the Service's primary family.
fn endpoints_ip(svc: &Service, pod: &Pod) -> Option<String> {
    let ips = pod_ips(pod);
    let family = spec(svc)
        .and_then(|s| s.ip_families.as_ref())
        .and_then(|f| f.first().cloned())
        .or_else(|| {
            spec(svc)
                .and_then(|s| s.cluster_ip.as_deref())
                .filter(|ip| !ip.is_empty() && *ip != "None")
                .map(|ip| if ip.contains(':') { "IPv6" } else { "IPv4" }.to_string())
        });
    match family {
        Some(f) => ips.into_iter().find(|ip| is_family(ip, &f)),
        None => ips.into_iter().next(),
    }
}

fn endpoint_address(svc: &Service, pod: &Pod) -> Option<EndpointAddress> {
    let ip = endpoints_ip(svc, pod)?;
    let node = podutil::node_name(pod);
    Some(EndpointAddress {
        ip,
        hostname: should_set_hostname(pod, svc)
            .then(|| pod.spec.as_ref().and_then(|s| s.hostname.clone()))
            .flatten(),
        node_name: (!node.is_empty()).then(|| node.to_string()),
        target_ref: Some(pod_ref(pod)),
    })
}

/// Endpoints subsets for a Service (kube's endpoints controller): ready pods in `addresses`,
/// others in `notReadyAddresses` (all in `addresses` with publishNotReadyAddresses, which also
/// keeps terminating pods); pods lacking a targeted port are left out of that port.
pub fn endpoints_subsets(svc: &Service, pods: &[Arc<Pod>]) -> Vec<EndpointSubset> {
    let tolerate_unready = publish_not_ready(svc);
    let svc_ports: Vec<ServicePort> = spec(svc).and_then(|s| s.ports.clone()).unwrap_or_default();
    let mut subsets = Vec::new();
    for pod in pods {
        if !should_pod_be_in_endpoints(pod, tolerate_unready) {
            continue;
        }
        let Some(addr) = endpoint_address(svc, pod) else {
            continue;
        };
        let ready = tolerate_unready || podutil::is_pod_ready(pod);
        let mut push = |ports: Vec<CoreEndpointPort>| {
            subsets.push(EndpointSubset {
                addresses: ready.then(|| vec![addr.clone()]),
                not_ready_addresses: (!ready).then(|| vec![addr.clone()]),
                ports: Some(ports),
            })
        };
        if svc_ports.is_empty() {
            if is_headless(svc) {
                push(Vec::new());
            }
            continue;
        }
        for sp in &svc_ports {
            if let Some(n) = find_port(pod, sp) {
                push(vec![CoreEndpointPort {
                    name: sp.name.clone().filter(|n| !n.is_empty()),
                    port: n,
                    protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                    app_protocol: sp.app_protocol.clone(),
                }]);
            }
        }
    }
    repack_subsets(subsets)
}

fn port_sort_key(p: &CoreEndpointPort) -> (String, i32, String, String) {
    (
        p.name.clone().unwrap_or_default(),
        p.port,
        p.protocol.clone().unwrap_or_default(),
        p.app_protocol.clone().unwrap_or_default(),
    )
}

fn address_sort_key(a: &EndpointAddress) -> (String, String) {
    (
        a.ip.clone(),
        a.target_ref
            .as_ref()
            .and_then(|r| r.uid.clone())
            .unwrap_or_default(),
    )
}

/// Groups addresses that offer the same set of ports into one subset, sorted (kube's
/// RepackSubsets + SortSubsets; addresses sort by IP string, then pod UID).
pub fn repack_subsets(subsets: Vec<EndpointSubset>) -> Vec<EndpointSubset> {
    type PortKey = (String, i32, String, String);
    /// An address with the ports it offers.
    struct Offer {
        addr: EndpointAddress,
        ports: BTreeMap<PortKey, CoreEndpointPort>,
    }
    /// The subset of one port set.
    #[derive(Default)]
    struct Group {
        ports: Vec<CoreEndpointPort>,
        ready: Vec<EndpointAddress>,
        not_ready: Vec<EndpointAddress>,
    }
    // (address identity, ready) -> the address and the ports it offers
    let mut offered: BTreeMap<((String, String), bool), Offer> = BTreeMap::new();
    for ss in subsets {
        let ports = ss.ports.unwrap_or_default();
        for (ready, list) in [(true, ss.addresses), (false, ss.not_ready_addresses)] {
            for a in list.into_iter().flatten() {
                let entry = offered
                    .entry((address_sort_key(&a), ready))
                    .or_insert_with(|| Offer {
                        addr: a.clone(),
                        ports: BTreeMap::new(),
                    });
                for p in &ports {
                    entry.ports.insert(port_sort_key(p), p.clone());
                }
            }
        }
    }
    let mut grouped: BTreeMap<Vec<PortKey>, Group> = BTreeMap::new();
    for ((_, ready), offer) in offered {
        let key: Vec<PortKey> = offer.ports.keys().cloned().collect();
        let g = grouped.entry(key).or_insert_with(|| Group {
            ports: offer.ports.values().cloned().collect(),
            ..Default::default()
        });
        if ready {
            g.ready.push(offer.addr);
        } else {
            g.not_ready.push(offer.addr);
        }
    }
    grouped
        .into_values()
        .map(|mut g| {
            g.ready.sort_by_key(address_sort_key);
            g.not_ready.sort_by_key(address_sort_key);
            EndpointSubset {
                addresses: (!g.ready.is_empty()).then_some(g.ready),
                not_ready_addresses: (!g.not_ready.is_empty()).then_some(g.not_ready),
                ports: (!g.ports.is_empty()).then_some(g.ports),
            }
        })
        .collect()
}

/// Caps subsets at `max` addresses, keeping ready ones first and spreading the cut
/// proportionally over subsets (kube's truncateEndpoints). Returns whether it truncated.
pub fn truncate_subsets(subsets: &mut [EndpointSubset], max: usize) -> bool {
    let count = |v: &Option<Vec<EndpointAddress>>| v.as_ref().map_or(0, |v| v.len());
    let total_ready: usize = subsets.iter().map(|s| count(&s.addresses)).sum();
    let total_not_ready: usize = subsets.iter().map(|s| count(&s.not_ready_addresses)).sum();
    if total_ready + total_not_ready <= max {
        return false;
    }
    let truncate_ready = total_ready > max;
    let (budget, total) = if truncate_ready {
        (max, total_ready)
    } else {
        (max - total_ready, total_not_ready)
    };
    let mut can_add = budget;
    for s in subsets.iter_mut() {
        let n = if truncate_ready {
            count(&s.addresses)
        } else {
            count(&s.not_ready_addresses)
        };
        let share = ((n as f64 / total as f64) * budget as f64).ceil() as usize;
        let take = share.min(can_add);
        if truncate_ready {
            if let Some(a) = s.addresses.as_mut() {
                a.truncate(take);
                can_add -= a.len();
            }
            s.not_ready_addresses = None;
        } else if let Some(a) = s.not_ready_addresses.as_mut() {
            a.truncate(take);
            can_add -= a.len();
        }
    }
    true
}

/// Total addresses (ready and not ready) in subsets.
pub fn address_count(subsets: &[EndpointSubset]) -> usize {
    subsets
        .iter()
        .map(|s| {
            s.addresses.as_ref().map_or(0, |a| a.len())
                + s.not_ready_addresses.as_ref().map_or(0, |a| a.len())
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Container, ContainerPort, PodCondition, PodIP, PodSpec, PodStatus, ServiceSpec,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn svc(target: IntOrString) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("dev".into()),
                uid: Some("svc-uid".into()),
                labels: Some([("app".to_string(), "web-svc".to_string())].into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                cluster_ip: Some("10.96.0.10".into()),
                ip_families: Some(vec!["IPv4".into()]),
                selector: Some([("app".to_string(), "web".to_string())].into()),
                ports: Some(vec![ServicePort {
                    name: Some("http".into()),
                    port: 80,
                    protocol: Some("TCP".into()),
                    target_port: Some(target),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn pod(name: &str, ip: &str, ready: bool, ports: &[(&str, i32)]) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("dev".into()),
                uid: Some(format!("uid-{name}")),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some("node-a".into()),
                containers: vec![Container {
                    name: "c".into(),
                    ports: Some(
                        ports
                            .iter()
                            .map(|(n, p)| ContainerPort {
                                name: Some(n.to_string()),
                                container_port: *p,
                                protocol: Some("TCP".into()),
                                ..Default::default()
                            })
                            .collect(),
                    ),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some("Running".into()),
                pod_ip: (!ip.is_empty()).then(|| ip.to_string()),
                pod_ips: (!ip.is_empty()).then(|| vec![PodIP { ip: ip.to_string() }]),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    last_transition_time: Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        })
    }

    fn found(_: &str) -> NodeInfo<'static> {
        NodeInfo::Found(Some("zone-1"))
    }

    #[test]
    fn conditions_follow_readiness_and_termination() {
        let s = svc(IntOrString::Int(80));
        let ready = pod_to_endpoint(&pod("a", "10.0.0.1", true, &[]), Some("z"), &s, "IPv4");
        let c = ready.conditions.unwrap();
        assert_eq!(
            (c.ready, c.serving, c.terminating),
            (Some(true), Some(true), Some(false))
        );
        assert_eq!(ready.node_name.as_deref(), Some("node-a"));
        assert_eq!(ready.zone.as_deref(), Some("z"));
        assert_eq!(ready.target_ref.unwrap().name.as_deref(), Some("a"));

        let mut term = (*pod("b", "10.0.0.2", true, &[])).clone();
        term.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        let c = pod_to_endpoint(&term, None, &s, "IPv4").conditions.unwrap();
        assert_eq!(
            (c.ready, c.serving, c.terminating),
            (Some(false), Some(true), Some(true))
        );

        let mut publish = s.clone();
        publish.spec.as_mut().unwrap().publish_not_ready_addresses = Some(true);
        let c = pod_to_endpoint(&pod("c", "10.0.0.3", false, &[]), None, &publish, "IPv4")
            .conditions
            .unwrap();
        assert_eq!((c.ready, c.serving), (Some(true), Some(false)));
    }

    #[test]
    fn pods_without_ip_or_terminal_are_not_endpoints() {
        assert!(!should_pod_be_in_endpoints(&pod("a", "", true, &[]), true));
        let mut done = (*pod("b", "10.0.0.2", true, &[])).clone();
        done.status.as_mut().unwrap().phase = Some("Succeeded".into());
        assert!(!should_pod_be_in_endpoints(&done, true));
        let mut term = (*pod("c", "10.0.0.3", true, &[])).clone();
        term.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        assert!(should_pod_be_in_endpoints(&term, true));
        assert!(!should_pod_be_in_endpoints(&term, false));
    }

    #[test]
    fn named_target_port_resolves_per_pod_by_name_and_protocol() {
        let s = svc(IntOrString::String("http".into()));
        let sp = &s.spec.as_ref().unwrap().ports.as_ref().unwrap()[0];
        assert_eq!(
            find_port(&pod("a", "10.0.0.1", true, &[("http", 8080)]), sp),
            Some(8080)
        );
        assert_eq!(
            find_port(&pod("b", "10.0.0.2", true, &[("http", 9090)]), sp),
            Some(9090)
        );
        assert_eq!(
            find_port(&pod("c", "10.0.0.3", true, &[("metrics", 9100)]), sp),
            None
        );
        let mut udp = sp.clone();
        udp.protocol = Some("UDP".into());
        assert_eq!(
            find_port(&pod("a", "10.0.0.1", true, &[("http", 8080)]), &udp),
            None
        );

        let pods = vec![
            pod("a", "10.0.0.1", true, &[("http", 8080)]),
            pod("b", "10.0.0.2", true, &[("http", 9090)]),
            pod("c", "10.0.0.3", true, &[("metrics", 9100)]),
        ];
        let (groups, missing) = desired_endpoints(&s, &pods, found, "IPv4");
        assert!(missing.is_empty());
        // Three port lists: 8080, 9090, and none for the pod without the port.
        assert_eq!(groups.len(), 3);
        assert!(groups
            .values()
            .any(|g| g.ports.is_empty() && g.endpoints.len() == 1));
        // Endpoints leave the port-less pod out entirely.
        let subsets = endpoints_subsets(&s, &pods);
        let ips: Vec<String> = subsets
            .iter()
            .flat_map(|s| s.addresses.iter().flatten().map(|a| a.ip.clone()))
            .collect();
        assert_eq!(ips, vec!["10.0.0.1", "10.0.0.2"]);
    }

    fn many(n: usize) -> Vec<Arc<Pod>> {
        (0..n)
            .map(|i| {
                pod(
                    &format!("p{i}"),
                    &format!("10.1.{}.{}", i / 250, i % 250 + 1),
                    true,
                    &[],
                )
            })
            .collect()
    }

    #[test]
    fn slices_hold_at_most_max_endpoints_and_a_placeholder_when_empty() {
        let s = svc(IntOrString::Int(80));
        let (groups, _) = desired_endpoints(&s, &many(250), found, "IPv4");
        let plan = plan_slices(&s, &[], groups, "IPv4", 100);
        let sizes: Vec<usize> = plan.create.iter().map(|s| s.endpoints.len()).collect();
        assert_eq!(sizes, vec![100, 100, 50]);
        let first = &plan.create[0];
        assert_eq!(first.metadata.generate_name.as_deref(), Some("web-"));
        let labels = first.metadata.labels.as_ref().unwrap();
        assert_eq!(labels[LABEL_SERVICE_NAME], "web");
        assert_eq!(labels[LABEL_MANAGED_BY], MANAGED_BY);
        assert_eq!(labels["app"], "web-svc");
        let owner = &first.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.controller, owner.block_owner_deletion),
            (Some(true), Some(true))
        );
        assert_eq!(first.ports.as_ref().unwrap()[0].port, Some(80));
        assert_eq!(
            first.ports.as_ref().unwrap()[0].name.as_deref(),
            Some("http")
        );
        // IPs sort numerically: 10.1.0.1, 10.1.0.2, ..., not 10.1.0.1, 10.1.0.10.
        assert_eq!(first.endpoints[1].addresses[0], "10.1.0.2");

        let (none, _) = desired_endpoints(&s, &[], found, "IPv4");
        let plan = plan_slices(&s, &[], none, "IPv4", 100);
        assert_eq!(plan.create.len(), 1);
        assert!(plan.create[0].endpoints.is_empty());
        assert_eq!(plan.create[0].ports.as_deref(), Some(&[][..]));
    }

    fn named(mut s: EndpointSlice, name: &str) -> EndpointSlice {
        s.metadata.name = Some(name.into());
        s.metadata.generate_name = None;
        s.metadata.resource_version = Some("7".into());
        s
    }

    #[test]
    fn steady_state_plans_nothing_and_changes_touch_one_slice() {
        let s = svc(IntOrString::Int(80));
        let pods = many(150);
        let (groups, _) = desired_endpoints(&s, &pods, found, "IPv4");
        let plan = plan_slices(&s, &[], groups.clone(), "IPv4", 100);
        let existing: Vec<EndpointSlice> = plan
            .create
            .into_iter()
            .enumerate()
            .map(|(i, sl)| named(sl, &format!("web-{i}")))
            .collect();
        assert!(plan_slices(&s, &existing, groups, "IPv4", 100).is_empty());

        // One pod loses readiness: only its slice is rewritten, in place.
        let mut changed = pods.clone();
        changed[120] = pod("p120", "10.1.0.121", false, &[]);
        let (groups, _) = desired_endpoints(&s, &changed, found, "IPv4");
        let plan = plan_slices(&s, &existing, groups, "IPv4", 100);
        assert!(plan.create.is_empty() && plan.delete.is_empty());
        assert_eq!(plan.update.len(), 1);
        assert_eq!(plan.update[0].metadata.name.as_deref(), Some("web-1"));
        let ep = plan.update[0]
            .endpoints
            .iter()
            .find(|e| e.addresses[0] == "10.1.0.121")
            .unwrap();
        assert_eq!(ep.conditions.as_ref().unwrap().ready, Some(false));

        // A new pod goes to the unchanged slice that has room.
        let mut more = pods.clone();
        more.push(pod("new", "10.2.0.1", true, &[]));
        let (groups, _) = desired_endpoints(&s, &more, found, "IPv4");
        let plan = plan_slices(&s, &existing, groups, "IPv4", 100);
        assert_eq!(plan.update.len(), 1);
        assert_eq!(plan.update[0].metadata.name.as_deref(), Some("web-1"));
        assert_eq!(plan.update[0].endpoints.len(), 51);

        // All pods gone: one slice becomes the placeholder (update), the other is deleted.
        let (groups, _) = desired_endpoints(&s, &[], found, "IPv4");
        let plan = plan_slices(&s, &existing, groups, "IPv4", 100);
        assert_eq!(plan.update.len(), 1);
        assert!(plan.update[0].endpoints.is_empty());
        assert_eq!(plan.delete.len(), 1);
    }

    #[test]
    fn slices_of_another_owner_are_deleted() {
        let s = svc(IntOrString::Int(80));
        let mut other = svc(IntOrString::Int(80));
        other.metadata.uid = Some("old-uid".into());
        let (groups, _) = desired_endpoints(&other, &many(2), found, "IPv4");
        let stale: Vec<EndpointSlice> = plan_slices(&other, &[], groups, "IPv4", 100)
            .create
            .into_iter()
            .map(|sl| named(sl, "web-old"))
            .collect();
        let (groups, _) = desired_endpoints(&s, &many(2), found, "IPv4");
        let plan = plan_slices(&s, &stale, groups, "IPv4", 100);
        assert_eq!(plan.create.len(), 1);
        assert_eq!(plan.delete.len(), 1);
        assert!(plan.update.is_empty());
    }

    #[test]
    fn pods_on_unknown_nodes_are_skipped_unless_published() {
        let s = svc(IntOrString::Int(80));
        let (groups, missing) = desired_endpoints(&s, &many(1), |_| NodeInfo::Missing, "IPv4");
        assert_eq!(missing, vec!["p0"]);
        assert!(groups.is_empty());
    }

    #[test]
    fn endpoints_split_ready_and_not_ready_and_sort_by_ip_string() {
        let s = svc(IntOrString::Int(80));
        let pods = vec![
            pod("a", "10.244.1.10", true, &[]),
            pod("b", "10.244.1.2", true, &[]),
            pod("c", "10.244.2.3", false, &[]),
        ];
        let subsets = endpoints_subsets(&s, &pods);
        assert_eq!(subsets.len(), 1);
        let ready: Vec<&str> = subsets[0]
            .addresses
            .iter()
            .flatten()
            .map(|a| a.ip.as_str())
            .collect();
        assert_eq!(ready, vec!["10.244.1.10", "10.244.1.2"]);
        let nr = subsets[0].not_ready_addresses.as_ref().unwrap();
        assert_eq!(nr[0].ip, "10.244.2.3");
        assert_eq!(nr[0].node_name.as_deref(), Some("node-a"));
        assert_eq!(
            nr[0].target_ref.as_ref().unwrap().kind.as_deref(),
            Some("Pod")
        );
        let port = &subsets[0].ports.as_ref().unwrap()[0];
        assert_eq!((port.name.as_deref(), port.port), (Some("http"), 80));
    }

    #[test]
    fn endpoints_are_capped_at_1000_keeping_ready_first() {
        let s = svc(IntOrString::Int(80));
        let mut pods = many(900);
        pods.extend((0..300).map(|i| {
            pod(
                &format!("n{i}"),
                &format!("10.9.{}.{}", i / 250, i % 250 + 1),
                false,
                &[],
            )
        }));
        let mut subsets = endpoints_subsets(&s, &pods);
        assert_eq!(address_count(&subsets), 1200);
        assert!(truncate_subsets(&mut subsets, ENDPOINTS_MAX_CAPACITY));
        assert_eq!(address_count(&subsets), 1000);
        assert_eq!(subsets[0].addresses.as_ref().unwrap().len(), 900);
        assert!(!truncate_subsets(&mut subsets, ENDPOINTS_MAX_CAPACITY));
    }
}
