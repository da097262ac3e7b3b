//! `metav1.Status` failures as kube-apiserver builds them (apimachinery `api/errors`).
//!
//! kubectl prints `Error from server (<reason>): <message>` or, for `Invalid`, rebuilds the
//! text from `details.causes`; the HTTP status must equal `code`.

use crate::field::{aggregate, FieldError};
use serde_json::{json, Map, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusReason {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    NotAcceptable,
    AlreadyExists,
    Conflict,
    Gone,
    Expired,
    RequestEntityTooLarge,
    UnsupportedMediaType,
    Invalid,
    Timeout,
    TooManyRequests,
    InternalError,
    ServiceUnavailable,
}

impl StatusReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StatusReason::BadRequest => "BadRequest",
            StatusReason::Unauthorized => "Unauthorized",
            StatusReason::Forbidden => "Forbidden",
            StatusReason::NotFound => "NotFound",
            StatusReason::MethodNotAllowed => "MethodNotAllowed",
            StatusReason::NotAcceptable => "NotAcceptable",
            StatusReason::AlreadyExists => "AlreadyExists",
            StatusReason::Conflict => "Conflict",
            StatusReason::Gone => "Gone",
            StatusReason::Expired => "Expired",
            StatusReason::RequestEntityTooLarge => "RequestEntityTooLarge",
            StatusReason::UnsupportedMediaType => "UnsupportedMediaType",
            StatusReason::Invalid => "Invalid",
            StatusReason::Timeout => "Timeout",
            StatusReason::TooManyRequests => "TooManyRequests",
            StatusReason::InternalError => "InternalError",
            StatusReason::ServiceUnavailable => "ServiceUnavailable",
        }
    }
}

/// A failure `Status`. `code` is also the HTTP status of the response carrying it.
#[derive(Clone, Debug, PartialEq)]
pub struct Status {
    pub code: u16,
    pub reason: StatusReason,
    pub message: String,
    /// `details` object (name, group, kind, causes); `None` when kube-apiserver omits it.
    pub details: Option<Value>,
}

/// Identifies the resource an error is about, as `schema.GroupResource`.
#[derive(Clone, Copy, Debug)]
pub struct GroupResource<'a> {
    pub group: &'a str,
    pub resource: &'a str,
}

impl GroupResource<'_> {
    /// `services` or `deployments.apps`.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.to_string()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }
}

fn details(name: &str, group: &str, kind: &str) -> Value {
    let mut m = Map::new();
    if !name.is_empty() {
        m.insert("name".into(), json!(name));
    }
    if !group.is_empty() {
        m.insert("group".into(), json!(group));
    }
    m.insert("kind".into(), json!(kind));
    Value::Object(m)
}

impl Status {
    pub fn new(code: u16, reason: StatusReason, message: impl Into<String>) -> Self {
        Status {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, StatusReason::BadRequest, message)
    }

    pub fn unauthorized() -> Self {
        Self::new(401, StatusReason::Unauthorized, "Unauthorized")
    }

    pub fn forbidden(gr: GroupResource<'_>, name: &str, why: &str) -> Self {
        let message = if name.is_empty() {
            format!("{} is forbidden: {}", gr.qualified(), why)
        } else {
            format!("{} \"{}\" is forbidden: {}", gr.qualified(), name, why)
        };
        Status {
            code: 403,
            reason: StatusReason::Forbidden,
            message,
            details: Some(details(name, gr.group, gr.resource)),
        }
    }

    pub fn not_found(gr: GroupResource<'_>, name: &str) -> Self {
        Status {
            code: 404,
            reason: StatusReason::NotFound,
            message: format!("{} \"{}\" not found", gr.qualified(), name),
            details: Some(details(name, gr.group, gr.resource)),
        }
    }

    /// A path the server does not serve at all.
    pub fn path_not_found() -> Self {
        Status {
            code: 404,
            reason: StatusReason::NotFound,
            message: "the server could not find the requested resource".into(),
            details: Some(json!({})),
        }
    }

    pub fn already_exists(gr: GroupResource<'_>, name: &str) -> Self {
        Status {
            code: 409,
            reason: StatusReason::AlreadyExists,
            message: format!("{} \"{}\" already exists", gr.qualified(), name),
            details: Some(details(name, gr.group, gr.resource)),
        }
    }

    /// The optimistic-concurrency failure kubectl shows for stale updates.
    pub fn conflict(gr: GroupResource<'_>, name: &str, why: &str) -> Self {
        Status {
            code: 409,
            reason: StatusReason::Conflict,
            message: format!(
                "Operation cannot be fulfilled on {} \"{}\": {}",
                gr.qualified(),
                name,
                why
            ),
            details: Some(details(name, gr.group, gr.resource)),
        }
    }

    pub fn stale_object_conflict(gr: GroupResource<'_>, name: &str) -> Self {
        Self::conflict(gr, name, "the object has been modified; please apply your changes to the latest version and try again")
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            405,
            StatusReason::MethodNotAllowed,
            "the server does not allow this method on the requested resource",
        )
    }

    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, StatusReason::Expired, message)
    }

    pub fn too_large(limit: usize) -> Self {
        Self::new(
            413,
            StatusReason::RequestEntityTooLarge,
            format!("Request entity too large: limit is {limit}"),
        )
    }

    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            StatusReason::UnsupportedMediaType,
            format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {content_type:?})"),
        )
    }

    pub fn not_acceptable(accept: &str) -> Self {
        Self::new(406, StatusReason::NotAcceptable, format!("only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {accept:?})"))
    }

    /// 422 Invalid; `qualified_kind` is `Service` or `Deployment.apps`.
    pub fn invalid(
        qualified_kind: &str,
        group: &str,
        kind: &str,
        name: &str,
        errs: &[FieldError],
    ) -> Self {
        let causes: Vec<Value> = errs
            .iter()
            .map(|e| json!({"reason": e.error_type.cause_reason(), "message": e.body(), "field": e.field.as_str()}))
            .collect();
        let mut d = details(name, group, kind);
        d["causes"] = Value::Array(causes);
        Status {
            code: 422,
            reason: StatusReason::Invalid,
            message: format!(
                "{} \"{}\" is invalid: {}",
                qualified_kind,
                name,
                aggregate(errs)
            ),
            details: Some(d),
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        let message = message.into();
        Status {
            code: 500,
            reason: StatusReason::InternalError,
            message: format!("Internal error occurred: {message}"),
            details: Some(json!({"causes": [{"message": message}]})),
        }
    }

    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(504, StatusReason::Timeout, message)
    }

    pub fn service_unavailable(message: impl Into<String>) -> Self {
        Self::new(503, StatusReason::ServiceUnavailable, message)
    }

    /// The JSON object, with kube-apiserver's key order.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("kind".into(), json!("Status"));
        m.insert("apiVersion".into(), json!("v1"));
        m.insert("metadata".into(), json!({}));
        m.insert("status".into(), json!("Failure"));
        m.insert("message".into(), json!(self.message));
        m.insert("reason".into(), json!(self.reason.as_str()));
        if let Some(d) = &self.details {
            m.insert("details".into(), d.clone());
        }
        m.insert("code".into(), json!(self.code));
        Value::Object(m)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.code,
            self.reason.as_str(),
            self.message
        )
    }
}

impl std::error::Error for Status {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::{BadValue, FieldPath};

    #[test]
    fn invalid_status_fills_message_and_causes() {
        let e = FieldError::invalid(
            FieldPath::new("spec.ports[0].nodePort"),
            BadValue::Int(80),
            "provided port is not in the valid range. The range of valid ports is 30000-32767",
        );
        let s = Status::invalid("Service", "", "Service", "bad", &[e]).to_json();
        assert_eq!(s["code"], 422);
        assert_eq!(
            s["message"],
            "Service \"bad\" is invalid: spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767"
        );
        assert_eq!(s["details"]["causes"][0]["reason"], "FieldValueInvalid");
        assert_eq!(s["details"]["causes"][0]["field"], "spec.ports[0].nodePort");
    }

    #[test]
    fn not_found_names_qualified_resource() {
        let s = Status::not_found(
            GroupResource {
                group: "apps",
                resource: "deployments",
            },
            "web",
        );
        assert_eq!(s.message, "deployments.apps \"web\" not found");
        assert_eq!(
            s.to_json()["details"],
            json!({"name": "web", "group": "apps", "kind": "deployments"})
        );
    }
}
