//! Bodies built with k8s-pb messages and prost: the kubectl commands of the brief with only the
//! fields kubectl sets, the presence rules, and the kinds kubectl never sends (status, Node,
//! EndpointSlice, Event, Scale, DeleteOptions).

use std::collections::BTreeMap;

use k8s_openapi::api::{
    apps::v1 as oa_apps, autoscaling::v1 as oa_autoscaling, batch::v1 as oa_batch,
    core::v1 as oa_core, discovery::v1 as oa_discovery,
};
use k8s_pb::api::{
    apps::v1 as apps, autoscaling::v1 as autoscaling, batch::v1 as batch, core::v1 as core,
    discovery::v1 as discovery,
};
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use kubeport_protobuf::{decode, supported_kinds, MAGIC};
use prost::Message;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

fn s(value: &str) -> Option<String> {
    Some(value.to_string())
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| v.to_string()).collect()
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn quantities(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Quantity { string: s(v) }))
        .collect()
}

fn metadata(name: &str) -> Option<meta::ObjectMeta> {
    Some(meta::ObjectMeta {
        name: s(name),
        ..Default::default()
    })
}

fn labelled(name: &str, labels: &[(&str, &str)]) -> Option<meta::ObjectMeta> {
    Some(meta::ObjectMeta {
        name: s(name),
        labels: map(labels),
        ..Default::default()
    })
}

/// 2024-08-13T22:54:53Z plus `offset` seconds.
fn time(offset: i64) -> Option<meta::Time> {
    Some(meta::Time {
        seconds: Some(1_723_589_693 + offset),
        nanos: Some(0),
    })
}

fn int_port(port: i32) -> Option<IntOrString> {
    Some(IntOrString {
        r#type: Some(0),
        int_val: Some(port),
        str_val: None,
    })
}

fn named_port(name: &str) -> Option<IntOrString> {
    Some(IntOrString {
        r#type: Some(1),
        int_val: None,
        str_val: s(name),
    })
}

/// The body a client sends: magic + runtime.Unknown{typeMeta, raw}.
fn body(api_version: &str, kind: &str, object: &impl Message) -> Vec<u8> {
    let envelope = Unknown {
        type_meta: Some(TypeMeta {
            api_version: s(api_version),
            kind: s(kind),
        }),
        raw: Some(object.encode_to_vec()),
        content_encoding: s(""),
        content_type: s(""),
    };
    [MAGIC.to_vec(), envelope.encode_to_vec()].concat()
}

fn typed<T: DeserializeOwned>(value: &Value) -> T {
    serde_json::from_value(value.clone()).expect("deserializes into the k8s-openapi type")
}

#[test]
fn create_namespace_dev() {
    let namespace = core::Namespace {
        metadata: metadata("dev"),
        ..Default::default()
    };
    let json = decode(&body("v1", "Namespace", &namespace)).unwrap();
    assert_eq!(
        json,
        json!({"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "dev"}})
    );
    let _: oa_core::Namespace = typed(&json);
}

fn service(name: &str, service_type: &str, ports: Vec<core::ServicePort>) -> core::Service {
    core::Service {
        metadata: labelled(name, &[("app", name)]),
        spec: Some(core::ServiceSpec {
            ports,
            selector: map(&[("app", name)]),
            cluster_ip: s(""),
            r#type: s(service_type),
            ..Default::default()
        }),
        status: Some(Default::default()),
    }
}

#[test]
fn create_service_nodeport_web() {
    let port = core::ServicePort {
        name: s("80-80"),
        protocol: s("TCP"),
        port: Some(80),
        target_port: int_port(80),
        node_port: Some(0),
        ..Default::default()
    };
    let json = decode(&body(
        "v1",
        "Service",
        &service("web", "NodePort", vec![port]),
    ))
    .unwrap();
    assert_eq!(
        json,
        json!({
            "kind": "Service", "apiVersion": "v1",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "ports": [{"name": "80-80", "protocol": "TCP", "port": 80, "targetPort": 80}],
                "selector": {"app": "web"},
                "type": "NodePort"
            },
            "status": {}
        })
    );
    let service: oa_core::Service = typed(&json);
    assert_eq!(service.spec.unwrap().ports.unwrap()[0].node_port, None);
}

#[test]
fn create_service_clusterip_web_named_target_port() {
    let port = core::ServicePort {
        name: s("80-http"),
        protocol: s("TCP"),
        port: Some(80),
        target_port: named_port("http"),
        ..Default::default()
    };
    let json = decode(&body(
        "v1",
        "Service",
        &service("web", "ClusterIP", vec![port]),
    ))
    .unwrap();
    assert_eq!(
        json["spec"]["ports"],
        json!([{"name": "80-http", "protocol": "TCP", "port": 80, "targetPort": "http"}])
    );
    assert_eq!(json["spec"]["type"], "ClusterIP");
    let _: oa_core::Service = typed(&json);
}

#[test]
fn create_deployment_web() {
    let labels = [("app", "web")];
    let deployment = apps::Deployment {
        metadata: labelled("web", &labels),
        spec: Some(apps::DeploymentSpec {
            replicas: Some(2),
            selector: Some(meta::LabelSelector {
                match_labels: map(&labels),
                ..Default::default()
            }),
            template: Some(core::PodTemplateSpec {
                metadata: Some(meta::ObjectMeta {
                    labels: map(&labels),
                    ..Default::default()
                }),
                spec: Some(core::PodSpec {
                    containers: vec![core::Container {
                        name: s("nginx"),
                        image: s("nginx"),
                        ports: vec![core::ContainerPort {
                            container_port: Some(80),
                            ..Default::default()
                        }],
                        resources: Some(Default::default()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            }),
            strategy: Some(Default::default()),
            ..Default::default()
        }),
        status: Some(Default::default()),
    };
    let json = decode(&body("apps/v1", "Deployment", &deployment)).unwrap();
    assert_eq!(
        json,
        json!({
            "kind": "Deployment", "apiVersion": "apps/v1",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{
                        "name": "nginx", "image": "nginx",
                        "ports": [{"containerPort": 80}], "resources": {}
                    }]}
                },
                "strategy": {}
            },
            "status": {}
        })
    );
    let deployment: oa_apps::Deployment = typed(&json);
    assert_eq!(deployment.spec.unwrap().replicas, Some(2));
}

#[test]
fn create_configmap_and_secret_generic() {
    let config_map = core::ConfigMap {
        metadata: metadata("c"),
        data: map(&[("a", "b")]),
        binary_data: BTreeMap::from([("bin".to_string(), vec![0, 1, 2, 255])]),
        ..Default::default()
    };
    let json = decode(&body("v1", "ConfigMap", &config_map)).unwrap();
    assert_eq!(
        json,
        json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "c"},
               "data": {"a": "b"}, "binaryData": {"bin": "AAEC/w=="}})
    );
    let _: oa_core::ConfigMap = typed(&json);

    let secret = core::Secret {
        metadata: metadata("s"),
        data: BTreeMap::from([("a".to_string(), b"b".to_vec())]),
        immutable: Some(false),
        ..Default::default()
    };
    let json = decode(&body("v1", "Secret", &secret)).unwrap();
    assert_eq!(
        json,
        json!({"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "s"},
               "immutable": false, "data": {"a": "Yg=="}})
    );
    let secret: oa_core::Secret = typed(&json);
    assert_eq!(secret.data.unwrap()["a"].0, b"b");
}

#[test]
fn presence_follows_go_pointers_and_omitempty() {
    // replicas is *int32: an explicit 0 is kept; minReadySeconds is int32,omitempty: 0 is dropped.
    let spec = |replicas| apps::DeploymentSpec {
        replicas,
        min_ready_seconds: Some(0),
        paused: Some(false),
        ..Default::default()
    };
    let decoded = |spec| {
        let deployment = apps::Deployment {
            spec: Some(spec),
            ..Default::default()
        };
        decode(&body("apps/v1", "Deployment", &deployment)).unwrap()["spec"].clone()
    };
    // selector is *LabelSelector without omitempty: Go writes null when unset.
    assert_eq!(
        decoded(spec(Some(0))),
        json!({"replicas": 0, "selector": null})
    );
    assert_eq!(decoded(spec(None)), json!({"selector": null}));

    // ServicePort.port has no omitempty: written even when absent.
    let port = core::ServicePort {
        name: s(""),
        ..Default::default()
    };
    let service = core::Service {
        spec: Some(core::ServiceSpec {
            ports: vec![port],
            ..Default::default()
        }),
        ..Default::default()
    };
    let json = decode(&body("v1", "Service", &service)).unwrap();
    assert_eq!(json["spec"], json!({"ports": [{"port": 0}]}));

    // An empty Time message is Go's zero time: null.
    let namespace = core::Namespace {
        metadata: Some(meta::ObjectMeta {
            name: s("x"),
            creation_timestamp: Some(Default::default()),
            generation: Some(0),
            ..Default::default()
        }),
        ..Default::default()
    };
    let json = decode(&body("v1", "Namespace", &namespace)).unwrap();
    assert_eq!(
        json["metadata"],
        json!({"name": "x", "creationTimestamp": null})
    );
}

#[test]
fn service_with_every_spec_field_and_load_balancer_status() {
    let service = core::Service {
        metadata: metadata("lb"),
        spec: Some(core::ServiceSpec {
            ports: vec![core::ServicePort {
                name: s("https"),
                protocol: s("TCP"),
                app_protocol: s("kubernetes.io/h2c"),
                port: Some(443),
                target_port: int_port(8443),
                node_port: Some(30443),
            }],
            selector: map(&[("app", "lb")]),
            cluster_ip: s("10.96.0.10"),
            cluster_ips: strings(&["10.96.0.10", "fd00::10"]),
            r#type: s("LoadBalancer"),
            external_ips: strings(&["192.0.2.1"]),
            session_affinity: s("ClientIP"),
            load_balancer_ip: s("198.51.100.7"),
            load_balancer_source_ranges: strings(&["10.0.0.0/8"]),
            external_name: s(""),
            external_traffic_policy: s("Local"),
            health_check_node_port: Some(32000),
            publish_not_ready_addresses: Some(true),
            session_affinity_config: Some(core::SessionAffinityConfig {
                client_ip: Some(core::ClientIpConfig {
                    timeout_seconds: Some(10800),
                }),
            }),
            ip_families: strings(&["IPv4", "IPv6"]),
            ip_family_policy: s("PreferDualStack"),
            allocate_load_balancer_node_ports: Some(false),
            load_balancer_class: s("example.com/lb"),
            internal_traffic_policy: s("Cluster"),
            traffic_distribution: s("PreferClose"),
        }),
        status: Some(core::ServiceStatus {
            load_balancer: Some(core::LoadBalancerStatus {
                ingress: vec![core::LoadBalancerIngress {
                    ip: s("198.51.100.7"),
                    hostname: s(""),
                    ip_mode: s("VIP"),
                    ports: vec![core::PortStatus {
                        port: Some(443),
                        protocol: s("TCP"),
                        error: None,
                    }],
                }],
            }),
            conditions: vec![meta::Condition {
                r#type: s("LoadBalancerReady"),
                status: s("True"),
                observed_generation: Some(2),
                last_transition_time: time(0),
                reason: s("Provisioned"),
                message: s(""),
            }],
        }),
    };
    let json = decode(&body("v1", "Service", &service)).unwrap();
    assert_eq!(
        json["spec"],
        json!({
            "ports": [{"name": "https", "protocol": "TCP", "appProtocol": "kubernetes.io/h2c",
                       "port": 443, "targetPort": 8443, "nodePort": 30443}],
            "selector": {"app": "lb"},
            "clusterIP": "10.96.0.10",
            "clusterIPs": ["10.96.0.10", "fd00::10"],
            "type": "LoadBalancer",
            "externalIPs": ["192.0.2.1"],
            "sessionAffinity": "ClientIP",
            "loadBalancerIP": "198.51.100.7",
            "loadBalancerSourceRanges": ["10.0.0.0/8"],
            "externalTrafficPolicy": "Local",
            "healthCheckNodePort": 32000,
            "publishNotReadyAddresses": true,
            "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}},
            "ipFamilies": ["IPv4", "IPv6"],
            "ipFamilyPolicy": "PreferDualStack",
            "allocateLoadBalancerNodePorts": false,
            "loadBalancerClass": "example.com/lb",
            "internalTrafficPolicy": "Cluster",
            "trafficDistribution": "PreferClose"
        })
    );
    assert_eq!(
        json["status"],
        json!({
            "loadBalancer": {"ingress": [{"ip": "198.51.100.7", "ipMode": "VIP",
                                          "ports": [{"port": 443, "protocol": "TCP"}]}]},
            "conditions": [{"type": "LoadBalancerReady", "status": "True", "observedGeneration": 2,
                            "lastTransitionTime": "2024-08-13T22:54:53Z",
                            "reason": "Provisioned", "message": ""}]
        })
    );
    let service: oa_core::Service = typed(&json);
    let spec = service.spec.unwrap();
    assert_eq!(
        spec.session_affinity_config
            .unwrap()
            .client_ip
            .unwrap()
            .timeout_seconds,
        Some(10800)
    );
    assert_eq!(spec.ip_family_policy.as_deref(), Some("PreferDualStack"));
    let status = service.status.unwrap();
    assert_eq!(
        status.load_balancer.unwrap().ingress.unwrap()[0]
            .ip_mode
            .as_deref(),
        Some("VIP")
    );
}

#[test]
fn node_with_status() {
    let node = core::Node {
        metadata: labelled("node-1", &[("kubernetes.io/hostname", "node-1")]),
        spec: Some(core::NodeSpec {
            pod_cidr: s("10.244.1.0/24"),
            pod_cid_rs: strings(&["10.244.1.0/24"]),
            unschedulable: Some(true),
            taints: vec![core::Taint {
                key: s("node.kubernetes.io/unschedulable"),
                value: s(""),
                effect: s("NoSchedule"),
                time_added: time(5),
            }],
            ..Default::default()
        }),
        status: Some(core::NodeStatus {
            capacity: quantities(&[("cpu", "2"), ("memory", "4Gi"), ("pods", "110")]),
            allocatable: quantities(&[("cpu", "1900m")]),
            conditions: vec![core::NodeCondition {
                r#type: s("Ready"),
                status: s("True"),
                last_heartbeat_time: time(60),
                last_transition_time: time(0),
                reason: s("KubeletReady"),
                message: s("kubelet is posting ready status"),
            }],
            addresses: vec![
                core::NodeAddress {
                    r#type: s("InternalIP"),
                    address: s("10.0.0.2"),
                },
                core::NodeAddress {
                    r#type: s("Hostname"),
                    address: s("node-1"),
                },
            ],
            daemon_endpoints: Some(core::NodeDaemonEndpoints {
                kubelet_endpoint: Some(core::DaemonEndpoint { port: Some(10250) }),
            }),
            node_info: Some(core::NodeSystemInfo {
                kernel_version: s("6.8.0"),
                os_image: s("kubeport"),
                kubelet_version: s("v1.33.1"),
                operating_system: s("linux"),
                architecture: s("amd64"),
                ..Default::default()
            }),
            ..Default::default()
        }),
    };
    let json = decode(&body("v1", "Node", &node)).unwrap();
    assert_eq!(
        json["spec"],
        json!({
            "podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"], "unschedulable": true,
            "taints": [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule",
                        "timeAdded": "2024-08-13T22:54:58Z"}]
        })
    );
    assert_eq!(
        json["status"],
        json!({
            "capacity": {"cpu": "2", "memory": "4Gi", "pods": "110"},
            "allocatable": {"cpu": "1900m"},
            "conditions": [{"type": "Ready", "status": "True",
                            "lastHeartbeatTime": "2024-08-13T22:55:53Z",
                            "lastTransitionTime": "2024-08-13T22:54:53Z",
                            "reason": "KubeletReady", "message": "kubelet is posting ready status"}],
            "addresses": [{"type": "InternalIP", "address": "10.0.0.2"},
                          {"type": "Hostname", "address": "node-1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            // NodeSystemInfo's fields have no omitempty: unset ones are "".
            "nodeInfo": {"machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": "6.8.0",
                         "osImage": "kubeport", "containerRuntimeVersion": "",
                         "kubeletVersion": "v1.33.1", "kubeProxyVersion": "",
                         "operatingSystem": "linux", "architecture": "amd64"}
        })
    );
    let node: oa_core::Node = typed(&json);
    let status = node.status.unwrap();
    assert_eq!(status.node_info.unwrap().kubelet_version, "v1.33.1");
    assert_eq!(
        status
            .daemon_endpoints
            .unwrap()
            .kubelet_endpoint
            .unwrap()
            .port,
        10250
    );
    assert_eq!(status.capacity.unwrap()["memory"].0, "4Gi");
}

#[test]
fn endpoint_slice_and_endpoints() {
    let target = || {
        Some(core::ObjectReference {
            kind: s("Pod"),
            namespace: s("default"),
            name: s("web-1"),
            uid: s("u-1"),
            ..Default::default()
        })
    };
    let slice = discovery::EndpointSlice {
        metadata: labelled("web-abc", &[("kubernetes.io/service-name", "web")]),
        address_type: s("IPv4"),
        endpoints: vec![discovery::Endpoint {
            addresses: strings(&["10.244.1.5"]),
            conditions: Some(discovery::EndpointConditions {
                ready: Some(true),
                serving: Some(true),
                terminating: Some(false),
            }),
            target_ref: target(),
            node_name: s("node-1"),
            zone: s(""),
            hints: Some(discovery::EndpointHints {
                for_zones: vec![discovery::ForZone { name: s("a") }],
                ..Default::default()
            }),
            ..Default::default()
        }],
        ports: vec![discovery::EndpointPort {
            name: s(""),
            protocol: s("TCP"),
            port: Some(8080),
            app_protocol: None,
        }],
    };
    let json = decode(&body("discovery.k8s.io/v1", "EndpointSlice", &slice)).unwrap();
    assert_eq!(
        json,
        json!({
            "kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1",
            "metadata": {"name": "web-abc", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "endpoints": [{
                "addresses": ["10.244.1.5"],
                "conditions": {"ready": true, "serving": true, "terminating": false},
                "targetRef": {"kind": "Pod", "namespace": "default", "name": "web-1", "uid": "u-1"},
                "nodeName": "node-1", "zone": "",
                "hints": {"forZones": [{"name": "a"}]}
            }],
            // Pointer fields keep an explicit empty name, which kubectl describe relies on.
            "ports": [{"name": "", "protocol": "TCP", "port": 8080}]
        })
    );
    let slice: oa_discovery::EndpointSlice = typed(&json);
    assert_eq!(slice.ports.unwrap()[0].name.as_deref(), Some(""));

    // No endpoints: `endpoints` has no omitempty, so Go writes null.
    let empty = discovery::EndpointSlice {
        address_type: s("IPv4"),
        ..Default::default()
    };
    let json = decode(&body("discovery.k8s.io/v1", "EndpointSlice", &empty)).unwrap();
    assert_eq!(json["endpoints"], Value::Null);

    let endpoints = core::Endpoints {
        metadata: metadata("web"),
        subsets: vec![core::EndpointSubset {
            addresses: vec![core::EndpointAddress {
                ip: s("10.244.1.5"),
                node_name: s("node-1"),
                target_ref: target(),
                ..Default::default()
            }],
            not_ready_addresses: vec![core::EndpointAddress {
                ip: s("10.244.2.9"),
                ..Default::default()
            }],
            ports: vec![core::EndpointPort {
                name: s("http"),
                port: Some(8080),
                protocol: s("TCP"),
                ..Default::default()
            }],
        }],
    };
    let json = decode(&body("v1", "Endpoints", &endpoints)).unwrap();
    assert_eq!(
        json["subsets"],
        json!([{
            "addresses": [{"ip": "10.244.1.5", "nodeName": "node-1",
                           "targetRef": {"kind": "Pod", "namespace": "default", "name": "web-1", "uid": "u-1"}}],
            "notReadyAddresses": [{"ip": "10.244.2.9"}],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
        }])
    );
    let _: oa_core::Endpoints = typed(&json);
}

#[test]
fn event_times() {
    let event = core::Event {
        metadata: metadata("web.17e"),
        involved_object: Some(core::ObjectReference {
            kind: s("Service"),
            name: s("web"),
            namespace: s("default"),
            ..Default::default()
        }),
        reason: s("Created"),
        message: s("created service"),
        source: Some(core::EventSource {
            component: s("service-controller"),
            host: s(""),
        }),
        first_timestamp: time(0),
        last_timestamp: time(30),
        count: Some(2),
        r#type: s("Normal"),
        event_time: Some(meta::MicroTime {
            seconds: Some(1_723_589_693),
            nanos: Some(123_456_000),
        }),
        series: Some(core::EventSeries {
            count: Some(2),
            last_observed_time: Some(meta::MicroTime {
                seconds: Some(1_723_589_723),
                nanos: None,
            }),
        }),
        ..Default::default()
    };
    let json = decode(&body("v1", "Event", &event)).unwrap();
    assert_eq!(
        json,
        json!({
            "kind": "Event", "apiVersion": "v1",
            "metadata": {"name": "web.17e"},
            "involvedObject": {"kind": "Service", "namespace": "default", "name": "web"},
            "reason": "Created", "message": "created service",
            "source": {"component": "service-controller"},
            "firstTimestamp": "2024-08-13T22:54:53Z",
            "lastTimestamp": "2024-08-13T22:55:23Z",
            "count": 2, "type": "Normal",
            "eventTime": "2024-08-13T22:54:53.123456Z",
            "series": {"count": 2, "lastObservedTime": "2024-08-13T22:55:23.000000Z"},
            "reportingComponent": "", "reportingInstance": ""
        })
    );
    let event: oa_core::Event = typed(&json);
    assert!(event.event_time.is_some() && event.series.unwrap().last_observed_time.is_some());
}

#[test]
fn workload_statuses() {
    let deployment = apps::Deployment {
        metadata: metadata("web"),
        spec: Some(apps::DeploymentSpec {
            strategy: Some(apps::DeploymentStrategy {
                r#type: s("RollingUpdate"),
                rolling_update: Some(apps::RollingUpdateDeployment {
                    max_unavailable: int_port(0),
                    max_surge: named_port("25%"),
                }),
            }),
            revision_history_limit: Some(10),
            progress_deadline_seconds: Some(600),
            ..Default::default()
        }),
        status: Some(apps::DeploymentStatus {
            observed_generation: Some(3),
            replicas: Some(2),
            updated_replicas: Some(2),
            ready_replicas: Some(1),
            available_replicas: Some(1),
            unavailable_replicas: Some(1),
            conditions: vec![apps::DeploymentCondition {
                r#type: s("Available"),
                status: s("False"),
                last_update_time: time(10),
                last_transition_time: time(10),
                reason: s("MinimumReplicasUnavailable"),
                message: s("Deployment does not have minimum availability."),
            }],
            ..Default::default()
        }),
    };
    let json = decode(&body("apps/v1", "Deployment", &deployment)).unwrap();
    assert_eq!(
        json["spec"]["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}})
    );
    assert_eq!(
        json["status"],
        json!({
            "observedGeneration": 3, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 1,
            "availableReplicas": 1, "unavailableReplicas": 1,
            "conditions": [{"type": "Available", "status": "False",
                            "lastUpdateTime": "2024-08-13T22:55:03Z",
                            "lastTransitionTime": "2024-08-13T22:55:03Z",
                            "reason": "MinimumReplicasUnavailable",
                            "message": "Deployment does not have minimum availability."}]
        })
    );
    let deployment: oa_apps::Deployment = typed(&json);
    assert_eq!(deployment.status.unwrap().ready_replicas, Some(1));

    // ReplicaSetStatus.replicas has no omitempty.
    let replica_set = apps::ReplicaSet {
        metadata: metadata("web-5d4f"),
        spec: Some(apps::ReplicaSetSpec {
            replicas: Some(0),
            ..Default::default()
        }),
        status: Some(apps::ReplicaSetStatus {
            observed_generation: Some(1),
            ..Default::default()
        }),
    };
    let json = decode(&body("apps/v1", "ReplicaSet", &replica_set)).unwrap();
    assert_eq!(json["spec"], json!({"replicas": 0, "selector": null}));
    assert_eq!(
        json["status"],
        json!({"replicas": 0, "observedGeneration": 1})
    );

    let job = batch::Job {
        metadata: metadata("j"),
        spec: None,
        status: Some(batch::JobStatus {
            start_time: time(0),
            completion_time: time(42),
            succeeded: Some(1),
            ready: Some(0),
            terminating: Some(0),
            uncounted_terminated_pods: Some(Default::default()),
            conditions: vec![batch::JobCondition {
                r#type: s("Complete"),
                status: s("True"),
                last_probe_time: time(42),
                last_transition_time: time(42),
                ..Default::default()
            }],
            ..Default::default()
        }),
    };
    let json = decode(&body("batch/v1", "Job", &job)).unwrap();
    assert_eq!(
        json["status"],
        json!({
            "conditions": [{"type": "Complete", "status": "True",
                            "lastProbeTime": "2024-08-13T22:55:35Z",
                            "lastTransitionTime": "2024-08-13T22:55:35Z"}],
            "startTime": "2024-08-13T22:54:53Z", "completionTime": "2024-08-13T22:55:35Z",
            "succeeded": 1, "terminating": 0, "uncountedTerminatedPods": {}, "ready": 0
        })
    );
    let _: oa_batch::Job = typed(&json);

    let cron_job = batch::CronJob {
        metadata: metadata("cj"),
        spec: Some(batch::CronJobSpec {
            schedule: s("0 * * * *"),
            suspend: Some(true),
            ..Default::default()
        }),
        status: Some(batch::CronJobStatus {
            active: vec![core::ObjectReference {
                kind: s("Job"),
                name: s("cj-1"),
                ..Default::default()
            }],
            last_schedule_time: time(0),
            last_successful_time: None,
        }),
    };
    let json = decode(&body("batch/v1", "CronJob", &cron_job)).unwrap();
    assert_eq!(
        json["spec"],
        json!({"schedule": "0 * * * *", "suspend": true})
    );
    assert_eq!(
        json["status"],
        json!({"active": [{"kind": "Job", "name": "cj-1"}], "lastScheduleTime": "2024-08-13T22:54:53Z"})
    );
    let _: oa_batch::CronJob = typed(&json);
}

#[test]
fn pod_status() {
    let pod = core::Pod {
        metadata: metadata("web-1"),
        spec: Some(core::PodSpec {
            containers: vec![core::Container {
                name: s("web"),
                image: s("nginx"),
                ..Default::default()
            }],
            node_name: s("node-1"),
            ..Default::default()
        }),
        status: Some(core::PodStatus {
            phase: s("Running"),
            conditions: vec![core::PodCondition {
                r#type: s("Ready"),
                status: s("True"),
                last_probe_time: Some(Default::default()),
                last_transition_time: time(3),
                ..Default::default()
            }],
            host_ip: s("10.0.0.2"),
            host_ips: vec![core::HostIp { ip: s("10.0.0.2") }],
            pod_ip: s("10.244.1.5"),
            pod_ips: vec![core::PodIp {
                ip: s("10.244.1.5"),
            }],
            start_time: time(0),
            container_statuses: vec![core::ContainerStatus {
                name: s("web"),
                state: Some(core::ContainerState {
                    running: Some(core::ContainerStateRunning {
                        started_at: time(2),
                    }),
                    ..Default::default()
                }),
                last_state: Some(core::ContainerState {
                    terminated: Some(core::ContainerStateTerminated {
                        exit_code: Some(0),
                        reason: s("Completed"),
                        started_at: time(-60),
                        finished_at: time(-1),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ready: Some(true),
                restart_count: Some(1),
                image: s("nginx"),
                image_id: s(""),
                started: Some(true),
                ..Default::default()
            }],
            qos_class: s("BestEffort"),
            ..Default::default()
        }),
    };
    let json = decode(&body("v1", "Pod", &pod)).unwrap();
    assert_eq!(
        json["status"],
        json!({
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True", "lastProbeTime": null,
                            "lastTransitionTime": "2024-08-13T22:54:56Z"}],
            "hostIP": "10.0.0.2", "hostIPs": [{"ip": "10.0.0.2"}],
            "podIP": "10.244.1.5", "podIPs": [{"ip": "10.244.1.5"}],
            "startTime": "2024-08-13T22:54:53Z",
            "containerStatuses": [{
                "name": "web",
                "state": {"running": {"startedAt": "2024-08-13T22:54:55Z"}},
                "lastState": {"terminated": {"exitCode": 0, "reason": "Completed",
                                             "startedAt": "2024-08-13T22:53:53Z",
                                             "finishedAt": "2024-08-13T22:54:52Z"}},
                "ready": true, "restartCount": 1, "image": "nginx", "imageID": "", "started": true
            }],
            "qosClass": "BestEffort"
        })
    );
    let pod: oa_core::Pod = typed(&json);
    let status = pod.status.unwrap();
    assert_eq!(status.pod_ips.unwrap()[0].ip, "10.244.1.5");
    assert_eq!(status.container_statuses.unwrap()[0].restart_count, 1);
}

#[test]
fn scale_delete_options_and_metadata() {
    let scale = autoscaling::Scale {
        metadata: Some(meta::ObjectMeta {
            name: s("web"),
            namespace: s("default"),
            resource_version: s("42"),
            ..Default::default()
        }),
        spec: Some(autoscaling::ScaleSpec { replicas: Some(3) }),
        status: Some(autoscaling::ScaleStatus {
            replicas: Some(0),
            selector: s("app=web"),
        }),
    };
    let json = decode(&body("autoscaling/v1", "Scale", &scale)).unwrap();
    assert_eq!(
        json,
        json!({
            "kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {"name": "web", "namespace": "default", "resourceVersion": "42"},
            "spec": {"replicas": 3},
            "status": {"replicas": 0, "selector": "app=web"}
        })
    );
    let _: oa_autoscaling::Scale = typed(&json);

    let options = meta::DeleteOptions {
        grace_period_seconds: Some(0),
        preconditions: Some(meta::Preconditions {
            uid: s("u-1"),
            resource_version: None,
        }),
        propagation_policy: s("Background"),
        dry_run: strings(&["All"]),
        ..Default::default()
    };
    for api_version in ["v1", "meta.k8s.io/v1", "apps/v1", "batch/v1"] {
        let json = decode(&body(api_version, "DeleteOptions", &options)).unwrap();
        assert_eq!(
            json,
            json!({
                "kind": "DeleteOptions", "apiVersion": api_version,
                "gracePeriodSeconds": 0, "preconditions": {"uid": "u-1"},
                "propagationPolicy": "Background", "dryRun": ["All"]
            })
        );
    }

    let config_map = core::ConfigMap {
        metadata: Some(meta::ObjectMeta {
            name: s("c"),
            uid: s("u-2"),
            generation: Some(4),
            creation_timestamp: time(0),
            deletion_timestamp: time(100),
            deletion_grace_period_seconds: Some(0),
            annotations: map(&[("note", "x")]),
            owner_references: vec![meta::OwnerReference {
                api_version: s("apps/v1"),
                kind: s("ReplicaSet"),
                name: s("web-5d4f"),
                uid: s("u-3"),
                controller: Some(true),
                block_owner_deletion: Some(false),
            }],
            finalizers: strings(&["kubernetes.io/x"]),
            managed_fields: vec![meta::ManagedFieldsEntry {
                manager: s("kubectl-create"),
                operation: s("Update"),
                api_version: s("v1"),
                time: time(0),
                fields_type: s("FieldsV1"),
                fields_v1: Some(meta::FieldsV1 {
                    raw: Some(br#"{"f:data":{".":{},"f:a":{}}}"#.to_vec()),
                }),
                subresource: s(""),
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    let json = decode(&body("v1", "ConfigMap", &config_map)).unwrap();
    assert_eq!(
        json["metadata"],
        json!({
            "name": "c", "uid": "u-2", "generation": 4,
            "creationTimestamp": "2024-08-13T22:54:53Z",
            "deletionTimestamp": "2024-08-13T22:56:33Z",
            "deletionGracePeriodSeconds": 0,
            "annotations": {"note": "x"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d4f",
                                 "uid": "u-3", "controller": true, "blockOwnerDeletion": false}],
            "finalizers": ["kubernetes.io/x"],
            "managedFields": [{"manager": "kubectl-create", "operation": "Update", "apiVersion": "v1",
                               "time": "2024-08-13T22:54:53Z", "fieldsType": "FieldsV1",
                               "fieldsV1": {"f:data": {".": {}, "f:a": {}}}}]
        })
    );
    let config_map: oa_core::ConfigMap = typed(&json);
    assert_eq!(
        config_map.metadata.owner_references.unwrap()[0].controller,
        Some(true)
    );
}

#[test]
fn resource_quota_and_service_account() {
    let quota = core::ResourceQuota {
        metadata: metadata("q"),
        spec: Some(core::ResourceQuotaSpec {
            hard: quantities(&[("pods", "10")]),
            scope_selector: Some(core::ScopeSelector {
                match_expressions: vec![core::ScopedResourceSelectorRequirement {
                    scope_name: s("PriorityClass"),
                    operator: s("In"),
                    values: strings(&["high"]),
                }],
            }),
            ..Default::default()
        }),
        status: Some(core::ResourceQuotaStatus {
            hard: quantities(&[("pods", "10")]),
            used: quantities(&[("pods", "0")]),
        }),
    };
    let json = decode(&body("v1", "ResourceQuota", &quota)).unwrap();
    assert_eq!(
        json["spec"],
        json!({"hard": {"pods": "10"},
               "scopeSelector": {"matchExpressions": [{"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]}})
    );
    assert_eq!(
        json["status"],
        json!({"hard": {"pods": "10"}, "used": {"pods": "0"}})
    );
    let _: oa_core::ResourceQuota = typed(&json);

    let account = core::ServiceAccount {
        metadata: metadata("robot"),
        image_pull_secrets: vec![core::LocalObjectReference { name: s("reg") }],
        automount_service_account_token: Some(false),
        ..Default::default()
    };
    let json = decode(&body("v1", "ServiceAccount", &account)).unwrap();
    assert_eq!(
        json,
        json!({"kind": "ServiceAccount", "apiVersion": "v1", "metadata": {"name": "robot"},
               "imagePullSecrets": [{"name": "reg"}], "automountServiceAccountToken": false})
    );
    let _: oa_core::ServiceAccount = typed(&json);
}

#[test]
fn every_supported_kind_decodes() {
    assert_eq!(supported_kinds().len(), 22);
    for &(api_version, kind) in supported_kinds() {
        let envelope = Unknown {
            type_meta: Some(TypeMeta {
                api_version: s(api_version),
                kind: s(kind),
            }),
            ..Default::default()
        };
        let json = decode(&[MAGIC.to_vec(), envelope.encode_to_vec()].concat()).unwrap();
        assert_eq!(json["kind"], kind);
        assert_eq!(json["apiVersion"], api_version);
        let first_keys: Vec<&String> = json.as_object().unwrap().keys().take(2).collect();
        assert_eq!(first_keys, ["kind", "apiVersion"]);
    }
}
