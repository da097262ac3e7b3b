//! `ValidateService`, `ValidateServiceUpdate` and `ValidateServiceStatusUpdate`
//! (pkg/apis/core/validation/validation.go, 1.33): same checks, same order, same field paths
//! and texts, including kube's quirks (`spec.LoadBalancerSourceRanges` with a capital `L`, the
//! `allocateLoadBalancerNodePorts` Required error without `spec.`, duplicated
//! `loadBalancerClass` errors on update).

use crate::ip::{
    is_link_local_multicast, is_link_local_unicast, is_valid_cidr_sloppy, parse_ip_sloppy,
    INVALID_CIDR_MSG, INVALID_IP_MSG,
};
use crate::util::*;
use crate::ServiceConfig;
use k8s_openapi::api::core::v1::{LoadBalancerStatus, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kubeport_core::field::go_quote;
use kubeport_core::validation::{
    is_dns1123_label, is_dns1123_subdomain, is_qualified_name, is_valid_port_name,
    is_valid_port_num, validate_annotations, validate_generate_name, validate_labels,
    validate_object_name, NameRule,
};
use kubeport_core::{BadValue, FieldError, FieldPath};
use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;

/// `core.MaxClientIPServiceAffinitySeconds`: one day.
const MAX_CLIENT_IP_AFFINITY_SECONDS: i32 = 86400;
const ANNOTATION_TOPOLOGY_AWARE_HINTS: &str = "service.kubernetes.io/topology-aware-hints";
const ANNOTATION_TOPOLOGY_MODE: &str = "service.kubernetes.io/topology-mode";
const ANNOTATION_LB_SOURCE_RANGES: &str = "service.beta.kubernetes.io/load-balancer-source-ranges";

fn p(s: &str) -> FieldPath {
    FieldPath::new(s)
}

fn spec_path() -> FieldPath {
    p("spec")
}

fn s(v: &str) -> BadValue {
    BadValue::Str(v.to_string())
}

/// A Go `*string` (or `*NamedString`) value: dereferenced, `"null"` when nil.
fn opt_s(v: Option<&str>) -> BadValue {
    s(v.unwrap_or("null"))
}

/// A Go `[]string`: `[]string(nil)` when absent.
fn str_list(v: &Option<Vec<String>>) -> BadValue {
    match v {
        None => BadValue::Raw("[]string(nil)".into()),
        Some(l) => BadValue::StrList(l.clone()),
    }
}

/// A Go `[]core.IPFamily` printed with `%#v`.
fn family_list(v: &Option<Vec<String>>) -> BadValue {
    match v {
        None => BadValue::Raw("[]core.IPFamily(nil)".into()),
        Some(l) => BadValue::Raw(format!(
            "[]core.IPFamily{{{}}}",
            l.iter().map(|f| go_quote(f)).collect::<Vec<_>>().join(", ")
        )),
    }
}

fn invalid_each(path: &FieldPath, value: &str, msgs: Vec<String>) -> Vec<FieldError> {
    msgs.into_iter()
        .map(|m| FieldError::invalid(path.clone(), s(value), m))
        .collect()
}

/// `ValidateObjectMeta` for a namespaced kind whose names follow `rule`: name or
/// generateName, namespace (a DNS-1123 label), generation, labels, annotations, finalizers.
/// Owner references and managed fields are not checked.
pub fn validate_object_meta(meta: &ObjectMeta, rule: NameRule) -> Vec<FieldError> {
    let mp = p("metadata");
    let mut errs = Vec::new();
    let generate_name = meta.generate_name.as_deref().unwrap_or("");
    if !generate_name.is_empty() {
        errs.extend(invalid_each(
            &mp.child("generateName"),
            generate_name,
            validate_generate_name(generate_name, rule),
        ));
    }
    let name = meta.name.as_deref().unwrap_or("");
    if name.is_empty() {
        errs.push(FieldError::required(
            mp.child("name"),
            "name or generateName is required",
        ));
    } else {
        errs.extend(invalid_each(
            &mp.child("name"),
            name,
            validate_object_name(name, rule),
        ));
    }
    let ns = meta.namespace.as_deref().unwrap_or("");
    if ns.is_empty() {
        errs.push(FieldError::required(mp.child("namespace"), ""));
    } else {
        errs.extend(invalid_each(
            &mp.child("namespace"),
            ns,
            validate_object_name(ns, NameRule::Dns1123Label),
        ));
    }
    if let Some(g) = meta.generation {
        if g < 0 {
            errs.push(FieldError::invalid(
                mp.child("generation"),
                BadValue::Int(g),
                "must be greater than or equal to 0",
            ));
        }
    }
    errs.extend(labels_and_annotations(meta));
    let finalizers = meta.finalizers.as_deref().unwrap_or(&[]);
    let fp = mp.child("finalizers");
    for f in finalizers {
        errs.extend(invalid_each(&fp, f, is_qualified_name(f)));
    }
    if finalizers.iter().any(|f| f == "orphan")
        && finalizers.iter().any(|f| f == "foregroundDeletion")
    {
        errs.push(FieldError::invalid(
            fp.clone(),
            BadValue::StrList(finalizers.to_vec()),
            "finalizer orphan and foregroundDeletion cannot be both set",
        ));
    }
    // Core kinds additionally require unqualified finalizers to be the standard ones.
    for f in finalizers {
        if !f.contains('/') && !matches!(f.as_str(), "kubernetes" | "orphan" | "foregroundDeletion")
        {
            errs.push(FieldError::invalid(
                fp.clone(),
                s(f),
                "name is neither a standard finalizer name nor is it fully qualified",
            ));
        }
    }
    errs
}

fn labels_and_annotations(meta: &ObjectMeta) -> Vec<FieldError> {
    let mp = p("metadata");
    let empty = BTreeMap::new();
    let mut errs = validate_labels(meta.labels.as_ref().unwrap_or(&empty), &mp.child("labels"));
    errs.extend(validate_annotations(
        meta.annotations.as_ref().unwrap_or(&empty),
        &mp.child("annotations"),
    ));
    errs
}

/// `ValidateObjectMetaUpdate`: immutable name, namespace and uid, generation not decremented,
/// labels and annotations. The resourceVersion check is left to the caller, which fills it
/// from storage before validating an unconditional update, as kube-apiserver's store does.
pub fn validate_object_meta_update(new: &ObjectMeta, old: &ObjectMeta) -> Vec<FieldError> {
    let mp = p("metadata");
    let mut errs = Vec::new();
    if new.generation.unwrap_or(0) < old.generation.unwrap_or(0) {
        errs.push(FieldError::invalid(
            mp.child("generation"),
            BadValue::Int(new.generation.unwrap_or(0)),
            "must not be decremented",
        ));
    }
    for (field, n, o) in [
        ("name", &new.name, &old.name),
        ("namespace", &new.namespace, &old.namespace),
        ("uid", &new.uid, &old.uid),
    ] {
        if str_of(n) != str_of(o) {
            errs.push(FieldError::invalid(
                mp.child(field),
                s(str_of(n)),
                "field is immutable",
            ));
        }
    }
    errs.extend(labels_and_annotations(new));
    errs
}

/// `ValidateService` (create). `cfg` is not consulted: like kube-apiserver's, Service
/// validation is cluster-independent; range and family checks happen in allocation.
pub fn validate_create(svc: &Service, _cfg: &ServiceConfig) -> Vec<FieldError> {
    validate_service(svc)
}

/// `ValidateServiceUpdate`: metadata update rules, clusterIP/ipFamily immutability, the
/// loadBalancerClass and healthCheckNodePort rules, then every create-time check on `new`.
/// Call after [`crate::prepare_update`] and allocation.
pub fn validate_update(new: &Service, old: &Service, _cfg: &ServiceConfig) -> Vec<FieldError> {
    let mut errs = validate_object_meta_update(&new.metadata, &old.metadata);
    errs.extend(validate_upgrade_downgrade_cluster_ips(old, new));
    errs.extend(validate_upgrade_downgrade_ip_families(old, new));
    errs.extend(validate_load_balancer_class(Some(old), new));
    if needs_health_check(old) && needs_health_check(new) && hc_node_port(new) != hc_node_port(old)
    {
        errs.push(FieldError::forbidden(
            p("spec").child("healthCheckNodePort"),
            "field is immutable",
        ));
    }
    errs.extend(validate_service(new));
    errs
}

/// `ValidateServiceStatusUpdate`: metadata update rules and `status.loadBalancer`. Call after
/// [`crate::prepare_status_update`] (which restores the stored spec).
pub fn validate_status_update(new: &Service, old: &Service) -> Vec<FieldError> {
    let mut errs = validate_object_meta_update(&new.metadata, &old.metadata);
    let default_lb = LoadBalancerStatus::default();
    let lb = new
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .unwrap_or(&default_lb);
    errs.extend(validate_load_balancer_status(lb, svc_type(new)));
    errs
}

fn validate_load_balancer_status(status: &LoadBalancerStatus, svc_type: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let ingr_path = p("status").child("loadBalancer").child("ingress");
    let ingress = status.ingress.as_deref().unwrap_or(&[]);
    // AllowServiceLBStatusOnNonLB is off by default.
    if svc_type != TYPE_LOAD_BALANCER && !ingress.is_empty() {
        errs.push(FieldError::forbidden(
            ingr_path,
            "may only be used when `spec.type` is 'LoadBalancer'",
        ));
        return errs;
    }
    for (i, ing) in ingress.iter().enumerate() {
        let idx = ingr_path.index(i);
        let ip = str_of(&ing.ip);
        if !ip.is_empty() && parse_ip_sloppy(ip).is_none() {
            errs.push(FieldError::invalid(idx.child("ip"), s(ip), INVALID_IP_MSG));
        }
        match &ing.ip_mode {
            None if !ip.is_empty() => errs.push(FieldError::required(
                idx.child("ipMode"),
                "must be specified when `ip` is set",
            )),
            Some(_) if ip.is_empty() => errs.push(FieldError::forbidden(
                idx.child("ipMode"),
                "may not be specified when `ip` is not set",
            )),
            Some(m) if m != "VIP" && m != "Proxy" => errs.push(FieldError::not_supported(
                idx.child("ipMode"),
                s(m),
                &["Proxy", "VIP"],
            )),
            _ => {}
        }
        let host = str_of(&ing.hostname);
        if !host.is_empty() {
            errs.extend(invalid_each(
                &idx.child("hostname"),
                host,
                is_dns1123_subdomain(host),
            ));
            if parse_ip_sloppy(host).is_some() {
                errs.push(FieldError::invalid(
                    idx.child("hostname"),
                    s(host),
                    "must be a DNS name, not an IP address",
                ));
            }
        }
    }
    errs
}

fn validate_service(svc: &Service) -> Vec<FieldError> {
    let mut errs = validate_object_meta(&svc.metadata, NameRule::Dns1035Label);
    let annotations = svc.metadata.annotations.as_ref();
    let hints = annotations.and_then(|a| a.get(ANNOTATION_TOPOLOGY_AWARE_HINTS));
    let mode = annotations.and_then(|a| a.get(ANNOTATION_TOPOLOGY_MODE));
    if let (Some(h), Some(m)) = (hints, mode) {
        if h != m {
            errs.push(FieldError::invalid(
                p("metadata").child("annotations").key(ANNOTATION_TOPOLOGY_MODE),
                s(m),
                format!("must match annotations[{ANNOTATION_TOPOLOGY_AWARE_HINTS}] when both are specified"),
            ));
        }
    }

    let sp = spec_path();
    let default_spec = Default::default();
    let spec = svc.spec.as_ref().unwrap_or(&default_spec);
    let ty = svc_type(svc);
    let svc_ports = ports(svc);
    let headless = is_headless(svc);

    if svc_ports.is_empty() && !headless && ty != TYPE_EXTERNAL_NAME {
        errs.push(FieldError::required(sp.child("ports"), ""));
    }
    match ty {
        TYPE_LOAD_BALANCER | TYPE_NODE_PORT if headless => {
            errs.push(FieldError::invalid(
                sp.child("clusterIPs").index(0),
                s(&cluster_ips(svc)[0]),
                format!("may not be set to 'None' for {ty} services"),
            ));
        }
        TYPE_EXTERNAL_NAME => {
            if !cluster_ips(svc).is_empty() {
                errs.push(FieldError::forbidden(
                    sp.child("clusterIPs"),
                    "may not be set for ExternalName services",
                ));
            }
            if !ip_families(svc).is_empty() {
                errs.push(FieldError::forbidden(
                    sp.child("ipFamilies"),
                    "may not be set for ExternalName services",
                ));
            }
            if spec.ip_family_policy.is_some() {
                errs.push(FieldError::forbidden(
                    sp.child("ipFamilyPolicy"),
                    "may not be set for ExternalName services",
                ));
            }
            // The value (a CNAME) may have one trailing dot to mark it fully qualified.
            let name = str_of(&spec.external_name);
            let cname = name.strip_suffix('.').unwrap_or(name);
            if cname.is_empty() {
                errs.push(FieldError::required(sp.child("externalName"), ""));
            } else {
                errs.extend(invalid_each(
                    &sp.child("externalName"),
                    cname,
                    is_dns1123_subdomain(cname),
                ));
            }
        }
        _ => {}
    }

    let mut names = HashSet::new();
    for (i, port) in svc_ports.iter().enumerate() {
        errs.extend(validate_service_port(
            port,
            svc_ports.len() > 1,
            &mut names,
            &sp.child("ports").index(i),
        ));
    }

    if let Some(sel) = &spec.selector {
        errs.extend(validate_labels(sel, &sp.child("selector")));
    }

    let affinity = str_of(&spec.session_affinity);
    if affinity.is_empty() {
        errs.push(FieldError::required(sp.child("sessionAffinity"), ""));
    } else if affinity != "ClientIP" && affinity != "None" {
        errs.push(FieldError::not_supported(
            sp.child("sessionAffinity"),
            s(affinity),
            &["ClientIP", "None"],
        ));
    }
    let cfg_path = sp.child("sessionAffinityConfig");
    if affinity == "ClientIP" {
        const DETAIL: &str = "when session affinity type is ClientIP";
        match &spec.session_affinity_config {
            None => errs.push(FieldError::required(cfg_path, DETAIL)),
            Some(c) => match &c.client_ip {
                None => errs.push(FieldError::required(cfg_path.child("clientIP"), DETAIL)),
                Some(cip) => {
                    let tp = cfg_path.child("clientIP").child("timeoutSeconds");
                    match cip.timeout_seconds {
                        None => errs.push(FieldError::required(tp, DETAIL)),
                        Some(t) if t <= 0 || t > MAX_CLIENT_IP_AFFINITY_SECONDS => errs.push(FieldError::invalid(
                            tp,
                            BadValue::Int(t as i64),
                            format!("must be greater than 0 and less than {MAX_CLIENT_IP_AFFINITY_SECONDS}"),
                        )),
                        Some(_) => {}
                    }
                }
            },
        }
    } else if affinity == "None" && spec.session_affinity_config.is_some() {
        errs.push(FieldError::forbidden(
            cfg_path,
            "must not be set when session affinity is None",
        ));
    }

    errs.extend(validate_cluster_ips_related_fields(svc));

    for (i, ip) in external_ips(svc).iter().enumerate() {
        let idx = sp.child("externalIPs").index(i);
        match parse_ip_sloppy(ip) {
            None => errs.push(FieldError::invalid(idx, s(ip), INVALID_IP_MSG)),
            Some(addr) => errs.extend(validate_non_special_ip(ip, addr, &idx)),
        }
    }

    if ty.is_empty() {
        errs.push(FieldError::required(sp.child("type"), ""));
    } else if ![
        TYPE_CLUSTER_IP,
        TYPE_NODE_PORT,
        TYPE_LOAD_BALANCER,
        TYPE_EXTERNAL_NAME,
    ]
    .contains(&ty)
    {
        errs.push(FieldError::not_supported(
            sp.child("type"),
            s(ty),
            &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
        ));
    }

    if ty == TYPE_CLUSTER_IP {
        for (i, port) in svc_ports.iter().enumerate() {
            if node_port(port) != 0 {
                errs.push(FieldError::forbidden(
                    sp.child("ports").index(i).child("nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            }
        }
    }

    // Duplicate nodePorts, keyed by (protocol, nodePort).
    let mut seen_node_ports = HashSet::new();
    for (i, port) in svc_ports.iter().enumerate() {
        let np = node_port(port);
        if np == 0 {
            continue;
        }
        if !seen_node_ports.insert((str_of(&port.protocol).to_string(), np)) {
            errs.push(FieldError::duplicate(
                sp.child("ports").index(i).child("nodePort"),
                BadValue::Int(np as i64),
            ));
        }
    }
    // Duplicate ports, keyed by (protocol, port); the value is the Go key struct.
    let mut seen_ports = HashSet::new();
    for (i, port) in svc_ports.iter().enumerate() {
        let proto = str_of(&port.protocol);
        if !seen_ports.insert((proto.to_string(), port.port)) {
            errs.push(FieldError::duplicate(
                sp.child("ports").index(i),
                BadValue::Raw(format!(
                    "core.ServicePort{{Name:\"\", Protocol:{}, AppProtocol:(*string)(nil), Port:{}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}",
                    go_quote(proto),
                    port.port
                )),
            ));
        }
    }

    let ranges = list_of(&spec.load_balancer_source_ranges);
    if !ranges.is_empty() {
        let fp = sp.child("LoadBalancerSourceRanges");
        if ty != TYPE_LOAD_BALANCER {
            errs.push(FieldError::forbidden(
                fp.clone(),
                "may only be used when `type` is 'LoadBalancer'",
            ));
        }
        for (i, v) in ranges.iter().enumerate() {
            let v = v.trim();
            if !is_valid_cidr_sloppy(v) {
                errs.push(FieldError::invalid(fp.index(i), s(v), INVALID_CIDR_MSG));
            }
        }
    } else if let Some(val) = annotations.and_then(|a| a.get(ANNOTATION_LB_SOURCE_RANGES)) {
        let fp = p("metadata")
            .child("annotations")
            .key(ANNOTATION_LB_SOURCE_RANGES);
        if ty != TYPE_LOAD_BALANCER {
            errs.push(FieldError::forbidden(
                fp.clone(),
                "may only be used when `type` is 'LoadBalancer'",
            ));
        }
        let val = val.trim();
        if !val.is_empty() {
            for v in val.split(',') {
                let v = v.trim();
                if !is_valid_cidr_sloppy(v) {
                    errs.push(FieldError::invalid(fp.clone(), s(v), INVALID_CIDR_MSG));
                }
            }
        }
    }

    if spec.allocate_load_balancer_node_ports.is_some() && ty != TYPE_LOAD_BALANCER {
        errs.push(FieldError::forbidden(
            sp.child("allocateLoadBalancerNodePorts"),
            "may only be used when `type` is 'LoadBalancer'",
        ));
    }
    if ty == TYPE_LOAD_BALANCER && spec.allocate_load_balancer_node_ports.is_none() {
        // kube-apiserver reports this path without the `spec.` prefix.
        errs.push(FieldError::required(p("allocateLoadBalancerNodePorts"), ""));
    }

    errs.extend(validate_load_balancer_class(None, svc));
    errs.extend(validate_external_traffic_policy(svc));

    match spec.internal_traffic_policy.as_deref() {
        None => {
            if ty == TYPE_NODE_PORT || ty == TYPE_LOAD_BALANCER || ty == TYPE_CLUSTER_IP {
                errs.push(FieldError::required(sp.child("internalTrafficPolicy"), ""));
            }
        }
        Some(itp) if itp != "Cluster" && itp != "Local" => errs.push(FieldError::not_supported(
            sp.child("internalTrafficPolicy"),
            s(itp),
            &["Cluster", "Local"],
        )),
        Some(_) => {}
    }

    // PreferSameZone/PreferSameNode sit behind an alpha gate in 1.33.
    if let Some(td) = spec.traffic_distribution.as_deref() {
        if td != "PreferClose" {
            errs.push(FieldError::not_supported(
                sp.child("trafficDistribution"),
                s(td),
                &["PreferClose"],
            ));
        }
    }
    errs
}

fn validate_service_port(
    port: &ServicePort,
    require_name: bool,
    names: &mut HashSet<String>,
    path: &FieldPath,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let name = str_of(&port.name);
    if require_name && name.is_empty() {
        errs.push(FieldError::required(path.child("name"), ""));
    } else if !name.is_empty() {
        errs.extend(invalid_each(
            &path.child("name"),
            name,
            is_dns1123_label(name),
        ));
        if !names.insert(name.to_string()) {
            errs.push(FieldError::duplicate(path.child("name"), s(name)));
        }
    }
    for msg in is_valid_port_num(port.port as i64) {
        errs.push(FieldError::invalid(
            path.child("port"),
            BadValue::Int(port.port as i64),
            msg,
        ));
    }
    let proto = str_of(&port.protocol);
    if proto.is_empty() {
        errs.push(FieldError::required(path.child("protocol"), ""));
    } else if !["SCTP", "TCP", "UDP"].contains(&proto) {
        errs.push(FieldError::not_supported(
            path.child("protocol"),
            s(proto),
            &["SCTP", "TCP", "UDP"],
        ));
    }
    let tp = path.child("targetPort");
    match port.target_port.as_ref().unwrap_or(&IntOrString::Int(0)) {
        IntOrString::Int(n) => {
            for msg in is_valid_port_num(*n as i64) {
                errs.push(FieldError::invalid(
                    tp.clone(),
                    BadValue::Int(*n as i64),
                    msg,
                ));
            }
        }
        IntOrString::String(name) => errs.extend(invalid_each(&tp, name, is_valid_port_name(name))),
    }
    if let Some(app) = &port.app_protocol {
        errs.extend(invalid_each(
            &path.child("appProtocol"),
            app,
            is_qualified_name(app),
        ));
    }
    errs
}

/// `ValidateNonSpecialIP` for an address that already parsed.
fn validate_non_special_ip(text: &str, ip: IpAddr, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if ip.is_unspecified() {
        errs.push(FieldError::invalid(
            path.clone(),
            s(text),
            format!("may not be unspecified ({text})"),
        ));
    }
    if ip.is_loopback() {
        errs.push(FieldError::invalid(
            path.clone(),
            s(text),
            "may not be in the loopback range (127.0.0.0/8, ::1/128)",
        ));
    }
    if is_link_local_unicast(ip) {
        errs.push(FieldError::invalid(
            path.clone(),
            s(text),
            "may not be in the link-local range (169.254.0.0/16, fe80::/10)",
        ));
    }
    if is_link_local_multicast(ip) {
        errs.push(FieldError::invalid(
            path.clone(),
            s(text),
            "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)",
        ));
    }
    errs
}

fn validate_external_traffic_policy(svc: &Service) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let sp = spec_path();
    let policy = etp(svc);
    if !externally_accessible(svc) {
        if !policy.is_empty() {
            errs.push(FieldError::invalid(
                sp.child("externalTrafficPolicy"),
                s(policy),
                "may only be set for externally-accessible services",
            ));
        }
    } else if policy.is_empty() {
        errs.push(FieldError::required(sp.child("externalTrafficPolicy"), ""));
    } else if policy != "Cluster" && policy != "Local" {
        errs.push(FieldError::not_supported(
            sp.child("externalTrafficPolicy"),
            s(policy),
            &["Cluster", "Local"],
        ));
    }
    let hc = hc_node_port(svc);
    let hp = sp.child("healthCheckNodePort");
    if !needs_health_check(svc) {
        if hc != 0 {
            errs.push(FieldError::invalid(
                hp,
                BadValue::Int(hc as i64),
                "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
            ));
        }
    } else if hc == 0 {
        errs.push(FieldError::required(hp, ""));
    } else {
        for msg in is_valid_port_num(hc as i64) {
            errs.push(FieldError::invalid(
                hp.clone(),
                BadValue::Int(hc as i64),
                msg,
            ));
        }
    }
    errs
}

fn validate_load_balancer_class(old: Option<&Service>, new: &Service) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let path = p("spec").child("loadBalancerClass");
    let class = |svc: &Service| {
        svc.spec
            .as_ref()
            .and_then(|s| s.load_balancer_class.clone())
    };
    if let Some(old) = old {
        if svc_type(old) == TYPE_LOAD_BALANCER
            && svc_type(new) == TYPE_LOAD_BALANCER
            && class(old) != class(new)
        {
            errs.push(FieldError::invalid(
                path.clone(),
                opt_s(class(new).as_deref()),
                "may not change once set",
            ));
        }
    }
    if let Some(c) = class(new) {
        if svc_type(new) == TYPE_LOAD_BALANCER {
            errs.extend(invalid_each(&path, &c, is_qualified_name(&c)));
        } else {
            errs.push(FieldError::forbidden(
                path,
                "may only be used when `type` is 'LoadBalancer'",
            ));
        }
    }
    errs
}

/// `ValidateServiceClusterIPsRelatedFields`; also run at allocation time.
pub(crate) fn validate_cluster_ips_related_fields(svc: &Service) -> Vec<FieldError> {
    if svc_type(svc) == TYPE_EXTERNAL_NAME {
        return Vec::new();
    }
    let mut errs = Vec::new();
    let sp = spec_path();
    let ips_path = sp.child("clusterIPs");
    let default_spec = Default::default();
    let spec = svc.spec.as_ref().unwrap_or(&default_spec);
    let ips = cluster_ips(svc);
    if !cluster_ip(svc).is_empty() {
        if ips.is_empty() {
            errs.push(FieldError::required(ips_path.clone(), ""));
        } else if ips[0] != cluster_ip(svc) {
            errs.push(FieldError::invalid(
                ips_path.clone(),
                str_list(&spec.cluster_ips),
                "first value must match `clusterIP`",
            ));
        }
    } else if !ips.is_empty() {
        errs.push(FieldError::invalid(
            ips_path.clone(),
            str_list(&spec.cluster_ips),
            "must be empty when `clusterIP` is not specified",
        ));
    }

    let mut seen = HashSet::new();
    for (i, fam) in ip_families(svc).iter().enumerate() {
        let fp = sp.child("ipFamilies").index(i);
        if fam != "IPv4" && fam != "IPv6" {
            errs.push(FieldError::not_supported(
                fp.clone(),
                s(fam),
                &["IPv4", "IPv6"],
            ));
        }
        if !seen.insert(fam.clone()) {
            errs.push(FieldError::duplicate(fp, s(fam)));
        }
    }
    if let Some(policy) = spec.ip_family_policy.as_deref() {
        if ![POLICY_SINGLE, POLICY_PREFER_DUAL, POLICY_REQUIRE_DUAL].contains(&policy) {
            errs.push(FieldError::not_supported(
                sp.child("ipFamilyPolicy"),
                s(policy),
                &["PreferDualStack", "RequireDualStack", "SingleStack"],
            ));
        }
    }

    let mut has_invalid = false;
    for (i, ip) in ips.iter().enumerate() {
        if i == 0 && ip == CLUSTER_IP_NONE {
            if ips.len() > 1 {
                has_invalid = true;
                errs.push(FieldError::invalid(
                    ips_path.clone(),
                    str_list(&spec.cluster_ips),
                    "'None' must be the first and only value",
                ));
            }
            continue;
        }
        if parse_ip_sloppy(ip).is_none() {
            has_invalid = true;
            errs.push(FieldError::invalid(
                ips_path.index(i),
                s(ip),
                INVALID_IP_MSG,
            ));
        }
    }
    if ips.len() > 2 {
        errs.push(FieldError::invalid(
            ips_path.clone(),
            str_list(&spec.cluster_ips),
            "may only hold up to 2 values",
        ));
    }
    if has_invalid {
        return errs;
    }
    if ips.len() > 1 {
        let parsed: Vec<IpAddr> = ips.iter().filter_map(|ip| parse_ip_sloppy(ip)).collect();
        let dual = parsed.iter().any(|ip| ip.is_ipv4()) && parsed.iter().any(|ip| ip.is_ipv6());
        if !dual {
            errs.push(FieldError::invalid(
                ips_path.clone(),
                str_list(&spec.cluster_ips),
                "may specify no more than one IP for each IP family",
            ));
        }
    }
    let families = ip_families(svc);
    if !is_headless(svc) && !ips.is_empty() && !families.is_empty() {
        for (i, ip) in ips.iter().enumerate() {
            if i >= families.len() {
                break;
            }
            let v6 = matches!(parse_ip_sloppy(ip), Some(IpAddr::V6(_)));
            if families[i] == "IPv4" && v6 {
                errs.push(FieldError::invalid(
                    ips_path.index(i),
                    s(ip),
                    format!("expected an IPv4 value as indicated by `ipFamilies[{i}]`"),
                ));
            }
            if families[i] == "IPv6" && !v6 {
                errs.push(FieldError::invalid(
                    ips_path.index(i),
                    s(ip),
                    format!("expected an IPv6 value as indicated by `ipFamilies[{i}]`"),
                ));
            }
        }
    }
    errs
}

fn validate_upgrade_downgrade_cluster_ips(old: &Service, new: &Service) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if svc_type(new) == TYPE_EXTERNAL_NAME || svc_type(old) == TYPE_EXTERNAL_NAME {
        return errs;
    }
    if is_headless(old) && is_headless(new) {
        return errs;
    }
    let path = p("spec").child("clusterIPs");
    let value = str_list(&new.spec.as_ref().and_then(|s| s.cluster_ips.clone()));
    let (o, n) = (cluster_ips(old), cluster_ips(new));
    if o.len() == n.len() {
        for (i, ip) in o.iter().enumerate() {
            if ip != &n[i] {
                errs.push(FieldError::invalid(
                    path.index(i),
                    value.clone(),
                    "may not change once set",
                ));
            }
        }
    } else if o.len() > n.len() {
        if n.is_empty() {
            errs.push(FieldError::invalid(
                path.index(0),
                value.clone(),
                "primary clusterIP can not be unset",
            ));
        }
        if !o.is_empty() && !n.is_empty() && n[0] != o[0] {
            errs.push(FieldError::invalid(
                path.index(0),
                value.clone(),
                "may not change once set",
            ));
        }
        if n.len() == 1 && ip_family_policy(new) != Some(POLICY_SINGLE) {
            errs.push(FieldError::invalid(
                p("spec").child("ipFamilyPolicy"),
                opt_s(ip_family_policy(new)),
                "must be set to 'SingleStack' when releasing the secondary clusterIP",
            ));
        }
    } else if !o.is_empty() && n[0] != o[0] {
        errs.push(FieldError::invalid(
            path.index(0),
            value,
            "may not change once set",
        ));
    }
    errs
}

fn validate_upgrade_downgrade_ip_families(old: &Service, new: &Service) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if svc_type(new) == TYPE_EXTERNAL_NAME || svc_type(old) == TYPE_EXTERNAL_NAME {
        return errs;
    }
    if is_headless(old) || is_headless(new) {
        // Changing to or from headless, or headless on both sides: families may change.
        return errs;
    }
    let path = p("spec").child("ipFamilies");
    let new_spec = new.spec.clone().unwrap_or_default();
    let (o, n) = (ip_families(old), ip_families(new));
    if o.len() == n.len() {
        for (i, fam) in o.iter().enumerate() {
            if fam != &n[i] {
                errs.push(FieldError::invalid(
                    path.index(0),
                    family_list(&new_spec.ip_families),
                    "may not change once set",
                ));
            }
        }
    } else if o.len() > n.len() {
        // kube checks clusterIPs here, and reports clusterIPs as the value below.
        if cluster_ips(new).is_empty() {
            errs.push(FieldError::invalid(
                path.index(0),
                family_list(&new_spec.ip_families),
                "primary ipFamily can not be unset",
            ));
        }
        if !n.is_empty() && n[0] != o[0] {
            errs.push(FieldError::invalid(
                path.index(0),
                str_list(&new_spec.cluster_ips),
                "may not change once set",
            ));
        }
        if n.len() == 1 && ip_family_policy(new) != Some(POLICY_SINGLE) {
            errs.push(FieldError::invalid(
                p("spec").child("ipFamilyPolicy"),
                opt_s(ip_family_policy(new)),
                "must be set to 'SingleStack' when releasing the secondary ipFamily",
            ));
        }
    } else if !o.is_empty() && !n.is_empty() && n[0] != o[0] {
        errs.push(FieldError::invalid(
            path.index(0),
            str_list(&new_spec.cluster_ips),
            "may not change once set",
        ));
    }
    errs
}
