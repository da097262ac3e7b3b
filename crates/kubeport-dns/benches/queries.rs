//! Cluster DNS throughput and latency with 1k Services, everything real: an in-process API
//! server holds 1000 Services (10 namespaces, 2 named ports each) with an EndpointSlice of 3
//! ready endpoints each, the DNS server watches it (`kubeport_dns::start`) and one client on
//! loopback sends the mix a pod's resolver sends:
//! 40% A hits, 30% search-list expansions (NXDOMAIN), 10% AAAA (NODATA), 10% SRV, 10% PTR.
//!
//! Reported:
//! - resolver: the pure resolution (no wire), ns per query;
//! - udp sequential: one query in flight: queries/s and latency p50/p99/p99.9;
//! - udp pipelined: 32 queries in flight from one socket: queries/s and p99;
//! - propagation: time from creating a Service to its name resolving (p50/p99 of 20).
//!
//! `cargo bench -p kubeport-dns --bench queries`. Traffic goes to 127.0.0.1 only.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::PostParams;
use kube::Api;
use serde_json::json;
use tokio::net::UdpSocket;

const SERVICES: usize = 1000;
const NAMESPACES: usize = 10;
const SEQUENTIAL_QUERIES: usize = 20_000;
const PIPELINED_QUERIES: usize = 100_000;
const WINDOW: usize = 32;

/// One prepared question and the response code it must get.
struct Question {
    name: Name,
    qtype: RecordType,
    expect: ResponseCode,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

fn micros(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn wire(id: u16, question: &Question) -> Vec<u8> {
    let mut message = Message::query();
    message.metadata.id = id;
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(question.name.clone(), question.qtype));
    message.to_vec().expect("encodable query")
}

/// (id, response code) from a response's header.
fn header(buf: &[u8]) -> (u16, ResponseCode) {
    let id = u16::from_be_bytes([buf[0], buf[1]]);
    (id, ResponseCode::from_low(buf[3] & 0x0f))
}

fn questions(services: &[(String, String, String)]) -> Vec<Question> {
    let mut out = Vec::new();
    for i in 0..1000 {
        let (ns, name, ip) = &services[(i * 7919) % services.len()];
        let fqdn = format!("{name}.{ns}.svc.cluster.local.");
        let (text, qtype, expect) = match i % 10 {
            0..=3 => (fqdn, RecordType::A, ResponseCode::NoError),
            4..=6 => (
                format!("{fqdn}{ns}.svc.cluster.local."),
                RecordType::A,
                ResponseCode::NXDomain,
            ),
            7 => (fqdn, RecordType::AAAA, ResponseCode::NoError),
            8 => (
                format!("_http._tcp.{fqdn}"),
                RecordType::SRV,
                ResponseCode::NoError,
            ),
            _ => {
                let mut octets: Vec<&str> = ip.split('.').collect();
                octets.reverse();
                (
                    format!("{}.in-addr.arpa.", octets.join(".")),
                    RecordType::PTR,
                    ResponseCode::NoError,
                )
            }
        };
        out.push(Question {
            name: Name::from_str(&text).unwrap(),
            qtype,
            expect,
        });
    }
    out
}

async fn sequential(server: SocketAddr, questions: &[Question]) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(server).await.unwrap();
    let packets: Vec<Vec<u8>> = questions
        .iter()
        .enumerate()
        .map(|(i, q)| wire(i as u16, q))
        .collect();
    let mut latencies = Vec::with_capacity(SEQUENTIAL_QUERIES);
    let mut buf = vec![0u8; 4096];
    let mut wrong = 0usize;
    let mut lost = 0usize;
    // Warm-up.
    for packet in packets.iter().take(500) {
        socket.send(packet).await.unwrap();
        let _ = tokio::time::timeout(Duration::from_secs(1), socket.recv(&mut buf)).await;
    }
    let started = Instant::now();
    for n in 0..SEQUENTIAL_QUERIES {
        let index = n % packets.len();
        let sent = Instant::now();
        socket.send(&packets[index]).await.unwrap();
        match tokio::time::timeout(Duration::from_secs(1), socket.recv(&mut buf)).await {
            Ok(Ok(len)) if len >= 12 => {
                latencies.push(sent.elapsed());
                let (id, code) = header(&buf[..len]);
                if id != index as u16 || code != questions[index].expect {
                    wrong += 1;
                }
            }
            _ => lost += 1,
        }
    }
    let elapsed = started.elapsed();
    latencies.sort();
    println!(
        "udp sequential: {SEQUENTIAL_QUERIES} queries in {:.2} s = {:.0} queries/s; latency p50 {} p99 {} p99.9 {} max {}; wrong {wrong}, lost {lost}",
        elapsed.as_secs_f64(),
        SEQUENTIAL_QUERIES as f64 / elapsed.as_secs_f64(),
        micros(percentile(&latencies, 0.50)),
        micros(percentile(&latencies, 0.99)),
        micros(percentile(&latencies, 0.999)),
        micros(*latencies.last().unwrap_or(&Duration::ZERO)),
    );
    assert_eq!(wrong, 0, "answers with the wrong response code");
}

async fn pipelined(server: SocketAddr, questions: &[Question]) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(server).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let mut in_flight: HashMap<u16, (usize, Instant)> = HashMap::new();
    let mut latencies = Vec::with_capacity(PIPELINED_QUERIES);
    let mut next = 0usize;
    let mut wrong = 0usize;
    let mut lost = 0usize;
    let started = Instant::now();
    let send = |next: usize| {
        let index = next % questions.len();
        (index, wire(next as u16, &questions[index]))
    };
    while latencies.len() + lost < PIPELINED_QUERIES {
        while in_flight.len() < WINDOW && next < PIPELINED_QUERIES {
            let (index, packet) = send(next);
            socket.send(&packet).await.unwrap();
            in_flight.insert(next as u16, (index, Instant::now()));
            next += 1;
        }
        match tokio::time::timeout(Duration::from_secs(1), socket.recv(&mut buf)).await {
            Ok(Ok(len)) if len >= 12 => {
                let (id, code) = header(&buf[..len]);
                if let Some((index, sent)) = in_flight.remove(&id) {
                    latencies.push(sent.elapsed());
                    if code != questions[index].expect {
                        wrong += 1;
                    }
                }
            }
            _ => {
                lost += in_flight.len();
                in_flight.clear();
            }
        }
    }
    let elapsed = started.elapsed();
    latencies.sort();
    println!(
        "udp pipelined ({WINDOW} in flight): {PIPELINED_QUERIES} queries in {:.2} s = {:.0} queries/s; latency p50 {} p99 {}; wrong {wrong}, lost {lost}",
        elapsed.as_secs_f64(),
        PIPELINED_QUERIES as f64 / elapsed.as_secs_f64(),
        micros(percentile(&latencies, 0.50)),
        micros(percentile(&latencies, 0.99)),
    );
    assert_eq!(wrong, 0, "answers with the wrong response code");
}

fn resolver_only(snapshot: &kubeport_dns::Snapshot, questions: &[Question]) {
    let resolver =
        kubeport_dns::Resolver::new(kubeport_dns::ResolverConfig::new("cluster.local")).unwrap();
    let rounds = 200;
    let started = Instant::now();
    let mut answers = 0usize;
    for _ in 0..rounds {
        for question in questions {
            let answer = resolver.resolve(snapshot, &question.name, question.qtype, DNSClass::IN);
            assert_eq!(answer.response_code, question.expect);
            answers += answer.answers.len();
        }
    }
    let elapsed = started.elapsed();
    let queries = rounds * questions.len();
    println!(
        "resolver (no wire): {queries} queries in {:.2} s = {:.0} ns/query ({answers} records)",
        elapsed.as_secs_f64(),
        elapsed.as_nanos() as f64 / queries as f64,
    );
}

/// What every change costs the watcher: re-indexing all objects (median of 20 builds).
async fn snapshot_build(client: &kube::Client) {
    let lp = kube::api::ListParams::default();
    let namespaces = Api::<Namespace>::all(client.clone())
        .list(&lp)
        .await
        .unwrap()
        .items;
    let services = Api::<Service>::all(client.clone())
        .list(&lp)
        .await
        .unwrap()
        .items;
    let slices = Api::<EndpointSlice>::all(client.clone())
        .list(&lp)
        .await
        .unwrap()
        .items;
    let pods = Api::<Pod>::all(client.clone())
        .list(&lp)
        .await
        .unwrap()
        .items;
    let mut times: Vec<Duration> = (0..20)
        .map(|_| {
            let started = Instant::now();
            let snapshot = kubeport_dns::Snapshot::build(&namespaces, &services, &slices, &pods, 1);
            assert_eq!(snapshot.service_count(), services.len());
            started.elapsed()
        })
        .collect();
    times.sort();
    println!(
        "snapshot build ({} Services, {} EndpointSlices): median {}",
        services.len(),
        slices.len(),
        micros(percentile(&times, 0.5)),
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = kubeport_apiserver::ServerConfig::new(dir.path().join("data"));
    config.secure_port = 0;
    let server = kubeport_apiserver::start(config).await.expect("API server");
    let kubeconfig = kube::config::Kubeconfig::read_from(&server.admin_kubeconfig).unwrap();
    let client = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap(),
    )
    .unwrap();

    let namespaces: Api<Namespace> = Api::all(client.clone());
    for n in 0..NAMESPACES {
        let namespace: Namespace =
            serde_json::from_value(json!({"metadata": {"name": format!("bench-{n}")}})).unwrap();
        namespaces
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap();
    }
    let started = Instant::now();
    let created: Vec<(String, String, String)> = futures::stream::iter(0..SERVICES)
        .map(|i| {
            let client = client.clone();
            async move {
                let ns = format!("bench-{}", i % NAMESPACES);
                let name = format!("svc-{i}");
                let services: Api<Service> = Api::namespaced(client.clone(), &ns);
                let service: Service = serde_json::from_value(json!({
                    "metadata": {"name": name},
                    "spec": {"ports": [
                        {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080},
                        {"name": "metrics", "protocol": "TCP", "port": 9090},
                    ]},
                }))
                .unwrap();
                let service = services
                    .create(&PostParams::default(), &service)
                    .await
                    .unwrap();
                let slices: Api<EndpointSlice> = Api::namespaced(client, &ns);
                let endpoints: Vec<serde_json::Value> = (0..3)
                    .map(|j| {
                        json!({"addresses": [format!("10.{}.{}.{}", 128 + j, i / 250, 1 + i % 250)],
                               "conditions": {"ready": true}})
                    })
                    .collect();
                let slice: EndpointSlice = serde_json::from_value(json!({
                    "metadata": {"name": format!("{name}-abcde"),
                                 "labels": {"kubernetes.io/service-name": name}},
                    "addressType": "IPv4",
                    "ports": [{"name": "http", "protocol": "TCP", "port": 8080}],
                    "endpoints": endpoints,
                }))
                .unwrap();
                slices.create(&PostParams::default(), &slice).await.unwrap();
                let ip = service.spec.unwrap().cluster_ip.unwrap();
                (ns, name, ip)
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    println!(
        "setup: {SERVICES} Services + EndpointSlices created through the API server in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let dns = kubeport_dns::start(
        client.clone(),
        kubeport_dns::ResolverConfig::new("cluster.local"),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    dns.wait_synced().await;
    let snapshot: Arc<kubeport_dns::Snapshot> = dns.snapshot().unwrap();
    println!(
        "dns: listed {} Services and serving after {:.0} ms",
        snapshot.service_count(),
        started.elapsed().as_secs_f64() * 1e3
    );
    snapshot_build(&client).await;
    let questions = questions(&created);
    resolver_only(&snapshot, &questions);
    sequential(dns.local_addr(), &questions).await;
    pipelined(dns.local_addr(), &questions).await;

    // Propagation: a new Service resolves how long after its creation returned?
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(dns.local_addr()).await.unwrap();
    let services: Api<Service> = Api::namespaced(client.clone(), "bench-0");
    let mut delays = Vec::new();
    let mut buf = vec![0u8; 4096];
    for i in 0..20 {
        let name = format!("late-{i}");
        let service: Service = serde_json::from_value(
            json!({"metadata": {"name": name}, "spec": {"ports": [{"port": 80}]}}),
        )
        .unwrap();
        services
            .create(&PostParams::default(), &service)
            .await
            .unwrap();
        let created = Instant::now();
        let question = Question {
            name: Name::from_str(&format!("{name}.bench-0.svc.cluster.local.")).unwrap(),
            qtype: RecordType::A,
            expect: ResponseCode::NoError,
        };
        let packet = wire(i, &question);
        loop {
            socket.send(&packet).await.unwrap();
            let len = tokio::time::timeout(Duration::from_secs(1), socket.recv(&mut buf))
                .await
                .expect("answer")
                .unwrap();
            if header(&buf[..len]).1 == ResponseCode::NoError {
                delays.push(created.elapsed());
                break;
            }
            assert!(
                created.elapsed() < Duration::from_secs(10),
                "{name} never resolved"
            );
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }
    delays.sort();
    println!(
        "propagation (create returned → name resolves), 20 Services: p50 {} p99 {}",
        micros(percentile(&delays, 0.50)),
        micros(percentile(&delays, 0.99)),
    );

    dns.shutdown().await.unwrap();
    server.shutdown().await;
}
