//! The Deployment controller (`deployment`): ReplicaSets named `<deployment>-<pod-template-hash>`,
//! RollingUpdate and Recreate rollouts, proportional scaling, revision history and status.

pub mod logic;

use crate::events::EventRecorder;
use crate::informer::{key, key_of, Key};
use crate::labels;
use crate::metrics::ControllerMetrics;
use crate::podutil;
use crate::queue::WorkQueue;
use crate::shared::{
    is_conflict, is_not_found, run_workers, ReconcileResult, Shared, IDX_CONTROLLER, IDX_NAMESPACE,
};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use logic::*;
use serde_json::json;
use std::sync::Arc;

pub const NAME: &str = "deployment";
const COMPONENT: &str = "deployment-controller";

pub struct DeploymentController {
    shared: Arc<Shared>,
    queue: Arc<WorkQueue<Key>>,
    recorder: EventRecorder,
    metrics: Arc<ControllerMetrics>,
}

/// Indexes of the sets other than `new_idx`.
fn olds(rss: &[ReplicaSet], new_idx: Option<usize>) -> Vec<usize> {
    (0..rss.len()).filter(|i| Some(*i) != new_idx).collect()
}

impl DeploymentController {
    pub fn new(shared: Arc<Shared>) -> Arc<Self> {
        let metrics = shared.metrics.controller(NAME);
        let recorder = EventRecorder::new(shared.client.clone(), COMPONENT, metrics.clone());
        let this = Arc::new(DeploymentController {
            shared,
            queue: WorkQueue::new(),
            recorder,
            metrics,
        });
        this.register();
        this
    }

    pub fn queue(&self) -> &Arc<WorkQueue<Key>> {
        &self.queue
    }

    fn owner_key(&self, ns: &str, meta: &ObjectMeta) -> Option<Key> {
        let r = podutil::controller_of(meta)?;
        (r.kind == "Deployment").then(|| key(Some(ns), &r.name))
    }

    fn register(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        self.shared.deployments.on_change(move |old, new| {
            if let (Some(me), Some(d)) = (me.upgrade(), new.or(old)) {
                me.queue.add(key_of(d.as_ref()));
            }
        });
        let me = Arc::downgrade(self);
        self.shared.replica_sets.on_change(move |old, new| {
            let Some(me) = me.upgrade() else { return };
            for rs in [old, new].into_iter().flatten() {
                let ns = rs.metadata.namespace.clone().unwrap_or_default();
                if let Some(k) = me.owner_key(&ns, &rs.metadata) {
                    me.queue.add(k);
                }
            }
            if let Some(rs) = new {
                if podutil::controller_of(&rs.metadata).is_none() {
                    let ns = rs.metadata.namespace.clone().unwrap_or_default();
                    for d in me.shared.deployments.by_index(IDX_NAMESPACE, &ns) {
                        let sel = &d
                            .spec
                            .as_ref()
                            .map(|s| s.selector.clone())
                            .unwrap_or_default();
                        if !labels::selector_is_empty(sel)
                            && labels::selector_matches(sel, rs.labels())
                        {
                            me.queue.add(key_of(d.as_ref()));
                        }
                    }
                }
            }
        });
        let me = Arc::downgrade(self);
        self.shared.pods.on_change(move |old, new| {
            // Recreate waits for old pods to be gone: a pod deletion may unblock it.
            let (Some(me), Some(p), None) = (me.upgrade(), old, new) else {
                return;
            };
            let ns = p.metadata.namespace.clone().unwrap_or_default();
            let Some(r) = podutil::controller_of(&p.metadata) else {
                return;
            };
            let Some(rs) = me.shared.replica_sets.get(&key(Some(&ns), &r.name)) else {
                return;
            };
            if let Some(k) = me.owner_key(&ns, &rs.metadata) {
                if me
                    .shared
                    .deployments
                    .get(&k)
                    .is_some_and(|d| !is_rolling(&d))
                {
                    me.queue.add(k);
                }
            }
        });
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
        let Some(cached) = self.shared.deployments.get(key) else {
            return Ok(None);
        };
        let mut d = (*cached).clone();
        let selector = d
            .spec
            .as_ref()
            .map(|s| s.selector.clone())
            .unwrap_or_default();
        if labels::selector_is_empty(&selector) {
            self.recorder.warning(
                &d,
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required.".into(),
            );
            let observed = d
                .status
                .as_ref()
                .and_then(|s| s.observed_generation)
                .unwrap_or(0);
            if observed < d.metadata.generation.unwrap_or(0) {
                let mut st = d.status.clone().unwrap_or_default();
                st.observed_generation = d.metadata.generation;
                self.write_status(&mut d, st).await?;
            }
            return Ok(None);
        }
        let mut rss = self.claim_replica_sets(&d).await?;
        if d.metadata.deletion_timestamp.is_some() {
            let new_idx = self.sync_revision(&mut d, &mut rss, false).await?;
            return self.sync_status(&mut d, &rss, new_idx).await;
        }
        if progress_deadline(&d).is_some() {
            self.check_paused_conditions(&mut d).await?;
        }
        let paused = d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
        if paused || self.is_scaling_event(&mut d, &mut rss).await? {
            return self.sync_scale(&mut d, &mut rss, paused).await;
        }
        if is_rolling(&d) {
            self.rollout_rolling(&mut d, &mut rss).await
        } else {
            self.rollout_recreate(&mut d, &mut rss).await
        }
    }

    /// Adopts matching orphan sets and releases owned sets that no longer match.
    async fn claim_replica_sets(&self, d: &Deployment) -> anyhow::Result<Vec<ReplicaSet>> {
        let ns = d.metadata.namespace.clone().unwrap_or_default();
        let uid = d.metadata.uid.clone().unwrap_or_default();
        let selector = d
            .spec
            .as_ref()
            .map(|s| s.selector.clone())
            .unwrap_or_default();
        let api: Api<ReplicaSet> = Api::namespaced(self.shared.client.clone(), &ns);
        let mut out = Vec::new();
        let mut can_adopt: Option<bool> = None;
        for rs in self.shared.replica_sets.by_index(IDX_NAMESPACE, &ns) {
            let matches = labels::selector_matches(&selector, rs.labels());
            match podutil::controller_of(&rs.metadata) {
                Some(r) if r.uid == uid => {
                    if matches {
                        out.push((*rs).clone());
                    } else if d.metadata.deletion_timestamp.is_none() {
                        let refs: Vec<_> = rs
                            .metadata
                            .owner_references
                            .iter()
                            .flatten()
                            .filter(|o| o.uid != uid)
                            .cloned()
                            .collect();
                        let patch = json!({"metadata": {
                            "ownerReferences": if refs.is_empty() { serde_json::Value::Null } else { json!(refs) },
                            "resourceVersion": rs.metadata.resource_version,
                        }});
                        self.metrics.write();
                        match api
                            .patch(
                                &rs.name_any(),
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
                None if matches && d.metadata.deletion_timestamp.is_none() => {
                    if can_adopt.is_none() {
                        let fresh = Api::<Deployment>::namespaced(self.shared.client.clone(), &ns)
                            .get_opt(&d.name_any())
                            .await?;
                        can_adopt = Some(fresh.is_some_and(|f| {
                            f.metadata.uid.as_deref() == Some(uid.as_str())
                                && f.metadata.deletion_timestamp.is_none()
                        }));
                    }
                    if can_adopt != Some(true) {
                        continue;
                    }
                    let mut refs = rs.metadata.owner_references.clone().unwrap_or_default();
                    refs.push(podutil::controller_ref(
                        "apps/v1",
                        "Deployment",
                        &d.name_any(),
                        &uid,
                    ));
                    let patch = json!({"metadata": {"ownerReferences": refs, "resourceVersion": rs.metadata.resource_version}});
                    self.metrics.write();
                    match api
                        .patch(
                            &rs.name_any(),
                            &PatchParams::default(),
                            &Patch::Merge(&patch),
                        )
                        .await
                    {
                        Ok(adopted) => out.push(adopted),
                        Err(e) if is_not_found(&e) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                None => {}
            }
        }
        out.sort_by(by_creation);
        Ok(out)
    }

    /// Writes the Deployment's status (and keeps `d` current).
    async fn write_status(
        &self,
        d: &mut Deployment,
        status: DeploymentStatus,
    ) -> anyhow::Result<()> {
        let ns = d.metadata.namespace.clone().unwrap_or_default();
        let api: Api<Deployment> = Api::namespaced(self.shared.client.clone(), &ns);
        d.status = Some(status);
        self.metrics.write();
        *d = api
            .replace_status(&d.name_any(), &PostParams::default(), d)
            .await?;
        Ok(())
    }

    /// Sets the Deployment's revision annotation (a metadata write; status is separate).
    async fn write_revision(&self, d: &mut Deployment, revision: &str) -> anyhow::Result<()> {
        let ns = d.metadata.namespace.clone().unwrap_or_default();
        let api: Api<Deployment> = Api::namespaced(self.shared.client.clone(), &ns);
        let patch = json!({"metadata": {
            "annotations": {ANNOTATION_REVISION: revision},
            "resourceVersion": d.metadata.resource_version,
        }});
        self.metrics.write();
        let updated = api
            .patch(
                &d.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
        // Keep the status we are working on; take the new metadata.
        d.metadata = updated.metadata;
        Ok(())
    }

    async fn update_rs(&self, rs: &ReplicaSet) -> anyhow::Result<ReplicaSet> {
        let ns = rs.metadata.namespace.clone().unwrap_or_default();
        let api: Api<ReplicaSet> = Api::namespaced(self.shared.client.clone(), &ns);
        self.metrics.write();
        Ok(api
            .replace(&rs.name_any(), &PostParams::default(), rs)
            .await?)
    }

    /// Finds (or creates) the new set and syncs revisions (kube's getAllReplicaSetsAndSyncRevision).
    async fn sync_revision(
        &self,
        d: &mut Deployment,
        rss: &mut Vec<ReplicaSet>,
        create: bool,
    ) -> anyhow::Result<Option<usize>> {
        let new_idx = find_new_rs(d, rss);
        let old_idx = olds(rss, new_idx);
        let max_old = max_revision(old_idx.iter().map(|i| &rss[*i]));
        let new_revision = (max_old + 1).to_string();
        let now = podutil::now_seconds();
        if let Some(i) = new_idx {
            let mut copy = rss[i].clone();
            let ann_changed = set_new_rs_annotations(d, &mut copy, &new_revision, true);
            let min_ready = d.spec.as_ref().and_then(|s| s.min_ready_seconds);
            let rs_min_ready = copy.spec.as_ref().and_then(|s| s.min_ready_seconds);
            if ann_changed || min_ready.unwrap_or(0) != rs_min_ready.unwrap_or(0) {
                copy.spec
                    .get_or_insert_with(Default::default)
                    .min_ready_seconds = min_ready;
                rss[i] = self.update_rs(&copy).await?;
                return Ok(Some(i));
            }
            let rev = copy
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(ANNOTATION_REVISION))
                .cloned()
                .unwrap_or_default();
            if d.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(ANNOTATION_REVISION))
                != Some(&rev)
            {
                self.write_revision(d, &rev).await?;
            }
            let mut st = d.status.clone().unwrap_or_default();
            if progress_deadline(d).is_some() && get_condition(&st, "Progressing").is_none() {
                let msg = format!("Found new replica set \"{}\"", copy.name_any());
                set_condition(
                    &mut st,
                    new_condition("Progressing", "True", REASON_FOUND_NEW_RS, msg, now),
                );
                self.write_status(d, st).await?;
            }
            return Ok(Some(i));
        }
        if !create {
            return Ok(None);
        }
        let collision = d.status.as_ref().and_then(|s| s.collision_count);
        let hash = compute_hash(&template(d), collision);
        let mut tmpl = template(d);
        tmpl.metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(Default::default)
            .insert(LABEL_POD_TEMPLATE_HASH.into(), hash.clone());
        let mut selector = d
            .spec
            .as_ref()
            .map(|s| s.selector.clone())
            .unwrap_or_default();
        selector
            .match_labels
            .get_or_insert_with(Default::default)
            .insert(LABEL_POD_TEMPLATE_HASH.into(), hash.clone());
        let dname = d.name_any();
        let ns = d.metadata.namespace.clone().unwrap_or_default();
        let mut new_rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(format!("{dname}-{hash}")),
                namespace: Some(ns.clone()),
                owner_references: Some(vec![podutil::controller_ref(
                    "apps/v1",
                    "Deployment",
                    &dname,
                    d.metadata.uid.as_deref().unwrap_or_default(),
                )]),
                labels: tmpl.metadata.as_ref().and_then(|m| m.labels.clone()),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: d.spec.as_ref().and_then(|s| s.min_ready_seconds),
                selector,
                template: Some(tmpl),
            }),
            status: None,
        };
        let count = {
            let mut all: Vec<&ReplicaSet> = old_idx.iter().map(|i| &rss[*i]).collect();
            all.push(&new_rs);
            new_rs_new_replicas(d, &all, &new_rs)
        };
        new_rs.spec.as_mut().unwrap().replicas = Some(count);
        set_new_rs_annotations(d, &mut new_rs, &new_revision, false);
        let api: Api<ReplicaSet> = Api::namespaced(self.shared.client.clone(), &ns);
        self.metrics.write();
        let (created, already) = match api.create(&PostParams::default(), &new_rs).await {
            Ok(c) => (c, false),
            Err(e) if is_conflict(&e) => {
                // Same name: ours (a slow cache) or a hash collision.
                let existing = api.get(&new_rs.name_any()).await?;
                let ours = podutil::controller_of(&existing.metadata)
                    .is_some_and(|r| Some(&r.uid) == d.metadata.uid.as_ref());
                let existing_template = existing
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.clone())
                    .unwrap_or_default();
                if ours && equal_ignore_hash(&template(d), &existing_template) {
                    (existing, true)
                } else {
                    let mut st = d.status.clone().unwrap_or_default();
                    st.collision_count = Some(st.collision_count.unwrap_or(0) + 1);
                    self.write_status(d, st).await?;
                    anyhow::bail!(
                        "hash collision for ReplicaSet {:?}; retrying with collisionCount",
                        new_rs.name_any()
                    );
                }
            }
            Err(e) => {
                let msg = format!(
                    "Failed to create new replica set \"{}\": {}",
                    new_rs.name_any(),
                    crate::replicaset::error_message(&e)
                );
                if progress_deadline(d).is_some() {
                    let mut st = d.status.clone().unwrap_or_default();
                    set_condition(
                        &mut st,
                        new_condition(
                            "Progressing",
                            "False",
                            REASON_FAILED_RS_CREATE,
                            msg.clone(),
                            now,
                        ),
                    );
                    let _ = self.write_status(d, st).await;
                }
                self.recorder.warning(d, REASON_FAILED_RS_CREATE, msg);
                return Err(e.into());
            }
        };
        if !already && count > 0 {
            self.recorder.normal(
                d,
                "ScalingReplicaSet",
                format!("Scaled up replica set {} to {count}", created.name_any()),
            );
        }
        if d.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ANNOTATION_REVISION))
            != Some(&new_revision)
        {
            self.write_revision(d, &new_revision).await?;
        }
        if !already && progress_deadline(d).is_some() {
            let mut st = d.status.clone().unwrap_or_default();
            let msg = format!("Created new replica set \"{}\"", created.name_any());
            set_condition(
                &mut st,
                new_condition("Progressing", "True", REASON_NEW_RS_CREATED, msg, now),
            );
            self.write_status(d, st).await?;
        }
        rss.push(created);
        Ok(Some(rss.len() - 1))
    }

    /// Scales a set, updating its replica annotations; records `ScalingReplicaSet`.
    async fn scale_rs(
        &self,
        d: &Deployment,
        rss: &mut [ReplicaSet],
        i: usize,
        to: i32,
        op: &str,
    ) -> anyhow::Result<bool> {
        let size_change = rs_replicas(&rss[i]) != to;
        let (want, max) = (replicas(d), replicas(d) + max_surge(d));
        if !size_change && !replicas_annotations_need_update(&rss[i], want, max) {
            return Ok(false);
        }
        let from = rs_replicas(&rss[i]);
        let mut copy = rss[i].clone();
        copy.spec.get_or_insert_with(Default::default).replicas = Some(to);
        set_replicas_annotations(&mut copy, want, max);
        rss[i] = self.update_rs(&copy).await?;
        if size_change {
            self.recorder.normal(
                d,
                "ScalingReplicaSet",
                format!(
                    "Scaled {op} replica set {} to {to} from {from}",
                    copy.name_any()
                ),
            );
        }
        Ok(size_change)
    }

    async fn scale_and_record(
        &self,
        d: &Deployment,
        rss: &mut [ReplicaSet],
        i: usize,
        to: i32,
    ) -> anyhow::Result<bool> {
        let from = rs_replicas(&rss[i]);
        if from == to {
            return Ok(false);
        }
        self.scale_rs(d, rss, i, to, if from < to { "up" } else { "down" })
            .await
    }

    async fn is_scaling_event(
        &self,
        d: &mut Deployment,
        rss: &mut Vec<ReplicaSet>,
    ) -> anyhow::Result<bool> {
        let new_idx = self.sync_revision(d, rss, false).await?;
        let want = replicas(d);
        Ok(new_idx
            .into_iter()
            .chain(olds(rss, new_idx))
            .filter(|i| rs_replicas(&rss[*i]) > 0)
            .any(|i| desired_replicas_annotation(&rss[i]).is_some_and(|v| v != want)))
    }

    /// Scaling and pausing (kube's sync): proportional scaling, no rollout progress.
    async fn sync_scale(
        &self,
        d: &mut Deployment,
        rss: &mut Vec<ReplicaSet>,
        paused: bool,
    ) -> ReconcileResult {
        let new_idx = self.sync_revision(d, rss, false).await?;
        let old_idx = olds(rss, new_idx);
        if let Some(i) = find_active_or_latest(rss, new_idx, &old_idx) {
            if rs_replicas(&rss[i]) != replicas(d) {
                self.scale_and_record(d, rss, i, replicas(d)).await?;
            }
        } else if is_saturated(d, new_idx.map(|i| &rss[i])) {
            for i in old_idx
                .iter()
                .copied()
                .filter(|i| rs_replicas(&rss[*i]) > 0)
                .collect::<Vec<_>>()
            {
                self.scale_and_record(d, rss, i, 0).await?;
            }
        } else if is_rolling(d) {
            let active: Vec<usize> = new_idx
                .into_iter()
                .chain(old_idx.iter().copied())
                .filter(|i| rs_replicas(&rss[*i]) > 0)
                .collect();
            for (i, size, op) in proportional_plan(d, rss, &active) {
                self.scale_rs(d, rss, i, size, op).await?;
            }
        }
        if paused {
            self.cleanup(d, rss, &old_idx).await?;
        }
        self.sync_status(d, rss, new_idx).await
    }

    async fn rollout_rolling(
        &self,
        d: &mut Deployment,
        rss: &mut Vec<ReplicaSet>,
    ) -> ReconcileResult {
        let new_idx = self.sync_revision(d, rss, true).await?;
        let Some(n) = new_idx else {
            anyhow::bail!("new ReplicaSet missing after creation");
        };
        // Scale up the new set, if we can.
        let want = replicas(d);
        let scaled_up = if rs_replicas(&rss[n]) > want {
            self.scale_and_record(d, rss, n, want).await?
        } else if rs_replicas(&rss[n]) < want {
            let count = {
                let all: Vec<&ReplicaSet> = rss.iter().collect();
                new_rs_new_replicas(d, &all, &rss[n])
            };
            self.scale_and_record(d, rss, n, count).await?
        } else {
            false
        };
        if scaled_up {
            return self.sync_rollout_status(d, rss, new_idx).await;
        }
        // Scale down old sets, if we can.
        let active_olds: Vec<usize> = olds(rss, new_idx)
            .into_iter()
            .filter(|i| rs_replicas(&rss[*i]) > 0)
            .collect();
        let mut scaled_down = false;
        for (i, size) in old_scale_down_plan(d, rss, new_idx, &active_olds) {
            scaled_down |= self.scale_and_record(d, rss, i, size).await?;
        }
        if scaled_down {
            return self.sync_rollout_status(d, rss, new_idx).await;
        }
        if deployment_complete(d, &d.status.clone().unwrap_or_default()) {
            self.cleanup(d, rss, &olds(rss, new_idx)).await?;
        }
        self.sync_rollout_status(d, rss, new_idx).await
    }

    async fn rollout_recreate(
        &self,
        d: &mut Deployment,
        rss: &mut Vec<ReplicaSet>,
    ) -> ReconcileResult {
        let mut new_idx = self.sync_revision(d, rss, false).await?;
        let mut scaled_down = false;
        let active: Vec<usize> = olds(rss, new_idx)
            .into_iter()
            .filter(|i| rs_replicas(&rss[*i]) > 0)
            .collect();
        for i in active {
            scaled_down |= self.scale_and_record(d, rss, i, 0).await?;
        }
        if scaled_down || self.old_pods_running(rss, new_idx) {
            return self.sync_rollout_status(d, rss, new_idx).await;
        }
        if new_idx.is_none() {
            new_idx = self.sync_revision(d, rss, true).await?;
        }
        if let Some(n) = new_idx {
            let want = replicas(d);
            self.scale_and_record(d, rss, n, want).await?;
        }
        if deployment_complete(d, &d.status.clone().unwrap_or_default()) {
            self.cleanup(d, rss, &olds(rss, new_idx)).await?;
        }
        self.sync_rollout_status(d, rss, new_idx).await
    }

    /// Whether pods of old sets still exist (Recreate waits for them to be gone).
    fn old_pods_running(&self, rss: &[ReplicaSet], new_idx: Option<usize>) -> bool {
        let old_idx = olds(rss, new_idx);
        if old_idx
            .iter()
            .map(|i| rs_status_replicas(&rss[*i]))
            .sum::<i32>()
            > 0
        {
            return true;
        }
        old_idx.iter().any(|i| {
            let uid = rss[*i].metadata.uid.clone().unwrap_or_default();
            self.shared
                .pods
                .by_index(IDX_CONTROLLER, &uid)
                .iter()
                .any(|p: &Arc<Pod>| !podutil::is_terminal(p))
        })
    }

    /// Deletes the oldest fully scaled-down sets beyond revisionHistoryLimit.
    async fn cleanup(
        &self,
        d: &Deployment,
        rss: &[ReplicaSet],
        old_idx: &[usize],
    ) -> anyhow::Result<()> {
        let Some(limit) = d
            .spec
            .as_ref()
            .and_then(|s| s.revision_history_limit)
            .filter(|l| *l != i32::MAX)
        else {
            return Ok(());
        };
        let mut cleanable: Vec<&ReplicaSet> = old_idx
            .iter()
            .map(|i| &rss[*i])
            .filter(|r| r.metadata.deletion_timestamp.is_none())
            .collect();
        let diff = cleanable.len() as i32 - limit;
        if diff <= 0 {
            return Ok(());
        }
        cleanable.sort_by(|a, b| {
            revision(a)
                .cmp(&revision(b))
                .then_with(|| by_creation(a, b))
        });
        for rs in cleanable.into_iter().take(diff as usize) {
            let observed = rs
                .status
                .as_ref()
                .and_then(|s| s.observed_generation)
                .unwrap_or(0);
            if rs_status_replicas(rs) != 0
                || rs_replicas(rs) != 0
                || rs.metadata.generation.unwrap_or(0) > observed
            {
                continue;
            }
            let api: Api<ReplicaSet> = Api::namespaced(
                self.shared.client.clone(),
                rs.metadata.namespace.as_deref().unwrap_or_default(),
            );
            self.metrics.write();
            match api.delete(&rs.name_any(), &DeleteParams::default()).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    async fn check_paused_conditions(&self, d: &mut Deployment) -> anyhow::Result<()> {
        let mut st = d.status.clone().unwrap_or_default();
        let cond = get_condition(&st, "Progressing").cloned();
        if cond.as_ref().and_then(|c| c.reason.as_deref()) == Some(REASON_TIMED_OUT) {
            return Ok(());
        }
        let paused_cond = cond.as_ref().and_then(|c| c.reason.as_deref()) == Some(REASON_PAUSED);
        let paused = d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
        let now = podutil::now_seconds();
        if paused && !paused_cond {
            set_condition(
                &mut st,
                new_condition(
                    "Progressing",
                    "Unknown",
                    REASON_PAUSED,
                    "Deployment is paused".into(),
                    now,
                ),
            );
        } else if !paused && paused_cond {
            set_condition(
                &mut st,
                new_condition(
                    "Progressing",
                    "Unknown",
                    REASON_RESUMED,
                    "Deployment is resumed".into(),
                    now,
                ),
            );
        } else {
            return Ok(());
        }
        self.write_status(d, st).await
    }

    /// Status without progress estimation (scaling, paused, deleting).
    async fn sync_status(
        &self,
        d: &mut Deployment,
        rss: &[ReplicaSet],
        new_idx: Option<usize>,
    ) -> ReconcileResult {
        let all: Vec<&ReplicaSet> = rss.iter().collect();
        let st = calculate_status(&all, new_idx.map(|i| &rss[i]), d, podutil::now_seconds());
        if Some(&st) != d.status.as_ref() {
            self.write_status(d, st).await?;
        }
        Ok(None)
    }

    async fn sync_rollout_status(
        &self,
        d: &mut Deployment,
        rss: &[ReplicaSet],
        new_idx: Option<usize>,
    ) -> ReconcileResult {
        let now = podutil::now_seconds();
        let all: Vec<&ReplicaSet> = rss.iter().collect();
        let new_rs = new_idx.map(|i| &rss[i]);
        let mut st = rollout_status(&all, new_rs, d, now);
        // ReplicaFailure of the new set (else of any set) is mirrored on the Deployment.
        let failure = new_rs
            .into_iter()
            .chain(rss.iter())
            .flat_map(|r| r.status.iter().flat_map(|s| s.conditions.iter().flatten()))
            .find(|c| c.type_ == "ReplicaFailure")
            .cloned();
        match failure {
            Some(c) => set_condition(
                &mut st,
                k8s_openapi::api::apps::v1::DeploymentCondition {
                    type_: c.type_,
                    status: c.status,
                    reason: c.reason,
                    message: c.message,
                    last_update_time: c.last_transition_time.clone(),
                    last_transition_time: c.last_transition_time,
                },
            ),
            None => remove_condition(&mut st, "ReplicaFailure"),
        }
        if Some(&st) == d.status.as_ref() {
            return Ok(requeue_after(d, &st, now));
        }
        self.write_status(d, st).await?;
        Ok(None)
    }
}
