//! Names and addresses of a cluster, computed before anything is created: kind's node
//! names, the bridge and link names, node IPs, pod CIDRs and the node subnet.

use std::net::Ipv4Addr;

use anyhow::{bail, Result};
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{ClusterConfig, Role};

/// kind's default cluster name is `kind`; kubeport's is `kubeport`.
pub const DEFAULT_CLUSTER_NAME: &str = "kubeport";

/// kind warns above this length (hostnames are limited to 64 characters and the longest
/// suffix is `-control-plane`).
pub const CLUSTER_NAME_MAX: usize = 50;

/// Linux limits interface names to 15 bytes.
pub const IFNAME_MAX: usize = 15;

/// The kubeconfig context, cluster and user name of a cluster (kind uses `kind-NAME`).
pub fn context_name(cluster: &str) -> String {
    format!("kubeport-{cluster}")
}

/// kind's cluster name rule (`^[a-z0-9.-]+$`) with kind's message.
pub fn validate_cluster_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-');
    if !ok {
        bail!("'{name}' is not a valid cluster name, cluster names must match `^[a-z0-9.-]+$`");
    }
    // Node names are DNS subdomains and network namespace names are file names: a leading
    // dot or dash would make neither work.
    if name.starts_with(['.', '-']) {
        bail!("'{name}' is not a valid cluster name: it must start with a letter or digit");
    }
    Ok(())
}

/// Node names as kind makes them, for the roles in config order: `NAME-control-plane`,
/// `NAME-worker`, `NAME-worker2`, … (numbered per role from the second one on).
pub fn node_names(cluster: &str, roles: &[Role]) -> Vec<String> {
    let mut seen_cp = 0;
    let mut seen_worker = 0;
    roles
        .iter()
        .map(|role| {
            let count = match role {
                Role::ControlPlane => {
                    seen_cp += 1;
                    seen_cp
                }
                Role::Worker => {
                    seen_worker += 1;
                    seen_worker
                }
            };
            if count == 1 {
                format!("{cluster}-{role}")
            } else {
                format!("{cluster}-{role}{count}")
            }
        })
        .collect()
}

/// The per-cluster identifier used in link and pod-namespace names: `kp-` and six hex
/// digits of a hash of the cluster name (`attempt` > 0 re-hashes on a collision).
pub fn link_id(cluster: &str, attempt: u32) -> String {
    let mut hasher = Sha256::new();
    hasher.update(cluster.as_bytes());
    if attempt > 0 {
        hasher.update(format!("#{attempt}").as_bytes());
    }
    let digest = hasher.finalize();
    let hex: String = digest.iter().take(3).map(|b| format!("{b:02x}")).collect();
    format!("kp-{hex}")
}

/// The host end of node `index`'s veth (`kp-1a2b3c-0`).
pub fn host_veth_name(link_id: &str, index: usize) -> String {
    format!("{link_id}-{index}")
}

/// The prefix of every pod network namespace of node `index` (`kp-1a2b3c-0-`); every pod
/// namespace of the cluster starts with `<link id>-`, which is how `delete` finds them.
pub fn pod_netns_prefix(link_id: &str, index: usize) -> String {
    format!("{link_id}-{index}-")
}

/// The `n`th /24 of `pod_subnet` (kind's node CIDR mask size is 24).
pub fn pod_cidr(pod_subnet: Ipv4Net, n: usize) -> Option<Ipv4Net> {
    if pod_subnet.prefix_len() > 24 || (n as u64) >= (1u64 << (24 - pod_subnet.prefix_len())) {
        return None;
    }
    let base = u32::from(pod_subnet.network());
    let addr = Ipv4Addr::from(base + ((n as u32) << 8));
    Ipv4Net::new(addr, 24).ok()
}

/// The `n`th address of a subnet (`10.96.0.10` is the 10th of `10.96.0.0/16`).
pub fn nth_address(net: Ipv4Net, n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()) + n)
}

/// The cluster DNS address kubeadm derives: the 10th address of the service subnet.
pub fn cluster_dns(service_subnet: Ipv4Net) -> Ipv4Addr {
    nth_address(service_subnet, 10)
}

/// One node of a planned cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodePlan {
    pub name: String,
    pub role: Role,
    /// Position in address order: the control-plane is 0, workers follow in config order.
    pub index: usize,
    pub ip: Ipv4Addr,
    #[serde(with = "crate::state::net_text")]
    pub pod_cidr: Ipv4Net,
    pub labels: std::collections::BTreeMap<String, String>,
    /// The host end of the node's veth (the node end is `eth0`).
    pub host_veth: String,
    /// The agent's `--netns-prefix` for this node's pods.
    pub pod_netns_prefix: String,
}

/// Lays the nodes out: names in kind's order, the control-plane first in address order
/// (node IP `.2`, pod CIDR `x.y.0.0/24`), then workers (`.3`, `x.y.1.0/24`, …).
pub fn plan_nodes(
    cluster: &str,
    config: &ClusterConfig,
    node_subnet: Ipv4Net,
    link_id: &str,
) -> Result<Vec<NodePlan>> {
    let roles: Vec<Role> = config.nodes.iter().map(|n| n.role).collect();
    let names = node_names(cluster, &roles);
    let mut order: Vec<usize> = (0..config.nodes.len()).collect();
    // Stable: workers keep their config order.
    order.sort_by_key(|&i| config.nodes[i].role != Role::ControlPlane);
    let mut nodes = Vec::with_capacity(order.len());
    for (index, &i) in order.iter().enumerate() {
        let Some(pod_cidr) = pod_cidr(config.networking.pod_subnet, index) else {
            bail!(
                "networking.podSubnet {} has no /24 left for node {}",
                config.networking.pod_subnet,
                names[i]
            );
        };
        if index + 2 > 254 {
            bail!(
                "the node subnet {node_subnet} has no address left for node {}",
                names[i]
            );
        }
        nodes.push(NodePlan {
            name: names[i].clone(),
            role: config.nodes[i].role,
            index,
            ip: nth_address(node_subnet, index as u32 + 2),
            pod_cidr,
            labels: config.nodes[i].labels.clone(),
            host_veth: host_veth_name(link_id, index),
            pod_netns_prefix: pod_netns_prefix(link_id, index),
        });
    }
    Ok(nodes)
}

/// The /24s a lab may give its node subnet: 172.30.0.0/24 … 172.31.255.0/24.
pub fn node_subnet_candidates() -> impl Iterator<Item = Ipv4Net> {
    (0u32..512).map(|i| {
        let addr = Ipv4Addr::from(u32::from(Ipv4Addr::new(172, 30, 0, 0)) + (i << 8));
        Ipv4Net::new(addr, 24).expect("a /24")
    })
}

fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The first candidate /24 that overlaps none of `taken` (the host's addresses and routes,
/// other labs' subnets, this cluster's pod and service subnets).
pub fn choose_node_subnet(taken: &[Ipv4Net]) -> Option<Ipv4Net> {
    node_subnet_candidates().find(|c| !taken.iter().any(|t| overlaps(c, t)))
}

/// Networks the host already uses, from `ip -j -4 addr` and `ip -j -4 route show table
/// all`. Default routes are left out: they cover everything and say nothing about use.
pub fn host_networks(addr_json: &str, route_json: &str) -> Result<Vec<Ipv4Net>> {
    let mut nets = Vec::new();
    let addrs: serde_json::Value = serde_json::from_str(addr_json)?;
    for link in addrs.as_array().into_iter().flatten() {
        for info in link["addr_info"].as_array().into_iter().flatten() {
            let (Some(local), Some(prefix)) = (info["local"].as_str(), info["prefixlen"].as_u64())
            else {
                continue;
            };
            if let (Ok(ip), Ok(prefix)) = (local.parse::<Ipv4Addr>(), u8::try_from(prefix)) {
                if let Ok(net) = Ipv4Net::new(ip, prefix) {
                    nets.push(net.trunc());
                }
            }
        }
    }
    let routes: serde_json::Value = serde_json::from_str(route_json)?;
    for route in routes.as_array().into_iter().flatten() {
        let Some(dst) = route["dst"].as_str() else {
            continue;
        };
        if dst == "default" {
            continue;
        }
        let net = if dst.contains('/') {
            dst.parse::<Ipv4Net>().ok()
        } else {
            dst.parse::<Ipv4Addr>()
                .ok()
                .and_then(|ip| Ipv4Net::new(ip, 32).ok())
        };
        if let Some(net) = net {
            if net.prefix_len() > 0 {
                nets.push(net.trunc());
            }
        }
    }
    Ok(nets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NodeConfig;

    #[test]
    fn names_follow_kind() {
        use Role::*;
        assert_eq!(
            node_names("service-demo", &[ControlPlane, Worker, Worker]),
            [
                "service-demo-control-plane",
                "service-demo-worker",
                "service-demo-worker2"
            ]
        );
        assert_eq!(
            node_names("k", &[Worker, ControlPlane, Worker, Worker]),
            ["k-worker", "k-control-plane", "k-worker2", "k-worker3"]
        );
        assert_eq!(context_name("service-demo"), "kubeport-service-demo");
    }

    #[test]
    fn cluster_names_are_validated_as_kind_does() {
        assert!(validate_cluster_name("service-demo").is_ok());
        assert!(validate_cluster_name("a.b-1").is_ok());
        assert_eq!(
            validate_cluster_name("Demo").unwrap_err().to_string(),
            "'Demo' is not a valid cluster name, cluster names must match `^[a-z0-9.-]+$`"
        );
        assert!(validate_cluster_name("a_b").is_err());
        assert!(validate_cluster_name("a/b").is_err());
        assert!(validate_cluster_name("").is_err());
        assert!(validate_cluster_name("-x").is_err());
    }

    #[test]
    fn link_names_fit_and_differ() {
        let a = link_id("service-demo", 0);
        assert!(a.starts_with("kp-") && a.len() == 9, "{a}");
        assert_ne!(a, link_id("service-demo2", 0));
        assert_ne!(a, link_id("service-demo", 1));
        assert_eq!(a, link_id("service-demo", 0));
        assert!(host_veth_name(&a, 252).len() <= IFNAME_MAX);
        assert_eq!(pod_netns_prefix(&a, 1), format!("{a}-1-"));
    }

    #[test]
    fn addresses() {
        let pods: Ipv4Net = "10.244.0.0/16".parse().unwrap();
        assert_eq!(pod_cidr(pods, 0).unwrap().to_string(), "10.244.0.0/24");
        assert_eq!(pod_cidr(pods, 2).unwrap().to_string(), "10.244.2.0/24");
        assert_eq!(pod_cidr(pods, 256), None);
        assert_eq!(
            pod_cidr("10.8.0.0/23".parse().unwrap(), 1)
                .unwrap()
                .to_string(),
            "10.8.1.0/24"
        );
        assert_eq!(
            cluster_dns("10.96.0.0/16".parse().unwrap()).to_string(),
            "10.96.0.10"
        );
    }

    #[test]
    fn plan_puts_the_control_plane_first() {
        let config = ClusterConfig {
            nodes: vec![
                NodeConfig {
                    role: Role::Worker,
                    labels: Default::default(),
                },
                NodeConfig {
                    role: Role::ControlPlane,
                    labels: Default::default(),
                },
                NodeConfig {
                    role: Role::Worker,
                    labels: [("a".to_string(), "b".to_string())].into(),
                },
            ],
            ..ClusterConfig::default()
        };
        let subnet: Ipv4Net = "172.30.7.0/24".parse().unwrap();
        let nodes = plan_nodes("demo", &config, subnet, "kp-abcdef").unwrap();
        let summary: Vec<(String, String, String)> = nodes
            .iter()
            .map(|n| (n.name.clone(), n.ip.to_string(), n.pod_cidr.to_string()))
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "demo-control-plane".into(),
                    "172.30.7.2".into(),
                    "10.244.0.0/24".into()
                ),
                (
                    "demo-worker".into(),
                    "172.30.7.3".into(),
                    "10.244.1.0/24".into()
                ),
                (
                    "demo-worker2".into(),
                    "172.30.7.4".into(),
                    "10.244.2.0/24".into()
                ),
            ]
        );
        assert_eq!(nodes[2].labels["a"], "b");
        assert_eq!(nodes[1].host_veth, "kp-abcdef-1");
        assert_eq!(nodes[1].pod_netns_prefix, "kp-abcdef-1-");
    }

    #[test]
    fn subnet_choice_skips_what_is_used() {
        assert_eq!(
            choose_node_subnet(&[]).unwrap().to_string(),
            "172.30.0.0/24"
        );
        let taken: Vec<Ipv4Net> = ["172.30.0.0/24", "172.30.1.5/32", "172.30.2.0/23"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(
            choose_node_subnet(&taken).unwrap().to_string(),
            "172.30.4.0/24"
        );
        // A covering route (a VPN's 172.16.0.0/12) leaves nothing.
        assert_eq!(
            choose_node_subnet(&["172.16.0.0/12".parse().unwrap()]),
            None
        );
    }

    #[test]
    fn host_networks_from_ip_json() {
        let addrs = r#"[{"ifname":"lo","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8}]},
            {"ifname":"eth0","addr_info":[{"family":"inet","local":"172.30.0.9","prefixlen":24}]}]"#;
        let routes = r#"[{"dst":"default","gateway":"192.0.2.1","dev":"eth0"},
            {"dst":"172.30.1.0/24","dev":"x"},{"type":"local","dst":"172.30.2.1","dev":"y","table":"local"}]"#;
        let nets: Vec<String> = host_networks(addrs, routes)
            .unwrap()
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(
            nets,
            [
                "127.0.0.0/8",
                "172.30.0.0/24",
                "172.30.1.0/24",
                "172.30.2.1/32"
            ]
        );
        let taken: Vec<Ipv4Net> = host_networks(addrs, routes).unwrap();
        assert_eq!(
            choose_node_subnet(&taken).unwrap().to_string(),
            "172.30.3.0/24"
        );
    }
}
