//! apimachinery meta/v1 messages: object metadata, label selectors, conditions, DeleteOptions.

use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;

use crate::json::go_json;

go_json! {
    meta::Condition {
        "type" r#type always, "status" status always, "observedGeneration" observed_generation,
        "lastTransitionTime" last_transition_time, "reason" reason always,
        "message" message always,
    }
    meta::DeleteOptions {
        "gracePeriodSeconds" grace_period_seconds ptr, "preconditions" preconditions,
        "orphanDependents" orphan_dependents ptr, "propagationPolicy" propagation_policy ptr,
        "dryRun" dry_run,
        "ignoreStoreReadErrorWithClusterBreakingPotential" ignore_store_read_error_with_cluster_breaking_potential ptr,
    }
    meta::LabelSelector {
        "matchLabels" match_labels, "matchExpressions" match_expressions,
    }
    meta::LabelSelectorRequirement {
        "key" key always, "operator" operator always, "values" values,
    }
    meta::ManagedFieldsEntry {
        "manager" manager, "operation" operation, "apiVersion" api_version, "time" time,
        "fieldsType" fields_type, "fieldsV1" fields_v1, "subresource" subresource,
    }
    meta::ObjectMeta {
        "name" name, "generateName" generate_name, "namespace" namespace, "selfLink" self_link,
        "uid" uid, "resourceVersion" resource_version, "generation" generation,
        "creationTimestamp" creation_timestamp, "deletionTimestamp" deletion_timestamp,
        "deletionGracePeriodSeconds" deletion_grace_period_seconds ptr, "labels" labels,
        "annotations" annotations, "ownerReferences" owner_references, "finalizers" finalizers,
        "managedFields" managed_fields,
    }
    meta::OwnerReference {
        "apiVersion" api_version always, "kind" kind always, "name" name always, "uid" uid always,
        "controller" controller ptr, "blockOwnerDeletion" block_owner_deletion ptr,
    }
    meta::Preconditions {
        "uid" uid ptr, "resourceVersion" resource_version ptr,
    }
}
