//! `kubeport delete cluster`: ends every process, removes every namespace and link, the
//! kubeconfig entry and the state directory. Idempotent, and it works from the state file
//! alone, whatever became of the processes.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::plan;
use crate::process;
use crate::state::{self, ClusterState, Layout};
use crate::topology;

/// Whether namespace `ns` is named like one of cluster `name`'s nodes
/// (`NAME-control-plane`, `NAME-worker`, `NAME-worker7`, …). Used only when the cluster's
/// state is gone.
pub fn is_node_name_of(ns: &str, name: &str) -> bool {
    let Some(rest) = ns.strip_prefix(name).and_then(|r| r.strip_prefix('-')) else {
        return false;
    };
    ["control-plane", "worker"].iter().any(|role| {
        rest.strip_prefix(role)
            .is_some_and(|n| n.is_empty() || (n.chars().all(|c| c.is_ascii_digit()) && n != "1"))
    })
}

/// Deletes cluster `name` and returns the names of the nodes that existed. Removes the
/// context from `kubeconfig` (or the default kubeconfig) and from every file `create` or
/// `export` merged it into.
pub fn delete_cluster(name: &str, kubeconfig: Option<&Path>) -> Result<Vec<String>> {
    let dir = state::cluster_dir(name);
    let saved = match state::read_state(name) {
        Ok(s) => s,
        Err(e) => {
            // A damaged state file must not block the cleanup: fall back to names.
            tracing::warn!("{e:#}; deleting cluster {name} by its names");
            None
        }
    };
    let others: Vec<ClusterState> = state::list_states()?
        .into_iter()
        .filter(|s| s.name != name)
        .collect();

    let (node_names, link_id, nodes, records) = match &saved {
        Some(s) => (
            s.nodes.iter().map(|n| n.name.clone()).collect::<Vec<_>>(),
            Some(s.link_id.clone()).filter(|id| !id.is_empty()),
            s.nodes.clone(),
            s.processes.clone(),
        ),
        None => {
            let names: Vec<String> = topology::list_netns()
                .into_iter()
                .filter(|ns| is_node_name_of(ns, name))
                .filter(|ns| !others.iter().any(|o| o.nodes.iter().any(|n| &n.name == ns)))
                .collect();
            // The first-choice link id, unless another cluster owns it.
            let id = plan::link_id(name, 0);
            let id = (!others.iter().any(|o| o.link_id == id)).then_some(id);
            (names, id, Vec::new(), Vec::new())
        }
    };

    let namespaces = topology::cluster_namespaces(&node_names, link_id.as_deref());
    let ns_paths: Vec<PathBuf> = namespaces.iter().map(|n| process::netns_path(n)).collect();
    process::stop_cluster_processes(&records, &dir, &ns_paths);
    let existed: Vec<String> = node_names
        .iter()
        .filter(|n| namespaces.contains(n))
        .cloned()
        .collect();
    topology::remove(link_id.as_deref(), &nodes, &namespaces)?;

    let context = plan::context_name(name);
    let mut files: Vec<PathBuf> = vec![kubeconfig
        .map(Path::to_path_buf)
        .unwrap_or_else(kubeport_pki::default_kubeconfig_path)];
    if let Some(s) = &saved {
        for f in &s.kubeconfigs {
            if !files.contains(f) {
                files.push(f.clone());
            }
        }
    }
    for f in &files {
        kubeport_pki::remove_from(f, &context)
            .with_context(|| format!("removing context {context} from {}", f.display()))?;
    }

    if dir.exists() {
        unmount_below(&dir);
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    if saved.is_some() && Layout::new(dir.clone()).state_file().exists() {
        bail!("could not remove {}", dir.display());
    }
    Ok(existed)
}

/// Detaches every mount below `dir` (deepest first), in case a node agent left one there.
fn unmount_below(dir: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<PathBuf> = info
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape_mount_path(p)))
        .filter(|p| p.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for p in points {
        if let Ok(c) = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()) {
            // SAFETY: umount2 with a valid C string; failures leave the path as it was.
            unsafe {
                libc::umount2(c.as_ptr(), libc::MNT_DETACH);
            }
        }
    }
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mount_path(p: &str) -> String {
    let bytes = p.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            if let Some(v) = std::str::from_utf8(&bytes[i + 1..i + 4])
                .ok()
                .and_then(|o| u8::from_str_radix(o, 8).ok())
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_of_a_cluster() {
        assert!(is_node_name_of("a-control-plane", "a"));
        assert!(is_node_name_of("a-worker", "a"));
        assert!(is_node_name_of("a-worker12", "a"));
        assert!(!is_node_name_of("a-worker1", "a"));
        assert!(!is_node_name_of("a-worker-control-plane", "a"));
        assert!(!is_node_name_of("ab-worker", "a"));
        assert!(!is_node_name_of("a-workers", "a"));
        assert!(is_node_name_of("a-worker-worker", "a-worker"));
        assert!(!is_node_name_of("a-worker", "a-worker"));
    }

    #[test]
    fn mountinfo_paths() {
        assert_eq!(unescape_mount_path("/var/lib/a\\040b"), "/var/lib/a b");
        assert_eq!(unescape_mount_path("/plain"), "/plain");
    }
}
