//! Cost per allocation as the ranges fill. Run with `cargo bench -p kubeport-service`.
//!
//! ClusterIPs: ClusterIP Services in a /16 (65,534 addresses). NodePorts: NodePort Services
//! with the port range 1-65535 (each also takes a ClusterIP). For each fill level the figure
//! is the mean over the last 1,000 allocations before reaching it (`allocate_create` +
//! `commit`, Service construction excluded).

use k8s_openapi::api::core::v1::Service;
use kubeport_service::{prepare_create, set_defaults, PortRange, ServiceAllocator, ServiceConfig};
use std::hint::black_box;
use std::time::{Duration, Instant};

fn service(i: usize, node_port: bool) -> Service {
    let spec = if node_port {
        serde_json::json!({"type": "NodePort", "ports": [{"port": 80}]})
    } else {
        serde_json::json!({"ports": [{"port": 80}]})
    };
    let mut s: Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("svc-{i}"), "namespace": "bench"},
        "spec": spec,
    }))
    .unwrap();
    set_defaults(&mut s);
    prepare_create(&mut s);
    s
}

fn run(label: &str, node_port: bool, levels: &[usize]) {
    let cfg = ServiceConfig {
        cluster_ip_range: "10.96.0.0/16".parse().unwrap(),
        node_port_range: if node_port {
            "1-65535".parse::<PortRange>().unwrap()
        } else {
            PortRange::DEFAULT
        },
    };
    let mut alloc = ServiceAllocator::with_seed(&cfg, 42);
    let max = *levels.last().unwrap();
    let mut services: Vec<Service> = (0..max).map(|i| service(i, node_port)).collect();
    let mut window = Duration::ZERO;
    let mut level = 0;
    for (i, svc) in services.iter_mut().enumerate() {
        let start = Instant::now();
        let a = alloc.allocate_create(black_box(svc)).expect("allocation");
        alloc.commit(a);
        let spent = start.elapsed();
        let done = i + 1;
        if done + 1000 > levels[level] {
            window += spent;
        }
        if done == levels[level] {
            let n = levels[level].min(1000);
            println!(
                "{label}: fill {:>6}: {:>7.0} ns/allocation",
                done,
                window.as_nanos() as f64 / n as f64
            );
            window = Duration::ZERO;
            level += 1;
        }
    }
    assert_eq!(alloc.used_cluster_ips(), max);
}

fn main() {
    run(
        "clusterIP (/16)",
        false,
        &[1_000, 10_000, 30_000, 60_000, 65_534],
    );
    run(
        "nodePort (1-65535) + clusterIP",
        true,
        &[1_000, 10_000, 30_000, 60_000],
    );
}
