//! Sync cost of the iptables backend: restore-input generation for a full sync and for a
//! single endpoint change at 1k and 10k Services × 10 endpoints, and (as root) the time
//! `iptables-nft-restore` takes to apply them inside a throwaway network namespace.
//!
//! `cargo bench -p kubeport-iptables`. `KUBEPORT_BENCH_SIZES=1000,2000` picks the sizes;
//! restores are timed up to `KUBEPORT_BENCH_APPLY_MAX` Services (default 2000): the
//! nft-backed `iptables-restore` needs tens of minutes for a first restore of 10k Services
//! (its chain lookups grow with the number of chains), too long for a routine run.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{service, slice, NetNs};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kubeport_iptables::{Iptables, IptablesConfig, IptablesProxier};
use kubeport_proxy_model::{IpFamily, ProxyState};
use serde_json::json;

const ENDPOINTS_PER_SERVICE: usize = 10;

fn fixture(services: usize, changed: bool) -> (Vec<Service>, Vec<EndpointSlice>) {
    let mut svcs = Vec::with_capacity(services);
    let mut slices = Vec::with_capacity(services);
    for index in 0..services {
        let name = format!("svc-{index}");
        svcs.push(service(json!({
            "metadata": {"namespace": "bench", "name": name},
            "spec": {"type": "NodePort", "clusterIP": format!("10.96.{}.{}", index / 250, index % 250 + 1),
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP",
                                "nodePort": 30000 + (index % 2768) as i32}]}
        })));
        let endpoints: Vec<(String, &str)> = (0..ENDPOINTS_PER_SERVICE)
            .map(|e| {
                // Endpoint IPs 10.(64 + n / 65536).(n / 256 % 256).(n % 256), unique per service.
                let mut n = index * ENDPOINTS_PER_SERVICE + e;
                if changed && index == services / 2 && e == 0 {
                    n = services * ENDPOINTS_PER_SERVICE + 1; // one endpoint replaced
                }
                (
                    format!("10.{}.{}.{}", 64 + n / 65536, n / 256 % 256, n % 256),
                    if e % 2 == 0 { common::NODE } else { "other" },
                )
            })
            .collect();
        let refs: Vec<(&str, &str)> = endpoints.iter().map(|(a, n)| (a.as_str(), *n)).collect();
        slices.push(slice("bench", &name, &refs));
    }
    (svcs, slices)
}

fn desired(services: usize, changed: bool) -> ProxyState {
    let (svcs, slices) = fixture(services, changed);
    common::state(&svcs, &slices)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1000.0)
}

fn main() {
    let sizes: Vec<usize> = std::env::var("KUBEPORT_BENCH_SIZES")
        .ok()
        .map(|text| {
            text.split(',')
                .filter_map(|part| part.trim().parse().ok())
                .collect()
        })
        .unwrap_or_else(|| vec![1000, 10000]);
    let apply_max: usize = std::env::var("KUBEPORT_BENCH_APPLY_MAX")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(2000);
    let netns = NetNs::create("bench");
    if let Err(reason) = &netns {
        println!("SKIP apply timings: {reason}");
    }

    for services in sizes {
        let base = desired(services, false);
        let changed = desired(services, true);
        let runs = if services >= 10000 { 5 } else { 11 };

        let mut full_times = Vec::new();
        let mut full_bytes = 0;
        let mut full_lines = 0;
        for _ in 0..runs {
            let mut proxier = IptablesProxier::new(IptablesConfig::default());
            let start = Instant::now();
            let input = proxier.sync(&base);
            full_times.push(start.elapsed());
            let family = input.family(IpFamily::V4).unwrap();
            full_bytes = family.as_str().len();
            full_lines = family.lines().count();
        }

        let mut partial_times = Vec::new();
        let mut partial_lines = 0;
        let mut proxier = IptablesProxier::new(IptablesConfig::default());
        let first = proxier.sync(&base);
        proxier.mark_committed(&first);
        for run in 0..runs {
            let target = if run % 2 == 0 { &changed } else { &base };
            let start = Instant::now();
            let input = proxier.sync(target);
            partial_times.push(start.elapsed());
            let family = input.family(IpFamily::V4).unwrap();
            assert_eq!(family.rewritten_services(), 1);
            partial_lines = family.lines().count();
            proxier.mark_committed(&input);
        }

        println!(
            "iptables {services} services x {ENDPOINTS_PER_SERVICE} endpoints: generate full {} ({full_lines} lines, {:.1} MiB), single change {} ({partial_lines} lines)",
            ms(median(full_times)),
            full_bytes as f64 / (1024.0 * 1024.0),
            ms(median(partial_times)),
        );

        if services > apply_max {
            println!(
                "iptables {services} services: restore not timed (above KUBEPORT_BENCH_APPLY_MAX={apply_max})"
            );
        } else if let Ok(netns) = &netns {
            let tools = Iptables::in_network_namespace(IpFamily::V4, &netns.name);
            let mut proxier = IptablesProxier::new(IptablesConfig::default());
            let input = proxier.sync(&base);
            let start = Instant::now();
            tools
                .apply(input.family(IpFamily::V4).unwrap())
                .expect("full restore");
            let full_apply = start.elapsed();
            proxier.mark_committed(&input);

            let mut partial_apply = Vec::new();
            for run in 0..3 {
                let target = if run % 2 == 0 { &changed } else { &base };
                let input = proxier.sync(target);
                let start = Instant::now();
                tools
                    .apply(input.family(IpFamily::V4).unwrap())
                    .expect("partial restore");
                partial_apply.push(start.elapsed());
                proxier.mark_committed(&input);
            }
            println!(
                "iptables {services} services x {ENDPOINTS_PER_SERVICE} endpoints: iptables-nft-restore full {} (with jump rules), single change {}",
                ms(full_apply),
                ms(median(partial_apply)),
            );
            tools
                .cleanup(&IptablesProxier::cleanup_commands())
                .expect("cleanup");
        }
    }
}
