//! core/v1 Events as client-go's event recorder writes them: named `<object>.<hex nanos>`,
//! `source.component` set, and a repeat of the same event within the cache bumps `count` and
//! `lastTimestamp` of the existing Event instead of creating a new one.

use crate::metrics::ControllerMetrics;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource, ResourceExt};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use tokio::sync::mpsc;

/// How many distinct recent events are remembered for aggregation (client-go: 4096).
const CACHE_SIZE: usize = 4096;

/// `Normal` or `Warning`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// A reference to the object an event is about.
pub fn object_ref<K: Resource<DynamicType = ()>>(obj: &K) -> ObjectReference {
    ObjectReference {
        api_version: Some(K::api_version(&()).into_owned()),
        kind: Some(K::kind(&()).into_owned()),
        name: obj.meta().name.clone(),
        namespace: obj.meta().namespace.clone(),
        uid: obj.meta().uid.clone(),
        resource_version: obj.meta().resource_version.clone(),
        field_path: None,
    }
}

struct Request {
    object: ObjectReference,
    type_: EventType,
    reason: String,
    message: String,
}

/// Records events for one component (`replicaset-controller`, `default-scheduler`, ...).
/// Writes happen on a background task so reconciles never wait for them.
#[derive(Clone)]
pub struct EventRecorder {
    tx: mpsc::UnboundedSender<Request>,
}

impl EventRecorder {
    pub fn new(client: Client, component: &'static str, metrics: Arc<ControllerMetrics>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(writer(client, component, metrics, rx));
        EventRecorder { tx }
    }

    pub fn record(&self, object: ObjectReference, type_: EventType, reason: &str, message: String) {
        let _ = self.tx.send(Request {
            object,
            type_,
            reason: reason.to_string(),
            message,
        });
    }

    pub fn normal<K: Resource<DynamicType = ()>>(&self, obj: &K, reason: &str, message: String) {
        self.record(object_ref(obj), EventType::Normal, reason, message);
    }

    pub fn warning<K: Resource<DynamicType = ()>>(&self, obj: &K, reason: &str, message: String) {
        self.record(object_ref(obj), EventType::Warning, reason, message);
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct CorrelationKey {
    namespace: String,
    kind: String,
    name: String,
    uid: String,
    type_: EventType,
    reason: String,
    message: String,
}

struct Seen {
    event_namespace: String,
    event_name: String,
    count: i32,
}

/// The namespace an event about `object` lives in (cluster-scoped objects: `default`).
pub fn event_namespace(object: &ObjectReference) -> String {
    object
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".to_string())
}

/// Builds a new Event as client-go's recorder does.
pub fn new_event(
    component: &str,
    object: &ObjectReference,
    type_: EventType,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> Event {
    let t = Time(Timestamp::from_second(now.as_second()).unwrap_or(now));
    Event {
        metadata: ObjectMeta {
            name: Some(format!(
                "{}.{:x}",
                object.name.as_deref().unwrap_or_default(),
                now.as_nanosecond()
            )),
            namespace: Some(event_namespace(object)),
            ..Default::default()
        },
        involved_object: object.clone(),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        type_: Some(type_.as_str().to_string()),
        source: Some(EventSource {
            component: Some(component.to_string()),
            host: None,
        }),
        first_timestamp: Some(t.clone()),
        last_timestamp: Some(t),
        count: Some(1),
        reporting_component: Some(component.to_string()),
        reporting_instance: Some(component.to_string()),
        ..Default::default()
    }
}

async fn writer(
    client: Client,
    component: &'static str,
    metrics: Arc<ControllerMetrics>,
    mut rx: mpsc::UnboundedReceiver<Request>,
) {
    let mut seen: HashMap<CorrelationKey, Seen> = HashMap::new();
    let mut order: VecDeque<CorrelationKey> = VecDeque::new();
    while let Some(req) = rx.recv().await {
        let key = CorrelationKey {
            namespace: req.object.namespace.clone().unwrap_or_default(),
            kind: req.object.kind.clone().unwrap_or_default(),
            name: req.object.name.clone().unwrap_or_default(),
            uid: req.object.uid.clone().unwrap_or_default(),
            type_: req.type_,
            reason: req.reason.clone(),
            message: req.message.clone(),
        };
        let now = Timestamp::now();
        if let Some(prev) = seen.get_mut(&key) {
            let api: Api<Event> = Api::namespaced(client.clone(), &prev.event_namespace);
            let count = prev.count + 1;
            let patch = serde_json::json!({
                "count": count,
                "lastTimestamp": Time(Timestamp::from_second(now.as_second()).unwrap_or(now)),
                "message": req.message,
            });
            metrics.write();
            match api
                .patch(
                    &prev.event_name,
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
            {
                Ok(_) => {
                    prev.count = count;
                    continue;
                }
                Err(e) => {
                    tracing::debug!("updating event {}: {e}", prev.event_name);
                    seen.remove(&key);
                }
            }
        }
        let ev = new_event(
            component,
            &req.object,
            req.type_,
            &req.reason,
            &req.message,
            now,
        );
        let ns = ev.namespace().unwrap_or_default();
        let api: Api<Event> = Api::namespaced(client.clone(), &ns);
        metrics.write();
        match api.create(&PostParams::default(), &ev).await {
            Ok(created) => {
                if seen.len() >= CACHE_SIZE {
                    if let Some(old) = order.pop_front() {
                        seen.remove(&old);
                    }
                }
                order.push_back(key.clone());
                seen.insert(
                    key,
                    Seen {
                        event_namespace: ns,
                        event_name: created.name_any(),
                        count: 1,
                    },
                );
            }
            Err(e) => tracing::debug!("creating event {}: {e}", req.reason),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_named_and_sourced_like_client_go() {
        let obj = ObjectReference {
            api_version: Some("apps/v1".into()),
            kind: Some("ReplicaSet".into()),
            name: Some("web".into()),
            namespace: Some("dev".into()),
            uid: Some("u1".into()),
            ..Default::default()
        };
        let now = Timestamp::from_nanosecond(1_700_000_000_123_456_789).unwrap();
        let ev = new_event(
            "replicaset-controller",
            &obj,
            EventType::Normal,
            "SuccessfulCreate",
            "Created pod: web-abcde",
            now,
        );
        assert_eq!(ev.metadata.name.as_deref(), Some("web.17979cfe3d85cd15"));
        assert_eq!(ev.metadata.namespace.as_deref(), Some("dev"));
        assert_eq!(
            ev.source.unwrap().component.as_deref(),
            Some("replicaset-controller")
        );
        assert_eq!(ev.count, Some(1));
        let v = serde_json::to_value(&ev.first_timestamp).unwrap();
        assert_eq!(v, "2023-11-14T22:13:20Z");
        let node = ObjectReference {
            kind: Some("Node".into()),
            name: Some("n1".into()),
            ..Default::default()
        };
        assert_eq!(event_namespace(&node), "default");
    }
}
