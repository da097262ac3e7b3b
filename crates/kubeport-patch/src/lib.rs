//! kube-apiserver's patch semantics as pure functions over `serde_json::Value` objects in
//! Kubernetes JSON shape.
//!
//! - [`json_patch`]: RFC 6902, as `evanphx/json-patch` applies it for `application/json-patch+json`.
//! - [`merge_patch`]: RFC 7386, as `evanphx/json-patch` applies it for `application/merge-patch+json`.
//! - [`strategic_merge_patch`]: apimachinery's strategic merge patch with its directives, driven by
//!   the `patchStrategy`/`patchMergeKey` tags of the built-in types kubeport serves.
//! - [`server_side_apply`] and [`record_update`]: structured-merge-diff's field ownership, stored
//!   in `metadata.managedFields` in the real `FieldsV1` format.
//!
//! Errors carry the HTTP code and the text kube-apiserver answers with, because kubectl prints
//! them verbatim.

mod fieldpath;
mod gofmt;
mod jsonpatch;
mod managed;
mod mergepatch;
mod schema;
mod smp;
mod typed;

use serde_json::{json, Map, Value};
use std::fmt;

pub use managed::{record_status_update, record_update, server_side_apply};

/// Applies an RFC 6902 JSON patch. Failing operations (including a failing `test`) are a 422
/// whose message is the generic one kube-apiserver gives; a patch that is not a list of
/// operations is a 400.
pub fn json_patch(doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    jsonpatch::apply(doc, patch)
}

/// Applies an RFC 7386 JSON merge patch (`null` deletes a key, objects merge, everything else
/// replaces).
pub fn merge_patch(doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    mergepatch::apply(doc, patch)
}

/// Applies a strategic merge patch to an object of `(group, kind)`, e.g. `("", "Service")` or
/// `("apps", "Deployment")`. Kinds without known patch metadata merge maps and replace lists,
/// as strategic merge patch does for fields without a strategy; their `metadata` still follows
/// ObjectMeta's strategies (finalizers, ownerReferences).
pub fn strategic_merge_patch(
    doc: &Value,
    patch: &Value,
    group: &str,
    kind: &str,
) -> Result<Value, PatchError> {
    smp::apply(doc, patch, group, kind)
}

/// A patch failure that is not an apply conflict, with the HTTP status kube-apiserver uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatchFailure {
    /// 400 (malformed patch), 422 (patch does not apply), 413 (too many operations) or 500
    /// (errors kube-apiserver passes through unclassified).
    pub code: u16,
    /// The Status `reason`; empty for the unclassified 500s, where kube-apiserver sets none.
    pub reason: &'static str,
    /// The Status `message`, worded as kube-apiserver words it.
    pub message: String,
}

impl PatchFailure {
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        PatchFailure {
            code: 400,
            reason: "BadRequest",
            message: message.into(),
        }
    }
    /// apierrors.NewGenericServerResponse(422, …): the detail is replaced by a generic text.
    pub(crate) fn unprocessable() -> Self {
        PatchFailure {
            code: 422,
            reason: "Invalid",
            message: "the server rejected our request due to an error in our request".into(),
        }
    }
    /// A 422 carrying its own text (strategic merge patch's typed errors).
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        PatchFailure {
            code: 422,
            reason: "Invalid",
            message: message.into(),
        }
    }
    /// An error that is not a Status: kube-apiserver answers 500 with the error text and no reason.
    pub(crate) fn internal(message: impl Into<String>) -> Self {
        PatchFailure {
            code: 500,
            reason: "",
            message: message.into(),
        }
    }
    pub(crate) fn too_large(message: impl Into<String>) -> Self {
        PatchFailure {
            code: 413,
            reason: "RequestEntityTooLarge",
            message: message.into(),
        }
    }
}

impl fmt::Display for PatchFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::ops::Deref for PatchFailure {
    type Target = str;
    fn deref(&self) -> &str {
        &self.message
    }
}

impl From<PatchFailure> for String {
    fn from(f: PatchFailure) -> String {
        f.message
    }
}

/// Why a patch could not be applied.
#[derive(Clone, Debug, PartialEq)]
pub enum PatchError {
    /// The patch is malformed or does not apply; `code` says which (400/413/422/500).
    Invalid(PatchFailure),
    /// Server-side apply found fields owned by other managers with different values (409).
    Conflict(ApplyConflicts),
}

impl PatchError {
    /// The HTTP status kube-apiserver answers with.
    pub fn code(&self) -> u16 {
        match self {
            PatchError::Invalid(f) => f.code,
            PatchError::Conflict(_) => 409,
        }
    }

    /// The Status `message`.
    pub fn message(&self) -> String {
        match self {
            PatchError::Invalid(f) => f.message.clone(),
            PatchError::Conflict(c) => c.message(),
        }
    }

    /// The Status `reason` (`""` for the unclassified 500s).
    pub fn reason(&self) -> &'static str {
        match self {
            PatchError::Invalid(f) => f.reason,
            PatchError::Conflict(_) => "Conflict",
        }
    }

    /// The complete Status object exactly as kube-apiserver sends it (key order included).
    pub fn to_status_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("kind".into(), json!("Status"));
        m.insert("apiVersion".into(), json!("v1"));
        m.insert("metadata".into(), json!({}));
        m.insert("status".into(), json!("Failure"));
        m.insert("message".into(), json!(self.message()));
        if !self.reason().is_empty() {
            m.insert("reason".into(), json!(self.reason()));
        }
        match self {
            PatchError::Conflict(c) => {
                m.insert("details".into(), json!({ "causes": c.causes() }));
            }
            PatchError::Invalid(f) if f.code == 422 => {
                // NewGenericServerResponse always fills (empty) details.
                m.insert("details".into(), json!({}));
            }
            PatchError::Invalid(_) => {}
        }
        m.insert("code".into(), json!(self.code()));
        Value::Object(m)
    }

    /// The nearest `kubeport_core::Status`. The unclassified 500s have no reason in
    /// kube-apiserver; they map to `InternalError` here (use [`PatchError::to_status_json`] for
    /// the exact object).
    pub fn to_status(&self) -> kubeport_core::Status {
        use kubeport_core::StatusReason as R;
        let reason = match self.reason() {
            "BadRequest" => R::BadRequest,
            "Invalid" => R::Invalid,
            "Conflict" => R::Conflict,
            "RequestEntityTooLarge" => R::RequestEntityTooLarge,
            _ => R::InternalError,
        };
        let mut s = kubeport_core::Status::new(self.code(), reason, self.message());
        if let PatchError::Conflict(c) = self {
            s.details = Some(json!({ "causes": c.causes() }));
        }
        s
    }
}

impl fmt::Display for PatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for PatchError {}

impl From<PatchFailure> for PatchError {
    fn from(f: PatchFailure) -> Self {
        PatchError::Invalid(f)
    }
}

/// Server-side apply conflicts, in the order kube-apiserver reports them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApplyConflicts {
    /// `(manager name, field path)`, e.g. `("kubectl-client-side-apply", ".spec.replicas")`.
    pub conflicts: Vec<(String, String)>,
    /// How kube-apiserver names each conflict's manager, parallel to `conflicts`:
    /// `"kubectl-client-side-apply" using v1` for an Update entry, `"kubectl"` for an Apply entry.
    pub manager_labels: Vec<String>,
}

impl ApplyConflicts {
    /// kube-apiserver's message: `Apply failed with 1 conflict: conflict with "m" using v1: .spec.replicas`,
    /// or for several: `Apply failed with 2 conflicts: conflicts with "m" using v1:\n- .a\n- .b`
    /// (grouped by manager, managers sorted).
    pub fn message(&self) -> String {
        if self.conflicts.len() == 1 {
            return format!(
                "Apply failed with 1 conflict: conflict with {}: {}",
                self.manager_labels[0], self.conflicts[0].1
            );
        }
        // Group by manager label, keeping first-seen path order; print managers sorted (the
        // sort key in kube-apiserver is the encoded manager identity, which orders by name).
        let mut groups: Vec<(&str, &str, Vec<&str>)> = Vec::new();
        for (i, (manager, path)) in self.conflicts.iter().enumerate() {
            let label = self.manager_labels[i].as_str();
            match groups.iter_mut().find(|g| g.1 == label) {
                Some(g) => g.2.push(path),
                None => groups.push((manager.as_str(), label, vec![path.as_str()])),
            }
        }
        groups.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        let mut lines = Vec::new();
        for (_, label, paths) in &groups {
            lines.push(format!("conflicts with {label}:"));
            for p in paths {
                lines.push(format!("- {p}"));
            }
        }
        format!(
            "Apply failed with {} conflicts: {}",
            self.conflicts.len(),
            lines.join("\n")
        )
    }

    /// `details.causes` of the 409: one `FieldManagerConflict` per conflicting field.
    pub fn causes(&self) -> Vec<Value> {
        self.conflicts
            .iter()
            .zip(&self.manager_labels)
            .map(|((_, path), label)| json!({"reason": "FieldManagerConflict", "message": format!("conflict with {label}"), "field": path}))
            .collect()
    }
}

impl fmt::Display for ApplyConflicts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

#[cfg(test)]
mod tests;
