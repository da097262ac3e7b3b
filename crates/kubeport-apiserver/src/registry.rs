//! The generic REST storage: create/get/list/update/patch/delete/watch over the store,
//! with Kubernetes object-metadata semantics. HTTP concerns live in `http.rs`; per-type
//! behaviour in `strategy.rs` and, for Services, in `kubeport-service`.

use crate::meta;
use crate::resources::{self, ResourceInfo, Subresource};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::strategy;
use crate::typed;
use bytes::Bytes;
use k8s_openapi::api::core::v1::Service;
use kubeport_core::Status;
use kubeport_service::{AllocError, ServiceAllocator, ServiceConfig};
use kubeport_store::{EventKind, Record, Store, StoreError};
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::sync::Mutex;

/// How unknown fields in a request body are treated (`fieldValidation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldValidation {
    Strict,
    Warn,
    Ignore,
}

impl FieldValidation {
    pub fn parse(s: Option<&str>) -> Result<Self, Status> {
        match s.unwrap_or("") {
            "" | "Warn" => Ok(FieldValidation::Warn),
            "Strict" => Ok(FieldValidation::Strict),
            "Ignore" => Ok(FieldValidation::Ignore),
            other => Err(Status::bad_request(format!(
                "fieldValidation parameter unsupported: {other}. Supported values: Ignore, Warn, Strict"
            ))),
        }
    }
}

#[derive(Clone, Debug)]
pub struct WriteOptions {
    pub field_manager: String,
    pub dry_run: bool,
    pub validation: FieldValidation,
}

/// The result of a write: the stored object, warnings for the `Warning` header, and
/// whether it was created (201) rather than updated (200).
#[derive(Debug)]
pub struct Written {
    pub object: Value,
    pub warnings: Vec<String>,
    pub created: bool,
}

#[derive(Clone, Debug, Default)]
pub struct ListOptions {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub limit: usize,
    pub continue_token: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    pub grace_period_seconds: Option<i64>,
    pub propagation_policy: Option<String>,
    pub precondition_uid: Option<String>,
    pub precondition_resource_version: Option<String>,
    pub dry_run: bool,
}

impl DeleteOptions {
    pub fn from_json(v: &Value) -> Self {
        DeleteOptions {
            grace_period_seconds: v.get("gracePeriodSeconds").and_then(|g| g.as_i64()),
            propagation_policy: v
                .get("propagationPolicy")
                .and_then(|p| p.as_str())
                .map(String::from),
            precondition_uid: v
                .pointer("/preconditions/uid")
                .and_then(|p| p.as_str())
                .map(String::from),
            precondition_resource_version: v
                .pointer("/preconditions/resourceVersion")
                .and_then(|p| p.as_str())
                .map(String::from),
            dry_run: v
                .get("dryRun")
                .and_then(|d| d.as_array())
                .is_some_and(|a| !a.is_empty()),
        }
    }
}

/// A patch body with its media type.
pub enum PatchKind {
    Json,
    Merge,
    Strategic,
    Apply { force: bool },
}

pub struct Registry {
    pub store: Store,
    pub service_config: ServiceConfig,
    /// All Service writes pass through this lock so allocation matches committed state.
    services: Mutex<ServiceAllocator>,
}

fn store_error(info: &ResourceInfo, name: &str, e: StoreError) -> Status {
    match e {
        StoreError::AlreadyExists => Status::already_exists(info.group_resource(), name),
        StoreError::NotFound => Status::not_found(info.group_resource(), name),
        StoreError::Conflict { .. } => Status::stale_object_conflict(info.group_resource(), name),
        other => Status::internal(other.to_string()),
    }
}

/// Decodes a stored record, stamping the store's revision as `resourceVersion`.
pub fn decode_record(rec: &Record) -> Value {
    let mut v: Value = serde_json::from_slice(&rec.value).unwrap_or_else(|_| json!({}));
    meta::set_resource_version(&mut v, rec.mod_revision);
    v
}

fn encode_for_store(obj: &Value) -> Bytes {
    let mut v = obj.clone();
    if let Some(m) = v.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        m.remove("resourceVersion");
        m.remove("selfLink");
    }
    Bytes::from(serde_json::to_vec(&v).expect("JSON values always serialize"))
}

fn same_content(a: &Value, b: &Value) -> bool {
    encode_for_store(a) == encode_for_store(b)
}

fn to_service(v: &Value) -> Result<Service, Status> {
    serde_json::from_value(v.clone()).map_err(|e| {
        Status::bad_request(format!(
            "Service in version \"v1\" cannot be handled as a Service: {e}"
        ))
    })
}

fn from_service(s: &Service) -> Value {
    serde_json::to_value(s).expect("Service serializes")
}

fn alloc_error(info: &ResourceInfo, name: &str, e: AllocError) -> Status {
    match e {
        AllocError::Invalid(errs) => {
            Status::invalid(&info.qualified_kind(), info.group, info.kind, name, &errs)
        }
        AllocError::Internal(msg) => Status::internal(msg),
    }
}

impl Registry {
    pub fn new(store: Store, service_config: ServiceConfig) -> Arc<Self> {
        let allocator = ServiceAllocator::new(&service_config);
        Arc::new(Registry {
            store,
            service_config,
            services: Mutex::new(allocator),
        })
    }

    pub fn get_raw(&self, info: &ResourceInfo, ns: Option<&str>, name: &str) -> Option<Record> {
        self.store.get(&info.key(ns, name))
    }

    pub fn get(&self, info: &ResourceInfo, ns: Option<&str>, name: &str) -> Result<Value, Status> {
        self.get_raw(info, ns, name)
            .map(|r| decode_record(&r))
            .ok_or_else(|| Status::not_found(info.group_resource(), name))
    }

    /// Lists matching objects; returns (items, list resourceVersion, continue token).
    pub fn list(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        opts: &ListOptions,
    ) -> Result<(Vec<Value>, u64, Option<String>), Status> {
        let prefix = info.key_prefix_in(ns);
        let start_after = match &opts.continue_token {
            Some(tok) => Some(decode_continue(tok)?),
            None => None,
        };
        // Narrow to one key when the field selector pins the name (kubectl's delete/run waits).
        if let (Some(name), Some(ns_or_cluster)) = (opts.fields.pinned_name(), Some(ns)) {
            let rev = self.store.revision();
            let items = match ns_or_cluster {
                Some(ns) => self
                    .get_raw(info, Some(ns), name)
                    .into_iter()
                    .collect::<Vec<_>>(),
                None if !info.namespaced => self.get_raw(info, None, name).into_iter().collect(),
                None => self
                    .store
                    .list(&prefix, None, 0)
                    .0
                    .into_iter()
                    .filter(|r| r.key.ends_with(&format!("/{name}")))
                    .collect(),
            };
            let items = items
                .iter()
                .map(decode_record)
                .filter(|o| self.matches(o, opts))
                .collect();
            return Ok((items, rev, None));
        }
        let mut out = Vec::new();
        let mut cursor = start_after;
        let page = if opts.limit == 0 {
            0
        } else {
            opts.limit.max(1)
        };
        loop {
            let (records, rev, more) = self.store.list(
                &prefix,
                cursor.as_deref(),
                if page == 0 { 0 } else { page * 2 },
            );
            let mut last_key = None;
            for r in &records {
                last_key = Some(r.key.clone());
                let o = decode_record(r);
                if self.matches(&o, opts) {
                    out.push(o);
                    if page != 0 && out.len() == page {
                        let remaining =
                            more || records.last().map(|l| l.key != r.key).unwrap_or(false);
                        let token = if remaining {
                            Some(encode_continue(&r.key, rev))
                        } else {
                            None
                        };
                        return Ok((out, rev, token));
                    }
                }
            }
            if !more || page == 0 {
                return Ok((out, rev, None));
            }
            cursor = last_key;
        }
    }

    fn matches(&self, o: &Value, opts: &ListOptions) -> bool {
        opts.labels.matches_object(o) && opts.fields.matches(o)
    }

    fn check_namespace(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
    ) -> Result<(), Status> {
        if !info.namespaced {
            return Ok(());
        }
        let ns = ns.unwrap_or_default();
        let nsinfo = resources::find("", "v1", "namespaces").unwrap();
        match self.get_raw(nsinfo, None, ns) {
            None => Err(Status::not_found(nsinfo.group_resource(), ns)),
            Some(r) => {
                let o = decode_record(&r);
                if meta::deletion_timestamp(&o).is_some() {
                    let mut s = Status::forbidden(
                        info.group_resource(),
                        name,
                        &format!("unable to create new content in namespace {ns} because it is being terminated"),
                    );
                    if let Some(d) = s.details.as_mut() {
                        d["causes"] = json!([{"reason": "NamespaceTerminating", "message": format!("namespace {ns} is being terminated"), "field": "metadata.namespace"}]);
                    }
                    Err(s)
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Decodes the request object as its type, applying the field-validation mode.
    fn decode_checked(
        &self,
        info: &ResourceInfo,
        obj: &Value,
        validation: FieldValidation,
        warnings: &mut Vec<String>,
    ) -> Result<Value, Status> {
        let d = typed::decode(info, obj).map_err(Status::bad_request)?;
        if !d.unknown_fields.is_empty() {
            match validation {
                FieldValidation::Strict => {
                    let list: Vec<String> = d
                        .unknown_fields
                        .iter()
                        .map(|f| format!("unknown field \"{f}\""))
                        .collect();
                    return Err(Status::bad_request(typed::cannot_handle(
                        info,
                        &format!("strict decoding error: {}", list.join(", ")),
                    )));
                }
                FieldValidation::Warn => warnings.extend(
                    d.unknown_fields
                        .iter()
                        .map(|f| format!("unknown field \"{f}\"")),
                ),
                FieldValidation::Ignore => {}
            }
        }
        Ok(d.object)
    }

    fn check_type_meta(&self, info: &ResourceInfo, obj: &mut Value) -> Result<(), Status> {
        let api_version = info.api_version();
        match obj.get("kind").and_then(|k| k.as_str()) {
            Some(k) if !k.is_empty() && k != info.kind => {
                return Err(Status::bad_request(format!(
                    "the kind in the data ({k}) does not match the expected kind ({})",
                    info.kind
                )));
            }
            _ => {}
        }
        match obj.get("apiVersion").and_then(|k| k.as_str()) {
            Some(v) if !v.is_empty() && v != api_version => {
                return Err(Status::bad_request(format!("the API version in the data ({v}) does not match the expected API version ({api_version})")));
            }
            _ => {}
        }
        obj["kind"] = json!(info.kind);
        obj["apiVersion"] = json!(api_version);
        Ok(())
    }

    pub async fn create(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        body: Value,
        opts: &WriteOptions,
    ) -> Result<Written, Status> {
        let mut warnings = Vec::new();
        let mut obj = body;
        if !obj.is_object() {
            return Err(Status::bad_request(typed::cannot_handle(
                info,
                "the object must be a JSON object",
            )));
        }
        self.check_type_meta(info, &mut obj)?;
        let mut obj = self.decode_checked(info, &obj, opts.validation, &mut warnings)?;
        let managed = obj.pointer("/metadata/managedFields").cloned();
        self.create_decoded(info, ns, &mut obj, opts, managed.is_some())
            .await
            .map(|object| Written {
                object,
                warnings,
                created: true,
            })
    }

    /// Creates an already-decoded object. `keep_managed_fields` is set by server-side apply,
    /// which computed them itself.
    async fn create_decoded(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        obj: &mut Value,
        opts: &WriteOptions,
        keep_managed_fields: bool,
    ) -> Result<Value, Status> {
        {
            let m = meta::meta_mut(obj);
            if info.namespaced {
                let url_ns = ns.unwrap_or_default();
                match m.get("namespace").and_then(|v| v.as_str()) {
                    Some(body_ns) if !body_ns.is_empty() && body_ns != url_ns => {
                        return Err(Status::bad_request("the namespace of the provided object does not match the namespace sent on the request"));
                    }
                    _ => {
                        m.insert("namespace".into(), json!(url_ns));
                    }
                }
            } else {
                m.remove("namespace");
            }
            if m.get("resourceVersion")
                .and_then(|v| v.as_str())
                .is_some_and(|s| !s.is_empty())
            {
                return Err(Status::bad_request(
                    "resourceVersion should not be set on objects to be created",
                ));
            }
            let name = m
                .get("name")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string();
            if name.is_empty() {
                let generate = m
                    .get("generateName")
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_string();
                if generate.is_empty() {
                    return Err(Status::invalid(
                        &info.qualified_kind(),
                        info.group,
                        info.kind,
                        "",
                        &[kubeport_core::FieldError::required(
                            "metadata.name".into(),
                            "name or generateName is required",
                        )],
                    ));
                }
                m.insert(
                    "name".into(),
                    json!(format!("{generate}{}", meta::random_suffix(5))),
                );
            }
            m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
            m.insert("creationTimestamp".into(), json!(meta::now_rfc3339()));
            m.remove("deletionTimestamp");
            m.remove("deletionGracePeriodSeconds");
            m.remove("selfLink");
            if info.tracks_generation {
                m.insert("generation".into(), json!(1));
            } else {
                m.remove("generation");
            }
            if !keep_managed_fields {
                m.remove("managedFields");
            }
        }
        let name = meta::name(obj).to_string();
        self.check_namespace(info, ns, &name)?;
        let key = info.key(ns, &name);
        if is_service(info) {
            let mut svc = to_service(obj)?;
            kubeport_service::set_defaults(&mut svc);
            kubeport_service::prepare_create(&mut svc);
            *obj = from_service(&svc);
            if !keep_managed_fields {
                kubeport_patch::record_update(
                    None,
                    obj,
                    &opts.field_manager,
                    &info.api_version(),
                    &meta::now_rfc3339(),
                );
            }
            let mut svc = to_service(obj)?;
            if opts.dry_run {
                let errs = kubeport_service::validate_create(&svc, &self.service_config);
                if !errs.is_empty() {
                    return Err(Status::invalid(
                        &info.qualified_kind(),
                        info.group,
                        info.kind,
                        &name,
                        &errs,
                    ));
                }
                return Ok(obj.clone());
            }
            // kube-apiserver allocates before it validates (healthCheckNodePort must exist).
            let mut alloc = self.services.lock().await;
            let allocation = alloc
                .admit_create(&mut svc)
                .map_err(|e| alloc_error(info, &name, e))?;
            *obj = from_service(&svc);
            return match self.store.create(&key, encode_for_store(obj)).await {
                Ok(rec) => {
                    alloc.commit(allocation);
                    Ok(decode_record(&rec))
                }
                Err(e) => {
                    alloc.revert(allocation);
                    Err(store_error(info, &name, e))
                }
            };
        }
        strategy::prepare_create(info, obj);
        let errs = strategy::validate(info, obj, None);
        if !errs.is_empty() {
            return Err(Status::invalid(
                &info.qualified_kind(),
                info.group,
                info.kind,
                &name,
                &errs,
            ));
        }
        if !keep_managed_fields {
            kubeport_patch::record_update(
                None,
                obj,
                &opts.field_manager,
                &info.api_version(),
                &meta::now_rfc3339(),
            );
        }
        if opts.dry_run {
            return Ok(obj.clone());
        }
        let rec = self
            .store
            .create(&key, encode_for_store(obj))
            .await
            .map_err(|e| store_error(info, &name, e))?;
        Ok(decode_record(&rec))
    }

    /// PUT: replaces the object (or its status/scale view) with optimistic concurrency.
    pub async fn update(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        body: Value,
        sub: Option<Subresource>,
        opts: &WriteOptions,
    ) -> Result<Written, Status> {
        let mut warnings = Vec::new();
        let mut obj = body;
        if !obj.is_object() {
            return Err(Status::bad_request(typed::cannot_handle(
                info,
                "the object must be a JSON object",
            )));
        }
        self.check_type_meta(info, &mut obj)?;
        let obj = self.decode_checked(info, &obj, opts.validation, &mut warnings)?;
        let body_name = meta::name(&obj);
        if !body_name.is_empty() && body_name != name {
            return Err(Status::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        if info.namespaced {
            if let Some(body_ns) = meta::namespace(&obj) {
                if Some(body_ns) != ns {
                    return Err(Status::bad_request("the namespace of the provided object does not match the namespace sent on the request"));
                }
            }
        }
        let current = self.get_raw(info, ns, name);
        let Some(current) = current else {
            if allows_create_on_update(info) && sub.is_none() {
                let mut obj = obj;
                meta::meta_mut(&mut obj).insert("name".into(), json!(name));
                meta::meta_mut(&mut obj).remove("resourceVersion");
                let object = self.create_decoded(info, ns, &mut obj, opts, false).await?;
                return Ok(Written {
                    object,
                    warnings,
                    created: true,
                });
            }
            return Err(Status::not_found(info.group_resource(), name));
        };
        let precondition = meta::resource_version(&obj).to_string();
        let object = self
            .update_loop(
                info,
                ns,
                name,
                current,
                Some(precondition),
                opts,
                |_old| Ok(obj.clone()),
                sub,
                false,
            )
            .await?;
        Ok(Written {
            object,
            warnings,
            created: false,
        })
    }

    /// The guaranteed-update loop: computes the new object from the current one and writes it
    /// with the current revision as precondition, retrying on races unless the caller pinned a
    /// resourceVersion.
    #[allow(clippy::too_many_arguments)]
    async fn update_loop<F>(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        mut current: Record,
        precondition: Option<String>,
        opts: &WriteOptions,
        mut compute: F,
        sub: Option<Subresource>,
        managed_fields_done: bool,
    ) -> Result<Value, Status>
    where
        F: FnMut(&Value) -> Result<Value, Status>,
    {
        let is_service = is_service(info);
        for _attempt in 0..16 {
            let old = decode_record(&current);
            let mut new = compute(&old)?;
            let pinned = precondition.clone().filter(|p| !p.is_empty()).or_else(|| {
                let rv = meta::resource_version(&new);
                (!rv.is_empty() && rv != meta::resource_version(&old)).then(|| rv.to_string())
            });
            if let Some(p) = &pinned {
                if p.parse::<u64>().ok() != Some(current.mod_revision) {
                    return Err(Status::stale_object_conflict(info.group_resource(), name));
                }
            }
            self.prepare_update(info, &mut new, &old, sub);
            let mut svc_new = None;
            if is_service {
                let old_svc = to_service(&old)?;
                let mut svc = to_service(&new)?;
                if sub == Some(Subresource::Status) {
                    kubeport_service::prepare_status_update(&mut svc, &old_svc);
                    let errs = kubeport_service::validate_status_update(&svc, &old_svc);
                    if !errs.is_empty() {
                        return Err(Status::invalid(
                            &info.qualified_kind(),
                            info.group,
                            info.kind,
                            name,
                            &errs,
                        ));
                    }
                    new = from_service(&svc);
                } else {
                    kubeport_service::set_defaults(&mut svc);
                    new = from_service(&svc);
                    if opts.dry_run {
                        kubeport_service::prepare_update(&mut svc, &old_svc);
                        let errs =
                            kubeport_service::validate_update(&svc, &old_svc, &self.service_config);
                        if !errs.is_empty() {
                            return Err(Status::invalid(
                                &info.qualified_kind(),
                                info.group,
                                info.kind,
                                name,
                                &errs,
                            ));
                        }
                        new = from_service(&svc);
                    } else {
                        svc_new = Some(old_svc);
                    }
                }
            } else {
                let errs = strategy::validate(info, &new, Some(&old));
                if !errs.is_empty() {
                    return Err(Status::invalid(
                        &info.qualified_kind(),
                        info.group,
                        info.kind,
                        name,
                        &errs,
                    ));
                }
            }
            if !managed_fields_done {
                if sub == Some(Subresource::Status) {
                    kubeport_patch::record_status_update(
                        &old,
                        &mut new,
                        &opts.field_manager,
                        &info.api_version(),
                        &meta::now_rfc3339(),
                    );
                } else {
                    kubeport_patch::record_update(
                        Some(&old),
                        &mut new,
                        &opts.field_manager,
                        &info.api_version(),
                        &meta::now_rfc3339(),
                    );
                }
            }
            meta::set_resource_version(&mut new, current.mod_revision);
            if opts.dry_run {
                return Ok(new);
            }
            if svc_new.is_none() && same_content(&new, &old) {
                return Ok(old);
            }
            // A terminating object whose last finalizer was removed is deleted now.
            if meta::deletion_timestamp(&new).is_some()
                && meta::finalizers(&new).is_empty()
                && !is_graceful_pod(info, &new)
            {
                let key = info.key(ns, name);
                match self.store.delete(&key, Some(current.mod_revision)).await {
                    Ok(rec) => {
                        if is_service {
                            self.services.lock().await.release(&to_service(&old)?);
                        }
                        let mut v = new;
                        meta::set_resource_version(&mut v, rec.mod_revision);
                        return Ok(v);
                    }
                    Err(StoreError::Conflict { .. }) if pinned.is_none() => {
                        current = self
                            .get_raw(info, ns, name)
                            .ok_or_else(|| Status::not_found(info.group_resource(), name))?;
                        continue;
                    }
                    Err(e) => return Err(store_error(info, name, e)),
                }
            }
            let key = info.key(ns, name);
            let result = if let Some(old_svc) = svc_new {
                let mut svc = to_service(&new)?;
                let mut alloc = self.services.lock().await;
                // Re-read under the lock so allocation decisions see the committed state.
                let fresh = self
                    .get_raw(info, ns, name)
                    .ok_or_else(|| Status::not_found(info.group_resource(), name))?;
                if fresh.mod_revision != current.mod_revision {
                    drop(alloc);
                    if pinned.is_some() {
                        return Err(Status::stale_object_conflict(info.group_resource(), name));
                    }
                    current = fresh;
                    continue;
                }
                let allocation = alloc
                    .admit_update(&old_svc, &mut svc)
                    .map_err(|e| alloc_error(info, name, e))?;
                let mut value = from_service(&svc);
                meta::set_resource_version(&mut value, current.mod_revision);
                if same_content(&value, &old) {
                    alloc.revert(allocation);
                    return Ok(old);
                }
                match self
                    .store
                    .update(&key, encode_for_store(&value), Some(current.mod_revision))
                    .await
                {
                    Ok(rec) => {
                        alloc.commit(allocation);
                        Ok(rec)
                    }
                    Err(e) => {
                        alloc.revert(allocation);
                        Err(e)
                    }
                }
            } else {
                self.store
                    .update(&key, encode_for_store(&new), Some(current.mod_revision))
                    .await
            };
            match result {
                Ok(rec) => return Ok(decode_record(&rec)),
                Err(StoreError::Conflict { .. }) if pinned.is_none() => {
                    current = self
                        .get_raw(info, ns, name)
                        .ok_or_else(|| Status::not_found(info.group_resource(), name))?;
                }
                Err(e) => return Err(store_error(info, name, e)),
            }
        }
        Err(Status::conflict(
            info.group_resource(),
            name,
            "too many concurrent updates; please retry",
        ))
    }

    /// Carries over what an update may not change, per subresource.
    fn prepare_update(
        &self,
        info: &ResourceInfo,
        new: &mut Value,
        old: &Value,
        sub: Option<Subresource>,
    ) {
        match sub {
            Some(Subresource::Status) => {
                let status = new.get("status").cloned();
                let mut merged = old.clone();
                match status {
                    Some(s) => merged["status"] = s,
                    None => {
                        if let Some(m) = merged.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
                *new = merged;
            }
            _ => {
                if info.has(Subresource::Status) {
                    match old.get("status") {
                        Some(s) => new["status"] = s.clone(),
                        None => {
                            if let Some(m) = new.as_object_mut() {
                                m.remove("status");
                            }
                        }
                    }
                }
                let old_meta = old.get("metadata").cloned().unwrap_or_else(|| json!({}));
                let m = meta::meta_mut(new);
                for k in [
                    "uid",
                    "creationTimestamp",
                    "deletionTimestamp",
                    "deletionGracePeriodSeconds",
                    "namespace",
                    "name",
                    "generation",
                ] {
                    match old_meta.get(k) {
                        Some(v) => {
                            m.insert(k.into(), v.clone());
                        }
                        None => {
                            m.remove(k);
                        }
                    }
                }
                if info.tracks_generation && new.get("spec") != old.get("spec") {
                    let g = old
                        .pointer("/metadata/generation")
                        .and_then(|g| g.as_i64())
                        .unwrap_or(1);
                    meta::meta_mut(new).insert("generation".into(), json!(g + 1));
                }
                // A namespace's spec.finalizers only change through /finalize.
                if info.kind == "Namespace" {
                    if let Some(f) = old.pointer("/spec/finalizers") {
                        new["spec"]["finalizers"] = f.clone();
                    }
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn patch(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        kind: PatchKind,
        patch: Value,
        sub: Option<Subresource>,
        opts: &WriteOptions,
    ) -> Result<Written, Status> {
        let mut warnings = Vec::new();
        let current = self.get_raw(info, ns, name);
        let group = info.group;
        let kind_name = info.kind;
        let api_version = info.api_version();
        let now = meta::now_rfc3339();
        let Some(current) = current else {
            if let PatchKind::Apply { force } = kind {
                if sub.is_some() {
                    return Err(Status::not_found(info.group_resource(), name));
                }
                let mut cfg = patch;
                self.check_type_meta(info, &mut cfg)?;
                let applied = kubeport_patch::server_side_apply(
                    None,
                    &cfg,
                    &opts.field_manager,
                    force,
                    group,
                    kind_name,
                    &now,
                )
                .map_err(patch_error(info, name))?;
                let mut obj =
                    self.decode_checked(info, &applied, opts.validation, &mut warnings)?;
                meta::meta_mut(&mut obj).insert("name".into(), json!(name));
                let object = self.create_decoded(info, ns, &mut obj, opts, true).await?;
                return Ok(Written {
                    object,
                    warnings,
                    created: true,
                });
            }
            return Err(Status::not_found(info.group_resource(), name));
        };
        let validation = opts.validation;
        let is_apply = matches!(kind, PatchKind::Apply { .. });
        let warnings_cell = std::sync::Mutex::new(Vec::new());
        let object = self
            .update_loop(
                info,
                ns,
                name,
                current,
                None,
                opts,
                |old| {
                    let base = match sub {
                        Some(Subresource::Status) | None => old.clone(),
                        Some(_) => old.clone(),
                    };
                    let patched = match &kind {
                        PatchKind::Json => kubeport_patch::json_patch(&base, &patch),
                        PatchKind::Merge => kubeport_patch::merge_patch(&base, &patch),
                        PatchKind::Strategic => kubeport_patch::strategic_merge_patch(&base, &patch, group, kind_name),
                        PatchKind::Apply { force } => {
                            let mut cfg = patch.clone();
                            if cfg.get("apiVersion").is_none() {
                                cfg["apiVersion"] = json!(api_version);
                            }
                            if cfg.get("kind").is_none() {
                                cfg["kind"] = json!(kind_name);
                            }
                            kubeport_patch::server_side_apply(Some(&base), &cfg, &opts.field_manager, *force, group, kind_name, &now)
                        }
                    }
                    .map_err(patch_error(info, name))?;
                    if !patched.is_object() {
                        return Err(Status::bad_request(typed::cannot_handle(info, "the patched object is not a JSON object")));
                    }
                    let mut w = Vec::new();
                    let mut decoded = self.decode_checked(info, &patched, validation, &mut w)?;
                    *warnings_cell.lock().unwrap() = w;
                    // Patches may not rename or move objects.
                    if meta::name(&decoded) != name {
                        return Err(Status::bad_request(format!("the name of the object ({}) does not match the name on the URL ({name})", meta::name(&decoded))));
                    }
                    if decoded.get("kind").and_then(|k| k.as_str()) != Some(kind_name) {
                        decoded["kind"] = json!(kind_name);
                    }
                    Ok(decoded)
                },
                sub,
                is_apply,
            )
            .await?;
        warnings.extend(warnings_cell.into_inner().unwrap());
        Ok(Written {
            object,
            warnings,
            created: false,
        })
    }

    pub async fn delete(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Value, Status> {
        for _attempt in 0..16 {
            let current = self
                .get_raw(info, ns, name)
                .ok_or_else(|| Status::not_found(info.group_resource(), name))?;
            let obj = decode_record(&current);
            if let Some(uid) = &opts.precondition_uid {
                if uid != meta::uid(&obj) {
                    return Err(Status::conflict(
                        info.group_resource(),
                        name,
                        &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {}", meta::uid(&obj)),
                    ));
                }
            }
            if let Some(rv) = &opts.precondition_resource_version {
                if rv != meta::resource_version(&obj) {
                    return Err(Status::conflict(
                        info.group_resource(),
                        name,
                        &format!("Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}", meta::resource_version(&obj)),
                    ));
                }
            }
            if opts.dry_run {
                return Ok(obj);
            }
            let mut finalizers = meta::finalizers(&obj);
            match opts.propagation_policy.as_deref() {
                Some("Foreground") if !finalizers.iter().any(|f| f == "foregroundDeletion") => {
                    finalizers.push("foregroundDeletion".into())
                }
                Some("Orphan") if !finalizers.iter().any(|f| f == "orphan") => {
                    finalizers.push("orphan".into())
                }
                _ => {}
            }
            let namespace_pending = info.kind == "Namespace"
                && obj
                    .pointer("/spec/finalizers")
                    .and_then(|f| f.as_array())
                    .is_some_and(|a| !a.is_empty());
            let grace = self.grace_period(info, &obj, opts);
            let already_terminating = meta::deletion_timestamp(&obj).is_some();
            if !finalizers.is_empty() || namespace_pending || grace > 0 {
                let mut new = obj.clone();
                let now = chrono::Utc::now();
                let m = meta::meta_mut(&mut new);
                if !already_terminating {
                    m.insert(
                        "deletionTimestamp".into(),
                        json!(meta::format_time(now + chrono::Duration::seconds(grace))),
                    );
                    m.insert("deletionGracePeriodSeconds".into(), json!(grace));
                } else if grace > 0 {
                    // A shorter grace period may cut a pending graceful deletion short.
                    let old_grace = obj
                        .pointer("/metadata/deletionGracePeriodSeconds")
                        .and_then(|g| g.as_i64())
                        .unwrap_or(grace);
                    if grace < old_grace {
                        m.insert(
                            "deletionTimestamp".into(),
                            json!(meta::format_time(now + chrono::Duration::seconds(grace))),
                        );
                        m.insert("deletionGracePeriodSeconds".into(), json!(grace));
                    }
                }
                if !finalizers.is_empty() {
                    m.insert("finalizers".into(), json!(finalizers));
                }
                if info.kind == "Namespace" {
                    new["status"]["phase"] = json!("Terminating");
                }
                if same_content(&new, &obj) {
                    return Ok(obj);
                }
                match self
                    .store
                    .update(
                        &info.key(ns, name),
                        encode_for_store(&new),
                        Some(current.mod_revision),
                    )
                    .await
                {
                    Ok(rec) => return Ok(decode_record(&rec)),
                    Err(StoreError::Conflict { .. }) => continue,
                    Err(e) => return Err(store_error(info, name, e)),
                }
            }
            let is_service = is_service(info);
            let guard = if is_service {
                Some(self.services.lock().await)
            } else {
                None
            };
            match self
                .store
                .delete(&info.key(ns, name), Some(current.mod_revision))
                .await
            {
                Ok(rec) => {
                    if let Some(mut alloc) = guard {
                        alloc.release(&to_service(&obj)?);
                    }
                    let mut v = obj;
                    meta::set_resource_version(&mut v, rec.mod_revision);
                    return Ok(v);
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(store_error(info, name, e)),
            }
        }
        Err(Status::conflict(
            info.group_resource(),
            name,
            "too many concurrent updates; please retry",
        ))
    }

    /// Pods bound to a node terminate gracefully (the node agent finishes the deletion);
    /// everything else is deleted at once.
    fn grace_period(&self, info: &ResourceInfo, obj: &Value, opts: &DeleteOptions) -> i64 {
        if info.kind != "Pod" || !info.group.is_empty() {
            return 0;
        }
        let bound = obj
            .pointer("/spec/nodeName")
            .and_then(|n| n.as_str())
            .is_some_and(|n| !n.is_empty());
        let phase = obj
            .pointer("/status/phase")
            .and_then(|p| p.as_str())
            .unwrap_or_default();
        if !bound || phase == "Succeeded" || phase == "Failed" {
            return 0;
        }
        let spec_grace = obj
            .pointer("/spec/terminationGracePeriodSeconds")
            .and_then(|g| g.as_i64())
            .unwrap_or(30);
        opts.grace_period_seconds.unwrap_or(spec_grace).max(0)
    }

    pub async fn delete_collection(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        list: &ListOptions,
        opts: &DeleteOptions,
    ) -> Result<Vec<Value>, Status> {
        let (items, _, _) = self.list(info, ns, list)?;
        let mut deleted = Vec::new();
        for item in items {
            let item_ns = meta::namespace(&item).map(String::from);
            match self
                .delete(info, item_ns.as_deref(), meta::name(&item), opts)
                .await
            {
                Ok(v) => deleted.push(v),
                Err(s) if s.code == 404 => {}
                Err(s) => return Err(s),
            }
        }
        Ok(deleted)
    }

    /// Rebuilds the Service allocators from stored Services (start-up and periodic repair).
    pub async fn repair_services(&self) -> kubeport_service::RepairReport {
        let info = resources::find("", "v1", "services").unwrap();
        let mut alloc = self.services.lock().await;
        let (records, _, _) = self.store.list(&info.key_prefix(), None, 0);
        let services: Vec<Service> = records
            .iter()
            .filter_map(|r| serde_json::from_value(decode_record(r)).ok())
            .collect();
        alloc.repair(&services)
    }

    pub async fn allocator_usage(&self) -> (usize, usize) {
        let alloc = self.services.lock().await;
        (alloc.used_cluster_ips(), alloc.used_node_ports())
    }

    /// Whether a store event's object passed the given selectors.
    pub fn event_matches(value: &Bytes, labels: &LabelSelector, fields: &FieldSelector) -> bool {
        serde_json::from_slice::<Value>(value)
            .map(|v| labels.matches_object(&v) && fields.matches(&v))
            .unwrap_or(false)
    }
}

fn is_graceful_pod(info: &ResourceInfo, obj: &Value) -> bool {
    // A pod with a pending grace period stays until its node agent deletes it with grace 0.
    info.kind == "Pod"
        && obj
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(|g| g.as_i64())
            .unwrap_or(0)
            > 0
}

fn is_service(info: &ResourceInfo) -> bool {
    info.kind == "Service" && info.group.is_empty()
}

fn allows_create_on_update(info: &ResourceInfo) -> bool {
    matches!(
        (info.group, info.kind),
        ("", "Endpoints") | ("", "Event") | ("coordination.k8s.io", "Lease")
    )
}

fn patch_error(_info: &ResourceInfo, _name: &str) -> impl Fn(kubeport_patch::PatchError) -> Status {
    |e| e.to_status()
}

/// Continue tokens carry the last key returned (base64 JSON, like kube-apiserver's).
fn encode_continue(key: &str, rev: u64) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(json!({"v": "meta.k8s.io/v1", "rv": rev, "start": key}).to_string())
}

fn decode_continue(tok: &str) -> Result<String, Status> {
    use base64::Engine;
    let bad = || Status::bad_request(format!("continue key is not valid: {tok:?}"));
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(tok.trim_end_matches('='))
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    v.get("start")
        .and_then(|s| s.as_str())
        .map(String::from)
        .ok_or_else(bad)
}

/// Maps a store event kind to the watch event type.
pub fn watch_type(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Created => "ADDED",
        EventKind::Modified => "MODIFIED",
        EventKind::Deleted => "DELETED",
    }
}
