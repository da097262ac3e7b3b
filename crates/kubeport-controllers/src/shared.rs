//! The informers controllers share (one watch per resource, like client-go's shared informer
//! factory), with the indexes their lookups need, and the worker loop that drives a queue.

use crate::informer::{label_index_value, label_index_values, Informer, Key};
use crate::labels::{self, Labels};
use crate::metrics::{ControllerMetrics, Metrics};
use crate::podutil;
use crate::queue::WorkQueue;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const IDX_NAMESPACE: &str = "namespace";
pub const IDX_LABEL: &str = "label";
pub const IDX_CONTROLLER: &str = "controller";
pub const IDX_NODE: &str = "node";
pub const IDX_SELECTOR: &str = "selector";
pub const IDX_SERVICE: &str = "service";

/// Which resources an enabled controller needs watched.
#[derive(Clone, Copy, Debug, Default)]
pub struct Needs {
    pub pods: bool,
    pub services: bool,
    pub endpoint_slices: bool,
    pub endpoints: bool,
    pub nodes: bool,
    pub replica_sets: bool,
    pub deployments: bool,
}

/// Shared informers and client.
pub struct Shared {
    pub client: Client,
    pub metrics: Metrics,
    pub pods: Informer<Pod>,
    pub services: Informer<Service>,
    pub endpoint_slices: Informer<EndpointSlice>,
    pub endpoints: Informer<Endpoints>,
    pub nodes: Informer<Node>,
    pub replica_sets: Informer<ReplicaSet>,
    pub deployments: Informer<Deployment>,
}

fn ns_of<K: Resource>(o: &K) -> String {
    o.meta().namespace.clone().unwrap_or_default()
}

fn controller_uid<K: Resource>(o: &K) -> Vec<String> {
    podutil::controller_of(o.meta())
        .map(|r| vec![r.uid.clone()])
        .unwrap_or_default()
}

impl Shared {
    pub fn new(client: Client, metrics: Metrics) -> Arc<Self> {
        let pods = Informer::<Pod>::builder()
            .index(IDX_NAMESPACE, |p: &Pod| vec![ns_of(p)])
            .index(IDX_LABEL, |p: &Pod| {
                label_index_values(p.metadata.namespace.as_deref(), p.labels())
            })
            .index(IDX_CONTROLLER, controller_uid)
            .index(IDX_NODE, |p: &Pod| {
                let n = podutil::node_name(p);
                if n.is_empty() {
                    Vec::new()
                } else {
                    vec![n.to_string()]
                }
            })
            .build();
        let services = Informer::<Service>::builder()
            .index(IDX_SELECTOR, |s: &Service| {
                let ns = s.metadata.namespace.as_deref().unwrap_or_default();
                match s.spec.as_ref().and_then(|sp| sp.selector.as_ref()) {
                    None => Vec::new(),
                    Some(sel) if sel.is_empty() => vec![format!("{ns}/*")],
                    Some(sel) => label_index_values(Some(ns), sel),
                }
            })
            .build();
        let endpoint_slices = Informer::<EndpointSlice>::builder()
            .index(IDX_SERVICE, |s: &EndpointSlice| {
                s.labels()
                    .get(crate::endpoints::LABEL_SERVICE_NAME)
                    .map(|svc| vec![format!("{}/{svc}", ns_of(s))])
                    .unwrap_or_default()
            })
            .build();
        let replica_sets = Informer::<ReplicaSet>::builder()
            .index(IDX_NAMESPACE, |r: &ReplicaSet| vec![ns_of(r)])
            .index(IDX_CONTROLLER, controller_uid)
            .build();
        let deployments = Informer::<Deployment>::builder()
            .index(IDX_NAMESPACE, |d: &Deployment| vec![ns_of(d)])
            .build();
        Arc::new(Shared {
            client,
            metrics,
            pods,
            services,
            endpoint_slices,
            endpoints: Informer::builder().build(),
            nodes: Informer::builder().build(),
            replica_sets,
            deployments,
        })
    }

    /// Starts the watches that `needs` asks for.
    pub fn start(&self, needs: Needs) -> Vec<tokio::task::JoinHandle<()>> {
        let c = &self.client;
        let cfg = watcher::Config::default;
        let mut tasks = Vec::new();
        if needs.pods {
            tasks.push(self.pods.run(Api::all(c.clone()), cfg()));
        }
        if needs.services {
            tasks.push(self.services.run(Api::all(c.clone()), cfg()));
        }
        if needs.endpoint_slices {
            tasks.push(self.endpoint_slices.run(Api::all(c.clone()), cfg()));
        }
        if needs.endpoints {
            tasks.push(self.endpoints.run(Api::all(c.clone()), cfg()));
        }
        if needs.nodes {
            tasks.push(self.nodes.run(Api::all(c.clone()), cfg()));
        }
        if needs.replica_sets {
            tasks.push(self.replica_sets.run(Api::all(c.clone()), cfg()));
        }
        if needs.deployments {
            tasks.push(self.deployments.run(Api::all(c.clone()), cfg()));
        }
        tasks
    }

    /// Waits until every informer in `needs` has its first full list.
    pub async fn wait_synced(&self, needs: Needs) {
        if needs.pods {
            self.pods.wait_synced().await;
        }
        if needs.services {
            self.services.wait_synced().await;
        }
        if needs.endpoint_slices {
            self.endpoint_slices.wait_synced().await;
        }
        if needs.endpoints {
            self.endpoints.wait_synced().await;
        }
        if needs.nodes {
            self.nodes.wait_synced().await;
        }
        if needs.replica_sets {
            self.replica_sets.wait_synced().await;
        }
        if needs.deployments {
            self.deployments.wait_synced().await;
        }
    }

    /// Pods in `ns` matching a Service's map selector.
    pub fn pods_for_map_selector(&self, ns: &str, sel: &Labels) -> Vec<Arc<Pod>> {
        let pairs: Vec<(String, String)> =
            sel.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        select(&self.pods, ns, &pairs, |p: &Pod| {
            labels::map_matches(sel, p.labels())
        })
    }

    /// Pods in `ns` matching a LabelSelector.
    pub fn pods_for_selector(&self, ns: &str, sel: &LabelSelector) -> Vec<Arc<Pod>> {
        select(&self.pods, ns, &labels::required_pairs(sel), |p: &Pod| {
            labels::selector_matches(sel, p.labels())
        })
    }

    /// Keys of Services whose selector selects a pod with these labels.
    pub fn services_selecting(&self, ns: &str, pod_labels: &Labels) -> BTreeSet<Key> {
        let mut out = BTreeSet::new();
        let mut candidates = self.services.by_index(IDX_SELECTOR, &format!("{ns}/*"));
        for (k, v) in pod_labels {
            candidates.extend(
                self.services
                    .by_index(IDX_SELECTOR, &label_index_value(ns, k, v)),
            );
        }
        for s in candidates {
            if let Some(sel) = s.spec.as_ref().and_then(|sp| sp.selector.as_ref()) {
                if labels::map_matches(sel, pod_labels) {
                    out.insert(crate::informer::key_of(s.as_ref()));
                }
            }
        }
        out
    }
}

/// Objects in `ns` that carry all `pairs` and pass `matches`, using the label index on the
/// most selective pair (or the namespace index when there is none).
pub fn select<K>(
    inf: &Informer<K>,
    ns: &str,
    pairs: &[(String, String)],
    matches: impl Fn(&K) -> bool,
) -> Vec<Arc<K>>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let candidates = match pairs
        .iter()
        .map(|(k, v)| label_index_value(ns, k, v))
        .min_by_key(|v| inf.index_count(IDX_LABEL, v))
    {
        Some(v) => inf.by_index(IDX_LABEL, &v),
        None => inf.by_index(IDX_NAMESPACE, ns),
    };
    candidates
        .into_iter()
        .filter(|o| o.meta().namespace.as_deref().unwrap_or_default() == ns && matches(o))
        .collect()
}

/// The API answered 404.
pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// The API answered 409 (conflict or already exists).
pub fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// What a reconcile asks for next.
pub type ReconcileResult = anyhow::Result<Option<Duration>>;

/// Runs `workers` tasks taking keys from `queue` and reconciling them: success forgets the
/// key's failures (and re-queues it after the returned delay), failure re-queues it with
/// backoff.
pub fn run_workers<F, Fut>(
    name: &'static str,
    queue: Arc<WorkQueue<Key>>,
    workers: usize,
    metrics: Arc<ControllerMetrics>,
    reconcile: F,
) -> Vec<tokio::task::JoinHandle<()>>
where
    F: Fn(Key) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ReconcileResult> + Send + 'static,
{
    (0..workers.max(1))
        .map(|_| {
            let queue = queue.clone();
            let metrics = metrics.clone();
            let reconcile = reconcile.clone();
            tokio::spawn(async move {
                while let Some(key) = queue.get().await {
                    let start = Instant::now();
                    let res = reconcile(key.clone()).await;
                    metrics.record_reconcile(start.elapsed(), res.is_err());
                    match res {
                        Ok(after) => {
                            queue.forget(&key);
                            if let Some(d) = after {
                                queue.add_after(key.clone(), d);
                            }
                        }
                        Err(e) => {
                            let n = queue.requeues(&key);
                            if n < 3 {
                                tracing::debug!("{name}: syncing {key:?} failed, retrying: {e:#}");
                            } else {
                                tracing::warn!(
                                    "{name}: syncing {key:?} failed ({n} retries): {e:#}"
                                );
                            }
                            queue.add_rate_limited(key.clone());
                        }
                    }
                    queue.done(&key);
                }
            })
        })
        .collect()
}

/// Tracks the resourceVersions of objects a controller wrote, so a reconcile can tell when
/// its cache has not caught up with its own writes yet (kube's EndpointSliceTracker /
/// stale endpoints tracker) and an informer event can be recognised as the echo of its own
/// write.
#[derive(Default)]
pub struct WriteTracker {
    /// owner key -> object name -> expectation
    map: std::sync::Mutex<HashMap<Key, HashMap<String, Expect>>>,
}

#[derive(Clone, Copy, Debug)]
enum Expectation {
    /// Cache must show this resourceVersion or newer.
    Written(u64),
    /// Cache must no longer hold the object.
    Deleted,
}

#[derive(Clone, Copy, Debug)]
struct Expect {
    what: Expectation,
    at: Instant,
}

/// How long an unmet expectation holds before it is dropped (e.g. someone else deleted
/// what was written).
const EXPECTATION_TTL: Duration = Duration::from_secs(30);

fn rv_number(rv: Option<&str>) -> Option<u64> {
    rv.and_then(|r| r.parse().ok())
}

impl WriteTracker {
    pub fn written(&self, owner: &str, name: &str, rv: Option<&str>) {
        if let Some(rv) = rv_number(rv) {
            self.map
                .lock()
                .unwrap()
                .entry(owner.to_string())
                .or_default()
                .insert(
                    name.to_string(),
                    Expect {
                        what: Expectation::Written(rv),
                        at: Instant::now(),
                    },
                );
        }
    }

    pub fn deleted(&self, owner: &str, name: &str) {
        self.map
            .lock()
            .unwrap()
            .entry(owner.to_string())
            .or_default()
            .insert(
                name.to_string(),
                Expect {
                    what: Expectation::Deleted,
                    at: Instant::now(),
                },
            );
    }

    pub fn forget_owner(&self, owner: &str) {
        self.map.lock().unwrap().remove(owner);
    }

    /// Whether the cached objects (name, resourceVersion) of `owner` lag behind our writes.
    /// Met expectations are cleared.
    pub fn is_stale(&self, owner: &str, cached: &HashMap<String, Option<u64>>) -> bool {
        let mut map = self.map.lock().unwrap();
        let Some(exp) = map.get_mut(owner) else {
            return false;
        };
        let mut stale = false;
        exp.retain(|name, e| {
            if e.at.elapsed() > EXPECTATION_TTL {
                return false;
            }
            let met = match (e.what, cached.get(name)) {
                (Expectation::Written(rv), Some(Some(have))) => *have >= rv,
                (Expectation::Written(_), _) => false,
                (Expectation::Deleted, present) => present.is_none(),
            };
            stale |= !met;
            !met
        });
        if exp.is_empty() {
            map.remove(owner);
        }
        stale
    }

    /// Whether an informer event for (name, resourceVersion; None = deleted) is the echo of
    /// our own write.
    pub fn is_own_write(&self, owner: &str, name: &str, rv: Option<&str>) -> bool {
        let map = self.map.lock().unwrap();
        let Some(e) = map.get(owner).and_then(|m| m.get(name)) else {
            return false;
        };
        match (e.what, rv) {
            (Expectation::Written(want), Some(rv)) => {
                rv_number(Some(rv)).is_some_and(|have| have <= want)
            }
            (Expectation::Deleted, None) => true,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracker_detects_a_cache_behind_its_writes() {
        let t = WriteTracker::default();
        t.written("dev/web", "web-abcde", Some("10"));
        t.deleted("dev/web", "web-old");
        let mut cached = HashMap::new();
        cached.insert("web-abcde".to_string(), Some(9));
        cached.insert("web-old".to_string(), Some(3));
        assert!(t.is_stale("dev/web", &cached));
        assert!(t.is_own_write("dev/web", "web-abcde", Some("10")));
        assert!(!t.is_own_write("dev/web", "web-abcde", Some("11")));
        assert!(t.is_own_write("dev/web", "web-old", None));
        cached.insert("web-abcde".to_string(), Some(10));
        cached.remove("web-old");
        assert!(!t.is_stale("dev/web", &cached));
        // Met expectations are gone.
        assert!(!t.is_own_write("dev/web", "web-abcde", Some("10")));
    }
}
