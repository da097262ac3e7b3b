//! Real TLS handshakes with rustls on both sides, configured as the API server and
//! kube-rs configure them.

mod common;

use std::net::IpAddr;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, SupportedProtocolVersion};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use common::{client_config, server_config};
use kubeport_pki::{identity_from_der, load_or_create, Pki};

const TLS13: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];
const TLS12: &[&SupportedProtocolVersion] = &[&rustls::version::TLS12];

/// Serves one connection: completes the handshake and answers with the identity the
/// client certificate carries (`user groups...`) or `anonymous`.
async fn serve_once(
    pki: &Pki,
) -> (
    std::net::SocketAddr,
    tokio::task::JoinHandle<Result<String, String>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(server_config(pki));
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let mut tls = acceptor.accept(tcp).await.map_err(|e| e.to_string())?;
        let seen = match tls.get_ref().1.peer_certificates() {
            Some(chain) => {
                let (user, groups) = identity_from_der(&chain[0]).ok_or("no identity")?;
                format!("{user} {}", groups.join(" "))
                    .trim_end()
                    .to_string()
            }
            None => "anonymous".to_string(),
        };
        tls.write_all(seen.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        tls.shutdown().await.map_err(|e| e.to_string())?;
        Ok(seen)
    });
    (addr, task)
}

/// Connects with `config` to `server_name`, returns what the server said.
async fn connect(
    addr: std::net::SocketAddr,
    config: Arc<ClientConfig>,
    server_name: &str,
) -> Result<String, String> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = match server_name.parse::<IpAddr>() {
        Ok(ip) => ServerName::IpAddress(ip.into()),
        Err(_) => ServerName::try_from(server_name.to_string()).unwrap(),
    };
    let mut tls = TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    tls.read_to_string(&mut answer)
        .await
        .map_err(|e| e.to_string())?;
    Ok(answer)
}

#[tokio::test]
async fn client_certificate_identity_reaches_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let pki = load_or_create(dir.path(), &[], &[]).unwrap();
    let (cert, key) = pki.issue_admin_client_cert().unwrap();
    for server_name in [
        "127.0.0.1",
        "localhost",
        "kubernetes",
        "kubernetes.default.svc.cluster.local",
    ] {
        for versions in [TLS13, TLS12] {
            let (addr, server) = serve_once(&pki).await;
            let client = client_config(&pki.ca_cert_pem, Some((&cert, &key)), versions);
            let answer = connect(addr, client, server_name).await;
            assert_eq!(
                answer.as_deref(),
                Ok("kubernetes-admin system:masters"),
                "{server_name}"
            );
            assert_eq!(
                server.await.unwrap().as_deref(),
                Ok("kubernetes-admin system:masters")
            );
        }
    }
}

#[tokio::test]
async fn several_groups_survive_the_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let pki = load_or_create(dir.path(), &[], &[]).unwrap();
    let (cert, key) = pki
        .issue_client_cert("system:node:n1", &["system:nodes", "extra"])
        .unwrap();
    let (addr, server) = serve_once(&pki).await;
    let client = client_config(&pki.ca_cert_pem, Some((&cert, &key)), TLS13);
    assert_eq!(
        connect(addr, client, "localhost").await.as_deref(),
        Ok("system:node:n1 system:nodes extra")
    );
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn client_without_certificate_still_handshakes() {
    let dir = tempfile::tempdir().unwrap();
    let pki = load_or_create(dir.path(), &[], &[]).unwrap();
    let (addr, server) = serve_once(&pki).await;
    let client = client_config(&pki.ca_cert_pem, None, TLS13);
    assert_eq!(
        connect(addr, client, "127.0.0.1").await.as_deref(),
        Ok("anonymous")
    );
    assert_eq!(server.await.unwrap().as_deref(), Ok("anonymous"));
}

#[tokio::test]
async fn reissued_serving_cert_covers_the_new_address() {
    let dir = tempfile::tempdir().unwrap();
    load_or_create(dir.path(), &[], &[]).unwrap();
    let pki = load_or_create(dir.path(), &["10.96.0.1".parse().unwrap()], &[]).unwrap();
    // Clients only resolve to loopback here; the new IP SAN is checked by name matching.
    let (addr, server) = serve_once(&pki).await;
    let client = client_config(&pki.ca_cert_pem, None, TLS13);
    assert_eq!(
        connect(addr, client, "10.96.0.1").await.as_deref(),
        Ok("anonymous")
    );
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn names_not_in_the_certificate_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let pki = load_or_create(dir.path(), &[], &[]).unwrap();
    let (addr, server) = serve_once(&pki).await;
    let client = client_config(&pki.ca_cert_pem, None, TLS13);
    let err = connect(addr, client, "10.96.0.1").await.unwrap_err();
    assert!(err.contains("not valid for name \"10.96.0.1\""), "{err}");
    let _ = server.await;
}

#[tokio::test]
async fn client_certificate_from_another_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = load_or_create(dir.path(), &[], &[]).unwrap();
    let other_dir = tempfile::tempdir().unwrap();
    let other = load_or_create(other_dir.path(), &[], &[]).unwrap();
    let (cert, key) = other.issue_admin_client_cert().unwrap();

    let (addr, server) = serve_once(&pki).await;
    let client = client_config(&pki.ca_cert_pem, Some((&cert, &key)), TLS13);
    // With TLS 1.3 the client learns of the rejection only when it reads.
    assert!(connect(addr, client, "127.0.0.1").await.is_err());
    // Both CAs are named CN=kubernetes, so the chain is found and its signature fails.
    let err = server.await.unwrap().unwrap_err();
    assert!(err.contains("BadSignature"), "{err}");
}
