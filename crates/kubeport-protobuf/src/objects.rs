//! core/v1 objects other than pods (Namespace, Service, ConfigMap, Secret, ServiceAccount,
//! ResourceQuota, Event, Endpoints, Node) and discovery/v1 EndpointSlice.

use k8s_pb::api::core::v1 as core;
use k8s_pb::api::discovery::v1 as discovery;

use crate::json::go_json;

go_json! {
    core::AttachedVolume {
        "name" name always, "devicePath" device_path always,
    }
    core::ClientIpConfig {
        "timeoutSeconds" timeout_seconds ptr,
    }
    core::ConfigMap {
        "metadata" metadata, "immutable" immutable ptr, "data" data, "binaryData" binary_data,
    }
    core::ConfigMapNodeConfigSource {
        "namespace" namespace always, "name" name always, "uid" uid,
        "resourceVersion" resource_version, "kubeletConfigKey" kubelet_config_key always,
    }
    core::ContainerImage {
        "names" names, "sizeBytes" size_bytes,
    }
    core::DaemonEndpoint {
        "Port" port always,
    }
    core::EndpointAddress {
        "ip" ip always, "hostname" hostname, "nodeName" node_name ptr, "targetRef" target_ref,
    }
    core::EndpointPort {
        "name" name, "port" port always, "protocol" protocol, "appProtocol" app_protocol ptr,
    }
    core::EndpointSubset {
        "addresses" addresses, "notReadyAddresses" not_ready_addresses, "ports" ports,
    }
    core::Endpoints {
        "metadata" metadata, "subsets" subsets,
    }
    core::Event {
        "metadata" metadata, "involvedObject" involved_object, "reason" reason, "message" message,
        "source" source, "firstTimestamp" first_timestamp, "lastTimestamp" last_timestamp,
        "count" count, "type" r#type, "eventTime" event_time, "series" series, "action" action,
        "related" related, "reportingComponent" reporting_component always,
        "reportingInstance" reporting_instance always,
    }
    core::EventSeries {
        "count" count, "lastObservedTime" last_observed_time,
    }
    core::EventSource {
        "component" component, "host" host,
    }
    core::LoadBalancerIngress {
        "ip" ip, "hostname" hostname, "ipMode" ip_mode ptr, "ports" ports,
    }
    core::LoadBalancerStatus {
        "ingress" ingress,
    }
    core::Namespace {
        "metadata" metadata, "spec" spec, "status" status,
    }
    core::NamespaceCondition {
        "type" r#type always, "status" status always, "lastTransitionTime" last_transition_time,
        "reason" reason, "message" message,
    }
    core::NamespaceSpec {
        "finalizers" finalizers,
    }
    core::NamespaceStatus {
        "phase" phase, "conditions" conditions,
    }
    core::Node {
        "metadata" metadata, "spec" spec, "status" status,
    }
    core::NodeAddress {
        "type" r#type always, "address" address always,
    }
    core::NodeCondition {
        "type" r#type always, "status" status always, "lastHeartbeatTime" last_heartbeat_time,
        "lastTransitionTime" last_transition_time, "reason" reason, "message" message,
    }
    core::NodeConfigSource {
        "configMap" config_map,
    }
    core::NodeConfigStatus {
        "assigned" assigned, "active" active, "lastKnownGood" last_known_good, "error" error,
    }
    core::NodeDaemonEndpoints {
        "kubeletEndpoint" kubelet_endpoint,
    }
    core::NodeFeatures {
        "supplementalGroupsPolicy" supplemental_groups_policy ptr,
    }
    core::NodeRuntimeHandler {
        "name" name always, "features" features,
    }
    core::NodeRuntimeHandlerFeatures {
        "recursiveReadOnlyMounts" recursive_read_only_mounts ptr,
        "userNamespaces" user_namespaces ptr,
    }
    core::NodeSpec {
        "podCIDR" pod_cidr, "podCIDRs" pod_cid_rs, "providerID" provider_id,
        "unschedulable" unschedulable, "taints" taints, "configSource" config_source,
        "externalID" external_id,
    }
    core::NodeStatus {
        "capacity" capacity, "allocatable" allocatable, "phase" phase, "conditions" conditions,
        "addresses" addresses, "daemonEndpoints" daemon_endpoints, "nodeInfo" node_info,
        "images" images, "volumesInUse" volumes_in_use, "volumesAttached" volumes_attached,
        "config" config, "runtimeHandlers" runtime_handlers, "features" features,
        "declaredFeatures" declared_features,
    }
    core::NodeSwapStatus {
        "capacity" capacity ptr,
    }
    core::NodeSystemInfo {
        "machineID" machine_id always, "systemUUID" system_uuid always, "bootID" boot_id always,
        "kernelVersion" kernel_version always, "osImage" os_image always,
        "containerRuntimeVersion" container_runtime_version always,
        "kubeletVersion" kubelet_version always, "kubeProxyVersion" kube_proxy_version always,
        "operatingSystem" operating_system always, "architecture" architecture always, "swap" swap,
    }
    core::ObjectReference {
        "kind" kind, "namespace" namespace, "name" name, "uid" uid, "apiVersion" api_version,
        "resourceVersion" resource_version, "fieldPath" field_path,
    }
    core::PortStatus {
        "port" port always, "protocol" protocol always, "error" error ptr,
    }
    core::ResourceQuota {
        "metadata" metadata, "spec" spec, "status" status,
    }
    core::ResourceQuotaSpec {
        "hard" hard, "scopes" scopes, "scopeSelector" scope_selector,
    }
    core::ResourceQuotaStatus {
        "hard" hard, "used" used,
    }
    core::ScopeSelector {
        "matchExpressions" match_expressions,
    }
    core::ScopedResourceSelectorRequirement {
        "scopeName" scope_name always, "operator" operator always, "values" values,
    }
    core::Secret {
        "metadata" metadata, "immutable" immutable ptr, "data" data, "stringData" string_data,
        "type" r#type,
    }
    core::Service {
        "metadata" metadata, "spec" spec, "status" status,
    }
    core::ServiceAccount {
        "metadata" metadata, "secrets" secrets, "imagePullSecrets" image_pull_secrets,
        "automountServiceAccountToken" automount_service_account_token ptr,
    }
    core::ServicePort {
        "name" name, "protocol" protocol, "appProtocol" app_protocol ptr, "port" port always,
        "targetPort" target_port, "nodePort" node_port,
    }
    core::ServiceSpec {
        "ports" ports, "selector" selector, "clusterIP" cluster_ip, "clusterIPs" cluster_ips,
        "type" r#type, "externalIPs" external_ips, "sessionAffinity" session_affinity,
        "loadBalancerIP" load_balancer_ip, "loadBalancerSourceRanges" load_balancer_source_ranges,
        "externalName" external_name, "externalTrafficPolicy" external_traffic_policy,
        "healthCheckNodePort" health_check_node_port,
        "publishNotReadyAddresses" publish_not_ready_addresses,
        "sessionAffinityConfig" session_affinity_config, "ipFamilies" ip_families,
        "ipFamilyPolicy" ip_family_policy ptr,
        "allocateLoadBalancerNodePorts" allocate_load_balancer_node_ports ptr,
        "loadBalancerClass" load_balancer_class ptr,
        "internalTrafficPolicy" internal_traffic_policy ptr,
        "trafficDistribution" traffic_distribution ptr,
    }
    core::ServiceStatus {
        "loadBalancer" load_balancer, "conditions" conditions,
    }
    core::SessionAffinityConfig {
        "clientIP" client_ip,
    }
    core::Taint {
        "key" key always, "value" value, "effect" effect always, "timeAdded" time_added,
    }
}
go_json! {
    discovery::Endpoint {
        "addresses" addresses always, "conditions" conditions, "hostname" hostname ptr,
        "targetRef" target_ref, "deprecatedTopology" deprecated_topology, "nodeName" node_name ptr,
        "zone" zone ptr, "hints" hints,
    }
    discovery::EndpointConditions {
        "ready" ready ptr, "serving" serving ptr, "terminating" terminating ptr,
    }
    discovery::EndpointHints {
        "forZones" for_zones, "forNodes" for_nodes,
    }
    discovery::EndpointPort {
        "name" name ptr, "protocol" protocol ptr, "port" port ptr, "appProtocol" app_protocol ptr,
    }
    discovery::EndpointSlice {
        "metadata" metadata, "addressType" address_type always, "endpoints" endpoints always,
        "ports" ports,
    }
    discovery::ForNode {
        "name" name always,
    }
    discovery::ForZone {
        "name" name always,
    }
}
