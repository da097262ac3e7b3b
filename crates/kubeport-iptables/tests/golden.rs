//! Exact restore inputs produced by the iptables proxier for fixture Services and
//! EndpointSlices run through `kubeport_proxy_model::compute`.

mod common;

use std::collections::BTreeMap;

use common::*;
use kubeport_iptables::{IptablesConfig, IptablesProxier, RestoreInput};
use kubeport_proxy_model::{
    compute, EndpointSliceCache, IpFamily, NodeInfo, NodePortAddresses, ProxyConfig, ProxyState,
};
use serde_json::json;

fn v4(input: &RestoreInput) -> &str {
    input.family(IpFamily::V4).expect("IPv4 input").as_str()
}

/// Syncs and commits.
fn commit(proxier: &mut IptablesProxier, desired: &ProxyState) -> RestoreInput {
    let input = proxier.sync(desired);
    proxier.mark_committed(&input);
    input
}

/// The lines of one table (`*nat` … `COMMIT`) of a restore input.
fn table<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    let header = format!("*{name}");
    text.lines()
        .skip_while(|line| *line != header)
        .take_while(|line| *line != "COMMIT")
        .collect()
}

/// kube-proxy's tests compare restore inputs after this normalisation: chain lines
/// ordered `KUBE-NODEPORTS`, `KUBE-SERVICES`, then by name; rules grouped by chain in that
/// order, keeping their order within a chain.
fn sort_like_upstream(text: &str) -> String {
    let mut out = String::new();
    let mut section: Vec<&str> = Vec::new();
    let flush = |section: &mut Vec<&str>, out: &mut String| {
        if section.is_empty() {
            return;
        }
        let header = section[0];
        let mut chains: Vec<&str> = section
            .iter()
            .filter_map(|line| line.strip_prefix(':'))
            .map(|rest| rest.split(' ').next().unwrap())
            .collect();
        let rank = |chain: &str| match chain {
            "KUBE-NODEPORTS" => 0,
            "KUBE-SERVICES" => 1,
            _ => 2,
        };
        chains.sort_by(|a, b| (rank(a), *a).cmp(&(rank(b), *b)));
        out.push_str(header);
        out.push('\n');
        for chain in &chains {
            out.push_str(&format!(":{chain} - [0:0]\n"));
        }
        for chain in &chains {
            let prefix = format!("-A {chain} ");
            for line in section.iter().filter(|line| line.starts_with(&prefix)) {
                out.push_str(line);
                out.push('\n');
            }
        }
        for line in section.iter().filter(|line| line.starts_with("-X ")) {
            out.push_str(line);
            out.push('\n');
        }
        out.push_str("COMMIT\n");
        section.clear();
    };
    for line in text.lines() {
        if line == "COMMIT" {
            flush(&mut section, &mut out);
        } else {
            section.push(line);
        }
    }
    out
}

const FILTER_LOCALHOST_NODEPORTS: &str = r#"
*filter
:KUBE-SERVICES - [0:0]
:KUBE-EXTERNAL-SERVICES - [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
:KUBE-FIREWALL - [0:0]
-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
COMMIT
"#;

const NAT_HEAD: &str = r#"
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
"#;

const NAT_TAIL: &str = r#"
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
COMMIT
"#;

/// The six SEP chains' rules of dev/nginx-service:http.
const NGINX_SEP_RULES: &str = r#"
-A KUBE-SEP-6SBHXQ4VQ7TF2KRJ -m comment --comment dev/nginx-service:http -s 10.244.1.2 -j KUBE-MARK-MASQ
-A KUBE-SEP-6SBHXQ4VQ7TF2KRJ -m comment --comment dev/nginx-service:http -m tcp -p tcp -j DNAT --to-destination 10.244.1.2:80
-A KUBE-SEP-RA24DBHPSNEI3NBI -m comment --comment dev/nginx-service:http -s 10.244.1.3 -j KUBE-MARK-MASQ
-A KUBE-SEP-RA24DBHPSNEI3NBI -m comment --comment dev/nginx-service:http -m tcp -p tcp -j DNAT --to-destination 10.244.1.3:80
-A KUBE-SEP-GZN54BITUHOHE2KT -m comment --comment dev/nginx-service:http -s 10.244.1.4 -j KUBE-MARK-MASQ
-A KUBE-SEP-GZN54BITUHOHE2KT -m comment --comment dev/nginx-service:http -m tcp -p tcp -j DNAT --to-destination 10.244.1.4:80
-A KUBE-SEP-GIAN2PTT2RYNXC3T -m comment --comment dev/nginx-service:http -s 10.244.2.2 -j KUBE-MARK-MASQ
-A KUBE-SEP-GIAN2PTT2RYNXC3T -m comment --comment dev/nginx-service:http -m tcp -p tcp -j DNAT --to-destination 10.244.2.2:80
-A KUBE-SEP-ZBFWA4W7TX3R62LT -m comment --comment dev/nginx-service:http -s 10.244.2.3 -j KUBE-MARK-MASQ
-A KUBE-SEP-ZBFWA4W7TX3R62LT -m comment --comment dev/nginx-service:http -m tcp -p tcp -j DNAT --to-destination 10.244.2.3:80
-A KUBE-SEP-DBWEWVX6MNI34OP2 -m comment --comment dev/nginx-service:http -s 10.244.2.4 -j KUBE-MARK-MASQ
-A KUBE-SEP-DBWEWVX6MNI34OP2 -m comment --comment dev/nginx-service:http -m tcp -p tcp -j DNAT --to-destination 10.244.2.4:80
"#;

const NGINX_SEP_CHAINS: &str = r#"
:KUBE-SEP-6SBHXQ4VQ7TF2KRJ - [0:0]
:KUBE-SEP-RA24DBHPSNEI3NBI - [0:0]
:KUBE-SEP-GZN54BITUHOHE2KT - [0:0]
:KUBE-SEP-GIAN2PTT2RYNXC3T - [0:0]
:KUBE-SEP-ZBFWA4W7TX3R62LT - [0:0]
:KUBE-SEP-DBWEWVX6MNI34OP2 - [0:0]
"#;

const NGINX_SVC_LB_RULES: &str = r#"
-A KUBE-SVC-T3QIINOBLYCGKYC7 -m comment --comment "dev/nginx-service:http -> 10.244.1.2:80" -m statistic --mode random --probability 0.1666666667 -j KUBE-SEP-6SBHXQ4VQ7TF2KRJ
-A KUBE-SVC-T3QIINOBLYCGKYC7 -m comment --comment "dev/nginx-service:http -> 10.244.1.3:80" -m statistic --mode random --probability 0.2000000000 -j KUBE-SEP-RA24DBHPSNEI3NBI
-A KUBE-SVC-T3QIINOBLYCGKYC7 -m comment --comment "dev/nginx-service:http -> 10.244.1.4:80" -m statistic --mode random --probability 0.2500000000 -j KUBE-SEP-GZN54BITUHOHE2KT
-A KUBE-SVC-T3QIINOBLYCGKYC7 -m comment --comment "dev/nginx-service:http -> 10.244.2.2:80" -m statistic --mode random --probability 0.3333333333 -j KUBE-SEP-GIAN2PTT2RYNXC3T
-A KUBE-SVC-T3QIINOBLYCGKYC7 -m comment --comment "dev/nginx-service:http -> 10.244.2.3:80" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-ZBFWA4W7TX3R62LT
-A KUBE-SVC-T3QIINOBLYCGKYC7 -m comment --comment "dev/nginx-service:http -> 10.244.2.4:80" -j KUBE-SEP-DBWEWVX6MNI34OP2
"#;

/// The reference's worked example (§4.1): the whole restore input of a first sync.
pub fn worked_example_expected() -> String {
    format!(
        "{FILTER_LOCALHOST_NODEPORTS}
*nat
:KUBE-SERVICES - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-EXT-T3QIINOBLYCGKYC7 - [0:0]
:KUBE-SVC-T3QIINOBLYCGKYC7 - [0:0]
{NGINX_SEP_CHAINS}
{NAT_HEAD}
-A KUBE-SERVICES -m comment --comment \"dev/nginx-service:http cluster IP\" -m tcp -p tcp -d 10.96.0.100 --dport 80 -j KUBE-SVC-T3QIINOBLYCGKYC7
-A KUBE-NODEPORTS -m comment --comment dev/nginx-service:http -m tcp -p tcp --dport 30000 -j KUBE-EXT-T3QIINOBLYCGKYC7
-A KUBE-SVC-T3QIINOBLYCGKYC7 -m comment --comment \"dev/nginx-service:http cluster IP\" -m tcp -p tcp -d 10.96.0.100 --dport 80 ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ
-A KUBE-EXT-T3QIINOBLYCGKYC7 -m comment --comment \"masquerade traffic for dev/nginx-service:http external destinations\" -j KUBE-MARK-MASQ
-A KUBE-EXT-T3QIINOBLYCGKYC7 -j KUBE-SVC-T3QIINOBLYCGKYC7
{NGINX_SVC_LB_RULES}
{NGINX_SEP_RULES}
{NAT_TAIL}"
    )
}

#[test]
fn worked_example_restore_input_matches_reference_line_by_line() {
    let desired = state(
        &[nginx_service()],
        &[slice("dev", "nginx-service", &SEED_ENDPOINTS)],
    );
    let mut proxier = IptablesProxier::new(IptablesConfig::default());
    assert!(proxier.needs_full_sync());
    let input = proxier.sync(&desired);
    assert!(input.is_full_sync());
    assert_eq!(
        input.families().len(),
        1,
        "IPv6 is not managed without IPv6 service ports"
    );
    let family = input.family(IpFamily::V4).unwrap();
    assert_eq!(family.rewritten_services(), 1);
    assert_eq!(family.deleted_chains(), 0);
    assert_lines(v4(&input), &worked_example_expected());
    proxier.mark_committed(&input);
    assert!(!proxier.needs_full_sync());
}

#[test]
fn endpoints_are_ordered_by_the_ip_port_string() {
    let endpoints = [
        ("10.244.1.10", "w1"),
        ("10.244.1.9", "w1"),
        ("10.244.1.2", "w1"),
    ];
    let desired = state(
        &[nginx_service()],
        &[slice("dev", "nginx-service", &endpoints)],
    );
    let input = IptablesProxier::new(IptablesConfig::default()).sync(&desired);
    let order: Vec<&str> = v4(&input)
        .lines()
        .filter(|line| line.starts_with("-A KUBE-SVC-") && line.contains(" -> "))
        .map(|line| {
            line.split(" -> ")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
        })
        .collect();
    assert_eq!(order, ["10.244.1.10:80", "10.244.1.2:80", "10.244.1.9:80"]);
}

/// kube-proxy's own TestOverallIPTablesRules fixture (ClusterIP, LoadBalancer with Local
/// policy, NodePort, externalIPs, LoadBalancer with source ranges and affinity, no
/// endpoints), its fake proxier's settings (pod CIDR 10.0.0.0/8, node 192.168.0.2, nfacct
/// counters, no --random-fully) and its expected output.
#[test]
fn upstream_overall_rules_fixture() {
    let node = NodeInfo {
        name: "test-node".into(),
        ips: vec![
            "192.168.0.2".parse().unwrap(),
            "192.168.1.2".parse().unwrap(),
        ],
        labels: BTreeMap::new(),
    };
    let proxy_config = ProxyConfig {
        cluster_cidrs: vec!["10.0.0.0/8".parse().unwrap()],
        nodeport_addresses: NodePortAddresses::Cidrs(Vec::new()),
        ..ProxyConfig::default()
    };
    let port = |node_port: Option<i32>| {
        let mut port = json!({"name": "p80", "port": 80, "protocol": "TCP", "targetPort": 80});
        if let Some(node_port) = node_port {
            port["nodePort"] = json!(node_port);
        }
        port
    };
    let services = vec![
        service(json!({"metadata": {"namespace": "ns1", "name": "svc1"},
            "spec": {"type": "ClusterIP", "clusterIP": "172.30.0.41", "ports": [port(None)]}})),
        service(json!({"metadata": {"namespace": "ns2", "name": "svc2"},
            "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "clusterIP": "172.30.0.42",
                     "ports": [port(Some(3001))], "externalIPs": ["192.168.99.22"], "healthCheckNodePort": 30000},
            "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}})),
        service(json!({"metadata": {"namespace": "ns3", "name": "svc3"},
            "spec": {"type": "NodePort", "clusterIP": "172.30.0.43", "ports": [port(Some(3003))]}})),
        service(json!({"metadata": {"namespace": "ns4", "name": "svc4"},
            "spec": {"type": "NodePort", "clusterIP": "172.30.0.44", "externalIPs": ["192.168.99.33"],
                     "ports": [port(None)]}})),
        service(json!({"metadata": {"namespace": "ns5", "name": "svc5"},
            "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Cluster", "clusterIP": "172.30.0.45",
                     "ports": [port(Some(3002))], "healthCheckNodePort": 30000,
                     "loadBalancerSourceRanges": [" 203.0.113.0/25"],
                     "sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}}},
            "status": {"loadBalancer": {"ingress": [{"ip": "5.6.7.8"}]}}})),
        service(json!({"metadata": {"namespace": "ns6", "name": "svc6"},
            "spec": {"type": "ClusterIP", "clusterIP": "172.30.0.46", "ports": [port(None)]}})),
    ];
    let p80 = |ns: &str, svc: &str, endpoints: &[(&str, &str)]| {
        slice_with_port(ns, svc, "p80", 80, "TCP", endpoints)
    };
    let slices = vec![
        p80("ns1", "svc1", &[("10.180.0.1", "")]),
        p80("ns2", "svc2", &[("10.180.0.2", "")]),
        p80("ns3", "svc3", &[("10.180.0.3", "")]),
        p80(
            "ns4",
            "svc4",
            &[("10.180.0.4", ""), ("10.180.0.5", "test-node")],
        ),
        p80("ns5", "svc5", &[("10.180.0.3", "")]),
    ];
    let desired = compute(
        &services,
        &EndpointSliceCache::from_slices(&slices).endpoints_map(),
        &node,
        &proxy_config,
    );
    let config = IptablesConfig {
        localhost_nodeports: true,
        random_fully: false,
        nfacct_counters: true,
        conntrack_tcp_be_liberal: false,
    };
    let input = IptablesProxier::new(config).sync(&desired);
    let expected = r#"
*filter
:KUBE-NODEPORTS - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-EXTERNAL-SERVICES - [0:0]
:KUBE-FIREWALL - [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
-A KUBE-NODEPORTS -m comment --comment "ns2/svc2:p80 health check node port" -m tcp -p tcp --dport 30000 -j ACCEPT
-A KUBE-SERVICES -m comment --comment "ns6/svc6:p80 has no endpoints" -m tcp -p tcp -d 172.30.0.46 --dport 80 -j REJECT
-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns2/svc2:p80 has no local endpoints" -m tcp -p tcp -d 192.168.99.22 --dport 80 -j DROP
-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns2/svc2:p80 has no local endpoints" -m tcp -p tcp -d 1.2.3.4 --dport 80 -j DROP
-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns2/svc2:p80 has no local endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 3001 -j DROP
-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
-A KUBE-FORWARD -m conntrack --ctstate INVALID -m nfacct --nfacct-name ct_state_invalid_dropped_pkts -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A KUBE-PROXY-FIREWALL -m comment --comment "ns5/svc5:p80 traffic not accepted by KUBE-FW-NUKIZ6OKUXPJNT4C" -m tcp -p tcp -d 5.6.7.8 --dport 80 -j DROP
COMMIT
*nat
:KUBE-NODEPORTS - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-EXT-4SW47YFZTEDKD3PK - [0:0]
:KUBE-EXT-GNZBNJ2PO5MGZ6GT - [0:0]
:KUBE-EXT-NUKIZ6OKUXPJNT4C - [0:0]
:KUBE-EXT-X27LE4BHSL4DOUIK - [0:0]
:KUBE-FW-NUKIZ6OKUXPJNT4C - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-SEP-C6EBXVWJJZMIWKLZ - [0:0]
:KUBE-SEP-I77PXRDZVX7PMWMN - [0:0]
:KUBE-SEP-OYPFS5VJICHGATKP - [0:0]
:KUBE-SEP-RS4RBKLTHTF2IUXJ - [0:0]
:KUBE-SEP-SXIVWICOYRO3J4NJ - [0:0]
:KUBE-SEP-UKSFD7AGPMPPLUHC - [0:0]
:KUBE-SVC-4SW47YFZTEDKD3PK - [0:0]
:KUBE-SVC-GNZBNJ2PO5MGZ6GT - [0:0]
:KUBE-SVC-NUKIZ6OKUXPJNT4C - [0:0]
:KUBE-SVC-X27LE4BHSL4DOUIK - [0:0]
:KUBE-SVC-XPGD46QRK7WJZT7O - [0:0]
-A KUBE-NODEPORTS -m comment --comment ns2/svc2:p80 -m tcp -p tcp -d 127.0.0.0/8 --dport 3001 -m nfacct --nfacct-name localhost_nps_accepted_pkts -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
-A KUBE-NODEPORTS -m comment --comment ns2/svc2:p80 -m tcp -p tcp --dport 3001 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
-A KUBE-NODEPORTS -m comment --comment ns3/svc3:p80 -m tcp -p tcp -d 127.0.0.0/8 --dport 3003 -m nfacct --nfacct-name localhost_nps_accepted_pkts -j KUBE-EXT-X27LE4BHSL4DOUIK
-A KUBE-NODEPORTS -m comment --comment ns3/svc3:p80 -m tcp -p tcp --dport 3003 -j KUBE-EXT-X27LE4BHSL4DOUIK
-A KUBE-NODEPORTS -m comment --comment ns5/svc5:p80 -m tcp -p tcp -d 127.0.0.0/8 --dport 3002 -m nfacct --nfacct-name localhost_nps_accepted_pkts -j KUBE-EXT-NUKIZ6OKUXPJNT4C
-A KUBE-NODEPORTS -m comment --comment ns5/svc5:p80 -m tcp -p tcp --dport 3002 -j KUBE-EXT-NUKIZ6OKUXPJNT4C
-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O
-A KUBE-SERVICES -m comment --comment "ns2/svc2:p80 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 80 -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
-A KUBE-SERVICES -m comment --comment "ns2/svc2:p80 external IP" -m tcp -p tcp -d 192.168.99.22 --dport 80 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
-A KUBE-SERVICES -m comment --comment "ns2/svc2:p80 loadbalancer IP" -m tcp -p tcp -d 1.2.3.4 --dport 80 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
-A KUBE-SERVICES -m comment --comment "ns3/svc3:p80 cluster IP" -m tcp -p tcp -d 172.30.0.43 --dport 80 -j KUBE-SVC-X27LE4BHSL4DOUIK
-A KUBE-SERVICES -m comment --comment "ns4/svc4:p80 cluster IP" -m tcp -p tcp -d 172.30.0.44 --dport 80 -j KUBE-SVC-4SW47YFZTEDKD3PK
-A KUBE-SERVICES -m comment --comment "ns4/svc4:p80 external IP" -m tcp -p tcp -d 192.168.99.33 --dport 80 -j KUBE-EXT-4SW47YFZTEDKD3PK
-A KUBE-SERVICES -m comment --comment "ns5/svc5:p80 cluster IP" -m tcp -p tcp -d 172.30.0.45 --dport 80 -j KUBE-SVC-NUKIZ6OKUXPJNT4C
-A KUBE-SERVICES -m comment --comment "ns5/svc5:p80 loadbalancer IP" -m tcp -p tcp -d 5.6.7.8 --dport 80 -j KUBE-FW-NUKIZ6OKUXPJNT4C
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
-A KUBE-EXT-4SW47YFZTEDKD3PK -m comment --comment "masquerade traffic for ns4/svc4:p80 external destinations" -j KUBE-MARK-MASQ
-A KUBE-EXT-4SW47YFZTEDKD3PK -j KUBE-SVC-4SW47YFZTEDKD3PK
-A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "pod traffic for ns2/svc2:p80 external destinations" -s 10.0.0.0/8 -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
-A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "masquerade LOCAL traffic for ns2/svc2:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ
-A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "route LOCAL traffic for ns2/svc2:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
-A KUBE-EXT-NUKIZ6OKUXPJNT4C -m comment --comment "masquerade traffic for ns5/svc5:p80 external destinations" -j KUBE-MARK-MASQ
-A KUBE-EXT-NUKIZ6OKUXPJNT4C -j KUBE-SVC-NUKIZ6OKUXPJNT4C
-A KUBE-EXT-X27LE4BHSL4DOUIK -m comment --comment "masquerade traffic for ns3/svc3:p80 external destinations" -j KUBE-MARK-MASQ
-A KUBE-EXT-X27LE4BHSL4DOUIK -j KUBE-SVC-X27LE4BHSL4DOUIK
-A KUBE-FW-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 loadbalancer IP" -s 203.0.113.0/25 -j KUBE-EXT-NUKIZ6OKUXPJNT4C
-A KUBE-FW-NUKIZ6OKUXPJNT4C -m comment --comment "other traffic to ns5/svc5:p80 will be dropped by KUBE-PROXY-FIREWALL"
-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE
-A KUBE-SEP-C6EBXVWJJZMIWKLZ -m comment --comment ns4/svc4:p80 -s 10.180.0.5 -j KUBE-MARK-MASQ
-A KUBE-SEP-C6EBXVWJJZMIWKLZ -m comment --comment ns4/svc4:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.5:80
-A KUBE-SEP-I77PXRDZVX7PMWMN -m comment --comment ns5/svc5:p80 -s 10.180.0.3 -j KUBE-MARK-MASQ
-A KUBE-SEP-I77PXRDZVX7PMWMN -m comment --comment ns5/svc5:p80 -m recent --name KUBE-SEP-I77PXRDZVX7PMWMN --set -m tcp -p tcp -j DNAT --to-destination 10.180.0.3:80
-A KUBE-SEP-OYPFS5VJICHGATKP -m comment --comment ns3/svc3:p80 -s 10.180.0.3 -j KUBE-MARK-MASQ
-A KUBE-SEP-OYPFS5VJICHGATKP -m comment --comment ns3/svc3:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.3:80
-A KUBE-SEP-RS4RBKLTHTF2IUXJ -m comment --comment ns2/svc2:p80 -s 10.180.0.2 -j KUBE-MARK-MASQ
-A KUBE-SEP-RS4RBKLTHTF2IUXJ -m comment --comment ns2/svc2:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.2:80
-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -s 10.180.0.1 -j KUBE-MARK-MASQ
-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80
-A KUBE-SEP-UKSFD7AGPMPPLUHC -m comment --comment ns4/svc4:p80 -s 10.180.0.4 -j KUBE-MARK-MASQ
-A KUBE-SEP-UKSFD7AGPMPPLUHC -m comment --comment ns4/svc4:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.4:80
-A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 cluster IP" -m tcp -p tcp -d 172.30.0.44 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 -> 10.180.0.4:80" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-UKSFD7AGPMPPLUHC
-A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 -> 10.180.0.5:80" -j KUBE-SEP-C6EBXVWJJZMIWKLZ
-A KUBE-SVC-GNZBNJ2PO5MGZ6GT -m comment --comment "ns2/svc2:p80 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-GNZBNJ2PO5MGZ6GT -m comment --comment "ns2/svc2:p80 -> 10.180.0.2:80" -j KUBE-SEP-RS4RBKLTHTF2IUXJ
-A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 cluster IP" -m tcp -p tcp -d 172.30.0.45 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 -> 10.180.0.3:80" -m recent --name KUBE-SEP-I77PXRDZVX7PMWMN --rcheck --seconds 10800 --reap -j KUBE-SEP-I77PXRDZVX7PMWMN
-A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 -> 10.180.0.3:80" -j KUBE-SEP-I77PXRDZVX7PMWMN
-A KUBE-SVC-X27LE4BHSL4DOUIK -m comment --comment "ns3/svc3:p80 cluster IP" -m tcp -p tcp -d 172.30.0.43 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-X27LE4BHSL4DOUIK -m comment --comment "ns3/svc3:p80 -> 10.180.0.3:80" -j KUBE-SEP-OYPFS5VJICHGATKP
-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -j KUBE-SEP-SXIVWICOYRO3J4NJ
COMMIT
"#;
    assert_lines(&sort_like_upstream(v4(&input)), expected);
}

#[test]
fn service_without_endpoints_is_rejected_in_the_filter_table_only() {
    let svc = service(json!({"metadata": {"namespace": "ns1", "name": "svc1"},
        "spec": {"type": "LoadBalancer", "clusterIP": "172.30.0.41", "externalIPs": ["192.168.99.11"],
                 "ports": [{"name": "p80", "port": 80, "protocol": "TCP", "nodePort": 3001}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}}));
    let input = IptablesProxier::new(IptablesConfig::default()).sync(&state(&[svc], &[]));
    let text = v4(&input);
    let filter = table(text, "filter").join("\n");
    assert_lines(
        &filter,
        r#"
*filter
:KUBE-SERVICES - [0:0]
:KUBE-EXTERNAL-SERVICES - [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
:KUBE-FIREWALL - [0:0]
-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 has no endpoints" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j REJECT
-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns1/svc1:p80 has no endpoints" -m tcp -p tcp -d 192.168.99.11 --dport 80 -j REJECT
-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns1/svc1:p80 has no endpoints" -m tcp -p tcp -d 1.2.3.4 --dport 80 -j REJECT
-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns1/svc1:p80 has no endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 3001 -j REJECT
-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
"#,
    );
    let nat = table(text, "nat").join("\n");
    assert_lines(
        &nat,
        &format!(
            "*nat
:KUBE-SERVICES - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-MARK-MASQ - [0:0]
{NAT_HEAD}
-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS"
        ),
    );
}

fn nginx_local() -> k8s_openapi::api::core::v1::Service {
    let mut svc = nginx_service();
    svc.spec.as_mut().unwrap().external_traffic_policy = Some("Local".into());
    svc
}

#[test]
fn external_traffic_policy_local_uses_ext_and_svl_chains() {
    // The node (service-demo-worker) runs 10.244.2.2-4.
    let desired = state(
        &[nginx_local()],
        &[slice("dev", "nginx-service", &SEED_ENDPOINTS)],
    );
    let input = IptablesProxier::new(IptablesConfig::default()).sync(&desired);
    let nat = table(v4(&input), "nat").join("\n");
    assert_lines(
        &nat,
        &format!(
            "*nat
:KUBE-SERVICES - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-EXT-T3QIINOBLYCGKYC7 - [0:0]
:KUBE-SVC-T3QIINOBLYCGKYC7 - [0:0]
:KUBE-SVL-T3QIINOBLYCGKYC7 - [0:0]
{NGINX_SEP_CHAINS}
{NAT_HEAD}
-A KUBE-SERVICES -m comment --comment \"dev/nginx-service:http cluster IP\" -m tcp -p tcp -d 10.96.0.100 --dport 80 -j KUBE-SVC-T3QIINOBLYCGKYC7
-A KUBE-NODEPORTS -m comment --comment dev/nginx-service:http -m tcp -p tcp --dport 30000 -j KUBE-EXT-T3QIINOBLYCGKYC7
-A KUBE-SVC-T3QIINOBLYCGKYC7 -m comment --comment \"dev/nginx-service:http cluster IP\" -m tcp -p tcp -d 10.96.0.100 --dport 80 ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ
-A KUBE-EXT-T3QIINOBLYCGKYC7 -m comment --comment \"pod traffic for dev/nginx-service:http external destinations\" -s 10.244.0.0/16 -j KUBE-SVC-T3QIINOBLYCGKYC7
-A KUBE-EXT-T3QIINOBLYCGKYC7 -m comment --comment \"masquerade LOCAL traffic for dev/nginx-service:http external destinations\" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ
-A KUBE-EXT-T3QIINOBLYCGKYC7 -m comment --comment \"route LOCAL traffic for dev/nginx-service:http external destinations\" -m addrtype --src-type LOCAL -j KUBE-SVC-T3QIINOBLYCGKYC7
-A KUBE-EXT-T3QIINOBLYCGKYC7 -j KUBE-SVL-T3QIINOBLYCGKYC7
{NGINX_SVC_LB_RULES}
-A KUBE-SVL-T3QIINOBLYCGKYC7 -m comment --comment \"dev/nginx-service:http -> 10.244.2.2:80\" -m statistic --mode random --probability 0.3333333333 -j KUBE-SEP-GIAN2PTT2RYNXC3T
-A KUBE-SVL-T3QIINOBLYCGKYC7 -m comment --comment \"dev/nginx-service:http -> 10.244.2.3:80\" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-ZBFWA4W7TX3R62LT
-A KUBE-SVL-T3QIINOBLYCGKYC7 -m comment --comment \"dev/nginx-service:http -> 10.244.2.4:80\" -j KUBE-SEP-DBWEWVX6MNI34OP2
{NGINX_SEP_RULES}
-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS"
        ),
    );
    // Local endpoints exist: nothing is dropped.
    assert!(!v4(&input).contains("has no local endpoints"));
}

#[test]
fn external_traffic_policy_local_without_local_endpoints_drops_external_traffic() {
    let endpoints = [("10.244.1.2", "service-demo-worker2")];
    let desired = state(
        &[nginx_local()],
        &[slice("dev", "nginx-service", &endpoints)],
    );
    let input = IptablesProxier::new(IptablesConfig::default()).sync(&desired);
    let text = v4(&input);
    let filter = table(text, "filter");
    assert!(filter.contains(
        &"-A KUBE-EXTERNAL-SERVICES -m comment --comment \"dev/nginx-service:http has no local endpoints\" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 30000 -j DROP"
    ), "{text}");
    let nat: Vec<&str> = table(text, "nat")
        .into_iter()
        .filter(|line| line.contains("T3QIINOBLYCGKYC7") || line.contains("KUBE-SEP-"))
        .collect();
    assert_eq!(
        nat,
        [
            ":KUBE-EXT-T3QIINOBLYCGKYC7 - [0:0]",
            ":KUBE-SVC-T3QIINOBLYCGKYC7 - [0:0]",
            ":KUBE-SEP-6SBHXQ4VQ7TF2KRJ - [0:0]",
            "-A KUBE-SERVICES -m comment --comment \"dev/nginx-service:http cluster IP\" -m tcp -p tcp -d 10.96.0.100 --dport 80 -j KUBE-SVC-T3QIINOBLYCGKYC7",
            "-A KUBE-NODEPORTS -m comment --comment dev/nginx-service:http -m tcp -p tcp --dport 30000 -j KUBE-EXT-T3QIINOBLYCGKYC7",
            "-A KUBE-SVC-T3QIINOBLYCGKYC7 -m comment --comment \"dev/nginx-service:http cluster IP\" -m tcp -p tcp -d 10.96.0.100 --dport 80 ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ",
            "-A KUBE-EXT-T3QIINOBLYCGKYC7 -m comment --comment \"pod traffic for dev/nginx-service:http external destinations\" -s 10.244.0.0/16 -j KUBE-SVC-T3QIINOBLYCGKYC7",
            "-A KUBE-EXT-T3QIINOBLYCGKYC7 -m comment --comment \"masquerade LOCAL traffic for dev/nginx-service:http external destinations\" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ",
            "-A KUBE-EXT-T3QIINOBLYCGKYC7 -m comment --comment \"route LOCAL traffic for dev/nginx-service:http external destinations\" -m addrtype --src-type LOCAL -j KUBE-SVC-T3QIINOBLYCGKYC7",
            "-A KUBE-SVC-T3QIINOBLYCGKYC7 -m comment --comment \"dev/nginx-service:http -> 10.244.1.2:80\" -j KUBE-SEP-6SBHXQ4VQ7TF2KRJ",
            "-A KUBE-SEP-6SBHXQ4VQ7TF2KRJ -m comment --comment dev/nginx-service:http -s 10.244.1.2 -j KUBE-MARK-MASQ",
            "-A KUBE-SEP-6SBHXQ4VQ7TF2KRJ -m comment --comment dev/nginx-service:http -m tcp -p tcp -j DNAT --to-destination 10.244.1.2:80",
        ]
    );
}

#[test]
fn internal_traffic_policy_local_without_local_endpoints_drops_cluster_ip_traffic() {
    let svc = service(json!({"metadata": {"namespace": "dev", "name": "web"},
        "spec": {"clusterIP": "10.96.0.50", "internalTrafficPolicy": "Local",
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}));
    let desired = state(
        &[svc],
        &[slice(
            "dev",
            "web",
            &[("10.244.1.2", "service-demo-worker2")],
        )],
    );
    let input = IptablesProxier::new(IptablesConfig::default()).sync(&desired);
    let text = v4(&input);
    assert!(text.contains(
        "-A KUBE-SERVICES -m comment --comment \"dev/web:http has no local endpoints\" -m tcp -p tcp -d 10.96.0.50 --dport 80 -j DROP\n"
    ), "{text}");
    assert!(!text.contains("KUBE-SVC-"), "{text}");
    assert!(!text.contains("KUBE-SEP-"), "{text}");
}

#[test]
fn client_ip_affinity_uses_the_recent_match() {
    let svc = service(json!({"metadata": {"namespace": "dev", "name": "sticky"},
        "spec": {"clusterIP": "10.96.0.60", "sessionAffinity": "ClientIP",
                 "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 600}},
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}));
    let desired = state(
        &[svc],
        &[slice(
            "dev",
            "sticky",
            &[("10.244.1.2", "w1"), ("10.244.2.2", "w2")],
        )],
    );
    let input = IptablesProxier::new(IptablesConfig::default()).sync(&desired);
    let text = v4(&input);
    let name = kubeport_proxy_model::ServicePortName::new(
        "dev",
        "sticky",
        "http",
        kubeport_proxy_model::Protocol::Tcp,
    );
    let svc_chain = kubeport_iptables::names::ServicePortChains::new(&name).cluster;
    let sep = |ip: &str| {
        kubeport_iptables::names::endpoint_chain(
            &name,
            &kubeport_proxy_model::Endpoint::ready(ip.parse().unwrap(), 80),
        )
    };
    let (a, b) = (sep("10.244.1.2"), sep("10.244.2.2"));
    let svc_rules: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with(&format!("-A {svc_chain} ")))
        .collect();
    assert_eq!(
        svc_rules,
        [
            format!("-A {svc_chain} -m comment --comment \"dev/sticky:http cluster IP\" -m tcp -p tcp -d 10.96.0.60 --dport 80 ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ"),
            format!("-A {svc_chain} -m comment --comment \"dev/sticky:http -> 10.244.1.2:80\" -m recent --name {a} --rcheck --seconds 600 --reap -j {a}"),
            format!("-A {svc_chain} -m comment --comment \"dev/sticky:http -> 10.244.2.2:80\" -m recent --name {b} --rcheck --seconds 600 --reap -j {b}"),
            format!("-A {svc_chain} -m comment --comment \"dev/sticky:http -> 10.244.1.2:80\" -m statistic --mode random --probability 0.5000000000 -j {a}"),
            format!("-A {svc_chain} -m comment --comment \"dev/sticky:http -> 10.244.2.2:80\" -j {b}"),
        ]
    );
    assert!(text.contains(&format!(
        "-A {a} -m comment --comment dev/sticky:http -m recent --name {a} --set -m tcp -p tcp -j DNAT --to-destination 10.244.1.2:80\n"
    )));
}

#[test]
fn load_balancer_source_ranges_use_a_firewall_chain() {
    // The node (172.18.0.3) is inside the second range, so traffic from the VIP itself passes.
    let svc = service(json!({"metadata": {"namespace": "dev", "name": "lb"},
        "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.70",
                 "loadBalancerSourceRanges": ["203.0.113.0/25", "172.18.0.0/16"],
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "5.6.7.8"}]}}}));
    let desired = state(&[svc], &[slice("dev", "lb", &[("10.244.1.2", "w1")])]);
    let input = IptablesProxier::new(IptablesConfig::default()).sync(&desired);
    let text = v4(&input);
    let name = kubeport_proxy_model::ServicePortName::new(
        "dev",
        "lb",
        "http",
        kubeport_proxy_model::Protocol::Tcp,
    );
    let chains = kubeport_iptables::names::ServicePortChains::new(&name);
    let (fw, ext) = (&chains.firewall, &chains.external);
    let fw_rules: Vec<&str> = text
        .lines()
        .filter(|line| {
            line.starts_with(&format!("-A {fw} ")) || line.ends_with(&format!("-j {fw}"))
        })
        .collect();
    assert_eq!(
        fw_rules,
        [
            format!("-A KUBE-SERVICES -m comment --comment \"dev/lb:http loadbalancer IP\" -m tcp -p tcp -d 5.6.7.8 --dport 80 -j {fw}"),
            format!("-A {fw} -m comment --comment \"dev/lb:http loadbalancer IP\" -s 203.0.113.0/25 -j {ext}"),
            format!("-A {fw} -m comment --comment \"dev/lb:http loadbalancer IP\" -s 172.18.0.0/16 -j {ext}"),
            format!("-A {fw} -m comment --comment \"dev/lb:http loadbalancer IP\" -s 5.6.7.8 -j {ext}"),
            format!("-A {fw} -m comment --comment \"other traffic to dev/lb:http will be dropped by KUBE-PROXY-FIREWALL\""),
        ]
    );
    assert!(text.contains(&format!(
        "-A KUBE-PROXY-FIREWALL -m comment --comment \"dev/lb:http traffic not accepted by {fw}\" -m tcp -p tcp -d 5.6.7.8 --dport 80 -j DROP\n"
    )));
    // NodePorts are not subject to the source ranges.
    assert!(text.contains(&format!(
        "-A KUBE-NODEPORTS -m comment --comment dev/lb:http -m tcp -p tcp --dport 30080 -j {ext}\n"
    )));
}

#[test]
fn external_ips_are_captured_and_masqueraded() {
    let svc = service(json!({"metadata": {"namespace": "dev", "name": "ext"},
        "spec": {"clusterIP": "10.96.0.80", "externalIPs": ["192.168.99.33"],
                 "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}}));
    let desired = state(
        &[svc],
        &[slice_with_port(
            "dev",
            "ext",
            "http",
            8080,
            "TCP",
            &[("10.244.1.2", "w1")],
        )],
    );
    let input = IptablesProxier::new(IptablesConfig::default()).sync(&desired);
    let text = v4(&input);
    let name = kubeport_proxy_model::ServicePortName::new(
        "dev",
        "ext",
        "http",
        kubeport_proxy_model::Protocol::Tcp,
    );
    let chains = kubeport_iptables::names::ServicePortChains::new(&name);
    for expected in [
        format!("-A KUBE-SERVICES -m comment --comment \"dev/ext:http external IP\" -m tcp -p tcp -d 192.168.99.33 --dport 8080 -j {}", chains.external),
        format!("-A {} -m comment --comment \"masquerade traffic for dev/ext:http external destinations\" -j KUBE-MARK-MASQ", chains.external),
        format!("-A {} -j {}", chains.external, chains.cluster),
    ] {
        assert!(text.lines().any(|line| line == expected), "missing {expected}\n{text}");
    }
    assert!(!text.contains("KUBE-EXTERNAL-SERVICES -m"), "{text}");
}

#[test]
fn udp_ports_use_the_udp_match() {
    let svc = service(
        json!({"metadata": {"namespace": "kube-system", "name": "kube-dns"},
        "spec": {"clusterIP": "10.96.0.10",
                 "ports": [{"name": "dns", "port": 53, "protocol": "UDP"},
                           {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]}}),
    );
    let dns = slice_with_port(
        "kube-system",
        "kube-dns",
        "dns",
        53,
        "UDP",
        &[("10.244.0.3", "w1")],
    );
    let desired = state(&[svc], &[dns]);
    let input = IptablesProxier::new(IptablesConfig::default()).sync(&desired);
    let text = v4(&input);
    let name = kubeport_proxy_model::ServicePortName::new(
        "kube-system",
        "kube-dns",
        "dns",
        kubeport_proxy_model::Protocol::Udp,
    );
    let svc_chain = kubeport_iptables::names::ServicePortChains::new(&name).cluster;
    let sep = kubeport_iptables::names::endpoint_chain(
        &name,
        &kubeport_proxy_model::Endpoint::ready("10.244.0.3".parse().unwrap(), 53),
    );
    for expected in [
        format!("-A KUBE-SERVICES -m comment --comment \"kube-system/kube-dns:dns cluster IP\" -m udp -p udp -d 10.96.0.10 --dport 53 -j {svc_chain}"),
        format!("-A {sep} -m comment --comment kube-system/kube-dns:dns -m udp -p udp -j DNAT --to-destination 10.244.0.3:53"),
        // The TCP port has no endpoints (the slice only carries the UDP port).
        "-A KUBE-SERVICES -m comment --comment \"kube-system/kube-dns:dns-tcp has no endpoints\" -m tcp -p tcp -d 10.96.0.10 --dport 53 -j REJECT".to_string(),
    ] {
        assert!(text.lines().any(|line| line == expected), "missing {expected}\n{text}");
    }
}

#[test]
fn ipv6_service_ports_get_their_own_restore_input() {
    let node = NodeInfo {
        name: NODE.into(),
        ips: vec![
            "172.18.0.3".parse().unwrap(),
            "fc00:f853:ccd:e793::3".parse().unwrap(),
        ],
        labels: BTreeMap::new(),
    };
    let mut config = config();
    config
        .cluster_cidrs
        .push("fd00:10:244::/56".parse().unwrap());
    config.nodeport_addresses = NodePortAddresses::Cidrs(Vec::new());
    let svc = service(json!({"metadata": {"namespace": "dev", "name": "v6"},
        "spec": {"type": "NodePort", "clusterIP": "fd00:10:96::100", "clusterIPs": ["fd00:10:96::100"],
                 "ipFamilies": ["IPv6"],
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30600}]}}));
    let slice: k8s_openapi::api::discovery::v1::EndpointSlice = serde_json::from_value(json!({
        "metadata": {"namespace": "dev", "name": "v6-abcde", "labels": {"kubernetes.io/service-name": "v6"}},
        "addressType": "IPv6",
        "endpoints": [{"addresses": ["fd00:10:244:1::2"], "nodeName": "w1"}],
        "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]
    }))
    .unwrap();
    let desired = state_with(&[svc], &[slice], &node, &config);
    let input = IptablesProxier::new(IptablesConfig::default()).sync(&desired);
    assert_eq!(input.families().len(), 2);
    let v6 = input.family(IpFamily::V6).unwrap().as_str();
    assert!(
        !v6.contains("KUBE-FIREWALL"),
        "no localhost NodePorts in IPv6:\n{v6}"
    );
    assert!(
        v6.contains("! -s fd00:10:244::/56 -j KUBE-MARK-MASQ"),
        "{v6}"
    );
    assert!(
        v6.contains("-j DNAT --to-destination [fd00:10:244:1::2]:80\n"),
        "{v6}"
    );
    assert!(v6.contains(
        "-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL ! -d ::1/128 -j KUBE-NODEPORTS\n"
    ), "{v6}");
    // The IPv4 input still exists (empty of services).
    assert!(!v4(&input).contains("KUBE-SVC-"));
}

#[test]
fn nodeport_addresses_restrict_the_nodeports_jump() {
    let mut config = config();
    config.nodeport_addresses = NodePortAddresses::Primary;
    let desired = state_with(&[nginx_service()], &[], &node(), &config);
    let input = IptablesProxier::new(IptablesConfig::default()).sync(&desired);
    let text = v4(&input);
    assert!(text.contains(
        "-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -d 172.18.0.3 -j KUBE-NODEPORTS\n"
    ), "{text}");
    // Localhost NodePorts are off when NodePorts are limited to some addresses.
    assert!(!text.contains("KUBE-FIREWALL"), "{text}");
}

#[test]
fn localhost_nodeports_disabled_excludes_loopback() {
    let config = IptablesConfig {
        localhost_nodeports: false,
        ..IptablesConfig::default()
    };
    let input = IptablesProxier::new(config).sync(&state(&[nginx_service()], &[]));
    let text = v4(&input);
    assert!(text.contains("-m addrtype --dst-type LOCAL ! -d 127.0.0.0/8 -j KUBE-NODEPORTS\n"));
    assert!(!text.contains(":KUBE-FIREWALL"));
}

#[test]
fn large_clusters_drop_endpoint_comments() {
    // 101 services × 10 endpoints = 1010 endpoints > 1000.
    let mut services = Vec::new();
    let mut slices = Vec::new();
    for index in 0..101 {
        let name = format!("svc{index}");
        services.push(service(
            json!({"metadata": {"namespace": "big", "name": name},
            "spec": {"clusterIP": format!("10.96.{}.{}", index / 200, index % 200 + 1),
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}),
        ));
        let endpoints: Vec<(String, &str)> = (0..10)
            .map(|e| (format!("10.244.{index}.{}", e + 1), "w1"))
            .collect();
        let refs: Vec<(&str, &str)> = endpoints.iter().map(|(a, n)| (a.as_str(), *n)).collect();
        slices.push(slice("big", &name, &refs));
    }
    let input = IptablesProxier::new(IptablesConfig::default()).sync(&state(&services, &slices));
    let text = v4(&input);
    assert!(!text.contains(" -> "), "no per-endpoint comments");
    assert!(text.contains("-m statistic --mode random --probability 0.1000000000 -j KUBE-SEP-"));
    let sep_line = text
        .lines()
        .find(|line| line.starts_with("-A KUBE-SEP-") && line.contains("DNAT"))
        .unwrap();
    assert!(!sep_line.contains("--comment"), "{sep_line}");
    // Service-level comments stay.
    assert!(text.contains("\"big/svc0:http cluster IP\""));
}

fn two_services() -> Vec<k8s_openapi::api::core::v1::Service> {
    vec![
        service(json!({"metadata": {"namespace": "ns1", "name": "svc1"},
            "spec": {"clusterIP": "172.30.0.41", "ports": [{"name": "p80", "port": 80, "protocol": "TCP"}]}})),
        service(json!({"metadata": {"namespace": "ns2", "name": "svc2"},
            "spec": {"clusterIP": "172.30.0.42", "ports": [{"name": "p8080", "port": 8080, "protocol": "TCP"}]}})),
    ]
}

fn two_slices(svc1_ip: &str) -> Vec<k8s_openapi::api::discovery::v1::EndpointSlice> {
    vec![
        slice_with_port("ns1", "svc1", "p80", 80, "TCP", &[(svc1_ip, "")]),
        slice_with_port("ns2", "svc2", "p8080", 8080, "TCP", &[("10.0.2.1", "")]),
    ]
}

fn upstream_like_config() -> ProxyConfig {
    ProxyConfig {
        cluster_cidrs: vec!["10.0.0.0/8".parse().unwrap()],
        nodeport_addresses: NodePortAddresses::Cidrs(Vec::new()),
        ..ProxyConfig::default()
    }
}

fn upstream_like_state(
    services: &[k8s_openapi::api::core::v1::Service],
    slices: &[k8s_openapi::api::discovery::v1::EndpointSlice],
) -> ProxyState {
    let node = NodeInfo {
        name: "test-node".into(),
        ips: vec!["192.168.0.2".parse().unwrap()],
        labels: BTreeMap::new(),
    };
    state_with(services, slices, &node, &upstream_like_config())
}

const UPSTREAM_FILTER: &str = r#"
*filter
:KUBE-NODEPORTS - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-EXTERNAL-SERVICES - [0:0]
:KUBE-FIREWALL - [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
COMMIT
"#;

/// kube-proxy's TestSyncProxyRulesRepeated, steps: initial full sync, endpoint change of
/// one service (only its chains are rewritten, the replaced SEP chain deleted), deletion of
/// a service (its chains flushed and deleted), and a sync without changes.
#[test]
fn partial_syncs_rewrite_only_changed_services() {
    let upstream = IptablesConfig {
        random_fully: false,
        ..IptablesConfig::default()
    };
    let mut proxier = IptablesProxier::new(upstream);
    let services = two_services();
    let first = commit(
        &mut proxier,
        &upstream_like_state(&services, &two_slices("10.0.1.1")),
    );
    assert!(first.is_full_sync());
    assert_lines(
        &sort_like_upstream(v4(&first)),
        &format!(
            "{UPSTREAM_FILTER}
*nat
:KUBE-NODEPORTS - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-SEP-SNQ3ZNILQDEJNDQO - [0:0]
:KUBE-SEP-UHEGFW77JX3KXTOV - [0:0]
:KUBE-SVC-2VJB64SDSIJUP5T6 - [0:0]
:KUBE-SVC-XPGD46QRK7WJZT7O - [0:0]
-A KUBE-SERVICES -m comment --comment \"ns1/svc1:p80 cluster IP\" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O
-A KUBE-SERVICES -m comment --comment \"ns2/svc2:p8080 cluster IP\" -m tcp -p tcp -d 172.30.0.42 --dport 8080 -j KUBE-SVC-2VJB64SDSIJUP5T6
-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE
-A KUBE-SEP-SNQ3ZNILQDEJNDQO -m comment --comment ns1/svc1:p80 -s 10.0.1.1 -j KUBE-MARK-MASQ
-A KUBE-SEP-SNQ3ZNILQDEJNDQO -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.0.1.1:80
-A KUBE-SEP-UHEGFW77JX3KXTOV -m comment --comment ns2/svc2:p8080 -s 10.0.2.1 -j KUBE-MARK-MASQ
-A KUBE-SEP-UHEGFW77JX3KXTOV -m comment --comment ns2/svc2:p8080 -m tcp -p tcp -j DNAT --to-destination 10.0.2.1:8080
-A KUBE-SVC-2VJB64SDSIJUP5T6 -m comment --comment \"ns2/svc2:p8080 cluster IP\" -m tcp -p tcp -d 172.30.0.42 --dport 8080 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-2VJB64SDSIJUP5T6 -m comment --comment \"ns2/svc2:p8080 -> 10.0.2.1:8080\" -j KUBE-SEP-UHEGFW77JX3KXTOV
-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment \"ns1/svc1:p80 cluster IP\" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment \"ns1/svc1:p80 -> 10.0.1.1:80\" -j KUBE-SEP-SNQ3ZNILQDEJNDQO
COMMIT"
        ),
    );

    // One endpoint of svc1 changes: only svc1's chains are rewritten; the old SEP goes.
    let second = commit(
        &mut proxier,
        &upstream_like_state(&services, &two_slices("10.0.1.2")),
    );
    assert!(!second.is_full_sync());
    let family = second.family(IpFamily::V4).unwrap();
    assert_eq!(family.rewritten_services(), 1);
    assert_eq!(family.deleted_chains(), 1);
    let new_sep = kubeport_iptables::names::endpoint_chain(
        &kubeport_proxy_model::ServicePortName::new(
            "ns1",
            "svc1",
            "p80",
            kubeport_proxy_model::Protocol::Tcp,
        ),
        &kubeport_proxy_model::Endpoint::ready("10.0.1.2".parse().unwrap(), 80),
    );
    assert_lines(
        v4(&second),
        &format!(
            "*filter
:KUBE-SERVICES - [0:0]
:KUBE-EXTERNAL-SERVICES - [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
:KUBE-FIREWALL - [0:0]
-A KUBE-FIREWALL -m comment --comment \"block incoming localnet connections\" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" -m mark --mark 0x4000/0x4000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
COMMIT
*nat
:KUBE-SERVICES - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-SVC-XPGD46QRK7WJZT7O - [0:0]
:{new_sep} - [0:0]
:KUBE-SEP-SNQ3ZNILQDEJNDQO - [0:0]
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE
-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
-A KUBE-SERVICES -m comment --comment \"ns1/svc1:p80 cluster IP\" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O
-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment \"ns1/svc1:p80 cluster IP\" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment \"ns1/svc1:p80 -> 10.0.1.2:80\" -j {new_sep}
-A {new_sep} -m comment --comment ns1/svc1:p80 -s 10.0.1.2 -j KUBE-MARK-MASQ
-A {new_sep} -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.0.1.2:80
-A KUBE-SERVICES -m comment --comment \"ns2/svc2:p8080 cluster IP\" -m tcp -p tcp -d 172.30.0.42 --dport 8080 -j KUBE-SVC-2VJB64SDSIJUP5T6
-X KUBE-SEP-SNQ3ZNILQDEJNDQO
-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
COMMIT"
        ),
    );

    // svc2 is deleted: its chains are flushed and deleted, svc1's are left alone.
    let third = commit(
        &mut proxier,
        &upstream_like_state(&services[..1], &two_slices("10.0.1.2")),
    );
    assert_lines(
        &sort_like_upstream(v4(&third)),
        &format!(
            "{UPSTREAM_FILTER}
*nat
:KUBE-NODEPORTS - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-SEP-UHEGFW77JX3KXTOV - [0:0]
:KUBE-SVC-2VJB64SDSIJUP5T6 - [0:0]
-A KUBE-SERVICES -m comment --comment \"ns1/svc1:p80 cluster IP\" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O
-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE
-X KUBE-SEP-UHEGFW77JX3KXTOV
-X KUBE-SVC-2VJB64SDSIJUP5T6
COMMIT"
        ),
    );

    // Nothing changed: only the fixed chains are rewritten.
    let fourth = commit(
        &mut proxier,
        &upstream_like_state(&services[..1], &two_slices("10.0.1.2")),
    );
    let family = fourth.family(IpFamily::V4).unwrap();
    assert_eq!(
        (family.rewritten_services(), family.deleted_chains()),
        (0, 0)
    );
    assert!(!v4(&fourth).contains(":KUBE-SVC-"));
    assert!(!v4(&fourth).contains(":KUBE-SEP-"));
    assert!(v4(&fourth).contains("-j KUBE-SVC-XPGD46QRK7WJZT7O\n"));

    // A requested full sync rewrites everything again.
    proxier.request_full_sync();
    assert!(proxier.needs_full_sync());
    let fifth = commit(
        &mut proxier,
        &upstream_like_state(&services[..1], &two_slices("10.0.1.2")),
    );
    assert!(fifth.is_full_sync());
    assert!(v4(&fifth).contains(":KUBE-SVC-XPGD46QRK7WJZT7O - [0:0]\n"));
    assert!(!proxier.needs_full_sync());
}

#[test]
fn a_failed_restore_forces_a_full_sync_that_deletes_what_it_may_have_left() {
    let mut proxier = IptablesProxier::new(IptablesConfig::default());
    let services = two_services();
    commit(
        &mut proxier,
        &upstream_like_state(&services, &two_slices("10.0.1.1")),
    );
    // This restore fails: the kernel may or may not hold svc1's new SEP chain.
    let _failed = proxier.sync(&upstream_like_state(&services, &two_slices("10.0.1.2")));
    proxier.mark_failed();
    assert!(proxier.needs_full_sync());
    let retry = proxier.sync(&upstream_like_state(
        &services[1..],
        &two_slices("10.0.1.2"),
    ));
    let text = v4(&retry);
    assert!(retry.is_full_sync());
    // svc2's chains are all written again; everything svc1 ever had is deleted.
    assert!(text.contains(":KUBE-SVC-2VJB64SDSIJUP5T6 - [0:0]\n"));
    assert!(text.contains("-A KUBE-SVC-2VJB64SDSIJUP5T6 "));
    let deleted: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("-X "))
        .collect();
    assert_eq!(deleted.len(), 3, "{text}");
    assert!(deleted.contains(&"KUBE-SVC-XPGD46QRK7WJZT7O"));
    assert!(deleted.contains(&"KUBE-SEP-SNQ3ZNILQDEJNDQO"));
    proxier.mark_committed(&retry);
    let next = proxier.sync(&upstream_like_state(
        &services[1..],
        &two_slices("10.0.1.2"),
    ));
    assert!(!next.is_full_sync());
    assert!(!v4(&next).contains("-X "));
}

#[test]
fn committing_an_outdated_input_forces_a_full_sync() {
    let mut proxier = IptablesProxier::new(IptablesConfig::default());
    let desired = state(&[nginx_service()], &[]);
    let old = proxier.sync(&desired);
    let newer = proxier.sync(&desired);
    proxier.mark_committed(&old);
    assert!(proxier.needs_full_sync());
    proxier.mark_committed(&newer);
    assert!(!proxier.needs_full_sync());
}

#[test]
fn observed_leftover_chains_are_deleted_by_the_first_sync() {
    let mut proxier = IptablesProxier::new(IptablesConfig::default());
    proxier.observe_existing_chains(
        IpFamily::V4,
        [
            "KUBE-SVC-AAAAAAAAAAAAAAAA",
            "KUBE-SEP-BBBBBBBBBBBBBBBB",
            "KUBE-SVC-T3QIINOBLYCGKYC7",
            "KUBE-SERVICES",
            "DOCKER",
        ],
    );
    let desired = state(
        &[nginx_service()],
        &[slice("dev", "nginx-service", &SEED_ENDPOINTS)],
    );
    let input = proxier.sync(&desired);
    let deleted: Vec<&str> = v4(&input)
        .lines()
        .filter_map(|line| line.strip_prefix("-X "))
        .collect();
    assert_eq!(
        deleted,
        ["KUBE-SEP-BBBBBBBBBBBBBBBB", "KUBE-SVC-AAAAAAAAAAAAAAAA"]
    );
}

#[test]
fn jump_rules_are_kube_proxys() {
    let rules = kubeport_iptables::jump_rules();
    let checks: Vec<String> = rules
        .iter()
        .map(|rule| rule.check_args().join(" "))
        .collect();
    assert_eq!(
        checks,
        [
            "-t filter -C INPUT -m conntrack --ctstate NEW -m comment --comment kubernetes externally-visible service portals -j KUBE-EXTERNAL-SERVICES",
            "-t filter -C FORWARD -m conntrack --ctstate NEW -m comment --comment kubernetes externally-visible service portals -j KUBE-EXTERNAL-SERVICES",
            "-t filter -C INPUT -m comment --comment kubernetes health check service ports -j KUBE-NODEPORTS",
            "-t filter -C FORWARD -m conntrack --ctstate NEW -m comment --comment kubernetes service portals -j KUBE-SERVICES",
            "-t filter -C OUTPUT -m conntrack --ctstate NEW -m comment --comment kubernetes service portals -j KUBE-SERVICES",
            "-t filter -C FORWARD -m comment --comment kubernetes forwarding rules -j KUBE-FORWARD",
            "-t filter -C INPUT -m conntrack --ctstate NEW -m comment --comment kubernetes load balancer firewall -j KUBE-PROXY-FIREWALL",
            "-t filter -C OUTPUT -m conntrack --ctstate NEW -m comment --comment kubernetes load balancer firewall -j KUBE-PROXY-FIREWALL",
            "-t filter -C FORWARD -m conntrack --ctstate NEW -m comment --comment kubernetes load balancer firewall -j KUBE-PROXY-FIREWALL",
            "-t nat -C OUTPUT -m comment --comment kubernetes service portals -j KUBE-SERVICES",
            "-t nat -C PREROUTING -m comment --comment kubernetes service portals -j KUBE-SERVICES",
            "-t nat -C POSTROUTING -m comment --comment kubernetes postrouting rules -j KUBE-POSTROUTING",
            "-t filter -C INPUT -j KUBE-FIREWALL",
            "-t filter -C OUTPUT -j KUBE-FIREWALL",
        ]
    );
    // The comment is one argument (no shell quoting involved).
    assert_eq!(
        rules[9].insert_args(),
        [
            "-t",
            "nat",
            "-I",
            "OUTPUT",
            "-m",
            "comment",
            "--comment",
            "kubernetes service portals",
            "-j",
            "KUBE-SERVICES"
        ]
    );
    let full = IptablesProxier::new(IptablesConfig::default()).sync(&state(&[], &[]));
    assert_eq!(full.families()[0].jump_rules().len(), rules.len());
}

#[test]
fn cleanup_removes_every_kube_chain() {
    let saved = "# Generated by iptables-save v1.8.9 (nf_tables)
*mangle
:PREROUTING ACCEPT [0:0]
:KUBE-PROXY-CANARY - [0:0]
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-T3QIINOBLYCGKYC7 - [0:0]
:OTHER - [0:0]
-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES
COMMIT
*filter
:INPUT ACCEPT [0:0]
COMMIT
";
    let commands = IptablesProxier::cleanup_commands();
    assert_eq!(commands.jump_rules.len(), 14);
    assert_lines(
        &commands.restore_input(saved),
        "*nat
:KUBE-MARK-MASQ - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-T3QIINOBLYCGKYC7 - [0:0]
-X KUBE-MARK-MASQ
-X KUBE-SERVICES
-X KUBE-SVC-T3QIINOBLYCGKYC7
COMMIT
*mangle
:KUBE-PROXY-CANARY - [0:0]
-X KUBE-PROXY-CANARY
COMMIT",
    );
    assert_eq!(
        commands.restore_input("*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n"),
        ""
    );
}
