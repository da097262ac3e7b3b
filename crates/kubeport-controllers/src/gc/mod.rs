//! The garbage collector (`garbagecollector`): watches the metadata of every deletable
//! resource, keeps the owner graph, and cascades deletions — Background (dependents of a
//! vanished owner are deleted), Foreground (an owner with the `foregroundDeletion` finalizer
//! waits until its blocking dependents are gone, then loses the finalizer) and Orphan
//! (dependents lose their reference, then the owner loses the `orphan` finalizer).

pub mod graph;

use crate::metrics::ControllerMetrics;
use crate::queue::WorkQueue;
use crate::shared::{is_not_found, Shared};
use futures::StreamExt;
use graph::{
    decide, Decision, Graph, GraphNode, OwnerState, Work, FINALIZER_FOREGROUND, FINALIZER_ORPHAN,
};
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions, PropagationPolicy};
use kube::core::{ApiResource, DynamicObject, PartialObjectMeta};
use kube::discovery::{verbs, Discovery, Scope};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const NAME: &str = "garbagecollector";
/// Resources the collector never watches (kube ignores events).
const IGNORED: &[(&str, &str)] = &[("", "events"), ("events.k8s.io", "events")];

/// A watched resource.
#[derive(Clone)]
struct Watched {
    resource: ApiResource,
    namespaced: bool,
}

pub struct GarbageCollector {
    client: Client,
    graph: Mutex<Graph>,
    queue: Arc<WorkQueue<Work>>,
    /// (apiVersion, kind) -> resource, for looking owners up.
    kinds: Mutex<HashMap<(String, String), Watched>>,
    metrics: Arc<ControllerMetrics>,
}

impl GarbageCollector {
    pub fn new(shared: &Shared) -> Arc<Self> {
        Arc::new(GarbageCollector {
            client: shared.client.clone(),
            graph: Mutex::new(Graph::default()),
            queue: WorkQueue::new(),
            kinds: Mutex::new(HashMap::new()),
            metrics: shared.metrics.controller(NAME),
        })
    }

    pub fn queue(&self) -> &Arc<WorkQueue<Work>> {
        &self.queue
    }

    /// Objects in the graph.
    pub fn graph_len(&self) -> usize {
        self.graph.lock().unwrap().len()
    }

    /// Discovers resources, starts the metadata watches, waits for their first lists, then
    /// starts `workers` workers. Runs until aborted.
    pub async fn run(self: Arc<Self>, workers: usize) -> anyhow::Result<()> {
        let watched = loop {
            match self.discover().await {
                Ok(w) => break w,
                Err(e) => {
                    tracing::warn!("{NAME}: discovery failed, retrying: {e:#}");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        };
        let (synced_tx, mut synced_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let mut tasks = Vec::new();
        for w in &watched {
            tasks.push(tokio::spawn(
                self.clone().watch(w.clone(), synced_tx.clone()),
            ));
        }
        for _ in 0..watched.len() {
            synced_rx.recv().await;
        }
        // Everything that has owners gets one look now that the graph is complete.
        let initial = self.graph.lock().unwrap().all_with_owners();
        for w in initial {
            self.queue.add(w);
        }
        let me = self.clone();
        let handles: Vec<_> = (0..workers.max(1))
            .map(|_| {
                let me = me.clone();
                tokio::spawn(async move {
                    while let Some(work) = me.queue.get().await {
                        let start = std::time::Instant::now();
                        let res = me.process(&work).await;
                        me.metrics.record_reconcile(start.elapsed(), res.is_err());
                        match res {
                            Ok(()) => me.queue.forget(&work),
                            Err(e) => {
                                tracing::debug!("{NAME}: {work:?} failed, retrying: {e:#}");
                                me.queue.add_rate_limited(work.clone());
                            }
                        }
                        me.queue.done(&work);
                    }
                })
            })
            .collect();
        futures::future::join_all(handles).await;
        for t in tasks {
            t.abort();
        }
        Ok(())
    }

    async fn discover(&self) -> anyhow::Result<Vec<Watched>> {
        let discovery = Discovery::new(self.client.clone()).run().await?;
        let mut out = Vec::new();
        let mut kinds = HashMap::new();
        for group in discovery.groups() {
            for (ar, caps) in group.recommended_resources() {
                if IGNORED.contains(&(ar.group.as_str(), ar.plural.as_str())) {
                    continue;
                }
                let w = Watched {
                    namespaced: caps.scope == Scope::Namespaced,
                    resource: ar.clone(),
                };
                kinds.insert((ar.api_version.clone(), ar.kind.clone()), w.clone());
                if [verbs::LIST, verbs::WATCH, verbs::DELETE]
                    .iter()
                    .all(|v| caps.supports_operation(v))
                {
                    out.push(w);
                }
            }
        }
        *self.kinds.lock().unwrap() = kinds;
        Ok(out)
    }

    fn node_of(w: &Watched, m: &PartialObjectMeta<DynamicObject>) -> GraphNode {
        GraphNode {
            api_version: w.resource.api_version.clone(),
            kind: w.resource.kind.clone(),
            namespace: m.metadata.namespace.clone(),
            name: m.name_any(),
            uid: m.metadata.uid.clone().unwrap_or_default(),
            resource_version: m.metadata.resource_version.clone().unwrap_or_default(),
            owners: m.metadata.owner_references.clone().unwrap_or_default(),
            deleting: m.metadata.deletion_timestamp.is_some(),
            finalizers: m.metadata.finalizers.clone().unwrap_or_default(),
        }
    }

    fn enqueue(&self, work: BTreeSet<Work>) {
        for w in work {
            self.queue.add(w);
        }
    }

    /// Feeds one resource's metadata watch into the graph.
    async fn watch(self: Arc<Self>, w: Watched, synced: tokio::sync::mpsc::UnboundedSender<()>) {
        let api: Api<PartialObjectMeta<DynamicObject>> =
            Api::all_with(self.client.clone(), &w.resource);
        let mut stream = watcher::watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        // UIDs of this resource in the graph, to find what vanished across a relist.
        let mut mine: HashSet<String> = HashSet::new();
        let mut relisted: Option<HashSet<String>> = None;
        let mut first = true;
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(Event::Apply(m)) | Ok(Event::InitApply(m)) => {
                    let n = Self::node_of(&w, &m);
                    if n.uid.is_empty() {
                        continue;
                    }
                    if let Some(r) = relisted.as_mut() {
                        r.insert(n.uid.clone());
                    }
                    mine.insert(n.uid.clone());
                    let work = self.graph.lock().unwrap().upsert(n);
                    if !first {
                        self.enqueue(work);
                    }
                }
                Ok(Event::Delete(m)) => {
                    let uid = m.metadata.uid.clone().unwrap_or_default();
                    mine.remove(&uid);
                    let work = self.graph.lock().unwrap().remove(&uid);
                    self.enqueue(work);
                }
                Ok(Event::Init) => relisted = Some(HashSet::new()),
                Ok(Event::InitDone) => {
                    if let Some(seen) = relisted.take() {
                        let gone: Vec<String> = mine.difference(&seen).cloned().collect();
                        for uid in gone {
                            mine.remove(&uid);
                            let work = self.graph.lock().unwrap().remove(&uid);
                            self.enqueue(work);
                        }
                    }
                    if first {
                        first = false;
                        let _ = synced.send(());
                    }
                }
                Err(e) => tracing::debug!("{NAME}: watch of {} failed: {e}", w.resource.plural),
            }
        }
    }

    fn api_for(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
    ) -> Option<(Api<DynamicObject>, bool)> {
        let kinds = self.kinds.lock().unwrap();
        let w = kinds.get(&(api_version.to_string(), kind.to_string()))?;
        let api = match (w.namespaced, namespace) {
            (true, Some(ns)) => Api::namespaced_with(self.client.clone(), ns, &w.resource),
            (true, None) => return None,
            (false, _) => Api::all_with(self.client.clone(), &w.resource),
        };
        Some((api, w.namespaced))
    }

    async fn process(&self, work: &Work) -> anyhow::Result<()> {
        match work {
            Work::AttemptToDelete(uid) => self.attempt_to_delete(uid).await,
            Work::Orphan(uid) => self.orphan_dependents(uid).await,
        }
    }

    async fn attempt_to_delete(&self, uid: &str) -> anyhow::Result<()> {
        let Some(node) = self.graph.lock().unwrap().get(uid).cloned() else {
            return Ok(());
        };
        if node.deleting {
            if node.has_finalizer(FINALIZER_FOREGROUND) {
                return self.process_deleting_dependents(&node).await;
            }
            return Ok(());
        }
        if node.owners.is_empty() {
            return Ok(());
        }
        let mut states = Vec::new();
        for r in &node.owners {
            states.push((r.uid.clone(), self.owner_state(&node, r).await?));
        }
        let has_dependents = !self.graph.lock().unwrap().dependents(uid).is_empty();
        match decide(&node, has_dependents, &states) {
            Decision::Nothing => Ok(()),
            Decision::RemoveOwnerRefs(drop) => {
                let keep: Vec<_> = node
                    .owners
                    .iter()
                    .filter(|o| !drop.contains(&o.uid))
                    .cloned()
                    .collect();
                self.patch_meta(&node, json!({"ownerReferences": keep}))
                    .await
            }
            Decision::Delete(policy) => self.delete(&node, policy).await,
        }
    }

    /// Whether an owner exists, is gone, or is being deleted in the foreground. Owners in the
    /// graph are trusted; others are looked up in the API (they may just not be seen yet).
    async fn owner_state(
        &self,
        dependent: &GraphNode,
        r: &k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
    ) -> anyhow::Result<OwnerState> {
        if let Some(o) = self.graph.lock().unwrap().get(&r.uid) {
            return Ok(if o.deleting_dependents() {
                OwnerState::WaitingForDependents
            } else {
                OwnerState::Solid
            });
        }
        let Some((api, _)) = self.api_for(&r.api_version, &r.kind, dependent.namespace.as_deref())
        else {
            tracing::debug!(
                "{NAME}: cannot resolve owner kind {} {}",
                r.api_version,
                r.kind
            );
            return Ok(OwnerState::Solid);
        };
        Ok(match api.get_metadata_opt(&r.name).await? {
            None => OwnerState::Dangling,
            Some(m) if m.metadata.uid.as_deref() != Some(r.uid.as_str()) => OwnerState::Dangling,
            Some(m) => {
                let deleting = m.metadata.deletion_timestamp.is_some();
                let fg = m
                    .metadata
                    .finalizers
                    .iter()
                    .flatten()
                    .any(|f| f == FINALIZER_FOREGROUND);
                if deleting && fg {
                    OwnerState::WaitingForDependents
                } else {
                    OwnerState::Solid
                }
            }
        })
    }

    /// A foreground-deleting owner: delete its blocking dependents; when none is left,
    /// remove the `foregroundDeletion` finalizer (the API server then deletes it).
    async fn process_deleting_dependents(&self, node: &GraphNode) -> anyhow::Result<()> {
        let blocking: Vec<GraphNode> = self
            .graph
            .lock()
            .unwrap()
            .blocking_dependents(&node.uid)
            .into_iter()
            .cloned()
            .collect();
        if blocking.is_empty() {
            let rest: Vec<&String> = node
                .finalizers
                .iter()
                .filter(|f| *f != FINALIZER_FOREGROUND)
                .collect();
            return self.patch_meta(node, json!({"finalizers": if rest.is_empty() { serde_json::Value::Null } else { json!(rest) }})).await;
        }
        for d in blocking {
            if !d.deleting_dependents() {
                self.queue.add(Work::AttemptToDelete(d.uid.clone()));
            }
        }
        Ok(())
    }

    /// An orphan-deleting owner: drop references to it from its dependents, then remove the
    /// `orphan` finalizer.
    async fn orphan_dependents(&self, uid: &str) -> anyhow::Result<()> {
        let (owner, deps) = {
            let g = self.graph.lock().unwrap();
            let Some(owner) = g.get(uid).cloned() else {
                return Ok(());
            };
            (
                owner,
                g.dependents(uid).into_iter().cloned().collect::<Vec<_>>(),
            )
        };
        if !owner.deleting || !owner.has_finalizer(FINALIZER_ORPHAN) {
            return Ok(());
        }
        for d in deps {
            let keep: Vec<_> = d.owners.iter().filter(|o| o.uid != uid).cloned().collect();
            let refs = if keep.is_empty() {
                serde_json::Value::Null
            } else {
                json!(keep)
            };
            self.patch_meta(&d, json!({"ownerReferences": refs}))
                .await?;
        }
        let rest: Vec<&String> = owner
            .finalizers
            .iter()
            .filter(|f| *f != FINALIZER_ORPHAN)
            .collect();
        self.patch_meta(&owner, json!({"finalizers": if rest.is_empty() { serde_json::Value::Null } else { json!(rest) }}))
            .await
    }

    /// A metadata merge patch guarded by the resourceVersion the graph has seen.
    async fn patch_meta(
        &self,
        node: &GraphNode,
        mut meta: serde_json::Value,
    ) -> anyhow::Result<()> {
        let Some((api, _)) = self.api_for(&node.api_version, &node.kind, node.namespace.as_deref())
        else {
            return Ok(());
        };
        meta["resourceVersion"] = json!(node.resource_version);
        self.metrics.write();
        match api
            .patch_metadata(
                &node.name,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": meta})),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn delete(&self, node: &GraphNode, policy: &str) -> anyhow::Result<()> {
        let Some((api, _)) = self.api_for(&node.api_version, &node.kind, node.namespace.as_deref())
        else {
            return Ok(());
        };
        let dp = DeleteParams {
            propagation_policy: Some(match policy {
                "Foreground" => PropagationPolicy::Foreground,
                "Orphan" => PropagationPolicy::Orphan,
                _ => PropagationPolicy::Background,
            }),
            preconditions: Some(Preconditions {
                uid: Some(node.uid.clone()),
                resource_version: None,
            }),
            ..Default::default()
        };
        self.metrics.write();
        match api.delete(&node.name, &dp).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            // The precondition failed: a new object took the name; nothing to collect.
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
