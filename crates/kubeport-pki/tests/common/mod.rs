//! TLS plumbing shared by the handshake tests: rustls configured the way the API server
//! (server side) and kube-rs (client side) configure it.

#![allow(dead_code)]

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use kubeport_pki::Pki;

pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub fn cert_der(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).expect("certificate PEM")
}

pub fn key_der(pem: &str) -> PrivateKeyDer<'static> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).expect("key PEM")
}

pub fn roots(ca_pem: &str) -> Arc<RootCertStore> {
    let mut roots = RootCertStore::empty();
    roots
        .add(cert_der(ca_pem))
        .expect("CA accepted as trust anchor");
    Arc::new(roots)
}

/// The API server's TLS setup: serving cert, client certs verified against the CA but
/// optional (anonymous requests are answered 401 at the HTTP level).
pub fn server_config(pki: &Pki) -> Arc<ServerConfig> {
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(&pki.ca_cert_pem), provider())
        .allow_unauthenticated()
        .build()
        .expect("client verifier");
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![cert_der(&pki.serving_cert_pem)],
            key_der(&pki.serving_key_pem),
        )
        .expect("serving certificate and key accepted by rustls");
    Arc::new(config)
}

/// A client trusting only `ca_pem`, presenting `client` (cert PEM, key PEM) if given.
pub fn client_config(
    ca_pem: &str,
    client: Option<(&str, &str)>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let verifier = WebPkiServerVerifier::builder_with_provider(roots(ca_pem), provider())
        .build()
        .unwrap();
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_webpki_verifier(verifier);
    let config = match client {
        Some((cert, key)) => builder
            .with_client_auth_cert(vec![cert_der(cert)], key_der(key))
            .expect("client certificate accepted by rustls"),
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}
