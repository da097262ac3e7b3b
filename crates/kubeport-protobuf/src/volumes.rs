//! core/v1 volume sources (VolumeSource and the messages only volumes use).

use k8s_pb::api::core::v1 as core;

use crate::json::go_json;

go_json! {
    core::AwsElasticBlockStoreVolumeSource {
        "volumeID" volume_id always, "fsType" fs_type, "partition" partition, "readOnly" read_only,
    }
    core::AzureDiskVolumeSource {
        "diskName" disk_name always, "diskURI" disk_uri always, "cachingMode" caching_mode ptr,
        "fsType" fs_type ptr, "readOnly" read_only ptr, "kind" kind ptr,
    }
    core::AzureFileVolumeSource {
        "secretName" secret_name always, "shareName" share_name always, "readOnly" read_only,
    }
    core::CSIVolumeSource {
        "driver" driver always, "readOnly" read_only ptr, "fsType" fs_type ptr,
        "volumeAttributes" volume_attributes, "nodePublishSecretRef" node_publish_secret_ref,
    }
    core::CephFsVolumeSource {
        "monitors" monitors always, "path" path, "user" user, "secretFile" secret_file,
        "secretRef" secret_ref, "readOnly" read_only,
    }
    core::CinderVolumeSource {
        "volumeID" volume_id always, "fsType" fs_type, "readOnly" read_only,
        "secretRef" secret_ref,
    }
    core::ClusterTrustBundleProjection {
        "name" name ptr, "signerName" signer_name ptr, "labelSelector" label_selector,
        "optional" optional ptr, "path" path always,
    }
    core::ConfigMapProjection {
        "" local_object_reference inline, "items" items, "optional" optional ptr,
    }
    core::ConfigMapVolumeSource {
        "" local_object_reference inline, "items" items, "defaultMode" default_mode ptr,
        "optional" optional ptr,
    }
    core::DownwardAPIProjection {
        "items" items,
    }
    core::DownwardAPIVolumeFile {
        "path" path always, "fieldRef" field_ref, "resourceFieldRef" resource_field_ref,
        "mode" mode ptr,
    }
    core::DownwardAPIVolumeSource {
        "items" items, "defaultMode" default_mode ptr,
    }
    core::EmptyDirVolumeSource {
        "medium" medium, "sizeLimit" size_limit,
    }
    core::EphemeralVolumeSource {
        "volumeClaimTemplate" volume_claim_template,
    }
    core::FcVolumeSource {
        "targetWWNs" target_ww_ns, "lun" lun ptr, "fsType" fs_type, "readOnly" read_only,
        "wwids" wwids,
    }
    core::FlexVolumeSource {
        "driver" driver always, "fsType" fs_type, "secretRef" secret_ref, "readOnly" read_only,
        "options" options,
    }
    core::FlockerVolumeSource {
        "datasetName" dataset_name, "datasetUUID" dataset_uuid,
    }
    core::GcePersistentDiskVolumeSource {
        "pdName" pd_name always, "fsType" fs_type, "partition" partition, "readOnly" read_only,
    }
    core::GitRepoVolumeSource {
        "repository" repository always, "revision" revision, "directory" directory,
    }
    core::GlusterfsVolumeSource {
        "endpoints" endpoints always, "path" path always, "readOnly" read_only,
    }
    core::HostPathVolumeSource {
        "path" path always, "type" r#type ptr,
    }
    core::ImageVolumeSource {
        "reference" reference, "pullPolicy" pull_policy,
    }
    core::IscsiVolumeSource {
        "targetPortal" target_portal always, "iqn" iqn always, "lun" lun always,
        "iscsiInterface" iscsi_interface, "fsType" fs_type, "readOnly" read_only,
        "portals" portals, "chapAuthDiscovery" chap_auth_discovery,
        "chapAuthSession" chap_auth_session, "secretRef" secret_ref,
        "initiatorName" initiator_name ptr,
    }
    core::NfsVolumeSource {
        "server" server always, "path" path always, "readOnly" read_only,
    }
    core::PersistentVolumeClaimSpec {
        "accessModes" access_modes, "selector" selector, "resources" resources,
        "volumeName" volume_name, "storageClassName" storage_class_name ptr,
        "volumeMode" volume_mode ptr, "dataSource" data_source, "dataSourceRef" data_source_ref,
        "volumeAttributesClassName" volume_attributes_class_name ptr,
    }
    core::PersistentVolumeClaimTemplate {
        "metadata" metadata, "spec" spec,
    }
    core::PersistentVolumeClaimVolumeSource {
        "claimName" claim_name always, "readOnly" read_only,
    }
    core::PhotonPersistentDiskVolumeSource {
        "pdID" pd_id always, "fsType" fs_type,
    }
    core::PodCertificateProjection {
        "signerName" signer_name, "keyType" key_type,
        "maxExpirationSeconds" max_expiration_seconds ptr,
        "credentialBundlePath" credential_bundle_path, "keyPath" key_path,
        "certificateChainPath" certificate_chain_path, "userAnnotations" user_annotations,
    }
    core::PortworxVolumeSource {
        "volumeID" volume_id always, "fsType" fs_type, "readOnly" read_only,
    }
    core::ProjectedVolumeSource {
        "sources" sources always, "defaultMode" default_mode ptr,
    }
    core::QuobyteVolumeSource {
        "registry" registry always, "volume" volume always, "readOnly" read_only, "user" user,
        "group" group, "tenant" tenant,
    }
    core::RbdVolumeSource {
        "monitors" monitors always, "image" image always, "fsType" fs_type, "pool" pool,
        "user" user, "keyring" keyring, "secretRef" secret_ref, "readOnly" read_only,
    }
    core::ScaleIoVolumeSource {
        "gateway" gateway always, "system" system always, "secretRef" secret_ref always,
        "sslEnabled" ssl_enabled, "protectionDomain" protection_domain, "storagePool" storage_pool,
        "storageMode" storage_mode, "volumeName" volume_name, "fsType" fs_type,
        "readOnly" read_only,
    }
    core::SecretProjection {
        "" local_object_reference inline, "items" items, "optional" optional ptr,
    }
    core::SecretVolumeSource {
        "secretName" secret_name, "items" items, "defaultMode" default_mode ptr,
        "optional" optional ptr,
    }
    core::ServiceAccountTokenProjection {
        "audience" audience, "expirationSeconds" expiration_seconds ptr, "path" path always,
    }
    core::StorageOsVolumeSource {
        "volumeName" volume_name, "volumeNamespace" volume_namespace, "fsType" fs_type,
        "readOnly" read_only, "secretRef" secret_ref,
    }
    core::TypedLocalObjectReference {
        "apiGroup" api_group null, "kind" kind always, "name" name always,
    }
    core::TypedObjectReference {
        "apiGroup" api_group null, "kind" kind always, "name" name always,
        "namespace" namespace ptr,
    }
    core::VolumeProjection {
        "secret" secret, "downwardAPI" downward_api, "configMap" config_map,
        "serviceAccountToken" service_account_token, "clusterTrustBundle" cluster_trust_bundle,
        "podCertificate" pod_certificate,
    }
    core::VolumeResourceRequirements {
        "limits" limits, "requests" requests,
    }
    core::VolumeSource {
        "hostPath" host_path, "emptyDir" empty_dir, "gcePersistentDisk" gce_persistent_disk,
        "awsElasticBlockStore" aws_elastic_block_store, "gitRepo" git_repo, "secret" secret,
        "nfs" nfs, "iscsi" iscsi, "glusterfs" glusterfs,
        "persistentVolumeClaim" persistent_volume_claim, "rbd" rbd, "flexVolume" flex_volume,
        "cinder" cinder, "cephfs" cephfs, "flocker" flocker, "downwardAPI" downward_api, "fc" fc,
        "azureFile" azure_file, "configMap" config_map, "vsphereVolume" vsphere_volume,
        "quobyte" quobyte, "azureDisk" azure_disk, "photonPersistentDisk" photon_persistent_disk,
        "projected" projected, "portworxVolume" portworx_volume, "scaleIO" scale_io,
        "storageos" storageos, "csi" csi, "ephemeral" ephemeral, "image" image,
    }
    core::VsphereVirtualDiskVolumeSource {
        "volumePath" volume_path always, "fsType" fs_type, "storagePolicyName" storage_policy_name,
        "storagePolicyID" storage_policy_id,
    }
}
