//! Event: LAST SEEN, TYPE, REASON, OBJECT, SUBOBJECT*, SOURCE*, MESSAGE, FIRST SEEN*,
//! COUNT*, NAME*.
//!
//! core/v1 and events.k8s.io/v1 Events share one internal type and so one printer; only
//! their wire field names differ, which [`CoreEvent`] irons out.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::json::{i64_or_zero, int, is_set, name, opt_str, s, str_or_empty};
use crate::{age, duration::parse_time};

/// The fields the printer reads, named as in core/v1.
pub(crate) struct CoreEvent<'a> {
    name: &'a str,
    kind: &'a str,
    object_name: &'a str,
    field_path: &'a str,
    event_type: &'a str,
    reason: &'a str,
    message: &'a str,
    source_component: &'a str,
    source_host: &'a str,
    reporting_controller: &'a str,
    reporting_instance: &'a str,
    first_timestamp: Option<&'a str>,
    last_timestamp: Option<&'a str>,
    event_time: Option<&'a str>,
    count: i64,
    /// `(series.count, series.lastObservedTime)` when the event is part of a series.
    series: Option<(i64, Option<&'a str>)>,
}

fn series_of(obj: &Value) -> Option<(i64, Option<&str>)> {
    if !is_set(obj, &["series"]) {
        return None;
    }
    Some((
        i64_or_zero(obj, &["series", "count"]),
        opt_str(obj, &["series", "lastObservedTime"]),
    ))
}

impl<'a> CoreEvent<'a> {
    pub(crate) fn from_core_v1(obj: &'a Value) -> Self {
        CoreEvent {
            name: name(obj),
            kind: str_or_empty(obj, &["involvedObject", "kind"]),
            object_name: str_or_empty(obj, &["involvedObject", "name"]),
            field_path: str_or_empty(obj, &["involvedObject", "fieldPath"]),
            event_type: str_or_empty(obj, &["type"]),
            reason: str_or_empty(obj, &["reason"]),
            message: str_or_empty(obj, &["message"]),
            source_component: str_or_empty(obj, &["source", "component"]),
            source_host: str_or_empty(obj, &["source", "host"]),
            // core/v1 spells ReportingController `reportingComponent` on the wire.
            reporting_controller: str_or_empty(obj, &["reportingComponent"]),
            reporting_instance: str_or_empty(obj, &["reportingInstance"]),
            first_timestamp: opt_str(obj, &["firstTimestamp"]),
            last_timestamp: opt_str(obj, &["lastTimestamp"]),
            event_time: opt_str(obj, &["eventTime"]),
            count: i64_or_zero(obj, &["count"]),
            series: series_of(obj),
        }
    }

    pub(crate) fn from_events_v1(obj: &'a Value) -> Self {
        CoreEvent {
            name: name(obj),
            kind: str_or_empty(obj, &["regarding", "kind"]),
            object_name: str_or_empty(obj, &["regarding", "name"]),
            field_path: str_or_empty(obj, &["regarding", "fieldPath"]),
            event_type: str_or_empty(obj, &["type"]),
            reason: str_or_empty(obj, &["reason"]),
            message: str_or_empty(obj, &["note"]),
            source_component: str_or_empty(obj, &["deprecatedSource", "component"]),
            source_host: str_or_empty(obj, &["deprecatedSource", "host"]),
            reporting_controller: str_or_empty(obj, &["reportingController"]),
            reporting_instance: str_or_empty(obj, &["reportingInstance"]),
            first_timestamp: opt_str(obj, &["deprecatedFirstTimestamp"]),
            last_timestamp: opt_str(obj, &["deprecatedLastTimestamp"]),
            event_time: opt_str(obj, &["eventTime"]),
            count: i64_or_zero(obj, &["deprecatedCount"]),
            series: series_of(obj),
        }
    }
}

fn is_zero(ts: Option<&str>) -> bool {
    ts.and_then(parse_time).is_none()
}

fn first_non_empty<'a>(a: &'a str, b: &'a str) -> &'a str {
    if a.is_empty() {
        b
    } else {
        a
    }
}

pub(crate) fn cells(ev: &CoreEvent<'_>, now: DateTime<Utc>) -> Vec<Value> {
    let first_seen = if is_zero(ev.first_timestamp) {
        age(ev.event_time, now)
    } else {
        age(ev.first_timestamp, now)
    };
    let mut last_seen = if is_zero(ev.last_timestamp) {
        first_seen.clone()
    } else {
        age(ev.last_timestamp, now)
    };
    let mut count = ev.count;
    if let Some((series_count, last_observed)) = ev.series {
        last_seen = age(last_observed, now);
        count = series_count;
    } else if count == 0 {
        // Singleton events of the new API carry no count.
        count = 1;
    }

    let kind = ev.kind.to_lowercase();
    let target = if ev.object_name.is_empty() {
        kind
    } else {
        format!("{kind}/{}", ev.object_name)
    };
    let component = first_non_empty(ev.source_component, ev.reporting_controller);
    let instance = first_non_empty(ev.source_host, ev.reporting_instance);
    let source = if instance.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {instance}")
    };

    vec![
        s(last_seen),
        s(ev.event_type),
        s(ev.reason),
        s(target),
        s(ev.field_path),
        s(source),
        s(ev.message.trim()),
        s(first_seen),
        int(count),
        s(ev.name),
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
    fn event_columns() {
        let cols = columns("", "events");
        let names: Vec<&str> = cols.iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            [
                "Last Seen",
                "Type",
                "Reason",
                "Object",
                "Subobject",
                "Source",
                "Message",
                "First Seen",
                "Count",
                "Name"
            ]
        );
        let wide: Vec<&str> = cols
            .iter()
            .filter(|c| c.priority == 1)
            .map(|c| c.name)
            .collect();
        assert_eq!(wide, ["Subobject", "Source", "First Seen", "Count", "Name"]);
        assert_eq!(cols[9].format, "name");
        assert_eq!(columns("events.k8s.io", "events"), cols);
    }

    #[test]
    fn classic_core_event() {
        let ev = json!({
            "metadata": {"name": "nginx-abc.17c8a1b2c3d4e5f6", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "nginx-abc", "fieldPath": "spec.containers{nginx}"},
            "reason": "Pulled", "message": "Successfully pulled image \"nginx\"\n",
            "source": {"component": "kubelet", "host": "worker-1"},
            "firstTimestamp": "2024-05-10T11:50:00Z", "lastTimestamp": "2024-05-10T11:58:00Z",
            "count": 3, "type": "Normal"
        });
        assert_eq!(
            cells("", "events", &ev, now()),
            [
                json!("2m"),
                json!("Normal"),
                json!("Pulled"),
                json!("pod/nginx-abc"),
                json!("spec.containers{nginx}"),
                json!("kubelet, worker-1"),
                json!("Successfully pulled image \"nginx\""),
                json!("10m"),
                json!(3),
                json!("nginx-abc.17c8a1b2c3d4e5f6")
            ]
        );
    }

    #[test]
    fn new_style_event_uses_event_time_and_reporting_fields() {
        let ev = json!({
            "metadata": {"name": "e1"},
            "involvedObject": {"kind": "Node"},
            "reason": "RegisteredNode", "message": "Node registered",
            "eventTime": "2024-05-10T11:59:29.876543Z",
            "reportingComponent": "node-controller", "type": "Normal"
        });
        let c = cells("", "events", &ev, now());
        assert_eq!(c[0], "30s");
        assert_eq!(c[3], "node");
        assert_eq!(c[5], "node-controller");
        assert_eq!(c[7], "30s");
        assert_eq!(c[8], 1);
    }

    #[test]
    fn series_overrides_last_seen_and_count() {
        let ev = json!({
            "metadata": {"name": "e2"},
            "involvedObject": {"kind": "Pod", "name": "p"},
            "eventTime": "2024-05-10T10:00:00.000000Z",
            "series": {"count": 7, "lastObservedTime": "2024-05-10T11:55:00.000000Z"},
            "reportingComponent": "kubelet", "reportingInstance": "n1", "type": "Warning",
            "reason": "BackOff", "message": "Back-off restarting failed container"
        });
        let c = cells("", "events", &ev, now());
        assert_eq!(c[0], "5m");
        assert_eq!(c[5], "kubelet, n1");
        assert_eq!(c[7], "120m");
        assert_eq!(c[8], 7);
    }

    #[test]
    fn timestamps_missing_everywhere() {
        let ev =
            json!({"metadata": {"name": "e"}, "involvedObject": {"kind": "Service", "name": "s"}});
        let c = cells("", "events", &ev, now());
        assert_eq!(c[0], "<unknown>");
        assert_eq!(c[7], "<unknown>");
        assert_eq!(c[5], "");
    }

    #[test]
    fn events_k8s_io_wire_form() {
        let ev = json!({
            "metadata": {"name": "e3"},
            "regarding": {"kind": "Deployment", "name": "web"},
            "reason": "ScalingReplicaSet", "note": "Scaled up replica set web-5d9 to 3",
            "reportingController": "deployment-controller",
            "deprecatedSource": {"component": "deployment-controller"},
            "deprecatedFirstTimestamp": "2024-05-10T11:00:00Z",
            "deprecatedLastTimestamp": "2024-05-10T11:00:00Z",
            "deprecatedCount": 1, "type": "Normal",
            "eventTime": null
        });
        let c = cells("events.k8s.io", "events", &ev, now());
        assert_eq!(
            c,
            [
                json!("60m"),
                json!("Normal"),
                json!("ScalingReplicaSet"),
                json!("deployment/web"),
                json!(""),
                json!("deployment-controller"),
                json!("Scaled up replica set web-5d9 to 3"),
                json!("60m"),
                json!(1),
                json!("e3")
            ]
        );
    }
}
