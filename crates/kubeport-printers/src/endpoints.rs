//! Endpoints (NAME, ENDPOINTS, AGE) and EndpointSlice (NAME, ADDRESSTYPE, PORTS,
//! ENDPOINTS, AGE).

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::age;
use crate::json::{array, creation_timestamp, get, i64_or_zero, name, s, str_or_empty};

/// How many items a list cell shows before ` + N more...`.
const MAX_SHOWN: usize = 3;

pub(crate) fn endpoints_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![
        s(name(obj)),
        s(format_endpoints(obj)),
        s(age(creation_timestamp(obj), now)),
    ]
}

pub(crate) fn endpoint_slice_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![
        s(name(obj)),
        s(str_or_empty(obj, &["addressType"])),
        s(format_slice_ports(array(obj, &["ports"]))),
        s(format_slice_endpoints(array(obj, &["endpoints"]))),
        s(age(creation_timestamp(obj), now)),
    ]
}

/// Go's `net.JoinHostPort`: IPv6 addresses get brackets.
fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Ready addresses as `ip:port` for every subset × port × address (bare IPs for port-less
/// subsets), at most three, then ` + N more...`. Not-ready addresses are not shown.
fn format_endpoints(obj: &Value) -> String {
    let subsets = array(obj, &["subsets"]);
    if subsets.is_empty() {
        return "<none>".to_string();
    }
    let mut list: Vec<String> = Vec::new();
    let mut more = false;
    let mut count = 0usize;
    for subset in subsets {
        let addresses = array(subset, &["addresses"]);
        let ports = array(subset, &["ports"]);
        if ports.is_empty() {
            // Headless services may have no ports.
            count += addresses.len();
            for addr in addresses {
                if list.len() == MAX_SHOWN {
                    more = true;
                    break;
                }
                list.push(str_or_empty(addr, &["ip"]).to_string());
            }
            continue;
        }
        for port in ports {
            count += addresses.len();
            let number = i64_or_zero(port, &["port"]);
            for addr in addresses {
                if list.len() == MAX_SHOWN {
                    more = true;
                    break;
                }
                list.push(join_host_port(str_or_empty(addr, &["ip"]), number));
            }
        }
    }
    let joined = list.join(",");
    if more {
        format!("{joined} + {} more...", count - MAX_SHOWN)
    } else {
        joined
    }
}

/// Up to three ports: the number, else the name, else `*` (all ports).
fn format_slice_ports(ports: &[Value]) -> String {
    let shown = ports
        .iter()
        .take(MAX_SHOWN)
        .map(|p| match get(p, &["port"]).and_then(Value::as_i64) {
            Some(n) => n.to_string(),
            None => match get(p, &["name"]).and_then(Value::as_str) {
                Some(n) => n.to_string(),
                None => "*".to_string(),
            },
        })
        .collect();
    list_with_more(shown, ports.len())
}

/// Up to three addresses across all endpoints.
fn format_slice_endpoints(endpoints: &[Value]) -> String {
    let all: Vec<&str> = endpoints
        .iter()
        .flat_map(|e| array(e, &["addresses"]))
        .map(|a| a.as_str().unwrap_or(""))
        .collect();
    let shown = all.iter().take(MAX_SHOWN).map(|a| a.to_string()).collect();
    list_with_more(shown, all.len())
}

/// `listWithMoreString`: `a,b,c + N more...`, or `<unset>` for an empty list.
fn list_with_more(shown: Vec<String>, total: usize) -> String {
    let joined = shown.join(",");
    if total > MAX_SHOWN {
        return format!("{joined} + {} more...", total - MAX_SHOWN);
    }
    if joined.is_empty() {
        return "<unset>".to_string();
    }
    joined
}

#[cfg(test)]
mod tests {
    use crate::{cells, columns};
    use chrono::{DateTime, Utc};
    use serde_json::{json, Value};

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-05-10T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn ep(obj: &Value) -> String {
        cells("", "endpoints", obj, now())[1]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn slice(obj: &Value) -> Vec<Value> {
        cells("discovery.k8s.io", "endpointslices", obj, now())
    }

    #[test]
    fn endpoints_columns() {
        let names: Vec<&str> = columns("", "endpoints").iter().map(|c| c.name).collect();
        assert_eq!(names, ["Name", "Endpoints", "Age"]);
        let names: Vec<&str> = columns("discovery.k8s.io", "endpointslices")
            .iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(names, ["Name", "AddressType", "Ports", "Endpoints", "Age"]);
    }

    #[test]
    fn six_addresses_show_three_and_more() {
        // The nginx-service from the kind article (seed 001).
        let ips = [
            "10.244.1.2",
            "10.244.1.3",
            "10.244.1.4",
            "10.244.2.2",
            "10.244.2.3",
            "10.244.2.4",
        ];
        let obj = json!({
            "metadata": {"name": "nginx-service", "creationTimestamp": "2024-05-10T11:59:55Z"},
            "subsets": [{"addresses": ips.iter().map(|ip| json!({"ip": ip})).collect::<Vec<_>>(),
                         "ports": [{"port": 80, "protocol": "TCP"}]}]
        });
        let c = cells("", "endpoints", &obj, now());
        assert_eq!(c[0], "nginx-service");
        assert_eq!(
            c[1],
            "10.244.1.2:80,10.244.1.3:80,10.244.1.4:80 + 3 more..."
        );
        assert_eq!(c[2], "5s");
    }

    #[test]
    fn seed_two_endpoints() {
        let obj = json!({"metadata": {"name": "node-port"},
            "subsets": [{"addresses": [{"ip": "192.168.69.246"}, {"ip": "192.168.79.106"}],
                         "ports": [{"name": "node-port", "port": 80, "protocol": "TCP"}]}]});
        assert_eq!(ep(&obj), "192.168.69.246:80,192.168.79.106:80");
    }

    #[test]
    fn exactly_three_has_no_suffix() {
        let obj = json!({"metadata": {"name": "e"},
            "subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}, {"ip": "10.0.0.3"}],
                         "ports": [{"port": 8080}]}]});
        assert_eq!(ep(&obj), "10.0.0.1:8080,10.0.0.2:8080,10.0.0.3:8080");
    }

    #[test]
    fn multiple_ports_multiply_and_ipv6_brackets() {
        let obj = json!({"metadata": {"name": "e"},
            "subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}],
                         "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}]}]});
        assert_eq!(
            ep(&obj),
            "10.0.0.1:80,[fd00::1]:80,10.0.0.1:443 + 1 more..."
        );
    }

    #[test]
    fn headless_portless_and_empty() {
        let portless = json!({"metadata": {"name": "e"},
            "subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}]}]});
        assert_eq!(ep(&portless), "10.0.0.1,10.0.0.2");
        assert_eq!(ep(&json!({"metadata": {"name": "e"}})), "<none>");
        assert_eq!(
            ep(&json!({"metadata": {"name": "e"}, "subsets": []})),
            "<none>"
        );
        // Only not-ready addresses: a subset exists but nothing is listed.
        let not_ready = json!({"metadata": {"name": "e"},
            "subsets": [{"notReadyAddresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}]});
        assert_eq!(ep(&not_ready), "");
    }

    #[test]
    fn endpoint_slice_cells() {
        let obj = json!({
            "metadata": {"name": "nginx-service-abcde", "creationTimestamp": "2024-05-10T11:00:00Z"},
            "addressType": "IPv4",
            "ports": [{"name": "", "port": 80, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": ["10.244.1.2"], "conditions": {"ready": true}},
                {"addresses": ["10.244.1.3"]}, {"addresses": ["10.244.1.4"]},
                {"addresses": ["10.244.2.2"]}]
        });
        assert_eq!(
            slice(&obj),
            [
                "nginx-service-abcde",
                "IPv4",
                "80",
                "10.244.1.2,10.244.1.3,10.244.1.4 + 1 more...",
                "60m"
            ]
        );
    }

    #[test]
    fn endpoint_slice_ports_and_unset() {
        let obj = json!({
            "metadata": {"name": "s"},
            "addressType": "IPv6",
            "ports": [{"name": "dns"}, {}, {"port": 53}, {"port": 9153}, {"port": 8080}],
        });
        let c = slice(&obj);
        assert_eq!(c[2], "dns,*,53 + 2 more...");
        assert_eq!(c[3], "<unset>");
        let empty =
            json!({"metadata": {"name": "s"}, "addressType": "IPv4", "ports": [], "endpoints": []});
        let c = slice(&empty);
        assert_eq!(c[2], "<unset>");
        assert_eq!(c[3], "<unset>");
    }
}
