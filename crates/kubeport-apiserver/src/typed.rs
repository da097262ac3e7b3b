//! Typed decoding of request objects: the same fields kube-apiserver's Go structs accept.
//!
//! An object is decoded into its k8s-openapi type and encoded back; keys that do not
//! survive the round trip are unknown fields. That gives `fieldValidation=Strict|Warn|Ignore`
//! its meaning and prunes unknown fields from what is stored, as kube-apiserver does.

use crate::resources::ResourceInfo;
use serde_json::Value;

/// The outcome of decoding: the normalized object and the paths of unknown fields.
pub struct Decoded {
    pub object: Value,
    pub unknown_fields: Vec<String>,
}

fn roundtrip<T: serde::de::DeserializeOwned + serde::Serialize>(
    obj: &Value,
) -> Result<Value, String> {
    let typed: T = serde_json::from_value(obj.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(&typed).map_err(|e| e.to_string())
}

/// Decodes `obj` as the resource's type. Errors read like kube-apiserver's:
/// `Service in version "v1" cannot be handled as a Service: <why>`.
pub fn decode(info: &ResourceInfo, obj: &Value) -> Result<Decoded, String> {
    use k8s_openapi::api::{
        apps::v1 as apps, coordination::v1 as coord, core::v1 as core, discovery::v1 as disc,
    };
    let result = match (info.group, info.kind) {
        ("", "Namespace") => roundtrip::<core::Namespace>(obj),
        ("", "Service") => roundtrip::<core::Service>(obj),
        ("", "Endpoints") => roundtrip::<core::Endpoints>(obj),
        ("", "Pod") => roundtrip::<core::Pod>(obj),
        ("", "Node") => roundtrip::<core::Node>(obj),
        ("", "Event") => roundtrip::<core::Event>(obj),
        ("", "ConfigMap") => roundtrip::<core::ConfigMap>(obj),
        ("", "Secret") => roundtrip::<core::Secret>(obj),
        ("", "ServiceAccount") => roundtrip::<core::ServiceAccount>(obj),
        ("apps", "Deployment") => roundtrip::<apps::Deployment>(obj),
        ("apps", "ReplicaSet") => roundtrip::<apps::ReplicaSet>(obj),
        ("discovery.k8s.io", "EndpointSlice") => roundtrip::<disc::EndpointSlice>(obj),
        ("coordination.k8s.io", "Lease") => roundtrip::<coord::Lease>(obj),
        _ => Ok(obj.clone()),
    };
    let object = result.map_err(|e| cannot_handle(info, &e))?;
    let mut unknown_fields = Vec::new();
    diff_unknown(obj, &object, "", &mut unknown_fields);
    Ok(Decoded {
        object,
        unknown_fields,
    })
}

pub fn cannot_handle(info: &ResourceInfo, why: &str) -> String {
    format!(
        "{} in version \"{}\" cannot be handled as a {}: {}",
        info.kind, info.version, info.kind, why
    )
}

/// Collects `spec.ports[0].foo`-style paths present in `input` but absent from `typed`.
fn diff_unknown(input: &Value, typed: &Value, path: &str, out: &mut Vec<String>) {
    match (input, typed) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match b.get(k) {
                    Some(bv) => diff_unknown(v, bv, &p, out),
                    None if v.is_null() => {}
                    // Empty objects and lists of optional fields are dropped by some typed
                    // encoders without being unknown; only report keys the type lacks.
                    None if is_empty_container(v) => {}
                    None => out.push(p),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (x, y)) in a.iter().zip(b.iter()).enumerate() {
                diff_unknown(x, y, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn is_empty_container(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.values().all(|x| x.is_null() || is_empty_container(x)),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::find;
    use serde_json::json;

    #[test]
    fn finds_unknown_fields_with_paths() {
        let info = find("", "v1", "services").unwrap();
        let obj = json!({"apiVersion":"v1","kind":"Service","metadata":{"name":"a"},
            "spec":{"ports":[{"port":80,"bogus":1}],"foo":"x"}});
        let d = decode(info, &obj).unwrap();
        assert_eq!(
            d.unknown_fields,
            vec!["spec.ports[0].bogus".to_string(), "spec.foo".to_string()]
        );
        assert!(d.object["spec"].get("foo").is_none());
    }

    #[test]
    fn wrong_types_cannot_be_handled() {
        let info = find("", "v1", "services").unwrap();
        let obj = json!({"apiVersion":"v1","kind":"Service","metadata":{"name":"a"},"spec":{"ports":[{"port":"x"}]}});
        let e = decode(info, &obj).err().unwrap();
        assert!(
            e.starts_with("Service in version \"v1\" cannot be handled as a Service: "),
            "{e}"
        );
    }
}
