//! Incremental desired state: recomputes only the Services that changed since the last sync
//! and splices them into the previous [`ProxyState`].
//!
//! [`compute`] treats every Service independently (its ports, endpoints and health check
//! depend only on that Service, its endpoints, the node and the configuration), so computing
//! a subset of Services and replacing their entries gives exactly what a full computation
//! would. A node or configuration change recomputes everything.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Service;
use kubeport_proxy_model::{
    compute, EndpointSliceCache, EndpointsMap, NamespacedName, NodeInfo, ProxyConfig, ProxyState,
    ServicePortState,
};

use crate::conntrack;

/// The last computed desired state and what it was computed for.
#[derive(Debug, Default)]
pub struct StateCache {
    state: Option<ProxyState>,
    node: Option<NodeInfo>,
    config: Option<ProxyConfig>,
}

fn port_key(
    port: &ServicePortState,
) -> (
    kubeport_proxy_model::IpFamily,
    &kubeport_proxy_model::ServicePortName,
) {
    (port.info.family, &port.info.name)
}

impl StateCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// The current desired state (None before the first update).
    pub fn state(&self) -> Option<&ProxyState> {
        self.state.as_ref()
    }

    /// Takes the state out (to hand it to a blocking task); put it back with
    /// [`StateCache::restore`].
    pub fn take(&mut self) -> Option<ProxyState> {
        self.state.take()
    }

    pub fn restore(&mut self, state: ProxyState) {
        self.state = Some(state);
    }

    /// Brings the state up to date with the Services named in `changed` (Service or endpoint
    /// changes), or recomputes it fully when `full`, on the first call, or when the node or the
    /// configuration differ. Returns the conntrack entries the change makes stale.
    pub fn update<'a>(
        &mut self,
        services: impl IntoIterator<Item = &'a Service>,
        slices: &EndpointSliceCache,
        changed: &BTreeSet<NamespacedName>,
        node: NodeInfo,
        config: &ProxyConfig,
        full: bool,
    ) -> conntrack::Plan {
        let reusable = !full
            && self.state.is_some()
            && self.node.as_ref() == Some(&node)
            && self.config.as_ref() == Some(config);
        if !reusable {
            let state = compute(services, &slices.endpoints_map(), &node, config);
            let plan = conntrack::plan(self.state.as_ref(), &state);
            self.state = Some(state);
            self.node = Some(node);
            self.config = Some(config.clone());
            return plan;
        }
        if changed.is_empty() {
            return conntrack::Plan::default();
        }
        let state = self.state.as_mut().expect("checked above");
        let subset: Vec<&Service> = services
            .into_iter()
            .filter(|service| {
                changed.contains(&NamespacedName::new(
                    service.metadata.namespace.clone().unwrap_or_default(),
                    service.metadata.name.clone().unwrap_or_default(),
                ))
            })
            .collect();
        let mut endpoints = EndpointsMap::new();
        for service in changed {
            endpoints.extend(slices.service_endpoints(service));
        }
        let fresh = compute(subset, &endpoints, &node, config);

        // Split the old entries of the changed Services off, keeping the order of the rest.
        let (removed, kept): (Vec<ServicePortState>, Vec<ServicePortState>) =
            std::mem::take(&mut state.service_ports)
                .into_iter()
                .partition(|port| changed.contains(&port.info.name.service));
        state.service_ports = kept;
        let previous = ProxyState {
            service_ports: removed,
            ..settings_only(&fresh)
        };
        let plan = conntrack::plan(Some(&previous), &fresh);

        for port in fresh.service_ports {
            let at = state
                .service_ports
                .binary_search_by(|probe| port_key(probe).cmp(&port_key(&port)))
                .unwrap_or_else(|at| at);
            state.service_ports.insert(at, port);
        }
        state
            .health_checks
            .retain(|check| !changed.contains(&check.service));
        for check in fresh.health_checks {
            let at = state
                .health_checks
                .binary_search_by(|probe| probe.service.cmp(&check.service))
                .unwrap_or_else(|at| at);
            state.health_checks.insert(at, check);
        }
        plan
    }
}

/// The proxy-wide part of a state, without Services.
fn settings_only(state: &ProxyState) -> ProxyState {
    ProxyState {
        masquerade_mark: state.masquerade_mark,
        masquerade_all: state.masquerade_all,
        families: state.families.clone(),
        service_ports: Vec::new(),
        health_checks: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use kubeport_proxy_model::{EndpointsChangeTracker, ObjectChange, ServiceChangeTracker};
    use serde_json::json;

    fn service(name: &str, ip: &str, protocol: &str, lb_local: bool) -> Service {
        let spec = if lb_local {
            json!({"type": "LoadBalancer", "clusterIP": ip, "externalTrafficPolicy": "Local",
                   "healthCheckNodePort": 32000,
                   "ports": [{"name": "a", "port": 80, "protocol": protocol, "nodePort": 31000},
                             {"name": "b", "port": 81, "protocol": protocol, "nodePort": 31001}]})
        } else {
            json!({"clusterIP": ip, "ports": [{"name": "a", "port": 80, "protocol": protocol}]})
        };
        serde_json::from_value(json!({"metadata": {"namespace": "ns", "name": name}, "spec": spec}))
            .unwrap()
    }

    fn slice(service: &str, protocol: &str, ips: &[&str]) -> EndpointSlice {
        serde_json::from_value(json!({
            "metadata": {"namespace": "ns", "name": format!("{service}-x"),
                         "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4",
            "endpoints": ips.iter().map(|ip| json!({"addresses": [ip], "nodeName": "n1"})).collect::<Vec<_>>(),
            "ports": [{"name": "a", "port": 8080, "protocol": protocol},
                      {"name": "b", "port": 8081, "protocol": protocol}]
        }))
        .unwrap()
    }

    fn node() -> NodeInfo {
        NodeInfo {
            name: "n1".into(),
            ips: vec!["172.18.0.2".parse().unwrap()],
            labels: Default::default(),
        }
    }

    struct World {
        services: ServiceChangeTracker,
        endpoints: EndpointsChangeTracker,
        cache: StateCache,
        config: ProxyConfig,
    }

    impl World {
        fn sync(&mut self) -> conntrack::Plan {
            let mut changed = self.services.take();
            changed.extend(self.endpoints.take().services);
            let plan = self.cache.update(
                self.services.services(),
                self.endpoints.cache(),
                &changed,
                node(),
                &self.config,
                false,
            );
            let full = compute(
                self.services.services(),
                &self.endpoints.endpoints(),
                &node(),
                &self.config,
            );
            assert_eq!(self.cache.state(), Some(&full), "incremental == full");
            plan
        }
    }

    #[test]
    fn incremental_updates_equal_full_computation() {
        let mut world = World {
            services: ServiceChangeTracker::new(),
            endpoints: EndpointsChangeTracker::new(),
            cache: StateCache::new(),
            config: ProxyConfig::default(),
        };
        for (name, ip) in [("m", "10.96.0.5"), ("c", "10.96.0.3"), ("x", "10.96.0.9")] {
            world
                .services
                .apply(ObjectChange::Added(service(name, ip, "TCP", name == "c")));
            world
                .endpoints
                .apply(ObjectChange::Added(slice(name, "TCP", &["10.244.1.2"])));
        }
        world.sync();
        // A new Service sorting first, one sorting between, an endpoint change, a deletion.
        world
            .services
            .apply(ObjectChange::Added(service("a", "10.96.0.1", "UDP", false)));
        world
            .endpoints
            .apply(ObjectChange::Added(slice("a", "UDP", &["10.244.1.7"])));
        world
            .services
            .apply(ObjectChange::Added(service("d", "10.96.0.4", "TCP", true)));
        world.sync();
        world.endpoints.apply(ObjectChange::Modified(slice(
            "c",
            "TCP",
            &["10.244.1.2", "10.244.1.3"],
        )));
        world.services.apply(ObjectChange::Deleted(service(
            "m",
            "10.96.0.5",
            "TCP",
            false,
        )));
        world.sync();
        // The UDP Service loses its endpoint: its flows are to be cleared.
        world
            .endpoints
            .apply(ObjectChange::Modified(slice("a", "UDP", &["10.244.1.8"])));
        let plan = world.sync();
        assert_eq!(plan.deletions.len(), 1, "{plan:?}");
        assert_eq!(
            plan.deletions[0].args(),
            [
                "-D",
                "-p",
                "udp",
                "--orig-dst",
                "10.96.0.1",
                "--dst-nat",
                "10.244.1.7"
            ]
        );
        // Nothing changed: nothing to do.
        assert!(world.sync().is_empty());
        // A configuration change recomputes everything.
        world.config.masquerade_all = true;
        world.sync();
    }
}
