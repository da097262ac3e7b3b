//! The node agent (scaffolding, being written): a minimal kubelet run inside a node's
//! network namespace by the lab.

use std::net::IpAddr;
use std::path::PathBuf;

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
    /// Node role: `control-plane` gets kubeadm's label and NoSchedule taint.
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

pub async fn run(_args: AgentArgs) -> anyhow::Result<()> {
    anyhow::bail!("the node agent is being written (scaffolding)")
}

/// `kubeport agnhost` flags: the built-in stand-in for registry.k8s.io/e2e-test-images/agnhost.
#[derive(clap::Args, Debug, Clone)]
pub struct AgnhostArgs {
    /// The agnhost subcommand and its flags, e.g. `netexec --http-port=8080`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

pub async fn run_agnhost(_args: AgnhostArgs) -> anyhow::Result<()> {
    anyhow::bail!("agnhost is being written (scaffolding)")
}
