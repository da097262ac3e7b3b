//! structured-merge-diff's operations on typed values: field sets, comparison, merge and
//! removal, over `serde_json::Value` with [`Shape`] as the schema.

use crate::fieldpath::{path_string, Path, Pe, Set};
use crate::schema::{ListSsa, Shape};
use serde_json::{Map, Value};

/// How a node is treated: a leaf (scalar or atomic), a granular map, or an associative list.
enum Node<'a> {
    Leaf,
    Map,
    List(&'a crate::schema::ListDef),
}

fn node(v: &Value, shape: Shape) -> Node<'static> {
    match (v, shape) {
        (_, Shape::Atomic) => Node::Leaf,
        (Value::Object(_), _) => Node::Map,
        (Value::Array(_), Shape::List(def)) => Node::List(def),
        _ => Node::Leaf,
    }
}

/// A schema violation in a typed value, worded as structured-merge-diff's validation errors.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ValidationError {
    pub path: String,
    pub message: String,
}

/// The path element of a list item, or why it has none.
fn item_pe(item: &Value, def: &crate::schema::ListDef, index: usize) -> Result<Pe, String> {
    match def.ssa {
        ListSsa::Map(keys) => {
            let Value::Object(m) = item else {
                return Err(format!(
                    "element {index}: associative list with keys may not have non-map elements"
                ));
            };
            let mut fields: Vec<(String, Value)> = Vec::with_capacity(keys.len());
            for k in keys {
                match (m.get(k.name), k.default) {
                    (Some(v), _) => fields.push((k.name.to_string(), v.clone())),
                    (None, Some(d)) => fields.push((k.name.to_string(), Value::String(d.to_string()))),
                    (None, None) => {
                        return Err(format!(
                            "element {index}: associative list with keys has an element that omits key field {:?} (and doesn't have default value)",
                            k.name
                        ))
                    }
                }
            }
            fields.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(Pe::Key(fields))
        }
        ListSsa::Set => match item {
            Value::Object(_) => Err(format!(
                "element {index}: associative list without keys has an element that's a map type"
            )),
            Value::Array(_) => Err(format!(
                "element {index}: associative list without keys has an element that's a list type"
            )),
            v => Ok(Pe::Value(v.clone())),
        },
    }
}

/// The path element of a list item, `None` when it has none.
pub(crate) fn list_item_pe(item: &Value, def: &crate::schema::ListDef, index: usize) -> Option<Pe> {
    item_pe(item, def, index).ok()
}

/// Items of an associative list with their path elements; later duplicates are dropped (and
/// reported when `strict`, as for an applied configuration).
fn index_items<'v>(
    list: &'v [Value],
    def: &crate::schema::ListDef,
    path: &[Pe],
    strict: bool,
    errs: &mut Vec<ValidationError>,
) -> Vec<(Pe, &'v Value)> {
    let mut out: Vec<(Pe, &Value)> = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        match item_pe(item, def, i) {
            Ok(pe) => {
                if out.iter().any(|(p, _)| *p == pe) {
                    if strict {
                        errs.push(ValidationError {
                            path: path_string(path),
                            message: format!("duplicate entries for key {pe}"),
                        });
                    }
                    continue;
                }
                out.push((pe, item));
            }
            Err(message) => {
                if strict {
                    errs.push(ValidationError {
                        path: path_string(path),
                        message,
                    });
                }
            }
        }
    }
    out
}

/// `ToFieldSet`: every leaf, every list item, every map key, and empty/null fields.
pub(crate) fn to_field_set(
    v: &Value,
    shape: Shape,
    strict: bool,
) -> Result<Set, Vec<ValidationError>> {
    let mut set = Set::new();
    let mut errs = Vec::new();
    walk_set(v, shape, &mut Vec::new(), &mut set, strict, &mut errs);
    if errs.is_empty() {
        Ok(set)
    } else {
        Err(errs)
    }
}

fn walk_set(
    v: &Value,
    shape: Shape,
    path: &mut Path,
    set: &mut Set,
    strict: bool,
    errs: &mut Vec<ValidationError>,
) {
    match node(v, shape) {
        Node::Leaf => set.insert(path),
        Node::Map => {
            let Value::Object(m) = v else { return };
            for (k, cv) in m {
                path.push(Pe::Field(k.clone()));
                walk_set(cv, shape.child(k), path, set, strict, errs);
                let empty = cv.is_null() || cv.as_object().is_some_and(Map::is_empty);
                if empty {
                    set.insert(path);
                }
                path.pop();
            }
        }
        Node::List(def) => {
            let Value::Array(items) = v else { return };
            for (pe, item) in index_items(items, def, path, strict, errs) {
                path.push(pe);
                walk_set(item, def.item, path, set, strict, errs);
                set.insert(path);
                path.pop();
            }
        }
    }
}

/// Paths added, modified and removed between two versions of an object.
#[derive(Default, Debug)]
pub(crate) struct Comparison {
    pub added: Set,
    pub modified: Set,
    pub removed: Set,
}

pub(crate) fn compare(lhs: &Value, rhs: &Value, shape: Shape) -> Comparison {
    let mut c = Comparison::default();
    walk_compare(Some(lhs), Some(rhs), shape, &mut Vec::new(), &mut c);
    c
}

pub(crate) fn is_empty_container(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        _ => false,
    }
}

fn walk_compare(
    l: Option<&Value>,
    r: Option<&Value>,
    shape: Shape,
    path: &mut Path,
    c: &mut Comparison,
) {
    let probe = r.filter(|v| !v.is_null()).or(l).unwrap_or(&Value::Null);
    let same_kind = match (l, r) {
        (Some(a), Some(b)) => {
            a.is_null() || b.is_null() || std::mem::discriminant(a) == std::mem::discriminant(b)
        }
        _ => true,
    };
    let kind = if same_kind && !(is_empty_container(l) && is_empty_container(r)) {
        node(probe, shape)
    } else {
        Node::Leaf
    };
    match kind {
        Node::Leaf => {
            match (l, r) {
                (None, None) => {}
                (None, Some(_)) => c.added.insert(path),
                (Some(_), None) => c.removed.insert(path),
                (Some(a), Some(b)) => {
                    if a != b {
                        c.modified.insert(path)
                    }
                }
            }
            return;
        }
        Node::Map => {
            let empty = Map::new();
            let lm = l.and_then(Value::as_object).unwrap_or(&empty);
            let rm = r.and_then(Value::as_object).unwrap_or(&empty);
            for (k, lv) in lm {
                path.push(Pe::Field(k.clone()));
                walk_compare(Some(lv), rm.get(k), shape.child(k), path, c);
                path.pop();
            }
            for (k, rv) in rm {
                if !lm.contains_key(k) {
                    path.push(Pe::Field(k.clone()));
                    walk_compare(None, Some(rv), shape.child(k), path, c);
                    path.pop();
                }
            }
        }
        Node::List(def) => {
            let empty = Vec::new();
            let ll = l.and_then(Value::as_array).unwrap_or(&empty);
            let rl = r.and_then(Value::as_array).unwrap_or(&empty);
            let mut ignore = Vec::new();
            let li = index_items(ll, def, path, false, &mut ignore);
            let ri = index_items(rl, def, path, false, &mut ignore);
            for (pe, lv) in &li {
                let rv = ri.iter().find(|(p, _)| p == pe).map(|(_, v)| *v);
                path.push(pe.clone());
                walk_compare(Some(lv), rv, def.item, path, c);
                path.pop();
            }
            for (pe, rv) in &ri {
                if !li.iter().any(|(p, _)| p == pe) {
                    path.push(pe.clone());
                    walk_compare(None, Some(rv), def.item, path, c);
                    path.pop();
                }
            }
        }
    }
    // A whole map or list appearing or disappearing is itself added or removed.
    match (l, r) {
        (None, Some(_)) => c.added.insert(path),
        (Some(_), None) => c.removed.insert(path),
        _ => {}
    }
}

/// Merges `rhs` (the applied configuration) into `lhs` (the live object): maps key by key,
/// associative lists item by item, everything else replaced by `rhs`.
pub(crate) fn merge(lhs: &Value, rhs: &Value, shape: Shape) -> Value {
    if is_empty_container(Some(lhs)) && is_empty_container(Some(rhs)) {
        return rhs.clone();
    }
    match (lhs, rhs, node(rhs, shape)) {
        (Value::Object(lm), Value::Object(rm), Node::Map) => {
            let mut out = lm.clone();
            for (k, rv) in rm {
                let merged = match lm.get(k) {
                    Some(lv) => merge(lv, rv, shape.child(k)),
                    None => rv.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(ll), Value::Array(rl), Node::List(def)) => {
            Value::Array(merge_list(ll, rl, def))
        }
        _ => rhs.clone(),
    }
}

/// The item order structured-merge-diff produces: the configuration's order, with live-only
/// items kept in place relative to the shared ones.
fn merge_list(ll: &[Value], rl: &[Value], def: &crate::schema::ListDef) -> Vec<Value> {
    let mut ignore = Vec::new();
    let lhs = index_items(ll, def, &[], false, &mut ignore);
    let rhs = index_items(rl, def, &[], false, &mut ignore);
    let find = |items: &[(Pe, &Value)], pe: &Pe| {
        items
            .iter()
            .find(|(p, _)| p == pe)
            .map(|(_, v)| (*v).clone())
    };
    let shared: Vec<&Pe> = rhs
        .iter()
        .map(|(p, _)| p)
        .filter(|p| lhs.iter().any(|(q, _)| q == *p))
        .collect();
    let mut shared_iter = shared.into_iter();
    let mut next_shared = shared_iter.next();
    let mut out = Vec::with_capacity(ll.len().max(rl.len()));
    let item_merge = |l: Option<Value>, r: Option<Value>| match (l, r) {
        (Some(l), Some(r)) => merge(&l, &r, def.item),
        (Some(l), None) => l,
        (None, Some(r)) => r,
        (None, None) => Value::Null,
    };
    let (mut li, mut ri) = (0, 0);
    while li < lhs.len() || ri < rhs.len() {
        if li < lhs.len() && ri < rhs.len() {
            let pe = &lhs[li].0;
            if *pe == rhs[ri].0 {
                out.push(item_merge(Some(lhs[li].1.clone()), Some(rhs[ri].1.clone())));
                li += 1;
                ri += 1;
                next_shared = shared_iter.next();
                continue;
            }
            let in_rhs = rhs.iter().any(|(p, _)| p == pe);
            if in_rhs && next_shared.is_some_and(|n| n != pe) {
                // A shared item, but not the next one the configuration wants.
                li += 1;
                continue;
            }
        }
        if li < lhs.len() {
            let pe = &lhs[li].0;
            if !rhs.iter().any(|(p, _)| p == pe) {
                out.push(lhs[li].1.clone());
                li += 1;
                continue;
            }
        }
        if ri < rhs.len() {
            let pe = &rhs[ri].0;
            out.push(item_merge(find(&lhs, pe), Some(rhs[ri].1.clone())));
            ri += 1;
            if next_shared.is_some_and(|n| n == pe) {
                next_shared = shared_iter.next();
            }
        }
    }
    out
}
