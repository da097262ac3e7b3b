//! The node agent: a minimal kubelet run inside a node's network namespace by the lab
//! (`ip netns exec NODE kubeport agent ...`). It registers its Node and keeps it fresh, runs
//! the pods bound to it as processes in per-pod network namespaces (see [`runtime`]), and
//! serves logs/exec/attach for them (see [`stream`]).

pub mod agnhost;
pub mod env;
pub mod ipam;
pub mod logs;
pub mod netns;
pub mod node;
pub mod podfiles;
pub mod probe;
pub mod process;
pub mod program;
pub mod restart;
pub mod runtime;
pub mod runtime_api;
pub mod status;
pub mod stream;

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher;
use kube::runtime::WatchStreamExt;

/// `kubeport agent` flags (the contract the lab relies on).
#[derive(clap::Args, Debug, Clone)]
pub struct AgentArgs {
    /// Kubeconfig for the API server.
    #[arg(long)]
    pub kubeconfig: PathBuf,
    /// The Node's name (e.g. `service-demo-worker`).
    #[arg(long)]
    pub node_name: String,
    /// The node's InternalIP (inside the node's network namespace).
    #[arg(long)]
    pub node_ip: IpAddr,
    /// This node's pod CIDR (a /24 of the cluster's podSubnet), recorded in Node.spec.podCIDR.
    #[arg(long)]
    pub pod_cidr: ipnet::IpNet,
    /// Node role: `control-plane` gets kubeadm's role label (no taint: as in the seeds' kind
    /// clusters, pods run on the control-plane node too).
    #[arg(long, default_value = "worker")]
    pub role: String,
    /// Extra node labels, `k=v` (repeatable).
    #[arg(long = "node-label")]
    pub node_labels: Vec<String>,
    /// Cluster DNS server written into pods' resolv.conf.
    #[arg(long)]
    pub cluster_dns: Option<IpAddr>,
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,
    /// Port of the agent's log/exec/attach server on the node IP (kubelet's 10250).
    #[arg(long, default_value_t = 10250)]
    pub port: u16,
    /// Directory for pod state (IPAM, logs, per-pod files).
    #[arg(long)]
    pub state_dir: PathBuf,
    /// Prefix for the network namespaces of this node's pods (unique per cluster+node).
    #[arg(long)]
    pub netns_prefix: String,
}

/// How long the agent's shutdown waits for pods' processes after SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

async fn kube_client(path: &std::path::Path) -> anyhow::Result<kube::Client> {
    let kubeconfig = kube::config::Kubeconfig::read_from(path)
        .with_context(|| format!("reading kubeconfig {}", path.display()))?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?;
    Ok(kube::Client::try_from(config)?)
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// Watches the pods bound to this node and hands them to the runtime.
async fn watch_pods(client: kube::Client, runtime: Arc<runtime::Runtime>) {
    let api: kube::Api<Pod> = kube::Api::all(client);
    let selector = format!("spec.nodeName={}", runtime.cfg.node_name);
    let cfg = watcher::Config::default().fields(&selector);
    let mut events = watcher(api, cfg).default_backoff().boxed();
    let mut listed: HashSet<String> = HashSet::new();
    let mut first_list = true;
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Init) => listed.clear(),
            Ok(watcher::Event::InitApply(pod)) => {
                if let Some(uid) = pod.metadata.uid.clone() {
                    listed.insert(uid);
                }
                runtime.apply(pod);
            }
            Ok(watcher::Event::InitDone) => {
                // Pods that vanished while the watch was down.
                for uid in runtime.pod_uids() {
                    if !listed.contains(&uid) {
                        runtime.deleted(&uid);
                    }
                }
                if first_list {
                    first_list = false;
                    runtime.clean_stale(&listed).await;
                }
            }
            Ok(watcher::Event::Apply(pod)) => runtime.apply(pod),
            Ok(watcher::Event::Delete(pod)) => {
                if let Some(uid) = pod.metadata.uid.as_deref() {
                    runtime.deleted(uid);
                }
            }
            Err(e) => tracing::warn!("watching pods: {e}"),
        }
    }
}

/// Runs the node agent until SIGTERM/SIGINT; then stops its pods' processes.
pub async fn run(args: AgentArgs) -> anyhow::Result<()> {
    let control_plane = match args.role.as_str() {
        "control-plane" => true,
        "worker" => false,
        other => anyhow::bail!("invalid --role {other:?}: expected control-plane or worker"),
    };
    let extra_labels = node::parse_labels(&args.node_labels)?;
    std::fs::create_dir_all(args.state_dir.join("pods"))
        .with_context(|| format!("creating state directory {}", args.state_dir.display()))?;
    let client = kube_client(&args.kubeconfig).await?;
    let machine = node::MachineInfo::read(&args.state_dir);
    let ipam = ipam::Ipam::load(&args.state_dir.join("ipam.json"), args.pod_cidr)?;
    let network = netns::NodeNetwork {
        gateway: ipam.state().gateway(),
        prefix_len: ipam.state().cidr.prefix_len(),
        host_mount_ns: netns::host_mount_namespace(),
    };
    network.ensure_bridge().await?;
    let attach_wait = std::env::var(runtime::ATTACH_WAIT_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or(Duration::from_secs(5));
    let cfg = runtime::RuntimeConfig {
        node_name: args.node_name.clone(),
        node_ip: args.node_ip,
        cluster_dns: args.cluster_dns,
        cluster_domain: args.cluster_domain.clone(),
        state_dir: args.state_dir.clone(),
        netns_prefix: args.netns_prefix.clone(),
        network,
        backoff: restart::Backoff::from_env(),
        attach_wait,
        node_cpu: f64::from(machine.cpus),
        node_memory: machine.memory_bytes as f64,
    };
    let runtime = runtime::Runtime::new(cfg, client.clone(), ipam);
    runtime.kill_leftover_processes();

    let addr = SocketAddr::new(args.node_ip, args.port);
    let api: Arc<dyn runtime_api::ContainerRuntime> = runtime.clone();
    let mut server = tokio::spawn(stream::serve(addr, api));

    let identity = node::NodeIdentity {
        name: args.node_name.clone(),
        ip: args.node_ip,
        pod_cidr: args.pod_cidr,
        control_plane,
        extra_labels,
        port: args.port,
    };
    let mut attempt = 0u64;
    let node_uid = loop {
        match node::register(&client, &identity, &machine).await {
            Ok(uid) => break uid,
            Err(e) => {
                attempt += 1;
                tracing::warn!("registering node {}: {e:#}", identity.name);
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(200 * attempt.min(25))) => {}
                    _ = wait_for_signal() => return Ok(()),
                }
            }
        }
    };
    tracing::info!("node {} registered", identity.name);
    let heartbeat = tokio::spawn(node::heartbeat(client.clone(), identity, machine, node_uid));
    let watch = tokio::spawn(watch_pods(client, runtime.clone()));

    let result = tokio::select! {
        _ = wait_for_signal() => Ok(()),
        r = &mut server => match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e),
            Err(e) => Err(anyhow::anyhow!("the stream server stopped: {e}")),
        },
    };
    watch.abort();
    heartbeat.abort();
    server.abort();
    runtime.shutdown(SHUTDOWN_GRACE).await;
    result
}

/// `kubeport agnhost` flags: the built-in stand-in for registry.k8s.io/e2e-test-images/agnhost.
#[derive(clap::Args, Debug, Clone)]
pub struct AgnhostArgs {
    /// The agnhost subcommand and its flags, e.g. `netexec --http-port=8080`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// Runs the built-in agnhost (`serve-hostname`, `netexec`).
pub async fn run_agnhost(args: AgnhostArgs) -> anyhow::Result<()> {
    agnhost::run(&args.args).await
}
