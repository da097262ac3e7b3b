//! The node the proxy runs for: name, addresses (from the Node object, falling back to the
//! addresses of the network namespace), labels.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use k8s_openapi::api::core::v1::Node;
use kubeport_proxy_model::{IpFamily, NodeInfo};

/// The node name: `--hostname-override`, else the host name, lower-cased as kube-proxy does.
pub fn node_name(hostname_override: Option<&str>) -> anyhow::Result<String> {
    let name = match hostname_override.map(str::trim).filter(|s| !s.is_empty()) {
        Some(name) => name.to_string(),
        None => host_name()?,
    };
    Ok(name.to_lowercase())
}

fn host_name() -> anyhow::Result<String> {
    let mut buffer = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates on success.
    let rc = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    if rc != 0 {
        anyhow::bail!(
            "cannot read the host name: {}",
            std::io::Error::last_os_error()
        );
    }
    let end = buffer.iter().position(|b| *b == 0).unwrap_or(buffer.len());
    Ok(String::from_utf8_lossy(&buffer[..end]).trim().to_string())
}

/// The node's addresses from its status: InternalIPs, then ExternalIPs (kube-proxy's
/// order), without duplicates.
pub fn node_object_ips(node: &Node) -> Vec<IpAddr> {
    let addresses = node
        .status
        .as_ref()
        .and_then(|status| status.addresses.as_ref());
    let mut ips: Vec<IpAddr> = Vec::new();
    for wanted in ["InternalIP", "ExternalIP"] {
        for address in addresses.into_iter().flatten() {
            if address.type_ != wanted {
                continue;
            }
            if let Ok(ip) = address.address.trim().parse::<IpAddr>() {
                if !ips.contains(&ip) {
                    ips.push(ip);
                }
            }
        }
    }
    ips
}

/// Addresses of the interfaces of the current network namespace that are up: no loopback,
/// no IPv6 link-local, IPv4 first.
pub fn host_addresses() -> Vec<IpAddr> {
    let mut result: Vec<IpAddr> = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list freed by freeifaddrs below; every
    // pointer is checked for NULL before use and only read while the list is alive.
    unsafe {
        if libc::getifaddrs(&mut list) != 0 {
            return result;
        }
        let mut cursor = list;
        while !cursor.is_null() {
            let entry = &*cursor;
            cursor = entry.ifa_next;
            if entry.ifa_addr.is_null() || entry.ifa_flags & (libc::IFF_UP as u32) == 0 {
                continue;
            }
            let ip = match i32::from((*entry.ifa_addr).sa_family) {
                libc::AF_INET => {
                    let sin = &*(entry.ifa_addr as *const libc::sockaddr_in);
                    IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)))
                }
                libc::AF_INET6 => {
                    let sin6 = &*(entry.ifa_addr as *const libc::sockaddr_in6);
                    IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr))
                }
                _ => continue,
            };
            if usable_host_address(&ip) && !result.contains(&ip) {
                result.push(ip);
            }
        }
        libc::freeifaddrs(list);
    }
    result.sort_by_key(IpFamily::of);
    result
}

fn usable_host_address(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !v4.is_loopback() && !v4.is_unspecified(),
        IpAddr::V6(v6) => {
            !v6.is_loopback() && !v6.is_unspecified() && (v6.segments()[0] & 0xffc0) != 0xfe80
        }
    }
}

/// The proxy's view of the node: the Node object's addresses first (its first address of
/// each family is the primary one), then the namespace's other addresses (used by
/// `--nodeport-addresses` CIDRs); without a Node object the namespace's addresses alone.
pub fn node_info(name: &str, node: Option<&Node>, host_ips: &[IpAddr]) -> NodeInfo {
    let mut ips = node.map(node_object_ips).unwrap_or_default();
    for ip in host_ips {
        if !ips.contains(ip) {
            ips.push(*ip);
        }
    }
    let labels: BTreeMap<String, String> = node
        .and_then(|node| node.metadata.labels.clone())
        .unwrap_or_default();
    NodeInfo {
        name: name.to_string(),
        ips,
        labels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node() -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": "worker", "labels": {"topology.kubernetes.io/zone": "z1"}},
            "status": {"addresses": [
                {"type": "Hostname", "address": "worker"},
                {"type": "ExternalIP", "address": "203.0.113.7"},
                {"type": "InternalIP", "address": "172.18.0.3"},
                {"type": "InternalIP", "address": "fc00::3"}
            ]}
        }))
        .unwrap()
    }

    #[test]
    fn node_addresses_come_first_then_the_namespace_ones() {
        let node = node();
        assert_eq!(
            node_object_ips(&node),
            vec![
                "172.18.0.3".parse::<IpAddr>().unwrap(),
                "fc00::3".parse().unwrap(),
                "203.0.113.7".parse().unwrap()
            ]
        );
        let host: Vec<IpAddr> = vec!["10.0.0.5".parse().unwrap(), "172.18.0.3".parse().unwrap()];
        let info = node_info("worker", Some(&node), &host);
        assert_eq!(
            info.primary_ip(IpFamily::V4),
            Some("172.18.0.3".parse().unwrap())
        );
        assert_eq!(info.ips.len(), 4);
        assert_eq!(info.zone(), Some("z1"));
        let fallback = node_info("worker", None, &host);
        assert_eq!(
            fallback.primary_ip(IpFamily::V4),
            Some("10.0.0.5".parse().unwrap())
        );
    }

    #[test]
    fn names_are_lower_case() {
        assert_eq!(node_name(Some("Worker-1")).unwrap(), "worker-1");
        assert!(!node_name(None).unwrap().is_empty());
    }

    #[test]
    fn host_addresses_skip_loopback() {
        assert!(host_addresses().iter().all(|ip| !ip.is_loopback()));
    }
}
