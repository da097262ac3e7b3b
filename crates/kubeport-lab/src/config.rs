//! kind's cluster configuration (`kind.x-k8s.io/v1alpha4` `Cluster`), the subset kubeport
//! honours. Every field outside that subset is an error that names the field, so a config
//! never silently means something else here than it does with kind.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

use anyhow::{anyhow, bail, Result};
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use serde_yaml::{Mapping, Value};

/// The only config API version kubeport reads.
pub const API_VERSION: &str = "kind.x-k8s.io/v1alpha4";

/// kind's default pod subnet.
pub const DEFAULT_POD_SUBNET: &str = "10.244.0.0/16";
/// kind's default service subnet.
pub const DEFAULT_SERVICE_SUBNET: &str = "10.96.0.0/16";
/// kube-apiserver's secure port, which kind uses inside the control-plane node.
pub const DEFAULT_API_SERVER_PORT: u16 = 6443;

/// Every field kubeport accepts, as listed in its errors.
const SUPPORTED_FIELDS: &str = "kind, apiVersion, name, nodes[].role, nodes[].labels, \
networking.ipFamily (ipv4), networking.podSubnet, networking.serviceSubnet, \
networking.kubeProxyMode, networking.apiServerAddress, networking.apiServerPort";

/// A node's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    ControlPlane,
    Worker,
}

impl Role {
    /// The spelling in kind's config and in node names (`control-plane`, `worker`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::ControlPlane => "control-plane",
            Role::Worker => "worker",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the node proxy programs Services (`networking.kubeProxyMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyMode {
    Nftables,
    Iptables,
    /// No node proxy runs.
    None,
}

impl ProxyMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyMode::Nftables => "nftables",
            ProxyMode::Iptables => "iptables",
            ProxyMode::None => "none",
        }
    }
}

/// One entry of `nodes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeConfig {
    pub role: Role,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// The `networking` section, defaulted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Networking {
    #[serde(with = "crate::state::net_text")]
    pub pod_subnet: Ipv4Net,
    #[serde(with = "crate::state::net_text")]
    pub service_subnet: Ipv4Net,
    pub kube_proxy_mode: ProxyMode,
    /// kind's `apiServerAddress`; kubeport accepts only 127.0.0.1 (served by a host-side
    /// forwarder to the control-plane node) or leaves it unset (the node's own address).
    pub api_server_address: Option<Ipv4Addr>,
    /// kind's `apiServerPort`; 0 means "pick a free port" (with `apiServerAddress` only).
    pub api_server_port: Option<u16>,
}

impl Default for Networking {
    fn default() -> Self {
        Networking {
            pod_subnet: DEFAULT_POD_SUBNET.parse().expect("valid default"),
            service_subnet: DEFAULT_SERVICE_SUBNET.parse().expect("valid default"),
            kube_proxy_mode: ProxyMode::Nftables,
            api_server_address: None,
            api_server_port: None,
        }
    }
}

/// A parsed, defaulted and validated cluster config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterConfig {
    /// `name` from the file; `--name` overrides it.
    pub name: Option<String>,
    /// In the file's order; never empty after defaulting.
    pub nodes: Vec<NodeConfig>,
    pub networking: Networking,
}

impl Default for ClusterConfig {
    /// kind's default: a single control-plane node.
    fn default() -> Self {
        ClusterConfig {
            name: None,
            nodes: vec![NodeConfig {
                role: Role::ControlPlane,
                labels: BTreeMap::new(),
            }],
            networking: Networking::default(),
        }
    }
}

fn unsupported(path: &str) -> anyhow::Error {
    anyhow!("unsupported field \"{path}\" in kind config: kubeport supports {SUPPORTED_FIELDS}")
}

fn key_str<'a>(key: &'a Value, parent: &str) -> Result<&'a str> {
    key.as_str()
        .ok_or_else(|| anyhow!("invalid kind config: {parent} has a non-string key {key:?}"))
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// A scalar as text (YAML lets `6443`, `true` and `"x"` all stand for strings here).
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn string_field(value: &Value, path: &str) -> Result<String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        other => bail!(
            "invalid kind config: {path} must be a string, not {}",
            describe(other)
        ),
    }
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

fn subnet_field(value: &Value, path: &str) -> Result<Ipv4Net> {
    let text = string_field(value, path)?;
    let net: ipnet::IpNet = text.trim().parse().map_err(|_| {
        anyhow!("invalid kind config: {path} {text:?} is not a CIDR (e.g. 10.244.0.0/16)")
    })?;
    match net {
        ipnet::IpNet::V4(v4) => {
            if v4.network() != v4.addr() {
                bail!(
                    "invalid kind config: {path} {text:?} has host bits set (did you mean {}?)",
                    v4.trunc()
                );
            }
            Ok(v4)
        }
        ipnet::IpNet::V6(_) => {
            bail!("invalid kind config: {path} {text:?} is IPv6; kubeport's lab supports ipv4 only")
        }
    }
}

impl ClusterConfig {
    /// Parses and validates a kind config document.
    pub fn parse(text: &str) -> Result<ClusterConfig> {
        let doc: Value = serde_yaml::from_str(text)
            .map_err(|e| anyhow!("invalid kind config: not valid YAML: {e}"))?;
        let top = match doc {
            Value::Mapping(m) => m,
            Value::Null => bail!("invalid kind config: the file is empty; it needs at least `kind: Cluster` and `apiVersion: {API_VERSION}`"),
            other => bail!("invalid kind config: expected a mapping, found {}", describe(&other)),
        };
        let mut config = ClusterConfig {
            nodes: Vec::new(),
            ..ClusterConfig::default()
        };
        let mut kind = None;
        let mut api_version = None;
        for (key, value) in &top {
            let key = key_str(key, "the document")?;
            match key {
                "kind" => kind = Some(string_field(value, "kind")?),
                "apiVersion" => api_version = Some(string_field(value, "apiVersion")?),
                "name" => config.name = Some(string_field(value, "name")?),
                "nodes" => config.nodes = parse_nodes(value)?,
                "networking" => config.networking = parse_networking(value)?,
                other => return Err(unsupported(other)),
            }
        }
        match kind.as_deref() {
            Some("Cluster") => {}
            Some(other) => {
                bail!("invalid kind config: kind {other:?} is not supported: expected \"Cluster\"")
            }
            None => bail!("invalid kind config: missing \"kind: Cluster\""),
        }
        match api_version.as_deref() {
            Some(API_VERSION) => {}
            Some(other) => bail!("invalid kind config: apiVersion {other:?} is not supported: kubeport reads {API_VERSION}"),
            None => bail!("invalid kind config: missing \"apiVersion: {API_VERSION}\""),
        }
        if config.nodes.is_empty() {
            config.nodes = ClusterConfig::default().nodes;
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks the constraints kubeport's lab has beyond the field syntax.
    pub fn validate(&self) -> Result<()> {
        let control_planes = self
            .nodes
            .iter()
            .filter(|n| n.role == Role::ControlPlane)
            .count();
        match control_planes {
            1 => {}
            0 => bail!("invalid kind config: no control-plane node: kubeport needs exactly one node with \"role: control-plane\""),
            n => bail!("invalid kind config: {n} control-plane nodes: kubeport supports exactly one control-plane node (no high-availability control plane); make the others \"role: worker\""),
        }
        // Node addresses come from a /24: .1 is the host, .2 to .254 the nodes.
        if self.nodes.len() > 253 {
            bail!(
                "invalid kind config: {} nodes: kubeport supports at most 253 nodes per cluster",
                self.nodes.len()
            );
        }
        let net = &self.networking;
        if net.pod_subnet.prefix_len() > 24 {
            bail!(
                "invalid kind config: networking.podSubnet {} is smaller than a /24: each node gets a /24 of it",
                net.pod_subnet
            );
        }
        let pod_cidrs = 1u64 << (24 - net.pod_subnet.prefix_len());
        if (self.nodes.len() as u64) > pod_cidrs {
            bail!(
                "invalid kind config: networking.podSubnet {} holds {pod_cidrs} node /24s but the config has {} nodes",
                net.pod_subnet,
                self.nodes.len()
            );
        }
        // kube-apiserver's limit for an IPv4 service range.
        if net.service_subnet.prefix_len() < 12 {
            bail!(
                "invalid kind config: networking.serviceSubnet {} is too large: the mask must be >= 12",
                net.service_subnet
            );
        }
        if net.service_subnet.prefix_len() > 28 {
            bail!(
                "invalid kind config: networking.serviceSubnet {} is too small: it must hold the cluster DNS address (the 10th address)",
                net.service_subnet
            );
        }
        if net.service_subnet.contains(&net.pod_subnet.network())
            || net.pod_subnet.contains(&net.service_subnet.network())
        {
            bail!(
                "invalid kind config: networking.serviceSubnet {} overlaps networking.podSubnet {}",
                net.service_subnet,
                net.pod_subnet
            );
        }
        if let Some(addr) = net.api_server_address {
            if addr != Ipv4Addr::LOCALHOST {
                bail!(
                    "invalid kind config: networking.apiServerAddress {addr} is not supported: kubeport serves the API on the control-plane node's address (leave apiServerAddress unset) or forwards 127.0.0.1 to it"
                );
            }
        }
        Ok(())
    }
}

fn parse_nodes(value: &Value) -> Result<Vec<NodeConfig>> {
    let items = match value {
        Value::Sequence(items) => items,
        Value::Null => return Ok(Vec::new()),
        other => bail!(
            "invalid kind config: nodes must be a list, not {}",
            describe(other)
        ),
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| parse_node(i, item))
        .collect()
}

fn parse_node(index: usize, value: &Value) -> Result<NodeConfig> {
    let path = format!("nodes[{index}]");
    let map = match value {
        Value::Mapping(m) => m,
        other => bail!(
            "invalid kind config: {path} must be a mapping, not {}",
            describe(other)
        ),
    };
    let mut role = None;
    let mut labels = BTreeMap::new();
    for (key, value) in map {
        let key = key_str(key, &path)?;
        match key {
            "role" => {
                let text = string_field(value, &format!("{path}.role"))?;
                role = Some(match text.as_str() {
                    "control-plane" => Role::ControlPlane,
                    "worker" => Role::Worker,
                    other => bail!(
                        "invalid kind config: {path}.role {other:?} is not a node role: use \"control-plane\" or \"worker\""
                    ),
                });
            }
            "labels" => labels = parse_labels(value, &format!("{path}.labels"))?,
            other => return Err(unsupported(&format!("{path}.{other}"))),
        }
    }
    // kind defaults a node without a role to control-plane.
    Ok(NodeConfig {
        role: role.unwrap_or(Role::ControlPlane),
        labels,
    })
}

fn parse_labels(value: &Value, path: &str) -> Result<BTreeMap<String, String>> {
    let map: &Mapping = match value {
        Value::Mapping(m) => m,
        Value::Null => return Ok(BTreeMap::new()),
        other => bail!(
            "invalid kind config: {path} must be a mapping, not {}",
            describe(other)
        ),
    };
    let mut labels = BTreeMap::new();
    for (key, value) in map {
        let key = scalar_text(key)
            .ok_or_else(|| anyhow!("invalid kind config: {path} has a non-string key"))?;
        let text = match value {
            Value::String(s) => s.clone(),
            other => bail!(
                "invalid kind config: {path}.{key} must be a string, not {} (quote it)",
                describe(other)
            ),
        };
        validate_label(&key, &text, path)?;
        labels.insert(key, text);
    }
    Ok(labels)
}

/// Label syntax (apimachinery's qualified name and label value), checked early so a typo
/// fails `create` instead of a node that never registers.
fn validate_label(key: &str, value: &str, path: &str) -> Result<()> {
    let name_ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 63
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.ends_with(|c: char| c.is_ascii_alphanumeric())
    };
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|part| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !part.starts_with('-')
                    && !part.ends_with('-')
            })
    });
    if !name_ok(name) || !prefix_ok {
        bail!("invalid kind config: {path}: {key:?} is not a valid label key");
    }
    if !value.is_empty() && !name_ok(value) {
        bail!("invalid kind config: {path}.{key}: {value:?} is not a valid label value");
    }
    Ok(())
}

fn parse_networking(value: &Value) -> Result<Networking> {
    let map = match value {
        Value::Mapping(m) => m,
        Value::Null => return Ok(Networking::default()),
        other => bail!(
            "invalid kind config: networking must be a mapping, not {}",
            describe(other)
        ),
    };
    let mut net = Networking::default();
    for (key, value) in map {
        let key = key_str(key, "networking")?;
        let path = join("networking", key);
        match key {
            "ipFamily" => {
                let family = string_field(value, &path)?;
                if family != "ipv4" {
                    bail!("invalid kind config: networking.ipFamily {family:?} is not supported: kubeport's lab supports ipv4 only");
                }
            }
            "podSubnet" => net.pod_subnet = subnet_field(value, &path)?,
            "serviceSubnet" => net.service_subnet = subnet_field(value, &path)?,
            "kubeProxyMode" => {
                let mode = string_field(value, &path)?;
                net.kube_proxy_mode = match mode.as_str() {
                    "nftables" => ProxyMode::Nftables,
                    "iptables" => ProxyMode::Iptables,
                    "none" => ProxyMode::None,
                    other => bail!(
                        "invalid kind config: networking.kubeProxyMode {other:?} is not supported: use \"nftables\", \"iptables\" or \"none\""
                    ),
                };
            }
            "apiServerAddress" => {
                let text = string_field(value, &path)?;
                net.api_server_address = Some(text.trim().parse().map_err(|_| {
                    anyhow!("invalid kind config: networking.apiServerAddress {text:?} is not an IPv4 address")
                })?);
            }
            "apiServerPort" => {
                let port = match value {
                    Value::Number(n) => n.as_i64(),
                    _ => None,
                };
                net.api_server_port = match port {
                    // kind: 0 (or -1) asks for a random port.
                    Some(-1) | Some(0) => Some(0),
                    Some(p) if (1..=65535).contains(&p) => Some(p as u16),
                    _ => bail!(
                        "invalid kind config: networking.apiServerPort must be a port number (1-65535, or 0 for a random one), not {}",
                        scalar_text(value).unwrap_or_else(|| describe(value).to_string())
                    ),
                };
            }
            _ => return Err(unsupported(&path)),
        }
    }
    Ok(net)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\n";

    fn parse(body: &str) -> Result<ClusterConfig> {
        ClusterConfig::parse(&format!("{HEADER}{body}"))
    }

    fn err(body: &str) -> String {
        format!("{:#}", parse(body).unwrap_err())
    }

    #[test]
    fn seed_001_config() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/seed-001/kind-config.yaml"
        ))
        .unwrap();
        let c = ClusterConfig::parse(&text).unwrap();
        let roles: Vec<Role> = c.nodes.iter().map(|n| n.role).collect();
        assert_eq!(roles, [Role::ControlPlane, Role::Worker, Role::Worker]);
        assert_eq!(c.networking, Networking::default());
        assert_eq!(c.networking.pod_subnet.to_string(), "10.244.0.0/16");
        assert_eq!(c.networking.service_subnet.to_string(), "10.96.0.0/16");
        assert_eq!(c.networking.kube_proxy_mode, ProxyMode::Nftables);
    }

    #[test]
    fn defaults_to_one_control_plane() {
        let c = parse("").unwrap();
        assert_eq!(c, ClusterConfig::default());
        assert_eq!(parse("nodes: []\n").unwrap().nodes.len(), 1);
    }

    #[test]
    fn reads_every_supported_field() {
        let c = parse(
            "name: lab\nnodes:\n- role: control-plane\n  labels: {tier: cp}\n- role: worker\n  labels:\n    example.com/zone: a\nnetworking:\n  ipFamily: ipv4\n  podSubnet: 10.200.0.0/16\n  serviceSubnet: 10.100.0.0/20\n  kubeProxyMode: iptables\n  apiServerAddress: 127.0.0.1\n  apiServerPort: 7443\n",
        )
        .unwrap();
        assert_eq!(c.name.as_deref(), Some("lab"));
        assert_eq!(c.nodes[0].labels["tier"], "cp");
        assert_eq!(c.nodes[1].labels["example.com/zone"], "a");
        assert_eq!(c.networking.pod_subnet.to_string(), "10.200.0.0/16");
        assert_eq!(c.networking.service_subnet.to_string(), "10.100.0.0/20");
        assert_eq!(c.networking.kube_proxy_mode, ProxyMode::Iptables);
        assert_eq!(c.networking.api_server_address, Some(Ipv4Addr::LOCALHOST));
        assert_eq!(c.networking.api_server_port, Some(7443));
        assert_eq!(
            parse("networking:\n  kubeProxyMode: none\n")
                .unwrap()
                .networking
                .kube_proxy_mode,
            ProxyMode::None
        );
    }

    #[test]
    fn unsupported_fields_are_named() {
        let e = err("networking:\n  disableDefaultCNI: true\n");
        assert!(
            e.starts_with("unsupported field \"networking.disableDefaultCNI\" in kind config: kubeport supports kind, apiVersion, name, nodes[].role, nodes[].labels,"),
            "{e}"
        );
        assert!(
            err("nodes:\n- role: control-plane\n- role: worker\n  extraPortMappings: []\n")
                .starts_with("unsupported field \"nodes[1].extraPortMappings\" in kind config")
        );
        assert!(
            err("nodes:\n- role: control-plane\n  image: kindest/node:v1.27.3\n")
                .starts_with("unsupported field \"nodes[0].image\" in kind config")
        );
        assert!(err("featureGates: {}\n")
            .starts_with("unsupported field \"featureGates\" in kind config"));
        assert!(err("kubeadmConfigPatches: []\n")
            .starts_with("unsupported field \"kubeadmConfigPatches\" in kind config"));
    }

    #[test]
    fn control_plane_count_is_checked() {
        assert_eq!(
            err("nodes:\n- role: control-plane\n- role: control-plane\n- role: worker\n"),
            "invalid kind config: 2 control-plane nodes: kubeport supports exactly one control-plane node (no high-availability control plane); make the others \"role: worker\""
        );
        assert!(err("nodes:\n- role: worker\n").contains("no control-plane node"));
        // kind's default role is control-plane.
        assert_eq!(
            parse("nodes:\n- {}\n").unwrap().nodes[0].role,
            Role::ControlPlane
        );
    }

    #[test]
    fn header_and_values_are_checked() {
        assert!(
            format!("{:#}", ClusterConfig::parse("nodes: []\n").unwrap_err())
                .contains("missing \"kind: Cluster\"")
        );
        assert!(format!(
            "{:#}",
            ClusterConfig::parse("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha3\n")
                .unwrap_err()
        )
        .contains("apiVersion \"kind.x-k8s.io/v1alpha3\" is not supported"));
        assert!(
            err("nodes:\n- role: master\n").contains("nodes[0].role \"master\" is not a node role")
        );
        assert!(err("networking:\n  kubeProxyMode: ipvs\n")
            .contains("kubeProxyMode \"ipvs\" is not supported"));
        assert!(err("networking:\n  ipFamily: dual\n").contains("ipv4 only"));
        assert!(err("networking:\n  podSubnet: 10.244.0.0/25\n").contains("smaller than a /24"));
        assert!(err("networking:\n  podSubnet: 10.244.1.0/16\n")
            .contains("host bits set (did you mean 10.244.0.0/16?)"));
        assert!(err("networking:\n  podSubnet: nope\n").contains("is not a CIDR"));
        assert!(err("networking:\n  podSubnet: fd00::/48\n").contains("IPv6"));
        assert!(err("networking:\n  serviceSubnet: 10.0.0.0/8\n").contains("too large"));
        assert!(err("networking:\n  serviceSubnet: 10.244.0.0/20\n")
            .contains("overlaps networking.podSubnet"));
        assert!(err("networking:\n  apiServerAddress: 0.0.0.0\n")
            .contains("apiServerAddress 0.0.0.0 is not supported"));
        assert!(err("networking:\n  apiServerPort: 70000\n")
            .contains("apiServerPort must be a port number"));
        assert!(err("nodes:\n- role: control-plane\n  labels: {tier: 1}\n")
            .contains("nodes[0].labels.tier must be a string"));
        assert!(
            err("nodes:\n- role: control-plane\n  labels: {\"bad key!\": x}\n")
                .contains("not a valid label key")
        );
        assert_eq!(
            parse("networking:\n  apiServerPort: 0\n")
                .unwrap()
                .networking
                .api_server_port,
            Some(0)
        );
    }

    #[test]
    fn pod_subnet_must_hold_every_node() {
        let nodes = "nodes:\n- role: control-plane\n- role: worker\n- role: worker\n";
        assert!(format!(
            "{:#}",
            parse(&format!("{nodes}networking:\n  podSubnet: 10.244.0.0/23\n")).unwrap_err()
        )
        .contains("holds 2 node /24s but the config has 3 nodes"));
        assert!(parse(&format!("{nodes}networking:\n  podSubnet: 10.244.0.0/22\n")).is_ok());
    }
}
