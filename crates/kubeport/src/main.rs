//! The `kubeport` command: a thin dispatcher over the component crates.

use clap::{Parser, Subcommand};
use std::net::IpAddr;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "kubeport",
    version,
    about = "Kubernetes Service networking: a local multi-node lab, a kubectl-compatible control plane and a node service proxy"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the control plane (API server and controllers) in the foreground.
    Server(ServerArgs),
    #[command(flatten)]
    Lab(kubeport_lab::LabCommand),
    /// Run a node agent (a minimal kubelet) for one node.
    Agent(kubeport_agent::AgentArgs),
    /// Run the node service proxy (a kube-proxy replacement).
    Proxy(kubeport_proxy::ProxyArgs),
    /// The articles' NodePort walkthrough on a local 3-node lab (the README's main command).
    Demo(kubeport_demo::DemoArgs),
    /// Built-in stand-in for the agnhost test image (`netexec`, `serve-hostname`).
    Agnhost(kubeport_agent::AgnhostArgs),
}

#[derive(clap::Args)]
struct ServerArgs {
    /// Directory for the durable store and certificates.
    #[arg(long)]
    data_dir: PathBuf,
    #[arg(long, default_value = "127.0.0.1")]
    bind_address: IpAddr,
    #[arg(long, default_value_t = 6443)]
    secure_port: u16,
    /// Write an admin kubeconfig here (context `kubeport`).
    #[arg(long)]
    kubeconfig_out: Option<PathBuf>,
    #[arg(long, default_value = "10.96.0.0/12")]
    service_cluster_ip_range: ipnet::IpNet,
    /// NodePort range, `30000-32767` or `30000+2767`.
    #[arg(long, default_value = "30000-32767")]
    service_node_port_range: String,
    /// Address advertised in kubeconfigs and the `kubernetes` endpoints.
    #[arg(long)]
    advertise_address: Option<IpAddr>,
    /// Controllers to run, as kube-controller-manager's flag: `*` for all, `-name` to turn
    /// one off (e.g. `*,-scheduler`), or an empty string for none.
    #[arg(long, default_value = "*")]
    controllers: String,
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KUBEPORT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
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

async fn run_server(args: ServerArgs) -> anyhow::Result<()> {
    let node_port_range: kubeport_service::PortRange =
        args.service_node_port_range.parse().map_err(|e| {
            anyhow::anyhow!(
                "invalid --service-node-port-range {:?}: {e}",
                args.service_node_port_range
            )
        })?;
    let mut cfg = kubeport_apiserver::ServerConfig::new(args.data_dir);
    cfg.bind_address = args.bind_address;
    cfg.secure_port = args.secure_port;
    cfg.kubeconfig_out = args.kubeconfig_out.clone();
    cfg.service_cluster_ip_range = args.service_cluster_ip_range;
    cfg.service_node_port_range = node_port_range;
    cfg.advertise_address = args.advertise_address;
    let server = kubeport_apiserver::start(cfg).await?;
    eprintln!("kubeport API server listening on https://{}", server.addr);
    let controllers = if args.controllers.trim().is_empty() {
        None
    } else {
        let client = kube_client(&server.admin_kubeconfig).await?;
        let opts = kubeport_controllers::ControllerOptions::from_flag(&args.controllers);
        Some(tokio::spawn(async move {
            if let Err(e) = kubeport_controllers::run(client, opts).await {
                tracing::error!("controllers stopped: {e:#}");
            }
        }))
    };
    if let Some(k) = &args.kubeconfig_out {
        eprintln!(
            "admin kubeconfig written to {}; use: kubectl --kubeconfig {} get ns",
            k.display(),
            k.display()
        );
    }
    wait_for_signal().await;
    eprintln!("shutting down");
    if let Some(c) = controllers {
        c.abort();
    }
    server.shutdown().await;
    Ok(())
}

/// A kube-rs client from a kubeconfig file's current context.
async fn kube_client(path: &std::path::Path) -> anyhow::Result<kube::Client> {
    let kubeconfig = kube::config::Kubeconfig::read_from(path)?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?;
    Ok(kube::Client::try_from(config)?)
}

fn main() -> anyhow::Result<()> {
    init_tracing();
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Server(args) => rt.block_on(run_server(args)),
        Command::Lab(cmd) => kubeport_lab::run(cmd),
        Command::Agent(args) => rt.block_on(kubeport_agent::run(args)),
        Command::Proxy(args) => rt.block_on(kubeport_proxy::run(args)),
        Command::Demo(args) => kubeport_demo::run(args),
        Command::Agnhost(args) => rt.block_on(kubeport_agent::run_agnhost(args)),
    }
}
