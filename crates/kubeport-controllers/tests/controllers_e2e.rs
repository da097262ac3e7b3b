//! End-to-end: the controllers against an in-process API server over HTTPS, observed with
//! the real kubectl. Nodes are Node objects and a fake kubelet moves pods along through the
//! API (no processes run).

mod common;

use common::{rows, set_pod_ready, Cluster};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Endpoints, Pod};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(30);

fn is_kube_suffix(s: &str, len: std::ops::RangeInclusive<usize>) -> bool {
    len.contains(&s.len()) && s.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c))
}

async fn slices(c: &Cluster, ns: &str, svc: &str) -> Vec<EndpointSlice> {
    Api::<EndpointSlice>::namespaced(c.client.clone(), ns)
        .list(&ListParams::default().labels(&format!("kubernetes.io/service-name={svc}")))
        .await
        .unwrap()
        .items
}

async fn endpoints(c: &Cluster, ns: &str, name: &str) -> Option<Endpoints> {
    Api::<Endpoints>::namespaced(c.client.clone(), ns)
        .get_opt(name)
        .await
        .unwrap()
}

fn ready_ips(ep: &Endpoints) -> Vec<String> {
    ep.subsets
        .iter()
        .flatten()
        .flat_map(|s| s.addresses.iter().flatten().map(|a| a.ip.clone()))
        .collect()
}

fn not_ready_ips(ep: &Endpoints) -> Vec<String> {
    ep.subsets
        .iter()
        .flatten()
        .flat_map(|s| s.not_ready_addresses.iter().flatten().map(|a| a.ip.clone()))
        .collect()
}

/// Seed 001: a 6-replica ReplicaSet on a 3-node kind-like cluster and a ClusterIP Service.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn seed_001_replicaset_spreads_pods_and_fills_endpoints() {
    require_kubectl!();
    let mut c = Cluster::start("*").await;
    let nodes = [
        "service-demo-control-plane",
        "service-demo-worker",
        "service-demo-worker2",
    ];
    // As in the seed, kind's control plane runs workloads: role label, no NoSchedule taint.
    c.create_nodes(&nodes, &["service-demo-control-plane"], false)
        .await;
    c.start_kubelet();
    c.ok(&["create", "namespace", "dev"]).await;
    c.ok(&[
        "apply",
        "-f",
        &common::seed("seed-001/nginx-replicaset.yaml"),
    ])
    .await;
    c.ok(&[
        "apply",
        "-f",
        &common::seed("seed-001/nginx-service-clusterip.yaml"),
    ])
    .await;

    c.wait_for(T, "6 running pods", || async {
        let pods = c.pods("dev").await;
        pods.len() == 6
            && pods
                .iter()
                .all(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
    })
    .await;
    let wide = c.ok(&["get", "pod", "-n", "dev", "-o", "wide"]).await;
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for r in rows(&wide) {
        // NAME READY STATUS RESTARTS AGE IP NODE NOMINATED READINESS
        assert!(r[0].starts_with("nginx-replicaset-"), "{wide}");
        assert!(
            is_kube_suffix(&r[0]["nginx-replicaset-".len()..], 5..=5),
            "{}",
            r[0]
        );
        assert_eq!(r[1], "1/1", "{wide}");
        assert_eq!(r[2], "Running", "{wide}");
        *per_node.entry(r[6].clone()).or_default() += 1;
    }
    assert_eq!(per_node.len(), 3, "{wide}");
    assert!(
        per_node.values().all(|n| *n == 2),
        "pods are not spread 2 per node: {wide}"
    );

    c.wait_for(T, "6 ready endpoints", || async {
        endpoints(&c, "dev", "nginx-service")
            .await
            .is_some_and(|e| ready_ips(&e).len() == 6)
    })
    .await;
    let ep = c
        .ok(&["get", "endpoints", "-n", "dev", "nginx-service"])
        .await;
    let row = &rows(&ep)[0];
    assert_eq!(row[0], "nginx-service");
    // Addresses sort as strings; three are shown, then how many more.
    assert_eq!(
        ep.lines()
            .nth(1)
            .unwrap()
            .split_whitespace()
            .skip(1)
            .take(4)
            .collect::<Vec<_>>()
            .join(" "),
        "10.244.0.2:80,10.244.0.3:80,10.244.1.2:80 + 3 more...",
        "{ep}"
    );
    let describe = c
        .ok(&["describe", "svc", "-n", "dev", "nginx-service"])
        .await;
    assert!(
        describe.lines().any(|l| l.starts_with("Endpoints:")
            && l.ends_with("10.244.0.2:80,10.244.0.3:80,10.244.1.2:80 + 3 more...")),
        "{describe}"
    );

    // The slice: one, named from the Service, labelled, owned, annotated.
    let s = slices(&c, "dev", "nginx-service").await;
    assert_eq!(s.len(), 1);
    let slice = &s[0];
    let name = slice.name_any();
    assert!(
        name.starts_with("nginx-service-") && name.len() == "nginx-service-".len() + 5,
        "{name}"
    );
    assert_eq!(
        slice.labels()["endpointslice.kubernetes.io/managed-by"],
        "endpointslice-controller.k8s.io"
    );
    assert_eq!(slice.labels()["app"], "nginx-service");
    let owner = &slice.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Service", "nginx-service")
    );
    assert_eq!(
        (owner.controller, owner.block_owner_deletion),
        (Some(true), Some(true))
    );
    assert!(slice
        .annotations()
        .contains_key("endpoints.kubernetes.io/last-change-trigger-time"));
    assert_eq!(slice.endpoints.len(), 6);
    for e in &slice.endpoints {
        let cond = e.conditions.as_ref().unwrap();
        assert_eq!(
            (cond.ready, cond.serving, cond.terminating),
            (Some(true), Some(true), Some(false))
        );
        assert!(nodes.contains(&e.node_name.as_deref().unwrap()));
        assert_eq!(e.target_ref.as_ref().unwrap().kind.as_deref(), Some("Pod"));
    }
    let ports = slice.ports.as_ref().unwrap();
    assert_eq!(
        (ports[0].name.as_deref(), ports[0].port),
        (Some("http"), Some(80))
    );
    let eps_table = c.ok(&["get", "endpointslices", "-n", "dev"]).await;
    let row = rows(&eps_table).into_iter().find(|r| r[0] == name).unwrap();
    assert_eq!(
        row[1..7].join(" "),
        "IPv4 80 10.244.0.2,10.244.0.3,10.244.1.2 + 3 more...",
        "{eps_table}"
    );

    // The API server's own `kubernetes` endpoints are left alone.
    let default_slices = c
        .ok(&["get", "endpointslices", "-n", "default", "-o", "name"])
        .await;
    assert_eq!(
        default_slices.trim(),
        "endpointslice.discovery.k8s.io/kubernetes"
    );

    // What kubectl shows about the ReplicaSet and the scheduling.
    let rs = c.ok(&["get", "rs", "-n", "dev"]).await;
    assert_eq!(
        rows(&rs)[0][..4],
        ["nginx-replicaset", "6", "6", "6"],
        "{rs}"
    );
    let describe_rs = c
        .ok(&["describe", "rs", "-n", "dev", "nginx-replicaset"])
        .await;
    assert!(
        describe_rs.contains("Pods Status:  6 Running / 0 Waiting / 0 Succeeded / 0 Failed"),
        "{describe_rs}"
    );
    assert!(
        describe_rs.lines().any(|l| l.contains("SuccessfulCreate")
            && l.contains("replicaset-controller")
            && l.contains("Created pod: nginx-replicaset-")),
        "{describe_rs}"
    );
    let events = c
        .ok(&[
            "get",
            "events",
            "-n",
            "dev",
            "--field-selector",
            "reason=Scheduled",
        ])
        .await;
    assert_eq!(rows(&events).len(), 6, "{events}");
    assert!(
        events.contains("Successfully assigned dev/nginx-replicaset-"),
        "{events}"
    );

    // Scale 6 -> 3 leaves 3 pods (the fake kubelet finishes the graceful deletions).
    c.ok(&[
        "scale",
        "rs",
        "nginx-replicaset",
        "-n",
        "dev",
        "--replicas=3",
    ])
    .await;
    c.wait_for(T, "3 pods left", || async {
        c.pods("dev").await.len() == 3
    })
    .await;
    c.wait_for(T, "3 endpoints", || async {
        endpoints(&c, "dev", "nginx-service")
            .await
            .is_some_and(|e| ready_ips(&e).len() == 3)
            && slices(&c, "dev", "nginx-service").await[0].endpoints.len() == 3
    })
    .await;
    c.wait_for(T, "rs status 3", || async {
        let rs = Api::<ReplicaSet>::namespaced(c.client.clone(), "dev")
            .get("nginx-replicaset")
            .await
            .unwrap();
        let st = rs.status.unwrap();
        st.replicas == 3
            && st.ready_replicas == Some(3)
            && st.observed_generation == rs.metadata.generation
    })
    .await;
    let rs = c.ok(&["get", "rs", "-n", "dev"]).await;
    assert_eq!(
        rows(&rs)[0][..4],
        ["nginx-replicaset", "3", "3", "3"],
        "{rs}"
    );
    let describe_rs = c
        .ok(&["describe", "rs", "-n", "dev", "nginx-replicaset"])
        .await;
    assert!(
        describe_rs.contains("Deleted pod: nginx-replicaset-"),
        "{describe_rs}"
    );

    // Deleting the ReplicaSet removes its pods (garbage collector) and empties the endpoints.
    let out = c
        .ok(&["delete", "rs", "-n", "dev", "nginx-replicaset"])
        .await;
    assert_eq!(out.trim(), "replicaset.apps \"nginx-replicaset\" deleted");
    c.wait_for(T, "pods garbage-collected", || async {
        c.pods("dev").await.is_empty()
    })
    .await;
    c.wait_for(T, "empty endpoints", || async {
        endpoints(&c, "dev", "nginx-service")
            .await
            .is_some_and(|e| e.subsets.is_none())
    })
    .await;
    let ep = c
        .ok(&["get", "endpoints", "-n", "dev", "nginx-service"])
        .await;
    assert_eq!(rows(&ep)[0][1], "<none>", "{ep}");
    c.shutdown().await;
}

/// Readiness changes reach the Endpoints and the slice quickly; terminating pods are marked.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readiness_and_termination_reach_endpoints_fast() {
    require_kubectl!();
    let mut c = Cluster::start("*").await;
    c.create_nodes(&["n1", "n2"], &[], false).await;
    c.kubelet.finish_deletions.store(false, Ordering::SeqCst);
    c.start_kubelet();
    c.ok(&["create", "namespace", "dev"]).await;
    c.ok(&[
        "apply",
        "-f",
        &common::seed("seed-001/nginx-replicaset.yaml"),
    ])
    .await;
    c.ok(&[
        "apply",
        "-f",
        &common::seed("seed-001/nginx-service-clusterip.yaml"),
    ])
    .await;
    c.wait_for(T, "6 ready endpoints", || async {
        endpoints(&c, "dev", "nginx-service")
            .await
            .is_some_and(|e| ready_ips(&e).len() == 6)
    })
    .await;

    let pods = c.pods("dev").await;
    let victim = pods[0].clone();
    let ip = victim.status.as_ref().unwrap().pod_ip.clone().unwrap();
    let start = Instant::now();
    set_pod_ready(&c.client, "dev", &victim.name_any(), false).await;
    let mut ep_seen = None;
    let mut slice_seen = None;
    while ep_seen.is_none() || slice_seen.is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "readiness change not propagated"
        );
        if ep_seen.is_none()
            && endpoints(&c, "dev", "nginx-service")
                .await
                .is_some_and(|e| not_ready_ips(&e) == vec![ip.clone()])
        {
            ep_seen = Some(start.elapsed());
        }
        if slice_seen.is_none()
            && slices(&c, "dev", "nginx-service")
                .await
                .iter()
                .flat_map(|s| s.endpoints.iter())
                .any(|e| {
                    e.addresses[0] == ip && e.conditions.as_ref().unwrap().ready == Some(false)
                })
        {
            slice_seen = Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!(
        "not-ready reached Endpoints after {:?}, EndpointSlice after {:?}",
        ep_seen.unwrap(),
        slice_seen.unwrap()
    );
    assert!(ep_seen.unwrap() < Duration::from_secs(1));
    assert!(slice_seen.unwrap() < Duration::from_secs(1));
    let json = c
        .ok(&[
            "get",
            "endpoints",
            "-n",
            "dev",
            "nginx-service",
            "-o",
            "jsonpath={.subsets[0].notReadyAddresses[0].ip}",
        ])
        .await;
    assert_eq!(json, ip);

    // Back to ready.
    set_pod_ready(&c.client, "dev", &victim.name_any(), true).await;
    c.wait_for(Duration::from_secs(2), "ready again", || async {
        endpoints(&c, "dev", "nginx-service")
            .await
            .is_some_and(|e| ready_ips(&e).len() == 6 && not_ready_ips(&e).is_empty())
    })
    .await;

    // A terminating pod (the kubelet has not finished it yet) stays in the slice as
    // terminating, serving, not ready; the Endpoints drop it.
    let doomed = pods[1].clone();
    let dip = doomed.status.as_ref().unwrap().pod_ip.clone().unwrap();
    c.ok(&[
        "delete",
        "pod",
        "-n",
        "dev",
        &doomed.name_any(),
        "--wait=false",
    ])
    .await;
    c.wait_for(Duration::from_secs(2), "terminating endpoint", || async {
        slices(&c, "dev", "nginx-service")
            .await
            .iter()
            .flat_map(|s| s.endpoints.iter())
            .any(|e| {
                let cond = e.conditions.as_ref().unwrap();
                e.addresses[0] == dip
                    && cond.terminating == Some(true)
                    && cond.serving == Some(true)
                    && cond.ready == Some(false)
            })
            && endpoints(&c, "dev", "nginx-service")
                .await
                .is_some_and(|e| !ready_ips(&e).contains(&dip) && !not_ready_ips(&e).contains(&dip))
    })
    .await;
    let term = c
        .ok(&["get", "endpointslices", "-n", "dev", "-o", &format!("jsonpath={{.items[0].endpoints[?(@.addresses[0]==\"{dip}\")].conditions.terminating}}")])
        .await;
    assert_eq!(term, "true");
    // The ReplicaSet replaced it meanwhile.
    c.wait_for(T, "replacement pod", || async {
        c.pods("dev")
            .await
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .count()
            == 6
    })
    .await;
    c.kubelet.finish_deletions.store(true, Ordering::SeqCst);
    c.wait_for(T, "terminated pod gone from the slice", || async {
        !slices(&c, "dev", "nginx-service")
            .await
            .iter()
            .flat_map(|s| s.endpoints.iter())
            .any(|e| e.addresses[0] == dip)
    })
    .await;
    c.shutdown().await;
}

/// A Deployment rolls out, then rolls to a new ReplicaSet on an image change.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deployment_rollout_and_image_change() {
    require_kubectl!();
    let mut c = Cluster::start("*").await;
    c.create_nodes(&["cp", "w1", "w2"], &["cp"], true).await;
    c.start_kubelet();
    c.ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx:1.26",
        "--replicas=3",
        "--port=80",
    ])
    .await;
    let out = c
        .ok(&["rollout", "status", "deployment/web", "--timeout=60s"])
        .await;
    assert!(
        out.trim_end()
            .ends_with("deployment \"web\" successfully rolled out"),
        "{out}"
    );
    let get = c.ok(&["get", "deploy", "web"]).await;
    assert_eq!(rows(&get)[0][..4], ["web", "3/3", "3", "3"], "{get}");
    // The control plane is tainted: nothing runs there.
    let wide = c.ok(&["get", "pods", "-o", "wide"]).await;
    assert!(rows(&wide).iter().all(|r| r[6] != "cp"), "{wide}");

    let rs1 = c.ok(&["get", "rs", "-o", "name"]).await;
    let rs1 = rs1
        .trim()
        .trim_start_matches("replicaset.apps/")
        .to_string();
    let hash1 = rs1.trim_start_matches("web-").to_string();
    assert!(is_kube_suffix(&hash1, 9..=10), "{rs1}");
    let labels = c.ok(&["get", "rs", &rs1, "-o", "jsonpath={.spec.selector.matchLabels.pod-template-hash} {.metadata.annotations.deployment\\.kubernetes\\.io/revision}"]).await;
    assert_eq!(labels, format!("{hash1} 1"));
    let pod_names = c.ok(&["get", "pods", "-o", "name"]).await;
    assert!(
        pod_names
            .lines()
            .all(|l| l.starts_with(&format!("pod/{rs1}-"))),
        "{pod_names}"
    );

    c.ok(&["set", "image", "deployment/web", "nginx=nginx:1.27"])
        .await;
    let out = c
        .ok(&["rollout", "status", "deployment/web", "--timeout=60s"])
        .await;
    assert!(
        out.trim_end()
            .ends_with("deployment \"web\" successfully rolled out"),
        "{out}"
    );
    c.wait_for(T, "old pods gone", || async {
        let pods = c.pods("default").await;
        pods.len() == 3
            && pods.iter().all(|p| {
                p.spec.as_ref().unwrap().containers[0].image.as_deref() == Some("nginx:1.27")
            })
    })
    .await;
    let rs = c.ok(&["get", "rs"]).await;
    let rs_rows = rows(&rs);
    assert_eq!(rs_rows.len(), 2, "{rs}");
    let new = rs_rows.iter().find(|r| r[0] != rs1).unwrap();
    let old = rs_rows.iter().find(|r| r[0] == rs1).unwrap();
    assert_eq!(new[1..4], ["3", "3", "3"], "{rs}");
    assert_eq!(old[1..4], ["0", "0", "0"], "{rs}");
    let get = c.ok(&["get", "deploy", "web"]).await;
    assert_eq!(rows(&get)[0][..4], ["web", "3/3", "3", "3"], "{get}");
    let ann = c
        .ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}",
        ])
        .await;
    assert_eq!(ann, "2");
    let describe = c.ok(&["describe", "deploy", "web"]).await;
    assert!(
        describe
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["Available", "True", "MinimumReplicasAvailable"]),
        "{describe}"
    );
    assert!(
        describe
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["Progressing", "True", "NewReplicaSetAvailable"]),
        "{describe}"
    );
    assert!(
        describe.contains(&format!(
            "NewReplicaSet:   {} (3/3 replicas created)",
            new[0]
        )),
        "{describe}"
    );
    assert!(
        describe.contains(&format!("Scaled up replica set {} to 1", new[0])),
        "{describe}"
    );
    assert!(
        describe.contains(&format!("Scaled down replica set {rs1} to 2 from 3")),
        "{describe}"
    );
    let cond = c
        .ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Progressing\")].message}",
        ])
        .await;
    assert_eq!(
        cond,
        format!("ReplicaSet \"{}\" has successfully progressed.", new[0])
    );
    let history = c.ok(&["rollout", "history", "deployment/web"]).await;
    assert!(
        history.lines().any(|l| l.trim_start().starts_with('1'))
            && history.lines().any(|l| l.trim_start().starts_with('2')),
        "{history}"
    );

    // Scaling goes to the new ReplicaSet.
    c.ok(&["scale", "deployment/web", "--replicas=5"]).await;
    let out = c
        .ok(&["rollout", "status", "deployment/web", "--timeout=60s"])
        .await;
    assert!(out.contains("successfully rolled out"), "{out}");
    let get = c.ok(&["get", "deploy", "web"]).await;
    assert_eq!(rows(&get)[0][..4], ["web", "5/5", "5", "5"], "{get}");

    // Deleting the Deployment cascades to its ReplicaSets and pods.
    c.ok(&["delete", "deployment", "web"]).await;
    c.wait_for(T, "cascade", || async {
        c.pods("default").await.is_empty()
            && Api::<ReplicaSet>::namespaced(c.client.clone(), "default")
                .list(&Default::default())
                .await
                .unwrap()
                .items
                .is_empty()
    })
    .await;
    c.shutdown().await;
}

/// Recreate stops every old pod before starting new ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deployment_recreate_strategy() {
    require_kubectl!();
    let mut c = Cluster::start("*").await;
    c.create_nodes(&["w1", "w2"], &[], false).await;
    c.start_kubelet();
    c.ok(&[
        "create",
        "deployment",
        "app",
        "--image=busybox:1.36",
        "--replicas=2",
    ])
    .await;
    c.ok(&[
        "patch",
        "deployment",
        "app",
        "--type=merge",
        "-p",
        r#"{"spec":{"strategy":{"type":"Recreate","rollingUpdate":null}}}"#,
    ])
    .await;
    c.ok(&["rollout", "status", "deployment/app", "--timeout=60s"])
        .await;
    c.ok(&["set", "image", "deployment/app", "busybox=busybox:1.37"])
        .await;
    let out = c
        .ok(&["rollout", "status", "deployment/app", "--timeout=60s"])
        .await;
    assert!(out.contains("successfully rolled out"), "{out}");
    let describe = c.ok(&["describe", "deploy", "app"]).await;
    assert!(
        describe
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["StrategyType:", "Recreate"]),
        "{describe}"
    );

    assert!(describe.contains("to 0 from 2"), "{describe}");
    c.shutdown().await;
}

/// `targetPort: http` resolves per pod; a pod without the port is left out of the Endpoints
/// and its port list (kube puts it in a port-less slice, which `describe svc` shows as a
/// bare IP, as against a real cluster).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn named_target_port_resolves_per_pod() {
    require_kubectl!();
    let mut c = Cluster::start("*").await;
    c.create_nodes(&["w1"], &[], false).await;
    c.start_kubelet();
    let manifest = r#"
apiVersion: v1
kind: Service
metadata: {name: named, namespace: default}
spec:
  selector: {app: named}
  ports: [{name: web, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Pod
metadata: {name: a, labels: {app: named}}
spec: {containers: [{name: c, image: nginx, ports: [{name: http, containerPort: 8080}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: b, labels: {app: named}}
spec: {containers: [{name: c, image: nginx, ports: [{name: http, containerPort: 9090}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: c, labels: {app: named}}
spec: {containers: [{name: c, image: nginx, ports: [{name: metrics, containerPort: 9100}]}]}
"#;
    let f = c.dir.path().join("named.yaml");
    std::fs::write(&f, manifest).unwrap();
    c.ok(&["apply", "-f", f.to_str().unwrap()]).await;
    c.wait_for(T, "three running pods", || async {
        let pods = c.pods("default").await;
        pods.len() == 3
            && pods
                .iter()
                .all(|p| p.status.as_ref().and_then(|s| s.pod_ip.as_ref()).is_some())
    })
    .await;
    let ip = |name: &str| {
        let c = &c;
        let name = name.to_string();
        async move {
            Api::<Pod>::namespaced(c.client.clone(), "default")
                .get(&name)
                .await
                .unwrap()
                .status
                .unwrap()
                .pod_ip
                .unwrap()
        }
    };
    let (a, b, no_port) = (ip("a").await, ip("b").await, ip("c").await);
    c.wait_for(T, "two endpoints", || async {
        endpoints(&c, "default", "named")
            .await
            .is_some_and(|e| ready_ips(&e).len() == 2)
    })
    .await;
    let ep = c.ok(&["get", "endpoints", "named"]).await;
    let mut want = [format!("{a}:8080"), format!("{b}:9090")];
    want.sort();
    assert_eq!(rows(&ep)[0][1], want.join(","), "{ep}");
    // Slices: one per port list, the port-less pod in its own slice without ports.
    c.wait_for(T, "three slices", || async {
        slices(&c, "default", "named").await.len() == 3
    })
    .await;
    let all = slices(&c, "default", "named").await;
    let mut by_port: Vec<(Option<i32>, usize)> = all
        .iter()
        .map(|s| {
            (
                s.ports
                    .as_ref()
                    .and_then(|p| p.first())
                    .and_then(|p| p.port),
                s.endpoints.len(),
            )
        })
        .collect();
    by_port.sort();
    assert_eq!(by_port, vec![(None, 1), (Some(8080), 1), (Some(9090), 1)]);
    let describe = c.ok(&["describe", "svc", "named"]).await;
    let line = describe
        .lines()
        .find(|l| l.starts_with("Endpoints:"))
        .unwrap();
    let mut shown: Vec<&str> = line.split_whitespace().nth(1).unwrap().split(',').collect();
    shown.sort();
    let mut with_bare: Vec<&str> = want
        .iter()
        .map(String::as_str)
        .chain([no_port.as_str()])
        .collect();
    with_bare.sort();
    assert_eq!(shown, with_bare, "{describe}");
    assert!(
        describe
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["TargetPort:", "http/TCP"]),
        "{describe}"
    );
    c.shutdown().await;
}

/// Foreground and orphan cascades.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn garbage_collector_foreground_and_orphan() {
    require_kubectl!();
    let mut c = Cluster::start("*").await;
    c.create_nodes(&["w1"], &[], false).await;
    c.start_kubelet();
    let rs = |name: &str| {
        format!(
            "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {{name: {name}}}\nspec:\n  replicas: 2\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec: {{containers: [{{name: c, image: nginx}}]}}\n"
        )
    };
    for name in ["keep", "fg"] {
        let f = c.dir.path().join(format!("{name}.yaml"));
        std::fs::write(&f, rs(name)).unwrap();
        c.ok(&["apply", "-f", f.to_str().unwrap()]).await;
    }
    c.wait_for(T, "4 running pods", || async {
        let pods = c.pods("default").await;
        pods.len() == 4
            && pods
                .iter()
                .all(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
    })
    .await;

    // Orphan: the pods stay, without owner references.
    c.ok(&["delete", "rs", "keep", "--cascade=orphan"]).await;
    c.wait_for(T, "orphans released", || async {
        let pods = c.pods("default").await;
        let keep: Vec<&Pod> = pods
            .iter()
            .filter(|p| p.labels()["app"] == "keep")
            .collect();
        keep.len() == 2
            && keep.iter().all(|p| p.owner_references().is_empty())
            && Api::<ReplicaSet>::namespaced(c.client.clone(), "default")
                .get_opt("keep")
                .await
                .unwrap()
                .is_none()
    })
    .await;

    // Foreground: kubectl waits until the pods are gone, then the ReplicaSet.
    let start = Instant::now();
    c.ok(&[
        "delete",
        "rs",
        "fg",
        "--cascade=foreground",
        "--timeout=30s",
    ])
    .await;
    assert!(start.elapsed() < Duration::from_secs(30));
    assert!(Api::<ReplicaSet>::namespaced(c.client.clone(), "default")
        .get_opt("fg")
        .await
        .unwrap()
        .is_none());
    let pods = c.pods("default").await;
    assert!(
        pods.iter().all(|p| p.labels()["app"] == "keep"),
        "{:?}",
        pods.iter().map(|p| p.name_any()).collect::<Vec<_>>()
    );
    c.shutdown().await;
}

/// Pods that fit nowhere get kube-scheduler's FailedScheduling event, and are placed once a
/// node fits.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scheduler_reports_failed_scheduling_then_binds() {
    require_kubectl!();
    let mut c = Cluster::start("*").await;
    c.create_nodes(&["cp"], &["cp"], true).await;
    c.start_kubelet();
    c.ok(&["run", "lonely", "--image=nginx"]).await;
    let want = "0/1 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }. \
                preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.";
    c.wait_for(T, "FailedScheduling", || async {
        let ev = c
            .kubectl(&[
                "get",
                "events",
                "--field-selector",
                "reason=FailedScheduling",
                "-o",
                "jsonpath={.items[*].message}",
            ])
            .await;
        String::from_utf8_lossy(&ev.stdout).contains(want)
    })
    .await;
    let describe = c.ok(&["describe", "pod", "lonely"]).await;
    assert!(
        describe.contains("FailedScheduling") && describe.contains("default-scheduler"),
        "{describe}"
    );
    let cond = c
        .ok(&[
            "get",
            "pod",
            "lonely",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"PodScheduled\")].reason}",
        ])
        .await;
    assert_eq!(cond, "Unschedulable");

    // A Ready worker appears: the pod is bound there.
    c.create_nodes(&["w1"], &[], false).await;
    c.wait_for(T, "bound to w1", || async {
        Api::<Pod>::namespaced(c.client.clone(), "default")
            .get("lonely")
            .await
            .unwrap()
            .spec
            .unwrap()
            .node_name
            .as_deref()
            == Some("w1")
    })
    .await;
    let ev = c
        .ok(&[
            "get",
            "events",
            "--field-selector",
            "reason=Scheduled",
            "-o",
            "jsonpath={.items[*].message}",
        ])
        .await;
    assert_eq!(ev, "Successfully assigned default/lonely to w1");

    // A cordoned or NotReady node is skipped.
    c.ok(&["cordon", "w1"]).await;
    c.ok(&["run", "second", "--image=nginx"]).await;
    c.wait_for(T, "unschedulable", || async {
        let ev = c
            .kubectl(&[
                "get",
                "events",
                "--field-selector",
                "involvedObject.name=second",
                "-o",
                "jsonpath={.items[*].message}",
            ])
            .await;
        String::from_utf8_lossy(&ev.stdout).contains("1 node(s) were unschedulable")
    })
    .await;
    c.ok(&["uncordon", "w1"]).await;
    c.wait_for(T, "second bound", || async {
        Api::<Pod>::namespaced(c.client.clone(), "default")
            .get("second")
            .await
            .unwrap()
            .spec
            .unwrap()
            .node_name
            .is_some()
    })
    .await;

    // A pod that names its node is not the scheduler's (the kubelet runs it), even on the
    // tainted control plane.
    let f = c.dir.path().join("pinned.yaml");
    std::fs::write(
        &f,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: pinned}\nspec: {nodeName: cp, containers: [{name: c, image: nginx}]}\n",
    )
    .unwrap();
    c.ok(&["apply", "-f", f.to_str().unwrap()]).await;
    c.wait_for(T, "pinned running", || async {
        c.ok(&["get", "pod", "pinned", "-o", "jsonpath={.status.phase}"])
            .await
            == "Running"
    })
    .await;
    let ev = c
        .ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=pinned",
            "-o",
            "name",
        ])
        .await;
    assert!(ev.trim().is_empty(), "{ev}");
    c.shutdown().await;
}
