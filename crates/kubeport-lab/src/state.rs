//! A cluster's state directory: what `create` planned and started, so `delete` can undo it
//! after a crash or a reboot, and `get`/`export`/`exec` can find nodes and kubeconfigs.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::config::ClusterConfig;
use crate::plan::NodePlan;

const STATE_FILE: &str = "cluster.json";
const LOCK_FILE: &str = ".lock";

/// Where clusters live: `/var/lib/kubeport/clusters` for root, else
/// `$XDG_STATE_HOME/kubeport/clusters` (`~/.local/state/kubeport/clusters`).
pub fn state_root() -> PathBuf {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/var/lib/kubeport/clusters");
    }
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".local/state")
        });
    base.join("kubeport").join("clusters")
}

/// The state directory of cluster `name`.
pub fn cluster_dir(name: &str) -> PathBuf {
    state_root().join(name)
}

/// What kind of process a record is, and the `kubeport` subcommand it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProcessRole {
    Server,
    Agent,
    Proxy,
    /// The host-side 127.0.0.1 → control-plane forwarder (`apiServerAddress: 127.0.0.1`).
    Forwarder,
}

impl ProcessRole {
    /// The subcommand (argv\[1\]) of the process.
    pub fn subcommand(self) -> &'static str {
        match self {
            ProcessRole::Server => "server",
            ProcessRole::Agent => "agent",
            ProcessRole::Proxy => "proxy",
            ProcessRole::Forwarder => "lab-forward",
        }
    }
}

/// A process `create` started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRecord {
    pub role: ProcessRole,
    /// The node whose namespace it runs in (none for the forwarder).
    pub node: Option<String>,
    pub pid: u32,
    /// `/proc/PID/stat` start time (clock ticks since boot): with the command line, tells
    /// our process from a later one that reused the PID.
    pub start_time: u64,
    pub log: PathBuf,
}

/// Everything `create` decided and started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    pub name: String,
    /// Bridge name and prefix of every other link and pod namespace (`kp-1a2b3c`).
    pub link_id: String,
    #[serde(with = "crate::state::net_text")]
    pub node_subnet: Ipv4Net,
    /// The host's address on the bridge.
    pub host_ip: Ipv4Addr,
    pub config: ClusterConfig,
    pub nodes: Vec<NodePlan>,
    /// The API server's port on the control-plane node.
    pub api_server_port: u16,
    /// The host-side forwarder's address, when `apiServerAddress: 127.0.0.1` asked for one.
    #[serde(default)]
    pub forwarder: Option<SocketAddr>,
    /// Kubeconfig files the cluster's context was merged into.
    #[serde(default)]
    pub kubeconfigs: Vec<PathBuf>,
    #[serde(default)]
    pub processes: Vec<ProcessRecord>,
    /// Seconds since the epoch.
    pub created: u64,
}

impl ClusterState {
    pub fn dir(&self) -> PathBuf {
        cluster_dir(&self.name)
    }

    pub fn control_plane(&self) -> &NodePlan {
        self.nodes
            .iter()
            .find(|n| n.role == crate::config::Role::ControlPlane)
            .expect("a validated cluster has a control-plane node")
    }

    /// `https://<control-plane IP>:<port>`: reachable from the host and from every node.
    pub fn internal_server_url(&self) -> String {
        format!(
            "https://{}:{}",
            self.control_plane().ip,
            self.api_server_port
        )
    }

    /// The URL users get: the forwarder's when there is one, else the internal one.
    pub fn external_server_url(&self) -> String {
        match self.forwarder {
            Some(addr) => format!("https://{addr}"),
            None => self.internal_server_url(),
        }
    }
}

/// Files inside a cluster's state directory.
pub struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    pub fn new(dir: PathBuf) -> Self {
        Layout { dir }
    }
    pub fn state_file(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }
    /// The API server's `--data-dir`.
    pub fn server_data(&self) -> PathBuf {
        self.dir.join("data")
    }
    /// Written by the API server once it listens.
    pub fn admin_kubeconfig(&self) -> PathBuf {
        self.server_data().join("admin.kubeconfig")
    }
    /// The kubeconfig agents and proxies use (the control-plane node's address).
    pub fn internal_kubeconfig(&self) -> PathBuf {
        self.dir.join("internal.kubeconfig")
    }
    /// The kubeconfig `get kubeconfig` prints and `export kubeconfig` merges.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }
    pub fn logs(&self) -> PathBuf {
        self.dir.join("logs")
    }
    /// A node agent's `--state-dir`.
    pub fn node_dir(&self, node: &str) -> PathBuf {
        self.dir.join("nodes").join(node)
    }
    pub fn forwarder_port_file(&self) -> PathBuf {
        self.dir.join("forwarder.port")
    }
}

/// Creates a directory (and parents) readable only by its owner: it holds keys.
pub fn create_private_dir(path: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .with_context(|| format!("creating {}", path.display()))
}

/// Writes the state file atomically.
pub fn write_state(state: &ClusterState) -> Result<()> {
    let layout = Layout::new(state.dir());
    create_private_dir(&layout.dir)?;
    let path = layout.state_file();
    let tmp = path.with_extension("json.tmp");
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(serde_json::to_string_pretty(state)?.as_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))
}

/// Reads cluster `name`'s state; `None` when it has no state directory.
pub fn read_state(name: &str) -> Result<Option<ClusterState>> {
    let path = Layout::new(cluster_dir(name)).state_file();
    match fs::read_to_string(&path) {
        Ok(text) => Ok(Some(
            serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Names of clusters with a state directory, sorted.
pub fn list_cluster_names() -> Result<Vec<String>> {
    let root = state_root();
    let entries = match fs::read_dir(&root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("listing {}", root.display())),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') && entry.path().join(STATE_FILE).is_file() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Every readable cluster state.
pub fn list_states() -> Result<Vec<ClusterState>> {
    let mut states = Vec::new();
    for name in list_cluster_names()? {
        match read_state(&name) {
            Ok(Some(s)) => states.push(s),
            Ok(None) => {}
            Err(e) => tracing::warn!("ignoring cluster {name}: {e:#}"),
        }
    }
    Ok(states)
}

/// An exclusive lock over every cluster's state, held while a `create` picks its names and
/// subnet and builds its links, so two creates never pick the same ones.
pub struct StateLock {
    _file: File,
}

impl StateLock {
    pub fn acquire() -> Result<StateLock> {
        let root = state_root();
        create_private_dir(&root)?;
        let path = root.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        // SAFETY: flock on a file descriptor we own; blocks until the lock is free.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("locking {}", path.display()));
        }
        // Released when the file is closed.
        Ok(StateLock { _file: file })
    }
}

/// Serde for `Ipv4Net` as its text (`10.244.0.0/24`), without ipnet's serde feature.
pub(crate) mod net_text {
    use ipnet::Ipv4Net;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(net: &Ipv4Net, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(net)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Ipv4Net, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}
