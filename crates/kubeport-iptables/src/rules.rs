//! Rendering of one IP family's rules from a [`ProxyState`], in the order kube-proxy's
//! `syncProxyRules` writes them. The proxier decides which per-service chains go into a
//! restore input; this module only produces the lines.

use std::fmt::Write as _;
use std::net::IpAddr;

use kubeport_proxy_model::{
    ClusterIpMasquerade, Endpoint, FamilySettings, IpFamily, NamespacedName, NodePortTargets,
    ProxyState, ServicePortState, SessionAffinity,
};

use crate::names::{
    endpoint_chain, ServicePortChains, KUBE_EXTERNAL_SERVICES, KUBE_FIREWALL, KUBE_FORWARD,
    KUBE_MARK_MASQ, KUBE_NODEPORTS, KUBE_POSTROUTING, KUBE_PROXY_FIREWALL, KUBE_SERVICES,
};

/// Above this many endpoints kube-proxy switches to "large cluster mode": per-endpoint rules
/// lose their comments to keep the rule set smaller.
pub const LARGE_CLUSTER_ENDPOINTS_THRESHOLD: usize = 1000;

/// nfacct counter of packets accepted on localhost NodePorts.
pub const LOCALHOST_NODEPORT_ACCEPTED_COUNTER: &str = "localhost_nps_accepted_pkts";
/// nfacct counter of INVALID packets dropped in KUBE-FORWARD.
pub const CT_STATE_INVALID_DROPPED_COUNTER: &str = "ct_state_invalid_dropped_pkts";

/// iptables-specific proxy settings (kube-proxy's `iptables` configuration and what it
/// detects on the host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IptablesConfig {
    /// `--iptables-localhost-nodeports` (default true): NodePorts also answer on 127.0.0.0/8
    /// (IPv4, only when NodePorts are accepted on every local address). Requires the
    /// `net.ipv4.conf.all.route_localnet=1` sysctl in the node's namespace.
    pub localhost_nodeports: bool,
    /// Masquerade with `--random-fully` (iptables ≥ 1.6.2 and the kernel support it).
    pub random_fully: bool,
    /// The nfacct counters (`localhost_nps_accepted_pkts`, `ct_state_invalid_dropped_pkts`)
    /// exist: the corresponding rules carry `-m nfacct`.
    pub nfacct_counters: bool,
    /// `net.netfilter.nf_conntrack_tcp_be_liberal` is set: no DROP rule for INVALID packets.
    pub conntrack_tcp_be_liberal: bool,
}

impl Default for IptablesConfig {
    fn default() -> Self {
        IptablesConfig {
            localhost_nodeports: true,
            random_fully: true,
            nfacct_counters: false,
            conntrack_tcp_be_liberal: false,
        }
    }
}

impl IptablesConfig {
    /// Localhost NodePorts are in effect for this family: IPv4, enabled, and NodePorts open
    /// on every local address (kube-proxy turns them off when `--nodeport-addresses` does
    /// not cover 127.0.0.1).
    pub fn localhost_nodeports_active(&self, settings: &FamilySettings) -> bool {
        self.localhost_nodeports
            && settings.family == IpFamily::V4
            && settings.node_ports == NodePortTargets::AllLocalAddresses
    }
}

/// The per-service chains of one service port and their rules.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct PortChains {
    /// Chain names in declaration order (EXT, FW, SVC, SVL, SEPs).
    pub(crate) chains: Vec<String>,
    /// Their rules, in kube-proxy's order.
    pub(crate) rules: Vec<String>,
}

/// One service port: the dispatch rules in the fixed nat chains (always rewritten) and its
/// own chains (rewritten only when its Service changed, or on a full sync).
#[derive(Debug, Clone)]
pub(crate) struct RenderedPort {
    pub(crate) service: NamespacedName,
    /// nat `KUBE-SERVICES` / `KUBE-NODEPORTS` rules.
    pub(crate) capture: Vec<String>,
    pub(crate) own: PortChains,
}

/// Everything one family's restore input can contain.
#[derive(Debug, Clone)]
pub(crate) struct RenderedFamily {
    pub(crate) filter_chains: Vec<&'static str>,
    pub(crate) filter_rules: Vec<String>,
    /// `KUBE-POSTROUTING` and `KUBE-MARK-MASQ` rules.
    pub(crate) nat_head: Vec<String>,
    pub(crate) ports: Vec<RenderedPort>,
    /// The final `KUBE-SERVICES` → `KUBE-NODEPORTS` rule(s).
    pub(crate) nat_tail: Vec<String>,
}

/// The fixed nat chains, declared (and so flushed) by every restore input.
pub(crate) const NAT_FIXED_CHAINS: [&str; 4] = [
    KUBE_SERVICES,
    KUBE_NODEPORTS,
    KUBE_POSTROUTING,
    KUBE_MARK_MASQ,
];

/// Go's `fmt.Sprintf("%0.10f", 1.0/float64(n))`; Rust's fixed-precision formatting rounds
/// the exact binary value half-to-even like Go's.
pub fn probability(n: usize) -> String {
    format!("{:.10}", 1.0 / n as f64)
}

/// `"text"`: kube-proxy writes comments containing spaces between literal double quotes.
fn quoted(text: &str) -> String {
    format!("\"{text}\"")
}

/// Joins the parts of one rule with single spaces (kube-proxy's `LineBuffer.Write`).
macro_rules! line {
    ($($part:expr),+ $(,)?) => {{
        let mut line = String::new();
        $( push_part(&mut line, AsRef::<str>::as_ref(&$part)); )+
        line
    }};
}

/// Appends one part of a rule; empty parts (optional matches) are skipped.
fn push_part(line: &mut String, part: &str) {
    if !part.is_empty() {
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(part);
    }
}

struct Ctx<'a> {
    settings: &'a FamilySettings,
    config: &'a IptablesConfig,
    mark: String,
    large_cluster: bool,
    localhost_nodeports: bool,
}

/// Renders the rules of one family.
pub(crate) fn render_family(
    state: &ProxyState,
    family: IpFamily,
    config: &IptablesConfig,
) -> RenderedFamily {
    let settings = state.family(family);
    // kube-proxy counts every endpoint of every service port (ready or not); the model
    // keeps only the usable ones, which is what this counts.
    let total_endpoints: usize = state
        .service_ports_of(family)
        .map(|port| port.reachable_endpoints.len())
        .sum();
    let ctx = Ctx {
        settings,
        config,
        mark: format!("{:#x}", state.masquerade_mark),
        large_cluster: total_endpoints > LARGE_CLUSTER_ENDPOINTS_THRESHOLD,
        localhost_nodeports: config.localhost_nodeports_active(settings),
    };
    let mark = &ctx.mark;
    let mark_mask = format!("{mark}/{mark}");

    let mut filter_chains = vec![
        KUBE_SERVICES,
        KUBE_EXTERNAL_SERVICES,
        KUBE_FORWARD,
        KUBE_NODEPORTS,
        KUBE_PROXY_FIREWALL,
    ];
    let mut filter_rules = Vec::new();

    let mut masquerade = line!(
        "-A",
        KUBE_POSTROUTING,
        "-m comment --comment",
        quoted("kubernetes service traffic requiring SNAT"),
        "-j MASQUERADE"
    );
    if config.random_fully {
        masquerade.push_str(" --random-fully");
    }
    let nat_head = vec![
        line!(
            "-A",
            KUBE_POSTROUTING,
            "-m mark ! --mark",
            mark_mask,
            "-j RETURN"
        ),
        // Clear the mark so a packet re-traversing the stack is not masqueraded twice.
        line!("-A", KUBE_POSTROUTING, "-j MARK --xor-mark", mark),
        masquerade,
        line!("-A", KUBE_MARK_MASQ, "-j MARK --or-mark", mark),
    ];

    if ctx.localhost_nodeports {
        // route_localnet makes 127.0.0.0/8 routable; this keeps it from being reached from
        // outside the node (kubelet installs the same rule).
        filter_chains.push(KUBE_FIREWALL);
        filter_rules.push(line!(
            "-A",
            KUBE_FIREWALL,
            "-m comment --comment",
            quoted("block incoming localnet connections"),
            "-d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP"
        ));
    }

    let ports = state
        .service_ports_of(family)
        .map(|port| render_port(&ctx, port, &mut filter_rules))
        .collect();

    let nodeports_comment =
        quoted("kubernetes service nodeports; NOTE: this must be the last rule in this chain");
    let mut nat_tail = Vec::new();
    match &settings.node_ports {
        NodePortTargets::AllLocalAddresses => {
            let exclude_loopback = match family {
                IpFamily::V6 => "! -d ::1/128",
                IpFamily::V4 if !ctx.localhost_nodeports => "! -d 127.0.0.0/8",
                IpFamily::V4 => "",
            };
            nat_tail.push(line!(
                "-A",
                KUBE_SERVICES,
                "-m comment --comment",
                nodeports_comment,
                "-m addrtype --dst-type LOCAL",
                exclude_loopback,
                "-j",
                KUBE_NODEPORTS
            ));
        }
        NodePortTargets::Addresses(addresses) => {
            for address in addresses {
                nat_tail.push(line!(
                    "-A",
                    KUBE_SERVICES,
                    "-m comment --comment",
                    nodeports_comment,
                    "-d",
                    address.to_string(),
                    "-j",
                    KUBE_NODEPORTS
                ));
            }
        }
    }

    if !config.conntrack_tcp_be_liberal {
        // Out-of-window packets would otherwise reach the pod un-NATed and reset connections.
        let nfacct = if config.nfacct_counters {
            format!("-m nfacct --nfacct-name {CT_STATE_INVALID_DROPPED_COUNTER}")
        } else {
            String::new()
        };
        filter_rules.push(line!(
            "-A",
            KUBE_FORWARD,
            "-m conntrack --ctstate INVALID",
            nfacct,
            "-j DROP"
        ));
    }
    filter_rules.push(line!(
        "-A",
        KUBE_FORWARD,
        "-m comment --comment",
        quoted("kubernetes forwarding rules"),
        "-m mark --mark",
        mark_mask,
        "-j ACCEPT"
    ));
    filter_rules.push(line!(
        "-A",
        KUBE_FORWARD,
        "-m comment --comment",
        quoted("kubernetes forwarding conntrack rule"),
        "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
    ));

    RenderedFamily {
        filter_chains,
        filter_rules,
        nat_head,
        ports,
        nat_tail,
    }
}

/// `-m tcp -p tcp -d IP --dport N`: the match on one service address.
fn destination(protocol: &str, ip: &IpAddr, port: u16) -> String {
    format!("-m {protocol} -p {protocol} -d {ip} --dport {port}")
}

fn render_port(
    ctx: &Ctx<'_>,
    port: &ServicePortState,
    filter_rules: &mut Vec<String>,
) -> RenderedPort {
    let info = &port.info;
    let name = &info.name;
    let spn = name.to_string();
    let protocol = name.protocol.as_lower_str();
    let chains = ServicePortChains::new(name);

    let has_endpoints = port.has_endpoints;
    let has_local = !port.local_endpoints.is_empty();
    let uses_cluster_chain = !port.cluster_endpoints.is_empty() && info.uses_cluster_endpoints();
    let uses_local_chain = has_local && info.uses_local_endpoints();
    let (internal_chain, has_internal_endpoints) = if info.internal_policy_local {
        (&chains.local, has_endpoints && has_local)
    } else {
        (&chains.cluster, has_endpoints)
    };
    let (external_policy_chain, has_external_endpoints) = if info.external_policy_local {
        (&chains.local, has_endpoints && has_local)
    } else {
        (&chains.cluster, has_endpoints)
    };
    // Needed even without external endpoints: it short-circuits pod and host traffic.
    let uses_external_chain = has_endpoints && info.externally_accessible();
    let uses_firewall_chain = has_endpoints
        && !info.load_balancer_ips.is_empty()
        && !info.load_balancer_source_ranges.is_empty();
    let load_balancer_chain = if uses_firewall_chain {
        &chains.firewall
    } else {
        &chains.external
    };

    let (
        internal_filter_target,
        internal_filter_comment,
        external_filter_target,
        external_filter_comment,
    ) = if !has_endpoints {
        let comment = quoted(&format!("{spn} has no endpoints"));
        ("REJECT", comment.clone(), "REJECT", comment)
    } else {
        let comment = quoted(&format!("{spn} has no local endpoints"));
        ("DROP", comment.clone(), "DROP", comment)
    };

    let mut capture = Vec::new();

    // ClusterIP.
    let cluster_ip_match = destination(protocol, &info.cluster_ip, info.port);
    if has_internal_endpoints {
        capture.push(line!(
            "-A",
            KUBE_SERVICES,
            "-m comment --comment",
            quoted(&format!("{spn} cluster IP")),
            cluster_ip_match,
            "-j",
            internal_chain
        ));
    } else {
        filter_rules.push(line!(
            "-A",
            KUBE_SERVICES,
            "-m comment --comment",
            internal_filter_comment,
            cluster_ip_match,
            "-j",
            internal_filter_target
        ));
    }

    // externalIPs.
    for external_ip in &info.external_ips {
        let matcher = destination(protocol, external_ip, info.port);
        if has_endpoints {
            capture.push(line!(
                "-A",
                KUBE_SERVICES,
                "-m comment --comment",
                quoted(&format!("{spn} external IP")),
                matcher,
                "-j",
                chains.external
            ));
        }
        if !has_external_endpoints {
            filter_rules.push(line!(
                "-A",
                KUBE_EXTERNAL_SERVICES,
                "-m comment --comment",
                external_filter_comment,
                matcher,
                "-j",
                external_filter_target
            ));
        }
    }

    // LoadBalancer ingress IPs.
    for lb_ip in &info.load_balancer_ips {
        let matcher = destination(protocol, lb_ip, info.port);
        if has_endpoints {
            capture.push(line!(
                "-A",
                KUBE_SERVICES,
                "-m comment --comment",
                quoted(&format!("{spn} loadbalancer IP")),
                matcher,
                "-j",
                load_balancer_chain
            ));
        }
        if uses_firewall_chain {
            // Traffic the KUBE-FW chain did not DNAT reaches the filter table unchanged.
            filter_rules.push(line!(
                "-A",
                KUBE_PROXY_FIREWALL,
                "-m comment --comment",
                quoted(&format!(
                    "{spn} traffic not accepted by {}",
                    chains.firewall
                )),
                matcher,
                "-j DROP"
            ));
        }
    }
    if !has_external_endpoints {
        for lb_ip in &info.load_balancer_ips {
            filter_rules.push(line!(
                "-A",
                KUBE_EXTERNAL_SERVICES,
                "-m comment --comment",
                external_filter_comment,
                destination(protocol, lb_ip, info.port),
                "-j",
                external_filter_target
            ));
        }
    }

    // NodePort.
    if let Some(node_port) = info.node_port {
        if has_endpoints {
            if ctx.localhost_nodeports && ctx.config.nfacct_counters {
                capture.push(line!(
                    "-A",
                    KUBE_NODEPORTS,
                    "-m comment --comment",
                    spn,
                    format!("-m {protocol} -p {protocol} -d 127.0.0.0/8 --dport {node_port}"),
                    "-m nfacct --nfacct-name",
                    LOCALHOST_NODEPORT_ACCEPTED_COUNTER,
                    "-j",
                    chains.external
                ));
            }
            capture.push(line!(
                "-A",
                KUBE_NODEPORTS,
                "-m comment --comment",
                spn,
                format!("-m {protocol} -p {protocol} --dport {node_port}"),
                "-j",
                chains.external
            ));
        }
        if !has_external_endpoints {
            filter_rules.push(line!(
                "-A",
                KUBE_EXTERNAL_SERVICES,
                "-m comment --comment",
                external_filter_comment,
                "-m addrtype --dst-type LOCAL",
                format!("-m {protocol} -p {protocol} --dport {node_port}"),
                "-j",
                external_filter_target
            ));
        }
    }

    // healthCheckNodePort: accepted whether or not this node has local endpoints.
    if let Some(health_check_port) = info.health_check_node_port {
        filter_rules.push(line!(
            "-A",
            KUBE_NODEPORTS,
            "-m comment --comment",
            quoted(&format!("{spn} health check node port")),
            format!("-m tcp -p tcp --dport {health_check_port}"),
            "-j ACCEPT"
        ));
    }

    let mut own = PortChains::default();
    let detector = ctx.settings.local_traffic_cidrs.first();

    // Internal traffic: masquerade off-cluster sources reaching the ClusterIP (they may have
    // been routed here and the endpoint may be on another node).
    if has_internal_endpoints {
        let args = line!(
            "-m comment --comment",
            quoted(&format!("{spn} cluster IP")),
            cluster_ip_match
        );
        match &port.cluster_ip_masquerade {
            ClusterIpMasquerade::All => {
                own.rules
                    .push(line!("-A", internal_chain, args, "-j", KUBE_MARK_MASQ))
            }
            ClusterIpMasquerade::NotFrom(nets) => {
                if let Some(net) = nets.first() {
                    own.rules.push(line!(
                        "-A",
                        internal_chain,
                        args,
                        "! -s",
                        net.to_string(),
                        "-j",
                        KUBE_MARK_MASQ
                    ));
                }
            }
            ClusterIpMasquerade::Never => {}
        }
    }

    if uses_external_chain {
        own.chains.push(chains.external.clone());
        let ext = &chains.external;
        if !info.external_policy_local {
            // Endpoints may be on other nodes: masquerade so replies come back through here.
            own.rules.push(line!(
                "-A",
                ext,
                "-m comment --comment",
                quoted(&format!(
                    "masquerade traffic for {spn} external destinations"
                )),
                "-j",
                KUBE_MARK_MASQ
            ));
        } else {
            if let Some(net) = detector {
                // Pods reaching an external address behave as if they went out to the load
                // balancer and came back: no traffic policy applies.
                own.rules.push(line!(
                    "-A",
                    ext,
                    "-m comment --comment",
                    quoted(&format!("pod traffic for {spn} external destinations")),
                    "-s",
                    net.to_string(),
                    "-j",
                    chains.cluster
                ));
            }
            // The host picks the external address itself as source: it must be masqueraded.
            own.rules.push(line!(
                "-A",
                ext,
                "-m comment --comment",
                quoted(&format!(
                    "masquerade LOCAL traffic for {spn} external destinations"
                )),
                "-m addrtype --src-type LOCAL -j",
                KUBE_MARK_MASQ
            ));
            own.rules.push(line!(
                "-A",
                ext,
                "-m comment --comment",
                quoted(&format!(
                    "route LOCAL traffic for {spn} external destinations"
                )),
                "-m addrtype --src-type LOCAL -j",
                chains.cluster
            ));
        }
        if has_external_endpoints {
            own.rules
                .push(line!("-A", ext, "-j", external_policy_chain));
        }
    }

    if uses_firewall_chain {
        let fw = &chains.firewall;
        own.chains.push(fw.clone());
        let args = line!(
            "-A",
            fw,
            "-m comment --comment",
            quoted(&format!("{spn} loadbalancer IP"))
        );
        let mut allow_from_node = false;
        for net in &info.load_balancer_source_ranges {
            own.rules
                .push(line!(args, "-s", net.to_string(), "-j", chains.external));
            if ctx.settings.node_ip.is_some_and(|ip| net.contains(&ip)) {
                allow_from_node = true;
            }
        }
        // A VIP is often bound on the node: requests from the node to it then arrive with the
        // VIP as source and must pass when the node itself is allowed.
        if allow_from_node {
            for lb_ip in &info.load_balancer_ips {
                own.rules
                    .push(line!(args, "-s", lb_ip.to_string(), "-j", chains.external));
            }
        }
        own.rules.push(line!(
            "-A",
            fw,
            "-m comment --comment",
            quoted(&format!(
                "other traffic to {spn} will be dropped by KUBE-PROXY-FIREWALL"
            ))
        ));
    }

    if uses_cluster_chain {
        own.chains.push(chains.cluster.clone());
        load_balancing_rules(
            ctx,
            &mut own.rules,
            &spn,
            port,
            &chains.cluster,
            &port.cluster_endpoints,
        );
    }
    if uses_local_chain {
        own.chains.push(chains.local.clone());
        load_balancing_rules(
            ctx,
            &mut own.rules,
            &spn,
            port,
            &chains.local,
            &port.local_endpoints,
        );
    }

    let affinity = matches!(info.session_affinity, SessionAffinity::ClientIp { .. });
    let endpoint_comment = if ctx.large_cluster {
        String::new()
    } else {
        format!("-m comment --comment {spn}")
    };
    for endpoint in &port.reachable_endpoints {
        let sep = endpoint_chain(name, endpoint);
        // Hairpin: a pod reaching itself through the service must be masqueraded.
        own.rules.push(line!(
            "-A",
            sep,
            endpoint_comment,
            "-s",
            endpoint.ip.to_string(),
            "-j",
            KUBE_MARK_MASQ
        ));
        let mut dnat = line!("-A", sep, endpoint_comment);
        if affinity {
            let _ = write!(dnat, " -m recent --name {sep} --set");
        }
        let _ = write!(
            dnat,
            " -m {protocol} -p {protocol} -j DNAT --to-destination {}",
            endpoint.addr_string()
        );
        own.rules.push(dnat);
        own.chains.push(sep);
    }
    RenderedPort {
        service: name.service.clone(),
        capture,
        own,
    }
}

/// Rules of a policy chain (`KUBE-SVC-…`/`KUBE-SVL-…`): session-affinity lookups first,
/// then one rule per endpoint in `ip:port` order, rule i matching with probability
/// 1/(n-i) so that the choice is uniform; the last one always matches.
fn load_balancing_rules(
    ctx: &Ctx<'_>,
    rules: &mut Vec<String>,
    spn: &str,
    port: &ServicePortState,
    chain: &str,
    endpoints: &[Endpoint],
) {
    let comment = |endpoint: &Endpoint| {
        if ctx.large_cluster {
            String::new()
        } else {
            format!(
                "-m comment --comment {}",
                quoted(&format!("{spn} -> {}", endpoint.addr_string()))
            )
        }
    };
    if let SessionAffinity::ClientIp { timeout_seconds } = port.info.session_affinity {
        for endpoint in endpoints {
            let sep = endpoint_chain(&port.info.name, endpoint);
            rules.push(line!(
                "-A",
                chain,
                comment(endpoint),
                format!("-m recent --name {sep} --rcheck --seconds {timeout_seconds} --reap"),
                "-j",
                sep
            ));
        }
    }
    let count = endpoints.len();
    for (index, endpoint) in endpoints.iter().enumerate() {
        let sep = endpoint_chain(&port.info.name, endpoint);
        let statistic = if index + 1 < count {
            format!(
                "-m statistic --mode random --probability {}",
                probability(count - index)
            )
        } else {
            String::new()
        };
        rules.push(line!("-A", chain, comment(endpoint), statistic, "-j", sep));
    }
}

#[cfg(test)]
mod tests {
    use super::probability;

    #[test]
    fn probabilities_match_go_formatting() {
        assert_eq!(probability(6), "0.1666666667");
        assert_eq!(probability(5), "0.2000000000");
        assert_eq!(probability(3), "0.3333333333");
        assert_eq!(probability(2), "0.5000000000");
        // 1/2048 = 0.00048828125 exactly: a tie, rounded to even like Go.
        assert_eq!(probability(2048), "0.0004882812");
        assert_eq!(probability(1001), "0.0009990010");
    }
}
