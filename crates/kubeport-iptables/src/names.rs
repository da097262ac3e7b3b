//! Chain names, byte-for-byte kube-proxy's: fixed chains and the hashed per-service ones.

use kubeport_proxy_model::{Endpoint, ServicePortName};
use sha2::{Digest, Sha256};

/// nat + filter: entry point for service traffic (nat: DNAT dispatch; filter: rejects).
pub const KUBE_SERVICES: &str = "KUBE-SERVICES";
/// filter: drops/rejects for externalIPs, LB IPs and NodePorts without usable endpoints.
pub const KUBE_EXTERNAL_SERVICES: &str = "KUBE-EXTERNAL-SERVICES";
/// nat: NodePort dispatch; filter: health-check node port accepts.
pub const KUBE_NODEPORTS: &str = "KUBE-NODEPORTS";
/// nat: masquerades marked packets.
pub const KUBE_POSTROUTING: &str = "KUBE-POSTROUTING";
/// nat: sets the masquerade mark.
pub const KUBE_MARK_MASQ: &str = "KUBE-MARK-MASQ";
/// filter: accepts forwarded service traffic.
pub const KUBE_FORWARD: &str = "KUBE-FORWARD";
/// filter: drops LoadBalancer traffic refused by loadBalancerSourceRanges.
pub const KUBE_PROXY_FIREWALL: &str = "KUBE-PROXY-FIREWALL";
/// filter: kubelet's anti-martian rule for localhost NodePorts (IPv4 only).
pub const KUBE_FIREWALL: &str = "KUBE-FIREWALL";
/// Empty chain in mangle, nat and filter; its disappearance means the tables were flushed.
pub const KUBE_PROXY_CANARY: &str = "KUBE-PROXY-CANARY";

/// Cluster-policy chain of a service port.
pub const SVC_PREFIX: &str = "KUBE-SVC-";
/// Local-policy chain of a service port.
pub const SVL_PREFIX: &str = "KUBE-SVL-";
/// External-traffic chain of a service port.
pub const EXT_PREFIX: &str = "KUBE-EXT-";
/// loadBalancerSourceRanges chain of a service port.
pub const FW_PREFIX: &str = "KUBE-FW-";
/// Per-endpoint DNAT chain.
pub const SEP_PREFIX: &str = "KUBE-SEP-";

const BASE32_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// The first 16 characters of the RFC 4648 base32 encoding of `sha256(input)`; 16 characters
/// encode exactly the first 10 bytes, so no padding question arises.
pub fn hash16(input: &str) -> String {
    let digest = Sha256::digest(input.as_bytes());
    let mut out = String::with_capacity(16);
    for block in digest[..10].chunks(5) {
        let bits = block
            .iter()
            .fold(0u64, |acc, byte| (acc << 8) | u64::from(*byte));
        for group in (0..8).rev() {
            out.push(BASE32_ALPHABET[((bits >> (group * 5)) & 31) as usize] as char);
        }
    }
    out
}

/// Hash input of a service port: `ns/name[:port]` directly followed by the lower-case protocol.
fn port_proto_hash(name: &ServicePortName) -> String {
    hash16(&format!("{name}{}", name.protocol.as_lower_str()))
}

/// The four per-service-port chain names (they share one hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePortChains {
    /// `KUBE-SVC-…`: load-balances over the Cluster-policy endpoints.
    pub cluster: String,
    /// `KUBE-SVL-…`: load-balances over the Local-policy endpoints.
    pub local: String,
    /// `KUBE-EXT-…`: entry for NodePort, externalIP and LoadBalancer traffic.
    pub external: String,
    /// `KUBE-FW-…`: loadBalancerSourceRanges filter.
    pub firewall: String,
}

impl ServicePortChains {
    pub fn new(name: &ServicePortName) -> Self {
        let hash = port_proto_hash(name);
        ServicePortChains {
            cluster: format!("{SVC_PREFIX}{hash}"),
            local: format!("{SVL_PREFIX}{hash}"),
            external: format!("{EXT_PREFIX}{hash}"),
            firewall: format!("{FW_PREFIX}{hash}"),
        }
    }
}

/// `KUBE-SEP-…` chain of an endpoint: the hash input is `ns/name[:port]` + protocol +
/// `ip:port` (IPv6 as `[ip]:port`).
pub fn endpoint_chain(name: &ServicePortName, endpoint: &Endpoint) -> String {
    format!(
        "{SEP_PREFIX}{}",
        hash16(&format!(
            "{name}{}{}",
            name.protocol.as_lower_str(),
            endpoint.addr_string()
        ))
    )
}

/// Per-service chains (the ones kube-proxy deletes when unused) carry one of these prefixes.
pub fn is_service_chain(name: &str) -> bool {
    [SVC_PREFIX, SVL_PREFIX, EXT_PREFIX, FW_PREFIX, SEP_PREFIX]
        .iter()
        .any(|prefix| name.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kubeport_proxy_model::Protocol;

    #[test]
    fn check_vectors_from_kube_proxy() {
        let name = ServicePortName::new("ns1", "svc1", "p80", Protocol::Tcp);
        let chains = ServicePortChains::new(&name);
        assert_eq!(chains.cluster, "KUBE-SVC-XPGD46QRK7WJZT7O");
        assert_eq!(chains.external, "KUBE-EXT-XPGD46QRK7WJZT7O");
        let endpoint = Endpoint::ready("10.180.0.1".parse().unwrap(), 80);
        assert_eq!(
            endpoint_chain(&name, &endpoint),
            "KUBE-SEP-SXIVWICOYRO3J4NJ"
        );
    }

    #[test]
    fn worked_example_names() {
        let name = ServicePortName::new("dev", "nginx-service", "http", Protocol::Tcp);
        assert_eq!(
            ServicePortChains::new(&name).cluster,
            "KUBE-SVC-T3QIINOBLYCGKYC7"
        );
        let sep = |ip: &str| endpoint_chain(&name, &Endpoint::ready(ip.parse().unwrap(), 80));
        assert_eq!(sep("10.244.1.2"), "KUBE-SEP-6SBHXQ4VQ7TF2KRJ");
        assert_eq!(sep("10.244.2.4"), "KUBE-SEP-DBWEWVX6MNI34OP2");
    }

    #[test]
    fn service_chain_prefixes() {
        assert!(is_service_chain("KUBE-SEP-6SBHXQ4VQ7TF2KRJ"));
        assert!(is_service_chain("KUBE-FW-6SBHXQ4VQ7TF2KRJ"));
        assert!(!is_service_chain(KUBE_SERVICES));
        assert!(!is_service_chain(KUBE_MARK_MASQ));
    }
}
