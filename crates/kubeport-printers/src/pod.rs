//! Pod: NAME, READY, STATUS, RESTARTS, AGE, IP*, NODE*, NOMINATED NODE*, READINESS GATES*.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::duration::parse_time;
use crate::json::{
    array, bool_or_false, creation_timestamp, get, i64_or_zero, is_set, name, opt_str, s,
    str_or_empty,
};
use crate::{age, human_duration};

/// Pod status reason the node lifecycle controller sets on pods of an unreachable node.
const NODE_UNREACHABLE_POD_REASON: &str = "NodeLost";

pub(crate) fn cells(pod: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let summary = summarize(pod);
    let restarts = match summary.last_restart {
        Some(t) if summary.restarts != 0 => {
            format!("{} ({} ago)", summary.restarts, human_duration(now - t))
        }
        _ => summary.restarts.to_string(),
    };
    vec![
        s(name(pod)),
        s(format!("{}/{}", summary.ready, summary.total)),
        s(summary.reason),
        s(restarts),
        s(age(creation_timestamp(pod), now)),
        s(or_none(pod_ip(pod))),
        s(or_none(str_or_empty(pod, &["spec", "nodeName"]))),
        s(or_none(str_or_empty(pod, &["status", "nominatedNodeName"]))),
        s(readiness_gates(pod)),
    ]
}

pub(crate) fn row_conditions(pod: &Value) -> Vec<Value> {
    let (reason, message) = match str_or_empty(pod, &["status", "phase"]) {
        "Succeeded" => ("Succeeded", "The pod has completed successfully."),
        "Failed" => ("Failed", "The pod failed."),
        _ => return Vec::new(),
    };
    vec![json!({"type": "Completed", "status": "True", "reason": reason, "message": message})]
}

fn or_none(v: &str) -> &str {
    if v.is_empty() {
        "<none>"
    } else {
        v
    }
}

/// The first pod IP. `podIP` is authoritative when set (the v1→internal conversion
/// rebuilds `podIPs` from it); otherwise `podIPs[0].ip`.
fn pod_ip(pod: &Value) -> &str {
    match opt_str(pod, &["status", "podIP"]) {
        Some(ip) if !ip.is_empty() => ip,
        _ => array(pod, &["status", "podIPs"])
            .first()
            .map(|p| str_or_empty(p, &["ip"]))
            .unwrap_or(""),
    }
}

/// `<none>` without readiness gates, else `true/total` over the gates' conditions.
fn readiness_gates(pod: &Value) -> String {
    let gates = array(pod, &["spec", "readinessGates"]);
    if gates.is_empty() {
        return "<none>".to_string();
    }
    let conditions = array(pod, &["status", "conditions"]);
    let true_count = gates
        .iter()
        .filter(|gate| {
            let wanted = str_or_empty(gate, &["conditionType"]);
            conditions
                .iter()
                .find(|c| str_or_empty(c, &["type"]) == wanted)
                .is_some_and(|c| str_or_empty(c, &["status"]) == "True")
        })
        .count();
    format!("{}/{}", true_count, gates.len())
}

struct Summary {
    ready: usize,
    total: usize,
    reason: String,
    restarts: i64,
    last_restart: Option<DateTime<Utc>>,
}

/// `lastState.terminated.finishedAt` of a container status, if it is a real time.
fn last_termination(status: &Value) -> Option<DateTime<Utc>> {
    if !is_set(status, &["lastState", "terminated"]) {
        return None;
    }
    opt_str(status, &["lastState", "terminated", "finishedAt"]).and_then(parse_time)
}

fn later(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// A sidecar: an init container with `restartPolicy: Always`.
fn is_restartable_init(spec: Option<&Value>) -> bool {
    spec.and_then(|c| c.get("restartPolicy"))
        .and_then(Value::as_str)
        == Some("Always")
}

fn condition_true(pod: &Value, condition_type: &str) -> bool {
    array(pod, &["status", "conditions"])
        .iter()
        .find(|c| str_or_empty(c, &["type"]) == condition_type)
        .is_some_and(|c| str_or_empty(c, &["status"]) == "True")
}

fn has_pod_ready_condition(pod: &Value) -> bool {
    array(pod, &["status", "conditions"])
        .iter()
        .any(|c| str_or_empty(c, &["type"]) == "Ready" && str_or_empty(c, &["status"]) == "True")
}

/// The READY, STATUS and RESTARTS figures, following printers.go `printPod`.
fn summarize(pod: &Value) -> Summary {
    let init_specs = array(pod, &["spec", "initContainers"]);
    let total = array(pod, &["spec", "containers"]).len()
        + init_specs
            .iter()
            .filter(|c| is_restartable_init(Some(c)))
            .count();
    let mut ready = 0usize;
    let mut restarts: i64 = 0;
    let mut sidecar_restarts: i64 = 0;
    let mut last_restart: Option<DateTime<Utc>> = None;
    let mut last_sidecar_restart: Option<DateTime<Utc>> = None;

    let phase = str_or_empty(pod, &["status", "phase"]);
    let mut reason = match str_or_empty(pod, &["status", "reason"]) {
        "" => phase.to_string(),
        r => r.to_string(),
    };
    let scheduling_gated = array(pod, &["status", "conditions"]).iter().any(|c| {
        str_or_empty(c, &["type"]) == "PodScheduled"
            && str_or_empty(c, &["reason"]) == "SchedulingGated"
    });
    if scheduling_gated {
        reason = "SchedulingGated".to_string();
    }

    let init_spec_named = |n: &str| init_specs.iter().find(|c| str_or_empty(c, &["name"]) == n);

    let mut initializing = false;
    for (i, status) in array(pod, &["status", "initContainerStatuses"])
        .iter()
        .enumerate()
    {
        let count = i64_or_zero(status, &["restartCount"]);
        restarts += count;
        let finished = last_termination(status);
        last_restart = later(last_restart, finished);
        let restartable = is_restartable_init(init_spec_named(str_or_empty(status, &["name"])));
        if restartable {
            sidecar_restarts += count;
            last_sidecar_restart = later(last_sidecar_restart, finished);
        }

        let terminated = get(status, &["state", "terminated"]).filter(|t| !t.is_null());
        let waiting_reason = get(status, &["state", "waiting"])
            .filter(|w| !w.is_null())
            .map(|w| str_or_empty(w, &["reason"]));
        if terminated.is_some_and(|t| i64_or_zero(t, &["exitCode"]) == 0) {
            continue;
        }
        if restartable && bool_or_false(status, &["started"]) {
            if bool_or_false(status, &["ready"]) {
                ready += 1;
            }
            continue;
        }
        if let Some(t) = terminated {
            // Initialization failed.
            reason = match str_or_empty(t, &["reason"]) {
                "" => {
                    let signal = i64_or_zero(t, &["signal"]);
                    if signal != 0 {
                        format!("Init:Signal:{signal}")
                    } else {
                        format!("Init:ExitCode:{}", i64_or_zero(t, &["exitCode"]))
                    }
                }
                r => format!("Init:{r}"),
            };
        } else if let Some(w) = waiting_reason.filter(|r| !r.is_empty() && *r != "PodInitializing")
        {
            reason = format!("Init:{w}");
        } else {
            reason = format!("Init:{}/{}", i, init_specs.len());
        }
        initializing = true;
        break;
    }

    if !initializing || condition_true(pod, "Initialized") {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for status in array(pod, &["status", "containerStatuses"]).iter().rev() {
            restarts += i64_or_zero(status, &["restartCount"]);
            last_restart = later(last_restart, last_termination(status));

            let waiting = get(status, &["state", "waiting"]).filter(|w| !w.is_null());
            let terminated = get(status, &["state", "terminated"]).filter(|t| !t.is_null());
            let running = is_set(status, &["state", "running"]);
            let waiting_reason = waiting.map(|w| str_or_empty(w, &["reason"])).unwrap_or("");
            if !waiting_reason.is_empty() {
                reason = waiting_reason.to_string();
            } else if let Some(t) = terminated {
                reason = match str_or_empty(t, &["reason"]) {
                    "" => {
                        let signal = i64_or_zero(t, &["signal"]);
                        if signal != 0 {
                            format!("Signal:{signal}")
                        } else {
                            format!("ExitCode:{}", i64_or_zero(t, &["exitCode"]))
                        }
                    }
                    r => r.to_string(),
                };
            } else if bool_or_false(status, &["ready"]) && running {
                has_running = true;
                ready += 1;
            }
        }
        // Back to Running while at least one container still runs.
        if reason == "Completed" && has_running {
            reason = if has_pod_ready_condition(pod) {
                "Running".to_string()
            } else {
                "NotReady".to_string()
            };
        }
    }

    let deleting = is_set(pod, &["metadata", "deletionTimestamp"]);
    if deleting && str_or_empty(pod, &["status", "reason"]) == NODE_UNREACHABLE_POD_REASON {
        reason = "Unknown".to_string();
    } else if deleting && !matches!(phase, "Succeeded" | "Failed") {
        reason = "Terminating".to_string();
    }

    Summary {
        ready,
        total,
        reason,
        restarts,
        last_restart,
    }
}

#[cfg(test)]
mod tests {
    use crate::{cells, columns, row_conditions};
    use chrono::{DateTime, Utc};
    use serde_json::{json, Value};

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-05-10T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn pod_cells(obj: &Value) -> Vec<String> {
        cells("", "pods", obj, now())
            .into_iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect()
    }

    /// READY, STATUS, RESTARTS.
    fn rsr(obj: &Value) -> (String, String, String) {
        let c = pod_cells(obj);
        (c[1].clone(), c[2].clone(), c[3].clone())
    }

    fn tuple(a: &str, b: &str, c: &str) -> (String, String, String) {
        (a.to_string(), b.to_string(), c.to_string())
    }

    #[test]
    fn column_headers() {
        let names: Vec<&str> = columns("", "pods").iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            [
                "Name",
                "Ready",
                "Status",
                "Restarts",
                "Age",
                "IP",
                "Node",
                "Nominated Node",
                "Readiness Gates"
            ]
        );
        let cols = columns("", "pods");
        assert_eq!(cols[3].type_, "string");
        assert!(cols[5..].iter().all(|c| c.priority == 1));
    }

    #[test]
    fn running_pod_with_wide_cells() {
        // `kubectl get pod -n dev -o wide` from the kind article (seed 001).
        let pod = json!({
            "metadata": {"name": "nginx-replicaset-abc12", "namespace": "dev",
                         "creationTimestamp": "2024-05-10T11:58:00Z"},
            "spec": {"nodeName": "service-demo-worker",
                     "containers": [{"name": "nginx", "image": "nginx:latest"}]},
            "status": {
                "phase": "Running", "podIP": "10.244.1.2", "podIPs": [{"ip": "10.244.1.2"}],
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": "nginx", "ready": true, "restartCount": 0,
                                       "started": true,
                                       "state": {"running": {"startedAt": "2024-05-10T11:58:05Z"}}}]
            }
        });
        assert_eq!(
            pod_cells(&pod),
            [
                "nginx-replicaset-abc12",
                "1/1",
                "Running",
                "0",
                "2m",
                "10.244.1.2",
                "service-demo-worker",
                "<none>",
                "<none>"
            ]
        );
    }

    #[test]
    fn pending_unscheduled_pod() {
        let pod = json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Pending"}
        });
        let c = pod_cells(&pod);
        assert_eq!(&c[1..5], ["0/2", "Pending", "0", "<unknown>"]);
        assert_eq!(&c[5..], ["<none>", "<none>", "<none>", "<none>"]);
    }

    #[test]
    fn container_creating() {
        let pod = json!({
            "metadata": {"name": "p"},
            "spec": {"nodeName": "n1", "containers": [{"name": "app"}]},
            "status": {"phase": "Pending",
                       "containerStatuses": [{"name": "app", "ready": false, "restartCount": 0,
                                              "state": {"waiting": {"reason": "ContainerCreating"}}}]}
        });
        assert_eq!(rsr(&pod), tuple("0/1", "ContainerCreating", "0"));
    }

    #[test]
    fn crash_loop_back_off_with_last_restart() {
        let pod = json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "app"}]},
            "status": {"phase": "Running",
                       "containerStatuses": [{
                           "name": "app", "ready": false, "restartCount": 4,
                           "state": {"waiting": {"reason": "CrashLoopBackOff",
                                                 "message": "back-off 1m20s"}},
                           "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                                                        "finishedAt": "2024-05-10T11:55:00Z"}}}]}
        });
        assert_eq!(rsr(&pod), tuple("0/1", "CrashLoopBackOff", "4 (5m ago)"));
    }

    #[test]
    fn restarts_without_termination_time() {
        let pod = json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "app"}]},
            "status": {"phase": "Running",
                       "conditions": [{"type": "Ready", "status": "True"}],
                       "containerStatuses": [{"name": "app", "ready": true, "restartCount": 2,
                                              "state": {"running": {}}}]}
        });
        assert_eq!(rsr(&pod), tuple("1/1", "Running", "2"));
    }

    #[test]
    fn completed_pod() {
        let pod = json!({
            "metadata": {"name": "job-x"},
            "spec": {"containers": [{"name": "main"}]},
            "status": {"phase": "Succeeded",
                       "containerStatuses": [{"name": "main", "ready": false, "restartCount": 0,
                                              "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}
        });
        assert_eq!(rsr(&pod), tuple("0/1", "Completed", "0"));
        assert_eq!(
            row_conditions("", "pods", &pod),
            [
                json!({"type": "Completed", "status": "True", "reason": "Succeeded",
                    "message": "The pod has completed successfully."})
            ]
        );
    }

    #[test]
    fn completed_container_with_running_sibling() {
        let base = |conditions: Value| {
            json!({
                "metadata": {"name": "p"},
                "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
                "status": {"phase": "Running", "conditions": conditions,
                           "containerStatuses": [
                               {"name": "a", "ready": false,
                                "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                               {"name": "b", "ready": true, "state": {"running": {}}}]}
            })
        };
        let ready = base(json!([{"type": "Ready", "status": "True"}]));
        assert_eq!(rsr(&ready), tuple("1/2", "Running", "0"));
        let not_ready = base(json!([{"type": "Ready", "status": "False"}]));
        assert_eq!(rsr(&not_ready), tuple("1/2", "NotReady", "0"));
    }

    #[test]
    fn terminated_without_reason_shows_exit_code_or_signal() {
        let with = |term: Value| {
            json!({
                "metadata": {"name": "p"},
                "spec": {"containers": [{"name": "a"}]},
                "status": {"phase": "Failed",
                           "containerStatuses": [{"name": "a", "state": {"terminated": term}}]}
            })
        };
        assert_eq!(rsr(&with(json!({"exitCode": 3}))).1, "ExitCode:3");
        assert_eq!(
            rsr(&with(json!({"exitCode": 137, "signal": 9}))).1,
            "Signal:9"
        );
        assert_eq!(
            rsr(&with(json!({"exitCode": 1, "reason": "Error"}))).1,
            "Error"
        );
    }

    #[test]
    fn terminating_pod() {
        let pod = json!({
            "metadata": {"name": "p", "deletionTimestamp": "2024-05-10T11:59:50Z"},
            "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Running",
                       "conditions": [{"type": "Ready", "status": "True"}],
                       "containerStatuses": [{"name": "a", "ready": true, "state": {"running": {}}}]}
        });
        assert_eq!(rsr(&pod), tuple("1/1", "Terminating", "0"));

        let lost = json!({
            "metadata": {"name": "p", "deletionTimestamp": "2024-05-10T11:59:50Z"},
            "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Running", "reason": "NodeLost"}
        });
        assert_eq!(rsr(&lost).1, "Unknown");

        let finished = json!({
            "metadata": {"name": "p", "deletionTimestamp": "2024-05-10T11:59:50Z"},
            "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Succeeded"}
        });
        assert_eq!(rsr(&finished).1, "Succeeded");
    }

    #[test]
    fn status_reason_and_scheduling_gates() {
        let evicted = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Failed", "reason": "Evicted"}});
        assert_eq!(rsr(&evicted).1, "Evicted");
        let gated = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Pending",
                       "conditions": [{"type": "PodScheduled", "status": "False",
                                       "reason": "SchedulingGated"}]}});
        assert_eq!(rsr(&gated).1, "SchedulingGated");
    }

    #[test]
    fn init_container_states() {
        let with_init = |statuses: Value| {
            json!({
                "metadata": {"name": "p"},
                "spec": {"initContainers": [{"name": "i1"}, {"name": "i2"}],
                         "containers": [{"name": "app"}]},
                "status": {"phase": "Pending", "initContainerStatuses": statuses,
                           "containerStatuses": [{"name": "app",
                               "state": {"waiting": {"reason": "PodInitializing"}}}]}
            })
        };
        let first_running = with_init(json!([
            {"name": "i1", "state": {"running": {}}},
            {"name": "i2", "state": {"waiting": {"reason": "PodInitializing"}}}]));
        assert_eq!(rsr(&first_running), tuple("0/1", "Init:0/2", "0"));

        let second_running = with_init(json!([
            {"name": "i1", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
            {"name": "i2", "state": {"running": {}}}]));
        assert_eq!(rsr(&second_running).1, "Init:1/2");

        let backoff = with_init(json!([
            {"name": "i1", "restartCount": 3, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
             "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2024-05-10T11:59:00Z"}}},
            {"name": "i2", "state": {"waiting": {"reason": "PodInitializing"}}}]));
        assert_eq!(
            rsr(&backoff),
            tuple("0/1", "Init:CrashLoopBackOff", "3 (60s ago)")
        );

        let failed = with_init(json!([
            {"name": "i1", "state": {"terminated": {"exitCode": 2}}}]));
        assert_eq!(rsr(&failed).1, "Init:ExitCode:2");
        let signalled = with_init(json!([
            {"name": "i1", "state": {"terminated": {"exitCode": 137, "signal": 9}}}]));
        assert_eq!(rsr(&signalled).1, "Init:Signal:9");
        let reasoned = with_init(json!([
            {"name": "i1", "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]));
        assert_eq!(rsr(&reasoned).1, "Init:Error");
    }

    #[test]
    fn sidecar_init_containers_count_towards_ready() {
        let pod = json!({
            "metadata": {"name": "p"},
            "spec": {"initContainers": [{"name": "proxy", "restartPolicy": "Always"}],
                     "containers": [{"name": "app"}]},
            "status": {"phase": "Running",
                       "conditions": [{"type": "Initialized", "status": "True"},
                                      {"type": "Ready", "status": "True"}],
                       "initContainerStatuses": [{"name": "proxy", "started": true, "ready": true,
                                                  "restartCount": 1, "state": {"running": {}},
                                                  "lastState": {"terminated": {"exitCode": 1,
                                                      "finishedAt": "2024-05-10T09:00:00Z"}}}],
                       "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0,
                                              "state": {"running": {}}}]}
        });
        assert_eq!(rsr(&pod), tuple("2/2", "Running", "1 (3h ago)"));
    }

    #[test]
    fn readiness_gates_and_nominated_node() {
        let pod = json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a"}],
                     "readinessGates": [{"conditionType": "example.com/feature-1"},
                                        {"conditionType": "example.com/feature-2"}]},
            "status": {"phase": "Pending", "nominatedNodeName": "node-b",
                       "podIPs": [{"ip": "10.244.0.9"}, {"ip": "fd00::9"}],
                       "conditions": [{"type": "example.com/feature-1", "status": "True"},
                                      {"type": "example.com/feature-2", "status": "False"}]}
        });
        let c = pod_cells(&pod);
        assert_eq!(&c[5..], ["10.244.0.9", "<none>", "node-b", "1/2"]);
    }
}
