//! Request-body decoding (JSON, YAML, protobuf) and response bodies.

use bytes::Bytes;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full};
use hyper::body::Incoming;
use kubeport_core::Status;
use serde_json::Value;
use std::convert::Infallible;

/// kube-apiserver's request size limit (3 MiB).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

pub type Body = UnsyncBoxBody<Bytes, Infallible>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

/// How much of an oversized body is read and discarded so the client sees the 413 rather
/// than a reset connection while it is still sending.
const DRAIN_LIMIT_BYTES: usize = 64 * 1024 * 1024;

/// Reads the whole body, refusing more than the limit with 413.
pub async fn read_limited(body: Incoming, content_length: Option<u64>) -> Result<Bytes, Status> {
    let mut body = body;
    let mut buf = bytes::BytesMut::new();
    let mut seen = 0usize;
    let declared_too_large = content_length.is_some_and(|n| n > MAX_BODY_BYTES as u64);
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| Status::bad_request(format!("error reading request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            seen += data.len();
            if seen > DRAIN_LIMIT_BYTES {
                break;
            }
            if !declared_too_large && seen <= MAX_BODY_BYTES {
                buf.extend_from_slice(&data);
            }
        }
    }
    if declared_too_large || seen > MAX_BODY_BYTES {
        return Err(Status::too_large(MAX_BODY_BYTES));
    }
    Ok(buf.freeze())
}

/// Media type without parameters, lower-cased.
pub fn media_type(content_type: Option<&str>) -> String {
    content_type
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Decodes an object body by its content type.
pub fn decode_object(content_type: Option<&str>, bytes: &[u8]) -> Result<Value, Status> {
    match media_type(content_type).as_str() {
        "" | "application/json" | "*/*" => parse_json(bytes),
        "application/yaml" | "application/x-yaml" | "text/yaml" => parse_yaml(bytes),
        "application/vnd.kubernetes.protobuf" => kubeport_protobuf::decode(bytes).map_err(|e| {
            Status::bad_request(format!(
                "the body of the request could not be decoded as protobuf: {e}"
            ))
        }),
        other => Err(Status::unsupported_media_type(other)),
    }
}

pub fn parse_json(bytes: &[u8]) -> Result<Value, Status> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(Status::bad_request(
            "the body of the request was empty; an object was expected",
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        Status::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
    })
}

pub fn parse_yaml(bytes: &[u8]) -> Result<Value, Status> {
    let v: serde_yaml::Value = serde_yaml::from_slice(bytes)
        .map_err(|e| Status::bad_request(format!("error converting YAML to JSON: yaml: {e}")))?;
    serde_json::to_value(v)
        .map_err(|e| Status::bad_request(format!("error converting YAML to JSON: {e}")))
}
