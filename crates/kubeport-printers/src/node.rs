//! Node: NAME, STATUS, ROLES, AGE, VERSION, INTERNAL-IP*, EXTERNAL-IP*, OS-IMAGE*,
//! KERNEL-VERSION*, CONTAINER-RUNTIME*.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::age;
use crate::json::{array, bool_or_false, creation_timestamp, get, name, s, str_or_empty};

/// Label prefix whose remainder names a role: `node-role.kubernetes.io/<role>`.
const NODE_ROLE_PREFIX: &str = "node-role.kubernetes.io/";
/// Legacy role label: `kubernetes.io/role=<role>`.
const NODE_ROLE_LABEL: &str = "kubernetes.io/role";

pub(crate) fn cells(node: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let info = |field: &str| {
        let v = str_or_empty(node, &["status", "nodeInfo", field]);
        if v.is_empty() {
            "<unknown>".to_string()
        } else {
            v.to_string()
        }
    };
    vec![
        s(name(node)),
        s(status(node)),
        s(roles(node)),
        s(age(creation_timestamp(node), now)),
        s(str_or_empty(
            node,
            &["status", "nodeInfo", "kubeletVersion"],
        )),
        s(first_address(node, "InternalIP")),
        s(first_address(node, "ExternalIP")),
        s(info("osImage")),
        s(info("kernelVersion")),
        s(info("containerRuntimeVersion")),
    ]
}

/// `Ready`/`NotReady` from the Ready condition (the last one listed wins), `Unknown`
/// without one; `,SchedulingDisabled` for a cordoned node.
fn status(node: &Value) -> String {
    let ready = array(node, &["status", "conditions"])
        .iter()
        .rev()
        .find(|c| str_or_empty(c, &["type"]) == "Ready");
    let mut parts = vec![match ready {
        Some(c) if str_or_empty(c, &["status"]) == "True" => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if bool_or_false(node, &["spec", "unschedulable"]) {
        parts.push("SchedulingDisabled");
    }
    parts.join(",")
}

/// Roles from `node-role.kubernetes.io/<role>` label keys and `kubernetes.io/role`
/// values, sorted and de-duplicated; `<none>` without any.
fn roles(node: &Value) -> String {
    let mut roles = BTreeSet::new();
    if let Some(Value::Object(labels)) = get(node, &["metadata", "labels"]) {
        for (key, value) in labels {
            if let Some(role) = key.strip_prefix(NODE_ROLE_PREFIX) {
                if !role.is_empty() {
                    roles.insert(role.to_string());
                }
            } else if key == NODE_ROLE_LABEL {
                let v = value.as_str().unwrap_or("");
                if !v.is_empty() {
                    roles.insert(v.to_string());
                }
            }
        }
    }
    if roles.is_empty() {
        return "<none>".to_string();
    }
    roles.into_iter().collect::<Vec<_>>().join(",")
}

fn first_address(node: &Value, kind: &str) -> String {
    array(node, &["status", "addresses"])
        .iter()
        .find(|a| str_or_empty(a, &["type"]) == kind)
        .map(|a| str_or_empty(a, &["address"]).to_string())
        .unwrap_or_else(|| "<none>".to_string())
}

#[cfg(test)]
mod tests {
    use crate::{cells, columns};
    use chrono::{DateTime, Utc};
    use serde_json::{json, Value};

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-05-10T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn node_cells(obj: &Value) -> Vec<Value> {
        cells("", "nodes", obj, now())
    }

    #[test]
    fn node_columns() {
        let cols = columns("", "nodes");
        let names: Vec<&str> = cols.iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            [
                "Name",
                "Status",
                "Roles",
                "Age",
                "Version",
                "Internal-IP",
                "External-IP",
                "OS-Image",
                "Kernel-Version",
                "Container-Runtime"
            ]
        );
        assert_eq!(cols.iter().filter(|c| c.priority == 1).count(), 5);
    }

    #[test]
    fn kind_control_plane_and_worker() {
        // `kubectl get nodes` from the kind article (seed 001).
        let cp = json!({
            "metadata": {"name": "service-demo-control-plane", "creationTimestamp": "2024-05-10T11:59:00Z",
                         "labels": {"kubernetes.io/hostname": "service-demo-control-plane",
                                    "node-role.kubernetes.io/control-plane": ""}},
            "status": {"conditions": [{"type": "MemoryPressure", "status": "False"},
                                      {"type": "Ready", "status": "True"}],
                       "addresses": [{"type": "InternalIP", "address": "172.18.0.3"},
                                     {"type": "Hostname", "address": "service-demo-control-plane"}],
                       "nodeInfo": {"kubeletVersion": "v1.27.3", "osImage": "Debian GNU/Linux 11 (bullseye)",
                                    "kernelVersion": "6.1.0-18-amd64",
                                    "containerRuntimeVersion": "containerd://1.7.1"}}
        });
        assert_eq!(
            node_cells(&cp),
            [
                "service-demo-control-plane",
                "Ready",
                "control-plane",
                "60s",
                "v1.27.3",
                "172.18.0.3",
                "<none>",
                "Debian GNU/Linux 11 (bullseye)",
                "6.1.0-18-amd64",
                "containerd://1.7.1"
            ]
        );
        let worker = json!({
            "metadata": {"name": "service-demo-worker", "creationTimestamp": "2024-05-10T11:59:30Z"},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                       "nodeInfo": {"kubeletVersion": "v1.27.3"}}
        });
        assert_eq!(
            node_cells(&worker),
            [
                "service-demo-worker",
                "Ready",
                "<none>",
                "30s",
                "v1.27.3",
                "<none>",
                "<none>",
                "<unknown>",
                "<unknown>",
                "<unknown>"
            ]
        );
    }

    #[test]
    fn node_status_variants() {
        let with = |conditions: Value, unschedulable: bool| {
            json!({"metadata": {"name": "n"}, "spec": {"unschedulable": unschedulable},
                   "status": {"conditions": conditions}})
        };
        let ready = json!([{"type": "Ready", "status": "True"}]);
        let not_ready = json!([{"type": "Ready", "status": "False"}]);
        let unknown = json!([{"type": "Ready", "status": "Unknown"}]);
        assert_eq!(node_cells(&with(ready.clone(), false))[1], "Ready");
        assert_eq!(
            node_cells(&with(ready, true))[1],
            "Ready,SchedulingDisabled"
        );
        assert_eq!(node_cells(&with(not_ready, false))[1], "NotReady");
        assert_eq!(node_cells(&with(unknown, false))[1], "NotReady");
        assert_eq!(node_cells(&with(json!([]), false))[1], "Unknown");
        assert_eq!(
            node_cells(&with(json!([]), true))[1],
            "Unknown,SchedulingDisabled"
        );
    }

    #[test]
    fn node_roles_sorted_from_both_labels() {
        let node = json!({"metadata": {"name": "n", "labels": {
            "node-role.kubernetes.io/worker": "",
            "node-role.kubernetes.io/control-plane": "",
            "node-role.kubernetes.io/": "",
            "kubernetes.io/role": "ingress",
            "node-role.kubernetes.io/ingress": "true"}},
            "status": {"addresses": [{"type": "ExternalIP", "address": "203.0.113.4"},
                                     {"type": "ExternalIP", "address": "203.0.113.5"}]}});
        let c = node_cells(&node);
        assert_eq!(c[2], "control-plane,ingress,worker");
        assert_eq!(c[6], "203.0.113.4");
    }
}
