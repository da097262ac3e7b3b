//! `kubeport get clusters|nodes|kubeconfig`, `kubeport export kubeconfig` and
//! `kubeport exec`.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use anyhow::{anyhow, bail, Result};

use crate::plan;
use crate::state::{self, ClusterState, Layout};
use crate::topology;

/// kind's error for a cluster it cannot find.
fn unknown_cluster(name: &str) -> anyhow::Error {
    anyhow!("could not locate any control plane nodes for cluster named '{name}'. Use the --name option to select a different cluster")
}

/// The state of an existing cluster, or kind's error.
pub fn existing(name: &str) -> Result<ClusterState> {
    state::read_state(name)?.ok_or_else(|| unknown_cluster(name))
}

/// `get clusters`: one name a line.
pub fn get_clusters() -> Result<()> {
    let names = state::list_cluster_names()?;
    if names.is_empty() {
        eprintln!("No kubeport clusters found.");
    }
    for n in names {
        println!("{n}");
    }
    Ok(())
}

/// `get nodes`: node names of one cluster (or all).
pub fn get_nodes(name: &str, all_clusters: bool) -> Result<()> {
    let states = if all_clusters {
        state::list_states()?
    } else {
        state::read_state(name)?.into_iter().collect()
    };
    let nodes: Vec<String> = states
        .iter()
        .flat_map(|s| s.nodes.iter().map(|n| n.name.clone()))
        .collect();
    if nodes.is_empty() {
        if all_clusters {
            eprintln!("No kubeport nodes for any cluster.");
        } else {
            eprintln!("No kubeport nodes found for cluster \"{name}\".");
        }
    }
    for n in nodes {
        println!("{n}");
    }
    Ok(())
}

/// The kubeconfig text of a cluster: the host-facing one, or with `internal` the one
/// addressing the control-plane node directly (what the nodes use).
pub fn kubeconfig_text(state: &ClusterState, internal: bool) -> Result<String> {
    let layout = Layout::new(state.dir());
    let path = if internal {
        layout.internal_kubeconfig()
    } else {
        layout.kubeconfig()
    };
    std::fs::read_to_string(&path).map_err(|e| {
        anyhow!(
            "cluster {:?} has no kubeconfig yet ({}: {e}); was it fully created?",
            state.name,
            path.display()
        )
    })
}

/// `get kubeconfig`: prints it.
pub fn get_kubeconfig(name: &str, internal: bool) -> Result<()> {
    let state = existing(name)?;
    print!("{}", kubeconfig_text(&state, internal)?);
    Ok(())
}

/// Merges the cluster's context into `path`, makes it current, and remembers the file so
/// `delete` removes the entry again.
pub fn export_kubeconfig_to(state: &mut ClusterState, path: &Path, internal: bool) -> Result<()> {
    let text = kubeconfig_text(state, internal)?;
    let context = plan::context_name(&state.name);
    let entry = kubeport_pki::Kubeconfig::parse(&text)?
        .entry(&context)
        .ok_or_else(|| {
            anyhow!(
                "the kubeconfig of cluster {:?} has no context {context}",
                state.name
            )
        })?;
    kubeport_pki::merge_into(path, &entry)?;
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    if !state.kubeconfigs.contains(&path) {
        state.kubeconfigs.push(path);
        state::write_state(state)?;
    }
    Ok(())
}

/// `export kubeconfig`.
pub fn export_kubeconfig(name: &str, kubeconfig: Option<&Path>, internal: bool) -> Result<()> {
    let mut state = existing(name)?;
    let path = kubeconfig
        .map(Path::to_path_buf)
        .unwrap_or_else(kubeport_pki::default_kubeconfig_path);
    export_kubeconfig_to(&mut state, &path, internal)?;
    eprintln!(
        "Set kubectl context to \"{}\"",
        plan::context_name(&state.name)
    );
    Ok(())
}

/// The interactive shell for `exec` without a command: `$SHELL`, else bash, else sh.
fn default_shell() -> String {
    std::env::var("SHELL")
        .ok()
        .filter(|s| !s.is_empty() && Path::new(s).exists())
        .or_else(|| {
            Path::new("/bin/bash")
                .exists()
                .then(|| "/bin/bash".to_string())
        })
        .unwrap_or_else(|| "/bin/sh".to_string())
}

/// `exec NODE [CMD...]`: replaces this process with `ip netns exec NODE CMD` (what
/// `docker exec` is to kind's node containers). Returns only on failure.
pub fn exec_in_node(node: &str, command: &[String]) -> Result<()> {
    let known = state::list_states()?
        .into_iter()
        .any(|s| s.nodes.iter().any(|n| n.name == node));
    if !known {
        bail!("unknown node {node:?}: `kubeport get nodes --all-clusters` lists the nodes");
    }
    if !topology::netns_exists(node) {
        bail!("node {node:?} is not running (its network namespace is gone); delete its cluster and create it again");
    }
    let command: Vec<String> = if command.is_empty() {
        vec![default_shell()]
    } else {
        command.to_vec()
    };
    let err = Command::new("ip")
        .args(["netns", "exec", node])
        .args(&command)
        .exec();
    Err(anyhow!("running ip netns exec {node}: {err}"))
}
