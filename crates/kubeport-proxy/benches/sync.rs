//! Programming cost of a node: from an empty table, and one endpoint change at a time, at
//! 1k and 10k Services × 10 endpoints and 5k × 50.
//!
//! Measured per scenario, the way the running proxy works (`proxy::Syncer`):
//! - model: merging the slices and computing the desired state (`StateCache::update`: all
//!   Services from empty, only the changed one afterwards);
//! - transaction: rendering and diffing it into an nftables transaction (`NftProxier::sync`);
//! - apply: `nft -f -` of that transaction, as root, inside a throwaway network namespace
//!   (`unshare(CLONE_NEWNET)`, gone when the process exits). Skipped when not root.
//!
//! `cargo bench -p kubeport-proxy --bench sync [-- [--no-apply] SCENARIO...]` (e.g. `1000x10`).

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kubeport_nftables::{Nft, NftProxier};
use kubeport_proxy::state_cache::StateCache;
use kubeport_proxy_model::{EndpointsChangeTracker, NodeInfo, ObjectChange, ProxyConfig};
use serde_json::json;

const NODE: &str = "bench-node-0";
/// Single endpoint changes measured per scenario (the median is reported).
const CHANGES: usize = 15;

fn cluster_ip(index: usize) -> Ipv4Addr {
    // 10.96.0.0/12 holds a million addresses; skip .0 of the range.
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 0, 0)) + 1 + index as u32)
}

fn pod_ip(index: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 128, 0, 0)) + index as u32)
}

fn service(index: usize) -> Service {
    let ip = cluster_ip(index).to_string();
    serde_json::from_value(json!({
        "metadata": {"namespace": "bench", "name": format!("svc-{index}")},
        "spec": {"type": "ClusterIP", "clusterIP": ip, "clusterIPs": [ip],
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]}
    }))
    .expect("valid Service")
}

fn slice(index: usize, endpoints: &[Ipv4Addr]) -> EndpointSlice {
    let endpoints: Vec<serde_json::Value> = endpoints
        .iter()
        .enumerate()
        .map(|(j, ip)| {
            json!({"addresses": [ip.to_string()], "nodeName": format!("bench-node-{}", (index + j) % 100),
                   "conditions": {"ready": true}})
        })
        .collect();
    serde_json::from_value(json!({
        "metadata": {"namespace": "bench", "name": format!("svc-{index}-abcde"),
                     "labels": {"kubernetes.io/service-name": format!("svc-{index}")}},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
    }))
    .expect("valid EndpointSlice")
}

fn node() -> NodeInfo {
    NodeInfo {
        name: NODE.to_string(),
        ips: vec!["172.18.0.2".parse().unwrap()],
        labels: Default::default(),
    }
}

fn config() -> ProxyConfig {
    ProxyConfig {
        cluster_cidrs: vec!["10.128.0.0/9".parse().unwrap()],
        service_cidrs: vec!["10.96.0.0/12".parse().unwrap()],
        ..ProxyConfig::default()
    }
}

fn ms(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1e3)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Moves the process into a new, empty network namespace (root only).
fn enter_throwaway_netns() -> bool {
    // SAFETY: plain syscall; on failure nothing changed.
    unsafe { libc::geteuid() == 0 && libc::unshare(libc::CLONE_NEWNET) == 0 }
}

fn scenario(services_count: usize, endpoints_per_service: usize, apply: Option<&Nft>) {
    println!("== {services_count} Services x {endpoints_per_service} endpoints");
    let services: Vec<Service> = (0..services_count).map(service).collect();
    let mut endpoints: Vec<Vec<Ipv4Addr>> = (0..services_count)
        .map(|i| {
            (0..endpoints_per_service)
                .map(|j| pod_ip(i * endpoints_per_service + j))
                .collect()
        })
        .collect();
    let mut tracker = EndpointsChangeTracker::new();
    for (i, eps) in endpoints.iter().enumerate() {
        tracker.apply(ObjectChange::Added(slice(i, eps)));
    }
    tracker.take();

    // From empty.
    let mut cache = StateCache::new();
    let config = config();
    let started = Instant::now();
    cache.update(
        &services,
        tracker.cache(),
        &Default::default(),
        node(),
        &config,
        true,
    );
    let model_time = started.elapsed();
    let mut proxier = NftProxier::new();
    let started = Instant::now();
    let tx = proxier.sync(cache.state().unwrap());
    let tx_time = started.elapsed();
    let lines = tx.lines().count();
    let bytes = tx.as_str().len();
    let apply_time = apply.map(|nft| {
        let started = Instant::now();
        nft.apply(tx.as_str())
            .expect("nft applies the full transaction");
        started.elapsed()
    });
    proxier.mark_committed(&tx);
    println!(
        "full:   model {} + transaction {} = {} ({lines} lines, {:.1} MB){}",
        ms(model_time),
        ms(tx_time),
        ms(model_time + tx_time),
        bytes as f64 / 1e6,
        apply_time.map_or_else(
            || "; apply skipped (not root)".to_string(),
            |t| format!(
                "; nft -f {} → total {}",
                ms(t),
                ms(model_time + tx_time + t)
            )
        )
    );

    // The model alone, one endpoint change at a time (no transaction in between: the
    // allocator then does not pay for the freeing of the previous transaction's strings).
    let mut alone = Vec::new();
    for change in 0..CHANGES {
        let target = (change * 104_729 + 1) % services_count;
        let started = Instant::now();
        tracker.apply(ObjectChange::Modified(slice(
            target,
            &endpoints[target][1..],
        )));
        let changed = tracker.take().services;
        cache.update(&services, tracker.cache(), &changed, node(), &config, false);
        alone.push(started.elapsed());
        tracker.apply(ObjectChange::Modified(slice(target, &endpoints[target])));
        let changed = tracker.take().services;
        cache.update(&services, tracker.cache(), &changed, node(), &config, false);
    }
    println!(
        "change: model alone {} (median of {CHANGES})",
        ms(median(alone))
    );

    // One endpoint replaced at a time, in different Services.
    let mut model_samples = Vec::new();
    let mut tx_samples = Vec::new();
    let mut apply_samples = Vec::new();
    let mut tx_lines = Vec::new();
    let first_new_pod = services_count * endpoints_per_service;
    for change in 0..CHANGES {
        let target = (change * 7919) % services_count;
        endpoints[target][0] = pod_ip(first_new_pod + change);
        let started = Instant::now();
        tracker.apply(ObjectChange::Modified(slice(target, &endpoints[target])));
        let changed = tracker.take().services;
        cache.update(&services, tracker.cache(), &changed, node(), &config, false);
        model_samples.push(started.elapsed());
        let started = Instant::now();
        let tx = proxier.sync(cache.state().unwrap());
        tx_samples.push(started.elapsed());
        tx_lines.push(tx.lines().count());
        if let Some(nft) = apply {
            let started = Instant::now();
            nft.apply(tx.as_str()).expect("nft applies the change");
            apply_samples.push(started.elapsed());
        }
        proxier.mark_committed(&tx);
    }
    let model = median(model_samples);
    let tx = median(tx_samples);
    tx_lines.sort();
    println!(
        "change: model {} + transaction {} = {} ({} lines){} (medians of {CHANGES})",
        ms(model),
        ms(tx),
        ms(model + tx),
        tx_lines[tx_lines.len() / 2],
        if apply_samples.is_empty() {
            String::new()
        } else {
            let applied = median(apply_samples);
            format!(
                "; nft -f {} → total {}",
                ms(applied),
                ms(model + tx + applied)
            )
        }
    );
    if let Some(nft) = apply {
        nft.apply(&kubeport_nftables::cleanup_transaction())
            .expect("cleanup applies");
    }
}

fn main() {
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with('-'))
        .collect();
    let no_apply = std::env::args().any(|arg| arg == "--no-apply");
    let nft = if no_apply {
        println!("apply skipped (--no-apply)");
        None
    } else if enter_throwaway_netns() {
        println!("applying inside a throwaway network namespace");
        Some(Nft::new())
    } else {
        println!("SKIP apply: needs root (unshare of a network namespace)");
        None
    };
    for (services, endpoints) in [(1000, 10), (10_000, 10), (5000, 50)] {
        let name = format!("{services}x{endpoints}");
        if !wanted.is_empty() && !wanted.contains(&name) {
            continue;
        }
        scenario(services, endpoints, nft.as_ref());
    }
}
