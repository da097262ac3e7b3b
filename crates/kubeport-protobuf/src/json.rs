//! The JSON that Go's `encoding/json` writes for a Kubernetes object after the API machinery
//! has decoded it from protobuf.
//!
//! The rules mirror Go because a kubectl that sends protobuf (1.32+) and one that sends JSON
//! (1.27-1.31) must leave the server with the same object:
//! - Go's protobuf encoder writes every non-pointer field, zero or not, and pointer fields only
//!   when set. Decoding turns both absent and zero values into Go zero values, so a field with
//!   `omitempty` is written only when it is non-zero ([`GoJson::is_empty`]).
//! - Pointer fields (`*int32`, `*bool`, `*string`) keep their presence: `ptr` fields are written
//!   whenever the wire had them, zero or not (`replicas: 0` stays).
//! - Fields without `omitempty` (`always`) are written even when zero: `""`, `0`, `false`, or
//!   `null` for absent lists, maps and pointers. `null` marks a `*string` without `omitempty`.
//! - Struct-valued fields are never "empty" in Go, so a nested message is written whenever it
//!   was on the wire (Go always puts non-pointer structs there): `"spec":{}`, `"status":{}`.
//! - `inline` fields (Go's `json:",inline"`) merge their keys into the parent object.

use std::collections::BTreeMap;

use base64::Engine as _;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1::{FieldsV1, MicroTime, Time};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{Map, Value};

use crate::DecodeError;

/// Converts a decoded protobuf value into the JSON that Go would write for it.
pub(crate) trait GoJson {
    fn to_json(&self) -> Result<Value, DecodeError>;

    /// Go's `omitempty` test: `""`, `0`, `false`, empty lists and maps. Structs never are.
    fn is_empty(&self) -> bool {
        false
    }

    /// What Go writes for a field of this type that is not `omitempty` and was absent on the
    /// wire (so it holds Go's zero value): scalars are zero, lists/maps/pointers are `null`.
    fn zero_json() -> Value
    where
        Self: Sized,
    {
        Value::Null
    }
}

impl GoJson for String {
    fn to_json(&self) -> Result<Value, DecodeError> {
        Ok(Value::String(self.clone()))
    }
    fn is_empty(&self) -> bool {
        self.is_empty()
    }
    fn zero_json() -> Value {
        Value::String(String::new())
    }
}

macro_rules! go_json_scalar {
    ($($t:ty => $zero:expr),*) => {$(
        impl GoJson for $t {
            fn to_json(&self) -> Result<Value, DecodeError> {
                Ok(Value::from(*self))
            }
            fn is_empty(&self) -> bool {
                *self == $zero
            }
            fn zero_json() -> Value {
                Value::from($zero)
            }
        }
    )*};
}
go_json_scalar!(i32 => 0, i64 => 0, bool => false);

/// An absent optional field holds Go's zero value.
impl<T: GoJson> GoJson for Option<T> {
    fn to_json(&self) -> Result<Value, DecodeError> {
        match self {
            Some(value) => value.to_json(),
            None => Ok(T::zero_json()),
        }
    }
    fn is_empty(&self) -> bool {
        self.as_ref().is_none_or(GoJson::is_empty)
    }
}

/// A repeated field; protobuf decoding leaves an empty list `nil`, which Go writes as `null`.
impl<T: GoJson> GoJson for Vec<T> {
    fn to_json(&self) -> Result<Value, DecodeError> {
        if self.is_empty() {
            return Ok(Value::Null);
        }
        self.iter()
            .map(GoJson::to_json)
            .collect::<Result<_, _>>()
            .map(Value::Array)
    }
    fn is_empty(&self) -> bool {
        self.is_empty()
    }
}

/// `[]byte`: base64 (standard alphabet, padded) like Go; only used as map values
/// (`Secret.data`, `ConfigMap.binaryData`).
impl GoJson for Vec<u8> {
    fn to_json(&self) -> Result<Value, DecodeError> {
        Ok(Value::String(
            base64::engine::general_purpose::STANDARD.encode(self),
        ))
    }
    fn is_empty(&self) -> bool {
        self.is_empty()
    }
}

/// A map; Go writes keys sorted, as a `BTreeMap` iterates them. Empty maps are `nil` (`null`).
impl<T: GoJson> GoJson for BTreeMap<String, T> {
    fn to_json(&self) -> Result<Value, DecodeError> {
        if self.is_empty() {
            return Ok(Value::Null);
        }
        let mut object = Map::new();
        for (key, value) in self {
            object.insert(key.clone(), value.to_json()?);
        }
        Ok(Value::Object(object))
    }
    fn is_empty(&self) -> bool {
        self.is_empty()
    }
}

/// Seconds from 1970 to Go's zero `time.Time` (January 1, year 1, UTC), which Go writes as `null`.
const GO_ZERO_TIME_UNIX: i64 = -62_135_596_800;

/// Formats a UTC instant as RFC 3339 with `fraction_digits` (0 or 6) digits of fraction, or `null`
/// for Go's zero time.
fn rfc3339(seconds: i64, nanos: i64, fraction_digits: usize) -> Result<Value, DecodeError> {
    // Go's time.Unix normalizes nanoseconds outside [0, 1e9).
    let seconds = seconds
        .checked_add(nanos.div_euclid(1_000_000_000))
        .ok_or_else(|| DecodeError::Malformed(format!("timestamp {seconds}s is out of range")))?;
    let nanos = nanos.rem_euclid(1_000_000_000) as u32;
    if seconds == GO_ZERO_TIME_UNIX && nanos == 0 {
        return Ok(Value::Null);
    }
    let time = chrono::DateTime::from_timestamp(seconds, nanos)
        .filter(|t| (0..=9999).contains(&chrono::Datelike::year(t)))
        .ok_or_else(|| {
            DecodeError::Malformed(format!(
                "timestamp {seconds}s is outside the years 0-9999 that RFC 3339 can express"
            ))
        })?;
    let format = if fraction_digits == 6 {
        "%Y-%m-%dT%H:%M:%S%.6fZ"
    } else {
        "%Y-%m-%dT%H:%M:%SZ"
    };
    Ok(Value::String(time.format(format).to_string()))
}

/// `metav1.Time`: an empty message is the zero time (`null`); otherwise whole seconds, because
/// Go's decoder drops the nanoseconds ("2024-08-13T22:54:53Z").
impl GoJson for Time {
    fn to_json(&self) -> Result<Value, DecodeError> {
        if self.seconds.is_none() && self.nanos.is_none() {
            return Ok(Value::Null);
        }
        rfc3339(self.seconds.unwrap_or(0), 0, 0)
    }
}

/// `metav1.MicroTime`: like `Time` but keeps the fraction, written with six digits.
impl GoJson for MicroTime {
    fn to_json(&self) -> Result<Value, DecodeError> {
        if self.seconds.is_none() && self.nanos.is_none() {
            return Ok(Value::Null);
        }
        rfc3339(
            self.seconds.unwrap_or(0),
            i64::from(self.nanos.unwrap_or(0)),
            6,
        )
    }
}

/// `intstr.IntOrString`: type 0 is a number, type 1 a string.
impl GoJson for IntOrString {
    fn to_json(&self) -> Result<Value, DecodeError> {
        match self.r#type.unwrap_or(0) {
            0 => Ok(Value::from(self.int_val.unwrap_or(0))),
            1 => Ok(Value::String(self.str_val.clone().unwrap_or_default())),
            other => Err(DecodeError::Malformed(format!(
                "IntOrString has type {other}; only 0 (int) and 1 (string) exist"
            ))),
        }
    }
}

/// `resource.Quantity`: its canonical string; the zero quantity is "0".
impl GoJson for Quantity {
    fn to_json(&self) -> Result<Value, DecodeError> {
        Ok(Value::String(
            self.string.clone().unwrap_or_else(|| "0".to_string()),
        ))
    }
}

/// `metav1.FieldsV1`: raw JSON (a managedFields entry's field set), embedded as is.
impl GoJson for FieldsV1 {
    fn to_json(&self) -> Result<Value, DecodeError> {
        match self.raw.as_deref() {
            None | Some([]) => Ok(Value::Null),
            Some(raw) => serde_json::from_slice(raw).map_err(|err| {
                DecodeError::Malformed(format!("managedFields fieldsV1 is not JSON: {err}"))
            }),
        }
    }
}

/// Writes one field into `$object` according to its Go presence rule (see the module docs).
macro_rules! put_field {
    ($object:ident, $key:literal, $value:expr) => {
        if !$crate::json::GoJson::is_empty($value) {
            $object.insert($key.to_string(), $crate::json::GoJson::to_json($value)?);
        }
    };
    ($object:ident, $key:literal, $value:expr, ptr) => {
        if let Some(value) = $value {
            $object.insert($key.to_string(), $crate::json::GoJson::to_json(value)?);
        }
    };
    ($object:ident, $key:literal, $value:expr, always) => {
        $object.insert($key.to_string(), $crate::json::GoJson::to_json($value)?);
    };
    ($object:ident, $key:literal, $value:expr, null) => {
        $object.insert(
            $key.to_string(),
            match $value {
                Some(value) => $crate::json::GoJson::to_json(value)?,
                None => serde_json::Value::Null,
            },
        );
    };
    ($object:ident, $key:literal, $value:expr, inline) => {
        if let Some(value) = $value {
            if let serde_json::Value::Object(inner) = $crate::json::GoJson::to_json(value)? {
                $object.extend(inner);
            }
        }
    };
}

/// Implements [`GoJson`] for protobuf messages from a table of
/// `"jsonName" rust_field [ptr|always|null|inline]` entries in Go field order. JSON names are
/// those of k8s-openapi's serde code; `inline` entries have no name of their own (`""`).
macro_rules! go_json {
    ($($message:path { $($key:literal $field:ident $($mode:ident)?),* $(,)? })*) => {$(
        impl $crate::json::GoJson for $message {
            fn to_json(&self) -> Result<serde_json::Value, $crate::DecodeError> {
                let mut object = serde_json::Map::new();
                $( $crate::json::put_field!(object, $key, &self.$field $(, $mode)?); )*
                Ok(serde_json::Value::Object(object))
            }
        }
    )*};
}

pub(crate) use {go_json, put_field};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_follow_go() {
        let time = |seconds, nanos| Time { seconds, nanos }.to_json().unwrap();
        assert_eq!(time(None, None), Value::Null);
        assert_eq!(time(Some(1_723_589_693), Some(5)), "2024-08-13T22:54:53Z");
        assert_eq!(time(Some(0), None), "1970-01-01T00:00:00Z");
        assert_eq!(time(Some(GO_ZERO_TIME_UNIX), None), Value::Null);
        let micro = |seconds, nanos| MicroTime { seconds, nanos }.to_json().unwrap();
        assert_eq!(
            micro(Some(1_723_589_693), Some(123_456_789)),
            "2024-08-13T22:54:53.123456Z"
        );
        assert_eq!(
            micro(Some(1_723_589_693), None),
            "2024-08-13T22:54:53.000000Z"
        );
        assert_eq!(
            micro(Some(1_723_589_693), Some(-1)),
            "2024-08-13T22:54:52.999999Z"
        );
        assert!(matches!(
            Time {
                seconds: Some(i64::MAX),
                nanos: None
            }
            .to_json(),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            Time {
                seconds: Some(253_402_300_800),
                nanos: None
            }
            .to_json(),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn int_or_string() {
        let value = |r#type, int_val, str_val: Option<&str>| {
            IntOrString {
                r#type,
                int_val,
                str_val: str_val.map(String::from),
            }
            .to_json()
        };
        assert_eq!(value(Some(0), Some(8080), Some("")).unwrap(), 8080);
        assert_eq!(value(None, None, None).unwrap(), 0);
        assert_eq!(value(Some(1), Some(0), Some("http")).unwrap(), "http");
        assert_eq!(
            value(Some(7), None, None).unwrap_err().to_string(),
            "malformed protobuf body: IntOrString has type 7; only 0 (int) and 1 (string) exist"
        );
    }

    #[test]
    fn lists_maps_and_bytes() {
        assert_eq!(Vec::<String>::new().to_json().unwrap(), Value::Null);
        assert_eq!(vec![1i32, 2].to_json().unwrap(), serde_json::json!([1, 2]));
        let data = BTreeMap::from([
            ("b".to_string(), b"x".to_vec()),
            ("a".to_string(), vec![0xff]),
        ]);
        assert_eq!(
            serde_json::to_string(&data.to_json().unwrap()).unwrap(),
            r#"{"a":"/w==","b":"eA=="}"#
        );
        assert!(Some(String::new()).is_empty() && None::<i32>.is_empty() && !Some(1i64).is_empty());
        assert_eq!(None::<bool>.to_json().unwrap(), false);
    }
}
