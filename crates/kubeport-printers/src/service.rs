//! Service: NAME, TYPE, CLUSTER-IP, EXTERNAL-IP, PORT(S), AGE, SELECTOR*.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::json::{array, creation_timestamp, get, i64_or_zero, name, opt_str, s, str_or_empty};
use crate::{age, format_labels};

pub(crate) fn cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    // Absent type: v1 defaulting would have stored ClusterIP.
    let svc_type = opt_str(obj, &["spec", "type"]).unwrap_or("ClusterIP");
    let mut ports = port_string(array(obj, &["spec", "ports"]));
    if ports.is_empty() {
        ports = "<none>".to_string();
    }
    vec![
        s(name(obj)),
        s(svc_type),
        s(cluster_ip(obj)),
        s(external_ip(obj, svc_type)),
        s(ports),
        s(age(creation_timestamp(obj), now)),
        s(format_labels(get(obj, &["spec", "selector"]))),
    ]
}

/// `clusterIPs[0]` (which defaulting fills from `clusterIP`), else `<none>`. A headless
/// Service shows its literal `None`.
fn cluster_ip(obj: &Value) -> String {
    let from_list = array(obj, &["spec", "clusterIPs"])
        .first()
        .and_then(Value::as_str);
    match from_list.or_else(|| opt_str(obj, &["spec", "clusterIP"]).filter(|ip| !ip.is_empty())) {
        Some(ip) => ip.to_string(),
        None => "<none>".to_string(),
    }
}

fn external_ips(obj: &Value) -> Vec<&str> {
    array(obj, &["spec", "externalIPs"])
        .iter()
        .filter_map(Value::as_str)
        .collect()
}

fn external_ip(obj: &Value, svc_type: &str) -> String {
    match svc_type {
        "ClusterIP" | "NodePort" => {
            let ips = external_ips(obj);
            if ips.is_empty() {
                "<none>".to_string()
            } else {
                ips.join(",")
            }
        }
        "LoadBalancer" => {
            // The server always prints wide, so the 16-character clipping never applies.
            let lb = load_balancer_ingress(obj);
            let ips = external_ips(obj);
            if !ips.is_empty() {
                let mut all: Vec<&str> = lb.iter().map(String::as_str).collect();
                all.extend(ips);
                return all.join(",");
            }
            if lb.is_empty() {
                "<pending>".to_string()
            } else {
                lb.into_iter().collect::<Vec<_>>().join(",")
            }
        }
        "ExternalName" => str_or_empty(obj, &["spec", "externalName"]).to_string(),
        _ => "<unknown>".to_string(),
    }
}

/// The load balancer's ingress points: each entry's `ip`, else its `hostname`,
/// de-duplicated and sorted.
fn load_balancer_ingress(obj: &Value) -> BTreeSet<String> {
    array(obj, &["status", "loadBalancer", "ingress"])
        .iter()
        .filter_map(|ing| {
            let ip = str_or_empty(ing, &["ip"]);
            let host = str_or_empty(ing, &["hostname"]);
            if !ip.is_empty() {
                Some(ip.to_string())
            } else if !host.is_empty() {
                Some(host.to_string())
            } else {
                None
            }
        })
        .collect()
}

/// `port/PROTO` or `port:nodePort/PROTO`, joined with `,`; the targetPort is never shown.
fn port_string(ports: &[Value]) -> String {
    ports
        .iter()
        .map(|p| {
            let port = i64_or_zero(p, &["port"]);
            let protocol = opt_str(p, &["protocol"]).unwrap_or("TCP");
            let node_port = i64_or_zero(p, &["nodePort"]);
            if node_port > 0 {
                format!("{port}:{node_port}/{protocol}")
            } else {
                format!("{port}/{protocol}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use crate::cells as all_cells;
    use crate::columns;
    use chrono::{DateTime, Utc};
    use serde_json::{json, Value};

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-05-10T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn svc_cells(obj: &Value) -> Vec<Value> {
        all_cells("", "services", obj, now())
    }

    fn strings(cells: &[Value]) -> Vec<&str> {
        cells.iter().map(|c| c.as_str().unwrap()).collect()
    }

    #[test]
    fn column_headers() {
        let cols = columns("", "services");
        let names: Vec<&str> = cols.iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            [
                "Name",
                "Type",
                "Cluster-IP",
                "External-IP",
                "Port(s)",
                "Age",
                "Selector"
            ]
        );
        assert_eq!(cols[0].format, "name");
        assert!(cols[..6].iter().all(|c| c.priority == 0));
        assert_eq!(cols[6].priority, 1);
    }

    #[test]
    fn seed_node_port_service() {
        // `kubectl get svc -o wide` from the NodePort article (seed 002).
        let obj = json!({
            "metadata": {"name": "node-port", "namespace": "default",
                         "creationTimestamp": "2024-05-10T11:59:47Z"},
            "spec": {
                "type": "NodePort",
                "clusterIP": "10.101.179.255", "clusterIPs": ["10.101.179.255"],
                "ports": [{"name": "node-port", "protocol": "TCP", "port": 8080,
                           "targetPort": 80, "nodePort": 30001}],
                "selector": {"app": "nginx-dep"}
            }
        });
        assert_eq!(
            strings(&svc_cells(&obj)),
            [
                "node-port",
                "NodePort",
                "10.101.179.255",
                "<none>",
                "8080:30001/TCP",
                "13s",
                "app=nginx-dep"
            ]
        );
    }

    #[test]
    fn seed_cluster_ip_services() {
        let cluster_ip = json!({
            "metadata": {"name": "cluster-ip", "creationTimestamp": "2024-05-07T06:00:00Z"},
            "spec": {"type": "ClusterIP", "clusterIPs": ["10.101.47.213"],
                     "ports": [{"port": 8080, "protocol": "TCP", "targetPort": 80}],
                     "selector": {"app": "nginx-dep"}}
        });
        assert_eq!(
            strings(&svc_cells(&cluster_ip)),
            [
                "cluster-ip",
                "ClusterIP",
                "10.101.47.213",
                "<none>",
                "8080/TCP",
                "3d6h",
                "app=nginx-dep"
            ]
        );
        let external = json!({
            "metadata": {"name": "external-ip", "creationTimestamp": "2024-05-08T13:00:00Z"},
            "spec": {"type": "ClusterIP", "clusterIPs": ["10.98.225.181"],
                     "externalIPs": ["10.20.30.20"],
                     "ports": [{"port": 8080, "protocol": "TCP"}],
                     "selector": {"app": "nginx-dep"}}
        });
        assert_eq!(
            strings(&svc_cells(&external)),
            [
                "external-ip",
                "ClusterIP",
                "10.98.225.181",
                "10.20.30.20",
                "8080/TCP",
                "47h",
                "app=nginx-dep"
            ]
        );
        let kubernetes = json!({
            "metadata": {"name": "kubernetes", "creationTimestamp": "2024-03-30T08:00:00Z"},
            "spec": {"type": "ClusterIP", "clusterIPs": ["10.96.0.1"],
                     "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]}
        });
        assert_eq!(
            strings(&svc_cells(&kubernetes)),
            [
                "kubernetes",
                "ClusterIP",
                "10.96.0.1",
                "<none>",
                "443/TCP",
                "41d",
                "<none>"
            ]
        );
    }

    #[test]
    fn node_port_multiple_protocols() {
        let obj = json!({
            "metadata": {"name": "dns"},
            "spec": {"type": "NodePort", "clusterIPs": ["10.96.0.10"],
                     "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080},
                               {"port": 53, "protocol": "UDP", "nodePort": 30708}]}
        });
        let cells = svc_cells(&obj);
        assert_eq!(cells[4], "80:30080/TCP,53:30708/UDP");
        assert_eq!(cells[5], "<unknown>");
    }

    #[test]
    fn headless_service_shows_none() {
        let obj = json!({
            "metadata": {"name": "db"},
            "spec": {"type": "ClusterIP", "clusterIP": "None", "clusterIPs": ["None"],
                     "ports": [{"port": 5432, "protocol": "TCP"}],
                     "selector": {"tier": "db", "app": "pg"}}
        });
        let cells = svc_cells(&obj);
        assert_eq!(cells[2], "None");
        assert_eq!(cells[6], "app=pg,tier=db");
    }

    #[test]
    fn cluster_ip_fallbacks() {
        let only_singular = json!({"metadata": {"name": "a"},
            "spec": {"type": "ClusterIP", "clusterIP": "10.0.0.5"}});
        assert_eq!(svc_cells(&only_singular)[2], "10.0.0.5");
        let none = json!({"metadata": {"name": "a"}, "spec": {"type": "ClusterIP"}});
        let cells = svc_cells(&none);
        assert_eq!(cells[2], "<none>");
        assert_eq!(cells[4], "<none>");
    }

    #[test]
    fn dual_stack_shows_first_family() {
        let obj = json!({"metadata": {"name": "ds"},
            "spec": {"type": "ClusterIP", "clusterIPs": ["fd00::10", "10.96.0.20"],
                     "ports": [{"port": 80}]}});
        let cells = svc_cells(&obj);
        assert_eq!(cells[2], "fd00::10");
        // protocol defaults to TCP
        assert_eq!(cells[4], "80/TCP");
    }

    #[test]
    fn load_balancer_external_ip() {
        let pending = json!({"metadata": {"name": "lb"},
            "spec": {"type": "LoadBalancer", "clusterIPs": ["10.96.1.1"],
                     "ports": [{"port": 80, "protocol": "TCP", "nodePort": 31234}]}});
        let cells = svc_cells(&pending);
        assert_eq!(cells[3], "<pending>");
        assert_eq!(cells[4], "80:31234/TCP");

        let with_ingress = json!({"metadata": {"name": "lb"},
            "spec": {"type": "LoadBalancer"},
            "status": {"loadBalancer": {"ingress": [
                {"ip": "203.0.113.9"}, {"hostname": "lb.example.com"},
                {"ip": "198.51.100.7"}, {"ip": "203.0.113.9"}]}}});
        // Sorted, de-duplicated, and never clipped (the server prints wide).
        assert_eq!(
            svc_cells(&with_ingress)[3],
            "198.51.100.7,203.0.113.9,lb.example.com"
        );

        let with_external = json!({"metadata": {"name": "lb"},
            "spec": {"type": "LoadBalancer", "externalIPs": ["192.0.2.50"]},
            "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}]}}});
        assert_eq!(svc_cells(&with_external)[3], "203.0.113.9,192.0.2.50");

        let external_only = json!({"metadata": {"name": "lb"},
            "spec": {"type": "LoadBalancer", "externalIPs": ["192.0.2.50", "192.0.2.51"]}});
        assert_eq!(svc_cells(&external_only)[3], "192.0.2.50,192.0.2.51");
    }

    #[test]
    fn external_name_service() {
        let obj = json!({"metadata": {"name": "ext"},
            "spec": {"type": "ExternalName", "externalName": "my.database.example.com"}});
        let cells = svc_cells(&obj);
        assert_eq!(cells[1], "ExternalName");
        assert_eq!(cells[2], "<none>");
        assert_eq!(cells[3], "my.database.example.com");
        assert_eq!(cells[4], "<none>");
    }

    #[test]
    fn missing_type_is_defaulted_cluster_ip() {
        let obj = json!({"metadata": {"name": "a"},
            "spec": {"clusterIPs": ["10.0.0.1"], "externalIPs": ["1.2.3.4", "5.6.7.8"]}});
        let cells = svc_cells(&obj);
        assert_eq!(cells[1], "ClusterIP");
        assert_eq!(cells[3], "1.2.3.4,5.6.7.8");
    }
}
