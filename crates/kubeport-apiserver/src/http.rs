//! HTTP routing and handlers: maps kube-apiserver's URL space onto the registry.

use crate::body::{self, full, Body};
use crate::discovery;
use crate::meta;
use crate::registry::{
    DeleteOptions, FieldValidation, ListOptions, PatchKind, Registry, WriteOptions,
};
use crate::resources::{self, ResourceInfo, Subresource};
use crate::selectors::{supported_fields, FieldSelector, LabelSelector};
use crate::tables;
use crate::watch;
use bytes::Bytes;
use http::{header, Method, Request, Response};
use hyper::body::Incoming;
use kubeport_core::Status;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// Who made the request (from the client certificate).
#[derive(Clone, Debug)]
pub struct Identity {
    pub user: String,
    pub groups: Vec<String>,
}

pub struct ApiServer {
    pub registry: Arc<Registry>,
    /// host:port clients use, for `serverAddressByClientCIDRs`.
    pub advertise: String,
}

pub fn json_response(code: u16, v: &Value) -> Response<Body> {
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "application/json")
        .body(full(serde_json::to_vec(v).expect("JSON values serialize")))
        .expect("valid response")
}

pub fn status_response(s: &Status) -> Response<Body> {
    json_response(s.code, &s.to_json())
}

fn with_warnings(mut resp: Response<Body>, warnings: &[String]) -> Response<Body> {
    for w in warnings {
        let text = format!("299 - {}", kubeport_core::field::go_quote(w));
        if let Ok(v) = header::HeaderValue::from_str(&text) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
    resp
}

/// A parsed resource URL.
#[derive(Debug)]
pub struct ResourcePath {
    pub info: &'static ResourceInfo,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub sub: Option<Subresource>,
    /// The deprecated `/watch/` path prefix was used.
    pub watch_prefix: bool,
}

enum Route {
    Version,
    Health,
    Api,
    ApiResources(String, String),
    Apis,
    ApiGroup(String),
    OpenApiV2,
    OpenApiV3Root,
    OpenApiV3(String, String),
    Resource(ResourcePath),
    NotFound,
}

fn parse_route(path: &str) -> Route {
    let segs: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let s: Vec<&str> = segs.iter().map(|x| x.as_str()).collect();
    match s.as_slice() {
        ["version"] => Route::Version,
        ["healthz", ..] | ["livez", ..] | ["readyz", ..] => Route::Health,
        ["api"] => Route::Api,
        ["apis"] => Route::Apis,
        ["openapi", "v2"] | ["swagger-2.0.0.pb-v1"] => Route::OpenApiV2,
        ["openapi", "v3"] => Route::OpenApiV3Root,
        ["openapi", "v3", rest @ ..] => match discovery::parse_openapi_v3_path(&rest.join("/")) {
            Some((g, v)) => Route::OpenApiV3(g, v),
            None => Route::NotFound,
        },
        ["api", v] => Route::ApiResources(String::new(), v.to_string()),
        ["apis", g] => Route::ApiGroup(g.to_string()),
        ["apis", g, v] => Route::ApiResources(g.to_string(), v.to_string()),
        ["api", v, rest @ ..] => parse_resource("", v, rest)
            .map(Route::Resource)
            .unwrap_or(Route::NotFound),
        ["apis", g, v, rest @ ..] => parse_resource(g, v, rest)
            .map(Route::Resource)
            .unwrap_or(Route::NotFound),
        _ => Route::NotFound,
    }
}

fn parse_sub(info: &ResourceInfo, s: &str) -> Option<Subresource> {
    info.subresources.iter().copied().find(|x| x.name() == s)
}

fn parse_resource(group: &str, version: &str, rest: &[&str]) -> Option<ResourcePath> {
    let (watch_prefix, rest) = match rest {
        ["watch", r @ ..] => (true, r),
        r => (false, r),
    };
    let find = |plural: &str| resources::find(group, version, plural);
    let build = |info: &'static ResourceInfo,
                 ns: Option<&str>,
                 name: Option<&str>,
                 sub: Option<&str>|
     -> Option<ResourcePath> {
        let sub = match sub {
            Some(s) => Some(parse_sub(info, s)?),
            None => None,
        };
        Some(ResourcePath {
            info,
            namespace: ns.map(String::from),
            name: name.map(String::from),
            sub,
            watch_prefix,
        })
    };
    match rest {
        ["namespaces", ns, plural, tail @ ..] if find(plural).is_some_and(|i| i.namespaced) => {
            let info = find(plural)?;
            match tail {
                [] => build(info, Some(ns), None, None),
                [name] => build(info, Some(ns), Some(name), None),
                [name, sub] => build(info, Some(ns), Some(name), Some(sub)),
                _ => None,
            }
        }
        [plural, tail @ ..] => {
            let info = find(plural)?;
            match tail {
                [] => build(info, None, None, None),
                [name] if !info.namespaced => build(info, None, Some(name), None),
                [name, sub] if !info.namespaced => build(info, None, Some(name), Some(sub)),
                _ => None,
            }
        }
        _ => None,
    }
}

pub fn query_map(uri: &http::Uri) -> HashMap<String, String> {
    uri.query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}

fn wants_aggregated(accept: &str) -> Option<&'static str> {
    for part in accept.split(',') {
        if part.contains("as=APIGroupDiscoveryList") && part.contains("g=apidiscovery.k8s.io") {
            if part.contains("v=v2beta1") {
                return Some("v2beta1");
            }
            if part.contains("v=v2") {
                return Some("v2");
            }
        }
    }
    None
}

fn aggregated_response(legacy: bool, version: &str) -> Response<Body> {
    let api_version = format!("apidiscovery.k8s.io/{version}");
    Response::builder()
        .status(200)
        .header(
            header::CONTENT_TYPE,
            format!("application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList"),
        )
        .body(full(
            serde_json::to_vec(&discovery::aggregated(legacy, &api_version)).unwrap(),
        ))
        .unwrap()
}

/// Whether the Accept header asks for a `Table` (kubectl get) or metadata only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Representation {
    Object,
    Table,
    PartialMetadata,
}

fn representation(accept: &str) -> Representation {
    // The first acceptable representation wins, as in kube-apiserver's negotiation.
    for part in accept.split(',') {
        if part.contains("as=Table") {
            return Representation::Table;
        }
        if part.contains("as=PartialObjectMetadata") {
            return Representation::PartialMetadata;
        }
        let mt = part.split(';').next().unwrap_or_default().trim();
        if mt == "application/json"
            || mt == "*/*"
            || mt == "application/vnd.kubernetes.protobuf"
            || mt == "application/yaml"
        {
            return Representation::Object;
        }
    }
    Representation::Object
}

impl ApiServer {
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        identity: Option<Identity>,
    ) -> Response<Body> {
        let path = req.uri().path().to_string();
        let route = parse_route(&path);
        let public = matches!(route, Route::Version | Route::Health);
        if identity.is_none() && !public {
            return status_response(&Status::unauthorized());
        }
        let accept = req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json")
            .to_string();
        match route {
            Route::Version => json_response(200, &discovery::version()),
            Route::Health => Response::builder()
                .status(200)
                .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
                .body(full("ok"))
                .unwrap(),
            Route::Api => match wants_aggregated(&accept) {
                Some(v) => aggregated_response(true, v),
                None => json_response(200, &discovery::api_versions(&self.advertise)),
            },
            Route::Apis => match wants_aggregated(&accept) {
                Some(v) => aggregated_response(false, v),
                None => json_response(200, &discovery::api_group_list()),
            },
            Route::ApiGroup(g) => match discovery::api_group(&g) {
                Some(v) => json_response(200, &v),
                None => status_response(&Status::path_not_found()),
            },
            Route::ApiResources(g, v) => match discovery::resource_list(&g, &v) {
                Some(doc) => json_response(200, &doc),
                None => status_response(&Status::path_not_found()),
            },
            Route::OpenApiV2 => Response::builder()
                .status(200)
                .header(
                    header::CONTENT_TYPE,
                    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
                )
                .body(full(Bytes::new()))
                .unwrap(),
            Route::OpenApiV3Root => json_response(200, &discovery::openapi_v3_root()),
            Route::OpenApiV3(g, v) => match discovery::openapi_v3_group(&g, &v) {
                Some(doc) => json_response(200, &doc),
                None => status_response(&Status::path_not_found()),
            },
            Route::NotFound => status_response(&Status::path_not_found()),
            Route::Resource(rp) => {
                let identity = identity.expect("checked above");
                match self.handle_resource(req, rp, &accept, &identity).await {
                    Ok(resp) => resp,
                    Err(s) => status_response(&s),
                }
            }
        }
    }

    async fn handle_resource(
        &self,
        req: Request<Incoming>,
        rp: ResourcePath,
        accept: &str,
        identity: &Identity,
    ) -> Result<Response<Body>, Status> {
        let q = query_map(req.uri());
        let method = req.method().clone();
        let info = rp.info;
        let ns = rp.namespace.as_deref();
        if info.namespaced && rp.name.is_some() && ns.is_none() {
            return Err(Status::path_not_found());
        }
        let user_agent = req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let content_length = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.parse().ok());
        let repr = representation(accept);
        let _ = identity;

        let write_opts = |q: &HashMap<String, String>| -> Result<WriteOptions, Status> {
            let field_manager = match q.get("fieldManager") {
                Some(m) if !m.is_empty() => m.clone(),
                // kube-apiserver names the manager after the client's user agent.
                _ => user_agent
                    .split('/')
                    .next()
                    .unwrap_or("unknown")
                    .to_string(),
            };
            Ok(WriteOptions {
                field_manager,
                dry_run: q.get("dryRun").is_some_and(|d| d == "All"),
                validation: FieldValidation::parse(q.get("fieldValidation").map(|s| s.as_str()))?,
            })
        };

        let is_watch = rp.watch_prefix || q.get("watch").is_some_and(|w| w == "true" || w == "1");
        match (method, rp.name.as_deref(), rp.sub) {
            (Method::GET, None, None) if is_watch => {
                let opts = self.list_options(info, &q, true)?;
                watch::serve(
                    self.registry.clone(),
                    info,
                    rp.namespace.clone(),
                    opts,
                    &q,
                    repr,
                    q.get("includeObject").cloned(),
                )
                .await
            }
            (Method::GET, Some(name), None) if is_watch => {
                let mut opts = self.list_options(info, &q, true)?;
                opts.fields = FieldSelector::parse(&format!("metadata.name={name}")).unwrap();
                watch::serve(
                    self.registry.clone(),
                    info,
                    rp.namespace.clone(),
                    opts,
                    &q,
                    repr,
                    q.get("includeObject").cloned(),
                )
                .await
            }
            (Method::GET, None, None) => {
                let opts = self.list_options(info, &q, false)?;
                let (items, rev, cont) = self.registry.list(info, ns, &opts)?;
                Ok(json_response(
                    200,
                    &self.render_list(
                        info,
                        items,
                        rev,
                        cont,
                        repr,
                        q.get("includeObject").map(|s| s.as_str()),
                    ),
                ))
            }
            (Method::GET, Some(name), None)
            | (Method::GET, Some(name), Some(Subresource::Status)) => {
                let obj = self.registry.get(info, ns, name)?;
                Ok(json_response(
                    200,
                    &self.render_one(info, obj, repr, q.get("includeObject").map(|s| s.as_str())),
                ))
            }
            (Method::GET, Some(name), Some(Subresource::Scale)) => {
                let obj = self.registry.get(info, ns, name)?;
                Ok(json_response(200, &to_scale(&obj)))
            }
            (Method::POST, None, None) => {
                let bytes = body::read_limited(req.into_body(), content_length).await?;
                let obj = body::decode_object(content_type.as_deref(), &bytes)?;
                let w = self
                    .registry
                    .create(info, ns, obj, &write_opts(&q)?)
                    .await?;
                Ok(with_warnings(json_response(201, &w.object), &w.warnings))
            }
            (Method::POST, Some(name), Some(Subresource::Binding)) => {
                let bytes = body::read_limited(req.into_body(), content_length).await?;
                let binding = body::decode_object(content_type.as_deref(), &bytes)?;
                self.bind(info, ns, name, &binding, &write_opts(&q)?)
                    .await?;
                Ok(json_response(
                    201,
                    &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
                ))
            }
            (Method::PUT, Some(name), sub @ (None | Some(Subresource::Status))) => {
                let bytes = body::read_limited(req.into_body(), content_length).await?;
                let obj = body::decode_object(content_type.as_deref(), &bytes)?;
                let w = self
                    .registry
                    .update(info, ns, name, obj, sub, &write_opts(&q)?)
                    .await?;
                let code = if w.created { 201 } else { 200 };
                Ok(with_warnings(json_response(code, &w.object), &w.warnings))
            }
            (Method::PUT, Some(name), Some(Subresource::Finalize)) => {
                let bytes = body::read_limited(req.into_body(), content_length).await?;
                let obj = body::decode_object(content_type.as_deref(), &bytes)?;
                let finalizers = obj
                    .pointer("/spec/finalizers")
                    .cloned()
                    .unwrap_or_else(|| json!([]));
                let out = self.finalize_namespace(name, finalizers).await?;
                Ok(json_response(200, &out))
            }
            (Method::PUT, Some(name), Some(Subresource::Scale)) => {
                let bytes = body::read_limited(req.into_body(), content_length).await?;
                let scale = body::decode_object(content_type.as_deref(), &bytes)?;
                let out = self
                    .update_scale(info, ns, name, |_| Ok(scale.clone()), &write_opts(&q)?)
                    .await?;
                Ok(json_response(200, &out))
            }
            (Method::PATCH, Some(name), sub) => {
                let bytes = body::read_limited(req.into_body(), content_length).await?;
                let mt = body::media_type(content_type.as_deref());
                let kind = match mt.as_str() {
                    "application/json-patch+json" => PatchKind::Json,
                    "application/merge-patch+json" => PatchKind::Merge,
                    "application/strategic-merge-patch+json" => PatchKind::Strategic,
                    "application/apply-patch+yaml" => PatchKind::Apply {
                        force: q.get("force").is_some_and(|f| f == "true"),
                    },
                    other => return Err(Status::unsupported_media_type(other)),
                };
                let patch = match kind {
                    PatchKind::Apply { .. } => body::parse_yaml(&bytes)?,
                    _ => body::parse_json(&bytes)?,
                };
                let opts = write_opts(&q)?;
                if matches!(kind, PatchKind::Apply { .. })
                    && q.get("fieldManager").is_none_or(|m| m.is_empty())
                {
                    return Err(Status::bad_request("PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"));
                }
                match sub {
                    Some(Subresource::Scale) => {
                        let out = self
                            .update_scale(
                                info,
                                ns,
                                name,
                                |scale| {
                                    match &kind {
                                        PatchKind::Json => {
                                            kubeport_patch::json_patch(scale, &patch)
                                        }
                                        _ => kubeport_patch::merge_patch(scale, &patch),
                                    }
                                    .map_err(|e| e.to_status())
                                },
                                &opts,
                            )
                            .await?;
                        Ok(json_response(200, &out))
                    }
                    None | Some(Subresource::Status) => {
                        let w = self
                            .registry
                            .patch(info, ns, name, kind, patch, sub, &opts)
                            .await?;
                        let code = if w.created { 201 } else { 200 };
                        Ok(with_warnings(json_response(code, &w.object), &w.warnings))
                    }
                    _ => Err(Status::method_not_allowed()),
                }
            }
            (Method::DELETE, Some(name), None) => {
                let bytes = body::read_limited(req.into_body(), content_length).await?;
                let mut opts = if bytes.iter().all(|b| b.is_ascii_whitespace()) {
                    DeleteOptions::default()
                } else {
                    DeleteOptions::from_json(&body::decode_object(content_type.as_deref(), &bytes)?)
                };
                apply_delete_query(&mut opts, &q);
                let obj = self.registry.delete(info, ns, name, &opts).await?;
                Ok(json_response(200, &obj))
            }
            (Method::DELETE, None, None) => {
                let bytes = body::read_limited(req.into_body(), content_length).await?;
                let mut opts = if bytes.iter().all(|b| b.is_ascii_whitespace()) {
                    DeleteOptions::default()
                } else {
                    DeleteOptions::from_json(&body::decode_object(content_type.as_deref(), &bytes)?)
                };
                apply_delete_query(&mut opts, &q);
                let list = self.list_options(info, &q, false)?;
                let items = self
                    .registry
                    .delete_collection(info, ns, &list, &opts)
                    .await?;
                let rev = self.registry.store.revision();
                Ok(json_response(
                    200,
                    &self.render_list(info, items, rev, None, Representation::Object, None),
                ))
            }
            (Method::GET, Some(name), Some(sub @ Subresource::Log))
            | (
                Method::GET | Method::POST,
                Some(name),
                Some(sub @ (Subresource::Exec | Subresource::Attach)),
            ) => {
                let container = q.get("container").cloned();
                crate::nodeproxy::forward(
                    &self.registry,
                    ns.unwrap_or_default(),
                    name,
                    sub,
                    req,
                    container.as_deref(),
                )
                .await
            }
            _ => Err(Status::method_not_allowed()),
        }
    }

    fn list_options(
        &self,
        info: &ResourceInfo,
        q: &HashMap<String, String>,
        _watch: bool,
    ) -> Result<ListOptions, Status> {
        let labels = LabelSelector::parse(q.get("labelSelector").map(|s| s.as_str()).unwrap_or(""))
            .map_err(Status::bad_request)?;
        let fields = FieldSelector::parse(q.get("fieldSelector").map(|s| s.as_str()).unwrap_or(""))
            .map_err(Status::bad_request)?;
        fields
            .validate(
                info.kind,
                &info.api_version(),
                supported_fields(info.group, info.plural),
            )
            .map_err(Status::bad_request)?;
        let limit = match q.get("limit") {
            Some(l) => l
                .parse::<i64>()
                .map_err(|_| Status::bad_request(format!("invalid limit {l:?}")))?
                .max(0) as usize,
            None => 0,
        };
        Ok(ListOptions {
            labels,
            fields,
            limit,
            continue_token: q.get("continue").filter(|c| !c.is_empty()).cloned(),
        })
    }

    fn render_list(
        &self,
        info: &ResourceInfo,
        items: Vec<Value>,
        rev: u64,
        cont: Option<String>,
        repr: Representation,
        include: Option<&str>,
    ) -> Value {
        let mut list_meta = json!({"resourceVersion": rev.to_string()});
        if let Some(c) = &cont {
            list_meta["continue"] = json!(c);
        }
        match repr {
            Representation::Table => tables::table(info, &items, list_meta, include, true),
            Representation::PartialMetadata => json!({
                "kind": "PartialObjectMetadataList",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": list_meta,
                "items": items.iter().map(tables::partial_metadata).collect::<Vec<_>>(),
            }),
            Representation::Object => json!({
                "kind": format!("{}List", info.kind),
                "apiVersion": info.api_version(),
                "metadata": list_meta,
                "items": items,
            }),
        }
    }

    fn render_one(
        &self,
        info: &ResourceInfo,
        obj: Value,
        repr: Representation,
        include: Option<&str>,
    ) -> Value {
        match repr {
            Representation::Table => {
                let rv = meta::resource_version(&obj).to_string();
                tables::table(info, &[obj], json!({"resourceVersion": rv}), include, true)
            }
            Representation::PartialMetadata => tables::partial_metadata(&obj),
            Representation::Object => obj,
        }
    }

    /// `pods/binding`: what a scheduler posts to place a pod on a node.
    async fn bind(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        binding: &Value,
        opts: &WriteOptions,
    ) -> Result<(), Status> {
        let node = binding
            .pointer("/target/name")
            .and_then(|n| n.as_str())
            .unwrap_or_default()
            .to_string();
        if node.is_empty() {
            return Err(Status::invalid(
                "Binding",
                "",
                "Binding",
                name,
                &[kubeport_core::FieldError::required(
                    "target.name".into(),
                    "",
                )],
            ));
        }
        let current = self.registry.get(info, ns, name)?;
        if let Some(existing) = current
            .pointer("/spec/nodeName")
            .and_then(|n| n.as_str())
            .filter(|n| !n.is_empty())
        {
            return Err(Status::conflict(
                info.group_resource(),
                name,
                &format!("pod {name} is already assigned to node {existing:?}"),
            ));
        }
        if meta::deletion_timestamp(&current).is_some() {
            return Err(Status::conflict(
                info.group_resource(),
                name,
                &format!("pod {name} is being deleted, cannot be assigned to a host"),
            ));
        }
        let patch = json!({"spec": {"nodeName": node}});
        self.registry
            .patch(info, ns, name, PatchKind::Merge, patch, None, opts)
            .await?;
        Ok(())
    }

    async fn finalize_namespace(&self, name: &str, finalizers: Value) -> Result<Value, Status> {
        let info = resources::find("", "v1", "namespaces").unwrap();
        let opts = WriteOptions {
            field_manager: "kubeport".into(),
            dry_run: false,
            validation: FieldValidation::Ignore,
        };
        let mut obj = self.registry.get(info, None, name)?;
        obj["spec"]["finalizers"] = finalizers;
        crate::lifecycle::write_namespace_finalizers(&self.registry, obj, &opts).await
    }

    /// Reads or changes `spec.replicas` through an autoscaling/v1 `Scale` view.
    async fn update_scale<F>(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        compute: F,
        opts: &WriteOptions,
    ) -> Result<Value, Status>
    where
        F: Fn(&Value) -> Result<Value, Status>,
    {
        let current = self.registry.get(info, ns, name)?;
        let scale = compute(&to_scale(&current))?;
        let replicas = scale
            .pointer("/spec/replicas")
            .and_then(|r| r.as_i64())
            .unwrap_or(0);
        if replicas < 0 {
            return Err(Status::invalid(
                "Scale",
                "autoscaling",
                "Scale",
                name,
                &[kubeport_core::FieldError::invalid(
                    "spec.replicas".into(),
                    kubeport_core::BadValue::Int(replicas),
                    "must be greater than or equal to 0",
                )],
            ));
        }
        let rv = meta::resource_version(&scale);
        let mut patch = json!({"spec": {"replicas": replicas}});
        if !rv.is_empty() {
            patch["metadata"] = json!({"resourceVersion": rv});
        }
        let w = self
            .registry
            .patch(info, ns, name, PatchKind::Merge, patch, None, opts)
            .await?;
        Ok(to_scale(&w.object))
    }
}

fn apply_delete_query(opts: &mut DeleteOptions, q: &HashMap<String, String>) {
    if let Some(g) = q.get("gracePeriodSeconds").and_then(|g| g.parse().ok()) {
        opts.grace_period_seconds = Some(g);
    }
    if let Some(p) = q.get("propagationPolicy") {
        opts.propagation_policy = Some(p.clone());
    }
    if q.get("dryRun").is_some_and(|d| d == "All") {
        opts.dry_run = true;
    }
}

/// The autoscaling/v1 Scale view of a Deployment or ReplicaSet.
pub fn to_scale(obj: &Value) -> Value {
    let selector = obj
        .pointer("/spec/selector")
        .map(|s| {
            let mut parts: Vec<String> = s
                .get("matchLabels")
                .and_then(|m| m.as_object())
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                        .collect()
                })
                .unwrap_or_default();
            parts.sort();
            parts.join(",")
        })
        .unwrap_or_default();
    let m = obj.get("metadata").cloned().unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": m.get("name"),
            "namespace": m.get("namespace"),
            "uid": m.get("uid"),
            "resourceVersion": m.get("resourceVersion"),
            "creationTimestamp": m.get("creationTimestamp"),
        },
        "spec": {"replicas": obj.pointer("/spec/replicas").and_then(|r| r.as_i64()).unwrap_or(0)},
        "status": {"replicas": obj.pointer("/status/replicas").and_then(|r| r.as_i64()).unwrap_or(0), "selector": selector},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_namespaced_and_cluster_paths() {
        match parse_route("/api/v1/namespaces/dev/services/web/status") {
            Route::Resource(rp) => {
                assert_eq!(rp.info.plural, "services");
                assert_eq!(rp.namespace.as_deref(), Some("dev"));
                assert_eq!(rp.name.as_deref(), Some("web"));
                assert_eq!(rp.sub, Some(Subresource::Status));
            }
            _ => panic!("not a resource route"),
        }
        match parse_route("/api/v1/namespaces/dev") {
            Route::Resource(rp) => {
                assert_eq!(rp.info.plural, "namespaces");
                assert_eq!(rp.name.as_deref(), Some("dev"));
            }
            _ => panic!("not a resource route"),
        }
        match parse_route("/apis/apps/v1/deployments") {
            Route::Resource(rp) => assert!(rp.namespace.is_none() && rp.name.is_none()),
            _ => panic!("not a resource route"),
        }
        assert!(matches!(
            parse_route("/api/v1/namespaces/dev/bogus"),
            Route::NotFound
        ));
        assert!(matches!(
            parse_route("/api/v1/watch/namespaces/dev/pods"),
            Route::Resource(ResourcePath {
                watch_prefix: true,
                ..
            })
        ));
    }

    #[test]
    fn table_accept_is_detected() {
        assert_eq!(
            representation("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"),
            Representation::Table
        );
        assert_eq!(
            representation("application/json, */*"),
            Representation::Object
        );
    }
}
