//! Small printers: Namespace, ConfigMap, ServiceAccount, Secret, and the default table
//! (Name, Created At) for resources without a printer.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::age;
use crate::duration::parse_time;
use crate::json::{creation_timestamp, get, int, len_at, name, opt_str, s};

pub(crate) fn namespace_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    // Absent phase: v1 defaulting would have stored Active.
    let phase = match opt_str(obj, &["status", "phase"]) {
        Some(p) if !p.is_empty() => p,
        _ => "Active",
    };
    vec![s(name(obj)), s(phase), s(age(creation_timestamp(obj), now))]
}

pub(crate) fn config_map_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let entries = len_at(obj, &["data"]) + len_at(obj, &["binaryData"]);
    vec![
        s(name(obj)),
        int(entries as i64),
        s(age(creation_timestamp(obj), now)),
    ]
}

pub(crate) fn service_account_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![
        s(name(obj)),
        int(len_at(obj, &["secrets"]) as i64),
        s(age(creation_timestamp(obj), now)),
    ]
}

pub(crate) fn secret_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    // Absent type: v1 defaulting would have stored Opaque.
    let secret_type = match opt_str(obj, &["type"]) {
        Some(t) if !t.is_empty() => t,
        _ => "Opaque",
    };
    // The v1→internal conversion merges write-only stringData into data.
    let mut keys: BTreeSet<&str> = BTreeSet::new();
    for field in ["data", "stringData"] {
        if let Some(Value::Object(m)) = get(obj, &[field]) {
            keys.extend(m.keys().map(String::as_str));
        }
    }
    vec![
        s(name(obj)),
        s(secret_type),
        int(keys.len() as i64),
        s(age(creation_timestamp(obj), now)),
    ]
}

/// apiserver's default table convertor: the name and the creation time in UTC RFC 3339
/// (Go's zero time when unset).
pub(crate) fn default_cells(obj: &Value) -> Vec<Value> {
    let created = creation_timestamp(obj)
        .and_then(parse_time)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".to_string());
    vec![s(name(obj)), s(created)]
}

#[cfg(test)]
mod tests {
    use crate::{cells, columns, has_printer};
    use chrono::{DateTime, Utc};
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-05-10T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn names(group: &str, resource: &str) -> Vec<&'static str> {
        columns(group, resource).iter().map(|c| c.name).collect()
    }

    #[test]
    fn namespace() {
        assert_eq!(names("", "namespaces"), ["Name", "Status", "Age"]);
        let ns = json!({"metadata": {"name": "dev", "creationTimestamp": "2024-05-10T11:59:15Z"},
                        "status": {"phase": "Active"}});
        assert_eq!(
            cells("", "namespaces", &ns, now()),
            [json!("dev"), json!("Active"), json!("45s")]
        );
        let terminating = json!({"metadata": {"name": "old"}, "status": {"phase": "Terminating"}});
        assert_eq!(
            cells("", "namespaces", &terminating, now())[1],
            "Terminating"
        );
        let bare = json!({"metadata": {"name": "new"}});
        assert_eq!(cells("", "namespaces", &bare, now())[1], "Active");
    }

    #[test]
    fn config_map_counts_data_and_binary_data() {
        assert_eq!(names("", "configmaps"), ["Name", "Data", "Age"]);
        let cm = json!({"metadata": {"name": "kube-root-ca.crt", "creationTimestamp": "2024-05-09T12:00:00Z"},
                        "data": {"ca.crt": "..."}, "binaryData": {"blob": "AAE="}});
        assert_eq!(
            cells("", "configmaps", &cm, now()),
            [json!("kube-root-ca.crt"), json!(2), json!("24h")]
        );
        let empty = json!({"metadata": {"name": "e"}});
        assert_eq!(cells("", "configmaps", &empty, now())[1], 0);
    }

    #[test]
    fn service_account() {
        assert_eq!(names("", "serviceaccounts"), ["Name", "Secrets", "Age"]);
        let sa =
            json!({"metadata": {"name": "default", "creationTimestamp": "2024-04-01T12:00:00Z"}});
        assert_eq!(
            cells("", "serviceaccounts", &sa, now()),
            [json!("default"), json!(0), json!("39d")]
        );
        let with =
            json!({"metadata": {"name": "builder"}, "secrets": [{"name": "a"}, {"name": "b"}]});
        assert_eq!(cells("", "serviceaccounts", &with, now())[1], 2);
    }

    #[test]
    fn secret() {
        assert_eq!(names("", "secrets"), ["Name", "Type", "Data", "Age"]);
        let tls = json!({"metadata": {"name": "web-tls", "creationTimestamp": "2024-05-10T06:30:00Z"},
                         "type": "kubernetes.io/tls", "data": {"tls.crt": "x", "tls.key": "y"}});
        assert_eq!(
            cells("", "secrets", &tls, now()),
            [
                json!("web-tls"),
                json!("kubernetes.io/tls"),
                json!(2),
                json!("5h30m")
            ]
        );
        let untyped = json!({"metadata": {"name": "s"}, "data": {"a": "eA=="},
                             "stringData": {"a": "x", "b": "y"}});
        let c = cells("", "secrets", &untyped, now());
        assert_eq!(c[1], "Opaque");
        assert_eq!(c[2], 2);
    }

    #[test]
    fn default_table() {
        assert!(!has_printer("rbac.authorization.k8s.io", "roles"));
        assert!(has_printer("", "services"));
        let cols = columns("coordination.k8s.io", "leases");
        assert_eq!(cols.len(), 2);
        assert_eq!(
            (cols[0].name, cols[0].type_, cols[0].format),
            ("Name", "string", "name")
        );
        assert_eq!((cols[1].name, cols[1].type_), ("Created At", "date"));
        let obj = json!({"metadata": {"name": "kube-scheduler",
                                      "creationTimestamp": "2024-05-10T14:00:00+02:00"}});
        assert_eq!(
            cells("coordination.k8s.io", "leases", &obj, now()),
            [json!("kube-scheduler"), json!("2024-05-10T12:00:00Z")]
        );
        let bare = json!({"metadata": {"name": "x"}});
        assert_eq!(
            cells("example.com", "widgets", &bare, now())[1],
            "0001-01-01T00:00:00Z"
        );
        // A resource named like a printed one but in another group gets the default table.
        assert_eq!(columns("example.com", "services").len(), 2);
    }
}
