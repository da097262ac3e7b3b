//! `kubeport create cluster`: kind's steps, with network namespaces for nodes and the
//! `kubeport` binary for every node's software.

use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};

use crate::config::{ClusterConfig, ProxyMode, Role, DEFAULT_API_SERVER_PORT};
use crate::duration::format_go_duration;
use crate::plan::{self, NodePlan};
use crate::process::{self, spawn_detached};
use crate::state::{self, ClusterState, Layout, ProcessRole, StateLock};
use crate::status::Status;
use crate::topology;

/// `create cluster` options (from the command line).
#[derive(Debug, Clone)]
pub struct CreateOptions {
    pub name: Option<String>,
    pub config: Option<PathBuf>,
    pub kubeconfig: Option<PathBuf>,
    /// How long to wait for every node to be Ready; zero does not wait.
    pub wait: Duration,
    /// Keep what was made when creation fails (for debugging).
    pub retain: bool,
    /// Print how long each step took.
    pub timings: bool,
}

/// A started process of the cluster, watched while `create` runs.
struct Started {
    role: ProcessRole,
    node: Option<String>,
    child: Child,
    log: PathBuf,
}

struct Creation {
    state: ClusterState,
    layout: Layout,
    exe: PathBuf,
    started: Vec<Started>,
    status: Status,
    /// Set once this run wrote the cluster's state: only then may a failure clean up.
    owns_cluster: bool,
}

/// Reads the config file (or kind's default), resolves the cluster name.
pub fn load_config(path: Option<&Path>) -> Result<ClusterConfig> {
    match path {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("reading kind config {}", p.display()))?;
            ClusterConfig::parse(&text)
        }
        None => Ok(ClusterConfig::default()),
    }
}

fn preflight() -> Result<PathBuf> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("creating a cluster needs root: nodes are network namespaces and links (CAP_NET_ADMIN, CAP_SYS_ADMIN); run it with sudo");
    }
    topology::ip(&["-V"]).context("kubeport needs iproute2's `ip` on PATH")?;
    std::env::current_exe().context("locating the kubeport executable")
}

/// Creates a cluster; on failure removes what it made (unless `retain`).
pub fn create_cluster(opts: &CreateOptions) -> Result<()> {
    let config = load_config(opts.config.as_deref())?;
    let name = opts
        .name
        .clone()
        .or_else(|| config.name.clone())
        .unwrap_or_else(|| plan::DEFAULT_CLUSTER_NAME.to_string());
    plan::validate_cluster_name(&name)?;
    let exe = preflight()?;
    if name.len() > plan::CLUSTER_NAME_MAX {
        eprintln!("WARNING: cluster name {name:?} is probably too long, this might not work properly on some systems");
    }
    let begun = Instant::now();
    eprintln!("Creating cluster \"{name}\" ...");
    let layout = Layout::new(state::cluster_dir(&name));
    let mut creation = Creation {
        state: ClusterState {
            name: name.clone(),
            link_id: String::new(),
            node_subnet: "0.0.0.0/24".parse().expect("valid"),
            host_ip: Ipv4Addr::UNSPECIFIED,
            config,
            nodes: Vec::new(),
            api_server_port: DEFAULT_API_SERVER_PORT,
            forwarder: None,
            kubeconfigs: Vec::new(),
            processes: Vec::new(),
            created: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        },
        layout,
        exe,
        started: Vec::new(),
        status: Status::new(),
        owns_cluster: false,
    };
    match creation.run(opts) {
        Ok(()) => {
            if opts.timings {
                let steps: Vec<String> = creation
                    .status
                    .timings
                    .iter()
                    .map(|(step, d)| format!("{}: {}", step_label(step), format_go_duration(*d)))
                    .collect();
                eprintln!(
                    "Timings: {}; total: {}",
                    steps.join(", "),
                    format_go_duration(begun.elapsed())
                );
            }
            Ok(())
        }
        Err(e) => {
            creation.status.end(false);
            if creation.owns_cluster {
                if opts.retain {
                    eprintln!(
                        "Kept the cluster for debugging (--retain); logs are in {}. Remove it with: kubeport delete cluster --name {name}",
                        creation.layout.logs().display()
                    );
                } else {
                    // The children must not outlive the failed cluster; delete ends them.
                    if let Err(cleanup) =
                        crate::delete::delete_cluster(&name, opts.kubeconfig.as_deref())
                    {
                        eprintln!("ERROR: cleaning up after the failure: {cleanup:#}");
                    }
                }
            }
            for s in &mut creation.started {
                let _ = s.child.try_wait();
            }
            Err(e)
        }
    }
}

/// A step's words without its emoji, for the timings line.
fn step_label(step: &str) -> &str {
    step.split(" (")
        .next()
        .unwrap_or(step)
        .trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
}

impl Creation {
    fn run(&mut self, opts: &CreateOptions) -> Result<()> {
        self.status.start(format!(
            "Ensuring node image (kubeport v{}) 🖼",
            env!("CARGO_PKG_VERSION")
        ));
        // The "image" of every node is this executable; it must still be there to start.
        if !self.exe.is_file() {
            bail!("the kubeport executable {} is gone", self.exe.display());
        }

        let node_count = self.state.config.nodes.len();
        self.status
            .start(format!("Preparing nodes {}", "📦 ".repeat(node_count)));
        self.prepare_nodes()?;

        self.status.start("Writing configuration 📜");
        self.write_configuration()?;

        self.status.start("Starting control-plane 🕹️");
        self.start_control_plane()?;

        self.status.start("Installing CNI 🔌");
        topology::install_pod_network(&self.state)?;

        let workers: Vec<NodePlan> = self
            .state
            .nodes
            .iter()
            .filter(|n| n.role == Role::Worker)
            .cloned()
            .collect();
        if !workers.is_empty() {
            self.status.start("Joining worker nodes 🚜");
            for node in &workers {
                self.start_node_software(node)?;
            }
            self.record_processes()?;
        }

        if !opts.wait.is_zero() {
            self.status.start(format!(
                "Waiting ≤ {} for nodes = Ready ⏳",
                format_go_duration(opts.wait)
            ));
            let started = Instant::now();
            if self.wait_for_ready(opts.wait)? {
                self.status.end(true);
                eprintln!(
                    " • Ready after {} 💚",
                    format_go_duration(started.elapsed())
                );
            } else {
                self.status.end(false);
                eprintln!(" • WARNING: Timed out waiting for Ready ⚠️");
            }
        }
        self.status.end(true);
        self.warn_about_exited_proxies();

        let path = opts
            .kubeconfig
            .clone()
            .unwrap_or_else(kubeport_pki::default_kubeconfig_path);
        crate::get::export_kubeconfig_to(&mut self.state, &path, false)?;
        let context = plan::context_name(&self.state.name);
        eprintln!("Set kubectl context to \"{context}\"");
        let mut sample = format!("kubectl cluster-info --context {context}");
        if let Some(p) = &opts.kubeconfig {
            sample.push_str(&format!(
                " --kubeconfig {}",
                shell_quote(&p.to_string_lossy())
            ));
        }
        eprintln!("You can now use your cluster with:\n\n{sample}\n\nHave a nice day! 👋");
        Ok(())
    }

    /// Picks names and the node subnet under the state lock, records them, and builds the
    /// namespaces, bridge and veths.
    fn prepare_nodes(&mut self) -> Result<()> {
        let _lock = StateLock::acquire()?;
        let name = self.state.name.clone();
        let already = || anyhow!("node(s) already exist for a cluster with the name \"{name}\"");
        if self.layout.state_file().exists() {
            return Err(already());
        }
        let roles: Vec<Role> = self.state.config.nodes.iter().map(|n| n.role).collect();
        for node in plan::node_names(&name, &roles) {
            if topology::netns_exists(&node) {
                bail!(
                    "{} (network namespace {node} exists; if an earlier cluster left it, run: kubeport delete cluster --name {name})",
                    already()
                );
            }
        }
        let others = state::list_states()?;
        let mut taken = plan::host_networks(
            &topology::ip(&["-j", "-4", "addr"])?,
            &topology::ip(&["-j", "-4", "route", "show", "table", "all"])?,
        )?;
        taken.extend(others.iter().map(|o| o.node_subnet));
        let net = &self.state.config.networking;
        taken.push(net.pod_subnet);
        taken.push(net.service_subnet);
        let subnet = plan::choose_node_subnet(&taken).ok_or_else(|| {
            anyhow!("no free /24 for the node network in 172.30.0.0/15: every one overlaps an address, a route or another cluster on this host")
        })?;
        let netns = topology::list_netns();
        let link_id = (0..1000)
            .map(|attempt| plan::link_id(&name, attempt))
            .find(|id| {
                !others.iter().any(|o| &o.link_id == id)
                    && !topology::link_exists(id)
                    && !netns.iter().any(|ns| ns.starts_with(&format!("{id}-")))
            })
            .ok_or_else(|| anyhow!("no free bridge name for cluster {name}"))?;
        self.state.nodes = plan::plan_nodes(&name, &self.state.config, subnet, &link_id)?;
        self.state.link_id = link_id;
        self.state.node_subnet = subnet;
        self.state.host_ip = plan::nth_address(subnet, 1);
        // Behind a 127.0.0.1 forwarder the server keeps kubeadm's port; otherwise
        // apiServerPort is the port on the control-plane node.
        self.state.api_server_port = match (net.api_server_address, net.api_server_port) {
            (None, Some(port)) if port != 0 => port,
            _ => DEFAULT_API_SERVER_PORT,
        };
        state::write_state(&self.state)?;
        self.owns_cluster = true;
        topology::create_nodes(&self.state)
    }

    fn write_configuration(&mut self) -> Result<()> {
        state::create_private_dir(&self.layout.logs())?;
        state::create_private_dir(&self.layout.server_data())?;
        for node in &self.state.nodes {
            state::create_private_dir(&self.layout.node_dir(&node.name))?;
        }
        Ok(())
    }

    fn spawn(&mut self, role: ProcessRole, node: Option<&str>, args: Vec<OsString>) -> Result<()> {
        let log_name = match node {
            Some(n) => format!("{}-{n}.log", role.subcommand()),
            None => format!("{}.log", role.subcommand()),
        };
        let log = self.layout.logs().join(log_name);
        let child = spawn_detached(node, &self.exe, &args, &log)?;
        self.started.push(Started {
            role,
            node: node.map(str::to_string),
            child,
            log,
        });
        Ok(())
    }

    fn record_processes(&mut self) -> Result<()> {
        self.state.processes = self
            .started
            .iter()
            .map(|s| process::record(s.role, s.node.as_deref(), &s.child, &s.log))
            .collect();
        state::write_state(&self.state)
    }

    fn start_control_plane(&mut self) -> Result<()> {
        let cp = self.state.control_plane().clone();
        let net = self.state.config.networking.clone();
        let args: Vec<OsString> = vec![
            "server".into(),
            "--data-dir".into(),
            self.layout.server_data().into(),
            "--bind-address".into(),
            cp.ip.to_string().into(),
            "--secure-port".into(),
            self.state.api_server_port.to_string().into(),
            "--advertise-address".into(),
            cp.ip.to_string().into(),
            "--service-cluster-ip-range".into(),
            net.service_subnet.to_string().into(),
        ];
        self.spawn(ProcessRole::Server, Some(&cp.name), args)?;
        self.record_processes()?;
        let admin = self.wait_for_server()?;

        let context = plan::context_name(&self.state.name);
        let internal = kubeport_pki::KubeconfigEntry {
            name: context.clone(),
            server: self.state.internal_server_url(),
            ..admin
        };
        kubeport_pki::write_kubeconfig(&self.layout.internal_kubeconfig(), &internal)?;

        if net.api_server_address.is_some() {
            self.start_forwarder(net.api_server_port.unwrap_or(0))?;
        }
        let external = kubeport_pki::KubeconfigEntry {
            server: self.state.external_server_url(),
            ..internal
        };
        kubeport_pki::write_kubeconfig(&self.layout.kubeconfig(), &external)?;

        self.start_node_software(&cp)?;
        self.record_processes()
    }

    /// Waits until the API server wrote its admin kubeconfig (it does once it listens) and
    /// returns the credentials in it.
    fn wait_for_server(&mut self) -> Result<kubeport_pki::KubeconfigEntry> {
        let path = self.layout.admin_kubeconfig();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(text) = std::fs::read_to_string(&path) {
                let config = kubeport_pki::Kubeconfig::parse(&text)?;
                let context = config.current_context.clone();
                return config
                    .entry(&context)
                    .ok_or_else(|| anyhow!("{} has no usable context", path.display()));
            }
            self.check_started(&[ProcessRole::Server])?;
            if Instant::now() > deadline {
                bail!(
                    "the API server did not start within 30s; its log ({}):\n{}",
                    self.log_of(ProcessRole::Server).display(),
                    process::log_tail(&self.log_of(ProcessRole::Server), 20)
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn log_of(&self, role: ProcessRole) -> PathBuf {
        self.started
            .iter()
            .find(|s| s.role == role)
            .map(|s| s.log.clone())
            .unwrap_or_default()
    }

    /// Fails when a process of one of `roles` has exited, quoting its log.
    fn check_started(&mut self, roles: &[ProcessRole]) -> Result<()> {
        for s in &mut self.started {
            if !roles.contains(&s.role) {
                continue;
            }
            if let Some(status) = s.child.try_wait()? {
                let what = match (&s.role, &s.node) {
                    (ProcessRole::Server, _) => "the API server".to_string(),
                    (ProcessRole::Agent, Some(n)) => format!("the node agent on {n}"),
                    (ProcessRole::Proxy, Some(n)) => format!("the node proxy on {n}"),
                    (ProcessRole::Forwarder, _) => "the API server forwarder".to_string(),
                    (role, None) => format!("{role:?}"),
                };
                bail!(
                    "{what} exited ({status}); its log ({}):\n{}",
                    s.log.display(),
                    process::log_tail(&s.log, 20)
                );
            }
        }
        Ok(())
    }

    /// `apiServerAddress: 127.0.0.1`: a host-side TCP forwarder on 127.0.0.1 to the API
    /// server on the control-plane node (the serving certificate covers 127.0.0.1).
    fn start_forwarder(&mut self, port: u16) -> Result<()> {
        let port_file = self.layout.forwarder_port_file();
        let _ = std::fs::remove_file(&port_file);
        let target = SocketAddr::new(
            self.state.control_plane().ip.into(),
            self.state.api_server_port,
        );
        let args: Vec<OsString> = vec![
            "lab-forward".into(),
            "--listen".into(),
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port)
                .to_string()
                .into(),
            "--target".into(),
            target.to_string().into(),
            "--port-file".into(),
            port_file.clone().into(),
        ];
        self.spawn(ProcessRole::Forwarder, None, args)?;
        self.record_processes()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(text) = std::fs::read_to_string(&port_file) {
                if let Ok(port) = text.trim().parse::<u16>() {
                    self.state.forwarder = Some(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port));
                    return state::write_state(&self.state);
                }
            }
            self.check_started(&[ProcessRole::Forwarder])?;
            if Instant::now() > deadline {
                bail!("the API server forwarder did not start within 10s");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The node agent and (unless kubeProxyMode is none) the node proxy of `node`.
    fn start_node_software(&mut self, node: &NodePlan) -> Result<()> {
        let kubeconfig: OsString = self.layout.internal_kubeconfig().into();
        let net = self.state.config.networking.clone();
        let mut agent: Vec<OsString> = vec![
            "agent".into(),
            "--kubeconfig".into(),
            kubeconfig.clone(),
            "--node-name".into(),
            node.name.clone().into(),
            "--node-ip".into(),
            node.ip.to_string().into(),
            "--pod-cidr".into(),
            node.pod_cidr.to_string().into(),
            "--role".into(),
            node.role.as_str().into(),
            "--cluster-dns".into(),
            plan::cluster_dns(net.service_subnet).to_string().into(),
            "--state-dir".into(),
            self.layout.node_dir(&node.name).into(),
            "--netns-prefix".into(),
            node.pod_netns_prefix.clone().into(),
        ];
        for (k, v) in &node.labels {
            agent.push("--node-label".into());
            agent.push(format!("{k}={v}").into());
        }
        self.spawn(ProcessRole::Agent, Some(&node.name), agent)?;
        if net.kube_proxy_mode != ProxyMode::None {
            let proxy: Vec<OsString> = vec![
                "proxy".into(),
                "--kubeconfig".into(),
                kubeconfig,
                "--hostname-override".into(),
                node.name.clone().into(),
                "--proxy-mode".into(),
                net.kube_proxy_mode.as_str().into(),
                "--cluster-cidr".into(),
                net.pod_subnet.to_string().into(),
                "--metrics-bind-address".into(),
                "127.0.0.1:10249".into(),
                "--healthz-bind-address".into(),
                "0.0.0.0:10256".into(),
            ];
            self.spawn(ProcessRole::Proxy, Some(&node.name), proxy)?;
        }
        Ok(())
    }

    /// Polls the API until every node is Ready. `Ok(false)` on timeout; an error when the
    /// API server or a node agent exits meanwhile.
    fn wait_for_ready(&mut self, timeout: Duration) -> Result<bool> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let names: Vec<String> = self.state.nodes.iter().map(|n| n.name.clone()).collect();
        let kubeconfig = self.layout.internal_kubeconfig();
        let deadline = Instant::now() + timeout;
        runtime.block_on(async {
            let client = crate::kube_client(&kubeconfig).await?;
            let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client);
            loop {
                if let Ok(list) = nodes.list(&Default::default()).await {
                    let ready: Vec<&str> = list
                        .items
                        .iter()
                        .filter(|n| node_is_ready(n))
                        .filter_map(|n| n.metadata.name.as_deref())
                        .collect();
                    if names.iter().all(|n| ready.contains(&n.as_str())) {
                        return Ok(true);
                    }
                }
                self.check_started(&[ProcessRole::Server, ProcessRole::Agent])?;
                if Instant::now() >= deadline {
                    return Ok(false);
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        })
    }

    /// The proxy is optional for a working cluster: its failure is reported, not fatal.
    fn warn_about_exited_proxies(&mut self) {
        for s in &mut self.started {
            if s.role != ProcessRole::Proxy {
                continue;
            }
            if let Ok(Some(status)) = s.child.try_wait() {
                eprintln!(
                    " • WARNING: the node proxy on {} exited ({status}); Services will not work there. Its log: {}",
                    s.node.as_deref().unwrap_or("?"),
                    s.log.display()
                );
            }
        }
    }
}

fn node_is_ready(node: &k8s_openapi::api::core::v1::Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conds| {
            conds
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
}

/// Quotes a path for a shell command line when it needs it.
fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:@%,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_labels_drop_emoji_and_details() {
        assert_eq!(step_label("Preparing nodes 📦 📦 📦 "), "Preparing nodes");
        assert_eq!(
            step_label("Ensuring node image (kubeport v0.1.0) 🖼"),
            "Ensuring node image"
        );
        assert_eq!(
            step_label("Starting control-plane 🕹️"),
            "Starting control-plane"
        );
        assert_eq!(
            step_label("Waiting ≤ 1m0s for nodes = Ready ⏳"),
            "Waiting ≤ 1m0s for nodes = Ready"
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("/tmp/kube.config"), "/tmp/kube.config");
        assert_eq!(shell_quote("/tmp/my config"), "'/tmp/my config'");
    }
}
