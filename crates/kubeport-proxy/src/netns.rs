//! Guard against programming the machine's own firewall by accident: the proxy belongs in
//! a node's network namespace (the lab starts it with `ip netns exec NODE`).

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Identity (device, inode) of a network namespace handle such as `/proc/self/ns/net`.
pub fn namespace_id(path: &Path) -> io::Result<(u64, u64)> {
    let meta = std::fs::metadata(path)?;
    Ok((meta.dev(), meta.ino()))
}

/// Inode number recent kernels give the initial network namespace (older kernels allocate
/// it at boot like any other).
pub const INITIAL_NET_NS_INODE: u64 = 0xEFFF_FFF9;

/// Directory where `ip netns add` keeps its named namespaces.
pub const NAMED_NETNS_DIR: &str = "/var/run/netns";

/// True when this process runs in the initial network namespace (the machine's, or the
/// container's). Compares with PID 1's namespace; where that handle is not readable (no
/// CAP_SYS_PTRACE), the namespace is initial when it has the initial namespace's fixed inode,
/// and dedicated when it is one of `ip netns`'s named namespaces; otherwise this is unknown.
pub fn in_initial_network_namespace() -> io::Result<bool> {
    let own = namespace_id(Path::new("/proc/self/ns/net"))?;
    match namespace_id(Path::new("/proc/1/ns/net")) {
        Ok(init) => return Ok(own == init),
        Err(err) if err.kind() != io::ErrorKind::PermissionDenied => return Err(err),
        Err(_) => {}
    }
    if own.1 == INITIAL_NET_NS_INODE {
        return Ok(true);
    }
    if let Ok(entries) = std::fs::read_dir(NAMED_NETNS_DIR) {
        for entry in entries.flatten() {
            if namespace_id(&entry.path()).is_ok_and(|id| id == own) {
                return Ok(false);
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::PermissionDenied,
        "/proc/1/ns/net is not readable and this namespace is not one of ip netns's",
    ))
}

/// Refuses to go on in the initial network namespace unless explicitly allowed.
pub fn ensure_dedicated_network_namespace(allow_host_netns: bool) -> anyhow::Result<()> {
    if allow_host_netns {
        return Ok(());
    }
    match in_initial_network_namespace() {
        Ok(false) => Ok(()),
        Ok(true) => anyhow::bail!(
            "refusing to program the firewall of the host's network namespace: run the proxy \
             inside a node's network namespace (e.g. `ip netns exec NODE kubeport proxy ...`), \
             or pass --allow-host-netns on a real node"
        ),
        Err(err) => anyhow::bail!(
            "cannot tell whether this is the host's network namespace ({err}); \
             pass --allow-host-netns on a real node"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_handle_has_the_same_identity() {
        let a = namespace_id(Path::new("/proc/self/ns/net")).unwrap();
        let b = namespace_id(Path::new("/proc/thread-self/ns/net")).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn allowing_the_host_namespace_skips_the_check() {
        assert!(ensure_dedicated_network_namespace(true).is_ok());
    }
}
