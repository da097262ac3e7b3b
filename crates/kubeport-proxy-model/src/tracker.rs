//! Change trackers: they receive watch events, keep the current objects, and accumulate which
//! Services changed in a way the proxy cares about since the last [`take`](ServiceChangeTracker::take).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::endpoints::{slice_service, EndpointSliceCache, EndpointsMap};
use crate::service::{service_name, service_port_infos, ServicePortInfo};
use crate::types::{NamespacedName, ANNOTATION_LAST_CHANGE_TRIGGER_TIME};

/// A watch event.
#[derive(Debug, Clone, PartialEq)]
pub enum ObjectChange<T> {
    Added(T),
    Modified(T),
    Deleted(T),
}

/// Tracks Services. A Service counts as changed only when its proxied ports differ from what
/// they were at the last `take()`: a change reverted before the next sync cancels out.
#[derive(Debug, Clone, Default)]
pub struct ServiceChangeTracker {
    services: BTreeMap<NamespacedName, Service>,
    /// Proxied ports of each changed Service as they were at the last `take()`.
    pending: BTreeMap<NamespacedName, Vec<ServicePortInfo>>,
}

impl ServiceChangeTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies a watch event. Returns true when changes are pending (whether or not this event
    /// caused them).
    pub fn apply(&mut self, change: ObjectChange<Service>) -> bool {
        let (name, current) = match change {
            ObjectChange::Added(service) | ObjectChange::Modified(service) => {
                (service_name(&service), Some(service))
            }
            ObjectChange::Deleted(service) => (service_name(&service), None),
        };
        let previous_ports = self
            .services
            .get(&name)
            .map(service_port_infos)
            .unwrap_or_default();
        let baseline = self
            .pending
            .entry(name.clone())
            .or_insert(previous_ports)
            .clone();
        let current_ports = current.as_ref().map(service_port_infos).unwrap_or_default();
        match current {
            Some(service) => {
                self.services.insert(name.clone(), service);
            }
            None => {
                self.services.remove(&name);
            }
        }
        if baseline == current_ports {
            self.pending.remove(&name);
        }
        !self.pending.is_empty()
    }

    /// Number of Services with pending changes.
    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    /// Returns the Services changed since the last call and clears the pending set.
    pub fn take(&mut self) -> BTreeSet<NamespacedName> {
        std::mem::take(&mut self.pending).into_keys().collect()
    }

    /// The current Services (all of them, including ones the proxy ignores).
    pub fn services(&self) -> impl Iterator<Item = &Service> {
        self.services.values()
    }
}

/// What changed on the endpoint side since the last `take()`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointsChanges {
    /// Services whose merged endpoints changed.
    pub services: BTreeSet<NamespacedName>,
    /// `endpoints.kubernetes.io/last-change-trigger-time` values seen for those Services
    /// (for the network-programming latency metric), in arrival order.
    pub last_change_trigger_times: BTreeMap<NamespacedName, Vec<String>>,
}

#[derive(Debug, Clone)]
struct PendingEndpoints {
    baseline: EndpointsMap,
    trigger_times: Vec<String>,
}

/// Tracks EndpointSlices through an [`EndpointSliceCache`]; a Service counts as changed when its
/// merged endpoints differ from what they were at the last `take()`.
#[derive(Debug, Clone, Default)]
pub struct EndpointsChangeTracker {
    cache: EndpointSliceCache,
    pending: BTreeMap<NamespacedName, PendingEndpoints>,
}

impl EndpointsChangeTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies a watch event. Returns true when changes are pending.
    pub fn apply(&mut self, change: ObjectChange<EndpointSlice>) -> bool {
        let (slice, deleted) = match &change {
            ObjectChange::Added(slice) | ObjectChange::Modified(slice) => (slice, false),
            ObjectChange::Deleted(slice) => (slice, true),
        };
        let Some(service) = slice_service(slice) else {
            return !self.pending.is_empty();
        };
        let before = self.cache.service_endpoints(&service);
        let touched = if deleted {
            self.cache.remove(slice)
        } else {
            self.cache.update(slice)
        }
        .is_some();
        if touched {
            let entry = self
                .pending
                .entry(service.clone())
                .or_insert_with(|| PendingEndpoints {
                    baseline: before,
                    trigger_times: Vec::new(),
                });
            if let Some(time) = slice
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(ANNOTATION_LAST_CHANGE_TRIGGER_TIME))
            {
                entry.trigger_times.push(time.clone());
            }
            if entry.baseline == self.cache.service_endpoints(&service) {
                self.pending.remove(&service);
            }
        }
        !self.pending.is_empty()
    }

    /// Number of Services with pending endpoint changes.
    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    /// Returns what changed since the last call and clears the pending set.
    pub fn take(&mut self) -> EndpointsChanges {
        let mut changes = EndpointsChanges::default();
        for (service, pending) in std::mem::take(&mut self.pending) {
            if !pending.trigger_times.is_empty() {
                changes
                    .last_change_trigger_times
                    .insert(service.clone(), pending.trigger_times);
            }
            changes.services.insert(service);
        }
        changes
    }

    /// Current merged endpoints of every Service.
    pub fn endpoints(&self) -> EndpointsMap {
        self.cache.endpoints_map()
    }

    /// The underlying slice cache.
    pub fn cache(&self) -> &EndpointSliceCache {
        &self.cache
    }
}
