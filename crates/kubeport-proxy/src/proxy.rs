//! The running proxy: watchers feeding the change trackers, the sync loop driving a backend,
//! the health and metrics servers, healthCheckNodePort servers and conntrack cleanup.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event as CoreEvent, EventSource, Node, ObjectReference, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{Api, PostParams};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kubeport_proxy_model::endpoints::slice_service;
use kubeport_proxy_model::{
    EndpointsChangeTracker, IpFamily, NamespacedName, NodePortTargets, ObjectChange, ProxyConfig,
    ProxyState, ServiceChangeTracker, TrafficTarget,
};
use tokio::sync::Notify;

use crate::args::ProxyMode;
use crate::backend::{Backend, BackendError, SyncReport};
use crate::conntrack::{self, Conntrack};
use crate::gofmt::Timestamp;
use crate::health::ProxyHealth;
use crate::http::{not_found, response, serve, Handler, Server};
use crate::metrics::{self, Metrics};
use crate::node::{host_addresses, node_info};
use crate::runner::{Backoff, RunnerSchedule};
use crate::service_health::{BindAddresses, ServiceHealthServers, StartFailure};
use crate::state_cache::StateCache;

/// Syncs allowed back to back before `min_sync_period` applies (kube-proxy's burstSyncs).
pub const BURST_SYNCS: u32 = 2;
/// Interval of full resyncs, which rewrite every rule whether or not it changed (restoring
/// anything altered behind the proxy's back).
pub const FULL_SYNC_PERIOD: Duration = Duration::from_secs(3600);

/// Everything the running proxy needs besides the API client.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    pub node_name: String,
    pub mode: ProxyMode,
    pub config: ProxyConfig,
    /// `None`: no metrics server.
    pub metrics_addr: Option<SocketAddr>,
    /// `None`: no `/healthz`/`/livez` server.
    pub healthz_addr: Option<SocketAddr>,
    pub sync_period: Duration,
    pub min_sync_period: Duration,
}

/// What the watchers have seen.
struct Model {
    services: ServiceChangeTracker,
    endpoints: EndpointsChangeTracker,
    node: Option<Node>,
    services_synced: bool,
    slices_synced: bool,
    node_synced: bool,
    /// `last-change-trigger-time` annotations of endpoint changes not yet programmed.
    trigger_times: Vec<String>,
}

/// State shared by the watchers, the sync loop and the HTTP servers.
pub struct Shared {
    model: Mutex<Model>,
    health: Arc<Mutex<ProxyHealth>>,
    metrics: Arc<Metrics>,
    trigger: Notify,
}

impl Shared {
    fn new(options: &ProxyOptions) -> Arc<Shared> {
        Arc::new(Shared {
            model: Mutex::new(Model {
                services: ServiceChangeTracker::new(),
                endpoints: EndpointsChangeTracker::new(),
                node: None,
                services_synced: false,
                slices_synced: false,
                node_synced: false,
                trigger_times: Vec::new(),
            }),
            health: Arc::new(Mutex::new(ProxyHealth::new(options.sync_period * 2))),
            metrics: Arc::new(Metrics::new(options.mode)),
            trigger: Notify::new(),
        })
    }

    /// Records that changes wait for a sync and wakes the sync loop.
    fn queued(&self) {
        let now = Timestamp::now();
        {
            let mut health = self.health.lock().expect("health lock");
            for family in IpFamily::ALL {
                health.queued_update(family, now);
            }
        }
        self.metrics.set(
            metrics::SYNC_PROXY_RULES_LAST_QUEUED_TIMESTAMP,
            now.unix_seconds(),
        );
        self.trigger.notify_one();
    }

    fn apply_service(&self, change: ObjectChange<Service>) {
        let pending = {
            let mut model = self.model.lock().expect("model lock");
            let pending = model.services.apply(change);
            self.metrics.set(
                metrics::SERVICE_CHANGES_PENDING,
                model.services.pending_count() as f64,
            );
            pending
        };
        self.metrics.inc(metrics::SERVICE_CHANGES_TOTAL);
        if pending {
            self.queued();
        }
    }

    fn apply_slice(&self, change: ObjectChange<EndpointSlice>) {
        let pending = {
            let proxied = match &change {
                ObjectChange::Added(slice)
                | ObjectChange::Modified(slice)
                | ObjectChange::Deleted(slice) => slice_service(slice).is_some(),
            };
            let mut model = self.model.lock().expect("model lock");
            let pending = model.endpoints.apply(change);
            self.metrics.set(
                metrics::ENDPOINT_CHANGES_PENDING,
                model.endpoints.pending_count() as f64,
            );
            if proxied {
                self.metrics.inc(metrics::ENDPOINT_CHANGES_TOTAL);
            }
            pending
        };
        if pending {
            self.queued();
        }
    }

    fn initialized(&self) -> bool {
        let model = self.model.lock().expect("model lock");
        model.services_synced && model.slices_synced && model.node_synced
    }

    /// The metrics registry (for embedding callers).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }
}

fn service_key(service: &Service) -> NamespacedName {
    NamespacedName::new(
        service.metadata.namespace.clone().unwrap_or_default(),
        service.metadata.name.clone().unwrap_or_default(),
    )
}

fn slice_key(slice: &EndpointSlice) -> NamespacedName {
    NamespacedName::new(
        slice.metadata.namespace.clone().unwrap_or_default(),
        slice.metadata.name.clone().unwrap_or_default(),
    )
}

/// Watches Services. After a (re)list, Services missing from it are deleted: this is how
/// deletions that happened while the API server was unreachable arrive.
async fn watch_services(client: kube::Client, shared: Arc<Shared>) {
    let api: Api<Service> = Api::all(client);
    let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
    futures::pin_mut!(stream);
    let mut listed: Option<BTreeSet<NamespacedName>> = None;
    while let Some(event) = stream.next().await {
        match event {
            Ok(Event::Init) => listed = Some(BTreeSet::new()),
            Ok(Event::InitApply(service)) => {
                if let Some(listed) = listed.as_mut() {
                    listed.insert(service_key(&service));
                }
                shared.apply_service(ObjectChange::Modified(service));
            }
            Ok(Event::InitDone) => {
                let listed = listed.take().unwrap_or_default();
                let gone: Vec<Service> = {
                    let model = shared.model.lock().expect("model lock");
                    model
                        .services
                        .services()
                        .filter(|service| !listed.contains(&service_key(service)))
                        .cloned()
                        .collect()
                };
                for service in gone {
                    shared.apply_service(ObjectChange::Deleted(service));
                }
                let first = {
                    let mut model = shared.model.lock().expect("model lock");
                    !std::mem::replace(&mut model.services_synced, true)
                };
                if first {
                    tracing::info!("services listed");
                    shared.trigger.notify_one();
                }
            }
            Ok(Event::Apply(service)) => shared.apply_service(ObjectChange::Modified(service)),
            Ok(Event::Delete(service)) => shared.apply_service(ObjectChange::Deleted(service)),
            Err(err) => tracing::warn!(error = %err, "watching services failed; retrying"),
        }
    }
}

/// Watches EndpointSlices (same relist handling as Services).
async fn watch_slices(client: kube::Client, shared: Arc<Shared>) {
    let api: Api<EndpointSlice> = Api::all(client);
    let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
    futures::pin_mut!(stream);
    let mut known: BTreeMap<NamespacedName, EndpointSlice> = BTreeMap::new();
    let mut listed: Option<BTreeSet<NamespacedName>> = None;
    while let Some(event) = stream.next().await {
        match event {
            Ok(Event::Init) => listed = Some(BTreeSet::new()),
            Ok(Event::InitApply(slice)) => {
                let key = slice_key(&slice);
                if let Some(listed) = listed.as_mut() {
                    listed.insert(key.clone());
                }
                known.insert(key, slice.clone());
                shared.apply_slice(ObjectChange::Modified(slice));
            }
            Ok(Event::InitDone) => {
                let listed = listed.take().unwrap_or_default();
                let gone: Vec<NamespacedName> = known
                    .keys()
                    .filter(|key| !listed.contains(*key))
                    .cloned()
                    .collect();
                for key in gone {
                    if let Some(slice) = known.remove(&key) {
                        shared.apply_slice(ObjectChange::Deleted(slice));
                    }
                }
                let first = {
                    let mut model = shared.model.lock().expect("model lock");
                    !std::mem::replace(&mut model.slices_synced, true)
                };
                if first {
                    tracing::info!("endpoint slices listed");
                    shared.trigger.notify_one();
                }
            }
            Ok(Event::Apply(slice)) => {
                known.insert(slice_key(&slice), slice.clone());
                shared.apply_slice(ObjectChange::Modified(slice));
            }
            Ok(Event::Delete(slice)) => {
                known.remove(&slice_key(&slice));
                shared.apply_slice(ObjectChange::Deleted(slice));
            }
            Err(err) => tracing::warn!(error = %err, "watching endpoint slices failed; retrying"),
        }
    }
}

/// What of a Node matters to the rules.
fn node_fingerprint(node: Option<&Node>) -> (Vec<IpAddr>, Option<BTreeMap<String, String>>) {
    (
        node.map(crate::node::node_object_ips).unwrap_or_default(),
        node.and_then(|node| node.metadata.labels.clone()),
    )
}

/// Watches this proxy's own Node (addresses, labels, eligibility for `/healthz`).
async fn watch_node(client: kube::Client, shared: Arc<Shared>, node_name: String) {
    let api: Api<Node> = Api::all(client);
    let config = watcher::Config::default().fields(&format!("metadata.name={node_name}"));
    let stream = watcher::watcher(api, config).default_backoff();
    futures::pin_mut!(stream);
    let mut seen_in_list = false;
    let set_node = |node: Option<Node>| {
        let changed = {
            let mut model = shared.model.lock().expect("model lock");
            let changed = node_fingerprint(model.node.as_ref()) != node_fingerprint(node.as_ref());
            shared
                .health
                .lock()
                .expect("health lock")
                .sync_node(node.as_ref());
            model.node = node;
            changed
        };
        if changed {
            shared.queued();
        }
    };
    while let Some(event) = stream.next().await {
        match event {
            Ok(Event::Init) => seen_in_list = false,
            Ok(Event::InitApply(node)) | Ok(Event::Apply(node)) => {
                seen_in_list = true;
                if node.metadata.name.as_deref() == Some(node_name.as_str()) {
                    set_node(Some(node));
                }
            }
            Ok(Event::InitDone) => {
                if !seen_in_list {
                    let had_node = shared.model.lock().expect("model lock").node.is_some();
                    if had_node {
                        set_node(None);
                    } else {
                        tracing::warn!(
                            node = %node_name,
                            "no Node object for this node: using the network namespace's addresses"
                        );
                    }
                }
                let first = {
                    let mut model = shared.model.lock().expect("model lock");
                    !std::mem::replace(&mut model.node_synced, true)
                };
                if first {
                    shared.trigger.notify_one();
                }
            }
            Ok(Event::Delete(_)) => set_node(None),
            Err(err) => tracing::warn!(error = %err, "watching the node failed; retrying"),
        }
    }
}

/// Serves `/healthz` and `/livez` (kube-proxy's bodies and counters).
fn healthz_handler(shared: Arc<Shared>) -> Handler {
    Arc::new(move |_method, path| {
        let now = Timestamp::now();
        let (answer, counter) = {
            let health = shared.health.lock().expect("health lock");
            match path {
                "/healthz" => (health.healthz(now), metrics::PROXY_HEALTHZ_TOTAL),
                "/livez" => (health.livez(now), metrics::PROXY_LIVEZ_TOTAL),
                _ => return not_found(),
            }
        };
        shared
            .metrics
            .add_labelled(counter, &answer.status.to_string(), 1.0);
        response(
            answer.status,
            &[
                ("Content-Type", "application/json".to_string()),
                ("X-Content-Type-Options", "nosniff".to_string()),
            ],
            answer.body,
        )
    })
}

/// Serves `/metrics`, plus `/proxyMode` and a plain `/healthz` as kube-proxy's metrics server.
fn metrics_handler(shared: Arc<Shared>, mode: ProxyMode) -> Handler {
    Arc::new(move |_method, path| match path {
        "/metrics" => response(
            200,
            &[(
                "Content-Type",
                "text/plain; version=0.0.4; charset=utf-8".to_string(),
            )],
            shared.metrics.render(),
        ),
        "/proxyMode" => response(
            200,
            &[("Content-Type", "text/plain; charset=utf-8".to_string())],
            mode.as_str(),
        ),
        "/healthz" => response(
            200,
            &[("Content-Type", "text/plain; charset=utf-8".to_string())],
            "ok",
        ),
        _ => not_found(),
    })
}

/// Where the healthCheckNodePort servers listen, following `--nodeport-addresses`.
fn health_check_bind(state: &ProxyState) -> BindAddresses {
    let mut ips = Vec::new();
    for family in &state.families {
        match &family.node_ports {
            NodePortTargets::AllLocalAddresses => return BindAddresses::All,
            NodePortTargets::Addresses(addresses) => ips.extend(addresses.iter().copied()),
        }
    }
    if ips.is_empty() {
        BindAddresses::All
    } else {
        BindAddresses::Ips(ips)
    }
}

/// Services with a Local policy and endpoints, but none on this node (kube-proxy's
/// `sync_proxy_rules_no_local_endpoints_total`), by traffic policy.
pub fn no_local_endpoint_counts(state: &ProxyState) -> (usize, usize) {
    let internal = state
        .service_ports
        .iter()
        .filter(|port| port.internal_target == TrafficTarget::Drop)
        .count();
    let external = state
        .service_ports
        .iter()
        .filter(|port| port.external_target == Some(TrafficTarget::Drop))
        .count();
    (internal, external)
}

/// Posts kube-proxy's `FailedToStartServiceHealthcheck` Warning event.
async fn record_health_check_failure(client: &kube::Client, node: &str, failure: &StartFailure) {
    let now = chrono::Utc::now();
    let stamp = k8s_openapi::jiff::Timestamp::now();
    let message = format!(
        "node {node} failed to start healthcheck \"{}\" on port {}: {}",
        failure.service, failure.port, failure.error
    );
    let event = CoreEvent {
        metadata: ObjectMeta {
            name: Some(format!(
                "{}.{:x}",
                failure.service.name,
                now.timestamp_nanos_opt().unwrap_or_default()
            )),
            namespace: Some(failure.service.namespace.clone()),
            ..ObjectMeta::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".to_string()),
            kind: Some("Service".to_string()),
            namespace: Some(failure.service.namespace.clone()),
            name: Some(failure.service.name.clone()),
            uid: Some(failure.service.to_string()),
            ..ObjectReference::default()
        },
        reason: Some("FailedToStartServiceHealthcheck".to_string()),
        message: Some(message),
        type_: Some("Warning".to_string()),
        action: Some("Listen".to_string()),
        source: Some(EventSource {
            component: Some("kube-proxy".to_string()),
            host: Some(node.to_string()),
        }),
        reporting_component: Some("kube-proxy".to_string()),
        reporting_instance: Some(node.to_string()),
        first_timestamp: Some(Time(stamp)),
        last_timestamp: Some(Time(stamp)),
        event_time: Some(MicroTime(stamp)),
        count: Some(1),
        ..CoreEvent::default()
    };
    let api: Api<CoreEvent> = Api::namespaced(client.clone(), &failure.service.namespace);
    if let Err(err) = api.create(&PostParams::default(), &event).await {
        tracing::warn!(error = %err, "recording the healthcheck failure event failed");
    }
}

/// The sync loop's private state.
struct Syncer {
    shared: Arc<Shared>,
    options: ProxyOptions,
    client: Option<kube::Client>,
    backend: Option<Box<dyn Backend>>,
    conntrack: Conntrack,
    health_servers: ServiceHealthServers,
    reported_failures: BTreeSet<(NamespacedName, u16)>,
    cache: StateCache,
    /// Stale conntrack entries to clear after the next successful sync.
    pending_conntrack: conntrack::Plan,
    last_full_sync: Instant,
}

/// What one sync did.
#[derive(Debug)]
pub struct SyncOutcome {
    pub result: Result<SyncReport, BackendError>,
    pub duration: Duration,
}

impl Syncer {
    /// Takes the pending changes from the trackers and brings the desired state up to date
    /// (fully recomputed when `full`).
    fn update_state(&mut self, full: bool) {
        let mut model = self.shared.model.lock().expect("model lock");
        let mut changed = model.services.take();
        let changes = model.endpoints.take();
        changed.extend(changes.services);
        for times in changes.last_change_trigger_times.into_values() {
            model.trigger_times.extend(times);
        }
        self.shared
            .metrics
            .set(metrics::SERVICE_CHANGES_PENDING, 0.0);
        self.shared
            .metrics
            .set(metrics::ENDPOINT_CHANGES_PENDING, 0.0);
        let node = node_info(
            &self.options.node_name,
            model.node.as_ref(),
            &host_addresses(),
        );
        let plan = self.cache.update(
            model.services.services(),
            model.endpoints.cache(),
            &changed,
            node,
            &self.options.config,
            full,
        );
        self.pending_conntrack.merge(plan);
    }

    async fn sync_once(&mut self) -> SyncOutcome {
        let started = Instant::now();
        let mut backend = self.backend.take().expect("backend present between syncs");
        let full = self.last_full_sync.elapsed() >= FULL_SYNC_PERIOD;
        if full {
            self.last_full_sync = Instant::now();
            backend.request_full_resync();
        }
        self.update_state(full);
        let state = self.cache.take().expect("a state after an update");
        let (backend, state, result) = tokio::task::spawn_blocking(move || {
            let result = backend.sync(&state);
            (backend, state, result)
        })
        .await
        .expect("the sync task does not panic");
        self.backend = Some(backend);
        let duration = started.elapsed();
        let metrics = self.shared.metrics.clone();
        match &result {
            Ok(report) => {
                let now = Timestamp::now();
                metrics.observe(metrics::SYNC_PROXY_RULES_DURATION, duration.as_secs_f64());
                if self.options.mode == ProxyMode::Iptables {
                    let name = if report.full_resync {
                        metrics::SYNC_FULL_PROXY_RULES_DURATION
                    } else {
                        metrics::SYNC_PARTIAL_PROXY_RULES_DURATION
                    };
                    metrics.observe(name, duration.as_secs_f64());
                }
                if report.full_resync {
                    self.last_full_sync = Instant::now();
                }
                metrics.set(metrics::SYNC_PROXY_RULES_LAST_TIMESTAMP, now.unix_seconds());
                let trigger_times = std::mem::take(
                    &mut self.shared.model.lock().expect("model lock").trigger_times,
                );
                for time in trigger_times {
                    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(&time) {
                        let latency = now.wall.signed_duration_since(time);
                        if let Ok(latency) = latency.to_std() {
                            metrics.observe(
                                metrics::NETWORK_PROGRAMMING_DURATION,
                                latency.as_secs_f64(),
                            );
                        }
                    }
                }
                let (internal, external) = no_local_endpoint_counts(&state);
                metrics.set_labelled(
                    metrics::NO_LOCAL_ENDPOINTS_TOTAL,
                    "internal",
                    internal as f64,
                );
                metrics.set_labelled(
                    metrics::NO_LOCAL_ENDPOINTS_TOTAL,
                    "external",
                    external as f64,
                );
                {
                    let mut health = self.shared.health.lock().expect("health lock");
                    for family in IpFamily::ALL {
                        health.updated(family, now);
                    }
                }
                if report.commands > 0 {
                    tracing::info!(
                        commands = report.commands,
                        full = report.full_resync,
                        service_ports = state.service_ports.len(),
                        elapsed_ms = duration.as_millis() as u64,
                        "synced proxy rules"
                    );
                }
                self.clear_conntrack().await;
                self.sync_health_checks(&state).await;
            }
            Err(err) => {
                match self.options.mode {
                    ProxyMode::Nftables => metrics.inc(metrics::NFTABLES_SYNC_FAILURES_TOTAL),
                    ProxyMode::Iptables => {
                        metrics.inc(metrics::IPTABLES_RESTORE_FAILURES_TOTAL);
                        if matches!(err, BackendError::Apply { partial: true, .. }) {
                            metrics.inc(metrics::IPTABLES_PARTIAL_RESTORE_FAILURES_TOTAL);
                        }
                    }
                }
                tracing::error!(error = %err, "syncing proxy rules failed; the previous rules stay in place");
            }
        }
        self.cache.restore(state);
        SyncOutcome { result, duration }
    }

    /// Runs the conntrack cleanup accumulated since the last successful sync.
    async fn clear_conntrack(&mut self) {
        let plan = std::mem::take(&mut self.pending_conntrack);
        if plan.is_empty() {
            return;
        }
        let tool = self.conntrack.clone();
        let (commands, errors) = tokio::task::spawn_blocking(move || tool.execute(&plan))
            .await
            .expect("the conntrack task does not panic");
        for err in &errors {
            tracing::error!(error = %err, "clearing stale conntrack entries failed");
        }
        tracing::debug!(
            commands,
            failures = errors.len(),
            "cleared stale conntrack entries"
        );
    }

    async fn sync_health_checks(&mut self, state: &ProxyState) {
        let bind = health_check_bind(state);
        let failures = self.health_servers.sync(&state.health_checks, &bind).await;
        let failed: BTreeSet<(NamespacedName, u16)> = failures
            .iter()
            .map(|f| (f.service.clone(), f.port))
            .collect();
        for failure in &failures {
            let key = (failure.service.clone(), failure.port);
            if self.reported_failures.contains(&key) {
                continue;
            }
            if let Some(client) = &self.client {
                record_health_check_failure(client, &self.options.node_name, failure).await;
            }
        }
        self.reported_failures = failed;
    }

    async fn run(mut self) {
        // Healthy while starting: the first sync has not been asked for yet.
        {
            let now = Timestamp::now();
            let mut health = self.shared.health.lock().expect("health lock");
            for family in IpFamily::ALL {
                health.updated(family, now);
            }
        }
        while !self.shared.initialized() {
            self.shared.trigger.notified().await;
        }
        tracing::info!("initial lists received; programming rules");
        let min_interval = self.options.min_sync_period;
        let mut schedule = RunnerSchedule::new(
            min_interval,
            self.options.sync_period,
            BURST_SYNCS,
            Instant::now(),
        );
        let mut backoff = Backoff::new(
            min_interval.max(Duration::from_secs(1)),
            self.options.sync_period.max(Duration::from_secs(1)),
        );
        loop {
            let next = schedule.next_run(Instant::now());
            tokio::select! {
                _ = self.shared.trigger.notified() => {
                    schedule.request(Instant::now());
                    continue;
                }
                _ = tokio::time::sleep_until(next.into()) => {}
            }
            schedule.start_run(Instant::now());
            let outcome = self.sync_once().await;
            match outcome.result {
                Ok(report) => {
                    backoff.reset();
                    if let Some(delay) = report.follow_up {
                        schedule.request_at(Instant::now() + delay.max(min_interval));
                    }
                }
                Err(_) => {
                    let delay = backoff.next_delay();
                    tracing::info!(
                        retry_in_ms = delay.as_millis() as u64,
                        "will retry the sync"
                    );
                    schedule.request_at(Instant::now() + delay);
                }
            }
        }
    }
}

/// Runs the proxy until `shutdown` completes. Rules stay in place on exit (a restarted proxy
/// takes them over without disturbing established connections).
pub async fn run_proxy(
    client: kube::Client,
    options: ProxyOptions,
    backend: Box<dyn Backend>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let shared = Shared::new(&options);
    let mut _servers: Vec<Server> = Vec::new();
    if let Some(addr) = options.healthz_addr {
        let server = serve(addr, healthz_handler(shared.clone()))
            .await
            .map_err(|err| anyhow::anyhow!("failed to start proxy healthz on {addr}: {err}"))?;
        tracing::info!(address = %addr, "serving /healthz and /livez");
        _servers.push(server);
    }
    if let Some(addr) = options.metrics_addr {
        let server = serve(addr, metrics_handler(shared.clone(), options.mode))
            .await
            .map_err(|err| anyhow::anyhow!("failed to start metrics server on {addr}: {err}"))?;
        tracing::info!(address = %addr, "serving /metrics");
        _servers.push(server);
    }
    let syncer = Syncer {
        shared: shared.clone(),
        options: options.clone(),
        client: Some(client.clone()),
        backend: Some(backend),
        conntrack: Conntrack::new(),
        health_servers: ServiceHealthServers::new(shared.health.clone()),
        reported_failures: BTreeSet::new(),
        cache: StateCache::new(),
        pending_conntrack: conntrack::Plan::default(),
        last_full_sync: Instant::now(),
    };
    let tasks = vec![
        tokio::spawn(watch_services(client.clone(), shared.clone())),
        tokio::spawn(watch_slices(client.clone(), shared.clone())),
        tokio::spawn(watch_node(
            client.clone(),
            shared.clone(),
            options.node_name.clone(),
        )),
        tokio::spawn(syncer.run()),
    ];
    shutdown.await;
    tracing::info!("shutting down; the installed rules stay in place");
    for task in tasks {
        task.abort();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kubeport_proxy_model::compute;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Records the states it is given; fails while `failures` is above zero.
    struct FakeBackend {
        failures: Arc<AtomicUsize>,
        synced: Arc<Mutex<Vec<ProxyState>>>,
    }

    impl Backend for FakeBackend {
        fn sync(&mut self, state: &ProxyState) -> Result<SyncReport, BackendError> {
            if self
                .failures
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                return Err(BackendError::Apply {
                    program: "nft",
                    message: "Error: Could not process rule: No such file or directory".into(),
                    partial: true,
                });
            }
            self.synced.lock().unwrap().push(state.clone());
            Ok(SyncReport {
                full_resync: false,
                commands: 1,
                follow_up: None,
            })
        }

        fn cleanup(&mut self) -> Result<(), BackendError> {
            Ok(())
        }
    }

    fn options(min_sync_period: Duration) -> ProxyOptions {
        ProxyOptions {
            node_name: "n1".into(),
            mode: ProxyMode::Nftables,
            config: ProxyConfig::default(),
            metrics_addr: None,
            healthz_addr: None,
            sync_period: Duration::from_secs(3600),
            min_sync_period,
        }
    }

    fn service(index: usize) -> Service {
        serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": "ns", "name": format!("svc-{index}")},
            "spec": {"clusterIP": format!("10.96.0.{}", index + 1),
                     "ports": [{"port": 80, "protocol": "TCP"}]}
        }))
        .unwrap()
    }

    fn slice(index: usize) -> EndpointSlice {
        serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": "ns", "name": format!("svc-{index}-x"),
                         "labels": {"kubernetes.io/service-name": format!("svc-{index}")},
                         "annotations": {"endpoints.kubernetes.io/last-change-trigger-time":
                                         "2024-05-01T10:00:00.000000000Z"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.244.1.2"]}],
            "ports": [{"port": 8080, "protocol": "TCP"}]
        }))
        .unwrap()
    }

    fn syncer(
        options: &ProxyOptions,
        shared: &Arc<Shared>,
        failures: usize,
    ) -> (Syncer, Arc<AtomicUsize>, Arc<Mutex<Vec<ProxyState>>>) {
        let failures = Arc::new(AtomicUsize::new(failures));
        let synced = Arc::new(Mutex::new(Vec::new()));
        let syncer = Syncer {
            shared: shared.clone(),
            options: options.clone(),
            client: None,
            backend: Some(Box::new(FakeBackend {
                failures: failures.clone(),
                synced: synced.clone(),
            })),
            conntrack: Conntrack::new(),
            health_servers: ServiceHealthServers::new(shared.health.clone()),
            reported_failures: BTreeSet::new(),
            cache: StateCache::new(),
            pending_conntrack: conntrack::Plan::default(),
            last_full_sync: Instant::now(),
        };
        (syncer, failures, synced)
    }

    fn mark_listed(shared: &Shared) {
        let mut model = shared.model.lock().unwrap();
        model.services_synced = true;
        model.slices_synced = true;
        model.node_synced = true;
    }

    #[tokio::test]
    async fn failed_syncs_are_counted_and_keep_their_changes() {
        let options = options(Duration::from_millis(10));
        let shared = Shared::new(&options);
        shared.apply_service(ObjectChange::Added(service(0)));
        shared.apply_slice(ObjectChange::Added(slice(0)));
        assert_eq!(
            shared.metrics.value(metrics::SERVICE_CHANGES_TOTAL),
            Some(1.0)
        );
        assert_eq!(
            shared.metrics.value(metrics::SERVICE_CHANGES_PENDING),
            Some(1.0)
        );
        assert_eq!(
            shared.metrics.value(metrics::ENDPOINT_CHANGES_PENDING),
            Some(1.0)
        );
        let (mut syncer, _, synced) = syncer(&options, &shared, 1);

        let outcome = syncer.sync_once().await;
        assert_eq!(
            outcome.result.unwrap_err().to_string(),
            "nft: Error: Could not process rule: No such file or directory"
        );
        let metrics = &shared.metrics;
        assert_eq!(
            metrics.value(metrics::NFTABLES_SYNC_FAILURES_TOTAL),
            Some(1.0)
        );
        assert_eq!(
            metrics.histogram_count(metrics::SYNC_PROXY_RULES_DURATION),
            Some(0)
        );
        assert_eq!(
            metrics.value(metrics::SYNC_PROXY_RULES_LAST_TIMESTAMP),
            Some(0.0)
        );
        // The failed sync's trigger time waits for a successful one.
        assert_eq!(
            metrics.histogram_count(metrics::NETWORK_PROGRAMMING_DURATION),
            Some(0)
        );

        let outcome = syncer.sync_once().await;
        assert!(outcome.result.is_ok());
        assert_eq!(
            metrics.value(metrics::NFTABLES_SYNC_FAILURES_TOTAL),
            Some(1.0)
        );
        assert_eq!(
            metrics.histogram_count(metrics::SYNC_PROXY_RULES_DURATION),
            Some(1)
        );
        assert_eq!(
            metrics.histogram_count(metrics::NETWORK_PROGRAMMING_DURATION),
            Some(1)
        );
        assert!(
            metrics
                .value(metrics::SYNC_PROXY_RULES_LAST_TIMESTAMP)
                .unwrap()
                > 0.0
        );
        assert_eq!(metrics.value(metrics::SERVICE_CHANGES_PENDING), Some(0.0));
        let synced = synced.lock().unwrap();
        assert_eq!(synced.len(), 1);
        assert_eq!(synced[0].service_ports.len(), 1);
        assert_eq!(synced[0].service_ports[0].cluster_endpoints.len(), 1);
        let text = metrics.render();
        assert!(text.contains(
            "kubeproxy_sync_proxy_rules_no_local_endpoints_total{traffic_policy=\"internal\"} 0\n"
        ));
    }

    #[tokio::test]
    async fn bursts_of_changes_are_coalesced() {
        let options = options(Duration::from_millis(300));
        let shared = Shared::new(&options);
        mark_listed(&shared);
        let (syncer, _, synced) = syncer(&options, &shared, 0);
        let task = tokio::spawn(syncer.run());
        shared.trigger.notify_one();
        let deadline = Instant::now() + Duration::from_secs(5);
        while synced.lock().unwrap().is_empty() {
            assert!(Instant::now() < deadline, "the first sync happens");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for index in 0..20 {
            shared.apply_service(ObjectChange::Added(service(index)));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(1200)).await;
        task.abort();
        let synced = synced.lock().unwrap();
        // The first sync, one from the burst allowance, then at most one per 300 ms.
        assert!(synced.len() <= 5, "{} syncs", synced.len());
        assert_eq!(synced.last().unwrap().service_ports.len(), 20);
    }

    #[test]
    fn health_checks_listen_where_node_ports_do() {
        let state = |nodeport_addresses| {
            compute(
                std::iter::empty::<&Service>(),
                &Default::default(),
                &kubeport_proxy_model::NodeInfo {
                    name: "n1".into(),
                    ips: vec!["172.18.0.2".parse().unwrap()],
                    labels: Default::default(),
                },
                &ProxyConfig {
                    nodeport_addresses,
                    ..ProxyConfig::default()
                },
            )
        };
        assert_eq!(
            health_check_bind(&state(kubeport_proxy_model::NodePortAddresses::Primary)),
            BindAddresses::Ips(vec!["172.18.0.2".parse().unwrap()])
        );
        assert_eq!(
            health_check_bind(&state(kubeport_proxy_model::NodePortAddresses::Cidrs(
                vec![]
            ))),
            BindAddresses::All
        );
    }
}
