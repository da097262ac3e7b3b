//! Resolver tests: objects as the API server serves them → the records a client would see,
//! printed the way `dig` prints them.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{DNSClass, Name, RecordType};
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;

use crate::resolver::{Answer, PodRecords, Resolver, ResolverConfig};
use crate::snapshot::Snapshot;

const SERIAL: u32 = 1_700_000_000;
const SOA: &str =
    "cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1700000000 7200 1800 86400 5";

fn namespace(name: &str) -> Namespace {
    serde_json::from_value(json!({"metadata": {"name": name}})).unwrap()
}

fn service(ns: &str, name: &str, spec: serde_json::Value) -> Service {
    serde_json::from_value(json!({"metadata": {"namespace": ns, "name": name}, "spec": spec}))
        .unwrap()
}

fn slice(ns: &str, service: &str, name: &str, body: serde_json::Value) -> EndpointSlice {
    let mut value = json!({
        "metadata": {
            "namespace": ns,
            "name": name,
            "labels": {"kubernetes.io/service-name": service},
        },
        "addressType": "IPv4",
        "endpoints": [],
    });
    for (key, field) in body.as_object().unwrap() {
        value[key] = field.clone();
    }
    serde_json::from_value(value).unwrap()
}

fn pod(ns: &str, name: &str, ip: &str, extra_spec: serde_json::Value) -> Pod {
    let mut spec = json!({"containers": [{"name": "c", "image": "busybox"}]});
    for (key, field) in extra_spec.as_object().unwrap() {
        spec[key] = field.clone();
    }
    serde_json::from_value(json!({
        "metadata": {"namespace": ns, "name": name},
        "spec": spec,
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]},
    }))
    .unwrap()
}

/// Seed 001/002's Services plus headless, ExternalName, dual-stack and DNS Services.
fn cluster() -> (Vec<Namespace>, Vec<Service>, Vec<EndpointSlice>, Vec<Pod>) {
    let namespaces = ["default", "dev", "kube-system", "empty"]
        .into_iter()
        .map(namespace)
        .collect();
    let services = vec![
        service(
            "default",
            "node-port",
            json!({
                "type": "NodePort", "clusterIP": "10.101.179.255", "clusterIPs": ["10.101.179.255"],
                "ports": [{"name": "node-port", "protocol": "TCP", "port": 8080, "targetPort": 80, "nodePort": 30001}],
                "selector": {"app": "nginx-dep"},
            }),
        ),
        service(
            "dev",
            "nginx-service",
            json!({
                "clusterIP": "10.96.120.7", "clusterIPs": ["10.96.120.7"],
                "ports": [
                    {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 80},
                    {"name": "dns", "protocol": "UDP", "port": 53, "targetPort": 5353},
                ],
            }),
        ),
        service(
            "default",
            "unnamed",
            json!({"clusterIP": "10.96.0.44", "ports": [{"protocol": "TCP", "port": 9000}]}),
        ),
        service(
            "default",
            "dual",
            json!({
                "clusterIP": "10.96.7.7", "clusterIPs": ["10.96.7.7", "fd00:10:96::7"],
                "ports": [{"name": "http", "protocol": "TCP", "port": 80}],
            }),
        ),
        service(
            "default",
            "headless",
            json!({"clusterIP": "None", "ports": [{"name": "web", "protocol": "TCP", "port": 80}]}),
        ),
        service(
            "default",
            "headless-empty",
            json!({"clusterIP": "None", "ports": [{"name": "web", "protocol": "TCP", "port": 80}]}),
        ),
        service(
            "default",
            "database",
            json!({"type": "ExternalName", "externalName": "my.database.example.com"}),
        ),
        service(
            "default",
            "alias",
            json!({"type": "ExternalName", "externalName": "nginx-service.dev.svc.cluster.local."}),
        ),
        service(
            "default",
            "loop-a",
            json!({"type": "ExternalName", "externalName": "loop-b.default.svc.cluster.local"}),
        ),
        service(
            "default",
            "loop-b",
            json!({"type": "ExternalName", "externalName": "loop-a.default.svc.cluster.local"}),
        ),
        service(
            "kube-system",
            "kube-dns",
            json!({
                "clusterIP": "10.96.0.10",
                "ports": [
                    {"name": "dns", "protocol": "UDP", "port": 53},
                    {"name": "dns-tcp", "protocol": "TCP", "port": 53},
                ],
            }),
        ),
    ];
    let slices = vec![
        slice(
            "default",
            "headless",
            "headless-abc",
            json!({
                "ports": [{"name": "web", "protocol": "TCP", "port": 8080}],
                "endpoints": [
                    {"addresses": ["10.244.1.5"], "hostname": "web-0", "conditions": {"ready": true}},
                    {"addresses": ["10.244.2.6"], "hostname": "web-1", "conditions": {"ready": true}},
                    {"addresses": ["10.244.1.9"], "conditions": {}},
                    {"addresses": ["10.244.2.99"], "hostname": "web-2", "conditions": {"ready": false}},
                ],
            }),
        ),
        // The same endpoint in a second slice (slices overlap while they are rebalanced).
        slice(
            "default",
            "headless",
            "headless-def",
            json!({
                "ports": [{"name": "web", "protocol": "TCP", "port": 8080}],
                "endpoints": [{"addresses": ["10.244.1.5"], "hostname": "web-0"}],
            }),
        ),
        slice(
            "default",
            "headless-empty",
            "headless-empty-abc",
            json!({"endpoints": [{"addresses": ["10.244.3.3"], "conditions": {"ready": false}}]}),
        ),
        slice(
            "default",
            "node-port",
            "node-port-abc",
            json!({
                "ports": [{"name": "node-port", "protocol": "TCP", "port": 80}],
                "endpoints": [
                    {"addresses": ["192.168.69.246"], "conditions": {"ready": true}},
                    {"addresses": ["192.168.79.106"], "conditions": {"ready": true}},
                ],
            }),
        ),
        slice(
            "default",
            "gone",
            "gone-abc",
            json!({"endpoints": [{"addresses": ["10.244.9.9"]}]}),
        ),
        slice(
            "default",
            "headless",
            "headless-fqdn",
            json!({"addressType": "FQDN", "endpoints": [{"addresses": ["example.com"]}]}),
        ),
    ];
    let pods = vec![
        pod("default", "client", "10.244.1.77", json!({})),
        pod(
            "default",
            "web-0",
            "10.244.1.5",
            json!({"hostname": "web-0", "subdomain": "headless"}),
        ),
        pod(
            "kube-system",
            "hostnet",
            "172.18.0.2",
            json!({"hostNetwork": true}),
        ),
        pod("dev", "v6", "fd00:10:244::5", json!({})),
    ];
    (namespaces, services, slices, pods)
}

fn snapshot() -> Snapshot {
    let (namespaces, services, slices, pods) = cluster();
    Snapshot::build(&namespaces, &services, &slices, &pods, SERIAL)
}

fn resolver() -> Resolver {
    Resolver::new(ResolverConfig::new("cluster.local")).unwrap()
}

fn ask_with(resolver: &Resolver, snapshot: &Snapshot, name: &str, qtype: RecordType) -> Answer {
    resolver.resolve(
        snapshot,
        &Name::from_ascii(name).unwrap(),
        qtype,
        DNSClass::IN,
    )
}

fn ask(name: &str, qtype: RecordType) -> Answer {
    ask_with(&resolver(), &snapshot(), name, qtype)
}

fn lines(records: &[hickory_proto::rr::Record]) -> Vec<String> {
    records.iter().map(ToString::to_string).collect()
}

fn sorted(records: &[hickory_proto::rr::Record]) -> Vec<String> {
    let mut lines = lines(records);
    lines.sort();
    lines
}

#[track_caller]
fn assert_answer(answer: &Answer, expected: &[&str]) {
    assert_eq!(answer.response_code, ResponseCode::NoError, "{answer:?}");
    assert!(answer.authoritative);
    assert_eq!(lines(&answer.answers), expected);
    assert!(answer.authorities.is_empty(), "{answer:?}");
}

#[track_caller]
fn assert_nxdomain(answer: &Answer) {
    assert_eq!(answer.response_code, ResponseCode::NXDomain, "{answer:?}");
    assert!(answer.authoritative);
    assert!(answer.answers.is_empty(), "{answer:?}");
    assert_eq!(lines(&answer.authorities), [SOA]);
}

#[track_caller]
fn assert_nodata(answer: &Answer) {
    assert_eq!(answer.response_code, ResponseCode::NoError, "{answer:?}");
    assert!(answer.authoritative);
    assert!(answer.answers.is_empty(), "{answer:?}");
    assert_eq!(lines(&answer.authorities), [SOA]);
}

#[test]
fn seed_002_fqdn_resolves_to_the_cluster_ip() {
    assert_answer(
        &ask("node-port.default.svc.cluster.local.", RecordType::A),
        &["node-port.default.svc.cluster.local. 5 IN A 10.101.179.255"],
    );
    assert_answer(
        &ask("nginx-service.dev.svc.cluster.local.", RecordType::A),
        &["nginx-service.dev.svc.cluster.local. 5 IN A 10.96.120.7"],
    );
}

#[test]
fn matching_ignores_case_and_the_answer_keeps_the_question_case() {
    assert_answer(
        &ask("Nginx-Service.DEV.svc.Cluster.Local.", RecordType::A),
        &["Nginx-Service.DEV.svc.Cluster.Local. 5 IN A 10.96.120.7"],
    );
}

#[test]
fn search_list_expansions_of_a_qualified_name_are_nxdomain() {
    // resolv.conf: search default.svc.cluster.local svc.cluster.local cluster.local, ndots:5.
    for name in [
        "node-port.default.svc.cluster.local.default.svc.cluster.local.",
        "node-port.default.svc.cluster.local.svc.cluster.local.",
        "node-port.default.svc.cluster.local.cluster.local.",
        "nginx-service.dev.default.svc.cluster.local.",
    ] {
        assert_nxdomain(&ask(name, RecordType::A));
        assert_nxdomain(&ask(name, RecordType::AAAA));
    }
    // What the search list produces for a short name in another namespace.
    assert_answer(
        &ask("nginx-service.dev.svc.cluster.local.", RecordType::A),
        &["nginx-service.dev.svc.cluster.local. 5 IN A 10.96.120.7"],
    );
}

#[test]
fn a_family_the_service_lacks_is_nodata_with_the_soa() {
    assert_nodata(&ask(
        "node-port.default.svc.cluster.local.",
        RecordType::AAAA,
    ));
    assert_nodata(&ask("node-port.default.svc.cluster.local.", RecordType::MX));
}

#[test]
fn dual_stack_services_answer_both_families() {
    assert_answer(
        &ask("dual.default.svc.cluster.local.", RecordType::A),
        &["dual.default.svc.cluster.local. 5 IN A 10.96.7.7"],
    );
    assert_answer(
        &ask("dual.default.svc.cluster.local.", RecordType::AAAA),
        &["dual.default.svc.cluster.local. 5 IN AAAA fd00:10:96::7"],
    );
}

#[test]
fn unknown_names_in_the_cluster_domain_are_nxdomain_and_existing_parents_nodata() {
    assert_nxdomain(&ask("missing.default.svc.cluster.local.", RecordType::A));
    assert_nxdomain(&ask("node-port.nowhere.svc.cluster.local.", RecordType::A));
    assert_nxdomain(&ask("nowhere.svc.cluster.local.", RecordType::A));
    assert_nxdomain(&ask("node-port.default.cluster.local.", RecordType::A));
    assert_nxdomain(&ask(
        "x.node-port.default.svc.cluster.local.",
        RecordType::A,
    ));
    assert_nxdomain(&ask(
        "a.b.c.node-port.default.svc.cluster.local.",
        RecordType::A,
    ));
    // Existing namespaces (even without Services), svc, pod and the apex exist.
    assert_nodata(&ask("empty.svc.cluster.local.", RecordType::A));
    assert_nodata(&ask("dev.svc.cluster.local.", RecordType::A));
    assert_nodata(&ask("svc.cluster.local.", RecordType::A));
    assert_nodata(&ask("pod.cluster.local.", RecordType::A));
    assert_nodata(&ask("cluster.local.", RecordType::A));
}

#[test]
fn apex_soa_ns_and_name_server_address() {
    assert_answer(&ask("cluster.local.", RecordType::SOA), &[SOA]);
    let ns = ask("cluster.local.", RecordType::NS);
    assert_eq!(
        lines(&ns.answers),
        ["cluster.local. 5 IN NS ns.dns.cluster.local."]
    );
    assert_eq!(
        lines(&ns.additionals),
        ["ns.dns.cluster.local. 5 IN A 10.96.0.10"]
    );
    assert_answer(
        &ask("ns.dns.cluster.local.", RecordType::A),
        &["ns.dns.cluster.local. 5 IN A 10.96.0.10"],
    );
}

#[test]
fn schema_version_txt() {
    assert_answer(
        &ask("dns-version.cluster.local.", RecordType::TXT),
        &["dns-version.cluster.local. 28800 IN TXT 1.1.0"],
    );
}

#[test]
fn srv_for_a_named_port_points_at_the_service_with_its_address_as_additional() {
    let answer = ask(
        "_http._tcp.nginx-service.dev.svc.cluster.local.",
        RecordType::SRV,
    );
    assert_answer(
        &answer,
        &["_http._tcp.nginx-service.dev.svc.cluster.local. 5 IN SRV 0 100 80 nginx-service.dev.svc.cluster.local."],
    );
    assert_eq!(
        lines(&answer.additionals),
        ["nginx-service.dev.svc.cluster.local. 5 IN A 10.96.120.7"]
    );
    assert_answer(
        &ask("_dns._udp.nginx-service.dev.svc.cluster.local.", RecordType::SRV),
        &["_dns._udp.nginx-service.dev.svc.cluster.local. 5 IN SRV 0 100 53 nginx-service.dev.svc.cluster.local."],
    );
    assert_answer(
        &ask("_node-port._tcp.node-port.default.svc.cluster.local.", RecordType::SRV),
        &["_node-port._tcp.node-port.default.svc.cluster.local. 5 IN SRV 0 100 8080 node-port.default.svc.cluster.local."],
    );
    // Wrong protocol or name: no such record.
    assert_nxdomain(&ask(
        "_http._udp.nginx-service.dev.svc.cluster.local.",
        RecordType::SRV,
    ));
    assert_nxdomain(&ask(
        "_https._tcp.nginx-service.dev.svc.cluster.local.",
        RecordType::SRV,
    ));
    // The port name exists, other types are NODATA; `_tcp.<svc>` is an empty non-terminal.
    assert_nodata(&ask(
        "_http._tcp.nginx-service.dev.svc.cluster.local.",
        RecordType::A,
    ));
    assert_nodata(&ask(
        "_tcp.nginx-service.dev.svc.cluster.local.",
        RecordType::SRV,
    ));
    assert_nxdomain(&ask(
        "_sctp.nginx-service.dev.svc.cluster.local.",
        RecordType::SRV,
    ));
}

#[test]
fn srv_on_the_service_name_lists_every_port() {
    let answer = ask("nginx-service.dev.svc.cluster.local.", RecordType::SRV);
    assert_answer(
        &answer,
        &[
            "nginx-service.dev.svc.cluster.local. 5 IN SRV 0 50 80 nginx-service.dev.svc.cluster.local.",
            "nginx-service.dev.svc.cluster.local. 5 IN SRV 0 50 53 nginx-service.dev.svc.cluster.local.",
        ],
    );
    // An unnamed port is reachable this way only.
    assert_answer(
        &ask("unnamed.default.svc.cluster.local.", RecordType::SRV),
        &["unnamed.default.svc.cluster.local. 5 IN SRV 0 100 9000 unnamed.default.svc.cluster.local."],
    );
}

#[test]
fn headless_services_resolve_to_ready_endpoints() {
    let answer = ask("headless.default.svc.cluster.local.", RecordType::A);
    assert_eq!(answer.response_code, ResponseCode::NoError);
    // Ready (and unset readiness) endpoints, each address once; not the unready web-2.
    assert_eq!(
        sorted(&answer.answers),
        [
            "headless.default.svc.cluster.local. 5 IN A 10.244.1.5",
            "headless.default.svc.cluster.local. 5 IN A 10.244.1.9",
            "headless.default.svc.cluster.local. 5 IN A 10.244.2.6",
        ]
    );
    assert_answer(
        &ask("web-0.headless.default.svc.cluster.local.", RecordType::A),
        &["web-0.headless.default.svc.cluster.local. 5 IN A 10.244.1.5"],
    );
    // No hostname: the system-assigned one is the dashed address.
    assert_answer(
        &ask(
            "10-244-1-9.headless.default.svc.cluster.local.",
            RecordType::A,
        ),
        &["10-244-1-9.headless.default.svc.cluster.local. 5 IN A 10.244.1.9"],
    );
    assert_nxdomain(&ask(
        "web-2.headless.default.svc.cluster.local.",
        RecordType::A,
    ));
    // The spec: no ready endpoints → NXDOMAIN.
    assert_nxdomain(&ask(
        "headless-empty.default.svc.cluster.local.",
        RecordType::A,
    ));
}

#[test]
fn headless_srv_lists_each_ready_endpoint_with_its_address() {
    let answer = ask(
        "_web._tcp.headless.default.svc.cluster.local.",
        RecordType::SRV,
    );
    assert_eq!(answer.response_code, ResponseCode::NoError);
    assert_eq!(
        sorted(&answer.answers),
        [
            "_web._tcp.headless.default.svc.cluster.local. 5 IN SRV 0 33 8080 10-244-1-9.headless.default.svc.cluster.local.",
            "_web._tcp.headless.default.svc.cluster.local. 5 IN SRV 0 33 8080 web-0.headless.default.svc.cluster.local.",
            "_web._tcp.headless.default.svc.cluster.local. 5 IN SRV 0 33 8080 web-1.headless.default.svc.cluster.local.",
        ]
    );
    assert_eq!(
        sorted(&answer.additionals),
        [
            "10-244-1-9.headless.default.svc.cluster.local. 5 IN A 10.244.1.9",
            "web-0.headless.default.svc.cluster.local. 5 IN A 10.244.1.5",
            "web-1.headless.default.svc.cluster.local. 5 IN A 10.244.2.6",
        ]
    );
}

#[test]
fn cluster_ip_services_also_name_their_endpoints() {
    assert_answer(
        &ask(
            "192-168-69-246.node-port.default.svc.cluster.local.",
            RecordType::A,
        ),
        &["192-168-69-246.node-port.default.svc.cluster.local. 5 IN A 192.168.69.246"],
    );
}

#[test]
fn external_name_is_a_cname_not_followed_outside_the_cluster() {
    let answer = ask("database.default.svc.cluster.local.", RecordType::A);
    assert_answer(
        &answer,
        &["database.default.svc.cluster.local. 5 IN CNAME my.database.example.com."],
    );
    assert_answer(
        &ask("database.default.svc.cluster.local.", RecordType::CNAME),
        &["database.default.svc.cluster.local. 5 IN CNAME my.database.example.com."],
    );
    // Inside the cluster domain the alias is followed.
    assert_answer(
        &ask("alias.default.svc.cluster.local.", RecordType::A),
        &[
            "alias.default.svc.cluster.local. 5 IN CNAME nginx-service.dev.svc.cluster.local.",
            "nginx-service.dev.svc.cluster.local. 5 IN A 10.96.120.7",
        ],
    );
    // A loop ends after each name was visited once.
    let looped = ask("loop-a.default.svc.cluster.local.", RecordType::A);
    assert_eq!(
        lines(&looped.answers),
        [
            "loop-a.default.svc.cluster.local. 5 IN CNAME loop-b.default.svc.cluster.local.",
            "loop-b.default.svc.cluster.local. 5 IN CNAME loop-a.default.svc.cluster.local.",
        ]
    );
}

#[test]
fn ptr_for_cluster_ips_endpoints_and_pods() {
    assert_answer(
        &ask("255.179.101.10.in-addr.arpa.", RecordType::PTR),
        &["255.179.101.10.in-addr.arpa. 5 IN PTR node-port.default.svc.cluster.local."],
    );
    assert_answer(
        &ask("5.1.244.10.in-addr.arpa.", RecordType::PTR),
        &["5.1.244.10.in-addr.arpa. 5 IN PTR web-0.headless.default.svc.cluster.local."],
    );
    assert_answer(
        &ask("246.69.168.192.in-addr.arpa.", RecordType::PTR),
        &["246.69.168.192.in-addr.arpa. 5 IN PTR 192-168-69-246.node-port.default.svc.cluster.local."],
    );
    assert_answer(
        &ask("77.1.244.10.in-addr.arpa.", RecordType::PTR),
        &["77.1.244.10.in-addr.arpa. 5 IN PTR 10-244-1-77.default.pod.cluster.local."],
    );
    let v6 = "5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.4.4.2.0.0.1.0.0.0.0.d.f.ip6.arpa.";
    assert_answer(
        &ask(v6, RecordType::PTR),
        &[&format!(
            "{v6} 5 IN PTR fd00-10-244--5.dev.pod.cluster.local."
        )],
    );
    let v6_service = "7.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa.";
    assert_answer(
        &ask(v6_service, RecordType::PTR),
        &[&format!(
            "{v6_service} 5 IN PTR dual.default.svc.cluster.local."
        )],
    );
}

#[test]
fn unknown_reverse_names_are_nxdomain_with_the_reverse_zone_soa() {
    let reverse_soa = "in-addr.arpa. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1700000000 7200 1800 86400 5";
    for name in [
        "1.1.1.1.in-addr.arpa.",
        "2.0.18.172.in-addr.arpa.", // a host-network Pod: its address is the node's
        "99.2.244.10.in-addr.arpa.", // an unready endpoint with no Pod
        "x.1.244.10.in-addr.arpa.",
        "1.2.3.4.5.in-addr.arpa.",
        "7.7.in-addr.arpa.",
    ] {
        let answer = ask(name, RecordType::PTR);
        assert_eq!(answer.response_code, ResponseCode::NXDomain, "{name}");
        assert_eq!(lines(&answer.authorities), [reverse_soa], "{name}");
    }
    // A prefix of known addresses is an empty non-terminal; a known address without the
    // asked type is NODATA.
    for (name, qtype) in [
        ("96.10.in-addr.arpa.", RecordType::PTR),
        ("255.179.101.10.in-addr.arpa.", RecordType::A),
    ] {
        let answer = ask(name, qtype);
        assert_eq!(answer.response_code, ResponseCode::NoError, "{name}");
        assert!(answer.answers.is_empty());
        assert_eq!(lines(&answer.authorities), [reverse_soa], "{name}");
    }
}

#[test]
fn pod_records_by_mode() {
    let snapshot = snapshot();
    let insecure = resolver();
    assert_answer(
        &ask_with(
            &insecure,
            &snapshot,
            "10-244-1-2.default.pod.cluster.local.",
            RecordType::A,
        ),
        &["10-244-1-2.default.pod.cluster.local. 5 IN A 10.244.1.2"],
    );
    assert_answer(
        &ask_with(
            &insecure,
            &snapshot,
            "fd00-10-244--5.dev.pod.cluster.local.",
            RecordType::AAAA,
        ),
        &["fd00-10-244--5.dev.pod.cluster.local. 5 IN AAAA fd00:10:244::5"],
    );
    assert_nodata(&ask_with(
        &insecure,
        &snapshot,
        "10-244-1-2.default.pod.cluster.local.",
        RecordType::AAAA,
    ));
    assert_nodata(&ask_with(
        &insecure,
        &snapshot,
        "default.pod.cluster.local.",
        RecordType::A,
    ));
    assert_nxdomain(&ask_with(
        &insecure,
        &snapshot,
        "10-244-1-2.nowhere.pod.cluster.local.",
        RecordType::A,
    ));
    assert_nxdomain(&ask_with(
        &insecure,
        &snapshot,
        "10-244-1-300.default.pod.cluster.local.",
        RecordType::A,
    ));
    assert_nxdomain(&ask_with(
        &insecure,
        &snapshot,
        "client.default.pod.cluster.local.",
        RecordType::A,
    ));
    assert_nxdomain(&ask_with(
        &insecure,
        &snapshot,
        "x.10-244-1-2.default.pod.cluster.local.",
        RecordType::A,
    ));

    let verified = Resolver::new(ResolverConfig {
        pod_records: PodRecords::Verified,
        ..ResolverConfig::new("cluster.local")
    })
    .unwrap();
    assert_answer(
        &ask_with(
            &verified,
            &snapshot,
            "10-244-1-77.default.pod.cluster.local.",
            RecordType::A,
        ),
        &["10-244-1-77.default.pod.cluster.local. 5 IN A 10.244.1.77"],
    );
    assert_nxdomain(&ask_with(
        &verified,
        &snapshot,
        "10-244-1-2.default.pod.cluster.local.",
        RecordType::A,
    ));
    assert_nxdomain(&ask_with(
        &verified,
        &snapshot,
        "10-244-1-77.dev.pod.cluster.local.",
        RecordType::A,
    ));

    let disabled = Resolver::new(ResolverConfig {
        pod_records: PodRecords::Disabled,
        ..ResolverConfig::new("cluster.local")
    })
    .unwrap();
    assert_nxdomain(&ask_with(
        &disabled,
        &snapshot,
        "10-244-1-77.default.pod.cluster.local.",
        RecordType::A,
    ));
}

#[test]
fn names_outside_the_cluster_are_refused() {
    for name in ["example.com.", "local.", "cluster.local.example.com.", "."] {
        let answer = ask(name, RecordType::A);
        assert_eq!(answer.response_code, ResponseCode::Refused, "{name}");
        assert!(!answer.authoritative);
        assert!(answer.answers.is_empty() && answer.authorities.is_empty());
    }
    let chaos = resolver().resolve(
        &snapshot(),
        &Name::from_ascii("node-port.default.svc.cluster.local.").unwrap(),
        RecordType::TXT,
        DNSClass::CH,
    );
    assert_eq!(chaos.response_code, ResponseCode::Refused);
}

#[test]
fn another_cluster_domain_and_ttl() {
    let resolver = Resolver::new(ResolverConfig {
        ttl: 30,
        ..ResolverConfig::new("kubeport.test.")
    })
    .unwrap();
    let snapshot = snapshot();
    let answer = ask_with(
        &resolver,
        &snapshot,
        "node-port.default.svc.kubeport.test.",
        RecordType::A,
    );
    assert_eq!(
        lines(&answer.answers),
        ["node-port.default.svc.kubeport.test. 30 IN A 10.101.179.255"]
    );
    let refused = ask_with(
        &resolver,
        &snapshot,
        "node-port.default.svc.cluster.local.",
        RecordType::A,
    );
    assert_eq!(refused.response_code, ResponseCode::Refused);
    let missing = ask_with(
        &resolver,
        &snapshot,
        "missing.default.svc.kubeport.test.",
        RecordType::A,
    );
    assert_eq!(
        lines(&missing.authorities),
        ["kubeport.test. 30 IN SOA ns.dns.kubeport.test. hostmaster.kubeport.test. 1700000000 7200 1800 86400 30"]
    );
    assert!(Resolver::new(ResolverConfig::new("")).is_err());
}

#[test]
fn snapshot_ignores_what_dns_cannot_use() {
    let snapshot = snapshot();
    // A slice whose Service is gone, FQDN slices, Services in namespaces known only through
    // their objects.
    assert!(snapshot
        .owners_of(&"10.244.9.9".parse().unwrap())
        .is_empty());
    let headless = snapshot.service("default", "headless").unwrap();
    let mut hostnames: Vec<&str> = headless
        .endpoints
        .iter()
        .map(|e| e.hostname.as_str())
        .collect();
    hostnames.dedup();
    assert_eq!(hostnames, ["10-244-1-9", "web-0", "web-1"]);
    let only_objects = Snapshot::build(
        &[],
        &cluster().1,
        &[],
        &[pod("lonely", "p", "10.244.5.5", json!({}))],
        SERIAL,
    );
    assert!(only_objects.has_namespace("dev"));
    assert!(only_objects.has_namespace("lonely"));
    assert!(!only_objects.has_namespace("empty"));
    // Finished Pods give their address back.
    let mut finished = pod("default", "done", "10.244.6.6", json!({}));
    finished.status.as_mut().unwrap().phase = Some("Succeeded".into());
    let snapshot = Snapshot::build(&[], &[], &[], &[finished], SERIAL);
    assert!(snapshot
        .owners_of(&"10.244.6.6".parse().unwrap())
        .is_empty());
}
