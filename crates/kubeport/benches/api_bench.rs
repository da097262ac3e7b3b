//! End-to-end API server benchmarks (the "Measure" sections of issues 2 and 3).
//!
//! Spawns the real `kubeport server` (release build, controllers off, durable store in a temp
//! dir) and drives it over HTTPS with kube-rs clients built from the kubeconfig it writes, and
//! with the real kubectl for `kubectl get svc -A`. Run with
//! `cargo bench -p kubeport --bench api_bench`; it prints one table per part on stdout, and on
//! stderr the server's PID at the start of each part, to attach a profiler to just that part.
//!
//! The client runs on the same machine as the server, so every figure includes the client's
//! own CPU use (TLS, JSON) competing for the same cores; that is the set-up users have too.

use k8s_openapi::api::core::v1::{ConfigMap, Service, ServicePort, ServiceSpec};
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use kube::Client;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const NAMESPACE: &str = "default";
/// Concurrent clients for the throughput parts (each its own kube client and connection).
const CLIENTS: usize = 16;
/// Part 1: Services created with `CLIENTS` concurrent clients.
const BURST_CREATES: usize = 1_000;
/// Part 2: paced single-object writes.
const PACED_RATE_PER_SEC: u32 = 200;
const PACED_DURATION: Duration = Duration::from_secs(10);
/// Part 3/4: Services stored when listing.
const STORED_SERVICES: usize = 10_000;
/// Timed repetitions of each list (after one untimed warm-up for kubectl).
const LIST_RUNS: usize = 5;
/// Part 5: NodePort fill levels; the 1k batch that reaches each level is timed.
const NODEPORT_LEVELS: [usize; 3] = [1_000, 10_000, 30_000];
const NODEPORT_BATCH: usize = 1_000;
/// Wide enough that 30k NodePort Services fit.
const NODEPORT_RANGE: &str = "30000-62767";

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let started = Instant::now();
    println!(
        "kubeport API server benchmark — {} CPUs, load average {} at start, server {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average(),
        env!("CARGO_BIN_EXE_kubeport")
    );
    runtime.block_on(async {
        api_server_bench().await;
        nodeport_fill_bench().await;
    });
    println!(
        "\ntotal benchmark time: {:.1} s; load average {} at end",
        started.elapsed().as_secs_f64(),
        load_average()
    );
}

/// Parts 1–4 (issue 2): write throughput and latency, paced writes, listing 10k Services, RSS.
async fn api_server_bench() {
    let server = ServerProcess::start(&[]);
    let clients = server.clients(CLIENTS).await;
    let rss_start = server.rss_kib();
    let mut next_index = 0;

    phase(&server, "1 burst");
    // 1. Burst of creates with 16 concurrent clients.
    let cpu_before = server.cpu_seconds();
    let burst = create_concurrently(
        &clients,
        "svc",
        next_index..next_index + BURST_CREATES,
        ServiceKind::ClusterIp,
    )
    .await;
    let burst_cpu = server.cpu_seconds() - cpu_before;
    next_index += BURST_CREATES;

    phase(&server, "2 paced");
    // 2. Paced single-object writes (open loop: each create is sent on schedule, whatever
    // the previous ones are doing, so a slow response cannot hide later ones' latency).
    let cpu_before = server.cpu_seconds();
    let paced = create_paced(
        clients[0].clone(),
        "svc",
        next_index,
        PACED_RATE_PER_SEC,
        PACED_DURATION,
    )
    .await;
    let paced_cpu = server.cpu_seconds() - cpu_before;
    next_index += paced.latencies.len();

    phase(&server, "fill to 10k");
    // Fill up to 10k stored Services (also measured: a longer burst at a larger store).
    let cpu_before = server.cpu_seconds();
    let fill = create_concurrently(
        &clients,
        "svc",
        next_index..STORED_SERVICES,
        ServiceKind::ClusterIp,
    )
    .await;
    let fill_cpu = server.cpu_seconds() - cpu_before;
    let rss_10k = server.rss_kib();

    phase(&server, "configmap reference");
    // Reference: the same burst and paced writes for ConfigMaps, which take no allocator lock,
    // to separate the Service path's own cost from the generic write path (TLS, JSON, store
    // commit).
    let cpu_before = server.cpu_seconds();
    let configmaps = create_configmaps_concurrently(&clients, 0..BURST_CREATES).await;
    let configmap_cpu = server.cpu_seconds() - cpu_before;
    let cpu_before = server.cpu_seconds();
    let configmaps_paced = {
        let api: Api<ConfigMap> = Api::namespaced(clients[0].clone(), NAMESPACE);
        run_paced(PACED_RATE_PER_SEC, PACED_DURATION, move |k| {
            let api = api.clone();
            async move { create_configmap(&api, BURST_CREATES + k).await }
        })
        .await
    };
    let configmap_paced_cpu = server.cpu_seconds() - cpu_before;

    phase(&server, "3 lists");
    // 3. `kubectl get svc -A` and a raw LIST with 10k Services stored.
    let kubectl = match kubectl_path() {
        Some(kubectl) => Some(server.time_kubectl_get_svc_all(&kubectl).await),
        None => None,
    };
    let rss_after_kubectl = server.rss_kib();
    let api: Api<Service> = Api::all(clients[0].clone());
    let mut list_times = Vec::new();
    let mut rss_per_list = Vec::new();
    let mut listed = 0;
    let cpu_before = server.cpu_seconds();
    for _ in 0..LIST_RUNS {
        let t = Instant::now();
        let list = api
            .list(&ListParams::default())
            .await
            .expect("LIST services");
        list_times.push(t.elapsed());
        listed = list.items.len();
        rss_per_list.push(server.rss_kib());
    }
    let list_cpu = server.cpu_seconds() - cpu_before;
    let rss_after_list = server.rss_kib();
    assert!(
        listed > STORED_SERVICES,
        "LIST returned {listed} Services, expected {STORED_SERVICES} plus `kubernetes`"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after_idle = server.rss_kib();

    phase(&server, "2b paced with LIST loop");
    // 2b. The paced writes again, now with 10k stored and one client listing all Services in
    // a loop meanwhile (what informers and `kubectl get -A` do to a busy server). The lister
    // has its own thread, runtime and connection and does not parse the body, so its client
    // work cannot stall the paced writer's runtime.
    let stop_listing = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let lister = {
        let stop = stop_listing.clone();
        let kubeconfig = server.kubeconfig.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("lister runtime");
            rt.block_on(async move {
                let client = client_from_kubeconfig(&kubeconfig).await;
                let mut lists = 0;
                while !stop.load(Ordering::Relaxed) {
                    let request = http::Request::get("/api/v1/services")
                        .body(Vec::new())
                        .expect("request");
                    let body = client.request_text(request).await.expect("LIST services");
                    assert!(body.len() > 1_000_000, "LIST body is {} bytes", body.len());
                    lists += 1;
                }
                lists
            })
        })
    };
    let cpu_before = server.cpu_seconds();
    let paced_listing = create_paced(
        clients[0].clone(),
        "svc",
        STORED_SERVICES,
        PACED_RATE_PER_SEC,
        PACED_DURATION,
    )
    .await;
    let paced_listing_cpu = server.cpu_seconds() - cpu_before;
    stop_listing.store(true, Ordering::Relaxed);
    let lists_during_paced = lister.join().expect("lister thread");

    println!(
        "\n== Issue 2: API server (ClusterIP Service creates, durable store, controllers off) =="
    );
    println!(
        "{:<46} {:>8} {:>10} {:>8} {:>8} {:>8} {:>8} {:>11}",
        "workload", "count", "rate/s", "mean ms", "p50 ms", "p99 ms", "max ms", "srv CPU/op"
    );
    print_latency_row(
        &format!("1. create, {CLIENTS} concurrent clients"),
        &burst.latencies,
        burst.rate(),
        burst_cpu,
    );
    print_latency_row(
        &format!(
            "2. paced create, {PACED_RATE_PER_SEC}/s for {}s",
            PACED_DURATION.as_secs()
        ),
        &paced.latencies,
        paced.rate(),
        paced_cpu,
    );
    print_latency_row(
        &format!(
            "   create, {CLIENTS} clients, store {}→{}",
            BURST_CREATES + paced.latencies.len(),
            STORED_SERVICES
        ),
        &fill.latencies,
        fill.rate(),
        fill_cpu,
    );
    print_latency_row(
        &format!("   ref: ConfigMap create, {CLIENTS} clients"),
        &configmaps.latencies,
        configmaps.rate(),
        configmap_cpu,
    );
    print_latency_row(
        &format!("   ref: paced ConfigMap create, {PACED_RATE_PER_SEC}/s"),
        &configmaps_paced.latencies,
        configmaps_paced.rate(),
        configmap_paced_cpu,
    );
    print_latency_row(
        &format!(
            "2b. paced {PACED_RATE_PER_SEC}/s, {}k stored, LIST loop",
            STORED_SERVICES / 1000
        ),
        &paced_listing.latencies,
        paced_listing.rate(),
        paced_listing_cpu,
    );
    for (label, run) in [("2.", &paced), ("2b.", &paced_listing)] {
        println!(
            "   {label} send lag behind schedule max {:.2} ms; {} of {} writes over 10 ms; goal p99 ≤ 10 ms: {}",
            ms(run.max_lag),
            run.latencies.iter().filter(|d| **d > Duration::from_millis(10)).count(),
            run.latencies.len(),
            if percentile(&run.latencies, 0.99) <= Duration::from_millis(10) {
                "MET"
            } else {
                "MISSED"
            }
        );
    }
    println!("   2b. full LISTs completed during the paced writes: {lists_during_paced}");

    println!(
        "\n{:<46} {:>8} {:>10} {:>10} {:>10} {:>10}",
        format!("3. list with {STORED_SERVICES} Services stored"),
        "items",
        "median ms",
        "min ms",
        "max ms",
        "srv CPU"
    );
    match &kubectl {
        Some(k) => {
            println!(
                "{:<46} {:>8} {:>10.1} {:>10.1} {:>10.1} {:>9.2}s",
                format!("kubectl get svc -A (median of {LIST_RUNS}, 1 warm-up)"),
                k.rows,
                ms(median(&k.times)),
                ms(*k.times.iter().min().unwrap()),
                ms(*k.times.iter().max().unwrap()),
                k.server_cpu / LIST_RUNS as f64,
            );
            println!(
                "   kubectl's own CPU per run: {:.2} s (it pages with limit=500 and asks for Tables)",
                k.kubectl_cpu / LIST_RUNS as f64
            );
        }
        None => println!("kubectl get svc -A: skipped (kubectl is not on PATH)"),
    }
    println!(
        "{:<46} {:>8} {:>10.1} {:>10.1} {:>10.1} {:>9.2}s",
        format!("raw LIST /api/v1/services (median of {LIST_RUNS})"),
        listed,
        ms(median(&list_times)),
        ms(*list_times.iter().min().unwrap()),
        ms(*list_times.iter().max().unwrap()),
        list_cpu / LIST_RUNS as f64,
    );
    if let Some(k) = &kubectl {
        println!(
            "   kubectl warm-up run (discovery cache empty): {:.1} ms",
            ms(k.warm_up)
        );
    }

    println!("\n{:<46} {:>10}", "4. server RSS (VmRSS)", "MiB");
    println!("{:<46} {:>10.1}", "at start", mib(rss_start));
    println!(
        "{:<46} {:>10.1}",
        format!("after {STORED_SERVICES} Services"),
        mib(rss_10k)
    );
    if kubectl.is_some() {
        println!(
            "{:<46} {:>10.1}",
            "after 6× kubectl get svc -A",
            mib(rss_after_kubectl)
        );
    }
    println!(
        "{:<46} {:>10.1}",
        format!("after {LIST_RUNS}× raw LIST"),
        mib(rss_after_list)
    );
    println!("{:<46} {:>10.1}", "after 2 s idle", mib(rss_after_idle));
    let per_list: Vec<String> = rss_per_list
        .iter()
        .map(|k| format!("{:.0}", mib(*k)))
        .collect();
    println!("   RSS after each raw LIST (MiB): {}", per_list.join(", "));
    println!(
        "   data dir on disk after {STORED_SERVICES} Services: {:.1} MiB",
        mib(dir_size(&server.data_dir()) / 1024)
    );
}

/// Part 5 (issue 3): NodePort allocation cost as the range fills.
async fn nodeport_fill_bench() {
    let server = ServerProcess::start(&["--service-node-port-range", NODEPORT_RANGE]);
    let clients = server.clients(CLIENTS).await;
    phase(&server, "5 NodePort fill");
    let mut created = 0;
    let mut levels = Vec::new();
    let mut fill_batches: Vec<(usize, Run)> = Vec::new();
    let fill_started = Instant::now();
    for level in NODEPORT_LEVELS {
        // Fill (concurrently, in 1k batches) up to the timed batch…
        while created + NODEPORT_BATCH < level {
            let end = (created + NODEPORT_BATCH).min(level - NODEPORT_BATCH);
            let run =
                create_concurrently(&clients, "np", created..end, ServiceKind::NodePort).await;
            created = end;
            fill_batches.push((created, run));
        }
        // …then time the 1k batch that reaches the level, one create at a time, so the
        // latency is the cost of one create at that fill level, not queueing.
        let cpu_before = server.cpu_seconds();
        let timed =
            create_sequentially(&clients[0], "np", created..level, ServiceKind::NodePort).await;
        let cpu = server.cpu_seconds() - cpu_before;
        created = level;
        levels.push((level, timed, cpu));
    }
    let fill_time = fill_started.elapsed();
    let rss_end = server.rss_kib();

    // Sanity: every nodePort distinct and inside the range.
    let api: Api<Service> = Api::namespaced(clients[0].clone(), NAMESPACE);
    let t = Instant::now();
    let list = api
        .list(&ListParams::default())
        .await
        .expect("LIST services");
    let list_time = t.elapsed();
    let mut ports = HashSet::new();
    for svc in &list.items {
        for p in svc
            .spec
            .as_ref()
            .and_then(|s| s.ports.as_ref())
            .into_iter()
            .flatten()
        {
            if let Some(np) = p.node_port {
                assert!((30000..=62767).contains(&np), "nodePort {np} out of range");
                assert!(ports.insert(np), "nodePort {np} allocated twice");
            }
        }
    }
    assert_eq!(
        ports.len(),
        created,
        "every NodePort Service has its own nodePort"
    );

    println!(
        "\n== Issue 3: NodePort allocation as the range fills (--service-node-port-range {NODEPORT_RANGE}) =="
    );
    println!("timed batch: {NODEPORT_BATCH} NodePort Service creates, one client, one at a time");
    println!(
        "{:<22} {:>10} {:>8} {:>8} {:>8} {:>8} {:>11}",
        "fill level (Services)", "creates/s", "mean ms", "p50 ms", "p99 ms", "max ms", "srv CPU/op"
    );
    for (level, run, cpu) in &levels {
        println!(
            "{:<22} {:>10.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>9.2}ms",
            format!("{}→{}", level - run.latencies.len(), level),
            run.rate(),
            ms(mean(&run.latencies)),
            ms(percentile(&run.latencies, 0.5)),
            ms(percentile(&run.latencies, 0.99)),
            ms(*run.latencies.iter().max().unwrap()),
            cpu * 1000.0 / run.latencies.len() as f64,
        );
    }
    println!(
        "fill batches ({CLIENTS} concurrent clients), mean create latency ms per 1k batch, by level reached:"
    );
    let cells: Vec<String> = fill_batches
        .iter()
        .map(|(level, run)| format!("{}k:{:.2}", level / 1000, ms(mean(&run.latencies))))
        .collect();
    for chunk in cells.chunks(10) {
        println!("   {}", chunk.join("  "));
    }
    let fill_rates: Vec<f64> = fill_batches.iter().map(|(_, r)| r.rate()).collect();
    if !fill_rates.is_empty() {
        println!(
            "   fill throughput per batch: min {:.0}/s, max {:.0}/s; all {created} Services in {:.1} s",
            fill_rates.iter().cloned().fold(f64::INFINITY, f64::min),
            fill_rates.iter().cloned().fold(0.0, f64::max),
            fill_time.as_secs_f64()
        );
    }
    println!(
        "   LIST of {} Services: {:.1} ms; nodePorts all distinct and in range; server RSS {:.1} MiB",
        list.items.len(),
        ms(list_time),
        mib(rss_end)
    );
}

// ---------------------------------------------------------------------------------------------
// Workloads

#[derive(Clone, Copy)]
enum ServiceKind {
    ClusterIp,
    NodePort,
}

fn service(prefix: &str, index: usize, kind: ServiceKind) -> Service {
    let name = format!("{prefix}-{index:05}");
    Service {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some([("bench".to_string(), prefix.to_string())].into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: Some(
                match kind {
                    ServiceKind::ClusterIp => "ClusterIP",
                    ServiceKind::NodePort => "NodePort",
                }
                .to_string(),
            ),
            selector: Some([("app".to_string(), name)].into()),
            ports: Some(vec![ServicePort {
                port: 80,
                target_port: Some(
                    k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(8080),
                ),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn create_one(api: &Api<Service>, svc: &Service) -> Duration {
    let t = Instant::now();
    if let Err(e) = api.create(&PostParams::default(), svc).await {
        panic!(
            "creating Service {}: {e}",
            svc.metadata.name.as_deref().unwrap_or("")
        );
    }
    t.elapsed()
}

/// Latencies of one workload and its wall-clock time.
struct Run {
    latencies: Vec<Duration>,
    wall: Duration,
}

impl Run {
    fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.wall.as_secs_f64()
    }
}

/// Creates Services `indices` with one task per client, each sending its next create as soon
/// as the previous one is answered (closed loop).
async fn create_concurrently(
    clients: &[Client],
    prefix: &'static str,
    indices: std::ops::Range<usize>,
    kind: ServiceKind,
) -> Run {
    run_concurrently(clients, indices, move |client, i| async move {
        let api: Api<Service> = Api::namespaced(client, NAMESPACE);
        create_one(&api, &service(prefix, i, kind)).await
    })
    .await
}

/// Like [`create_concurrently`], for small ConfigMaps (`cm-<i>`, one data key).
async fn create_configmaps_concurrently(
    clients: &[Client],
    indices: std::ops::Range<usize>,
) -> Run {
    run_concurrently(clients, indices, |client, i| async move {
        create_configmap(&Api::namespaced(client, NAMESPACE), i).await
    })
    .await
}

/// Creates ConfigMap `cm-<i>` (one data key) and returns the request's latency.
async fn create_configmap(api: &Api<ConfigMap>, i: usize) -> Duration {
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some(format!("cm-{i:05}")),
            ..Default::default()
        },
        data: Some([("key".to_string(), format!("value-{i}"))].into()),
        ..Default::default()
    };
    let t = Instant::now();
    if let Err(e) = api.create(&PostParams::default(), &cm).await {
        panic!("creating ConfigMap cm-{i:05}: {e}");
    }
    t.elapsed()
}

/// Runs `op(client, i)` for every index, one task per client taking the next index when its
/// previous operation finished; `op` returns the operation's latency.
async fn run_concurrently<F, Fut>(clients: &[Client], indices: std::ops::Range<usize>, op: F) -> Run
where
    F: Fn(Client, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Duration> + Send,
{
    let next = Arc::new(AtomicUsize::new(indices.start));
    let end = indices.end;
    let started = Instant::now();
    let tasks: Vec<_> = clients
        .iter()
        .map(|client| {
            let client = client.clone();
            let next = next.clone();
            let op = op.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= end {
                        return latencies;
                    }
                    latencies.push(op(client.clone(), i).await);
                }
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(indices.len());
    for task in tasks {
        latencies.extend(task.await.expect("create task"));
    }
    Run {
        latencies,
        wall: started.elapsed(),
    }
}

async fn create_sequentially(
    client: &Client,
    prefix: &str,
    indices: std::ops::Range<usize>,
    kind: ServiceKind,
) -> Run {
    let api: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(indices.len());
    for i in indices {
        latencies.push(create_one(&api, &service(prefix, i, kind)).await);
    }
    Run {
        latencies,
        wall: started.elapsed(),
    }
}

struct PacedRun {
    latencies: Vec<Duration>,
    wall: Duration,
    /// How late the client sent a write relative to its schedule (client-side overload).
    max_lag: Duration,
}

impl PacedRun {
    fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.wall.as_secs_f64()
    }
}

/// Open-loop writes: create number k is sent at start + k/rate, each in its own task.
async fn create_paced(
    client: Client,
    prefix: &'static str,
    first_index: usize,
    rate: u32,
    duration: Duration,
) -> PacedRun {
    let api: Api<Service> = Api::namespaced(client, NAMESPACE);
    run_paced(rate, duration, move |k| {
        let api = api.clone();
        let svc = service(prefix, first_index + k, ServiceKind::ClusterIp);
        async move { create_one(&api, &svc).await }
    })
    .await
}

/// Open-loop operations: operation k is started at start + k/rate, each in its own task;
/// `op(k)` returns the operation's latency.
async fn run_paced<F, Fut>(rate: u32, duration: Duration, op: F) -> PacedRun
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Duration> + Send + 'static,
{
    let count = (rate as u64 * duration.as_secs()) as usize;
    let period = Duration::from_secs(1) / rate;
    let start = tokio::time::Instant::now() + Duration::from_millis(20);
    let wall_start = Instant::now();
    let mut max_lag = Duration::ZERO;
    let mut tasks = Vec::with_capacity(count);
    for k in 0..count {
        let due = start + period * k as u32;
        tokio::time::sleep_until(due).await;
        max_lag = max_lag.max(tokio::time::Instant::now() - due);
        tasks.push(tokio::spawn(op(k)));
    }
    let mut latencies = Vec::with_capacity(count);
    for task in tasks {
        latencies.push(task.await.expect("paced task"));
    }
    PacedRun {
        latencies,
        wall: wall_start.elapsed(),
        max_lag,
    }
}

// ---------------------------------------------------------------------------------------------
// The server process

/// A `kubeport server` with its own data dir, port and kubeconfig; killed (by its PID) on drop.
struct ServerProcess {
    dir: tempfile::TempDir,
    child: Child,
    kubeconfig: PathBuf,
}

impl ServerProcess {
    fn start(extra: &[&str]) -> ServerProcess {
        let dir = tempfile::tempdir().expect("tempdir");
        let kubeconfig = dir.path().join("kubeconfig");
        let log = std::fs::File::create(dir.path().join("server.log")).expect("server log");
        let child = Command::new(env!("CARGO_BIN_EXE_kubeport"))
            .args(["server", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--secure-port", "0", "--kubeconfig-out"])
            .arg(&kubeconfig)
            .args(["--controllers", ""])
            .args(extra)
            .env("KUBEPORT_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawning kubeport server");
        let mut server = ServerProcess {
            dir,
            child,
            kubeconfig,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        // The kubeconfig is written once the server listens; wait until it is complete.
        while !std::fs::read_to_string(&server.kubeconfig)
            .is_ok_and(|t| t.contains("client-key-data"))
        {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("server exited early ({status}): {}", server.log());
            }
            assert!(
                Instant::now() < deadline,
                "server did not start: {}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// `n` independent clients (own connection pools), each with a warm TLS connection.
    async fn clients(&self, n: usize) -> Vec<Client> {
        let mut clients = Vec::with_capacity(n);
        for _ in 0..n {
            let client = client_from_kubeconfig(&self.kubeconfig).await;
            client
                .apiserver_version()
                .await
                .unwrap_or_else(|e| panic!("GET /version: {e}\n{}", self.log()));
            clients.push(client);
        }
        clients
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("/proc/<pid>/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    /// User + system CPU seconds the server has used so far.
    fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .expect("/proc/<pid>/stat");
        // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
        let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        ticks as f64 / clock_ticks_per_second()
    }

    /// One warm-up run (fills kubectl's discovery cache in a private HOME), then timed runs.
    async fn time_kubectl_get_svc_all(&self, kubectl: &Path) -> KubectlTimes {
        let home = self.dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let run = |kubectl: PathBuf, home: PathBuf, kubeconfig: PathBuf| async move {
            tokio::task::spawn_blocking(move || {
                let t = Instant::now();
                let out = Command::new(&kubectl)
                    .args(["get", "svc", "-A"])
                    .env("HOME", &home)
                    .env("KUBECONFIG", &kubeconfig)
                    .stdin(Stdio::null())
                    .output()
                    .expect("running kubectl");
                let elapsed = t.elapsed();
                assert!(
                    out.status.success(),
                    "kubectl get svc -A failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let rows = String::from_utf8_lossy(&out.stdout).lines().count() - 1;
                (elapsed, rows)
            })
            .await
            .expect("kubectl task")
        };
        let (warm_up, _) = run(kubectl.into(), home.clone(), self.kubeconfig.clone()).await;
        let cpu_before = self.cpu_seconds();
        let kubectl_cpu_before = reaped_children_cpu_seconds();
        let mut times = Vec::new();
        let mut rows = 0;
        for _ in 0..LIST_RUNS {
            let (t, r) = run(kubectl.into(), home.clone(), self.kubeconfig.clone()).await;
            times.push(t);
            rows = r;
        }
        KubectlTimes {
            warm_up,
            times,
            rows,
            server_cpu: self.cpu_seconds() - cpu_before,
            kubectl_cpu: reaped_children_cpu_seconds() - kubectl_cpu_before,
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct KubectlTimes {
    warm_up: Duration,
    times: Vec<Duration>,
    rows: usize,
    server_cpu: f64,
    /// CPU seconds kubectl itself used (all timed runs).
    kubectl_cpu: f64,
}

async fn client_from_kubeconfig(path: &Path) -> Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(path).expect("reading kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .expect("kubeconfig to client config");
    Client::try_from(config).expect("kube client")
}

fn kubectl_path() -> Option<PathBuf> {
    let out = Command::new("sh")
        .args(["-c", "command -v kubectl"])
        .output()
        .ok()?;
    let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (!p.is_empty()).then(|| PathBuf::from(p))
}

/// Marks the start of a part on stderr (with the server's PID), so a profiler can be attached
/// to the server for just that part (`perf record -p <pid>`).
fn phase(server: &ServerProcess, name: &str) {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let start = START.get_or_init(Instant::now);
    eprintln!(
        "[{:7.1} s] server pid {}: {name}",
        start.elapsed().as_secs_f64(),
        server.child.id()
    );
}

/// User + system CPU seconds of this process's finished (waited-for) children, including
/// their own waited-for descendants (kubectl's dispatcher runs the versioned kubectl).
fn reaped_children_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // cutime and cstime are fields 16 and 17.
    let ticks: u64 = fields[13].parse::<u64>().unwrap() + fields[14].parse::<u64>().unwrap();
    ticks as f64 / clock_ticks_per_second()
}

/// The 1-minute load average: other work on the machine skews every figure here.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(String::from))
        .unwrap_or_else(|| "?".into())
}

fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Statistics and printing

fn percentile(samples: &[Duration], q: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    // Nearest-rank: the smallest sample with at least q of all samples at or below it.
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn median(samples: &[Duration]) -> Duration {
    percentile(samples, 0.5)
}

fn mean(samples: &[Duration]) -> Duration {
    samples.iter().sum::<Duration>() / samples.len() as u32
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn print_latency_row(label: &str, latencies: &[Duration], rate: f64, server_cpu: f64) {
    println!(
        "{:<46} {:>8} {:>10.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>9.2}ms",
        label,
        latencies.len(),
        rate,
        ms(mean(latencies)),
        ms(percentile(latencies, 0.5)),
        ms(percentile(latencies, 0.99)),
        ms(*latencies.iter().max().unwrap()),
        server_cpu * 1000.0 / latencies.len() as f64,
    );
}
