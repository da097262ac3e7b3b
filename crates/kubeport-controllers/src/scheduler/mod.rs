//! The scheduler (`scheduler`, kube-scheduler's job): binds pending pods of the default
//! scheduler to Ready, schedulable nodes through `pods/{name}/binding`.

pub mod logic;

use crate::events::EventRecorder;
use crate::informer::{key_of, split_key, Key};
use crate::metrics::ControllerMetrics;
use crate::podutil;
use crate::queue::WorkQueue;
use crate::shared::{is_conflict, is_not_found, run_workers, ReconcileResult, Shared, IDX_NODE};
use k8s_openapi::api::core::v1::{Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use logic::{Candidate, NodeLoad};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const NAME: &str = "scheduler";
/// `spec.schedulerName` this scheduler serves, and its event source.
pub const SCHEDULER_NAME: &str = "default-scheduler";
/// Unschedulable pods are retried this often even without cluster changes.
const UNSCHEDULABLE_RETRY: Duration = Duration::from_secs(30);
/// How long a binding we made may be missing from the cache before it is forgotten.
const ASSUME_TTL: Duration = Duration::from_secs(30);

/// A binding made but not yet seen in the cache.
struct Assumed {
    node: String,
    owner: Option<String>,
    at: Instant,
}

pub struct Scheduler {
    shared: Arc<Shared>,
    queue: Arc<WorkQueue<Key>>,
    /// Pods bound by us that the cache does not show bound yet.
    assumed: Mutex<HashMap<Key, Assumed>>,
    unschedulable: Mutex<HashSet<Key>>,
    recorder: EventRecorder,
    metrics: Arc<ControllerMetrics>,
}

/// Whether this scheduler should place the pod now.
fn wants_scheduling(p: &Pod) -> bool {
    let spec = p.spec.as_ref();
    podutil::node_name(p).is_empty()
        && p.metadata.deletion_timestamp.is_none()
        && !podutil::is_terminal(p)
        && spec
            .and_then(|s| s.scheduler_name.as_deref())
            .unwrap_or(SCHEDULER_NAME)
            == SCHEDULER_NAME
        && spec
            .and_then(|s| s.scheduling_gates.as_ref())
            .is_none_or(|g| g.is_empty())
}

impl Scheduler {
    pub fn new(shared: Arc<Shared>) -> Arc<Self> {
        let metrics = shared.metrics.controller(NAME);
        let recorder = EventRecorder::new(shared.client.clone(), SCHEDULER_NAME, metrics.clone());
        let this = Arc::new(Scheduler {
            shared,
            queue: WorkQueue::new(),
            assumed: Mutex::new(HashMap::new()),
            unschedulable: Mutex::new(HashSet::new()),
            recorder,
            metrics,
        });
        this.register();
        this
    }

    pub fn queue(&self) -> &Arc<WorkQueue<Key>> {
        &self.queue
    }

    fn retry_unschedulable(&self) {
        let keys: Vec<Key> = self.unschedulable.lock().unwrap().iter().cloned().collect();
        for k in keys {
            self.queue.add(k);
        }
    }

    fn register(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        self.shared.pods.on_change(move |old, new| {
            let Some(me) = me.upgrade() else { return };
            match new {
                Some(p) => {
                    let k = key_of(p.as_ref());
                    if wants_scheduling(p) {
                        me.queue.add(k);
                    } else {
                        me.unschedulable.lock().unwrap().remove(&k);
                        if !podutil::node_name(p).is_empty() {
                            me.assumed.lock().unwrap().remove(&k);
                        }
                        // A pod that stopped occupying a node may make room.
                        if old.is_some_and(|o| !podutil::is_terminal(o)) && podutil::is_terminal(p)
                        {
                            me.retry_unschedulable();
                        }
                    }
                }
                None => {
                    if let Some(o) = old {
                        let k = key_of(o.as_ref());
                        me.unschedulable.lock().unwrap().remove(&k);
                        me.assumed.lock().unwrap().remove(&k);
                        if !podutil::node_name(o).is_empty() {
                            me.retry_unschedulable();
                        }
                    }
                }
            }
        });
        let me = Arc::downgrade(self);
        self.shared.nodes.on_change(move |_, _| {
            if let Some(me) = me.upgrade() {
                me.retry_unschedulable();
            }
        });
    }

    pub fn run(self: &Arc<Self>) -> Vec<tokio::task::JoinHandle<()>> {
        let me = self.clone();
        // One pod at a time, as kube-scheduler's scheduling cycle, so placements see each other.
        run_workers(
            NAME,
            self.queue.clone(),
            1,
            self.metrics.clone(),
            move |key| {
                let me = me.clone();
                async move { me.schedule(&key).await }
            },
        )
    }

    /// Per-node load from the cache plus our not yet observed bindings.
    fn loads(&self) -> HashMap<String, NodeLoad> {
        let mut loads: HashMap<String, NodeLoad> = HashMap::new();
        for n in self.shared.nodes.list() {
            let name = n.name_any();
            let mut load = NodeLoad::default();
            for p in self.shared.pods.by_index(IDX_NODE, &name) {
                if podutil::is_terminal(&p) {
                    continue;
                }
                load.pods += 1;
                if let Some(r) = podutil::controller_of(&p.metadata) {
                    *load.by_owner.entry(r.uid.clone()).or_default() += 1;
                }
            }
            loads.insert(name, load);
        }
        let mut assumed = self.assumed.lock().unwrap();
        assumed.retain(|_, a| a.at.elapsed() < ASSUME_TTL);
        for a in assumed.values() {
            if let Some(load) = loads.get_mut(&a.node) {
                load.pods += 1;
                if let Some(o) = &a.owner {
                    *load.by_owner.entry(o.clone()).or_default() += 1;
                }
            }
        }
        loads
    }

    async fn schedule(&self, key: &str) -> ReconcileResult {
        let Some(pod) = self.shared.pods.get(key) else {
            return Ok(None);
        };
        if !wants_scheduling(&pod) || self.assumed.lock().unwrap().contains_key(key) {
            return Ok(None);
        }
        let owner = podutil::controller_of(&pod.metadata).map(|r| r.uid.clone());
        let nodes = self.shared.nodes.list();
        let loads = self.loads();
        let empty = NodeLoad::default();
        let candidates: Vec<Candidate> = nodes
            .iter()
            .map(|n| {
                let load = loads
                    .get(n.metadata.name.as_deref().unwrap_or_default())
                    .unwrap_or(&empty);
                Candidate {
                    node: n.as_ref(),
                    pods: load.pods,
                    same_owner: owner
                        .as_ref()
                        .and_then(|o| load.by_owner.get(o))
                        .copied()
                        .unwrap_or(0),
                }
            })
            .collect();
        let (ns, name) = split_key(key);
        let api: Api<Pod> = Api::namespaced(self.shared.client.clone(), ns);
        match logic::choose_node(&pod, &candidates) {
            Ok(node) => {
                let binding = json!({
                    "apiVersion": "v1",
                    "kind": "Binding",
                    "metadata": {"name": name, "namespace": ns, "uid": pod.metadata.uid},
                    "target": {"apiVersion": "v1", "kind": "Node", "name": node},
                });
                self.metrics.write();
                match api
                    .create_subresource::<_, serde_json::Value>(
                        "binding",
                        name,
                        &PostParams::default(),
                        &binding,
                    )
                    .await
                {
                    Ok(_) => {}
                    // Already bound (by someone else) or gone: nothing left to do.
                    Err(e) if is_conflict(&e) || is_not_found(&e) => return Ok(None),
                    Err(e) => return Err(e.into()),
                }
                self.assumed.lock().unwrap().insert(
                    key.to_string(),
                    Assumed {
                        node: node.clone(),
                        owner,
                        at: Instant::now(),
                    },
                );
                self.unschedulable.lock().unwrap().remove(key);
                self.mark_scheduled(&api, &pod).await;
                self.recorder.normal(
                    pod.as_ref(),
                    "Scheduled",
                    format!("Successfully assigned {ns}/{name} to {node}"),
                );
                Ok(None)
            }
            Err(fit) => {
                let msg = fit.to_string();
                self.recorder
                    .warning(pod.as_ref(), "FailedScheduling", msg.clone());
                self.unschedulable.lock().unwrap().insert(key.to_string());
                self.mark_unschedulable(&api, &pod, &msg).await?;
                Ok(Some(UNSCHEDULABLE_RETRY))
            }
        }
    }

    /// kube-apiserver's binding sets `PodScheduled=True`; this API server leaves conditions
    /// alone, so a pod we reported unschedulable gets the condition flipped here.
    async fn mark_scheduled(&self, api: &Api<Pod>, pod: &Pod) {
        let mut conditions: Vec<PodCondition> = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        let Some(c) = conditions
            .iter_mut()
            .find(|c| c.type_ == "PodScheduled" && c.status != "True")
        else {
            return;
        };
        *c = PodCondition {
            type_: "PodScheduled".into(),
            status: "True".into(),
            last_transition_time: Some(Time(podutil::now_seconds())),
            ..Default::default()
        };
        let patch = json!({"status": {"conditions": conditions}});
        self.metrics.write();
        if let Err(e) = api
            .patch_status(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            tracing::debug!("{NAME}: marking {} scheduled: {e}", pod.name_any());
        }
    }

    /// Sets `PodScheduled=False` with reason `Unschedulable`, as kube-scheduler does.
    async fn mark_unschedulable(&self, api: &Api<Pod>, pod: &Pod, msg: &str) -> anyhow::Result<()> {
        let mut conditions: Vec<PodCondition> = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        if let Some(c) = conditions.iter().find(|c| c.type_ == "PodScheduled") {
            if c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable")
                && c.message.as_deref() == Some(msg)
            {
                return Ok(());
            }
        }
        conditions.retain(|c| c.type_ != "PodScheduled");
        conditions.push(PodCondition {
            type_: "PodScheduled".into(),
            status: "False".into(),
            reason: Some("Unschedulable".into()),
            message: Some(msg.into()),
            last_transition_time: Some(Time(podutil::now_seconds())),
            ..Default::default()
        });
        let patch = json!({"status": {"conditions": conditions}});
        self.metrics.write();
        match api
            .patch_status(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
