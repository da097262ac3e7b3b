//! End to end, as root: a private "node" network namespace linked to the host by a veth in a
//! test-only /30, an in-process API server on the host end, and the agent (this crate's test
//! binary) running under `ip netns exec NODE`, as the lab runs it. Pods are created through
//! the API and checked from inside the node namespace (never from the host) and with kubectl.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, PostParams};

fn sh(cmd: &str, args: &[&str]) -> std::process::Output {
    Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {cmd}: {e}"))
}

fn must(cmd: &str, args: &[&str]) -> String {
    let out = sh(cmd, args);
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn skip_reason() -> Option<String> {
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root (network namespaces)".into());
    }
    for tool in ["ip", "nginx", "curl", "kubectl"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !found {
            return Some(format!("{tool} is not installed (scripts/install-deps)"));
        }
    }
    None
}

/// Everything one test creates; removed on drop, also when the test fails.
struct Lab {
    id: String,
    node_ns: String,
    host_veth: String,
    pod_prefix: String,
    host_ip: Ipv4Addr,
    node_ip: Ipv4Addr,
    pod_cidr: String,
    dir: tempfile::TempDir,
    agent: Option<Child>,
    kubeconfig: PathBuf,
}

impl Lab {
    fn new() -> Lab {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let seed = (std::process::id() ^ nanos) & 0xfffff;
        let id = format!("kpt{seed:05x}");
        let octet = (seed & 0xff) as u8;
        let lab = Lab {
            node_ns: format!("{id}-node"),
            host_veth: format!("{id}h"),
            pod_prefix: format!("{id}-pod"),
            host_ip: Ipv4Addr::new(10, 253, octet, 1),
            node_ip: Ipv4Addr::new(10, 253, octet, 2),
            pod_cidr: format!("10.252.{octet}.0/24"),
            dir: tempfile::tempdir().unwrap(),
            agent: None,
            kubeconfig: PathBuf::new(),
            id,
        };
        must("ip", &["netns", "add", &lab.node_ns]);
        must(
            "ip",
            &[
                "link",
                "add",
                &lab.host_veth,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                &lab.node_ns,
            ],
        );
        must(
            "ip",
            &[
                "addr",
                "add",
                &format!("{}/30", lab.host_ip),
                "dev",
                &lab.host_veth,
            ],
        );
        must("ip", &["link", "set", &lab.host_veth, "up"]);
        must(
            "ip",
            &[
                "-n",
                &lab.node_ns,
                "addr",
                "add",
                &format!("{}/30", lab.node_ip),
                "dev",
                "eth0",
            ],
        );
        must("ip", &["-n", &lab.node_ns, "link", "set", "eth0", "up"]);
        must("ip", &["-n", &lab.node_ns, "link", "set", "lo", "up"]);
        lab
    }

    fn node_name(&self) -> String {
        format!("{}-worker", self.id)
    }

    fn agent_log(&self) -> PathBuf {
        self.dir.path().join("agent.log")
    }

    fn start_agent(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.agent_log())
            .unwrap();
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.node_ns,
                env!("CARGO_BIN_EXE_kubeport-agent-testbin"),
                "agent",
            ])
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["--node-name", &self.node_name()])
            .args(["--node-ip", &self.node_ip.to_string()])
            .args(["--pod-cidr", &self.pod_cidr])
            .args(["--cluster-dns", "10.96.0.10"])
            .args(["--node-label", "kubeport.test/lab=yes"])
            .arg("--state-dir")
            .arg(self.dir.path().join("state"))
            .args(["--netns-prefix", &self.pod_prefix])
            .env("KUBEPORT_AGENT_BACKOFF_BASE_MS", "300")
            .env("KUBEPORT_AGENT_ATTACH_WAIT_MS", "5000")
            .env("KUBEPORT_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting the agent");
        self.agent = Some(child);
    }

    fn stop_agent(&mut self, sig: libc::c_int) {
        if let Some(mut child) = self.agent.take() {
            unsafe {
                libc::kill(child.id() as i32, sig);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Runs a command inside the node's network namespace.
    fn in_node(&self, args: &[&str]) -> std::process::Output {
        let mut all = vec!["netns", "exec", &self.node_ns];
        all.extend_from_slice(args);
        sh("ip", &all)
    }

    fn curl(&self, url: &str) -> String {
        let out = self.in_node(&["curl", "-s", "--max-time", "5", url]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> std::process::Output {
        let home = self.dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let mut child = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .env("HOME", &home)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(input) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        child.wait_with_output().unwrap()
    }

    fn pod_netns(&self, uid: &str) -> PathBuf {
        let short: String = uid
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(8)
            .collect();
        Path::new("/run/netns").join(format!("{}-{}", self.pod_prefix, short.to_lowercase()))
    }

    fn our_netns(&self) -> Vec<String> {
        std::fs::read_dir("/run/netns")
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| e.file_name().to_str().map(String::from))
                    .filter(|n| n.starts_with(&self.id))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop_agent(libc::SIGTERM);
        if std::thread::panicking() || std::env::var_os("KUBEPORT_TEST_AGENT_LOG").is_some() {
            if let Ok(log) = std::fs::read_to_string(self.agent_log()) {
                eprintln!("---- agent log ----\n{log}\n-------------------");
            }
        }
        // Processes left in our namespaces (pods of a killed agent).
        for ns in self.our_netns() {
            let out = sh("ip", &["netns", "pids", &ns]);
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if let Ok(pid) = pid.parse::<i32>() {
                    unsafe {
                        libc::kill(pid, libc::SIGKILL);
                    }
                }
            }
        }
        for ns in self.our_netns() {
            let _ = sh("ip", &["netns", "delete", &ns]);
        }
        let _ = sh("ip", &["link", "delete", &self.host_veth]);
    }
}

async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn pod_from(yaml: serde_json::Value) -> Pod {
    serde_json::from_value(yaml).unwrap()
}

fn ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True")
}

fn phase(p: &Pod) -> String {
    p.status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default()
}

async fn get(api: &Api<Pod>, name: &str) -> Option<Pod> {
    api.get_opt(name).await.ok().flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_runs_pods_in_a_node_namespace() {
    if let Some(reason) = skip_reason() {
        println!("SKIP: {reason}");
        return;
    }
    let mut lab = Lab::new();
    let mut cfg = kubeport_apiserver::ServerConfig::new(lab.dir.path().join("api"));
    cfg.bind_address = lab.host_ip.into();
    cfg.secure_port = 0;
    let server = kubeport_apiserver::start(cfg).await.expect("API server");
    lab.kubeconfig = server.admin_kubeconfig.clone();
    let kubeconfig = kube::config::Kubeconfig::read_from(&lab.kubeconfig).unwrap();
    let client = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap(),
    )
    .unwrap();
    lab.start_agent();
    let node_name = lab.node_name();

    // The node registers and is Ready.
    let nodes: Api<Node> = Api::all(client.clone());
    let node = wait_for("the node to be Ready", Duration::from_secs(20), || async {
        let n = nodes.get_opt(&node_name).await.ok().flatten()?;
        let ok = n
            .status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        ok.then_some(n)
    })
    .await;
    assert_eq!(
        node.spec.as_ref().unwrap().pod_cidr.as_deref(),
        Some(lab.pod_cidr.as_str())
    );
    let labels = node.metadata.labels.clone().unwrap();
    assert_eq!(labels["kubernetes.io/hostname"], node_name);
    assert_eq!(labels["kubeport.test/lab"], "yes");
    let out = lab.kubectl(&["get", "nodes"], None);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("{node_name}   Ready    <none>")),
        "{text}"
    );
    assert!(text.contains("v1.33.1"), "{text}");

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let marker_dir = lab.dir.path().join("marker");
    std::fs::create_dir_all(&marker_dir).unwrap();
    let marker = marker_dir.join("term");
    let create = |p: serde_json::Value| {
        let pods = pods.clone();
        async move {
            pods.create(&PostParams::default(), &pod_from(p))
                .await
                .unwrap()
        }
    };
    create(serde_json::json!({
        "metadata": {"name": "web"},
        "spec": {"nodeName": node_name, "containers": [{
            "name": "nginx", "image": "nginx:latest", "ports": [{"containerPort": 80}],
            "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                    {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]
        }]}
    }))
    .await;
    create(serde_json::json!({
        "metadata": {"name": "hello"},
        "spec": {"nodeName": node_name, "terminationGracePeriodSeconds": 30, "containers": [{
            "name": "main", "image": "busybox",
            "command": ["sh", "-c", format!("trap 'echo TERM > {}; exit 0' TERM; echo hi; while true; do sleep 0.2; done", marker.display())]
        }]}
    }))
    .await;
    create(serde_json::json!({
        "metadata": {"name": "crash"},
        "spec": {"nodeName": node_name, "containers": [{
            "name": "main", "image": "busybox", "command": ["sh", "-c", "echo run; exit 3"]
        }]}
    }))
    .await;
    create(serde_json::json!({
        "metadata": {"name": "unready"},
        "spec": {"nodeName": node_name, "containers": [{
            "name": "nginx", "image": "nginx",
            "readinessProbe": {"httpGet": {"path": "/missing", "port": 80}, "periodSeconds": 1, "failureThreshold": 1}
        }]}
    }))
    .await;
    create(serde_json::json!({
        "metadata": {"name": "netexec"},
        "spec": {"nodeName": node_name, "containers": [{
            "name": "agnhost", "image": "registry.k8s.io/e2e-test-images/agnhost:2.53",
            "args": ["netexec", "--http-port=8080"],
            "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}
        }]}
    }))
    .await;
    create(serde_json::json!({
        "metadata": {"name": "redis"},
        "spec": {"nodeName": node_name, "containers": [{"name": "redis", "image": "redis:7"}]}
    }))
    .await;

    // nginx: Running and Ready with an address from the pod CIDR, serving the default page.
    let web = wait_for(
        "web to be Running and Ready",
        Duration::from_secs(30),
        || async {
            let p = get(&pods, "web").await?;
            (phase(&p) == "Running" && ready(&p)).then_some(p)
        },
    )
    .await;
    let st = web.status.clone().unwrap();
    let ip = st.pod_ip.clone().unwrap();
    let cidr: ipnet::Ipv4Net = lab.pod_cidr.parse().unwrap();
    assert!(
        cidr.contains(&ip.parse::<Ipv4Addr>().unwrap()),
        "{ip} not in {cidr}"
    );
    assert_ne!(
        ip,
        cidr.hosts().next().unwrap().to_string(),
        "the gateway is not a pod address"
    );
    assert_eq!(
        st.host_ip.as_deref(),
        Some(lab.node_ip.to_string().as_str())
    );
    let cs = &st.container_statuses.as_ref().unwrap()[0];
    assert!(cs.ready && cs.started == Some(true));
    assert!(cs
        .container_id
        .as_deref()
        .unwrap()
        .starts_with("kubeport://"));
    assert!(cs.state.as_ref().unwrap().running.is_some());
    let conds: Vec<String> = st
        .conditions
        .unwrap()
        .iter()
        .map(|c| format!("{}={}", c.type_, c.status))
        .collect();
    for c in [
        "Initialized=True",
        "Ready=True",
        "ContainersReady=True",
        "PodReadyToStartContainers=True",
    ] {
        assert!(conds.contains(&c.to_string()), "{conds:?}");
    }
    let page = wait_for("nginx to answer", Duration::from_secs(10), || async {
        let body = lab.curl(&format!("http://{ip}/"));
        (!body.is_empty()).then_some(body)
    })
    .await;
    assert!(page.contains("<title>Welcome to nginx!</title>"), "{page}");
    assert_eq!(page.len(), 615);
    let head = String::from_utf8_lossy(
        &lab.in_node(&["curl", "-sI", &format!("http://{ip}/")])
            .stdout,
    )
    .into_owned();
    assert!(head.contains("Server: nginx/"), "{head}");

    // kubectl exec sees the pod's environment, hostname and files; a write to the document
    // root changes only this pod's page.
    let out = lab.kubectl(
        &[
            "exec",
            "web",
            "--",
            "sh",
            "-c",
            "echo $NODE_NAME $POD_IP $(hostname); cat /etc/resolv.conf",
        ],
        None,
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.starts_with(&format!("{node_name} {ip} web\n")),
        "{text}"
    );
    assert!(text.contains("search default.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5"), "{text}");
    let out = lab.kubectl(
        &[
            "exec",
            "web",
            "--",
            "sh",
            "-c",
            "echo web > /usr/share/nginx/html/index.html",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(lab.curl(&format!("http://{ip}/")), "web\n");
    let host_page = std::fs::read_to_string("/usr/share/nginx/html/index.html").unwrap_or_default();
    assert_ne!(
        host_page, "web\n",
        "the node's own document root must not change"
    );
    let out = lab.kubectl(&["exec", "web", "--", "sh", "-c", "exit 7"], None);
    assert_eq!(out.status.code(), Some(7));
    assert!(String::from_utf8_lossy(&out.stderr).contains("command terminated with exit code 7"));

    // A command container's output is in its logs.
    wait_for("hello's log", Duration::from_secs(20), || async {
        let out = lab.kubectl(&["logs", "hello"], None);
        (String::from_utf8_lossy(&out.stdout) == "hi\n").then_some(())
    })
    .await;

    // Following logs streams until the container ends; a completed pod keeps its logs.
    create(serde_json::json!({
        "metadata": {"name": "counter"},
        "spec": {"nodeName": node_name, "restartPolicy": "Never", "containers": [{
            "name": "main", "image": "busybox",
            "command": ["sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.3; done"]
        }]}
    }))
    .await;
    wait_for("counter to start", Duration::from_secs(20), || async {
        let p = get(&pods, "counter").await?;
        (phase(&p) != "Pending").then_some(())
    })
    .await;
    let out = lab.kubectl(&["logs", "-f", "counter"], None);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1\n2\n3\n");
    let counter = wait_for("counter to complete", Duration::from_secs(20), || async {
        let p = get(&pods, "counter").await?;
        (phase(&p) == "Succeeded").then_some(p)
    })
    .await;
    let term = counter.status.unwrap().container_statuses.unwrap()[0]
        .state
        .clone()
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!(
        (term.exit_code, term.reason.as_deref()),
        (0, Some("Completed"))
    );
    let out = lab.kubectl(&["logs", "--tail=1", "counter"], None);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "3\n");
    let out = lab.kubectl(&["get", "pod", "counter", "--no-headers"], None);
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("counter   0/1   Completed   0"),
        "{out:?}"
    );

    // agnhost netexec answers with the pod's name.
    let netexec = wait_for("netexec to be Ready", Duration::from_secs(30), || async {
        let p = get(&pods, "netexec").await?;
        ready(&p).then_some(p)
    })
    .await;
    let nip = netexec.status.unwrap().pod_ip.unwrap();
    assert_eq!(lab.curl(&format!("http://{nip}:8080/hostname")), "netexec");
    assert_eq!(
        lab.curl(&format!("http://{nip}:8080/echo?msg=ping")),
        "ping"
    );
    assert!(lab
        .curl(&format!("http://{nip}:8080/clientip"))
        .starts_with(&format!("{}:", cidr.hosts().next().unwrap())));
    // Pod to pod across the bridge.
    let out = lab.kubectl(
        &[
            "exec",
            "web",
            "--",
            "curl",
            "-s",
            "--max-time",
            "5",
            &format!("http://{nip}:8080/clientip"),
        ],
        None,
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with(&format!("{ip}:")),
        "{out:?}"
    );

    // A crashing container is restarted, with its exit code in lastState.
    let crash = wait_for(
        "crash to restart twice",
        Duration::from_secs(30),
        || async {
            let p = get(&pods, "crash").await?;
            let cs = p
                .status
                .as_ref()?
                .container_statuses
                .as_ref()?
                .first()?
                .clone();
            (cs.restart_count >= 2).then_some(cs)
        },
    )
    .await;
    let last = crash.last_state.unwrap().terminated.unwrap();
    assert_eq!((last.exit_code, last.reason.as_deref()), (3, Some("Error")));
    let out = lab.kubectl(&["logs", "crash", "--previous"], None);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "run\n");

    // Init containers run to completion first.
    create(serde_json::json!({
        "metadata": {"name": "init"},
        "spec": {"nodeName": node_name, "initContainers": [{
            "name": "setup", "image": "busybox", "command": ["sh", "-c", "echo prepared"]
        }], "containers": [{"name": "main", "image": "busybox", "command": ["sleep", "1000"]}]}
    }))
    .await;
    let init = wait_for("init to be Running", Duration::from_secs(30), || async {
        let p = get(&pods, "init").await?;
        (phase(&p) == "Running" && ready(&p)).then_some(p)
    })
    .await;
    let st = init.status.unwrap();
    let setup = st.init_container_statuses.unwrap()[0]
        .state
        .clone()
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!(
        (setup.exit_code, setup.reason.as_deref()),
        (0, Some("Completed"))
    );
    let out = lab.kubectl(&["logs", "init", "-c", "setup"], None);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "prepared\n");

    // A failing liveness probe (exec, run in the container's namespaces) restarts it.
    create(serde_json::json!({
        "metadata": {"name": "live"},
        "spec": {"nodeName": node_name, "containers": [{
            "name": "main", "image": "busybox", "command": ["sleep", "1000"],
            "livenessProbe": {"exec": {"command": ["sh", "-c", "test \"$(hostname)\" = other"]},
                              "periodSeconds": 1, "failureThreshold": 2}
        }]}
    }))
    .await;
    let live = wait_for("live to be restarted", Duration::from_secs(30), || async {
        let p = get(&pods, "live").await?;
        let cs = p
            .status
            .as_ref()?
            .container_statuses
            .as_ref()?
            .first()?
            .clone();
        (cs.restart_count >= 1).then_some(cs)
    })
    .await;
    let last = live.last_state.unwrap().terminated.unwrap();
    assert_eq!(last.exit_code, 143, "killed by SIGTERM");

    // A failing readiness probe keeps the pod Running but not Ready.
    let unready = wait_for("unready to be Running", Duration::from_secs(30), || async {
        let p = get(&pods, "unready").await?;
        let running = p
            .status
            .as_ref()?
            .container_statuses
            .as_ref()?
            .first()?
            .state
            .as_ref()?
            .running
            .is_some();
        running.then_some(p)
    })
    .await;
    let _ = unready;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let unready = get(&pods, "unready").await.unwrap();
    assert_eq!(phase(&unready), "Running");
    let cond = unready
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(cond.status, "False");
    assert_eq!(cond.reason.as_deref(), Some("ContainersNotReady"));
    assert_eq!(
        cond.message.as_deref(),
        Some("containers with unready status: [nginx]")
    );

    // An image kubeport cannot stand in for waits with a clear reason.
    let redis = wait_for(
        "redis's waiting reason",
        Duration::from_secs(20),
        || async {
            let p = get(&pods, "redis").await?;
            let w = p
                .status
                .as_ref()?
                .container_statuses
                .as_ref()?
                .first()?
                .state
                .as_ref()?
                .waiting
                .clone()?;
            (w.reason.as_deref() == Some("ImageNotSupported")).then_some(w)
        },
    )
    .await;
    assert!(redis.message.unwrap().contains("nginx"));

    // kubectl run -i --rm: attach, stdin, completion, deletion.
    let out = lab.kubectl(
        &[
            "run",
            "once",
            "-i",
            "--rm",
            "--restart=Never",
            "--image=busybox",
            &format!(
                "--overrides={{\"apiVersion\":\"v1\",\"spec\":{{\"nodeName\":\"{node_name}\"}}}}"
            ),
            "--",
            "sh",
            "-c",
            "read line; echo got $line",
        ],
        Some("abc\n"),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("got abc\n"),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("pod \"once\" deleted"), "{stdout}");

    // With a terminal (under `script`): run -it attaches to the container's pty, exec -it
    // gets its own.
    let home = lab.dir.path().join("home");
    let in_terminal = |cmd: String| {
        let out = Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .env("HOME", &home)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let kc = lab.kubeconfig.display().to_string();
    let text = in_terminal(format!(
        "kubectl --kubeconfig {kc} run term -it --rm --restart=Never --image=busybox \
         --overrides='{{\"apiVersion\":\"v1\",\"spec\":{{\"nodeName\":\"{node_name}\"}}}}' \
         -- sh -c 'echo tty:$(tty)'"
    ));
    assert!(text.contains("tty:/dev/pts/"), "{text}");
    let text = in_terminal(format!(
        "kubectl --kubeconfig {kc} exec -it web -- sh -c 'echo exec:$(tty)'"
    ));
    assert!(text.contains("exec:/dev/pts/"), "{text}");

    // Deletion: SIGTERM reaches the process, the pod goes away before its grace period
    // ends, and its network namespace is removed.
    let hello = get(&pods, "hello").await.unwrap();
    let hello_ns = lab.pod_netns(hello.metadata.uid.as_deref().unwrap());
    assert!(hello_ns.exists(), "{}", hello_ns.display());
    let started = Instant::now();
    pods.delete("hello", &DeleteParams::default())
        .await
        .unwrap();
    wait_for("hello to be gone", Duration::from_secs(20), || async {
        get(&pods, "hello").await.is_none().then_some(())
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap_or_default(),
        "TERM\n"
    );
    assert!(!hello_ns.exists(), "{} still exists", hello_ns.display());

    // Agent restart: the running pods are started again (same address), a pod deleted while
    // the agent was down leaves no namespace behind.
    let web_uid = web.metadata.uid.clone().unwrap();
    let redis_pod = get(&pods, "redis").await.unwrap();
    let redis_ns = lab.pod_netns(redis_pod.metadata.uid.as_deref().unwrap());
    assert!(redis_ns.exists());
    lab.stop_agent(libc::SIGKILL);
    pods.delete(
        "redis",
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    lab.start_agent();
    wait_for(
        "the stale namespace to be removed",
        Duration::from_secs(20),
        || async { (!redis_ns.exists()).then_some(()) },
    )
    .await;
    let web2 = wait_for("web to run again", Duration::from_secs(30), || async {
        let p = get(&pods, "web").await?;
        let cs = p
            .status
            .as_ref()?
            .container_statuses
            .as_ref()?
            .first()?
            .clone();
        (cs.restart_count >= 1 && cs.ready).then_some(p)
    })
    .await;
    assert_eq!(web2.metadata.uid.as_deref(), Some(web_uid.as_str()));
    assert_eq!(web2.status.unwrap().pod_ip.as_deref(), Some(ip.as_str()));
    wait_for(
        "the restarted nginx to answer",
        Duration::from_secs(10),
        || async { (lab.curl(&format!("http://{ip}/")) == "web\n").then_some(()) },
    )
    .await;

    // Agent shutdown ends its pods' processes.
    let nginx_ns = lab.pod_netns(&web_uid);
    lab.stop_agent(libc::SIGTERM);
    let pids = String::from_utf8_lossy(
        &sh(
            "ip",
            &[
                "netns",
                "pids",
                nginx_ns.file_name().unwrap().to_str().unwrap(),
            ],
        )
        .stdout,
    )
    .into_owned();
    assert_eq!(pids.trim(), "", "processes left in the pod namespace");

    server.shutdown().await;
}
