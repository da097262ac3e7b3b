//! The real kubectl against the agent's stream server, through a tiny front that plays the
//! API server's part: it serves discovery and one Pod (`default/p`, container `c`, Running)
//! and forwards `pods/p/log|exec|attach` to the agent with the path rewritten, using
//! `proxy::splice_upgrade` (the same splice the API server uses).
//!
//! kubectl 1.33 speaks WebSocket `v5.channel.k8s.io`; kubectl 1.27 (and 1.33 with
//! `KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false`) speaks SPDY/3.1. Each kubectl run gets its
//! own HOME. Without the versioned kubectl binaries the tests print SKIP and pass.

mod stream_support;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use kubeport_agent::stream::proxy::{splice_upgrade, ProxyBody};
use serde_json::json;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use stream_support::{start_agent, FakeRuntime};
use tokio::io::AsyncWriteExt;

const KUBECTL_DIR: &str = "/usr/lib/google-cloud-sdk/bin";

fn kubectl_binary(version: &str) -> Option<PathBuf> {
    let p = PathBuf::from(KUBECTL_DIR).join(format!("kubectl.{version}"));
    p.exists().then_some(p)
}

fn json_response(code: StatusCode, v: serde_json::Value) -> Response<ProxyBody> {
    let mut r = Response::new(
        Full::new(Bytes::from(v.to_string()))
            .map_err(|never: std::convert::Infallible| match never {})
            .boxed(),
    );
    *r.status_mut() = code;
    r.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    r
}

fn pod() -> serde_json::Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "p",
            "namespace": "default",
            "uid": "0f6f2b9c-6a3e-4a55-9d5e-2d9f3a3c1b11",
            "resourceVersion": "1",
            "creationTimestamp": "2024-01-01T00:00:00Z"
        },
        "spec": {"containers": [{"name": "c", "image": "busybox", "stdin": true}], "nodeName": "n1"},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "c", "ready": true, "restartCount": 0, "image": "busybox",
                "imageID": "", "state": {"running": {"startedAt": "2024-01-01T00:00:00Z"}}}]
        }
    })
}

/// The `Upgrade` header of every exec/attach request the front saw ("none" if absent).
type Seen = Arc<Mutex<Vec<String>>>;

async fn front(req: Request<Incoming>, agent: SocketAddr, seen: Seen) -> Response<ProxyBody> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    match path.as_str() {
        "/api" => json_response(
            StatusCode::OK,
            json!({"kind": "APIVersions", "versions": ["v1"],
                   "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}),
        ),
        "/apis" => json_response(
            StatusCode::OK,
            json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []}),
        ),
        "/api/v1" => json_response(
            StatusCode::OK,
            json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": [
                {"name": "pods", "singularName": "pod", "namespaced": true, "kind": "Pod",
                 "verbs": ["get", "list", "watch", "create", "delete"], "shortNames": ["po"]},
                {"name": "pods/log", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get"]},
                {"name": "pods/exec", "singularName": "", "namespaced": true, "kind": "PodExecOptions", "verbs": ["create", "get"]},
                {"name": "pods/attach", "singularName": "", "namespaced": true, "kind": "PodAttachOptions", "verbs": ["create", "get"]}
            ]}),
        ),
        "/version" => json_response(
            StatusCode::OK,
            json!({"major": "1", "minor": "33", "gitVersion": "v1.33.1", "platform": "linux/amd64"}),
        ),
        "/api/v1/namespaces/default/pods/p" => json_response(StatusCode::OK, pod()),
        _ => {
            let sub = path.strip_prefix("/api/v1/namespaces/default/pods/p/");
            let agent_path = match sub {
                Some("log") => "containerLogs",
                Some("exec") => "exec",
                Some("attach") => "attach",
                _ => {
                    return json_response(
                        StatusCode::NOT_FOUND,
                        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                               "message": "the server could not find the requested resource",
                               "reason": "NotFound", "details": {}, "code": 404}),
                    )
                }
            };
            // The API server resolves the container; this pod has only `c`.
            let container = url_query_value(&query, "container").unwrap_or_else(|| "c".into());
            if agent_path != "containerLogs" {
                let upgrade = req
                    .headers()
                    .get("upgrade")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("none")
                    .to_string();
                seen.lock().unwrap().push(upgrade);
            }
            let new_path = format!("/{agent_path}/default/p/{container}?{query}");
            splice_upgrade(req, agent, &new_path).await
        }
    }
}

fn url_query_value(query: &str, key: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

async fn start_front(agent: SocketAddr, seen: Seen) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let seen = seen.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let seen = seen.clone();
                    async move { Ok::<_, std::convert::Infallible>(front(req, agent, seen).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    addr
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs kubectl against `server` with a private HOME, feeding `stdin`.
async fn kubectl(
    bin: &PathBuf,
    server: SocketAddr,
    args: &[&str],
    stdin: Option<&str>,
    websockets: Option<bool>,
) -> Run {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(bin);
    cmd.arg(format!("--server=http://{server}"))
        .args(args)
        .env("HOME", home.path())
        .env_remove("KUBECONFIG")
        .env_remove("KUBECTL_REMOTE_COMMAND_WEBSOCKETS")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(ws) = websockets {
        cmd.env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", ws.to_string());
    }
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        let mut w = child.stdin.take().unwrap();
        w.write_all(input.as_bytes()).await.unwrap();
        drop(w);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("kubectl {args:?} did not finish"))
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

struct Setup {
    server: SocketAddr,
    runtime: Arc<FakeRuntime>,
    seen: Seen,
}

async fn setup() -> Setup {
    let runtime = Arc::new(FakeRuntime::new());
    let agent = start_agent(runtime.clone()).await;
    let seen = Seen::default();
    let server = start_front(agent, seen.clone()).await;
    Setup {
        server,
        runtime,
        seen,
    }
}

/// The transport kubectl is expected to pick.
fn expected_upgrade(version: &str, websockets: Option<bool>) -> &'static str {
    if version == "1.27" || websockets == Some(false) {
        "SPDY/3.1"
    } else {
        "websocket"
    }
}

const EXIT3: [&str; 6] = [
    "exec",
    "p",
    "--",
    "sh",
    "-c",
    "echo out; echo err >&2; exit 3",
];

async fn check_exec_exit_code(version: &str, websockets: Option<bool>) {
    let Some(bin) = kubectl_binary(version) else {
        println!("SKIP: kubectl.{version} not installed in {KUBECTL_DIR}");
        return;
    };
    let Setup { server, seen, .. } = setup().await;
    let r = kubectl(&bin, server, &EXIT3, None, websockets).await;
    assert_eq!(r.stdout, "out\n", "stderr: {}", r.stderr);
    assert_eq!(
        r.stderr, "err\ncommand terminated with exit code 3\n",
        "kubectl.{version}"
    );
    assert_eq!(r.code, 3);

    let r = kubectl(
        &bin,
        server,
        &["exec", "p", "--", "echo", "fine"],
        None,
        websockets,
    )
    .await;
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "fine\n"),
        "stderr: {}",
        r.stderr
    );
    let expected = expected_upgrade(version, websockets);
    assert_eq!(*seen.lock().unwrap(), vec![expected, expected]);
}

async fn check_exec_stdin(version: &str, websockets: Option<bool>) {
    let Some(bin) = kubectl_binary(version) else {
        println!("SKIP: kubectl.{version} not installed in {KUBECTL_DIR}");
        return;
    };
    let Setup { server, seen, .. } = setup().await;
    let r = kubectl(
        &bin,
        server,
        &["exec", "-i", "p", "--", "cat"],
        Some("hello\nworld\n"),
        websockets,
    )
    .await;
    assert_eq!(r.stdout, "hello\nworld\n", "stderr: {}", r.stderr);
    assert_eq!(r.code, 0, "stderr: {}", r.stderr);

    let r = kubectl(
        &bin,
        server,
        &["attach", "-i", "p"],
        Some("attached\n"),
        websockets,
    )
    .await;
    assert_eq!(r.stdout, "attached\n", "stderr: {}", r.stderr);
    assert_eq!(r.code, 0, "stderr: {}", r.stderr);
    let expected = expected_upgrade(version, websockets);
    assert_eq!(*seen.lock().unwrap(), vec![expected, expected]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_33_exec_over_websocket_reports_the_exit_code() {
    check_exec_exit_code("1.33", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_33_exec_over_spdy_reports_the_exit_code() {
    check_exec_exit_code("1.33", Some(false)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_27_exec_over_spdy_reports_the_exit_code() {
    check_exec_exit_code("1.27", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_33_exec_and_attach_pass_stdin_over_websocket() {
    check_exec_stdin("1.33", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_27_exec_and_attach_pass_stdin_over_spdy() {
    check_exec_stdin("1.27", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_logs_and_follow() {
    for version in ["1.33", "1.27"] {
        let Some(bin) = kubectl_binary(version) else {
            println!("SKIP: kubectl.{version} not installed in {KUBECTL_DIR}");
            continue;
        };
        let server = setup().await.server;
        let r = kubectl(&bin, server, &["logs", "p"], None, None).await;
        assert_eq!(
            (r.code, r.stdout.as_str()),
            (0, "first line\nsecond line\nthird line\n"),
            "kubectl.{version}: {}",
            r.stderr
        );
        let r = kubectl(&bin, server, &["logs", "-f", "p", "--tail=1"], None, None).await;
        assert_eq!(
            (r.code, r.stdout.as_str()),
            (0, "third line\nfollowed 1\nfollowed 2\n"),
            "kubectl.{version}: {}",
            r.stderr
        );
    }
}

/// `exec -it` under a pseudo-terminal (util-linux `script`) of 100x30: the output comes
/// back and kubectl's terminal size reaches the runtime's resizer.
async fn check_exec_tty(version: &str, websockets: Option<bool>) {
    let Some(bin) = kubectl_binary(version) else {
        println!("SKIP: kubectl.{version} not installed in {KUBECTL_DIR}");
        return;
    };
    if !std::path::Path::new("/usr/bin/script").exists() {
        println!("SKIP: util-linux script is not installed");
        return;
    }
    let Setup {
        server,
        runtime,
        seen,
    } = setup().await;
    let home = tempfile::tempdir().unwrap();
    let inner = format!(
        "stty cols 100 rows 30; exec {} --server=http://{server} exec -it p -- sh -c 'sleep 1; echo tty-ok'",
        bin.display()
    );
    let mut cmd = tokio::process::Command::new("/usr/bin/script");
    cmd.args(["-qec", &inner, "/dev/null"])
        .env("HOME", home.path())
        .env_remove("KUBECONFIG")
        .env_remove("KUBECTL_REMOTE_COMMAND_WEBSOCKETS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(ws) = websockets {
        cmd.env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", ws.to_string());
    }
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("kubectl exec -it finishes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("tty-ok"),
        "kubectl.{version}: {stdout:?} {:?}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{stdout:?}");
    assert!(
        runtime.resizes.lock().unwrap().contains(&(100, 30)),
        "kubectl.{version}: resizes {:?}",
        runtime.resizes.lock().unwrap()
    );
    assert_eq!(
        *seen.lock().unwrap(),
        vec![expected_upgrade(version, websockets)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_33_exec_tty_over_websocket_sends_the_terminal_size() {
    check_exec_tty("1.33", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_27_exec_tty_over_spdy_sends_the_terminal_size() {
    check_exec_tty("1.27", None).await;
}

/// The versions in between: 1.28/1.29 speak SPDY only, 1.30–1.32 WebSocket first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_28_to_1_32_exec_report_the_exit_code() {
    for version in ["1.28", "1.29", "1.30", "1.31", "1.32"] {
        let Some(bin) = kubectl_binary(version) else {
            println!("SKIP: kubectl.{version} not installed in {KUBECTL_DIR}");
            continue;
        };
        let Setup { server, seen, .. } = setup().await;
        let r = kubectl(&bin, server, &EXIT3, None, None).await;
        assert_eq!(r.stdout, "out\n", "kubectl.{version}: {}", r.stderr);
        assert_eq!(
            r.stderr, "err\ncommand terminated with exit code 3\n",
            "kubectl.{version}"
        );
        assert_eq!(r.code, 3, "kubectl.{version}");
        let expected = if matches!(version, "1.28" | "1.29") {
            "SPDY/3.1"
        } else {
            "websocket"
        };
        assert_eq!(*seen.lock().unwrap(), vec![expected], "kubectl.{version}");
    }
}
