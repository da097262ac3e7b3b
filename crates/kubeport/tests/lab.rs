//! End-to-end tests of the local lab (`kubeport create cluster` and friends), as root.
//!
//! Every test makes its own cluster (unique name; the lab picks a free node subnet) and a
//! guard deletes it even when an assertion fails. Network checks only ever send traffic to
//! addresses inside the cluster's own namespaces; "the host cannot reach pods" is checked by
//! route lookup, never by sending.

mod common;
use common::*;

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

macro_rules! require_root {
    () => {
        if !is_root() {
            eprintln!("SKIP: the lab needs root (network namespaces, links)");
            return;
        }
    };
}

/// A unique cluster name for this test process.
fn unique(tag: &str) -> String {
    format!("lt{}-{tag}", std::process::id())
}

const STATE_ROOT: &str = "/var/lib/kubeport/clusters";

/// A cluster under test: private HOME and kubeconfig; deleted on drop.
struct Lab {
    name: String,
    dir: tempfile::TempDir,
    home: PathBuf,
    kubeconfig: PathBuf,
}

impl Lab {
    fn new(name: &str) -> Lab {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        Lab {
            name: name.to_string(),
            dir,
            home,
            kubeconfig,
        }
    }

    fn kubeport(&self, args: &[&str]) -> Output {
        Command::new(kubeport_bin())
            .args(args)
            .env("HOME", &self.home)
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(Stdio::null())
            .output()
            .expect("running kubeport")
    }

    /// `kubeport create cluster --name NAME [extra...]`, asserting success; returns stderr.
    fn create(&self, extra: &[&str]) -> String {
        let mut args = vec!["create", "cluster", "--name", &self.name];
        args.extend_from_slice(extra);
        let out = self.kubeport(&args);
        assert!(
            out.status.success(),
            "create failed: {}\n{}",
            stderr(&out),
            self.logs()
        );
        stderr(&out)
    }

    fn state_dir(&self) -> PathBuf {
        Path::new(STATE_ROOT).join(&self.name)
    }

    fn state(&self) -> serde_json::Value {
        let text =
            std::fs::read_to_string(self.state_dir().join("cluster.json")).expect("cluster state");
        serde_json::from_str(&text).unwrap()
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        if let Ok(entries) = std::fs::read_dir(self.state_dir().join("logs")) {
            for e in entries.flatten() {
                let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                out.push_str(&format!("--- {}\n", e.path().display()));
                for l in tail.into_iter().rev() {
                    out.push_str(l);
                    out.push('\n');
                }
            }
        }
        out
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        Command::new(kubectl_path().expect("kubectl"))
            .args(args)
            .env("HOME", &self.home)
            .env("KUBECONFIG", &self.kubeconfig)
            .env_remove("KUBECTL_REMOTE_COMMAND_WEBSOCKETS")
            .stdin(Stdio::null())
            .output()
            .expect("running kubectl")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\n{}\n{}",
            stderr(&out),
            stdout(&out),
            self.logs()
        );
        stdout(&out)
    }

    fn delete(&self) -> Output {
        self.kubeport(&["delete", "cluster", "--name", &self.name])
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let out = self.delete();
        if !out.status.success() {
            eprintln!("cleanup of {} failed: {}", self.name, stderr(&out));
        }
        let _ = &self.dir;
    }
}

/// Nodes of a cluster state: (name, ip, podCIDR).
fn nodes(state: &serde_json::Value) -> Vec<(String, String, String)> {
    state["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["name"].as_str().unwrap().to_string(),
                n["ip"].as_str().unwrap().to_string(),
                n["pod_cidr"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn sh(cmd: &[&str]) -> Output {
    Command::new(cmd[0])
        .args(&cmd[1..])
        .stdin(Stdio::null())
        .output()
        .expect("running command")
}

fn sh_ok(cmd: &[&str]) -> String {
    let out = sh(cmd);
    assert!(out.status.success(), "{cmd:?}: {}", stderr(&out));
    stdout(&out)
}

fn netns_list() -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

fn pid_alive(pid: u64) -> bool {
    // Zombies have an empty command line.
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| !c.is_empty())
        .unwrap_or(false)
}

/// TCP reachability of an address inside our namespaces: a connection or a refusal both
/// prove packets got there and back; a timeout or "unreachable" does not.
fn reachable(ip: &str, port: u16) -> bool {
    let addr = SocketAddr::new(ip.parse::<IpAddr>().unwrap(), port);
    match TcpStream::connect_timeout(&addr, Duration::from_secs(3)) {
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionRefused,
    }
}

/// Asserts everything of the cluster is gone: namespaces, links, processes, state, context.
fn assert_gone(lab: &Lab, state: &serde_json::Value) {
    let link_id = state["link_id"].as_str().unwrap();
    let left: Vec<String> = netns_list()
        .into_iter()
        .filter(|ns| {
            ns.starts_with(&format!("{link_id}-")) || ns.starts_with(&format!("{}-", lab.name))
        })
        .collect();
    assert!(left.is_empty(), "namespaces left: {left:?}");
    assert!(!link_exists(link_id), "bridge {link_id} left");
    let links: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(link_id))
        .collect();
    assert!(links.is_empty(), "links left: {links:?}");
    for p in state["processes"].as_array().unwrap() {
        let pid = p["pid"].as_u64().unwrap();
        if pid_alive(pid) {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            assert!(
                !String::from_utf8_lossy(&cmdline).contains(&lab.name),
                "process {pid} still runs: {}",
                String::from_utf8_lossy(&cmdline)
            );
        }
    }
    assert!(!lab.state_dir().exists(), "state dir left");
    let kubeconfig = std::fs::read_to_string(&lab.kubeconfig).unwrap_or_default();
    assert!(
        !kubeconfig.contains(&format!("kubeport-{}", lab.name)),
        "kubeconfig entry left:\n{kubeconfig}"
    );
}

#[test]
fn unsupported_config_fields_are_errors_naming_the_field() {
    let lab = Lab::new(&unique("cfg"));
    let cfg = write_file(
        lab.dir.path(),
        "kind.yaml",
        "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnetworking:\n  disableDefaultCNI: true\n",
    );
    let out = lab.kubeport(&[
        "create",
        "cluster",
        "--name",
        &lab.name,
        "--config",
        cfg.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.starts_with("ERROR: failed to create cluster: unsupported field \"networking.disableDefaultCNI\" in kind config: kubeport supports kind, apiVersion, name, nodes[].role, nodes[].labels,"),
        "{err}"
    );
    assert!(!err.contains("Creating cluster"), "{err}");

    let cfg = write_file(
        lab.dir.path(),
        "ha.yaml",
        "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n- role: control-plane\n",
    );
    let out = lab.kubeport(&[
        "create",
        "cluster",
        "--name",
        &lab.name,
        "--config",
        cfg.to_str().unwrap(),
    ]);
    assert_eq!(
        stderr(&out).trim(),
        "ERROR: failed to create cluster: invalid kind config: 2 control-plane nodes: kubeport supports exactly one control-plane node (no high-availability control plane); make the others \"role: worker\""
    );
    let out = lab.kubeport(&["create", "cluster", "--name", "Bad_Name"]);
    assert_eq!(
        stderr(&out).trim(),
        "ERROR: failed to create cluster: 'Bad_Name' is not a valid cluster name, cluster names must match `^[a-z0-9.-]+$`"
    );
}

#[test]
fn unknown_clusters_read_as_kind_reports_them() {
    let lab = Lab::new(&unique("none"));
    let out = lab.kubeport(&["get", "nodes", "--name", &lab.name]);
    assert!(out.status.success());
    assert_eq!(
        stderr(&out).trim(),
        format!("No kubeport nodes found for cluster \"{}\".", lab.name)
    );
    let out = lab.kubeport(&["get", "kubeconfig", "--name", &lab.name]);
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out).trim(),
        format!("ERROR: could not locate any control plane nodes for cluster named '{}'. Use the --name option to select a different cluster", lab.name)
    );
    // Deleting what does not exist succeeds (kind's idempotent delete).
    let out = lab.delete();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).trim(),
        format!("Deleting cluster \"{}\" ...", lab.name)
    );
}

#[test]
fn three_node_topology_and_clean_delete() {
    require_root!();
    let lab = Lab::new(&unique("topo"));
    let cfg = seed("seed-001/kind-config.yaml");
    // The topology does not depend on the node agents: do not wait for Ready.
    let err = lab.create(&["--config", cfg.to_str().unwrap(), "--wait", "0s"]);
    assert!(
        err.starts_with(&format!("Creating cluster \"{}\" ...\n", lab.name)),
        "{err}"
    );
    for step in [
        " ✓ Preparing nodes 📦 📦 📦 \n",
        " ✓ Writing configuration 📜\n",
        " ✓ Starting control-plane 🕹️\n",
        " ✓ Installing CNI 🔌\n",
        " ✓ Joining worker nodes 🚜\n",
    ] {
        assert!(err.contains(step), "missing {step:?} in:\n{err}");
    }
    let context = format!("kubeport-{}", lab.name);
    assert!(
        err.contains(&format!("Set kubectl context to \"{context}\"\nYou can now use your cluster with:\n\nkubectl cluster-info --context {context}\n")),
        "{err}"
    );

    let state = lab.state();
    let n = nodes(&state);
    let names: Vec<&str> = n.iter().map(|x| x.0.as_str()).collect();
    assert_eq!(
        names,
        [
            format!("{}-control-plane", lab.name),
            format!("{}-worker", lab.name),
            format!("{}-worker2", lab.name)
        ]
    );
    let cidrs: Vec<&str> = n.iter().map(|x| x.2.as_str()).collect();
    assert_eq!(cidrs, ["10.244.0.0/24", "10.244.1.0/24", "10.244.2.0/24"]);
    let link_id = state["link_id"].as_str().unwrap().to_string();
    assert!(link_id.len() <= 15 && link_id.starts_with("kp-"));
    let host_ip = state["host_ip"].as_str().unwrap();
    let subnet = state["node_subnet"].as_str().unwrap();
    assert!(subnet.ends_with(".0/24"), "{subnet}");

    // kind's get commands.
    let out = lab.kubeport(&["get", "clusters"]);
    assert!(
        stdout(&out).lines().any(|l| l == lab.name),
        "{}",
        stdout(&out)
    );
    let out = lab.kubeport(&["get", "nodes", "--name", &lab.name]);
    assert_eq!(stdout(&out).lines().collect::<Vec<_>>(), names);

    // Each node is a namespace named after it, with eth0 holding the node's address.
    for (node, ip, _) in &n {
        let addrs = sh_ok(&["ip", "netns", "exec", node, "ip", "-br", "addr"]);
        assert!(
            addrs
                .lines()
                .any(|l| l.starts_with("eth0") && l.contains(&format!("{ip}/24"))),
            "{node}: {addrs}"
        );
        assert!(
            addrs
                .lines()
                .any(|l| l.starts_with("lo ") && l.contains("UNKNOWN")),
            "{addrs}"
        );
        let fwd = sh_ok(&[
            "ip",
            "netns",
            "exec",
            node,
            "cat",
            "/proc/sys/net/ipv4/ip_forward",
        ]);
        assert_eq!(fwd.trim(), "1");
        let routes = sh_ok(&["ip", "-n", node, "-4", "route"]);
        assert!(
            !routes.contains("default"),
            "{node} has a default route: {routes}"
        );
        assert!(routes.contains("10.96.0.0/16 dev eth0"), "{routes}");
        for (other, other_ip, other_cidr) in &n {
            if other != node {
                assert!(
                    routes.contains(&format!("{other_cidr} via {other_ip} dev eth0")),
                    "{node} lacks a route to {other}'s pods: {routes}"
                );
            }
        }
    }
    // `kubeport exec` runs in the node.
    let out = lab.kubeport(&["exec", &n[1].0, "--", "ip", "-br", "addr", "show", "eth0"]);
    assert!(
        stdout(&out).contains(&format!("{}/24", n[1].1)),
        "{}",
        stderr(&out)
    );

    // The host: its bridge has the host address; node IPs route over it; pod and service
    // addresses do not (checked by lookup only).
    let br = sh_ok(&["ip", "-br", "addr", "show", "dev", &link_id]);
    assert!(br.contains(&format!("{host_ip}/24")), "{br}");
    let to_node = sh_ok(&["ip", "route", "get", &n[2].1]);
    assert!(to_node.contains(&format!("dev {link_id}")), "{to_node}");
    for dst in ["10.244.1.5", "10.244.0.7", "10.96.0.1"] {
        let out = sh(&["ip", "route", "get", dst]);
        assert!(
            !stdout(&out).contains(&link_id),
            "the host would route {dst} over the lab bridge: {}",
            stdout(&out)
        );
    }
    // The API server listens on the control-plane address, reachable from the host and
    // from the other nodes.
    assert!(reachable(&n[0].1, 6443));
    for (node, ip, _) in &n[1..] {
        assert!(reachable(ip, 10250), "host cannot reach {node} at {ip}");
        let out = sh(&[
            "ip",
            "netns",
            "exec",
            node,
            "timeout",
            "5",
            "bash",
            "-c",
            &format!("exec 3<>/dev/tcp/{}/6443", n[0].1),
        ]);
        assert!(
            out.status.success(),
            "{node} cannot reach the API server: {}",
            stderr(&out)
        );
    }

    // The kubeconfig: merged into $KUBECONFIG and current, server on the control-plane.
    let kc = std::fs::read_to_string(&lab.kubeconfig).unwrap();
    assert!(kc.contains(&format!("current-context: {context}")), "{kc}");
    assert!(
        kc.contains(&format!("server: https://{}:6443", n[0].1)),
        "{kc}"
    );
    let out = lab.kubeport(&["get", "kubeconfig", "--name", &lab.name]);
    assert!(
        stdout(&out).contains(&format!("name: {context}")),
        "{}",
        stdout(&out)
    );
    if kubectl_path().is_some() {
        assert_eq!(lab.ok(&["config", "current-context"]).trim(), context);
        let ns = lab.ok(&["get", "ns", "-o", "name"]);
        assert!(ns.contains("namespace/default"), "{ns}");
    }
    // export into another file.
    let other = lab.dir.path().join("other-kubeconfig");
    let out = lab.kubeport(&[
        "export",
        "kubeconfig",
        "--name",
        &lab.name,
        "--kubeconfig",
        other.to_str().unwrap(),
    ]);
    assert_eq!(
        stderr(&out).trim(),
        format!("Set kubectl context to \"{context}\"")
    );
    assert!(std::fs::read_to_string(&other)
        .unwrap()
        .contains(&format!("current-context: {context}")));

    // Recorded processes run inside the nodes.
    let procs = state["processes"].as_array().unwrap();
    let server = procs
        .iter()
        .find(|p| p["role"] == "server")
        .expect("server record");
    assert!(pid_alive(server["pid"].as_u64().unwrap()));
    assert_eq!(
        procs.iter().filter(|p| p["role"] == "agent").count(),
        3,
        "{procs:?}"
    );

    // Delete: kind's messages, nothing left, idempotent.
    let out = lab.delete();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        format!(
            "Deleting cluster \"{}\" ...\nDeleted nodes: [\"{}\" \"{}\" \"{}\"]\n",
            lab.name, names[0], names[1], names[2]
        )
    );
    assert_gone(&lab, &state);
    assert!(!std::fs::read_to_string(&other).unwrap().contains(&context));
    let out = lab.delete();
    assert!(out.status.success());
    assert_eq!(
        stderr(&out),
        format!("Deleting cluster \"{}\" ...\n", lab.name)
    );
}

#[test]
fn delete_cleans_up_after_a_crash() {
    require_root!();
    let lab = Lab::new(&unique("crash"));
    lab.create(&["--wait", "0s"]);
    let state = lab.state();
    let link_id = state["link_id"].as_str().unwrap();
    // A pod-like namespace with a process in it, as a node agent would leave behind.
    let pod_ns = format!("{link_id}-0-leftover");
    sh_ok(&["ip", "netns", "add", &pod_ns]);
    let sleeper = Command::new("ip")
        .args(["netns", "exec", &pod_ns, "sleep", "600"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let sleeper_pid = sleeper.id() as u64;
    // Crash every recorded process.
    for p in state["processes"].as_array().unwrap() {
        let _ = Command::new("kill")
            .args(["-9", &p["pid"].to_string()])
            .status();
    }
    let out = lab.delete();
    assert!(out.status.success(), "{}", stderr(&out));
    let mut sleeper = sleeper;
    let status = sleeper.wait().unwrap();
    assert!(!status.success(), "the pod process should have been killed");
    assert!(!pid_alive(sleeper_pid));
    assert!(!netns_list().contains(&pod_ns));
    assert_gone(&lab, &state);
}

#[test]
fn two_clusters_side_by_side() {
    require_root!();
    let a = Lab::new(&unique("side-a"));
    let b = Lab::new(&unique("side-b"));
    let cfg = write_file(
        a.dir.path(),
        "two.yaml",
        "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n- role: worker\n",
    );
    // Concurrently: the state lock keeps their choices apart.
    std::thread::scope(|s| {
        s.spawn(|| a.create(&["--config", cfg.to_str().unwrap(), "--wait", "0s"]));
        s.spawn(|| b.create(&["--config", cfg.to_str().unwrap(), "--wait", "0s"]));
    });
    let (sa, sb) = (a.state(), b.state());
    assert_ne!(sa["link_id"], sb["link_id"]);
    assert_ne!(sa["node_subnet"], sb["node_subnet"]);
    let (na, nb) = (nodes(&sa), nodes(&sb));
    for (node, ip, _) in na.iter().chain(nb.iter()) {
        assert!(netns_list().contains(node), "{node}");
        assert!(reachable(ip, 10250), "{node} at {ip}");
    }
    assert!(reachable(&na[0].1, 6443));
    assert!(reachable(&nb[0].1, 6443));
    let out = a.kubeport(&["get", "clusters"]);
    let listed: Vec<String> = stdout(&out).lines().map(|l| l.trim().to_string()).collect();
    assert!(
        listed.contains(&a.name) && listed.contains(&b.name),
        "{listed:?}"
    );

    // Deleting one leaves the other intact.
    assert!(a.delete().status.success());
    assert_gone(&a, &sa);
    assert!(link_exists(sb["link_id"].as_str().unwrap()));
    for (node, ip, _) in &nb {
        assert!(netns_list().contains(node));
        assert!(reachable(ip, 10250));
    }
    assert!(reachable(&nb[0].1, 6443));
    assert!(b.delete().status.success());
    assert_gone(&b, &sb);
}

#[test]
fn loopback_api_server_address_is_forwarded() {
    require_root!();
    let lab = Lab::new(&unique("fwd"));
    let cfg = write_file(
        lab.dir.path(),
        "fwd.yaml",
        "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnetworking:\n  apiServerAddress: 127.0.0.1\n  apiServerPort: 0\n",
    );
    lab.create(&["--config", cfg.to_str().unwrap(), "--wait", "0s"]);
    let state = lab.state();
    let fwd = state["forwarder"]
        .as_str()
        .expect("forwarder address")
        .to_string();
    assert!(fwd.starts_with("127.0.0.1:"), "{fwd}");
    let kc = std::fs::read_to_string(&lab.kubeconfig).unwrap();
    assert!(kc.contains(&format!("server: https://{fwd}")), "{kc}");
    let internal = lab.kubeport(&["get", "kubeconfig", "--name", &lab.name, "--internal"]);
    assert!(stdout(&internal).contains(&format!("server: https://{}:6443", nodes(&state)[0].1)));
    if kubectl_path().is_some() {
        let ns = lab.ok(&["get", "ns", "-o", "name"]);
        assert!(ns.contains("namespace/default"), "{ns}");
    }
    assert!(lab.delete().status.success());
    assert_gone(&lab, &state);
    let port: u16 = fwd.rsplit(':').next().unwrap().parse().unwrap();
    assert!(
        TcpStream::connect_timeout(
            &SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_secs(1)
        )
        .is_err(),
        "the forwarder still listens"
    );
}

// ---- scenarios that need the node agent, the scheduler and the ReplicaSet controller ----

/// Waits until `check` returns Some, or panics with the last observation.
fn eventually<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    while Instant::now() < deadline {
        match check() {
            Ok(v) => return v,
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("timed out waiting for {what}: {last}");
}

/// The seed's cluster name when free, else a unique one (tests may run concurrently).
fn seed_cluster_name() -> String {
    let free = !Path::new(STATE_ROOT).join("service-demo").exists()
        && !Path::new("/run/netns/service-demo-control-plane").exists();
    if free {
        "service-demo".to_string()
    } else {
        unique("service-demo")
    }
}

#[test]
fn seed_001_cluster_pods_and_networking() {
    require_root!();
    require_kubectl!();
    let lab = Lab::new(&seed_cluster_name());
    let name = lab.name.clone();
    let cfg = seed("seed-001/kind-config.yaml");
    let started = Instant::now();
    let err = lab.create(&["--config", cfg.to_str().unwrap()]);
    eprintln!("create cluster took {:?}\n{err}", started.elapsed());
    assert!(err.contains(" • Ready after "), "{err}");

    assert_eq!(
        lab.ok(&["config", "current-context"]).trim(),
        format!("kubeport-{name}")
    );
    let out = lab.ok(&["get", "nodes"]);
    let r = rows(&out);
    assert_eq!(
        r[0][..5],
        ["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
        "{out}"
    );
    let listed: Vec<(&str, &str, &str)> = r[1..]
        .iter()
        .map(|row| (row[0].as_str(), row[1].as_str(), row[2].as_str()))
        .collect();
    assert_eq!(
        listed,
        [
            (
                format!("{name}-control-plane").as_str(),
                "Ready",
                "control-plane"
            ),
            (format!("{name}-worker").as_str(), "Ready", "<none>"),
            (format!("{name}-worker2").as_str(), "Ready", "<none>"),
        ],
        "{out}"
    );
    let state = lab.state();
    let n = nodes(&state);

    assert_eq!(
        lab.ok(&["create", "namespace", "dev"]).trim(),
        "namespace/dev created"
    );
    let rs = seed("seed-001/nginx-replicaset.yaml");
    assert_eq!(
        lab.ok(&["apply", "-f", rs.to_str().unwrap()]).trim(),
        "replicaset.apps/nginx-replicaset created"
    );
    // 6 Running pods, each with an IP in its node's /24.
    let pods: Vec<(String, String, String)> =
        eventually("6 Running pods", Duration::from_secs(90), || {
            let out = lab.ok(&["get", "pod", "-n", "dev", "-o", "wide"]);
            let r = rows(&out);
            let running: Vec<(String, String, String)> = r[1..]
                .iter()
                .filter(|row| row[1] == "1/1" && row[2] == "Running")
                .map(|row| (row[0].clone(), row[5].clone(), row[6].clone()))
                .collect();
            if running.len() == 6 && r.len() == 7 {
                Ok(running)
            } else {
                Err(out)
            }
        });
    for (pod, ip, node) in &pods {
        let (_, _, cidr) = n
            .iter()
            .find(|x| &x.0 == node)
            .unwrap_or_else(|| panic!("{pod} on unknown node {node}"));
        let prefix = cidr.trim_end_matches("0/24");
        assert!(
            ip.starts_with(prefix),
            "{pod} on {node} has {ip}, not in {cidr}"
        );
        // The downward API: NODE_NAME is the pod's node.
        assert_eq!(
            lab.ok(&["exec", "-n", "dev", pod, "--", "printenv", "NODE_NAME"])
                .trim(),
            node
        );
    }
    // The seed's loop: each pod serves its own name.
    for (pod, _, _) in &pods {
        lab.ok(&[
            "exec",
            "-n",
            "dev",
            pod,
            "--",
            "sh",
            "-c",
            &format!("echo {pod} > /usr/share/nginx/html/index.html"),
        ]);
    }
    // Logs work.
    let logs = lab.kubectl(&["logs", "-n", "dev", &pods[0].0]);
    assert!(logs.status.success(), "{}", stderr(&logs));

    // A pod reaches a pod on another node.
    let (src, _, src_node) = &pods[0];
    let (dst, dst_ip, _) = pods
        .iter()
        .find(|p| &p.2 != src_node)
        .expect("pods on two nodes");
    let got = lab.ok(&[
        "exec",
        "-n",
        "dev",
        src,
        "--",
        "curl",
        "-s",
        "--max-time",
        "5",
        &format!("http://{dst_ip}"),
    ]);
    assert_eq!(got.trim(), dst);

    // kubectl run --rm -it curl-pod prints the pod's name.
    let (target, target_ip, _) = &pods[1];
    let out = lab.kubectl(&[
        "run",
        "curl-pod",
        "--rm",
        "-it",
        "--restart=Never",
        "--image=curlimages/curl:latest",
        "--",
        "curl",
        "-s",
        &format!("http://{target_ip}"),
    ]);
    assert!(out.status.success(), "{}\n{}", stderr(&out), stdout(&out));
    assert!(stdout(&out).contains(target.as_str()), "{}", stdout(&out));

    // The host reaches node IPs but has no route to pods over the lab.
    let link_id = state["link_id"].as_str().unwrap();
    for (_, ip, _) in &pods {
        let out = sh(&["ip", "route", "get", ip]);
        assert!(
            !stdout(&out).contains(link_id),
            "host would route {ip} over the lab: {}",
            stdout(&out)
        );
    }
    for (_, ip, _) in &n {
        assert!(reachable(ip, 10250));
    }
    let addrs = sh_ok(&["ip", "netns", "exec", &n[1].0, "ip", "-br", "addr"]);
    assert!(addrs.contains(&format!("{}/24", n[1].1)), "{addrs}");

    let out = lab.delete();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_gone(&lab, &state);
    let leftover_pods: Vec<String> = netns_list()
        .into_iter()
        .filter(|ns| ns.starts_with(link_id))
        .collect();
    assert!(leftover_pods.is_empty(), "{leftover_pods:?}");
}
