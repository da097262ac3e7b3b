//! A minimal HTTP/1.1 server for the health, metrics and healthCheckNodePort endpoints.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A request handler: method and path in, response out.
pub type Handler = Arc<dyn Fn(&http::Method, &str) -> Response<Full<Bytes>> + Send + Sync>;

/// A response with a body and the given headers.
pub fn response(
    status: u16,
    headers: &[(&str, String)],
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut builder =
        Response::builder().status(StatusCode::from_u16(status).unwrap_or(StatusCode::OK));
    for (name, value) in headers {
        builder = builder.header(*name, value.as_str());
    }
    builder
        .body(Full::new(body.into()))
        .expect("valid response parts")
}

/// Go's `http.NotFound` answer.
pub fn not_found() -> Response<Full<Bytes>> {
    response(
        404,
        &[
            ("Content-Type", "text/plain; charset=utf-8".to_string()),
            ("X-Content-Type-Options", "nosniff".to_string()),
        ],
        "404 page not found\n",
    )
}

/// Binds `addr` and serves `handler` on a background task; aborting the task (or dropping
/// the returned [`Server`]) closes the listener.
pub async fn serve(addr: SocketAddr, handler: Handler) -> std::io::Result<Server> {
    let listener = TcpListener::bind(addr).await?;
    Ok(serve_listener(listener, handler))
}

/// Serves on an already bound listener.
pub fn serve_listener(listener: TcpListener, handler: Handler) -> Server {
    let local_addr = listener.local_addr().ok();
    let task = tokio::spawn(async move {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(conn) => conn,
                Err(err) => {
                    tracing::warn!(error = %err, "accepting an HTTP connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    let handler = handler.clone();
                    async move { Ok::<_, Infallible>(handler(request.method(), request.uri().path())) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Server { task, local_addr }
}

/// A running server; dropping it stops accepting connections.
#[derive(Debug)]
pub struct Server {
    task: JoinHandle<()>,
    local_addr: Option<SocketAddr>,
}

impl Server {
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}
