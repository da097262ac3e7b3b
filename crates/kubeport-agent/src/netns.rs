//! Pod networking inside the node's network namespace, with iproute2: a bridge `kp0` holding
//! the pod CIDR's gateway address, and per pod a network namespace and a veth pair (node end
//! on the bridge, pod end `eth0` with the pod's address and a default route via the gateway).
//!
//! The agent runs under `ip netns exec NODE`, which gives it a private mount namespace. Pod
//! network namespaces are created and deleted in the host's mount namespace (PID 1's) so their
//! /run/netns mounts are visible to the lab and survive an agent restart; they propagate into
//! the agent's namespace because /run/netns is a shared mount.

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use tokio::io::AsyncWriteExt;

/// The node's pod bridge.
pub const BRIDGE: &str = "kp0";
/// Where iproute2 keeps named network namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// The inode of a namespace file (namespaces are equal when their inodes are).
fn ns_inode(path: &str) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| m.ino())
}

/// Whether this process runs in PID 1's network namespace (the host's, for a lab).
pub fn in_host_network_namespace() -> bool {
    match (ns_inode("/proc/1/ns/net"), ns_inode("/proc/self/ns/net")) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// The host mount namespace to create pod network namespaces in, when it differs from ours.
pub fn host_mount_namespace() -> Option<PathBuf> {
    match (ns_inode("/proc/1/ns/mnt"), ns_inode("/proc/self/ns/mnt")) {
        (Some(a), Some(b)) if a != b => Some(PathBuf::from("/proc/1/ns/mnt")),
        _ => None,
    }
}

/// Runs `ip ARGS` (with `stdin` fed to it, for `-batch -`), optionally in another mount
/// namespace. Fails with ip's error output.
async fn ip(args: &[&str], stdin: Option<&str>, mount_ns: Option<&Path>) -> anyhow::Result<()> {
    let mut cmd = tokio::process::Command::new("ip");
    cmd.args(args)
        .stdin(if stdin.is_some() {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        })
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let ns_file = match mount_ns {
        Some(p) => {
            Some(std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?)
        }
        None => None,
    };
    if let Some(f) = &ns_file {
        let fd = f.as_raw_fd();
        // SAFETY: setns(2) in the forked child before exec; no allocation.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNS) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut child = cmd
        .spawn()
        .context("running `ip` (iproute2 is needed: scripts/install-deps)")?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes()).await?;
        drop(pipe);
    }
    let out = child.wait_with_output().await?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Node-side network settings of this agent.
#[derive(Debug, Clone)]
pub struct NodeNetwork {
    pub gateway: Ipv4Addr,
    pub prefix_len: u8,
    pub host_mount_ns: Option<PathBuf>,
}

impl NodeNetwork {
    /// Creates the bridge (if missing) with the gateway address, up, and enables forwarding
    /// in the node's network namespace.
    pub async fn ensure_bridge(&self) -> anyhow::Result<()> {
        if in_host_network_namespace() {
            bail!(
                "kubeport agent must run inside its node's network namespace \
                 (ip netns exec NODE kubeport agent ...), not in the host's"
            );
        }
        if ip(&["link", "show", "dev", BRIDGE], None, None)
            .await
            .is_err()
        {
            ip(&["link", "add", BRIDGE, "type", "bridge"], None, None).await?;
        }
        let addr = format!("{}/{}", self.gateway, self.prefix_len);
        ip(&["addr", "replace", &addr, "dev", BRIDGE], None, None).await?;
        ip(&["link", "set", BRIDGE, "up"], None, None).await?;
        // The node namespace's own sysctl (never the host's: checked above).
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
            .context("enabling ip_forward in the node's network namespace")?;
        Ok(())
    }

    /// The path of a pod network namespace.
    pub fn netns_path(name: &str) -> PathBuf {
        Path::new(NETNS_DIR).join(name)
    }

    /// Creates the pod's network namespace and links (replacing leftovers of the same name).
    pub async fn create_pod_network(
        &self,
        netns: &str,
        veth: &str,
        ip_addr: Ipv4Addr,
    ) -> anyhow::Result<()> {
        let _ = self.delete_pod_network(netns, veth).await;
        ip(
            &["netns", "add", netns],
            None,
            self.host_mount_ns.as_deref(),
        )
        .await?;
        let node_side = format!(
            "link add {veth} type veth peer name eth0 netns {netns}\n\
             link set {veth} master {BRIDGE} up\n"
        );
        ip(&["-batch", "-"], Some(&node_side), None).await?;
        let pod_side = format!(
            "link set lo up\n\
             addr add {ip_addr}/{prefix} dev eth0\n\
             link set eth0 up\n\
             route add default via {gw} dev eth0\n",
            prefix = self.prefix_len,
            gw = self.gateway
        );
        ip(&["-n", netns, "-batch", "-"], Some(&pod_side), None).await?;
        Ok(())
    }

    /// Deletes the pod's network namespace and its veth (each if present).
    pub async fn delete_pod_network(&self, netns: &str, veth: &str) -> anyhow::Result<()> {
        let mut result = Ok(());
        if Self::netns_path(netns).exists() {
            result = ip(
                &["netns", "delete", netns],
                None,
                self.host_mount_ns.as_deref(),
            )
            .await;
        }
        // The veth goes with the namespace unless a process still holds it.
        let _ = ip(&["link", "delete", veth], None, None).await;
        result
    }
}

/// The start of every pod network namespace name of a `--netns-prefix` (the prefix and a
/// dash, which the prefix may already end with).
fn name_start(prefix: &str) -> String {
    if prefix.ends_with('-') {
        prefix.to_string()
    } else {
        format!("{prefix}-")
    }
}

/// The network namespace name of a pod: `<prefix>-<short uid>`.
pub fn pod_netns_name(prefix: &str, uid: &str) -> String {
    format!("{}{}", name_start(prefix), short_uid(uid))
}

/// Network namespaces named `<prefix>-...`.
pub fn list_pod_netns(prefix: &str) -> Vec<String> {
    let want = name_start(prefix);
    std::fs::read_dir(NETNS_DIR)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .filter(|n| n.starts_with(&want))
                .collect()
        })
        .unwrap_or_default()
}

/// The short id of a pod (first 8 hex digits of its UID) used in namespace and link names.
pub fn short_uid(uid: &str) -> String {
    uid.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(8)
        .collect::<String>()
        .to_ascii_lowercase()
}

/// The node-side veth name of a pod (at most 15 characters, as link names must be).
pub fn veth_name(uid: &str) -> String {
    format!("veth{}", short_uid(uid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let uid = "3F2504E0-4F89-11D3-9A0C-0305E82C3301";
        assert_eq!(short_uid(uid), "3f2504e0");
        assert_eq!(veth_name(uid), "veth3f2504e0");
        assert!(veth_name(uid).len() <= 15);
        assert_eq!(pod_netns_name("demo-worker", uid), "demo-worker-3f2504e0");
        assert_eq!(pod_netns_name("kp-1a2b3c-0-", uid), "kp-1a2b3c-0-3f2504e0");
    }
}
