//! End-to-end harness: an in-process API server, the controllers in-process talking to it
//! over HTTPS through kube-rs, the real kubectl with a private HOME, Node objects, and a fake
//! kubelet that moves bound pods to Running/Ready and finishes graceful deletions through the
//! API, as a kubelet would.
#![allow(dead_code)]

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, ResourceExt};
use kubeport_controllers::{ControllerOptions, RunningControllers};
use serde_json::json;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

pub fn seed(path: &str) -> String {
    repo_root()
        .join("examples")
        .join(path)
        .display()
        .to_string()
}

/// The kubectl on PATH, if any (tests skip without it).
pub fn kubectl_path() -> Option<PathBuf> {
    let out = std::process::Command::new("sh")
        .args(["-c", "command -v kubectl"])
        .output()
        .ok()?;
    let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (!p.is_empty()).then(|| PathBuf::from(p))
}

#[macro_export]
macro_rules! require_kubectl {
    () => {
        if common::kubectl_path().is_none() {
            eprintln!("SKIP: kubectl is not on PATH; this test drives the real kubectl");
            return;
        }
    };
}

/// How the fake kubelet behaves; flags can change while it runs.
#[derive(Clone)]
pub struct KubeletControl {
    /// Finish graceful deletions (delete terminating pods with grace 0).
    pub finish_deletions: Arc<AtomicBool>,
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub server: Option<kubeport_apiserver::RunningServer>,
    pub client: Client,
    pub kubeconfig: PathBuf,
    pub home: PathBuf,
    pub controllers: Option<RunningControllers>,
    pub kubelet: KubeletControl,
    kubelet_task: Option<tokio::task::JoinHandle<()>>,
    /// node name -> index used in pod IPs (10.244.<index>.<n>).
    node_index: Arc<Mutex<HashMap<String, u8>>>,
}

impl Cluster {
    /// Starts an API server and the controllers named by `flag` (`*` for all).
    pub async fn start(flag: &str) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = kubeport_apiserver::ServerConfig::new(dir.path().join("data"));
        cfg.secure_port = 0;
        let server = kubeport_apiserver::start(cfg)
            .await
            .expect("starting the API server");
        let kubeconfig = server.admin_kubeconfig.clone();
        let kc = kube::config::Kubeconfig::read_from(&kubeconfig).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        let client = Client::try_from(config).unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let controllers =
            kubeport_controllers::start(client.clone(), ControllerOptions::from_flag(flag))
                .await
                .expect("starting controllers");
        Cluster {
            dir,
            server: Some(server),
            client,
            kubeconfig,
            home,
            controllers: Some(controllers),
            kubelet: KubeletControl {
                finish_deletions: Arc::new(AtomicBool::new(true)),
            },
            kubelet_task: None,
            node_index: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    pub async fn kubectl(&self, args: &[&str]) -> Output {
        tokio::process::Command::new(kubectl_path().expect("kubectl on PATH"))
            .args(args)
            .env("HOME", &self.home)
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .expect("running kubectl")
    }

    /// Runs kubectl, asserts success, returns stdout.
    pub async fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args).await;
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Creates Ready nodes; `control_plane` ones carry the role label (and the NoSchedule
    /// taint when `taint_control_plane`).
    pub async fn create_nodes(
        &self,
        names: &[&str],
        control_plane: &[&str],
        taint_control_plane: bool,
    ) {
        let api: Api<Node> = Api::all(self.client.clone());
        for name in names {
            let cp = control_plane.contains(name);
            let mut labels = json!({"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"});
            if cp {
                labels["node-role.kubernetes.io/control-plane"] = json!("");
            }
            let taints = if cp && taint_control_plane {
                json!([{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}])
            } else {
                json!(null)
            };
            let node: Node = serde_json::from_value(json!({
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "labels": labels},
                "spec": {"taints": taints},
            }))
            .unwrap();
            api.create(&PostParams::default(), &node).await.unwrap();
            self.set_node_ready(name, true).await;
            let mut idx = self.node_index.lock().unwrap();
            let n = idx.len() as u8;
            idx.insert(name.to_string(), n);
        }
    }

    /// Writes a node's Ready condition as its kubelet would.
    pub async fn set_node_ready(&self, name: &str, ready: bool) {
        let api: Api<Node> = Api::all(self.client.clone());
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let status = json!({"status": {
            "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"},
                "reason": if ready {"KubeletReady"} else {"KubeletNotReady"},
                "message": if ready {"kubelet is posting ready status"} else {"container runtime is down"},
                "lastHeartbeatTime": now, "lastTransitionTime": now}],
            "nodeInfo": {"kubeletVersion": "v1.33.1", "osImage": "kubeport", "kernelVersion": "6", "containerRuntimeVersion": "kubeport://1",
                "architecture": "amd64", "operatingSystem": "linux", "machineID": "", "systemUUID": "", "bootID": "", "kubeProxyVersion": ""},
            "allocatable": {"pods": "110", "cpu": "4", "memory": "8Gi"},
            "capacity": {"pods": "110", "cpu": "4", "memory": "8Gi"},
        }});
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .unwrap();
    }

    /// Starts the fake kubelet: bound pods become Running and Ready with an IP from their
    /// node's range; terminating pods are deleted with grace 0 when `finish_deletions`.
    pub fn start_kubelet(&mut self) {
        let client = self.client.clone();
        let finish = self.kubelet.finish_deletions.clone();
        let index = self.node_index.clone();
        self.kubelet_task = Some(tokio::spawn(async move {
            let api: Api<Pod> = Api::all(client.clone());
            let mut next: HashMap<String, u8> = HashMap::new();
            let mut assigned: HashMap<String, String> = HashMap::new();
            let mut stream = watcher::watcher(api, watcher::Config::default()).boxed();
            let mut pending_deletes: Vec<Pod> = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                let pod = tokio::select! {
                    ev = stream.next() => match ev {
                        Some(Ok(Event::Apply(p))) | Some(Ok(Event::InitApply(p))) => p,
                        Some(_) => continue,
                        None => return,
                    },
                    _ = tick.tick() => {
                        if finish.load(Ordering::SeqCst) {
                            for p in std::mem::take(&mut pending_deletes) {
                                delete_now(&client, &p).await;
                            }
                        }
                        continue;
                    }
                };
                let node = pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_name.clone())
                    .unwrap_or_default();
                if node.is_empty() {
                    continue;
                }
                if pod.metadata.deletion_timestamp.is_some() {
                    if finish.load(Ordering::SeqCst) {
                        delete_now(&client, &pod).await;
                    } else {
                        pending_deletes.push(pod);
                    }
                    continue;
                }
                let phase = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.phase.clone())
                    .unwrap_or_default();
                if phase != "Pending" {
                    continue;
                }
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                let ip = assigned.entry(uid).or_insert_with(|| {
                    let i = index.lock().unwrap().get(&node).copied().unwrap_or(99);
                    let n = next.entry(node.clone()).or_insert(2);
                    let ip = format!("10.244.{i}.{n}");
                    *n += 1;
                    ip
                });
                mark_running(&client, &pod, ip, true).await;
            }
        }));
    }

    /// Waits until `check` holds, polling; panics with `what` after `timeout`.
    pub async fn wait_for<F, Fut>(&self, timeout: Duration, what: &str, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            if check().await {
                return;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn pods(&self, ns: &str) -> Vec<Pod> {
        Api::<Pod>::namespaced(self.client.clone(), ns)
            .list(&Default::default())
            .await
            .unwrap()
            .items
    }

    pub async fn shutdown(mut self) {
        if let Some(k) = self.kubelet_task.take() {
            k.abort();
        }
        if let Some(c) = self.controllers.take() {
            c.shutdown();
        }
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(k) = self.kubelet_task.take() {
            k.abort();
        }
        if let Some(c) = self.controllers.take() {
            c.shutdown();
        }
    }
}

async fn delete_now(client: &Client, pod: &Pod) {
    let api: Api<Pod> = Api::namespaced(
        client.clone(),
        pod.metadata.namespace.as_deref().unwrap_or_default(),
    );
    let _ = api
        .delete(
            &pod.name_any(),
            &DeleteParams {
                grace_period_seconds: Some(0),
                ..Default::default()
            },
        )
        .await;
}

/// Patches a pod's status as a kubelet does once its containers run.
pub async fn mark_running(client: &Client, pod: &Pod, ip: &str, ready: bool) {
    let api: Api<Pod> = Api::namespaced(
        client.clone(),
        pod.metadata.namespace.as_deref().unwrap_or_default(),
    );
    let now = k8s_openapi::jiff::Timestamp::now();
    let now = k8s_openapi::jiff::Timestamp::from_second(now.as_second())
        .unwrap()
        .to_string();
    let r = if ready { "True" } else { "False" };
    let containers: Vec<serde_json::Value> = pod
        .spec
        .as_ref()
        .map(|s| s.containers.clone())
        .unwrap_or_default()
        .iter()
        .map(|c| {
            json!({"name": c.name, "image": c.image, "imageID": "", "ready": ready, "started": true,
                   "restartCount": 0, "state": {"running": {"startedAt": now}}})
        })
        .collect();
    let status = json!({"status": {
        "phase": "Running",
        "hostIP": "172.18.0.2",
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "startTime": now,
        "conditions": [
            {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": now},
            {"type": "Initialized", "status": "True", "lastTransitionTime": now},
            {"type": "Ready", "status": r, "lastTransitionTime": now},
            {"type": "ContainersReady", "status": r, "lastTransitionTime": now},
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
        ],
        "containerStatuses": containers,
    }});
    let _ = api
        .patch_status(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&status),
        )
        .await;
}

/// Sets a running pod's Ready (and ContainersReady) condition, as a failing probe would.
pub async fn set_pod_ready(client: &Client, ns: &str, name: &str, ready: bool) {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pod = api.get(name).await.unwrap();
    let now = k8s_openapi::jiff::Timestamp::now();
    let now = k8s_openapi::jiff::Timestamp::from_second(now.as_second())
        .unwrap()
        .to_string();
    let r = if ready { "True" } else { "False" };
    let mut conditions: Vec<serde_json::Value> = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|c| serde_json::to_value(c).unwrap())
        .collect();
    for c in conditions.iter_mut() {
        if c["type"] == "Ready" || c["type"] == "ContainersReady" {
            c["status"] = json!(r);
            c["lastTransitionTime"] = json!(now);
        }
    }
    let patch = json!({"status": {"conditions": conditions}});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

/// The rows of a kubectl table, split on whitespace (header excluded).
pub fn rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect()
}
