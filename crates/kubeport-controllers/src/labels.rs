//! Label selector evaluation (`metav1.LabelSelector` and Services' map selectors).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use std::collections::BTreeMap;

pub type Labels = BTreeMap<String, String>;

/// Whether a `LabelSelector` selects objects carrying `labels`. An empty selector selects
/// everything; an unknown operator selects nothing (kube rejects it at validation).
pub fn selector_matches(sel: &LabelSelector, labels: &Labels) -> bool {
    if let Some(ml) = &sel.match_labels {
        if !map_matches(ml, labels) {
            return false;
        }
    }
    for e in sel.match_expressions.iter().flatten() {
        let got = labels.get(&e.key);
        let values = e.values.as_deref().unwrap_or_default();
        let ok = match e.operator.as_str() {
            "In" => got.is_some_and(|v| values.contains(v)),
            "NotIn" => got.is_none_or(|v| !values.contains(v)),
            "Exists" => got.is_some(),
            "DoesNotExist" => got.is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// Whether every `key=value` of a map selector is present in `labels`.
pub fn map_matches(sel: &Labels, labels: &Labels) -> bool {
    sel.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Whether a selector has no requirements (selects everything).
pub fn selector_is_empty(sel: &LabelSelector) -> bool {
    sel.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && sel.match_expressions.as_ref().is_none_or(|e| e.is_empty())
}

/// `key=value` pairs every selected object must carry: usable to narrow a label index.
pub fn required_pairs(sel: &LabelSelector) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = sel
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for e in sel.match_expressions.iter().flatten() {
        if e.operator == "In" {
            if let Some([only]) = e.values.as_deref() {
                out.push((e.key.clone(), only.clone()));
            }
        }
    }
    out
}

/// Renders a selector as kube's query string form (`app=web,tier in (a,b)`).
pub fn selector_string(sel: &LabelSelector) -> String {
    let mut parts: Vec<String> = sel
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in sel.match_expressions.iter().flatten() {
        let mut values = e.values.clone().unwrap_or_default();
        values.sort();
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({})", e.key, values.join(",")),
            "NotIn" => format!("{} notin ({})", e.key, values.join(",")),
            "Exists" => e.key.clone(),
            "DoesNotExist" => format!("!{}", e.key),
            op => format!("{} {op} ({})", e.key, values.join(",")),
        });
    }
    parts.sort();
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn req(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: (!values.is_empty()).then(|| values.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn match_labels_and_expressions() {
        let sel = LabelSelector {
            match_labels: Some(labels(&[("app", "nginx")])),
            match_expressions: Some(vec![
                req("tier", "In", &["web", "api"]),
                req("canary", "DoesNotExist", &[]),
            ]),
        };
        assert!(selector_matches(
            &sel,
            &labels(&[("app", "nginx"), ("tier", "web")])
        ));
        assert!(!selector_matches(
            &sel,
            &labels(&[("app", "nginx"), ("tier", "db")])
        ));
        assert!(!selector_matches(
            &sel,
            &labels(&[("app", "nginx"), ("tier", "web"), ("canary", "1")])
        ));
        assert!(!selector_matches(&sel, &labels(&[("tier", "web")])));
        assert_eq!(selector_string(&sel), "!canary,app=nginx,tier in (api,web)");
    }

    #[test]
    fn empty_selector_selects_everything() {
        let sel = LabelSelector::default();
        assert!(selector_is_empty(&sel));
        assert!(selector_matches(&sel, &labels(&[("x", "y")])));
        assert!(map_matches(&Labels::new(), &labels(&[("x", "y")])));
    }

    #[test]
    fn required_pairs_cover_match_labels_and_single_in() {
        let sel = LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(vec![
                req("env", "In", &["prod"]),
                req("tier", "In", &["a", "b"]),
            ]),
        };
        assert_eq!(
            required_pairs(&sel),
            vec![("app".into(), "web".into()), ("env".into(), "prod".into())]
        );
    }
}
