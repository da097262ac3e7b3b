//! RFC 6902 JSON patch with `evanphx/json-patch` (v4) behaviour, as kube-apiserver runs it.
//!
//! kube-apiserver decodes the operation list first (400 on failure) and turns any error while
//! applying into a 422 with a fixed text, so only success/failure of each operation matters here.

use crate::{gofmt, PatchError, PatchFailure};
use serde_json::Value;

/// kube-apiserver refuses larger patches with 413.
const MAX_OPERATIONS: usize = 10000;

pub(crate) fn apply(doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    let ops = match patch {
        Value::Array(ops) => ops,
        other => {
            return Err(PatchFailure::bad_request(format!(
                "error decoding patch: json: cannot unmarshal {} into Go value of type []handlers.jsonPatchOp",
                gofmt::json_kind(other)
            ))
            .into())
        }
    };
    for op in ops {
        if !op.is_object() && !op.is_null() {
            return Err(PatchFailure::bad_request(format!(
                "error decoding patch: json: cannot unmarshal {} into Go value of type handlers.jsonPatchOp",
                gofmt::json_kind(op)
            ))
            .into());
        }
    }
    if ops.len() > MAX_OPERATIONS {
        return Err(PatchFailure::too_large(format!(
            "Request entity too large: The allowed maximum operations in a JSON patch is {MAX_OPERATIONS}, got {}",
            ops.len()
        ))
        .into());
    }
    let mut doc = doc.clone();
    for op in ops {
        apply_op(&mut doc, op).map_err(|()| PatchError::Invalid(PatchFailure::unprocessable()))?;
    }
    Ok(doc)
}

type OpResult<T> = Result<T, ()>;

fn apply_op(doc: &mut Value, op: &Value) -> OpResult<()> {
    let kind = op.get("op").and_then(Value::as_str).unwrap_or("unknown");
    let path = || op.get("path").and_then(Value::as_str).ok_or(());
    match kind {
        "add" => {
            let value = op.get("value").ok_or(())?.clone();
            add(doc, &parse_pointer(path()?)?, value)
        }
        "remove" => remove(doc, &parse_pointer(path()?)?).map(|_| ()),
        "replace" => {
            let value = op.get("value").ok_or(())?.clone();
            let tokens = parse_pointer(path()?)?;
            let (parent, last) = parent_mut(doc, &tokens)?;
            match parent {
                Value::Object(m) => {
                    let slot = m.get_mut(last).ok_or(())?;
                    *slot = value;
                    Ok(())
                }
                Value::Array(a) => {
                    let i = array_index(last, a.len(), false)?;
                    a[i] = value;
                    Ok(())
                }
                _ => Err(()),
            }
        }
        "move" => {
            let from = op.get("from").and_then(Value::as_str).ok_or(())?;
            let to = path()?;
            // Moving a location into one of its own children is invalid.
            if to != from && to.starts_with(from) && to[from.len()..].starts_with('/') {
                return Err(());
            }
            let value = remove(doc, &parse_pointer(from)?)?;
            add(doc, &parse_pointer(to)?, value)
        }
        "copy" => {
            let from = op.get("from").and_then(Value::as_str).ok_or(())?;
            let value = get(doc, &parse_pointer(from)?).ok_or(())?.clone();
            add(doc, &parse_pointer(path()?)?, value)
        }
        "test" => {
            let tokens = parse_pointer(path()?)?;
            let expected = op.get("value").unwrap_or(&Value::Null);
            match get(doc, &tokens) {
                // A missing location equals an expected null, as in evanphx/json-patch.
                None if expected.is_null() => Ok(()),
                Some(actual) if json_equal(actual, expected) => Ok(()),
                _ => Err(()),
            }
        }
        _ => Err(()),
    }
}

/// RFC 6901 pointer tokens. evanphx/json-patch (v4) finds no container for the whole-document
/// pointer `""`, so every operation on it fails.
fn parse_pointer(p: &str) -> OpResult<Vec<String>> {
    let rest = p.strip_prefix('/').ok_or(())?;
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn get<'a>(doc: &'a Value, tokens: &[String]) -> Option<&'a Value> {
    let mut cur = doc;
    for t in tokens {
        cur = match cur {
            Value::Object(m) => m.get(t)?,
            Value::Array(a) => a.get(array_index(t, a.len(), false).ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn parent_mut<'a>(doc: &'a mut Value, tokens: &'a [String]) -> OpResult<(&'a mut Value, &'a str)> {
    let (last, init) = tokens.split_last().ok_or(())?;
    let mut cur = doc;
    for t in init {
        cur = match cur {
            Value::Object(m) => m.get_mut(t).ok_or(())?,
            Value::Array(a) => {
                let i = array_index(t, a.len(), false)?;
                &mut a[i]
            }
            _ => return Err(()),
        };
    }
    Ok((cur, last.as_str()))
}

/// An array index token as evanphx/json-patch reads it (strconv.Atoi, negative indices count
/// from the end); `-` and `len` are only valid when inserting.
fn array_index(t: &str, len: usize, inserting: bool) -> OpResult<usize> {
    if inserting && t == "-" {
        return Ok(len);
    }
    let i: i64 = t.parse().map_err(|_| ())?;
    let len = len as i64;
    let i = if i < 0 {
        if i < -len {
            return Err(());
        }
        i + len
    } else {
        i
    };
    let max = if inserting { len } else { len - 1 };
    if i > max {
        return Err(());
    }
    Ok(i as usize)
}

fn add(doc: &mut Value, tokens: &[String], value: Value) -> OpResult<()> {
    let (parent, last) = parent_mut(doc, tokens)?;
    match parent {
        Value::Object(m) => {
            m.insert(last.to_string(), value);
            Ok(())
        }
        Value::Array(a) => {
            let i = array_index(last, a.len(), true)?;
            a.insert(i, value);
            Ok(())
        }
        _ => Err(()),
    }
}

fn remove(doc: &mut Value, tokens: &[String]) -> OpResult<Value> {
    let (parent, last) = parent_mut(doc, tokens)?;
    match parent {
        Value::Object(m) => m.shift_remove(last).ok_or(()),
        Value::Array(a) => {
            let i = array_index(last, a.len(), false)?;
            Ok(a.remove(i))
        }
        _ => Err(()),
    }
}

/// Equality of decoded JSON, numbers compared by value.
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_equal(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, p)| y.get(k).is_some_and(|q| json_equal(p, q)))
        }
        _ => a == b,
    }
}
