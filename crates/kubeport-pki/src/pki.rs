//! The cluster's certificate authority, the API server's serving certificate and client
//! certificates, laid out like kubeadm's `/etc/kubernetes/pki`.

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, ensure, Context, Result};
use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData, SanType, SigningKey, PKCS_ECDSA_P256_SHA256,
};
use time::{Duration, OffsetDateTime};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::pem::parse_x509_pem;

use crate::der::{encode_name, CertificateParts};
use crate::fsutil::{read_optional, write_atomic, DirectoryLock};

/// Subdirectory of the data directory that holds the PKI files.
pub const PKI_SUBDIR: &str = "pki";
/// CA certificate file name inside the PKI directory (kubeadm's names throughout).
pub const CA_CERT_FILE: &str = "ca.crt";
/// CA key file name.
pub const CA_KEY_FILE: &str = "ca.key";
/// Serving certificate file name.
pub const SERVING_CERT_FILE: &str = "apiserver.crt";
/// Serving key file name.
pub const SERVING_KEY_FILE: &str = "apiserver.key";
const LOCK_FILE: &str = ".lock";

/// The cluster administrator kubeadm writes into admin.conf.
pub const ADMIN_USER: &str = "kubernetes-admin";
/// The group that the RBAC bootstrap policy binds to cluster-admin.
pub const ADMIN_GROUP: &str = "system:masters";

/// Subject CommonName of the CA and of the serving certificate (as kubeadm names them).
const CA_COMMON_NAME: &str = "kubernetes";
const SERVING_COMMON_NAME: &str = "kube-apiserver";

/// DNS names every serving certificate carries: how clients outside and inside the cluster
/// name the API server.
pub const DEFAULT_DNS_SANS: [&str; 5] = [
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
];

const CA_VALIDITY: Duration = Duration::days(3650);
const LEAF_VALIDITY: Duration = Duration::days(365);
/// Certificates start slightly in the past so a peer whose clock lags a little accepts them.
const BACKDATE: Duration = Duration::minutes(5);
/// A serving certificate this close to expiry is re-issued at start.
const RENEW_BEFORE: Duration = Duration::days(30);

/// The PEM material of a cluster's PKI, as stored under `dir`.
#[derive(Clone)]
pub struct Pki {
    pub ca_cert_pem: String,
    pub ca_key_pem: String,
    pub serving_cert_pem: String,
    pub serving_key_pem: String,
    /// The directory holding the files (`<data dir>/pki`).
    pub dir: PathBuf,
}

impl std::fmt::Debug for Pki {
    // Keys stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// Loads the PKI from `dir/pki/` (`ca.crt`, `ca.key`, `apiserver.crt`, `apiserver.key`),
/// creating what is missing on first start (keys are written with mode 0600).
///
/// The serving certificate is re-issued from the same CA when it lacks any wanted SAN
/// (127.0.0.1, the `kubernetes*` and `localhost` DNS names, plus the extras), does not match
/// its key or the CA, or expires within 30 days. A re-issued certificate keeps the SANs the
/// old one had, so addresses clients already use stay valid.
pub fn load_or_create(
    dir: &Path,
    extra_ip_sans: &[IpAddr],
    extra_dns_sans: &[String],
) -> Result<Pki> {
    let pki_dir = dir.join(PKI_SUBDIR);
    fs::create_dir_all(&pki_dir).with_context(|| format!("creating {}", pki_dir.display()))?;
    // Two processes starting at once must not each create a CA.
    let _lock = DirectoryLock::acquire(&pki_dir.join(LOCK_FILE))?;

    let (ca_cert_pem, ca_key_pem) = load_or_create_ca(&pki_dir)?;
    let ca = CertificateAuthority::from_pem(&ca_cert_pem, &ca_key_pem)?;

    let wanted = SanSet::wanted(extra_ip_sans, extra_dns_sans);
    let serving_cert_path = pki_dir.join(SERVING_CERT_FILE);
    let serving_key_path = pki_dir.join(SERVING_KEY_FILE);
    let existing = match (
        read_optional(&serving_cert_path)?,
        read_optional(&serving_key_path)?,
    ) {
        (Some(cert), Some(key)) => Some((cert, key)),
        _ => None,
    };

    let (serving_cert_pem, serving_key_pem) = match existing {
        Some((cert, key)) => match ca.serving_cert_problem(&cert, &key, &wanted) {
            ServingCertCheck::Good => (cert, key),
            ServingCertCheck::Reissue { reason, old_sans } => {
                tracing::info!(reason = %reason, "re-issuing the API server serving certificate");
                let sans = old_sans.union(&wanted);
                issue_serving(&ca, &sans, &serving_cert_path, &serving_key_path)?
            }
        },
        None => issue_serving(&ca, &wanted, &serving_cert_path, &serving_key_path)?,
    };

    Ok(Pki {
        ca_cert_pem,
        ca_key_pem,
        serving_cert_pem,
        serving_key_pem,
        dir: pki_dir,
    })
}

impl Pki {
    /// The CA certificate file.
    pub fn ca_cert_path(&self) -> PathBuf {
        self.dir.join(CA_CERT_FILE)
    }

    /// The CA key file (mode 0600).
    pub fn ca_key_path(&self) -> PathBuf {
        self.dir.join(CA_KEY_FILE)
    }

    /// The API server's serving certificate file.
    pub fn serving_cert_path(&self) -> PathBuf {
        self.dir.join(SERVING_CERT_FILE)
    }

    /// The API server's serving key file (mode 0600).
    pub fn serving_key_path(&self) -> PathBuf {
        self.dir.join(SERVING_KEY_FILE)
    }

    /// Issues a client certificate (1 year, EKU clientAuth) whose subject carries
    /// `common_name` as CN (the Kubernetes user) and each of `organizations` as an O
    /// attribute (the groups). Returns (certificate PEM, PKCS#8 key PEM).
    pub fn issue_client_cert(
        &self,
        common_name: &str,
        organizations: &[&str],
    ) -> Result<(String, String)> {
        ensure!(
            !common_name.is_empty(),
            "a client certificate needs a common name (the user name)"
        );
        let ca = CertificateAuthority::from_pem(&self.ca_cert_pem, &self.ca_key_pem)?;
        let key = new_key()?;
        let mut params = leaf_params();
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let der = ca.sign_leaf(params, &key, &encode_name(common_name, organizations))?;
        Ok((pem_encode("CERTIFICATE", &der), key.serialize_pem()))
    }

    /// The cluster administrator's client certificate: CN `kubernetes-admin`,
    /// O `system:masters`, as kubeadm issues it for admin.conf.
    pub fn issue_admin_client_cert(&self) -> Result<(String, String)> {
        self.issue_client_cert(ADMIN_USER, &[ADMIN_GROUP])
    }
}

/// The Kubernetes identity of a client certificate (DER): the subject's CommonName is the
/// user and its Organization values are the groups. `None` when the certificate cannot be
/// parsed or has no (or an empty) CommonName, which kube-apiserver also refuses.
pub fn identity_from_der(der: &[u8]) -> Option<(String, Vec<String>)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    // Go's pkix.Name keeps the last CommonName when there are several.
    let user = subject
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok())
        .last()?
        .to_string();
    if user.is_empty() {
        return None;
    }
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok())
        .map(str::to_string)
        .collect();
    Some((user, groups))
}

fn load_or_create_ca(pki_dir: &Path) -> Result<(String, String)> {
    let cert_path = pki_dir.join(CA_CERT_FILE);
    let key_path = pki_dir.join(CA_KEY_FILE);
    match (read_optional(&cert_path)?, read_optional(&key_path)?) {
        (Some(cert), Some(key)) => Ok((cert, key)),
        (None, None) => {
            let key = new_key()?;
            let mut params = CertificateParams::default();
            let now = OffsetDateTime::now_utc();
            params.not_before = now - BACKDATE;
            params.not_after = now + CA_VALIDITY;
            params.distinguished_name = rcgen::DistinguishedName::new();
            params
                .distinguished_name
                .push(DnType::CommonName, CA_COMMON_NAME);
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
            ];
            let cert = params
                .self_signed(&key)
                .context("creating the cluster CA")?;
            let (cert_pem, key_pem) = (cert.pem(), key.serialize_pem());
            write_atomic(&key_path, key_pem.as_bytes(), 0o600)?;
            write_atomic(&cert_path, cert_pem.as_bytes(), 0o644)?;
            Ok((cert_pem, key_pem))
        }
        (Some(_), None) | (None, Some(_)) => bail!(
            "only one of {} and {} exists: refusing to create a new CA, which would \
             invalidate every issued certificate; restore the missing file or remove both",
            cert_path.display(),
            key_path.display()
        ),
    }
}

fn issue_serving(
    ca: &CertificateAuthority,
    sans: &SanSet,
    cert_path: &Path,
    key_path: &Path,
) -> Result<(String, String)> {
    let key = new_key()?;
    let mut params = leaf_params();
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    for ip in &sans.ips {
        params.subject_alt_names.push(SanType::IpAddress(*ip));
    }
    for dns in &sans.dns {
        let name = dns
            .as_str()
            .try_into()
            .map_err(|e| anyhow!("invalid DNS SAN {dns:?}: {e}"))?;
        params.subject_alt_names.push(SanType::DnsName(name));
    }
    let der = ca.sign_leaf(params, &key, &encode_name(SERVING_COMMON_NAME, &[]))?;
    let (cert_pem, key_pem) = (pem_encode("CERTIFICATE", &der), key.serialize_pem());
    // Key first: a crash in between leaves a mismatched pair, detected and re-issued next start.
    write_atomic(key_path, key_pem.as_bytes(), 0o600)?;
    write_atomic(cert_path, cert_pem.as_bytes(), 0o644)?;
    Ok((cert_pem, key_pem))
}

fn new_key() -> Result<KeyPair> {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).context("generating an ECDSA P-256 key")
}

fn leaf_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let now = OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now + LEAF_VALIDITY;
    params.is_ca = IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    params
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn pem_decode_certificate(pem: &str) -> Result<Vec<u8>> {
    let (_, block) =
        parse_x509_pem(pem.as_bytes()).map_err(|e| anyhow!("not a PEM certificate: {e}"))?;
    ensure!(
        block.label == "CERTIFICATE",
        "expected a CERTIFICATE PEM block, found {}",
        block.label
    );
    Ok(block.contents)
}

fn parse_certificate(der: &[u8]) -> Result<X509Certificate<'_>> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| anyhow!("invalid certificate: {e}"))?;
    Ok(cert)
}

/// Whether `key` is the private key of the certificate's public key.
fn key_matches(cert: &X509Certificate<'_>, key: &KeyPair) -> bool {
    cert.public_key().raw == key.subject_public_key_info().as_slice()
}

/// The CA ready to sign: its key, and its subject exactly as encoded in ca.crt so issued
/// certificates' issuer names match it byte for byte (Go builds chains on that).
struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    cert_der: Vec<u8>,
    subject_der: Vec<u8>,
}

enum ServingCertCheck {
    Good,
    Reissue { reason: String, old_sans: SanSet },
}

impl CertificateAuthority {
    fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self> {
        let cert_der = pem_decode_certificate(cert_pem).context("reading the CA certificate")?;
        let key = KeyPair::from_pem(key_pem).context("reading the CA key")?;
        let subject_der = {
            let cert = parse_certificate(&cert_der).context("reading the CA certificate")?;
            ensure!(
                cert.is_ca(),
                "the CA certificate is not a CA (basicConstraints)"
            );
            ensure!(
                key_matches(&cert, &key),
                "the CA key does not belong to the CA certificate"
            );
            cert.subject().as_raw().to_vec()
        };
        let issuer = Issuer::from_ca_cert_der(&cert_der.as_slice().into(), key)
            .context("loading the CA for signing")?;
        Ok(Self {
            issuer,
            cert_der,
            subject_der,
        })
    }

    /// Signs a leaf certificate: rcgen drafts it from `params` (validity, SANs, key usages,
    /// key identifiers), then the subject and issuer are set to `subject` and the CA's exact
    /// subject, and the result is signed with the CA key.
    fn sign_leaf(
        &self,
        params: CertificateParams,
        leaf_key: &KeyPair,
        subject: &[u8],
    ) -> Result<Vec<u8>> {
        let draft = params
            .signed_by(leaf_key, &self.issuer)
            .context("drafting a certificate")?;
        let parts = CertificateParts::parse(draft.der())?;
        let tbs = parts.tbs_with_names(&self.subject_der, subject);
        let signature = self
            .issuer
            .key()
            .sign(&tbs)
            .context("signing a certificate")?;
        Ok(parts.assemble(&tbs, &signature))
    }

    fn serving_cert_problem(
        &self,
        cert_pem: &str,
        key_pem: &str,
        wanted: &SanSet,
    ) -> ServingCertCheck {
        let reissue =
            |reason: String, old_sans: SanSet| ServingCertCheck::Reissue { reason, old_sans };
        let der = match pem_decode_certificate(cert_pem) {
            Ok(der) => der,
            Err(e) => return reissue(format!("unreadable certificate: {e:#}"), SanSet::default()),
        };
        let cert = match parse_certificate(&der) {
            Ok(cert) => cert,
            Err(e) => return reissue(format!("unreadable certificate: {e:#}"), SanSet::default()),
        };
        let old_sans = SanSet::of(&cert);
        let key = match KeyPair::from_pem(key_pem) {
            Ok(key) => key,
            Err(e) => return reissue(format!("unreadable key: {e}"), old_sans),
        };
        if !key_matches(&cert, &key) {
            return reissue("certificate and key do not match".into(), old_sans);
        }
        let ca_cert = parse_certificate(&self.cert_der).expect("parsed when loaded");
        if cert.issuer().as_raw() != ca_cert.subject().as_raw()
            || cert.verify_signature(Some(ca_cert.public_key())).is_err()
        {
            return reissue("not issued by the current CA".into(), old_sans);
        }
        let renew_at = (OffsetDateTime::now_utc() + RENEW_BEFORE).unix_timestamp();
        if cert.validity().not_after.timestamp() < renew_at {
            return reissue("expires within 30 days".into(), old_sans);
        }
        let missing = wanted.missing_from(&old_sans);
        if !missing.is_empty() {
            return reissue(format!("missing SANs: {}", missing.join(", ")), old_sans);
        }
        ServingCertCheck::Good
    }
}

/// Subject alternative names, in order, without duplicates (DNS names compared
/// case-insensitively).
#[derive(Debug, Default, Clone, PartialEq)]
struct SanSet {
    ips: Vec<IpAddr>,
    dns: Vec<String>,
}

impl SanSet {
    fn wanted(extra_ips: &[IpAddr], extra_dns: &[String]) -> Self {
        let mut set = SanSet::default();
        set.add_ip(IpAddr::from([127, 0, 0, 1]));
        extra_ips.iter().for_each(|ip| set.add_ip(*ip));
        DEFAULT_DNS_SANS.iter().for_each(|d| set.add_dns(d));
        extra_dns.iter().for_each(|d| set.add_dns(d));
        set
    }

    fn of(cert: &X509Certificate<'_>) -> Self {
        let mut set = SanSet::default();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(d) => set.add_dns(d),
                    GeneralName::IPAddress(bytes) => {
                        if let Ok(v4) = <[u8; 4]>::try_from(*bytes) {
                            set.add_ip(IpAddr::from(v4));
                        } else if let Ok(v6) = <[u8; 16]>::try_from(*bytes) {
                            set.add_ip(IpAddr::from(v6));
                        }
                    }
                    _ => {}
                }
            }
        }
        set
    }

    fn add_ip(&mut self, ip: IpAddr) {
        if !self.ips.contains(&ip) {
            self.ips.push(ip);
        }
    }

    fn add_dns(&mut self, name: &str) {
        let name = name.trim();
        if !name.is_empty() && !self.has_dns(name) {
            self.dns.push(name.to_string());
        }
    }

    fn has_dns(&self, name: &str) -> bool {
        self.dns.iter().any(|d| d.eq_ignore_ascii_case(name))
    }

    fn union(&self, other: &SanSet) -> SanSet {
        let mut set = self.clone();
        other.ips.iter().for_each(|ip| set.add_ip(*ip));
        other.dns.iter().for_each(|d| set.add_dns(d));
        set
    }

    /// The names of `self` that `have` lacks.
    fn missing_from(&self, have: &SanSet) -> Vec<String> {
        let ips = self
            .ips
            .iter()
            .filter(|ip| !have.ips.contains(ip))
            .map(|ip| ip.to_string());
        let dns = self.dns.iter().filter(|d| !have.has_dns(d)).cloned();
        ips.chain(dns).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wanted_sans_include_defaults_once() {
        let wanted = SanSet::wanted(
            &["127.0.0.1".parse().unwrap(), "10.96.0.1".parse().unwrap()],
            &["KUBERNETES".to_string(), "api.example".to_string()],
        );
        assert_eq!(
            wanted.ips,
            vec![
                "127.0.0.1".parse::<IpAddr>().unwrap(),
                "10.96.0.1".parse().unwrap()
            ]
        );
        assert_eq!(
            wanted.dns,
            [
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
                "api.example"
            ]
        );
        let have = SanSet::wanted(&[], &[]);
        assert_eq!(wanted.missing_from(&have), ["10.96.0.1", "api.example"]);
    }

    #[test]
    fn pem_lines_are_64_columns() {
        let pem = pem_encode("CERTIFICATE", &[7u8; 100]);
        let lines: Vec<_> = pem.lines().collect();
        assert_eq!(lines[0], "-----BEGIN CERTIFICATE-----");
        assert_eq!(lines[1].len(), 64);
        assert_eq!(*lines.last().unwrap(), "-----END CERTIFICATE-----");
        assert_eq!(pem_decode_certificate(&pem).unwrap(), vec![7u8; 100]);
    }
}
