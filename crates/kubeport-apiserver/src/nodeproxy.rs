//! `pods/log`, `pods/exec` and `pods/attach`: forwarded to the node agent of the pod's node,
//! as kube-apiserver forwards them to the kubelet. Exec and attach are HTTP upgrades
//! (WebSocket or SPDY); after the agent answers 101 the bytes are spliced both ways, so the
//! streaming protocol is spoken end to end between kubectl and the agent.

use crate::body::{full, Body};
use crate::registry::Registry;
use crate::resources::{self, Subresource};
use bytes::Bytes;
use futures::StreamExt;
use http::{header, HeaderValue, Request, Response};
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use kubeport_core::Status;
use serde_json::Value;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

/// kubelet's default port, used when a Node does not publish its daemon endpoint.
const DEFAULT_AGENT_PORT: u16 = 10250;

fn container_for(pod: &Value, name: &str, requested: Option<&str>) -> Result<String, Status> {
    let containers: Vec<String> = pod
        .pointer("/spec/containers")
        .and_then(|c| c.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|c| c.get("name").and_then(|n| n.as_str()).map(String::from))
                .collect()
        })
        .unwrap_or_default();
    match requested.filter(|c| !c.is_empty()) {
        Some(c) => {
            let init: Vec<String> = pod
                .pointer("/spec/initContainers")
                .and_then(|c| c.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|c| c.get("name").and_then(|n| n.as_str()).map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            if containers.iter().chain(init.iter()).any(|x| x == c) {
                Ok(c.to_string())
            } else {
                Err(Status::bad_request(format!(
                    "container {c} is not valid for pod {name}"
                )))
            }
        }
        None if containers.len() == 1 => Ok(containers[0].clone()),
        None => Err(Status::bad_request(format!(
            "a container name must be specified for pod {name}, choose one of: [{}]",
            containers.join(" ")
        ))),
    }
}

/// The agent address of a node: InternalIP and the published daemon endpoint port.
fn agent_address(node: &Value) -> Option<SocketAddr> {
    let ip = node
        .pointer("/status/addresses")
        .and_then(|a| a.as_array())?
        .iter()
        .find(|a| a.get("type").and_then(|t| t.as_str()) == Some("InternalIP"))?
        .get("address")?
        .as_str()?
        .parse()
        .ok()?;
    let port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(|p| p.as_u64())
        .filter(|p| *p > 0 && *p < 65536)
        .map(|p| p as u16)
        .unwrap_or(DEFAULT_AGENT_PORT);
    Some(SocketAddr::new(ip, port))
}

pub async fn forward(
    registry: &Registry,
    ns: &str,
    name: &str,
    sub: Subresource,
    mut req: Request<Incoming>,
    container_param: Option<&str>,
) -> Result<Response<Body>, Status> {
    let pods = resources::find("", "v1", "pods").unwrap();
    let nodes = resources::find("", "v1", "nodes").unwrap();
    let pod = registry.get(pods, Some(ns), name)?;
    let container = container_for(&pod, name, container_param)?;
    let node_name = pod
        .pointer("/spec/nodeName")
        .and_then(|n| n.as_str())
        .unwrap_or_default();
    if node_name.is_empty() {
        return Err(Status::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    let node = registry.get(nodes, None, node_name)?;
    let addr = agent_address(&node).ok_or_else(|| {
        Status::internal(format!(
            "node {node_name:?} publishes no InternalIP for its agent"
        ))
    })?;
    let verb = match sub {
        Subresource::Log => "containerLogs",
        Subresource::Exec => "exec",
        Subresource::Attach => "attach",
        _ => return Err(Status::method_not_allowed()),
    };
    let mut path = format!("/{verb}/{ns}/{name}/{container}");
    if let Some(q) = req.uri().query() {
        path.push('?');
        path.push_str(q);
    }
    let is_upgrade = req.headers().contains_key(header::UPGRADE);

    let tcp = tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| {
            Status::service_unavailable(format!("timed out connecting to the node agent at {addr}"))
        })?
        .map_err(|e| {
            Status::service_unavailable(format!("error dialing the node agent at {addr}: {e}"))
        })?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| Status::internal(format!("node agent handshake: {e}")))?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });

    let mut out = Request::builder().method(req.method().clone()).uri(&path);
    for (k, v) in req.headers() {
        if k == header::HOST
            || k == header::CONTENT_LENGTH
            || k == header::TRANSFER_ENCODING
            || k == header::AUTHORIZATION
        {
            continue;
        }
        out = out.header(k, v);
    }
    out = out.header(
        header::HOST,
        HeaderValue::from_str(&addr.to_string()).expect("socket address is a valid header"),
    );
    let client_upgrade = if is_upgrade {
        Some(hyper::upgrade::on(&mut req))
    } else {
        None
    };
    let out = out
        .body(Empty::<Bytes>::new())
        .map_err(|e| Status::internal(e.to_string()))?;
    let mut resp = sender
        .send_request(out)
        .await
        .map_err(|e| Status::service_unavailable(format!("node agent request failed: {e}")))?;

    if resp.status() == http::StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_upgrade) = client_upgrade else {
            return Err(Status::internal(
                "node agent switched protocols for a plain request",
            ));
        };
        let agent_upgrade = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
            let (Ok(client), Ok(agent)) = (client_upgrade.await, agent_upgrade.await) else {
                return;
            };
            let mut client = TokioIo::new(client);
            let mut agent = TokioIo::new(agent);
            let _ = tokio::io::copy_bidirectional(&mut client, &mut agent).await;
        });
        let mut builder = Response::builder().status(101);
        for (k, v) in resp.headers() {
            builder = builder.header(k, v);
        }
        return Ok(builder.body(full(Bytes::new())).unwrap());
    }

    // Plain response (logs, or an error from the agent): stream it through.
    let status = resp.status();
    let mut builder = Response::builder().status(status);
    for (k, v) in resp.headers() {
        if k == header::CONTENT_LENGTH || k == header::TRANSFER_ENCODING || k == header::CONNECTION
        {
            continue;
        }
        builder = builder.header(k, v);
    }
    let stream = resp
        .into_body()
        .into_data_stream()
        .take_while(|r| futures::future::ready(r.is_ok()))
        .filter_map(|r| async move {
            r.ok()
                .map(|b| Ok::<_, Infallible>(hyper::body::Frame::data(b)))
        });
    Ok(builder
        .body(StreamBody::new(stream).boxed_unsync())
        .unwrap())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn resolves_single_container_and_names_choices() {
        let pod = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        assert_eq!(container_for(&pod, "p", Some("b")).unwrap(), "b");
        let e = container_for(&pod, "p", None).unwrap_err();
        assert_eq!(
            e.message,
            "a container name must be specified for pod p, choose one of: [a b]"
        );
        let one = json!({"spec": {"containers": [{"name": "only"}]}});
        assert_eq!(container_for(&one, "p", None).unwrap(), "only");
        assert_eq!(
            container_for(&one, "p", Some("x")).unwrap_err().message,
            "container x is not valid for pod p"
        );
    }

    #[test]
    fn agent_address_from_node_status() {
        let node = json!({"status": {"addresses": [{"type": "Hostname", "address": "n"}, {"type": "InternalIP", "address": "172.30.0.3"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}});
        assert_eq!(
            agent_address(&node),
            Some("172.30.0.3:10250".parse().unwrap())
        );
    }
}
