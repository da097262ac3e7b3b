//! Container probes: timing and thresholds (pure), and the httpGet/tcpSocket checks. As
//! kubelet does, HTTP and TCP probes connect from the node to the pod's IP; exec probes run
//! in the container's namespaces (see `runtime`).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Which probe (they differ in their initial result and in what a result changes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    Startup,
    Liveness,
    Readiness,
}

/// A probe's timing and thresholds with the API defaults applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeTiming {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

impl ProbeTiming {
    pub fn of(p: &Probe) -> Self {
        let secs = |v: Option<i32>, default: i32, min: i32| {
            Duration::from_secs(v.unwrap_or(default).max(min) as u64)
        };
        ProbeTiming {
            initial_delay: secs(p.initial_delay_seconds, 0, 0),
            period: secs(p.period_seconds, 10, 1),
            timeout: secs(p.timeout_seconds, 1, 1),
            success_threshold: p.success_threshold.unwrap_or(1).max(1) as u32,
            failure_threshold: p.failure_threshold.unwrap_or(3).max(1) as u32,
        }
    }
}

/// Consecutive-result thresholds: the probe's result flips after `success_threshold`
/// successes in a row or `failure_threshold` failures in a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeTracker {
    success_threshold: u32,
    failure_threshold: u32,
    successes: u32,
    failures: u32,
    /// The current result (readiness and startup start failed, liveness starts passed).
    pub passing: bool,
}

impl ProbeTracker {
    pub fn new(kind: ProbeKind, timing: &ProbeTiming) -> Self {
        ProbeTracker {
            success_threshold: timing.success_threshold,
            failure_threshold: timing.failure_threshold,
            successes: 0,
            failures: 0,
            passing: kind == ProbeKind::Liveness,
        }
    }

    /// Records one probe result; returns true when the result flipped.
    pub fn observe(&mut self, ok: bool) -> bool {
        if ok {
            self.successes += 1;
            self.failures = 0;
            if !self.passing && self.successes >= self.success_threshold {
                self.passing = true;
                return true;
            }
        } else {
            self.failures += 1;
            self.successes = 0;
            if self.passing && self.failures >= self.failure_threshold {
                self.passing = false;
                return true;
            }
        }
        false
    }

    /// At least `failure_threshold` failures in a row (a startup probe then fails the
    /// container).
    pub fn failed_out(&self) -> bool {
        self.failures >= self.failure_threshold
    }
}

/// A port given by number or by the name of one of the container's ports.
pub fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, String> {
    match port {
        IntOrString::Int(n) if (1..=65535).contains(n) => Ok(*n as u16),
        IntOrString::Int(n) => Err(format!("invalid port number: {n}")),
        IntOrString::String(s) => {
            if let Ok(n) = s.parse::<u16>() {
                return Ok(n);
            }
            container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(s.as_str()))
                .map(|p| p.container_port as u16)
                .ok_or_else(|| format!("couldn't find port: {s} in {}", container.name))
        }
    }
}

/// One HTTP GET (kubelet's probe request): success for a 2xx or 3xx answer.
pub async fn http_get(
    addr: SocketAddr,
    host_header: &str,
    path: &str,
    headers: &[(String, String)],
    timeout: Duration,
) -> Result<(), String> {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("Get \"http://{addr}{path}\": dial tcp {addr}: {e}"))?;
        let mut req = format!("GET {path} HTTP/1.1\r\n");
        let has = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
        if !has("host") {
            req.push_str(&format!("Host: {host_header}\r\n"));
        }
        if !has("user-agent") {
            req.push_str("User-Agent: kube-probe/1.33\r\n");
        }
        if !has("accept") {
            req.push_str("Accept: */*\r\n");
        }
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("Connection: close\r\n\r\n");
        stream
            .write_all(req.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 512];
        while !buf.windows(2).any(|w| w == b"\r\n") && buf.len() < 4096 {
            let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let line = String::from_utf8_lossy(&buf);
        let code: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("malformed HTTP response from {addr}"))?;
        if (200..400).contains(&code) {
            Ok(())
        } else {
            Err(format!("HTTP probe failed with statuscode: {code}"))
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "Get \"http://{addr}{path}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        )),
    }
}

/// A TCP connect.
pub async fn tcp_connect(addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("dial tcp {addr}: {e}")),
        Err(_) => Err(format!("dial tcp {addr}: i/o timeout")),
    }
}

/// Runs an httpGet or tcpSocket probe against the pod IP. `None` for exec/grpc probes.
pub async fn network_probe(
    probe: &Probe,
    container: &Container,
    pod_ip: IpAddr,
    timeout: Duration,
) -> Option<Result<(), String>> {
    if let Some(h) = &probe.http_get {
        let port = match resolve_port(&h.port, container) {
            Ok(p) => p,
            Err(e) => return Some(Err(e)),
        };
        if h.scheme.as_deref() == Some("HTTPS") {
            return Some(Err("HTTPS probes are not supported by kubeport".into()));
        }
        let ip = h
            .host
            .as_deref()
            .filter(|h| !h.is_empty())
            .and_then(|h| h.parse::<IpAddr>().ok())
            .unwrap_or(pod_ip);
        let addr = SocketAddr::new(ip, port);
        let path = h
            .path
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "/".into());
        let path = if path.starts_with('/') {
            path
        } else {
            format!("/{path}")
        };
        let headers: Vec<(String, String)> = h
            .http_headers
            .iter()
            .flatten()
            .map(|hh| (hh.name.clone(), hh.value.clone()))
            .collect();
        return Some(http_get(addr, &addr.to_string(), &path, &headers, timeout).await);
    }
    if let Some(t) = &probe.tcp_socket {
        let port = match resolve_port(&t.port, container) {
            Ok(p) => p,
            Err(e) => return Some(Err(e)),
        };
        let ip = t
            .host
            .as_deref()
            .and_then(|h| h.parse::<IpAddr>().ok())
            .unwrap_or(pod_ip);
        return Some(tcp_connect(SocketAddr::new(ip, port), timeout).await);
    }
    if probe.grpc.is_some() {
        return Some(Err("gRPC probes are not supported by kubeport".into()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ContainerPort;

    fn timing(success: u32, failure: u32) -> ProbeTiming {
        ProbeTiming {
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            success_threshold: success,
            failure_threshold: failure,
        }
    }

    #[test]
    fn defaults() {
        let t = ProbeTiming::of(&Probe::default());
        assert_eq!(
            t,
            ProbeTiming {
                initial_delay: Duration::ZERO,
                period: Duration::from_secs(10),
                timeout: Duration::from_secs(1),
                success_threshold: 1,
                failure_threshold: 3,
            }
        );
    }

    #[test]
    fn readiness_needs_consecutive_results() {
        let mut r = ProbeTracker::new(ProbeKind::Readiness, &timing(2, 3));
        assert!(!r.passing);
        assert!(!r.observe(true));
        assert!(!r.observe(false));
        assert!(!r.observe(true));
        assert!(r.observe(true));
        assert!(r.passing);
        assert!(!r.observe(false));
        assert!(!r.observe(false));
        assert!(r.observe(false));
        assert!(!r.passing);
    }

    #[test]
    fn liveness_starts_passing_and_fails_after_threshold() {
        let mut l = ProbeTracker::new(ProbeKind::Liveness, &timing(1, 2));
        assert!(l.passing);
        assert!(!l.observe(false));
        assert!(l.observe(false));
        assert!(!l.passing);
        assert!(l.observe(true));
    }

    #[test]
    fn startup_fails_out_at_threshold_and_passes_on_success() {
        let mut s = ProbeTracker::new(ProbeKind::Startup, &timing(1, 2));
        assert!(!s.observe(false));
        assert!(!s.failed_out());
        assert!(!s.observe(false));
        assert!(s.failed_out());
        assert!(s.observe(true));
        assert!(s.passing && !s.failed_out());
    }

    #[test]
    fn named_ports() {
        let c = Container {
            name: "web".into(),
            ports: Some(vec![ContainerPort {
                name: Some("http".into()),
                container_port: 8080,
                ..Default::default()
            }]),
            ..Default::default()
        };
        assert_eq!(
            resolve_port(&IntOrString::String("http".into()), &c),
            Ok(8080)
        );
        assert_eq!(resolve_port(&IntOrString::Int(81), &c), Ok(81));
        assert_eq!(
            resolve_port(&IntOrString::String("grpc".into()), &c),
            Err("couldn't find port: grpc in web".into())
        );
    }

    #[tokio::test]
    async fn http_probe_against_a_local_server() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            for code in ["200 OK", "503 Service Unavailable"] {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let n = s.read(&mut buf).await.unwrap();
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                assert!(req.starts_with("GET /healthz HTTP/1.1\r\n"), "{req}");
                assert!(req.contains("User-Agent: kube-probe/1.33\r\n"));
                s.write_all(format!("HTTP/1.1 {code}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                    .await
                    .unwrap();
            }
        });
        let t = Duration::from_secs(2);
        assert_eq!(http_get(addr, "x", "/healthz", &[], t).await, Ok(()));
        assert_eq!(
            http_get(addr, "x", "/healthz", &[], t).await,
            Err("HTTP probe failed with statuscode: 503".into())
        );
    }
}
