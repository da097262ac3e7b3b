//! Pure scheduling: which nodes can run a pod (kube-scheduler's filter plugins
//! NodeUnschedulable, TaintToleration, NodeAffinity and the pod-count part of
//! NodeResourcesFit, in that order), which of them to pick (fewest pods of the same owner,
//! then fewest pods), and kube-scheduler's FailedScheduling message.

use k8s_openapi::api::core::v1::{
    Node, NodeSelectorRequirement, NodeSelectorTerm, Pod, Taint, Toleration,
};
use std::collections::{BTreeMap, HashMap};

pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

/// What the scheduler knows about a node while placing one pod.
#[derive(Clone, Debug)]
pub struct Candidate<'a> {
    pub node: &'a Node,
    /// Non-terminal pods bound (or assumed bound) to the node.
    pub pods: usize,
    /// Of those, pods with the same controller as the pod being placed.
    pub same_owner: usize,
}

/// Why a node cannot run the pod; kube's message fragment is `reason()`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Unfit {
    Unschedulable,
    UntoleratedTaint { key: String, value: String },
    NodeAffinity,
    TooManyPods,
}

impl Unfit {
    pub fn reason(&self) -> String {
        match self {
            Unfit::Unschedulable => "node(s) were unschedulable".into(),
            Unfit::UntoleratedTaint { key, value } => {
                format!("node(s) had untolerated taint {{{key}: {value}}}")
            }
            Unfit::NodeAffinity => "node(s) didn't match Pod's node affinity/selector".into(),
            Unfit::TooManyPods => "Too many pods".into(),
        }
    }

    /// Whether evicting other pods could help (only for resources).
    fn preemption_reason(&self) -> &'static str {
        match self {
            Unfit::TooManyPods => "No preemption victims found for incoming pod",
            _ => "Preemption is not helpful for scheduling",
        }
    }
}

fn tolerations(pod: &Pod) -> &[Toleration] {
    pod.spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default()
}

/// Whether a toleration tolerates a taint (kube's ToleratesTaint).
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = t.effect.as_deref().filter(|e| !e.is_empty()) {
        if effect != taint.effect {
            return false;
        }
    }
    let key = t.key.as_deref().unwrap_or_default();
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => {
            !key.is_empty()
                && t.value.as_deref().unwrap_or_default()
                    == taint.value.as_deref().unwrap_or_default()
        }
        _ => false,
    }
}

fn condition_status<'a>(node: &'a Node, type_: &str) -> Option<&'a str> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.as_str())
}

/// The node's taints plus those the node lifecycle controller would add for a node whose
/// Ready condition is False (`not-ready`) or Unknown/missing (`unreachable`).
pub fn effective_taints(node: &Node) -> Vec<Taint> {
    let mut taints: Vec<Taint> = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let synthetic = match condition_status(node, "Ready") {
        Some("True") => None,
        Some("False") => Some(TAINT_NOT_READY),
        _ => Some(TAINT_UNREACHABLE),
    };
    if let Some(key) = synthetic {
        if !taints
            .iter()
            .any(|t| t.key == key && t.effect == "NoSchedule")
        {
            taints.push(Taint {
                key: key.into(),
                effect: "NoSchedule".into(),
                ..Default::default()
            });
        }
    }
    taints
}

fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), Some(bound)) = (
                value.and_then(|v| v.parse::<i64>().ok()),
                values.first().and_then(|b| b.parse::<i64>().ok()),
            ) else {
                return false;
            };
            if r.operator == "Gt" {
                v > bound
            } else {
                v < bound
            }
        }
        _ => false,
    }
}

fn term_matches(term: &NodeSelectorTerm, node: &Node) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    let labels = node.metadata.labels.clone().unwrap_or_default();
    exprs
        .iter()
        .all(|r| requirement_matches(r, labels.get(&r.key).map(String::as_str)))
        && fields.iter().all(|r| {
            let v = (r.key == "metadata.name")
                .then(|| node.metadata.name.as_deref().unwrap_or_default());
            requirement_matches(r, v)
        })
}

/// nodeSelector and required node affinity (kube's NodeAffinity filter).
pub fn matches_node_selector(pod: &Pod, node: &Node) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return true;
    };
    let labels = node.metadata.labels.clone().unwrap_or_default();
    if let Some(sel) = &spec.node_selector {
        if !sel.iter().all(|(k, v)| labels.get(k) == Some(v)) {
            return false;
        }
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    match required {
        Some(r) => r.node_selector_terms.iter().any(|t| term_matches(t, node)),
        None => true,
    }
}

fn allocatable_pods(node: &Node) -> Option<usize> {
    node.status
        .as_ref()?
        .allocatable
        .as_ref()?
        .get("pods")?
        .0
        .parse()
        .ok()
}

/// Runs the filters in kube-scheduler's order; the first failure is the node's reason.
pub fn filter(pod: &Pod, c: &Candidate) -> Result<(), Unfit> {
    let node = c.node;
    let tols = tolerations(pod);
    if node
        .spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false)
    {
        let t = Taint {
            key: TAINT_UNSCHEDULABLE.into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        };
        if !tols.iter().any(|tol| tolerates(tol, &t)) {
            return Err(Unfit::Unschedulable);
        }
    }
    for taint in effective_taints(node) {
        if taint.effect != "NoSchedule" && taint.effect != "NoExecute" {
            continue;
        }
        if !tols.iter().any(|tol| tolerates(tol, &taint)) {
            return Err(Unfit::UntoleratedTaint {
                key: taint.key.clone(),
                value: taint.value.clone().unwrap_or_default(),
            });
        }
    }
    if !matches_node_selector(pod, node) {
        return Err(Unfit::NodeAffinity);
    }
    if let Some(max) = allocatable_pods(node) {
        if c.pods + 1 > max {
            return Err(Unfit::TooManyPods);
        }
    }
    Ok(())
}

/// PreferNoSchedule taints the pod does not tolerate (scored, not filtered).
fn untolerated_soft_taints(pod: &Pod, node: &Node) -> usize {
    let tols = tolerations(pod);
    effective_taints(node)
        .iter()
        .filter(|t| t.effect == "PreferNoSchedule" && !tols.iter().any(|tol| tolerates(tol, t)))
        .count()
}

/// Why no node fits: per node the first failing filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FitError {
    pub num_nodes: usize,
    pub reasons: Vec<Unfit>,
}

impl std::fmt::Display for FitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.num_nodes == 0 {
            return write!(f, "no nodes available to schedule pods");
        }
        let histogram = |it: &mut dyn Iterator<Item = String>| {
            let mut counts: HashMap<String, usize> = HashMap::new();
            for r in it {
                *counts.entry(r).or_default() += 1;
            }
            let mut parts: Vec<String> = counts
                .into_iter()
                .map(|(r, n)| format!("{n} {r}"))
                .collect();
            parts.sort();
            parts.join(", ")
        };
        let filters = histogram(&mut self.reasons.iter().map(|r| r.reason()));
        let preemption = histogram(
            &mut self
                .reasons
                .iter()
                .map(|r| r.preemption_reason().to_string()),
        );
        write!(
            f,
            "0/{n} nodes are available: {filters}. preemption: 0/{n} nodes are available: {preemption}.",
            n = self.num_nodes
        )
    }
}

/// Picks the node for a pod: among fitting nodes, the fewest pods of the same owner (spreads
/// a ReplicaSet's pods), then fewest untolerated PreferNoSchedule taints, then fewest pods,
/// then name.
pub fn choose_node(pod: &Pod, candidates: &[Candidate]) -> Result<String, FitError> {
    let mut failures = Vec::new();
    // (same-owner pods, untolerated soft taints, pods, name): lowest wins.
    type Score = (usize, usize, usize, String);
    let mut best: Option<Score> = None;
    for c in candidates {
        match filter(pod, c) {
            Err(u) => failures.push(u),
            Ok(()) => {
                let name = c.node.metadata.name.clone().unwrap_or_default();
                let score = (
                    c.same_owner,
                    untolerated_soft_taints(pod, c.node),
                    c.pods,
                    name,
                );
                if best.as_ref().is_none_or(|s| score < *s) {
                    best = Some(score);
                }
            }
        }
    }
    match best {
        Some(score) => Ok(score.3),
        None => Err(FitError {
            num_nodes: candidates.len(),
            reasons: failures,
        }),
    }
}

/// Per-node counts for [`Candidate`]: all pods, and pods per controller UID.
#[derive(Default, Debug, Clone)]
pub struct NodeLoad {
    pub pods: usize,
    pub by_owner: BTreeMap<String, usize>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Affinity, NodeAffinity, NodeCondition, NodeSelector, NodeSpec, NodeStatus, PodSpec,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn node(name: &str, ready: &str, labels: &[(&str, &str)], taints: &[(&str, &str)]) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                taints: (!taints.is_empty()).then(|| {
                    taints
                        .iter()
                        .map(|(k, e)| Taint {
                            key: k.to_string(),
                            effect: e.to_string(),
                            ..Default::default()
                        })
                        .collect()
                }),
                ..Default::default()
            }),
            status: Some(NodeStatus {
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: ready.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    fn cand(n: &Node, pods: usize, same: usize) -> Candidate<'_> {
        Candidate {
            node: n,
            pods,
            same_owner: same,
        }
    }

    fn pod() -> Pod {
        Pod {
            spec: Some(PodSpec::default()),
            ..Default::default()
        }
    }

    #[test]
    fn six_pods_of_one_owner_spread_two_per_node() {
        let nodes = [
            node("service-demo-control-plane", "True", &[], &[]),
            node("service-demo-worker", "True", &[], &[]),
            node("service-demo-worker2", "True", &[], &[]),
        ];
        let mut placed: HashMap<String, usize> = HashMap::new();
        for _ in 0..6 {
            let cands: Vec<Candidate> = nodes
                .iter()
                .map(|n| {
                    let c = placed
                        .get(n.metadata.name.as_ref().unwrap())
                        .copied()
                        .unwrap_or(0);
                    cand(n, c, c)
                })
                .collect();
            let chosen = choose_node(&pod(), &cands).unwrap();
            *placed.entry(chosen).or_default() += 1;
        }
        assert!(placed.values().all(|n| *n == 2), "{placed:?}");
    }

    #[test]
    fn taints_selectors_and_readiness_filter_with_kube_messages() {
        let cp = node(
            "cp",
            "True",
            &[("node-role.kubernetes.io/control-plane", "")],
            &[("node-role.kubernetes.io/control-plane", "NoSchedule")],
        );
        let w1 = node("w1", "True", &[("disk", "hdd")], &[]);
        let w2 = node("w2", "False", &[("disk", "ssd")], &[]);
        let mut p = pod();
        p.spec.as_mut().unwrap().node_selector =
            Some([("disk".to_string(), "ssd".to_string())].into());
        let err =
            choose_node(&p, &[cand(&cp, 0, 0), cand(&w1, 0, 0), cand(&w2, 0, 0)]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, \
             1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, \
             1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }. \
             preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
        );
        // Tolerating the control-plane taint makes the control plane usable.
        let mut tol = pod();
        tol.spec.as_mut().unwrap().tolerations = Some(vec![Toleration {
            key: Some("node-role.kubernetes.io/control-plane".into()),
            operator: Some("Exists".into()),
            effect: Some("NoSchedule".into()),
            ..Default::default()
        }]);
        assert_eq!(
            choose_node(&tol, &[cand(&cp, 0, 0), cand(&w2, 0, 0)]).unwrap(),
            "cp"
        );
        assert_eq!(
            choose_node(&pod(), &[]).unwrap_err().to_string(),
            "no nodes available to schedule pods"
        );
    }

    #[test]
    fn cordoned_nodes_and_full_nodes_are_skipped() {
        let mut cordoned = node("c", "True", &[], &[]);
        cordoned.spec.as_mut().unwrap().unschedulable = Some(true);
        let mut full = node("f", "True", &[], &[]);
        full.status.as_mut().unwrap().allocatable =
            Some([("pods".to_string(), Quantity("2".into()))].into());
        let err = choose_node(&pod(), &[cand(&cordoned, 0, 0), cand(&full, 2, 0)]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "0/2 nodes are available: 1 Too many pods, 1 node(s) were unschedulable. \
             preemption: 0/2 nodes are available: 1 No preemption victims found for incoming pod, \
             1 Preemption is not helpful for scheduling."
        );
    }

    #[test]
    fn required_node_affinity_terms() {
        let n = node("w1", "True", &[("zone", "a"), ("gen", "5")], &[]);
        let mut p = pod();
        let term = |op: &str, key: &str, vals: &[&str]| NodeSelectorTerm {
            match_expressions: Some(vec![NodeSelectorRequirement {
                key: key.into(),
                operator: op.into(),
                values: Some(vals.iter().map(|s| s.to_string()).collect()),
            }]),
            match_fields: None,
        };
        let set = |p: &mut Pod, terms: Vec<NodeSelectorTerm>| {
            p.spec.as_mut().unwrap().affinity = Some(Affinity {
                node_affinity: Some(NodeAffinity {
                    required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                        node_selector_terms: terms,
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            });
        };
        set(
            &mut p,
            vec![term("In", "zone", &["b"]), term("Gt", "gen", &["4"])],
        );
        assert!(matches_node_selector(&p, &n));
        set(&mut p, vec![term("NotIn", "zone", &["a"])]);
        assert!(!matches_node_selector(&p, &n));
    }

    #[test]
    fn toleration_semantics() {
        let taint = Taint {
            key: "k".into(),
            value: Some("v".into()),
            effect: "NoSchedule".into(),
            ..Default::default()
        };
        let t =
            |key: Option<&str>, op: &str, value: Option<&str>, effect: Option<&str>| Toleration {
                key: key.map(String::from),
                operator: Some(op.into()),
                value: value.map(String::from),
                effect: effect.map(String::from),
                ..Default::default()
            };
        assert!(tolerates(&t(Some("k"), "Equal", Some("v"), None), &taint));
        assert!(!tolerates(&t(Some("k"), "Equal", Some("w"), None), &taint));
        assert!(tolerates(&t(None, "Exists", None, None), &taint));
        assert!(!tolerates(
            &t(Some("k"), "Exists", None, Some("NoExecute")),
            &taint
        ));
    }
}
