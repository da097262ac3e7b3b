//! Defaulting and validation, table-driven: each case asserts the full rendered errors
//! (`<field path>: <body>`) that kube-apiserver returns for the same input.

mod common;

use common::*;
use kubeport_service::{
    prepare_create, prepare_update, set_defaults, validate_create, validate_update,
};
use serde_json::{json, Value};

/// Decoded → defaulted → prepared for create → validated, as the API server runs it (minus
/// allocation, which none of these cases needs).
fn check(spec: Value) -> Vec<String> {
    let mut s = svc(spec);
    set_defaults(&mut s);
    prepare_create(&mut s);
    rendered(&validate_create(&s, &cfg()))
}

const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

#[test]
fn create_validation_table() {
    let port80 = json!([{"port": 80}]);
    let cases: Vec<(&str, Value, Vec<String>)> = vec![
        ("valid ClusterIP", json!({"ports": port80, "selector": {"app": "web"}}), vec![]),
        ("no ports", json!({"selector": {"app": "web"}}), vec!["spec.ports: Required value".into()]),
        ("headless without ports is fine", json!({"clusterIP": "None"}), vec![]),
        (
            "unnamed ports when there are two",
            json!({"ports": [{"port": 80}, {"port": 443}]}),
            vec!["spec.ports[0].name: Required value".into(), "spec.ports[1].name: Required value".into()],
        ),
        (
            "port name must be a DNS label",
            json!({"ports": [{"name": "HTTP", "port": 80}]}),
            vec![format!("spec.ports[0].name: Invalid value: \"HTTP\": {LABEL_MSG}")],
        ),
        (
            "duplicate port names",
            json!({"ports": [{"name": "http", "port": 80}, {"name": "http", "port": 81}]}),
            vec!["spec.ports[1].name: Duplicate value: \"http\"".into()],
        ),
        (
            "port 0 (targetPort defaults to it)",
            json!({"ports": [{"port": 0}]}),
            vec![
                "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive".into(),
                "spec.ports[0].targetPort: Invalid value: 0: must be between 1 and 65535, inclusive".into(),
            ],
        ),
        (
            "port too large",
            json!({"ports": [{"port": 70000, "targetPort": 80}]}),
            vec!["spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive".into()],
        ),
        (
            "unsupported protocol",
            json!({"ports": [{"port": 80, "protocol": "HTTP"}]}),
            vec!["spec.ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"".into()],
        ),
        (
            "targetPort out of range",
            json!({"ports": [{"port": 80, "targetPort": 65536}]}),
            vec!["spec.ports[0].targetPort: Invalid value: 65536: must be between 1 and 65535, inclusive".into()],
        ),
        ("named targetPort", json!({"ports": [{"port": 80, "targetPort": "http"}]}), vec![]),
        (
            "named targetPort without a letter",
            json!({"ports": [{"port": 80, "targetPort": "8080"}]}),
            vec!["spec.ports[0].targetPort: Invalid value: \"8080\": must contain at least one letter (a-z)".into()],
        ),
        (
            "named targetPort with upper case and too long",
            json!({"ports": [{"port": 80, "targetPort": "Http-Alternative-1"}]}),
            vec![
                "spec.ports[0].targetPort: Invalid value: \"Http-Alternative-1\": must be no more than 15 characters".into(),
                "spec.ports[0].targetPort: Invalid value: \"Http-Alternative-1\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into(),
            ],
        ),
        (
            "duplicate (protocol, port)",
            json!({"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 80, "targetPort": 8080}]}),
            vec!["spec.ports[1]: Duplicate value: core.ServicePort{Name:\"\", Protocol:\"TCP\", AppProtocol:(*string)(nil), Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}, NodePort:0}".into()],
        ),
        (
            "same port number over TCP and UDP",
            json!({"ports": [{"name": "dns", "port": 53}, {"name": "dns-udp", "port": 53, "protocol": "UDP"}]}),
            vec![],
        ),
        (
            "nodePort on ClusterIP",
            json!({"ports": [{"port": 80, "nodePort": 30080}]}),
            vec!["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'".into()],
        ),
        (
            "duplicate nodePorts",
            json!({"type": "NodePort", "ports": [{"name": "a", "port": 80, "nodePort": 30000}, {"name": "b", "port": 81, "nodePort": 30000}]}),
            vec!["spec.ports[1].nodePort: Duplicate value: 30000".into()],
        ),
        (
            "clusterIPs[0] must match clusterIP",
            json!({"ports": port80, "clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.2"]}),
            vec!["spec.clusterIPs: Invalid value: []string{\"10.96.0.2\"}: first value must match `clusterIP`".into()],
        ),
        (
            "clusterIPs without clusterIP",
            json!({"ports": port80, "clusterIPs": ["10.96.0.2"]}),
            vec!["spec.clusterIPs: Invalid value: []string{\"10.96.0.2\"}: must be empty when `clusterIP` is not specified".into()],
        ),
        (
            "clusterIP not an IP",
            json!({"ports": port80, "clusterIP": "10.96.0.300"}),
            vec!["spec.clusterIPs[0]: Invalid value: \"10.96.0.300\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)".into()],
        ),
        (
            "three clusterIPs",
            json!({"ports": port80, "clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1", "fd00::1", "10.96.0.2"]}),
            vec!["spec.clusterIPs: Invalid value: []string{\"10.96.0.1\", \"fd00::1\", \"10.96.0.2\"}: may only hold up to 2 values".into()],
        ),
        (
            "two IPv4 clusterIPs",
            json!({"ports": port80, "clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1", "10.96.0.2"]}),
            vec!["spec.clusterIPs: Invalid value: []string{\"10.96.0.1\", \"10.96.0.2\"}: may specify no more than one IP for each IP family".into()],
        ),
        (
            "None must be alone",
            json!({"ports": port80, "clusterIP": "None", "clusterIPs": ["None", "10.96.0.2"]}),
            vec!["spec.clusterIPs: Invalid value: []string{\"None\", \"10.96.0.2\"}: 'None' must be the first and only value".into()],
        ),
        (
            "clusterIP family must follow ipFamilies",
            json!({"ports": port80, "clusterIP": "fd00::10", "ipFamilies": ["IPv4"]}),
            vec!["spec.clusterIPs[0]: Invalid value: \"fd00::10\": expected an IPv4 value as indicated by `ipFamilies[0]`".into()],
        ),
        (
            "unsupported ipFamilyPolicy and duplicate family",
            json!({"ports": port80, "ipFamilyPolicy": "Dual", "ipFamilies": ["IPv4", "IPv4"]}),
            vec![
                "spec.ipFamilies[1]: Duplicate value: \"IPv4\"".into(),
                "spec.ipFamilyPolicy: Unsupported value: \"Dual\": supported values: \"PreferDualStack\", \"RequireDualStack\", \"SingleStack\"".into(),
            ],
        ),
        (
            "NodePort cannot be headless",
            json!({"type": "NodePort", "clusterIP": "None", "ports": port80}),
            vec!["spec.clusterIPs[0]: Invalid value: \"None\": may not be set to 'None' for NodePort services".into()],
        ),
        (
            "LoadBalancer cannot be headless",
            json!({"type": "LoadBalancer", "clusterIP": "None", "ports": port80}),
            vec!["spec.clusterIPs[0]: Invalid value: \"None\": may not be set to 'None' for LoadBalancer services".into()],
        ),
        ("ExternalName", json!({"type": "ExternalName", "externalName": "db.example.com."}), vec![]),
        ("ExternalName needs a name", json!({"type": "ExternalName"}), vec!["spec.externalName: Required value".into()]),
        (
            "ExternalName must be a DNS subdomain",
            json!({"type": "ExternalName", "externalName": "db_1.example.com"}),
            vec![format!("spec.externalName: Invalid value: \"db_1.example.com\": {SUBDOMAIN_MSG}")],
        ),
        (
            "ExternalName with cluster IP fields",
            json!({"type": "ExternalName", "externalName": "db.example.com", "clusterIP": "10.96.0.5", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack"}),
            vec![
                "spec.clusterIPs: Forbidden: may not be set for ExternalName services".into(),
                "spec.ipFamilies: Forbidden: may not be set for ExternalName services".into(),
                "spec.ipFamilyPolicy: Forbidden: may not be set for ExternalName services".into(),
            ],
        ),
        (
            "externalTrafficPolicy on a ClusterIP Service",
            json!({"ports": port80, "externalTrafficPolicy": "Local"}),
            vec!["spec.externalTrafficPolicy: Invalid value: \"Local\": may only be set for externally-accessible services".into()],
        ),
        ("externalTrafficPolicy with externalIPs", json!({"ports": port80, "externalIPs": ["192.0.2.10"], "externalTrafficPolicy": "Local"}), vec![]),
        (
            "unsupported externalTrafficPolicy",
            json!({"type": "NodePort", "ports": port80, "externalTrafficPolicy": "Global"}),
            vec!["spec.externalTrafficPolicy: Unsupported value: \"Global\": supported values: \"Cluster\", \"Local\"".into()],
        ),
        (
            "unsupported internalTrafficPolicy",
            json!({"ports": port80, "internalTrafficPolicy": "Node"}),
            vec!["spec.internalTrafficPolicy: Unsupported value: \"Node\": supported values: \"Cluster\", \"Local\"".into()],
        ),
        (
            "healthCheckNodePort on a NodePort Service",
            json!({"type": "NodePort", "ports": port80, "externalTrafficPolicy": "Local", "healthCheckNodePort": 30100}),
            vec!["spec.healthCheckNodePort: Invalid value: 30100: may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'".into()],
        ),
        (
            "LoadBalancer Local before its healthCheckNodePort is allocated",
            json!({"type": "LoadBalancer", "ports": port80, "externalTrafficPolicy": "Local"}),
            vec!["spec.healthCheckNodePort: Required value".into()],
        ),
        (
            "healthCheckNodePort out of range",
            json!({"type": "LoadBalancer", "ports": port80, "externalTrafficPolicy": "Local", "healthCheckNodePort": 70000}),
            vec!["spec.healthCheckNodePort: Invalid value: 70000: must be between 1 and 65535, inclusive".into()],
        ),
        (
            "sessionAffinity timeout 0",
            json!({"ports": port80, "sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 0}}}),
            vec!["spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 0: must be greater than 0 and less than 86400".into()],
        ),
        (
            "sessionAffinity timeout 86400 is accepted",
            json!({"ports": port80, "sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 86400}}}),
            vec![],
        ),
        (
            "sessionAffinity timeout 86401",
            json!({"ports": port80, "sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 86401}}}),
            vec!["spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 86401: must be greater than 0 and less than 86400".into()],
        ),
        (
            "unsupported sessionAffinity",
            json!({"ports": port80, "sessionAffinity": "Sticky"}),
            vec!["spec.sessionAffinity: Unsupported value: \"Sticky\": supported values: \"ClientIP\", \"None\"".into()],
        ),
        (
            "LoadBalancer-only fields on a ClusterIP Service",
            json!({"ports": port80, "loadBalancerSourceRanges": ["10.0.0.0/8"], "allocateLoadBalancerNodePorts": false, "loadBalancerClass": "example.com/lb"}),
            vec![
                "spec.LoadBalancerSourceRanges: Forbidden: may only be used when `type` is 'LoadBalancer'".into(),
                "spec.allocateLoadBalancerNodePorts: Forbidden: may only be used when `type` is 'LoadBalancer'".into(),
                "spec.loadBalancerClass: Forbidden: may only be used when `type` is 'LoadBalancer'".into(),
            ],
        ),
        (
            "bad loadBalancerSourceRanges",
            json!({"type": "LoadBalancer", "ports": port80, "loadBalancerSourceRanges": [" 10.0.0.0/8", "10.0.0.0/33"]}),
            vec!["spec.LoadBalancerSourceRanges[1]: Invalid value: \"10.0.0.0/33\": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)".into()],
        ),
        // kube-apiserver 1.33 dropped the kubelet-port restriction (kubernetes#129174).
        ("port 10250 on a LoadBalancer", json!({"type": "LoadBalancer", "ports": [{"port": 10250}]}), vec![]),
        (
            "unsupported type",
            json!({"type": "Headless", "ports": port80}),
            vec!["spec.type: Unsupported value: \"Headless\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"".into()],
        ),
        (
            "special external IPs",
            json!({"ports": port80, "externalIPs": ["127.0.0.1", "169.254.1.1", "not-an-ip"]}),
            vec![
                "spec.externalIPs[0]: Invalid value: \"127.0.0.1\": may not be in the loopback range (127.0.0.0/8, ::1/128)".into(),
                "spec.externalIPs[1]: Invalid value: \"169.254.1.1\": may not be in the link-local range (169.254.0.0/16, fe80::/10)".into(),
                "spec.externalIPs[2]: Invalid value: \"not-an-ip\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)".into(),
            ],
        ),
        (
            "trafficDistribution beyond PreferClose",
            json!({"ports": port80, "trafficDistribution": "PreferSameZone"}),
            vec!["spec.trafficDistribution: Unsupported value: \"PreferSameZone\": supported values: \"PreferClose\"".into()],
        ),
        (
            "bad appProtocol",
            json!({"ports": [{"port": 80, "appProtocol": "a/b/c"}]}),
            vec!["spec.ports[0].appProtocol: Invalid value: \"a/b/c\": a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')".into()],
        ),
        (
            "bad selector value",
            json!({"ports": port80, "selector": {"app": "web server"}}),
            vec!["spec.selector: Invalid value: \"web server\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')".into()],
        ),
    ];
    for (name, spec, want) in cases {
        assert_eq!(check(spec), want, "case: {name}");
    }
}

#[test]
fn service_names_are_dns1035_labels() {
    let mut s = named("1web", json!({"ports": [{"port": 80}]}));
    set_defaults(&mut s);
    assert_eq!(
        rendered(&validate_create(&s, &cfg())),
        vec!["metadata.name: Invalid value: \"1web\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"]
    );
    let mut s = named("", json!({"ports": [{"port": 80}]}));
    set_defaults(&mut s);
    assert_eq!(
        rendered(&validate_create(&s, &cfg())),
        vec!["metadata.name: Required value: name or generateName is required"]
    );
}

#[test]
fn loadbalancer_requires_allocate_flag_without_spec_prefix() {
    // Only reachable without defaulting; kube-apiserver reports the path without `spec.`.
    let s = svc(
        json!({"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}], "sessionAffinity": "None", "externalTrafficPolicy": "Cluster", "internalTrafficPolicy": "Cluster"}),
    );
    assert_eq!(
        rendered(&validate_create(&s, &cfg())),
        vec!["allocateLoadBalancerNodePorts: Required value"]
    );
}

#[test]
fn defaults_match_set_defaults_service() {
    let mut s = svc(
        json!({"ports": [{"port": 80}, {"port": 53, "protocol": "UDP", "targetPort": "dns"}], "sessionAffinity": "ClientIP"}),
    );
    set_defaults(&mut s);
    assert_eq!(
        spec(&s),
        json!({
            "internalTrafficPolicy": "Cluster",
            "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}, {"port": 53, "protocol": "UDP", "targetPort": "dns"}],
            "sessionAffinity": "ClientIP",
            "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}},
            "type": "ClusterIP",
        })
    );

    let mut lb = svc(
        json!({"type": "LoadBalancer", "ports": [{"port": 80}], "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 5}}}),
    );
    lb.status = Some(serde_json::from_value(json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}, {"hostname": "lb.example.com"}]}})).unwrap());
    set_defaults(&mut lb);
    assert_eq!(
        spec(&lb),
        json!({
            "allocateLoadBalancerNodePorts": true,
            "externalTrafficPolicy": "Cluster",
            "internalTrafficPolicy": "Cluster",
            "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
            "sessionAffinity": "None",
            "type": "LoadBalancer",
        })
    );
    assert_eq!(
        serde_json::to_value(lb.status.as_ref().unwrap()).unwrap(),
        json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.1", "ipMode": "VIP"}, {"hostname": "lb.example.com"}]}})
    );

    let mut en = svc(json!({"type": "ExternalName", "externalName": "db.example.com"}));
    set_defaults(&mut en);
    assert_eq!(
        spec(&en),
        json!({"externalName": "db.example.com", "sessionAffinity": "None", "type": "ExternalName"})
    );

    let mut ext = svc(json!({"ports": [{"port": 80}], "externalIPs": ["192.0.2.5"]}));
    set_defaults(&mut ext);
    assert_eq!(spec(&ext)["externalTrafficPolicy"], json!("Cluster"));
}

fn stored(spec: Value) -> k8s_openapi::api::core::v1::Service {
    let mut s = svc(spec);
    set_defaults(&mut s);
    s
}

fn check_update(old: Value, new: Value) -> Vec<String> {
    let old = stored(old);
    let mut new = svc(new);
    set_defaults(&mut new);
    prepare_update(&mut new, &old);
    rendered(&validate_update(&new, &old, &cfg()))
}

#[test]
fn update_validation_table() {
    let old_cip = json!({"ports": [{"port": 80}], "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"], "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack"});
    let cases: Vec<(&str, Value, Value, Vec<String>)> = vec![
        (
            "resubmitting without allocated values",
            old_cip.clone(),
            json!({"ports": [{"port": 80}]}),
            vec![],
        ),
        (
            "changing only clusterIP",
            old_cip.clone(),
            json!({"ports": [{"port": 80}], "clusterIP": "10.96.0.50"}),
            vec!["spec.clusterIPs[0]: Invalid value: []string{\"10.96.0.50\"}: may not change once set".into()],
        ),
        (
            "changing ipFamilies",
            old_cip.clone(),
            json!({"ports": [{"port": 80}], "ipFamilies": ["IPv6"]}),
            vec![
                "spec.ipFamilies[0]: Invalid value: []core.IPFamily{\"IPv6\"}: may not change once set".into(),
                "spec.clusterIPs[0]: Invalid value: \"10.96.0.10\": expected an IPv6 value as indicated by `ipFamilies[0]`".into(),
            ],
        ),
        (
            "changing healthCheckNodePort while still needed",
            json!({"type": "LoadBalancer", "ports": [{"port": 80, "nodePort": 30080}], "externalTrafficPolicy": "Local", "healthCheckNodePort": 30100, "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"]}),
            json!({"type": "LoadBalancer", "ports": [{"port": 80, "nodePort": 30080}], "externalTrafficPolicy": "Local", "healthCheckNodePort": 30101}),
            vec!["spec.healthCheckNodePort: Forbidden: field is immutable".into()],
        ),
        (
            "changing loadBalancerClass",
            json!({"type": "LoadBalancer", "ports": [{"port": 80, "nodePort": 30080}], "loadBalancerClass": "a.example/lb", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"]}),
            json!({"type": "LoadBalancer", "ports": [{"port": 80}], "loadBalancerClass": "b.example/lb"}),
            vec!["spec.loadBalancerClass: Invalid value: \"b.example/lb\": may not change once set".into()],
        ),
        (
            "NodePort to ClusterIP keeping the nodePorts drops them",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}], "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"]}),
            json!({"type": "ClusterIP", "ports": [{"port": 80, "nodePort": 30080}], "externalTrafficPolicy": "Cluster"}),
            vec![],
        ),
        (
            "NodePort to ClusterIP with a new nodePort",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}], "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"]}),
            json!({"type": "ClusterIP", "ports": [{"port": 80, "nodePort": 30081}]}),
            vec!["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'".into()],
        ),
        (
            "ClusterIP to ExternalName clears the IP fields",
            old_cip.clone(),
            json!({"type": "ExternalName", "externalName": "db.example.com", "clusterIP": "10.96.0.10"}),
            vec![],
        ),
    ];
    for (name, old, new, want) in cases {
        assert_eq!(check_update(old, new), want, "case: {name}");
    }
}

#[test]
fn update_rejects_renames() {
    let old = stored(json!({"ports": [{"port": 80}]}));
    let mut new = named("other", json!({"ports": [{"port": 80}]}));
    new.metadata.uid = old.metadata.uid.clone();
    set_defaults(&mut new);
    prepare_update(&mut new, &old);
    assert_eq!(
        rendered(&validate_update(&new, &old, &cfg())),
        vec!["metadata.name: Invalid value: \"other\": field is immutable"]
    );
}

#[test]
fn status_updates_keep_the_spec_and_check_ingress() {
    use kubeport_service::{prepare_status_update, validate_status_update};
    let old = stored(json!({"ports": [{"port": 80}]}));
    let mut new = old.clone();
    new.spec.as_mut().unwrap().type_ = Some("LoadBalancer".into());
    new.status = Some(
        serde_json::from_value(json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}))
            .unwrap(),
    );
    prepare_status_update(&mut new, &old);
    assert_eq!(new.spec, old.spec);
    assert_eq!(
        rendered(&validate_status_update(&new, &old)),
        vec!["status.loadBalancer.ingress: Forbidden: may only be used when `spec.type` is 'LoadBalancer'"]
    );

    let old = stored(json!({"type": "LoadBalancer", "ports": [{"port": 80}]}));
    let mut new = old.clone();
    new.status = Some(
        serde_json::from_value(
            json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}, {"hostname": "192.0.2.2"}]}}),
        )
        .unwrap(),
    );
    prepare_status_update(&mut new, &old);
    assert_eq!(
        rendered(&validate_status_update(&new, &old)),
        vec!["status.loadBalancer.ingress[1].hostname: Invalid value: \"192.0.2.2\": must be a DNS name, not an IP address"]
    );
    assert_eq!(
        new.status.unwrap().load_balancer.unwrap().ingress.unwrap()[0]
            .ip_mode
            .as_deref(),
        Some("VIP")
    );
}
