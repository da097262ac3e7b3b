//! Deployment (NAME, READY, UP-TO-DATE, AVAILABLE, AGE, CONTAINERS*, IMAGES*, SELECTOR*)
//! and ReplicaSet (NAME, DESIRED, CURRENT, READY, AGE, CONTAINERS*, IMAGES*, SELECTOR*).

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::json::{
    array, creation_timestamp, get, i64_or_zero, int, name, opt_i64, s, str_or_empty,
};
use crate::{age, format_label_selector, label_selector_string};

/// `spec.replicas`; absent means v1 defaulting's 1.
fn desired_replicas(obj: &Value) -> i64 {
    opt_i64(obj, &["spec", "replicas"]).unwrap_or(1)
}

/// Pod template containers' names and images, each `,`-joined.
fn container_cells(obj: &Value) -> (String, String) {
    let containers = array(obj, &["spec", "template", "spec", "containers"]);
    let names = containers
        .iter()
        .map(|c| str_or_empty(c, &["name"]))
        .collect::<Vec<_>>()
        .join(",");
    let images = containers
        .iter()
        .map(|c| str_or_empty(c, &["image"]))
        .collect::<Vec<_>>()
        .join(",");
    (names, images)
}

pub(crate) fn deployment_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let ready = i64_or_zero(obj, &["status", "readyReplicas"]);
    let (containers, images) = container_cells(obj);
    // Unlike ReplicaSets, an empty selector renders as "" and an invalid one as <invalid>.
    let selector = label_selector_string(get(obj, &["spec", "selector"]))
        .unwrap_or_else(|_| "<invalid>".to_string());
    vec![
        s(name(obj)),
        s(format!("{}/{}", ready, desired_replicas(obj))),
        int(i64_or_zero(obj, &["status", "updatedReplicas"])),
        int(i64_or_zero(obj, &["status", "availableReplicas"])),
        s(age(creation_timestamp(obj), now)),
        s(containers),
        s(images),
        s(selector),
    ]
}

pub(crate) fn replica_set_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (containers, images) = container_cells(obj);
    vec![
        s(name(obj)),
        int(desired_replicas(obj)),
        int(i64_or_zero(obj, &["status", "replicas"])),
        int(i64_or_zero(obj, &["status", "readyReplicas"])),
        s(age(creation_timestamp(obj), now)),
        s(containers),
        s(images),
        s(format_label_selector(get(obj, &["spec", "selector"]))),
    ]
}

#[cfg(test)]
mod tests {
    use crate::{cells, columns};
    use chrono::{DateTime, Utc};
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-05-10T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn deployment_columns() {
        let cols = columns("apps", "deployments");
        let names: Vec<&str> = cols.iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            [
                "Name",
                "Ready",
                "Up-to-date",
                "Available",
                "Age",
                "Containers",
                "Images",
                "Selector"
            ]
        );
        assert!(cols[5..].iter().all(|c| c.priority == 1));
    }

    #[test]
    fn deployment_cells() {
        let obj = json!({
            "metadata": {"name": "nginx-deployment", "creationTimestamp": "2024-05-10T11:59:40Z"},
            "spec": {"replicas": 3,
                     "selector": {"matchLabels": {"app": "nginx"}},
                     "template": {"metadata": {"labels": {"app": "nginx"}},
                                  "spec": {"containers": [
                                      {"name": "nginx", "image": "nginx:1.25"},
                                      {"name": "sidecar", "image": "busybox"}]}}},
            "status": {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}
        });
        let c = cells("apps", "deployments", &obj, now());
        assert_eq!(
            c,
            [
                json!("nginx-deployment"),
                json!("2/3"),
                json!(3),
                json!(2),
                json!("20s"),
                json!("nginx,sidecar"),
                json!("nginx:1.25,busybox"),
                json!("app=nginx")
            ]
        );
    }

    #[test]
    fn fresh_deployment_without_status() {
        let obj = json!({"metadata": {"name": "d"},
            "spec": {"selector": {"matchLabels": {"app": "web", "tier": "fe"}},
                     "template": {"spec": {"containers": [{"name": "web", "image": "nginx"}]}}}});
        let c = cells("apps", "deployments", &obj, now());
        assert_eq!(c[1], "0/1");
        assert_eq!(c[2], 0);
        assert_eq!(c[3], 0);
        assert_eq!(c[7], "app=web,tier=fe");
        let scaled_to_zero =
            json!({"metadata": {"name": "d"}, "spec": {"replicas": 0, "selector": {}}});
        let c = cells("apps", "deployments", &scaled_to_zero, now());
        assert_eq!(c[1], "0/0");
        assert_eq!(c[7], "");
    }

    #[test]
    fn replica_set_integer_cells() {
        let cols = columns("apps", "replicasets");
        let types: Vec<&str> = cols[1..4].iter().map(|c| c.type_).collect();
        assert_eq!(types, ["integer", "integer", "integer"]);
        let obj = json!({
            "metadata": {"name": "nginx-replicaset", "creationTimestamp": "2024-05-10T09:30:00Z"},
            "spec": {"replicas": 6,
                     "selector": {"matchLabels": {"app": "nginx"},
                                  "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "dev"]}]},
                     "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:latest"}]}}},
            "status": {"replicas": 6, "readyReplicas": 5}
        });
        let c = cells("apps", "replicasets", &obj, now());
        assert_eq!(
            c,
            [
                json!("nginx-replicaset"),
                json!(6),
                json!(6),
                json!(5),
                json!("150m"),
                json!("nginx"),
                json!("nginx:latest"),
                json!("app=nginx,env in (dev,prod)")
            ]
        );
        let no_selector = json!({"metadata": {"name": "rs"}, "spec": {"replicas": 1}});
        let c = cells("apps", "replicasets", &no_selector, now());
        assert_eq!(c[3], 0);
        assert_eq!(c[5], "");
        assert_eq!(c[7], "<none>");
    }
}
