//! Behaviour tests of the public API, written as the API server would use it.

use crate::*;
use serde_json::{json, Value};

const T0: &str = "2024-05-01T10:00:00Z";
const T1: &str = "2024-05-01T11:00:00Z";

fn failure(e: PatchError) -> PatchFailure {
    match e {
        PatchError::Invalid(f) => f,
        PatchError::Conflict(c) => panic!("unexpected conflict: {}", c.message()),
    }
}

fn smp(doc: &Value, patch: Value, group: &str, kind: &str) -> Value {
    strategic_merge_patch(doc, &patch, group, kind).unwrap_or_else(|e| panic!("patch failed: {e}"))
}

fn service_80_53() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "selector": {"app": "web"},
            "ports": [
                {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080},
                {"name": "dns", "protocol": "UDP", "port": 53, "targetPort": 53}
            ]
        }
    })
}

fn port_numbers(obj: &Value) -> Vec<i64> {
    obj["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["port"].as_i64().unwrap())
        .collect()
}

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{
                    "name": "web", "image": "nginx:1.25",
                    "ports": [{"containerPort": 80, "protocol": "TCP"}],
                    "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}]
                }],
                "volumes": [{"name": "data", "emptyDir": {}}]}
            }
        }
    })
}

// ---------------------------------------------------------------- strategic merge patch: Service

#[test]
fn smp_set_element_order_keeps_udp_port_and_updates_target_port() {
    let patch = json!({
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}\n"}},
        "spec": {"$setElementOrder/ports": [{"port": 80}, {"port": 53}], "ports": [{"port": 80, "targetPort": 9090}]}
    });
    let out = smp(&service_80_53(), patch, "", "Service");
    assert_eq!(
        out["spec"]["ports"],
        json!([
            {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 9090},
            {"name": "dns", "protocol": "UDP", "port": 53, "targetPort": 53}
        ])
    );
    assert_eq!(
        out["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"],
        "{}\n"
    );
    assert_eq!(out["metadata"]["labels"], json!({"app": "web"}));
    // As a JSON merge patch the same body would have dropped the UDP port.
    let merged = merge_patch(
        &service_80_53(),
        &json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}),
    )
    .unwrap();
    assert_eq!(port_numbers(&merged), vec![80]);
}

#[test]
fn smp_client_side_apply_delete_item_shape() {
    let patch = json!({
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"kind\":\"Service\"}\n"}},
        "spec": {"ports": [{"$patch": "delete", "port": 80}]}
    });
    let out = smp(&service_80_53(), patch, "", "Service");
    assert_eq!(port_numbers(&out), vec![53]);
    assert!(out["metadata"]["annotations"].is_object());

    let with_order = json!({"spec": {"$setElementOrder/ports": [{"port": 53}], "ports": [{"$patch": "delete", "port": 80}]}});
    let out = smp(&service_80_53(), with_order, "", "Service");
    assert_eq!(port_numbers(&out), vec![53]);
    assert!(out["spec"].get("$setElementOrder/ports").is_none());
}

#[test]
fn smp_delete_item_removes_every_entry_with_that_merge_key() {
    let mut svc = service_80_53();
    svc["spec"]["ports"] = json!([{"protocol": "TCP", "port": 53}, {"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 80}]);
    let out = smp(
        &svc,
        json!({"spec": {"ports": [{"$patch": "delete", "port": 53}]}}),
        "",
        "Service",
    );
    assert_eq!(port_numbers(&out), vec![80]);
}

#[test]
fn smp_new_list_item_without_order_goes_first() {
    let out = smp(
        &service_80_53(),
        json!({"spec": {"ports": [{"port": 8080, "protocol": "TCP"}]}}),
        "",
        "Service",
    );
    assert_eq!(port_numbers(&out), vec![8080, 80, 53]);
}

#[test]
fn smp_set_element_order_places_new_item() {
    let patch = json!({"spec": {
        "$setElementOrder/ports": [{"port": 80}, {"port": 8080}, {"port": 53}],
        "ports": [{"port": 8080, "protocol": "TCP", "targetPort": 8080}]
    }});
    let out = smp(&service_80_53(), patch, "", "Service");
    assert_eq!(port_numbers(&out), vec![80, 8080, 53]);
}

#[test]
fn smp_set_element_order_reorders_without_content_change() {
    let out = smp(
        &service_80_53(),
        json!({"spec": {"$setElementOrder/ports": [{"port": 53}, {"port": 80}]}}),
        "",
        "Service",
    );
    assert_eq!(port_numbers(&out), vec![53, 80]);
}

#[test]
fn smp_set_element_order_must_match_patch_list() {
    let patch = json!({"spec": {"$setElementOrder/ports": [{"port": 53}], "ports": [{"port": 80, "targetPort": 1}]}});
    let e = failure(strategic_merge_patch(&service_80_53(), &patch, "", "Service").unwrap_err());
    assert_eq!(e.code, 500);
    assert_eq!(
        e.message,
        "The order in patch list:\n[map[port:80 targetPort:1]]\n doesn't match $setElementOrder list:\n[map[port:53]]\n"
    );
}

#[test]
fn smp_item_without_merge_key_is_an_error() {
    let e = failure(
        strategic_merge_patch(
            &service_80_53(),
            &json!({"spec": {"ports": [{"targetPort": 9090}]}}),
            "",
            "Service",
        )
        .unwrap_err(),
    );
    assert_eq!(e.code, 500);
    assert_eq!(e.reason, "");
    assert_eq!(
        e.message,
        "map: map[targetPort:9090] does not contain declared merge key: port"
    );
}

#[test]
fn smp_selector_is_merged_key_by_key() {
    let out = smp(
        &service_80_53(),
        json!({"spec": {"selector": {"tier": "front"}}}),
        "",
        "Service",
    );
    assert_eq!(
        out["spec"]["selector"],
        json!({"app": "web", "tier": "front"})
    );
}

#[test]
fn smp_null_deletes_a_key() {
    let out = smp(
        &service_80_53(),
        json!({"metadata": {"labels": {"app": null}}, "spec": {"selector": null}}),
        "",
        "Service",
    );
    assert_eq!(out["metadata"]["labels"], json!({}));
    assert!(out["spec"].get("selector").is_none());
}

#[test]
fn smp_patch_replace_directive_on_map_and_list() {
    let out = smp(
        &service_80_53(),
        json!({"spec": {"selector": {"$patch": "replace", "run": "x"}}}),
        "",
        "Service",
    );
    assert_eq!(out["spec"]["selector"], json!({"run": "x"}));

    let out = smp(
        &service_80_53(),
        json!({"spec": {"ports": [{"$patch": "replace"}, {"port": 443, "protocol": "TCP"}]}}),
        "",
        "Service",
    );
    assert_eq!(
        out["spec"]["ports"],
        json!([{"port": 443, "protocol": "TCP"}])
    );
}

#[test]
fn smp_patch_delete_directive_on_map_empties_it() {
    let out = smp(
        &service_80_53(),
        json!({"metadata": {"labels": {"$patch": "delete"}}}),
        "",
        "Service",
    );
    assert_eq!(out["metadata"]["labels"], json!({}));
}

#[test]
fn smp_patch_merge_directive_is_rejected() {
    let e = failure(
        strategic_merge_patch(
            &service_80_53(),
            &json!({"spec": {"ports": [{"$patch": "merge", "port": 80}]}}),
            "",
            "Service",
        )
        .unwrap_err(),
    );
    assert_eq!(
        e.message,
        "merging lists cannot yet be specified in the patch"
    );
    let e = failure(
        strategic_merge_patch(
            &service_80_53(),
            &json!({"spec": {"selector": {"$patch": "merge"}}}),
            "",
            "Service",
        )
        .unwrap_err(),
    );
    assert_eq!(
        e.message,
        "unknown patch type: merge in map: map[$patch:merge]"
    );
}

#[test]
fn smp_patch_must_be_an_object() {
    let e =
        failure(strategic_merge_patch(&service_80_53(), &json!([1]), "", "Service").unwrap_err());
    assert_eq!(e.code, 400);
    assert_eq!(
        e.message,
        "json: cannot unmarshal array into Go value of type map[string]interface {}"
    );
}

// ---------------------------------------------------------------- strategic merge patch: ObjectMeta

#[test]
fn smp_finalizers_merge_as_a_set_and_delete_from_primitive_list() {
    let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "finalizers": ["a", "b"]}, "data": {"k": "v"}});
    cm = smp(
        &cm,
        json!({"metadata": {"finalizers": ["b", "c"]}}),
        "",
        "ConfigMap",
    );
    assert_eq!(cm["metadata"]["finalizers"], json!(["a", "b", "c"]));
    cm = smp(
        &cm,
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a", "c"]}}),
        "",
        "ConfigMap",
    );
    assert_eq!(cm["metadata"]["finalizers"], json!(["b"]));
    let order =
        json!({"metadata": {"$setElementOrder/finalizers": ["z", "b"], "finalizers": ["z"]}});
    cm = smp(&cm, order, "", "ConfigMap");
    assert_eq!(cm["metadata"]["finalizers"], json!(["z", "b"]));
    let e = failure(
        strategic_merge_patch(
            &cm,
            &json!({"metadata": {"$deleteFromPrimitiveList": ["b"]}}),
            "",
            "ConfigMap",
        )
        .unwrap_err(),
    );
    assert_eq!(
        (e.code, e.message.as_str()),
        (400, "invalid patch format of primitive list")
    );
}

#[test]
fn smp_owner_references_merge_by_uid() {
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "ownerReferences": [
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs1", "uid": "u1"}
    ]}, "spec": {"containers": [{"name": "c", "image": "i"}]}});
    let out = smp(
        &pod,
        json!({"metadata": {"ownerReferences": [{"uid": "u1", "controller": true}, {"uid": "u2", "name": "rs2", "kind": "ReplicaSet", "apiVersion": "apps/v1"}]}}),
        "",
        "Pod",
    );
    let refs = out["metadata"]["ownerReferences"].as_array().unwrap();
    assert_eq!(refs.len(), 2);
    assert_eq!(refs[0]["uid"], "u1");
    assert_eq!(refs[0]["controller"], true);
    assert_eq!(refs[0]["name"], "rs1");
    assert_eq!(refs[1]["uid"], "u2");
}

// ---------------------------------------------------------------- strategic merge patch: Pod specs

#[test]
fn smp_deployment_template_merges_containers_env_ports_mounts() {
    let patch = json!({"spec": {"template": {"spec": {"containers": [{
        "name": "web", "image": "nginx:1.26",
        "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}],
        "ports": [{"containerPort": 443}],
        "volumeMounts": [{"mountPath": "/data", "readOnly": true}]
    }]}}}});
    let out = smp(&deployment(), patch, "apps", "Deployment");
    let c = &out["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "nginx:1.26");
    // A live item keeps its place before a patched item it preceded; new items follow.
    assert_eq!(
        c["env"],
        json!([{"name": "A", "value": "1"}, {"name": "B", "value": "3"}, {"name": "C", "value": "4"}])
    );
    assert_eq!(
        c["ports"],
        json!([{"containerPort": 443}, {"containerPort": 80, "protocol": "TCP"}])
    );
    assert_eq!(
        c["volumeMounts"],
        json!([{"name": "data", "mountPath": "/data", "readOnly": true}])
    );
    // Lists without a strategy are replaced.
    let out = smp(
        &out,
        json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "args": ["-v"]}]}}}}),
        "apps",
        "Deployment",
    );
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][0]["args"],
        json!(["-v"])
    );
}

#[test]
fn smp_adds_a_sidecar_and_deletes_a_container() {
    let out = smp(
        &deployment(),
        json!({"spec": {"template": {"spec": {"containers": [{"name": "log", "image": "busybox"}]}}}}),
        "apps",
        "Deployment",
    );
    let names: Vec<&str> = out["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["log", "web"]);
    let out = smp(
        &out,
        json!({"spec": {"template": {"spec": {"containers": [{"$patch": "delete", "name": "web"}]}}}}),
        "apps",
        "Deployment",
    );
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"],
        json!([{"name": "log", "image": "busybox"}])
    );
}

#[test]
fn smp_volumes_honour_retain_keys() {
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/volumes": [{"name": "data"}],
        "volumes": [{"$retainKeys": ["hostPath", "name"], "hostPath": {"path": "/srv"}, "name": "data"}]
    }}}});
    let out = smp(&deployment(), patch, "apps", "Deployment");
    assert_eq!(
        out["spec"]["template"]["spec"]["volumes"],
        json!([{"name": "data", "hostPath": {"path": "/srv"}}])
    );

    let bad = json!({"spec": {"template": {"spec": {"volumes": [{"$retainKeys": ["name"], "hostPath": {"path": "/srv"}, "name": "data"}]}}}});
    let e = failure(strategic_merge_patch(&deployment(), &bad, "apps", "Deployment").unwrap_err());
    assert_eq!(
        (e.code, e.message.as_str()),
        (400, "invalid patch format of retainKeys")
    );
}

#[test]
fn smp_pod_spec_lists_with_merge_keys() {
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {
        "initContainers": [{"name": "init", "image": "a"}],
        "containers": [{"name": "c", "image": "i", "volumeDevices": [{"name": "d", "devicePath": "/dev/x"}]}],
        "ephemeralContainers": [{"name": "dbg", "image": "busybox"}],
        "imagePullSecrets": [{"name": "s1"}],
        "hostAliases": [{"ip": "10.0.0.1", "hostnames": ["a"]}],
        "topologySpreadConstraints": [{"topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule", "maxSkew": 1}],
        "tolerations": [{"key": "a", "operator": "Exists"}]
    }});
    let patch = json!({"spec": {
        "initContainers": [{"name": "init", "image": "b"}],
        "containers": [{"name": "c", "volumeDevices": [{"name": "e", "devicePath": "/dev/x"}]}],
        "ephemeralContainers": [{"name": "dbg", "tty": true}],
        "imagePullSecrets": [{"name": "s2"}],
        "hostAliases": [{"ip": "10.0.0.1", "hostnames": ["b"]}],
        "topologySpreadConstraints": [{"topologyKey": "zone", "maxSkew": 2}],
        "tolerations": [{"key": "b", "operator": "Exists"}]
    }});
    let out = smp(&pod, patch, "", "Pod");
    let s = &out["spec"];
    assert_eq!(s["initContainers"], json!([{"name": "init", "image": "b"}]));
    assert_eq!(
        s["containers"][0]["volumeDevices"],
        json!([{"name": "e", "devicePath": "/dev/x"}])
    );
    assert_eq!(
        s["ephemeralContainers"],
        json!([{"name": "dbg", "image": "busybox", "tty": true}])
    );
    assert_eq!(
        s["imagePullSecrets"],
        json!([{"name": "s2"}, {"name": "s1"}])
    );
    assert_eq!(
        s["hostAliases"],
        json!([{"ip": "10.0.0.1", "hostnames": ["b"]}])
    );
    assert_eq!(
        s["topologySpreadConstraints"],
        json!([{"topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule", "maxSkew": 2}])
    );
    assert_eq!(
        s["tolerations"],
        json!([{"key": "b", "operator": "Exists"}])
    );
}

// ---------------------------------------------------------------- strategic merge patch: status and other kinds

#[test]
fn smp_status_conditions_merge_by_type() {
    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}, "status": {
        "conditions": [{"type": "Ready", "status": "False"}, {"type": "MemoryPressure", "status": "False"}],
        "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}, {"type": "Hostname", "address": "n1"}]
    }});
    let out = smp(
        &node,
        json!({"status": {"conditions": [{"type": "Ready", "status": "True"}], "addresses": [{"type": "InternalIP", "address": "10.0.0.2"}]}}),
        "",
        "Node",
    );
    assert_eq!(
        out["status"]["conditions"],
        json!([{"type": "Ready", "status": "True"}, {"type": "MemoryPressure", "status": "False"}])
    );
    assert_eq!(
        out["status"]["addresses"],
        json!([{"type": "InternalIP", "address": "10.0.0.2"}, {"type": "Hostname", "address": "n1"}])
    );

    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "status": {"conditions": [{"type": "Ready", "status": "False"}]}});
    let out = smp(
        &pod,
        json!({"status": {"conditions": [{"type": "PodScheduled", "status": "True"}]}}),
        "",
        "Pod",
    );
    assert_eq!(out["status"]["conditions"].as_array().unwrap().len(), 2);

    for kind in ["Deployment", "ReplicaSet"] {
        let obj = json!({"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": "x"}, "status": {"conditions": [{"type": "Available", "status": "False"}]}});
        let out = smp(
            &obj,
            json!({"status": {"conditions": [{"type": "Progressing", "status": "True"}]}}),
            "apps",
            kind,
        );
        assert_eq!(
            out["status"]["conditions"].as_array().unwrap().len(),
            2,
            "{kind}"
        );
    }

    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}});
    let out = smp(
        &ns,
        json!({"spec": {"finalizers": []}, "status": {"conditions": [{"type": "NamespaceDeletionContentFailure", "status": "False"}]}}),
        "",
        "Namespace",
    );
    assert_eq!(out["spec"]["finalizers"], json!([]));
    assert_eq!(out["status"]["phase"], "Active");
}

#[test]
fn smp_endpoints_subsets_and_endpointslice_lists_are_replaced() {
    let ep = json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web"}, "subsets": [
        {"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}
    ]});
    let out = smp(
        &ep,
        json!({"subsets": [{"addresses": [{"ip": "10.0.0.2"}], "ports": [{"port": 80}]}]}),
        "",
        "Endpoints",
    );
    assert_eq!(
        out["subsets"],
        json!([{"addresses": [{"ip": "10.0.0.2"}], "ports": [{"port": 80}]}])
    );

    let slice = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"name": "web-abc"}, "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.0.0.1"]}], "ports": [{"port": 80}]});
    let out = smp(
        &slice,
        json!({"endpoints": [{"addresses": ["10.0.0.2"]}]}),
        "discovery.k8s.io",
        "EndpointSlice",
    );
    assert_eq!(out["endpoints"], json!([{"addresses": ["10.0.0.2"]}]));
    assert_eq!(out["ports"], json!([{"port": 80}]));
}

#[test]
fn smp_configmap_secret_serviceaccount() {
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}});
    let out = smp(&cm, json!({"data": {"a": null, "c": "3"}}), "", "ConfigMap");
    assert_eq!(out["data"], json!({"b": "2", "c": "3"}));

    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "type": "Opaque", "data": {"a": "MQ=="}});
    let out = smp(&secret, json!({"stringData": {"b": "2"}}), "", "Secret");
    assert_eq!(out["data"], json!({"a": "MQ=="}));
    assert_eq!(out["stringData"], json!({"b": "2"}));

    let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"},
        "secrets": [{"name": "t1"}], "imagePullSecrets": [{"name": "p1"}]});
    let out = smp(
        &sa,
        json!({"secrets": [{"name": "t2"}], "imagePullSecrets": [{"name": "p2"}]}),
        "",
        "ServiceAccount",
    );
    assert_eq!(out["secrets"], json!([{"name": "t2"}, {"name": "t1"}]));
    assert_eq!(out["imagePullSecrets"], json!([{"name": "p2"}]));
}

#[test]
fn smp_unknown_kind_merges_maps_and_replaces_lists() {
    let obj = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"a": {"x": 1}, "items": [1, 2]}});
    let out = smp(
        &obj,
        json!({"spec": {"a": {"y": 2}, "items": [3]}}),
        "example.com",
        "Widget",
    );
    assert_eq!(out["spec"], json!({"a": {"x": 1, "y": 2}, "items": [3]}));
}

#[test]
fn smp_directives_never_reach_the_result() {
    let obj = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}});
    let patch = json!({"spec": {"$setElementOrder/ports": [{"port": 80}], "ports": [{"port": 80, "name": null}], "type": "ClusterIP"}});
    let out = smp(&obj, patch, "", "Service");
    assert_eq!(
        out["spec"],
        json!({"ports": [{"port": 80}], "type": "ClusterIP"})
    );
}

// ---------------------------------------------------------------- JSON merge patch

#[test]
fn merge_patch_null_deletes_and_objects_merge() {
    let doc = json!({"metadata": {"name": "x", "labels": {"a": "1", "b": "2"}}, "spec": {"ports": [{"port": 80}, {"port": 53}]}});
    let out = merge_patch(
        &doc,
        &json!({"metadata": {"labels": {"a": null, "c": "3"}}, "spec": {"ports": [{"port": 443}]}}),
    )
    .unwrap();
    assert_eq!(
        out,
        json!({"metadata": {"name": "x", "labels": {"b": "2", "c": "3"}}, "spec": {"ports": [{"port": 443}]}})
    );
    let out = merge_patch(&doc, &json!({"status": {"phase": "Active", "x": null}})).unwrap();
    assert_eq!(out["status"], json!({"phase": "Active"}));
    let e = failure(merge_patch(&doc, &json!([1])).unwrap_err());
    assert_eq!(e.code, 400);
    assert_eq!(e.message, "error decoding patch: json: cannot unmarshal array into Go value of type map[string]interface {}");
}

// ---------------------------------------------------------------- JSON patch

#[test]
fn json_patch_operations() {
    let doc = json!({"metadata": {"name": "x", "labels": {"a/b": "1"}}, "spec": {"replicas": 1, "list": [1, 2]}});
    let patch = json!([
        {"op": "test", "path": "/spec/replicas", "value": 1},
        {"op": "replace", "path": "/spec/replicas", "value": 3},
        {"op": "add", "path": "/spec/list/-", "value": 3},
        {"op": "add", "path": "/spec/list/0", "value": 0},
        {"op": "remove", "path": "/metadata/labels/a~1b"},
        {"op": "copy", "from": "/metadata/name", "path": "/metadata/labels/name"},
        {"op": "move", "from": "/spec/list", "path": "/spec/items"}
    ]);
    let out = json_patch(&doc, &patch).unwrap();
    assert_eq!(
        out,
        json!({"metadata": {"name": "x", "labels": {"name": "x"}}, "spec": {"replicas": 3, "items": [0, 1, 2, 3]}})
    );
}

#[test]
fn json_patch_failing_test_is_422_with_kube_apiserver_text() {
    let doc = json!({"spec": {"replicas": 1}});
    let err = json_patch(&doc, &json!([{"op": "test", "path": "/spec/replicas", "value": 2}, {"op": "replace", "path": "/spec/replicas", "value": 5}])).unwrap_err();
    assert_eq!(err.code(), 422);
    assert_eq!(
        err.to_status_json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "the server rejected our request due to an error in our request", "reason": "Invalid", "details": {}, "code": 422})
    );
    for bad in [
        json!([{"op": "remove", "path": "/spec/missing"}]),
        json!([{"op": "replace", "path": "/spec/missing", "value": 1}]),
        json!([{"op": "add", "path": "/nope/x", "value": 1}]),
        json!([{"op": "frobnicate", "path": "/spec"}]),
        json!([{"op": "add", "path": "", "value": {}}]),
    ] {
        assert_eq!(json_patch(&doc, &bad).unwrap_err().code(), 422, "{bad}");
    }
    let e = failure(json_patch(&doc, &json!({"op": "add"})).unwrap_err());
    assert_eq!(e.code, 400);
    assert_eq!(e.message, "error decoding patch: json: cannot unmarshal object into Go value of type []handlers.jsonPatchOp");
}

// ---------------------------------------------------------------- server-side apply

fn apply_cfg_service(ports: Value, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default", "labels": labels},
           "spec": {"selector": {"app": "web"}, "ports": ports}})
}

fn entries(obj: &Value) -> Vec<Value> {
    obj["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn entry<'a>(list: &'a [Value], manager: &str, op: &str) -> &'a Value {
    list.iter()
        .find(|e| e["manager"] == manager && e["operation"] == op)
        .unwrap_or_else(|| panic!("no {op} entry for {manager} in {list:?}"))
}

#[test]
fn ssa_create_records_fields_v1() {
    let cfg = apply_cfg_service(
        json!([{"port": 80, "targetPort": 8080}]),
        json!({"app": "web"}),
    );
    let out = server_side_apply(None, &cfg, "kubectl", false, "", "Service", T0).unwrap();
    assert_eq!(out["spec"], cfg["spec"]);
    let mf = entries(&out);
    assert_eq!(mf.len(), 1);
    assert_eq!(
        serde_json::to_string(&mf[0]).unwrap(),
        concat!(
            r#"{"manager":"kubectl","operation":"Apply","apiVersion":"v1","time":"2024-05-01T10:00:00Z","fieldsType":"FieldsV1","fieldsV1":"#,
            r#"{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:ports":{"k:{\"port\":80,\"protocol\":\"TCP\"}":{"f:port":{},"f:targetPort":{},".":{}}},"f:selector":{}}}}"#
        )
    );
}

#[test]
fn ssa_reapply_without_a_field_removes_it() {
    let cfg = apply_cfg_service(
        json!([{"port": 80, "targetPort": 8080}, {"port": 53, "protocol": "UDP"}]),
        json!({"app": "web", "tier": "front"}),
    );
    let live = server_side_apply(None, &cfg, "kubectl", false, "", "Service", T0).unwrap();
    let cfg2 = apply_cfg_service(
        json!([{"port": 80, "targetPort": 8080}]),
        json!({"app": "web"}),
    );
    let out = server_side_apply(Some(&live), &cfg2, "kubectl", false, "", "Service", T1).unwrap();
    assert_eq!(out["metadata"]["labels"], json!({"app": "web"}));
    assert_eq!(port_numbers(&out), vec![80]);
    let mf = entries(&out);
    assert_eq!(mf.len(), 1);
    assert_eq!(mf[0]["time"], T1);
    assert!(
        mf[0]["fieldsV1"]["f:spec"]["f:ports"]
            .as_object()
            .unwrap()
            .len()
            == 1
    );
}

#[test]
fn ssa_noop_apply_keeps_the_time() {
    let cfg = apply_cfg_service(json!([{"port": 80}]), json!({"app": "web"}));
    let live = server_side_apply(None, &cfg, "kubectl", false, "", "Service", T0).unwrap();
    let out = server_side_apply(Some(&live), &cfg, "kubectl", false, "", "Service", T1).unwrap();
    assert_eq!(entries(&out)[0]["time"], T0);
}

fn deployment_with_csa_replicas() -> Value {
    let mut d = deployment();
    d["metadata"]["managedFields"] = json!([{
        "manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "apps/v1", "time": T0,
        "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}, "f:spec": {"f:replicas": {}}}
    }]);
    d
}

fn deployment_cfg(replicas: i64, app_label: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default", "labels": {"app": app_label}},
           "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]}}}})
}

#[test]
fn ssa_conflict_with_another_manager() {
    let live = deployment_with_csa_replicas();
    let err = server_side_apply(
        Some(&live),
        &deployment_cfg(3, "web"),
        "kubectl",
        false,
        "apps",
        "Deployment",
        T1,
    )
    .unwrap_err();
    let PatchError::Conflict(c) = &err else {
        panic!("want conflict, got {err:?}")
    };
    assert_eq!(
        c.conflicts,
        vec![(
            "kubectl-client-side-apply".to_string(),
            ".spec.replicas".to_string()
        )]
    );
    assert_eq!(c.message(), "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.replicas");
    assert_eq!(
        err.to_status_json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.replicas",
               "reason": "Conflict",
               "details": {"causes": [{"reason": "FieldManagerConflict", "message": "conflict with \"kubectl-client-side-apply\" using apps/v1", "field": ".spec.replicas"}]},
               "code": 409})
    );

    let err = server_side_apply(
        Some(&live),
        &deployment_cfg(3, "api"),
        "kubectl",
        false,
        "apps",
        "Deployment",
        T1,
    )
    .unwrap_err();
    assert_eq!(
        err.message(),
        "Apply failed with 2 conflicts: conflicts with \"kubectl-client-side-apply\" using apps/v1:\n- .metadata.labels.app\n- .spec.replicas"
    );
}

#[test]
fn ssa_same_value_shares_ownership_without_conflict() {
    let live = deployment_with_csa_replicas();
    let out = server_side_apply(
        Some(&live),
        &deployment_cfg(1, "web"),
        "kubectl",
        false,
        "apps",
        "Deployment",
        T1,
    )
    .unwrap();
    let mf = entries(&out);
    assert!(
        entry(&mf, "kubectl-client-side-apply", "Update")["fieldsV1"]["f:spec"]
            .get("f:replicas")
            .is_some()
    );
    assert!(entry(&mf, "kubectl", "Apply")["fieldsV1"]["f:spec"]
        .get("f:replicas")
        .is_some());
    // Apply entries are listed before Update entries.
    assert_eq!(mf[0]["operation"], "Apply");
}

#[test]
fn ssa_force_takes_ownership() {
    let live = deployment_with_csa_replicas();
    let out = server_side_apply(
        Some(&live),
        &deployment_cfg(3, "web"),
        "kubectl",
        true,
        "apps",
        "Deployment",
        T1,
    )
    .unwrap();
    assert_eq!(out["spec"]["replicas"], 3);
    let mf = entries(&out);
    let csa = entry(&mf, "kubectl-client-side-apply", "Update");
    assert_eq!(
        csa["fieldsV1"],
        json!({"f:metadata": {"f:labels": {"f:app": {}, ".": {}}}})
    );
    let mine = entry(&mf, "kubectl", "Apply");
    assert_eq!(mine["fieldsV1"]["f:spec"]["f:replicas"], json!({}));
    assert_eq!(mine["fieldsV1"]["f:spec"]["f:selector"], json!({}));
    assert_eq!(
        mine["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"],
        json!({"k:{\"name\":\"web\"}": {"f:image": {}, "f:name": {}, ".": {}}})
    );
}

#[test]
fn ssa_two_managers_own_different_ports_of_one_list() {
    let a = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {"ports": [{"port": 80, "targetPort": 8080}]}});
    let b = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {"ports": [{"port": 53, "protocol": "UDP"}]}});
    let live = server_side_apply(None, &a, "alice", false, "", "Service", T0).unwrap();
    let live = server_side_apply(Some(&live), &b, "bob", false, "", "Service", T0).unwrap();
    assert_eq!(port_numbers(&live), vec![80, 53]);
    let mf = entries(&live);
    assert_eq!(
        mf.iter()
            .map(|e| e["manager"].as_str().unwrap())
            .collect::<Vec<_>>(),
        vec!["alice", "bob"]
    );
    assert!(mf[0]["fieldsV1"]["f:spec"]["f:ports"]
        .get("k:{\"port\":80,\"protocol\":\"TCP\"}")
        .is_some());
    assert!(mf[1]["fieldsV1"]["f:spec"]["f:ports"]
        .get("k:{\"port\":53,\"protocol\":\"UDP\"}")
        .is_some());

    // Alice moves from 80 to 8080: her old port goes, Bob's stays.
    let a2 = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {"ports": [{"port": 8080, "targetPort": 8080}]}});
    let live = server_side_apply(Some(&live), &a2, "alice", false, "", "Service", T1).unwrap();
    assert_eq!(port_numbers(&live), vec![53, 8080]);

    // Bob changing Alice's port conflicts.
    let b2 = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 8080, "targetPort": 9}]}});
    let err = server_side_apply(Some(&live), &b2, "bob", false, "", "Service", T1).unwrap_err();
    assert_eq!(err.message(), "Apply failed with 1 conflict: conflict with \"alice\": .spec.ports[port=8080,protocol=\"TCP\"].targetPort");
}

#[test]
fn ssa_field_kept_when_an_update_manager_also_owns_it() {
    let cfg = apply_cfg_service(
        json!([{"port": 80}]),
        json!({"app": "web", "tier": "front"}),
    );
    let live = server_side_apply(None, &cfg, "kubectl", false, "", "Service", T0).unwrap();
    // kubectl label tier=back (merge patch) hands `tier` to kubectl-label.
    let mut labelled =
        merge_patch(&live, &json!({"metadata": {"labels": {"tier": "back"}}})).unwrap();
    record_update(Some(&live), &mut labelled, "kubectl-label", "v1", T1);
    let mf = entries(&labelled);
    assert_eq!(
        entry(&mf, "kubectl-label", "Update")["fieldsV1"],
        json!({"f:metadata": {"f:labels": {"f:tier": {}}}})
    );
    assert!(
        entry(&mf, "kubectl", "Apply")["fieldsV1"]["f:metadata"]["f:labels"]
            .get("f:tier")
            .is_none()
    );
    // Re-applying without `tier` leaves it: kubectl no longer owns it.
    let cfg2 = apply_cfg_service(json!([{"port": 80}]), json!({"app": "web"}));
    let out =
        server_side_apply(Some(&labelled), &cfg2, "kubectl", false, "", "Service", T1).unwrap();
    assert_eq!(
        out["metadata"]["labels"],
        json!({"app": "web", "tier": "back"})
    );
}

#[test]
fn ssa_before_first_apply_owns_untracked_fields() {
    let live = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
                      "spec": {"type": "ClusterIP", "ports": [{"port": 80, "protocol": "TCP"}]}});
    let cfg = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"}, "spec": {"type": "NodePort"}});
    let err =
        server_side_apply(Some(&live), &cfg, "kubectl", false, "", "Service", T1).unwrap_err();
    assert_eq!(
        err.message(),
        "Apply failed with 1 conflict: conflict with \"before-first-apply\" using v1: .spec.type"
    );
}

#[test]
fn ssa_rejects_wrong_version_and_managed_fields_in_config() {
    let live = server_side_apply(
        None,
        &apply_cfg_service(json!([{"port": 80}]), json!({})),
        "kubectl",
        false,
        "",
        "Service",
        T0,
    )
    .unwrap();
    let mut cfg = apply_cfg_service(json!([{"port": 80}]), json!({}));
    cfg["apiVersion"] = json!("v2");
    let e = failure(
        server_side_apply(Some(&live), &cfg, "kubectl", false, "", "Service", T1).unwrap_err(),
    );
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            400,
            "Incorrect version specified in apply patch. Specified patch version: v2, expected: v1"
        )
    );
    let mut cfg = apply_cfg_service(json!([{"port": 80}]), json!({}));
    cfg["metadata"]["managedFields"] = json!([]);
    let e = failure(
        server_side_apply(Some(&live), &cfg, "kubectl", false, "", "Service", T1).unwrap_err(),
    );
    assert_eq!(
        (e.code, e.message.as_str()),
        (400, "metadata.managedFields must be nil")
    );
}

#[test]
fn ssa_list_item_without_key_is_rejected() {
    let mut cfg = deployment_cfg(1, "web");
    cfg["spec"]["template"]["spec"]["containers"][0]["env"] = json!([{"value": "1"}]);
    let e = failure(
        server_side_apply(None, &cfg, "kubectl", false, "apps", "Deployment", T0).unwrap_err(),
    );
    assert_eq!(e.code, 500);
    assert_eq!(
        e.message,
        "failed to create typed patch object (default/web; apps/v1, Kind=Deployment): .spec.template.spec.containers[name=\"web\"].env: element 0: associative list with keys has an element that omits key field \"name\" (and doesn't have default value)"
    );
    let mut cfg = deployment_cfg(1, "web");
    cfg["spec"]["template"]["spec"]["containers"][0]["env"] =
        json!([{"name": "A"}, {"name": "A", "value": "2"}]);
    let e = failure(
        server_side_apply(None, &cfg, "kubectl", false, "apps", "Deployment", T0).unwrap_err(),
    );
    assert_eq!(
        e.message,
        "failed to create typed patch object (default/web; apps/v1, Kind=Deployment): .spec.template.spec.containers[name=\"web\"].env: duplicate entries for key [name=\"A\"]"
    );
}

#[test]
fn ssa_status_is_neither_applied_nor_owned() {
    let mut cfg = apply_cfg_service(json!([{"port": 80}]), json!({}));
    cfg["status"] = json!({"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}});
    let out = server_side_apply(None, &cfg, "kubectl", false, "", "Service", T0).unwrap();
    assert!(out.get("status").is_none());
    assert!(entries(&out)[0]["fieldsV1"].get("f:status").is_none());
}

#[test]
fn ssa_by_kubectl_refreshes_the_last_applied_annotation() {
    let mut live = service_80_53();
    live["metadata"]["annotations"] =
        json!({"kubectl.kubernetes.io/last-applied-configuration": "{\"old\":true}\n"});
    let cfg = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"}, "spec": {"type": "ClusterIP"}});
    let out = server_side_apply(Some(&live), &cfg, "kubectl", true, "", "Service", T1).unwrap();
    assert_eq!(
        out["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"],
        "{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"web\",\"namespace\":\"default\"},\"spec\":{\"type\":\"ClusterIP\"}}\n"
    );
    let other = server_side_apply(Some(&live), &cfg, "helm", true, "", "Service", T1).unwrap();
    assert_eq!(
        other["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"],
        "{\"old\":true}\n"
    );
}

// ---------------------------------------------------------------- managedFields for non-apply writes

#[test]
fn record_update_on_create_marks_added_maps_and_lists() {
    let mut svc = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}, "creationTimestamp": T0},
        "spec": {"ports": [{"name": "80-80", "protocol": "TCP", "port": 80, "targetPort": 80}], "selector": {"app": "web"},
                 "type": "ClusterIP", "sessionAffinity": "None", "internalTrafficPolicy": "Cluster"},
        "status": {"loadBalancer": {}}
    });
    record_update(None, &mut svc, "kubectl-create", "v1", T0);
    let mf = entries(&svc);
    assert_eq!(mf.len(), 1);
    assert_eq!(
        serde_json::to_string(&mf[0]).unwrap(),
        concat!(
            r#"{"manager":"kubectl-create","operation":"Update","apiVersion":"v1","time":"2024-05-01T10:00:00Z","fieldsType":"FieldsV1","fieldsV1":"#,
            r#"{"f:metadata":{"f:labels":{"f:app":{},".":{}}},"f:spec":{"f:internalTrafficPolicy":{},"#,
            r#""f:ports":{"k:{\"port\":80,\"protocol\":\"TCP\"}":{"f:name":{},"f:port":{},"f:protocol":{},"f:targetPort":{},".":{}},".":{}},"#,
            r#""f:selector":{},"f:sessionAffinity":{},"f:type":{}}}}"#
        )
    );
}

#[test]
fn record_update_on_deployment_create_follows_the_typed_zero_value() {
    let mut d = deployment();
    d["spec"]["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}});
    record_update(None, &mut d, "kubectl-create", "apps/v1", T0);
    let f = &entries(&d)[0]["fieldsV1"]["f:spec"];
    assert_eq!(f["f:selector"], json!({}));
    assert!(f["f:strategy"].get(".").is_none());
    assert!(f["f:strategy"]["f:rollingUpdate"].get(".").is_some());
    assert!(f["f:template"].get(".").is_none());
    assert!(f["f:template"]["f:spec"]["f:containers"].get(".").is_none());
    assert!(f["f:template"]["f:spec"]["f:volumes"].get(".").is_some());
    assert!(f["f:template"]["f:metadata"]["f:labels"].get(".").is_some());
}

#[test]
fn record_update_moves_changed_fields_away_from_the_applier() {
    let live = server_side_apply(
        None,
        &deployment_cfg(1, "web"),
        "kubectl",
        false,
        "apps",
        "Deployment",
        T0,
    )
    .unwrap();
    let mut edited = live.clone();
    edited["spec"]["replicas"] = json!(3);
    record_update(Some(&live), &mut edited, "kubectl-edit", "apps/v1", T1);
    let mf = entries(&edited);
    assert!(entry(&mf, "kubectl", "Apply")["fieldsV1"]["f:spec"]
        .get("f:replicas")
        .is_none());
    assert_eq!(
        entry(&mf, "kubectl-edit", "Update")["fieldsV1"],
        json!({"f:spec": {"f:replicas": {}}})
    );
    assert_eq!(entry(&mf, "kubectl-edit", "Update")["time"], T1);

    let err = server_side_apply(
        Some(&edited),
        &deployment_cfg(1, "web"),
        "kubectl",
        false,
        "apps",
        "Deployment",
        T1,
    )
    .unwrap_err();
    assert_eq!(err.message(), "Apply failed with 1 conflict: conflict with \"kubectl-edit\" using apps/v1: .spec.replicas");

    // No change, no new entry.
    let mut same = edited.clone();
    record_update(Some(&edited), &mut same, "kubectl-replace", "apps/v1", T1);
    assert_eq!(entries(&same).len(), 2);
}

#[test]
fn record_update_keeps_status_out_and_status_writes_use_the_subresource() {
    let live = server_side_apply(
        None,
        &deployment_cfg(1, "web"),
        "kubectl",
        false,
        "apps",
        "Deployment",
        T0,
    )
    .unwrap();
    let mut new = live.clone();
    new["status"] = json!({"replicas": 1});
    record_update(Some(&live), &mut new, "someone", "apps/v1", T1);
    assert_eq!(entries(&new).len(), 1);

    let mut status = live.clone();
    status["status"] =
        json!({"replicas": 1, "conditions": [{"type": "Available", "status": "True"}]});
    record_status_update(&live, &mut status, "kube-controller-manager", "apps/v1", T1);
    let e = entry(&entries(&status), "kube-controller-manager", "Update").clone();
    assert_eq!(e["subresource"], "status");
    assert_eq!(
        e["fieldsV1"],
        json!({"f:status": {"f:conditions": {"k:{\"type\":\"Available\"}": {"f:status": {}, "f:type": {}, ".": {}}, ".": {}}, "f:replicas": {}, ".": {}}})
    );
}

#[test]
fn record_update_reset_with_empty_managed_fields() {
    let live = server_side_apply(
        None,
        &deployment_cfg(1, "web"),
        "kubectl",
        false,
        "apps",
        "Deployment",
        T0,
    )
    .unwrap();
    let mut new = live.clone();
    new["metadata"]["managedFields"] = json!([{}]);
    record_update(Some(&live), &mut new, "kubectl-patch", "apps/v1", T1);
    assert!(new["metadata"].get("managedFields").is_none());
}

#[test]
fn smp_replicaset_template_and_kubectl_apply_container_shape() {
    let mut rs = deployment();
    rs["kind"] = json!("ReplicaSet");
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "web"}],
        "containers": [{"image": "nginx:1.26", "name": "web"}]
    }}}});
    let out = smp(&rs, patch, "apps", "ReplicaSet");
    let c = &out["spec"]["template"]["spec"]["containers"];
    assert_eq!(c.as_array().unwrap().len(), 1);
    assert_eq!(c[0]["image"], "nginx:1.26");
    assert_eq!(c[0]["env"].as_array().unwrap().len(), 2);
}

#[test]
fn smp_kubectl_apply_changes_one_port_and_deletes_another() {
    let patch = json!({"spec": {
        "$setElementOrder/ports": [{"port": 80}],
        "ports": [{"port": 80, "targetPort": 9090}, {"$patch": "delete", "port": 53}]
    }});
    let out = smp(&service_80_53(), patch, "", "Service");
    assert_eq!(
        out["spec"]["ports"],
        json!([{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 9090}])
    );
}

#[test]
fn ssa_conflicts_with_two_managers_are_grouped_by_manager() {
    let mut live = deployment();
    live["metadata"]["managedFields"] = json!([
        {"manager": "kubectl-edit", "operation": "Update", "apiVersion": "apps/v1", "time": T0,
         "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:labels": {"f:app": {}}}}},
        {"manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "apps/v1", "time": T0,
         "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}}
    ]);
    let err = server_side_apply(
        Some(&live),
        &deployment_cfg(3, "api"),
        "kubectl",
        false,
        "apps",
        "Deployment",
        T1,
    )
    .unwrap_err();
    assert_eq!(
        err.message(),
        "Apply failed with 2 conflicts: conflicts with \"kubectl-client-side-apply\" using apps/v1:\n- .spec.replicas\nconflicts with \"kubectl-edit\" using apps/v1:\n- .metadata.labels.app"
    );
    let PatchError::Conflict(c) = err else {
        unreachable!()
    };
    assert_eq!(
        c.causes()[1],
        json!({"reason": "FieldManagerConflict", "message": "conflict with \"kubectl-edit\" using apps/v1", "field": ".metadata.labels.app"})
    );
}

#[test]
fn ssa_finalizers_are_a_set() {
    let cfg = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "finalizers": ["example.com/a"]}, "data": {"k": "v"}});
    let live = server_side_apply(None, &cfg, "kubectl", false, "", "ConfigMap", T0).unwrap();
    assert_eq!(
        entries(&live)[0]["fieldsV1"],
        json!({"f:data": {"f:k": {}}, "f:metadata": {"f:finalizers": {"v:\"example.com/a\"": {}}}})
    );
    let other = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "finalizers": ["example.com/b"]}});
    let out = server_side_apply(
        Some(&live),
        &other,
        "controller",
        false,
        "",
        "ConfigMap",
        T1,
    )
    .unwrap();
    assert_eq!(
        out["metadata"]["finalizers"],
        json!(["example.com/a", "example.com/b"])
    );
    assert_eq!(out["data"], json!({"k": "v"}));
}

#[test]
fn errors_convert_to_kubeport_statuses() {
    // Callers match on the two variants and hand the failure to Status builders as a string.
    let err = json_patch(&json!({}), &json!({"op": "add"})).unwrap_err();
    let status = match err.clone() {
        PatchError::Invalid(msg) => kubeport_core::Status::bad_request(msg),
        PatchError::Conflict(c) => {
            kubeport_core::Status::new(409, kubeport_core::StatusReason::Conflict, c.message())
        }
    };
    assert_eq!(status.code, 400);
    assert_eq!(status.message, err.message());
    assert_eq!(err.to_status().code, 400);

    let internal = failure(
        strategic_merge_patch(
            &service_80_53(),
            &json!({"spec": {"ports": [{"name": "x"}]}}),
            "",
            "Service",
        )
        .unwrap_err(),
    );
    let as_error = PatchError::Invalid(internal);
    assert_eq!(
        as_error.to_status_json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "map: map[name:x] does not contain declared merge key: port", "code": 500})
    );
}

#[test]
fn smp_deployment_strategy_retain_keys_from_kubectl_apply() {
    let mut d = deployment();
    d["spec"]["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}});
    let out = smp(
        &d,
        json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": null}}}),
        "apps",
        "Deployment",
    );
    assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
}
