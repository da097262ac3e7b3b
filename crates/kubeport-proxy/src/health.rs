//! The proxy's own health (kube-proxy's `ProxyHealthServer`): `/healthz` and `/livez`, and the
//! `serviceProxyHealthy` flag of the healthCheckNodePort answers.
//!
//! A change received from the API server is "queued"; a successful sync marks the family
//! "updated". The proxy is unhealthy when some family has had a change queued for longer than
//! the health timeout (2 × `--sync-period`) without an update since. `/healthz` additionally
//! requires the node to be eligible (not being deleted, not tainted
//! `ToBeDeletedByClusterAutoscaler`).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kubeport_proxy_model::IpFamily;

use crate::gofmt::{Timestamp, GO_ZERO_TIME};

/// Taint the cluster autoscaler puts on a node it is about to delete.
pub const TO_BE_DELETED_TAINT: &str = "ToBeDeletedByClusterAutoscaler";

/// An HTTP answer: status, JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthAnswer {
    pub status: u16,
    pub body: String,
}

/// Health state; all methods take the current time so the logic is testable.
#[derive(Debug, Clone)]
pub struct ProxyHealth {
    health_timeout: Duration,
    last_updated: BTreeMap<IpFamily, Timestamp>,
    oldest_pending: BTreeMap<IpFamily, Timestamp>,
    node_eligible: bool,
}

impl ProxyHealth {
    /// `health_timeout` is 2 × the sync period in kube-proxy.
    pub fn new(health_timeout: Duration) -> Self {
        ProxyHealth {
            health_timeout,
            last_updated: BTreeMap::new(),
            oldest_pending: BTreeMap::new(),
            // Eligible until a node event says otherwise.
            node_eligible: true,
        }
    }

    /// A change that needs a sync arrived for `family`; only the oldest one counts.
    pub fn queued_update(&mut self, family: IpFamily, now: Timestamp) {
        self.oldest_pending.entry(family).or_insert(now);
    }

    /// The rules of `family` reflect everything received so far.
    pub fn updated(&mut self, family: IpFamily, now: Timestamp) {
        self.oldest_pending.remove(&family);
        self.last_updated.insert(family, now);
    }

    /// Health ignoring the node, and the last update time reported with it.
    pub fn is_healthy(&self, now: Timestamp) -> (bool, Option<Timestamp>) {
        let mut last_updated: Option<Timestamp> = None;
        for (family, updated) in &self.last_updated {
            if last_updated.is_none_or(|last| updated.wall > last.wall) {
                last_updated = Some(*updated);
            }
            let Some(pending) = self.oldest_pending.get(family) else {
                continue;
            };
            if now.monotonic.saturating_sub(pending.monotonic) < self.health_timeout {
                continue;
            }
            return (false, Some(*updated));
        }
        (true, last_updated)
    }

    /// Updates node eligibility from the node object (`None`: the node was deleted).
    pub fn sync_node(&mut self, node: Option<&Node>) {
        self.node_eligible = match node {
            None => false,
            Some(node) => {
                node.metadata.deletion_timestamp.is_none()
                    && !node
                        .spec
                        .as_ref()
                        .and_then(|spec| spec.taints.as_ref())
                        .is_some_and(|taints| {
                            taints.iter().any(|taint| taint.key == TO_BE_DELETED_TAINT)
                        })
            }
        };
    }

    pub fn node_eligible(&self) -> bool {
        self.node_eligible
    }

    /// The `/healthz` answer.
    pub fn healthz(&self, now: Timestamp) -> HealthAnswer {
        let (healthy, last_updated) = self.is_healthy(now);
        let healthy = healthy && self.node_eligible;
        // As kube-proxy: a healthy proxy reports the current time as its last update.
        let last_updated = if healthy { Some(now) } else { last_updated };
        HealthAnswer {
            status: if healthy { 200 } else { 503 },
            body: format!(
                "{{\"lastUpdated\": {},\"currentTime\": {}, \"nodeEligible\": {}}}",
                quoted_time(last_updated),
                quoted_time(Some(now)),
                self.node_eligible
            ),
        }
    }

    /// The `/livez` answer (node eligibility ignored).
    pub fn livez(&self, now: Timestamp) -> HealthAnswer {
        let (healthy, last_updated) = self.is_healthy(now);
        let last_updated = if healthy { Some(now) } else { last_updated };
        HealthAnswer {
            status: if healthy { 200 } else { 503 },
            body: format!(
                "{{\"lastUpdated\": {},\"currentTime\": {}}}",
                quoted_time(last_updated),
                quoted_time(Some(now))
            ),
        }
    }
}

fn quoted_time(time: Option<Timestamp>) -> String {
    let text = time.map_or_else(|| GO_ZERO_TIME.to_string(), |t| t.go_string());
    serde_json::to_string(&text).expect("strings serialize")
}

/// The body of a healthCheckNodePort answer: kube-proxy's tab-indented JSON, no trailing
/// newline.
pub fn service_health_body(
    namespace: &str,
    name: &str,
    local_endpoints: usize,
    proxy_healthy: bool,
) -> String {
    let quote = |s: &str| serde_json::to_string(s).expect("strings serialize");
    format!(
        "{{\n\t\"service\": {{\n\t\t\"namespace\": {},\n\t\t\"name\": {}\n\t}},\n\t\"localEndpoints\": {local_endpoints},\n\t\"serviceProxyHealthy\": {proxy_healthy}\n}}",
        quote(namespace),
        quote(name)
    )
}

/// Status of a healthCheckNodePort answer: 200 iff there are local endpoints and the proxy
/// is healthy.
pub fn service_health_status(local_endpoints: usize, proxy_healthy: bool) -> u16 {
    if local_endpoints > 0 && proxy_healthy {
        200
    } else {
        503
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn at(seconds: u64) -> Timestamp {
        Timestamp {
            wall: Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap()
                + chrono::Duration::seconds(seconds as i64),
            monotonic: Duration::from_secs(seconds),
        }
    }

    #[test]
    fn healthy_while_starting_and_after_updates() {
        let mut health = ProxyHealth::new(Duration::from_secs(60));
        assert_eq!(health.is_healthy(at(0)), (true, None));
        health.updated(IpFamily::V4, at(1));
        health.queued_update(IpFamily::V4, at(2));
        // Not late yet.
        assert!(health.is_healthy(at(61)).0);
        // A second queued change does not move the oldest one.
        health.queued_update(IpFamily::V4, at(30));
        let (healthy, last) = health.is_healthy(at(62));
        assert!(!healthy);
        assert_eq!(last, Some(at(1)));
        health.updated(IpFamily::V4, at(63));
        assert_eq!(health.is_healthy(at(200)), (true, Some(at(63))));
    }

    #[test]
    fn healthz_and_livez_bodies() {
        let mut health = ProxyHealth::new(Duration::from_secs(60));
        health.updated(IpFamily::V4, at(1));
        let ok = health.healthz(at(5));
        assert_eq!(ok.status, 200);
        assert_eq!(
            ok.body,
            "{\"lastUpdated\": \"2024-05-01 10:00:05 +0000 UTC m=+5.000000000\",\"currentTime\": \"2024-05-01 10:00:05 +0000 UTC m=+5.000000000\", \"nodeEligible\": true}"
        );
        health.queued_update(IpFamily::V4, at(10));
        let late = health.livez(at(70));
        assert_eq!(late.status, 503);
        assert_eq!(
            late.body,
            "{\"lastUpdated\": \"2024-05-01 10:00:01 +0000 UTC m=+1.000000000\",\"currentTime\": \"2024-05-01 10:01:10 +0000 UTC m=+70.000000000\"}"
        );
    }

    #[test]
    fn healthz_needs_an_eligible_node_but_livez_does_not() {
        let mut health = ProxyHealth::new(Duration::from_secs(60));
        health.updated(IpFamily::V4, at(1));
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n1"},
            "spec": {"taints": [{"key": TO_BE_DELETED_TAINT, "effect": "NoSchedule"}]}
        }))
        .unwrap();
        health.sync_node(Some(&node));
        let answer = health.healthz(at(2));
        assert_eq!(answer.status, 503);
        assert!(answer.body.ends_with(", \"nodeEligible\": false}"));
        // Unhealthy answers report the last update, not the current time.
        assert!(answer
            .body
            .starts_with("{\"lastUpdated\": \"2024-05-01 10:00:01 +0000 UTC m=+1.000000000\""));
        assert_eq!(health.livez(at(2)).status, 200);
        let plain: Node =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "n1"}})).unwrap();
        health.sync_node(Some(&plain));
        assert_eq!(health.healthz(at(3)).status, 200);
        health.sync_node(None);
        assert_eq!(health.healthz(at(4)).status, 503);
    }

    #[test]
    fn service_health_answer() {
        assert_eq!(
            service_health_body("dev", "nginx-service", 2, true),
            "{\n\t\"service\": {\n\t\t\"namespace\": \"dev\",\n\t\t\"name\": \"nginx-service\"\n\t},\n\t\"localEndpoints\": 2,\n\t\"serviceProxyHealthy\": true\n}"
        );
        assert_eq!(service_health_status(2, true), 200);
        assert_eq!(service_health_status(0, true), 503);
        assert_eq!(service_health_status(3, false), 503);
    }
}
