//! What kube-apiserver does on its own: default namespaces, the `kubernetes` Service and its
//! endpoints, namespace finalization, and the periodic Service allocation repair.

use crate::meta;
use crate::registry::{
    decode_record, DeleteOptions, FieldValidation, ListOptions, Registry, WriteOptions,
};
use crate::resources::{self, RESOURCES};
use kubeport_core::Status;
use serde_json::{json, Value};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

pub const DEFAULT_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

fn system_opts() -> WriteOptions {
    WriteOptions {
        field_manager: "kube-apiserver".into(),
        dry_run: false,
        validation: FieldValidation::Ignore,
    }
}

/// Creates the default namespaces and the `kubernetes` Service, Endpoints and EndpointSlice.
pub async fn bootstrap(
    registry: &Registry,
    endpoint_ip: IpAddr,
    secure_port: u16,
) -> anyhow::Result<()> {
    let ns_info = resources::find("", "v1", "namespaces").unwrap();
    for ns in DEFAULT_NAMESPACES {
        if registry.get_raw(ns_info, None, ns).is_none() {
            let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            match registry.create(ns_info, None, obj, &system_opts()).await {
                Ok(_) => {}
                Err(s) if s.code == 409 => {}
                Err(s) => anyhow::bail!("creating namespace {ns}: {s}"),
            }
        }
    }
    let svc_info = resources::find("", "v1", "services").unwrap();
    let first_ip = first_service_ip(&registry.service_config.cluster_ip_range);
    if registry
        .get_raw(svc_info, Some("default"), "kubernetes")
        .is_none()
    {
        let svc = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"type": "ClusterIP", "clusterIP": first_ip.to_string(), "sessionAffinity": "None",
                     "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": secure_port}]}
        });
        match registry
            .create(svc_info, Some("default"), svc, &system_opts())
            .await
        {
            Ok(_) => {}
            Err(s) if s.code == 409 => {}
            Err(s) => anyhow::bail!("creating the kubernetes Service: {s}"),
        }
    }
    let ep_info = resources::find("", "v1", "endpoints").unwrap();
    let endpoints = json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": endpoint_ip.to_string()}], "ports": [{"name": "https", "port": secure_port, "protocol": "TCP"}]}]
    });
    upsert(registry, ep_info, Some("default"), "kubernetes", endpoints).await?;
    let slice_info = resources::find("discovery.k8s.io", "v1", "endpointslices").unwrap();
    let family = if endpoint_ip.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    };
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"kubernetes.io/service-name": "kubernetes"}},
        "addressType": family,
        "endpoints": [{"addresses": [endpoint_ip.to_string()], "conditions": {"ready": true}}],
        "ports": [{"name": "https", "port": secure_port, "protocol": "TCP"}]
    });
    upsert(registry, slice_info, Some("default"), "kubernetes", slice).await?;
    Ok(())
}

/// Creates or replaces a system-owned object when its content differs.
async fn upsert(
    registry: &Registry,
    info: &'static resources::ResourceInfo,
    ns: Option<&str>,
    name: &str,
    obj: Value,
) -> anyhow::Result<()> {
    match registry.get(info, ns, name) {
        Err(_) => {
            registry
                .create(info, ns, obj, &system_opts())
                .await
                .map_err(|s| anyhow::anyhow!("creating {} {name}: {s}", info.plural))?;
        }
        Ok(current) => {
            let mut want = obj;
            want["metadata"]["resourceVersion"] = json!(meta::resource_version(&current));
            let differs = ["subsets", "endpoints", "ports", "addressType"]
                .iter()
                .any(|k| want.get(*k) != current.get(*k));
            if differs {
                registry
                    .update(info, ns, name, want, None, &system_opts())
                    .await
                    .map_err(|s| anyhow::anyhow!("updating {} {name}: {s}", info.plural))?;
            }
        }
    }
    Ok(())
}

pub fn first_service_ip(range: &ipnet::IpNet) -> IpAddr {
    match range {
        ipnet::IpNet::V4(n) => IpAddr::V4(std::net::Ipv4Addr::from(u32::from(n.network()) + 1)),
        ipnet::IpNet::V6(n) => IpAddr::V6(std::net::Ipv6Addr::from(u128::from(n.network()) + 1)),
    }
}

/// Writes a namespace's `spec.finalizers` (the `/finalize` subresource), deleting the
/// namespace once it is terminating and nothing holds it any more.
pub async fn write_namespace_finalizers(
    registry: &Registry,
    obj: Value,
    _opts: &WriteOptions,
) -> Result<Value, Status> {
    let info = resources::find("", "v1", "namespaces").unwrap();
    let name = meta::name(&obj).to_string();
    for _ in 0..16 {
        let current = registry
            .get_raw(info, None, &name)
            .ok_or_else(|| Status::not_found(info.group_resource(), &name))?;
        let mut new = decode_record(&current);
        new["spec"]["finalizers"] = obj
            .pointer("/spec/finalizers")
            .cloned()
            .unwrap_or_else(|| json!([]));
        let empty = new
            .pointer("/spec/finalizers")
            .and_then(|f| f.as_array())
            .is_none_or(|a| a.is_empty());
        let key = info.key(None, &name);
        let result = if empty
            && meta::deletion_timestamp(&new).is_some()
            && meta::finalizers(&new).is_empty()
        {
            registry
                .store
                .delete(&key, Some(current.mod_revision))
                .await
        } else {
            let mut stored = new.clone();
            meta::meta_mut(&mut stored).remove("resourceVersion");
            registry
                .store
                .update(
                    &key,
                    bytes::Bytes::from(serde_json::to_vec(&stored).unwrap()),
                    Some(current.mod_revision),
                )
                .await
        };
        match result {
            Ok(rec) => {
                meta::set_resource_version(&mut new, rec.mod_revision);
                return Ok(new);
            }
            Err(kubeport_store::StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(Status::internal(e.to_string())),
        }
    }
    Err(Status::conflict(
        info.group_resource(),
        &name,
        "too many concurrent updates; please retry",
    ))
}

/// Empties terminating namespaces and then removes their `kubernetes` finalizer, as the
/// namespace controller does.
async fn finalize_terminating_namespaces(registry: &Registry) {
    let ns_info = resources::find("", "v1", "namespaces").unwrap();
    let Ok((namespaces, _, _)) = registry.list(ns_info, None, &ListOptions::default()) else {
        return;
    };
    for ns in namespaces
        .into_iter()
        .filter(|n| meta::deletion_timestamp(n).is_some())
    {
        let name = meta::name(&ns).to_string();
        let mut remaining = 0usize;
        for info in RESOURCES.iter().filter(|r| r.namespaced) {
            let force = DeleteOptions {
                grace_period_seconds: Some(0),
                ..Default::default()
            };
            if let Ok(items) = registry
                .delete_collection(info, Some(&name), &ListOptions::default(), &force)
                .await
            {
                let _ = items;
            }
            remaining += registry.store.count(&info.key_prefix_in(Some(&name)));
        }
        if remaining == 0 {
            let mut obj = ns.clone();
            let finalizers: Vec<Value> = ns
                .pointer("/spec/finalizers")
                .and_then(|f| f.as_array())
                .map(|a| {
                    a.iter()
                        .filter(|f| f.as_str() != Some("kubernetes"))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            obj["spec"]["finalizers"] = json!(finalizers);
            let _ = write_namespace_finalizers(registry, obj, &system_opts()).await;
        }
    }
}

/// Background duties; runs until the process ends.
pub fn spawn_background(registry: Arc<Registry>) {
    let reg = registry.clone();
    tokio::spawn(async move {
        let ns_info = resources::find("", "v1", "namespaces").unwrap();
        loop {
            let rev = reg.store.revision();
            finalize_terminating_namespaces(&reg).await;
            // Sleep until a namespace changes (or a minute passes, to finish stragglers).
            if let Ok(mut w) = reg.store.watch(&ns_info.key_prefix(), rev) {
                let _ = tokio::time::timeout(Duration::from_secs(5), w.next()).await;
            } else {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    });
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(180)).await;
            let report = registry.repair_services().await;
            for p in report.problems.iter() {
                tracing::warn!("service allocation repair: {p:?}");
            }
        }
    });
}
