//! Per-resource behaviour on create and update, kept apart from storage mechanics:
//! defaulting (what kube-apiserver adds to objects), status handling and validation.

use crate::resources::ResourceInfo;
use kubeport_core::validation as names;
use kubeport_core::{BadValue, FieldError, FieldPath};
use serde_json::{json, Map, Value};

fn obj_mut<'a>(v: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !v.get(key).is_some_and(|x| x.is_object()) {
        v[key] = json!({});
    }
    v[key].as_object_mut().expect("just made an object")
}

fn set_default(m: &mut Map<String, Value>, key: &str, value: Value) {
    if m.get(key).is_none_or(|v| v.is_null()) {
        m.insert(key.to_string(), value);
    }
}

/// Defaults kube-apiserver applies to a new object (SetDefaults_* plus strategy PrepareForCreate).
pub fn prepare_create(info: &ResourceInfo, obj: &mut Value) {
    match (info.group, info.kind) {
        ("", "Namespace") => {
            let name = obj
                .pointer("/metadata/name")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string();
            let labels = obj_mut(obj_mut_path(obj, "metadata"), "labels");
            labels.insert("kubernetes.io/metadata.name".into(), json!(name));
            let spec = obj_mut(obj, "spec");
            set_default(spec, "finalizers", json!(["kubernetes"]));
            obj["status"] = json!({"phase": "Active"});
        }
        ("", "Pod") => {
            if let Some(spec) = obj.get_mut("spec") {
                default_pod_spec(spec);
            }
            obj["status"] = json!({"phase": "Pending", "qosClass": qos_class(obj.get("spec"))});
        }
        ("", "Node") => {
            let status = obj_mut(obj, "status");
            set_default(
                status,
                "daemonEndpoints",
                json!({"kubeletEndpoint": {"Port": 0}}),
            );
        }
        ("", "Service") => {
            // Status is owned by controllers; a create may not set it (except LB ingress is reset too).
            obj["status"] = json!({"loadBalancer": {}});
        }
        ("apps", "Deployment") => {
            let spec = obj_mut(obj, "spec");
            set_default(spec, "replicas", json!(1));
            set_default(spec, "revisionHistoryLimit", json!(10));
            set_default(spec, "progressDeadlineSeconds", json!(600));
            if spec.get("strategy").is_none_or(|s| s.get("type").is_none()) {
                let strategy = spec.entry("strategy").or_insert_with(|| json!({}));
                if strategy.get("type").is_none() {
                    strategy["type"] = json!("RollingUpdate");
                }
            }
            if spec["strategy"]["type"] == "RollingUpdate" {
                let ru = spec["strategy"]
                    .as_object_mut()
                    .unwrap()
                    .entry("rollingUpdate")
                    .or_insert_with(|| json!({}));
                let ru = ru.as_object_mut().unwrap();
                set_default(ru, "maxUnavailable", json!("25%"));
                set_default(ru, "maxSurge", json!("25%"));
            }
            if let Some(pod) = spec.get_mut("template").and_then(|t| t.get_mut("spec")) {
                default_pod_spec(pod);
            }
            obj["status"] = json!({});
        }
        ("apps", "ReplicaSet") => {
            let spec = obj_mut(obj, "spec");
            set_default(spec, "replicas", json!(1));
            if let Some(pod) = spec.get_mut("template").and_then(|t| t.get_mut("spec")) {
                default_pod_spec(pod);
            }
            obj["status"] = json!({"replicas": 0});
        }
        ("", "Secret") => {
            let m = obj.as_object_mut().unwrap();
            set_default(m, "type", json!("Opaque"));
        }
        ("", "Event") => {
            let m = obj.as_object_mut().unwrap();
            set_default(m, "reportingComponent", json!(""));
            set_default(m, "reportingInstance", json!(""));
        }
        _ => {}
    }
}

fn obj_mut_path<'a>(v: &'a mut Value, key: &str) -> &'a mut Value {
    if !v.get(key).is_some_and(|x| x.is_object()) {
        v[key] = json!({});
    }
    &mut v[key]
}

/// Defaults in a PodSpec (SetDefaults_PodSpec, SetDefaults_Container).
pub fn default_pod_spec(spec: &mut Value) {
    let Some(m) = spec.as_object_mut() else {
        return;
    };
    set_default(m, "restartPolicy", json!("Always"));
    set_default(m, "terminationGracePeriodSeconds", json!(30));
    set_default(m, "dnsPolicy", json!("ClusterFirst"));
    set_default(m, "securityContext", json!({}));
    set_default(m, "schedulerName", json!("default-scheduler"));
    for list in ["containers", "initContainers"] {
        if let Some(cs) = m.get_mut(list).and_then(|c| c.as_array_mut()) {
            for c in cs {
                let Some(c) = c.as_object_mut() else { continue };
                let image = c
                    .get("image")
                    .and_then(|i| i.as_str())
                    .unwrap_or_default()
                    .to_string();
                set_default(c, "imagePullPolicy", json!(default_pull_policy(&image)));
                set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
                set_default(c, "terminationMessagePolicy", json!("File"));
                set_default(c, "resources", json!({}));
                if let Some(ports) = c.get_mut("ports").and_then(|p| p.as_array_mut()) {
                    for p in ports {
                        if let Some(p) = p.as_object_mut() {
                            set_default(p, "protocol", json!("TCP"));
                        }
                    }
                }
            }
        }
    }
}

/// `Always` for `:latest` or untagged images, else `IfNotPresent`.
fn default_pull_policy(image: &str) -> &'static str {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    match last.split_once(':') {
        None => "Always",
        Some((_, "latest")) => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn qos_class(spec: Option<&Value>) -> &'static str {
    let containers = spec
        .and_then(|s| s.get("containers"))
        .and_then(|c| c.as_array());
    let any_resources = containers.is_some_and(|cs| {
        cs.iter().any(|c| {
            c.get("resources").is_some_and(|r| {
                ["requests", "limits"].iter().any(|k| {
                    r.get(*k)
                        .and_then(|x| x.as_object())
                        .is_some_and(|o| !o.is_empty())
                })
            })
        })
    });
    if any_resources {
        "Burstable"
    } else {
        "BestEffort"
    }
}

/// Object-level validation for the non-Service resources (Service has its own crate).
pub fn validate(info: &ResourceInfo, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let name = obj
        .pointer("/metadata/name")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    let meta = FieldPath::new("metadata");
    if old.is_none() {
        let msgs = match (info.group, info.kind) {
            ("", "Namespace") => names::is_dns1123_label(name),
            ("", "Service") => Vec::new(),
            // Nodes, events and leases accept any path-segment-safe name.
            ("", "Node") | ("", "Event") | ("coordination.k8s.io", "Lease") => {
                path_segment_errors(name)
            }
            _ => names::is_dns1123_subdomain(name),
        };
        for m in msgs {
            errs.push(FieldError::invalid(
                meta.child("name"),
                BadValue::Str(name.to_string()),
                m,
            ));
        }
    }
    if let Some(labels) = obj.pointer("/metadata/labels").and_then(|l| l.as_object()) {
        for (k, v) in labels {
            for m in names::is_qualified_name(k) {
                errs.push(FieldError::invalid(
                    meta.child("labels"),
                    BadValue::Str(k.clone()),
                    m,
                ));
            }
            let v = v.as_str().unwrap_or_default();
            for m in names::is_valid_label_value(v) {
                errs.push(FieldError::invalid(
                    meta.child("labels"),
                    BadValue::Str(v.to_string()),
                    m,
                ));
            }
        }
    }
    match (info.group, info.kind) {
        ("apps", "Deployment") | ("apps", "ReplicaSet") => validate_workload(obj, &mut errs),
        ("", "Pod") => validate_pod_spec(obj.get("spec"), &FieldPath::new("spec"), &mut errs),
        _ => {}
    }
    errs
}

fn path_segment_errors(name: &str) -> Vec<String> {
    if name == "." || name == ".." {
        return vec![format!("may not be '{name}'")];
    }
    for bad in ["/", "%"] {
        if name.contains(bad) {
            return vec![format!("may not contain '{bad}'")];
        }
    }
    Vec::new()
}

fn validate_workload(obj: &Value, errs: &mut Vec<FieldError>) {
    let spec_path = FieldPath::new("spec");
    let Some(spec) = obj.get("spec") else {
        errs.push(FieldError::required(spec_path.child("selector"), ""));
        return;
    };
    if let Some(r) = spec.get("replicas").and_then(|r| r.as_i64()) {
        if r < 0 {
            errs.push(FieldError::invalid(
                spec_path.child("replicas"),
                BadValue::Int(r),
                "must be greater than or equal to 0",
            ));
        }
    }
    let selector = spec.get("selector");
    let empty_selector = selector.is_none_or(|s| {
        s.get("matchLabels")
            .and_then(|m| m.as_object())
            .is_none_or(|m| m.is_empty())
            && s.get("matchExpressions")
                .and_then(|m| m.as_array())
                .is_none_or(|m| m.is_empty())
    });
    if empty_selector {
        errs.push(FieldError::required(spec_path.child("selector"), ""));
        if selector.is_some() {
            errs.push(FieldError::invalid(spec_path.child("selector"), BadValue::Raw("v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}".into()), "empty selector is invalid for deployment"));
        }
        return;
    }
    let template_labels = spec
        .pointer("/template/metadata/labels")
        .and_then(|l| l.as_object());
    let sel = crate::selectors::LabelSelector::from_label_selector_json(selector.unwrap());
    let matches = sel.map(|s| s.matches(template_labels)).unwrap_or(false);
    if !matches {
        let shown = template_labels
            .map(|m| {
                let parts: Vec<String> = m
                    .iter()
                    .map(|(k, v)| format!("{:?}:{:?}", k, v.as_str().unwrap_or_default()))
                    .collect();
                format!("map[string]string{{{}}}", parts.join(", "))
            })
            .unwrap_or_else(|| "map[string]string(nil)".into());
        errs.push(FieldError::invalid(
            spec_path
                .child("template")
                .child("metadata")
                .child("labels"),
            BadValue::Raw(shown),
            "`selector` does not match template `labels`",
        ));
    }
    validate_pod_spec(
        spec.pointer("/template/spec"),
        &spec_path.child("template").child("spec"),
        errs,
    );
}

fn validate_pod_spec(spec: Option<&Value>, path: &FieldPath, errs: &mut Vec<FieldError>) {
    let containers = spec
        .and_then(|s| s.get("containers"))
        .and_then(|c| c.as_array());
    let Some(containers) = containers.filter(|c| !c.is_empty()) else {
        errs.push(FieldError::required(path.child("containers"), ""));
        return;
    };
    let mut seen = Vec::new();
    for (i, c) in containers.iter().enumerate() {
        let cp = path.child("containers").index(i);
        let name = c.get("name").and_then(|n| n.as_str()).unwrap_or_default();
        if name.is_empty() {
            errs.push(FieldError::required(cp.child("name"), ""));
        } else {
            for m in names::is_dns1123_label(name) {
                errs.push(FieldError::invalid(
                    cp.child("name"),
                    BadValue::Str(name.to_string()),
                    m,
                ));
            }
            if seen.contains(&name) {
                errs.push(FieldError::duplicate(
                    cp.child("name"),
                    BadValue::Str(name.to_string()),
                ));
            }
            seen.push(name);
        }
        if c.get("image")
            .and_then(|n| n.as_str())
            .is_none_or(|s| s.trim().is_empty())
        {
            errs.push(FieldError::required(cp.child("image"), ""));
        }
    }
}
