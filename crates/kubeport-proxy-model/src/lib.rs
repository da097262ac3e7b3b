//! Backend-neutral core of kubeport's node service proxy, modelled on kube-proxy's split:
//!
//! - [`tracker`]: change trackers fed with watch events ([`ServiceChangeTracker`],
//!   [`EndpointsChangeTracker`]);
//! - [`endpoints`]: the [`EndpointSliceCache`] merging EndpointSlices per Service;
//! - [`topology`]: [`categorize_endpoints`], the one endpoint-selection function (traffic
//!   policies, topology hints, terminating fallback);
//! - [`state`]: [`compute`], producing the [`ProxyState`] a backend turns into rules.
//!
//! Nothing here performs I/O.

pub mod endpoints;
pub mod service;
pub mod state;
pub mod topology;
pub mod tracker;
pub mod types;

pub use endpoints::{sort_endpoints, Endpoint, EndpointSliceCache, EndpointsMap};
pub use service::{service_port_infos, should_skip_service, ServicePortInfo, SessionAffinity};
pub use state::{
    compute, ClusterIpMasquerade, FamilySettings, Frontend, FrontendKind, HealthCheckService,
    NodePortTargets, ProxyState, ServicePortState, TrafficTarget,
};
pub use topology::{categorize_endpoints, CategorizedEndpoints, TopologyMode};
pub use tracker::{EndpointsChangeTracker, EndpointsChanges, ObjectChange, ServiceChangeTracker};
pub use types::{
    IpFamily, NamespacedName, NodeInfo, NodePortAddresses, Protocol, ProxyConfig, ServicePortName,
};
