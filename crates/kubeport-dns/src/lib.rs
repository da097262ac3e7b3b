//! Cluster DNS for kubeport (`kubeport dns`).
//!
//! Serves the Kubernetes DNS schema for the cluster domain from watched Services,
//! EndpointSlices, Pods and Namespaces:
//! - `<svc>.<ns>.svc.<zone>` A/AAAA → ClusterIPs; headless → ready endpoint addresses;
//!   ExternalName → CNAME (followed only inside the cluster domain);
//! - `<hostname>.<svc>.<ns>.svc.<zone>` → that endpoint's addresses;
//! - `_<port>._<proto>.<svc>.<ns>.svc.<zone>` SRV for named ports, target addresses as additionals;
//! - `<a-b-c-d>.<ns>.pod.<zone>` pod records; PTR for ClusterIPs, endpoints and Pod IPs;
//! - NXDOMAIN / NODATA with the zone's SOA in the authority section; `dns-version` TXT.
//!
//! Names outside the cluster domain and the reverse zones are REFUSED: the lab has no outside
//! to forward to, and REFUSED makes a stub resolver give up at once instead of retrying.
//!
//! [`snapshot`] and [`resolver`] are pure (objects → index → answers); [`server`] and
//! [`watch`] do the I/O.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch as channel;

pub mod resolver;
pub mod server;
pub mod snapshot;
pub mod watch;

#[cfg(test)]
mod tests;

pub use resolver::{Answer, PodRecords, Resolver, ResolverConfig};
pub use server::{DnsHandler, DnsServer, SnapshotReceiver};
pub use snapshot::Snapshot;
pub use watch::Watchers;

/// `kubeport dns`: serve cluster DNS from an API server's objects.
#[derive(clap::Args, Debug, Clone)]
pub struct DnsArgs {
    /// Kubeconfig of the API server to watch (default: $KUBECONFIG, ~/.kube/config or in-cluster).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Address to serve on, UDP and TCP.
    #[arg(long, value_name = "IP:PORT", default_value = "0.0.0.0:53")]
    pub listen: SocketAddr,
    /// The cluster domain.
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,
    /// How `<a-b-c-d>.<ns>.pod.<domain>` names are answered.
    #[arg(long, value_enum, default_value_t = PodRecords::Insecure)]
    pub pods: PodRecords,
    /// TTL of the records, in seconds.
    #[arg(long, default_value_t = 5)]
    pub ttl: u32,
}

impl DnsArgs {
    /// The resolver settings these arguments describe.
    pub fn resolver_config(&self) -> ResolverConfig {
        ResolverConfig {
            ttl: self.ttl,
            pod_records: self.pods,
            ..ResolverConfig::new(&self.cluster_domain)
        }
    }
}

/// A DNS server fed by watches.
pub struct RunningDns {
    server: DnsServer,
    watchers: Watchers,
    snapshots: SnapshotReceiver,
}

impl RunningDns {
    /// The bound address (UDP and TCP).
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// Waits until the caches have been listed and names are being answered.
    pub async fn wait_synced(&self) {
        let mut snapshots = self.snapshots.clone();
        let _ = snapshots.wait_for(Option::is_some).await;
    }

    /// The snapshot answers come from now (`None` before the first listing).
    pub fn snapshot(&self) -> Option<Arc<Snapshot>> {
        self.snapshots.borrow().clone()
    }

    /// Stops serving and watching.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.watchers.stop();
        self.server.shutdown().await
    }
}

/// Starts watching through `client` and serving on `listen`.
pub async fn start(
    client: kube::Client,
    config: ResolverConfig,
    listen: SocketAddr,
) -> anyhow::Result<RunningDns> {
    let resolver = Resolver::new(config)?;
    let (publish, snapshots) = channel::channel(None);
    let server = DnsServer::bind(listen, resolver, snapshots.clone()).await?;
    let watchers = Watchers::start(client, publish);
    Ok(RunningDns {
        server,
        watchers,
        snapshots,
    })
}

/// `kubeport dns`: serves until interrupted (SIGINT or SIGTERM).
pub async fn run(args: DnsArgs) -> anyhow::Result<()> {
    let config = match &args.kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .map_err(|err| anyhow::anyhow!("reading {}: {err}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?
        }
        None => kube::Config::infer().await?,
    };
    let client = kube::Client::try_from(config)?;
    let dns = start(client, args.resolver_config(), args.listen).await?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("stopping cluster DNS");
    dns.shutdown().await
}
