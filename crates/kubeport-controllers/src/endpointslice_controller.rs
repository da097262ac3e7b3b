//! The EndpointSlice controller (`endpointslice`): keeps the slices of every Service with a
//! selector in line with its pods.

use crate::endpoints::{
    self, NodeInfo, SlicePlan, ANNOTATION_TRIGGER_TIME, LABEL_MANAGED_BY, MANAGED_BY,
};
use crate::events::EventRecorder;
use crate::informer::{key_of, split_key, Key};
use crate::metrics::ControllerMetrics;
use crate::queue::WorkQueue;
use crate::shared::{run_workers, ReconcileResult, Shared, WriteTracker, IDX_SERVICE};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, ResourceExt};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub const NAME: &str = "endpointslice";
const COMPONENT: &str = "endpoint-slice-controller";

pub struct EndpointSliceController {
    shared: Arc<Shared>,
    queue: Arc<WorkQueue<Key>>,
    tracker: WriteTracker,
    /// When the first unprocessed change of each Service was observed.
    triggers: Mutex<HashMap<Key, Timestamp>>,
    recorder: EventRecorder,
    metrics: Arc<ControllerMetrics>,
    max_endpoints_per_slice: usize,
}

/// Whether a pod change can change endpoints (kube's podEndpointsChanged, plus labels).
fn pod_changed(old: &Pod, new: &Pod) -> bool {
    old.metadata.labels != new.metadata.labels
        || old.metadata.deletion_timestamp != new.metadata.deletion_timestamp
        || endpoints::pod_ips(old) != endpoints::pod_ips(new)
        || crate::podutil::is_pod_ready(old) != crate::podutil::is_pod_ready(new)
        || crate::podutil::is_terminal(old) != crate::podutil::is_terminal(new)
        || crate::podutil::node_name(old) != crate::podutil::node_name(new)
        || old
            .spec
            .as_ref()
            .map(|s| (&s.hostname, &s.subdomain, &s.containers, &s.init_containers))
            != new
                .spec
                .as_ref()
                .map(|s| (&s.hostname, &s.subdomain, &s.containers, &s.init_containers))
        || old.metadata.uid != new.metadata.uid
}

impl EndpointSliceController {
    pub fn new(shared: Arc<Shared>, max_endpoints_per_slice: usize) -> Arc<Self> {
        let metrics = shared.metrics.controller(NAME);
        let recorder = EventRecorder::new(shared.client.clone(), COMPONENT, metrics.clone());
        let this = Arc::new(EndpointSliceController {
            shared,
            queue: WorkQueue::new(),
            tracker: WriteTracker::default(),
            triggers: Mutex::new(HashMap::new()),
            recorder,
            metrics,
            max_endpoints_per_slice,
        });
        this.register();
        this
    }

    fn enqueue(&self, key: Key) {
        self.triggers
            .lock()
            .unwrap()
            .entry(key.clone())
            .or_insert_with(Timestamp::now);
        self.queue.add(key);
    }

    fn register(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        self.shared.services.on_change(move |old, new| {
            if let Some(me) = me.upgrade() {
                if let Some(s) = new.or(old) {
                    me.enqueue(key_of(s.as_ref()));
                }
            }
        });
        let me = Arc::downgrade(self);
        self.shared.pods.on_change(move |old, new| {
            let Some(me) = me.upgrade() else { return };
            if let (Some(o), Some(n)) = (old, new) {
                if !pod_changed(o, n) {
                    return;
                }
            }
            let mut keys = std::collections::BTreeSet::new();
            for p in [old, new].into_iter().flatten() {
                let ns = p.metadata.namespace.clone().unwrap_or_default();
                keys.extend(me.shared.services_selecting(&ns, p.labels()));
            }
            for k in keys {
                me.enqueue(k);
            }
        });
        let me = Arc::downgrade(self);
        self.shared.endpoint_slices.on_change(move |old, new| {
            let Some(me) = me.upgrade() else { return };
            let Some(s) = new.or(old) else { return };
            let managed = |s: &EndpointSlice| {
                s.labels().get(LABEL_MANAGED_BY).map(String::as_str) == Some(MANAGED_BY)
            };
            if !managed(s) && !old.is_some_and(|o| managed(o)) {
                return;
            }
            let Some(svc) = s.labels().get(endpoints::LABEL_SERVICE_NAME) else {
                return;
            };
            let owner = crate::informer::key(s.metadata.namespace.as_deref(), svc);
            let rv = new.and_then(|n| n.metadata.resource_version.as_deref());
            if me.tracker.is_own_write(&owner, &s.name_any(), rv) {
                return;
            }
            me.queue.add(owner);
        });
    }

    /// Starts the workers; the caller has started and synced the informers.
    pub fn run(self: &Arc<Self>, workers: usize) -> Vec<tokio::task::JoinHandle<()>> {
        let me = self.clone();
        run_workers(
            NAME,
            self.queue.clone(),
            workers,
            self.metrics.clone(),
            move |key| {
                let me = me.clone();
                async move { me.sync(&key).await }
            },
        )
    }

    pub fn queue(&self) -> &Arc<WorkQueue<Key>> {
        &self.queue
    }

    async fn sync(&self, key: &str) -> ReconcileResult {
        let Some(svc) = self.shared.services.get(key) else {
            // Slices of a deleted Service go away with it (owner references).
            self.tracker.forget_owner(key);
            self.triggers.lock().unwrap().remove(key);
            return Ok(None);
        };
        let spec = svc.spec.clone().unwrap_or_default();
        let Some(selector) = spec.selector.as_ref() else {
            return Ok(None);
        };
        if spec.type_.as_deref() == Some("ExternalName") {
            return Ok(None);
        }
        let (ns, _) = split_key(key);
        let pods = self.shared.pods_for_map_selector(ns, selector);
        let slices: Vec<Arc<EndpointSlice>> = self
            .shared
            .endpoint_slices
            .by_index(IDX_SERVICE, key)
            .into_iter()
            .filter(|s| s.labels().get(LABEL_MANAGED_BY).map(String::as_str) == Some(MANAGED_BY))
            .collect();
        let cached: HashMap<String, Option<u64>> = slices
            .iter()
            .map(|s| {
                (
                    s.name_any(),
                    s.metadata
                        .resource_version
                        .as_deref()
                        .and_then(|r| r.parse().ok()),
                )
            })
            .collect();
        if self.tracker.is_stale(key, &cached) {
            anyhow::bail!("EndpointSlice informer cache is out of date");
        }
        let trigger = self.triggers.lock().unwrap().remove(key);

        let types = endpoints::address_types(&svc);
        let mut plan = SlicePlan::default();
        let mut missing = Vec::new();
        for s in &slices {
            if !types.contains(&s.address_type.as_str()) {
                plan.delete.push((**s).clone());
            }
        }
        let nodes = &self.shared.nodes;
        for t in &types {
            let existing: Vec<EndpointSlice> = slices
                .iter()
                .filter(|s| s.address_type == *t)
                .map(|s| (**s).clone())
                .collect();
            let zones: HashMap<String, Option<String>> = pods
                .iter()
                .map(|p| crate::podutil::node_name(p))
                .filter_map(|n| {
                    nodes.get(n).map(|node| {
                        (
                            n.to_string(),
                            node.labels().get(endpoints::LABEL_ZONE).cloned(),
                        )
                    })
                })
                .collect();
            let (groups, miss) = endpoints::desired_endpoints(
                &svc,
                &pods,
                |n| match zones.get(n) {
                    Some(z) => NodeInfo::Found(z.as_deref()),
                    None => NodeInfo::Missing,
                },
                t,
            );
            missing.extend(miss);
            let p =
                endpoints::plan_slices(&svc, &existing, groups, t, self.max_endpoints_per_slice);
            plan.create.extend(p.create);
            plan.update.extend(p.update);
            plan.delete.extend(p.delete);
        }
        if let Err(e) = self.apply(key, &svc, plan, trigger).await {
            self.recorder.warning(
                svc.as_ref(),
                "FailedToUpdateEndpointSlices",
                format!("Error updating Endpoint Slices for Service {key}: {e}"),
            );
            return Err(e);
        }
        if !missing.is_empty() {
            anyhow::bail!(
                "skipping pods {} of Service {key}: their nodes are not known yet",
                missing.join(", ")
            );
        }
        Ok(None)
    }

    async fn apply(
        &self,
        key: &str,
        svc: &Service,
        plan: SlicePlan,
        trigger: Option<Timestamp>,
    ) -> anyhow::Result<()> {
        let (ns, _) = split_key(key);
        let api: Api<EndpointSlice> = Api::namespaced(self.shared.client.clone(), ns);
        let stamp = |s: &mut EndpointSlice| {
            let ann = s.metadata.annotations.get_or_insert_with(Default::default);
            match trigger {
                Some(t) => {
                    ann.insert(ANNOTATION_TRIGGER_TIME.into(), t.to_string());
                }
                None => {
                    ann.remove(ANNOTATION_TRIGGER_TIME);
                }
            }
        };
        // Writes of one reconcile go out together (the store commits them as one group).
        let pp = PostParams::default();
        let mut creates = Vec::new();
        if svc.metadata.deletion_timestamp.is_none() {
            for mut s in plan.create {
                stamp(&mut s);
                creates.push(s);
            }
        }
        let created = futures::future::join_all(creates.iter().map(|s| {
            self.metrics.write();
            api.create(&pp, s)
        }))
        .await;
        let mut updates = plan.update;
        for s in updates.iter_mut() {
            stamp(s);
        }
        let updated = futures::future::join_all(updates.iter().map(|s| {
            self.metrics.write();
            api.replace(s.metadata.name.as_deref().unwrap_or_default(), &pp, s)
        }))
        .await;
        let dp = DeleteParams::default();
        let deleted = futures::future::join_all(plan.delete.iter().map(|s| {
            self.metrics.write();
            api.delete(s.metadata.name.as_deref().unwrap_or_default(), &dp)
        }))
        .await;
        let mut first_err: Option<kube::Error> = None;
        for r in created.into_iter().chain(updated) {
            match r {
                Ok(s) => {
                    self.tracker
                        .written(key, &s.name_any(), s.metadata.resource_version.as_deref())
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        for (s, r) in plan.delete.iter().zip(deleted) {
            match r {
                Ok(_) => self.tracker.deleted(key, &s.name_any()),
                Err(e) if crate::shared::is_not_found(&e) => {
                    self.tracker.deleted(key, &s.name_any())
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_err {
            return Err(e.into());
        }
        Ok(())
    }
}
