//! Keeps reflector caches of Namespaces, Services, EndpointSlices and Pods, and publishes a
//! fresh [`Snapshot`] after every change.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::snapshot::Snapshot;

/// The running watchers and the task that rebuilds snapshots.
pub struct Watchers {
    tasks: Vec<JoinHandle<()>>,
}

impl Watchers {
    /// Starts watching through `client`; snapshots go to `publish` (the first one once every
    /// cache has been listed).
    pub fn start(client: kube::Client, publish: watch::Sender<Option<Arc<Snapshot>>>) -> Watchers {
        let changed = Arc::new(Notify::new());
        let mut tasks = Vec::new();
        let namespaces =
            reflect::<Namespace>(Api::all(client.clone()), &changed, &mut tasks, |_| {});
        let services = reflect::<Service>(Api::all(client.clone()), &changed, &mut tasks, |_| {});
        let slices =
            reflect::<EndpointSlice>(Api::all(client.clone()), &changed, &mut tasks, |_| {});
        let pods = reflect::<Pod>(Api::all(client), &changed, &mut tasks, |pod| {
            // Only addresses, phase and hostNetwork matter; drop the rest to keep the cache small.
            pod.metadata.managed_fields = None;
            pod.metadata.annotations = None;
            if let Some(spec) = pod.spec.as_mut() {
                spec.containers.clear();
                spec.init_containers = None;
                spec.volumes = None;
            }
            if let Some(status) = pod.status.as_mut() {
                status.container_statuses = None;
                status.init_container_statuses = None;
                status.conditions = None;
            }
        });
        tasks.push(tokio::spawn(async move {
            for ready in [
                namespaces.wait_until_ready().await,
                services.wait_until_ready().await,
                slices.wait_until_ready().await,
                pods.wait_until_ready().await,
            ] {
                if ready.is_err() {
                    return;
                }
            }
            tracing::info!("caches listed; answering cluster names");
            loop {
                let snapshot = Snapshot::build(
                    namespaces.state().iter().map(|o| o.as_ref()),
                    services.state().iter().map(|o| o.as_ref()),
                    slices.state().iter().map(|o| o.as_ref()),
                    pods.state().iter().map(|o| o.as_ref()),
                    unix_seconds(),
                );
                if publish.send(Some(Arc::new(snapshot))).is_err() {
                    return;
                }
                // A change during the build left a permit: the next build picks it up.
                changed.notified().await;
            }
        }));
        Watchers { tasks }
    }

    /// Stops watching.
    pub fn stop(self) {
        for task in self.tasks {
            task.abort();
        }
    }
}

/// Runs a reflector for `K`, notifying `changed` after every event; returns its store.
fn reflect<K>(
    api: Api<K>,
    changed: &Arc<Notify>,
    tasks: &mut Vec<JoinHandle<()>>,
    trim: impl FnMut(&mut K) + Send + 'static,
) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    let (reader, writer) = reflector::store::<K>();
    let changed = changed.clone();
    let stream = reflector::reflector(
        writer,
        watcher::watcher(api, watcher::Config::default())
            .default_backoff()
            .modify(trim),
    );
    tasks.push(tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(_) => changed.notify_one(),
                Err(error) => {
                    tracing::warn!(%error, kind = %K::kind(&Default::default()), "watch failed; retrying")
                }
            }
        }
    }));
    reader
}

fn unix_seconds() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
        .unwrap_or(0)
}
