//! A container's environment, resolved as kubelet does: service links, `envFrom`, then `env`
//! in order, with downward-API `fieldRef`/`resourceFieldRef`, ConfigMap and Secret keys, and
//! `$(VAR)` expansion against the variables defined before.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, Service};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// The PATH a container gets when its spec does not set one (an image's usual default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What environment resolution needs beyond the container spec.
pub struct EnvContext<'a> {
    pub pod: &'a Pod,
    pub node_name: &'a str,
    pub host_ips: &'a [IpAddr],
    pub pod_ips: &'a [IpAddr],
    /// The node's allocatable CPU (cores) and memory (bytes): the downward API's value of an
    /// unset limit.
    pub node_cpu: f64,
    pub node_memory: f64,
    /// ConfigMaps and Secrets of the pod's namespace by name (those the pod references).
    pub config_maps: &'a HashMap<String, ConfigMap>,
    pub secrets: &'a HashMap<String, Secret>,
    /// Service link variables (see `service_env_vars`).
    pub service_env: &'a [(String, String)],
}

/// Why a container's environment cannot be built (kubelet's `CreateContainerConfigError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EnvError(pub String);

/// Expands `$(VAR)` references from `vars`; `$$` is an escaped `$`; unknown references and
/// unterminated ones are kept as written (Kubernetes' expansion rules).
pub fn expand(input: &str, vars: &dyn Fn(&str) -> Option<String>) -> String {
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut i = 0;
    let mut literal_start = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && i + 1 < bytes.len() {
            match bytes[i + 1] {
                b'$' => {
                    out.push_str(&input[literal_start..i]);
                    out.push('$');
                    i += 2;
                    literal_start = i;
                    continue;
                }
                b'(' => {
                    if let Some(close) = input[i + 2..].find(')') {
                        let name = &input[i + 2..i + 2 + close];
                        out.push_str(&input[literal_start..i]);
                        match vars(name) {
                            Some(v) => out.push_str(&v),
                            None => out.push_str(&input[i..i + 3 + close]),
                        }
                        i += 3 + close;
                        literal_start = i;
                        continue;
                    }
                }
                _ => {}
            }
        }
        i += 1;
    }
    out.push_str(&input[literal_start..]);
    out
}

/// Docker-link style variables for the services a pod sees (`WEB_SERVICE_HOST`, ...), from
/// services with a cluster IP. Later services do not override earlier names.
pub fn service_env_vars(services: &[Service]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for svc in services {
        let Some(spec) = svc.spec.as_ref() else {
            continue;
        };
        let Some(ip) = spec.cluster_ip.as_deref() else {
            continue;
        };
        if ip.is_empty() || ip == "None" {
            continue;
        }
        let name = svc
            .metadata
            .name
            .as_deref()
            .unwrap_or_default()
            .to_uppercase()
            .replace('-', "_");
        let ports = spec.ports.clone().unwrap_or_default();
        out.push((format!("{name}_SERVICE_HOST"), ip.to_string()));
        let Some(first) = ports.first() else { continue };
        out.push((format!("{name}_SERVICE_PORT"), first.port.to_string()));
        for p in &ports {
            if let Some(pn) = p.name.as_deref().filter(|n| !n.is_empty()) {
                out.push((
                    format!(
                        "{name}_SERVICE_PORT_{}",
                        pn.to_uppercase().replace('-', "_")
                    ),
                    p.port.to_string(),
                ));
            }
        }
        let proto = |p: &k8s_openapi::api::core::v1::ServicePort| {
            p.protocol.clone().unwrap_or_else(|| "TCP".to_string())
        };
        let host = if ip.contains(':') {
            format!("[{ip}]")
        } else {
            ip.to_string()
        };
        out.push((
            format!("{name}_PORT"),
            format!("{}://{host}:{}", proto(first).to_lowercase(), first.port),
        ));
        for p in &ports {
            let pr = proto(p);
            let prefix = format!("{name}_PORT_{}_{}", p.port, pr.to_uppercase());
            out.push((
                prefix.clone(),
                format!("{}://{host}:{}", pr.to_lowercase(), p.port),
            ));
            out.push((format!("{prefix}_PROTO"), pr.to_lowercase()));
            out.push((format!("{prefix}_PORT"), p.port.to_string()));
            out.push((format!("{prefix}_ADDR"), ip.to_string()));
        }
    }
    out
}

/// Parses a resource quantity into base units (cores, bytes).
pub fn parse_quantity(q: &str) -> Option<f64> {
    let q = q.trim();
    let suffixes: [(&str, f64); 15] = [
        ("Ki", 1024f64),
        ("Mi", 1024f64.powi(2)),
        ("Gi", 1024f64.powi(3)),
        ("Ti", 1024f64.powi(4)),
        ("Pi", 1024f64.powi(5)),
        ("Ei", 1024f64.powi(6)),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    for (suffix, mult) in suffixes {
        if let Some(num) = q.strip_suffix(suffix) {
            return num.parse::<f64>().ok().map(|n| n * mult);
        }
    }
    q.parse::<f64>().ok()
}

fn field_value(path: &str, ctx: &EnvContext<'_>) -> Result<String, EnvError> {
    let meta = &ctx.pod.metadata;
    let spec = ctx.pod.spec.as_ref();
    let join = |ips: &[IpAddr]| {
        ips.iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let from_map = |map: &Option<BTreeMap<String, String>>, key: &str| {
        map.as_ref()
            .and_then(|m| m.get(key).cloned())
            .unwrap_or_default()
    };
    let subscript = |prefix: &str| -> Option<String> {
        let rest = path.strip_prefix(prefix)?.strip_prefix("['")?;
        rest.strip_suffix("']").map(str::to_string)
    };
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => spec
            .and_then(|s| s.node_name.clone())
            .unwrap_or_else(|| ctx.node_name.to_string()),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".to_string()),
        "status.hostIP" => ctx
            .host_ips
            .first()
            .map(|i| i.to_string())
            .unwrap_or_default(),
        "status.hostIPs" => join(ctx.host_ips),
        "status.podIP" => ctx
            .pod_ips
            .first()
            .map(|i| i.to_string())
            .unwrap_or_default(),
        "status.podIPs" => join(ctx.pod_ips),
        _ => {
            if let Some(k) = subscript("metadata.labels") {
                from_map(&meta.labels, &k)
            } else if let Some(k) = subscript("metadata.annotations") {
                from_map(&meta.annotations, &k)
            } else {
                return Err(EnvError(format!("unsupported fieldPath: {path}")));
            }
        }
    })
}

fn resource_value(
    container: &Container,
    resource: &str,
    divisor: Option<&Quantity>,
    ctx: &EnvContext<'_>,
) -> Result<String, EnvError> {
    let res = container.resources.as_ref();
    let get = |which: &str, name: &str| -> Option<f64> {
        let map = match which {
            "limits" => res.and_then(|r| r.limits.as_ref()),
            _ => res.and_then(|r| r.requests.as_ref()),
        };
        map.and_then(|m| m.get(name))
            .and_then(|q| parse_quantity(&q.0))
    };
    let (which, name) = resource
        .split_once('.')
        .ok_or_else(|| EnvError(format!("unsupported container resource: {resource}")))?;
    let value = match (which, name) {
        ("limits", "cpu") => get("limits", "cpu").unwrap_or(ctx.node_cpu),
        ("limits", "memory") => get("limits", "memory").unwrap_or(ctx.node_memory),
        ("limits", "ephemeral-storage") => get("limits", "ephemeral-storage").unwrap_or(0.0),
        // An unset request defaults to the limit, as the API server defaults it.
        ("requests", "cpu") => get("requests", "cpu")
            .or_else(|| get("limits", "cpu"))
            .unwrap_or(0.0),
        ("requests", "memory") => get("requests", "memory")
            .or_else(|| get("limits", "memory"))
            .unwrap_or(0.0),
        ("requests", "ephemeral-storage") => get("requests", "ephemeral-storage").unwrap_or(0.0),
        _ => {
            return Err(EnvError(format!(
                "unsupported container resource: {resource}"
            )))
        }
    };
    let divisor = divisor
        .and_then(|d| parse_quantity(&d.0))
        .filter(|d| *d > 0.0)
        .unwrap_or(1.0);
    // Rounded up, and at least 1 for a non-zero CPU value (kubelet's convertResourceCPUToString).
    let mut n = (value / divisor).ceil();
    if name == "cpu" && value > 0.0 && n < 1.0 {
        n = 1.0;
    }
    Ok(format!("{}", n as i64))
}

/// A valid environment variable name (C identifier-like, as kubelet's envFrom check accepts).
fn is_env_var_name(n: &str) -> bool {
    !n.is_empty()
        && !n.as_bytes()[0].is_ascii_digit()
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

/// The container's environment, in definition order (a later definition of a name replaces
/// the earlier value in place).
pub fn container_env(
    container: &Container,
    ctx: &EnvContext<'_>,
) -> Result<Vec<(String, String)>, EnvError> {
    let ns = ctx.pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |env: &mut Vec<(String, String)>, k: String, v: String| {
        if let Some(e) = env.iter_mut().find(|(n, _)| *n == k) {
            e.1 = v;
        } else {
            env.push((k, v));
        }
    };
    for (k, v) in ctx.service_env {
        set(&mut env, k.clone(), v.clone());
    }
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(r) = &from.config_map_ref {
            match ctx.config_maps.get(&r.name) {
                Some(cm) => {
                    for (k, v) in cm.data.iter().flatten() {
                        let key = format!("{prefix}{k}");
                        if is_env_var_name(&key) {
                            set(&mut env, key, v.clone());
                        }
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(EnvError(format!("configmap \"{}\" not found", r.name))),
            }
        }
        if let Some(r) = &from.secret_ref {
            match ctx.secrets.get(&r.name) {
                Some(s) => {
                    for (k, v) in s.data.iter().flatten() {
                        let key = format!("{prefix}{k}");
                        if is_env_var_name(&key) {
                            set(&mut env, key, String::from_utf8_lossy(&v.0).into_owned());
                        }
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(EnvError(format!("secret \"{}\" not found", r.name))),
            }
        }
    }
    for var in container.env.iter().flatten() {
        let value = match &var.value_from {
            None => {
                let raw = var.value.clone().unwrap_or_default();
                let snapshot = env.clone();
                expand(&raw, &|name| {
                    snapshot
                        .iter()
                        .find(|(n, _)| n == name)
                        .map(|(_, v)| v.clone())
                })
            }
            Some(src) => {
                if let Some(f) = &src.field_ref {
                    field_value(&f.field_path, ctx)?
                } else if let Some(r) = &src.resource_field_ref {
                    let target = match r.container_name.as_deref().filter(|n| !n.is_empty()) {
                        Some(n) if n != container.name => ctx
                            .pod
                            .spec
                            .iter()
                            .flat_map(|s| s.containers.iter())
                            .find(|c| c.name == n)
                            .unwrap_or(container),
                        _ => container,
                    };
                    resource_value(target, &r.resource, r.divisor.as_ref(), ctx)?
                } else if let Some(r) = &src.config_map_key_ref {
                    match ctx.config_maps.get(&r.name) {
                        Some(cm) => match cm.data.as_ref().and_then(|d| d.get(&r.key)) {
                            Some(v) => v.clone(),
                            None if r.optional == Some(true) => continue,
                            None => {
                                return Err(EnvError(format!(
                                    "couldn't find key {} in ConfigMap {ns}/{}",
                                    r.key, r.name
                                )))
                            }
                        },
                        None if r.optional == Some(true) => continue,
                        None => {
                            return Err(EnvError(format!("configmap \"{}\" not found", r.name)))
                        }
                    }
                } else if let Some(r) = &src.secret_key_ref {
                    match ctx.secrets.get(&r.name) {
                        Some(s) => match s.data.as_ref().and_then(|d| d.get(&r.key)) {
                            Some(v) => String::from_utf8_lossy(&v.0).into_owned(),
                            None if r.optional == Some(true) => continue,
                            None => {
                                return Err(EnvError(format!(
                                    "couldn't find key {} in Secret {ns}/{}",
                                    r.key, r.name
                                )))
                            }
                        },
                        None if r.optional == Some(true) => continue,
                        None => return Err(EnvError(format!("secret \"{}\" not found", r.name))),
                    }
                } else {
                    String::new()
                }
            }
        };
        set(&mut env, var.name.clone(), value);
    }
    Ok(env)
}

/// The names of ConfigMaps and Secrets a container's environment refers to.
pub fn referenced_objects(container: &Container) -> (Vec<String>, Vec<String>) {
    let mut cms = Vec::new();
    let mut secrets = Vec::new();
    for from in container.env_from.iter().flatten() {
        if let Some(r) = &from.config_map_ref {
            cms.push(r.name.clone());
        }
        if let Some(r) = &from.secret_ref {
            secrets.push(r.name.clone());
        }
    }
    for var in container.env.iter().flatten() {
        if let Some(src) = &var.value_from {
            if let Some(r) = &src.config_map_key_ref {
                cms.push(r.name.clone());
            }
            if let Some(r) = &src.secret_key_ref {
                secrets.push(r.name.clone());
            }
        }
    }
    cms.sort();
    cms.dedup();
    secrets.sort();
    secrets.dedup();
    (cms, secrets)
}

/// The process environment: the container's variables plus what a container runtime adds
/// (PATH, HOSTNAME, HOME, TERM for a tty) when the spec does not set them.
pub fn process_env(
    container_env: &[(String, String)],
    hostname: &str,
    tty: bool,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let has = |k: &str| container_env.iter().any(|(n, _)| n == k);
    if !has("PATH") {
        out.push(("PATH".into(), DEFAULT_PATH.into()));
    }
    if !has("HOSTNAME") {
        out.push(("HOSTNAME".into(), hostname.into()));
    }
    if tty && !has("TERM") {
        out.push(("TERM".into(), "xterm".into()));
    }
    out.extend(container_env.iter().cloned());
    if !has("HOME") {
        out.push(("HOME".into(), "/root".into()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ConfigMapKeySelector, EnvVar, EnvVarSource, ObjectFieldSelector, PodSpec,
        ResourceFieldSelector, ResourceRequirements, ServicePort, ServiceSpec,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("web-1".into()),
                namespace: Some("dev".into()),
                uid: Some("1234-uid".into()),
                labels: Some(BTreeMap::from([("app".to_string(), "web".to_string())])),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some("demo-worker".into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn field(name: &str, path: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: path.into(),
                    api_version: None,
                }),
                ..Default::default()
            }),
            value: None,
        }
    }

    fn value(name: &str, v: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: Some(v.into()),
            value_from: None,
        }
    }

    fn resolve(
        c: &Container,
        p: &Pod,
        cms: &HashMap<String, ConfigMap>,
    ) -> Result<Vec<(String, String)>, EnvError> {
        let host = ["172.18.0.3".parse().unwrap()];
        let pod_ips = ["10.244.1.2".parse().unwrap()];
        let secrets = HashMap::new();
        let svc = vec![(
            "KUBERNETES_SERVICE_HOST".to_string(),
            "10.96.0.1".to_string(),
        )];
        let ctx = EnvContext {
            pod: p,
            node_name: "demo-worker",
            host_ips: &host,
            pod_ips: &pod_ips,
            node_cpu: 2.0,
            node_memory: 8.0 * 1024.0 * 1024.0 * 1024.0,
            config_maps: cms,
            secrets: &secrets,
            service_env: &svc,
        };
        container_env(c, &ctx)
    }

    #[test]
    fn downward_api_fields() {
        let c = Container {
            name: "c".into(),
            env: Some(vec![
                field("NODE_NAME", "spec.nodeName"),
                field("POD_NAME", "metadata.name"),
                field("POD_NAMESPACE", "metadata.namespace"),
                field("POD_UID", "metadata.uid"),
                field("POD_IP", "status.podIP"),
                field("HOST_IP", "status.hostIP"),
                field("SA", "spec.serviceAccountName"),
                field("APP", "metadata.labels['app']"),
            ]),
            ..Default::default()
        };
        let env = resolve(&c, &pod(), &HashMap::new()).unwrap();
        let get = |k: &str| env.iter().find(|(n, _)| n == k).unwrap().1.clone();
        assert_eq!(get("NODE_NAME"), "demo-worker");
        assert_eq!(get("POD_NAME"), "web-1");
        assert_eq!(get("POD_NAMESPACE"), "dev");
        assert_eq!(get("POD_UID"), "1234-uid");
        assert_eq!(get("POD_IP"), "10.244.1.2");
        assert_eq!(get("HOST_IP"), "172.18.0.3");
        assert_eq!(get("SA"), "default");
        assert_eq!(get("APP"), "web");
        assert_eq!(get("KUBERNETES_SERVICE_HOST"), "10.96.0.1");
        let bad = Container {
            name: "c".into(),
            env: Some(vec![field("X", "spec.bogus")]),
            ..Default::default()
        };
        assert_eq!(
            resolve(&bad, &pod(), &HashMap::new()),
            Err(EnvError("unsupported fieldPath: spec.bogus".into()))
        );
    }

    #[test]
    fn values_expand_earlier_variables() {
        let c = Container {
            name: "c".into(),
            env: Some(vec![
                field("POD_NAME", "metadata.name"),
                value("GREETING", "hello $(POD_NAME) $(MISSING) $$(POD_NAME)"),
                value("POD_NAME", "override"),
            ]),
            ..Default::default()
        };
        let env = resolve(&c, &pod(), &HashMap::new()).unwrap();
        let names: Vec<_> = env.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            vec!["KUBERNETES_SERVICE_HOST", "POD_NAME", "GREETING"]
        );
        assert_eq!(env[1].1, "override");
        assert_eq!(env[2].1, "hello web-1 $(MISSING) $(POD_NAME)");
    }

    #[test]
    fn expansion_edge_cases() {
        let vars = |n: &str| (n == "A").then(|| "x".to_string());
        assert_eq!(expand("$(A)$(A)", &vars), "xx");
        assert_eq!(expand("$(A", &vars), "$(A");
        assert_eq!(expand("a$b$", &vars), "a$b$");
        assert_eq!(expand("$$$(A)", &vars), "$x");
        assert_eq!(expand("é$(A)é", &vars), "éxé");
    }

    #[test]
    fn config_map_keys_and_missing_ones() {
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some("cfg".into()),
                ..Default::default()
            },
            data: Some(BTreeMap::from([("mode".to_string(), "fast".to_string())])),
            ..Default::default()
        };
        let cms = HashMap::from([("cfg".to_string(), cm)]);
        let key_ref = |key: &str, optional: Option<bool>| EnvVar {
            name: "MODE".into(),
            value: None,
            value_from: Some(EnvVarSource {
                config_map_key_ref: Some(ConfigMapKeySelector {
                    name: "cfg".into(),
                    key: key.into(),
                    optional,
                }),
                ..Default::default()
            }),
        };
        let c = Container {
            name: "c".into(),
            env: Some(vec![key_ref("mode", None)]),
            ..Default::default()
        };
        assert_eq!(
            resolve(&c, &pod(), &cms).unwrap()[1],
            ("MODE".into(), "fast".into())
        );
        let c = Container {
            name: "c".into(),
            env: Some(vec![key_ref("nope", None)]),
            ..Default::default()
        };
        assert_eq!(
            resolve(&c, &pod(), &cms),
            Err(EnvError(
                "couldn't find key nope in ConfigMap dev/cfg".into()
            ))
        );
        let c = Container {
            name: "c".into(),
            env: Some(vec![key_ref("nope", Some(true))]),
            ..Default::default()
        };
        assert_eq!(resolve(&c, &pod(), &cms).unwrap().len(), 1);
        assert_eq!(
            resolve(&c, &pod(), &HashMap::new()),
            Ok(vec![(
                "KUBERNETES_SERVICE_HOST".to_string(),
                "10.96.0.1".to_string()
            )])
        );
    }

    #[test]
    fn resource_field_refs() {
        let mut limits = BTreeMap::new();
        limits.insert("memory".to_string(), Quantity("128Mi".into()));
        let res = |name: &str, resource: &str, divisor: Option<&str>| EnvVar {
            name: name.into(),
            value: None,
            value_from: Some(EnvVarSource {
                resource_field_ref: Some(ResourceFieldSelector {
                    resource: resource.into(),
                    divisor: divisor.map(|d| Quantity(d.into())),
                    container_name: None,
                }),
                ..Default::default()
            }),
        };
        let c = Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                limits: Some(limits),
                ..Default::default()
            }),
            env: Some(vec![
                res("MEM", "limits.memory", Some("1Mi")),
                res("CPU", "limits.cpu", None),
                res("CPU_M", "limits.cpu", Some("1m")),
            ]),
            ..Default::default()
        };
        let env = resolve(&c, &pod(), &HashMap::new()).unwrap();
        assert_eq!(env[1].1, "128");
        assert_eq!(env[2].1, "2");
        assert_eq!(env[3].1, "2000");
        assert_eq!(parse_quantity("500m"), Some(0.5));
        assert_eq!(parse_quantity("1Gi"), Some(1073741824.0));
        assert_eq!(parse_quantity("1.5"), Some(1.5));
    }

    #[test]
    fn service_links() {
        let svc = Service {
            metadata: ObjectMeta {
                name: Some("nginx-service".into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                cluster_ip: Some("10.96.12.34".into()),
                ports: Some(vec![ServicePort {
                    name: Some("http".into()),
                    port: 80,
                    protocol: Some("TCP".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let headless = Service {
            metadata: ObjectMeta {
                name: Some("db".into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                cluster_ip: Some("None".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let vars = service_env_vars(&[svc, headless]);
        let expected: Vec<(String, String)> = [
            ("NGINX_SERVICE_SERVICE_HOST", "10.96.12.34"),
            ("NGINX_SERVICE_SERVICE_PORT", "80"),
            ("NGINX_SERVICE_SERVICE_PORT_HTTP", "80"),
            ("NGINX_SERVICE_PORT", "tcp://10.96.12.34:80"),
            ("NGINX_SERVICE_PORT_80_TCP", "tcp://10.96.12.34:80"),
            ("NGINX_SERVICE_PORT_80_TCP_PROTO", "tcp"),
            ("NGINX_SERVICE_PORT_80_TCP_PORT", "80"),
            ("NGINX_SERVICE_PORT_80_TCP_ADDR", "10.96.12.34"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(vars, expected);
    }

    #[test]
    fn process_env_adds_runtime_defaults() {
        let env = process_env(&[("A".into(), "1".into())], "web-1", true);
        assert_eq!(
            env,
            vec![
                ("PATH".to_string(), DEFAULT_PATH.to_string()),
                ("HOSTNAME".to_string(), "web-1".to_string()),
                ("TERM".to_string(), "xterm".to_string()),
                ("A".to_string(), "1".to_string()),
                ("HOME".to_string(), "/root".to_string()),
            ]
        );
    }
}
