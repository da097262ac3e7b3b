use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kubeport_proxy_model::{
    compute, ClusterIpMasquerade, EndpointSliceCache, EndpointsChangeTracker, Frontend,
    FrontendKind, HealthCheckService, IpFamily, NamespacedName, NodeInfo, NodePortAddresses,
    NodePortTargets, ObjectChange, Protocol, ProxyConfig, ProxyState, ServiceChangeTracker,
    ServicePortName, ServicePortState, SessionAffinity, TopologyMode, TrafficTarget,
};
use serde_json::{json, Value};

fn service(value: Value) -> Service {
    serde_json::from_value(value).expect("valid Service")
}

fn slice(value: Value) -> EndpointSlice {
    serde_json::from_value(value).expect("valid EndpointSlice")
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// dev/nginx-service from seed 001: NodePort 30000, port `http` 80 -> 80.
fn nginx_service() -> Service {
    service(json!({
        "metadata": {"namespace": "dev", "name": "nginx-service"},
        "spec": {
            "type": "NodePort",
            "clusterIP": "10.96.0.100",
            "clusterIPs": ["10.96.0.100"],
            "externalTrafficPolicy": "Cluster",
            "internalTrafficPolicy": "Cluster",
            "sessionAffinity": "None",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 80, "nodePort": 30000}]
        }
    }))
}

/// An endpoint entry of a slice.
fn ep(address: &str, node: &str) -> Value {
    json!({"addresses": [address], "nodeName": node, "conditions": {"ready": true, "serving": true, "terminating": false}})
}

fn http_slice(namespace: &str, service: &str, name: &str, endpoints: Vec<Value>) -> EndpointSlice {
    slice(json!({
        "metadata": {"namespace": namespace, "name": name, "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]
    }))
}

fn worker_node() -> NodeInfo {
    NodeInfo {
        name: "service-demo-worker".into(),
        ips: vec![ip("172.18.0.3"), ip("172.18.0.30")],
        labels: BTreeMap::from([(
            "topology.kubernetes.io/zone".to_string(),
            "zone-a".to_string(),
        )]),
    }
}

fn config() -> ProxyConfig {
    ProxyConfig {
        cluster_cidrs: vec!["10.244.0.0/16".parse().unwrap()],
        service_cidrs: vec!["10.96.0.0/12".parse().unwrap()],
        ..ProxyConfig::default()
    }
}

fn http_name(namespace: &str, service: &str) -> ServicePortName {
    ServicePortName::new(namespace, service, "http", Protocol::Tcp)
}

fn only_port(state: &ProxyState) -> &ServicePortState {
    assert_eq!(state.service_ports.len(), 1, "{:#?}", state.service_ports);
    &state.service_ports[0]
}

fn addrs(endpoints: &[kubeport_proxy_model::Endpoint]) -> Vec<String> {
    endpoints.iter().map(|e| e.addr_string()).collect()
}

fn compute_one(
    svc: &Service,
    slices: &[EndpointSlice],
    node: &NodeInfo,
    config: &ProxyConfig,
) -> ProxyState {
    let cache = EndpointSliceCache::from_slices(slices);
    compute([svc], &cache.endpoints_map(), node, config)
}

#[test]
fn service_port_name_renders_like_kube_proxy() {
    assert_eq!(
        http_name("dev", "nginx-service").to_string(),
        "dev/nginx-service:http"
    );
    assert_eq!(
        ServicePortName::new("ns1", "svc1", "", Protocol::Udp).to_string(),
        "ns1/svc1"
    );
}

#[test]
fn endpoints_are_deduplicated_and_sorted_by_ip_port_string() {
    let terminating_copy = json!({"addresses": ["10.244.1.2"], "nodeName": "w1",
        "conditions": {"ready": false, "serving": true, "terminating": true}});
    let slices = vec![
        http_slice(
            "dev",
            "web",
            "web-a",
            vec![ep("10.244.1.2", "w1"), ep("10.244.1.10", "w1")],
        ),
        http_slice(
            "dev",
            "web",
            "web-b",
            vec![terminating_copy, ep("10.244.0.9", "w2")],
        ),
    ];
    let map = EndpointSliceCache::from_slices(&slices).endpoints_map();
    let list = &map[&http_name("dev", "web")];
    assert_eq!(
        addrs(list),
        ["10.244.0.9:80", "10.244.1.10:80", "10.244.1.2:80"]
    );
    let duplicate = list
        .iter()
        .find(|e| e.addr_string() == "10.244.1.2:80")
        .unwrap();
    assert!(
        duplicate.ready && !duplicate.terminating,
        "non-terminating copy kept"
    );
}

#[test]
fn missing_conditions_mean_ready_serving_not_terminating() {
    let slices = vec![http_slice(
        "dev",
        "web",
        "web-a",
        vec![json!({"addresses": ["10.244.1.5"]})],
    )];
    let map = EndpointSliceCache::from_slices(&slices).endpoints_map();
    let endpoint = &map[&http_name("dev", "web")][0];
    assert!(endpoint.ready && endpoint.serving && !endpoint.terminating);
    assert_eq!(endpoint.node_name, None);
}

#[test]
fn slices_without_service_label_or_with_ignored_labels_are_skipped() {
    let unlabelled = slice(json!({
        "metadata": {"namespace": "dev", "name": "orphan"},
        "addressType": "IPv4", "endpoints": [ep("10.244.1.2", "w1")],
        "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]
    }));
    let other_proxy = slice(json!({
        "metadata": {"namespace": "dev", "name": "other-abc", "labels": {
            "kubernetes.io/service-name": "other", "service.kubernetes.io/service-proxy-name": "cilium"}},
        "addressType": "IPv4", "endpoints": [ep("10.244.1.3", "w1")],
        "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]
    }));
    let headless = slice(json!({
        "metadata": {"namespace": "dev", "name": "db-abc", "labels": {
            "kubernetes.io/service-name": "db", "service.kubernetes.io/headless": ""}},
        "addressType": "IPv4", "endpoints": [ep("10.244.1.4", "w1")],
        "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]
    }));
    let mut cache = EndpointSliceCache::new();
    assert_eq!(cache.update(&unlabelled), None);
    assert_eq!(cache.update(&other_proxy), None);
    assert_eq!(cache.update(&headless), None);
    assert!(cache.endpoints_map().is_empty());
}

#[test]
fn headless_external_name_and_foreign_proxy_services_are_ignored() {
    let headless = service(json!({
        "metadata": {"namespace": "dev", "name": "db"},
        "spec": {"clusterIP": "None", "ports": [{"port": 5432}]}
    }));
    let external_name = service(json!({
        "metadata": {"namespace": "dev", "name": "ext"},
        "spec": {"type": "ExternalName", "externalName": "example.com", "clusterIP": "10.96.0.7", "ports": [{"port": 80}]}
    }));
    let foreign = service(json!({
        "metadata": {"namespace": "dev", "name": "foreign", "labels": {"service.kubernetes.io/service-proxy-name": "other"}},
        "spec": {"clusterIP": "10.96.0.8", "ports": [{"port": 80}]}
    }));
    let state = compute(
        [&headless, &external_name, &foreign],
        &Default::default(),
        &worker_node(),
        &config(),
    );
    assert!(state.service_ports.is_empty());
}

#[test]
fn nodeport_service_with_cluster_policy() {
    let endpoints: Vec<Value> = ["10.244.1.2", "10.244.1.3", "10.244.1.4"]
        .iter()
        .map(|a| ep(a, "service-demo-worker"))
        .chain(
            ["10.244.2.2", "10.244.2.3", "10.244.2.4"]
                .iter()
                .map(|a| ep(a, "service-demo-worker2")),
        )
        .collect();
    let state = compute_one(
        &nginx_service(),
        &[http_slice(
            "dev",
            "nginx-service",
            "nginx-service-x7k2p",
            endpoints,
        )],
        &worker_node(),
        &config(),
    );
    let port = only_port(&state);
    assert_eq!(port.info.name, http_name("dev", "nginx-service"));
    assert_eq!(port.info.family, IpFamily::V4);
    assert_eq!(
        port.frontends,
        vec![
            Frontend {
                kind: FrontendKind::ClusterIp,
                ip: ip("10.96.0.100"),
                port: 80,
                protocol: Protocol::Tcp
            },
            Frontend {
                kind: FrontendKind::NodePort,
                ip: ip("172.18.0.3"),
                port: 30000,
                protocol: Protocol::Tcp
            },
        ]
    );
    let all = [
        "10.244.1.2:80",
        "10.244.1.3:80",
        "10.244.1.4:80",
        "10.244.2.2:80",
        "10.244.2.3:80",
        "10.244.2.4:80",
    ];
    assert_eq!(addrs(&port.cluster_endpoints), all);
    assert_eq!(addrs(&port.reachable_endpoints), all);
    assert!(
        port.local_endpoints.is_empty(),
        "Cluster policies never use local endpoints"
    );
    assert!(port.has_endpoints);
    assert_eq!(port.internal_target, TrafficTarget::ClusterEndpoints);
    assert_eq!(port.external_target, Some(TrafficTarget::ClusterEndpoints));
    assert!(port.masquerade_external);
    assert_eq!(
        port.cluster_ip_masquerade,
        ClusterIpMasquerade::NotFrom(vec!["10.244.0.0/16".parse().unwrap()])
    );
    assert_eq!(port.local_ready_endpoints, 3);
    assert_eq!(port.info.session_affinity, SessionAffinity::None);
    assert!(state.health_checks.is_empty());
    assert_eq!(state.masquerade_mark, 0x4000);
}

fn local_lb_service() -> Service {
    service(json!({
        "metadata": {"namespace": "dev", "name": "web"},
        "spec": {
            "type": "LoadBalancer", "clusterIP": "10.96.0.50", "clusterIPs": ["10.96.0.50"],
            "externalTrafficPolicy": "Local", "healthCheckNodePort": 32000,
            "externalIPs": ["192.168.99.11"],
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080}]
        },
        "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}, {"ip": "5.6.7.8", "ipMode": "Proxy"}]}}
    }))
}

#[test]
fn external_traffic_policy_local_uses_local_endpoints_for_external_traffic() {
    let slices = [http_slice(
        "dev",
        "web",
        "web-1",
        vec![
            ep("10.244.1.7", "service-demo-worker"),
            ep("10.244.2.7", "service-demo-worker2"),
        ],
    )];
    let state = compute_one(&local_lb_service(), &slices, &worker_node(), &config());
    let port = only_port(&state);
    assert_eq!(
        addrs(&port.cluster_endpoints),
        ["10.244.1.7:80", "10.244.2.7:80"]
    );
    assert_eq!(addrs(&port.local_endpoints), ["10.244.1.7:80"]);
    assert_eq!(port.internal_target, TrafficTarget::ClusterEndpoints);
    assert_eq!(port.external_target, Some(TrafficTarget::LocalEndpoints));
    assert!(!port.masquerade_external);
    assert_eq!(
        port.info.load_balancer_ips,
        vec![ip("1.2.3.4")],
        "Proxy-mode ingress IPs are not VIPs"
    );
    assert!(port.frontends.contains(&Frontend {
        kind: FrontendKind::LoadBalancer,
        ip: ip("1.2.3.4"),
        port: 80,
        protocol: Protocol::Tcp
    }));
    assert!(port.frontends.contains(&Frontend {
        kind: FrontendKind::ExternalIp,
        ip: ip("192.168.99.11"),
        port: 80,
        protocol: Protocol::Tcp
    }));
    assert_eq!(
        state.health_checks,
        vec![HealthCheckService {
            service: NamespacedName::new("dev", "web"),
            node_port: 32000,
            local_endpoints: 1
        }]
    );

    // Endpoints only on another node: external traffic from outside is dropped, the Service
    // still has endpoints (pods and the host short-circuit to the Cluster endpoints).
    let remote_only = [http_slice(
        "dev",
        "web",
        "web-1",
        vec![ep("10.244.2.7", "service-demo-worker2")],
    )];
    let state = compute_one(&local_lb_service(), &remote_only, &worker_node(), &config());
    let port = only_port(&state);
    assert!(port.has_endpoints && !port.has_local_endpoints);
    assert_eq!(port.external_target, Some(TrafficTarget::Drop));
    assert_eq!(port.internal_target, TrafficTarget::ClusterEndpoints);
    assert_eq!(state.health_checks[0].local_endpoints, 0);
}

#[test]
fn internal_traffic_policy_local() {
    let svc = service(json!({
        "metadata": {"namespace": "dev", "name": "web"},
        "spec": {"clusterIP": "10.96.0.51", "internalTrafficPolicy": "Local",
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}
    }));
    let slices = [http_slice(
        "dev",
        "web",
        "web-1",
        vec![
            ep("10.244.1.7", "service-demo-worker"),
            ep("10.244.2.7", "service-demo-worker2"),
        ],
    )];
    let state = compute_one(&svc, &slices, &worker_node(), &config());
    let port = only_port(&state);
    assert!(
        port.cluster_endpoints.is_empty(),
        "ClusterIP-only ITP Local never uses Cluster endpoints"
    );
    assert_eq!(addrs(&port.local_endpoints), ["10.244.1.7:80"]);
    assert_eq!(addrs(&port.reachable_endpoints), ["10.244.1.7:80"]);
    assert_eq!(port.internal_target, TrafficTarget::LocalEndpoints);
    assert_eq!(port.external_target, None);

    let remote_only = [http_slice(
        "dev",
        "web",
        "web-1",
        vec![ep("10.244.2.7", "service-demo-worker2")],
    )];
    let port = compute_one(&svc, &remote_only, &worker_node(), &config())
        .service_ports
        .remove(0);
    assert!(port.has_endpoints);
    assert_eq!(port.internal_target, TrafficTarget::Drop);
}

#[test]
fn client_ip_affinity_with_and_without_timeout() {
    let with_timeout = service(json!({
        "metadata": {"namespace": "dev", "name": "sticky"},
        "spec": {"clusterIP": "10.96.0.60", "sessionAffinity": "ClientIP",
                 "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 600}},
                 "ports": [{"name": "http", "port": 80}]}
    }));
    let port = compute_one(&with_timeout, &[], &worker_node(), &config())
        .service_ports
        .remove(0);
    assert_eq!(
        port.info.session_affinity,
        SessionAffinity::ClientIp {
            timeout_seconds: 600
        }
    );

    let defaulted = service(json!({
        "metadata": {"namespace": "dev", "name": "sticky"},
        "spec": {"clusterIP": "10.96.0.60", "sessionAffinity": "ClientIP", "ports": [{"name": "http", "port": 80}]}
    }));
    let port = compute_one(&defaulted, &[], &worker_node(), &config())
        .service_ports
        .remove(0);
    assert_eq!(
        port.info.session_affinity,
        SessionAffinity::ClientIp {
            timeout_seconds: 10800
        }
    );
}

fn conditions(address: &str, node: &str, ready: bool, serving: bool, terminating: bool) -> Value {
    json!({"addresses": [address], "nodeName": node,
           "conditions": {"ready": ready, "serving": serving, "terminating": terminating}})
}

#[test]
fn terminating_endpoints_are_used_only_when_no_endpoint_is_ready() {
    let svc = nginx_service();
    let name = "nginx-service";
    // Only terminating endpoints: the serving ones are used, the non-serving one is not.
    let slices = [http_slice(
        "dev",
        name,
        "s1",
        vec![
            conditions("10.244.1.2", "service-demo-worker", false, true, true),
            conditions("10.244.1.3", "service-demo-worker", false, false, true),
            conditions("10.244.2.2", "service-demo-worker2", false, true, true),
        ],
    )];
    let port = compute_one(&svc, &slices, &worker_node(), &config())
        .service_ports
        .remove(0);
    assert_eq!(
        addrs(&port.cluster_endpoints),
        ["10.244.1.2:80", "10.244.2.2:80"]
    );
    assert!(port.has_endpoints);
    assert_eq!(
        port.local_ready_endpoints, 0,
        "terminating endpoints do not count for health checks"
    );

    // One Ready endpoint: terminating ones are not used any more.
    let slices = [http_slice(
        "dev",
        name,
        "s1",
        vec![
            conditions("10.244.1.2", "service-demo-worker", false, true, true),
            conditions("10.244.2.5", "service-demo-worker2", true, true, false),
        ],
    )];
    let port = compute_one(&svc, &slices, &worker_node(), &config())
        .service_ports
        .remove(0);
    assert_eq!(addrs(&port.cluster_endpoints), ["10.244.2.5:80"]);

    // Not ready, not serving: no endpoints at all.
    let slices = [http_slice(
        "dev",
        name,
        "s1",
        vec![conditions(
            "10.244.1.2",
            "service-demo-worker",
            false,
            false,
            false,
        )],
    )];
    let port = compute_one(&svc, &slices, &worker_node(), &config())
        .service_ports
        .remove(0);
    assert!(!port.has_endpoints);
    assert_eq!(port.internal_target, TrafficTarget::Reject);
}

#[test]
fn local_fallback_to_terminating_is_independent_of_cluster() {
    // ETP Local: the local endpoint is terminating while a remote one is ready.
    let slices = [http_slice(
        "dev",
        "web",
        "web-1",
        vec![
            conditions("10.244.1.7", "service-demo-worker", false, true, true),
            conditions("10.244.2.7", "service-demo-worker2", true, true, false),
        ],
    )];
    let port = compute_one(&local_lb_service(), &slices, &worker_node(), &config())
        .service_ports
        .remove(0);
    assert_eq!(addrs(&port.cluster_endpoints), ["10.244.2.7:80"]);
    assert_eq!(addrs(&port.local_endpoints), ["10.244.1.7:80"]);
    assert_eq!(
        addrs(&port.reachable_endpoints),
        ["10.244.1.7:80", "10.244.2.7:80"]
    );
    assert_eq!(port.external_target, Some(TrafficTarget::LocalEndpoints));
}

fn hinted(address: &str, node: &str, zones: &[&str]) -> Value {
    let zones: Vec<Value> = zones.iter().map(|z| json!({"name": z})).collect();
    json!({"addresses": [address], "nodeName": node, "conditions": {"ready": true},
           "hints": {"forZones": zones}})
}

#[test]
fn topology_hints_prefer_the_node_zone() {
    let svc = nginx_service();
    let slices = [http_slice(
        "dev",
        "nginx-service",
        "s1",
        vec![
            hinted("10.244.1.2", "service-demo-worker", &["zone-a"]),
            hinted("10.244.2.2", "service-demo-worker2", &["zone-b"]),
            hinted("10.244.3.2", "service-demo-worker3", &["zone-a"]),
        ],
    )];
    let port = compute_one(&svc, &slices, &worker_node(), &config())
        .service_ports
        .remove(0);
    assert_eq!(port.topology_mode, Some(TopologyMode::PreferSameZone));
    assert_eq!(
        addrs(&port.cluster_endpoints),
        ["10.244.1.2:80", "10.244.3.2:80"]
    );

    // One Ready endpoint without hints: hints are ignored.
    let slices = [http_slice(
        "dev",
        "nginx-service",
        "s1",
        vec![
            hinted("10.244.1.2", "service-demo-worker", &["zone-a"]),
            ep("10.244.2.2", "service-demo-worker2"),
        ],
    )];
    let port = compute_one(&svc, &slices, &worker_node(), &config())
        .service_ports
        .remove(0);
    assert_eq!(port.topology_mode, Some(TopologyMode::None));
    assert_eq!(port.cluster_endpoints.len(), 2);

    // No endpoint hinted for this node's zone: hints are ignored.
    let slices = [http_slice(
        "dev",
        "nginx-service",
        "s1",
        vec![
            hinted("10.244.2.2", "service-demo-worker2", &["zone-b"]),
            hinted("10.244.3.2", "service-demo-worker3", &["zone-c"]),
        ],
    )];
    let port = compute_one(&svc, &slices, &worker_node(), &config())
        .service_ports
        .remove(0);
    assert_eq!(port.topology_mode, Some(TopologyMode::None));
    assert_eq!(port.cluster_endpoints.len(), 2);
}

#[test]
fn node_hints_need_the_feature_gate() {
    let with_node_hints = |address: &str, node: &str| {
        json!({"addresses": [address], "nodeName": node, "conditions": {"ready": true},
               "hints": {"forNodes": [{"name": node}], "forZones": [{"name": "zone-a"}]}})
    };
    let slices = [http_slice(
        "dev",
        "nginx-service",
        "s1",
        vec![
            with_node_hints("10.244.1.2", "service-demo-worker"),
            with_node_hints("10.244.2.2", "service-demo-worker2"),
        ],
    )];
    let gated = ProxyConfig {
        prefer_same_node_hints: true,
        ..config()
    };
    let port = compute_one(&nginx_service(), &slices, &worker_node(), &gated)
        .service_ports
        .remove(0);
    assert_eq!(port.topology_mode, Some(TopologyMode::PreferSameNode));
    assert_eq!(addrs(&port.cluster_endpoints), ["10.244.1.2:80"]);

    let port = compute_one(&nginx_service(), &slices, &worker_node(), &config())
        .service_ports
        .remove(0);
    assert_eq!(port.topology_mode, Some(TopologyMode::PreferSameZone));
    assert_eq!(port.cluster_endpoints.len(), 2);
}

#[test]
fn service_without_endpoints_rejects_everywhere() {
    let state = compute_one(&local_lb_service(), &[], &worker_node(), &config());
    let port = only_port(&state);
    assert!(!port.has_endpoints && !port.has_local_endpoints);
    assert!(port.cluster_endpoints.is_empty() && port.reachable_endpoints.is_empty());
    assert_eq!(port.internal_target, TrafficTarget::Reject);
    assert_eq!(port.external_target, Some(TrafficTarget::Reject));
    assert_eq!(state.health_checks[0].local_endpoints, 0);
}

#[test]
fn nodeport_address_selection() {
    let node = NodeInfo {
        name: "n1".into(),
        ips: vec![
            ip("192.168.0.2"),
            ip("192.168.1.2"),
            ip("10.0.0.5"),
            ip("fd00::2"),
        ],
        labels: BTreeMap::new(),
    };
    let primary = compute([], &Default::default(), &node, &ProxyConfig::default());
    assert_eq!(
        primary.family(IpFamily::V4).node_ports,
        NodePortTargets::Addresses(vec![ip("192.168.0.2")])
    );
    assert_eq!(
        primary.family(IpFamily::V6).node_ports,
        NodePortTargets::Addresses(vec![ip("fd00::2")])
    );

    let cidrs = ProxyConfig {
        nodeport_addresses: NodePortAddresses::Cidrs(vec!["192.168.0.0/16".parse().unwrap()]),
        ..ProxyConfig::default()
    };
    let state = compute([], &Default::default(), &node, &cidrs);
    assert_eq!(
        state.family(IpFamily::V4).node_ports,
        NodePortTargets::Addresses(vec![ip("192.168.0.2"), ip("192.168.1.2")])
    );
    // No IPv6 CIDR given: every IPv6 address accepts NodePorts (kube-proxy's rule).
    assert_eq!(
        state.family(IpFamily::V6).node_ports,
        NodePortTargets::AllLocalAddresses
    );

    let all = ProxyConfig {
        nodeport_addresses: NodePortAddresses::Cidrs(vec![
            "0.0.0.0/0".parse().unwrap(),
            "fd00::/64".parse().unwrap(),
        ]),
        ..ProxyConfig::default()
    };
    let svc = nginx_service();
    let state = compute([&svc], &Default::default(), &node, &all);
    assert_eq!(
        state.family(IpFamily::V4).node_ports,
        NodePortTargets::AllLocalAddresses
    );
    let nodeports: Vec<IpAddr> = state.service_ports[0]
        .frontends
        .iter()
        .filter(|f| f.kind == FrontendKind::NodePort)
        .map(|f| f.ip)
        .collect();
    assert_eq!(
        nodeports,
        vec![ip("10.0.0.5"), ip("192.168.0.2"), ip("192.168.1.2")]
    );
}

#[test]
fn masquerade_all_and_no_detector() {
    let svc = nginx_service();
    let all = ProxyConfig {
        masquerade_all: true,
        ..config()
    };
    let port = compute([&svc], &Default::default(), &worker_node(), &all)
        .service_ports
        .remove(0);
    assert_eq!(port.cluster_ip_masquerade, ClusterIpMasquerade::All);
    let none = ProxyConfig {
        cluster_cidrs: vec![],
        ..config()
    };
    let port = compute([&svc], &Default::default(), &worker_node(), &none)
        .service_ports
        .remove(0);
    assert_eq!(port.cluster_ip_masquerade, ClusterIpMasquerade::Never);
}

#[test]
fn dual_stack_service_yields_one_port_per_family() {
    let svc = service(json!({
        "metadata": {"namespace": "dev", "name": "ds"},
        "spec": {"clusterIP": "10.96.0.70", "clusterIPs": ["10.96.0.70", "fd00:96::70"],
                 "ipFamilies": ["IPv4", "IPv6"], "externalIPs": ["192.168.99.1", "2001:db8::1"],
                 "ports": [{"name": "http", "port": 80}]}
    }));
    let v4 = http_slice("dev", "ds", "ds-v4", vec![ep("10.244.1.2", "w1")]);
    let v6 = slice(json!({
        "metadata": {"namespace": "dev", "name": "ds-v6", "labels": {"kubernetes.io/service-name": "ds"}},
        "addressType": "IPv6", "endpoints": [ep("fd00:244::2", "w1")],
        "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]
    }));
    let state = compute_one(&svc, &[v4, v6], &worker_node(), &config());
    assert_eq!(state.service_ports.len(), 2);
    let (p4, p6) = (&state.service_ports[0], &state.service_ports[1]);
    assert_eq!(
        (p4.info.family, p4.info.cluster_ip),
        (IpFamily::V4, ip("10.96.0.70"))
    );
    assert_eq!(
        (p6.info.family, p6.info.cluster_ip),
        (IpFamily::V6, ip("fd00:96::70"))
    );
    assert_eq!(p4.info.external_ips, vec![ip("192.168.99.1")]);
    assert_eq!(p6.info.external_ips, vec![ip("2001:db8::1")]);
    assert_eq!(addrs(&p4.cluster_endpoints), ["10.244.1.2:80"]);
    assert_eq!(addrs(&p6.cluster_endpoints), ["[fd00:244::2]:80"]);
}

#[test]
fn source_ranges_are_trimmed_and_masked() {
    let svc = service(json!({
        "metadata": {"namespace": "dev", "name": "lb"},
        "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.80", "externalTrafficPolicy": "Cluster",
                 "loadBalancerSourceRanges": [" 203.0.113.7/25", "2001:db8::/32"],
                 "ports": [{"name": "http", "port": 80, "nodePort": 30081}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "5.6.7.8"}]}}
    }));
    let port = compute([&svc], &Default::default(), &worker_node(), &config())
        .service_ports
        .remove(0);
    assert_eq!(
        port.info.load_balancer_source_ranges,
        vec!["203.0.113.0/25".parse::<ipnet::IpNet>().unwrap()]
    );
}

#[test]
fn service_tracker_accumulates_and_cancels_changes() {
    let mut tracker = ServiceChangeTracker::new();
    assert!(tracker.apply(ObjectChange::Added(nginx_service())));
    assert_eq!(
        tracker.take().into_iter().collect::<Vec<_>>(),
        vec![NamespacedName::new("dev", "nginx-service")]
    );
    assert_eq!(tracker.pending_count(), 0);

    // A label change does not matter to the proxy.
    let mut relabelled = nginx_service();
    relabelled.metadata.labels = Some(BTreeMap::from([("team".to_string(), "a".to_string())]));
    assert!(!tracker.apply(ObjectChange::Modified(relabelled)));

    // A change reverted before the next sync cancels out.
    let mut moved = nginx_service();
    moved.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].node_port = Some(30001);
    assert!(tracker.apply(ObjectChange::Modified(moved)));
    assert!(!tracker.apply(ObjectChange::Modified(nginx_service())));
    assert!(tracker.take().is_empty());

    assert!(tracker.apply(ObjectChange::Deleted(nginx_service())));
    assert_eq!(tracker.take().len(), 1);
    assert_eq!(tracker.services().count(), 0);
}

#[test]
fn endpoints_tracker_reports_changed_services_and_trigger_times() {
    let mut tracker = EndpointsChangeTracker::new();
    let mut first = http_slice("dev", "web", "web-1", vec![ep("10.244.1.2", "w1")]);
    first.metadata.annotations = Some(BTreeMap::from([(
        "endpoints.kubernetes.io/last-change-trigger-time".to_string(),
        "2024-05-01T10:00:00.5Z".to_string(),
    )]));
    assert!(tracker.apply(ObjectChange::Added(first.clone())));
    // The same content again is no change.
    assert!(tracker.apply(ObjectChange::Modified(first.clone())));
    let changes = tracker.take();
    assert_eq!(changes.services.len(), 1);
    assert_eq!(
        changes.last_change_trigger_times[&NamespacedName::new("dev", "web")],
        vec!["2024-05-01T10:00:00.5Z".to_string()]
    );
    assert!(!tracker.apply(ObjectChange::Modified(first.clone())));

    // The endpoint moves to another slice (added there first, then removed from the old one):
    // the merged endpoints never change.
    let second = http_slice("dev", "web", "web-2", vec![ep("10.244.1.2", "w1")]);
    assert!(!tracker.apply(ObjectChange::Added(second)));
    assert!(!tracker.apply(ObjectChange::Deleted(first)));
    assert!(tracker.take().services.is_empty());
    assert_eq!(
        addrs(&tracker.endpoints()[&http_name("dev", "web")]),
        ["10.244.1.2:80"]
    );
}

#[test]
fn compute_is_deterministic_and_sorted() {
    let b = service(json!({"metadata": {"namespace": "b", "name": "svc"},
        "spec": {"clusterIP": "10.96.0.2", "ports": [{"name": "z", "port": 2}, {"name": "a", "port": 1}]}}));
    let a = service(json!({"metadata": {"namespace": "a", "name": "svc"},
        "spec": {"clusterIP": "10.96.0.1", "ports": [{"port": 1, "protocol": "UDP"}]}}));
    let first = compute([&b, &a], &Default::default(), &worker_node(), &config());
    let second = compute([&a, &b], &Default::default(), &worker_node(), &config());
    assert_eq!(first, second);
    let names: Vec<String> = first
        .service_ports
        .iter()
        .map(|p| p.info.name.to_string())
        .collect();
    assert_eq!(names, ["a/svc", "b/svc:a", "b/svc:z"]);
}

#[test]
fn endpoint_moving_back_and_forth_between_slices_cancels_out() {
    let mut tracker = EndpointsChangeTracker::new();
    let first = http_slice("dev", "web", "web-1", vec![ep("10.244.1.2", "w1")]);
    tracker.apply(ObjectChange::Added(first.clone()));
    tracker.take();
    // Removed from its slice first, then added to another one: pending after the first event,
    // back to the synced content after the second.
    let emptied = http_slice("dev", "web", "web-1", vec![]);
    assert!(tracker.apply(ObjectChange::Modified(emptied)));
    let second = http_slice("dev", "web", "web-2", vec![ep("10.244.1.2", "w1")]);
    assert!(!tracker.apply(ObjectChange::Added(second)));
    assert!(tracker.take().services.is_empty());
}

#[test]
fn fqdn_slices_and_unknown_slices_are_ignored() {
    let fqdn = slice(json!({
        "metadata": {"namespace": "dev", "name": "ext-1", "labels": {"kubernetes.io/service-name": "ext"}},
        "addressType": "FQDN", "endpoints": [{"addresses": ["example.com"]}],
        "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]
    }));
    let map = EndpointSliceCache::from_slices([&fqdn]).endpoints_map();
    assert!(map.is_empty());
    let mut tracker = EndpointsChangeTracker::new();
    assert!(!tracker.apply(ObjectChange::Deleted(http_slice(
        "dev",
        "web",
        "never-seen",
        vec![]
    ))));
}
