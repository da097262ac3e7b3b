//! The Service registry strategy and storage hooks (pkg/registry/core/service/strategy.go and
//! storage/storage.go): status handling, `normalizeClusterIPs`, `patchAllocatedValues` and
//! `dropTypeDependentFields`.

use crate::defaults::default_ingress_ip_mode;
use crate::util::*;
use k8s_openapi::api::core::v1::{LoadBalancerStatus, Service, ServiceStatus};
use std::collections::{BTreeSet, HashMap};

/// The status a freshly created Service has: `{"loadBalancer": {}}`.
fn empty_status() -> ServiceStatus {
    ServiceStatus {
        conditions: None,
        load_balancer: Some(LoadBalancerStatus::default()),
    }
}

/// `PrepareForCreate` plus the create-time `normalizeClusterIPs`: users cannot set status,
/// and a lone `clusterIP` from an old client becomes `clusterIPs: [clusterIP]`.
pub fn prepare_create(svc: &mut Service) {
    svc.status = Some(empty_status());
    normalize_cluster_ips(svc, None);
}

/// Everything kube-apiserver does to an updated Service before validating it:
/// `patchAllocatedValues` (keep allocated clusterIP(s), nodePorts and healthCheckNodePort the
/// client left out), `normalizeClusterIPs`, keep the stored status, and
/// `dropTypeDependentFields` (clear values the new type no longer uses, if unchanged).
pub fn prepare_update(new: &mut Service, old: &Service) {
    patch_allocated_values(new, old);
    normalize_cluster_ips(new, Some(old));
    new.status = old.status.clone();
    drop_type_dependent_fields(new, old);
}

/// The status strategy: a status write cannot change the spec. Ingress IPs without `ipMode`
/// are defaulted to `VIP` for LoadBalancers (what decoding with defaults does in kube).
pub fn prepare_status_update(new: &mut Service, old: &Service) {
    new.spec = old.spec.clone();
    if svc_type(new) == TYPE_LOAD_BALANCER {
        default_ingress_ip_mode(new);
    }
}

/// `normalizeClusterIPs`: keeps `clusterIP` and `clusterIPs` in sync for clients that only
/// manage one of them. `old` is `None` on create.
pub fn normalize_cluster_ips(new: &mut Service, old: Option<&Service>) {
    let spec = spec_mut(new);
    none_if_empty(&mut spec.cluster_ips);
    let new_ip = str_of(&spec.cluster_ip).to_string();
    let new_ips = list_of(&spec.cluster_ips).to_vec();
    let Some(old) = old else {
        if !new_ip.is_empty() && new_ips.is_empty() {
            spec.cluster_ips = Some(vec![new_ip]);
        }
        return;
    };
    // An old client patching some other field sent no clusterIPs.
    if !cluster_ips(old).is_empty() && new_ips.is_empty() && cluster_ip(old) == new_ip {
        spec.cluster_ips = Some(cluster_ips(old).to_vec());
    }
    // The storage layer compares clusterIPs (plural) only here.
    let new_ips = list_of(&spec.cluster_ips).to_vec();
    if cluster_ip(old) != new_ip {
        if !cluster_ip(old).is_empty() && new_ip.is_empty() {
            // A client clearing clusterIP: clear clusterIPs too if they were left unchanged.
            if cluster_ips(old) == new_ips.as_slice() {
                spec.cluster_ips = None;
            }
        } else if cluster_ips(old) == new_ips.as_slice() {
            // clusterIP changed, clusterIPs untouched: follow clusterIP (validation then
            // reports `spec.clusterIPs[0]: ... may not change once set`).
            spec.cluster_ips = Some(vec![new_ip]);
        }
    }
}

/// `patchAllocatedValues`: lets clients resubmit a manifest without the values the server
/// allocated on their behalf.
pub fn patch_allocated_values(new: &mut Service, old: &Service) {
    if needs_cluster_ip(old) && needs_cluster_ip(new) {
        let spec = spec_mut(new);
        if str_of(&spec.cluster_ip).is_empty() {
            spec.cluster_ip = Some(cluster_ip(old).to_string()).filter(|s| !s.is_empty());
        }
        if list_of(&spec.cluster_ips).is_empty() && !cluster_ips(old).is_empty() {
            spec.cluster_ips = Some(cluster_ips(old).to_vec());
        }
    }
    if needs_node_port(old) && needs_node_port(new) {
        let used = |svc: &Service| -> BTreeSet<i32> {
            ports(svc)
                .iter()
                .map(node_port)
                .filter(|&n| n != 0)
                .collect()
        };
        // NodePorts both sides still use cannot be patched into another port.
        let in_use: BTreeSet<i32> = used(old).intersection(&used(new)).copied().collect();
        // Old nodePorts by port name (later entries win, as with a Go map).
        let mut by_name: HashMap<String, i32> = HashMap::new();
        for p in ports(old) {
            by_name.insert(str_of(&p.name).to_string(), node_port(p));
        }
        for p in spec_mut(new).ports.iter_mut().flatten() {
            if node_port(p) == 0 {
                let old_val = by_name.get(str_of(&p.name)).copied().unwrap_or(0);
                if !in_use.contains(&old_val) && old_val != 0 {
                    p.node_port = Some(old_val);
                }
            }
        }
    }
    if needs_hc_node_port(old)
        && needs_hc_node_port(new)
        && hc_node_port(new) == 0
        && hc_node_port(old) != 0
    {
        spec_mut(new).health_check_node_port = Some(hc_node_port(old));
    }
}

/// `dropTypeDependentFields`: on a type change, clear what the new type does not use, but
/// only where the user did not also change the value (then validation reports it).
pub(crate) fn drop_type_dependent_fields(new: &mut Service, old: &Service) {
    if needs_cluster_ip(old) && !needs_cluster_ip(new) {
        let same_ips = same_cluster_ips(old, new);
        let same_fams = same_ip_families(old, new);
        let same_policy = ip_family_policy(old) == ip_family_policy(new);
        let spec = spec_mut(new);
        if same_ips {
            spec.cluster_ip = None;
            spec.cluster_ips = None;
        }
        if same_fams {
            spec.ip_families = None;
        }
        if same_policy {
            spec.ip_family_policy = None;
        }
    }
    if needs_node_port(old) && !needs_node_port(new) {
        let old_ports: BTreeSet<i32> = ports(old)
            .iter()
            .map(node_port)
            .filter(|&n| n != 0)
            .collect();
        let new_ports: BTreeSet<i32> = ports(new)
            .iter()
            .map(node_port)
            .filter(|&n| n != 0)
            .collect();
        if new_ports.is_subset(&old_ports) {
            for p in spec_mut(new).ports.iter_mut().flatten() {
                p.node_port = None;
            }
        }
    }
    if needs_hc_node_port(old) && !needs_hc_node_port(new) && hc_node_port(old) == hc_node_port(new)
    {
        spec_mut(new).health_check_node_port = None;
    }
    let old_alloc = old
        .spec
        .as_ref()
        .and_then(|s| s.allocate_load_balancer_node_ports);
    if svc_type(old) == TYPE_LOAD_BALANCER && svc_type(new) != TYPE_LOAD_BALANCER {
        let spec = spec_mut(new);
        if spec.allocate_load_balancer_node_ports.is_some()
            && spec.allocate_load_balancer_node_ports == old_alloc
        {
            spec.allocate_load_balancer_node_ports = None;
        }
    }
    let old_class = old
        .spec
        .as_ref()
        .and_then(|s| s.load_balancer_class.clone());
    if svc_type(old) == TYPE_LOAD_BALANCER && svc_type(new) != TYPE_LOAD_BALANCER {
        let spec = spec_mut(new);
        if spec.load_balancer_class == old_class {
            spec.load_balancer_class = None;
        }
    }
    if externally_accessible(old) && !externally_accessible(new) && etp(old) == etp(new) {
        spec_mut(new).external_traffic_policy = None;
    }
    // The load-balancer status is cleared as soon as the Service stops being one.
    if svc_type(new) != TYPE_LOAD_BALANCER {
        if let Some(status) = new.status.as_mut() {
            status.load_balancer = Some(LoadBalancerStatus::default());
        }
    }
}
