//! RFC 7386 JSON merge patch with `evanphx/json-patch` (v4) behaviour.

use crate::{gofmt, PatchError, PatchFailure};
use serde_json::{Map, Value};

pub(crate) fn apply(doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    // kube-apiserver decodes the patch into a map before applying it.
    let Value::Object(patch) = patch else {
        return Err(PatchFailure::bad_request(format!(
            "error decoding patch: json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            gofmt::json_kind(patch)
        ))
        .into());
    };
    match doc {
        Value::Object(doc) => {
            let mut out = doc.clone();
            merge_into(&mut out, patch);
            Ok(Value::Object(out))
        }
        // A document that is not an object is replaced by the patch, without its nulls.
        _ => {
            let mut out = Value::Object(patch.clone());
            prune_nulls(&mut out);
            Ok(out)
        }
    }
}

fn merge_into(doc: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (k, pv) in patch {
        if pv.is_null() {
            doc.shift_remove(k);
            continue;
        }
        match doc.get_mut(k) {
            Some(cur @ Value::Object(_)) if pv.is_object() => {
                if let (Value::Object(cur), Value::Object(pv)) = (cur, pv) {
                    merge_into(cur, pv);
                }
            }
            // evanphx keeps nulls inside arrays that replace an object, and prunes them otherwise.
            Some(Value::Object(_)) => {
                doc.insert(k.clone(), pv.clone());
            }
            _ => {
                let mut v = pv.clone();
                prune_nulls(&mut v);
                doc.insert(k.clone(), v);
            }
        }
    }
}

/// Removes null-valued keys from objects, recursing through objects and arrays (array elements
/// that are null themselves stay, as in evanphx/json-patch).
pub(crate) fn prune_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            for x in m.values_mut() {
                prune_nulls(x);
            }
        }
        Value::Array(a) => {
            for x in a.iter_mut() {
                prune_nulls(x);
            }
        }
        _ => {}
    }
}
