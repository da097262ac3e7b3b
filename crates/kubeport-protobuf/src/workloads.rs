//! apps/v1 Deployment and ReplicaSet, batch/v1 Job and CronJob, autoscaling/v1 Scale.

use k8s_pb::api::apps::v1 as apps;
use k8s_pb::api::autoscaling::v1 as autoscaling;
use k8s_pb::api::batch::v1 as batch;

use crate::json::go_json;

go_json! {
    apps::Deployment {
        "metadata" metadata, "spec" spec, "status" status,
    }
    apps::DeploymentCondition {
        "type" r#type always, "status" status always, "lastUpdateTime" last_update_time,
        "lastTransitionTime" last_transition_time, "reason" reason, "message" message,
    }
    apps::DeploymentSpec {
        "replicas" replicas ptr, "selector" selector always, "template" template,
        "strategy" strategy, "minReadySeconds" min_ready_seconds,
        "revisionHistoryLimit" revision_history_limit ptr, "paused" paused,
        "progressDeadlineSeconds" progress_deadline_seconds ptr,
    }
    apps::DeploymentStatus {
        "observedGeneration" observed_generation, "replicas" replicas,
        "updatedReplicas" updated_replicas, "readyReplicas" ready_replicas,
        "availableReplicas" available_replicas, "unavailableReplicas" unavailable_replicas,
        "terminatingReplicas" terminating_replicas ptr, "conditions" conditions,
        "collisionCount" collision_count ptr,
    }
    apps::DeploymentStrategy {
        "type" r#type, "rollingUpdate" rolling_update,
    }
    apps::ReplicaSet {
        "metadata" metadata, "spec" spec, "status" status,
    }
    apps::ReplicaSetCondition {
        "type" r#type always, "status" status always, "lastTransitionTime" last_transition_time,
        "reason" reason, "message" message,
    }
    apps::ReplicaSetSpec {
        "replicas" replicas ptr, "minReadySeconds" min_ready_seconds, "selector" selector always,
        "template" template,
    }
    apps::ReplicaSetStatus {
        "replicas" replicas always, "fullyLabeledReplicas" fully_labeled_replicas,
        "readyReplicas" ready_replicas, "availableReplicas" available_replicas,
        "terminatingReplicas" terminating_replicas ptr, "observedGeneration" observed_generation,
        "conditions" conditions,
    }
    apps::RollingUpdateDeployment {
        "maxUnavailable" max_unavailable, "maxSurge" max_surge,
    }
}
go_json! {
    batch::CronJob {
        "metadata" metadata, "spec" spec, "status" status,
    }
    batch::CronJobSpec {
        "schedule" schedule always, "timeZone" time_zone ptr,
        "startingDeadlineSeconds" starting_deadline_seconds ptr,
        "concurrencyPolicy" concurrency_policy, "suspend" suspend ptr, "jobTemplate" job_template,
        "successfulJobsHistoryLimit" successful_jobs_history_limit ptr,
        "failedJobsHistoryLimit" failed_jobs_history_limit ptr,
    }
    batch::CronJobStatus {
        "active" active, "lastScheduleTime" last_schedule_time,
        "lastSuccessfulTime" last_successful_time,
    }
    batch::Job {
        "metadata" metadata, "spec" spec, "status" status,
    }
    batch::JobCondition {
        "type" r#type always, "status" status always, "lastProbeTime" last_probe_time,
        "lastTransitionTime" last_transition_time, "reason" reason, "message" message,
    }
    batch::JobSpec {
        "parallelism" parallelism ptr, "completions" completions ptr,
        "activeDeadlineSeconds" active_deadline_seconds ptr, "podFailurePolicy" pod_failure_policy,
        "successPolicy" success_policy, "backoffLimit" backoff_limit ptr,
        "backoffLimitPerIndex" backoff_limit_per_index ptr,
        "maxFailedIndexes" max_failed_indexes ptr, "selector" selector,
        "manualSelector" manual_selector ptr, "template" template,
        "ttlSecondsAfterFinished" ttl_seconds_after_finished ptr,
        "completionMode" completion_mode ptr, "suspend" suspend ptr,
        "podReplacementPolicy" pod_replacement_policy ptr, "managedBy" managed_by ptr,
    }
    batch::JobStatus {
        "conditions" conditions, "startTime" start_time, "completionTime" completion_time,
        "active" active, "succeeded" succeeded, "failed" failed, "terminating" terminating ptr,
        "completedIndexes" completed_indexes, "failedIndexes" failed_indexes ptr,
        "uncountedTerminatedPods" uncounted_terminated_pods, "ready" ready ptr,
    }
    batch::JobTemplateSpec {
        "metadata" metadata, "spec" spec,
    }
    batch::PodFailurePolicy {
        "rules" rules always,
    }
    batch::PodFailurePolicyOnExitCodesRequirement {
        "containerName" container_name ptr, "operator" operator always, "values" values always,
    }
    batch::PodFailurePolicyOnPodConditionsPattern {
        "type" r#type always, "status" status always,
    }
    batch::PodFailurePolicyRule {
        "action" action always, "onExitCodes" on_exit_codes, "onPodConditions" on_pod_conditions,
    }
    batch::SuccessPolicy {
        "rules" rules always,
    }
    batch::SuccessPolicyRule {
        "succeededIndexes" succeeded_indexes ptr, "succeededCount" succeeded_count ptr,
    }
    batch::UncountedTerminatedPods {
        "succeeded" succeeded, "failed" failed,
    }
}
go_json! {
    autoscaling::Scale {
        "metadata" metadata, "spec" spec, "status" status,
    }
    autoscaling::ScaleSpec {
        "replicas" replicas,
    }
    autoscaling::ScaleStatus {
        "replicas" replicas always, "selector" selector,
    }
}
