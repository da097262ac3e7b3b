//! The garbage collector's dependency graph (owner UID -> dependents) and its decisions,
//! without I/O: which objects to look at after a change, and what to do with an object
//! given the state of its owners (kube's attemptToDeleteItem / classifyReferences).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use std::collections::{BTreeSet, HashMap, HashSet};

pub const FINALIZER_ORPHAN: &str = "orphan";
pub const FINALIZER_FOREGROUND: &str = "foregroundDeletion";

/// What the graph knows about one object.
#[derive(Clone, Debug, PartialEq)]
pub struct GraphNode {
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub uid: String,
    pub resource_version: String,
    pub owners: Vec<OwnerReference>,
    pub deleting: bool,
    pub finalizers: Vec<String>,
}

impl GraphNode {
    pub fn has_finalizer(&self, f: &str) -> bool {
        self.finalizers.iter().any(|x| x == f)
    }

    /// Being deleted in the foreground: waits for its blocking dependents.
    pub fn deleting_dependents(&self) -> bool {
        self.deleting && self.has_finalizer(FINALIZER_FOREGROUND)
    }
}

/// Work the collector has to do.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Work {
    /// Check an object's owners and delete it (or fix its references) if needed; for a
    /// foreground-deleting object, finish once its blocking dependents are gone.
    AttemptToDelete(String),
    /// Remove references to this (orphan-deleting) owner from its dependents.
    Orphan(String),
}

#[derive(Default, Debug)]
pub struct Graph {
    nodes: HashMap<String, GraphNode>,
    /// owner UID -> dependent UIDs (owners may not be in `nodes`: deleted or not yet seen).
    dependents: HashMap<String, HashSet<String>>,
}

impl Graph {
    pub fn get(&self, uid: &str) -> Option<&GraphNode> {
        self.nodes.get(uid)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn contains(&self, uid: &str) -> bool {
        self.nodes.contains_key(uid)
    }

    /// Dependents of an owner that are in the graph.
    pub fn dependents(&self, owner: &str) -> Vec<&GraphNode> {
        self.dependents
            .get(owner)
            .into_iter()
            .flatten()
            .filter_map(|d| self.nodes.get(d))
            .collect()
    }

    /// Dependents whose reference to `owner` has blockOwnerDeletion.
    pub fn blocking_dependents(&self, owner: &str) -> Vec<&GraphNode> {
        self.dependents(owner)
            .into_iter()
            .filter(|d| {
                d.owners
                    .iter()
                    .any(|o| o.uid == owner && o.block_owner_deletion == Some(true))
            })
            .collect()
    }

    /// Records an added or changed object; returns the work it causes.
    pub fn upsert(&mut self, node: GraphNode) -> BTreeSet<Work> {
        let mut work = BTreeSet::new();
        let uid = node.uid.clone();
        let old = self.nodes.get(&uid).cloned();
        let old_owners: HashSet<String> = old
            .iter()
            .flat_map(|o| o.owners.iter().map(|r| r.uid.clone()))
            .collect();
        let new_owners: HashSet<String> = node.owners.iter().map(|r| r.uid.clone()).collect();
        for gone in old_owners.difference(&new_owners) {
            self.unlink(gone, &uid);
            // A dependent that let go may have been the last thing blocking its owner.
            if self
                .nodes
                .get(gone)
                .is_some_and(|o| o.deleting_dependents())
            {
                work.insert(Work::AttemptToDelete(gone.clone()));
            }
        }
        for added in new_owners.difference(&old_owners) {
            self.dependents
                .entry(added.clone())
                .or_default()
                .insert(uid.clone());
        }
        let owners_changed = old.as_ref().is_none_or(|o| o.owners != node.owners);
        if owners_changed
            && node
                .owners
                .iter()
                .any(|r| self.nodes.get(&r.uid).is_none_or(|o| o.deleting))
        {
            // An owner we have not seen (maybe gone) or one being deleted: check.
            work.insert(Work::AttemptToDelete(uid.clone()));
        }
        let changed_deletion = old
            .as_ref()
            .is_none_or(|o| o.deleting != node.deleting || o.finalizers != node.finalizers);
        if node.deleting && changed_deletion {
            if node.has_finalizer(FINALIZER_ORPHAN) {
                work.insert(Work::Orphan(uid.clone()));
            }
            if node.has_finalizer(FINALIZER_FOREGROUND) {
                work.insert(Work::AttemptToDelete(uid.clone()));
                for d in self.dependents(&uid) {
                    work.insert(Work::AttemptToDelete(d.uid.clone()));
                }
            }
        }
        self.nodes.insert(uid, node);
        work
    }

    /// Records a deletion; returns the work it causes.
    pub fn remove(&mut self, uid: &str) -> BTreeSet<Work> {
        let mut work = BTreeSet::new();
        let Some(old) = self.nodes.remove(uid) else {
            return work;
        };
        for r in &old.owners {
            self.unlink(&r.uid, uid);
            if self
                .nodes
                .get(&r.uid)
                .is_some_and(|o| o.deleting_dependents())
            {
                work.insert(Work::AttemptToDelete(r.uid.clone()));
            }
        }
        // Its dependents now have a dangling owner.
        for d in self.dependents(uid) {
            work.insert(Work::AttemptToDelete(d.uid.clone()));
        }
        work
    }

    fn unlink(&mut self, owner: &str, dependent: &str) {
        if let Some(set) = self.dependents.get_mut(owner) {
            set.remove(dependent);
            if set.is_empty() {
                self.dependents.remove(owner);
            }
        }
    }

    /// Work for every object whose owners should be checked (after the initial sync).
    pub fn all_with_owners(&self) -> Vec<Work> {
        self.nodes
            .values()
            .filter(|n| !n.owners.is_empty() || n.deleting)
            .map(|n| {
                if n.deleting && n.has_finalizer(FINALIZER_ORPHAN) {
                    Work::Orphan(n.uid.clone())
                } else {
                    Work::AttemptToDelete(n.uid.clone())
                }
            })
            .collect()
    }
}

/// The state of one owner of an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnerState {
    /// Exists and is not being deleted in the foreground.
    Solid,
    /// Absent, or a different object (UID) has its name.
    Dangling,
    /// Being deleted in the foreground (waits for dependents).
    WaitingForDependents,
}

/// What to do with an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Nothing,
    /// Drop these owner references (the object keeps a solid owner).
    RemoveOwnerRefs(Vec<String>),
    /// Delete it with this propagation policy.
    Delete(&'static str),
}

/// kube's attemptToDeleteItem decision for an object that is not itself being deleted.
pub fn decide(node: &GraphNode, has_dependents: bool, owners: &[(String, OwnerState)]) -> Decision {
    if owners.is_empty() {
        return Decision::Nothing;
    }
    let of = |s: OwnerState| -> Vec<String> {
        owners
            .iter()
            .filter(|(_, st)| *st == s)
            .map(|(u, _)| u.clone())
            .collect()
    };
    let solid = of(OwnerState::Solid);
    let dangling = of(OwnerState::Dangling);
    let waiting = of(OwnerState::WaitingForDependents);
    if !solid.is_empty() {
        if dangling.is_empty() && waiting.is_empty() {
            return Decision::Nothing;
        }
        let mut drop = dangling;
        drop.extend(waiting);
        return Decision::RemoveOwnerRefs(drop);
    }
    if !waiting.is_empty() && has_dependents {
        return Decision::Delete("Foreground");
    }
    Decision::Delete(if node.has_finalizer(FINALIZER_ORPHAN) {
        "Orphan"
    } else if node.has_finalizer(FINALIZER_FOREGROUND) {
        "Foreground"
    } else {
        "Background"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner_ref(uid: &str, block: bool) -> OwnerReference {
        OwnerReference {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: format!("rs-{uid}"),
            uid: uid.into(),
            controller: Some(true),
            block_owner_deletion: Some(block),
        }
    }

    fn node(uid: &str, owners: Vec<OwnerReference>) -> GraphNode {
        GraphNode {
            api_version: "v1".into(),
            kind: "Pod".into(),
            namespace: Some("dev".into()),
            name: format!("n-{uid}"),
            uid: uid.into(),
            resource_version: "1".into(),
            owners,
            deleting: false,
            finalizers: Vec::new(),
        }
    }

    #[test]
    fn deleting_an_owner_queues_its_dependents() {
        let mut g = Graph::default();
        let mut rs = node("rs", vec![]);
        rs.kind = "ReplicaSet".into();
        assert!(g.upsert(rs).is_empty());
        assert!(g.upsert(node("p1", vec![owner_ref("rs", true)])).is_empty());
        assert!(g.upsert(node("p2", vec![owner_ref("rs", true)])).is_empty());
        assert_eq!(g.dependents("rs").len(), 2);
        let work = g.remove("rs");
        assert_eq!(
            work.into_iter().collect::<Vec<_>>(),
            vec![
                Work::AttemptToDelete("p1".into()),
                Work::AttemptToDelete("p2".into())
            ]
        );
    }

    #[test]
    fn unseen_owner_is_checked() {
        let mut g = Graph::default();
        let w = g.upsert(node("p1", vec![owner_ref("ghost", true)]));
        assert!(w.contains(&Work::AttemptToDelete("p1".into())));
    }

    #[test]
    fn foreground_owner_waits_for_blocking_dependents() {
        let mut g = Graph::default();
        g.upsert(node("rs", vec![]));
        g.upsert(node("p1", vec![owner_ref("rs", true)]));
        g.upsert(node("p2", vec![owner_ref("rs", false)]));
        let mut deleting = node("rs", vec![]);
        deleting.deleting = true;
        deleting.finalizers = vec![FINALIZER_FOREGROUND.into()];
        let w = g.upsert(deleting);
        assert!(w.contains(&Work::AttemptToDelete("rs".into())));
        assert!(w.contains(&Work::AttemptToDelete("p1".into())));
        assert_eq!(g.blocking_dependents("rs").len(), 1);
        // The blocking dependent going away re-checks the owner.
        let w = g.remove("p1");
        assert!(w.contains(&Work::AttemptToDelete("rs".into())));
        assert!(g.blocking_dependents("rs").is_empty());
    }

    #[test]
    fn orphan_finalizer_queues_orphaning() {
        let mut g = Graph::default();
        let mut rs = node("rs", vec![]);
        rs.deleting = true;
        rs.finalizers = vec![FINALIZER_ORPHAN.into()];
        assert!(g.upsert(rs).contains(&Work::Orphan("rs".into())));
    }

    #[test]
    fn decisions_follow_kube() {
        let n = node("p", vec![owner_ref("a", true), owner_ref("b", true)]);
        use OwnerState::*;
        assert_eq!(
            decide(&n, false, &[("a".into(), Solid), ("b".into(), Solid)]),
            Decision::Nothing
        );
        assert_eq!(
            decide(&n, false, &[("a".into(), Solid), ("b".into(), Dangling)]),
            Decision::RemoveOwnerRefs(vec!["b".into()])
        );
        assert_eq!(
            decide(&n, false, &[("a".into(), Dangling), ("b".into(), Dangling)]),
            Decision::Delete("Background")
        );
        assert_eq!(
            decide(
                &n,
                true,
                &[("a".into(), WaitingForDependents), ("b".into(), Dangling)]
            ),
            Decision::Delete("Foreground")
        );
        assert_eq!(
            decide(&n, false, &[("a".into(), WaitingForDependents)]),
            Decision::Delete("Background")
        );
        let mut orphaning = n.clone();
        orphaning.finalizers = vec![FINALIZER_ORPHAN.into()];
        assert_eq!(
            decide(&orphaning, false, &[("a".into(), Dangling)]),
            Decision::Delete("Orphan")
        );
        assert_eq!(decide(&node("x", vec![]), false, &[]), Decision::Nothing);
    }
}
