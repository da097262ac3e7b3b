//! The content of one `kube-proxy` table, rendered from a [`ProxyState`]: set/map and chain
//! declarations, the rules of every chain, and the elements of every set/map. The proxier
//! diffs two of these to build a transaction.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;
use kubeport_proxy_model::{
    ClusterIpMasquerade, FamilySettings, IpFamily, NodePortTargets, ProxyState, ServicePortState,
    SessionAffinity, TrafficTarget,
};

use crate::names::{affinity_set, endpoint_chain, ServicePortChains};

/// Name of the table, in both families.
pub const TABLE_NAME: &str = "kube-proxy";
/// Comment of the table.
pub const TABLE_COMMENT: &str = "rules for kube-proxy";

pub(crate) const SERVICES_CHAIN: &str = "services";
pub(crate) const SERVICE_ENDPOINTS_CHECK_CHAIN: &str = "service-endpoints-check";
pub(crate) const NODEPORT_ENDPOINTS_CHECK_CHAIN: &str = "nodeport-endpoints-check";
pub(crate) const CLUSTER_IPS_CHECK_CHAIN: &str = "cluster-ips-check";
pub(crate) const FIREWALL_CHECK_CHAIN: &str = "firewall-check";
pub(crate) const MARK_MASQ_CHAIN: &str = "mark-for-masquerade";
pub(crate) const MASQUERADING_CHAIN: &str = "masquerading";
pub(crate) const REJECT_CHAIN: &str = "reject-chain";

pub(crate) const CLUSTER_IPS_SET: &str = "cluster-ips";
pub(crate) const NODEPORT_IPS_SET: &str = "nodeport-ips";
pub(crate) const SERVICE_IPS_MAP: &str = "service-ips";
pub(crate) const SERVICE_NODEPORTS_MAP: &str = "service-nodeports";
pub(crate) const NO_ENDPOINT_SERVICES_MAP: &str = "no-endpoint-services";
pub(crate) const NO_ENDPOINT_NODEPORTS_MAP: &str = "no-endpoint-nodeports";
pub(crate) const FIREWALL_IPS_MAP: &str = "firewall-ips";

/// nftables family keyword of the table (`ip` / `ip6`).
pub fn family_keyword(family: IpFamily) -> &'static str {
    match family {
        IpFamily::V4 => "ip",
        IpFamily::V6 => "ip6",
    }
}

fn addr_type(family: IpFamily) -> &'static str {
    match family {
        IpFamily::V4 => "ipv4_addr",
        IpFamily::V6 => "ipv6_addr",
    }
}

/// A set or a map (the two need different keywords).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SetKind {
    Set,
    Map,
}

impl SetKind {
    pub(crate) fn keyword(self) -> &'static str {
        match self {
            SetKind::Set => "set",
            SetKind::Map => "map",
        }
    }
}

/// Declaration of a set or map: `add <kind> <table> <name> { <spec> }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SetDecl {
    pub(crate) kind: SetKind,
    pub(crate) name: String,
    /// Body between the braces, e.g. `type ipv4_addr ; comment "Active ClusterIPs" ;`.
    pub(crate) spec: String,
}

/// A chain: its declaration and its rules in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Chain {
    pub(crate) name: String,
    /// Body between the braces of `add chain` (base chain hook or comment), if any.
    pub(crate) spec: Option<String>,
    pub(crate) rules: Vec<String>,
}

/// One set/map element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Element {
    pub(crate) set: String,
    pub(crate) key: String,
    pub(crate) comment: Option<String>,
    /// Verdict of a map element (`goto service-…`, `drop`).
    pub(crate) value: Option<String>,
}

impl Element {
    /// `{ key [comment "…"] [: value] }`.
    pub(crate) fn body(&self) -> String {
        let mut body = format!("{{ {}", self.key);
        if let Some(comment) = &self.comment {
            body.push_str(&format!(" comment {}", quote(comment)));
        }
        if let Some(value) = &self.value {
            body.push_str(&format!(" : {value}"));
        }
        body.push_str(" }");
        body
    }
}

/// Everything one family's table should contain, in rendering order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Table {
    pub(crate) family: IpFamily,
    pub(crate) sets: Vec<SetDecl>,
    pub(crate) chains: Vec<Chain>,
    pub(crate) elements: Vec<Element>,
}

/// nftables string literal. nft has no escape sequences inside quotes, so characters that
/// would end the literal or the line (`"`, `\`, newline) are dropped; the names and comments
/// written here never contain them.
pub(crate) fn quote(text: &str) -> String {
    let escaped: String = text
        .chars()
        .filter(|c| *c != '"' && *c != '\\' && *c != '\n')
        .collect();
    format!("\"{escaped}\"")
}

/// `a` or `{ a , b }`: an address or CIDR list as one nftables expression.
fn address_expression(items: &[String]) -> String {
    if items.len() == 1 {
        items[0].clone()
    } else {
        format!("{{ {} }}", items.join(" , "))
    }
}

fn nets_to_strings(nets: &[IpNet]) -> Vec<String> {
    nets.iter().map(ToString::to_string).collect()
}

struct TableBuilder {
    table: Table,
    seen_sets: BTreeSet<String>,
    seen_chains: BTreeSet<String>,
    seen_elements: BTreeSet<(String, String)>,
}

impl TableBuilder {
    fn new(family: IpFamily) -> Self {
        TableBuilder {
            table: Table {
                family,
                sets: Vec::new(),
                chains: Vec::new(),
                elements: Vec::new(),
            },
            seen_sets: BTreeSet::new(),
            seen_chains: BTreeSet::new(),
            seen_elements: BTreeSet::new(),
        }
    }

    fn set(&mut self, kind: SetKind, name: &str, spec: String) {
        if self.seen_sets.insert(name.to_string()) {
            self.table.sets.push(SetDecl {
                kind,
                name: name.to_string(),
                spec,
            });
        }
    }

    fn chain(&mut self, name: &str, spec: Option<String>, rules: Vec<String>) {
        if self.seen_chains.insert(name.to_string()) {
            self.table.chains.push(Chain {
                name: name.to_string(),
                spec,
                rules,
            });
        }
    }

    /// Adds an element unless the same key is already in the set: several service ports
    /// share a ClusterIP, and the first (in sorted order) owner of a contested key wins.
    fn element(&mut self, set: &str, key: String, comment: Option<String>, value: Option<String>) {
        if self.seen_elements.insert((set.to_string(), key.clone())) {
            self.table.elements.push(Element {
                set: set.to_string(),
                key,
                comment,
                value,
            });
        }
    }
}

fn base_chain_spec(kind: &str, hook: &str, priority: i32) -> Option<String> {
    Some(format!("type {kind} hook {hook} priority {priority} ;"))
}

/// Declares the fixed sets, maps and chains with their rules.
fn render_fixed(builder: &mut TableBuilder, settings: &FamilySettings, mark: u32) {
    let family = settings.family;
    let ip = family_keyword(family);
    let addr = addr_type(family);
    let no_localhost = match family {
        IpFamily::V4 => "ip daddr != 127.0.0.0/8",
        IpFamily::V6 => "ip6 daddr != ::1",
    };
    let mark = format!("{mark:#x}");
    let tuple_map = |comment: &str| {
        format!(
            "type {addr} . inet_proto . inet_service : verdict ; comment {} ;",
            quote(comment)
        )
    };
    let port_map = |comment: &str| {
        format!(
            "type inet_proto . inet_service : verdict ; comment {} ;",
            quote(comment)
        )
    };

    builder.set(
        SetKind::Set,
        CLUSTER_IPS_SET,
        format!("type {addr} ; comment {} ;", quote("Active ClusterIPs")),
    );
    let node_port_ips = match &settings.node_ports {
        NodePortTargets::AllLocalAddresses => None,
        NodePortTargets::Addresses(addresses) => Some(addresses),
    };
    if node_port_ips.is_some() {
        builder.set(
            SetKind::Set,
            NODEPORT_IPS_SET,
            format!(
                "type {addr} ; comment {} ;",
                quote("IPs that accept NodePort traffic")
            ),
        );
    }
    builder.set(
        SetKind::Map,
        FIREWALL_IPS_MAP,
        tuple_map("destinations that are subject to LoadBalancerSourceRanges"),
    );
    builder.set(
        SetKind::Map,
        NO_ENDPOINT_NODEPORTS_MAP,
        port_map("vmap to drop or reject packets to service nodeports with no endpoints"),
    );
    builder.set(
        SetKind::Map,
        NO_ENDPOINT_SERVICES_MAP,
        tuple_map("vmap to drop or reject packets to services with no endpoints"),
    );
    builder.set(
        SetKind::Map,
        SERVICE_IPS_MAP,
        tuple_map("ClusterIP, ExternalIP and LoadBalancer IP traffic"),
    );
    builder.set(
        SetKind::Map,
        SERVICE_NODEPORTS_MAP,
        port_map("NodePort traffic"),
    );

    // Filtering looks at pre-DNAT destinations, so the firewall runs before DNAT (dstnat - 10).
    let jump_new = |chain: &str| format!("ct state new jump {chain}");
    builder.chain(
        "filter-prerouting-pre-dnat",
        base_chain_spec("filter", "prerouting", -110),
        vec![jump_new(FIREWALL_CHECK_CHAIN)],
    );
    builder.chain(
        "filter-output-pre-dnat",
        base_chain_spec("filter", "output", -110),
        vec![jump_new(FIREWALL_CHECK_CHAIN)],
    );
    builder.chain(
        "filter-input",
        base_chain_spec("filter", "input", 0),
        vec![
            jump_new(NODEPORT_ENDPOINTS_CHECK_CHAIN),
            jump_new(SERVICE_ENDPOINTS_CHECK_CHAIN),
        ],
    );
    builder.chain(
        "filter-forward",
        base_chain_spec("filter", "forward", 0),
        vec![
            jump_new(SERVICE_ENDPOINTS_CHECK_CHAIN),
            jump_new(CLUSTER_IPS_CHECK_CHAIN),
        ],
    );
    builder.chain(
        "filter-output",
        base_chain_spec("filter", "output", 0),
        vec![
            jump_new(SERVICE_ENDPOINTS_CHECK_CHAIN),
            jump_new(CLUSTER_IPS_CHECK_CHAIN),
        ],
    );
    builder.chain(
        "nat-prerouting",
        base_chain_spec("nat", "prerouting", -100),
        vec![format!("jump {SERVICES_CHAIN}")],
    );
    builder.chain(
        "nat-output",
        base_chain_spec("nat", "output", -100),
        vec![format!("jump {SERVICES_CHAIN}")],
    );
    builder.chain(
        "nat-postrouting",
        base_chain_spec("nat", "postrouting", 100),
        vec![format!("jump {MASQUERADING_CHAIN}")],
    );

    let node_port_guard = if node_port_ips.is_some() {
        format!("{ip} daddr @{NODEPORT_IPS_SET}")
    } else {
        format!("fib daddr type local {no_localhost}")
    };
    let node_port_check_guard = if node_port_ips.is_some() {
        format!("{ip} daddr @{NODEPORT_IPS_SET}")
    } else {
        no_localhost.to_string()
    };
    builder.chain(
        SERVICES_CHAIN,
        None,
        vec![
            format!("{ip} daddr . meta l4proto . th dport vmap @{SERVICE_IPS_MAP}"),
            format!("{node_port_guard} meta l4proto . th dport vmap @{SERVICE_NODEPORTS_MAP}"),
        ],
    );
    builder.chain(
        SERVICE_ENDPOINTS_CHECK_CHAIN,
        None,
        vec![format!(
            "{ip} daddr . meta l4proto . th dport vmap @{NO_ENDPOINT_SERVICES_MAP}"
        )],
    );
    builder.chain(
        NODEPORT_ENDPOINTS_CHECK_CHAIN,
        None,
        vec![format!(
            "{node_port_check_guard} meta l4proto . th dport vmap @{NO_ENDPOINT_NODEPORTS_MAP}"
        )],
    );
    let mut cluster_ips_check = vec![format!(
        "{ip} daddr @{CLUSTER_IPS_SET} reject comment {}",
        quote("Reject traffic to invalid ports of ClusterIPs")
    )];
    if !settings.service_cidrs.is_empty() {
        cluster_ips_check.push(format!(
            "{ip} daddr {{ {} }} drop comment {}",
            nets_to_strings(&settings.service_cidrs).join(" , "),
            quote("Drop traffic to unallocated ClusterIPs")
        ));
    }
    builder.chain(CLUSTER_IPS_CHECK_CHAIN, None, cluster_ips_check);
    builder.chain(
        FIREWALL_CHECK_CHAIN,
        None,
        vec![format!(
            "{ip} daddr . meta l4proto . th dport vmap @{FIREWALL_IPS_MAP}"
        )],
    );
    builder.chain(
        MARK_MASQ_CHAIN,
        None,
        vec![format!("mark set mark or {mark}")],
    );
    builder.chain(
        MASQUERADING_CHAIN,
        None,
        vec![
            format!("mark and {mark} == 0 return"),
            format!("mark set mark xor {mark}"),
            "masquerade fully-random".to_string(),
        ],
    );
    builder.chain(
        REJECT_CHAIN,
        Some(format!(
            "comment {} ;",
            quote("helper for @no-endpoint-services / @no-endpoint-nodeports")
        )),
        vec!["reject".to_string()],
    );

    if let Some(addresses) = node_port_ips {
        for address in addresses {
            builder.element(NODEPORT_IPS_SET, address.to_string(), None, None);
        }
    }
}

fn no_endpoint_verdict(target: TrafficTarget) -> Option<String> {
    match target {
        TrafficTarget::Reject => Some(format!("goto {REJECT_CHAIN}")),
        TrafficTarget::Drop => Some("drop".to_string()),
        TrafficTarget::ClusterEndpoints | TrafficTarget::LocalEndpoints => None,
    }
}

/// Rules of a policy chain (`service-…` or `local-…`): affinity lookups, then one
/// `numgen random mod N` verdict map over the endpoint chains in sorted order.
fn load_balancing_rules(
    ip: &str,
    port: &ServicePortState,
    endpoints: &[kubeport_proxy_model::Endpoint],
) -> Vec<String> {
    let name = &port.info.name;
    let mut rules = Vec::new();
    if let SessionAffinity::ClientIp { .. } = port.info.session_affinity {
        for endpoint in endpoints {
            rules.push(format!(
                "{ip} saddr @{} goto {}",
                affinity_set(name, endpoint),
                endpoint_chain(name, endpoint)
            ));
        }
    }
    let arms: Vec<String> = endpoints
        .iter()
        .enumerate()
        .map(|(index, endpoint)| format!("{index} : goto {}", endpoint_chain(name, endpoint)))
        .collect();
    rules.push(format!(
        "numgen random mod {} vmap {{ {} }}",
        endpoints.len(),
        arms.join(" , ")
    ));
    rules
}

/// Renders one service port: its chains, affinity sets and map elements.
fn render_service_port(
    builder: &mut TableBuilder,
    settings: &FamilySettings,
    port: &ServicePortState,
) {
    let ip = family_keyword(settings.family);
    let info = &port.info;
    let name = &info.name;
    let chains = ServicePortChains::new(name);
    let protocol = name.protocol.as_lower_str();
    let port_name = name.to_string();
    let affinity_timeout = match info.session_affinity {
        SessionAffinity::ClientIp { timeout_seconds } => Some(timeout_seconds),
        SessionAffinity::None => None,
    };

    let uses_cluster_chain = !port.cluster_endpoints.is_empty() && info.uses_cluster_endpoints();
    let uses_local_chain = !port.local_endpoints.is_empty() && info.uses_local_endpoints();
    let internal_chain = if info.internal_policy_local {
        &chains.local
    } else {
        &chains.cluster
    };
    let has_internal_endpoints = matches!(
        port.internal_target,
        TrafficTarget::ClusterEndpoints | TrafficTarget::LocalEndpoints
    );
    let has_external_endpoints = matches!(
        port.external_target,
        Some(TrafficTarget::ClusterEndpoints | TrafficTarget::LocalEndpoints)
    );
    // Needed even without external endpoints: it short-circuits pod and host traffic.
    let uses_external_chain = port.has_endpoints && info.externally_accessible();
    let uses_firewall_chain =
        !info.load_balancer_ips.is_empty() && !info.load_balancer_source_ranges.is_empty();

    if let Some(timeout) = affinity_timeout {
        for endpoint in &port.reachable_endpoints {
            builder.set(
                SetKind::Set,
                &affinity_set(name, endpoint),
                format!(
                    "type {} ; flags dynamic,timeout ; timeout {timeout}s ;",
                    addr_type(settings.family)
                ),
            );
        }
    }

    let masquerade_rule = match &port.cluster_ip_masquerade {
        ClusterIpMasquerade::All => Some(format!(
            "{ip} daddr {} jump {MARK_MASQ_CHAIN}",
            info.cluster_ip
        )),
        ClusterIpMasquerade::NotFrom(nets) => Some(format!(
            "{ip} daddr {} {ip} saddr != {} jump {MARK_MASQ_CHAIN}",
            info.cluster_ip,
            address_expression(&nets_to_strings(nets))
        )),
        ClusterIpMasquerade::Never => None,
    };
    let policy_chain_rules = |chain: &str, endpoints: &[kubeport_proxy_model::Endpoint]| {
        let mut rules = Vec::new();
        if has_internal_endpoints && chain == internal_chain {
            rules.extend(masquerade_rule.clone());
        }
        rules.extend(load_balancing_rules(ip, port, endpoints));
        rules
    };
    if uses_cluster_chain {
        let rules = policy_chain_rules(&chains.cluster, &port.cluster_endpoints);
        builder.chain(&chains.cluster, None, rules);
    }
    if uses_local_chain {
        let rules = policy_chain_rules(&chains.local, &port.local_endpoints);
        builder.chain(&chains.local, None, rules);
    }

    if uses_external_chain {
        let mut rules = Vec::new();
        if port.masquerade_external {
            // Endpoints may be on other nodes: masquerade so replies come back through here.
            rules.push(format!("jump {MARK_MASQ_CHAIN}"));
        } else {
            // Pods reaching an external address are treated as if they went out to the load
            // balancer and came back: no traffic policy applies to them.
            if !settings.local_traffic_cidrs.is_empty() {
                rules.push(format!(
                    "{ip} saddr {} goto {} comment {}",
                    address_expression(&nets_to_strings(&settings.local_traffic_cidrs)),
                    chains.cluster,
                    quote("short-circuit pod traffic")
                ));
            }
            // The host picks the external address itself as source: it must be masqueraded.
            rules.push(format!(
                "fib saddr type local jump {MARK_MASQ_CHAIN} comment {}",
                quote("masquerade local traffic")
            ));
            rules.push(format!(
                "fib saddr type local goto {} comment {}",
                chains.cluster,
                quote("short-circuit local traffic")
            ));
        }
        if has_external_endpoints {
            let policy_chain = if info.external_policy_local {
                &chains.local
            } else {
                &chains.cluster
            };
            rules.push(format!("goto {policy_chain}"));
        }
        builder.chain(&chains.external, None, rules);
    }

    if uses_firewall_chain {
        let mut sources = nets_to_strings(&info.load_balancer_source_ranges);
        // A VIP is often bound on the node itself: traffic from the node to the VIP then
        // arrives with the VIP as source and must pass when the node is allowed.
        let node_allowed = settings.node_ip.is_some_and(|node_ip| {
            info.load_balancer_source_ranges
                .iter()
                .any(|net| net.contains(&node_ip))
        });
        if node_allowed {
            sources.extend(info.load_balancer_ips.iter().map(IpAddr::to_string));
        }
        builder.chain(
            &chains.firewall,
            None,
            vec![format!("{ip} saddr != {{ {} }} drop", sources.join(" , "))],
        );
    }

    for endpoint in &port.reachable_endpoints {
        let mut rules = vec![format!("{ip} saddr {} jump {MARK_MASQ_CHAIN}", endpoint.ip)];
        if affinity_timeout.is_some() {
            rules.push(format!(
                "update @{} {{ {ip} saddr }}",
                affinity_set(name, endpoint)
            ));
        }
        rules.push(format!(
            "meta l4proto {protocol} dnat to {}",
            endpoint.addr_string()
        ));
        builder.chain(&endpoint_chain(name, endpoint), None, rules);
    }

    let tuple = |address: &IpAddr| format!("{address} . {protocol} . {}", info.port);
    let comment = Some(port_name);

    builder.element(CLUSTER_IPS_SET, info.cluster_ip.to_string(), None, None);
    if has_internal_endpoints {
        builder.element(
            SERVICE_IPS_MAP,
            tuple(&info.cluster_ip),
            None,
            Some(format!("goto {internal_chain}")),
        );
    } else {
        builder.element(
            NO_ENDPOINT_SERVICES_MAP,
            tuple(&info.cluster_ip),
            comment.clone(),
            no_endpoint_verdict(port.internal_target),
        );
    }
    let external_verdict = port.external_target.and_then(no_endpoint_verdict);
    for external_ip in &info.external_ips {
        if port.has_endpoints {
            builder.element(
                SERVICE_IPS_MAP,
                tuple(external_ip),
                None,
                Some(format!("goto {}", chains.external)),
            );
        }
        if let Some(verdict) = &external_verdict {
            builder.element(
                NO_ENDPOINT_SERVICES_MAP,
                tuple(external_ip),
                comment.clone(),
                Some(verdict.clone()),
            );
        }
    }
    for lb_ip in &info.load_balancer_ips {
        if port.has_endpoints {
            builder.element(
                SERVICE_IPS_MAP,
                tuple(lb_ip),
                None,
                Some(format!("goto {}", chains.external)),
            );
        }
        if uses_firewall_chain {
            builder.element(
                FIREWALL_IPS_MAP,
                tuple(lb_ip),
                None,
                Some(format!("goto {}", chains.firewall)),
            );
        }
    }
    if let Some(verdict) = &external_verdict {
        for lb_ip in &info.load_balancer_ips {
            builder.element(
                NO_ENDPOINT_SERVICES_MAP,
                tuple(lb_ip),
                comment.clone(),
                Some(verdict.clone()),
            );
        }
    }
    if let Some(node_port) = info.node_port {
        let key = format!("{protocol} . {node_port}");
        if port.has_endpoints {
            builder.element(
                SERVICE_NODEPORTS_MAP,
                key.clone(),
                None,
                Some(format!("goto {}", chains.external)),
            );
        }
        if let Some(verdict) = &external_verdict {
            builder.element(
                NO_ENDPOINT_NODEPORTS_MAP,
                key,
                comment.clone(),
                Some(verdict.clone()),
            );
        }
    }
}

/// Renders the table of one family from the desired state.
pub(crate) fn render_table(state: &ProxyState, family: IpFamily) -> Table {
    let settings = state.family(family);
    let mut builder = TableBuilder::new(family);
    render_fixed(&mut builder, settings, state.masquerade_mark);
    for port in state.service_ports_of(family) {
        render_service_port(&mut builder, settings, port);
    }
    builder.table
}
