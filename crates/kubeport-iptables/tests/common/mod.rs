//! Fixtures shared by the golden tests and the netns tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kubeport_proxy_model::{
    compute, EndpointSliceCache, NodeInfo, NodePortAddresses, ProxyConfig, ProxyState,
};
use serde_json::{json, Value};

pub const NODE: &str = "service-demo-worker";

pub fn node() -> NodeInfo {
    NodeInfo {
        name: NODE.into(),
        ips: vec!["172.18.0.3".parse().unwrap()],
        labels: BTreeMap::new(),
    }
}

/// The reference's assumptions: detector cluster CIDR 10.244.0.0/16, NodePorts on every
/// local address (kube-proxy's iptables default).
pub fn config() -> ProxyConfig {
    ProxyConfig {
        cluster_cidrs: vec!["10.244.0.0/16".parse().unwrap()],
        service_cidrs: vec!["10.96.0.0/12".parse().unwrap()],
        nodeport_addresses: NodePortAddresses::Cidrs(vec!["0.0.0.0/0".parse().unwrap()]),
        ..ProxyConfig::default()
    }
}

pub fn service(value: Value) -> Service {
    serde_json::from_value(value).expect("valid Service")
}

/// dev/nginx-service of seed 001 (NodePort 30000, port `http` 80 -> 80).
pub fn nginx_service() -> Service {
    service(json!({
        "metadata": {"namespace": "dev", "name": "nginx-service"},
        "spec": {"type": "NodePort", "clusterIP": "10.96.0.100", "clusterIPs": ["10.96.0.100"],
                 "externalTrafficPolicy": "Cluster",
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 80, "nodePort": 30000}]}
    }))
}

/// A slice of `service` with one named port and endpoints `(address, node)`.
pub fn slice_with_port(
    namespace: &str,
    service: &str,
    port_name: &str,
    port: i32,
    protocol: &str,
    endpoints: &[(&str, &str)],
) -> EndpointSlice {
    let endpoints: Vec<Value> = endpoints
        .iter()
        .map(|(address, node)| {
            let mut endpoint = json!({"addresses": [address], "conditions": {"ready": true}});
            if !node.is_empty() {
                endpoint["nodeName"] = json!(node);
            }
            endpoint
        })
        .collect();
    serde_json::from_value(json!({
        "metadata": {"namespace": namespace, "name": format!("{service}-abcde"),
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": port_name, "port": port, "protocol": protocol}]
    }))
    .expect("valid EndpointSlice")
}

pub fn slice(namespace: &str, service: &str, endpoints: &[(&str, &str)]) -> EndpointSlice {
    slice_with_port(namespace, service, "http", 80, "TCP", endpoints)
}

/// The seed's six endpoints.
pub const SEED_ENDPOINTS: [(&str, &str); 6] = [
    ("10.244.1.2", "service-demo-worker2"),
    ("10.244.1.3", "service-demo-worker2"),
    ("10.244.1.4", "service-demo-worker2"),
    ("10.244.2.2", "service-demo-worker"),
    ("10.244.2.3", "service-demo-worker"),
    ("10.244.2.4", "service-demo-worker"),
];

pub fn state_with(
    services: &[Service],
    slices: &[EndpointSlice],
    node: &NodeInfo,
    config: &ProxyConfig,
) -> ProxyState {
    compute(
        services,
        &EndpointSliceCache::from_slices(slices).endpoints_map(),
        node,
        config,
    )
}

pub fn state(services: &[Service], slices: &[EndpointSlice]) -> ProxyState {
    state_with(services, slices, &node(), &config())
}

/// Text → trimmed non-empty lines (lets expectations be indented in the source).
pub fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_string)
        .collect()
}

/// Line-by-line comparison with a readable failure message.
pub fn assert_lines(actual: &str, expected: &str) {
    let actual_lines = lines(actual);
    let expected_lines = lines(expected);
    if actual_lines != expected_lines {
        let mut report = String::new();
        let max = actual_lines.len().max(expected_lines.len());
        for index in 0..max {
            let a = actual_lines
                .get(index)
                .map(String::as_str)
                .unwrap_or("<none>");
            let e = expected_lines
                .get(index)
                .map(String::as_str)
                .unwrap_or("<none>");
            let marker = if a == e { "  " } else { "!!" };
            report.push_str(&format!("{marker} {index:3} got:  {a}\n"));
            if a != e {
                report.push_str(&format!("{marker} {index:3} want: {e}\n"));
            }
        }
        panic!("restore input differs:\n{report}");
    }
}

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A network namespace of our own, deleted on drop (also when the test fails).
pub struct NetNs {
    pub name: String,
}

static NETNS_COUNTER: AtomicUsize = AtomicUsize::new(0);

impl NetNs {
    /// Creates a uniquely named namespace, or explains why not (not root, no `ip`,
    /// no iptables-nft).
    pub fn create(purpose: &str) -> Result<NetNs, String> {
        if !is_root() {
            return Err("not running as root".into());
        }
        if !std::path::Path::new("/usr/sbin/iptables-nft-restore").exists() {
            return Err("iptables-nft-restore is not installed (apt-get install iptables)".into());
        }
        remove_orphaned_namespaces();
        let name = format!(
            "kp-ipt-{purpose}-{}-{}",
            std::process::id(),
            NETNS_COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let status = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .map_err(|err| format!("cannot run ip: {err}"))?;
        if !status.success() {
            return Err(format!("ip netns add {name} failed"));
        }
        Ok(NetNs { name })
    }

    /// Runs a command inside the namespace, returning stdout; panics on failure.
    pub fn run(&self, args: &[&str]) -> String {
        let output = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .output()
            .expect("ip netns exec");
        assert!(
            output.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

/// Deletes `kp-ipt-*` namespaces left by an earlier test or bench process that was killed
/// before its guards ran (the creating PID is part of the name; it no longer exists).
fn remove_orphaned_namespaces() {
    let Ok(output) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(rest) = name.strip_prefix("kp-ipt-") else {
            continue;
        };
        // kp-ipt-<purpose>-<pid>-<counter>
        let parts: Vec<&str> = rest.rsplitn(3, '-').collect();
        let Some(pid) = parts.get(1).and_then(|pid| pid.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// `iptables-save` output without the `#` comment lines.
pub fn without_save_comments(saved: &str) -> String {
    saved
        .lines()
        .filter(|line| !line.starts_with('#'))
        .map(|line| format!("{line}\n"))
        .collect()
}
