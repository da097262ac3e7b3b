//! core/v1 Pod, PodTemplateSpec and everything a PodSpec/PodStatus holds except volume sources.

use k8s_pb::api::core::v1 as core;

use crate::json::go_json;

go_json! {
    core::Affinity {
        "nodeAffinity" node_affinity, "podAffinity" pod_affinity,
        "podAntiAffinity" pod_anti_affinity,
    }
    core::AppArmorProfile {
        "type" r#type always, "localhostProfile" localhost_profile ptr,
    }
    core::Capabilities {
        "add" add, "drop" drop,
    }
    core::ConfigMapEnvSource {
        "" local_object_reference inline, "optional" optional ptr,
    }
    core::ConfigMapKeySelector {
        "" local_object_reference inline, "key" key always, "optional" optional ptr,
    }
    core::Container {
        "name" name always, "image" image, "command" command, "args" args,
        "workingDir" working_dir, "ports" ports, "envFrom" env_from, "env" env,
        "resources" resources, "resizePolicy" resize_policy, "restartPolicy" restart_policy ptr,
        "restartPolicyRules" restart_policy_rules, "volumeMounts" volume_mounts,
        "volumeDevices" volume_devices, "livenessProbe" liveness_probe,
        "readinessProbe" readiness_probe, "startupProbe" startup_probe, "lifecycle" lifecycle,
        "terminationMessagePath" termination_message_path,
        "terminationMessagePolicy" termination_message_policy, "imagePullPolicy" image_pull_policy,
        "securityContext" security_context, "stdin" stdin, "stdinOnce" stdin_once, "tty" tty,
    }
    core::ContainerExtendedResourceRequest {
        "containerName" container_name always, "resourceName" resource_name always,
        "requestName" request_name always,
    }
    core::ContainerPort {
        "name" name, "hostPort" host_port, "containerPort" container_port always,
        "protocol" protocol, "hostIP" host_ip,
    }
    core::ContainerResizePolicy {
        "resourceName" resource_name always, "restartPolicy" restart_policy always,
    }
    core::ContainerRestartRule {
        "action" action, "exitCodes" exit_codes,
    }
    core::ContainerRestartRuleOnExitCodes {
        "operator" operator, "values" values,
    }
    core::ContainerState {
        "waiting" waiting, "running" running, "terminated" terminated,
    }
    core::ContainerStateRunning {
        "startedAt" started_at,
    }
    core::ContainerStateTerminated {
        "exitCode" exit_code always, "signal" signal, "reason" reason, "message" message,
        "startedAt" started_at, "finishedAt" finished_at, "containerID" container_id,
    }
    core::ContainerStateWaiting {
        "reason" reason, "message" message,
    }
    core::ContainerStatus {
        "name" name always, "state" state, "lastState" last_state, "ready" ready always,
        "restartCount" restart_count always, "image" image always, "imageID" image_id always,
        "containerID" container_id, "started" started ptr,
        "allocatedResources" allocated_resources, "resources" resources,
        "volumeMounts" volume_mounts, "user" user,
        "allocatedResourcesStatus" allocated_resources_status, "stopSignal" stop_signal ptr,
    }
    core::ContainerUser {
        "linux" linux,
    }
    core::EnvFromSource {
        "prefix" prefix, "configMapRef" config_map_ref, "secretRef" secret_ref,
    }
    core::EnvVar {
        "name" name always, "value" value, "valueFrom" value_from,
    }
    core::EnvVarSource {
        "fieldRef" field_ref, "resourceFieldRef" resource_field_ref,
        "configMapKeyRef" config_map_key_ref, "secretKeyRef" secret_key_ref,
        "fileKeyRef" file_key_ref,
    }
    core::EphemeralContainer {
        "" ephemeral_container_common inline, "targetContainerName" target_container_name,
    }
    core::EphemeralContainerCommon {
        "name" name always, "image" image, "command" command, "args" args,
        "workingDir" working_dir, "ports" ports, "envFrom" env_from, "env" env,
        "resources" resources, "resizePolicy" resize_policy, "restartPolicy" restart_policy ptr,
        "restartPolicyRules" restart_policy_rules, "volumeMounts" volume_mounts,
        "volumeDevices" volume_devices, "livenessProbe" liveness_probe,
        "readinessProbe" readiness_probe, "startupProbe" startup_probe, "lifecycle" lifecycle,
        "terminationMessagePath" termination_message_path,
        "terminationMessagePolicy" termination_message_policy, "imagePullPolicy" image_pull_policy,
        "securityContext" security_context, "stdin" stdin, "stdinOnce" stdin_once, "tty" tty,
    }
    core::ExecAction {
        "command" command,
    }
    core::FileKeySelector {
        "volumeName" volume_name always, "path" path always, "key" key always,
        "optional" optional ptr,
    }
    core::GrpcAction {
        "port" port always, "service" service null,
    }
    core::HostAlias {
        "ip" ip always, "hostnames" hostnames,
    }
    core::HostIp {
        "ip" ip always,
    }
    core::HttpGetAction {
        "path" path, "port" port, "host" host, "scheme" scheme, "httpHeaders" http_headers,
    }
    core::HttpHeader {
        "name" name always, "value" value always,
    }
    core::KeyToPath {
        "key" key always, "path" path always, "mode" mode ptr,
    }
    core::Lifecycle {
        "postStart" post_start, "preStop" pre_stop, "stopSignal" stop_signal ptr,
    }
    core::LifecycleHandler {
        "exec" exec, "httpGet" http_get, "tcpSocket" tcp_socket, "sleep" sleep,
    }
    core::LinuxContainerUser {
        "uid" uid always, "gid" gid always, "supplementalGroups" supplemental_groups,
    }
    core::LocalObjectReference {
        "name" name,
    }
    core::NodeAffinity {
        "requiredDuringSchedulingIgnoredDuringExecution" required_during_scheduling_ignored_during_execution,
        "preferredDuringSchedulingIgnoredDuringExecution" preferred_during_scheduling_ignored_during_execution,
    }
    core::NodeSelector {
        "nodeSelectorTerms" node_selector_terms always,
    }
    core::NodeSelectorRequirement {
        "key" key always, "operator" operator always, "values" values,
    }
    core::NodeSelectorTerm {
        "matchExpressions" match_expressions, "matchFields" match_fields,
    }
    core::ObjectFieldSelector {
        "apiVersion" api_version, "fieldPath" field_path always,
    }
    core::Pod {
        "metadata" metadata, "spec" spec, "status" status,
    }
    core::PodAffinity {
        "requiredDuringSchedulingIgnoredDuringExecution" required_during_scheduling_ignored_during_execution,
        "preferredDuringSchedulingIgnoredDuringExecution" preferred_during_scheduling_ignored_during_execution,
    }
    core::PodAffinityTerm {
        "labelSelector" label_selector, "namespaces" namespaces, "topologyKey" topology_key always,
        "namespaceSelector" namespace_selector, "matchLabelKeys" match_label_keys,
        "mismatchLabelKeys" mismatch_label_keys,
    }
    core::PodAntiAffinity {
        "requiredDuringSchedulingIgnoredDuringExecution" required_during_scheduling_ignored_during_execution,
        "preferredDuringSchedulingIgnoredDuringExecution" preferred_during_scheduling_ignored_during_execution,
    }
    core::PodCondition {
        "type" r#type always, "observedGeneration" observed_generation, "status" status always,
        "lastProbeTime" last_probe_time, "lastTransitionTime" last_transition_time,
        "reason" reason, "message" message,
    }
    core::PodDnsConfig {
        "nameservers" nameservers, "searches" searches, "options" options,
    }
    core::PodDnsConfigOption {
        "name" name, "value" value ptr,
    }
    core::PodExtendedResourceClaimStatus {
        "requestMappings" request_mappings always, "resourceClaimName" resource_claim_name always,
    }
    core::PodIp {
        "ip" ip always,
    }
    core::PodOs {
        "name" name always,
    }
    core::PodReadinessGate {
        "conditionType" condition_type always,
    }
    core::PodResourceClaim {
        "name" name always, "resourceClaimName" resource_claim_name ptr,
        "resourceClaimTemplateName" resource_claim_template_name ptr,
    }
    core::PodResourceClaimStatus {
        "name" name always, "resourceClaimName" resource_claim_name ptr,
    }
    core::PodSchedulingGate {
        "name" name always,
    }
    core::PodSecurityContext {
        "seLinuxOptions" se_linux_options, "windowsOptions" windows_options,
        "runAsUser" run_as_user ptr, "runAsGroup" run_as_group ptr,
        "runAsNonRoot" run_as_non_root ptr, "supplementalGroups" supplemental_groups,
        "supplementalGroupsPolicy" supplemental_groups_policy ptr, "fsGroup" fs_group ptr,
        "sysctls" sysctls, "fsGroupChangePolicy" fs_group_change_policy ptr,
        "seccompProfile" seccomp_profile, "appArmorProfile" app_armor_profile,
        "seLinuxChangePolicy" se_linux_change_policy ptr,
    }
    core::PodSpec {
        "volumes" volumes, "initContainers" init_containers, "containers" containers always,
        "ephemeralContainers" ephemeral_containers, "restartPolicy" restart_policy,
        "terminationGracePeriodSeconds" termination_grace_period_seconds ptr,
        "activeDeadlineSeconds" active_deadline_seconds ptr, "dnsPolicy" dns_policy,
        "nodeSelector" node_selector, "serviceAccountName" service_account_name,
        "serviceAccount" service_account,
        "automountServiceAccountToken" automount_service_account_token ptr, "nodeName" node_name,
        "hostNetwork" host_network, "hostPID" host_pid, "hostIPC" host_ipc,
        "shareProcessNamespace" share_process_namespace ptr, "securityContext" security_context,
        "imagePullSecrets" image_pull_secrets, "hostname" hostname, "subdomain" subdomain,
        "affinity" affinity, "schedulerName" scheduler_name, "tolerations" tolerations,
        "hostAliases" host_aliases, "priorityClassName" priority_class_name,
        "priority" priority ptr, "dnsConfig" dns_config, "readinessGates" readiness_gates,
        "runtimeClassName" runtime_class_name ptr, "enableServiceLinks" enable_service_links ptr,
        "preemptionPolicy" preemption_policy ptr, "overhead" overhead,
        "topologySpreadConstraints" topology_spread_constraints,
        "setHostnameAsFQDN" set_hostname_as_fqdn ptr, "os" os, "hostUsers" host_users ptr,
        "schedulingGates" scheduling_gates, "resourceClaims" resource_claims,
        "resources" resources, "hostnameOverride" hostname_override ptr,
        "workloadRef" workload_ref,
    }
    core::PodStatus {
        "observedGeneration" observed_generation, "phase" phase, "conditions" conditions,
        "message" message, "reason" reason, "nominatedNodeName" nominated_node_name,
        "hostIP" host_ip, "hostIPs" host_ips, "podIP" pod_ip, "podIPs" pod_ips,
        "startTime" start_time, "initContainerStatuses" init_container_statuses,
        "containerStatuses" container_statuses, "qosClass" qos_class,
        "ephemeralContainerStatuses" ephemeral_container_statuses, "resize" resize,
        "resourceClaimStatuses" resource_claim_statuses,
        "extendedResourceClaimStatus" extended_resource_claim_status,
        "allocatedResources" allocated_resources, "resources" resources,
    }
    core::PodTemplateSpec {
        "metadata" metadata, "spec" spec,
    }
    core::PreferredSchedulingTerm {
        "weight" weight always, "preference" preference,
    }
    core::Probe {
        "" handler inline, "initialDelaySeconds" initial_delay_seconds,
        "timeoutSeconds" timeout_seconds, "periodSeconds" period_seconds,
        "successThreshold" success_threshold, "failureThreshold" failure_threshold,
        "terminationGracePeriodSeconds" termination_grace_period_seconds ptr,
    }
    core::ProbeHandler {
        "exec" exec, "httpGet" http_get, "tcpSocket" tcp_socket, "grpc" grpc,
    }
    core::ResourceClaim {
        "name" name always, "request" request,
    }
    core::ResourceFieldSelector {
        "containerName" container_name, "resource" resource always, "divisor" divisor,
    }
    core::ResourceHealth {
        "resourceID" resource_id always, "health" health,
    }
    core::ResourceRequirements {
        "limits" limits, "requests" requests, "claims" claims,
    }
    core::ResourceStatus {
        "name" name always, "resources" resources,
    }
    core::SeLinuxOptions {
        "user" user, "role" role, "type" r#type, "level" level,
    }
    core::SeccompProfile {
        "type" r#type always, "localhostProfile" localhost_profile ptr,
    }
    core::SecretEnvSource {
        "" local_object_reference inline, "optional" optional ptr,
    }
    core::SecretKeySelector {
        "" local_object_reference inline, "key" key always, "optional" optional ptr,
    }
    core::SecurityContext {
        "capabilities" capabilities, "privileged" privileged ptr,
        "seLinuxOptions" se_linux_options, "windowsOptions" windows_options,
        "runAsUser" run_as_user ptr, "runAsGroup" run_as_group ptr,
        "runAsNonRoot" run_as_non_root ptr, "readOnlyRootFilesystem" read_only_root_filesystem ptr,
        "allowPrivilegeEscalation" allow_privilege_escalation ptr, "procMount" proc_mount ptr,
        "seccompProfile" seccomp_profile, "appArmorProfile" app_armor_profile,
    }
    core::SleepAction {
        "seconds" seconds always,
    }
    core::Sysctl {
        "name" name always, "value" value always,
    }
    core::TcpSocketAction {
        "port" port, "host" host,
    }
    core::Toleration {
        "key" key, "operator" operator, "value" value, "effect" effect,
        "tolerationSeconds" toleration_seconds ptr,
    }
    core::TopologySpreadConstraint {
        "maxSkew" max_skew always, "topologyKey" topology_key always,
        "whenUnsatisfiable" when_unsatisfiable always, "labelSelector" label_selector,
        "minDomains" min_domains ptr, "nodeAffinityPolicy" node_affinity_policy ptr,
        "nodeTaintsPolicy" node_taints_policy ptr, "matchLabelKeys" match_label_keys,
    }
    core::Volume {
        "name" name always, "" volume_source inline,
    }
    core::VolumeDevice {
        "name" name always, "devicePath" device_path always,
    }
    core::VolumeMount {
        "name" name always, "readOnly" read_only, "recursiveReadOnly" recursive_read_only ptr,
        "mountPath" mount_path always, "subPath" sub_path,
        "mountPropagation" mount_propagation ptr, "subPathExpr" sub_path_expr,
    }
    core::VolumeMountStatus {
        "name" name always, "mountPath" mount_path always, "readOnly" read_only,
        "recursiveReadOnly" recursive_read_only ptr,
    }
    core::WeightedPodAffinityTerm {
        "weight" weight always, "podAffinityTerm" pod_affinity_term,
    }
    core::WindowsSecurityContextOptions {
        "gmsaCredentialSpecName" gmsa_credential_spec_name ptr,
        "gmsaCredentialSpec" gmsa_credential_spec ptr, "runAsUserName" run_as_user_name ptr,
        "hostProcess" host_process ptr,
    }
    core::WorkloadReference {
        "name" name always, "podGroup" pod_group always,
        "podGroupReplicaKey" pod_group_replica_key,
    }
}
