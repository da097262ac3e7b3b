//! The restore inputs applied by the real nft-backed iptables inside throwaway network
//! namespaces (root only; never the host's namespace), read back with `iptables-save` and
//! `iptables -L`.

mod common;

use common::*;
use kubeport_iptables::{Iptables, IptablesConfig, IptablesProxier, Table};
use kubeport_proxy_model::IpFamily;
use serde_json::json;

macro_rules! netns_or_skip {
    ($purpose:expr) => {
        match NetNs::create($purpose) {
            Ok(netns) => netns,
            Err(reason) => {
                println!("SKIP: {reason}");
                return;
            }
        }
    };
}

/// What `iptables-save -t nat` prints after restoring the worked example (§4.1 of the
/// reference): chains sorted by name, `-s/-d` first with `/32`, `-p` before the matches,
/// comments quoted, the MARK targets normalised to `--set-xmark`.
const WORKED_EXAMPLE_SAVED_NAT: &str = r#"
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-EXT-T3QIINOBLYCGKYC7 - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-SEP-6SBHXQ4VQ7TF2KRJ - [0:0]
:KUBE-SEP-DBWEWVX6MNI34OP2 - [0:0]
:KUBE-SEP-GIAN2PTT2RYNXC3T - [0:0]
:KUBE-SEP-GZN54BITUHOHE2KT - [0:0]
:KUBE-SEP-RA24DBHPSNEI3NBI - [0:0]
:KUBE-SEP-ZBFWA4W7TX3R62LT - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-T3QIINOBLYCGKYC7 - [0:0]
-A KUBE-EXT-T3QIINOBLYCGKYC7 -m comment --comment "masquerade traffic for dev/nginx-service:http external destinations" -j KUBE-MARK-MASQ
-A KUBE-EXT-T3QIINOBLYCGKYC7 -j KUBE-SVC-T3QIINOBLYCGKYC7
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
-A KUBE-NODEPORTS -p tcp -m comment --comment "dev/nginx-service:http" -m tcp --dport 30000 -j KUBE-EXT-T3QIINOBLYCGKYC7
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
-A KUBE-SEP-6SBHXQ4VQ7TF2KRJ -s 10.244.1.2/32 -m comment --comment "dev/nginx-service:http" -j KUBE-MARK-MASQ
-A KUBE-SEP-6SBHXQ4VQ7TF2KRJ -p tcp -m comment --comment "dev/nginx-service:http" -m tcp -j DNAT --to-destination 10.244.1.2:80
-A KUBE-SEP-DBWEWVX6MNI34OP2 -s 10.244.2.4/32 -m comment --comment "dev/nginx-service:http" -j KUBE-MARK-MASQ
-A KUBE-SEP-DBWEWVX6MNI34OP2 -p tcp -m comment --comment "dev/nginx-service:http" -m tcp -j DNAT --to-destination 10.244.2.4:80
-A KUBE-SEP-GIAN2PTT2RYNXC3T -s 10.244.2.2/32 -m comment --comment "dev/nginx-service:http" -j KUBE-MARK-MASQ
-A KUBE-SEP-GIAN2PTT2RYNXC3T -p tcp -m comment --comment "dev/nginx-service:http" -m tcp -j DNAT --to-destination 10.244.2.2:80
-A KUBE-SEP-GZN54BITUHOHE2KT -s 10.244.1.4/32 -m comment --comment "dev/nginx-service:http" -j KUBE-MARK-MASQ
-A KUBE-SEP-GZN54BITUHOHE2KT -p tcp -m comment --comment "dev/nginx-service:http" -m tcp -j DNAT --to-destination 10.244.1.4:80
-A KUBE-SEP-RA24DBHPSNEI3NBI -s 10.244.1.3/32 -m comment --comment "dev/nginx-service:http" -j KUBE-MARK-MASQ
-A KUBE-SEP-RA24DBHPSNEI3NBI -p tcp -m comment --comment "dev/nginx-service:http" -m tcp -j DNAT --to-destination 10.244.1.3:80
-A KUBE-SEP-ZBFWA4W7TX3R62LT -s 10.244.2.3/32 -m comment --comment "dev/nginx-service:http" -j KUBE-MARK-MASQ
-A KUBE-SEP-ZBFWA4W7TX3R62LT -p tcp -m comment --comment "dev/nginx-service:http" -m tcp -j DNAT --to-destination 10.244.2.3:80
-A KUBE-SERVICES -d 10.96.0.100/32 -p tcp -m comment --comment "dev/nginx-service:http cluster IP" -m tcp --dport 80 -j KUBE-SVC-T3QIINOBLYCGKYC7
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
-A KUBE-SVC-T3QIINOBLYCGKYC7 ! -s 10.244.0.0/16 -d 10.96.0.100/32 -p tcp -m comment --comment "dev/nginx-service:http cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ
-A KUBE-SVC-T3QIINOBLYCGKYC7 -m comment --comment "dev/nginx-service:http -> 10.244.1.2:80" -m statistic --mode random --probability 0.16666666651 -j KUBE-SEP-6SBHXQ4VQ7TF2KRJ
-A KUBE-SVC-T3QIINOBLYCGKYC7 -m comment --comment "dev/nginx-service:http -> 10.244.1.3:80" -m statistic --mode random --probability 0.20000000019 -j KUBE-SEP-RA24DBHPSNEI3NBI
-A KUBE-SVC-T3QIINOBLYCGKYC7 -m comment --comment "dev/nginx-service:http -> 10.244.1.4:80" -m statistic --mode random --probability 0.25000000000 -j KUBE-SEP-GZN54BITUHOHE2KT
-A KUBE-SVC-T3QIINOBLYCGKYC7 -m comment --comment "dev/nginx-service:http -> 10.244.2.2:80" -m statistic --mode random --probability 0.33333333349 -j KUBE-SEP-GIAN2PTT2RYNXC3T
-A KUBE-SVC-T3QIINOBLYCGKYC7 -m comment --comment "dev/nginx-service:http -> 10.244.2.3:80" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-ZBFWA4W7TX3R62LT
-A KUBE-SVC-T3QIINOBLYCGKYC7 -m comment --comment "dev/nginx-service:http -> 10.244.2.4:80" -j KUBE-SEP-DBWEWVX6MNI34OP2
COMMIT
"#;

/// The seed's `iptables -t nat -L -n | grep "nginx-service:http ->"` output (each line's
/// tail; the seed trims the columns before the comment).
const SEED_GREP: [&str; 6] = [
    "/* dev/nginx-service:http -> 10.244.1.2:80 */ statistic mode random probability 0.16666666651",
    "/* dev/nginx-service:http -> 10.244.1.3:80 */ statistic mode random probability 0.20000000019",
    "/* dev/nginx-service:http -> 10.244.1.4:80 */ statistic mode random probability 0.25000000000",
    "/* dev/nginx-service:http -> 10.244.2.2:80 */ statistic mode random probability 0.33333333349",
    "/* dev/nginx-service:http -> 10.244.2.3:80 */ statistic mode random probability 0.50000000000",
    "/* dev/nginx-service:http -> 10.244.2.4:80 */",
];

fn seed_state() -> kubeport_proxy_model::ProxyState {
    state(
        &[nginx_service()],
        &[slice("dev", "nginx-service", &SEED_ENDPOINTS)],
    )
}

#[test]
fn worked_example_as_iptables_save_and_iptables_list_show_it() {
    let netns = netns_or_skip!("save");
    let tools = Iptables::in_network_namespace(IpFamily::V4, &netns.name);
    let mut proxier = IptablesProxier::new(IptablesConfig::default());
    let input = proxier.sync(&seed_state());
    tools
        .restore(input.family(IpFamily::V4).unwrap().as_str())
        .expect("iptables-restore accepts the worked example");
    proxier.mark_committed(&input);

    let saved = tools.save(Some(Table::Nat)).unwrap();
    assert_lines(&without_save_comments(&saved), WORKED_EXAMPLE_SAVED_NAT);

    let listed = netns.run(&["iptables", "-t", "nat", "-L", "-n"]);
    let grep: Vec<&str> = listed
        .lines()
        .filter(|line| line.contains("nginx-service:http ->"))
        .collect();
    assert_eq!(grep.len(), 6, "{listed}");
    for (line, expected) in grep.iter().zip(SEED_GREP) {
        assert!(
            line.trim_end().ends_with(expected),
            "{line:?} should end with {expected:?}"
        );
    }
    assert!(
        grep[0].starts_with("KUBE-SEP-6SBHXQ4VQ7TF2KRJ"),
        "{}",
        grep[0]
    );
}

#[test]
fn full_apply_installs_jumps_once_and_partial_syncs_follow_changes() {
    let netns = netns_or_skip!("apply");
    let tools = Iptables::in_network_namespace(IpFamily::V4, &netns.name);
    let mut proxier = IptablesProxier::new(IptablesConfig::default());

    let first = proxier.sync(&seed_state());
    tools.apply(first.family(IpFamily::V4).unwrap()).unwrap();
    proxier.mark_committed(&first);
    assert!(tools.canary_present().unwrap());

    let nat = tools.save(Some(Table::Nat)).unwrap();
    for expected in [
        "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
        "-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
        "-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING",
    ] {
        assert_eq!(
            nat.lines().filter(|line| *line == expected).count(),
            1,
            "{expected}\n{nat}"
        );
    }
    let filter = tools.save(Some(Table::Filter)).unwrap();
    assert!(filter.contains(
        "-A INPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES"
    ), "{filter}");
    assert!(filter.contains("-A INPUT -j KUBE-FIREWALL"), "{filter}");

    // A second full sync (e.g. periodic) does not duplicate the jump rules.
    proxier.request_full_sync();
    let again = proxier.sync(&seed_state());
    assert!(again.is_full_sync());
    tools.apply(again.family(IpFamily::V4).unwrap()).unwrap();
    proxier.mark_committed(&again);
    let nat = tools.save(Some(Table::Nat)).unwrap();
    assert_eq!(
        nat.lines()
            .filter(|line| line.starts_with("-A PREROUTING "))
            .count(),
        1,
        "{nat}"
    );

    // One endpoint goes away: a partial sync rewrites the service, deletes the SEP chain.
    let five = &SEED_ENDPOINTS[..5];
    let partial = proxier.sync(&state(
        &[nginx_service()],
        &[slice("dev", "nginx-service", five)],
    ));
    assert!(!partial.is_full_sync());
    tools.apply(partial.family(IpFamily::V4).unwrap()).unwrap();
    proxier.mark_committed(&partial);
    let nat = tools.save(Some(Table::Nat)).unwrap();
    assert!(!nat.contains("KUBE-SEP-DBWEWVX6MNI34OP2"), "{nat}");
    assert!(nat.contains(
        "-A KUBE-SVC-T3QIINOBLYCGKYC7 -m comment --comment \"dev/nginx-service:http -> 10.244.2.3:80\" -j KUBE-SEP-ZBFWA4W7TX3R62LT"
    ), "{nat}");
    assert!(
        nat.contains("--probability 0.20000000019 -j KUBE-SEP-6SBHXQ4VQ7TF2KRJ"),
        "{nat}"
    );

    // The Service goes away: its chains are deleted; a no-endpoint Service is rejected.
    let orphan = service(json!({"metadata": {"namespace": "dev", "name": "orphan"},
        "spec": {"clusterIP": "10.96.0.101", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}));
    let deleted = proxier.sync(&state(&[orphan], &[]));
    tools.apply(deleted.family(IpFamily::V4).unwrap()).unwrap();
    proxier.mark_committed(&deleted);
    let nat = tools.save(Some(Table::Nat)).unwrap();
    assert!(!nat.contains("KUBE-SVC-"), "{nat}");
    assert!(!nat.contains("KUBE-SEP-"), "{nat}");
    assert!(!nat.contains("KUBE-EXT-"), "{nat}");
    let filter = tools.save(Some(Table::Filter)).unwrap();
    assert!(filter.contains(
        "-A KUBE-SERVICES -d 10.96.0.101/32 -p tcp -m comment --comment \"dev/orphan:http has no endpoints\" -m tcp --dport 80 -j REJECT --reject-with icmp-port-unreachable"
    ), "{filter}");

    // --cleanup leaves no KUBE- chain and no jump behind.
    tools.cleanup(&IptablesProxier::cleanup_commands()).unwrap();
    let all = tools.save(None).unwrap();
    assert!(!all.contains("KUBE-"), "{all}");
    assert!(!tools.canary_present().unwrap());
}

#[test]
fn every_rule_shape_is_accepted_by_iptables_restore() {
    let netns = netns_or_skip!("shapes");
    let tools = Iptables::in_network_namespace(IpFamily::V4, &netns.name);
    let services = vec![
        nginx_service(),
        service(json!({"metadata": {"namespace": "dev", "name": "local"},
            "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "clusterIP": "10.96.0.42",
                     "externalIPs": ["192.168.99.22"], "healthCheckNodePort": 32000,
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30001}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}})),
        service(json!({"metadata": {"namespace": "dev", "name": "fw"},
            "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.45",
                     "loadBalancerSourceRanges": ["203.0.113.0/25", "172.18.0.0/16"],
                     "sessionAffinity": "ClientIP",
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30002}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "5.6.7.8"}]}}})),
        service(json!({"metadata": {"namespace": "dev", "name": "dns"},
            "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]}})),
        service(json!({"metadata": {"namespace": "dev", "name": "empty"},
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.46", "externalIPs": ["192.168.99.23"],
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30003}]}})),
        service(json!({"metadata": {"namespace": "dev", "name": "itp"},
            "spec": {"clusterIP": "10.96.0.47", "internalTrafficPolicy": "Local",
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}})),
    ];
    let slices = vec![
        slice("dev", "nginx-service", &SEED_ENDPOINTS),
        slice(
            "dev",
            "local",
            &[("10.244.1.7", "elsewhere"), ("10.244.2.7", NODE)],
        ),
        slice("dev", "fw", &[("10.244.1.8", "elsewhere")]),
        slice_with_port("dev", "dns", "dns", 53, "UDP", &[("10.244.2.9", NODE)]),
        slice("dev", "itp", &[("10.244.1.9", "elsewhere")]),
    ];
    let config = IptablesConfig {
        localhost_nodeports: true,
        ..IptablesConfig::default()
    };
    let mut proxier = IptablesProxier::new(config);
    let input = proxier.sync(&state(&services, &slices));
    let v4 = input.family(IpFamily::V4).unwrap();
    tools.apply(v4).unwrap_or_else(|err| panic!("{err}\n{v4}"));
    proxier.mark_committed(&input);
    let nat = tools.save(Some(Table::Nat)).unwrap();
    assert!(
        nat.contains("-m recent --rcheck --seconds 10800 --reap --name KUBE-SEP-"),
        "{nat}"
    );
    assert!(nat.contains("-m addrtype --src-type LOCAL"), "{nat}");
    let filter = tools.save(Some(Table::Filter)).unwrap();
    assert!(
        filter.contains("\"dev/itp:http has no local endpoints\""),
        "{filter}"
    );
    assert!(
        filter.contains("\"dev/empty:http has no endpoints\" -m addrtype --dst-type LOCAL"),
        "{filter}"
    );
    assert!(
        filter.contains("-A KUBE-PROXY-FIREWALL -d 5.6.7.8/32"),
        "{filter}"
    );
    tools.cleanup(&IptablesProxier::cleanup_commands()).unwrap();
}

#[test]
fn ipv6_restore_input_is_accepted_by_ip6tables_restore() {
    let netns = netns_or_skip!("v6");
    let node = kubeport_proxy_model::NodeInfo {
        name: NODE.into(),
        ips: vec!["172.18.0.3".parse().unwrap(), "fc00::3".parse().unwrap()],
        labels: Default::default(),
    };
    let mut config = config();
    config
        .cluster_cidrs
        .push("fd00:10:244::/56".parse().unwrap());
    let svc = service(json!({"metadata": {"namespace": "dev", "name": "v6"},
        "spec": {"type": "NodePort", "clusterIP": "fd00:10:96::100", "ipFamilies": ["IPv6"],
                 "sessionAffinity": "ClientIP",
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30600}]}}));
    let slice: k8s_openapi::api::discovery::v1::EndpointSlice = serde_json::from_value(json!({
        "metadata": {"namespace": "dev", "name": "v6-abcde", "labels": {"kubernetes.io/service-name": "v6"}},
        "addressType": "IPv6",
        "endpoints": [{"addresses": ["fd00:10:244:1::2"], "nodeName": "w1"},
                      {"addresses": ["fd00:10:244:1::3"], "nodeName": "w1"}],
        "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]
    }))
    .unwrap();
    let mut proxier = IptablesProxier::new(IptablesConfig::default());
    let input = proxier.sync(&state_with(&[svc], &[slice], &node, &config));
    for family in input.families() {
        let tools = Iptables::in_network_namespace(family.family(), &netns.name);
        tools
            .apply(family)
            .unwrap_or_else(|err| panic!("{err}\n{family}"));
    }
    proxier.mark_committed(&input);
    let tools = Iptables::in_network_namespace(IpFamily::V6, &netns.name);
    let nat = tools.save(Some(Table::Nat)).unwrap();
    assert!(
        nat.contains("-j DNAT --to-destination [fd00:10:244:1::2]:80"),
        "{nat}"
    );
    assert!(
        nat.contains("-A KUBE-SERVICES ! -d ::1/128 -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS"),
        "{nat}"
    );
    tools.cleanup(&IptablesProxier::cleanup_commands()).unwrap();
    assert!(!tools.save(None).unwrap().contains("KUBE-"));
}
