//! Server-side apply and `metadata.managedFields` bookkeeping (kube-apiserver's field manager
//! over structured-merge-diff's updater).

use crate::fieldpath::{path_string, Pe, Set};
use crate::schema::{has_status_subresource, kind_shape, zero_object, Shape};
use crate::typed::{
    compare, is_empty_container, list_item_pe, merge, to_field_set, ValidationError,
};
use crate::{gofmt, ApplyConflicts, PatchError, PatchFailure};
use serde_json::{json, Map, Value};

const APPLY: &str = "Apply";
const UPDATE: &str = "Update";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// One `managedFields` entry.
#[derive(Clone, Debug)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: Option<String>,
    subresource: String,
    set: Set,
}

impl Entry {
    /// Two entries are the same manager when name, operation and subresource match, and, for
    /// Update entries, the API version too (an applier keeps one entry across versions).
    fn same_manager(
        &self,
        manager: &str,
        operation: &str,
        api_version: &str,
        subresource: &str,
    ) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource == subresource
            && (operation == APPLY || self.api_version == api_version)
    }

    /// How kube-apiserver names the manager in conflict messages.
    fn label(&self) -> String {
        let mut s = kubeport_core::field::go_quote(&self.manager);
        if !self.subresource.is_empty() {
            s = format!(
                "{s} with subresource {}",
                kubeport_core::field::go_quote(&self.subresource)
            );
        }
        if self.operation == UPDATE {
            s = format!("{s} using {}", self.api_version);
        }
        s
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("manager".into(), json!(self.manager));
        m.insert("operation".into(), json!(self.operation));
        m.insert("apiVersion".into(), json!(self.api_version));
        if let Some(t) = &self.time {
            m.insert("time".into(), json!(t));
        }
        m.insert("fieldsType".into(), json!("FieldsV1"));
        m.insert("fieldsV1".into(), self.set.to_fields_v1());
        if !self.subresource.is_empty() {
            m.insert("subresource".into(), json!(self.subresource));
        }
        Value::Object(m)
    }
}

fn decode_entries(obj: Option<&Value>) -> Vec<Entry> {
    let Some(list) = obj
        .and_then(|o| o.pointer("/metadata/managedFields"))
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    let mut out: Vec<Entry> = Vec::new();
    for e in list {
        let str_of = |k: &str| {
            e.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        if e.get("fieldsType").and_then(Value::as_str) != Some("FieldsV1") {
            continue;
        }
        let Some(set) = e.get("fieldsV1").and_then(Set::from_fields_v1) else {
            continue;
        };
        let entry = Entry {
            manager: str_of("manager"),
            operation: str_of("operation"),
            api_version: str_of("apiVersion"),
            time: e.get("time").and_then(Value::as_str).map(str::to_string),
            subresource: str_of("subresource"),
            set,
        };
        // A repeated identity replaces the earlier one, as decoding into a map does.
        out.retain(|x| {
            !x.same_manager(
                &entry.manager,
                &entry.operation,
                &entry.api_version,
                &entry.subresource,
            )
        });
        out.push(entry);
    }
    out
}

/// Writes the entries into `metadata.managedFields` (last in metadata, sorted as kube-apiserver
/// sorts them: Apply before Update, then by time, manager, apiVersion, subresource).
fn encode_entries(obj: &mut Value, mut entries: Vec<Entry>) {
    entries.retain(|e| !e.set.is_empty());
    entries.sort_by(|a, b| {
        a.operation
            .cmp(&b.operation)
            .then_with(|| {
                a.time
                    .as_deref()
                    .unwrap_or("")
                    .cmp(b.time.as_deref().unwrap_or(""))
            })
            .then_with(|| a.manager.cmp(&b.manager))
            .then_with(|| a.api_version.cmp(&b.api_version))
            .then_with(|| a.subresource.cmp(&b.subresource))
    });
    let Some(root) = obj.as_object_mut() else {
        return;
    };
    let meta = root.entry("metadata").or_insert_with(|| json!({}));
    let Some(meta) = meta.as_object_mut() else {
        return;
    };
    meta.shift_remove("managedFields");
    if !entries.is_empty() {
        meta.insert(
            "managedFields".into(),
            Value::Array(entries.iter().map(Entry::to_json).collect()),
        );
    }
}

fn without_managed_fields(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.shift_remove("managedFields");
    }
    v
}

/// Fields no manager ever owns (kube-apiserver's strip set).
fn strip(set: &Set) -> Set {
    let mut s = Set::new();
    for p in [&["apiVersion"][..], &["kind"], &["metadata"]] {
        s.insert(&path(p));
    }
    for f in [
        "name",
        "namespace",
        "creationTimestamp",
        "selfLink",
        "uid",
        "clusterName",
        "generation",
        "managedFields",
        "resourceVersion",
    ] {
        s.insert(&path(&["metadata", f]));
    }
    set.difference(&s)
}

fn path(fields: &[&str]) -> Vec<Pe> {
    fields.iter().map(|f| Pe::Field(f.to_string())).collect()
}

fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("")
}

/// `ns/name; group/version, Kind=kind`, as typed-object errors name the object.
fn object_ref(obj: &Value, group: &str, kind: &str) -> String {
    let meta = |k: &str| {
        obj.pointer(&format!("/metadata/{k}"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let version = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .map(|av| av.rsplit('/').next().unwrap_or(av))
        .unwrap_or("v1");
    format!(
        "{}/{}; {group}/{version}, Kind={kind}",
        meta("namespace"),
        meta("name")
    )
}

fn validation_message(errs: &[ValidationError]) -> String {
    let one = |e: &ValidationError| {
        if e.path.is_empty() {
            e.message.clone()
        } else {
            format!("{}: {}", e.path, e.message)
        }
    };
    if errs.len() == 1 {
        return one(&errs[0]);
    }
    let mut lines = vec!["errors:".to_string()];
    lines.extend(errs.iter().map(|e| format!("  {}", one(e))));
    lines.join("\n")
}

/// Server-side apply of `config` (the applier's complete intent) onto `live` (`None` creates)
/// for field manager `manager`.
///
/// Merges the configuration, removes fields `manager` applied before and no longer applies
/// unless another manager owns them, reports conflicts with other managers' fields whose value
/// changes (unless `force`, which moves their ownership to `manager`), and records the Apply
/// entry in `metadata.managedFields` (time `now`, an RFC 3339 timestamp). `status` is neither
/// applied nor owned for kinds that have a status subresource. When the manager is `kubectl`
/// and the object carries kubectl's last-applied annotation, the annotation is rewritten from
/// the configuration, as kube-apiserver does. The caller still defaults and validates the
/// result.
pub fn server_side_apply(
    live: Option<&Value>,
    config: &Value,
    manager: &str,
    force: bool,
    group: &str,
    kind: &str,
    now: &str,
) -> Result<Value, PatchError> {
    let Value::Object(_) = config else {
        return Err(PatchFailure::bad_request(format!(
            "error decoding YAML: json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            gofmt::json_kind(config)
        ))
        .into());
    };
    if config
        .pointer("/metadata/managedFields")
        .is_some_and(|v| !v.is_null())
    {
        return Err(PatchFailure::bad_request("metadata.managedFields must be nil").into());
    }
    let patch_version = config
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if let Some(expected) = live
        .and_then(|l| l.get("apiVersion"))
        .and_then(Value::as_str)
    {
        if patch_version != expected {
            return Err(PatchFailure::bad_request(format!(
                "Incorrect version specified in apply patch. Specified patch version: {patch_version}, expected: {expected}"
            ))
            .into());
        }
    }
    let manager = if manager.is_empty() {
        "unknown"
    } else {
        manager
    };
    let api_version = if patch_version.is_empty() {
        if group.is_empty() {
            "v1".to_string()
        } else {
            format!("{group}/v1")
        }
    } else {
        patch_version.to_string()
    };
    let shape = kind_shape(group, kind);

    let mut cfg = config.clone();
    if has_status_subresource(group, kind) {
        if let Some(m) = cfg.as_object_mut() {
            m.shift_remove("status");
        }
    }
    let live_obj = live
        .map(without_managed_fields)
        .unwrap_or_else(|| json!({}));
    let mut entries = decode_entries(live);
    if live.is_some() && entries.is_empty() {
        // Fields that existed before anyone tracked ownership belong to this pseudo-manager.
        if let Ok(existing) = to_field_set(&live_obj, shape, false) {
            entries.push(Entry {
                manager: "before-first-apply".into(),
                operation: UPDATE.into(),
                api_version: api_version.clone(),
                time: None,
                subresource: String::new(),
                set: strip(&existing),
            });
        }
    }

    let applied_set = to_field_set(&cfg, shape, true).map_err(|errs| {
        PatchFailure::internal(format!(
            "failed to create typed patch object ({}): {}",
            object_ref(&cfg, group, kind),
            validation_message(&errs)
        ))
    })?;

    let mut merged = merge(&live_obj, &cfg, shape);

    let mine = entries
        .iter()
        .position(|e| e.same_manager(manager, APPLY, &api_version, ""));
    let others_owned = entries
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != mine)
        .fold(Set::new(), |acc, (_, e)| acc.union(&e.set));
    if let Some(i) = mine {
        let owners = applied_set.union(&others_owned);
        prune(
            &mut merged,
            &entries[i].set.with_named_parents(),
            Some(&owners),
            shape,
        );
    }

    let c = compare(&live_obj, &merged, shape);
    let changed = c.modified.union(&c.added);
    let mut conflicts: Vec<(usize, Set)> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if Some(i) == mine {
            continue;
        }
        let clash = e.set.intersection(&changed);
        if !clash.is_empty() {
            conflicts.push((i, clash));
        }
    }
    if !force && !conflicts.is_empty() {
        conflicts.sort_by(|a, b| {
            let (x, y) = (&entries[a.0], &entries[b.0]);
            (&x.manager, &x.operation, &x.api_version, &x.subresource).cmp(&(
                &y.manager,
                &y.operation,
                &y.api_version,
                &y.subresource,
            ))
        });
        let mut out = ApplyConflicts {
            conflicts: Vec::new(),
            manager_labels: Vec::new(),
        };
        for (i, clash) in &conflicts {
            for p in clash.paths() {
                out.conflicts
                    .push((entries[*i].manager.clone(), path_string(&p)));
                out.manager_labels.push(entries[*i].label());
            }
        }
        return Err(PatchError::Conflict(out));
    }
    for (i, clash) in &conflicts {
        entries[*i].set = entries[*i].set.difference(clash);
    }
    for (i, e) in entries.iter_mut().enumerate() {
        if Some(i) != mine {
            e.set = e.set.difference(&c.removed);
        }
    }

    let object_changed = merged != live_obj;
    let new_set = strip(&applied_set);
    match mine {
        Some(i) => {
            let e = &mut entries[i];
            e.set = new_set;
            e.api_version = api_version.clone();
            if object_changed {
                e.time = Some(now.to_string());
            }
        }
        // An apply that changes nothing does not stamp a time, even on a new entry.
        None => entries.push(Entry {
            manager: manager.to_string(),
            operation: APPLY.into(),
            api_version: api_version.clone(),
            time: object_changed.then(|| now.to_string()),
            subresource: String::new(),
            set: new_set,
        }),
    }

    if manager == "kubectl"
        && merged
            .pointer(&format!(
                "/metadata/annotations/{}",
                LAST_APPLIED.replace('/', "~1")
            ))
            .is_some()
    {
        let value = last_applied(config);
        if let Some(a) = merged
            .pointer_mut("/metadata/annotations")
            .and_then(Value::as_object_mut)
        {
            a.insert(LAST_APPLIED.into(), json!(value));
        }
    }
    drop_new_nulls(&mut merged, Some(&live_obj));
    encode_entries(&mut merged, entries);
    Ok(merged)
}

/// kubectl's last-applied annotation value for an applied configuration: the configuration
/// without that annotation, encoded as Go's JSON encoder writes it (sorted keys, trailing
/// newline).
fn last_applied(config: &Value) -> String {
    let mut c = config.clone();
    if let Some(a) = c
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        a.shift_remove(LAST_APPLIED);
    }
    format!("{}\n", gofmt::marshal(&c))
}

/// Removes what the applier owned last time and no longer applies, unless someone else
/// (including the new configuration) owns it or something below it.
fn prune(v: &mut Value, last: &Set, owners: Option<&Set>, shape: Shape) {
    match v {
        Value::Object(m) => {
            if shape.is_atomic() {
                return;
            }
            for pe in last.elements() {
                let Pe::Field(k) = &pe else { continue };
                if !m.contains_key(k) {
                    continue;
                }
                let owned = owners.is_some_and(|o| o.touches(&pe));
                if last.is_member(&pe) && !owned {
                    m.shift_remove(k);
                    continue;
                }
                if let Some(sub) = last.child(&pe) {
                    let child = m.get_mut(k).expect("checked");
                    let was_empty = is_empty_container(Some(child));
                    prune(
                        child,
                        sub,
                        owners.and_then(|o| o.child(&pe)),
                        shape.child(k),
                    );
                    if !was_empty && is_empty_container(Some(child)) {
                        m.shift_remove(k);
                    }
                }
            }
        }
        Value::Array(items) => {
            let Shape::List(def) = shape else { return };
            let mut kept = Vec::with_capacity(items.len());
            for (i, mut item) in std::mem::take(items).into_iter().enumerate() {
                let pe = match list_item_pe(&item, def, i) {
                    Some(pe) => pe,
                    None => {
                        kept.push(item);
                        continue;
                    }
                };
                let owned = owners.is_some_and(|o| o.touches(&pe));
                if last.is_member(&pe) && !owned {
                    continue;
                }
                if let Some(sub) = last.child(&pe) {
                    prune(&mut item, sub, owners.and_then(|o| o.child(&pe)), def.item);
                }
                kept.push(item);
            }
            *items = kept;
        }
        _ => {}
    }
}

/// Drops null-valued keys the configuration introduced (a typed object has no such fields),
/// keeping nulls the live object already had (e.g. a pod template's `creationTimestamp`).
fn drop_new_nulls(v: &mut Value, live: Option<&Value>) {
    match v {
        Value::Object(m) => {
            m.retain(|k, x| {
                !x.is_null() || live.and_then(|l| l.get(k)).is_some_and(Value::is_null)
            });
            for (k, x) in m.iter_mut() {
                drop_new_nulls(x, live.and_then(|l| l.get(k)));
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| drop_new_nulls(x, None)),
        _ => {}
    }
}

/// Records, for a create (`old` = `None`), update or non-apply patch of the main resource, the
/// fields `manager` changed in an Update entry of `new`'s `metadata.managedFields`
/// (`api_version` like `v1` or `apps/v1`, time `now`). Other managers lose ownership of fields
/// whose value changed or that were removed. `status` is not tracked for kinds with a status
/// subresource. `new` is the object as decoded and defaulted, before server-side allocation
/// (kube-apiserver records ownership before the registry fills in e.g. clusterIP).
///
/// If `new` carries its own non-empty `managedFields` they replace the stored ones; `[]` or
/// `[{}]` resets them.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    api_version: &str,
    now: &str,
) {
    let group = group_of(api_version).to_string();
    let kind = new
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let shape = kind_shape(&group, &kind);
    let provided = new.pointer("/metadata/managedFields").cloned();
    let entries = match provided.as_ref().and_then(Value::as_array) {
        Some(list)
            if list.is_empty()
                || (list.len() == 1 && list[0].as_object().is_some_and(Map::is_empty)) =>
        {
            Vec::new()
        }
        Some(list) if !list.is_empty() => {
            let from_new = decode_entries(Some(new));
            if from_new.is_empty() {
                decode_entries(old)
            } else {
                from_new
            }
        }
        _ => decode_entries(old),
    };
    let mut before = old
        .map(without_managed_fields)
        .unwrap_or_else(|| zero_object(&group, &kind));
    let mut after = without_managed_fields(new);
    if has_status_subresource(&group, &kind) {
        for o in [&mut before, &mut after] {
            if let Some(m) = o.as_object_mut() {
                m.shift_remove("status");
            }
        }
    }
    record(
        entries,
        &before,
        &after,
        new,
        shape,
        manager,
        api_version,
        "",
        now,
    );
}

/// Like [`record_update`] for a write through the `status` subresource: only `status` changes
/// count, and they go to the manager's Update entry with `subresource: status`. Managed fields
/// sent in the request are ignored, as for every subresource.
pub fn record_status_update(
    old: &Value,
    new: &mut Value,
    manager: &str,
    api_version: &str,
    now: &str,
) {
    let group = group_of(api_version).to_string();
    let kind = new
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let shape = kind_shape(&group, &kind);
    let entries = decode_entries(Some(old));
    let only_status = |v: &Value| match v.get("status") {
        Some(s) => json!({ "status": s }),
        None => json!({}),
    };
    let before = only_status(old);
    let after = only_status(new);
    record(
        entries,
        &before,
        &after,
        new,
        shape,
        manager,
        api_version,
        "status",
        now,
    );
}

#[allow(clippy::too_many_arguments)]
fn record(
    mut entries: Vec<Entry>,
    before: &Value,
    after: &Value,
    new: &mut Value,
    shape: Shape,
    manager: &str,
    api_version: &str,
    subresource: &str,
    now: &str,
) {
    let manager = if manager.is_empty() {
        "unknown"
    } else {
        manager
    };
    let c = compare(before, after, shape);
    let changed = c.modified.union(&c.added);
    let mine = strip(&changed.difference(&c.removed));
    for e in entries.iter_mut() {
        e.set = e.set.difference(&changed).difference(&c.removed);
    }
    if !mine.is_empty() {
        match entries
            .iter_mut()
            .find(|e| e.same_manager(manager, UPDATE, api_version, subresource))
        {
            Some(e) => {
                e.set = mine.union(&e.set);
                e.time = Some(now.to_string());
            }
            None => entries.push(Entry {
                manager: manager.to_string(),
                operation: UPDATE.into(),
                api_version: api_version.to_string(),
                time: Some(now.to_string()),
                subresource: subresource.to_string(),
                set: mine,
            }),
        }
    }
    encode_entries(new, entries);
}
