//! End-to-end: the real kubectl against a real `kubeport server` process (issue: API server).

mod common;
use common::*;
use std::time::Duration;

#[test]
fn default_namespaces_and_seed_services() {
    require_kubectl!();
    let s = TestServer::start();
    let ns = s.ok(&["get", "ns"]);
    let names: Vec<String> = rows(&ns)
        .into_iter()
        .skip(1)
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(
        names,
        ["default", "kube-node-lease", "kube-public", "kube-system"],
        "{ns}"
    );
    assert!(ns.starts_with("NAME"), "{ns}");
    assert!(ns.contains("Active"));

    assert_eq!(
        s.ok(&["create", "namespace", "dev"]).trim(),
        "namespace/dev created"
    );
    let clusterip = seed("seed-001/nginx-service-clusterip.yaml");
    assert_eq!(
        s.ok(&["apply", "-f", clusterip.to_str().unwrap()]).trim(),
        "service/nginx-service created"
    );
    let out = s.ok(&["-n", "dev", "get", "svc"]);
    let r = rows(&out);
    assert_eq!(
        r[0],
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ]
    );
    assert_eq!(r[1][0..2], ["nginx-service", "ClusterIP"]);
    assert!(
        r[1][2].starts_with("10.9") || r[1][2].starts_with("10.10") || r[1][2].starts_with("10.11"),
        "{out}"
    );
    assert_eq!(r[1][3..5], ["<none>", "80/TCP"]);

    let nodeport = seed("seed-002/sampleNodePort.yaml");
    assert_eq!(
        s.ok(&["apply", "-f", nodeport.to_str().unwrap()]).trim(),
        "service/node-port created"
    );
    let wide = s.ok(&["get", "svc", "-o", "wide"]);
    let r = rows(&wide);
    assert_eq!(
        r[0],
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE",
            "SELECTOR"
        ]
    );
    let kubernetes = r
        .iter()
        .find(|x| x[0] == "kubernetes")
        .expect("kubernetes service");
    assert_eq!(
        kubernetes[1..5],
        ["ClusterIP", "10.96.0.1", "<none>", "443/TCP"]
    );
    assert_eq!(kubernetes[6], "<none>");
    let np = r
        .iter()
        .find(|x| x[0] == "node-port")
        .expect("node-port row");
    assert_eq!(np[1], "NodePort");
    assert_eq!(np[3..5], ["<none>", "8080:30001/TCP"]);
    assert_eq!(np[6], "app=nginx-dep");

    let yaml = s.ok(&["get", "svc", "node-port", "-o", "yaml"]);
    for want in [
        "nodePort: 30001",
        "port: 8080",
        "targetPort: 80",
        "type: NodePort",
        "externalTrafficPolicy: Cluster",
        "sessionAffinity: None",
        "ipFamilyPolicy: SingleStack",
        "- IPv4",
        "resourceVersion:",
        "uid:",
    ] {
        assert!(yaml.contains(want), "missing {want:?} in:\n{yaml}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&s.ok(&["get", "svc", "node-port", "-o", "json"])).unwrap();
    assert_eq!(json["spec"]["ports"][0]["nodePort"], 30001);
    assert_eq!(json["kind"], "Service");
    let ip = s.ok(&[
        "get",
        "svc",
        "node-port",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    assert_eq!(ip, np[2]);

    let describe = s.ok(&["describe", "svc", "node-port"]);
    for want in [
        "Name:                     node-port",
        "Namespace:                default",
        "Labels:                   <none>",
        "Selector:                 app=nginx-dep",
        "Type:                     NodePort",
        "Port:                     node-port  8080/TCP",
        "TargetPort:               80/TCP",
        "NodePort:                 node-port  30001/TCP",
        "Endpoints:",
        "Session Affinity:         None",
        "External Traffic Policy:  Cluster",
        "Events:                   <none>",
    ] {
        assert!(describe.contains(want), "missing {want:?} in:\n{describe}");
    }
    assert!(
        describe.contains(&format!("IP:                       {}", np[2])),
        "{describe}"
    );
    // kubectl hides the last-applied annotation in describe, but apply stored it.
    let annotations = s.ok(&[
        "get",
        "svc",
        "node-port",
        "-o",
        "jsonpath={.metadata.annotations}",
    ]);
    assert!(
        annotations.contains("kubectl.kubernetes.io/last-applied-configuration"),
        "{annotations}"
    );
}

#[test]
fn apply_patch_label_delete() {
    require_kubectl!();
    let s = TestServer::start();
    let f = seed("seed-002/sampleNodePort.yaml");
    let f = f.to_str().unwrap();
    assert_eq!(
        s.ok(&["apply", "-f", f]).trim(),
        "service/node-port created"
    );
    assert_eq!(
        s.ok(&["apply", "-f", f]).trim(),
        "service/node-port unchanged"
    );
    let changed = std::fs::read_to_string(f)
        .unwrap()
        .replace("port: 8080", "port: 8081");
    let changed = write_file(s.dir.path(), "changed.yaml", &changed);
    assert_eq!(
        s.ok(&["apply", "-f", changed.to_str().unwrap()]).trim(),
        "service/node-port configured"
    );
    assert_eq!(
        s.ok(&[
            "get",
            "svc",
            "node-port",
            "-o",
            "jsonpath={.spec.ports[0].port}"
        ]),
        "8081"
    );

    // Server-side apply of a new object and of the same one again.
    let ssa = write_file(
        s.dir.path(),
        "ssa.yaml",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: ssa\nspec:\n  selector:\n    app: ssa\n  ports:\n  - port: 80\n",
    );
    assert_eq!(
        s.ok(&["apply", "--server-side", "-f", ssa.to_str().unwrap()])
            .trim(),
        "service/ssa serverside-applied"
    );
    assert_eq!(
        s.ok(&["apply", "--server-side", "-f", ssa.to_str().unwrap()])
            .trim(),
        "service/ssa serverside-applied"
    );

    // The three patch types.
    assert_eq!(
        s.ok(&[
            "patch",
            "svc",
            "ssa",
            "-p",
            r#"{"spec":{"ports":[{"port":80,"targetPort":9090}]}}"#
        ])
        .trim(),
        "service/ssa patched"
    );
    assert_eq!(
        s.ok(&[
            "get",
            "svc",
            "ssa",
            "-o",
            "jsonpath={.spec.ports[0].targetPort}"
        ]),
        "9090"
    );
    assert_eq!(
        s.ok(&[
            "patch",
            "svc",
            "ssa",
            "--type=merge",
            "-p",
            r#"{"metadata":{"annotations":{"a":"b"}}}"#
        ])
        .trim(),
        "service/ssa patched"
    );
    assert_eq!(
        s.ok(&[
            "patch",
            "svc",
            "ssa",
            "--type=json",
            "-p",
            r#"[{"op":"replace","path":"/spec/selector/app","value":"other"}]"#
        ])
        .trim(),
        "service/ssa patched"
    );
    assert_eq!(
        s.ok(&[
            "get",
            "svc",
            "ssa",
            "-o",
            "jsonpath={.spec.selector.app}/{.metadata.annotations.a}"
        ]),
        "other/b"
    );
    // A no-op patch reports so.
    assert_eq!(
        s.ok(&[
            "patch",
            "svc",
            "ssa",
            "--type=merge",
            "-p",
            r#"{"metadata":{"annotations":{"a":"b"}}}"#
        ])
        .trim(),
        "service/ssa patched (no change)"
    );

    assert_eq!(
        s.ok(&["label", "svc", "ssa", "tier=web"]).trim(),
        "service/ssa labeled"
    );
    assert_eq!(
        s.ok(&["get", "svc", "-l", "tier=web", "-o", "name"]).trim(),
        "service/ssa"
    );

    assert_eq!(
        s.ok(&["delete", "-f", changed.to_str().unwrap()]).trim(),
        "service \"node-port\" deleted"
    );
    let err = s.fails(&["get", "svc", "node-port"]);
    assert!(
        err.contains("Error from server (NotFound): services \"node-port\" not found"),
        "{err}"
    );
}

#[test]
fn imperative_create_and_scale() {
    require_kubectl!();
    let s = TestServer::start();
    assert_eq!(
        s.ok(&["create", "service", "nodeport", "web", "--tcp=80:80"])
            .trim(),
        "service/web created"
    );
    let r = rows(&s.ok(&["get", "svc", "web"]));
    let ports = &r[1][4];
    let np: u16 = ports
        .trim_start_matches("80:")
        .trim_end_matches("/TCP")
        .parse()
        .unwrap();
    assert!((30000..=32767).contains(&np), "{ports}");
    assert_eq!(
        s.ok(&[
            "create",
            "service",
            "clusterip",
            "internal",
            "--tcp=8080:http"
        ])
        .trim(),
        "service/internal created"
    );
    assert_eq!(
        s.ok(&[
            "get",
            "svc",
            "internal",
            "-o",
            "jsonpath={.spec.ports[0].targetPort}"
        ]),
        "http"
    );
    assert_eq!(
        s.ok(&[
            "create",
            "deployment",
            "web",
            "--image=nginx",
            "--replicas=2"
        ])
        .trim(),
        "deployment.apps/web created"
    );
    assert_eq!(
        s.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "2"
    );
    assert_eq!(
        s.ok(&["scale", "deployment", "web", "--replicas=3"]).trim(),
        "deployment.apps/web scaled"
    );
    assert_eq!(
        s.ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.replicas}/{.metadata.generation}"
        ]),
        "3/2"
    );
    let r = rows(&s.ok(&["get", "deploy"]));
    assert_eq!(r[0], ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]);
    // No nodes exist here: the controllers create pods that stay Pending.
    assert_eq!(r[1][0..2], ["web", "0/3"]);
    assert_eq!(r[1][3], "0");
    let err = s.fails(&["create", "deployment", "web", "--image=nginx"]);
    assert!(
        err.contains("error: failed to create deployment: deployments.apps \"web\" already exists"),
        "{err}"
    );
}

#[test]
fn watch_prints_rows_for_new_services() {
    require_kubectl!();
    let s = TestServer::start();
    let mut child = std::process::Command::new(kubectl_path().unwrap())
        .args(["get", "svc", "-w"])
        .env("HOME", &s.home)
        .env("KUBECONFIG", &s.kubeconfig)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(30)).expect("header");
    assert!(first.starts_with("NAME"), "{first}");
    let kubernetes = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("kubernetes row");
    assert!(kubernetes.starts_with("kubernetes"), "{kubernetes}");
    // Another client creates a Service: a row appears.
    s.ok(&["create", "service", "clusterip", "watched", "--tcp=80:80"]);
    let row = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("row for the new service");
    assert!(
        row.starts_with("watched") && row.contains("ClusterIP") && row.contains("80/TCP"),
        "{row}"
    );
    s.ok(&["create", "service", "clusterip", "watched2", "--tcp=81:81"]);
    let row = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("still watching");
    assert!(row.starts_with("watched2"), "{row}");
    assert!(
        child.try_wait().unwrap().is_none(),
        "kubectl get -w must keep watching"
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn stale_update_conflicts() {
    require_kubectl!();
    let s = TestServer::start();
    s.ok(&["create", "service", "clusterip", "web", "--tcp=80:80"]);
    let stale = s.ok(&["get", "svc", "web", "-o", "yaml"]);
    s.ok(&["label", "svc", "web", "bump=1"]);
    let f = write_file(s.dir.path(), "stale.yaml", &stale);
    let err = s.fails(&["replace", "-f", f.to_str().unwrap()]);
    assert!(
        err.contains("Error from server (Conflict): error when replacing") && err.contains("Operation cannot be fulfilled on services \"web\": the object has been modified; please apply your changes to the latest version and try again"),
        "{err}"
    );
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    require_kubectl!();
    let mut s = TestServer::start();
    let mut manifest = String::new();
    for i in 0..100 {
        manifest.push_str(&format!("---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i}\ndata:\n  n: \"{i}\"\n"));
    }
    let f = write_file(s.dir.path(), "cms.yaml", &manifest);
    s.ok(&["create", "-f", f.to_str().unwrap()]);
    let before = s.ok(&["get", "configmaps", "-o", "json"]);
    s.kill9();
    let port = s.port;
    s.spawn(port);
    let after = s.ok(&["get", "configmaps", "-o", "json"]);
    let b: serde_json::Value = serde_json::from_str(&before).unwrap();
    let a: serde_json::Value = serde_json::from_str(&after).unwrap();
    let items = |v: &serde_json::Value| -> Vec<serde_json::Value> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["metadata"]["name"].as_str().unwrap().starts_with("cm-"))
            .cloned()
            .collect()
    };
    assert_eq!(items(&b).len(), 100);
    assert_eq!(
        items(&a),
        items(&b),
        "objects changed across kill -9 and restart"
    );
}

#[test]
fn old_and_new_kubectl_smoke() {
    require_kubectl!();
    let s = TestServer::start();
    for minor in [27u32, 33] {
        let Some(bin) = versioned_kubectl(minor) else {
            eprintln!("SKIP: kubectl.1.{minor} not installed beside the dispatcher");
            continue;
        };
        let run = |args: &[&str]| {
            let o = s.kubectl_with(&bin, args);
            assert!(
                o.status.success(),
                "kubectl.1.{minor} {args:?}: {}",
                stderr(&o)
            );
            stdout(&o)
        };
        let ns = format!("smoke{minor}");
        assert_eq!(
            run(&["create", "namespace", &ns]).trim(),
            format!("namespace/{ns} created")
        );
        let f = seed("seed-002/sampleNodePort.yaml");
        assert_eq!(
            run(&["-n", &ns, "apply", "-f", f.to_str().unwrap()]).trim(),
            "service/node-port created"
        );
        assert_eq!(
            run(&["-n", &ns, "apply", "-f", f.to_str().unwrap()]).trim(),
            "service/node-port unchanged"
        );
        let r = rows(&run(&["-n", &ns, "get", "svc", "-o", "wide"]));
        assert_eq!(r[1][4], "8080:30001/TCP");
        assert!(run(&["-n", &ns, "describe", "svc", "node-port"]).contains("NodePort:"));
        assert_eq!(
            run(&[
                "-n",
                &ns,
                "create",
                "service",
                "clusterip",
                "c",
                "--tcp=80:80"
            ])
            .trim(),
            "service/c created"
        );
        assert_eq!(
            run(&["-n", &ns, "delete", "svc", "c"]).trim(),
            "service \"c\" deleted"
        );
        // Only one namespace may hold nodePort 30001: the second minor uses its own namespace,
        // so delete this one's service to free the port.
        assert_eq!(
            run(&["-n", &ns, "delete", "-f", f.to_str().unwrap()]).trim(),
            "service \"node-port\" deleted"
        );
    }
}

#[test]
fn http_errors_without_cert_oversize_and_truncated() {
    let s = TestServer::start();
    let o = s.curl(
        false,
        &[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &s.url("/api/v1/namespaces"),
        ],
    );
    assert_eq!(stdout(&o), "401");
    let o = s.curl(false, &[&s.url("/api/v1/namespaces")]);
    let body: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(body["reason"], "Unauthorized");

    let big = s.dir.path().join("big.json");
    let payload = format!("{{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{{\"name\":\"big\"}},\"data\":{{\"x\":\"{}\"}}}}", "a".repeat(4 * 1024 * 1024));
    std::fs::write(&big, payload).unwrap();
    let o = s.curl(
        true,
        &[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &format!("@{}", big.display()),
            &s.url("/api/v1/namespaces/default/configmaps"),
        ],
    );
    assert_eq!(stdout(&o), "413");

    let o = s.curl(
        true,
        &[
            "-w",
            "\n%{http_code}",
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":",
            &s.url("/api/v1/namespaces/default/configmaps"),
        ],
    );
    let text = stdout(&o);
    let (body, code) = text.rsplit_once('\n').unwrap();
    assert_eq!(code, "400", "{text}");
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["reason"], "BadRequest");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("json parse error"),
        "{body}"
    );
    // Nothing was half-written.
    let o = s.curl(
        true,
        &[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &s.url("/api/v1/namespaces/default/configmaps/big"),
        ],
    );
    assert_eq!(stdout(&o), "404");
}
