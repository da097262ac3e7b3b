//! End to end: an in-process API server, objects created through kube-rs, the DNS server on
//! 127.0.0.1:<free port>, and hickory's client asking over UDP and TCP, as a pod's resolver
//! would (every query below is what a pod with `search <ns>.svc.cluster.local svc.cluster.local
//! cluster.local` and `ndots:5` sends).

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::{Duration, Instant};

use hickory_net::client::{Client, ClientHandle};
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::tcp::TcpClientStream;
use hickory_net::udp::UdpClientStream;

use hickory_proto::op::{DnsResponse, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::Api;
use serde_json::json;

struct Lab {
    _dir: tempfile::TempDir,
    server: Option<kubeport_apiserver::RunningServer>,
    client: kube::Client,
}

impl Lab {
    async fn start() -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let mut config = kubeport_apiserver::ServerConfig::new(dir.path().join("data"));
        config.secure_port = 0;
        let server = kubeport_apiserver::start(config).await.expect("API server");
        let kubeconfig = kube::config::Kubeconfig::read_from(&server.admin_kubeconfig).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap();
        let client = kube::Client::try_from(config).unwrap();
        Lab {
            _dir: dir,
            server: Some(server),
            client,
        }
    }

    async fn create<K>(&self, namespace: Option<&str>, object: serde_json::Value) -> K
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + serde::Serialize
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let object: K = serde_json::from_value(object).unwrap();
        let api: Api<K> = Api::namespaced(self.client.clone(), namespace.unwrap_or("default"));
        api.create(&PostParams::default(), &object)
            .await
            .expect("create")
    }

    async fn shutdown(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }
}

async fn udp_client(addr: SocketAddr) -> Client<TokioRuntimeProvider> {
    let stream = UdpClientStream::builder(addr, TokioRuntimeProvider::default())
        .with_timeout(Some(Duration::from_secs(2)))
        .build();
    let (client, background) = Client::<TokioRuntimeProvider>::from_sender(stream);
    tokio::spawn(background);
    client
}

async fn tcp_client(addr: SocketAddr) -> Client<TokioRuntimeProvider> {
    let (connect, sender) = TcpClientStream::new(
        addr,
        None,
        Some(Duration::from_secs(2)),
        TokioRuntimeProvider::default(),
    );
    let (client, background) =
        Client::<TokioRuntimeProvider>::new(connect.await.expect("TCP connect"), sender);
    tokio::spawn(background);
    client
}

async fn query(
    client: &mut Client<TokioRuntimeProvider>,
    name: &str,
    qtype: RecordType,
) -> DnsResponse {
    client
        .query(Name::from_str(name).unwrap(), DNSClass::IN, qtype)
        .await
        .unwrap_or_else(|err| panic!("query {name} {qtype}: {err}"))
}

fn lines(records: &[hickory_proto::rr::Record]) -> Vec<String> {
    let mut lines: Vec<String> = records.iter().map(ToString::to_string).collect();
    lines.sort();
    lines
}

/// Asks until the answer section is `expected` (watches take a moment to arrive).
async fn eventually_answers(
    client: &mut Client<TokioRuntimeProvider>,
    name: &str,
    qtype: RecordType,
    expected: &[String],
) -> DnsResponse {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = query(client, name, qtype).await;
        if lines(&response.answers) == expected {
            return response;
        }
        if Instant::now() > deadline {
            panic!(
                "{name} {qtype}: wanted {expected:?}, still {:?} ({})",
                lines(&response.answers),
                response.metadata.response_code
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn cluster_ip(service: &Service) -> String {
    service.spec.as_ref().unwrap().cluster_ip.clone().unwrap()
}

fn reverse_v4(ip: &str) -> String {
    let mut octets: Vec<&str> = ip.split('.').collect();
    octets.reverse();
    format!("{}.in-addr.arpa.", octets.join("."))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_dns_answers_from_the_api_server() {
    let lab = Lab::start().await;
    let _: Namespace = {
        let api: Api<Namespace> = Api::all(lab.client.clone());
        api.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "dev"}})).unwrap(),
        )
        .await
        .unwrap()
    };

    let dns = kubeport_dns::start(
        lab.client.clone(),
        kubeport_dns::ResolverConfig::new("cluster.local"),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .expect("DNS server");
    tokio::time::timeout(Duration::from_secs(10), dns.wait_synced())
        .await
        .expect("caches listed");
    let addr = dns.local_addr();
    let mut udp = udp_client(addr).await;

    // Seed 002's Service, and seed 001's nginx-service in namespace dev.
    let node_port: Service = lab
        .create(
            None,
            json!({
                "metadata": {"name": "node-port"},
                "spec": {
                    "type": "NodePort",
                    "ports": [{"name": "node-port", "protocol": "TCP", "port": 8080, "targetPort": 80, "nodePort": 30001}],
                    "selector": {"app": "nginx-dep"},
                },
            }),
        )
        .await;
    let nginx: Service = lab
        .create(
            Some("dev"),
            json!({
                "metadata": {"name": "nginx-service"},
                "spec": {
                    "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 80}],
                    "selector": {"app": "nginx"},
                },
            }),
        )
        .await;
    let _: Service = lab
        .create(
            None,
            json!({
                "metadata": {"name": "database"},
                "spec": {"type": "ExternalName", "externalName": "my.database.example.com"},
            }),
        )
        .await;
    let _: Service = lab
        .create(
            None,
            json!({
                "metadata": {"name": "web"},
                "spec": {"clusterIP": "None", "ports": [{"name": "http", "protocol": "TCP", "port": 80}], "selector": {"app": "web"}},
            }),
        )
        .await;
    let _: EndpointSlice = lab
        .create(
            None,
            json!({
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {"name": "web-abc12", "labels": {"kubernetes.io/service-name": "web"}},
                "addressType": "IPv4",
                "ports": [{"name": "http", "protocol": "TCP", "port": 80}],
                "endpoints": [
                    {"addresses": ["10.244.1.10"], "hostname": "web-0", "conditions": {"ready": true}},
                    {"addresses": ["10.244.2.11"], "hostname": "web-1", "conditions": {"ready": true}},
                    {"addresses": ["10.244.2.12"], "hostname": "web-2", "conditions": {"ready": false}},
                ],
            }),
        )
        .await;
    let pods: Api<Pod> = Api::namespaced(lab.client.clone(), "default");
    let _: Pod = lab
        .create(
            None,
            json!({
                "metadata": {"name": "test-pod"},
                "spec": {"containers": [{"name": "centos", "image": "centos:latest"}]},
            }),
        )
        .await;
    pods.patch_status(
        "test-pod",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Running", "podIP": "10.244.1.20", "podIPs": [{"ip": "10.244.1.20"}]}})),
    )
    .await
    .unwrap();

    // A: seed 002's URL host, and seed 001's Service from another namespace.
    let node_port_ip = cluster_ip(&node_port);
    let response = eventually_answers(
        &mut udp,
        "node-port.default.svc.cluster.local.",
        RecordType::A,
        &[format!(
            "node-port.default.svc.cluster.local. 5 IN A {node_port_ip}"
        )],
    )
    .await;
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert!(response.metadata.authoritative);
    let nginx_ip = cluster_ip(&nginx);
    eventually_answers(
        &mut udp,
        "nginx-service.dev.svc.cluster.local.",
        RecordType::A,
        &[format!(
            "nginx-service.dev.svc.cluster.local. 5 IN A {nginx_ip}"
        )],
    )
    .await;

    // The search list's first tries for the already qualified name: NXDOMAIN with the SOA.
    let expanded = query(
        &mut udp,
        "node-port.default.svc.cluster.local.default.svc.cluster.local.",
        RecordType::A,
    )
    .await;
    assert_eq!(expanded.metadata.response_code, ResponseCode::NXDomain);
    let soa = lines(&expanded.authorities);
    assert_eq!(soa.len(), 1);
    assert!(
        soa[0].starts_with(
            "cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. "
        ),
        "{soa:?}"
    );
    assert!(soa[0].ends_with(" 7200 1800 86400 5"), "{soa:?}");

    // No AAAA for an IPv4 Service: NODATA.
    let aaaa = query(
        &mut udp,
        "node-port.default.svc.cluster.local.",
        RecordType::AAAA,
    )
    .await;
    assert_eq!(aaaa.metadata.response_code, ResponseCode::NoError);
    assert!(aaaa.answers.is_empty());
    assert_eq!(aaaa.authorities.len(), 1);

    // SRV for the named port, with the Service's address as additional.
    let srv = query(
        &mut udp,
        "_http._tcp.nginx-service.dev.svc.cluster.local.",
        RecordType::SRV,
    )
    .await;
    assert_eq!(
        lines(&srv.answers),
        ["_http._tcp.nginx-service.dev.svc.cluster.local. 5 IN SRV 0 100 80 nginx-service.dev.svc.cluster.local."]
    );
    assert_eq!(
        lines(&srv.additionals),
        [format!(
            "nginx-service.dev.svc.cluster.local. 5 IN A {nginx_ip}"
        )]
    );

    // PTR for a ClusterIP and for a pod IP.
    let ptr = query(&mut udp, &reverse_v4(&node_port_ip), RecordType::PTR).await;
    assert_eq!(
        lines(&ptr.answers),
        [format!(
            "{} 5 IN PTR node-port.default.svc.cluster.local.",
            reverse_v4(&node_port_ip)
        )]
    );
    eventually_answers(
        &mut udp,
        "20.1.244.10.in-addr.arpa.",
        RecordType::PTR,
        &["20.1.244.10.in-addr.arpa. 5 IN PTR 10-244-1-20.default.pod.cluster.local.".to_string()],
    )
    .await;
    let pod_a = query(
        &mut udp,
        "10-244-1-20.default.pod.cluster.local.",
        RecordType::A,
    )
    .await;
    assert_eq!(
        lines(&pod_a.answers),
        ["10-244-1-20.default.pod.cluster.local. 5 IN A 10.244.1.20"]
    );

    // ExternalName: a CNAME, not followed out of the cluster.
    let cname = query(
        &mut udp,
        "database.default.svc.cluster.local.",
        RecordType::A,
    )
    .await;
    assert_eq!(cname.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        lines(&cname.answers),
        ["database.default.svc.cluster.local. 5 IN CNAME my.database.example.com."]
    );

    // Headless: ready endpoints, per-endpoint names, SRV per endpoint.
    eventually_answers(
        &mut udp,
        "web.default.svc.cluster.local.",
        RecordType::A,
        &[
            "web.default.svc.cluster.local. 5 IN A 10.244.1.10".to_string(),
            "web.default.svc.cluster.local. 5 IN A 10.244.2.11".to_string(),
        ],
    )
    .await;
    let web_1 = query(
        &mut udp,
        "web-1.web.default.svc.cluster.local.",
        RecordType::A,
    )
    .await;
    assert_eq!(
        lines(&web_1.answers),
        ["web-1.web.default.svc.cluster.local. 5 IN A 10.244.2.11"]
    );
    let web_srv = query(
        &mut udp,
        "_http._tcp.web.default.svc.cluster.local.",
        RecordType::SRV,
    )
    .await;
    assert_eq!(
        lines(&web_srv.answers),
        [
            "_http._tcp.web.default.svc.cluster.local. 5 IN SRV 0 50 80 web-0.web.default.svc.cluster.local.",
            "_http._tcp.web.default.svc.cluster.local. 5 IN SRV 0 50 80 web-1.web.default.svc.cluster.local.",
        ]
    );

    // Unknown names: NXDOMAIN; outside the cluster: REFUSED.
    let missing = query(
        &mut udp,
        "missing.default.svc.cluster.local.",
        RecordType::A,
    )
    .await;
    assert_eq!(missing.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(missing.authorities.len(), 1);
    let outside = query(&mut udp, "example.com.", RecordType::A).await;
    assert_eq!(outside.metadata.response_code, ResponseCode::Refused);

    // TCP answers the same.
    let mut tcp = tcp_client(addr).await;
    let over_tcp = query(
        &mut tcp,
        "node-port.default.svc.cluster.local.",
        RecordType::A,
    )
    .await;
    assert_eq!(
        lines(&over_tcp.answers),
        [format!(
            "node-port.default.svc.cluster.local. 5 IN A {node_port_ip}"
        )]
    );

    // Deleting the Service removes the name.
    let services: Api<Service> = Api::namespaced(lab.client.clone(), "dev");
    services
        .delete("nginx-service", &DeleteParams::default())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = query(
            &mut udp,
            "nginx-service.dev.svc.cluster.local.",
            RecordType::A,
        )
        .await;
        if response.metadata.response_code == ResponseCode::NXDomain {
            break;
        }
        assert!(Instant::now() < deadline, "nginx-service still resolves");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    dns.shutdown().await.unwrap();
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_answers_are_truncated_over_udp_and_complete_over_tcp() {
    let lab = Lab::start().await;
    let dns = kubeport_dns::start(
        lab.client.clone(),
        kubeport_dns::ResolverConfig::new("cluster.local"),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .expect("DNS server");
    let _: Service = lab
        .create(
            None,
            json!({
                "metadata": {"name": "many"},
                "spec": {"clusterIP": "None", "ports": [{"name": "http", "protocol": "TCP", "port": 80}]},
            }),
        )
        .await;
    let endpoints: Vec<serde_json::Value> = (0..100)
        .map(|i| json!({"addresses": [format!("10.244.{}.{}", 10 + i / 50, 1 + i % 50)]}))
        .collect();
    let _: EndpointSlice = lab
        .create(
            None,
            json!({
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {"name": "many-abc12", "labels": {"kubernetes.io/service-name": "many"}},
                "addressType": "IPv4",
                "ports": [{"name": "http", "protocol": "TCP", "port": 80}],
                "endpoints": endpoints,
            }),
        )
        .await;
    let name = "many.default.svc.cluster.local.";
    let mut tcp = tcp_client(dns.local_addr()).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = query(&mut tcp, name, RecordType::A).await;
        if response.answers.len() == 100 {
            assert!(!response.metadata.truncation);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} answers",
            response.answers.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // 100 A records need ~1.6 kB: more than 512 bytes (no EDNS) and 1232 (the EDNS cap).
    let mut plain = udp_client(dns.local_addr()).await;
    plain.disable_edns();
    let truncated = query(&mut plain, name, RecordType::A).await;
    assert!(truncated.metadata.truncation);
    assert!(truncated.answers.len() < 100);
    let mut edns = udp_client(dns.local_addr()).await;
    let truncated = query(&mut edns, name, RecordType::A).await;
    assert!(truncated.metadata.truncation);
    assert!(truncated.answers.len() < 100);

    dns.shutdown().await.unwrap();
    lab.shutdown().await;
}
