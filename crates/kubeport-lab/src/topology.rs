//! The cluster's network, built with iproute2: a bridge in the host namespace with the
//! host's address, one network namespace per node (named after the node) joined to the
//! bridge by a veth, routes between the nodes' pod CIDRs. Nothing routes outside.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::plan::NodePlan;
use crate::process::{netns_path, NETNS_DIR};
use crate::state::ClusterState;

/// Runs `ip ARGS` and returns its stdout.
pub fn ip(args: &[&str]) -> Result<String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running ip (iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `commands` through one `ip [-n NETNS] -batch -` (one process for many changes).
/// With `force`, keeps going after a failing line (used when tearing down).
fn ip_batch(netns: Option<&str>, commands: &[String], force: bool) -> Result<()> {
    if commands.is_empty() {
        return Ok(());
    }
    let mut cmd = Command::new("ip");
    if let Some(ns) = netns {
        cmd.args(["-n", ns]);
    }
    if force {
        cmd.arg("-force");
    }
    cmd.args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().context("running ip (iproute2)")?;
    let script = commands.join("\n") + "\n";
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(script.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() && !force {
        let where_ = netns.map(|n| format!(" in {n}")).unwrap_or_default();
        bail!(
            "configuring the network{where_} failed: {}\n(commands: {})",
            String::from_utf8_lossy(&out.stderr).trim(),
            commands.join("; ")
        );
    }
    Ok(())
}

/// Whether a link called `name` exists in the host namespace.
pub fn link_exists(name: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(name).exists()
}

/// Names of every named network namespace.
pub fn list_netns() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(NETNS_DIR)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Whether network namespace `name` exists.
pub fn netns_exists(name: &str) -> bool {
    netns_path(name).exists()
}

/// Creates the node namespaces, the bridge with the host's address and each node's veth
/// with its address (`eth0` inside, loopback up). IPv6 address generation is off on every
/// link so nothing but our own IPv4 traffic appears on the bridge.
pub fn create_nodes(state: &ClusterState) -> Result<()> {
    let bridge = &state.link_id;
    let mut host = Vec::new();
    for node in &state.nodes {
        host.push(format!("netns add {}", node.name));
    }
    host.push(format!("link add {bridge} type bridge"));
    host.push(format!("link set dev {bridge} addrgenmode none"));
    host.push(format!(
        "addr add {}/{} dev {bridge}",
        state.host_ip,
        state.node_subnet.prefix_len()
    ));
    host.push(format!("link set dev {bridge} up"));
    for node in &state.nodes {
        host.push(format!(
            "link add {} type veth peer name eth0 netns {}",
            node.host_veth, node.name
        ));
        host.push(format!("link set dev {} addrgenmode none", node.host_veth));
        host.push(format!("link set dev {} master {bridge}", node.host_veth));
        host.push(format!("link set dev {} up", node.host_veth));
    }
    ip_batch(None, &host, false)?;
    for node in &state.nodes {
        let inside = [
            "link set dev lo up".to_string(),
            "link set dev eth0 addrgenmode none".to_string(),
            format!(
                "addr add {}/{} dev eth0",
                node.ip,
                state.node_subnet.prefix_len()
            ),
            "link set dev eth0 up".to_string(),
        ];
        ip_batch(Some(&node.name), &inside, false)?;
    }
    Ok(())
}

/// What kindnet does for kind: routes in every node to the other nodes' pod CIDRs, a
/// route for the service subnet on eth0 (so ClusterIP traffic a node originates has a
/// route to be translated on), and forwarding on inside the node namespaces.
pub fn install_pod_network(state: &ClusterState) -> Result<()> {
    for node in &state.nodes {
        let mut routes: Vec<String> = state
            .nodes
            .iter()
            .filter(|other| other.name != node.name)
            .map(|other| format!("route add {} via {} dev eth0", other.pod_cidr, other.ip))
            .collect();
        routes.push(format!(
            "route add {} dev eth0",
            state.config.networking.service_subnet
        ));
        ip_batch(Some(&node.name), &routes, false)?;
        write_sysctl_in(&node.name, "net/ipv4/ip_forward", "1")?;
    }
    Ok(())
}

/// Writes a sysctl inside network namespace `netns` (never the host's): a thread enters the
/// namespace, and /proc/sys/net opened from that thread is the namespace's.
pub fn write_sysctl_in(netns: &str, key: &str, value: &str) -> Result<()> {
    let ns = std::fs::File::open(netns_path(netns))
        .with_context(|| format!("opening network namespace {netns}"))?;
    let path = PathBuf::from("/proc/sys").join(key);
    let value = value.to_string();
    let netns_name = netns.to_string();
    std::thread::spawn(move || -> Result<()> {
        use std::os::unix::io::AsRawFd;
        // SAFETY: setns moves only this thread, which ends right after the write.
        let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("entering network namespace {netns_name}"));
        }
        std::fs::write(&path, &value)
            .with_context(|| format!("setting {} in {netns_name}", path.display()))
    })
    .join()
    .map_err(|_| anyhow::anyhow!("sysctl thread panicked"))?
}

/// Every named namespace that belongs to the cluster: its nodes' and its pods' (which start
/// with `<link id>-`).
pub fn cluster_namespaces(node_names: &[String], link_id: Option<&str>) -> Vec<String> {
    let pod_prefix = link_id.map(|id| format!("{id}-"));
    list_netns()
        .into_iter()
        .filter(|ns| {
            node_names.contains(ns)
                || pod_prefix
                    .as_deref()
                    .is_some_and(|prefix| ns.starts_with(prefix))
        })
        .collect()
}

/// Removes the host's links of the cluster (node veths, then the bridge) and the given
/// namespaces. Missing pieces are not errors.
pub fn remove(link_id: Option<&str>, nodes: &[NodePlan], namespaces: &[String]) -> Result<()> {
    let mut host = Vec::new();
    if let Some(id) = link_id {
        // Every veth of ours, including any a crashed create left without a state entry.
        let prefix = format!("{id}-");
        let mut links: Vec<String> = std::fs::read_dir("/sys/class/net")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&prefix))
            .collect();
        for node in nodes {
            if link_exists(&node.host_veth) && !links.contains(&node.host_veth) {
                links.push(node.host_veth.clone());
            }
        }
        for link in links {
            host.push(format!("link del dev {link}"));
        }
        if link_exists(id) {
            host.push(format!("link del dev {id}"));
        }
    }
    for ns in namespaces {
        host.push(format!("netns del {ns}"));
    }
    ip_batch(None, &host, true)?;
    let left: Vec<&String> = namespaces.iter().filter(|n| netns_exists(n)).collect();
    if !left.is_empty() {
        bail!("could not delete network namespaces {left:?}");
    }
    if let Some(id) = link_id {
        if link_exists(id) {
            bail!("could not delete bridge {id}");
        }
    }
    Ok(())
}
