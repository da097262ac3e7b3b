//! The Node object: registration, status (conditions, addresses, capacity, node info) and
//! heartbeats (a Lease in kube-node-lease renewed every 10 s, status posted every minute).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use chrono::Utc;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus,
    NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use kube::api::{Api, Patch, PatchParams, PostParams};

use crate::status::to_time;

/// The kubelet version nodes report.
pub const KUBELET_VERSION: &str = "v1.33.1";
/// How often the Lease is renewed.
pub const LEASE_RENEW: Duration = Duration::from_secs(10);
/// How often the Node status is posted (the Lease is the frequent heartbeat).
pub const STATUS_REPORT: Duration = Duration::from_secs(60);
/// The pods a node accepts (kubelet's default maxPods).
pub const MAX_PODS: u32 = 110;

/// What describes this node.
#[derive(Debug, Clone)]
pub struct NodeIdentity {
    pub name: String,
    pub ip: IpAddr,
    pub pod_cidr: ipnet::IpNet,
    pub control_plane: bool,
    pub extra_labels: BTreeMap<String, String>,
    pub port: u16,
}

/// Facts about the machine, read once.
#[derive(Debug, Clone, PartialEq)]
pub struct MachineInfo {
    pub cpus: u32,
    pub memory_bytes: u64,
    pub ephemeral_storage_bytes: u64,
    pub kernel_version: String,
    pub os_image: String,
    pub architecture: String,
    pub machine_id: String,
    pub boot_id: String,
}

/// Go's GOARCH name for a `uname -m` machine.
pub fn go_arch(machine: &str) -> &str {
    match machine {
        "x86_64" => "amd64",
        "aarch64" | "arm64" => "arm64",
        "armv7l" | "armv6l" => "arm",
        "i686" | "i386" => "386",
        "ppc64le" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
}

/// `PRETTY_NAME` of an os-release file.
pub fn os_pretty_name(os_release: &str) -> Option<String> {
    os_release.lines().find_map(|l| {
        l.strip_prefix("PRETTY_NAME=")
            .map(|v| v.trim().trim_matches('"').to_string())
    })
}

fn uname() -> (String, String) {
    // SAFETY: uname fills a zeroed struct.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return (String::new(), String::new());
    }
    let field = |f: &[libc::c_char]| {
        let bytes: Vec<u8> = f
            .iter()
            .take_while(|c| **c != 0)
            .map(|c| *c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    (field(&u.release), field(&u.machine))
}

impl MachineInfo {
    pub fn read(state_dir: &std::path::Path) -> Self {
        let (kernel, machine) = uname();
        let memory_kb = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines().find_map(|l| {
                    l.strip_prefix("MemTotal:")
                        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                })
            })
            .unwrap_or(0);
        let storage = {
            let path = std::ffi::CString::new(state_dir.as_os_str().as_encoded_bytes()).ok();
            path.and_then(|p| {
                // SAFETY: statvfs fills a zeroed struct from a valid C path.
                let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
                (unsafe { libc::statvfs(p.as_ptr(), &mut s) } == 0)
                    .then(|| s.f_blocks as u64 * s.f_frsize as u64)
            })
            .unwrap_or(0)
        };
        let read_trim = |p: &str| {
            std::fs::read_to_string(p)
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        MachineInfo {
            cpus: std::thread::available_parallelism()
                .map(|n| n.get() as u32)
                .unwrap_or(1),
            memory_bytes: memory_kb * 1024,
            ephemeral_storage_bytes: storage,
            kernel_version: kernel,
            os_image: std::fs::read_to_string("/etc/os-release")
                .ok()
                .and_then(|s| os_pretty_name(&s))
                .unwrap_or_else(|| "Linux".to_string()),
            architecture: go_arch(&machine).to_string(),
            machine_id: read_trim("/etc/machine-id"),
            boot_id: read_trim("/proc/sys/kernel/random/boot_id"),
        }
    }
}

/// The Node's labels: kubelet's well-known ones, the control-plane role, and extra labels.
pub fn node_labels(id: &NodeIdentity, machine: &MachineInfo) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    labels.insert(
        "beta.kubernetes.io/arch".into(),
        machine.architecture.clone(),
    );
    labels.insert("beta.kubernetes.io/os".into(), "linux".into());
    labels.insert("kubernetes.io/arch".into(), machine.architecture.clone());
    labels.insert("kubernetes.io/hostname".into(), id.name.clone());
    labels.insert("kubernetes.io/os".into(), "linux".into());
    if id.control_plane {
        labels.insert(
            "node-role.kubernetes.io/control-plane".into(),
            String::new(),
        );
    }
    for (k, v) in &id.extra_labels {
        labels.insert(k.clone(), v.clone());
    }
    labels
}

/// Parses `--node-label k=v` values.
pub fn parse_labels(items: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    items
        .iter()
        .map(|s| match s.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(anyhow::anyhow!(
                "invalid --node-label {s:?}: expected key=value"
            )),
        })
        .collect()
}

fn resources(machine: &MachineInfo) -> BTreeMap<String, Quantity> {
    let mut r = BTreeMap::new();
    r.insert("cpu".into(), Quantity(machine.cpus.to_string()));
    r.insert(
        "ephemeral-storage".into(),
        Quantity(format!("{}Ki", machine.ephemeral_storage_bytes / 1024)),
    );
    r.insert("hugepages-1Gi".into(), Quantity("0".into()));
    r.insert("hugepages-2Mi".into(), Quantity("0".into()));
    r.insert(
        "memory".into(),
        Quantity(format!("{}Ki", machine.memory_bytes / 1024)),
    );
    r.insert("pods".into(), Quantity(MAX_PODS.to_string()));
    r
}

fn conditions(
    now: chrono::DateTime<Utc>,
    previous: Option<&[NodeCondition]>,
) -> Vec<NodeCondition> {
    let list = [
        (
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        ),
        (
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure",
        ),
        (
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
        ),
        (
            "Ready",
            "True",
            "KubeletReady",
            "kubelet is posting ready status",
        ),
    ];
    list.iter()
        .map(|(kind, status, reason, message)| {
            let transition = previous
                .and_then(|p| p.iter().find(|c| c.type_ == *kind && c.status == *status))
                .and_then(|c| c.last_transition_time.clone())
                .unwrap_or_else(|| to_time(now));
            NodeCondition {
                type_: kind.to_string(),
                status: status.to_string(),
                reason: Some(reason.to_string()),
                message: Some(message.to_string()),
                last_heartbeat_time: Some(to_time(now)),
                last_transition_time: Some(transition),
            }
        })
        .collect()
}

/// The Node's status as this agent reports it.
pub fn node_status(
    id: &NodeIdentity,
    machine: &MachineInfo,
    now: chrono::DateTime<Utc>,
    previous: Option<&[NodeCondition]>,
) -> NodeStatus {
    NodeStatus {
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: id.ip.to_string(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: id.name.clone(),
            },
        ]),
        allocatable: Some(resources(machine)),
        capacity: Some(resources(machine)),
        conditions: Some(conditions(now, previous)),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint {
                port: id.port as i32,
            }),
        }),
        node_info: Some(NodeSystemInfo {
            architecture: machine.architecture.clone(),
            boot_id: machine.boot_id.clone(),
            container_runtime_version: format!("kubeport://{}", env!("CARGO_PKG_VERSION")),
            kernel_version: machine.kernel_version.clone(),
            kube_proxy_version: String::new(),
            kubelet_version: KUBELET_VERSION.into(),
            machine_id: machine.machine_id.clone(),
            operating_system: "linux".into(),
            os_image: machine.os_image.clone(),
            system_uuid: machine.machine_id.clone(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The Node object to create.
pub fn node_object(id: &NodeIdentity, machine: &MachineInfo) -> Node {
    let mut annotations = BTreeMap::new();
    annotations.insert("node.alpha.kubernetes.io/ttl".into(), "0".into());
    annotations.insert(
        "volumes.kubernetes.io/controller-managed-attach-detach".into(),
        "true".into(),
    );
    Node {
        metadata: ObjectMeta {
            name: Some(id.name.clone()),
            labels: Some(node_labels(id, machine)),
            annotations: Some(annotations),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            pod_cidr: Some(id.pod_cidr.to_string()),
            pod_cidrs: Some(vec![id.pod_cidr.to_string()]),
            ..Default::default()
        }),
        status: None,
    }
}

/// Registers the Node (creating it, or updating labels and pod CIDR of an existing one) and
/// posts its status. Returns the Node's UID.
pub async fn register(
    client: &kube::Client,
    id: &NodeIdentity,
    machine: &MachineInfo,
) -> anyhow::Result<String> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node = match nodes
        .create(&PostParams::default(), &node_object(id, machine))
        .await
    {
        Ok(n) => n,
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let patch = serde_json::json!({
                "metadata": {"labels": node_labels(id, machine)},
                "spec": {"podCIDR": id.pod_cidr.to_string(), "podCIDRs": [id.pod_cidr.to_string()]},
            });
            nodes
                .patch(&id.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?
        }
        Err(e) => return Err(e.into()),
    };
    post_status(client, id, machine, node.status.as_ref()).await?;
    Ok(node.metadata.uid.unwrap_or_default())
}

async fn post_status(
    client: &kube::Client,
    id: &NodeIdentity,
    machine: &MachineInfo,
    previous: Option<&NodeStatus>,
) -> Result<Node, kube::Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let prev = previous.and_then(|s| s.conditions.as_deref());
    let status = node_status(id, machine, Utc::now(), prev);
    let patch = serde_json::json!({ "status": status });
    nodes
        .patch_status(&id.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
}

async fn renew_lease(
    client: &kube::Client,
    id: &NodeIdentity,
    node_uid: &str,
) -> Result<(), kube::Error> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let now = MicroTime(crate::status::to_time(Utc::now()).0);
    match leases.get_opt(&id.name).await? {
        Some(mut lease) => {
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            spec.holder_identity = Some(id.name.clone());
            spec.lease_duration_seconds = Some(40);
            spec.renew_time = Some(now);
            leases
                .replace(&id.name, &PostParams::default(), &lease)
                .await?;
        }
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(id.name.clone()),
                    namespace: Some("kube-node-lease".into()),
                    owner_references: (!node_uid.is_empty()).then(|| {
                        vec![OwnerReference {
                            api_version: "v1".into(),
                            kind: "Node".into(),
                            name: id.name.clone(),
                            uid: node_uid.to_string(),
                            ..Default::default()
                        }]
                    }),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(id.name.clone()),
                    lease_duration_seconds: Some(40),
                    renew_time: Some(now),
                    ..Default::default()
                }),
            };
            leases.create(&PostParams::default(), &lease).await?;
        }
    }
    Ok(())
}

/// Keeps the Lease and the Node status fresh; re-registers the Node if it was deleted.
pub async fn heartbeat(
    client: kube::Client,
    id: NodeIdentity,
    machine: MachineInfo,
    mut node_uid: String,
) {
    let mut since_status = Duration::ZERO;
    loop {
        if let Err(e) = renew_lease(&client, &id, &node_uid).await {
            tracing::warn!("renewing node lease: {e}");
        }
        tokio::time::sleep(LEASE_RENEW).await;
        since_status += LEASE_RENEW;
        if since_status >= STATUS_REPORT {
            since_status = Duration::ZERO;
            let nodes: Api<Node> = Api::all(client.clone());
            let current = nodes.get_opt(&id.name).await;
            match current {
                Ok(Some(n)) => {
                    if let Err(e) = post_status(&client, &id, &machine, n.status.as_ref()).await {
                        tracing::warn!("posting node status: {e}");
                    }
                }
                Ok(None) => match register(&client, &id, &machine).await {
                    Ok(uid) => node_uid = uid,
                    Err(e) => tracing::warn!("re-registering node: {e}"),
                },
                Err(e) => tracing::warn!("reading node: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(control_plane: bool) -> NodeIdentity {
        NodeIdentity {
            name: "demo-control-plane".into(),
            ip: "172.18.0.2".parse().unwrap(),
            pod_cidr: "10.244.0.0/24".parse().unwrap(),
            control_plane,
            extra_labels: parse_labels(&["tier=front".into()]).unwrap(),
            port: 10250,
        }
    }

    fn machine() -> MachineInfo {
        MachineInfo {
            cpus: 2,
            memory_bytes: 8 * 1024 * 1024 * 1024,
            ephemeral_storage_bytes: 100 * 1024 * 1024 * 1024,
            kernel_version: "6.1.0".into(),
            os_image: "Debian GNU/Linux 12 (bookworm)".into(),
            architecture: "amd64".into(),
            machine_id: "abc".into(),
            boot_id: "def".into(),
        }
    }

    #[test]
    fn labels_include_role_and_extras_but_no_taint() {
        let n = node_object(&id(true), &machine());
        let labels = n.metadata.labels.unwrap();
        assert_eq!(labels["node-role.kubernetes.io/control-plane"], "");
        assert_eq!(labels["kubernetes.io/hostname"], "demo-control-plane");
        assert_eq!(labels["kubernetes.io/os"], "linux");
        assert_eq!(labels["kubernetes.io/arch"], "amd64");
        assert_eq!(labels["tier"], "front");
        let spec = n.spec.unwrap();
        assert_eq!(spec.pod_cidr.as_deref(), Some("10.244.0.0/24"));
        assert!(spec.taints.is_none());
        let worker = node_object(&id(false), &machine()).metadata.labels.unwrap();
        assert!(!worker.contains_key("node-role.kubernetes.io/control-plane"));
        assert!(parse_labels(&["novalue".into()]).is_err());
    }

    #[test]
    fn status_is_ready_with_addresses_capacity_and_info() {
        let now = Utc::now();
        let s = node_status(&id(false), &machine(), now, None);
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(
            json["addresses"][0],
            serde_json::json!({"type": "InternalIP", "address": "172.18.0.2"})
        );
        assert_eq!(json["addresses"][1]["type"], "Hostname");
        assert_eq!(json["capacity"]["pods"], "110");
        assert_eq!(json["capacity"]["cpu"], "2");
        assert_eq!(json["capacity"]["memory"], "8388608Ki");
        assert_eq!(json["daemonEndpoints"]["kubeletEndpoint"]["Port"], 10250);
        assert_eq!(json["nodeInfo"]["kubeletVersion"], "v1.33.1");
        assert!(json["nodeInfo"]["containerRuntimeVersion"]
            .as_str()
            .unwrap()
            .starts_with("kubeport://"));
        let ready = s
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.status, "True");
        assert_eq!(ready.reason.as_deref(), Some("KubeletReady"));
        assert_eq!(
            ready.message.as_deref(),
            Some("kubelet is posting ready status")
        );
        // Transition times survive the next report.
        let later = now + chrono::Duration::seconds(60);
        let again = node_status(&id(false), &machine(), later, s.conditions.as_deref());
        let ready2 = again
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready2.last_transition_time, Some(to_time(now)));
        assert_eq!(ready2.last_heartbeat_time, Some(to_time(later)));
    }

    #[test]
    fn machine_facts() {
        assert_eq!(go_arch("x86_64"), "amd64");
        assert_eq!(go_arch("aarch64"), "arm64");
        assert_eq!(
            os_pretty_name("NAME=\"Debian\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n"),
            Some("Debian GNU/Linux 12 (bookworm)".into())
        );
        let m = MachineInfo::read(std::path::Path::new("/"));
        assert!(m.cpus >= 1);
        assert!(m.memory_bytes > 0);
        assert!(!m.kernel_version.is_empty());
    }
}
