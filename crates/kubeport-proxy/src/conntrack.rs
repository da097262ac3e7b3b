//! Stale conntrack entries of connectionless protocols (UDP, SCTP).
//!
//! A UDP "connection" lives in conntrack as long as datagrams keep coming, and keeps the
//! destination chosen for its first datagram. Two cases then misroute traffic:
//! - an endpoint goes away: flows DNATed to it keep going there → delete the entries from the
//!   service's frontends NATed to that endpoint;
//! - a service gets its first endpoint: flows created while it had none were not DNATed (they
//!   hit the host or were rejected) and stay so → delete the un-NATed entries towards its
//!   frontends.
//!
//! [`plan`] computes what to delete from the previous and the new desired state (pure);
//! [`Conntrack`] runs the `conntrack` tool in the current network namespace.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;

use kubeport_proxy_model::{FrontendKind, IpFamily, Protocol, ProxyState, ServicePortName};

/// Entries to delete by filter.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Deletion {
    /// Flows addressed to `orig_dst` and DNATed to `dst_nat`
    /// (`conntrack -D -p udp --orig-dst A --dst-nat B`).
    Nat {
        protocol: Protocol,
        orig_dst: IpAddr,
        dst_nat: IpAddr,
    },
    /// Flows addressed to port `port` (a NodePort) and DNATed to `dst_nat`
    /// (`conntrack -D -p udp --dport P --dst-nat B`).
    PortNat {
        protocol: Protocol,
        family: IpFamily,
        port: u16,
        dst_nat: IpAddr,
    },
}

impl Deletion {
    /// Arguments of the `conntrack` command performing the deletion.
    pub fn args(&self) -> Vec<String> {
        let (protocol, family, mut filter) = match self {
            Deletion::Nat {
                protocol,
                orig_dst,
                dst_nat,
            } => (
                *protocol,
                IpFamily::of(orig_dst),
                vec![
                    "--orig-dst".to_string(),
                    orig_dst.to_string(),
                    "--dst-nat".to_string(),
                    dst_nat.to_string(),
                ],
            ),
            Deletion::PortNat {
                protocol,
                family,
                port,
                dst_nat,
            } => (
                *protocol,
                *family,
                vec![
                    "--dport".to_string(),
                    port.to_string(),
                    "--dst-nat".to_string(),
                    dst_nat.to_string(),
                ],
            ),
        };
        let mut args = vec![
            "-D".to_string(),
            "-p".to_string(),
            protocol.as_lower_str().to_string(),
        ];
        args.append(&mut filter);
        if family == IpFamily::V6 {
            args.push("-f".to_string());
            args.push("ipv6".to_string());
        }
        args
    }
}

/// A destination whose un-NATed flows must go: `ip:port`, or any address on `port` (NodePort).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct UnnatedTarget {
    pub protocol: Protocol,
    pub family: IpFamily,
    pub ip: Option<IpAddr>,
    pub port: u16,
}

/// Everything to clear after a sync.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub deletions: Vec<Deletion>,
    pub unnated: Vec<UnnatedTarget>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.deletions.is_empty() && self.unnated.is_empty()
    }

    /// Adds another plan's work (a plan waiting for a successful sync meets the next one).
    pub fn merge(&mut self, other: Plan) {
        self.deletions.extend(other.deletions);
        self.deletions.sort();
        self.deletions.dedup();
        self.unnated.extend(other.unnated);
        self.unnated.sort();
        self.unnated.dedup();
    }
}

fn needs_cleanup(protocol: Protocol) -> bool {
    matches!(protocol, Protocol::Udp | Protocol::Sctp)
}

/// What to clear after moving from `previous` (None: nothing known, e.g. at start) to
/// `current`.
pub fn plan(previous: Option<&ProxyState>, current: &ProxyState) -> Plan {
    type Key = (ServicePortName, IpFamily);
    let index = |state: &ProxyState| -> BTreeMap<Key, usize> {
        state
            .service_ports
            .iter()
            .enumerate()
            .filter(|(_, port)| needs_cleanup(port.info.name.protocol))
            .map(|(i, port)| ((port.info.name.clone(), port.info.family), i))
            .collect()
    };
    let current_index = index(current);
    let mut deletions = BTreeSet::new();
    let mut unnated = BTreeSet::new();

    if let Some(previous) = previous {
        for (key, i) in index(previous) {
            let old = &previous.service_ports[i];
            let kept: BTreeSet<String> = current_index
                .get(&key)
                .map(|j| {
                    current.service_ports[*j]
                        .reachable_endpoints
                        .iter()
                        .map(|ep| ep.addr_string())
                        .collect()
                })
                .unwrap_or_default();
            let protocol = old.info.name.protocol;
            for endpoint in &old.reachable_endpoints {
                if kept.contains(&endpoint.addr_string()) {
                    continue;
                }
                for frontend in &old.frontends {
                    deletions.insert(match frontend.kind {
                        FrontendKind::NodePort => Deletion::PortNat {
                            protocol,
                            family: old.info.family,
                            port: frontend.port,
                            dst_nat: endpoint.ip,
                        },
                        _ => Deletion::Nat {
                            protocol,
                            orig_dst: frontend.ip,
                            dst_nat: endpoint.ip,
                        },
                    });
                }
            }
        }
    }

    let previous_index = previous.map(index).unwrap_or_default();
    for (key, j) in &current_index {
        let port = &current.service_ports[*j];
        if port.reachable_endpoints.is_empty() {
            continue;
        }
        let was_active = previous_index.get(key).is_some_and(|i| {
            !previous.expect("index built from previous").service_ports[*i]
                .reachable_endpoints
                .is_empty()
        });
        if was_active {
            continue;
        }
        for frontend in &port.frontends {
            unnated.insert(UnnatedTarget {
                protocol: port.info.name.protocol,
                family: port.info.family,
                ip: (frontend.kind != FrontendKind::NodePort).then_some(frontend.ip),
                port: frontend.port,
            });
        }
    }
    Plan {
        deletions: deletions.into_iter().collect(),
        unnated: unnated.into_iter().collect(),
    }
}

/// One conntrack entry's original and reply tuples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub protocol: String,
    pub orig_src: IpAddr,
    pub orig_dst: IpAddr,
    pub orig_sport: u16,
    pub orig_dport: u16,
    pub reply_src: IpAddr,
    pub reply_sport: u16,
}

impl Entry {
    /// The reply comes from where the original packet was sent: no DNAT happened.
    pub fn is_unnated(&self) -> bool {
        self.reply_src == self.orig_dst && self.reply_sport == self.orig_dport
    }

    fn delete_args(&self) -> Vec<String> {
        let mut args = vec![
            "-D".to_string(),
            "-p".to_string(),
            self.protocol.clone(),
            "--orig-src".to_string(),
            self.orig_src.to_string(),
            "--orig-dst".to_string(),
            self.orig_dst.to_string(),
            "--sport".to_string(),
            self.orig_sport.to_string(),
            "--dport".to_string(),
            self.orig_dport.to_string(),
        ];
        if IpFamily::of(&self.orig_src) == IpFamily::V6 {
            args.push("-f".to_string());
            args.push("ipv6".to_string());
        }
        args
    }
}

/// Parses one line of `conntrack -L` output
/// (`udp 17 29 src=… dst=… sport=… dport=… [UNREPLIED] src=… dst=… sport=… dport=… …`).
pub fn parse_entry(line: &str) -> Option<Entry> {
    let protocol = line.split_whitespace().next()?.to_string();
    let mut src = Vec::new();
    let mut dst = Vec::new();
    let mut sport = Vec::new();
    let mut dport = Vec::new();
    for token in line.split_whitespace() {
        let Some((key, value)) = token.split_once('=') else {
            continue;
        };
        match key {
            "src" => src.push(value.parse::<IpAddr>().ok()?),
            "dst" => dst.push(value.parse::<IpAddr>().ok()?),
            "sport" => sport.push(value.parse::<u16>().ok()?),
            "dport" => dport.push(value.parse::<u16>().ok()?),
            _ => {}
        }
    }
    if src.len() < 2 || dst.len() < 2 || sport.len() < 2 || dport.len() < 2 {
        return None;
    }
    Some(Entry {
        protocol,
        orig_src: src[0],
        orig_dst: dst[0],
        orig_sport: sport[0],
        orig_dport: dport[0],
        reply_src: src[1],
        reply_sport: sport[1],
    })
}

/// Whether an un-NATed entry goes to one of the targets.
pub fn matches_target(entry: &Entry, targets: &[UnnatedTarget]) -> bool {
    entry.is_unnated()
        && targets.iter().any(|target| {
            target.protocol.as_lower_str() == entry.protocol
                && IpFamily::of(&entry.orig_dst) == target.family
                && target.port == entry.orig_dport
                && target.ip.is_none_or(|ip| ip == entry.orig_dst)
        })
}

/// Why a conntrack command failed.
#[derive(Debug, thiserror::Error)]
#[error("conntrack {args}: {message}")]
pub struct ConntrackError {
    pub args: String,
    pub message: String,
}

/// The `conntrack` tool (package `conntrack`), acting on the current network namespace.
#[derive(Debug, Clone)]
pub struct Conntrack {
    program: PathBuf,
}

impl Default for Conntrack {
    fn default() -> Self {
        Conntrack {
            program: PathBuf::from("conntrack"),
        }
    }
}

impl Conntrack {
    pub fn new() -> Self {
        Self::default()
    }

    fn run(&self, args: &[String]) -> Result<String, ConntrackError> {
        let fail = |message: String| ConntrackError {
            args: args.join(" "),
            message,
        };
        let output = Command::new(&self.program)
            .args(args)
            .output()
            .map_err(|err| fail(format!("cannot run {}: {err}", self.program.display())))?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        // Deleting nothing is not an error for us (conntrack exits 1 then).
        if output.status.success() || stderr.contains(" 0 flow entries have been deleted") {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(fail(stderr.trim().to_string()))
        }
    }

    /// Carries out a plan; returns how many commands ran and the errors met (every command
    /// is attempted).
    pub fn execute(&self, plan: &Plan) -> (usize, Vec<ConntrackError>) {
        let mut commands = 0;
        let mut errors = Vec::new();
        for deletion in &plan.deletions {
            commands += 1;
            if let Err(err) = self.run(&deletion.args()) {
                errors.push(err);
            }
        }
        if !plan.unnated.is_empty() {
            let lists: BTreeSet<(Protocol, IpFamily)> = plan
                .unnated
                .iter()
                .map(|target| (target.protocol, target.family))
                .collect();
            for (protocol, family) in lists {
                let mut args = vec![
                    "-L".to_string(),
                    "-p".to_string(),
                    protocol.as_lower_str().to_string(),
                ];
                if family == IpFamily::V6 {
                    args.push("-f".to_string());
                    args.push("ipv6".to_string());
                }
                commands += 1;
                let listing = match self.run(&args) {
                    Ok(listing) => listing,
                    Err(err) => {
                        errors.push(err);
                        continue;
                    }
                };
                for entry in listing.lines().filter_map(parse_entry) {
                    if matches_target(&entry, &plan.unnated) {
                        commands += 1;
                        if let Err(err) = self.run(&entry.delete_args()) {
                            errors.push(err);
                        }
                    }
                }
            }
        }
        (commands, errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kubeport_proxy_model::{compute, EndpointSliceCache, NodeInfo, ProxyConfig};
    use serde_json::json;

    fn state(udp_endpoints: &[&str], tcp_endpoints: &[&str]) -> ProxyState {
        let service = |name: &str, protocol: &str, cluster_ip: &str, node_port: u16| {
            serde_json::from_value::<k8s_openapi::api::core::v1::Service>(json!({
                "metadata": {"namespace": "ns", "name": name},
                "spec": {"type": "NodePort", "clusterIP": cluster_ip, "clusterIPs": [cluster_ip],
                         "ports": [{"name": "p", "port": 53, "protocol": protocol, "nodePort": node_port}]}
            }))
            .unwrap()
        };
        let slice = |name: &str, protocol: &str, ips: &[&str]| {
            serde_json::from_value::<k8s_openapi::api::discovery::v1::EndpointSlice>(json!({
                "metadata": {"namespace": "ns", "name": format!("{name}-x"),
                             "labels": {"kubernetes.io/service-name": name}},
                "addressType": "IPv4",
                "endpoints": ips.iter().map(|ip| json!({"addresses": [ip]})).collect::<Vec<_>>(),
                "ports": [{"name": "p", "port": 5353, "protocol": protocol}]
            }))
            .unwrap()
        };
        let services = [
            service("dns", "UDP", "10.96.0.10", 30053),
            service("web", "TCP", "10.96.0.20", 30080),
        ];
        let slices = [
            slice("dns", "UDP", udp_endpoints),
            slice("web", "TCP", tcp_endpoints),
        ];
        compute(
            &services,
            &EndpointSliceCache::from_slices(&slices).endpoints_map(),
            &NodeInfo {
                name: "n1".into(),
                ips: vec!["172.18.0.2".parse().unwrap()],
                labels: Default::default(),
            },
            &ProxyConfig::default(),
        )
    }

    #[test]
    fn removed_udp_endpoint_clears_its_flows_from_every_frontend() {
        let before = state(&["10.244.1.2", "10.244.1.3"], &["10.244.1.2"]);
        let after = state(&["10.244.1.3"], &[]);
        let plan = plan(Some(&before), &after);
        assert_eq!(
            plan.deletions,
            vec![
                Deletion::Nat {
                    protocol: Protocol::Udp,
                    orig_dst: "10.96.0.10".parse().unwrap(),
                    dst_nat: "10.244.1.2".parse().unwrap(),
                },
                Deletion::PortNat {
                    protocol: Protocol::Udp,
                    family: IpFamily::V4,
                    port: 30053,
                    dst_nat: "10.244.1.2".parse().unwrap(),
                },
            ]
        );
        // TCP needs nothing; the UDP service stayed active.
        assert!(plan.unnated.is_empty());
        assert_eq!(
            plan.deletions[0].args(),
            [
                "-D",
                "-p",
                "udp",
                "--orig-dst",
                "10.96.0.10",
                "--dst-nat",
                "10.244.1.2"
            ]
        );
        assert_eq!(
            plan.deletions[1].args(),
            [
                "-D",
                "-p",
                "udp",
                "--dport",
                "30053",
                "--dst-nat",
                "10.244.1.2"
            ]
        );
    }

    #[test]
    fn first_endpoint_clears_unnated_flows() {
        let before = state(&[], &[]);
        let after = state(&["10.244.1.2"], &["10.244.1.9"]);
        let plan = plan(Some(&before), &after);
        assert!(plan.deletions.is_empty());
        assert_eq!(
            plan.unnated,
            vec![
                UnnatedTarget {
                    protocol: Protocol::Udp,
                    family: IpFamily::V4,
                    ip: None,
                    port: 30053,
                },
                UnnatedTarget {
                    protocol: Protocol::Udp,
                    family: IpFamily::V4,
                    ip: Some("10.96.0.10".parse().unwrap()),
                    port: 53,
                },
            ]
        );
        // Unchanged state: nothing to do.
        assert!(super::plan(Some(&after), &after).is_empty());
        // At start every active UDP service is checked for un-NATed flows.
        assert_eq!(super::plan(None, &after).unnated, plan.unnated);
    }

    #[test]
    fn parses_conntrack_listing_lines() {
        let unnated = parse_entry("udp      17 28 src=172.31.1.100 dst=172.31.1.2 sport=40000 dport=30053 [UNREPLIED] src=172.31.1.2 dst=172.31.1.100 sport=30053 dport=40000 mark=0 use=1").unwrap();
        assert!(unnated.is_unnated());
        let natted = parse_entry("udp      17 28 src=172.31.1.100 dst=172.31.1.2 sport=40000 dport=30053 src=10.244.1.2 dst=172.31.1.100 sport=5353 dport=40000 [ASSURED] mark=0 use=1").unwrap();
        assert!(!natted.is_unnated());
        let targets = [UnnatedTarget {
            protocol: Protocol::Udp,
            family: IpFamily::V4,
            ip: None,
            port: 30053,
        }];
        assert!(matches_target(&unnated, &targets));
        assert!(!matches_target(&natted, &targets));
        assert_eq!(
            unnated.delete_args(),
            [
                "-D",
                "-p",
                "udp",
                "--orig-src",
                "172.31.1.100",
                "--orig-dst",
                "172.31.1.2",
                "--sport",
                "40000",
                "--dport",
                "30053"
            ]
        );
        assert_eq!(
            parse_entry("conntrack v1.4.7 (conntrack-tools): 0 flow entries have been shown."),
            None
        );
    }
}
