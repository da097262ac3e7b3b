//! Decodes Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`) into the
//! Kubernetes JSON form of the object.
//!
//! kubectl 1.32+ POSTs protobuf from its typed clients (`create namespace`, `create service`,
//! `create deployment`, ...). A body is the magic `k8s\0` followed by a `runtime.Unknown`
//! envelope whose `typeMeta` names the apiVersion and kind and whose `raw` holds the object.
//! The JSON produced is what Go's API machinery would write after decoding the same bytes, so it
//! equals the JSON body an older kubectl sends for the same command (see `json` for the rules).

mod json;
mod metadata;
mod objects;
mod pod;
mod volumes;
mod workloads;

use k8s_pb::api::{apps::v1 as apps, autoscaling::v1 as autoscaling, batch::v1 as batch};
use k8s_pb::api::{core::v1 as core, discovery::v1 as discovery};
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::Unknown;
use prost::Message;
use serde_json::{Map, Value};

use crate::json::GoJson;

/// The four bytes every Kubernetes protobuf body starts with: `k8s\0`.
pub const MAGIC: [u8; 4] = *b"k8s\0";

/// Why a protobuf body could not be turned into JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The body does not start with [`MAGIC`].
    #[error(
        "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]"
    )]
    BadMagic,
    /// The envelope or the object is not valid protobuf for its type (truncated, wrong wire
    /// types, ...) or holds a value that has no JSON form.
    #[error("malformed protobuf body: {0}")]
    Malformed(String),
    /// The envelope names an apiVersion/kind this crate does not decode.
    #[error("no kind {kind:?} is registered for version {api_version:?}")]
    UnsupportedKind { api_version: String, kind: String },
}

/// Declares the decodable kinds: `(apiVersion, kind) => message type`.
macro_rules! kinds {
    ($(($api_version:literal, $kind:literal) => $message:ty,)*) => {
        const SUPPORTED_KINDS: &[(&str, &str)] = &[$(($api_version, $kind)),*];

        /// The object's fields as JSON, or `None` for a kind not in the table.
        fn object_fields(api_version: &str, kind: &str, raw: &[u8]) -> Option<Result<Value, DecodeError>> {
            match (api_version, kind) {
                $(($api_version, $kind) => Some(fields_of::<$message>(api_version, kind, raw)),)*
                _ => None,
            }
        }
    };
}

kinds! {
    ("v1", "Namespace") => core::Namespace,
    ("v1", "Service") => core::Service,
    ("v1", "Pod") => core::Pod,
    ("v1", "ConfigMap") => core::ConfigMap,
    ("v1", "Secret") => core::Secret,
    ("v1", "ServiceAccount") => core::ServiceAccount,
    ("v1", "ResourceQuota") => core::ResourceQuota,
    ("v1", "Event") => core::Event,
    ("v1", "Endpoints") => core::Endpoints,
    ("v1", "Node") => core::Node,
    ("apps/v1", "Deployment") => apps::Deployment,
    ("apps/v1", "ReplicaSet") => apps::ReplicaSet,
    ("batch/v1", "Job") => batch::Job,
    ("batch/v1", "CronJob") => batch::CronJob,
    ("discovery.k8s.io/v1", "EndpointSlice") => discovery::EndpointSlice,
    ("autoscaling/v1", "Scale") => autoscaling::Scale,
    // DeleteOptions is registered in every group version; typed clients send it with the
    // group version of the resource being deleted.
    ("v1", "DeleteOptions") => meta::DeleteOptions,
    ("meta.k8s.io/v1", "DeleteOptions") => meta::DeleteOptions,
    ("apps/v1", "DeleteOptions") => meta::DeleteOptions,
    ("batch/v1", "DeleteOptions") => meta::DeleteOptions,
    ("discovery.k8s.io/v1", "DeleteOptions") => meta::DeleteOptions,
    ("autoscaling/v1", "DeleteOptions") => meta::DeleteOptions,
}

fn fields_of<M: Message + Default + GoJson>(
    api_version: &str,
    kind: &str,
    raw: &[u8],
) -> Result<Value, DecodeError> {
    let message = M::decode(raw)
        .map_err(|err| DecodeError::Malformed(format!("{api_version} {kind}: {err}")))?;
    message.to_json()
}

/// Decodes a full protobuf body (with magic); returns the object as JSON including
/// `apiVersion` and `kind` (written first, `kind` before `apiVersion`, as Go does).
pub fn decode(body: &[u8]) -> Result<Value, DecodeError> {
    if body.is_empty() {
        return Err(DecodeError::Malformed("empty data".to_string()));
    }
    let envelope = body.strip_prefix(&MAGIC).ok_or(DecodeError::BadMagic)?;
    if envelope.is_empty() {
        return Err(DecodeError::Malformed("empty body".to_string()));
    }
    let unknown = Unknown::decode(envelope)
        .map_err(|err| DecodeError::Malformed(format!("envelope (runtime.Unknown): {err}")))?;
    let type_meta = unknown.type_meta.unwrap_or_default();
    let api_version = type_meta.api_version.unwrap_or_default();
    let kind = type_meta.kind.unwrap_or_default();
    if kind.is_empty() {
        return Err(DecodeError::Malformed(
            "the envelope's typeMeta has no kind".to_string(),
        ));
    }
    let raw = unknown.raw.unwrap_or_default();
    let fields = object_fields(&api_version, &kind, &raw).ok_or_else(|| {
        DecodeError::UnsupportedKind {
            api_version: api_version.clone(),
            kind: kind.clone(),
        }
    })??;
    let mut object = Map::new();
    object.insert("kind".to_string(), Value::String(kind));
    object.insert("apiVersion".to_string(), Value::String(api_version));
    if let Value::Object(fields) = fields {
        object.extend(fields);
    }
    Ok(Value::Object(object))
}

/// The `(apiVersion, kind)` pairs [`decode`] understands.
pub fn supported_kinds() -> &'static [(&'static str, &'static str)] {
    SUPPORTED_KINDS
}
