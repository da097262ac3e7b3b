//! Exact transactions produced by the nftables proxier, and (where `nft` and root are
//! available) their validation by the real `nft`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kubeport_nftables::{cleanup_transaction, Nft, NftProxier, Transaction};
use kubeport_proxy_model::{compute, EndpointSliceCache, NodeInfo, ProxyConfig, ProxyState};
use serde_json::{json, Value};

const NODE: &str = "service-demo-worker";

fn node() -> NodeInfo {
    NodeInfo {
        name: NODE.into(),
        ips: vec!["172.18.0.3".parse().unwrap()],
        labels: BTreeMap::new(),
    }
}

fn config() -> ProxyConfig {
    ProxyConfig {
        cluster_cidrs: vec!["10.244.0.0/16".parse().unwrap()],
        service_cidrs: vec!["10.96.0.0/12".parse().unwrap()],
        ..ProxyConfig::default()
    }
}

fn service(value: Value) -> Service {
    serde_json::from_value(value).expect("valid Service")
}

/// dev/nginx-service of seed 001 (NodePort 30000, port `http` 80 -> 80).
fn nginx_service() -> Service {
    service(json!({
        "metadata": {"namespace": "dev", "name": "nginx-service"},
        "spec": {"type": "NodePort", "clusterIP": "10.96.0.100", "clusterIPs": ["10.96.0.100"],
                 "externalTrafficPolicy": "Cluster",
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 80, "nodePort": 30000}]}
    }))
}

fn slice(namespace: &str, service: &str, endpoints: &[(&str, &str)]) -> EndpointSlice {
    let endpoints: Vec<Value> = endpoints
        .iter()
        .map(|(address, node)| json!({"addresses": [address], "nodeName": node, "conditions": {"ready": true}}))
        .collect();
    serde_json::from_value(json!({
        "metadata": {"namespace": namespace, "name": format!("{service}-abcde"),
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]
    }))
    .expect("valid EndpointSlice")
}

const SEED_ENDPOINTS: [(&str, &str); 6] = [
    ("10.244.1.2", "service-demo-worker"),
    ("10.244.1.3", "service-demo-worker"),
    ("10.244.1.4", "service-demo-worker"),
    ("10.244.2.2", "service-demo-worker2"),
    ("10.244.2.3", "service-demo-worker2"),
    ("10.244.2.4", "service-demo-worker2"),
];

fn state(services: &[Service], slices: &[EndpointSlice]) -> ProxyState {
    compute(
        services,
        &EndpointSliceCache::from_slices(slices).endpoints_map(),
        &node(),
        &config(),
    )
}

fn lines(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// Syncs and commits.
fn commit(proxier: &mut NftProxier, desired: &ProxyState) -> Transaction {
    let tx = proxier.sync(desired);
    proxier.mark_committed(&tx);
    tx
}

/// A proxier that already committed the fixed part of the table (no Services), so the next
/// transaction shows only one Service's objects.
fn proxier_with_empty_table() -> NftProxier {
    let mut proxier = NftProxier::new();
    commit(&mut proxier, &state(&[], &[]));
    proxier
}

const FIXED_PART: &str = "
add table ip kube-proxy
delete table ip kube-proxy
add table ip kube-proxy { comment \"rules for kube-proxy\" ; }
add set ip kube-proxy cluster-ips { type ipv4_addr ; comment \"Active ClusterIPs\" ; }
add set ip kube-proxy nodeport-ips { type ipv4_addr ; comment \"IPs that accept NodePort traffic\" ; }
add map ip kube-proxy firewall-ips { type ipv4_addr . inet_proto . inet_service : verdict ; comment \"destinations that are subject to LoadBalancerSourceRanges\" ; }
add map ip kube-proxy no-endpoint-nodeports { type inet_proto . inet_service : verdict ; comment \"vmap to drop or reject packets to service nodeports with no endpoints\" ; }
add map ip kube-proxy no-endpoint-services { type ipv4_addr . inet_proto . inet_service : verdict ; comment \"vmap to drop or reject packets to services with no endpoints\" ; }
add map ip kube-proxy service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; comment \"ClusterIP, ExternalIP and LoadBalancer IP traffic\" ; }
add map ip kube-proxy service-nodeports { type inet_proto . inet_service : verdict ; comment \"NodePort traffic\" ; }
add chain ip kube-proxy filter-prerouting-pre-dnat { type filter hook prerouting priority -110 ; }
add chain ip kube-proxy filter-output-pre-dnat { type filter hook output priority -110 ; }
add chain ip kube-proxy filter-input { type filter hook input priority 0 ; }
add chain ip kube-proxy filter-forward { type filter hook forward priority 0 ; }
add chain ip kube-proxy filter-output { type filter hook output priority 0 ; }
add chain ip kube-proxy nat-prerouting { type nat hook prerouting priority -100 ; }
add chain ip kube-proxy nat-output { type nat hook output priority -100 ; }
add chain ip kube-proxy nat-postrouting { type nat hook postrouting priority 100 ; }
add chain ip kube-proxy services
add chain ip kube-proxy service-endpoints-check
add chain ip kube-proxy nodeport-endpoints-check
add chain ip kube-proxy cluster-ips-check
add chain ip kube-proxy firewall-check
add chain ip kube-proxy mark-for-masquerade
add chain ip kube-proxy masquerading
add chain ip kube-proxy reject-chain { comment \"helper for @no-endpoint-services / @no-endpoint-nodeports\" ; }
";

const FIXED_RULES: &str = "
add rule ip kube-proxy filter-prerouting-pre-dnat ct state new jump firewall-check
add rule ip kube-proxy filter-output-pre-dnat ct state new jump firewall-check
add rule ip kube-proxy filter-input ct state new jump nodeport-endpoints-check
add rule ip kube-proxy filter-input ct state new jump service-endpoints-check
add rule ip kube-proxy filter-forward ct state new jump service-endpoints-check
add rule ip kube-proxy filter-forward ct state new jump cluster-ips-check
add rule ip kube-proxy filter-output ct state new jump service-endpoints-check
add rule ip kube-proxy filter-output ct state new jump cluster-ips-check
add rule ip kube-proxy nat-prerouting jump services
add rule ip kube-proxy nat-output jump services
add rule ip kube-proxy nat-postrouting jump masquerading
add rule ip kube-proxy services ip daddr . meta l4proto . th dport vmap @service-ips
add rule ip kube-proxy services ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports
add rule ip kube-proxy service-endpoints-check ip daddr . meta l4proto . th dport vmap @no-endpoint-services
add rule ip kube-proxy nodeport-endpoints-check ip daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports
add rule ip kube-proxy cluster-ips-check ip daddr @cluster-ips reject comment \"Reject traffic to invalid ports of ClusterIPs\"
add rule ip kube-proxy cluster-ips-check ip daddr { 10.96.0.0/12 } drop comment \"Drop traffic to unallocated ClusterIPs\"
add rule ip kube-proxy firewall-check ip daddr . meta l4proto . th dport vmap @firewall-ips
add rule ip kube-proxy mark-for-masquerade mark set mark or 0x4000
add rule ip kube-proxy masquerading mark and 0x4000 == 0 return
add rule ip kube-proxy masquerading mark set mark xor 0x4000
add rule ip kube-proxy masquerading masquerade fully-random
add rule ip kube-proxy reject-chain reject
";

const SVC: &str = "service-OSL4WQEN-dev/nginx-service/tcp/http";
const EXT: &str = "external-OSL4WQEN-dev/nginx-service/tcp/http";

#[test]
fn first_sync_of_seed_001_service() {
    let mut proxier = NftProxier::new();
    let tx = proxier.sync(&state(
        &[nginx_service()],
        &[slice("dev", "nginx-service", &SEED_ENDPOINTS)],
    ));
    assert!(tx.is_full_resync());
    let expected = format!(
        "{FIXED_PART}
add chain ip kube-proxy {SVC}
add chain ip kube-proxy {EXT}
add chain ip kube-proxy endpoint-TAHAZV2R-dev/nginx-service/tcp/http__10.244.1.2/80
add chain ip kube-proxy endpoint-KWVPKR3F-dev/nginx-service/tcp/http__10.244.1.3/80
add chain ip kube-proxy endpoint-AZUTOEZH-dev/nginx-service/tcp/http__10.244.1.4/80
add chain ip kube-proxy endpoint-25JTDIXN-dev/nginx-service/tcp/http__10.244.2.2/80
add chain ip kube-proxy endpoint-MMYVTU54-dev/nginx-service/tcp/http__10.244.2.3/80
add chain ip kube-proxy endpoint-I5GS2W2T-dev/nginx-service/tcp/http__10.244.2.4/80
{FIXED_RULES}
add rule ip kube-proxy {SVC} ip daddr 10.96.0.100 ip saddr != 10.244.0.0/16 jump mark-for-masquerade
add rule ip kube-proxy {SVC} numgen random mod 6 vmap {{ 0 : goto endpoint-TAHAZV2R-dev/nginx-service/tcp/http__10.244.1.2/80 , 1 : goto endpoint-KWVPKR3F-dev/nginx-service/tcp/http__10.244.1.3/80 , 2 : goto endpoint-AZUTOEZH-dev/nginx-service/tcp/http__10.244.1.4/80 , 3 : goto endpoint-25JTDIXN-dev/nginx-service/tcp/http__10.244.2.2/80 , 4 : goto endpoint-MMYVTU54-dev/nginx-service/tcp/http__10.244.2.3/80 , 5 : goto endpoint-I5GS2W2T-dev/nginx-service/tcp/http__10.244.2.4/80 }}
add rule ip kube-proxy {EXT} jump mark-for-masquerade
add rule ip kube-proxy {EXT} goto {SVC}
add rule ip kube-proxy endpoint-TAHAZV2R-dev/nginx-service/tcp/http__10.244.1.2/80 ip saddr 10.244.1.2 jump mark-for-masquerade
add rule ip kube-proxy endpoint-TAHAZV2R-dev/nginx-service/tcp/http__10.244.1.2/80 meta l4proto tcp dnat to 10.244.1.2:80
add rule ip kube-proxy endpoint-KWVPKR3F-dev/nginx-service/tcp/http__10.244.1.3/80 ip saddr 10.244.1.3 jump mark-for-masquerade
add rule ip kube-proxy endpoint-KWVPKR3F-dev/nginx-service/tcp/http__10.244.1.3/80 meta l4proto tcp dnat to 10.244.1.3:80
add rule ip kube-proxy endpoint-AZUTOEZH-dev/nginx-service/tcp/http__10.244.1.4/80 ip saddr 10.244.1.4 jump mark-for-masquerade
add rule ip kube-proxy endpoint-AZUTOEZH-dev/nginx-service/tcp/http__10.244.1.4/80 meta l4proto tcp dnat to 10.244.1.4:80
add rule ip kube-proxy endpoint-25JTDIXN-dev/nginx-service/tcp/http__10.244.2.2/80 ip saddr 10.244.2.2 jump mark-for-masquerade
add rule ip kube-proxy endpoint-25JTDIXN-dev/nginx-service/tcp/http__10.244.2.2/80 meta l4proto tcp dnat to 10.244.2.2:80
add rule ip kube-proxy endpoint-MMYVTU54-dev/nginx-service/tcp/http__10.244.2.3/80 ip saddr 10.244.2.3 jump mark-for-masquerade
add rule ip kube-proxy endpoint-MMYVTU54-dev/nginx-service/tcp/http__10.244.2.3/80 meta l4proto tcp dnat to 10.244.2.3:80
add rule ip kube-proxy endpoint-I5GS2W2T-dev/nginx-service/tcp/http__10.244.2.4/80 ip saddr 10.244.2.4 jump mark-for-masquerade
add rule ip kube-proxy endpoint-I5GS2W2T-dev/nginx-service/tcp/http__10.244.2.4/80 meta l4proto tcp dnat to 10.244.2.4:80
add element ip kube-proxy nodeport-ips {{ 172.18.0.3 }}
add element ip kube-proxy cluster-ips {{ 10.96.0.100 }}
add element ip kube-proxy service-ips {{ 10.96.0.100 . tcp . 80 : goto {SVC} }}
add element ip kube-proxy service-nodeports {{ tcp . 30000 : goto {EXT} }}
"
    );
    assert_eq!(tx.as_str(), lines(&expected));
    nft_check(&tx);
}

#[test]
fn adding_one_endpoint_rewrites_only_the_service_chain_and_adds_its_chain() {
    let mut proxier = NftProxier::new();
    commit(
        &mut proxier,
        &state(
            &[nginx_service()],
            &[slice("dev", "nginx-service", &SEED_ENDPOINTS)],
        ),
    );
    let mut seven = SEED_ENDPOINTS.to_vec();
    seven.push(("10.244.1.10", "service-demo-worker"));
    let tx = proxier.sync(&state(
        &[nginx_service()],
        &[slice("dev", "nginx-service", &seven)],
    ));
    assert!(!tx.is_full_resync());
    // 10.244.1.10:80 sorts before 10.244.1.2:80, so it takes index 0.
    let new_chain = "endpoint-HE23YXZ3-dev/nginx-service/tcp/http__10.244.1.10/80";
    let expected = format!(
        "
add chain ip kube-proxy {new_chain}
flush chain ip kube-proxy {SVC}
add rule ip kube-proxy {SVC} ip daddr 10.96.0.100 ip saddr != 10.244.0.0/16 jump mark-for-masquerade
add rule ip kube-proxy {SVC} numgen random mod 7 vmap {{ 0 : goto {new_chain} , 1 : goto endpoint-TAHAZV2R-dev/nginx-service/tcp/http__10.244.1.2/80 , 2 : goto endpoint-KWVPKR3F-dev/nginx-service/tcp/http__10.244.1.3/80 , 3 : goto endpoint-AZUTOEZH-dev/nginx-service/tcp/http__10.244.1.4/80 , 4 : goto endpoint-25JTDIXN-dev/nginx-service/tcp/http__10.244.2.2/80 , 5 : goto endpoint-MMYVTU54-dev/nginx-service/tcp/http__10.244.2.3/80 , 6 : goto endpoint-I5GS2W2T-dev/nginx-service/tcp/http__10.244.2.4/80 }}
add rule ip kube-proxy {new_chain} ip saddr 10.244.1.10 jump mark-for-masquerade
add rule ip kube-proxy {new_chain} meta l4proto tcp dnat to 10.244.1.10:80
"
    );
    assert_eq!(tx.as_str(), lines(&expected));
}

#[test]
fn unchanged_state_gives_an_empty_transaction() {
    let desired = state(
        &[nginx_service()],
        &[slice("dev", "nginx-service", &SEED_ENDPOINTS)],
    );
    let mut proxier = NftProxier::new();
    commit(&mut proxier, &desired);
    let tx = proxier.sync(&desired);
    assert!(tx.is_empty(), "{tx}");
    assert_eq!(tx.as_str(), "");
}

#[test]
fn removing_a_service_deletes_elements_flushes_chains_then_deletes_them_later() {
    let mut proxier = NftProxier::new();
    commit(
        &mut proxier,
        &state(
            &[nginx_service()],
            &[slice("dev", "nginx-service", &SEED_ENDPOINTS[..2])],
        ),
    );
    let ep1 = "endpoint-TAHAZV2R-dev/nginx-service/tcp/http__10.244.1.2/80";
    let ep2 = "endpoint-KWVPKR3F-dev/nginx-service/tcp/http__10.244.1.3/80";

    let removed = commit(&mut proxier, &state(&[], &[]));
    let expected = format!(
        "
delete element ip kube-proxy cluster-ips {{ 10.96.0.100 }}
delete element ip kube-proxy service-ips {{ 10.96.0.100 . tcp . 80 }}
delete element ip kube-proxy service-nodeports {{ tcp . 30000 }}
flush chain ip kube-proxy {SVC}
flush chain ip kube-proxy {EXT}
flush chain ip kube-proxy {ep1}
flush chain ip kube-proxy {ep2}
"
    );
    assert_eq!(removed.as_str(), lines(&expected));

    let later = commit(&mut proxier, &state(&[], &[]));
    let expected = format!(
        "
delete chain ip kube-proxy {ep2}
delete chain ip kube-proxy {ep1}
delete chain ip kube-proxy {EXT}
delete chain ip kube-proxy {SVC}
"
    );
    assert_eq!(later.as_str(), lines(&expected));
    assert!(proxier.sync(&state(&[], &[])).is_empty());
}

#[test]
fn a_flushed_chain_needed_again_is_reused() {
    let mut proxier = NftProxier::new();
    let with = state(
        &[nginx_service()],
        &[slice("dev", "nginx-service", &SEED_ENDPOINTS[..1])],
    );
    commit(&mut proxier, &with);
    commit(&mut proxier, &state(&[], &[]));
    let tx = commit(&mut proxier, &with);
    let ep1 = "endpoint-TAHAZV2R-dev/nginx-service/tcp/http__10.244.1.2/80";
    // The stale chains still exist (empty): no `add chain`, no `flush chain`, no `delete chain`.
    let expected = format!(
        "
add rule ip kube-proxy {SVC} ip daddr 10.96.0.100 ip saddr != 10.244.0.0/16 jump mark-for-masquerade
add rule ip kube-proxy {SVC} numgen random mod 1 vmap {{ 0 : goto {ep1} }}
add rule ip kube-proxy {EXT} jump mark-for-masquerade
add rule ip kube-proxy {EXT} goto {SVC}
add rule ip kube-proxy {ep1} ip saddr 10.244.1.2 jump mark-for-masquerade
add rule ip kube-proxy {ep1} meta l4proto tcp dnat to 10.244.1.2:80
add element ip kube-proxy cluster-ips {{ 10.96.0.100 }}
add element ip kube-proxy service-ips {{ 10.96.0.100 . tcp . 80 : goto {SVC} }}
add element ip kube-proxy service-nodeports {{ tcp . 30000 : goto {EXT} }}
"
    );
    assert_eq!(tx.as_str(), lines(&expected));
}

#[test]
fn service_without_endpoints_gets_reject_elements_only() {
    let mut proxier = proxier_with_empty_table();
    let tx = proxier.sync(&state(&[nginx_service()], &[]));
    let expected = "
add element ip kube-proxy cluster-ips { 10.96.0.100 }
add element ip kube-proxy no-endpoint-services { 10.96.0.100 . tcp . 80 comment \"dev/nginx-service:http\" : goto reject-chain }
add element ip kube-proxy no-endpoint-nodeports { tcp . 30000 comment \"dev/nginx-service:http\" : goto reject-chain }
";
    assert_eq!(tx.as_str(), lines(expected));
    proxier.mark_committed(&tx);

    // Endpoints appear: the reject elements go, the dispatch elements and chains come.
    let tx = proxier.sync(&state(
        &[nginx_service()],
        &[slice("dev", "nginx-service", &SEED_ENDPOINTS[..1])],
    ));
    let text = tx.as_str();
    assert!(
        text.contains(
            "delete element ip kube-proxy no-endpoint-services { 10.96.0.100 . tcp . 80 }\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("delete element ip kube-proxy no-endpoint-nodeports { tcp . 30000 }\n"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "add element ip kube-proxy service-ips {{ 10.96.0.100 . tcp . 80 : goto {SVC} }}\n"
        )),
        "{text}"
    );
    assert!(
        !text.contains("cluster-ips"),
        "the ClusterIP stays in cluster-ips: {text}"
    );
}

fn local_lb_service() -> Service {
    service(json!({
        "metadata": {"namespace": "ns2", "name": "svc2"},
        "spec": {"type": "LoadBalancer", "clusterIP": "172.30.0.42", "externalTrafficPolicy": "Local",
                 "healthCheckNodePort": 30000, "externalIPs": ["192.168.99.22"],
                 "ports": [{"name": "p80", "port": 80, "protocol": "TCP", "nodePort": 3001}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}
    }))
}

fn p80_slice(namespace: &str, service: &str, endpoints: &[(&str, &str)]) -> EndpointSlice {
    let mut slice = slice(namespace, service, endpoints);
    slice.ports.as_mut().unwrap()[0].name = Some("p80".into());
    slice
}

#[test]
fn external_traffic_policy_local_chain_shape() {
    let mut proxier = proxier_with_empty_table();
    let tx = proxier.sync(&state(
        &[local_lb_service()],
        &[p80_slice(
            "ns2",
            "svc2",
            &[("10.180.0.2", NODE), ("10.180.1.2", "other-node")],
        )],
    ));
    let svc = "service-42NFTM6N-ns2/svc2/tcp/p80";
    let local = "local-42NFTM6N-ns2/svc2/tcp/p80";
    let ext = "external-42NFTM6N-ns2/svc2/tcp/p80";
    let ep_local = "endpoint-SGOXE6O3-ns2/svc2/tcp/p80__10.180.0.2/80";
    let ep_remote = "endpoint-CWKA3H5Q-ns2/svc2/tcp/p80__10.180.1.2/80";
    let expected = format!(
        "
add chain ip kube-proxy {svc}
add chain ip kube-proxy {local}
add chain ip kube-proxy {ext}
add chain ip kube-proxy {ep_local}
add chain ip kube-proxy {ep_remote}
add rule ip kube-proxy {svc} ip daddr 172.30.0.42 ip saddr != 10.244.0.0/16 jump mark-for-masquerade
add rule ip kube-proxy {svc} numgen random mod 2 vmap {{ 0 : goto {ep_local} , 1 : goto {ep_remote} }}
add rule ip kube-proxy {local} numgen random mod 1 vmap {{ 0 : goto {ep_local} }}
add rule ip kube-proxy {ext} ip saddr 10.244.0.0/16 goto {svc} comment \"short-circuit pod traffic\"
add rule ip kube-proxy {ext} fib saddr type local jump mark-for-masquerade comment \"masquerade local traffic\"
add rule ip kube-proxy {ext} fib saddr type local goto {svc} comment \"short-circuit local traffic\"
add rule ip kube-proxy {ext} goto {local}
add rule ip kube-proxy {ep_local} ip saddr 10.180.0.2 jump mark-for-masquerade
add rule ip kube-proxy {ep_local} meta l4proto tcp dnat to 10.180.0.2:80
add rule ip kube-proxy {ep_remote} ip saddr 10.180.1.2 jump mark-for-masquerade
add rule ip kube-proxy {ep_remote} meta l4proto tcp dnat to 10.180.1.2:80
add element ip kube-proxy cluster-ips {{ 172.30.0.42 }}
add element ip kube-proxy service-ips {{ 172.30.0.42 . tcp . 80 : goto {svc} }}
add element ip kube-proxy service-ips {{ 192.168.99.22 . tcp . 80 : goto {ext} }}
add element ip kube-proxy service-ips {{ 1.2.3.4 . tcp . 80 : goto {ext} }}
add element ip kube-proxy service-nodeports {{ tcp . 3001 : goto {ext} }}
"
    );
    assert_eq!(tx.as_str(), lines(&expected));
    proxier.mark_committed(&tx);

    // The local endpoint goes away: external clients are dropped, pods and the host still
    // short-circuit to the Cluster endpoints.
    let tx = proxier.sync(&state(
        &[local_lb_service()],
        &[p80_slice("ns2", "svc2", &[("10.180.1.2", "other-node")])],
    ));
    let expected = format!(
        "
flush chain ip kube-proxy {svc}
add rule ip kube-proxy {svc} ip daddr 172.30.0.42 ip saddr != 10.244.0.0/16 jump mark-for-masquerade
add rule ip kube-proxy {svc} numgen random mod 1 vmap {{ 0 : goto {ep_remote} }}
flush chain ip kube-proxy {ext}
add rule ip kube-proxy {ext} ip saddr 10.244.0.0/16 goto {svc} comment \"short-circuit pod traffic\"
add rule ip kube-proxy {ext} fib saddr type local jump mark-for-masquerade comment \"masquerade local traffic\"
add rule ip kube-proxy {ext} fib saddr type local goto {svc} comment \"short-circuit local traffic\"
add element ip kube-proxy no-endpoint-services {{ 192.168.99.22 . tcp . 80 comment \"ns2/svc2:p80\" : drop }}
add element ip kube-proxy no-endpoint-services {{ 1.2.3.4 . tcp . 80 comment \"ns2/svc2:p80\" : drop }}
add element ip kube-proxy no-endpoint-nodeports {{ tcp . 3001 comment \"ns2/svc2:p80\" : drop }}
flush chain ip kube-proxy {local}
flush chain ip kube-proxy {ep_local}
"
    );
    assert_eq!(tx.as_str(), lines(&expected));
}

#[test]
fn internal_traffic_policy_local_without_local_endpoints_drops() {
    let svc = service(json!({
        "metadata": {"namespace": "ns1", "name": "svc1"},
        "spec": {"clusterIP": "172.30.0.41", "internalTrafficPolicy": "Local",
                 "ports": [{"name": "p80", "port": 80, "protocol": "TCP"}]}
    }));
    let mut proxier = proxier_with_empty_table();
    let tx = proxier.sync(&state(
        &[svc],
        &[p80_slice("ns1", "svc1", &[("10.180.1.1", "other-node")])],
    ));
    let expected = "
add element ip kube-proxy cluster-ips { 172.30.0.41 }
add element ip kube-proxy no-endpoint-services { 172.30.0.41 . tcp . 80 comment \"ns1/svc1:p80\" : drop }
";
    assert_eq!(tx.as_str(), lines(expected));
}

#[test]
fn client_ip_affinity_sets_and_rules() {
    let svc = service(json!({
        "metadata": {"namespace": "ns5", "name": "svc5"},
        "spec": {"clusterIP": "172.30.0.45", "sessionAffinity": "ClientIP",
                 "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}},
                 "ports": [{"name": "p80", "port": 80, "protocol": "TCP"}]}
    }));
    let mut proxier = proxier_with_empty_table();
    let tx = proxier.sync(&state(
        &[svc],
        &[p80_slice("ns5", "svc5", &[("10.180.0.3", "n")])],
    ));
    let chain = "service-HVFWP5L3-ns5/svc5/tcp/p80";
    let ep = "endpoint-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80";
    let set = "affinity-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80";
    let expected = format!(
        "
add set ip kube-proxy {set} {{ type ipv4_addr ; flags dynamic,timeout ; timeout 10800s ; }}
add chain ip kube-proxy {chain}
add chain ip kube-proxy {ep}
add rule ip kube-proxy {chain} ip daddr 172.30.0.45 ip saddr != 10.244.0.0/16 jump mark-for-masquerade
add rule ip kube-proxy {chain} ip saddr @{set} goto {ep}
add rule ip kube-proxy {chain} numgen random mod 1 vmap {{ 0 : goto {ep} }}
add rule ip kube-proxy {ep} ip saddr 10.180.0.3 jump mark-for-masquerade
add rule ip kube-proxy {ep} update @{set} {{ ip saddr }}
add rule ip kube-proxy {ep} meta l4proto tcp dnat to 10.180.0.3:80
add element ip kube-proxy cluster-ips {{ 172.30.0.45 }}
add element ip kube-proxy service-ips {{ 172.30.0.45 . tcp . 80 : goto {chain} }}
"
    );
    assert_eq!(tx.as_str(), lines(&expected));
    proxier.mark_committed(&tx);

    // Without endpoints the affinity set is deleted once the chains using it are flushed.
    let svc = service(json!({
        "metadata": {"namespace": "ns5", "name": "svc5"},
        "spec": {"clusterIP": "172.30.0.45", "sessionAffinity": "ClientIP",
                 "ports": [{"name": "p80", "port": 80, "protocol": "TCP"}]}
    }));
    let tx = proxier.sync(&state(&[svc], &[]));
    let expected = format!(
        "
delete element ip kube-proxy service-ips {{ 172.30.0.45 . tcp . 80 }}
add element ip kube-proxy no-endpoint-services {{ 172.30.0.45 . tcp . 80 comment \"ns5/svc5:p80\" : goto reject-chain }}
flush chain ip kube-proxy {chain}
flush chain ip kube-proxy {ep}
delete set ip kube-proxy {set}
"
    );
    assert_eq!(tx.as_str(), lines(&expected));
}

#[test]
fn load_balancer_source_ranges_use_a_firewall_chain() {
    let svc = service(json!({
        "metadata": {"namespace": "ns5", "name": "svc5"},
        "spec": {"type": "LoadBalancer", "clusterIP": "172.30.0.45", "externalTrafficPolicy": "Cluster",
                 "loadBalancerSourceRanges": [" 203.0.113.0/25", "172.18.0.0/16"],
                 "ports": [{"name": "p80", "port": 80, "protocol": "TCP", "nodePort": 3002}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "5.6.7.8"}]}}
    }));
    let mut proxier = proxier_with_empty_table();
    let tx = proxier.sync(&state(
        &[svc],
        &[p80_slice("ns5", "svc5", &[("10.180.0.3", "n")])],
    ));
    let text = tx.as_str();
    let fw = "firewall-HVFWP5L3-ns5/svc5/tcp/p80";
    // 172.18.0.0/16 holds the node address, so traffic from the VIP itself is allowed too.
    for line in [
        format!("add chain ip kube-proxy {fw}\n"),
        format!("add rule ip kube-proxy {fw} ip saddr != {{ 203.0.113.0/25 , 172.18.0.0/16 , 5.6.7.8 }} drop\n"),
        format!("add element ip kube-proxy firewall-ips {{ 5.6.7.8 . tcp . 80 : goto {fw} }}\n"),
        "add element ip kube-proxy service-ips { 5.6.7.8 . tcp . 80 : goto external-HVFWP5L3-ns5/svc5/tcp/p80 }\n".to_string(),
        "add element ip kube-proxy service-nodeports { tcp . 3002 : goto external-HVFWP5L3-ns5/svc5/tcp/p80 }\n".to_string(),
    ] {
        assert!(text.contains(&line), "missing {line}in:\n{text}");
    }
}

#[test]
fn a_failure_makes_the_next_sync_rebuild_the_table() {
    let desired = state(
        &[nginx_service()],
        &[slice("dev", "nginx-service", &SEED_ENDPOINTS)],
    );
    let mut proxier = NftProxier::new();
    commit(&mut proxier, &desired);
    let _lost = proxier.sync(&desired);
    proxier.mark_failed();
    assert!(proxier.needs_full_sync());
    let tx = proxier.sync(&desired);
    assert!(tx.is_full_resync());
    assert!(tx
        .as_str()
        .starts_with("add table ip kube-proxy\ndelete table ip kube-proxy\n"));
    assert!(tx
        .as_str()
        .contains(&format!("add chain ip kube-proxy {SVC}\n")));
}

#[test]
fn committing_an_outdated_transaction_forces_a_full_resync() {
    let desired = state(&[nginx_service()], &[]);
    let mut proxier = NftProxier::new();
    let first = proxier.sync(&desired);
    let second = proxier.sync(&desired);
    proxier.mark_committed(&second);
    proxier.mark_committed(&first);
    assert!(proxier.needs_full_sync());
}

#[test]
fn all_addresses_accept_node_ports_with_a_zero_cidr() {
    let config = ProxyConfig {
        nodeport_addresses: kubeport_proxy_model::NodePortAddresses::Cidrs(vec!["0.0.0.0/0"
            .parse()
            .unwrap()]),
        ..config()
    };
    let desired = compute([&nginx_service()], &Default::default(), &node(), &config);
    let tx = NftProxier::new().sync(&desired);
    let text = tx.as_str();
    assert!(!text.contains("nodeport-ips"), "{text}");
    assert!(text.contains("add rule ip kube-proxy services fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports\n"));
    assert!(text.contains("add rule ip kube-proxy nodeport-endpoints-check ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @no-endpoint-nodeports\n"));
    nft_check(&tx);
}

fn dual_stack_state() -> ProxyState {
    let svc = service(json!({
        "metadata": {"namespace": "ns1", "name": "svc1"},
        "spec": {"type": "NodePort", "clusterIP": "172.30.0.41", "clusterIPs": ["172.30.0.41", "fd00:172:30::41"],
                 "sessionAffinity": "ClientIP",
                 "ports": [{"name": "p80", "port": 80, "protocol": "TCP", "nodePort": 3001}]}
    }));
    let v4 = p80_slice("ns1", "svc1", &[("10.180.0.1", NODE)]);
    let mut v6 = p80_slice("ns1", "svc1", &[("fd00:10:180::1", NODE)]);
    v6.address_type = "IPv6".into();
    v6.metadata.name = Some("svc1-v6".into());
    let config = ProxyConfig {
        cluster_cidrs: vec![
            "10.244.0.0/16".parse().unwrap(),
            "fd00:10::/48".parse().unwrap(),
        ],
        service_cidrs: vec![
            "172.30.0.0/16".parse().unwrap(),
            "fd00:172:30::/108".parse().unwrap(),
        ],
        ..ProxyConfig::default()
    };
    let node = NodeInfo {
        ips: vec![
            "172.18.0.3".parse().unwrap(),
            "fc00:f853::3".parse().unwrap(),
        ],
        ..node()
    };
    compute(
        [&svc],
        &EndpointSliceCache::from_slices([&v4, &v6]).endpoints_map(),
        &node,
        &config,
    )
}

#[test]
fn ipv6_services_get_an_ip6_table() {
    let tx = NftProxier::new().sync(&dual_stack_state());
    let text = tx.as_str();
    let ep6 = "endpoint-ZVRFLKHO-ns1/svc1/tcp/p80__fd00.10.180..1/80";
    for line in [
        "add table ip6 kube-proxy { comment \"rules for kube-proxy\" ; }\n".to_string(),
        "add set ip6 kube-proxy cluster-ips { type ipv6_addr ; comment \"Active ClusterIPs\" ; }\n".to_string(),
        "add element ip6 kube-proxy nodeport-ips { fc00:f853::3 }\n".to_string(),
        "add rule ip6 kube-proxy cluster-ips-check ip6 daddr { fd00:172:30::/108 } drop comment \"Drop traffic to unallocated ClusterIPs\"\n".to_string(),
        "add rule ip6 kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80 ip6 daddr fd00:172:30::41 ip6 saddr != fd00:10::/48 jump mark-for-masquerade\n".to_string(),
        "add set ip6 kube-proxy affinity-ZVRFLKHO-ns1/svc1/tcp/p80__fd00.10.180..1/80 { type ipv6_addr ; flags dynamic,timeout ; timeout 10800s ; }\n".to_string(),
        format!("add rule ip6 kube-proxy {ep6} update @affinity-ZVRFLKHO-ns1/svc1/tcp/p80__fd00.10.180..1/80 {{ ip6 saddr }}\n"),
        format!("add rule ip6 kube-proxy {ep6} meta l4proto tcp dnat to [fd00:10:180::1]:80\n"),
        "add element ip6 kube-proxy service-ips { fd00:172:30::41 . tcp . 80 : goto service-ULMVA6XW-ns1/svc1/tcp/p80 }\n".to_string(),
        "add element ip kube-proxy service-ips { 172.30.0.41 . tcp . 80 : goto service-ULMVA6XW-ns1/svc1/tcp/p80 }\n".to_string(),
    ] {
        assert!(text.contains(&line), "missing {line}in:\n{text}");
    }
    nft_check(&tx);
}

#[test]
fn cleanup_removes_both_tables_even_when_absent() {
    assert_eq!(
        cleanup_transaction(),
        "add table ip kube-proxy\ndelete table ip kube-proxy\nadd table ip6 kube-proxy\ndelete table ip6 kube-proxy\n"
    );
}

// ---- validation with the real nft ----

/// `nft -c` needs CAP_NET_ADMIN; a trivial check tells whether it is usable here.
fn nft_usable() -> bool {
    match Nft::new().check(&cleanup_transaction()) {
        Ok(()) => true,
        Err(err) => {
            eprintln!("SKIP: nft validation unavailable: {err}");
            false
        }
    }
}

fn nft_check(tx: &Transaction) {
    if !nft_usable() {
        return;
    }
    if let Err(err) = Nft::new().check(tx.as_str()) {
        panic!("nft -c rejected the transaction: {err}\n{tx}");
    }
}

static FILE_COUNTER: AtomicUsize = AtomicUsize::new(0);

fn write_temp(text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "kubeport-nft-test-{}-{}.nft",
        std::process::id(),
        FILE_COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::write(&path, text).expect("write transaction file");
    path
}

/// Applies transactions in order inside a fresh network namespace (nothing on the host is
/// touched) and returns `nft list ruleset`, or `None` when namespaces or nft are unavailable.
fn apply_in_netns(transactions: &[&Transaction]) -> Option<String> {
    if !nft_usable() {
        return None;
    }
    let usable = Command::new("unshare")
        .args(["-n", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !usable {
        eprintln!("SKIP: applying in a network namespace: `unshare -n` is not available");
        return None;
    }
    let files: Vec<PathBuf> = transactions
        .iter()
        .map(|tx| write_temp(tx.as_str()))
        .collect();
    let output = Command::new("unshare")
        .args([
            "-n",
            "sh",
            "-c",
            "for f in \"$@\"; do nft -f \"$f\" || exit 1; done; nft list ruleset",
            "sh",
        ])
        .args(&files)
        .output()
        .expect("run unshare");
    for file in files {
        let _ = std::fs::remove_file(file);
    }
    assert!(
        output.status.success(),
        "nft refused a transaction: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        transactions
            .iter()
            .map(|tx| tx.as_str())
            .collect::<Vec<_>>()
            .join("\n---\n")
    );
    Some(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[test]
fn incremental_transactions_apply_in_sequence_in_a_network_namespace() {
    let mut proxier = NftProxier::new();
    let mut txs = Vec::new();
    let seven = {
        let mut endpoints = SEED_ENDPOINTS.to_vec();
        endpoints.push(("10.244.1.10", NODE));
        endpoints
    };
    let states = [
        state(
            &[nginx_service()],
            &[slice("dev", "nginx-service", &SEED_ENDPOINTS)],
        ),
        state(&[nginx_service()], &[slice("dev", "nginx-service", &seven)]),
        state(
            &[nginx_service(), local_lb_service()],
            &[
                slice("dev", "nginx-service", &seven),
                p80_slice("ns2", "svc2", &[("10.180.0.2", NODE)]),
            ],
        ),
        state(
            &[local_lb_service()],
            &[p80_slice("ns2", "svc2", &[("10.180.1.2", "other-node")])],
        ),
        state(&[local_lb_service()], &[]),
        state(&[], &[]),
        state(&[], &[]),
    ];
    for desired in &states {
        txs.push(commit(&mut proxier, desired));
    }
    let ds = commit(&mut proxier, &dual_stack_state());
    txs.push(ds);
    let refs: Vec<&Transaction> = txs.iter().collect();
    let Some(ruleset) = apply_in_netns(&refs) else {
        return;
    };
    assert!(ruleset.contains("table ip kube-proxy"), "{ruleset}");
    assert!(ruleset.contains("table ip6 kube-proxy"), "{ruleset}");
    assert!(
        !ruleset.contains("nginx-service"),
        "stale chains were deleted: {ruleset}"
    );
    assert!(
        !ruleset.contains("ns2/svc2"),
        "stale chains were deleted: {ruleset}"
    );
    assert!(
        ruleset.contains("chain service-ULMVA6XW-ns1/svc1/tcp/p80"),
        "{ruleset}"
    );
}

#[test]
fn full_resync_over_an_existing_table_applies() {
    let desired = state(
        &[nginx_service(), local_lb_service()],
        &[slice("dev", "nginx-service", &SEED_ENDPOINTS)],
    );
    let mut proxier = NftProxier::new();
    let first = commit(&mut proxier, &desired);
    proxier.mark_failed();
    let second = commit(&mut proxier, &state(&[nginx_service()], &[]));
    let Some(ruleset) = apply_in_netns(&[&first, &second]) else {
        return;
    };
    assert!(!ruleset.contains("svc2"), "{ruleset}");
    assert!(
        ruleset.contains(
            "10.96.0.100 . tcp . 80 comment \"dev/nginx-service:http\" : goto reject-chain"
        ),
        "{ruleset}"
    );
}
