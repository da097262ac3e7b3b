//! The agent's log/exec/attach server (kubelet's port 10250), plain HTTP/1.1.
//!
//! The API server forwards kubectl's `pods/log`, `pods/exec` and `pods/attach` requests
//! here, rewriting only the path (kubelet's paths, see `params.rs`), and splices the connection
//! after a `101 Switching Protocols` (see [`proxy::splice_upgrade`]). So this server speaks
//! kubectl's protocols end to end:
//! - logs: `text/plain`, chunked and flushed as produced when following;
//! - exec/attach over WebSocket (`v5.channel.k8s.io`, `v4.channel.k8s.io`, and the older
//!   `channel.k8s.io` / `base64.channel.k8s.io` variants);
//! - exec/attach over SPDY/3.1 (`X-Stream-Protocol-Version` v4, v3, v2, v1), used by
//!   kubectl 1.27–1.29 and as the fallback of newer ones.
//!
//! Errors before an upgrade are `metav1.Status` JSON with the matching HTTP code (404 for a
//! pod or container the runtime does not know, 400 for bad parameters).

mod logs;
mod params;
pub mod proxy;
mod session;
pub mod spdy;
mod spdy_session;
mod status;
mod websocket;

use crate::runtime_api::{ContainerRuntime, ExecOptions, ProcessIo, RuntimeError};
use anyhow::Context;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use kubeport_core::status::{Status, StatusReason};
use params::{Endpoint, Query, Target};
use status::Operation;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Response bodies of this server.
pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// Binds `addr` and serves until the future is dropped. Only a bind error is returned;
/// per-connection errors are logged.
pub async fn serve(addr: SocketAddr, runtime: Arc<dyn ContainerRuntime>) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the log/exec/attach server to {addr}"))?;
    serve_listener(listener, runtime).await
}

/// Serves on an already bound listener (tests bind port 0 and read the address first).
pub async fn serve_listener(
    listener: TcpListener,
    runtime: Arc<dyn ContainerRuntime>,
) -> anyhow::Result<()> {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Out of descriptors and the like: back off instead of spinning.
                tracing::warn!("accepting a stream connection failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let runtime = runtime.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let runtime = runtime.clone();
                async move { Ok::<_, Infallible>(handle(req, runtime).await) }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await
            {
                tracing::debug!("stream connection from {peer}: {e}");
            }
        });
    }
}

async fn handle(req: Request<Incoming>, runtime: Arc<dyn ContainerRuntime>) -> Response<Body> {
    let query = Query::parse(req.uri().query());
    let Some(target) = params::route(req.uri().path(), &query) else {
        return status_response(&Status::path_not_found());
    };
    match target.endpoint {
        Endpoint::Logs => {
            if req.method() != Method::GET && req.method() != Method::HEAD {
                return status_response(&Status::method_not_allowed());
            }
            logs::serve(runtime.as_ref(), &target, &query).await
        }
        Endpoint::Exec | Endpoint::Attach => {
            if req.method() != Method::GET && req.method() != Method::POST {
                return status_response(&Status::method_not_allowed());
            }
            match exec_or_attach(req, runtime, target, &query).await {
                Ok(resp) | Err(resp) => resp,
            }
        }
    }
}

async fn exec_or_attach(
    req: Request<Incoming>,
    runtime: Arc<dyn ContainerRuntime>,
    target: Target,
    query: &Query,
) -> Result<Response<Body>, Response<Body>> {
    let opts = params::exec_options(query).map_err(|s| status_response(&s))?;
    let (op, command) = match target.endpoint {
        Endpoint::Attach => (Operation::Attach, Vec::new()),
        _ => {
            let command = query.all("command");
            if command.is_empty() {
                return Err(status_response(&Status::bad_request(
                    "you must specify at least one command for the container",
                )));
            }
            (Operation::Exec, command)
        }
    };
    // Negotiate first so that no process is started for a request we cannot serve.
    let transport = if websocket::is_websocket_request(&req) {
        Transport::WebSocket(websocket::negotiate(&req).map_err(|s| status_response(&s))?)
    } else if spdy_session::is_spdy_request(&req) {
        Transport::Spdy(spdy_session::negotiate(&req)?)
    } else {
        return Err(status_response(&Status::bad_request(
            "Upgrade request required",
        )));
    };
    let process = start_process(runtime.as_ref(), &target, op, command.clone(), opts)
        .await
        .map_err(|e| status_response(&runtime_status(&e)))?;
    let spec = SessionSpec { op, command, opts };
    Ok(match transport {
        Transport::WebSocket(p) => websocket::upgrade(req, p, process, spec),
        Transport::Spdy(p) => spdy_session::upgrade(req, p, process, spec),
    })
}

enum Transport {
    WebSocket(websocket::Protocol),
    Spdy(spdy_session::Protocol),
}

/// What a transport needs to know about the session it carries.
pub(crate) struct SessionSpec {
    pub op: Operation,
    pub command: Vec<String>,
    pub opts: ExecOptions,
}

async fn start_process(
    runtime: &dyn ContainerRuntime,
    target: &Target,
    op: Operation,
    command: Vec<String>,
    opts: ExecOptions,
) -> Result<Box<dyn ProcessIo>, RuntimeError> {
    match op {
        Operation::Exec => {
            runtime
                .exec(
                    &target.namespace,
                    &target.pod,
                    &target.container,
                    command,
                    opts,
                )
                .await
        }
        Operation::Attach => {
            runtime
                .attach(&target.namespace, &target.pod, &target.container, opts)
                .await
        }
    }
}

/// The HTTP-level Status of a runtime failure.
fn runtime_status(e: &RuntimeError) -> Status {
    match e {
        RuntimeError::NotFound(m) => Status::new(404, StatusReason::NotFound, m.clone()),
        RuntimeError::BadRequest(m) => Status::bad_request(m.clone()),
        RuntimeError::Internal(m) => Status::internal(m.clone()),
    }
}

fn full_body(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never: Infallible| match never {})
        .boxed_unsync()
}

/// A `metav1.Status` error response; the HTTP status equals its code.
fn status_response(s: &Status) -> Response<Body> {
    let body = serde_json::to_vec(&s.to_json()).expect("JSON values serialise");
    let mut resp = Response::new(full_body(body));
    *resp.status_mut() = StatusCode::from_u16(s.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// True when a comma-separated header (like `Connection`) lists `token`.
fn header_has_token(req: &Request<Incoming>, name: header::HeaderName, token: &str) -> bool {
    req.headers().get_all(name).iter().any(|v| {
        v.to_str()
            .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

/// All values of a header that may be repeated and/or comma-separated, in order.
fn header_list(req: &Request<Incoming>, name: &str) -> Vec<String> {
    req.headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|s| s.split(','))
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
}
