//! Server-side printing: the `Table` columns and cells kube-apiserver returns for
//! `kubectl get` (1.32/1.33 `pkg/printers/internalversion/printers.go`).
//!
//! Everything here is a pure function over objects in their JSON wire form
//! (`serde_json::Value`, Kubernetes v1 field names). kubectl upper-cases the column
//! names, prints the cells verbatim and hides columns with `priority != 0` unless
//! `-o wide`; kube-apiserver always fills those wide cells, so [`cells`] always does too.
//!
//! Objects are expected as stored by an API server, i.e. after defaulting. Where a
//! defaulted field is nevertheless absent, the printer uses the value kube-apiserver's
//! v1 defaulting would have stored (Service `type` ClusterIP, port `protocol` TCP,
//! `replicas` 1, Secret `type` Opaque, Namespace `phase` Active), because the real
//! printer only ever sees defaulted objects.

mod columns;
mod duration;
mod endpoints;
mod event;
mod json;
mod labels;
mod node;
mod pod;
mod service;
mod simple;
mod workloads;

use chrono::{DateTime, Utc};
use serde_json::Value;

pub use columns::ColumnDefinition;
pub use duration::{age, human_duration};
pub use labels::{format_label_selector, format_labels, label_selector_string};

/// The resources that have a dedicated printer, as (API group, plural resource).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Printer {
    Service,
    Pod,
    Endpoints,
    EndpointSlice,
    Node,
    Namespace,
    Deployment,
    ReplicaSet,
    /// core/v1 Event (`""`, `events`).
    Event,
    /// events.k8s.io/v1 Event: same internal type and printer, different wire field names.
    EventsV1,
    ConfigMap,
    ServiceAccount,
    Secret,
    /// The generic table for resources without a printer: Name, Created At.
    Default,
}

fn printer_for(group: &str, resource: &str) -> Printer {
    match (group, resource) {
        ("", "services") => Printer::Service,
        ("", "pods") => Printer::Pod,
        ("", "endpoints") => Printer::Endpoints,
        ("discovery.k8s.io", "endpointslices") => Printer::EndpointSlice,
        ("", "nodes") => Printer::Node,
        ("", "namespaces") => Printer::Namespace,
        ("apps", "deployments") => Printer::Deployment,
        ("apps", "replicasets") => Printer::ReplicaSet,
        ("", "events") => Printer::Event,
        ("events.k8s.io", "events") => Printer::EventsV1,
        ("", "configmaps") => Printer::ConfigMap,
        ("", "serviceaccounts") => Printer::ServiceAccount,
        ("", "secrets") => Printer::Secret,
        _ => Printer::Default,
    }
}

/// Whether the resource has a dedicated printer (otherwise the default Name/Created At
/// table is used).
pub fn has_printer(group: &str, resource: &str) -> bool {
    printer_for(group, resource) != Printer::Default
}

/// Columns for a resource (plural name + API group, e.g. `("", "services")`,
/// `("apps", "deployments")`); the default ones (Name, Created At) for resources
/// without a printer.
pub fn columns(group: &str, resource: &str) -> Vec<ColumnDefinition> {
    match printer_for(group, resource) {
        Printer::Service => columns::service(),
        Printer::Pod => columns::pod(),
        Printer::Endpoints => columns::endpoints(),
        Printer::EndpointSlice => columns::endpoint_slice(),
        Printer::Node => columns::node(),
        Printer::Namespace => columns::namespace(),
        Printer::Deployment => columns::deployment(),
        Printer::ReplicaSet => columns::replica_set(),
        Printer::Event | Printer::EventsV1 => columns::event(),
        Printer::ConfigMap => columns::config_map(),
        Printer::ServiceAccount => columns::service_account(),
        Printer::Secret => columns::secret(),
        Printer::Default => columns::default_table(),
    }
}

/// Cells for one object, one per column of [`columns`] (wide cells included). `now` is
/// the reference time for AGE-like cells.
pub fn cells(group: &str, resource: &str, obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    match printer_for(group, resource) {
        Printer::Service => service::cells(obj, now),
        Printer::Pod => pod::cells(obj, now),
        Printer::Endpoints => endpoints::endpoints_cells(obj, now),
        Printer::EndpointSlice => endpoints::endpoint_slice_cells(obj, now),
        Printer::Node => node::cells(obj, now),
        Printer::Namespace => simple::namespace_cells(obj, now),
        Printer::Deployment => workloads::deployment_cells(obj, now),
        Printer::ReplicaSet => workloads::replica_set_cells(obj, now),
        Printer::Event => event::cells(&event::CoreEvent::from_core_v1(obj), now),
        Printer::EventsV1 => event::cells(&event::CoreEvent::from_events_v1(obj), now),
        Printer::ConfigMap => simple::config_map_cells(obj, now),
        Printer::ServiceAccount => simple::service_account_cells(obj, now),
        Printer::Secret => simple::secret_cells(obj, now),
        Printer::Default => simple::default_cells(obj),
    }
}

/// The `conditions` of a table row (`TableRowCondition`s as JSON). Only Pods carry any:
/// a `Completed` condition once the pod Succeeded or Failed.
pub fn row_conditions(group: &str, resource: &str, obj: &Value) -> Vec<Value> {
    match printer_for(group, resource) {
        Printer::Pod => pod::row_conditions(obj),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PRINTED: &[(&str, &str)] = &[
        ("", "services"),
        ("", "pods"),
        ("", "endpoints"),
        ("discovery.k8s.io", "endpointslices"),
        ("", "nodes"),
        ("", "namespaces"),
        ("apps", "deployments"),
        ("apps", "replicasets"),
        ("", "events"),
        ("events.k8s.io", "events"),
        ("", "configmaps"),
        ("", "serviceaccounts"),
        ("", "secrets"),
        ("rbac.authorization.k8s.io", "roles"),
    ];

    #[test]
    fn one_cell_per_column_even_for_bare_objects() {
        let now = Utc::now();
        for (group, resource) in PRINTED {
            let n = columns(group, resource).len();
            assert_eq!(
                cells(group, resource, &json!({}), now).len(),
                n,
                "{group}/{resource}"
            );
            assert_eq!(
                cells(group, resource, &json!(null), now).len(),
                n,
                "{group}/{resource}"
            );
        }
    }

    #[test]
    fn every_table_has_one_name_column() {
        for (group, resource) in PRINTED {
            let cols = columns(group, resource);
            let named: Vec<&str> = cols
                .iter()
                .filter(|c| c.format == "name")
                .map(|c| c.name)
                .collect();
            assert_eq!(named, ["Name"], "{group}/{resource}");
            assert!(cols.iter().all(|c| !c.description.is_empty()));
        }
    }

    #[test]
    fn column_definition_wire_form() {
        let cols = columns("", "services");
        assert_eq!(
            serde_json::to_value(&cols[6]).unwrap(),
            json!({
                "name": "Selector",
                "type": "string",
                "format": "",
                "description": "Route service traffic to pods with label keys and values matching this selector. If empty or not present, the service is assumed to have an external process managing its endpoints, which Kubernetes will not modify. Only applies to types ClusterIP, NodePort, and LoadBalancer. Ignored if type is ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/",
                "priority": 1
            })
        );
        let text = serde_json::to_string(&cols[0]).unwrap();
        assert!(text.starts_with(
            r#"{"name":"Name","type":"string","format":"name","description":"Name must be unique"#
        ));
        assert!(text.ends_with(r#","priority":0}"#));
    }

    #[test]
    fn row_conditions_only_for_finished_pods() {
        let failed = json!({"status": {"phase": "Failed"}});
        assert_eq!(
            row_conditions("", "pods", &failed),
            [
                json!({"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."})
            ]
        );
        assert!(row_conditions("", "pods", &json!({"status": {"phase": "Running"}})).is_empty());
        assert!(row_conditions("", "services", &failed).is_empty());
    }
}
