//! Harness for the proxy's end-to-end tests: a miniature node built from network namespaces,
//! an in-process API server reachable from inside the node, and the real `kubeport proxy`
//! running in the node's namespace.
//!
//! Topology (all inside namespaces this harness creates; the host namespace is not touched):
//! - `<tag>-node`: the node. Its "uplink" (`<tag>u`) leads to the client namespace
//!   (`172.30.S.2/24`, the node IP); each pod hangs off a routed veth (`<tag>pN`, gateway
//!   `10.200.S.1/32`, a /32 route per pod). Routed rather than bridged so that every packet
//!   between pods crosses the node's IP layer (a bridge would need br_netfilter, a host-wide
//!   setting, for replies to be un-NATed).
//! - `<tag>-pN`: pods `10.200.S.(10+N)`, default route via the node; each runs a Python
//!   server answering `<pod name> <client ip>` over HTTP/TCP lines (port 8080) and UDP (5353).
//! - `<tag>-cl`: the outside client `172.30.S.100/24`, no default route.
//!
//! The API server listens on the host's loopback; a forwarder whose listening socket was
//! created inside the node namespace (a thread enters it with setns) makes it reachable as
//! `127.0.0.1:<same port>` there, so the admin kubeconfig works unchanged inside the node.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use kube::discovery::ApiResource;
use serde_json::{json, Value};

pub const NODE: &str = "proxy-node";
pub const OTHER_NODE: &str = "other-node";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// None (and a printed reason) when the tests cannot run here.
pub fn skip_reason() -> Option<String> {
    // SAFETY: plain getter.
    if unsafe { libc_geteuid() } != 0 {
        return Some("needs root (network namespaces, nftables)".into());
    }
    for tool in ["ip", "nft", "python3"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !found {
            return Some(format!("{tool} is not installed"));
        }
    }
    None
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
    #[link_name = "setns"]
    fn libc_setns(fd: i32, nstype: i32) -> i32;
}
const CLONE_NEWNET: i32 = 0x4000_0000;

pub fn has_tool(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Runs a command, panics with its output when it fails, returns stdout.
pub fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ip netns exec NS program args…`.
pub fn in_ns(ns: &str, program: &str, args: &[&str]) -> Output {
    Command::new("ip")
        .args(["netns", "exec", ns, program])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running ip netns exec")
}

pub fn in_ns_ok(ns: &str, program: &str, args: &[&str]) -> String {
    let out = in_ns(ns, program, args);
    assert!(
        out.status.success(),
        "[{ns}] {program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls `check` until it returns Some or the timeout passes.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The Python interpreter itself (not a pyenv shim, which is a slow shell script).
fn python() -> String {
    static PYTHON: Mutex<Option<String>> = Mutex::new(None);
    let mut cached = PYTHON.lock().unwrap();
    if cached.is_none() {
        let path = run("python3", &["-c", "import sys; print(sys.executable)"]);
        *cached = Some(path.trim().to_string());
    }
    cached.clone().unwrap()
}

const SERVER: &str = r#"
import socket, sys, threading
name, tcp_port, udp_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp.bind(("0.0.0.0", tcp_port)); tcp.listen(256)
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("0.0.0.0", udp_port))
def answer(addr): return (name + " " + addr[0] + "\n").encode()
def handle(conn, addr):
    try:
        f = conn.makefile("rb")
        line = f.readline()
        if line.startswith(b"GET "):
            while True:
                h = f.readline()
                if not h or h in (b"\r\n", b"\n"): break
            body = answer(addr)
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            return
        while line:
            conn.sendall(answer(addr))
            line = f.readline()
    except Exception:
        pass
    finally:
        conn.close()
def serve_udp():
    while True:
        data, addr = udp.recvfrom(4096)
        udp.sendto(answer(addr).strip(), addr)
threading.Thread(target=serve_udp, daemon=True).start()
print("ready", flush=True)
while True:
    c, a = tcp.accept()
    threading.Thread(target=handle, args=(c, a), daemon=True).start()
"#;

const CLIENT: &str = r#"
import socket, sys, time
mode = sys.argv[1]
if mode == "http":
    host, port, count, timeout = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    for _ in range(count):
        start = time.time()
        try:
            s = socket.create_connection((host, port), timeout=timeout)
            s.settimeout(timeout)
            s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk: break
                data += chunk
            s.close()
            print(data.split(b"\r\n\r\n", 1)[-1].decode().strip(), flush=True)
        except Exception as e:
            print("ERR %s %d" % (type(e).__name__, int((time.time() - start) * 1000)), flush=True)
elif mode == "get":
    host, port, path = sys.argv[2], int(sys.argv[3]), sys.argv[4]
    s = socket.create_connection((host, port), timeout=5)
    s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (path, host)).encode())
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk: break
        data += chunk
    sys.stdout.write(data.decode())
elif mode == "udp":
    host, port, sport, timeout = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    u.bind(("0.0.0.0", sport))
    u.settimeout(timeout)
    u.sendto(b"hello", (host, port))
    try:
        print(u.recv(4096).decode(), flush=True)
    except Exception as e:
        print("ERR %s" % type(e).__name__, flush=True)
elif mode == "hold":
    host, port = sys.argv[2], int(sys.argv[3])
    s = socket.create_connection((host, port), timeout=5)
    s.settimeout(10)
    f = s.makefile("rb")
    for line in sys.stdin:
        try:
            s.sendall(line.encode())
            print(f.readline().decode().strip(), flush=True)
        except Exception as e:
            print("ERR %s" % type(e).__name__, flush=True)
"#;

/// One pod: its namespace, address and node.
#[derive(Debug, Clone)]
pub struct Pod {
    pub name: String,
    pub netns: String,
    pub ip: Ipv4Addr,
    pub node: String,
}

/// The namespaces and processes of one test; everything goes away on drop.
pub struct Topology {
    pub tag: String,
    pub subnet: u8,
    pub node_ns: String,
    pub client_ns: String,
    pub node_ip: Ipv4Addr,
    pub client_ip: Ipv4Addr,
    pub pods: Vec<Pod>,
    namespaces: Vec<String>,
    processes: Vec<Child>,
}

impl Topology {
    /// A node with one pod per entry of `pod_nodes` (the node name the pod's endpoint will
    /// claim; all pods physically hang off this node).
    pub fn new(pod_nodes: &[&str]) -> Topology {
        let index = COUNTER.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let tag = format!("k{:04x}{}", pid % 0x10000, index);
        let subnet = (20 + (pid as usize * 7 + index * 31) % 200) as u8;
        let mut topo = Topology {
            node_ns: format!("{tag}-node"),
            client_ns: format!("{tag}-cl"),
            node_ip: Ipv4Addr::new(172, 30, subnet, 2),
            client_ip: Ipv4Addr::new(172, 30, subnet, 100),
            pods: Vec::new(),
            namespaces: Vec::new(),
            processes: Vec::new(),
            tag,
            subnet,
        };
        topo.build(pod_nodes);
        topo
    }

    fn add_netns(&mut self, name: &str) {
        run("ip", &["netns", "add", name]);
        self.namespaces.push(name.to_string());
        in_ns_ok(name, "ip", &["link", "set", "lo", "up"]);
    }

    fn build(&mut self, pod_nodes: &[&str]) {
        let node = self.node_ns.clone();
        let client = self.client_ns.clone();
        let s = self.subnet;
        self.add_netns(&node);
        self.add_netns(&client);
        for key in [
            "net.ipv4.ip_forward=1",
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.default.rp_filter=0",
        ] {
            in_ns_ok(&node, "sysctl", &["-qw", key]);
        }
        // Uplink node <-> client, created inside the node namespace.
        let uplink = format!("{}u", self.tag);
        let node_cidr = format!("{}/24", self.node_ip);
        let client_cidr = format!("{}/24", self.client_ip);
        run(
            "ip",
            &[
                "-n", &node, "link", "add", &uplink, "type", "veth", "peer", "name", "eth0",
                "netns", &client,
            ],
        );
        run(
            "ip",
            &["-n", &node, "addr", "add", &node_cidr, "dev", &uplink],
        );
        run("ip", &["-n", &node, "link", "set", &uplink, "up"]);
        run(
            "ip",
            &["-n", &client, "addr", "add", &client_cidr, "dev", "eth0"],
        );
        run("ip", &["-n", &client, "link", "set", "eth0", "up"]);
        // Locally generated packets need a route before DNAT picks the endpoint: send the
        // service range towards the uplink (it only leads to our client namespace).
        run(
            "ip",
            &["-n", &node, "route", "add", "10.96.0.0/12", "dev", &uplink],
        );
        let gateway = format!("10.200.{s}.1");
        for (i, pod_node) in pod_nodes.iter().enumerate() {
            let name = format!("pod{}", i + 1);
            let ns = format!("{}-p{}", self.tag, i + 1);
            let ip = Ipv4Addr::new(10, 200, s, 11 + i as u8);
            self.add_netns(&ns);
            let host_side = format!("{}p{}", self.tag, i + 1);
            run(
                "ip",
                &[
                    "-n", &node, "link", "add", &host_side, "type", "veth", "peer", "name", "eth0",
                    "netns", &ns,
                ],
            );
            run(
                "ip",
                &[
                    "-n",
                    &node,
                    "addr",
                    "add",
                    &format!("{gateway}/32"),
                    "dev",
                    &host_side,
                ],
            );
            run("ip", &["-n", &node, "link", "set", &host_side, "up"]);
            run(
                "ip",
                &[
                    "-n",
                    &node,
                    "route",
                    "add",
                    &format!("{ip}/32"),
                    "dev",
                    &host_side,
                ],
            );
            run(
                "ip",
                &["-n", &ns, "addr", "add", &format!("{ip}/32"), "dev", "eth0"],
            );
            run("ip", &["-n", &ns, "link", "set", "eth0", "up"]);
            run("ip", &["-n", &ns, "route", "add", &gateway, "dev", "eth0"]);
            run(
                "ip",
                &[
                    "-n", &ns, "route", "add", "default", "via", &gateway, "dev", "eth0",
                ],
            );
            let mut child = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &ns,
                    &python(),
                    "-c",
                    SERVER,
                    &name,
                    "8080",
                    "5353",
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("starting a pod server");
            // Wait for "ready" (sockets bound).
            let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
            let mut line = String::new();
            std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
            assert_eq!(line.trim(), "ready", "pod server did not start");
            self.processes.push(child);
            self.pods.push(Pod {
                name,
                netns: ns,
                ip,
                node: pod_node.to_string(),
            });
        }
    }

    /// The pods' CIDR (for `--cluster-cidr`).
    pub fn pod_cidr(&self) -> String {
        format!("10.200.{}.0/24", self.subnet)
    }

    /// `count` HTTP requests from namespace `ns`; one line per request (`<pod> <client ip>`
    /// or `ERR <exception> <elapsed ms>`).
    pub fn http(&self, ns: &str, host: &str, port: u16, count: usize, timeout: f64) -> Vec<String> {
        let out = in_ns(
            ns,
            &python(),
            &[
                "-c",
                CLIENT,
                "http",
                host,
                &port.to_string(),
                &count.to_string(),
                &timeout.to_string(),
            ],
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// A raw HTTP GET (status line, headers, body) from namespace `ns`.
    pub fn get(&self, ns: &str, host: &str, port: u16, path: &str) -> String {
        in_ns_ok(
            ns,
            &python(),
            &["-c", CLIENT, "get", host, &port.to_string(), path],
        )
    }

    /// Like [`Topology::get`], `None` when the request fails.
    pub fn try_get(&self, ns: &str, host: &str, port: u16, path: &str) -> Option<String> {
        let out = in_ns(
            ns,
            &python(),
            &["-c", CLIENT, "get", host, &port.to_string(), path],
        );
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// One UDP datagram from `ns`, source port `sport`; the answer or `ERR …`.
    pub fn udp(&self, ns: &str, host: &str, port: u16, sport: u16, timeout: f64) -> String {
        in_ns_ok(
            ns,
            &python(),
            &[
                "-c",
                CLIENT,
                "udp",
                host,
                &port.to_string(),
                &sport.to_string(),
                &timeout.to_string(),
            ],
        )
        .trim()
        .to_string()
    }

    /// A TCP connection held open from `ns`: write lines, read one answer per line.
    pub fn hold(&self, ns: &str, host: &str, port: u16) -> HeldConnection {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, &python(), "-c", CLIENT, "hold", host])
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting the held connection");
        let stdin = child.stdin.take().unwrap();
        let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        HeldConnection {
            child,
            stdin,
            stdout,
        }
    }

    pub fn pod(&self, name: &str) -> &Pod {
        self.pods.iter().find(|p| p.name == name).unwrap()
    }

    /// `nft list ruleset` inside the node.
    pub fn ruleset(&self) -> String {
        in_ns_ok(&self.node_ns, "nft", &["list", "ruleset"])
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for child in &mut self.processes {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new("ip").args(["netns", "delete", ns]).status();
        }
    }
}

/// See [`Topology::hold`].
pub struct HeldConnection {
    child: Child,
    stdin: std::process::ChildStdin,
    stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl HeldConnection {
    pub fn exchange(&mut self, line: &str) -> String {
        use std::io::{BufRead, Write};
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
        let mut answer = String::new();
        self.stdout.read_line(&mut answer).unwrap();
        answer.trim().to_string()
    }
}

impl Drop for HeldConnection {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An in-process API server plus the forwarder that makes it reachable inside the node.
pub struct ApiServer {
    pub rt: tokio::runtime::Runtime,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
    pub client: kube::Client,
    forwarding: Arc<tokio::sync::watch::Sender<bool>>,
    server: Option<kubeport_apiserver::RunningServer>,
    forwarder: Option<tokio::task::JoinHandle<()>>,
}

impl ApiServer {
    /// Starts the API server and a forwarder listening inside `node_ns`.
    pub fn start(node_ns: &str) -> ApiServer {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let server = rt
            .block_on(kubeport_apiserver::start(
                kubeport_apiserver::ServerConfig {
                    secure_port: 0,
                    ..kubeport_apiserver::ServerConfig::new(dir.path().join("data"))
                },
            ))
            .expect("API server starts");
        let kubeconfig = server.admin_kubeconfig.clone();
        let port = server.addr.port();
        let client = rt.block_on(async {
            let config = kube::Config::from_custom_kubeconfig(
                kube::config::Kubeconfig::read_from(&kubeconfig).unwrap(),
                &Default::default(),
            )
            .await
            .unwrap();
            kube::Client::try_from(config).unwrap()
        });
        let listener = listen_in_netns(node_ns, port);
        let (forwarding, _) = tokio::sync::watch::channel(true);
        let forwarding = Arc::new(forwarding);
        let forwarder = {
            let _guard = rt.enter();
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let forwarding = forwarding.clone();
            rt.spawn(forward(listener, port, forwarding))
        };
        ApiServer {
            rt,
            dir,
            kubeconfig,
            client,
            forwarding,
            server: Some(server),
            forwarder: Some(forwarder),
        }
    }

    /// Cuts (false) or restores (true) the node's access to the API server.
    pub fn set_reachable(&self, reachable: bool) {
        self.forwarding.send_replace(reachable);
    }

    fn api(&self, ns: Option<&str>, resource: &ApiResource) -> Api<DynamicObject> {
        match ns {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, resource),
            None => Api::all_with(self.client.clone(), resource),
        }
    }

    pub fn create(&self, ns: Option<&str>, resource: &ApiResource, object: Value) -> Value {
        let object: DynamicObject = serde_json::from_value(object).unwrap();
        let api = self.api(ns, resource);
        let created = self
            .rt
            .block_on(api.create(&PostParams::default(), &object))
            .unwrap_or_else(|e| panic!("creating {}: {e}", resource.kind));
        serde_json::to_value(created).unwrap()
    }

    pub fn replace(&self, ns: Option<&str>, resource: &ApiResource, name: &str, object: Value) {
        let api = self.api(ns, resource);
        let mut current = self.rt.block_on(api.get(name)).unwrap();
        let mut object: DynamicObject = serde_json::from_value(object).unwrap();
        object.metadata.resource_version = current.metadata.resource_version.take();
        self.rt
            .block_on(api.replace(name, &PostParams::default(), &object))
            .unwrap_or_else(|e| panic!("replacing {name}: {e}"));
    }

    pub fn delete(&self, ns: Option<&str>, resource: &ApiResource, name: &str) {
        let api = self.api(ns, resource);
        self.rt
            .block_on(api.delete(name, &DeleteParams::default()))
            .unwrap_or_else(|e| panic!("deleting {name}: {e}"));
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if let Some(task) = self.forwarder.take() {
            task.abort();
        }
        if let Some(server) = self.server.take() {
            self.rt.block_on(server.shutdown());
        }
    }
}

/// A listening socket on `127.0.0.1:port` inside `netns`: a short-lived thread enters the
/// namespace, binds, and hands the socket back (sockets keep the namespace they were made in).
fn listen_in_netns(netns: &str, port: u16) -> std::net::TcpListener {
    let path = PathBuf::from(format!("/var/run/netns/{netns}"));
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("opening the netns handle");
        // SAFETY: setns on this thread only; the thread ends right after.
        let rc = unsafe { libc_setns(file.as_raw_fd(), CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        let listener = std::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))
            .expect("binding the forwarder inside the node");
        listener.set_nonblocking(true).unwrap();
        listener
    })
    .join()
    .expect("forwarder thread")
}

async fn forward(
    listener: tokio::net::TcpListener,
    port: u16,
    forwarding: Arc<tokio::sync::watch::Sender<bool>>,
) {
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else {
            continue;
        };
        let mut state = forwarding.subscribe();
        if !*state.borrow() {
            drop(inbound);
            continue;
        }
        tokio::spawn(async move {
            let Ok(mut outbound) =
                tokio::net::TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).await
            else {
                return;
            };
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                _ = state.wait_for(|reachable| !*reachable) => {}
            }
        });
    }
}

pub fn core(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: String::new(),
        version: "v1".into(),
        api_version: "v1".into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

pub fn services() -> ApiResource {
    core("Service", "services")
}

pub fn endpoint_slices() -> ApiResource {
    ApiResource {
        group: "discovery.k8s.io".into(),
        version: "v1".into(),
        api_version: "discovery.k8s.io/v1".into(),
        kind: "EndpointSlice".into(),
        plural: "endpointslices".into(),
    }
}

/// An EndpointSlice for `service` listing `pods` (ready) on port `port`.
pub fn slice_json(
    ns: &str,
    name: &str,
    service: &str,
    port_name: &str,
    protocol: &str,
    port: u16,
    pods: &[&Pod],
) -> Value {
    let endpoints: Vec<Value> = pods
        .iter()
        .map(|pod| {
            json!({"addresses": [pod.ip.to_string()], "nodeName": pod.node,
                   "conditions": {"ready": true, "serving": true, "terminating": false},
                   "targetRef": {"kind": "Pod", "namespace": ns, "name": pod.name}})
        })
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": ns,
                     "labels": {"kubernetes.io/service-name": service},
                     "annotations": {"endpoints.kubernetes.io/last-change-trigger-time":
                                     chrono_now_rfc3339()}},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": port_name, "protocol": protocol, "port": port}]
    })
}

fn chrono_now_rfc3339() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    // Civil date from days since the epoch (proleptic Gregorian).
    let days = (now.as_secs() / 86400) as i64;
    let secs = now.as_secs() % 86400;
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:09}Z",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60,
        now.subsec_nanos()
    )
}

/// The running `kubeport proxy` inside the node namespace.
pub struct ProxyProcess {
    child: Option<Child>,
    pub log: PathBuf,
}

impl ProxyProcess {
    pub fn start(topo: &Topology, api: &ApiServer, extra: &[&str]) -> ProxyProcess {
        let log = api.dir.path().join(format!(
            "proxy-{}.log",
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let log_file = std::fs::File::create(&log).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &topo.node_ns])
            .arg(env!("CARGO_BIN_EXE_kubeport"))
            .arg("proxy")
            .arg("--kubeconfig")
            .arg(&api.kubeconfig)
            .args([
                "--hostname-override",
                NODE,
                "--cluster-cidr",
                &topo.pod_cidr(),
                "--min-sync-period",
                "100ms",
            ])
            .args(extra)
            .env("KUBEPORT_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("starting kubeport proxy");
        ProxyProcess {
            child: Some(child),
            log,
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM and wait (the rules stay).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
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
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- proxy log {} ---\n{}",
                self.log.display(),
                self.log_text()
            );
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Counts answers per pod name (`<pod> <ip>` lines).
pub fn count_by_pod(lines: &[String]) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for line in lines {
        let pod = line.split(' ').next().unwrap_or_default().to_string();
        *counts.entry(pod).or_insert(0) += 1;
    }
    counts
}
