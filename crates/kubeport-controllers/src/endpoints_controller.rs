//! The Endpoints controller (`endpoint`): writes the legacy Endpoints object, named like the
//! Service, that `kubectl get endpoints` and older `kubectl describe svc` read.

use crate::endpoints::{
    self, ANNOTATION_OVER_CAPACITY, ANNOTATION_TRIGGER_TIME, ENDPOINTS_MAX_CAPACITY, LABEL_HEADLESS,
};
use crate::events::{object_ref, EventRecorder, EventType};
use crate::informer::{key_of, split_key, Key};
use crate::metrics::ControllerMetrics;
use crate::queue::WorkQueue;
use crate::shared::{is_not_found, run_workers, ReconcileResult, Shared};
use k8s_openapi::api::core::v1::{Endpoints, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, ResourceExt};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

pub const NAME: &str = "endpoint";
const COMPONENT: &str = "endpoint-controller";
/// Endpoints used as a leader-election lock carry this; they have no Service.
const LEADER_ANNOTATION: &str = "control-plane.alpha.kubernetes.io/leader";

pub struct EndpointsController {
    shared: Arc<Shared>,
    queue: Arc<WorkQueue<Key>>,
    triggers: Mutex<HashMap<Key, Timestamp>>,
    /// resourceVersions we replaced: seeing one of them in the cache means it is stale.
    stale_versions: Mutex<HashMap<Key, String>>,
    recorder: EventRecorder,
    metrics: Arc<ControllerMetrics>,
}

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
            .map(|s| (&s.hostname, &s.subdomain, &s.containers))
            != new
                .spec
                .as_ref()
                .map(|s| (&s.hostname, &s.subdomain, &s.containers))
}

impl EndpointsController {
    pub fn new(shared: Arc<Shared>) -> Arc<Self> {
        let metrics = shared.metrics.controller(NAME);
        let recorder = EventRecorder::new(shared.client.clone(), COMPONENT, metrics.clone());
        let this = Arc::new(EndpointsController {
            shared,
            queue: WorkQueue::new(),
            triggers: Mutex::new(HashMap::new()),
            stale_versions: Mutex::new(HashMap::new()),
            recorder,
            metrics,
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
            if let (Some(me), Some(s)) = (me.upgrade(), new.or(old)) {
                me.enqueue(key_of(s.as_ref()));
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
        self.shared.endpoints.on_change(move |old, new| {
            // Only deletions matter: someone removed what we manage.
            if let (Some(me), Some(o), None) = (me.upgrade(), old, new) {
                me.queue.add(key_of(o.as_ref()));
            }
        });
    }

    /// Queues every existing Endpoints object once, so those whose Service is gone get
    /// deleted (kube's checkLeftoverEndpoints). Call after the informers synced.
    pub fn check_leftovers(&self) {
        for ep in self.shared.endpoints.list() {
            if ep.annotations().contains_key(LEADER_ANNOTATION) {
                continue;
            }
            self.queue.add(key_of(ep.as_ref()));
        }
    }

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
        let (ns, name) = split_key(key);
        let api: Api<Endpoints> = Api::namespaced(self.shared.client.clone(), ns);
        let Some(svc) = self.shared.services.get(key) else {
            self.triggers.lock().unwrap().remove(key);
            self.stale_versions.lock().unwrap().remove(key);
            if self.shared.endpoints.get(key).is_some() {
                self.metrics.write();
                match api.delete(name, &DeleteParams::default()).await {
                    Ok(_) => {}
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            return Ok(None);
        };
        let spec = svc.spec.clone().unwrap_or_default();
        if spec.type_.as_deref() == Some("ExternalName") {
            return Ok(None);
        }
        // Selectorless Services (such as `kubernetes`) get their Endpoints from elsewhere.
        let Some(selector) = spec.selector.as_ref() else {
            return Ok(None);
        };
        let pods = self.shared.pods_for_map_selector(ns, selector);
        let trigger = self.triggers.lock().unwrap().remove(key);
        let subsets = endpoints::endpoints_subsets(&svc, &pods);
        let svc_labels: BTreeMap<String, String> = svc.labels().clone();

        let current = self.shared.endpoints.get(key);
        if let Some(cur) = &current {
            let stale = self.stale_versions.lock().unwrap().get(key).cloned();
            if stale.is_some() && stale == cur.metadata.resource_version {
                anyhow::bail!("endpoints informer cache is out of date");
            }
        }
        if let Some(cur) = &current {
            let mut cur_labels = cur.labels().clone();
            cur_labels.remove(LABEL_HEADLESS);
            let cur_subsets = cur.subsets.clone().unwrap_or_default();
            let capacity_ok = if endpoints::address_count(&cur_subsets) > ENDPOINTS_MAX_CAPACITY {
                false
            } else {
                !cur.annotations().contains_key(ANNOTATION_OVER_CAPACITY)
            };
            if cur_subsets == subsets && cur_labels == svc_labels && capacity_ok {
                return Ok(None);
            }
        }
        let mut new = match &current {
            Some(c) => (**c).clone(),
            None => Endpoints {
                metadata: ObjectMeta {
                    name: Some(name.to_string()),
                    namespace: Some(ns.to_string()),
                    ..Default::default()
                },
                subsets: None,
            },
        };
        let mut subsets = subsets;
        let truncated = endpoints::truncate_subsets(&mut subsets, ENDPOINTS_MAX_CAPACITY);
        new.subsets = (!subsets.is_empty()).then_some(subsets);
        let mut labels = svc_labels;
        if endpoints_is_headless(&svc) {
            labels.insert(LABEL_HEADLESS.into(), String::new());
        }
        new.metadata.labels = Some(labels);
        let ann = new
            .metadata
            .annotations
            .get_or_insert_with(Default::default);
        match trigger {
            Some(t) => {
                ann.insert(ANNOTATION_TRIGGER_TIME.into(), t.to_string());
            }
            None => {
                ann.remove(ANNOTATION_TRIGGER_TIME);
            }
        }
        if truncated {
            ann.insert(ANNOTATION_OVER_CAPACITY.into(), "truncated".into());
        } else {
            ann.remove(ANNOTATION_OVER_CAPACITY);
        }
        self.metrics.write();
        let result = match &current {
            None => api.create(&PostParams::default(), &new).await,
            Some(_) => api.replace(name, &PostParams::default(), &new).await,
        };
        match result {
            Ok(written) => {
                if let Some(cur) = &current {
                    if written.metadata.resource_version != cur.metadata.resource_version {
                        if let Some(rv) = cur.metadata.resource_version.clone() {
                            self.stale_versions
                                .lock()
                                .unwrap()
                                .insert(key.to_string(), rv);
                        }
                    }
                }
                Ok(None)
            }
            Err(e) => {
                let (reason, msg) = if current.is_none() {
                    (
                        "FailedToCreateEndpoint",
                        format!("Failed to create endpoint for service {key}: {e}"),
                    )
                } else {
                    (
                        "FailedToUpdateEndpoint",
                        format!("Failed to update endpoint {key}: {e}"),
                    )
                };
                self.recorder
                    .record(object_ref(&new), EventType::Warning, reason, msg);
                Err(e.into())
            }
        }
    }
}

fn endpoints_is_headless(svc: &k8s_openapi::api::core::v1::Service) -> bool {
    !matches!(
        svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()),
        Some(ip) if !ip.is_empty() && ip != "None"
    )
}
