//! Small accessors over objects in their JSON form. Absent and mistyped fields read as
//! the Go zero value, the way a decoded Go struct would present them.

use serde_json::Value;

/// The value at `path`, if every step exists.
pub(crate) fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, key| cur.get(key))
}

/// The string at `path`, if it is one.
pub(crate) fn opt_str<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    get(v, path).and_then(Value::as_str)
}

/// The string at `path`, or `""`.
pub(crate) fn str_or_empty<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    opt_str(v, path).unwrap_or("")
}

/// The integer at `path`, if it is one.
pub(crate) fn opt_i64(v: &Value, path: &[&str]) -> Option<i64> {
    get(v, path).and_then(Value::as_i64)
}

/// The integer at `path`, or 0.
pub(crate) fn i64_or_zero(v: &Value, path: &[&str]) -> i64 {
    opt_i64(v, path).unwrap_or(0)
}

/// The boolean at `path`, or false.
pub(crate) fn bool_or_false(v: &Value, path: &[&str]) -> bool {
    get(v, path).and_then(Value::as_bool).unwrap_or(false)
}

/// The array at `path`, or an empty slice.
pub(crate) fn array<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    get(v, path)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// Number of entries of the map (or array) at `path`; 0 when absent.
pub(crate) fn len_at(v: &Value, path: &[&str]) -> usize {
    match get(v, path) {
        Some(Value::Object(m)) => m.len(),
        Some(Value::Array(a)) => a.len(),
        _ => 0,
    }
}

/// Whether `path` holds a non-null value (a Go pointer that is set).
pub(crate) fn is_set(v: &Value, path: &[&str]) -> bool {
    !matches!(get(v, path), None | Some(Value::Null))
}

/// `metadata.name`.
pub(crate) fn name(obj: &Value) -> &str {
    str_or_empty(obj, &["metadata", "name"])
}

/// `metadata.creationTimestamp`.
pub(crate) fn creation_timestamp(obj: &Value) -> Option<&str> {
    opt_str(obj, &["metadata", "creationTimestamp"])
}

/// A JSON string cell.
pub(crate) fn s(text: impl Into<String>) -> Value {
    Value::String(text.into())
}

/// A JSON integer cell (Go `int64` cells).
pub(crate) fn int(n: i64) -> Value {
    Value::from(n)
}
