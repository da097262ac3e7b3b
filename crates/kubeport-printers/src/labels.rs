//! Label maps and label selectors rendered the way apimachinery's `labels.FormatLabels`,
//! `metav1.LabelSelectorAsSelector(...).String()` and `metav1.FormatLabelSelector` do.

use serde_json::Value;

/// `labels.FormatLabels`: `k=v` pairs sorted by key and joined with `,`; `<none>` when
/// empty or absent.
pub fn format_labels(map: Option<&Value>) -> String {
    let Some(Value::Object(m)) = map else {
        return "<none>".to_string();
    };
    if m.is_empty() {
        return "<none>".to_string();
    }
    let mut pairs: Vec<(&str, &str)> = m
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or("")))
        .collect();
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// `metav1.FormatLabelSelector`: the selector string, `<none>` when it selects
/// everything (or is absent), `<error>` when it is not a valid selector.
pub fn format_label_selector(selector: Option<&Value>) -> String {
    match label_selector_string(selector) {
        Ok(s) if s.is_empty() => "<none>".to_string(),
        Ok(s) => s,
        Err(_) => "<error>".to_string(),
    }
}

/// `metav1.LabelSelectorAsSelector(selector).String()`: requirements sorted by key and
/// joined with `,` (`app=web`, `tier in (a,b)`, `!legacy`). An absent or empty selector
/// renders as `""`. An invalid selector (unknown operator, wrong number of values,
/// malformed key or value) is an error saying why.
pub fn label_selector_string(selector: Option<&Value>) -> Result<String, String> {
    let Some(sel) = selector.filter(|v| !v.is_null()) else {
        // labels.Nothing() prints as the empty string.
        return Ok(String::new());
    };
    let mut reqs: Vec<Requirement> = Vec::new();
    if let Some(Value::Object(m)) = sel.get("matchLabels") {
        for (k, v) in m {
            reqs.push(Requirement::new(
                k,
                Operator::Equals,
                vec![v.as_str().unwrap_or("").to_string()],
            )?);
        }
    }
    if let Some(Value::Array(exprs)) = sel.get("matchExpressions") {
        for e in exprs {
            let key = e.get("key").and_then(Value::as_str).unwrap_or("");
            let op_text = e.get("operator").and_then(Value::as_str).unwrap_or("");
            let op = match op_text {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => return Err(format!("{other:?} is not a valid label selector operator")),
            };
            let values = e
                .get("values")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|v| v.as_str().unwrap_or("").to_string())
                        .collect()
                })
                .unwrap_or_default();
            reqs.push(Requirement::new(key, op, values)?);
        }
    }
    // internalSelector keeps its requirements ordered by key.
    reqs.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(reqs
        .iter()
        .map(Requirement::render)
        .collect::<Vec<_>>()
        .join(","))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Operator {
    Equals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

struct Requirement {
    key: String,
    op: Operator,
    values: Vec<String>,
}

impl Requirement {
    /// `labels.NewRequirement`'s checks: a valid key, the number of values the operator
    /// takes, and valid label values.
    fn new(key: &str, op: Operator, values: Vec<String>) -> Result<Self, String> {
        validate_label_key(key)?;
        match op {
            Operator::In | Operator::NotIn if values.is_empty() => {
                return Err("values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't be empty".to_string());
            }
            Operator::Equals if values.len() != 1 => {
                return Err(
                    "values: Invalid value: exact-match compatibility requires one single value"
                        .to_string(),
                );
            }
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                return Err(
                    "values: Invalid value: values set must be empty for exists and does not exist"
                        .to_string(),
                );
            }
            _ => {}
        }
        for v in &values {
            validate_label_value(v)?;
        }
        Ok(Requirement {
            key: key.to_string(),
            op,
            values,
        })
    }

    /// `Requirement.String()`; multiple values are printed sorted.
    fn render(&self) -> String {
        let mut out = String::new();
        if self.op == Operator::DoesNotExist {
            out.push('!');
        }
        out.push_str(&self.key);
        match self.op {
            Operator::Exists | Operator::DoesNotExist => return out,
            Operator::Equals => out.push('='),
            Operator::In => out.push_str(" in "),
            Operator::NotIn => out.push_str(" notin "),
        }
        let mut values = self.values.clone();
        values.sort();
        let joined = values.join(",");
        if matches!(self.op, Operator::In | Operator::NotIn) {
            out.push('(');
            out.push_str(&joined);
            out.push(')');
        } else {
            out.push_str(&joined);
        }
        out
    }
}

/// A qualified name: optional DNS-subdomain prefix and `/`, then a 1–63 character name.
fn validate_label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let invalid = || {
        Err(format!("key: Invalid value: {key:?}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"))
    };
    if let Some(p) = prefix {
        if p.is_empty() || p.len() > 253 || !is_dns_subdomain(p) {
            return invalid();
        }
    }
    if name.is_empty() || name.len() > 63 || !is_label_token(name) {
        return invalid();
    }
    Ok(())
}

/// A label value: empty, or at most 63 characters of `[-A-Za-z0-9_.]` with
/// alphanumeric ends.
fn validate_label_value(value: &str) -> Result<(), String> {
    if value.is_empty() || (value.len() <= 63 && is_label_token(value)) {
        return Ok(());
    }
    Err(format!("values[0][{value}]: Invalid value: {value:?}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"))
}

fn is_label_token(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

fn is_dns_subdomain(s: &str) -> bool {
    s.split('.').all(|label| {
        let b = label.as_bytes();
        !b.is_empty()
            && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
            && (b[b.len() - 1].is_ascii_lowercase() || b[b.len() - 1].is_ascii_digit())
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn labels_sorted_by_key() {
        let m = json!({"tier": "web", "app": "nginx-dep"});
        assert_eq!(format_labels(Some(&m)), "app=nginx-dep,tier=web");
        assert_eq!(format_labels(Some(&json!({}))), "<none>");
        assert_eq!(format_labels(None), "<none>");
    }

    #[test]
    fn selector_match_labels_and_expressions() {
        let sel = json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["ui", "api"]},
                {"key": "env", "operator": "NotIn", "values": ["dev"]},
                {"key": "legacy", "operator": "DoesNotExist"},
                {"key": "canary", "operator": "Exists"}
            ]
        });
        assert_eq!(
            label_selector_string(Some(&sel)).unwrap(),
            "app=web,canary,env notin (dev),!legacy,tier in (api,ui)"
        );
    }

    #[test]
    fn empty_and_absent_selectors() {
        assert_eq!(label_selector_string(None).unwrap(), "");
        assert_eq!(label_selector_string(Some(&json!({}))).unwrap(), "");
        assert_eq!(format_label_selector(Some(&json!({}))), "<none>");
        assert_eq!(format_label_selector(None), "<none>");
        assert_eq!(
            format_label_selector(Some(&json!({"matchLabels": {"app": "web"}}))),
            "app=web"
        );
    }

    #[test]
    fn invalid_selectors() {
        let bad_op = json!({"matchExpressions": [{"key": "a", "operator": "Near"}]});
        assert_eq!(
            label_selector_string(Some(&bad_op)).unwrap_err(),
            "\"Near\" is not a valid label selector operator"
        );
        assert_eq!(format_label_selector(Some(&bad_op)), "<error>");
        let empty_in = json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]});
        assert!(label_selector_string(Some(&empty_in)).is_err());
        let bad_key = json!({"matchLabels": {"-bad": "x"}});
        assert!(label_selector_string(Some(&bad_key)).is_err());
        let prefixed = json!({"matchLabels": {"app.kubernetes.io/name": "x"}});
        assert_eq!(
            label_selector_string(Some(&prefixed)).unwrap(),
            "app.kubernetes.io/name=x"
        );
    }
}
