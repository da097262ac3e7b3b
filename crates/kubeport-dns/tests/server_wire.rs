//! The wire behaviour of [`kubeport_dns::DnsServer`] on 127.0.0.1, fed snapshots directly:
//! failure before the caches are listed, header flags, EDNS, case, malformed requests.

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use k8s_openapi::api::core::v1::Service;
use kubeport_dns::{DnsServer, Resolver, ResolverConfig, Snapshot};
use serde_json::json;
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::watch;

fn snapshot() -> Arc<Snapshot> {
    let service: Service = serde_json::from_value(json!({
        "metadata": {"namespace": "default", "name": "node-port"},
        "spec": {"type": "NodePort", "clusterIP": "10.101.179.255",
                 "ports": [{"name": "node-port", "protocol": "TCP", "port": 8080, "nodePort": 30001}]},
    }))
    .unwrap();
    Arc::new(Snapshot::build(&[], &[service], &[], &[], 7))
}

async fn exchange(server: SocketAddr, message: &Message) -> Message {
    exchange_bytes(server, &message.to_vec().unwrap()).await
}

async fn exchange_bytes(server: SocketAddr, bytes: &[u8]) -> Message {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(bytes, server).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let (len, _) = tokio::time::timeout(Duration::from_secs(2), socket.recv_from(&mut buf))
        .await
        .expect("a response")
        .unwrap();
    Message::from_vec(&buf[..len]).unwrap()
}

fn question(id: u16, name: &str, qtype: RecordType) -> Message {
    let mut message = Message::query();
    message.metadata.id = id;
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(Name::from_str(name).unwrap(), qtype));
    message
}

async fn server() -> (DnsServer, watch::Sender<Option<Arc<Snapshot>>>) {
    let (publish, snapshots) = watch::channel(None);
    let resolver = Resolver::new(ResolverConfig::new("cluster.local")).unwrap();
    let server = DnsServer::bind("127.0.0.1:0".parse().unwrap(), resolver, snapshots)
        .await
        .unwrap();
    (server, publish)
}

#[tokio::test]
async fn servfail_until_the_caches_are_listed_then_answers() {
    let (server, publish) = server().await;
    let addr = server.local_addr();
    let ask = question(1, "node-port.default.svc.cluster.local.", RecordType::A);
    let early = exchange(addr, &ask).await;
    assert_eq!(early.metadata.response_code, ResponseCode::ServFail);
    assert!(early.answers.is_empty());
    // Outside names are refused whether or not the caches are ready.
    let outside = exchange(addr, &question(2, "example.com.", RecordType::A)).await;
    assert_eq!(outside.metadata.response_code, ResponseCode::Refused);
    assert!(!outside.metadata.authoritative);

    publish.send(Some(snapshot())).unwrap();
    let answer = exchange(addr, &ask).await;
    assert_eq!(answer.metadata.id, 1);
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    assert!(answer.metadata.authoritative);
    assert!(answer.metadata.recursion_desired);
    assert!(!answer.metadata.truncation);
    assert_eq!(
        answer
            .answers
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["node-port.default.svc.cluster.local. 5 IN A 10.101.179.255"]
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_question_case_is_echoed_and_edns_answered_with_a_capped_size() {
    let (server, publish) = server().await;
    publish.send(Some(snapshot())).unwrap();
    let mut ask = question(3, "node-port.default.svc.cluster.local.", RecordType::A);
    let mut edns = Edns::new();
    edns.set_max_payload(4096);
    ask.set_edns(edns);
    // hickory's encoder writes names in lowercase; a resolver using 0x20 randomisation sends
    // mixed case, so patch the question's bytes.
    let mut bytes = ask.to_vec().unwrap();
    for (from, to) in [
        (&b"node-port"[..], &b"Node-Port"[..]),
        (b"default", b"Default"),
        (b"svc", b"SVC"),
    ] {
        let at = bytes.windows(from.len()).position(|w| w == from).unwrap();
        bytes[at..at + to.len()].copy_from_slice(to);
    }
    let answer = exchange_bytes(server.local_addr(), &bytes).await;
    assert_eq!(
        answer.queries[0].name().to_string(),
        "Node-Port.Default.SVC.cluster.local."
    );
    assert_eq!(
        answer.answers[0].to_string(),
        "Node-Port.Default.SVC.cluster.local. 5 IN A 10.101.179.255"
    );
    let edns = answer.edns.expect("an OPT record in the response");
    assert_eq!(edns.max_payload(), 1232);
    // Without EDNS there is no OPT in the response.
    let plain = exchange(
        server.local_addr(),
        &question(4, "node-port.default.svc.cluster.local.", RecordType::A),
    )
    .await;
    assert!(plain.edns.is_none());
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn malformed_or_unsupported_requests() {
    let (server, publish) = server().await;
    publish.send(Some(snapshot())).unwrap();
    let mut two = question(5, "node-port.default.svc.cluster.local.", RecordType::A);
    two.add_query(Query::query(
        Name::from_str("node-port.default.svc.cluster.local.").unwrap(),
        RecordType::AAAA,
    ));
    let response = exchange(server.local_addr(), &two).await;
    assert_eq!(response.metadata.response_code, ResponseCode::FormErr);

    let mut status = question(6, "node-port.default.svc.cluster.local.", RecordType::A);
    status.metadata.op_code = OpCode::Status;
    let response = exchange(server.local_addr(), &status).await;
    assert_eq!(response.metadata.response_code, ResponseCode::NotImp);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn tcp_uses_the_same_port() {
    let (server, publish) = server().await;
    publish.send(Some(snapshot())).unwrap();
    let bytes = question(7, "missing.default.svc.cluster.local.", RecordType::A)
        .to_vec()
        .unwrap();
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend(&bytes);
    stream.write_all(&framed).await.unwrap();
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await.unwrap();
    let mut body = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).await.unwrap();
    let response = Message::from_vec(&body).unwrap();
    assert_eq!(response.metadata.id, 7);
    assert_eq!(response.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(
        response.authorities[0].to_string(),
        "cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 7 7200 1800 86400 5"
    );
    server.shutdown().await.unwrap();
}
