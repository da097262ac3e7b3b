use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use kubeport_pki::{identity_from_der, load_or_create, Pki};
use x509_parser::extensions::GeneralName;
use x509_parser::pem::parse_x509_pem;
use x509_parser::prelude::X509Certificate;

fn der(pem: &str) -> Vec<u8> {
    parse_x509_pem(pem.as_bytes()).unwrap().1.contents
}

fn parse(der: &[u8]) -> X509Certificate<'_> {
    x509_parser::parse_x509_certificate(der).unwrap().1
}

fn sans(pem: &str) -> (Vec<IpAddr>, Vec<String>) {
    let der = der(pem);
    let cert = parse(&der);
    let mut ips = Vec::new();
    let mut dns = Vec::new();
    for name in &cert
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
    {
        match name {
            GeneralName::IPAddress(b) if b.len() == 4 => {
                ips.push(IpAddr::from(<[u8; 4]>::try_from(*b).unwrap()))
            }
            GeneralName::IPAddress(b) => ips.push(IpAddr::from(<[u8; 16]>::try_from(*b).unwrap())),
            GeneralName::DNSName(d) => dns.push(d.to_string()),
            other => panic!("unexpected SAN {other:?}"),
        }
    }
    (ips, dns)
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn days_valid(cert: &X509Certificate<'_>) -> i64 {
    let v = cert.validity();
    (v.not_after.timestamp() - v.not_before.timestamp()) / 86_400
}

fn issued_by(cert_pem: &str, pki: &Pki) -> bool {
    let ca_der = der(&pki.ca_cert_pem);
    let ca = parse(&ca_der);
    let leaf_der = der(cert_pem);
    let leaf = parse(&leaf_der);
    leaf.issuer().as_raw() == ca.subject().as_raw()
        && leaf.verify_signature(Some(ca.public_key())).is_ok()
}

#[test]
fn first_start_creates_files_and_reload_is_stable() {
    let dir = tempfile::tempdir().unwrap();
    let first = load_or_create(dir.path(), &[], &[]).unwrap();
    assert_eq!(first.dir, dir.path().join("pki"));
    for (file, want_mode) in [
        ("ca.crt", 0o644),
        ("ca.key", 0o600),
        ("apiserver.crt", 0o644),
        ("apiserver.key", 0o600),
    ] {
        assert_eq!(mode(&first.dir.join(file)), want_mode, "{file}");
    }
    assert_eq!(
        fs::read_to_string(first.ca_cert_path()).unwrap(),
        first.ca_cert_pem
    );
    assert_eq!(
        fs::read_to_string(first.serving_key_path()).unwrap(),
        first.serving_key_pem
    );

    let second = load_or_create(dir.path(), &[], &[]).unwrap();
    assert_eq!(second.ca_cert_pem, first.ca_cert_pem);
    assert_eq!(second.ca_key_pem, first.ca_key_pem);
    assert_eq!(
        second.serving_cert_pem, first.serving_cert_pem,
        "no re-issue"
    );
    assert_eq!(second.serving_key_pem, first.serving_key_pem);
}

#[test]
fn ca_and_serving_certificates_have_kubeadm_shape() {
    let dir = tempfile::tempdir().unwrap();
    let pki = load_or_create(dir.path(), &[], &[]).unwrap();

    let ca_der = der(&pki.ca_cert_pem);
    let ca = parse(&ca_der);
    assert!(ca.is_ca());
    assert_eq!(ca.subject().to_string(), "CN=kubernetes");
    let ku = ca.key_usage().unwrap().unwrap().value;
    assert!(ku.key_cert_sign() && ku.digital_signature());
    assert!((3649..=3651).contains(&days_valid(&ca)));
    assert!(ca.verify_signature(None).is_ok());

    let leaf_der = der(&pki.serving_cert_pem);
    let leaf = parse(&leaf_der);
    assert!(!leaf.is_ca());
    assert_eq!(leaf.subject().to_string(), "CN=kube-apiserver");
    let eku = leaf.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && !eku.client_auth);
    assert!(leaf.key_usage().unwrap().unwrap().value.digital_signature());
    assert!((364..=366).contains(&days_valid(&leaf)));
    assert!(issued_by(&pki.serving_cert_pem, &pki));
    assert!(pki
        .serving_key_pem
        .starts_with("-----BEGIN PRIVATE KEY-----"));

    let (ips, dns) = sans(&pki.serving_cert_pem);
    assert_eq!(ips, [ip("127.0.0.1")]);
    assert_eq!(
        dns,
        [
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local"
        ]
    );
}

#[test]
fn missing_san_reissues_serving_cert_from_same_ca() {
    let dir = tempfile::tempdir().unwrap();
    let first = load_or_create(dir.path(), &[], &[]).unwrap();

    let extra_ips = [ip("10.96.0.1"), ip("fd00::1")];
    let extra_dns = ["control-plane.kubeport".to_string()];
    let second = load_or_create(dir.path(), &extra_ips, &extra_dns).unwrap();
    assert_eq!(second.ca_cert_pem, first.ca_cert_pem);
    assert_eq!(second.ca_key_pem, first.ca_key_pem);
    assert_ne!(second.serving_cert_pem, first.serving_cert_pem);
    assert!(issued_by(&second.serving_cert_pem, &second));
    let (ips, dns) = sans(&second.serving_cert_pem);
    assert_eq!(ips, [ip("127.0.0.1"), ip("10.96.0.1"), ip("fd00::1")]);
    assert!(dns.contains(&"control-plane.kubeport".to_string()));
    assert!(dns.contains(&"kubernetes.default.svc.cluster.local".to_string()));
    assert_eq!(
        fs::read_to_string(second.serving_cert_path()).unwrap(),
        second.serving_cert_pem
    );

    // Asking for fewer names later keeps the certificate that covers them all.
    let third = load_or_create(dir.path(), &[ip("10.96.0.1")], &[]).unwrap();
    assert_eq!(third.serving_cert_pem, second.serving_cert_pem);

    // A new name re-issues again, keeping the earlier extra names.
    let fourth = load_or_create(dir.path(), &[ip("172.18.0.2")], &[]).unwrap();
    let (ips, dns) = sans(&fourth.serving_cert_pem);
    assert_eq!(
        ips,
        [
            ip("127.0.0.1"),
            ip("10.96.0.1"),
            ip("fd00::1"),
            ip("172.18.0.2")
        ]
    );
    assert!(dns.contains(&"control-plane.kubeport".to_string()));
}

#[test]
fn damaged_or_foreign_serving_cert_is_reissued() {
    let dir = tempfile::tempdir().unwrap();
    let pki = load_or_create(dir.path(), &[], &[]).unwrap();

    // Serving cert from another cluster's CA.
    let other = tempfile::tempdir().unwrap();
    let foreign = load_or_create(other.path(), &[], &[]).unwrap();
    fs::write(pki.serving_cert_path(), &foreign.serving_cert_pem).unwrap();
    fs::write(pki.serving_key_path(), &foreign.serving_key_pem).unwrap();
    let reloaded = load_or_create(dir.path(), &[], &[]).unwrap();
    assert_eq!(reloaded.ca_cert_pem, pki.ca_cert_pem);
    assert!(issued_by(&reloaded.serving_cert_pem, &reloaded));

    // Key that does not belong to the certificate.
    fs::write(pki.serving_key_path(), &foreign.serving_key_pem).unwrap();
    let reloaded2 = load_or_create(dir.path(), &[], &[]).unwrap();
    assert_ne!(reloaded2.serving_key_pem, foreign.serving_key_pem);
    assert!(issued_by(&reloaded2.serving_cert_pem, &reloaded2));

    // Garbage.
    fs::write(pki.serving_cert_path(), "not a certificate").unwrap();
    let reloaded3 = load_or_create(dir.path(), &[], &[]).unwrap();
    assert!(issued_by(&reloaded3.serving_cert_pem, &reloaded3));
    assert_eq!(mode(&reloaded3.serving_key_path()), 0o600);
}

#[test]
fn half_a_ca_is_refused_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let pki = load_or_create(dir.path(), &[], &[]).unwrap();
    fs::remove_file(pki.ca_key_path()).unwrap();
    let err = load_or_create(dir.path(), &[], &[]).unwrap_err();
    assert!(
        format!("{err:#}").contains("refusing to create a new CA"),
        "{err:#}"
    );
    assert_eq!(
        fs::read_to_string(pki.ca_cert_path()).unwrap(),
        pki.ca_cert_pem
    );
}

#[test]
fn client_cert_identity_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let pki = load_or_create(dir.path(), &[], &[]).unwrap();

    let (cert, key) = pki.issue_admin_client_cert().unwrap();
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"));
    let cert_der = der(&cert);
    assert_eq!(
        identity_from_der(&cert_der),
        Some((
            "kubernetes-admin".to_string(),
            vec!["system:masters".to_string()]
        ))
    );
    let parsed = parse(&cert_der);
    assert_eq!(
        parsed.subject().to_string(),
        "O=system:masters, CN=kubernetes-admin"
    );
    let eku = parsed.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth);
    assert!(!parsed.is_ca());
    assert!((364..=366).contains(&days_valid(&parsed)));
    assert!(issued_by(&cert, &pki));

    let (cert, _) = pki
        .issue_client_cert(
            "system:node:worker-1",
            &["system:nodes", "kubeport:workers"],
        )
        .unwrap();
    assert_eq!(
        identity_from_der(&der(&cert)),
        Some((
            "system:node:worker-1".to_string(),
            vec!["system:nodes".to_string(), "kubeport:workers".to_string()]
        ))
    );

    let (cert, _) = pki.issue_client_cert("system:kube-proxy", &[]).unwrap();
    assert_eq!(
        identity_from_der(&der(&cert)),
        Some(("system:kube-proxy".to_string(), vec![]))
    );

    assert!(pki.issue_client_cert("", &["g"]).is_err());
    assert_eq!(identity_from_der(b"not DER"), None);
    // The serving certificate names no user groups but does name a user.
    assert_eq!(
        identity_from_der(&der(&pki.serving_cert_pem)),
        Some(("kube-apiserver".to_string(), vec![]))
    );
}

#[test]
fn certificates_issued_after_reload_chain_to_the_same_ca() {
    let dir = tempfile::tempdir().unwrap();
    let first = load_or_create(dir.path(), &[], &[]).unwrap();
    let reloaded = load_or_create(dir.path(), &[], &[]).unwrap();
    let (cert, _) = reloaded.issue_admin_client_cert().unwrap();
    assert!(issued_by(&cert, &first));
}

/// OpenSSL's strict chain verification as a third, independent X.509 implementation.
#[test]
fn openssl_accepts_the_chain_for_its_purpose() {
    let dir = tempfile::tempdir().unwrap();
    let pki = load_or_create(dir.path(), &[], &[]).unwrap();
    let (cert, _) = pki.issue_client_cert("alice", &["dev", "ops"]).unwrap();
    let client_path = dir.path().join("client.crt");
    fs::write(&client_path, &cert).unwrap();
    let verify = |purpose: &str, leaf: &Path| {
        std::process::Command::new("openssl")
            .args(["verify", "-x509_strict", "-purpose", purpose, "-CAfile"])
            .arg(pki.ca_cert_path())
            .arg(leaf)
            .output()
    };
    let server = match verify("sslserver", &pki.serving_cert_path()) {
        Ok(out) => out,
        Err(e) => {
            eprintln!("skipping: openssl is not on PATH ({e})");
            return;
        }
    };
    assert!(
        server.status.success(),
        "{}",
        String::from_utf8_lossy(&server.stdout)
    );
    let client = verify("sslclient", &client_path).unwrap();
    assert!(
        client.status.success(),
        "{}",
        String::from_utf8_lossy(&client.stdout)
    );
    // The purposes are not interchangeable.
    assert!(!verify("sslclient", &pki.serving_cert_path())
        .unwrap()
        .status
        .success());
    assert!(!verify("sslserver", &client_path).unwrap().status.success());
}
