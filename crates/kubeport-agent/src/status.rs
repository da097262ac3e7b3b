//! Pod status as kubelet computes it: container states, phase and the pod conditions.

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{
    ContainerState as K8sState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, PodCondition, PodIP,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::restart::RestartPolicy;

/// A chrono time as an API `Time`.
pub fn to_time(t: DateTime<Utc>) -> Time {
    let nanos = t.timestamp_nanos_opt().unwrap_or_default() as i128;
    Time(
        k8s_openapi::jiff::Timestamp::from_nanosecond(nanos)
            .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
    )
}

/// An API `Time` as a chrono time.
pub fn from_time(t: &Time) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_nanos(t.0.as_nanosecond() as i64)
}

/// How a container instance ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Termination {
    pub exit_code: i32,
    pub signal: Option<i32>,
    /// `Completed` (exit 0), `Error`, or `StartError` (the process could not be started).
    pub reason: String,
    pub message: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: DateTime<Utc>,
    pub container_id: Option<String>,
}

impl Termination {
    /// The usual reason for an exit code.
    pub fn reason_for(exit_code: i32) -> &'static str {
        if exit_code == 0 {
            "Completed"
        } else {
            "Error"
        }
    }

    fn to_k8s(&self) -> ContainerStateTerminated {
        ContainerStateTerminated {
            exit_code: self.exit_code,
            signal: self.signal,
            reason: Some(self.reason.clone()),
            message: self.message.clone(),
            started_at: self.started_at.map(to_time),
            finished_at: Some(to_time(self.finished_at)),
            container_id: self.container_id.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Waiting {
        reason: String,
        message: Option<String>,
    },
    Running {
        started_at: DateTime<Utc>,
    },
    Terminated(Termination),
}

/// What the agent knows about one container (the source of its ContainerStatus).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRecord {
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub container_id: Option<String>,
    pub state: State,
    pub last_state: Option<Termination>,
    pub ready: bool,
    /// Running and past its startup probe (if any).
    pub started: bool,
    pub restart_count: i32,
}

impl ContainerRecord {
    pub fn new(name: &str, image: &str) -> Self {
        ContainerRecord {
            name: name.to_string(),
            image: image.to_string(),
            image_id: String::new(),
            container_id: None,
            state: State::Waiting {
                reason: "ContainerCreating".into(),
                message: None,
            },
            last_state: None,
            ready: false,
            started: false,
            restart_count: 0,
        }
    }

    pub fn to_k8s(&self) -> ContainerStatus {
        let state = match &self.state {
            State::Waiting { reason, message } => K8sState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some(reason.clone()),
                    message: message.clone(),
                }),
                ..Default::default()
            },
            State::Running { started_at } => K8sState {
                running: Some(ContainerStateRunning {
                    started_at: Some(to_time(*started_at)),
                }),
                ..Default::default()
            },
            State::Terminated(t) => K8sState {
                terminated: Some(t.to_k8s()),
                ..Default::default()
            },
        };
        let last_state = K8sState {
            terminated: self.last_state.as_ref().map(|t| t.to_k8s()),
            ..Default::default()
        };
        ContainerStatus {
            name: self.name.clone(),
            image: self.image.clone(),
            image_id: self.image_id.clone(),
            container_id: self.container_id.clone(),
            ready: self.ready,
            started: Some(self.started),
            restart_count: self.restart_count,
            state: Some(state),
            last_state: Some(last_state),
            ..Default::default()
        }
    }

    fn is_running(&self) -> bool {
        matches!(self.state, State::Running { .. })
    }

    fn succeeded(&self) -> bool {
        matches!(&self.state, State::Terminated(t) if t.exit_code == 0)
    }
}

/// The pod phase from its containers (kubelet's getPhase).
pub fn pod_phase(
    policy: RestartPolicy,
    init: &[ContainerRecord],
    containers: &[ContainerRecord],
) -> &'static str {
    // Init containers run in order; the pod is Pending until all succeeded.
    for c in init {
        if c.succeeded() {
            continue;
        }
        if let State::Terminated(t) = &c.state {
            if !policy.restarts(t.exit_code) {
                return "Failed";
            }
        }
        if policy == RestartPolicy::Never {
            if let Some(t) = &c.last_state {
                if t.exit_code != 0 && !c.is_running() {
                    return "Failed";
                }
            }
        }
        return "Pending";
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for c in containers {
        match &c.state {
            State::Running { .. } => running += 1,
            State::Terminated(t) => {
                stopped += 1;
                if t.exit_code == 0 {
                    succeeded += 1;
                }
            }
            State::Waiting { .. } => {
                if c.last_state.is_some() {
                    stopped += 1;
                } else {
                    waiting += 1;
                }
            }
        }
    }
    if waiting > 0 {
        "Pending"
    } else if running > 0 {
        "Running"
    } else if stopped > 0 {
        if policy == RestartPolicy::Always {
            "Running"
        } else if stopped == succeeded {
            "Succeeded"
        } else if policy == RestartPolicy::Never {
            "Failed"
        } else {
            "Running"
        }
    } else {
        "Pending"
    }
}

/// Inputs of the pod conditions.
pub struct ConditionInput<'a> {
    pub phase: &'a str,
    /// The sandbox (network namespace with its address) exists.
    pub sandbox_ready: bool,
    pub init: &'a [ContainerRecord],
    pub containers: &'a [ContainerRecord],
    /// The pod's current conditions (their transition times are kept while unchanged;
    /// conditions the agent does not own, such as PodScheduled, are kept).
    pub previous: &'a [PodCondition],
    pub now: DateTime<Utc>,
}

fn condition(
    kind: &str,
    ok: bool,
    reason: Option<&str>,
    message: Option<String>,
    previous: &[PodCondition],
    now: DateTime<Utc>,
) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    let transition = previous
        .iter()
        .find(|c| c.type_ == kind && c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| to_time(now));
    PodCondition {
        type_: kind.to_string(),
        status: status.to_string(),
        reason: reason.map(str::to_string),
        message,
        last_transition_time: Some(transition),
        last_probe_time: None,
        ..Default::default()
    }
}

/// Conditions kubelet owns, in kubelet's order, followed by the others kept from `previous`.
pub fn pod_conditions(input: &ConditionInput<'_>) -> Vec<PodCondition> {
    const OWNED: [&str; 4] = [
        "PodReadyToStartContainers",
        "Initialized",
        "Ready",
        "ContainersReady",
    ];
    let completed = input.phase == "Succeeded";
    let mut out = Vec::new();
    out.push(condition(
        OWNED[0],
        input.sandbox_ready,
        None,
        None,
        input.previous,
        input.now,
    ));
    let incomplete: Vec<&str> = input
        .init
        .iter()
        .filter(|c| !c.succeeded())
        .map(|c| c.name.as_str())
        .collect();
    if incomplete.is_empty() || completed {
        let reason = (completed && !input.init.is_empty()).then_some("PodCompleted");
        out.push(condition(
            OWNED[1],
            true,
            reason,
            None,
            input.previous,
            input.now,
        ));
    } else {
        out.push(condition(
            OWNED[1],
            false,
            Some("ContainersNotInitialized"),
            Some(format!(
                "containers with incomplete status: [{}]",
                incomplete.join(" ")
            )),
            input.previous,
            input.now,
        ));
    }
    let unready: Vec<&str> = input
        .containers
        .iter()
        .filter(|c| !c.ready)
        .map(|c| c.name.as_str())
        .collect();
    let (ready, reason, message) = if completed {
        (false, Some("PodCompleted"), None)
    } else if unready.is_empty() {
        (true, None, None)
    } else {
        (
            false,
            Some("ContainersNotReady"),
            Some(format!(
                "containers with unready status: [{}]",
                unready.join(" ")
            )),
        )
    };
    out.push(condition(
        OWNED[2],
        ready,
        reason,
        message.clone(),
        input.previous,
        input.now,
    ));
    out.push(condition(
        OWNED[3],
        ready,
        reason,
        message,
        input.previous,
        input.now,
    ));
    for c in input.previous {
        if !OWNED.contains(&c.type_.as_str()) {
            out.push(c.clone());
        }
    }
    out
}

/// `status.podIPs` / `status.hostIPs` entries.
pub fn pod_ips(ips: &[std::net::IpAddr]) -> Vec<PodIP> {
    ips.iter().map(|i| PodIP { ip: i.to_string() }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2025-01-02T03:04:05Z".parse().unwrap()
    }

    fn running(name: &str, ready: bool) -> ContainerRecord {
        let mut c = ContainerRecord::new(name, "nginx");
        c.state = State::Running { started_at: now() };
        c.started = true;
        c.ready = ready;
        c
    }

    fn exited(name: &str, code: i32) -> ContainerRecord {
        let mut c = ContainerRecord::new(name, "busybox");
        c.state = State::Terminated(Termination {
            exit_code: code,
            signal: None,
            reason: Termination::reason_for(code).into(),
            message: None,
            started_at: Some(now()),
            finished_at: now(),
            container_id: None,
        });
        c
    }

    #[test]
    fn phases() {
        use RestartPolicy::*;
        assert_eq!(
            pod_phase(Always, &[], &[ContainerRecord::new("a", "x")]),
            "Pending"
        );
        assert_eq!(pod_phase(Always, &[], &[running("a", false)]), "Running");
        assert_eq!(pod_phase(Never, &[], &[exited("a", 0)]), "Succeeded");
        assert_eq!(
            pod_phase(Never, &[], &[exited("a", 0), exited("b", 2)]),
            "Failed"
        );
        assert_eq!(pod_phase(OnFailure, &[], &[exited("a", 0)]), "Succeeded");
        assert_eq!(
            pod_phase(Never, &[], &[running("a", true), exited("b", 1)]),
            "Running"
        );
        // Crash-looping: waiting with a last state counts as stopped → Running.
        let mut crashing = ContainerRecord::new("a", "x");
        crashing.state = State::Waiting {
            reason: "CrashLoopBackOff".into(),
            message: None,
        };
        crashing.last_state = Some(match exited("a", 1).state {
            State::Terminated(t) => t,
            _ => unreachable!(),
        });
        assert_eq!(pod_phase(Always, &[], &[crashing]), "Running");
        // Init containers gate the pod.
        assert_eq!(
            pod_phase(
                Always,
                &[running("init", false)],
                &[ContainerRecord::new("a", "x")]
            ),
            "Pending"
        );
        assert_eq!(
            pod_phase(
                Never,
                &[exited("init", 1)],
                &[ContainerRecord::new("a", "x")]
            ),
            "Failed"
        );
        assert_eq!(
            pod_phase(Always, &[exited("init", 0)], &[running("a", true)]),
            "Running"
        );
    }

    #[test]
    fn conditions_for_a_ready_pod_keep_transition_times_and_pod_scheduled() {
        let earlier: DateTime<Utc> = "2025-01-01T00:00:00Z".parse().unwrap();
        let previous = vec![
            PodCondition {
                type_: "PodScheduled".into(),
                status: "True".into(),
                last_transition_time: Some(to_time(earlier)),
                ..Default::default()
            },
            PodCondition {
                type_: "Initialized".into(),
                status: "True".into(),
                last_transition_time: Some(to_time(earlier)),
                ..Default::default()
            },
        ];
        let containers = [running("nginx", true)];
        let conds = pod_conditions(&ConditionInput {
            phase: "Running",
            sandbox_ready: true,
            init: &[],
            containers: &containers,
            previous: &previous,
            now: now(),
        });
        let summary: Vec<(String, String)> = conds
            .iter()
            .map(|c| (c.type_.clone(), c.status.clone()))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("PodReadyToStartContainers".into(), "True".into()),
                ("Initialized".into(), "True".into()),
                ("Ready".into(), "True".into()),
                ("ContainersReady".into(), "True".into()),
                ("PodScheduled".into(), "True".into()),
            ]
        );
        assert_eq!(conds[1].last_transition_time, Some(to_time(earlier)));
        assert_eq!(conds[2].last_transition_time, Some(to_time(now())));
    }

    #[test]
    fn failing_readiness_makes_the_pod_not_ready_with_kubelets_message() {
        let containers = [running("web", false), running("side", true)];
        let conds = pod_conditions(&ConditionInput {
            phase: "Running",
            sandbox_ready: true,
            init: &[],
            containers: &containers,
            previous: &[],
            now: now(),
        });
        let ready = conds.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.status, "False");
        assert_eq!(ready.reason.as_deref(), Some("ContainersNotReady"));
        assert_eq!(
            ready.message.as_deref(),
            Some("containers with unready status: [web]")
        );
        let init = [running("setup", false)];
        let conds = pod_conditions(&ConditionInput {
            phase: "Pending",
            sandbox_ready: true,
            init: &init,
            containers: &[ContainerRecord::new("web", "x")],
            previous: &[],
            now: now(),
        });
        let initialized = conds.iter().find(|c| c.type_ == "Initialized").unwrap();
        assert_eq!(initialized.status, "False");
        assert_eq!(
            initialized.message.as_deref(),
            Some("containers with incomplete status: [setup]")
        );
    }

    #[test]
    fn completed_pod_is_not_ready_with_reason_pod_completed() {
        let containers = [exited("job", 0)];
        let conds = pod_conditions(&ConditionInput {
            phase: "Succeeded",
            sandbox_ready: false,
            init: &[],
            containers: &containers,
            previous: &[],
            now: now(),
        });
        let ready = conds.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_deref()),
            ("False", Some("PodCompleted"))
        );
    }

    #[test]
    fn container_status_shapes() {
        let mut c = exited("job", 2);
        c.restart_count = 3;
        c.container_id = Some("kubeport://abc".into());
        let s = c.to_k8s();
        let t = s.state.unwrap().terminated.unwrap();
        assert_eq!((t.exit_code, t.reason.as_deref()), (2, Some("Error")));
        assert_eq!(s.restart_count, 3);
        assert_eq!(s.last_state, Some(K8sState::default()));
        let json = serde_json::to_value(running("web", true).to_k8s()).unwrap();
        assert_eq!(
            json["state"]["running"]["startedAt"],
            "2025-01-02T03:04:05Z"
        );
        assert_eq!(json["lastState"], serde_json::json!({}));
        assert_eq!(json["ready"], true);
        assert_eq!(json["started"], true);
    }
}
