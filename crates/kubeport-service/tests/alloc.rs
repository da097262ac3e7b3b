//! ClusterIP / NodePort allocation, update transactions and repair, with kube-apiserver's
//! error texts.

mod common;

use common::*;
use k8s_openapi::api::core::v1::Service;
use kubeport_service::{
    prepare_create, prepare_update, set_defaults, AllocError, ServiceAllocator,
};
use serde_json::{json, Value};
use std::net::IpAddr;

fn new_svc(name: &str, spec: Value) -> Service {
    let mut s = named(name, spec);
    set_defaults(&mut s);
    prepare_create(&mut s);
    s
}

/// Allocates, validates and commits a create, panicking on errors.
fn create(alloc: &mut ServiceAllocator, name: &str, spec: Value) -> Service {
    let mut s = new_svc(name, spec);
    let a = alloc
        .admit_create(&mut s)
        .unwrap_or_else(|e| panic!("create {name}: {e}"));
    alloc.commit(a);
    s
}

fn create_err(alloc: &mut ServiceAllocator, name: &str, spec: Value) -> AllocError {
    let mut s = new_svc(name, spec);
    alloc.admit_create(&mut s).expect_err("create should fail")
}

fn invalid(e: AllocError) -> Vec<String> {
    match e {
        AllocError::Invalid(errs) => rendered(&errs),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

fn internal(e: AllocError) -> String {
    match e {
        AllocError::Internal(msg) => msg,
        other => panic!("expected Internal, got {other:?}"),
    }
}

fn node_ports(s: &Service) -> Vec<i32> {
    s.spec
        .as_ref()
        .unwrap()
        .ports
        .iter()
        .flatten()
        .map(|p| p.node_port.unwrap_or(0))
        .collect()
}

fn cluster_ip(s: &Service) -> IpAddr {
    s.spec
        .as_ref()
        .unwrap()
        .cluster_ip
        .as_deref()
        .unwrap()
        .parse()
        .unwrap()
}

/// An update the way the API server runs it, leaving commit/revert to the caller.
fn update(
    alloc: &mut ServiceAllocator,
    old: &Service,
    spec: Value,
) -> Result<(Service, kubeport_service::Allocation), AllocError> {
    let mut new = named(old.metadata.name.as_deref().unwrap(), spec);
    new.metadata.uid = old.metadata.uid.clone();
    set_defaults(&mut new);
    let a = alloc.admit_update(old, &mut new)?;
    Ok((new, a))
}

#[test]
fn create_fills_ip_family_fields_and_cluster_ip() {
    let mut alloc = ServiceAllocator::with_seed(&cfg(), 1);
    let s = create(
        &mut alloc,
        "web",
        json!({"ports": [{"port": 80}], "selector": {"app": "web"}}),
    );
    let spec = spec(&s);
    assert_eq!(spec["ipFamilies"], json!(["IPv4"]));
    assert_eq!(spec["ipFamilyPolicy"], json!("SingleStack"));
    assert_eq!(spec["clusterIPs"], json!([spec["clusterIP"].clone()]));
    assert!(cfg().cluster_ip_range.contains(&cluster_ip(&s)));
    assert_eq!(alloc.used_cluster_ips(), 1);
    assert_eq!(alloc.used_node_ports(), 0);
}

#[test]
fn automatic_allocation_uses_the_upper_band_while_it_has_room() {
    // A /24 has 254 usable addresses; the static band is the first 16 (10.0.0.1-10.0.0.16).
    let mut alloc = ServiceAllocator::with_seed(&cfg_with("10.0.0.0/24", "30000-32767"), 2);
    for i in 0..238 {
        let s = create(
            &mut alloc,
            &format!("s{i}"),
            json!({"ports": [{"port": 80}]}),
        );
        let last = match cluster_ip(&s) {
            IpAddr::V4(v4) => v4.octets()[3],
            IpAddr::V6(_) => unreachable!(),
        };
        assert!(
            last >= 17,
            "service {i} got {} from the static band",
            cluster_ip(&s)
        );
    }
    let s = create(&mut alloc, "spill", json!({"ports": [{"port": 80}]}));
    assert!(matches!(cluster_ip(&s), IpAddr::V4(v4) if (1..=16).contains(&v4.octets()[3])));

    // NodePorts: 30000-32767 reserves 30000-30085 for explicit requests.
    let mut alloc = ServiceAllocator::with_seed(&cfg(), 3);
    for i in 0..300 {
        let s = create(
            &mut alloc,
            &format!("np{i}"),
            json!({"type": "NodePort", "ports": [{"port": 80}]}),
        );
        assert!(node_ports(&s)[0] >= 30086, "got {:?}", node_ports(&s));
    }
}

#[test]
fn explicit_values_conflict_with_kube_apiserver_messages() {
    let mut alloc = ServiceAllocator::with_seed(&cfg(), 4);
    // The first address of the range works (the `kubernetes` Service gets it).
    let k = create(
        &mut alloc,
        "kubernetes",
        json!({"ports": [{"name": "https", "port": 443}], "clusterIP": "10.96.0.1"}),
    );
    assert_eq!(cluster_ip(&k).to_string(), "10.96.0.1");
    create(
        &mut alloc,
        "dns",
        json!({"ports": [{"port": 53}], "clusterIP": "10.96.0.10"}),
    );
    assert_eq!(
        invalid(create_err(&mut alloc, "dns2", json!({"ports": [{"port": 53}], "clusterIP": "10.96.0.10"}))),
        vec!["spec.clusterIPs: Invalid value: []string{\"10.96.0.10\"}: failed to allocate IP 10.96.0.10: provided IP is already allocated"]
    );
    assert_eq!(
        invalid(create_err(&mut alloc, "far", json!({"ports": [{"port": 53}], "clusterIP": "10.112.0.5"}))),
        vec!["spec.clusterIPs: Invalid value: []string{\"10.112.0.5\"}: failed to allocate IP 10.112.0.5: the provided IP (10.112.0.5) is not in the valid range. The range of valid IPs is 10.96.0.0/12"]
    );
    // The network and broadcast addresses are never allocatable.
    assert_eq!(
        invalid(create_err(&mut alloc, "net", json!({"ports": [{"port": 53}], "clusterIP": "10.96.0.0"}))),
        vec!["spec.clusterIPs: Invalid value: []string{\"10.96.0.0\"}: failed to allocate IP 10.96.0.0: the provided IP (10.96.0.0) is not in the valid range. The range of valid IPs is 10.96.0.0/12"]
    );

    create(
        &mut alloc,
        "np",
        json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30000}]}),
    );
    assert_eq!(
        invalid(create_err(
            &mut alloc,
            "np2",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30000}]})
        )),
        vec!["spec.ports[0].nodePort: Invalid value: 30000: provided port is already allocated"]
    );
    assert_eq!(
        invalid(create_err(&mut alloc, "np3", json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 40000}]}))),
        vec!["spec.ports[0].nodePort: Invalid value: 40000: provided port is not in the valid range. The range of valid ports is 30000-32767"]
    );
    // Failed creates leave nothing behind.
    assert_eq!((alloc.used_cluster_ips(), alloc.used_node_ports()), (3, 1));
}

#[test]
fn out_of_range_message_names_the_configured_cidr() {
    let mut alloc = ServiceAllocator::with_seed(&cfg_with("10.96.0.0/16", "30000-32767"), 5);
    assert_eq!(
        invalid(create_err(&mut alloc, "x", json!({"ports": [{"port": 80}], "clusterIP": "10.97.0.5"}))),
        vec!["spec.clusterIPs: Invalid value: []string{\"10.97.0.5\"}: failed to allocate IP 10.97.0.5: the provided IP (10.97.0.5) is not in the valid range. The range of valid IPs is 10.96.0.0/16"]
    );
}

#[test]
fn node_port_range_full_after_eleven() {
    let mut alloc = ServiceAllocator::with_seed(&cfg_with("10.96.0.0/12", "31000-31010"), 6);
    let mut seen = Vec::new();
    for i in 0..11 {
        let s = create(
            &mut alloc,
            &format!("s{i}"),
            json!({"type": "NodePort", "ports": [{"port": 80}]}),
        );
        seen.push(node_ports(&s)[0]);
    }
    seen.sort();
    assert_eq!(seen, (31000..=31010).collect::<Vec<_>>());
    assert_eq!(
        internal(create_err(
            &mut alloc,
            "s11",
            json!({"type": "NodePort", "ports": [{"port": 80}]})
        )),
        "failed to allocate a nodePort: range is full"
    );
    // The 12th Service's clusterIP was given back.
    assert_eq!(alloc.used_cluster_ips(), 11);
}

#[test]
fn tcp_and_udp_share_a_node_port_only_with_the_same_port_number() {
    let mut alloc = ServiceAllocator::with_seed(&cfg(), 7);
    let s = create(
        &mut alloc,
        "dns",
        json!({"type": "NodePort", "ports": [
            {"name": "dns-tcp", "port": 53, "nodePort": 30053},
            {"name": "dns-udp", "port": 53, "protocol": "UDP", "nodePort": 30053}]}),
    );
    assert_eq!(node_ports(&s), vec![30053, 30053]);
    assert_eq!(alloc.used_node_ports(), 1);

    // Automatic allocation gives both protocols of one port the same nodePort.
    let s = create(
        &mut alloc,
        "dns-auto",
        json!({"type": "NodePort", "ports": [{"name": "tcp", "port": 53}, {"name": "udp", "port": 53, "protocol": "UDP"}]}),
    );
    let np = node_ports(&s);
    assert!(np[0] != 0 && np[0] == np[1]);
    assert_eq!(alloc.used_node_ports(), 2);

    assert_eq!(
        invalid(create_err(
            &mut alloc,
            "mixed",
            json!({"type": "NodePort", "ports": [
                {"name": "a", "port": 80, "nodePort": 30080},
                {"name": "b", "port": 81, "protocol": "UDP", "nodePort": 30080}]}),
        )),
        vec!["spec.ports[1].nodePort: Invalid value: 30080: provided port is already allocated"]
    );
    assert_eq!(alloc.used_node_ports(), 2);
    assert!(!alloc.node_port_in_use(30080));
}

#[test]
fn node_port_to_cluster_ip_frees_ports_only_after_commit() {
    let mut alloc = ServiceAllocator::with_seed(&cfg(), 8);
    let old = create(
        &mut alloc,
        "web",
        json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}),
    );
    // kubectl apply sends the live nodePort back along with the type change.
    let (new, a) = update(
        &mut alloc,
        &old,
        json!({"type": "ClusterIP", "ports": [{"port": 80, "nodePort": 30080}]}),
    )
    .unwrap();
    assert_eq!(node_ports(&new), vec![0]);
    assert_eq!(spec(&new).get("externalTrafficPolicy"), None);
    assert_eq!(a.deferred_node_ports(), &[30080]);
    assert!(
        alloc.node_port_in_use(30080),
        "released before the write committed"
    );
    alloc.commit(a);
    assert!(!alloc.node_port_in_use(30080));
    assert_eq!(spec(&new)["clusterIP"], spec(&old)["clusterIP"]);
}

#[test]
fn revert_leaves_nothing_leaked() {
    let mut alloc = ServiceAllocator::with_seed(&cfg(), 9);
    let mut s = new_svc(
        "web",
        json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local", "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 443}]}),
    );
    let a = alloc.admit_create(&mut s).unwrap();
    assert_eq!((alloc.used_cluster_ips(), alloc.used_node_ports()), (1, 3));
    alloc.revert(a);
    assert_eq!((alloc.used_cluster_ips(), alloc.used_node_ports()), (0, 0));

    // An update that adds a port, then fails to write: the old port stays, the new one goes.
    let old = create(
        &mut alloc,
        "np",
        json!({"type": "NodePort", "ports": [{"name": "a", "port": 80, "nodePort": 30080}]}),
    );
    let (new, a) = update(
        &mut alloc,
        &old,
        json!({"type": "NodePort", "ports": [{"name": "a", "port": 80, "nodePort": 30080}, {"name": "b", "port": 81}]}),
    )
    .unwrap();
    let added = node_ports(&new)[1];
    assert!(alloc.node_port_in_use(added as u16));
    alloc.revert(a);
    assert!(alloc.node_port_in_use(30080) && !alloc.node_port_in_use(added as u16));
    assert_eq!(alloc.used_node_ports(), 1);
}

#[test]
fn validation_failure_after_allocation_reverts() {
    let mut alloc = ServiceAllocator::with_seed(&cfg(), 10);
    assert_eq!(
        invalid(create_err(&mut alloc, "web", json!({"type": "NodePort", "ports": [{"name": "HTTP", "port": 80}]}))),
        vec!["spec.ports[0].name: Invalid value: \"HTTP\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"]
    );
    assert_eq!((alloc.used_cluster_ips(), alloc.used_node_ports()), (0, 0));
}

#[test]
fn switching_to_external_name_releases_the_cluster_ip() {
    let mut alloc = ServiceAllocator::with_seed(&cfg(), 11);
    let old = create(&mut alloc, "web", json!({"ports": [{"port": 80}]}));
    let ip = cluster_ip(&old);
    // A client that resends the live clusterIP along with the new type.
    let (new, a) = update(
        &mut alloc,
        &old,
        json!({"type": "ExternalName", "externalName": "db.example.com", "clusterIP": ip.to_string(), "ports": [{"port": 80}]}),
    )
    .unwrap();
    let spec = spec(&new);
    assert_eq!(
        (
            spec.get("clusterIP"),
            spec.get("clusterIPs"),
            spec.get("ipFamilies"),
            spec.get("ipFamilyPolicy")
        ),
        (None, None, None, None)
    );
    assert!(alloc.cluster_ip_in_use(ip));
    alloc.commit(a);
    assert_eq!(alloc.used_cluster_ips(), 0);

    // And back: ExternalName → ClusterIP allocates again.
    let (back, a) = update(
        &mut alloc,
        &new,
        json!({"type": "ClusterIP", "ports": [{"port": 80}]}),
    )
    .unwrap();
    alloc.commit(a);
    assert!(alloc.cluster_ip_in_use(cluster_ip(&back)));
    assert_eq!(self::spec(&back)["ipFamilies"], json!(["IPv4"]));
}

#[test]
fn load_balancer_local_gets_a_health_check_node_port() {
    let mut alloc = ServiceAllocator::with_seed(&cfg(), 12);
    let s = create(
        &mut alloc,
        "lb",
        json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local", "ports": [{"port": 80}]}),
    );
    let hc = s.spec.as_ref().unwrap().health_check_node_port.unwrap();
    assert!((30000..=32767).contains(&hc) && hc != node_ports(&s)[0]);
    assert_eq!(alloc.used_node_ports(), 2);

    // A requested one is honoured; a taken one is an InternalError.
    let s2 = create(
        &mut alloc,
        "lb2",
        json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local", "healthCheckNodePort": 30100, "ports": [{"port": 80}]}),
    );
    assert_eq!(
        s2.spec.as_ref().unwrap().health_check_node_port,
        Some(30100)
    );
    assert_eq!(
        internal(create_err(&mut alloc, "lb3", json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local", "healthCheckNodePort": 30100, "ports": [{"port": 80}]}))),
        "failed to allocate requested HealthCheck NodePort 30100: provided port is already allocated"
    );

    // Leaving Local releases it after commit.
    let (new, a) = update(
        &mut alloc,
        &s2,
        json!({"type": "LoadBalancer", "externalTrafficPolicy": "Cluster", "ports": [{"port": 80}]}),
    )
    .unwrap();
    assert_eq!(new.spec.as_ref().unwrap().health_check_node_port, None);
    assert!(alloc.node_port_in_use(30100));
    alloc.commit(a);
    assert!(!alloc.node_port_in_use(30100));

    alloc.release(&s);
    assert!(!alloc.node_port_in_use(hc as u16));
}

#[test]
fn allocate_load_balancer_node_ports_false() {
    let mut alloc = ServiceAllocator::with_seed(&cfg(), 13);
    let s = create(
        &mut alloc,
        "lb",
        json!({"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false, "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 81, "nodePort": 30081}]}),
    );
    assert_eq!(node_ports(&s), vec![0, 30081]);
    assert_eq!(alloc.used_node_ports(), 1);
}

#[test]
fn single_stack_cluster_rejects_dual_stack_requests() {
    let mut alloc = ServiceAllocator::with_seed(&cfg(), 14);
    assert_eq!(
        invalid(create_err(&mut alloc, "a", json!({"ports": [{"port": 80}], "ipFamilyPolicy": "RequireDualStack"}))),
        vec!["spec.ipFamilyPolicy: Invalid value: \"RequireDualStack\": this cluster is not configured for dual-stack services"]
    );
    assert_eq!(
        invalid(create_err(
            &mut alloc,
            "b",
            json!({"ports": [{"port": 80}], "ipFamilies": ["IPv6"]})
        )),
        vec!["spec.ipFamilies[0]: Invalid value: \"IPv6\": not configured on this cluster"]
    );
    assert_eq!(
        invalid(create_err(&mut alloc, "c", json!({"ports": [{"port": 80}], "clusterIP": "fd00::10"}))),
        vec!["spec.clusterIPs[0]: Invalid value: []string{\"fd00::10\"}: IPv6 is not configured on this cluster"]
    );
    assert_eq!(
        invalid(create_err(&mut alloc, "d", json!({"ports": [{"port": 80}], "ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4", "IPv6"]}))),
        vec!["spec.ipFamilyPolicy: Invalid value: \"SingleStack\": must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified"]
    );
    // PreferDualStack quietly gets one family.
    let s = create(
        &mut alloc,
        "e",
        json!({"ports": [{"port": 80}], "ipFamilyPolicy": "PreferDualStack"}),
    );
    assert_eq!(
        (
            spec(&s)["ipFamilies"].clone(),
            spec(&s)["ipFamilyPolicy"].clone()
        ),
        (json!(["IPv4"]), json!("PreferDualStack"))
    );
    // Headless and selectorless defaults to RequireDualStack with both families, even here.
    let s = create(
        &mut alloc,
        "f",
        json!({"clusterIP": "None", "ports": [{"port": 80}]}),
    );
    assert_eq!(
        (
            spec(&s)["ipFamilies"].clone(),
            spec(&s)["ipFamilyPolicy"].clone()
        ),
        (json!(["IPv4", "IPv6"]), json!("RequireDualStack"))
    );
    let s = create(
        &mut alloc,
        "g",
        json!({"clusterIP": "None", "selector": {"app": "g"}, "ports": [{"port": 80}]}),
    );
    assert_eq!(
        (
            spec(&s)["ipFamilies"].clone(),
            spec(&s)["ipFamilyPolicy"].clone()
        ),
        (json!(["IPv4"]), json!("SingleStack"))
    );
    assert_eq!(alloc.used_cluster_ips(), 1);
}

#[test]
fn ipv6_ranges_are_capped() {
    let mut alloc = ServiceAllocator::with_seed(&cfg_with("fd00:10:96::/108", "30000-32767"), 15);
    let s = create(&mut alloc, "v6", json!({"ports": [{"port": 80}]}));
    assert_eq!(spec(&s)["ipFamilies"], json!(["IPv6"]));
    // The bitmap covers fd00:10:96::1 .. fd00:10:96::ffff; the rest of the /108 is out of range.
    assert_eq!(
        invalid(create_err(&mut alloc, "far", json!({"ports": [{"port": 80}], "clusterIP": "fd00:10:96::1:0"}))),
        vec!["spec.clusterIPs: Invalid value: []string{\"fd00:10:96::1:0\"}: failed to allocate IP fd00:10:96::1:0: the provided IP (fd00:10:96::1:0) is not in the valid range. The range of valid IPs is fd00:10:96::/108"]
    );
    create(
        &mut alloc,
        "near",
        json!({"ports": [{"port": 80}], "clusterIP": "fd00:10:96::ffff"}),
    );
}

#[test]
fn duplicate_node_port_in_update_is_an_internal_error() {
    let mut alloc = ServiceAllocator::with_seed(&cfg(), 16);
    let old = create(
        &mut alloc,
        "web",
        json!({"type": "NodePort", "ports": [{"name": "a", "port": 80, "nodePort": 30080}]}),
    );
    let err = update(
        &mut alloc,
        &old,
        json!({"type": "NodePort", "ports": [{"name": "a", "port": 80, "nodePort": 30080}, {"name": "b", "port": 81, "nodePort": 30080}]}),
    )
    .unwrap_err();
    assert_eq!(internal(err), "duplicate nodePort: {TCP 30080}");
    assert_eq!(alloc.used_node_ports(), 1);
}

#[test]
fn delete_releases_everything() {
    let mut alloc = ServiceAllocator::with_seed(&cfg(), 17);
    let s = create(
        &mut alloc,
        "lb",
        json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local", "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 443}]}),
    );
    assert_eq!((alloc.used_cluster_ips(), alloc.used_node_ports()), (1, 3));
    alloc.release(&s);
    assert_eq!((alloc.used_cluster_ips(), alloc.used_node_ports()), (0, 0));
}

#[test]
fn repair_loads_state_then_reports_duplicates_out_of_range_and_leaks() {
    let c = cfg();
    let mut a = stored_svc(
        "a",
        json!({"type": "NodePort", "clusterIP": "10.96.0.20", "ports": [{"port": 80, "nodePort": 30500}]}),
    );
    let b = stored_svc(
        "b",
        json!({"type": "NodePort", "clusterIP": "10.96.0.20", "ports": [{"port": 80, "nodePort": 30500}]}),
    );
    let far = stored_svc(
        "far",
        json!({"type": "NodePort", "clusterIP": "10.200.0.1", "ports": [{"port": 80, "nodePort": 40000}]}),
    );

    // Start-up: a fresh allocator only loads what is in use.
    let mut alloc = ServiceAllocator::with_seed(&c, 18);
    let report = alloc.repair(std::slice::from_ref(&a));
    assert_eq!(report.problems, vec![]);
    assert!(
        alloc.node_port_in_use(30500) && alloc.cluster_ip_in_use("10.96.0.20".parse().unwrap())
    );

    let report = alloc.repair(&[a.clone(), b.clone(), far.clone()]);
    let msgs: Vec<(&str, &str, String)> = report
        .problems
        .iter()
        .map(|p| (p.name.as_str(), p.reason, p.message.clone()))
        .collect();
    assert_eq!(
        msgs,
        vec![
            ("b", "PortAlreadyAllocated", "Port 30500 was assigned to multiple services; please recreate service".to_string()),
            ("far", "PortOutOfRange", "Port 40000 is not within the port range 30000-32767; please recreate service".to_string()),
            ("b", "ClusterIPAlreadyAllocated", "Cluster IP [IPv4]:10.96.0.20 was assigned to multiple services; please recreate service".to_string()),
            ("far", "ClusterIPOutOfRange", "Cluster IP [IPv4]:10.200.0.1 is not within the service CIDR 10.96.0.0/12; please recreate service".to_string()),
        ]
    );

    // After start-up, a value in use but unmarked is re-marked and reported.
    let mut late = stored_svc(
        "late",
        json!({"type": "NodePort", "clusterIP": "10.96.0.30", "ports": [{"port": 80, "nodePort": 30600}]}),
    );
    late.metadata.namespace = Some("prod".into());
    let report = alloc.repair(&[a.clone(), late.clone()]);
    let reasons: Vec<(&str, String)> = report
        .problems
        .iter()
        .map(|p| (p.reason, p.message.clone()))
        .collect();
    assert_eq!(
        reasons,
        vec![
            (
                "PortNotAllocated",
                "Port 30600 is not allocated; repairing".to_string()
            ),
            (
                "ClusterIPNotAllocated",
                "Cluster IP [IPv4]:10.96.0.30 is not allocated; repairing".to_string()
            ),
        ]
    );
    assert_eq!(report.problems[0].namespace, "prod");
    assert!(alloc.node_port_in_use(30600));

    // `late` is deleted behind the allocator's back: its values leak, and are freed on the
    // third pass that finds them unused.
    a.metadata.resource_version = Some("2".into());
    for pass in 1..=3 {
        let report = alloc.repair(std::slice::from_ref(&a));
        if pass < 3 {
            assert!(
                alloc.node_port_in_use(30600),
                "freed too early (pass {pass})"
            );
            assert!(report.freed_node_ports.is_empty());
        } else {
            assert_eq!(report.freed_node_ports, vec![30600]);
            assert_eq!(
                report.freed_cluster_ips,
                vec!["10.96.0.30".parse::<IpAddr>().unwrap()]
            );
            assert!(report
                .log
                .contains(&"the node port 30600 appears to have leaked: cleaning up".to_string()));
        }
    }
    assert!(!alloc.node_port_in_use(30600));
    assert_eq!((alloc.used_cluster_ips(), alloc.used_node_ports()), (1, 1));
}

fn stored_svc(name: &str, spec: Value) -> Service {
    let mut s = named(name, spec);
    set_defaults(&mut s);
    prepare_create(&mut s);
    s
}

#[test]
fn update_keeps_allocated_values_on_resubmit() {
    let mut alloc = ServiceAllocator::with_seed(&cfg(), 19);
    let old = create(
        &mut alloc,
        "web",
        json!({"type": "NodePort", "ports": [{"name": "http", "port": 80}]}),
    );
    let mut new = named(
        "web",
        json!({"type": "NodePort", "ports": [{"name": "http", "port": 80}]}),
    );
    new.metadata.uid = old.metadata.uid.clone();
    set_defaults(&mut new);
    prepare_update(&mut new, &old);
    let a = alloc.allocate_update(&old, &mut new).unwrap();
    assert_eq!(a.taken_node_ports(), &[] as &[u16]);
    alloc.commit(a);
    assert_eq!(spec(&new)["ports"], spec(&old)["ports"]);
    assert_eq!(spec(&new)["clusterIP"], spec(&old)["clusterIP"]);
    assert_eq!(alloc.used_node_ports(), 1);
}
