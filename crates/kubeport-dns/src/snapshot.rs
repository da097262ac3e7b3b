//! An immutable, indexed view of the objects DNS answers from.
//!
//! The watchers rebuild a [`Snapshot`] whenever Services, EndpointSlices, Pods or Namespaces
//! change; queries read the current one without locking the caches. Building is a pure
//! function of the objects, so the resolver can be tested without an API server.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The label tying an EndpointSlice to its Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// A port as DNS sees it: SRV records are keyed by name and protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortEntry {
    /// The port's name, lowercase; empty for an unnamed port.
    pub name: String,
    /// `tcp`, `udp` or `sctp` (lowercase, as it appears in `_port._proto` labels).
    pub protocol: String,
    pub port: u16,
}

/// A ready endpoint of a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointEntry {
    /// The endpoint's `hostname`, or its first address with `.`/`:` replaced by `-`
    /// (the system-assigned identifier the DNS spec allows, as CoreDNS forms it).
    pub hostname: String,
    /// Whether `hostname` came from the endpoint's `hostname` field.
    pub explicit_hostname: bool,
    pub addresses: Vec<IpAddr>,
    /// The ports of the slice this endpoint came from (headless SRV answers use them: no
    /// proxy translates the Service port for a headless Service).
    pub ports: Arc<Vec<PortEntry>>,
}

/// How a Service is addressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceAddressing {
    /// A virtual IP (one per family); empty while not yet allocated.
    ClusterIp(Vec<IpAddr>),
    /// `clusterIP: None`: the name resolves to the ready endpoints.
    Headless,
    /// `type: ExternalName`: the name is a CNAME to this (fully qualified, lowercase) name.
    ExternalName(String),
}

/// One Service with everything DNS needs about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEntry {
    pub namespace: String,
    pub name: String,
    pub addressing: ServiceAddressing,
    pub ports: Vec<PortEntry>,
    /// Ready endpoints from all of the Service's EndpointSlices.
    pub endpoints: Vec<EndpointEntry>,
}

/// Who owns an IP address, for PTR answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpOwner {
    /// A Service's ClusterIP.
    Service { namespace: String, name: String },
    /// A ready endpoint of a Service.
    Endpoint {
        namespace: String,
        service: String,
        hostname: String,
    },
    /// A running Pod (not host-network).
    Pod { namespace: String },
}

/// The indexed objects. Keys are lowercase: Kubernetes names are lowercase already, and
/// DNS comparisons are case-insensitive.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    namespaces: HashSet<String>,
    /// namespace → name → Service (nested so lookups borrow the query's labels).
    services: HashMap<String, HashMap<String, ServiceEntry>>,
    /// ClusterIP → Services (normally one).
    cluster_ips: HashMap<IpAddr, Vec<(String, String)>>,
    /// Ready endpoint address → (namespace, service, hostname).
    endpoint_ips: HashMap<IpAddr, Vec<(String, String, String)>>,
    /// Pod IP → namespaces of the Pods that have it (pod-network Pods only).
    pod_ips: HashMap<IpAddr, Vec<String>>,
    /// Pod IP → namespaces, including host-network Pods (for verified pod A records).
    all_pod_ips: HashMap<IpAddr, Vec<String>>,
    serial: u32,
}

impl Snapshot {
    /// Indexes the objects. `serial` becomes the zone's SOA serial (the caller passes a
    /// number that grows with every rebuild, e.g. the Unix time of the last change).
    pub fn build<'a>(
        namespaces: impl IntoIterator<Item = &'a Namespace>,
        services: impl IntoIterator<Item = &'a Service>,
        slices: impl IntoIterator<Item = &'a EndpointSlice>,
        pods: impl IntoIterator<Item = &'a Pod>,
        serial: u32,
    ) -> Snapshot {
        let mut snapshot = Snapshot {
            serial,
            ..Snapshot::default()
        };
        for namespace in namespaces {
            if let Some(name) = namespace.metadata.name.as_deref() {
                snapshot.namespaces.insert(name.to_ascii_lowercase());
            }
        }
        for service in services {
            if let Some(entry) = service_entry(service) {
                // An object inside a namespace proves the namespace exists, even if the
                // Namespace watch has not delivered it yet.
                snapshot.namespaces.insert(entry.namespace.clone());
                if let ServiceAddressing::ClusterIp(ips) = &entry.addressing {
                    for ip in ips {
                        snapshot
                            .cluster_ips
                            .entry(*ip)
                            .or_default()
                            .push((entry.namespace.clone(), entry.name.clone()));
                    }
                }
                snapshot
                    .services
                    .entry(entry.namespace.clone())
                    .or_default()
                    .insert(entry.name.clone(), entry);
            }
        }
        for slice in slices {
            snapshot.add_slice(slice);
        }
        for entry in snapshot.services.values_mut().flat_map(HashMap::values_mut) {
            // Deterministic answers regardless of slice order.
            entry
                .endpoints
                .sort_by(|a, b| (&a.hostname, &a.addresses).cmp(&(&b.hostname, &b.addresses)));
        }
        for pod in pods {
            snapshot.add_pod(pod);
        }
        for owners in snapshot.cluster_ips.values_mut() {
            owners.sort();
            owners.dedup();
        }
        for owners in snapshot.endpoint_ips.values_mut() {
            owners.sort();
            owners.dedup();
        }
        for owners in snapshot
            .pod_ips
            .values_mut()
            .chain(snapshot.all_pod_ips.values_mut())
        {
            owners.sort();
            owners.dedup();
        }
        snapshot
    }

    fn add_slice(&mut self, slice: &EndpointSlice) {
        let Some(namespace) = slice.metadata.namespace.as_deref() else {
            return;
        };
        let Some(service) = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|labels| labels.get(SERVICE_NAME_LABEL))
        else {
            return;
        };
        if slice.address_type != "IPv4" && slice.address_type != "IPv6" {
            return;
        }
        let key = (namespace.to_ascii_lowercase(), service.to_ascii_lowercase());
        let Some(entry) = self
            .services
            .get_mut(&key.0)
            .and_then(|services| services.get_mut(&key.1))
        else {
            return;
        };
        let ports = Arc::new(
            slice
                .ports
                .iter()
                .flatten()
                .filter_map(|port| {
                    Some(PortEntry {
                        name: port.name.clone().unwrap_or_default().to_ascii_lowercase(),
                        protocol: port
                            .protocol
                            .as_deref()
                            .unwrap_or("TCP")
                            .to_ascii_lowercase(),
                        port: u16::try_from(port.port?).ok()?,
                    })
                })
                .collect::<Vec<_>>(),
        );
        for endpoint in &slice.endpoints {
            // Absent `ready` means ready (the API's documented default).
            let ready = endpoint
                .conditions
                .as_ref()
                .and_then(|conditions| conditions.ready)
                .unwrap_or(true);
            if !ready {
                continue;
            }
            let addresses: Vec<IpAddr> = endpoint
                .addresses
                .iter()
                .filter_map(|address| address.parse().ok())
                .collect();
            let Some(first) = addresses.first() else {
                continue;
            };
            let explicit = endpoint.hostname.as_deref().filter(|h| !h.is_empty());
            let hostname = match explicit {
                Some(hostname) => hostname.to_ascii_lowercase(),
                None => dashed_ip(first),
            };
            for address in &addresses {
                self.endpoint_ips.entry(*address).or_default().push((
                    key.0.clone(),
                    key.1.clone(),
                    hostname.clone(),
                ));
            }
            entry.endpoints.push(EndpointEntry {
                hostname,
                explicit_hostname: explicit.is_some(),
                addresses,
                ports: ports.clone(),
            });
        }
    }

    fn add_pod(&mut self, pod: &Pod) {
        let Some(namespace) = pod.metadata.namespace.as_deref() else {
            return;
        };
        let namespace = namespace.to_ascii_lowercase();
        self.namespaces.insert(namespace.clone());
        let Some(status) = pod.status.as_ref() else {
            return;
        };
        // A finished Pod's IP goes back to the pool and may already belong to another Pod.
        if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
            return;
        }
        let mut ips: Vec<IpAddr> = status
            .pod_ips
            .iter()
            .flatten()
            .filter_map(|ip| ip.ip.parse().ok())
            .collect();
        if ips.is_empty() {
            ips.extend(
                status
                    .pod_ip
                    .as_deref()
                    .and_then(|ip| ip.parse::<IpAddr>().ok()),
            );
        }
        let host_network = pod
            .spec
            .as_ref()
            .and_then(|spec| spec.host_network)
            .unwrap_or(false);
        for ip in ips {
            self.all_pod_ips
                .entry(ip)
                .or_default()
                .push(namespace.clone());
            // A host-network Pod's IP is its node's: a PTR naming the Pod would be wrong.
            if !host_network {
                self.pod_ips.entry(ip).or_default().push(namespace.clone());
            }
        }
    }

    /// Whether the namespace exists (lowercase name).
    pub fn has_namespace(&self, namespace: &str) -> bool {
        self.namespaces.contains(namespace)
    }

    /// The Service `namespace/name` (lowercase).
    pub fn service(&self, namespace: &str, name: &str) -> Option<&ServiceEntry> {
        self.services.get(namespace)?.get(name)
    }

    /// Number of Services indexed.
    pub fn service_count(&self) -> usize {
        self.services.values().map(HashMap::len).sum()
    }

    /// Whether some Pod in `namespace` has `ip` (verified pod records).
    pub fn pod_has_ip(&self, namespace: &str, ip: &IpAddr) -> bool {
        self.all_pod_ips
            .get(ip)
            .is_some_and(|namespaces| namespaces.iter().any(|ns| ns == namespace))
    }

    /// Who owns `ip`, in PTR precedence: Service ClusterIPs first, then ready endpoints, then
    /// Pods (the same order CoreDNS uses, extended with Pods).
    pub fn owners_of(&self, ip: &IpAddr) -> Vec<IpOwner> {
        if let Some(services) = self.cluster_ips.get(ip) {
            return services
                .iter()
                .map(|(namespace, name)| IpOwner::Service {
                    namespace: namespace.clone(),
                    name: name.clone(),
                })
                .collect();
        }
        if let Some(endpoints) = self.endpoint_ips.get(ip) {
            return endpoints
                .iter()
                .map(|(namespace, service, hostname)| IpOwner::Endpoint {
                    namespace: namespace.clone(),
                    service: service.clone(),
                    hostname: hostname.clone(),
                })
                .collect();
        }
        self.pod_ips
            .get(ip)
            .map(|namespaces| {
                namespaces
                    .iter()
                    .map(|namespace| IpOwner::Pod {
                        namespace: namespace.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every IP that has a PTR record (for empty-non-terminal checks on partial reverse names).
    pub fn known_ips(&self) -> impl Iterator<Item = &IpAddr> {
        self.cluster_ips
            .keys()
            .chain(self.endpoint_ips.keys())
            .chain(self.pod_ips.keys())
    }

    /// The SOA serial.
    pub fn serial(&self) -> u32 {
        self.serial
    }
}

/// `10.244.1.2` → `10-244-1-2`; `fd00::1` → `fd00--1`.
pub fn dashed_ip(ip: &IpAddr) -> String {
    ip.to_string().replace(['.', ':'], "-")
}

fn service_entry(service: &Service) -> Option<ServiceEntry> {
    let namespace = service.metadata.namespace.as_deref()?.to_ascii_lowercase();
    let name = service.metadata.name.as_deref()?.to_ascii_lowercase();
    let spec = service.spec.as_ref()?;
    let addressing = if spec.type_.as_deref() == Some("ExternalName") {
        let external = spec.external_name.as_deref().unwrap_or_default();
        let external = external.trim_end_matches('.').to_ascii_lowercase();
        if external.is_empty() {
            return None;
        }
        ServiceAddressing::ExternalName(external)
    } else if spec.cluster_ip.as_deref() == Some("None") {
        ServiceAddressing::Headless
    } else {
        let mut ips: Vec<IpAddr> = spec
            .cluster_ips
            .iter()
            .flatten()
            .filter_map(|ip| ip.parse().ok())
            .collect();
        if ips.is_empty() {
            ips.extend(
                spec.cluster_ip
                    .as_deref()
                    .and_then(|ip| ip.parse::<IpAddr>().ok()),
            );
        }
        ServiceAddressing::ClusterIp(ips)
    };
    let ports = spec
        .ports
        .iter()
        .flatten()
        .filter_map(|port| {
            Some(PortEntry {
                name: port.name.clone().unwrap_or_default().to_ascii_lowercase(),
                protocol: port
                    .protocol
                    .as_deref()
                    .unwrap_or("TCP")
                    .to_ascii_lowercase(),
                port: u16::try_from(port.port).ok()?,
            })
        })
        .collect();
    Some(ServiceEntry {
        namespace,
        name,
        addressing,
        ports,
        endpoints: Vec::new(),
    })
}
