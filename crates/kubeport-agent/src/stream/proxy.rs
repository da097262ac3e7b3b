//! Forwarding a request to a node agent with only its path rewritten, splicing the two
//! connections after an HTTP upgrade: what kube-apiserver's upgrade-aware proxy does for
//! `pods/log`, `pods/exec` and `pods/attach`.
//!
//! Nothing here depends on the agent: the API server uses it as is.

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Body;
use hyper_util::rt::TokioIo;
use serde_json::json;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;

/// Boxed error of proxied bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Response body of [`splice_upgrade`].
pub type ProxyBody = BoxBody<Bytes, BoxError>;

/// Connecting to an agent longer than this is a failure.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Headers that describe one hop only (RFC 9110 §7.6.1), dropped from plain requests and
/// responses. Upgrade requests keep `Connection` and `Upgrade`: they are the request.
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Sends `req` to `target` (plain HTTP/1.1) with its path and query replaced by
/// `new_path_and_query`, keeping the method and headers, except that the client's
/// credentials (`Authorization`, `Proxy-Authorization`) are not passed on and `Host` names
/// the target. A `101 Switching Protocols` answer is passed back and, once both sides have
/// switched, bytes are copied both ways until either side closes. Any other answer is
/// streamed back as it arrives. Failing to reach the target gives a 503 Status, as
/// kube-apiserver reports an unreachable kubelet. The connection `req` came in on must be
/// served with upgrades enabled (hyper's `with_upgrades()`; axum does this itself).
pub async fn splice_upgrade<B>(
    mut req: Request<B>,
    target: SocketAddr,
    new_path_and_query: &str,
) -> Response<ProxyBody>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let wants_upgrade = connection_has_upgrade(req.headers());
    let client_upgrade = wants_upgrade.then(|| hyper::upgrade::on(&mut req));

    let (parts, body) = req.into_parts();
    let uri: Uri = match new_path_and_query.parse() {
        Ok(u) => u,
        Err(e) => {
            return error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                &format!("invalid proxy path {new_path_and_query:?}: {e}"),
            )
        }
    };
    let mut headers = parts.headers.clone();
    headers.remove(header::AUTHORIZATION);
    headers.remove(header::PROXY_AUTHORIZATION);
    if !wants_upgrade {
        strip_hop_by_hop(&mut headers);
    }
    if let Ok(host) = HeaderValue::from_str(&target.to_string()) {
        headers.insert(header::HOST, host);
    }
    let mut upstream_req = Request::new(body);
    *upstream_req.method_mut() = parts.method.clone();
    *upstream_req.uri_mut() = uri;
    *upstream_req.headers_mut() = headers;

    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return unreachable(target, &e.to_string()),
        Err(_) => return unreachable(target, "i/o timeout"),
    };
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    {
        Ok(x) => x,
        Err(e) => return unreachable(target, &e.to_string()),
    };
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!("proxied connection to {target}: {e}");
        }
    });
    let mut upstream_resp = match sender.send_request(upstream_req).await {
        Ok(r) => r,
        Err(e) => return unreachable(target, &e.to_string()),
    };

    if upstream_resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(client_upgrade) = client_upgrade {
            let upstream_upgrade = hyper::upgrade::on(&mut upstream_resp);
            let mut resp = Response::new(empty());
            *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            *resp.headers_mut() = upstream_resp.headers().clone();
            tokio::spawn(async move {
                let (client, upstream) = match tokio::join!(client_upgrade, upstream_upgrade) {
                    (Ok(c), Ok(u)) => (c, u),
                    (c, u) => {
                        tracing::debug!(
                            "splicing to {target} failed: client {:?}, agent {:?}",
                            c.err(),
                            u.err()
                        );
                        return;
                    }
                };
                let mut client = TokioIo::new(client);
                let mut upstream = TokioIo::new(upstream);
                if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
                    tracing::debug!("spliced connection to {target}: {e}");
                }
            });
            return resp;
        }
    }

    let (parts, body) = upstream_resp.into_parts();
    let mut resp = Response::from_parts(parts, body.map_err(BoxError::from).boxed());
    strip_hop_by_hop(resp.headers_mut());
    resp
}

fn connection_has_upgrade(headers: &HeaderMap) -> bool {
    headers.get_all(header::CONNECTION).iter().any(|v| {
        v.to_str()
            .map(|s| {
                s.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
            .unwrap_or(false)
    }) && headers.contains_key(header::UPGRADE)
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Headers named by Connection are hop-by-hop too.
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|s| s.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect();
    for name in HOP_BY_HOP.iter().map(|s| s.to_string()).chain(named) {
        headers.remove(name.as_str());
    }
}

fn empty() -> ProxyBody {
    Full::new(Bytes::new())
        .map_err(|never: std::convert::Infallible| match never {})
        .boxed()
}

fn unreachable(target: SocketAddr, why: &str) -> Response<ProxyBody> {
    error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "ServiceUnavailable",
        &format!("error dialing backend: dial tcp {target}: {why}"),
    )
}

fn error_response(code: StatusCode, reason: &str, message: &str) -> Response<ProxyBody> {
    let body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    let mut resp = Response::new(
        Full::new(Bytes::from(body.to_string()))
            .map_err(|never: std::convert::Infallible| match never {})
            .boxed(),
    );
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_named_by_connection_are_dropped() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-trace"),
        );
        h.insert("x-trace", HeaderValue::from_static("1"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key(header::ACCEPT));
    }

    #[test]
    fn upgrade_needs_both_headers() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        assert!(!connection_has_upgrade(&h));
        h.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
        assert!(connection_has_upgrade(&h));
    }
}
