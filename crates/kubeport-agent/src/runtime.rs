//! The pod runtime: one worker task per pod bound to this node. A worker sets up the pod's
//! sandbox (network namespace, address, per-pod files), runs init containers in order and
//! then the containers under their restart policy with probes, reports the pod's status, and
//! on deletion stops the processes (SIGTERM, grace period, SIGKILL), tears the sandbox down
//! and removes the pod from the API.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, PodCondition, Probe, Secret, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, Preconditions};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{broadcast, mpsc, watch, Notify};
use tokio::time::Instant;

use crate::env::{self, EnvContext};
use crate::ipam::Ipam;
use crate::logs::{self, Chunk, OutStream, Progress};
use crate::netns::{self, NodeNetwork};
use crate::podfiles;
use crate::probe::{self, ProbeKind, ProbeTiming, ProbeTracker};
use crate::process::{self, Launch, PodNamespaces, PtyIo, PtyMaster, StdioMode};
use crate::program::{self, Program};
use crate::restart::{Backoff, RestartPolicy};
use crate::runtime_api::{
    BoxFuture, ContainerRuntime, ExecOptions, ExitStatus, LogOptions, LogStream, OutputReader,
    ProcessIo, RuntimeError, StdinWriter, TerminalResizer,
};
use crate::status::{self, ConditionInput, ContainerRecord, State, Termination};

/// How long a `stdin`+`stdinOnce` container (`kubectl run -i`) waits for its first attach
/// before starting anyway. Starting on attach keeps the output a short command prints before
/// kubectl attaches (kubectl only attaches once the pod is Running).
pub const ATTACH_WAIT_ENV: &str = "KUBEPORT_AGENT_ATTACH_WAIT_MS";

/// Settings of the runtime (from the agent's flags).
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    pub node_name: String,
    pub node_ip: IpAddr,
    pub cluster_dns: Option<IpAddr>,
    pub cluster_domain: String,
    pub state_dir: PathBuf,
    pub netns_prefix: String,
    pub network: NodeNetwork,
    pub backoff: Backoff,
    pub attach_wait: Duration,
    pub node_cpu: f64,
    pub node_memory: f64,
}

/// What the agent persists about a pod (to clean up after a crash or restart).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct PodRecordFile {
    uid: String,
    namespace: String,
    name: String,
    netns: String,
    veth: String,
    /// Process groups started for the pod: (pid, start time).
    processes: Vec<(i32, u64)>,
}

/// The runtime: pods by UID.
pub struct Runtime {
    pub cfg: Arc<RuntimeConfig>,
    client: kube::Client,
    pods: Mutex<HashMap<String, PodEntry>>,
    /// Pods whose worker finished (removed from the API by the agent): a late watch event
    /// must not start them again.
    finished: Mutex<HashSet<String>>,
    ipam: tokio::sync::Mutex<Ipam>,
    stopping: AtomicBool,
}

struct PodEntry {
    shared: Arc<PodShared>,
    updates: watch::Sender<Arc<Pod>>,
    gone: watch::Sender<bool>,
}

/// State shared by a pod's tasks and the stream server.
pub struct PodShared {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub dir: PathBuf,
    pub netns: String,
    pub veth: String,
    pub hostname: String,
    pub policy: RestartPolicy,
    pub start_time: DateTime<Utc>,
    ip: Mutex<Option<Ipv4Addr>>,
    ns: Mutex<Option<Arc<PodNamespaces>>>,
    init: Vec<Arc<ContainerSlot>>,
    containers: Vec<Arc<ContainerSlot>>,
    processes: Mutex<Vec<(i32, u64)>>,
    exec_groups: Mutex<HashSet<i32>>,
    dirty: Notify,
    sandbox_ready: AtomicBool,
    /// Set when the pod must stop: the deadline for SIGKILL.
    terminate: watch::Sender<Option<Instant>>,
}

/// One container of a pod.
pub struct ContainerSlot {
    pub spec: Container,
    pub init: bool,
    record: Mutex<ContainerRecord>,
    launch: Mutex<Option<Arc<Launch>>>,
    instance: Mutex<Option<Arc<Instance>>>,
    /// The log of the instance recorded in `lastState` (for `kubectl logs --previous`).
    previous_log: Mutex<Option<PathBuf>>,
}

/// Input sent to a container's stdin.
enum StdinMsg {
    Data(Bytes),
    Close,
}

/// One run of a container.
pub struct Instance {
    pub container_id: String,
    pub log_path: PathBuf,
    progress: watch::Receiver<Progress>,
    stdout: Mutex<Option<broadcast::Sender<Bytes>>>,
    stderr: Mutex<Option<broadcast::Sender<Bytes>>>,
    stdin: Option<mpsc::UnboundedSender<StdinMsg>>,
    stdin_once: bool,
    pty: Option<Arc<PtyMaster>>,
    pid: AtomicI32,
    attached: Notify,
    exit: watch::Sender<Option<i32>>,
}

impl Instance {
    fn exited(&self) -> bool {
        self.exit.borrow().is_some()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ContainerSlot {
    fn new(
        spec: &Container,
        init: bool,
        previous: Option<&k8s_openapi::api::core::v1::ContainerStatus>,
    ) -> Self {
        let mut record = ContainerRecord::new(&spec.name, spec.image.as_deref().unwrap_or(""));
        if let Some(prev) = previous {
            // Adopted after an agent restart: the old processes are gone, the next run is a
            // restart.
            if prev.container_id.is_some() {
                record.restart_count = prev.restart_count + 1;
            }
        }
        ContainerSlot {
            spec: spec.clone(),
            init,
            record: Mutex::new(record),
            launch: Mutex::new(None),
            instance: Mutex::new(None),
            previous_log: Mutex::new(None),
        }
    }

    fn update(&self, f: impl FnOnce(&mut ContainerRecord)) {
        f(&mut lock(&self.record));
    }

    fn current(&self) -> Option<Arc<Instance>> {
        lock(&self.instance).clone()
    }
}

impl PodShared {
    fn slots(&self) -> impl Iterator<Item = &Arc<ContainerSlot>> {
        self.init.iter().chain(self.containers.iter())
    }

    fn mark_dirty(&self) {
        self.dirty.notify_one();
    }

    fn terminating(&self) -> bool {
        self.terminate.borrow().is_some()
    }

    fn pod_ips(&self) -> Vec<IpAddr> {
        lock(&self.ip).map(IpAddr::V4).into_iter().collect()
    }

    fn record_file(&self) -> PodRecordFile {
        PodRecordFile {
            uid: self.uid.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            netns: self.netns.clone(),
            veth: self.veth.clone(),
            processes: lock(&self.processes).clone(),
        }
    }

    fn save(&self) {
        let path = self.dir.join("pod.json");
        if let Ok(bytes) = serde_json::to_vec(&self.record_file()) {
            let tmp = self.dir.join("pod.json.tmp");
            if std::fs::write(&tmp, bytes).is_ok() {
                let _ = std::fs::rename(tmp, path);
            }
        }
    }

    fn track_process(&self, pid: i32) {
        if let Some(start) = process::process_start_time(pid) {
            lock(&self.processes).push((pid, start));
            self.save();
        }
    }

    fn untrack_process(&self, pid: i32) {
        lock(&self.processes).retain(|(p, _)| *p != pid);
        self.save();
    }
}

/// Sleeps for `d`; true if the pod started terminating meanwhile (or already was).
async fn sleep_or_terminated(term: &mut watch::Receiver<Option<Instant>>, d: Duration) -> bool {
    if term.borrow().is_some() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        r = term.wait_for(|t| t.is_some()) => { let _ = r; true }
    }
}

async fn wait_terminated(term: &mut watch::Receiver<Option<Instant>>) {
    let _ = term.wait_for(|t| t.is_some()).await;
}

fn container_id(uid: &str, name: &str, restart: i32, at: DateTime<Utc>) -> String {
    let mut h = sha2::Sha256::new();
    h.update(format!(
        "{uid}/{name}/{restart}/{}",
        at.timestamp_nanos_opt().unwrap_or_default()
    ));
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    format!("kubeport://{hex}")
}

/// Whether `name` is an executable on `path` (or a path to one).
fn on_path(name: &str, path: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if name.contains('/') {
        return executable(Path::new(name));
    }
    path.split(':')
        .filter(|d| !d.is_empty())
        .any(|d| executable(&Path::new(d).join(name)))
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    format!("{path}:{}", env::DEFAULT_PATH)
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

enum PrepareError {
    /// kubelet's CreateContainerConfigError: retried.
    Config(String),
    /// The image cannot run here: the container waits until the pod is deleted.
    Unsupported(String),
}

impl Runtime {
    pub fn new(cfg: RuntimeConfig, client: kube::Client, ipam: Ipam) -> Arc<Self> {
        Arc::new(Runtime {
            cfg: Arc::new(cfg),
            client,
            pods: Mutex::new(HashMap::new()),
            finished: Mutex::new(HashSet::new()),
            ipam: tokio::sync::Mutex::new(ipam),
            stopping: AtomicBool::new(false),
        })
    }

    fn pods_dir(&self) -> PathBuf {
        self.cfg.state_dir.join("pods")
    }

    fn netns_name(&self, uid: &str) -> String {
        netns::pod_netns_name(&self.cfg.netns_prefix, uid)
    }

    /// Before watching: ends processes a previous agent run left behind (they are restarted
    /// from the API's pods). Returns the UIDs with leftover state.
    pub fn kill_leftover_processes(&self) -> Vec<String> {
        let mut uids = Vec::new();
        let Ok(rd) = std::fs::read_dir(self.pods_dir()) else {
            return uids;
        };
        for entry in rd.flatten() {
            let file = entry.path().join("pod.json");
            let Ok(bytes) = std::fs::read(&file) else {
                uids.push(entry.file_name().to_string_lossy().into_owned());
                continue;
            };
            let Ok(rec) = serde_json::from_slice::<PodRecordFile>(&bytes) else {
                continue;
            };
            for (pid, start) in &rec.processes {
                if process::process_start_time(*pid) == Some(*start) {
                    process::signal_group(*pid, libc::SIGKILL);
                }
            }
            uids.push(rec.uid);
        }
        uids
    }

    /// After the first complete list: removes state of pods that are no longer bound here
    /// (network namespaces with our prefix, links, addresses, files).
    pub async fn clean_stale(&self, live: &HashSet<String>) {
        let known: HashSet<String> = lock(&self.pods).keys().cloned().collect();
        let keep = |uid: &str| live.contains(uid) || known.contains(uid);
        if let Ok(rd) = std::fs::read_dir(self.pods_dir()) {
            for entry in rd.flatten() {
                let dir = entry.path();
                let rec: Option<PodRecordFile> = std::fs::read(dir.join("pod.json"))
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok());
                let uid = rec
                    .as_ref()
                    .map(|r| r.uid.clone())
                    .unwrap_or_else(|| entry.file_name().to_string_lossy().into_owned());
                if keep(&uid) {
                    continue;
                }
                tracing::info!("removing leftovers of pod {uid}");
                let netns = self.netns_name(&uid);
                let _ = self
                    .cfg
                    .network
                    .delete_pod_network(&netns, &netns::veth_name(&uid))
                    .await;
                let _ = self.ipam.lock().await.release(&uid);
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
        let live_netns: HashSet<String> = live
            .iter()
            .chain(known.iter())
            .map(|u| self.netns_name(u))
            .collect();
        for name in netns::list_pod_netns(&self.cfg.netns_prefix) {
            if !live_netns.contains(&name) {
                tracing::info!("removing stale network namespace {name}");
                let short = name.rsplit('-').next().unwrap_or_default().to_string();
                let _ = self
                    .cfg
                    .network
                    .delete_pod_network(&name, &format!("veth{short}"))
                    .await;
            }
        }
        let holders = self.ipam.lock().await.state().holders();
        for uid in holders {
            if !keep(&uid) {
                let _ = self.ipam.lock().await.release(&uid);
            }
        }
    }

    /// A pod object from the watch (added or modified).
    pub fn apply(self: &Arc<Self>, pod: Pod) {
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        let bound_here = pod.spec.as_ref().and_then(|s| s.node_name.as_deref())
            == Some(self.cfg.node_name.as_str());
        if !bound_here {
            return;
        }
        let mut pods = lock(&self.pods);
        if let Some(entry) = pods.get(&uid) {
            entry.updates.send_replace(Arc::new(pod));
            return;
        }
        if self.stopping.load(Ordering::SeqCst) || lock(&self.finished).contains(&uid) {
            return;
        }
        let shared = Arc::new(self.new_pod_shared(&pod, &uid));
        let (updates, updates_rx) = watch::channel(Arc::new(pod));
        let (gone, gone_rx) = watch::channel(false);
        pods.insert(
            uid.clone(),
            PodEntry {
                shared: shared.clone(),
                updates,
                gone,
            },
        );
        drop(pods);
        let rt = self.clone();
        tokio::spawn(async move {
            rt.clone()
                .run_pod(shared.clone(), updates_rx, gone_rx)
                .await;
            let mut pods = lock(&rt.pods);
            if pods
                .get(&uid)
                .is_some_and(|e| Arc::ptr_eq(&e.shared, &shared))
            {
                pods.remove(&uid);
                lock(&rt.finished).insert(uid);
            }
        });
    }

    /// A pod removed from the API (or no longer bound here).
    pub fn deleted(&self, uid: &str) {
        lock(&self.finished).remove(uid);
        if let Some(entry) = lock(&self.pods).get(uid) {
            entry.gone.send_replace(true);
        }
    }

    /// UIDs of the pods the runtime runs.
    pub fn pod_uids(&self) -> HashSet<String> {
        lock(&self.pods).keys().cloned().collect()
    }

    fn new_pod_shared(&self, pod: &Pod, uid: &str) -> PodShared {
        let spec = pod.spec.clone().unwrap_or_default();
        let prev_status = pod.status.clone().unwrap_or_default();
        let find_prev = |list: &Option<Vec<k8s_openapi::api::core::v1::ContainerStatus>>,
                         name: &str| {
            list.as_ref()
                .and_then(|l| l.iter().find(|s| s.name == name).cloned())
        };
        let init: Vec<Arc<ContainerSlot>> = spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| {
                Arc::new(ContainerSlot::new(
                    c,
                    true,
                    find_prev(&prev_status.init_container_statuses, &c.name).as_ref(),
                ))
            })
            .collect();
        let containers: Vec<Arc<ContainerSlot>> = spec
            .containers
            .iter()
            .map(|c| {
                let slot = ContainerSlot::new(
                    c,
                    false,
                    find_prev(&prev_status.container_statuses, &c.name).as_ref(),
                );
                if !init.is_empty() {
                    slot.update(|r| {
                        r.state = State::Waiting {
                            reason: "PodInitializing".into(),
                            message: None,
                        }
                    });
                }
                Arc::new(slot)
            })
            .collect();
        let start_time = prev_status
            .start_time
            .as_ref()
            .map(status::from_time)
            .unwrap_or_else(Utc::now);
        PodShared {
            uid: uid.to_string(),
            namespace: pod
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into()),
            name: pod.metadata.name.clone().unwrap_or_default(),
            dir: self.pods_dir().join(uid),
            netns: self.netns_name(uid),
            veth: netns::veth_name(uid),
            hostname: podfiles::pod_hostname(pod),
            policy: RestartPolicy::parse(spec.restart_policy.as_deref()),
            start_time,
            ip: Mutex::new(None),
            ns: Mutex::new(None),
            init,
            containers,
            processes: Mutex::new(Vec::new()),
            exec_groups: Mutex::new(HashSet::new()),
            dirty: Notify::new(),
            sandbox_ready: AtomicBool::new(false),
            terminate: watch::channel(None).0,
        }
    }

    /// Stops every pod's processes (agent shutdown): SIGTERM, up to `grace`, then SIGKILL.
    /// Sandboxes stay (a restarted agent adopts them; `delete cluster` removes them).
    pub async fn shutdown(&self, grace: Duration) {
        self.stopping.store(true, Ordering::SeqCst);
        let pods: Vec<Arc<PodShared>> = lock(&self.pods)
            .values()
            .map(|e| e.shared.clone())
            .collect();
        let mut groups = Vec::new();
        for pod in &pods {
            for slot in pod.slots() {
                if let Some(inst) = slot.current() {
                    let pid = inst.pid.load(Ordering::SeqCst);
                    if pid > 0 && !inst.exited() {
                        groups.push(pid);
                    }
                }
            }
            groups.extend(lock(&pod.exec_groups).iter().copied());
        }
        for g in &groups {
            process::signal_group(*g, libc::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline && groups.iter().any(|g| process::group_alive(*g)) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for g in &groups {
            process::signal_group(*g, libc::SIGKILL);
        }
    }

    // ---- the pod worker ----

    async fn run_pod(
        self: Arc<Self>,
        pod: Arc<PodShared>,
        updates: watch::Receiver<Arc<Pod>>,
        gone: watch::Receiver<bool>,
    ) {
        let reporter = tokio::spawn(self.clone().report_status(pod.clone(), updates.clone()));
        let terminator = tokio::spawn(watch_termination(
            pod.clone(),
            updates.clone(),
            gone.clone(),
        ));
        let initial = updates.borrow().clone();
        let phase = initial
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        let already_done = phase == "Succeeded" || phase == "Failed";
        let mut term = pod.terminate.subscribe();
        let mut network_up = false;
        if !already_done && !pod.terminating() {
            let mut attempt = 0u32;
            loop {
                match self.setup_sandbox(&pod, &initial).await {
                    Ok(()) => {
                        network_up = true;
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(
                            "pod {}/{}: creating sandbox: {e:#}",
                            pod.namespace,
                            pod.name
                        );
                        let _ = self.teardown_network(&pod).await;
                        attempt += 1;
                        let delay = Duration::from_millis(500 * u64::from(attempt.min(10)));
                        if sleep_or_terminated(&mut term, delay).await {
                            break;
                        }
                    }
                }
            }
            pod.mark_dirty();
            if network_up {
                let mut init_ok = true;
                for slot in &pod.init {
                    if !self
                        .clone()
                        .supervise(pod.clone(), slot.clone(), updates.clone())
                        .await
                    {
                        init_ok = false;
                        break;
                    }
                }
                if init_ok && !pod.terminating() {
                    let tasks: Vec<_> = pod
                        .containers
                        .iter()
                        .map(|slot| {
                            tokio::spawn(self.clone().supervise(
                                pod.clone(),
                                slot.clone(),
                                updates.clone(),
                            ))
                        })
                        .collect();
                    for t in tasks {
                        let _ = t.await;
                    }
                }
            }
            if !pod.terminating() && network_up {
                // Every container has finished for good: the pod is terminal. Its network goes
                // (as kubelet tears down a completed pod's sandbox); logs stay until deletion.
                pod.mark_dirty();
                self.kill_exec_groups(&pod);
                let _ = self.teardown_network(&pod).await;
                network_up = false;
            }
        }
        wait_terminated(&mut term).await;
        self.kill_exec_groups(&pod);
        if network_up || pod.sandbox_ready.load(Ordering::SeqCst) {
            let _ = self.teardown_network(&pod).await;
        }
        let _ = self.ipam.lock().await.release(&pod.uid);
        let _ = tokio::fs::remove_dir_all(&pod.dir).await;
        reporter.abort();
        terminator.abort();
        if !*gone.borrow() && !self.stopping.load(Ordering::SeqCst) {
            self.delete_from_api(&pod, gone).await;
        }
    }

    async fn delete_from_api(&self, pod: &PodShared, mut gone: watch::Receiver<bool>) {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &pod.namespace);
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(pod.uid.clone()),
                resource_version: None,
            }),
            ..Default::default()
        };
        for attempt in 0..20u64 {
            match api.delete(&pod.name, &params).await {
                Ok(_) => return,
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => return,
                Err(e) => {
                    tracing::warn!("deleting pod {}/{}: {e}", pod.namespace, pod.name);
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(200 * (attempt + 1))) => {}
                        _ = gone.wait_for(|g| *g) => return,
                    }
                }
            }
        }
    }

    fn kill_exec_groups(&self, pod: &PodShared) {
        for g in lock(&pod.exec_groups).drain() {
            process::signal_group(g, libc::SIGKILL);
        }
    }

    async fn teardown_network(&self, pod: &PodShared) -> anyhow::Result<()> {
        pod.sandbox_ready.store(false, Ordering::SeqCst);
        self.cfg
            .network
            .delete_pod_network(&pod.netns, &pod.veth)
            .await
    }

    async fn setup_sandbox(&self, pod: &PodShared, obj: &Pod) -> anyhow::Result<()> {
        let dir = &pod.dir;
        for sub in ["etc", "html", "logs"] {
            tokio::fs::create_dir_all(dir.join(sub)).await?;
        }
        pod.save();
        let ip = {
            let mut ipam = self.ipam.lock().await;
            // An adopted pod keeps the address its status shows.
            let reported: Option<Ipv4Addr> = obj
                .status
                .as_ref()
                .and_then(|s| s.pod_ip.as_deref())
                .and_then(|i| i.parse().ok());
            match reported {
                Some(r) if ipam.state().address_of(&pod.uid) == Some(r) => r,
                Some(r) if ipam.claim(&pod.uid, r)? => r,
                _ => match ipam.allocate(&pod.uid)? {
                    IpAddr::V4(v4) => v4,
                    IpAddr::V6(_) => unreachable!("IPv4 pod CIDR"),
                },
            }
        };
        self.cfg
            .network
            .create_pod_network(&pod.netns, &pod.veth, ip)
            .await?;
        *lock(&pod.ip) = Some(ip);
        let pod_ips = [IpAddr::V4(ip)];
        let etc = dir.join("etc");
        tokio::fs::write(
            etc.join("resolv.conf"),
            podfiles::resolv_conf(obj, self.cfg.cluster_dns, &self.cfg.cluster_domain),
        )
        .await?;
        tokio::fs::write(
            etc.join("hosts"),
            podfiles::hosts_file(obj, &pod_ips, &self.cfg.cluster_domain),
        )
        .await?;
        tokio::fs::write(etc.join("hostname"), format!("{}\n", pod.hostname)).await?;
        let html = dir.join("html");
        if !html.join("index.html").exists() {
            tokio::fs::write(html.join("index.html"), podfiles::NGINX_WELCOME_PAGE).await?;
            tokio::fs::write(html.join("50x.html"), podfiles::NGINX_50X_PAGE).await?;
        }
        let mut binds = Vec::new();
        for (src, target) in [
            (etc.join("resolv.conf"), "/etc/resolv.conf"),
            (etc.join("hosts"), "/etc/hosts"),
            (etc.join("hostname"), "/etc/hostname"),
            // Every pod gets its own document root, so no pod writes the node's.
            (html, podfiles::NGINX_DOC_ROOT),
        ] {
            if Path::new(target).exists() {
                binds.push((src, PathBuf::from(target)));
            }
        }
        *lock(&pod.ns) = Some(Arc::new(PodNamespaces {
            netns: NodeNetwork::netns_path(&pod.netns),
            hostname: pod.hostname.clone(),
            binds,
        }));
        pod.sandbox_ready.store(true, Ordering::SeqCst);
        Ok(())
    }

    // ---- containers ----

    async fn prepare(
        &self,
        pod: &PodShared,
        slot: &ContainerSlot,
        obj: &Pod,
    ) -> Result<(Arc<Launch>, Program), PrepareError> {
        let spec = &slot.spec;
        let (cm_names, secret_names) = env::referenced_objects(spec);
        let mut config_maps = HashMap::new();
        let cms: Api<ConfigMap> = Api::namespaced(self.client.clone(), &pod.namespace);
        for n in cm_names {
            match cms.get_opt(&n).await {
                Ok(Some(cm)) => {
                    config_maps.insert(n, cm);
                }
                Ok(None) => {}
                Err(e) => {
                    return Err(PrepareError::Config(format!(
                        "reading configmap {n:?}: {e}"
                    )))
                }
            }
        }
        let mut secrets = HashMap::new();
        let sec: Api<Secret> = Api::namespaced(self.client.clone(), &pod.namespace);
        for n in secret_names {
            match sec.get_opt(&n).await {
                Ok(Some(s)) => {
                    secrets.insert(n, s);
                }
                Ok(None) => {}
                Err(e) => return Err(PrepareError::Config(format!("reading secret {n:?}: {e}"))),
            }
        }
        let service_env = self.service_env(obj, &pod.namespace).await;
        let host_ips = [self.cfg.node_ip];
        let pod_ips = pod.pod_ips();
        let ctx = EnvContext {
            pod: obj,
            node_name: &self.cfg.node_name,
            host_ips: &host_ips,
            pod_ips: &pod_ips,
            node_cpu: self.cfg.node_cpu,
            node_memory: self.cfg.node_memory,
            config_maps: &config_maps,
            secrets: &secrets,
            service_env: &service_env,
        };
        let container_env =
            env::container_env(spec, &ctx).map_err(|e| PrepareError::Config(e.0))?;
        let lookup = |name: &str| {
            container_env
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        let command: Vec<String> = spec
            .command
            .iter()
            .flatten()
            .map(|c| env::expand(c, &lookup))
            .collect();
        let args: Vec<String> = spec
            .args
            .iter()
            .flatten()
            .map(|c| env::expand(c, &lookup))
            .collect();
        let path = lookup("PATH").unwrap_or_else(|| env::DEFAULT_PATH.to_string());
        let program = program::select(spec, &command, &args, &|p| on_path(p, &path));
        let argv = match &program {
            Program::Command(argv) => argv.clone(),
            Program::Agnhost(a) => {
                let mut argv = vec!["/proc/self/exe".to_string(), "agnhost".to_string()];
                argv.extend(a.iter().cloned());
                argv
            }
            Program::Nginx { port } => {
                let Some(nginx) = find_program("nginx") else {
                    return Err(PrepareError::Config(
                        "nginx is not installed on this machine (scripts/install-deps installs nginx-light)".into(),
                    ));
                };
                let run_dir = pod.dir.join("nginx").join(&spec.name);
                for sub in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"] {
                    std::fs::create_dir_all(run_dir.join(sub))
                        .map_err(|e| PrepareError::Config(format!("preparing nginx: {e}")))?;
                }
                let conf = run_dir.join("nginx.conf");
                std::fs::write(&conf, podfiles::nginx_conf(*port, &run_dir))
                    .map_err(|e| PrepareError::Config(format!("preparing nginx: {e}")))?;
                vec![
                    nginx.to_string_lossy().into_owned(),
                    "-e".into(),
                    "stderr".into(),
                    "-p".into(),
                    run_dir.to_string_lossy().into_owned(),
                    "-c".into(),
                    conf.to_string_lossy().into_owned(),
                ]
            }
            Program::Unsupported(msg) => return Err(PrepareError::Unsupported(msg.clone())),
        };
        let ns = lock(&pod.ns)
            .clone()
            .ok_or_else(|| PrepareError::Config("the pod sandbox is not ready".into()))?;
        let tty = spec.tty.unwrap_or(false);
        Ok((
            Arc::new(Launch {
                argv,
                env: env::process_env(&container_env, &pod.hostname, tty),
                working_dir: spec.working_dir.clone(),
                ns,
            }),
            program,
        ))
    }

    /// Service link variables for a pod (its namespace's services when enableServiceLinks,
    /// and always the `kubernetes` service of `default`).
    async fn service_env(&self, obj: &Pod, namespace: &str) -> Vec<(String, String)> {
        let links = obj
            .spec
            .as_ref()
            .and_then(|s| s.enable_service_links)
            .unwrap_or(true);
        let mut services: Vec<Service> = Vec::new();
        if links {
            let api: Api<Service> = Api::namespaced(self.client.clone(), namespace);
            match api.list(&ListParams::default()).await {
                Ok(list) => services.extend(list.items),
                Err(e) => tracing::warn!("listing services for environment variables: {e}"),
            }
        }
        if namespace != "default" || !links {
            let api: Api<Service> = Api::namespaced(self.client.clone(), "default");
            if let Ok(Some(k)) = api.get_opt("kubernetes").await {
                services.retain(|s| s.metadata.name.as_deref() != Some("kubernetes"));
                services.insert(0, k);
            }
        }
        env::service_env_vars(&services)
    }

    /// Runs a container until it is done for good. For init containers, returns whether it
    /// completed successfully; for others, the value is unused.
    async fn supervise(
        self: Arc<Self>,
        pod: Arc<PodShared>,
        slot: Arc<ContainerSlot>,
        updates: watch::Receiver<Arc<Pod>>,
    ) -> bool {
        let mut term = pod.terminate.subscribe();
        let mut streak: u32 = 0;
        let mut first = true;
        loop {
            if pod.terminating() || self.stopping.load(Ordering::SeqCst) {
                return false;
            }
            if !first {
                slot.update(|r| r.restart_count += 1);
            }
            first = false;
            let obj = updates.borrow().clone();
            let (launch, program) = match self.prepare(&pod, &slot, &obj).await {
                Ok(p) => p,
                Err(PrepareError::Config(msg)) => {
                    slot.update(|r| {
                        r.state = State::Waiting {
                            reason: "CreateContainerConfigError".into(),
                            message: Some(msg),
                        };
                        r.ready = false;
                    });
                    pod.mark_dirty();
                    let delay = self.cfg.backoff.delay(streak.max(1));
                    streak += 1;
                    first = true;
                    if sleep_or_terminated(&mut term, delay).await {
                        return false;
                    }
                    continue;
                }
                Err(PrepareError::Unsupported(msg)) => {
                    slot.update(|r| {
                        r.state = State::Waiting {
                            reason: program::IMAGE_NOT_SUPPORTED.into(),
                            message: Some(msg),
                        };
                    });
                    pod.mark_dirty();
                    wait_terminated(&mut term).await;
                    return false;
                }
            };
            let run_started = Instant::now();
            let grace = Duration::from_secs(
                obj.spec
                    .as_ref()
                    .and_then(|s| s.termination_grace_period_seconds)
                    .unwrap_or(30)
                    .max(0) as u64,
            );
            let end = self
                .run_instance(&pod, &slot, launch, &program, grace, &mut term)
                .await;
            let ran = run_started.elapsed();
            if self.cfg.backoff.resets_after(ran) {
                streak = 0;
            }
            let stopping = pod.terminating() || self.stopping.load(Ordering::SeqCst);
            let restart = if slot.init {
                end.exit_code != 0 && pod.policy != RestartPolicy::Never
            } else {
                pod.policy.restarts(end.exit_code)
            };
            if stopping || !restart {
                let success = end.exit_code == 0;
                slot.update(|r| {
                    r.state = State::Terminated(end);
                    r.ready = false;
                    r.started = false;
                });
                pod.mark_dirty();
                return success && !stopping;
            }
            let delay = self.cfg.backoff.delay(streak);
            streak += 1;
            let name = slot.spec.name.clone();
            *lock(&slot.previous_log) = slot.current().map(|i| i.log_path.clone());
            slot.update(|r| {
                r.last_state = Some(end);
                r.ready = false;
                r.started = false;
                if !delay.is_zero() {
                    r.state = State::Waiting {
                        reason: "CrashLoopBackOff".into(),
                        message: Some(format!(
                            "back-off {} restarting failed container={name} pod={}_{}({})",
                            go_duration(delay),
                            pod.name,
                            pod.namespace,
                            pod.uid
                        )),
                    };
                }
            });
            pod.mark_dirty();
            if sleep_or_terminated(&mut term, delay).await {
                return false;
            }
        }
    }

    /// Starts one instance of a container and waits for it to end (stopping it when the pod
    /// terminates or its liveness/startup probe fails).
    async fn run_instance(
        &self,
        pod: &Arc<PodShared>,
        slot: &Arc<ContainerSlot>,
        launch: Arc<Launch>,
        program: &Program,
        grace: Duration,
        term: &mut watch::Receiver<Option<Instant>>,
    ) -> Termination {
        let spec = &slot.spec;
        let tty = spec.tty.unwrap_or(false);
        let stdin = spec.stdin.unwrap_or(false);
        let stdin_once = spec.stdin_once.unwrap_or(false);
        let restart_count = lock(&slot.record).restart_count;
        let log_dir = pod.dir.join("logs").join(&spec.name);
        let _ = tokio::fs::create_dir_all(&log_dir).await;
        // Keep the current and the previous instance's logs.
        if let Ok(rd) = std::fs::read_dir(&log_dir) {
            for e in rd.flatten() {
                let n: Option<i32> = e
                    .file_name()
                    .to_str()
                    .and_then(|f| f.strip_suffix(".log"))
                    .and_then(|f| f.parse().ok());
                if n.is_some_and(|n| n < restart_count - 1 || n >= restart_count) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        let log_path = log_dir.join(format!("{restart_count}.log"));
        let created_at = Utc::now();
        let id = container_id(&pod.uid, &spec.name, restart_count, created_at);
        let (progress_tx, progress_rx) = watch::channel(Progress::default());
        let (log_tx, log_rx) = mpsc::channel::<Chunk>(64);
        let log_writer = tokio::spawn(logs::write_log(log_path.clone(), log_rx, progress_tx));
        let (stdout_tx, _) = broadcast::channel::<Bytes>(256);
        let (stderr_tx, _) = broadcast::channel::<Bytes>(256);
        let (stdin_tx, stdin_rx) = if stdin {
            let (tx, rx) = mpsc::unbounded_channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let pty = if tty {
            match process::open_pty() {
                Ok((master, slave)) => Some((Arc::new(master), slave)),
                Err(e) => {
                    drop(log_tx);
                    let _ = log_writer.await;
                    return start_error(format!("opening a pty: {e}"), &id);
                }
            }
        } else {
            None
        };
        let inst = Arc::new(Instance {
            container_id: id.clone(),
            log_path,
            progress: progress_rx,
            stdout: Mutex::new(Some(stdout_tx.clone())),
            stderr: Mutex::new(Some(stderr_tx.clone())),
            stdin: stdin_tx,
            stdin_once,
            pty: pty.as_ref().map(|(m, _)| m.clone()),
            pid: AtomicI32::new(0),
            attached: Notify::new(),
            exit: watch::channel(None).0,
        });
        *lock(&slot.instance) = Some(inst.clone());
        *lock(&slot.launch) = Some(launch.clone());
        let readiness = spec.readiness_probe.clone();
        let startup = spec.startup_probe.clone();
        let image_id = program::image_id(program);
        let set_running = |started_at: DateTime<Utc>| {
            slot.update(|r| {
                r.state = State::Running { started_at };
                r.container_id = Some(id.clone());
                r.image_id = image_id.clone();
                r.started = startup.is_none();
                r.ready = startup.is_none() && readiness.is_none();
            });
            pod.mark_dirty();
        };
        let mut started_at = Utc::now();
        if stdin && stdin_once && !slot.init {
            // Reported running while it waits for `kubectl run -i` to attach.
            set_running(started_at);
            let wait = self.cfg.attach_wait;
            tokio::select! {
                _ = inst.attached.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = term.wait_for(|t| t.is_some()) => {}
            }
        }
        let mode = match pty {
            Some((_, slave)) => StdioMode::Tty(slave),
            None => StdioMode::Pipes { stdin },
        };
        let spawned = match process::spawn(&launch, mode) {
            Ok(s) => s,
            Err(e) => {
                drop(log_tx);
                let _ = log_writer.await;
                lock(&inst.stdout).take();
                lock(&inst.stderr).take();
                inst.exit.send_replace(Some(128));
                let msg = format!(
                    "failed to start container process {:?}: {e}",
                    launch.argv.first().cloned().unwrap_or_default()
                );
                tracing::warn!(
                    "pod {}/{} container {}: {msg}",
                    pod.namespace,
                    pod.name,
                    spec.name
                );
                return start_error(msg, &id);
            }
        };
        let mut child = spawned.child;
        let pid = spawned.pid;
        inst.pid.store(pid, Ordering::SeqCst);
        pod.track_process(pid);
        if !(stdin && stdin_once && !slot.init) {
            started_at = Utc::now();
            set_running(started_at);
        } else {
            // The reported start stays the time it was reported running.
        }

        // Output pumps and stdin.
        let mut pumps = Vec::new();
        if let Some(master) = inst.pty.clone() {
            let tx = log_tx.clone();
            let b = stdout_tx.clone();
            pumps.push(tokio::spawn(pump(
                PtyIo(master.clone()),
                OutStream::Stdout,
                b,
                tx.clone(),
            )));
            let _ = tx.try_send(Chunk::Eof(OutStream::Stderr));
            if let Some(rx) = stdin_rx {
                tokio::spawn(feed_stdin(rx, PtyIo(master), false));
            }
        } else {
            if let Some(out) = child.stdout.take() {
                pumps.push(tokio::spawn(pump(
                    out,
                    OutStream::Stdout,
                    stdout_tx.clone(),
                    log_tx.clone(),
                )));
            }
            if let Some(err) = child.stderr.take() {
                pumps.push(tokio::spawn(pump(
                    err,
                    OutStream::Stderr,
                    stderr_tx.clone(),
                    log_tx.clone(),
                )));
            }
            if let (Some(rx), Some(input)) = (stdin_rx, child.stdin.take()) {
                tokio::spawn(feed_stdin(rx, input, true));
            }
        }
        drop(log_tx);
        drop(stdout_tx);
        drop(stderr_tx);

        // Probes.
        let (kill_tx, mut kill_rx) = mpsc::channel::<String>(1);
        let probes = tokio::spawn(run_probes(pod.clone(), slot.clone(), kill_tx));

        let mut kill_at: Option<Instant> = None;
        let mut term_sent = false;
        let status = loop {
            let deadline = kill_at;
            tokio::select! {
                s = child.wait() => break s,
                Some(reason) = kill_rx.recv(), if !term_sent => {
                    tracing::info!("pod {}/{} container {}: {reason}, will be restarted", pod.namespace, pod.name, spec.name);
                    process::signal_group(pid, libc::SIGTERM);
                    term_sent = true;
                    kill_at = Some(Instant::now() + grace);
                }
                r = term.wait_for(|t| t.is_some()), if !term_sent => {
                    let at = r.ok().and_then(|t| *t).unwrap_or_else(Instant::now);
                    process::signal_group(pid, libc::SIGTERM);
                    term_sent = true;
                    kill_at = Some(at);
                }
                _ = async { tokio::time::sleep_until(deadline.unwrap()).await }, if deadline.is_some() => {
                    process::signal_group(pid, libc::SIGKILL);
                    kill_at = None;
                }
            }
        };
        probes.abort();
        // The container's other processes end with it (as with a PID namespace).
        process::signal_group(pid, libc::SIGKILL);
        pod.untrack_process(pid);
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            for p in pumps {
                let _ = p.await;
            }
            let _ = log_writer.await;
        })
        .await;
        lock(&inst.stdout).take();
        lock(&inst.stderr).take();
        let (exit_code, signal) = match status {
            Ok(s) => process::exit_code(s),
            Err(_) => (255, None),
        };
        inst.exit.send_replace(Some(exit_code));
        Termination {
            exit_code,
            signal,
            reason: Termination::reason_for(exit_code).into(),
            message: None,
            started_at: Some(started_at),
            finished_at: Utc::now(),
            container_id: Some(id),
        }
    }

    // ---- status ----

    async fn report_status(
        self: Arc<Self>,
        pod: Arc<PodShared>,
        updates: watch::Receiver<Arc<Pod>>,
    ) {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &pod.namespace);
        let mut last_sent: Option<serde_json::Value> = None;
        let mut last_conditions: Option<Vec<PodCondition>> = None;
        pod.mark_dirty();
        loop {
            pod.dirty.notified().await;
            // Coalesce bursts of changes into one update.
            tokio::time::sleep(Duration::from_millis(15)).await;
            if self.stopping.load(Ordering::SeqCst) {
                return;
            }
            let latest = updates.borrow().clone();
            let (body, conditions) = self.pod_status(&pod, &latest, last_conditions.as_deref());
            if last_sent.as_ref() == Some(&body) {
                continue;
            }
            match api
                .patch_status(&pod.name, &PatchParams::default(), &Patch::Merge(&body))
                .await
            {
                Ok(_) => {
                    last_sent = Some(body);
                    last_conditions = Some(conditions);
                }
                Err(kube::Error::Api(s)) if s.code == 404 => return,
                Err(e) => {
                    tracing::warn!("updating status of pod {}/{}: {e}", pod.namespace, pod.name);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    pod.mark_dirty();
                }
            }
        }
    }

    fn pod_status(
        &self,
        pod: &PodShared,
        latest: &Pod,
        previous_conditions: Option<&[PodCondition]>,
    ) -> (serde_json::Value, Vec<PodCondition>) {
        let init: Vec<ContainerRecord> = pod.init.iter().map(|s| lock(&s.record).clone()).collect();
        let containers: Vec<ContainerRecord> = pod
            .containers
            .iter()
            .map(|s| lock(&s.record).clone())
            .collect();
        let reported = latest
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        let phase = if reported == "Succeeded" || reported == "Failed" {
            reported
        } else {
            status::pod_phase(pod.policy, &init, &containers).to_string()
        };
        let api_conditions = latest
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        // Conditions the agent does not own come from the API; its own from what it sent.
        let mut previous: Vec<PodCondition> = previous_conditions
            .map(|c| c.to_vec())
            .unwrap_or_else(|| api_conditions.clone());
        for c in &api_conditions {
            if !previous.iter().any(|p| p.type_ == c.type_) {
                previous.push(c.clone());
            }
        }
        let conditions = status::pod_conditions(&ConditionInput {
            phase: &phase,
            sandbox_ready: pod.sandbox_ready.load(Ordering::SeqCst),
            init: &init,
            containers: &containers,
            previous: &previous,
            now: Utc::now(),
        });
        let mut status = serde_json::json!({
            "phase": phase,
            "conditions": conditions,
            "hostIP": self.cfg.node_ip.to_string(),
            "hostIPs": [{"ip": self.cfg.node_ip.to_string()}],
            "startTime": pod.start_time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "containerStatuses": containers.iter().map(|c| c.to_k8s()).collect::<Vec<_>>(),
        });
        if !init.is_empty() {
            status["initContainerStatuses"] =
                serde_json::json!(init.iter().map(|c| c.to_k8s()).collect::<Vec<_>>());
        }
        let reported_ip = latest.status.as_ref().and_then(|s| s.pod_ip.clone());
        let ips = pod.pod_ips();
        if let Some(ip) = ips.first() {
            status["podIP"] = serde_json::json!(ip.to_string());
            status["podIPs"] = serde_json::json!(status::pod_ips(&ips));
        } else if let Some(ip) = reported_ip {
            // A completed pod keeps the address it had (as kubelet reports it).
            status["podIP"] = serde_json::json!(ip);
        }
        (serde_json::json!({ "status": status }), conditions)
    }

    // ---- lookups for the stream server ----

    fn find(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
    ) -> Result<(Arc<PodShared>, Arc<ContainerSlot>), RuntimeError> {
        let shared = lock(&self.pods)
            .values()
            .filter(|e| e.shared.namespace == namespace && e.shared.name == pod)
            .map(|e| e.shared.clone())
            .max_by_key(|p| (!p.terminating(), p.start_time))
            .ok_or_else(|| {
                RuntimeError::NotFound(format!(
                    "pod {namespace}/{pod} is not running on node {}",
                    self.cfg.node_name
                ))
            })?;
        let slot = if container.is_empty() {
            shared.containers.first().cloned()
        } else {
            shared.slots().find(|s| s.spec.name == container).cloned()
        }
        .ok_or_else(|| {
            RuntimeError::NotFound(format!("container {container} is not valid for pod {pod}"))
        })?;
        Ok((shared, slot))
    }

    fn running_instance(
        &self,
        pod: &PodShared,
        slot: &ContainerSlot,
    ) -> Result<(Arc<Instance>, Arc<Launch>), RuntimeError> {
        let not_found = || {
            RuntimeError::NotFound(format!(
                "container not found ({:?}) in pod {}_{}",
                slot.spec.name, pod.name, pod.namespace
            ))
        };
        let inst = slot
            .current()
            .filter(|i| !i.exited())
            .ok_or_else(not_found)?;
        let launch = lock(&slot.launch).clone().ok_or_else(not_found)?;
        Ok((inst, launch))
    }

    /// Runs a command in a running container's namespaces (used by exec and exec probes).
    pub fn spawn_exec(
        &self,
        pod: &Arc<PodShared>,
        launch: &Launch,
        command: Vec<String>,
        opts: ExecOptions,
    ) -> Result<ExecIo, RuntimeError> {
        if command.is_empty() {
            return Err(RuntimeError::BadRequest(
                "you must specify at least one command for the container".into(),
            ));
        }
        let mut env = launch.env.clone();
        if opts.tty && !env.iter().any(|(k, _)| k == "TERM") {
            env.push(("TERM".into(), "xterm".into()));
        }
        let l = Launch {
            argv: command,
            env,
            working_dir: launch.working_dir.clone(),
            ns: launch.ns.clone(),
        };
        let (mode, pty) = if opts.tty {
            let (master, slave) = process::open_pty()
                .map_err(|e| RuntimeError::Internal(format!("opening a pty: {e}")))?;
            (StdioMode::Tty(slave), Some(Arc::new(master)))
        } else {
            (StdioMode::Pipes { stdin: opts.stdin }, None)
        };
        let spawned = process::spawn(&l, mode).map_err(|e| {
            RuntimeError::Internal(format!(
                "failed to exec in container: starting {:?}: {e}",
                l.argv.first().cloned().unwrap_or_default()
            ))
        })?;
        let mut child = spawned.child;
        let pid = spawned.pid;
        lock(&pod.exec_groups).insert(pid);
        let (stdin, stdout, stderr): (
            Option<StdinWriter>,
            Option<OutputReader>,
            Option<OutputReader>,
        ) = match &pty {
            Some(m) => (
                opts.stdin
                    .then(|| Box::pin(PtyIo(m.clone())) as StdinWriter),
                Some(Box::pin(PtyIo(m.clone())) as OutputReader),
                None,
            ),
            None => (
                child
                    .stdin
                    .take()
                    .map(|w| Box::pin(process::ClosingWriter(Some(w))) as StdinWriter),
                child.stdout.take().map(|r| Box::pin(r) as OutputReader),
                child.stderr.take().map(|r| Box::pin(r) as OutputReader),
            ),
        };
        Ok(ExecIo {
            child: Some(child),
            pid,
            pod: pod.clone(),
            stdin,
            stdout: if opts.stdout || opts.tty {
                stdout
            } else {
                None
            },
            stderr: if opts.stderr { stderr } else { None },
            pty,
        })
    }
}

/// kubelet's rendering of a back-off delay (Go's time.Duration: `10s`, `1m20s`, `5m0s`).
pub fn go_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let millis = d.subsec_millis();
    if secs >= 60 {
        format!("{}m{}s", secs / 60, secs % 60)
    } else if millis > 0 {
        let s = format!("{secs}.{millis:03}");
        format!("{}s", s.trim_end_matches('0'))
    } else {
        format!("{secs}s")
    }
}

fn start_error(message: String, id: &str) -> Termination {
    let now = Utc::now();
    Termination {
        exit_code: 128,
        signal: None,
        reason: "StartError".into(),
        message: Some(message),
        started_at: Some(DateTime::<Utc>::UNIX_EPOCH),
        finished_at: now,
        container_id: Some(id.to_string()),
    }
}

/// Sets the pod's termination deadline when its object gets a deletionTimestamp, or at once
/// (with its grace period) when it disappears from the API.
async fn watch_termination(
    pod: Arc<PodShared>,
    mut updates: watch::Receiver<Arc<Pod>>,
    mut gone: watch::Receiver<bool>,
) {
    loop {
        let obj = updates.borrow_and_update().clone();
        let grace_of = |o: &Pod| {
            o.metadata
                .deletion_grace_period_seconds
                .or(o
                    .spec
                    .as_ref()
                    .and_then(|s| s.termination_grace_period_seconds))
                .unwrap_or(30)
                .max(0) as u64
        };
        if *gone.borrow() || obj.metadata.deletion_timestamp.is_some() {
            let deadline = Instant::now() + Duration::from_secs(grace_of(&obj));
            pod.terminate.send_if_modified(|t| match t {
                Some(existing) if *existing <= deadline => false,
                _ => {
                    *t = Some(deadline);
                    true
                }
            });
        }
        tokio::select! {
            r = updates.changed() => if r.is_err() { return },
            r = gone.changed() => if r.is_err() { return },
        }
    }
}

/// Copies a process's output to attach clients and the log writer.
async fn pump<R: tokio::io::AsyncRead + Unpin>(
    mut reader: R,
    stream: OutStream,
    attach: broadcast::Sender<Bytes>,
    log: mpsc::Sender<Chunk>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let chunk = Bytes::copy_from_slice(&buf[..n]);
                let _ = attach.send(chunk.clone());
                if log.send(Chunk::Data(stream, chunk)).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = log.send(Chunk::Eof(stream)).await;
}

/// Writes attach clients' input into a container's stdin.
async fn feed_stdin<W: tokio::io::AsyncWrite + Unpin>(
    mut rx: mpsc::UnboundedReceiver<StdinMsg>,
    writer: W,
    closable: bool,
) {
    let mut writer = Some(writer);
    while let Some(msg) = rx.recv().await {
        match msg {
            StdinMsg::Data(d) => {
                if let Some(w) = writer.as_mut() {
                    if w.write_all(&d).await.is_err() {
                        writer = None;
                    }
                }
            }
            StdinMsg::Close => {
                if closable {
                    // Dropping the pipe's write end gives the process EOF.
                    writer = None;
                }
            }
        }
    }
}

/// Runs a container instance's probes; sends a reason on `kill` when the container must be
/// restarted (liveness or startup failure).
async fn run_probes(pod: Arc<PodShared>, slot: Arc<ContainerSlot>, kill: mpsc::Sender<String>) {
    let start = Instant::now();
    let spec = slot.spec.clone();
    if let Some(p) = spec.startup_probe.clone() {
        let timing = ProbeTiming::of(&p);
        let mut tracker = ProbeTracker::new(ProbeKind::Startup, &timing);
        tokio::time::sleep_until(start + timing.initial_delay).await;
        loop {
            let ok = run_probe(&pod, &slot, &p, &timing).await;
            tracker.observe(ok.is_ok());
            if tracker.passing {
                slot.update(|r| {
                    r.started = true;
                    if spec.readiness_probe.is_none() {
                        r.ready = true;
                    }
                });
                pod.mark_dirty();
                break;
            }
            if tracker.failed_out() {
                let _ = kill
                    .send(format!("Container {} failed startup probe", spec.name))
                    .await;
                return;
            }
            tokio::time::sleep(timing.period).await;
        }
    }
    let readiness = spec.readiness_probe.clone().map(|p| {
        let pod = pod.clone();
        let slot = slot.clone();
        async move {
            let timing = ProbeTiming::of(&p);
            let mut tracker = ProbeTracker::new(ProbeKind::Readiness, &timing);
            tokio::time::sleep_until(start + timing.initial_delay).await;
            loop {
                let ok = run_probe(&pod, &slot, &p, &timing).await;
                if let Err(e) = &ok {
                    tracing::debug!(
                        "readiness probe of {}/{} {}: {e}",
                        pod.namespace,
                        pod.name,
                        slot.spec.name
                    );
                }
                if tracker.observe(ok.is_ok()) {
                    let ready = tracker.passing;
                    slot.update(|r| r.ready = ready && r.started);
                    pod.mark_dirty();
                }
                tokio::time::sleep(timing.period).await;
            }
        }
    });
    let liveness = spec.liveness_probe.clone().map(|p| {
        let pod = pod.clone();
        let slot = slot.clone();
        let kill = kill.clone();
        async move {
            let timing = ProbeTiming::of(&p);
            let mut tracker = ProbeTracker::new(ProbeKind::Liveness, &timing);
            tokio::time::sleep_until(start + timing.initial_delay).await;
            loop {
                let ok = run_probe(&pod, &slot, &p, &timing).await;
                tracker.observe(ok.is_ok());
                if !tracker.passing {
                    let _ = kill
                        .send(format!(
                            "Container {} failed liveness probe",
                            slot.spec.name
                        ))
                        .await;
                    return;
                }
                tokio::time::sleep(timing.period).await;
            }
        }
    });
    let r = async {
        if let Some(f) = readiness {
            f.await
        }
    };
    let l = async {
        if let Some(f) = liveness {
            f.await
        }
    };
    tokio::join!(r, l);
}

async fn run_probe(
    pod: &Arc<PodShared>,
    slot: &ContainerSlot,
    p: &Probe,
    timing: &ProbeTiming,
) -> Result<(), String> {
    let Some(ip) = pod.pod_ips().first().copied() else {
        return Err("the pod has no IP address".into());
    };
    if let Some(r) = probe::network_probe(p, &slot.spec, ip, timing.timeout).await {
        return r;
    }
    let Some(exec) = &p.exec else {
        return Err("the probe has no handler".into());
    };
    let command = exec.command.clone().unwrap_or_default();
    let launch = lock(&slot.launch)
        .clone()
        .ok_or("the container is not running")?;
    let l = Launch {
        argv: command,
        env: launch.env.clone(),
        working_dir: launch.working_dir.clone(),
        ns: launch.ns.clone(),
    };
    let spawned =
        process::spawn(&l, StdioMode::Pipes { stdin: false }).map_err(|e| e.to_string())?;
    let mut child = spawned.child;
    let pid = spawned.pid;
    // Drain output so the probe cannot block on a full pipe.
    let out = child.stdout.take();
    let err = child.stderr.take();
    tokio::spawn(async move {
        if let Some(mut o) = out {
            let _ = tokio::io::copy(&mut o, &mut tokio::io::sink()).await;
        }
    });
    tokio::spawn(async move {
        if let Some(mut e) = err {
            let _ = tokio::io::copy(&mut e, &mut tokio::io::sink()).await;
        }
    });
    let result = match tokio::time::timeout(timing.timeout, child.wait()).await {
        Ok(Ok(s)) => {
            let (code, _) = process::exit_code(s);
            if code == 0 {
                Ok(())
            } else {
                Err(format!("command exited with {code}"))
            }
        }
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("command timed out after {:?}", timing.timeout)),
    };
    process::signal_group(pid, libc::SIGKILL);
    let _ = child.wait().await;
    result
}

// ---- ProcessIo implementations ----

/// An exec'd process.
pub struct ExecIo {
    child: Option<tokio::process::Child>,
    pid: i32,
    pod: Arc<PodShared>,
    stdin: Option<StdinWriter>,
    stdout: Option<OutputReader>,
    stderr: Option<OutputReader>,
    pty: Option<Arc<PtyMaster>>,
}

struct PtyResizer(Arc<PtyMaster>);

impl TerminalResizer for PtyResizer {
    fn resize(&self, width: u16, height: u16) -> std::io::Result<()> {
        self.0.resize(width, height)
    }
}

impl ProcessIo for ExecIo {
    fn take_stdin(&mut self) -> Option<StdinWriter> {
        self.stdin.take()
    }
    fn take_stdout(&mut self) -> Option<OutputReader> {
        self.stdout.take()
    }
    fn take_stderr(&mut self) -> Option<OutputReader> {
        self.stderr.take()
    }
    fn resizer(&self) -> Option<Arc<dyn TerminalResizer>> {
        self.pty
            .clone()
            .map(|m| Arc::new(PtyResizer(m)) as Arc<dyn TerminalResizer>)
    }
    fn wait(mut self: Box<Self>) -> BoxFuture<'static, Result<ExitStatus, RuntimeError>> {
        Box::pin(async move {
            let mut child = self.child.take().expect("waited once");
            let status = child.wait().await;
            lock(&self.pod.exec_groups).remove(&self.pid);
            let status = status.map_err(|e| RuntimeError::Internal(e.to_string()))?;
            let (code, _) = process::exit_code(status);
            Ok(ExitStatus { code })
        })
    }
}

impl Drop for ExecIo {
    fn drop(&mut self) {
        // A client that went away takes its exec'd processes with it.
        if let Some(mut child) = self.child.take() {
            process::signal_group(self.pid, libc::SIGKILL);
            lock(&self.pod.exec_groups).remove(&self.pid);
            tokio::spawn(async move {
                let _ = child.wait().await;
            });
        }
    }
}

/// An attach session to a container's main process.
pub struct AttachIo {
    inst: Arc<Instance>,
    stdin: Option<StdinWriter>,
    stdout: Option<OutputReader>,
    stderr: Option<OutputReader>,
}

/// An AsyncRead fed from a broadcast of output chunks (ends when the instance's output ends).
fn broadcast_reader(mut rx: broadcast::Receiver<Bytes>) -> OutputReader {
    let (mut w, r) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(b) => {
                    if w.write_all(&b).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    Box::pin(r)
}

/// An AsyncWrite that forwards into a container's stdin channel; its end (shutdown or drop)
/// closes the container's stdin when the container has `stdinOnce`.
fn stdin_writer(tx: mpsc::UnboundedSender<StdinMsg>, once: bool) -> StdinWriter {
    let (w, mut r) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx
                        .send(StdinMsg::Data(Bytes::copy_from_slice(&buf[..n])))
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
        if once {
            let _ = tx.send(StdinMsg::Close);
        }
    });
    Box::pin(process::ClosingWriter(Some(w)))
}

impl ProcessIo for AttachIo {
    fn take_stdin(&mut self) -> Option<StdinWriter> {
        self.stdin.take()
    }
    fn take_stdout(&mut self) -> Option<OutputReader> {
        self.stdout.take()
    }
    fn take_stderr(&mut self) -> Option<OutputReader> {
        self.stderr.take()
    }
    fn resizer(&self) -> Option<Arc<dyn TerminalResizer>> {
        self.inst
            .pty
            .clone()
            .map(|m| Arc::new(PtyResizer(m)) as Arc<dyn TerminalResizer>)
    }
    fn wait(self: Box<Self>) -> BoxFuture<'static, Result<ExitStatus, RuntimeError>> {
        let mut rx = self.inst.exit.subscribe();
        Box::pin(async move {
            let code = rx
                .wait_for(|c| c.is_some())
                .await
                .map(|c| c.unwrap_or(0))
                .unwrap_or(0);
            Ok(ExitStatus { code })
        })
    }
}

impl ContainerRuntime for Runtime {
    fn logs<'a>(
        &'a self,
        namespace: &'a str,
        pod: &'a str,
        container: &'a str,
        opts: LogOptions,
    ) -> BoxFuture<'a, Result<LogStream, RuntimeError>> {
        Box::pin(async move {
            let (shared, slot) = self.find(namespace, pod, container)?;
            let name = slot.spec.name.clone();
            let io = |e: std::io::Error| RuntimeError::Internal(format!("reading logs: {e}"));
            if opts.previous {
                // The instance recorded in lastState.
                let path = lock(&slot.previous_log).clone().filter(|p| p.exists());
                let Some(path) = path else {
                    return Err(RuntimeError::BadRequest(format!(
                        "previous terminated container {name:?} in pod {pod:?} not found"
                    )));
                };
                let _ = &shared;
                return logs::read_log(&path, &opts, None).await.map_err(io);
            }
            let Some(inst) = slot.current() else {
                let record = lock(&slot.record).clone();
                let reason = match &record.state {
                    State::Waiting { reason, .. } => reason.clone(),
                    _ => "ContainerCreating".to_string(),
                };
                return Err(RuntimeError::BadRequest(format!(
                    "container {name:?} in pod {pod:?} is waiting to start: {reason}"
                )));
            };
            let progress = (!inst.progress.borrow().done).then(|| inst.progress.clone());
            logs::read_log(&inst.log_path, &opts, progress)
                .await
                .map_err(io)
        })
    }

    fn exec<'a>(
        &'a self,
        namespace: &'a str,
        pod: &'a str,
        container: &'a str,
        command: Vec<String>,
        opts: ExecOptions,
    ) -> BoxFuture<'a, Result<Box<dyn ProcessIo>, RuntimeError>> {
        Box::pin(async move {
            let (shared, slot) = self.find(namespace, pod, container)?;
            let (_, launch) = self.running_instance(&shared, &slot)?;
            let io = self.spawn_exec(&shared, &launch, command, opts)?;
            Ok(Box::new(io) as Box<dyn ProcessIo>)
        })
    }

    fn attach<'a>(
        &'a self,
        namespace: &'a str,
        pod: &'a str,
        container: &'a str,
        opts: ExecOptions,
    ) -> BoxFuture<'a, Result<Box<dyn ProcessIo>, RuntimeError>> {
        Box::pin(async move {
            let (shared, slot) = self.find(namespace, pod, container)?;
            let (inst, _) = self.running_instance(&shared, &slot)?;
            let tty = inst.pty.is_some();
            let stdout = if opts.stdout || tty {
                lock(&inst.stdout)
                    .as_ref()
                    .map(|tx| broadcast_reader(tx.subscribe()))
            } else {
                None
            };
            let stderr = if opts.stderr && !tty {
                lock(&inst.stderr)
                    .as_ref()
                    .map(|tx| broadcast_reader(tx.subscribe()))
            } else {
                None
            };
            let stdin = if opts.stdin {
                inst.stdin
                    .clone()
                    .map(|tx| stdin_writer(tx, inst.stdin_once))
            } else {
                None
            };
            // Output is subscribed: a container waiting for its first attach may start.
            inst.attached.notify_one();
            Ok(Box::new(AttachIo {
                inst,
                stdin,
                stdout,
                stderr,
            }) as Box<dyn ProcessIo>)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(Duration::from_secs(10)), "10s");
        assert_eq!(go_duration(Duration::from_secs(80)), "1m20s");
        assert_eq!(go_duration(Duration::from_secs(300)), "5m0s");
        assert_eq!(go_duration(Duration::from_millis(250)), "0.25s");
    }

    #[test]
    fn container_ids_are_unique_per_run() {
        let t = Utc::now();
        let a = container_id("uid", "c", 0, t);
        let b = container_id("uid", "c", 1, t);
        assert!(a.starts_with("kubeport://") && a.len() == "kubeport://".len() + 64);
        assert_ne!(a, b);
    }

    #[test]
    fn program_lookup_on_path() {
        assert!(on_path("sh", env::DEFAULT_PATH));
        assert!(!on_path("definitely-not-a-program", env::DEFAULT_PATH));
        assert!(on_path("/bin/sh", ""));
    }
}
