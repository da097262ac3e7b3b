//! `meta.k8s.io/v1` Table responses built from kubeport-printers' columns and cells.

use crate::resources::ResourceInfo;
use serde_json::{json, Value};

pub fn partial_metadata(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

pub fn column_definitions(info: &ResourceInfo) -> Value {
    let cols: Vec<Value> = kubeport_printers::columns(info.group, info.plural)
        .iter()
        .map(|c| json!({"name": c.name, "type": c.type_, "format": c.format, "description": c.description, "priority": c.priority}))
        .collect();
    Value::Array(cols)
}

/// A Table of `items`. `include` is the `includeObject` parameter (None|Metadata|Object,
/// default Metadata); `with_columns` is false for watch events after the first.
pub fn table(
    info: &ResourceInfo,
    items: &[Value],
    list_meta: Value,
    include: Option<&str>,
    with_columns: bool,
) -> Value {
    let now = chrono::Utc::now();
    let rows: Vec<Value> = items
        .iter()
        .map(|obj| {
            let cells = kubeport_printers::cells(info.group, info.plural, obj, now);
            let mut row = json!({"cells": cells});
            match include.unwrap_or("Metadata") {
                "None" => {}
                "Object" => row["object"] = obj.clone(),
                _ => row["object"] = partial_metadata(obj),
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": if with_columns { column_definitions(info) } else { json!([]) },
        "rows": rows,
    })
}
