//! Field errors rendered exactly as apimachinery's `field.Error` does.
//!
//! kubectl prints `<field>: <body>` from `details.causes`, so both the path syntax and the
//! body wording are user-visible interface.

use std::fmt;

/// A path to a field, like `spec.ports[0].nodePort`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct FieldPath(String);

impl FieldPath {
    pub fn new(root: &str) -> Self {
        FieldPath(root.to_string())
    }
    /// Appends `.name`.
    pub fn child(&self, name: &str) -> Self {
        if self.0.is_empty() {
            FieldPath(name.to_string())
        } else {
            FieldPath(format!("{}.{}", self.0, name))
        }
    }
    /// Appends `[i]`.
    pub fn index(&self, i: usize) -> Self {
        FieldPath(format!("{}[{}]", self.0, i))
    }
    /// Appends `[key]` (map keys are not quoted, as in apimachinery).
    pub fn key(&self, k: &str) -> Self {
        FieldPath(format!("{}[{}]", self.0, k))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for FieldPath {
    fn from(s: &str) -> Self {
        FieldPath(s.to_string())
    }
}

/// The offending value, formatted the way Go's `%#v`/`%v` show it in apimachinery messages.
#[derive(Clone, Debug, PartialEq)]
pub enum BadValue {
    /// No value shown (Required, Forbidden, Internal).
    Omitted,
    Int(i64),
    Bool(bool),
    /// Shown Go-quoted: `"None"`.
    Str(String),
    /// Shown as `[]string{"a", "b"}`.
    StrList(Vec<String>),
    /// Pre-formatted text shown verbatim.
    Raw(String),
}

impl fmt::Display for BadValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadValue::Omitted => Ok(()),
            BadValue::Int(i) => write!(f, "{i}"),
            BadValue::Bool(b) => write!(f, "{b}"),
            BadValue::Str(s) => f.write_str(&go_quote(s)),
            BadValue::StrList(items) => {
                let quoted: Vec<String> = items.iter().map(|s| go_quote(s)).collect();
                write!(f, "[]string{{{}}}", quoted.join(", "))
            }
            BadValue::Raw(s) => f.write_str(s),
        }
    }
}

/// Quotes a string as Go's `%q` does for printable ASCII/UTF-8 text.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// apimachinery's `field.ErrorType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorType {
    NotFound,
    Required,
    Duplicate,
    Invalid,
    NotSupported,
    Forbidden,
    TooLong,
    TooMany,
    Internal,
    TypeInvalid,
}

impl ErrorType {
    /// The `reason` kube-apiserver puts in `details.causes[]`.
    pub fn cause_reason(self) -> &'static str {
        match self {
            ErrorType::NotFound => "FieldValueNotFound",
            ErrorType::Required => "FieldValueRequired",
            ErrorType::Duplicate => "FieldValueDuplicate",
            ErrorType::Invalid => "FieldValueInvalid",
            ErrorType::NotSupported => "FieldValueNotSupported",
            ErrorType::Forbidden => "FieldValueForbidden",
            ErrorType::TooLong => "FieldValueTooLong",
            ErrorType::TooMany => "FieldValueTooMany",
            ErrorType::Internal => "InternalError",
            ErrorType::TypeInvalid => "FieldValueTypeInvalid",
        }
    }

    fn label(self) -> &'static str {
        match self {
            ErrorType::NotFound => "Not found",
            ErrorType::Required => "Required value",
            ErrorType::Duplicate => "Duplicate value",
            ErrorType::Invalid => "Invalid value",
            ErrorType::NotSupported => "Unsupported value",
            ErrorType::Forbidden => "Forbidden",
            ErrorType::TooLong => "Too long",
            ErrorType::TooMany => "Too many",
            ErrorType::Internal => "Internal error",
            ErrorType::TypeInvalid => "Invalid value",
        }
    }
}

/// One validation failure: `<field>: <body>`.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    pub error_type: ErrorType,
    pub field: FieldPath,
    pub value: BadValue,
    pub detail: String,
}

impl FieldError {
    pub fn new(
        error_type: ErrorType,
        field: FieldPath,
        value: BadValue,
        detail: impl Into<String>,
    ) -> Self {
        FieldError {
            error_type,
            field,
            value,
            detail: detail.into(),
        }
    }
    pub fn required(field: FieldPath, detail: impl Into<String>) -> Self {
        Self::new(ErrorType::Required, field, BadValue::Omitted, detail)
    }
    pub fn forbidden(field: FieldPath, detail: impl Into<String>) -> Self {
        Self::new(ErrorType::Forbidden, field, BadValue::Omitted, detail)
    }
    pub fn invalid(field: FieldPath, value: BadValue, detail: impl Into<String>) -> Self {
        Self::new(ErrorType::Invalid, field, value, detail)
    }
    pub fn duplicate(field: FieldPath, value: BadValue) -> Self {
        Self::new(ErrorType::Duplicate, field, value, "")
    }
    pub fn not_found(field: FieldPath, value: BadValue) -> Self {
        Self::new(ErrorType::NotFound, field, value, "")
    }
    pub fn internal(field: FieldPath, detail: impl Into<String>) -> Self {
        Self::new(ErrorType::Internal, field, BadValue::Omitted, detail)
    }
    pub fn too_many(field: FieldPath, actual: Option<i64>, max: i64) -> Self {
        let value = actual
            .map(BadValue::Int)
            .unwrap_or(BadValue::Raw("<unknown>".into()));
        Self::new(
            ErrorType::TooMany,
            field,
            value,
            format!("must have at most {max} items"),
        )
    }
    pub fn too_long(field: FieldPath, max: usize) -> Self {
        Self::new(
            ErrorType::TooLong,
            field,
            BadValue::Omitted,
            format!("may not be more than {max} bytes"),
        )
    }
    /// `Unsupported value: "X": supported values: "A", "B"`.
    pub fn not_supported(field: FieldPath, value: BadValue, valid: &[&str]) -> Self {
        let detail = if valid.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = valid.iter().map(|v| go_quote(v)).collect();
            format!("supported values: {}", quoted.join(", "))
        };
        Self::new(ErrorType::NotSupported, field, value, detail)
    }

    /// The part after `<field>: `, e.g. `Invalid value: 40000: provided port is not in the valid range...`.
    pub fn body(&self) -> String {
        let mut s = self.error_type.label().to_string();
        match self.error_type {
            ErrorType::Required
            | ErrorType::Forbidden
            | ErrorType::TooLong
            | ErrorType::Internal => {}
            _ => {
                if self.value != BadValue::Omitted {
                    s.push_str(": ");
                    s.push_str(&self.value.to_string());
                }
            }
        }
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

/// Renders a list as apimachinery's aggregate does: one error alone, several as `[a, b]`,
/// with exact repeats removed.
pub fn aggregate(errs: &[FieldError]) -> String {
    let mut seen: Vec<String> = Vec::new();
    for e in errs {
        let s = e.to_string();
        if !seen.contains(&s) {
            seen.push(s);
        }
    }
    if seen.len() == 1 {
        seen.remove(0)
    } else {
        format!("[{}]", seen.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_invalid_node_port_like_kube_apiserver() {
        let e = FieldError::invalid(
            FieldPath::new("spec")
                .child("ports")
                .index(0)
                .child("nodePort"),
            BadValue::Int(40000),
            "provided port is not in the valid range. The range of valid ports is 30000-32767",
        );
        assert_eq!(
            e.to_string(),
            "spec.ports[0].nodePort: Invalid value: 40000: provided port is not in the valid range. The range of valid ports is 30000-32767"
        );
    }

    #[test]
    fn renders_other_kinds() {
        assert_eq!(
            FieldError::required("spec.ports".into(), "").to_string(),
            "spec.ports: Required value"
        );
        assert_eq!(
            FieldError::not_supported(
                "spec.type".into(),
                BadValue::Str("Foo".into()),
                &["ClusterIP", "NodePort"]
            )
            .to_string(),
            "spec.type: Unsupported value: \"Foo\": supported values: \"ClusterIP\", \"NodePort\""
        );
        assert_eq!(
            FieldError::invalid(
                "spec.clusterIPs[0]".into(),
                BadValue::StrList(vec!["10.96.0.50".into()]),
                "may not change once set"
            )
            .to_string(),
            "spec.clusterIPs[0]: Invalid value: []string{\"10.96.0.50\"}: may not change once set"
        );
        assert_eq!(
            FieldError::duplicate("spec.ports[1].name".into(), BadValue::Str("http".into()))
                .to_string(),
            "spec.ports[1].name: Duplicate value: \"http\""
        );
    }

    #[test]
    fn aggregates_several_in_brackets() {
        let a = FieldError::required("a".into(), "");
        let b = FieldError::required("b".into(), "");
        assert_eq!(aggregate(std::slice::from_ref(&a)), "a: Required value");
        assert_eq!(
            aggregate(&[a.clone(), b, a]),
            "[a: Required value, b: Required value]"
        );
    }
}
