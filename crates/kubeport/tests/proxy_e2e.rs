//! End-to-end tests of `kubeport proxy` (nftables mode) on a miniature node made of network
//! namespaces (see `proxy_support`). Root only: other users get a printed SKIP.

mod proxy_support;

use std::time::{Duration, Instant};

use proxy_support::*;
use serde_json::{json, Value};

const NS: &str = "e2e";

macro_rules! require_root {
    () => {
        if let Some(reason) = skip_reason() {
            eprintln!("SKIP: {reason}");
            return;
        }
    };
}

/// Topology, API server (with the Node object and the test namespace) and a running proxy.
struct Setup {
    topo: Topology,
    api: ApiServer,
}

impl Setup {
    fn new(pod_nodes: &[&str]) -> Setup {
        let topo = Topology::new(pod_nodes);
        let api = ApiServer::start(&topo.node_ns);
        api.create(
            None,
            &core("Node", "nodes"),
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE},
                   "status": {"addresses": [{"type": "InternalIP", "address": topo.node_ip.to_string()},
                                            {"type": "Hostname", "address": NODE}]}}),
        );
        api.create(
            None,
            &core("Namespace", "namespaces"),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
        );
        Setup { topo, api }
    }

    /// Creates a selector-less Service; returns (clusterIP, nodePort or 0, healthCheckNodePort
    /// or 0).
    fn service(&self, name: &str, spec: Value) -> (String, u16, u16) {
        let created = self.api.create(
            Some(NS),
            &services(),
            json!({"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": name, "namespace": NS}, "spec": spec}),
        );
        let spec = &created["spec"];
        (
            spec["clusterIP"].as_str().unwrap().to_string(),
            spec["ports"][0]["nodePort"].as_u64().unwrap_or(0) as u16,
            spec["healthCheckNodePort"].as_u64().unwrap_or(0) as u16,
        )
    }

    fn slice(&self, name: &str, service: &str, protocol: &str, port: u16, pods: &[&str]) {
        let pods: Vec<&Pod> = pods.iter().map(|p| self.topo.pod(p)).collect();
        self.api.create(
            Some(NS),
            &endpoint_slices(),
            slice_json(NS, name, service, "p", protocol, port, &pods),
        );
    }

    fn replace_slice(&self, name: &str, service: &str, protocol: &str, port: u16, pods: &[&str]) {
        let pods: Vec<&Pod> = pods.iter().map(|p| self.topo.pod(p)).collect();
        self.api.replace(
            Some(NS),
            &endpoint_slices(),
            name,
            slice_json(NS, name, service, "p", protocol, port, &pods),
        );
    }

    fn proxy(&self) -> ProxyProcess {
        ProxyProcess::start(&self.topo, &self.api, &[])
    }

    /// Waits until `host:port` answers an HTTP request from `ns`.
    fn wait_http(&self, ns: &str, host: &str, port: u16) {
        wait_for(
            &format!("{host}:{port} to answer from {ns}"),
            Duration::from_secs(30),
            || {
                let lines = self.topo.http(ns, host, port, 1, 1.0);
                lines
                    .first()
                    .filter(|line| line.starts_with("pod"))
                    .cloned()
            },
        );
    }
}

fn tcp_port(name: &str, port: u16) -> Value {
    json!({"name": "p", "port": port, "targetPort": 8080, "protocol": name})
}

#[test]
fn cluster_ip_node_port_reject_health_metrics_delete_and_cleanup() {
    require_root!();
    let setup = Setup::new(&[NODE, NODE, OTHER_NODE]);
    let (web_ip, web_node_port, _) = setup.service(
        "web",
        json!({"type": "NodePort", "ports": [tcp_port("TCP", 80)]}),
    );
    setup.slice("web-1", "web", "TCP", 8080, &["pod1", "pod2", "pod3"]);
    let (empty_ip, empty_node_port, _) = setup.service(
        "empty",
        json!({"type": "NodePort", "ports": [tcp_port("TCP", 80)]}),
    );
    let mut proxy = setup.proxy();
    let topo = &setup.topo;
    let node_ip = topo.node_ip.to_string();

    // ClusterIP from a pod and from the node itself.
    setup.wait_http(&topo.pods[0].netns, &web_ip, 80);
    let from_pod = topo.http(&topo.pods[0].netns, &web_ip, 80, 30, 2.0);
    let counts = count_by_pod(&from_pod);
    assert!(
        from_pod.iter().all(|l| l.starts_with("pod")),
        "ClusterIP from a pod: {from_pod:?}"
    );
    assert!(counts.len() >= 2, "ClusterIP spreads: {counts:?}");
    let from_node = topo.http(&topo.node_ns, &web_ip, 80, 10, 2.0);
    assert!(
        from_node.iter().all(|l| l.starts_with("pod")),
        "ClusterIP from the node: {from_node:?}"
    );
    // The ClusterIP is not reachable from outside (the client has no route to it).
    let outside = topo.http(&topo.client_ns, &web_ip, 80, 1, 1.0);
    assert!(outside[0].starts_with("ERR"), "{outside:?}");

    // NodePort from the outside client spreads over all three endpoints.
    let answers = topo.http(&topo.client_ns, &node_ip, web_node_port, 90, 2.0);
    let counts = count_by_pod(&answers);
    assert_eq!(
        counts.keys().cloned().collect::<Vec<_>>(),
        ["pod1", "pod2", "pod3"],
        "{answers:?}"
    );
    for (pod, n) in &counts {
        assert!(*n >= 10, "{pod} got {n} of 90: {counts:?}");
    }
    // ETP Cluster masquerades: pods see the node's address, not the client's.
    assert!(answers
        .iter()
        .all(|l| !l.ends_with(&topo.client_ip.to_string())));

    // No endpoints: refused at once, from outside and from a pod.
    let refused = topo.http(&topo.client_ns, &node_ip, empty_node_port, 1, 3.0);
    assert!(
        refused[0].starts_with("ERR ConnectionRefusedError"),
        "{refused:?}"
    );
    let elapsed: u64 = refused[0].rsplit(' ').next().unwrap().parse().unwrap();
    assert!(elapsed < 1000, "rejected in {elapsed} ms");
    let refused = topo.http(&topo.pods[0].netns, &empty_ip, 80, 1, 3.0);
    assert!(
        refused[0].starts_with("ERR ConnectionRefusedError"),
        "{refused:?}"
    );

    // Health and metrics.
    let healthz = topo.get(&topo.node_ns, &node_ip, 10256, "/healthz");
    assert!(healthz.starts_with("HTTP/1.1 200 OK\r\n"), "{healthz}");
    assert!(
        healthz.contains("content-type: application/json\r\n"),
        "{healthz}"
    );
    assert!(
        healthz.contains("x-content-type-options: nosniff\r\n"),
        "{healthz}"
    );
    let body = healthz.split("\r\n\r\n").nth(1).unwrap();
    assert!(body.starts_with("{\"lastUpdated\": \""), "{body}");
    assert!(body.contains(" +0000 UTC m=+"), "{body}");
    assert!(body.ends_with(", \"nodeEligible\": true}"), "{body}");
    let livez = topo.get(&topo.node_ns, "127.0.0.1", 10256, "/livez");
    assert!(livez.starts_with("HTTP/1.1 200 OK\r\n"), "{livez}");
    let metrics = topo.get(&topo.node_ns, "127.0.0.1", 10249, "/metrics");
    for needle in [
        "# TYPE kubeproxy_sync_proxy_rules_duration_seconds histogram",
        "kubeproxy_sync_proxy_rules_service_changes_total ",
        "kubeproxy_sync_proxy_rules_endpoint_changes_total ",
        "kubeproxy_sync_proxy_rules_nftables_sync_failures_total 0",
        "kubeproxy_proxy_healthz_total{code=\"200\"} 1",
        "kubeproxy_sync_proxy_rules_no_local_endpoints_total{traffic_policy=\"internal\"} 0",
    ] {
        assert!(metrics.contains(needle), "missing {needle:?} in\n{metrics}");
    }
    // The slices carried a last-change-trigger-time: programming latency was observed.
    assert!(
        !metrics.contains("kubeproxy_network_programming_duration_seconds_count 0"),
        "{metrics}"
    );
    let sync_count = metrics
        .lines()
        .find_map(|l| l.strip_prefix("kubeproxy_sync_proxy_rules_duration_seconds_count "))
        .unwrap();
    assert!(sync_count.parse::<u64>().unwrap() >= 1);

    // Deleting the Service (and its slice) leaves no trace.
    assert!(topo.ruleset().contains("e2e/web/tcp/p"));
    setup.api.delete(Some(NS), &services(), "web");
    setup.api.delete(Some(NS), &endpoint_slices(), "web-1");
    wait_for(
        "the web service's rules to go",
        Duration::from_secs(20),
        || {
            let ruleset = topo.ruleset();
            (!ruleset.contains("e2e/web") && !ruleset.contains(&format!("{web_ip} "))).then_some(())
        },
    );
    assert!(topo.ruleset().contains("e2e/empty"));

    // --cleanup removes the table.
    proxy.stop();
    let out = in_ns(
        &topo.node_ns,
        env!("CARGO_BIN_EXE_kubeport"),
        &["proxy", "--cleanup"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!topo.ruleset().contains("kube-proxy"), "{}", topo.ruleset());
}

#[test]
fn external_traffic_policy_local_and_health_check_node_ports() {
    require_root!();
    let setup = Setup::new(&[NODE, NODE, OTHER_NODE]);
    let lb = |name: &str| {
        setup.service(
            name,
            json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local",
                   "ports": [tcp_port("TCP", 80)]}),
        )
    };
    let (_, local_node_port, local_hc) = lb("local");
    setup.slice("local-1", "local", "TCP", 8080, &["pod1", "pod2", "pod3"]);
    let (_, remote_node_port, remote_hc) = lb("remote");
    setup.slice("remote-1", "remote", "TCP", 8080, &["pod3"]);
    assert!(
        local_hc != 0 && remote_hc != 0,
        "health check node ports allocated"
    );
    let _proxy = setup.proxy();
    let topo = &setup.topo;
    let node_ip = topo.node_ip.to_string();

    setup.wait_http(&topo.client_ns, &node_ip, local_node_port);
    let answers = topo.http(&topo.client_ns, &node_ip, local_node_port, 40, 2.0);
    let counts = count_by_pod(&answers);
    assert_eq!(
        counts.keys().cloned().collect::<Vec<_>>(),
        ["pod1", "pod2"],
        "only local endpoints: {answers:?}"
    );
    let client_ip = topo.client_ip.to_string();
    assert!(
        answers
            .iter()
            .all(|l| l.ends_with(&format!(" {client_ip}"))),
        "the client's address is kept: {answers:?}"
    );

    // A node without local endpoints drops (no answer, no refusal).
    let dropped = topo.http(&topo.client_ns, &node_ip, remote_node_port, 1, 1.0);
    assert!(dropped[0].starts_with("ERR TimeoutError"), "{dropped:?}");

    // healthCheckNodePort: 200 with two local endpoints, 503 with none.
    let ok = wait_for("the health check server", Duration::from_secs(10), || {
        topo.try_get(&topo.client_ns, &node_ip, local_hc, "/")
    });
    assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
    assert!(ok.contains("content-type: application/json\r\n"), "{ok}");
    assert!(ok.contains("x-content-type-options: nosniff\r\n"), "{ok}");
    assert!(
        ok.contains("x-load-balancing-endpoint-weight: 2\r\n"),
        "{ok}"
    );
    assert!(
        ok.ends_with("\r\n\r\n{\n\t\"service\": {\n\t\t\"namespace\": \"e2e\",\n\t\t\"name\": \"local\"\n\t},\n\t\"localEndpoints\": 2,\n\t\"serviceProxyHealthy\": true\n}"),
        "{ok:?}"
    );
    let unavailable = topo.get(&topo.client_ns, &node_ip, remote_hc, "/anything");
    assert!(
        unavailable.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{unavailable}"
    );
    assert!(
        unavailable.contains("\"localEndpoints\": 0,"),
        "{unavailable}"
    );
    assert!(unavailable.contains("x-load-balancing-endpoint-weight: 0\r\n"));

    // Pods reaching the external entry are short-circuited to all endpoints.
    let from_pod = topo.http(&topo.pods[0].netns, &node_ip, remote_node_port, 3, 2.0);
    assert!(
        from_pod.iter().all(|l| l.starts_with("pod3")),
        "{from_pod:?}\n{}",
        topo.ruleset()
    );

    // The health check server goes away with its Service.
    setup.api.delete(Some(NS), &services(), "local");
    wait_for(
        "the health check port to close",
        Duration::from_secs(20),
        || {
            let out = topo.http(&topo.client_ns, &node_ip, local_hc, 1, 1.0);
            out[0]
                .starts_with("ERR ConnectionRefusedError")
                .then_some(())
        },
    );
}

#[test]
fn udp_round_trip_and_stale_conntrack_entries_are_cleared() {
    require_root!();
    let setup = Setup::new(&[NODE, NODE]);
    let (dns_ip, dns_node_port, _) = setup.service(
        "dns",
        json!({"type": "NodePort", "ports": [{"name": "p", "port": 53, "targetPort": 5353, "protocol": "UDP"}]}),
    );
    setup.slice("dns-1", "dns", "UDP", 5353, &["pod1"]);
    let _proxy = setup.proxy();
    let topo = &setup.topo;
    let node_ip = topo.node_ip.to_string();

    // Round trips through the ClusterIP (from a pod) and the NodePort (from outside).
    let first = wait_for("the UDP service", Duration::from_secs(30), || {
        let answer = topo.udp(&topo.pods[1].netns, &dns_ip, 53, 40001, 1.0);
        answer.starts_with("pod").then_some(answer)
    });
    assert!(first.starts_with("pod1 "), "{first}");
    // externalTrafficPolicy Cluster: the pod sees the node's address.
    let answer = topo.udp(&topo.client_ns, &node_ip, dns_node_port, 40000, 2.0);
    assert_eq!(answer, format!("pod1 10.200.{}.1", topo.subnet));

    if !has_tool("conntrack") {
        eprintln!("SKIP (conntrack part): the conntrack tool is not installed");
        return;
    }
    let pod1_ip = topo.pod("pod1").ip.to_string();
    let tracked = in_ns_ok(&topo.node_ns, "conntrack", &["-L", "-p", "udp"]);
    assert!(tracked.contains(&format!("src={pod1_ip}")), "{tracked}");

    // pod1 leaves the Service (its server keeps running): the next datagram from the same
    // source port must reach pod2, which only happens once the flow to pod1 is forgotten.
    setup.replace_slice("dns-1", "dns", "UDP", 5353, &["pod2"]);
    let started = Instant::now();
    let answer = wait_for("the flow to move to pod2", Duration::from_secs(20), || {
        let answer = topo.udp(&topo.client_ns, &node_ip, dns_node_port, 40000, 0.5);
        answer.starts_with("pod2").then_some(answer)
    });
    assert_eq!(answer, format!("pod2 10.200.{}.1", topo.subnet));
    assert!(started.elapsed() < Duration::from_secs(10));
    let tracked = in_ns_ok(&topo.node_ns, "conntrack", &["-L", "-p", "udp"]);
    assert!(
        !tracked.contains(&format!("src={pod1_ip}")),
        "no entry towards the removed endpoint is left: {tracked}"
    );
}

#[test]
fn restart_keeps_connections_and_api_outage_keeps_rules() {
    require_root!();
    let setup = Setup::new(&[NODE, NODE]);
    let (_, hold_node_port, _) = setup.service(
        "hold",
        json!({"type": "NodePort", "ports": [tcp_port("TCP", 80)]}),
    );
    setup.slice("hold-1", "hold", "TCP", 8080, &["pod1"]);
    let (_, gone_node_port, _) = setup.service(
        "gone",
        json!({"type": "NodePort", "ports": [tcp_port("TCP", 80)]}),
    );
    setup.slice("gone-1", "gone", "TCP", 8080, &["pod2"]);
    let mut proxy = setup.proxy();
    let node_ip = setup.topo.node_ip.to_string();
    let client_ns = setup.topo.client_ns.clone();
    setup.wait_http(&client_ns, &node_ip, hold_node_port);

    // An established connection survives a proxy restart.
    let mut held = setup.topo.hold(&client_ns, &node_ip, hold_node_port);
    assert!(held.exchange("a").starts_with("pod1 "));
    proxy.stop();
    let proxy = ProxyProcess::start(&setup.topo, &setup.api, &[]);
    wait_for(
        "the restarted proxy to sync",
        Duration::from_secs(30),
        || {
            proxy
                .log_text()
                .contains("initial lists received")
                .then_some(())
        },
    );
    assert!(held.exchange("b").starts_with("pod1 "));
    setup.wait_http(&client_ns, &node_ip, hold_node_port);
    assert!(held.exchange("c").starts_with("pod1 "));

    // The API server becomes unreachable: the rules stay.
    setup.api.set_reachable(false);
    std::thread::sleep(Duration::from_secs(2));
    setup.api.delete(Some(NS), &services(), "gone");
    setup.api.delete(Some(NS), &endpoint_slices(), "gone-1");
    std::thread::sleep(Duration::from_secs(2));
    let still = setup
        .topo
        .http(&client_ns, &node_ip, gone_node_port, 3, 2.0);
    assert!(still.iter().all(|l| l.starts_with("pod2")), "{still:?}");
    let healthz = setup
        .topo
        .get(&setup.topo.node_ns, "127.0.0.1", 10256, "/healthz");
    assert!(healthz.starts_with("HTTP/1.1 200 OK"), "{healthz}");
    // Reachable again: the relist brings the deletion.
    setup.api.set_reachable(true);
    wait_for(
        "the deleted service's rules to go",
        Duration::from_secs(60),
        || (!setup.topo.ruleset().contains("e2e/gone")).then_some(()),
    );
    let refused = setup
        .topo
        .http(&client_ns, &node_ip, gone_node_port, 1, 1.0);
    assert!(refused[0].starts_with("ERR"), "{refused:?}");
    assert!(held.exchange("d").starts_with("pod1 "));
}

#[test]
fn iptables_mode_serves_cluster_ip_and_node_port_and_cleans_up() {
    require_root!();
    if !has_tool("iptables-nft-restore") {
        eprintln!("SKIP: iptables-nft-restore is not installed");
        return;
    }
    let setup = Setup::new(&[NODE, OTHER_NODE]);
    let (web_ip, web_node_port, _) = setup.service(
        "web",
        json!({"type": "NodePort", "ports": [tcp_port("TCP", 80)]}),
    );
    setup.slice("web-1", "web", "TCP", 8080, &["pod1", "pod2"]);
    let (_, empty_node_port, _) = setup.service(
        "empty",
        json!({"type": "NodePort", "ports": [tcp_port("TCP", 80)]}),
    );
    let mut proxy = ProxyProcess::start(&setup.topo, &setup.api, &["--proxy-mode", "iptables"]);
    let topo = &setup.topo;
    let node_ip = topo.node_ip.to_string();

    setup.wait_http(&topo.pods[0].netns, &web_ip, 80);
    let answers = topo.http(&topo.client_ns, &node_ip, web_node_port, 40, 2.0);
    let counts = count_by_pod(&answers);
    assert_eq!(
        counts.keys().cloned().collect::<Vec<_>>(),
        ["pod1", "pod2"],
        "{answers:?}"
    );
    let refused = topo.http(&topo.client_ns, &node_ip, empty_node_port, 1, 3.0);
    assert!(
        refused[0].starts_with("ERR ConnectionRefusedError"),
        "{refused:?}"
    );
    let saved = in_ns_ok(&topo.node_ns, "iptables-nft-save", &["-t", "nat"]);
    assert!(saved.contains("-A KUBE-SERVICES"), "{saved}");
    assert!(saved.contains("\"e2e/web:p cluster IP\""), "{saved}");
    let metrics = topo.get(&topo.node_ns, "127.0.0.1", 10249, "/metrics");
    assert!(
        metrics.contains("kubeproxy_sync_proxy_rules_iptables_restore_failures_total 0"),
        "{metrics}"
    );
    assert!(metrics.contains("# TYPE kubeproxy_sync_full_proxy_rules_duration_seconds histogram"));
    assert!(!metrics.contains("nftables"), "{metrics}");

    proxy.stop();
    let out = in_ns(
        &topo.node_ns,
        env!("CARGO_BIN_EXE_kubeport"),
        &["proxy", "--cleanup"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let saved = in_ns_ok(&topo.node_ns, "iptables-nft-save", &[]);
    assert!(!saved.contains("KUBE-"), "{saved}");
}

#[test]
fn refuses_to_run_in_the_host_network_namespace() {
    // Only where the host namespace is recognisable by its fixed inode (recent kernels)
    // or PID 1's handle is readable; the bogus kubeconfig makes the run fail before any rule
    // is touched even if the guard did not trigger.
    let own = std::fs::metadata("/proc/self/ns/net").map(|m| {
        use std::os::unix::fs::MetadataExt;
        m.ino()
    });
    let init = std::fs::metadata("/proc/1/ns/net").map(|m| {
        use std::os::unix::fs::MetadataExt;
        m.ino()
    });
    let in_host = match (own, init) {
        (Ok(own), Ok(init)) => own == init,
        (Ok(own), Err(_)) => own == 0xEFFF_FFF9,
        _ => false,
    };
    if !in_host {
        eprintln!("SKIP: this test process does not run in the initial network namespace");
        return;
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubeport"))
        .args(["proxy", "--kubeconfig", "/nonexistent/kubeconfig"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refusing to program the firewall of the host's network namespace"),
        "{stderr}"
    );
}
