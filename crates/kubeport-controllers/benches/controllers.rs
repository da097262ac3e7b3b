//! Measures the EndpointSlice and Endpoints controllers against an in-process API server
//! (durable store, HTTPS, kube-rs): time to converge from a cold start, API writes, reconcile
//! counts and time, the pure planning cost, one incremental change, and the memory of the
//! controller caches (live heap with the controllers running minus after they are dropped).
//!
//! Scenarios: 1 Service x 5,000 pods, and 5,000 Services x 10 pods.
//! Run: `cargo bench -p kubeport-controllers --bench controllers`.

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams};
use kubeport_apiserver::registry::{FieldValidation, PatchKind, WriteOptions};
use kubeport_apiserver::resources::{self, Subresource};
use kubeport_controllers::endpoints::{self, NodeInfo};
use kubeport_controllers::{ControllerOptions, RunningControllers};
use serde_json::json;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Counts live heap bytes.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

fn mib(b: isize) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

fn opts() -> WriteOptions {
    WriteOptions {
        field_manager: "bench".into(),
        dry_run: false,
        validation: FieldValidation::Ignore,
    }
}

const NS: &str = "bench";
const NODES: usize = 10;

fn pod_json(i: usize, app: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("p{i}"), "namespace": NS, "labels": {"app": app}},
        "spec": {"nodeName": format!("node-{}", i % NODES), "containers": [{"name": "c", "image": "nginx", "ports": [{"name": "http", "containerPort": 80}]}]},
    })
}

fn pod_status(i: usize) -> serde_json::Value {
    let ip = format!("10.{}.{}.{}", 64 + i / 65536, (i / 256) % 256, i % 256);
    json!({"status": {
        "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2025-01-01T00:00:00Z"}],
    }})
}

/// Creates nodes, services and running pods straight through the registry (not measured).
async fn populate(
    reg: &Arc<kubeport_apiserver::registry::Registry>,
    services: usize,
    pods_per_service: usize,
) {
    let ns_info = resources::find("", "v1", "namespaces").unwrap();
    let node_info = resources::find("", "v1", "nodes").unwrap();
    let svc_info = resources::find("", "v1", "services").unwrap();
    let pod_info = resources::find("", "v1", "pods").unwrap();
    reg.create(
        ns_info,
        None,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
        &opts(),
    )
    .await
    .unwrap();
    for n in 0..NODES {
        reg.create(
            node_info,
            None,
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": format!("node-{n}"), "labels": {"topology.kubernetes.io/zone": format!("zone-{}", n % 3)}}}),
            &opts(),
        )
        .await
        .unwrap();
    }
    let svc_futs = (0..services).map(|s| {
        let body = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": format!("svc{s}"), "namespace": NS},
            "spec": {"selector": {"app": format!("app{s}")}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
        });
        async move { reg.create(svc_info, Some(NS), body, &opts()).await.unwrap() }
    });
    run_chunked(svc_futs.collect(), 256).await;
    let total = services * pods_per_service;
    let pod_futs = (0..total).map(|i| {
        let app = format!("app{}", i / pods_per_service);
        async move {
            reg.create(pod_info, Some(NS), pod_json(i, &app), &opts())
                .await
                .unwrap();
            reg.patch(
                pod_info,
                Some(NS),
                &format!("p{i}"),
                PatchKind::Merge,
                pod_status(i),
                Some(Subresource::Status),
                &opts(),
            )
            .await
            .unwrap();
        }
    });
    run_chunked(pod_futs.collect(), 256).await;
}

async fn run_chunked<F: std::future::Future>(futs: Vec<F>, n: usize) {
    let mut it = futs.into_iter();
    loop {
        let chunk: Vec<F> = it.by_ref().take(n).collect();
        if chunk.is_empty() {
            break;
        }
        futures::future::join_all(chunk).await;
    }
}

async fn client_for(server: &kubeport_apiserver::RunningServer) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(&server.admin_kubeconfig).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(cfg).unwrap()
}

async fn wait_converged(
    rc: &RunningControllers,
    client: &kube::Client,
    want_slices: usize,
    want_endpoints: usize,
) {
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), NS);
    let eps: Api<k8s_openapi::api::core::v1::Endpoints> = Api::namespaced(client.clone(), NS);
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let s = rc.cache_sizes();
        if s.endpoint_slices < want_slices + 1 || s.endpoints < want_endpoints + 1 || !rc.is_idle()
        {
            continue;
        }
        // The caches can run ahead of nothing: confirm against the API.
        let lp = ListParams::default();
        let ns = slices.list_metadata(&lp).await.unwrap().items.len();
        let ne = eps.list_metadata(&lp).await.unwrap().items.len();
        if ns >= want_slices && ne >= want_endpoints && rc.is_idle() {
            return;
        }
    }
}

async fn scenario(name: &str, services: usize, pods_per_service: usize) {
    println!("== {name}: {services} Service(s) x {pods_per_service} pods ==");
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = kubeport_apiserver::ServerConfig::new(dir.path().join("data"));
    cfg.secure_port = 0;
    let server = kubeport_apiserver::start(cfg).await.unwrap();
    let t = Instant::now();
    populate(&server.registry, services, pods_per_service).await;
    println!(
        "setup: {} objects written in {:.1?}",
        services + 2 * services * pods_per_service,
        t.elapsed()
    );
    let client = client_for(&server).await;

    // Pure planning cost for the largest Service, outside any I/O.
    {
        let svc_api: Api<Service> = Api::namespaced(client.clone(), NS);
        let pod_api: Api<Pod> = Api::namespaced(client.clone(), NS);
        let svc = svc_api.get("svc0").await.unwrap();
        let pods: Vec<Arc<Pod>> = pod_api
            .list(&ListParams::default().labels("app=app0"))
            .await
            .unwrap()
            .items
            .into_iter()
            .map(Arc::new)
            .collect();
        let t = Instant::now();
        let (groups, _) =
            endpoints::desired_endpoints(&svc, &pods, |_| NodeInfo::Found(Some("zone-0")), "IPv4");
        let plan = endpoints::plan_slices(&svc, &[], groups, "IPv4", 100);
        let slice_time = t.elapsed();
        let t = Instant::now();
        let subsets = endpoints::endpoints_subsets(&svc, &pods);
        let ep_time = t.elapsed();
        println!(
            "pure planning for one Service of {} pods: slices {:.2?} ({} slices), endpoints {:.2?} ({} addresses)",
            pods.len(),
            slice_time,
            plan.create.len(),
            ep_time,
            endpoints::address_count(&subsets)
        );
    }

    let rev0 = server.registry.store.revision();
    let heap0 = live();
    let t = Instant::now();
    let rc = kubeport_controllers::start(
        client.clone(),
        ControllerOptions::from_flag("endpointslice,endpoint"),
    )
    .await
    .unwrap();
    let synced = t.elapsed();
    let want_slices = services * pods_per_service.div_ceil(100);
    wait_converged(&rc, &client, want_slices, services).await;
    let converged = t.elapsed();
    let heap_running = live();
    let writes_store = server.registry.store.revision() - rev0;
    let m = rc.metrics().snapshot();
    println!("caches synced in {synced:.1?}; converged in {converged:.1?} (cold start)");
    for (ctl, s) in &m {
        println!(
            "  {ctl:14} reconciles {:6}  errors {:4}  API writes {:6}  reconcile time total {:.1?} (mean {:.2?}, max {:.1?})",
            s.reconciles,
            s.errors,
            s.writes,
            s.reconcile_time,
            s.reconcile_time / (s.reconciles.max(1) as u32),
            s.max_reconcile_time
        );
    }
    println!("  store revisions written during sync: {writes_store}");
    let sizes = rc.cache_sizes();
    println!(
        "  struct sizes: Pod {} B, PodSpec {} B, Container {} B, EndpointSlice {} B (plus their heap data)",
        std::mem::size_of::<Pod>(),
        std::mem::size_of::<k8s_openapi::api::core::v1::PodSpec>(),
        std::mem::size_of::<k8s_openapi::api::core::v1::Container>(),
        std::mem::size_of::<EndpointSlice>()
    );
    println!(
        "  caches: {} pods, {} services, {} slices, {} endpoints, {} nodes",
        sizes.pods, sizes.services, sizes.endpoint_slices, sizes.endpoints, sizes.nodes
    );

    // One incremental change: a pod loses readiness.
    let before = rc.metrics().snapshot();
    let pod_info = resources::find("", "v1", "pods").unwrap();
    let t = Instant::now();
    server
        .registry
        .patch(
            pod_info,
            Some(NS),
            "p0",
            PatchKind::Merge,
            json!({"status": {"conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": "2025-01-01T00:00:01Z"}]}}),
            Some(Subresource::Status),
            &opts(),
        )
        .await
        .unwrap();
    // Done when both controllers have written (their caches saw the change, they reconciled).
    while rc
        .metrics()
        .snapshot()
        .values()
        .map(|m| m.writes)
        .sum::<u64>()
        < before.values().map(|m| m.writes).sum::<u64>() + 2
    {
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    let latency = t.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = rc.metrics().snapshot();
    let delta = |c: &str| after[c].writes - before[c].writes;
    println!(
        "one pod turns not-ready: both controllers wrote {latency:.1?} after the status write; writes: endpointslice {}, endpoint {}",
        delta("endpointslice"),
        delta("endpoint")
    );

    rc.shutdown();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let heap_after = live();
    let objects =
        sizes.pods + sizes.services + sizes.endpoint_slices + sizes.endpoints + sizes.nodes;
    println!(
        "controller caches: {} ({} objects, {} B/object); heap before start {}, running {}, after stop {}",
        mib(heap_running - heap_after),
        objects,
        (heap_running - heap_after) / objects.max(1) as isize,
        mib(heap0),
        mib(heap_running),
        mib(heap_after)
    );
    drop(client);
    server.shutdown().await;
    println!();
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        scenario("1 Service x 5,000 pods", 1, 5_000).await;
        scenario("5,000 Services x 10 pods", 5_000, 10).await;
    });
}
