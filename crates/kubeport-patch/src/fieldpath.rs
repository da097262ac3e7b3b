//! structured-merge-diff field paths and sets, and their `FieldsV1` serialisation.

use kubeport_core::field::go_quote;
use serde_json::{Map, Value};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

/// One step of a field path.
#[derive(Clone, Debug)]
pub(crate) enum Pe {
    /// A struct field or map key: `.name`, `f:name`.
    Field(String),
    /// An item of an associative list, by its key fields sorted by name: `[port=80,protocol="TCP"]`.
    Key(Vec<(String, Value)>),
    /// An item of a set: `[=value]`.
    Value(Value),
    /// An item of an atomic list by position (only ever read back from stored sets).
    Index(usize),
}

/// structured-merge-diff's total order of values: numbers < strings < bools < lists < maps < null.
pub(crate) fn compare_values(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Number(_) => 0,
            Value::String(_) => 1,
            Value::Bool(_) => 2,
            Value::Array(_) => 3,
            Value::Object(_) => 4,
            Value::Null => 5,
        }
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                x.cmp(&y)
            } else {
                x.as_f64()
                    .unwrap_or(0.0)
                    .partial_cmp(&y.as_f64().unwrap_or(0.0))
                    .unwrap_or(Ordering::Equal)
            }
        }
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (p, q) in x.iter().zip(y) {
                let c = compare_values(p, q);
                if c != Ordering::Equal {
                    return c;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(x), Value::Object(y)) => {
            let mut xk: Vec<&String> = x.keys().collect();
            let mut yk: Vec<&String> = y.keys().collect();
            xk.sort();
            yk.sort();
            for (p, q) in xk.iter().zip(&yk) {
                let c = p
                    .cmp(q)
                    .then_with(|| compare_values(&x[p.as_str()], &y[q.as_str()]));
                if c != Ordering::Equal {
                    return c;
                }
            }
            xk.len().cmp(&yk.len())
        }
        _ => rank(a).cmp(&rank(b)),
    }
}

impl Pe {
    fn rank(&self) -> u8 {
        match self {
            Pe::Field(_) => 0,
            Pe::Key(_) => 1,
            Pe::Value(_) => 2,
            Pe::Index(_) => 3,
        }
    }

    /// `FieldsV1` key: `f:name`, `k:{"port":80,"protocol":"TCP"}`, `v:"x"`, `i:0`.
    pub(crate) fn serialize(&self) -> String {
        match self {
            Pe::Field(n) => format!("f:{n}"),
            Pe::Key(fields) => {
                let mut m = Map::new();
                for (k, v) in fields {
                    m.insert(k.clone(), v.clone());
                }
                format!("k:{}", Value::Object(m))
            }
            Pe::Value(v) => format!("v:{v}"),
            Pe::Index(i) => format!("i:{i}"),
        }
    }

    pub(crate) fn deserialize(s: &str) -> Option<Pe> {
        let (prefix, rest) = s.split_at_checked(2)?;
        match prefix {
            "f:" => Some(Pe::Field(rest.to_string())),
            "k:" => match serde_json::from_str::<Value>(rest).ok()? {
                Value::Object(m) => {
                    let mut fields: Vec<(String, Value)> = m.into_iter().collect();
                    fields.sort_by(|a, b| a.0.cmp(&b.0));
                    Some(Pe::Key(fields))
                }
                _ => None,
            },
            "v:" => serde_json::from_str(rest).ok().map(Pe::Value),
            "i:" => rest.parse().ok().map(Pe::Index),
            _ => None,
        }
    }
}

impl PartialEq for Pe {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Pe {}
impl PartialOrd for Pe {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pe {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Pe::Field(a), Pe::Field(b)) => a.cmp(b),
            (Pe::Key(a), Pe::Key(b)) => {
                for ((an, av), (bn, bv)) in a.iter().zip(b) {
                    let c = an.cmp(bn).then_with(|| compare_values(av, bv));
                    if c != Ordering::Equal {
                        return c;
                    }
                }
                a.len().cmp(&b.len())
            }
            (Pe::Value(a), Pe::Value(b)) => compare_values(a, b),
            (Pe::Index(a), Pe::Index(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

/// structured-merge-diff's `value.ToString`: strings Go-quoted, the rest as JSON.
fn value_to_string(v: &Value) -> String {
    match v {
        Value::String(s) => go_quote(s),
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

impl std::fmt::Display for Pe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pe::Field(n) => write!(f, ".{n}"),
            Pe::Key(fields) => {
                let parts: Vec<String> = fields
                    .iter()
                    .map(|(k, v)| format!("{k}={}", value_to_string(v)))
                    .collect();
                write!(f, "[{}]", parts.join(","))
            }
            Pe::Value(v) => write!(f, "[={}]", value_to_string(v)),
            Pe::Index(i) => write!(f, "[{i}]"),
        }
    }
}

pub(crate) type Path = Vec<Pe>;

/// A path as kube-apiserver prints it in conflicts: `.spec.ports[port=80,protocol="TCP"].targetPort`.
pub(crate) fn path_string(p: &[Pe]) -> String {
    p.iter().map(|pe| pe.to_string()).collect()
}

/// A set of field paths, as a tree: `members` are paths ending here, `children` go deeper.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Set {
    members: BTreeSet<Pe>,
    children: BTreeMap<Pe, Set>,
}

impl Set {
    pub(crate) fn new() -> Set {
        Set::default()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.values().all(Set::is_empty)
    }

    pub(crate) fn insert(&mut self, path: &[Pe]) {
        match path {
            [] => {}
            [last] => {
                self.members.insert(last.clone());
            }
            [first, rest @ ..] => self.children.entry(first.clone()).or_default().insert(rest),
        }
    }

    pub(crate) fn child(&self, pe: &Pe) -> Option<&Set> {
        self.children.get(pe)
    }

    pub(crate) fn is_member(&self, pe: &Pe) -> bool {
        self.members.contains(pe)
    }

    /// Whether `pe` or anything below it is in the set.
    pub(crate) fn touches(&self, pe: &Pe) -> bool {
        self.members.contains(pe) || self.children.get(pe).is_some_and(|c| !c.is_empty())
    }

    /// The path elements of this level: members and children, sorted, without repeats.
    pub(crate) fn elements(&self) -> Vec<Pe> {
        let mut all: BTreeSet<&Pe> = self.members.iter().collect();
        all.extend(self.children.keys());
        all.into_iter().cloned().collect()
    }

    fn prune(mut self) -> Set {
        self.children.retain(|_, c| !c.is_empty());
        self
    }

    pub(crate) fn union(&self, other: &Set) -> Set {
        let mut out = self.clone();
        out.members.extend(other.members.iter().cloned());
        for (pe, c) in &other.children {
            let merged = match out.children.get(pe) {
                Some(mine) => mine.union(c),
                None => c.clone(),
            };
            out.children.insert(pe.clone(), merged);
        }
        out.prune()
    }

    pub(crate) fn difference(&self, other: &Set) -> Set {
        let members = self.members.difference(&other.members).cloned().collect();
        let children = self
            .children
            .iter()
            .map(|(pe, c)| match other.children.get(pe) {
                Some(o) => (pe.clone(), c.difference(o)),
                None => (pe.clone(), c.clone()),
            })
            .collect();
        Set { members, children }.prune()
    }

    pub(crate) fn intersection(&self, other: &Set) -> Set {
        let members = self.members.intersection(&other.members).cloned().collect();
        let children = self
            .children
            .iter()
            .filter_map(|(pe, c)| {
                other
                    .children
                    .get(pe)
                    .map(|o| (pe.clone(), c.intersection(o)))
            })
            .collect();
        Set { members, children }.prune()
    }

    /// Every path, in structured-merge-diff's iteration order (each level's members first, then
    /// its children).
    pub(crate) fn paths(&self) -> Vec<Path> {
        let mut out = Vec::new();
        self.collect(&mut Vec::new(), &mut out);
        out
    }

    fn collect(&self, prefix: &mut Path, out: &mut Vec<Path>) {
        for m in &self.members {
            let mut p = prefix.clone();
            p.push(m.clone());
            out.push(p);
        }
        for (pe, c) in &self.children {
            prefix.push(pe.clone());
            c.collect(prefix, out);
            prefix.pop();
        }
    }

    /// Adds as members the intermediate paths that end in a field name (structured-merge-diff's
    /// `EnsureNamedFieldsAreMembers`), so pruning considers whole structs.
    pub(crate) fn with_named_parents(&self) -> Set {
        let mut out = self.clone();
        out.add_named_parents();
        out
    }

    fn add_named_parents(&mut self) {
        let keys: Vec<Pe> = self.children.keys().cloned().collect();
        for pe in keys {
            let child = self.children.get_mut(&pe).expect("key from map");
            if child.is_empty() {
                continue;
            }
            child.add_named_parents();
            if matches!(pe, Pe::Field(_)) {
                self.members.insert(pe);
            }
        }
    }

    /// The `fieldsV1` object. Members that also have children carry a `"."` entry, written last
    /// as structured-merge-diff does.
    pub(crate) fn to_fields_v1(&self) -> Value {
        Value::Object(self.emit(false))
    }

    fn emit(&self, include_self: bool) -> Map<String, Value> {
        let mut m = Map::new();
        for pe in self.elements() {
            let child = self.children.get(&pe).filter(|c| !c.is_empty());
            let value = match child {
                Some(c) => Value::Object(c.emit(self.members.contains(&pe))),
                None => Value::Object(Map::new()),
            };
            m.insert(pe.serialize(), value);
        }
        if include_self && !m.is_empty() {
            m.insert(".".into(), Value::Object(Map::new()));
        }
        m
    }

    /// Reads a `fieldsV1` object; unknown path element kinds are skipped as structured-merge-diff
    /// does. `None` when the value is not an object tree.
    pub(crate) fn from_fields_v1(v: &Value) -> Option<Set> {
        let (set, _) = read_level(v)?;
        Some(set)
    }
}

/// Returns the children set of this level and whether the level itself is a member.
fn read_level(v: &Value) -> Option<(Set, bool)> {
    let m = v.as_object()?;
    let mut set = Set::new();
    let mut is_member = false;
    for (k, child) in m {
        if k == "." {
            is_member = true;
            continue;
        }
        let Some(pe) = Pe::deserialize(k) else {
            continue;
        };
        let (grand, child_member) = read_level(child)?;
        if child_member {
            set.members.insert(pe.clone());
        }
        if !grand.is_empty() {
            set.children.insert(pe, grand);
        }
    }
    if m.is_empty() || (set.members.is_empty() && set.children.is_empty() && !is_member) {
        // A leaf `{}` (or a level whose entries were all unknown) marks the parent as a member.
        return Some((set, true));
    }
    Some((set, is_member))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(n: &str) -> Pe {
        Pe::Field(n.into())
    }

    #[test]
    fn round_trips_fields_v1_with_dot_last() {
        let mut s = Set::new();
        let port = Pe::Key(vec![
            ("port".into(), json!(80)),
            ("protocol".into(), json!("TCP")),
        ]);
        s.insert(&[field("spec"), field("ports"), port.clone()]);
        s.insert(&[field("spec"), field("ports"), port.clone(), field("port")]);
        s.insert(&[field("spec"), field("selector")]);
        let v = s.to_fields_v1();
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"f:spec":{"f:ports":{"k:{\"port\":80,\"protocol\":\"TCP\"}":{"f:port":{},".":{}}},"f:selector":{}}}"#
        );
        assert_eq!(Set::from_fields_v1(&v).unwrap(), s);
        assert_eq!(
            path_string(&[field("spec"), field("ports"), port]),
            ".spec.ports[port=80,protocol=\"TCP\"]"
        );
    }

    #[test]
    fn orders_fields_before_keys_and_numbers_before_strings() {
        assert!(field("z") < Pe::Key(vec![]));
        assert!(Pe::Value(json!(5)) < Pe::Value(json!("a")));
        assert!(Pe::Value(json!("a")) < Pe::Value(json!("b")));
    }
}
