//! Names and configuration shared by the trackers, the endpoint selection and the backends.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

/// Node label holding the node's zone (used for `PreferClose`/`PreferSameZone` hints).
pub const LABEL_TOPOLOGY_ZONE: &str = "topology.kubernetes.io/zone";
/// EndpointSlice label naming the Service the slice belongs to.
pub const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";
/// Objects carrying this label are handled by another proxy and ignored by kube-proxy.
pub const LABEL_SERVICE_PROXY_NAME: &str = "service.kubernetes.io/service-proxy-name";
/// Label the EndpointSlice controller puts on slices (and users on Services) of headless Services.
pub const LABEL_HEADLESS: &str = "service.kubernetes.io/headless";
/// EndpointSlice annotation with the time of the change that triggered the slice update.
pub const ANNOTATION_LAST_CHANGE_TRIGGER_TIME: &str =
    "endpoints.kubernetes.io/last-change-trigger-time";

/// Transport protocol of a service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// Parses the API spelling (`TCP`, `UDP`, `SCTP`); an absent protocol means TCP.
    pub fn from_api(value: Option<&str>) -> Option<Protocol> {
        match value.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// The API spelling: `TCP`, `UDP` or `SCTP`.
    pub fn as_api_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }

    /// Lower-case spelling used in chain names and nftables expressions.
    pub fn as_lower_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_api_str())
    }
}

/// IP family; every proxied object belongs to exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IpFamily {
    V4,
    V6,
}

impl IpFamily {
    /// Family of an address.
    pub fn of(ip: &IpAddr) -> IpFamily {
        match ip {
            IpAddr::V4(_) => IpFamily::V4,
            IpAddr::V6(_) => IpFamily::V6,
        }
    }

    /// Family of a CIDR.
    pub fn of_net(net: &IpNet) -> IpFamily {
        match net {
            IpNet::V4(_) => IpFamily::V4,
            IpNet::V6(_) => IpFamily::V6,
        }
    }

    /// Both families, IPv4 first.
    pub const ALL: [IpFamily; 2] = [IpFamily::V4, IpFamily::V6];
}

/// `namespace/name` of an object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NamespacedName {
    pub namespace: String,
    pub name: String,
}

impl NamespacedName {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        NamespacedName {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for NamespacedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// One port of one Service: `ns/name:port` (`:port` only when the port is named) plus protocol.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServicePortName {
    pub service: NamespacedName,
    /// The port's `name` (empty for the single unnamed port of a Service).
    pub port: String,
    pub protocol: Protocol,
}

impl ServicePortName {
    pub fn new(namespace: &str, name: &str, port: &str, protocol: Protocol) -> Self {
        ServicePortName {
            service: NamespacedName::new(namespace, name),
            port: port.to_string(),
            protocol,
        }
    }
}

/// kube-proxy's `ServicePortName.String()`: `ns/name:port`, or `ns/name` for an unnamed port.
impl fmt::Display for ServicePortName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.port.is_empty() {
            write!(f, "{}", self.service)
        } else {
            write!(f, "{}:{}", self.service, self.port)
        }
    }
}

/// The node the proxy runs on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeInfo {
    /// Node name; endpoints whose `nodeName` equals it are local.
    pub name: String,
    /// The node's addresses, primary address of each family first.
    pub ips: Vec<IpAddr>,
    /// Node labels (the zone label drives topology hints).
    pub labels: BTreeMap<String, String>,
}

impl NodeInfo {
    /// The node's zone label, if any.
    pub fn zone(&self) -> Option<&str> {
        self.labels.get(LABEL_TOPOLOGY_ZONE).map(String::as_str)
    }

    /// First node address of a family.
    pub fn primary_ip(&self, family: IpFamily) -> Option<IpAddr> {
        self.ips
            .iter()
            .copied()
            .find(|ip| IpFamily::of(ip) == family)
    }
}

/// Which node addresses accept NodePort traffic (`--nodeport-addresses`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum NodePortAddresses {
    /// The node's primary address of each family (kube-proxy's default in nftables mode).
    #[default]
    Primary,
    /// Node addresses inside one of these CIDRs; a `0.0.0.0/0` or `::/0` entry means every
    /// local address of that family.
    Cidrs(Vec<IpNet>),
}

/// Proxy-wide settings (kube-proxy flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    /// Pod CIDRs: traffic from them is "local" (no masquerade for ClusterIP, short-circuit for
    /// ETP Local). Empty means no local-traffic detector.
    pub cluster_cidrs: Vec<IpNet>,
    /// Masquerade all ClusterIP traffic (`--masquerade-all`).
    pub masquerade_all: bool,
    /// Addresses that accept NodePort traffic.
    pub nodeport_addresses: NodePortAddresses,
    /// Bit of the packet mark used to request masquerading (default 14 → `0x4000`).
    pub masquerade_bit: u8,
    /// Service CIDRs: traffic to an unallocated address in them is dropped.
    pub service_cidrs: Vec<IpNet>,
    /// The `PreferSameTrafficDistribution` feature gate: honour node hints (`forNodes`).
    pub prefer_same_node_hints: bool,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            cluster_cidrs: Vec::new(),
            masquerade_all: false,
            nodeport_addresses: NodePortAddresses::Primary,
            masquerade_bit: 14,
            service_cidrs: Vec::new(),
            prefer_same_node_hints: false,
        }
    }
}

impl ProxyConfig {
    /// The packet mark requesting masquerade: `1 << masquerade_bit`.
    pub fn masquerade_mark(&self) -> u32 {
        1u32 << u32::from(self.masquerade_bit.min(31))
    }
}
