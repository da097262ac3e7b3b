//! Real request bodies: kubectl 1.32 protobuf must decode to exactly the JSON kubectl 1.31 sent
//! for the same command (see tests/kubectl/README.md).

use k8s_openapi::api::{apps::v1 as apps, batch::v1 as batch, core::v1 as core};
use kubeport_protobuf::{decode, DecodeError};
use serde::de::DeserializeOwned;
use serde_json::Value;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/kubectl/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|err| panic!("{path}: {err}"))
}

fn typed<T: DeserializeOwned>(value: &Value) -> T {
    serde_json::from_value(value.clone()).expect("deserializes into the k8s-openapi type")
}

/// Decodes `NAME.pb`, checks it against `NAME.json` byte for byte (key order included) and
/// returns the JSON.
fn decoded(name: &str) -> Value {
    let json = decode(&fixture(&format!("{name}.pb"))).unwrap();
    let expected = String::from_utf8(fixture(&format!("{name}.json"))).unwrap();
    assert_eq!(
        serde_json::to_string(&json).unwrap(),
        expected.trim_end(),
        "{name}"
    );
    json
}

#[test]
fn create_namespace_dev() {
    // kubectl create namespace dev
    let json = decoded("create-namespace");
    let namespace: core::Namespace = typed(&json);
    assert_eq!(namespace.metadata.name.as_deref(), Some("dev"));
}

#[test]
fn create_service_nodeport_web() {
    // kubectl create service nodeport web --tcp=80:80
    let json = decoded("create-service-nodeport");
    assert_eq!(json["spec"]["ports"][0]["targetPort"], 80);
    let service: core::Service = typed(&json);
    let spec = service.spec.unwrap();
    assert_eq!(spec.type_.as_deref(), Some("NodePort"));
    let port = &spec.ports.unwrap()[0];
    assert_eq!(
        (port.name.as_deref(), port.port, port.node_port),
        (Some("80-80"), 80, None)
    );
}

#[test]
fn create_service_clusterip_string_target_port() {
    // kubectl create service clusterip web --tcp=80:http
    let json = decoded("create-service-clusterip");
    assert_eq!(json["spec"]["ports"][0]["targetPort"], "http");
    // --clusterip not given: kubectl sends clusterIP "", which Go's JSON omits.
    assert!(json["spec"].get("clusterIP").is_none());
    let service: core::Service = typed(&json);
    let port = &service.spec.unwrap().ports.unwrap()[0];
    assert_eq!(
        port.target_port,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String("http".into()))
    );
}

#[test]
fn create_service_loadbalancer_and_externalname() {
    // kubectl create service loadbalancer lb --tcp=5678:8080
    let service: core::Service = typed(&decoded("create-service-loadbalancer"));
    assert_eq!(service.spec.unwrap().type_.as_deref(), Some("LoadBalancer"));
    // kubectl create service externalname en --external-name=bar.com
    let service: core::Service = typed(&decoded("create-service-externalname"));
    assert_eq!(
        service.spec.unwrap().external_name.as_deref(),
        Some("bar.com")
    );
}

#[test]
fn create_deployment_web() {
    // kubectl create deployment web --image=nginx --replicas=2 --port=80
    let deployment: apps::Deployment = typed(&decoded("create-deployment"));
    let spec = deployment.spec.unwrap();
    assert_eq!(spec.replicas, Some(2));
    let container = &spec.template.spec.unwrap().containers[0];
    assert_eq!(
        (container.name.as_str(), container.image.as_deref()),
        ("nginx", Some("nginx"))
    );
    assert_eq!(container.ports.as_ref().unwrap()[0].container_port, 80);
    // kubectl create deployment multi --image=nginx --image=redis
    let deployment: apps::Deployment = typed(&decoded("create-deployment-two-images"));
    assert_eq!(
        deployment
            .spec
            .unwrap()
            .template
            .spec
            .unwrap()
            .containers
            .len(),
        2
    );
}

#[test]
fn create_configmap_and_secrets() {
    // kubectl create configmap c --from-literal=a=b
    let config_map: core::ConfigMap = typed(&decoded("create-configmap"));
    assert_eq!(config_map.data.unwrap()["a"], "b");
    // kubectl create configmap c2 --from-literal=a=b --from-literal=z=y
    decoded("create-configmap-two-keys");
    // kubectl create secret generic s --from-literal=a=b: data is base64
    let json = decoded("create-secret-generic");
    assert_eq!(json["data"]["a"], "Yg==");
    let secret: core::Secret = typed(&json);
    assert_eq!(secret.data.unwrap()["a"].0, b"b");
    // kubectl create secret docker-registry reg --docker-username=u --docker-password=p --docker-server=r.io
    let secret: core::Secret = typed(&decoded("create-secret-docker-registry"));
    assert_eq!(
        secret.type_.as_deref(),
        Some("kubernetes.io/dockerconfigjson")
    );
}

#[test]
fn create_serviceaccount_quota_job_cronjob() {
    // kubectl create serviceaccount robot
    let _: core::ServiceAccount = typed(&decoded("create-serviceaccount"));
    // kubectl create quota q --hard=cpu=1,memory=1G,pods=2,services=3 --scopes=BestEffort
    let quota: core::ResourceQuota = typed(&decoded("create-quota"));
    assert_eq!(quota.spec.unwrap().hard.unwrap()["memory"].0, "1G");
    // kubectl create job j --image=busybox -- date
    let _: batch::Job = typed(&decoded("create-job"));
    // kubectl create cronjob cj --image=busybox --schedule="*/1 * * * *" -- date
    let cron_job: batch::CronJob = typed(&decoded("create-cronjob"));
    assert_eq!(cron_job.spec.unwrap().schedule, "*/1 * * * *");
}

#[test]
fn full_pod_spec_from_create_job_from_cronjob() {
    // kubectl create job fromcron --from=cronjob/rich: the CronJob's whole pod template
    // (volumes of many kinds, probes, env sources, affinity, security contexts, ...) and
    // pointer fields set to zero (`backoffLimit: 0`, `terminationGracePeriodSeconds: 0`,
    // `automountServiceAccountToken: false`) come back as Go wrote them.
    let json = decoded("create-job-from-cronjob");
    assert_eq!(json["spec"]["backoffLimit"], 0);
    assert_eq!(
        json["spec"]["template"]["spec"]["automountServiceAccountToken"],
        false
    );
    let job: batch::Job = typed(&json);
    let pod = job.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.termination_grace_period_seconds, Some(0));
    assert_eq!(pod.volumes.unwrap().len(), 11);
    // A gRPC probe without `service` is `"service": null` in Go's JSON (pointer, no omitempty).
    let probe = &json["spec"]["template"]["spec"]["containers"][1]["livenessProbe"];
    assert_eq!(
        probe["grpc"],
        serde_json::json!({"port": 9090, "service": null})
    );
}

#[test]
fn full_pod_from_debug_copy_to() {
    // kubectl debug richpod --copy-to=dbg --image=busybox --container=dbg -- sleep 1
    let pod: core::Pod = typed(&decoded("debug-copy-to"));
    let spec = pod.spec.unwrap();
    assert_eq!(spec.containers.last().unwrap().name, "dbg");
    assert_eq!(spec.share_process_namespace, Some(true));
}

#[test]
fn kinds_kubectl_sends_that_are_not_supported() {
    for (name, api_version, kind) in [
        ("create-ingress", "networking.k8s.io/v1", "Ingress"),
        (
            "create-poddisruptionbudget",
            "policy/v1",
            "PodDisruptionBudget",
        ),
        (
            "create-priorityclass",
            "scheduling.k8s.io/v1",
            "PriorityClass",
        ),
        ("create-role", "rbac.authorization.k8s.io/v1", "Role"),
    ] {
        let err = decode(&fixture(&format!("{name}.pb"))).unwrap_err();
        assert_eq!(
            err,
            DecodeError::UnsupportedKind {
                api_version: api_version.into(),
                kind: kind.into()
            }
        );
        assert_eq!(
            err.to_string(),
            format!("no kind \"{kind}\" is registered for version \"{api_version}\"")
        );
    }
}
