//! The ReplicaSet controller (`replicaset`): keeps `spec.replicas` pods from the template,
//! adopting matching orphans and releasing pods that stopped matching, and reports status.

pub mod logic;

use crate::events::EventRecorder;
use crate::informer::{key, key_of, split_key, Key};
use crate::labels;
use crate::metrics::ControllerMetrics;
use crate::podutil;
use crate::queue::WorkQueue;
use crate::shared::{
    is_conflict, is_not_found, run_workers, ReconcileResult, Shared, IDX_CONTROLLER, IDX_NAMESPACE,
};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use logic::Expectations;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const NAME: &str = "replicaset";
const COMPONENT: &str = "replicaset-controller";

pub struct ReplicaSetController {
    shared: Arc<Shared>,
    queue: Arc<WorkQueue<Key>>,
    expectations: Mutex<Expectations>,
    recorder: EventRecorder,
    metrics: Arc<ControllerMetrics>,
}

/// The message of an API error (what kube puts in events), or the error's text.
pub fn error_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

impl ReplicaSetController {
    pub fn new(shared: Arc<Shared>) -> Arc<Self> {
        let metrics = shared.metrics.controller(NAME);
        let recorder = EventRecorder::new(shared.client.clone(), COMPONENT, metrics.clone());
        let this = Arc::new(ReplicaSetController {
            shared,
            queue: WorkQueue::new(),
            expectations: Mutex::new(Expectations::default()),
            recorder,
            metrics,
        });
        this.register();
        this
    }

    pub fn queue(&self) -> &Arc<WorkQueue<Key>> {
        &self.queue
    }

    /// The ReplicaSet a controller reference points to, if it is in the cache with that UID.
    fn resolve(
        &self,
        ns: &str,
        r: &k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
    ) -> Option<Key> {
        if r.kind != "ReplicaSet" || !r.api_version.starts_with("apps/") {
            return None;
        }
        let k = key(Some(ns), &r.name);
        let rs = self.shared.replica_sets.get(&k)?;
        (rs.metadata.uid.as_deref() == Some(r.uid.as_str())).then_some(k)
    }

    /// ReplicaSets in `ns` whose selector matches these labels (for orphans).
    fn matching_sets(&self, ns: &str, pod_labels: &labels::Labels) -> Vec<Key> {
        self.shared
            .replica_sets
            .by_index(IDX_NAMESPACE, ns)
            .into_iter()
            .filter(|rs| {
                rs.spec.as_ref().is_some_and(|s| {
                    !labels::selector_is_empty(&s.selector)
                        && labels::selector_matches(&s.selector, pod_labels)
                })
            })
            .map(|rs| key_of(rs.as_ref()))
            .collect()
    }

    fn register(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        self.shared.replica_sets.on_change(move |old, new| {
            if let (Some(me), Some(rs)) = (me.upgrade(), new.or(old)) {
                me.queue.add(key_of(rs.as_ref()));
            }
        });
        let me = Arc::downgrade(self);
        self.shared.pods.on_change(move |old, new| {
            if let Some(me) = me.upgrade() {
                me.on_pod(old.map(|p| p.as_ref()), new.map(|p| p.as_ref()));
            }
        });
    }

    fn on_pod(&self, old: Option<&Pod>, new: Option<&Pod>) {
        let ns = new
            .or(old)
            .and_then(|p| p.metadata.namespace.clone())
            .unwrap_or_default();
        let pod_key = key_of(new.or(old).unwrap());
        let owner =
            |p: &Pod| podutil::controller_of(&p.metadata).and_then(|r| self.resolve(&ns, r));
        match (old, new) {
            (None, Some(p)) => {
                if let Some(k) = owner(p) {
                    let mut exp = self.expectations.lock().unwrap();
                    if p.metadata.deletion_timestamp.is_some() {
                        exp.deletion_observed(&k, &pod_key);
                    } else {
                        exp.creation_observed(&k);
                    }
                    drop(exp);
                    self.queue.add(k);
                } else if podutil::controller_of(&p.metadata).is_none() {
                    for k in self.matching_sets(&ns, p.labels()) {
                        self.queue.add(k);
                    }
                }
            }
            (Some(o), Some(p)) => {
                let mut keys = BTreeSet::new();
                if p.metadata.deletion_timestamp.is_some()
                    && o.metadata.deletion_timestamp.is_none()
                {
                    // A graceful delete counts as observed as soon as it starts.
                    if let Some(k) = owner(p) {
                        self.expectations
                            .lock()
                            .unwrap()
                            .deletion_observed(&k, &pod_key);
                    }
                }
                keys.extend(owner(o));
                keys.extend(owner(p));
                if podutil::controller_of(&p.metadata).is_none()
                    && (o.metadata.labels != p.metadata.labels
                        || podutil::controller_of(&o.metadata).is_some())
                {
                    keys.extend(self.matching_sets(&ns, p.labels()));
                }
                if let Some(k) = owner(p) {
                    if !podutil::is_pod_ready(o) && podutil::is_pod_ready(p) {
                        // Availability needs minReadySeconds more; check again then.
                        let min_ready = self
                            .shared
                            .replica_sets
                            .get(&k)
                            .and_then(|rs| rs.spec.as_ref().and_then(|s| s.min_ready_seconds))
                            .unwrap_or(0);
                        if min_ready > 0 {
                            self.queue
                                .add_after(k.clone(), Duration::from_secs(min_ready as u64 + 1));
                        }
                    }
                }
                for k in keys {
                    self.queue.add(k);
                }
            }
            (Some(o), None) => {
                if let Some(k) = owner(o) {
                    self.expectations
                        .lock()
                        .unwrap()
                        .deletion_observed(&k, &pod_key);
                    self.queue.add(k);
                }
            }
            (None, None) => {}
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

    async fn sync(&self, key: &str) -> ReconcileResult {
        let Some(rs) = self.shared.replica_sets.get(key) else {
            self.expectations.lock().unwrap().forget(key);
            return Ok(None);
        };
        let (ns, _) = split_key(key);
        let needs_sync = self.expectations.lock().unwrap().satisfied(key);
        let spec = rs.spec.clone().unwrap_or_default();
        let uid = rs.metadata.uid.clone().unwrap_or_default();

        // Candidates: pods we own plus pods matching the selector.
        let mut candidates: BTreeMap<Key, Arc<Pod>> = BTreeMap::new();
        for p in self.shared.pods.by_index(IDX_CONTROLLER, &uid) {
            candidates.insert(key_of(p.as_ref()), p);
        }
        if !labels::selector_is_empty(&spec.selector) {
            for p in self.shared.pods_for_selector(ns, &spec.selector) {
                candidates.insert(key_of(p.as_ref()), p);
            }
        }
        let active: Vec<Arc<Pod>> = candidates
            .into_values()
            .filter(|p| podutil::is_active(p))
            .collect();
        let claimed = self.claim_pods(&rs, active).await?;

        let mut failure: Option<(&str, String)> = None;
        let mut manage_err: Option<anyhow::Error> = None;
        if needs_sync && rs.metadata.deletion_timestamp.is_none() {
            if let Err((reason, e)) = self.manage_replicas(key, &rs, &claimed).await {
                failure = Some((reason, e.to_string()));
                manage_err = Some(e);
            }
        }
        let status = logic::calculate_status(&rs, &claimed, failure, podutil::now_seconds());
        let current = rs.status.clone().unwrap_or_default();
        if logic::status_differs(&status, &current) {
            self.update_status(&rs, status.clone()).await?;
        }
        if let Some(e) = manage_err {
            return Err(e);
        }
        let min_ready = spec.min_ready_seconds.unwrap_or(0);
        let replicas = spec.replicas.unwrap_or(1);
        if min_ready > 0
            && status.ready_replicas.unwrap_or(0) == replicas
            && status.available_replicas.unwrap_or(0) != replicas
        {
            return Ok(Some(Duration::from_secs(min_ready as u64)));
        }
        Ok(None)
    }

    /// Adopts matching orphans and releases owned pods that no longer match (kube's
    /// PodControllerRefManager); returns the pods this ReplicaSet controls.
    async fn claim_pods(
        &self,
        rs: &ReplicaSet,
        pods: Vec<Arc<Pod>>,
    ) -> anyhow::Result<Vec<Arc<Pod>>> {
        let spec = rs.spec.clone().unwrap_or_default();
        let uid = rs.metadata.uid.clone().unwrap_or_default();
        let ns = rs.metadata.namespace.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.shared.client.clone(), &ns);
        let matches = |p: &Pod| {
            !labels::selector_is_empty(&spec.selector)
                && labels::selector_matches(&spec.selector, p.labels())
        };
        let mut claimed = Vec::new();
        let mut can_adopt: Option<bool> = None;
        for p in pods {
            match podutil::controller_of(&p.metadata) {
                Some(r) if r.uid == uid => {
                    if matches(&p) {
                        claimed.push(p);
                    } else if rs.metadata.deletion_timestamp.is_none() {
                        let refs: Vec<_> = p
                            .metadata
                            .owner_references
                            .iter()
                            .flatten()
                            .filter(|o| o.uid != uid)
                            .cloned()
                            .collect();
                        let patch = json!({"metadata": {
                            "ownerReferences": if refs.is_empty() { serde_json::Value::Null } else { json!(refs) },
                            "resourceVersion": p.metadata.resource_version,
                        }});
                        self.metrics.write();
                        match api
                            .patch(
                                &p.name_any(),
                                &PatchParams::default(),
                                &Patch::Merge(&patch),
                            )
                            .await
                        {
                            Ok(_) => {}
                            Err(e) if is_not_found(&e) => {}
                            Err(e) => return Err(e.into()),
                        }
                    }
                }
                Some(_) => {}
                None => {
                    if !matches(&p) || rs.metadata.deletion_timestamp.is_some() {
                        continue;
                    }
                    // Re-check against the API that the ReplicaSet is not going away.
                    if can_adopt.is_none() {
                        let fresh = Api::<ReplicaSet>::namespaced(self.shared.client.clone(), &ns)
                            .get_opt(&rs.name_any())
                            .await?;
                        can_adopt = Some(fresh.is_some_and(|f| {
                            f.metadata.uid.as_deref() == Some(uid.as_str())
                                && f.metadata.deletion_timestamp.is_none()
                        }));
                    }
                    if can_adopt != Some(true) {
                        continue;
                    }
                    let mut refs: Vec<_> = p.metadata.owner_references.clone().unwrap_or_default();
                    refs.push(podutil::controller_ref(
                        "apps/v1",
                        "ReplicaSet",
                        &rs.name_any(),
                        &uid,
                    ));
                    let patch = json!({"metadata": {
                        "ownerReferences": refs,
                        "resourceVersion": p.metadata.resource_version,
                    }});
                    self.metrics.write();
                    match api
                        .patch(
                            &p.name_any(),
                            &PatchParams::default(),
                            &Patch::Merge(&patch),
                        )
                        .await
                    {
                        Ok(adopted) => claimed.push(Arc::new(adopted)),
                        Err(e) if is_not_found(&e) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        Ok(claimed)
    }

    /// Creates or deletes pods to reach `spec.replicas`.
    async fn manage_replicas(
        &self,
        key: &str,
        rs: &ReplicaSet,
        pods: &[Arc<Pod>],
    ) -> Result<(), (&'static str, anyhow::Error)> {
        let want = rs
            .spec
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(1)
            .max(0) as usize;
        let ns = rs.metadata.namespace.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.shared.client.clone(), &ns);
        if pods.len() < want {
            let count = (want - pods.len()).min(logic::BURST_REPLICAS);
            self.expectations
                .lock()
                .unwrap()
                .expect_creations(key, count);
            let template = logic::pod_from_template(rs);
            let pp = PostParams::default();
            let mut created = 0usize;
            let mut first_err: Option<anyhow::Error> = None;
            for batch in logic::slow_start_batches(count, 1) {
                let results = futures::future::join_all((0..batch).map(|_| {
                    self.metrics.write();
                    api.create(&pp, &template)
                }))
                .await;
                for r in results {
                    match r {
                        Ok(p) => {
                            created += 1;
                            self.recorder.normal(
                                rs,
                                "SuccessfulCreate",
                                format!("Created pod: {}", p.name_any()),
                            );
                        }
                        Err(e) => {
                            self.recorder.warning(
                                rs,
                                "FailedCreate",
                                format!("Error creating: {}", error_message(&e)),
                            );
                            first_err.get_or_insert_with(|| e.into());
                        }
                    }
                }
                if first_err.is_some() {
                    break;
                }
            }
            let mut exp = self.expectations.lock().unwrap();
            for _ in created..count {
                exp.creation_observed(key);
            }
            drop(exp);
            if let Some(e) = first_err {
                return Err(("FailedCreate", e));
            }
        } else if pods.len() > want {
            let count = (pods.len() - want).min(logic::BURST_REPLICAS);
            let related = self.related_pods(rs);
            let victims = logic::pods_to_delete(pods, &related, count, Timestamp::now());
            self.expectations
                .lock()
                .unwrap()
                .expect_deletions(key, victims.iter().map(|p| key_of(p.as_ref())));
            let results = futures::future::join_all(victims.iter().map(|p| {
                self.metrics.write();
                let api = api.clone();
                let name = p.name_any();
                async move {
                    (
                        name.clone(),
                        api.delete(&name, &DeleteParams::default()).await,
                    )
                }
            }))
            .await;
            let mut first_err: Option<anyhow::Error> = None;
            for (name, r) in results {
                match r {
                    Ok(_) => {
                        self.recorder
                            .normal(rs, "SuccessfulDelete", format!("Deleted pod: {name}"))
                    }
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => {
                        self.expectations
                            .lock()
                            .unwrap()
                            .deletion_observed(key, &crate::informer::key(Some(&ns), &name));
                        self.recorder.warning(
                            rs,
                            "FailedDelete",
                            format!("Error deleting: {}", error_message(&e)),
                        );
                        first_err.get_or_insert_with(|| e.into());
                    }
                }
            }
            if let Some(e) = first_err {
                return Err(("FailedDelete", e));
            }
        }
        Ok(())
    }

    /// Active pods of every ReplicaSet with the same controller (a Deployment's sets).
    fn related_pods(&self, rs: &ReplicaSet) -> Vec<Arc<Pod>> {
        let mut uids = vec![rs.metadata.uid.clone().unwrap_or_default()];
        if let Some(owner) = podutil::controller_of(&rs.metadata) {
            uids = self
                .shared
                .replica_sets
                .by_index(IDX_CONTROLLER, &owner.uid)
                .iter()
                .filter_map(|r| r.metadata.uid.clone())
                .collect();
        }
        uids.iter()
            .flat_map(|u| self.shared.pods.by_index(IDX_CONTROLLER, u))
            .filter(|p| podutil::is_active(p))
            .collect()
    }

    async fn update_status(
        &self,
        rs: &ReplicaSet,
        status: k8s_openapi::api::apps::v1::ReplicaSetStatus,
    ) -> anyhow::Result<()> {
        let ns = rs.metadata.namespace.clone().unwrap_or_default();
        let api: Api<ReplicaSet> = Api::namespaced(self.shared.client.clone(), &ns);
        let mut obj = rs.clone();
        obj.status = Some(status.clone());
        self.metrics.write();
        match api
            .replace_status(&rs.name_any(), &PostParams::default(), &obj)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_conflict(&e) => {
                // The cache is behind; retry once on the current object.
                let mut fresh = api.get_status(&rs.name_any()).await?;
                if fresh.metadata.uid != rs.metadata.uid {
                    return Ok(());
                }
                let mut st = status;
                st.observed_generation = rs.metadata.generation;
                fresh.status = Some(st);
                self.metrics.write();
                api.replace_status(&rs.name_any(), &PostParams::default(), &fresh)
                    .await?;
                Ok(())
            }
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
