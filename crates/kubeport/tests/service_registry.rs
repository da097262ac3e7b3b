//! End-to-end: the Service registry's messages and allocation through the real kubectl
//! (issue: Service registry).

mod common;
use common::*;
use std::collections::HashSet;

fn svc_yaml(name: &str, body: &str) -> String {
    format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n{body}")
}

#[test]
fn validation_messages_as_kubectl_prints_them() {
    require_kubectl!();
    let s = TestServer::start();
    let f = write_file(
        s.dir.path(),
        "bad.yaml",
        &svc_yaml(
            "x",
            "  type: NodePort\n  ports:\n  - port: 80\n    nodePort: 40000\n",
        ),
    );
    let err = s.fails(&["apply", "-f", f.to_str().unwrap()]);
    assert!(
        err.contains("The Service \"x\" is invalid: spec.ports[0].nodePort: Invalid value: 40000: provided port is not in the valid range. The range of valid ports is 30000-32767"),
        "{err}"
    );
    let err = s.fails(&[
        "create",
        "service",
        "nodeport",
        "bad2",
        "--tcp=80:80",
        "--node-port=80",
    ]);
    assert!(
        err.contains("error: failed to create NodePort service: Service \"bad2\" is invalid: spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767"),
        "{err}"
    );
    // Several causes: one line each.
    let f = write_file(
        s.dir.path(),
        "multi.yaml",
        &svc_yaml("m", "  ports:\n  - port: 80\n  - port: 81\n"),
    );
    let err = s.fails(&["apply", "-f", f.to_str().unwrap()]);
    assert!(err.contains("The Service \"m\" is invalid: \n* spec.ports[0].name: Required value\n* spec.ports[1].name: Required value"), "{err}");
    // nodePort on type ClusterIP.
    let f = write_file(
        s.dir.path(),
        "cip.yaml",
        &svc_yaml("c", "  ports:\n  - port: 80\n    nodePort: 30500\n"),
    );
    let err = s.fails(&["create", "-f", f.to_str().unwrap()]);
    assert!(
        err.contains(
            "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"
        ),
        "{err}"
    );
    // Taken nodePort.
    s.ok(&[
        "create",
        "service",
        "nodeport",
        "a",
        "--tcp=80:80",
        "--node-port=30100",
    ]);
    let err = s.fails(&[
        "create",
        "service",
        "nodeport",
        "b",
        "--tcp=80:80",
        "--node-port=30100",
    ]);
    assert!(
        err.contains(
            "spec.ports[0].nodePort: Invalid value: 30100: provided port is already allocated"
        ),
        "{err}"
    );
    // Explicit ClusterIP already taken, and clusterIP immutability.
    let f = write_file(
        s.dir.path(),
        "ip.yaml",
        &svc_yaml("ipa", "  clusterIP: 10.96.0.50\n  ports:\n  - port: 80\n"),
    );
    s.ok(&["create", "-f", f.to_str().unwrap()]);
    let f2 = write_file(
        s.dir.path(),
        "ip2.yaml",
        &svc_yaml("ipb", "  clusterIP: 10.96.0.50\n  ports:\n  - port: 80\n"),
    );
    let err = s.fails(&["create", "-f", f2.to_str().unwrap()]);
    assert!(err.contains("spec.clusterIPs: Invalid value: []string{\"10.96.0.50\"}: failed to allocate IP 10.96.0.50: provided IP is already allocated"), "{err}");
    let err = s.fails(&[
        "patch",
        "svc",
        "ipa",
        "-p",
        r#"{"spec":{"clusterIP":"10.96.0.51"}}"#,
    ]);
    assert!(err.contains("may not change once set"), "{err}");
    // Nothing leaked: the failed creates left no objects.
    let names = s.ok(&["get", "svc", "-o", "name"]);
    assert!(
        !names.contains("service/b\n") && !names.contains("service/ipb"),
        "{names}"
    );
}

#[test]
fn concurrent_creates_get_distinct_values_from_the_upper_band() {
    require_kubectl!();
    let s = TestServer::start();
    // 200 Services created concurrently through the API (kubectl create service), some explicit.
    let threads: Vec<_> = (0..8u32)
        .map(|t| {
            let home = s.home.clone();
            let kubeconfig = s.kubeconfig.clone();
            std::thread::spawn(move || {
                for i in 0..25 {
                    let n = t * 25 + i;
                    let name = format!("s{n}");
                    let mut args = vec![
                        "create".to_string(),
                        "service".into(),
                        "nodeport".into(),
                        name,
                        "--tcp=80:80".into(),
                    ];
                    if n.is_multiple_of(10) {
                        args.push(format!("--node-port={}", 30001 + n / 10));
                    }
                    let out = std::process::Command::new(kubectl_path().unwrap())
                        .args(&args)
                        .env("HOME", &home)
                        .env("KUBECONFIG", &kubeconfig)
                        .output()
                        .unwrap();
                    assert!(
                        out.status.success(),
                        "{args:?}: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let json: serde_json::Value =
        serde_json::from_str(&s.ok(&["get", "svc", "-o", "json"])).unwrap();
    let items: Vec<&serde_json::Value> = json["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["metadata"]["name"].as_str().unwrap().starts_with('s'))
        .collect();
    assert_eq!(items.len(), 200);
    let mut ports = HashSet::new();
    let mut ips = HashSet::new();
    for i in &items {
        let np = i["spec"]["ports"][0]["nodePort"].as_u64().unwrap();
        assert!((30000..=32767).contains(&np));
        assert!(ports.insert(np), "duplicate nodePort {np}");
        let ip = i["spec"]["clusterIP"].as_str().unwrap().to_string();
        assert!(ips.insert(ip.clone()), "duplicate clusterIP {ip}");
        let name = i["metadata"]["name"].as_str().unwrap();
        let n: u64 = name[1..].parse().unwrap();
        if n.is_multiple_of(10) {
            assert_eq!(np, 30001 + n / 10);
        } else {
            // Automatic nodePorts come from the upper band (above 30000 + 86) while it has room.
            assert!(np >= 30086, "{name} got {np} from the static band");
            // Automatic ClusterIPs from the upper band of 10.96.0.0/12 (above 10.96.1.0).
            let o: Vec<u32> = ip.split('.').map(|x| x.parse().unwrap()).collect();
            let v = (o[0] << 24) | (o[1] << 16) | (o[2] << 8) | o[3];
            assert!(
                v > (10 << 24 | 96 << 16 | 1 << 8),
                "{name} got {ip} from the static band"
            );
        }
    }
}

#[test]
fn small_range_fills_and_frees() {
    require_kubectl!();
    let s = TestServer::start_with(&["--service-node-port-range", "31000-31010"]);
    for i in 0..11 {
        s.ok(&[
            "create",
            "service",
            "nodeport",
            &format!("n{i}"),
            "--tcp=80:80",
        ]);
    }
    let err = s.fails(&["create", "service", "nodeport", "n11", "--tcp=80:80"]);
    assert!(
        err.contains("failed to allocate a nodePort: range is full"),
        "{err}"
    );
    let freed = s.ok(&[
        "get",
        "svc",
        "n4",
        "-o",
        "jsonpath={.spec.ports[0].nodePort}",
    ]);
    s.ok(&["delete", "svc", "n4"]);
    s.ok(&["create", "service", "nodeport", "n11", "--tcp=80:80"]);
    assert_eq!(
        s.ok(&[
            "get",
            "svc",
            "n11",
            "-o",
            "jsonpath={.spec.ports[0].nodePort}"
        ]),
        freed
    );
}

#[test]
fn type_changes_free_and_allocate_ports() {
    require_kubectl!();
    let s = TestServer::start();
    let np = write_file(s.dir.path(), "np.yaml", &svc_yaml("web", "  type: NodePort\n  selector:\n    app: web\n  ports:\n  - port: 80\n    nodePort: 30080\n"));
    s.ok(&["apply", "-f", np.to_str().unwrap()]);
    let cip = write_file(
        s.dir.path(),
        "cip.yaml",
        &svc_yaml(
            "web",
            "  type: ClusterIP\n  selector:\n    app: web\n  ports:\n  - port: 80\n",
        ),
    );
    assert_eq!(
        s.ok(&["apply", "-f", cip.to_str().unwrap()]).trim(),
        "service/web configured"
    );
    assert_eq!(
        s.ok(&[
            "get",
            "svc",
            "web",
            "-o",
            "jsonpath={.spec.type}:{.spec.ports[0].nodePort}"
        ]),
        "ClusterIP:"
    );
    // The freed port can be claimed explicitly by another Service.
    s.ok(&[
        "create",
        "service",
        "nodeport",
        "other",
        "--tcp=80:80",
        "--node-port=30080",
    ]);
    // ClusterIP -> NodePort allocates a port.
    let np2 = write_file(
        s.dir.path(),
        "np2.yaml",
        &svc_yaml(
            "web",
            "  type: NodePort\n  selector:\n    app: web\n  ports:\n  - port: 80\n",
        ),
    );
    s.ok(&["apply", "-f", np2.to_str().unwrap()]);
    let port: u16 = s
        .ok(&[
            "get",
            "svc",
            "web",
            "-o",
            "jsonpath={.spec.ports[0].nodePort}",
        ])
        .parse()
        .unwrap();
    assert!((30000..=32767).contains(&port) && port != 30080);
}

#[test]
fn kill_9_during_create_storm_leaves_no_duplicates() {
    require_kubectl!();
    let mut s = TestServer::start();
    let mut storm = std::process::Command::new("sh")
        .arg("-c")
        .arg("i=0; while [ $i -lt 400 ]; do kubectl create service nodeport storm$i --tcp=80:80 >/dev/null 2>&1 && echo storm$i; i=$((i+1)); done")
        .env("HOME", &s.home)
        .env("KUBECONFIG", &s.kubeconfig)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(4));
    s.kill9();
    let _ = storm.kill();
    let out = storm.wait_with_output().unwrap();
    let acknowledged: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect();
    let port = s.port;
    s.spawn(port);
    let json: serde_json::Value =
        serde_json::from_str(&s.ok(&["get", "svc", "-o", "json"])).unwrap();
    let items = json["items"].as_array().unwrap();
    let names: HashSet<&str> = items
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    for a in &acknowledged {
        assert!(names.contains(a.as_str()), "acknowledged {a} lost");
    }
    let mut ports = HashSet::new();
    let mut ips = HashSet::new();
    for i in items {
        if let Some(np) = i["spec"]["ports"][0]["nodePort"].as_u64() {
            assert!(ports.insert(np), "duplicate nodePort {np}");
        }
        assert!(ips.insert(i["spec"]["clusterIP"].as_str().unwrap().to_string()));
    }
    // After the restart (repair at start-up) new Services still get fresh values.
    s.ok(&["create", "service", "nodeport", "after", "--tcp=80:80"]);
    let np: u64 = s
        .ok(&[
            "get",
            "svc",
            "after",
            "-o",
            "jsonpath={.spec.ports[0].nodePort}",
        ])
        .parse()
        .unwrap();
    assert!(!ports.contains(&np));
}
