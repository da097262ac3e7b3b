//! Names of the per-service chains and sets, byte-for-byte kube-proxy's.

use std::net::IpAddr;

use kubeport_proxy_model::{Endpoint, ServicePortName};
use sha2::{Digest, Sha256};

/// Longest name nftables accepts for a chain or set.
const NAME_LENGTH_MAX: usize = 256;
/// Room reserved for the longest prefix (`external-`, `firewall-`, …).
const PREFIX_LENGTH_MAX: usize = 16;
/// Longest name base (hash + readable part) before truncation.
const NAME_BASE_LENGTH_MAX: usize = NAME_LENGTH_MAX - PREFIX_LENGTH_MAX;

/// Prefix of the chain load-balancing over the Cluster-policy endpoints.
pub const SERVICE_PREFIX: &str = "service-";
/// Prefix of the chain load-balancing over the Local-policy endpoints.
pub const LOCAL_PREFIX: &str = "local-";
/// Prefix of the chain handling NodePort/externalIP/LB traffic.
pub const EXTERNAL_PREFIX: &str = "external-";
/// Prefix of the chain enforcing loadBalancerSourceRanges.
pub const FIREWALL_PREFIX: &str = "firewall-";
/// Prefix of a per-endpoint DNAT chain.
pub const ENDPOINT_PREFIX: &str = "endpoint-";
/// Prefix of a per-endpoint session-affinity set.
pub const AFFINITY_PREFIX: &str = "affinity-";

const BASE32_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// The first 8 characters of the RFC 4648 base32 encoding of `sha256(input)`
/// (8 characters encode exactly the first 5 bytes).
fn hash_prefix(input: &str) -> String {
    let digest = Sha256::digest(input.as_bytes());
    let bits = digest[..5]
        .iter()
        .fold(0u64, |acc, byte| (acc << 8) | u64::from(*byte));
    (0..8)
        .rev()
        .map(|group| BASE32_ALPHABET[((bits >> (group * 5)) & 31) as usize] as char)
        .collect()
}

/// `HASH-name`, truncated to 240 characters with a trailing `...` (the hash keeps truncated
/// names unique and tells apart names differing in one digit).
pub fn hash_and_truncate(name: &str) -> String {
    let mut result = format!("{}-{}", hash_prefix(name), name);
    if result.len() > NAME_BASE_LENGTH_MAX {
        result.truncate(NAME_BASE_LENGTH_MAX - 3);
        result.push_str("...");
    }
    result
}

/// Base of a service port's chain names: `HASH-ns/name/proto/portName`,
/// e.g. `ULMVA6XW-ns1/svc1/tcp/p80`.
pub fn service_port_name_base(name: &ServicePortName) -> String {
    hash_and_truncate(&format!(
        "{}/{}/{}/{}",
        name.service.namespace,
        name.service.name,
        name.protocol.as_lower_str(),
        name.port
    ))
}

/// Base of an endpoint's chain and affinity set names:
/// `HASH-ns/name/proto/portName__ip/port`, IPv6 colons turned into dots
/// (chain names cannot hold `:`), e.g. `5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80`.
pub fn endpoint_name_base(name: &ServicePortName, endpoint: &Endpoint) -> String {
    let ip = match endpoint.ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => v6.to_string().replace(':', "."),
    };
    hash_and_truncate(&format!(
        "{}/{}/{}/{}__{}/{}",
        name.service.namespace,
        name.service.name,
        name.protocol.as_lower_str(),
        name.port,
        ip,
        endpoint.port
    ))
}

/// The chain names of one service port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePortChains {
    pub cluster: String,
    pub local: String,
    pub external: String,
    pub firewall: String,
}

impl ServicePortChains {
    pub fn new(name: &ServicePortName) -> Self {
        let base = service_port_name_base(name);
        ServicePortChains {
            cluster: format!("{SERVICE_PREFIX}{base}"),
            local: format!("{LOCAL_PREFIX}{base}"),
            external: format!("{EXTERNAL_PREFIX}{base}"),
            firewall: format!("{FIREWALL_PREFIX}{base}"),
        }
    }
}

/// `endpoint-…` chain of an endpoint.
pub fn endpoint_chain(name: &ServicePortName, endpoint: &Endpoint) -> String {
    format!("{ENDPOINT_PREFIX}{}", endpoint_name_base(name, endpoint))
}

/// `affinity-…` set of an endpoint.
pub fn affinity_set(name: &ServicePortName, endpoint: &Endpoint) -> String {
    format!("{AFFINITY_PREFIX}{}", endpoint_name_base(name, endpoint))
}

/// Per-service chains carry a `/` in their name; the fixed chains never do.
pub fn is_service_chain(name: &str) -> bool {
    name.contains('/')
}

#[cfg(test)]
mod tests {
    use super::*;
    use kubeport_proxy_model::Protocol;

    #[test]
    fn check_vectors_from_kube_proxy() {
        let name = ServicePortName::new("ns1", "svc1", "p80", Protocol::Tcp);
        assert_eq!(
            ServicePortChains::new(&name).cluster,
            "service-ULMVA6XW-ns1/svc1/tcp/p80"
        );
        let endpoint = Endpoint::ready("10.180.0.1".parse().unwrap(), 80);
        assert_eq!(
            endpoint_chain(&name, &endpoint),
            "endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80"
        );
        assert_eq!(
            affinity_set(&name, &endpoint),
            "affinity-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80"
        );
    }

    #[test]
    fn ipv6_endpoint_names_use_dots() {
        let name = ServicePortName::new("ns1", "svc1", "p80", Protocol::Tcp);
        let endpoint = Endpoint::ready("fd00:10:180::1".parse().unwrap(), 80);
        let chain = endpoint_chain(&name, &endpoint);
        assert!(chain.starts_with("endpoint-"), "{chain}");
        assert!(
            chain.ends_with("-ns1/svc1/tcp/p80__fd00.10.180..1/80"),
            "{chain}"
        );
    }

    #[test]
    fn long_names_are_truncated_with_ellipsis() {
        let long = "a".repeat(300);
        let truncated = hash_and_truncate(&long);
        assert_eq!(truncated.len(), 240);
        assert!(truncated.ends_with("..."));
        assert_eq!(&truncated[8..9], "-");
    }
}
