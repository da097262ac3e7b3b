//! Strategic merge patch as kube-apiserver applies it (apimachinery `strategicpatch`,
//! `StrategicMergeMapPatch` with parallel lists merged and unmatched nulls ignored).
//!
//! Error classes follow the apiserver's patch handler: the format errors of the directives are
//! 400, lists of lists 422, everything else is passed through unclassified (500).

use crate::mergepatch::prune_nulls;
use crate::schema::{kind_shape, ListSmp, Shape};
use crate::{gofmt, PatchError, PatchFailure};
use serde_json::{Map, Value};

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";

type Obj = Map<String, Value>;
type R<T> = Result<T, PatchFailure>;

pub(crate) fn apply(
    doc: &Value,
    patch: &Value,
    group: &str,
    kind: &str,
) -> Result<Value, PatchError> {
    let patch = match patch {
        Value::Object(p) => p.clone(),
        // Decoding `null` into the patch map leaves it empty.
        Value::Null => Obj::new(),
        other => {
            return Err(PatchFailure::bad_request(format!(
                "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
                gofmt::json_kind(other)
            ))
            .into())
        }
    };
    let original = match doc {
        Value::Object(o) => o.clone(),
        _ => Obj::new(),
    };
    let merged = merge_map(original, patch, kind_shape(group, kind))?;
    Ok(Value::Object(merged))
}

/// A patch value stored as-is ends up decoded into a typed object, which drops directive keys
/// and nulls; do the same so they never reach storage.
fn sanitize(mut v: Value) -> Value {
    strip_directives(&mut v);
    prune_nulls(&mut v);
    v
}

fn strip_directives(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| !is_directive_key(k));
            for x in m.values_mut() {
                strip_directives(x);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(strip_directives),
        _ => {}
    }
}

fn is_directive_key(k: &str) -> bool {
    k == DIRECTIVE
        || k == RETAIN_KEYS
        || k.starts_with(&format!("{SET_ELEMENT_ORDER}/"))
        || k.starts_with(&format!("{DELETE_FROM_PRIMITIVE_LIST}/"))
}

fn no_merge_key(m: &Obj, key: &str) -> PatchFailure {
    PatchFailure::internal(format!(
        "map: {} does not contain declared merge key: {key}",
        gofmt::v(&Value::Object(m.clone()))
    ))
}

fn bad_arg_type(expected: &str, actual: &Value) -> PatchFailure {
    PatchFailure::internal(format!(
        "expected a {expected}, but received a {}",
        gofmt::type_name(actual)
    ))
}

fn bad_patch_type(t: &Value, m: &Obj) -> PatchFailure {
    PatchFailure::internal(format!(
        "unknown patch type: {} in map: {}",
        gofmt::s(t),
        gofmt::v(&Value::Object(m.clone()))
    ))
}

/// `extractKey`: `$prefix/<field>` → `<field>`.
fn extract_key<'a>(k: &'a str, prefix: &str) -> R<&'a str> {
    match k.split_once('/') {
        Some((p, rest)) if p == prefix => Ok(rest),
        _ if prefix == DELETE_FROM_PRIMITIVE_LIST => Err(PatchFailure::bad_request(
            "invalid patch format of primitive list",
        )),
        _ => Err(PatchFailure::bad_request(
            "invalid patch format of setElementOrder list",
        )),
    }
}

fn merge_map(mut original: Obj, mut patch: Obj, shape: Shape) -> R<Obj> {
    if let Some(d) = patch.get(DIRECTIVE) {
        return match d.as_str() {
            Some("replace") => {
                patch.shift_remove(DIRECTIVE);
                match sanitize(Value::Object(patch)) {
                    Value::Object(m) => Ok(m),
                    _ => unreachable!("sanitize keeps objects"),
                }
            }
            Some("delete") => Ok(Obj::new()),
            _ => Err(bad_patch_type(d, &patch)),
        };
    }
    apply_retain_keys(&mut original, &mut patch)?;
    merge_set_element_order(&mut original, &mut patch, shape)?;

    for (k, patch_v) in patch {
        let (key, is_delete_list) = if k.starts_with(DELETE_FROM_PRIMITIVE_LIST) {
            (
                extract_key(&k, DELETE_FROM_PRIMITIVE_LIST)?.to_string(),
                true,
            )
        } else {
            (k, false)
        };
        if patch_v.is_null() {
            original.shift_remove(&key);
            continue;
        }
        let Some(orig_v) = original.get_mut(&key) else {
            // Not in the original: the patch value is taken as is (for a deletion list too,
            // as apimachinery does).
            original.insert(key, sanitize(patch_v));
            continue;
        };
        let field = shape.child(&key);
        match (orig_v, patch_v) {
            (Value::Object(o), Value::Object(p)) => {
                let o = std::mem::take(o);
                let merged = merge_map(o, p, field)?;
                original.insert(key, Value::Object(merged));
            }
            (Value::Array(o), Value::Array(p)) => {
                let o = std::mem::take(o);
                let merged = merge_slice_handler(o, p, field, is_delete_list)?;
                original.insert(key, Value::Array(merged));
            }
            (slot, patch_v) => *slot = sanitize(patch_v),
        }
    }
    Ok(original)
}

fn apply_retain_keys(original: &mut Obj, patch: &mut Obj) -> R<()> {
    let Some(retain) = patch.shift_remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let bad = || PatchFailure::bad_request("invalid patch format of retainKeys");
    let Value::Array(list) = retain else {
        return Err(bad());
    };
    let keep: Vec<&str> = list.iter().filter_map(Value::as_str).collect();
    for (k, v) in patch.iter() {
        if v.is_null()
            || k.starts_with(DELETE_FROM_PRIMITIVE_LIST)
            || k.starts_with(SET_ELEMENT_ORDER)
        {
            continue;
        }
        if !keep.contains(&k.as_str()) {
            return Err(bad());
        }
    }
    original.retain(|k, _| keep.contains(&k.as_str()));
    Ok(())
}

/// Processes every `$setElementOrder/<list>` with its list: merge, then order the result by
/// the directive (patch items), keeping server-only items near their live neighbours.
fn merge_set_element_order(original: &mut Obj, patch: &mut Obj, shape: Shape) -> R<()> {
    let keys: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ELEMENT_ORDER))
        .cloned()
        .collect();
    for key in keys {
        let order_v = patch.shift_remove(&key).unwrap_or(Value::Null);
        let Value::Array(order) = order_v else {
            return Err(bad_arg_type("[]interface {}", &order_v));
        };
        let field = extract_key(&key, SET_ELEMENT_ORDER)?.to_string();
        let original_list = match original.get(&field) {
            None => None,
            Some(Value::Array(a)) => Some(a.clone()),
            Some(other) => return Err(bad_arg_type("[]interface {}", other)),
        };
        let patch_list = match patch.get(&field) {
            None => None,
            Some(Value::Array(a)) => Some(a.clone()),
            Some(other) => return Err(bad_arg_type("[]interface {}", other)),
        };
        let field_shape = shape.child(&field);
        let (strategy, _) = field_shape.smp_list();
        let merge_key = match strategy {
            ListSmp::Merge(k) => k,
            ListSmp::Replace => None,
        };
        validate_patch_with_order(patch_list.as_deref().unwrap_or(&[]), &order, merge_key)?;
        let merged = match (&original_list, &patch_list) {
            (Some(o), None) => o.clone(),
            (None, Some(p)) => sanitize(Value::Array(p.clone()))
                .as_array()
                .cloned()
                .unwrap_or_default(),
            (Some(o), Some(p)) => merge_slice_handler(o.clone(), p.clone(), field_shape, false)?,
            (None, None) => continue,
        };
        let (patch_items, server_only) = partition(&merged, &order, merge_key)?;
        let original_items = original_list.unwrap_or_default();
        let kind = element_kind(&[&original_items, patch_list.as_deref().unwrap_or(&[])])?;
        let both = normalize_element_order(
            patch_items,
            server_only,
            &order,
            &original_items,
            merge_key,
            kind,
        )?;
        original.insert(field.clone(), Value::Array(both));
        patch.shift_remove(&field);
    }
    Ok(())
}

/// The patch list's items (deletions and directives aside) must appear in the
/// `$setElementOrder` list, in the same relative order.
fn validate_patch_with_order(
    patch_list: &[Value],
    order: &[Value],
    merge_key: Option<&str>,
) -> R<()> {
    if patch_list.is_empty() || order.is_empty() {
        return Ok(());
    }
    let non_delete: Vec<&Value> = match merge_key {
        Some(_) => {
            let mut keep = Vec::new();
            for item in patch_list {
                let Value::Object(m) = item else {
                    return Err(bad_arg_type("map[string]interface {}", item));
                };
                if m.get(DIRECTIVE).and_then(Value::as_str) != Some("delete") {
                    keep.push(item);
                }
            }
            keep
        }
        None => patch_list.iter().collect(),
    };
    let (mut pi, mut oi) = (0, 0);
    while pi < non_delete.len() && oi < order.len() {
        if has_directive(non_delete[pi]) {
            pi += 1;
            continue;
        }
        if merge_key_equal(non_delete[pi], &order[oi], merge_key)? {
            pi += 1;
        }
        oi += 1;
    }
    if pi < non_delete.len() && oi >= order.len() {
        return Err(PatchFailure::internal(format!(
            "The order in patch list:\n{}\n doesn't match {SET_ELEMENT_ORDER} list:\n{}\n",
            gofmt::v(&Value::Array(patch_list.to_vec())),
            gofmt::v(&Value::Array(order.to_vec()))
        )));
    }
    Ok(())
}

fn has_directive(v: &Value) -> bool {
    v.as_object().is_some_and(|m| m.contains_key(DIRECTIVE))
}

fn merge_key_equal(left: &Value, right: &Value, merge_key: Option<&str>) -> R<bool> {
    let Some(key) = merge_key else {
        return Ok(left == right);
    };
    let l = left
        .as_object()
        .ok_or_else(|| bad_arg_type("map[string]interface {}", left))?;
    let r = right
        .as_object()
        .ok_or_else(|| bad_arg_type("map[string]interface {}", right))?;
    let lv = l.get(key).ok_or_else(|| no_merge_key(l, key))?;
    let rv = r.get(key).ok_or_else(|| no_merge_key(r, key))?;
    Ok(lv == rv)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Map,
    Scalar,
}

/// `sliceElementType`: all elements of all lists must have one type, and not be lists.
fn element_kind(lists: &[&[Value]]) -> R<Kind> {
    let mut prev: Option<String> = None;
    for list in lists {
        for v in list.iter() {
            let t = gofmt::type_name(v);
            match &prev {
                None => {
                    if v.is_array() {
                        return Err(PatchFailure::invalid("lists of lists are not supported"));
                    }
                    prev = Some(t);
                }
                Some(p) if *p != t => {
                    let all: Vec<Value> = lists.iter().map(|l| Value::Array(l.to_vec())).collect();
                    return Err(PatchFailure::internal(format!(
                        "list element types are not identical: {}",
                        gofmt::v(&Value::Array(all))
                    )));
                }
                Some(_) => {}
            }
        }
    }
    match prev {
        None => Err(PatchFailure::internal(
            "no elements in any of the given slices",
        )),
        Some(t) if t == "map[string]interface {}" => Ok(Kind::Map),
        Some(_) => Ok(Kind::Scalar),
    }
}

fn merge_slice_handler(
    original: Vec<Value>,
    patch: Vec<Value>,
    shape: Shape,
    is_delete_list: bool,
) -> R<Vec<Value>> {
    match shape.smp_list() {
        (ListSmp::Merge(key), item) => merge_slice(original, patch, item, key, is_delete_list),
        (ListSmp::Replace, _) => Ok(sanitize(Value::Array(patch))
            .as_array()
            .cloned()
            .unwrap_or_default()),
    }
}

fn merge_slice(
    original: Vec<Value>,
    patch: Vec<Value>,
    item: Shape,
    merge_key: Option<&str>,
    is_delete_list: bool,
) -> R<Vec<Value>> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let kind = element_kind(&[&original, &patch])?;
    let (original, patch, merged) = if kind == Kind::Scalar {
        if is_delete_list {
            return Ok(original
                .into_iter()
                .filter(|v| !patch.contains(v))
                .collect());
        }
        let mut both = original.clone();
        both.extend(patch.iter().cloned());
        (original, patch, dedup_scalars(both))
    } else {
        // Every list with merge strategy and no merge key is a list of strings.
        let key = merge_key.ok_or_else(|| {
            PatchFailure::internal("cannot merge lists without merge key for type string")
        })?;
        let (original, patch) = merge_special_elements(original, patch, key)?;
        let merged = merge_plain_elements(original.clone(), &patch, key, item)?;
        (original, patch, merged)
    };
    let (patch_items, server_only) = partition(&merged, &patch, merge_key)?;
    normalize_element_order(patch_items, server_only, &patch, &original, merge_key, kind)
}

/// Go's in-place de-duplication (it reorders; the caller re-sorts afterwards).
fn dedup_scalars(mut s: Vec<Value>) -> Vec<Value> {
    let mut i = 0;
    while i < s.len() {
        let mut j = i + 1;
        while j < s.len() {
            if s[i] == s[j] {
                let last = s.len() - 1;
                s.swap(j, last);
                s.pop();
            } else {
                j += 1;
            }
        }
        i += 1;
    }
    s
}

/// Applies `$patch: delete|replace|merge` items of a patch list of maps; returns the new
/// original and the patch without those items.
fn merge_special_elements(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    key: &str,
) -> R<(Vec<Value>, Vec<Value>)> {
    let mut plain = Vec::new();
    let mut replace = false;
    for v in patch {
        let Value::Object(m) = &v else {
            unreachable!("element kind checked")
        };
        match m.get(DIRECTIVE) {
            None => plain.push(v),
            Some(d) => match d.as_str() {
                Some("delete") => {
                    let want = m.get(key).ok_or_else(|| no_merge_key(m, key))?.clone();
                    let mut kept = Vec::with_capacity(original.len());
                    for (i, o) in original.into_iter().enumerate() {
                        let om = o.as_object().ok_or_else(|| {
                            PatchFailure::internal(format!("value for key {i} is not a map."))
                        })?;
                        if om.get(key) != Some(&want) {
                            kept.push(o);
                        }
                    }
                    original = kept;
                }
                // Keep going to drop the other directive items too.
                Some("replace") => replace = true,
                Some("merge") => {
                    return Err(PatchFailure::internal(
                        "merging lists cannot yet be specified in the patch",
                    ))
                }
                _ => return Err(bad_patch_type(d, m)),
            },
        }
    }
    if replace {
        let replaced = plain.into_iter().map(sanitize).collect();
        return Ok((replaced, Vec::new()));
    }
    Ok((original, plain))
}

fn find_by_key(list: &[Value], key: &str, value: &Value) -> R<Option<usize>> {
    for (i, v) in list.iter().enumerate() {
        let m = v
            .as_object()
            .ok_or_else(|| PatchFailure::internal(format!("value for key {i} is not a map.")))?;
        if m.get(key) == Some(value) {
            return Ok(Some(i));
        }
    }
    Ok(None)
}

fn merge_plain_elements(
    mut original: Vec<Value>,
    patch: &[Value],
    key: &str,
    item: Shape,
) -> R<Vec<Value>> {
    for v in patch {
        let Value::Object(pm) = v else {
            unreachable!("element kind checked")
        };
        let want = pm.get(key).ok_or_else(|| no_merge_key(pm, key))?;
        match find_by_key(&original, key, want)? {
            Some(i) => {
                let om =
                    std::mem::take(original[i].as_object_mut().expect("checked by find_by_key"));
                original[i] = Value::Object(merge_map(om, pm.clone(), item)?);
            }
            None => original.push(sanitize(v.clone())),
        }
    }
    Ok(original)
}

/// Splits `items` into those present in `by` (by merge key, or by value for scalars) and the rest.
fn partition(
    items: &[Value],
    by: &[Value],
    merge_key: Option<&str>,
) -> R<(Vec<Value>, Vec<Value>)> {
    let mut present = Vec::new();
    let mut rest = Vec::new();
    for v in items {
        let found = match merge_key {
            None => by.contains(v),
            Some(key) => {
                let m = v
                    .as_object()
                    .ok_or_else(|| bad_arg_type("map[string]interface {}", v))?;
                let kv = m.get(key).ok_or_else(|| no_merge_key(m, key))?;
                find_by_key(by, key, kv)?.is_some()
            }
        };
        if found {
            present.push(v.clone());
        } else {
            rest.push(v.clone());
        }
    }
    Ok((present, rest))
}

/// Position of `item` in `list`, comparing merge-key values for maps and whole values otherwise.
fn index_of(list: &[Value], item: &Value, merge_key: Option<&str>, kind: Kind) -> Option<usize> {
    let key_of = |v: &Value| -> Option<Value> {
        match (kind, merge_key) {
            (Kind::Map, Some(k)) => Some(v.as_object()?.get(k).cloned().unwrap_or(Value::Null)),
            (Kind::Map, None) => Some(Value::Null),
            (Kind::Scalar, _) => Some(v.clone()),
        }
    };
    let want = key_of(item);
    list.iter().position(|v| key_of(v) == want)
}

/// `normalizeSliceOrder`: sorts `to_sort` by position in `order` (Go's insertion sort with its
/// comparator, which treats unknown items as smaller); `$patch: delete` items go last.
fn normalize_slice_order(
    to_sort: Vec<Value>,
    order: &[Value],
    merge_key: Option<&str>,
    kind: Kind,
) -> R<Vec<Value>> {
    let mut to_sort = to_sort;
    let mut to_delete = Vec::new();
    if kind == Kind::Map {
        let key = merge_key.unwrap_or_default();
        for v in to_sort.iter().chain(order.iter()) {
            let m = v
                .as_object()
                .ok_or_else(|| bad_arg_type("map[string]interface {}", v))?;
            if !m.contains_key(key) {
                return Err(no_merge_key(m, key));
            }
        }
        let (keep, del): (Vec<Value>, Vec<Value>) = to_sort
            .into_iter()
            .partition(|v| v.get(DIRECTIVE).and_then(Value::as_str) != Some("delete"));
        to_sort = keep;
        to_delete = del;
    }
    let less = |a: &Value, b: &Value| match (
        index_of(order, a, merge_key, kind),
        index_of(order, b, merge_key, kind),
    ) {
        (Some(x), Some(y)) => x < y,
        _ => true,
    };
    for i in 1..to_sort.len() {
        let mut j = i;
        while j > 0 && less(&to_sort[j], &to_sort[j - 1]) {
            to_sort.swap(j, j - 1);
            j -= 1;
        }
    }
    to_sort.extend(to_delete);
    Ok(to_sort)
}

fn normalize_element_order(
    patch_items: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    merge_key: Option<&str>,
    kind: Kind,
) -> R<Vec<Value>> {
    let patch_items = normalize_slice_order(patch_items, patch_order, merge_key, kind)?;
    let server_only = normalize_slice_order(server_only, server_order, merge_key, kind)?;
    Ok(merge_sorted(
        server_only,
        patch_items,
        server_order,
        merge_key,
        kind,
    ))
}

/// Interleaves server-only items (`left`) into the patch items (`right`): a server-only item
/// goes first only when both are in the live list and it came first there.
fn merge_sorted(
    left: Vec<Value>,
    right: Vec<Value>,
    server_order: &[Value],
    merge_key: Option<&str>,
    kind: Kind,
) -> Vec<Value> {
    let mut out = Vec::with_capacity(left.len() + right.len());
    let (mut i, mut j) = (0, 0);
    while i < left.len() || j < right.len() {
        if i >= left.len() {
            out.push(right[j].clone());
            j += 1;
        } else if j >= right.len() {
            out.push(left[i].clone());
            i += 1;
        } else {
            let li = index_of(server_order, &left[i], merge_key, kind);
            let ri = index_of(server_order, &right[j], merge_key, kind);
            if matches!((li, ri), (Some(a), Some(b)) if a < b) {
                out.push(left[i].clone());
                i += 1;
            } else {
                out.push(right[j].clone());
                j += 1;
            }
        }
    }
    out
}
