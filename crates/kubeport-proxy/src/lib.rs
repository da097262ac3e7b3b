//! kubeport's node service proxy (`kubeport proxy`), a kube-proxy replacement.
//!
//! Watches Services, EndpointSlices and its own Node through kube-rs, feeds them to the
//! backend-neutral model (`kubeport-proxy-model`), and on a bounded-frequency schedule
//! computes the node's desired state and hands it to a [`Backend`] (nftables through
//! `kubeport-nftables`). Also serves kube-proxy's `/healthz`, `/livez`, Prometheus metrics
//! and healthCheckNodePorts, and clears stale UDP/SCTP conntrack entries.
//!
//! Everything happens in the network namespace the process starts in; the proxy refuses to
//! run in the machine's initial namespace unless `--allow-host-netns` is given.

pub mod args;
pub mod backend;
pub mod conntrack;
pub mod gofmt;
pub mod health;
pub mod http;
pub mod metrics;
pub mod netns;
pub mod node;
pub mod proxy;
pub mod runner;
pub mod service_health;
pub mod state_cache;

use std::path::Path;

pub use args::{ProxyArgs, ProxyMode};
pub use backend::{Backend, BackendError, IptablesBackend, NftablesBackend, SyncReport};
pub use proxy::{run_proxy, ProxyOptions};

use kubeport_proxy_model::ProxyConfig;

/// The backend of a mode.
pub fn backend_for(mode: ProxyMode) -> Box<dyn Backend> {
    match mode {
        ProxyMode::Nftables => Box::new(NftablesBackend::new()),
        ProxyMode::Iptables => Box::new(IptablesBackend::new(
            kubeport_iptables::IptablesConfig::default(),
        )),
    }
}

/// Removes what the *other* mode may have left (a node switched from one mode to the
/// other), as kube-proxy does at start-up. Failures are logged, not fatal.
pub fn cleanup_other_modes(mode: ProxyMode) {
    let result = match mode {
        ProxyMode::Nftables => IptablesBackend::new(kubeport_iptables::IptablesConfig {
            localhost_nodeports: false,
            ..Default::default()
        })
        .cleanup(),
        ProxyMode::Iptables => NftablesBackend::new().cleanup(),
    };
    if let Err(err) = result {
        tracing::warn!(error = %err, "removing rules left by the other proxy mode failed");
    }
}

/// Resolves the flags into the running proxy's options.
pub fn options_from_args(args: &ProxyArgs) -> anyhow::Result<ProxyOptions> {
    let nodeport_addresses = args
        .node_port_addresses()
        .map_err(|err| anyhow::anyhow!(err))?;
    let metrics_addr = args::parse_bind_address(&args.metrics_bind_address, 10249)
        .map_err(|err| anyhow::anyhow!("--metrics-bind-address: {err}"))?;
    let healthz_addr = args::parse_bind_address(&args.healthz_bind_address, 10256)
        .map_err(|err| anyhow::anyhow!("--healthz-bind-address: {err}"))?;
    if args.sync_period.is_zero() {
        anyhow::bail!("--sync-period must be greater than 0");
    }
    Ok(ProxyOptions {
        node_name: node::node_name(args.hostname_override.as_deref())?,
        mode: args.proxy_mode,
        config: ProxyConfig {
            cluster_cidrs: args.cluster_cidr.clone(),
            masquerade_all: args.masquerade_all,
            nodeport_addresses,
            masquerade_bit: args.iptables_masquerade_bit,
            ..ProxyConfig::default()
        },
        metrics_addr,
        healthz_addr,
        sync_period: args.sync_period,
        min_sync_period: args.min_sync_period,
    })
}

async fn kube_client(kubeconfig: Option<&Path>) -> anyhow::Result<kube::Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .map_err(|err| anyhow::anyhow!("reading {}: {err}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?
        }
        None => kube::Config::infer().await?,
    };
    Ok(kube::Client::try_from(config)?)
}

/// Removes what every backend installed (both modes, as kube-proxy's `--cleanup`); every
/// backend is attempted, the first error is returned.
pub fn cleanup_all() -> anyhow::Result<()> {
    let mut result = Ok(());
    if let Err(err) = NftablesBackend::new().cleanup() {
        tracing::error!(error = %err, "removing the nftables rules failed");
        result = Err(anyhow::anyhow!("removing the nftables rules: {err}"));
    }
    let mut iptables = IptablesBackend::new(kubeport_iptables::IptablesConfig {
        localhost_nodeports: false,
        ..Default::default()
    });
    if let Err(err) = iptables.cleanup() {
        tracing::error!(error = %err, "removing the iptables rules failed");
        if result.is_ok() {
            result = Err(anyhow::anyhow!("removing the iptables rules: {err}"));
        }
    }
    result
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// `kubeport proxy`: checks the network namespace, then either removes the installed rules
/// (`--cleanup`) or runs the proxy until SIGINT/SIGTERM.
pub async fn run(args: ProxyArgs) -> anyhow::Result<()> {
    gofmt::process_start();
    netns::ensure_dedicated_network_namespace(args.allow_host_netns)?;
    if args.cleanup {
        cleanup_all()?;
        tracing::info!("removed the proxy's rules");
        return Ok(());
    }
    let options = options_from_args(&args)?;
    // The client first: a configuration error ends the run before any rule is touched.
    let client = kube_client(args.kubeconfig.as_deref()).await?;
    cleanup_other_modes(options.mode);
    let backend = backend_for(options.mode);
    tracing::info!(
        node = %options.node_name,
        mode = options.mode.as_str(),
        "starting the service proxy"
    );
    run_proxy(client, options, backend, shutdown_signal()).await
}
