//! kubeport's local multi-node lab, with kind's CLI: `create cluster`, `delete cluster`,
//! `get clusters|nodes|kubeconfig`, `export kubeconfig`, and `exec` (kind's `docker exec`).
//!
//! A cluster needs no containers. Each node is a network namespace named after the node
//! (`ip netns exec service-demo-worker CMD` works) joined by a veth (`eth0`) to a bridge of
//! the cluster's own in the host namespace, which holds the host's address in the cluster's
//! node subnet (a free /24 of 172.30.0.0/15). Nodes route to each other's pod CIDRs (a /24
//! of the pod subnet each) and carry a link route for the service subnet; nothing routes
//! outside, and the host reaches node addresses but not pods. The control-plane node runs
//! `kubeport server`; every node runs `kubeport agent` and `kubeport proxy`, started
//! detached by this crate and recorded under the state directory.

pub mod config;
pub mod create;
pub mod delete;
pub mod duration;
pub mod forward;
pub mod get;
pub mod plan;
pub mod process;
pub mod state;
pub mod status;
pub mod topology;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use config::ClusterConfig;
pub use create::{create_cluster, CreateOptions};
pub use delete::delete_cluster;

/// The lab's subcommands, flattened into `kubeport`'s.
#[derive(clap::Subcommand, Debug)]
pub enum LabCommand {
    /// Create a local multi-node cluster (`create cluster`).
    #[command(subcommand)]
    Create(CreateCommand),
    /// Delete a cluster (`delete cluster`, `delete clusters`).
    #[command(subcommand)]
    Delete(DeleteCommand),
    /// Get clusters, nodes or a kubeconfig (`get clusters|nodes|kubeconfig`).
    #[command(subcommand)]
    Get(GetCommand),
    /// Export a cluster's kubeconfig (`export kubeconfig`).
    #[command(subcommand)]
    Export(ExportCommand),
    /// Run a command on a node (in its network namespace), or a shell without one: what
    /// `docker exec` is to kind's nodes.
    Exec(ExecArgs),
    /// Host-side 127.0.0.1 forwarder to a lab's API server (started by `create cluster`).
    #[command(hide = true)]
    LabForward(forward::ForwardArgs),
}

#[derive(clap::Subcommand, Debug)]
pub enum CreateCommand {
    /// Create a local cluster whose nodes are network namespaces.
    Cluster(CreateClusterArgs),
}

#[derive(clap::Args, Debug)]
pub struct CreateClusterArgs {
    /// Cluster name; overrides the config's `name` [default: kubeport].
    #[arg(short = 'n', long)]
    pub name: Option<String>,
    /// A kind config file (kind.x-k8s.io/v1alpha4 Cluster).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Kubeconfig to merge into, instead of $KUBECONFIG or $HOME/.kube/config.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Wait this long for every node to be Ready (Go duration: 60s, 2m); 0 does not wait.
    #[arg(long, default_value = "60s", value_parser = parse_wait)]
    pub wait: Duration,
    /// Keep the nodes when creation fails, for debugging.
    #[arg(long)]
    pub retain: bool,
    /// Print how long each step took.
    #[arg(long)]
    pub timings: bool,
}

fn parse_wait(s: &str) -> Result<Duration, String> {
    duration::parse_go_duration(s)
}

#[derive(clap::Subcommand, Debug)]
pub enum DeleteCommand {
    /// Delete a cluster: its processes, namespaces, links, state and kubeconfig entry.
    Cluster(DeleteClusterArgs),
    /// Delete the named clusters, or all with --all.
    Clusters(DeleteClustersArgs),
}

#[derive(clap::Args, Debug)]
pub struct DeleteClusterArgs {
    #[arg(short = 'n', long, default_value = plan::DEFAULT_CLUSTER_NAME)]
    pub name: String,
    /// Kubeconfig to remove the context from, instead of $KUBECONFIG or $HOME/.kube/config.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct DeleteClustersArgs {
    /// Delete every cluster.
    #[arg(short = 'A', long)]
    pub all: bool,
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    pub names: Vec<String>,
}

#[derive(clap::Subcommand, Debug)]
pub enum GetCommand {
    /// List clusters.
    Clusters,
    /// List a cluster's nodes.
    Nodes(GetNodesArgs),
    /// Print a cluster's kubeconfig.
    Kubeconfig(GetKubeconfigArgs),
}

#[derive(clap::Args, Debug)]
pub struct GetNodesArgs {
    #[arg(short = 'n', long, default_value = plan::DEFAULT_CLUSTER_NAME)]
    pub name: String,
    /// Nodes of every cluster.
    #[arg(short = 'A', long)]
    pub all_clusters: bool,
}

#[derive(clap::Args, Debug)]
pub struct GetKubeconfigArgs {
    #[arg(short = 'n', long, default_value = plan::DEFAULT_CLUSTER_NAME)]
    pub name: String,
    /// Address the control-plane node directly even when a 127.0.0.1 forwarder exists.
    #[arg(long)]
    pub internal: bool,
}

#[derive(clap::Subcommand, Debug)]
pub enum ExportCommand {
    /// Merge a cluster's context into a kubeconfig and make it current.
    Kubeconfig(ExportKubeconfigArgs),
}

#[derive(clap::Args, Debug)]
pub struct ExportKubeconfigArgs {
    #[arg(short = 'n', long, default_value = plan::DEFAULT_CLUSTER_NAME)]
    pub name: String,
    /// Kubeconfig to merge into, instead of $KUBECONFIG or $HOME/.kube/config.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Address the control-plane node directly even when a 127.0.0.1 forwarder exists.
    #[arg(long)]
    pub internal: bool,
}

#[derive(clap::Args, Debug)]
pub struct ExecArgs {
    /// Accepted for `docker exec -it` habits; a command always gets the terminal.
    #[arg(short = 'i', long, hide = true)]
    pub interactive: bool,
    #[arg(short = 't', long, hide = true)]
    pub tty: bool,
    /// The node (e.g. service-demo-worker).
    pub node: String,
    /// The command and its arguments; a shell ($SHELL, bash or sh) without one.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// Runs a lab subcommand. Errors are printed kind's way (`ERROR: ...`) and end the
/// process with status 1.
pub fn run(cmd: LabCommand) -> anyhow::Result<()> {
    let result = match cmd {
        LabCommand::Create(CreateCommand::Cluster(a)) => create::create_cluster(&CreateOptions {
            name: a.name,
            config: a.config,
            kubeconfig: a.kubeconfig,
            wait: a.wait,
            retain: a.retain,
            timings: a.timings,
        })
        .map_err(|e| e.context("failed to create cluster")),
        LabCommand::Delete(DeleteCommand::Cluster(a)) => {
            delete_one(&a.name, a.kubeconfig.as_deref())
        }
        LabCommand::Delete(DeleteCommand::Clusters(a)) => {
            delete_many(a.all, &a.names, a.kubeconfig.as_deref())
        }
        LabCommand::Get(GetCommand::Clusters) => get::get_clusters(),
        LabCommand::Get(GetCommand::Nodes(a)) => get::get_nodes(&a.name, a.all_clusters),
        LabCommand::Get(GetCommand::Kubeconfig(a)) => get::get_kubeconfig(&a.name, a.internal),
        LabCommand::Export(ExportCommand::Kubeconfig(a)) => {
            get::export_kubeconfig(&a.name, a.kubeconfig.as_deref(), a.internal)
        }
        LabCommand::Exec(a) => get::exec_in_node(&a.node, &a.command),
        LabCommand::LabForward(a) => forward::run_forwarder(a),
    };
    if let Err(e) = result {
        eprintln!("ERROR: {e:#}");
        std::process::exit(1);
    }
    Ok(())
}

/// kind prints Go's `%q` of a string slice: `["a" "b"]`.
fn go_quoted_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(" "))
}

fn delete_one(name: &str, kubeconfig: Option<&Path>) -> anyhow::Result<()> {
    eprintln!("Deleting cluster \"{name}\" ...");
    let nodes = delete::delete_cluster(name, kubeconfig)
        .map_err(|e| e.context(format!("failed to delete cluster \"{name}\"")))?;
    if !nodes.is_empty() {
        eprintln!("Deleted nodes: {}", go_quoted_list(&nodes));
    }
    Ok(())
}

fn delete_many(all: bool, names: &[String], kubeconfig: Option<&Path>) -> anyhow::Result<()> {
    let names: Vec<String> = if all {
        state::list_cluster_names()?
    } else {
        names.to_vec()
    };
    let mut deleted = Vec::new();
    let mut failed = None;
    for name in &names {
        match delete::delete_cluster(name, kubeconfig) {
            Ok(_) => deleted.push(name.clone()),
            Err(e) => {
                eprintln!("failed to delete cluster \"{name}\": {e:#}");
                failed = Some(name.clone());
            }
        }
    }
    eprintln!("Deleted clusters: {}", go_quoted_list(&deleted));
    match failed {
        Some(name) => anyhow::bail!("failed to delete cluster \"{name}\""),
        None => Ok(()),
    }
}

/// A kube-rs client from a kubeconfig file's current context.
pub(crate) async fn kube_client(path: &Path) -> anyhow::Result<kube::Client> {
    let kubeconfig = kube::config::Kubeconfig::read_from(path)?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?;
    Ok(kube::Client::try_from(config)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser, Debug)]
    struct Cli {
        #[command(subcommand)]
        cmd: LabCommand,
    }

    #[test]
    fn go_list_quoting() {
        assert_eq!(
            go_quoted_list(&["a-control-plane".into(), "a-worker".into()]),
            "[\"a-control-plane\" \"a-worker\"]"
        );
    }

    #[test]
    fn cli_shapes() {
        let c = Cli::parse_from([
            "kubeport",
            "create",
            "cluster",
            "--name",
            "service-demo",
            "--config",
            "k.yaml",
            "--wait",
            "2m",
        ]);
        match c.cmd {
            LabCommand::Create(CreateCommand::Cluster(a)) => {
                assert_eq!(a.name.as_deref(), Some("service-demo"));
                assert_eq!(a.wait, Duration::from_secs(120));
            }
            other => panic!("{other:?}"),
        }
        let c = Cli::parse_from(["kubeport", "create", "cluster"]);
        match c.cmd {
            LabCommand::Create(CreateCommand::Cluster(a)) => {
                assert_eq!(a.name, None);
                assert_eq!(a.wait, Duration::from_secs(60));
            }
            other => panic!("{other:?}"),
        }
        let c = Cli::parse_from(["kubeport", "exec", "n-worker", "--", "ip", "-br", "addr"]);
        match c.cmd {
            LabCommand::Exec(a) => {
                assert_eq!(a.node, "n-worker");
                assert_eq!(a.command, ["ip", "-br", "addr"]);
            }
            other => panic!("{other:?}"),
        }
        let c = Cli::parse_from(["kubeport", "exec", "-it", "n-worker", "bash"]);
        match c.cmd {
            LabCommand::Exec(a) => assert_eq!(a.command, ["bash"]),
            other => panic!("{other:?}"),
        }
        let c = Cli::parse_from(["kubeport", "delete", "cluster"]);
        match c.cmd {
            LabCommand::Delete(DeleteCommand::Cluster(a)) => assert_eq!(a.name, "kubeport"),
            other => panic!("{other:?}"),
        }
        assert!(Cli::try_parse_from(["kubeport", "create", "cluster", "--wait", "5"]).is_err());
    }
}
