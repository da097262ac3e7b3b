//! Pure ReplicaSet logic: pods from the template, which surplus pods go first, slow-start
//! batches, status, and the expectations that keep a controller from acting twice on a
//! change its cache has not shown yet.

use crate::labels;
use crate::podutil;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Pods created or deleted per sync at most (kube's burstReplicas).
pub const BURST_REPLICAS: usize = 500;
/// How long unmet expectations block a sync (kube's ExpectationsTimeout).
pub const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(5 * 60);
pub const POD_DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

/// `<name>-`: the generateName prefix for pods of a controller.
pub fn pods_prefix(controller_name: &str) -> String {
    format!("{controller_name}-")
}

/// A new pod from a ReplicaSet's template, owned by it.
pub fn pod_from_template(rs: &ReplicaSet) -> Pod {
    let name = rs.metadata.name.clone().unwrap_or_default();
    let template = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default();
    let tm = template.metadata.unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(pods_prefix(&name)),
            namespace: rs.metadata.namespace.clone(),
            labels: tm.labels,
            annotations: tm.annotations,
            finalizers: tm.finalizers,
            owner_references: Some(vec![podutil::controller_ref(
                "apps/v1",
                "ReplicaSet",
                &name,
                rs.metadata.uid.as_deref().unwrap_or_default(),
            )]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}

/// Batch sizes for creating `count` pods: 1, 2, 4, ... (kube's slowStartBatch); a failing
/// batch stops the rest.
pub fn slow_start_batches(count: usize, initial: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut remaining = count;
    let mut size = initial.max(1).min(remaining);
    while remaining > 0 {
        out.push(size);
        remaining -= size;
        size = (size * 2).min(remaining);
    }
    out
}

fn phase_ordinal(pod: &Pod) -> u8 {
    match podutil::phase(pod) {
        "Pending" => 0,
        "Unknown" => 1,
        "Running" => 2,
        _ => 3,
    }
}

fn deletion_cost(pod: &Pod) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(POD_DELETION_COST))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn max_restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map_or(0, |cs| {
            cs.iter().map(|c| c.restart_count).max().unwrap_or(0)
        })
}

/// log2 of the age in nanoseconds, bucketed (kube's LogarithmicScaleDown).
fn log_rank(t: Timestamp, now: Timestamp) -> i64 {
    let d = now.as_nanosecond() - t.as_nanosecond();
    if d <= 0 {
        -1
    } else {
        (d as f64).log2() as i64
    }
}

/// Orders pods "delete first" before "delete last" (kube's ActivePodsWithRanks): unscheduled,
/// then pending < unknown < running, not ready, lower deletion cost, more siblings on the same
/// node, more recently ready, more restarts, newer.
pub fn compare_for_deletion(
    a: &Pod,
    rank_a: usize,
    b: &Pod,
    rank_b: usize,
    now: Timestamp,
) -> Ordering {
    let assigned = |p: &Pod| !podutil::node_name(p).is_empty();
    let uid = |p: &Pod| p.metadata.uid.clone().unwrap_or_default();
    assigned(a)
        .cmp(&assigned(b))
        .then_with(|| phase_ordinal(a).cmp(&phase_ordinal(b)))
        .then_with(|| podutil::is_pod_ready(a).cmp(&podutil::is_pod_ready(b)))
        .then_with(|| deletion_cost(a).cmp(&deletion_cost(b)))
        .then_with(|| rank_b.cmp(&rank_a))
        .then_with(|| {
            if podutil::is_pod_ready(a) && podutil::is_pod_ready(b) {
                match (podutil::ready_since(a), podutil::ready_since(b)) {
                    (Some(ta), Some(tb)) if ta != tb => log_rank(ta, now)
                        .cmp(&log_rank(tb, now))
                        .then_with(|| uid(a).cmp(&uid(b))),
                    _ => Ordering::Equal,
                }
            } else {
                Ordering::Equal
            }
        })
        .then_with(|| max_restarts(b).cmp(&max_restarts(a)))
        .then_with(|| {
            let ca = a.metadata.creation_timestamp.as_ref().map(|t| t.0);
            let cb = b.metadata.creation_timestamp.as_ref().map(|t| t.0);
            match (ca, cb) {
                (Some(x), Some(y)) if x != y => log_rank(x, now)
                    .cmp(&log_rank(y, now))
                    .then_with(|| uid(a).cmp(&uid(b))),
                (None, Some(_)) => Ordering::Less,
                (Some(_), None) => Ordering::Greater,
                _ => Ordering::Equal,
            }
        })
}

/// The `count` pods to delete from `pods`; `related` are the active pods of all
/// ReplicaSets of the same owner (for the same-node rank).
pub fn pods_to_delete(
    pods: &[Arc<Pod>],
    related: &[Arc<Pod>],
    count: usize,
    now: Timestamp,
) -> Vec<Arc<Pod>> {
    if count >= pods.len() {
        return pods.to_vec();
    }
    let mut on_node: HashMap<&str, usize> = HashMap::new();
    for p in related {
        let n = podutil::node_name(p);
        if !n.is_empty() {
            *on_node.entry(n).or_default() += 1;
        }
    }
    let mut ranked: Vec<(usize, &Arc<Pod>)> = pods
        .iter()
        .map(|p| {
            let n = podutil::node_name(p);
            (
                if n.is_empty() {
                    0
                } else {
                    on_node.get(n).copied().unwrap_or(0)
                },
                p,
            )
        })
        .collect();
    ranked.sort_by(|(ra, a), (rb, b)| compare_for_deletion(a, *ra, b, *rb, now));
    ranked
        .into_iter()
        .take(count)
        .map(|(_, p)| p.clone())
        .collect()
}

/// The ReplicaSet status for its active pods; `failure` is the manage error as
/// (`FailedCreate`|`FailedDelete`, message).
pub fn calculate_status(
    rs: &ReplicaSet,
    pods: &[Arc<Pod>],
    failure: Option<(&str, String)>,
    now: Timestamp,
) -> ReplicaSetStatus {
    let spec = rs.spec.clone().unwrap_or_default();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let template_labels = spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let mut fully_labeled = 0;
    let mut ready = 0;
    let mut available = 0;
    for p in pods {
        if labels::map_matches(
            &template_labels,
            p.metadata.labels.as_ref().unwrap_or(&Default::default()),
        ) {
            fully_labeled += 1;
        }
        if podutil::is_pod_ready(p) {
            ready += 1;
            if podutil::is_pod_available(p, min_ready, now) {
                available += 1;
            }
        }
    }
    let old = rs.status.clone().unwrap_or_default();
    let mut conditions: Vec<ReplicaSetCondition> = old.conditions.clone().unwrap_or_default();
    let has_failure = conditions.iter().any(|c| c.type_ == "ReplicaFailure");
    match failure {
        Some((reason, message)) if !has_failure => conditions.push(ReplicaSetCondition {
            type_: "ReplicaFailure".into(),
            status: "True".into(),
            reason: Some(reason.into()),
            message: Some(message),
            last_transition_time: Some(Time(now)),
        }),
        None if has_failure => conditions.retain(|c| c.type_ != "ReplicaFailure"),
        _ => {}
    }
    ReplicaSetStatus {
        replicas: pods.len() as i32,
        fully_labeled_replicas: Some(fully_labeled),
        ready_replicas: Some(ready),
        available_replicas: Some(available),
        observed_generation: rs.metadata.generation,
        conditions: (!conditions.is_empty()).then_some(conditions),
        terminating_replicas: old.terminating_replicas,
    }
}

/// Whether two statuses differ, reading absent counters as 0 (as the API omits zeros).
pub fn status_differs(a: &ReplicaSetStatus, b: &ReplicaSetStatus) -> bool {
    let z = |v: Option<i32>| v.unwrap_or(0);
    a.replicas != b.replicas
        || z(a.fully_labeled_replicas) != z(b.fully_labeled_replicas)
        || z(a.ready_replicas) != z(b.ready_replicas)
        || z(a.available_replicas) != z(b.available_replicas)
        || a.observed_generation != b.observed_generation
        || a.conditions.clone().unwrap_or_default() != b.conditions.clone().unwrap_or_default()
}

#[derive(Debug)]
struct Expectation {
    adds: i64,
    deletes: HashSet<String>,
    set_at: Instant,
}

/// What a controller expects to observe after its own creates and deletes (kube's
/// UIDTrackingControllerExpectations, tracking deletes by pod key).
#[derive(Debug, Default)]
pub struct Expectations {
    map: HashMap<String, Expectation>,
}

impl Expectations {
    /// True when nothing is pending, or what was pending has timed out.
    pub fn satisfied(&self, key: &str) -> bool {
        match self.map.get(key) {
            None => true,
            Some(e) => {
                (e.adds <= 0 && e.deletes.is_empty()) || e.set_at.elapsed() > EXPECTATIONS_TIMEOUT
            }
        }
    }

    pub fn expect_creations(&mut self, key: &str, n: usize) {
        self.map.insert(
            key.to_string(),
            Expectation {
                adds: n as i64,
                deletes: HashSet::new(),
                set_at: Instant::now(),
            },
        );
    }

    pub fn expect_deletions(&mut self, key: &str, pods: impl IntoIterator<Item = String>) {
        self.map.insert(
            key.to_string(),
            Expectation {
                adds: 0,
                deletes: pods.into_iter().collect(),
                set_at: Instant::now(),
            },
        );
    }

    pub fn creation_observed(&mut self, key: &str) {
        if let Some(e) = self.map.get_mut(key) {
            e.adds -= 1;
        }
    }

    pub fn deletion_observed(&mut self, key: &str, pod: &str) {
        if let Some(e) = self.map.get_mut(key) {
            e.deletes.remove(pod);
        }
    }

    pub fn forget(&mut self, key: &str) {
        self.map.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSetSpec;
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus, PodTemplateSpec};

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    fn pod(name: &str, node: &str, phase: &str, ready: bool, created: i64) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                uid: Some(format!("uid-{name}")),
                creation_timestamp: Some(Time(ts(created))),
                labels: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: (!node.is_empty()).then(|| node.to_string()),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    last_transition_time: Some(Time(ts(created + 1))),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        })
    }

    fn names(pods: &[Arc<Pod>]) -> Vec<String> {
        pods.iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect()
    }

    #[test]
    fn surplus_prefers_unscheduled_then_not_ready_then_newest() {
        let now = ts(100_000);
        let pods = vec![
            pod("old-ready", "n1", "Running", true, 1_000),
            pod("new-ready", "n2", "Running", true, 99_000),
            pod("not-ready", "n3", "Running", false, 1_000),
            pod("unscheduled", "", "Pending", false, 1_000),
            pod("pending", "n4", "Pending", false, 1_000),
        ];
        let order = pods_to_delete(&pods, &pods, 4, now);
        assert_eq!(
            names(&order),
            vec!["unscheduled", "pending", "not-ready", "new-ready"]
        );
    }

    #[test]
    fn doubled_up_nodes_lose_pods_first() {
        let now = ts(100_000);
        let pods = vec![
            pod("a", "n1", "Running", true, 1_000),
            pod("b", "n1", "Running", true, 1_000),
            pod("c", "n2", "Running", true, 1_000),
        ];
        let order = pods_to_delete(&pods, &pods, 1, now);
        assert_eq!(podutil::node_name(&order[0]), "n1");
    }

    #[test]
    fn batches_grow_exponentially() {
        assert_eq!(slow_start_batches(6, 1), vec![1, 2, 3]);
        assert_eq!(slow_start_batches(10, 1), vec![1, 2, 4, 3]);
        assert_eq!(slow_start_batches(0, 1), Vec::<usize>::new());
    }

    fn rs() -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some("nginx-replicaset".into()),
                namespace: Some("dev".into()),
                uid: Some("rs-uid".into()),
                generation: Some(3),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(3),
                min_ready_seconds: Some(10),
                template: Some(PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some([("app".to_string(), "web".to_string())].into()),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec::default()),
                }),
                ..Default::default()
            }),
            status: None,
        }
    }

    #[test]
    fn template_pods_are_owned_and_named_by_prefix() {
        let p = pod_from_template(&rs());
        assert_eq!(
            p.metadata.generate_name.as_deref(),
            Some("nginx-replicaset-")
        );
        assert_eq!(p.metadata.labels.unwrap()["app"], "web");
        let o = &p.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (o.kind.as_str(), o.uid.as_str(), o.controller),
            ("ReplicaSet", "rs-uid", Some(true))
        );
    }

    #[test]
    fn status_counts_ready_and_available_after_min_ready_seconds() {
        let now = ts(10_000);
        let pods = vec![
            pod("a", "n1", "Running", true, 1_000),
            pod("b", "n1", "Running", true, 9_995),
            pod("c", "n1", "Running", false, 1_000),
        ];
        let st = calculate_status(&rs(), &pods, None, now);
        assert_eq!(st.replicas, 3);
        assert_eq!(st.fully_labeled_replicas, Some(3));
        assert_eq!(st.ready_replicas, Some(2));
        assert_eq!(st.available_replicas, Some(1));
        assert_eq!(st.observed_generation, Some(3));
        assert!(st.conditions.is_none());
        let failed = calculate_status(&rs(), &pods, Some(("FailedCreate", "quota".into())), now);
        let c = &failed.conditions.unwrap()[0];
        assert_eq!(
            (c.type_.as_str(), c.reason.as_deref()),
            ("ReplicaFailure", Some("FailedCreate"))
        );
    }

    #[test]
    fn expectations_block_until_observed() {
        let mut e = Expectations::default();
        assert!(e.satisfied("dev/rs"));
        e.expect_creations("dev/rs", 2);
        assert!(!e.satisfied("dev/rs"));
        e.creation_observed("dev/rs");
        e.creation_observed("dev/rs");
        assert!(e.satisfied("dev/rs"));
        e.expect_deletions("dev/rs", ["dev/a".to_string()]);
        assert!(!e.satisfied("dev/rs"));
        e.deletion_observed("dev/rs", "dev/a");
        assert!(e.satisfied("dev/rs"));
    }
}
