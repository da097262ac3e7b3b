//! Controllers that run inside `kubeport server` but talk to the API only over HTTP (kube-rs):
//! shared informers (watch → indexed cache) feed per-controller work queues whose workers
//! reconcile with backoff, as kube-controller-manager and kube-scheduler do.
//!
//! Controllers, by kube-controller-manager name: `endpointslice`, `endpoint`, `replicaset`,
//! `deployment`, `garbagecollector`, and `scheduler` (kube-scheduler's job).

pub mod deployment;
pub mod endpoints;
pub mod endpoints_controller;
pub mod endpointslice_controller;
pub mod events;
pub mod gc;
pub mod informer;
pub mod labels;
pub mod metrics;
pub mod podutil;
pub mod queue;
pub mod replicaset;
pub mod scheduler;
pub mod shared;

use shared::{Needs, Shared};
use std::sync::Arc;
use std::time::Duration;

/// All controllers, in start order.
pub const CONTROLLERS: &[&str] = &[
    gc::NAME,
    endpointslice_controller::NAME,
    endpoints_controller::NAME,
    replicaset::NAME,
    deployment::NAME,
    scheduler::NAME,
];

/// Which controllers run and how; names as kube-controller-manager's `--controllers`.
#[derive(Clone, Debug)]
pub struct ControllerOptions {
    /// Enabled controller names (resolved from the flag).
    pub enabled: Vec<String>,
    /// Names in the flag that are not controllers (reported by [`start`]).
    pub unknown: Vec<String>,
    /// `--max-endpoints-per-slice` (default 100).
    pub max_endpoints_per_slice: usize,
    /// Concurrent reconciles per controller (kube-controller-manager defaults to 5; the
    /// scheduler always uses one).
    pub workers: usize,
}

impl Default for ControllerOptions {
    fn default() -> Self {
        ControllerOptions::from_flag("*")
    }
}

impl ControllerOptions {
    /// Parses `*`, `*,-scheduler`, or `endpointslice,replicaset`: `*` turns on all
    /// controllers, `name` turns one on, `-name` turns one off (explicit names win over `*`).
    pub fn from_flag(flag: &str) -> Self {
        let items: Vec<&str> = flag
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        let star = items.contains(&"*");
        let mut unknown = Vec::new();
        for item in &items {
            let name = item.trim_start_matches('-');
            if *item != "*" && !CONTROLLERS.contains(&name) {
                unknown.push(name.to_string());
            }
        }
        let enabled = CONTROLLERS
            .iter()
            .filter(|c| {
                if items.contains(&format!("-{c}").as_str()) {
                    false
                } else {
                    items.contains(c) || star
                }
            })
            .map(|c| c.to_string())
            .collect();
        ControllerOptions {
            enabled,
            unknown,
            max_endpoints_per_slice: endpoints::DEFAULT_MAX_ENDPOINTS_PER_SLICE,
            workers: 5,
        }
    }

    pub fn is_enabled(&self, name: &str) -> bool {
        self.enabled.iter().any(|e| e == name)
    }
}

/// Started controllers: their counters, cache sizes, and a way to stop them.
pub struct RunningControllers {
    shared: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    idle_checks: Vec<Box<dyn Fn() -> bool + Send + Sync>>,
    gc: Option<Arc<gc::GarbageCollector>>,
}

/// Object counts of the controller caches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheSizes {
    pub pods: usize,
    pub services: usize,
    pub endpoint_slices: usize,
    pub endpoints: usize,
    pub nodes: usize,
    pub replica_sets: usize,
    pub deployments: usize,
    pub gc_graph: usize,
}

impl RunningControllers {
    pub fn metrics(&self) -> &metrics::Metrics {
        &self.shared.metrics
    }

    pub fn cache_sizes(&self) -> CacheSizes {
        let s = &self.shared;
        CacheSizes {
            pods: s.pods.len(),
            services: s.services.len(),
            endpoint_slices: s.endpoint_slices.len(),
            endpoints: s.endpoints.len(),
            nodes: s.nodes.len(),
            replica_sets: s.replica_sets.len(),
            deployments: s.deployments.len(),
            gc_graph: self.gc.as_ref().map_or(0, |g| g.graph_len()),
        }
    }

    /// Whether every work queue is empty and no reconcile is running.
    pub fn is_idle(&self) -> bool {
        self.idle_checks.iter().all(|f| f())
    }

    /// Stops all controllers and their watches.
    pub fn shutdown(self) {
        for t in &self.tasks {
            t.abort();
        }
    }

    /// Waits until any controller task ends (they run until shut down) and reports it.
    pub async fn wait(mut self) -> anyhow::Result<()> {
        if self.tasks.is_empty() {
            futures::future::pending::<()>().await;
        }
        let (res, _, rest) = futures::future::select_all(std::mem::take(&mut self.tasks)).await;
        for t in rest {
            t.abort();
        }
        res.map_err(|e| anyhow::anyhow!("controller task ended: {e}"))?;
        anyhow::bail!("a controller task ended unexpectedly")
    }
}

/// Starts the enabled controllers: watches first, workers once the caches are synced.
pub async fn start(
    client: kube::Client,
    opts: ControllerOptions,
) -> anyhow::Result<RunningControllers> {
    if let Some(u) = opts.unknown.first() {
        anyhow::bail!("{u:?} is not in the list of known controllers");
    }
    let shared = Shared::new(client, metrics::Metrics::default());
    let on = |n: &str| opts.is_enabled(n);
    let slices = on(endpointslice_controller::NAME);
    let eps = on(endpoints_controller::NAME);
    let rs = on(replicaset::NAME);
    let deploy = on(deployment::NAME);
    let sched = on(scheduler::NAME);
    let needs = Needs {
        pods: slices || eps || rs || deploy || sched,
        services: slices || eps,
        endpoint_slices: slices,
        endpoints: eps,
        nodes: slices || sched,
        replica_sets: rs || deploy,
        deployments: deploy,
    };
    // Handlers are registered before the watches start, so no event is missed.
    let slice_ctl = slices.then(|| {
        endpointslice_controller::EndpointSliceController::new(
            shared.clone(),
            opts.max_endpoints_per_slice,
        )
    });
    let ep_ctl = eps.then(|| endpoints_controller::EndpointsController::new(shared.clone()));
    let rs_ctl = rs.then(|| replicaset::ReplicaSetController::new(shared.clone()));
    let deploy_ctl = deploy.then(|| deployment::DeploymentController::new(shared.clone()));
    let sched_ctl = sched.then(|| scheduler::Scheduler::new(shared.clone()));
    let gc_ctl = on(gc::NAME).then(|| gc::GarbageCollector::new(&shared));

    let mut tasks = shared.start(needs);
    let mut idle_checks: Vec<Box<dyn Fn() -> bool + Send + Sync>> = Vec::new();
    if let Some(g) = &gc_ctl {
        let g2 = g.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(e) = g2.run(opts.workers.max(1) * 4).await {
                tracing::error!("{}: {e:#}", gc::NAME);
            }
        }));
        let q = g.queue().clone();
        idle_checks.push(Box::new(move || q.is_idle()));
    }
    tokio::time::timeout(Duration::from_secs(60), shared.wait_synced(needs))
        .await
        .map_err(|_| anyhow::anyhow!("controller caches did not sync within 60s"))?;
    let w = opts.workers;
    if let Some(c) = &slice_ctl {
        tasks.extend(c.run(w));
        let q = c.queue().clone();
        idle_checks.push(Box::new(move || q.is_idle()));
    }
    if let Some(c) = &ep_ctl {
        c.check_leftovers();
        tasks.extend(c.run(w));
        let q = c.queue().clone();
        idle_checks.push(Box::new(move || q.is_idle()));
    }
    if let Some(c) = &rs_ctl {
        tasks.extend(c.run(w));
        let q = c.queue().clone();
        idle_checks.push(Box::new(move || q.is_idle()));
    }
    if let Some(c) = &deploy_ctl {
        tasks.extend(c.run(w));
        let q = c.queue().clone();
        idle_checks.push(Box::new(move || q.is_idle()));
    }
    if let Some(c) = &sched_ctl {
        tasks.extend(c.run());
        let q = c.queue().clone();
        idle_checks.push(Box::new(move || q.is_idle()));
    }
    tracing::info!("controllers started: {}", opts.enabled.join(", "));
    Ok(RunningControllers {
        shared,
        tasks,
        idle_checks,
        gc: gc_ctl,
    })
}

/// Runs the enabled controllers until the process ends.
pub async fn run(client: kube::Client, opts: ControllerOptions) -> anyhow::Result<()> {
    start(client, opts).await?.wait().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controllers_flag_follows_kube_controller_manager() {
        let all = ControllerOptions::from_flag("*");
        assert_eq!(all.enabled.len(), CONTROLLERS.len());
        let no_sched = ControllerOptions::from_flag("*,-scheduler");
        assert!(!no_sched.is_enabled("scheduler"));
        assert!(no_sched.is_enabled("endpointslice"));
        let two = ControllerOptions::from_flag("endpointslice,replicaset");
        assert_eq!(two.enabled, vec!["endpointslice", "replicaset"]);
        assert!(ControllerOptions::from_flag("").enabled.is_empty());
        assert!(ControllerOptions::from_flag("-scheduler")
            .enabled
            .is_empty());
        assert_eq!(
            ControllerOptions::from_flag("*,bogus").unknown,
            vec!["bogus"]
        );
    }
}
