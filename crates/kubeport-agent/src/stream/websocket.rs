//! Exec/attach over WebSocket: Kubernetes' channel protocols.
//!
//! Every message starts with a channel byte: 0 stdin, 1 stdout, 2 stderr, 3 error/status,
//! 4 resize (`{"Width":W,"Height":H}`). `v5.channel.k8s.io` adds channel 255, a close
//! signal (`[255, 0]` = the client closed stdin). The `base64.` variants send text messages
//! whose first character is the channel digit and whose rest is base64. As kubelet does, the
//! server first sends an empty message on the lowest output channel, and ends with the
//! status on channel 3 followed by a normal close frame. Pings are answered by tungstenite
//! while the connection is read (kubectl pings every 5 s and gives up after ~60 s).

use super::session::{self, Inbound, Outbound, SessionIo};
use super::status::FinalStatus;
use super::{full_body, header_has_token, header_list, Body, SessionSpec};
use crate::runtime_api::ProcessIo;
use base64::Engine;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{header, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use kubeport_core::status::Status;
use std::time::Duration;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

/// How long to wait for the client's answer to our close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(10);

/// A negotiated channel protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Protocol {
    V5,
    V4Binary,
    V4Base64,
    /// `channel.k8s.io`, or no subprotocol at all (kubelet's default).
    V1Binary {
        named: bool,
    },
    V1Base64,
}

impl Protocol {
    const SUPPORTED: [(&'static str, Protocol); 5] = [
        ("v5.channel.k8s.io", Protocol::V5),
        ("v4.channel.k8s.io", Protocol::V4Binary),
        ("v4.base64.channel.k8s.io", Protocol::V4Base64),
        ("channel.k8s.io", Protocol::V1Binary { named: true }),
        ("base64.channel.k8s.io", Protocol::V1Base64),
    ];

    fn name(self) -> Option<&'static str> {
        match self {
            Protocol::V1Binary { named: false } => None,
            p => Self::SUPPORTED
                .iter()
                .find(|(_, q)| *q == p)
                .map(|(n, _)| *n),
        }
    }

    fn base64(self) -> bool {
        matches!(self, Protocol::V4Base64 | Protocol::V1Base64)
    }

    /// v4 and later report a JSON Status on the error channel.
    fn json_status(self) -> bool {
        matches!(self, Protocol::V5 | Protocol::V4Binary | Protocol::V4Base64)
    }
}

pub(crate) fn is_websocket_request(req: &Request<Incoming>) -> bool {
    header_has_token(req, header::UPGRADE, "websocket")
        && header_has_token(req, header::CONNECTION, "upgrade")
}

/// Picks the first protocol the client offers that this server speaks.
pub(crate) fn negotiate(req: &Request<Incoming>) -> Result<Protocol, Status> {
    if req.headers().get(header::SEC_WEBSOCKET_KEY).is_none() {
        return Err(Status::bad_request(
            "unable to upgrade: missing Sec-WebSocket-Key",
        ));
    }
    let offered = header_list(req, "sec-websocket-protocol");
    if offered.is_empty() {
        return Ok(Protocol::V1Binary { named: false });
    }
    for o in &offered {
        if let Some((_, p)) = Protocol::SUPPORTED.iter().find(|(n, _)| n == o) {
            return Ok(*p);
        }
    }
    Err(Status::bad_request(format!(
        "unable to upgrade: unable to negotiate protocol: client supports [{}], server accepts [{}]",
        offered.join(" "),
        Protocol::SUPPORTED.map(|(n, _)| n).join(" ")
    )))
}

/// Answers 101 and runs the session on the upgraded connection.
pub(crate) fn upgrade(
    req: Request<Incoming>,
    protocol: Protocol,
    process: Box<dyn ProcessIo>,
    spec: SessionSpec,
) -> Response<Body> {
    let key = req
        .headers()
        .get(header::SEC_WEBSOCKET_KEY)
        .map(|k| derive_accept_key(k.as_bytes()))
        .unwrap_or_default();
    let mut resp = Response::new(full_body(Bytes::new()));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&key) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    if let Some(name) = protocol.name() {
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(name),
        );
    }
    tokio::spawn(async move {
        match hyper::upgrade::on(req).await {
            Ok(upgraded) => {
                let ws =
                    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None)
                        .await;
                run(ws, protocol, process, spec).await;
            }
            Err(e) => tracing::debug!("websocket upgrade failed: {e}"),
        }
    });
    resp
}

fn encode(protocol: Protocol, channel: u8, data: &[u8]) -> Message {
    if protocol.base64() {
        let mut text = String::with_capacity(1 + data.len() * 4 / 3 + 4);
        text.push((b'0' + channel) as char);
        base64::engine::general_purpose::STANDARD.encode_string(data, &mut text);
        Message::text(text)
    } else {
        let mut bin = Vec::with_capacity(1 + data.len());
        bin.push(channel);
        bin.extend_from_slice(data);
        Message::binary(bin)
    }
}

/// Channel and payload of a client message; None for messages that carry no channel data.
fn decode(protocol: Protocol, msg: Message) -> Option<(u8, Vec<u8>)> {
    match msg {
        Message::Binary(b) if !protocol.base64() && !b.is_empty() => Some((b[0], b[1..].to_vec())),
        Message::Text(t) if protocol.base64() && !t.is_empty() => {
            let s = t.as_str();
            let channel = s.as_bytes()[0].checked_sub(b'0')?;
            let data = base64::engine::general_purpose::STANDARD
                .decode(&s[1..])
                .ok()?;
            Some((channel, data))
        }
        _ => None,
    }
}

async fn run<S>(
    ws: WebSocketStream<S>,
    protocol: Protocol,
    process: Box<dyn ProcessIo>,
    spec: SessionSpec,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut stream) = ws.split();
    let SessionIo {
        inbound,
        mut outbound,
        outcome,
    } = session::start(process);

    // Tells the client the streams are ready (kubelet does the same).
    let first = if spec.opts.stdout {
        STDOUT
    } else if spec.opts.stderr {
        STDERR
    } else {
        ERROR
    };
    if sink.send(encode(protocol, first, &[])).await.is_err() {
        return;
    }

    let reader = tokio::spawn(async move {
        let mut resize_buf = Vec::new();
        while let Some(msg) = stream.next().await {
            let msg = match msg {
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(m) => m,
            };
            let Some((channel, data)) = decode(protocol, msg) else {
                continue;
            };
            let events = match channel {
                STDIN if !data.is_empty() => vec![Inbound::Stdin(Bytes::from(data))],
                RESIZE => {
                    resize_buf.extend_from_slice(&data);
                    session::parse_resizes(&mut resize_buf)
                }
                CLOSE if protocol == Protocol::V5 && data.first() == Some(&STDIN) => {
                    vec![Inbound::StdinEof]
                }
                _ => Vec::new(),
            };
            for e in events {
                if inbound.send(e).await.is_err() {
                    // The session is over; keep reading to answer pings and see the close.
                    break;
                }
            }
        }
        // Dropping `inbound` here tells a still-running session that the client is gone.
    });

    let mut client_alive = true;
    while let Some(out) = outbound.recv().await {
        let (channel, data) = match out {
            Outbound::Stdout(d) => (STDOUT, d),
            Outbound::Stderr(d) => (STDERR, d),
        };
        if client_alive && sink.send(encode(protocol, channel, &data)).await.is_err() {
            client_alive = false;
        }
    }
    let outcome = outcome.await.unwrap_or(session::Outcome::ClientGone);
    if client_alive {
        if let Some(status) = FinalStatus::for_outcome(spec.op, &spec.command, &outcome) {
            if let Some(bytes) = status.encode(protocol.json_status()) {
                let _ = sink.send(encode(protocol, ERROR, &bytes)).await;
            }
        }
        let _ = sink
            .send(Message::Close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            })))
            .await;
    }
    // Wait for the client's close reply (the reader ends on it) so the status is not lost to
    // a reset connection; a client that never answers is cut off.
    let abort = reader.abort_handle();
    if tokio::time::timeout(CLOSE_GRACE, reader).await.is_err() {
        abort.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_and_base64_encodings() {
        assert_eq!(
            encode(Protocol::V5, STDOUT, b"hi"),
            Message::binary(vec![1, b'h', b'i'])
        );
        assert_eq!(
            encode(Protocol::V4Base64, STDERR, b"hi"),
            Message::text("2aGk=")
        );
        assert_eq!(
            decode(Protocol::V1Base64, Message::text("0aGk=")),
            Some((0, b"hi".to_vec()))
        );
        assert_eq!(
            decode(Protocol::V5, Message::binary(vec![255, 0])),
            Some((255, vec![0]))
        );
        assert_eq!(decode(Protocol::V5, Message::text("0aGk=")), None);
    }

    #[test]
    fn protocol_names() {
        assert_eq!(Protocol::V5.name(), Some("v5.channel.k8s.io"));
        assert_eq!(Protocol::V1Binary { named: false }.name(), None);
        assert!(Protocol::V4Binary.json_status());
        assert!(!Protocol::V1Base64.json_status());
    }
}
