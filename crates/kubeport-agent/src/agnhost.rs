//! Built-in stand-in for the `registry.k8s.io/e2e-test-images/agnhost` image's `serve-hostname`
//! and `netexec` subcommands (the parts Service tests use), run as `kubeport agnhost ARGS`
//! inside a pod (whose UTS namespace carries the pod's hostname).

use std::collections::HashMap;
use std::net::SocketAddr;

use anyhow::{bail, Context};
use axum::extract::{ConnectInfo, Query};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::io::AsyncWriteExt;

/// Parsed Go-style flags (`--name=value`, `--name value`, `-name`, bare booleans).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct GoFlags {
    values: HashMap<String, String>,
}

impl GoFlags {
    /// Parses `args`; `booleans` are the flags that take no separate value.
    pub fn parse(args: &[String], booleans: &[&str]) -> anyhow::Result<Self> {
        let mut values = HashMap::new();
        let mut i = 0;
        while i < args.len() {
            let a = &args[i];
            let Some(flag) = a.strip_prefix("--").or_else(|| a.strip_prefix('-')) else {
                bail!("unexpected argument {a:?}");
            };
            match flag.split_once('=') {
                Some((k, v)) => {
                    values.insert(k.to_string(), v.to_string());
                }
                None if booleans.contains(&flag) => {
                    values.insert(flag.to_string(), "true".to_string());
                }
                None => {
                    let v = args
                        .get(i + 1)
                        .with_context(|| format!("flag needs an argument: -{flag}"))?;
                    values.insert(flag.to_string(), v.clone());
                    i += 1;
                }
            }
            i += 1;
        }
        Ok(GoFlags { values })
    }

    pub fn bool(&self, name: &str, default: bool) -> anyhow::Result<bool> {
        match self.values.get(name).map(String::as_str) {
            None => Ok(default),
            Some("true" | "1" | "t" | "T" | "TRUE" | "True") => Ok(true),
            Some("false" | "0" | "f" | "F" | "FALSE" | "False") => Ok(false),
            Some(v) => bail!("invalid boolean value {v:?} for -{name}"),
        }
    }

    pub fn int(&self, name: &str, default: i64) -> anyhow::Result<i64> {
        match self.values.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .with_context(|| format!("invalid value {v:?} for flag -{name}")),
        }
    }
}

/// This host's (the pod's) name.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Runs an agnhost subcommand until it fails (or forever).
pub async fn run(args: &[String]) -> anyhow::Result<()> {
    let Some((sub, rest)) = args.split_first() else {
        bail!("agnhost: a subcommand is needed: serve-hostname or netexec");
    };
    match sub.as_str() {
        "serve-hostname" => serve_hostname(rest).await,
        "netexec" => netexec(rest).await,
        other => bail!(
            "agnhost: subcommand {other:?} is not built into kubeport (supported: serve-hostname, netexec)"
        ),
    }
}

async fn serve_hostname(args: &[String]) -> anyhow::Result<()> {
    let flags = GoFlags::parse(args, &["tcp", "udp", "http", "close"])?;
    let tcp = flags.bool("tcp", false)?;
    let udp = flags.bool("udp", false)?;
    let http = flags.bool("http", true)?;
    let close = flags.bool("close", false)?;
    let port = flags.int("port", 9376)? as u16;
    if !tcp && !udp && !http {
        bail!("Must specify one of --tcp, --udp, or --http");
    }
    if http && (tcp || udp) {
        bail!("Can't serve TCP/UDP and HTTP at the same time");
    }
    let name = hostname();
    eprintln!("Serving on port {port}.");
    let mut tasks = tokio::task::JoinSet::new();
    if tcp {
        let listener = tokio::net::TcpListener::bind(("0.0.0.0", port)).await?;
        let name = name.clone();
        tasks.spawn(async move {
            loop {
                let (mut conn, _) = listener.accept().await?;
                let name = name.clone();
                tokio::spawn(async move {
                    let _ = conn.write_all(name.as_bytes()).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
    }
    if udp {
        let sock = tokio::net::UdpSocket::bind(("0.0.0.0", port)).await?;
        let name = name.clone();
        tasks.spawn(async move {
            let mut buf = [0u8; 1024];
            loop {
                let (_, from) = sock.recv_from(&mut buf).await?;
                sock.send_to(name.as_bytes(), from).await?;
            }
        });
    }
    if http {
        let listener = tokio::net::TcpListener::bind(("0.0.0.0", port)).await?;
        let app = Router::new().fallback(move || {
            let name = name.clone();
            async move {
                let mut headers = HeaderMap::new();
                if close {
                    headers.insert("connection", "close".parse().unwrap());
                }
                (headers, name)
            }
        });
        tasks.spawn(async move {
            axum::serve(listener, app)
                .await
                .map_err(anyhow::Error::from)
        });
    }
    match tasks.join_next().await {
        Some(Ok(r)) => r,
        Some(Err(e)) => Err(e.into()),
        None => Ok(()),
    }
}

/// The answer of netexec's UDP server to one datagram.
pub fn udp_answer(request: &str, from: SocketAddr) -> String {
    let request = request.trim();
    let (cmd, arg) = request.split_once(' ').unwrap_or((request, ""));
    match cmd {
        "hostname" => hostname(),
        "echo" => arg.to_string(),
        "clientip" => from.to_string(),
        _ => String::new(),
    }
}

async fn netexec(args: &[String]) -> anyhow::Result<()> {
    let flags = GoFlags::parse(args, &[])?;
    let http_port = flags.int("http-port", 8080)?;
    let udp_port = flags.int("udp-port", 8081)?;
    let mut tasks = tokio::task::JoinSet::new();
    if udp_port > 0 {
        let sock = tokio::net::UdpSocket::bind(("0.0.0.0", udp_port as u16)).await?;
        eprintln!("Started UDP server on port {udp_port}");
        tasks.spawn(async move {
            let mut buf = [0u8; 2048];
            loop {
                let (n, from) = sock.recv_from(&mut buf).await?;
                let answer = udp_answer(&String::from_utf8_lossy(&buf[..n]), from);
                sock.send_to(answer.as_bytes(), from).await?;
            }
        });
    }
    if http_port > 0 {
        let listener = tokio::net::TcpListener::bind(("0.0.0.0", http_port as u16)).await?;
        eprintln!("Started HTTP server on port {http_port}");
        let app = netexec_router();
        tasks.spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .map_err(anyhow::Error::from)
        });
    }
    match tasks.join_next().await {
        Some(Ok(r)) => r,
        Some(Err(e)) => Err(e.into()),
        None => Ok(()),
    }
}

/// netexec's HTTP endpoints.
pub fn netexec_router() -> Router {
    Router::new()
        .route(
            "/",
            get(|| async {
                format!(
                    "NOW: {}",
                    chrono::Local::now().format("%Y-%m-%d %H:%M:%S%.9f %z %Z")
                )
            }),
        )
        .route("/hostname", get(|| async { hostname() }))
        .route(
            "/clientip",
            get(|ConnectInfo(addr): ConnectInfo<SocketAddr>| async move { addr.to_string() }),
        )
        .route(
            "/echo",
            get(|Query(q): Query<HashMap<String, String>>| async move {
                let msg = q.get("msg").cloned().unwrap_or_default();
                match q
                    .get("code")
                    .and_then(|c| c.parse::<u16>().ok())
                    .and_then(|c| StatusCode::from_u16(c).ok())
                {
                    Some(code) => (code, msg).into_response(),
                    None => msg.into_response(),
                }
            }),
        )
        .route("/healthz", get(|| async { StatusCode::OK }))
        .route(
            "/header",
            get(
                |Query(q): Query<HashMap<String, String>>, headers: HeaderMap| async move {
                    let key = q.get("key").cloned().unwrap_or_default();
                    headers
                        .get(key.as_str())
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string()
                },
            ),
        )
        .route(
            "/exit",
            get(|Query(q): Query<HashMap<String, String>>| async move {
                let code: i32 = q.get("code").and_then(|c| c.parse().ok()).unwrap_or(0);
                tokio::spawn(async move {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    std::process::exit(code);
                });
                StatusCode::OK
            }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn go_flag_forms() {
        let f = GoFlags::parse(
            &s(&["--http-port=9000", "-udp-port", "0", "--tcp"]),
            &["tcp"],
        )
        .unwrap();
        assert_eq!(f.int("http-port", 8080).unwrap(), 9000);
        assert_eq!(f.int("udp-port", 8081).unwrap(), 0);
        assert!(f.bool("tcp", false).unwrap());
        assert!(f.bool("http", true).unwrap());
        let f = GoFlags::parse(&s(&["--http=false"]), &["http"]).unwrap();
        assert!(!f.bool("http", true).unwrap());
        assert!(GoFlags::parse(&s(&["--port"]), &[]).is_err());
        assert!(GoFlags::parse(&s(&["stray"]), &[]).is_err());
    }

    #[test]
    fn udp_commands() {
        let from: SocketAddr = "10.244.1.5:40000".parse().unwrap();
        assert_eq!(udp_answer("echo hello world\n", from), "hello world");
        assert_eq!(udp_answer("hostname", from), hostname());
        assert_eq!(udp_answer("clientip", from), "10.244.1.5:40000");
    }

    #[tokio::test]
    async fn netexec_http_endpoints() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(
                listener,
                netexec_router().into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap();
        });
        let get = |path: &str| {
            let path = path.to_string();
            async move {
                use tokio::io::AsyncReadExt;
                let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
                let local = c.local_addr().unwrap();
                c.write_all(
                    format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                        .as_bytes(),
                )
                .await
                .unwrap();
                let mut out = String::new();
                c.read_to_string(&mut out).await.unwrap();
                let (head, body) = out.split_once("\r\n\r\n").unwrap();
                (
                    head.lines().next().unwrap().to_string(),
                    body.to_string(),
                    local,
                )
            }
        };
        let (status, body, _) = get("/echo?msg=hello").await;
        assert_eq!(
            (status.as_str(), body.as_str()),
            ("HTTP/1.1 200 OK", "hello")
        );
        let (_, body, local) = get("/clientip").await;
        assert_eq!(body, local.to_string());
        let (_, body, _) = get("/hostname").await;
        assert_eq!(body, hostname());
        let (status, _, _) = get("/healthz").await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        let (_, body, _) = get("/").await;
        assert!(body.starts_with("NOW: "), "{body}");
    }
}
