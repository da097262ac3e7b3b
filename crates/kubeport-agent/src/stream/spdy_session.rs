//! Exec/attach over SPDY/3.1, as kubelet serves it to client-go.
//!
//! The client upgrades with `Upgrade: SPDY/3.1` and the protocol versions it speaks in
//! `X-Stream-Protocol-Version`; the server answers 101 with the chosen one. The client then
//! opens its streams one by one (SYN_STREAM with header `streamtype`: `error`, `stdin`,
//! `stdout`, `stderr`, `resize`), each waiting for the server's SYN_REPLY. Once every
//! stream the query asked for exists, bytes flow in DATA frames; the client half-closes
//! stdin with FLAG_FIN. At the end the server writes the status on the error stream (v4:
//! JSON Status; v1–v3: failure text only), half-closes every stream, and waits for the client
//! to close the connection: spdystream drops queued frames when its connection ends, so
//! closing first could lose the status.

use super::session::{self, Inbound, Outbound, SessionIo};
use super::spdy::{frame, Frame, FrameReader, FrameWriter, UPGRADE_TOKEN};
use super::status::FinalStatus;
use super::{full_body, header_has_token, header_list, status_response, Body, SessionSpec};
use crate::runtime_api::ProcessIo;
use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use kubeport_core::status::{Status, StatusReason};
use std::collections::HashMap;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Request and response header naming the remote-command protocol version.
const PROTOCOL_HEADER: &str = "x-stream-protocol-version";
/// Response header listing the versions the server accepts, on a failed negotiation.
const ACCEPTED_HEADER: &str = "x-accepted-stream-protocol-versions";
/// kubelet's default for the client to open its streams.
const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait, after the last frame, for the client to close the connection.
const LINGER: Duration = Duration::from_secs(30);
/// Largest DATA payload sent at once.
const MAX_DATA: usize = 32 * 1024;

/// A negotiated remote-command protocol version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Protocol {
    V1,
    V2,
    V3,
    V4,
}

impl Protocol {
    /// kubelet's set, in its preference order (v5 is WebSocket-only on the server side).
    const SUPPORTED: [(&'static str, Protocol); 4] = [
        ("v4.channel.k8s.io", Protocol::V4),
        ("v3.channel.k8s.io", Protocol::V3),
        ("v2.channel.k8s.io", Protocol::V2),
        ("channel.k8s.io", Protocol::V1),
    ];

    fn name(self) -> &'static str {
        Self::SUPPORTED
            .iter()
            .find(|(_, p)| *p == self)
            .map(|(n, _)| *n)
            .expect("every protocol is named")
    }
}

pub(crate) fn is_spdy_request(req: &Request<Incoming>) -> bool {
    header_has_token(req, header::UPGRADE, UPGRADE_TOKEN)
        && header_has_token(req, header::CONNECTION, "upgrade")
}

/// The first version the client offers that this server speaks (httpstream.Handshake).
// The error is the response to send; it is built once per refused request.
#[allow(clippy::result_large_err)]
pub(crate) fn negotiate(req: &Request<Incoming>) -> Result<Protocol, Response<Body>> {
    let offered = header_list(req, PROTOCOL_HEADER);
    if offered.is_empty() {
        return Err(status_response(&Status::bad_request(
            "unable to upgrade: X-Stream-Protocol-Version is required",
        )));
    }
    for o in &offered {
        if let Some((_, p)) = Protocol::SUPPORTED.iter().find(|(n, _)| n == o) {
            return Ok(*p);
        }
    }
    let names = Protocol::SUPPORTED.map(|(n, _)| n);
    let mut resp = status_response(&Status::new(
        403,
        StatusReason::Forbidden,
        format!(
            "unable to upgrade: unable to negotiate protocol: client supports [{}], server accepts [{}]",
            offered.join(" "),
            names.join(" ")
        ),
    ));
    for n in names {
        resp.headers_mut()
            .append(ACCEPTED_HEADER, HeaderValue::from_static(n));
    }
    Err(resp)
}

/// Answers 101 and runs the session on the upgraded connection.
pub(crate) fn upgrade(
    req: Request<Incoming>,
    protocol: Protocol,
    process: Box<dyn ProcessIo>,
    spec: SessionSpec,
) -> Response<Body> {
    let mut resp = Response::new(full_body(Bytes::new()));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static(UPGRADE_TOKEN));
    h.insert(PROTOCOL_HEADER, HeaderValue::from_static(protocol.name()));
    tokio::spawn(async move {
        match hyper::upgrade::on(req).await {
            Ok(upgraded) => run(TokioIo::new(upgraded), protocol, process, spec).await,
            Err(e) => tracing::debug!("SPDY upgrade failed: {e}"),
        }
    });
    resp
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum StreamType {
    Error,
    Stdin,
    Stdout,
    Stderr,
    Resize,
}

impl StreamType {
    fn parse(s: &str) -> Option<StreamType> {
        Some(match s {
            "error" => StreamType::Error,
            "stdin" => StreamType::Stdin,
            "stdout" => StreamType::Stdout,
            "stderr" => StreamType::Stderr,
            "resize" => StreamType::Resize,
            _ => return None,
        })
    }
}

/// The streams a request needs before the session starts (kubelet's expectedStreams).
fn expected_streams(protocol: Protocol, spec: &SessionSpec) -> Vec<StreamType> {
    let mut v = vec![StreamType::Error];
    if spec.opts.stdin {
        v.push(StreamType::Stdin);
    }
    if spec.opts.stdout {
        v.push(StreamType::Stdout);
    }
    if spec.opts.stderr {
        v.push(StreamType::Stderr);
    }
    if spec.opts.tty && protocol >= Protocol::V3 {
        v.push(StreamType::Resize);
    }
    v
}

/// Writes frames in order; control frames (replies, pings, window updates) go first.
async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: FrameWriter<W>,
    mut control: mpsc::UnboundedReceiver<Frame>,
    mut data: mpsc::Receiver<Frame>,
) {
    let (mut control_open, mut data_open) = (true, true);
    while control_open || data_open {
        let frame = tokio::select! {
            biased;
            f = control.recv(), if control_open => match f {
                Some(f) => f,
                None => { control_open = false; continue; }
            },
            f = data.recv(), if data_open => match f {
                Some(f) => f,
                None => { data_open = false; continue; }
            },
        };
        if writer.write_frame(&frame).await.is_err() {
            return;
        }
        if control.is_empty() && data.is_empty() && writer.flush().await.is_err() {
            return;
        }
    }
    let _ = writer.flush().await;
}

/// Sends the session's output, then the status, then FIN on every stream.
async fn forward_output(
    mut outbound: mpsc::Receiver<Outbound>,
    outcome: tokio::sync::oneshot::Receiver<session::Outcome>,
    data: mpsc::Sender<Frame>,
    ids: HashMap<StreamType, u32>,
    all_ids: Vec<u32>,
    protocol: Protocol,
    spec: SessionSpec,
) {
    let mut client_alive = true;
    while let Some(out) = outbound.recv().await {
        let (kind, bytes) = match out {
            Outbound::Stdout(b) => (StreamType::Stdout, b),
            Outbound::Stderr(b) => (StreamType::Stderr, b),
        };
        let Some(&id) = ids.get(&kind) else { continue };
        for chunk in bytes.chunks(MAX_DATA) {
            if client_alive
                && data
                    .send(Frame::data(id, chunk.to_vec(), false))
                    .await
                    .is_err()
            {
                client_alive = false;
            }
        }
    }
    let outcome = outcome.await.unwrap_or(session::Outcome::ClientGone);
    if !client_alive {
        return;
    }
    let Some(status) = FinalStatus::for_outcome(spec.op, &spec.command, &outcome) else {
        return;
    };
    if let (Some(bytes), Some(&id)) = (
        status.encode(protocol == Protocol::V4),
        ids.get(&StreamType::Error),
    ) {
        let _ = data.send(Frame::data(id, bytes, false)).await;
    }
    for id in all_ids {
        let _ = data.send(Frame::data(id, Vec::new(), true)).await;
    }
}

async fn run<IO>(io: IO, protocol: Protocol, process: Box<dyn ProcessIo>, spec: SessionSpec)
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (rd, wr) = tokio::io::split(io);
    let mut reader = FrameReader::new(rd);
    let (control_tx, control_rx) = mpsc::unbounded_channel();
    let (data_tx, data_rx) = mpsc::channel(16);
    let writer = tokio::spawn(write_loop(FrameWriter::new(wr), control_rx, data_rx));

    let expected = expected_streams(protocol, &spec);
    let mut spec = Some(spec);
    let mut process = Some(process);
    let mut streams: HashMap<u32, StreamType> = HashMap::new();
    let mut ids: HashMap<StreamType, u32> = HashMap::new();
    let mut order: Vec<u32> = Vec::new();
    // Client input that arrives before the session starts.
    let mut pending: Vec<Inbound> = Vec::new();
    let mut inbound: Option<mpsc::Sender<Inbound>> = None;
    let mut resize_buf = Vec::new();
    let mut forwarder: Option<tokio::task::JoinHandle<()>> = None;
    let mut data_tx = Some(data_tx);
    let creation_deadline = Instant::now() + STREAM_CREATION_TIMEOUT;
    let mut linger_deadline: Option<Instant> = None;

    loop {
        let waiting_for_streams = process.is_some();
        let forwarding = forwarder.as_ref().is_some_and(|f| !f.is_finished());
        let frame = tokio::select! {
            f = reader.read_frame() => match f {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!("SPDY connection: {e}");
                    break;
                }
            },
            _ = tokio::time::sleep_until(creation_deadline), if waiting_for_streams => {
                tracing::warn!("timed out waiting for client to create streams");
                break;
            }
            _ = async { forwarder.as_mut().expect("forwarding").await }, if forwarding => {
                // Everything is sent; give the client time to read it and hang up.
                data_tx = None;
                linger_deadline = Some(Instant::now() + LINGER);
                continue;
            }
            _ = tokio::time::sleep_until(linger_deadline.unwrap_or_else(Instant::now)), if linger_deadline.is_some() => break,
        };
        let mut events = Vec::new();
        match frame {
            Frame::SynStream {
                stream_id,
                flags,
                headers,
                ..
            } => {
                let _ = control_tx.send(Frame::SynReply {
                    stream_id,
                    flags: 0,
                    headers: Vec::new(),
                });
                order.push(stream_id);
                match frame::header(&headers, "streamtype").and_then(StreamType::parse) {
                    Some(kind) if !ids.contains_key(&kind) => {
                        streams.insert(stream_id, kind);
                        ids.insert(kind, stream_id);
                        if kind == StreamType::Stdin && flags & frame::FLAG_FIN != 0 {
                            events.push(Inbound::StdinEof);
                        }
                    }
                    other => tracing::debug!("ignoring SPDY stream {stream_id} of type {other:?}"),
                }
                if process.is_some() && expected.iter().all(|k| ids.contains_key(k)) {
                    let SessionIo {
                        inbound: tx,
                        outbound,
                        outcome,
                    } = session::start(process.take().expect("checked"));
                    inbound = Some(tx);
                    forwarder = Some(tokio::spawn(forward_output(
                        outbound,
                        outcome,
                        data_tx.clone().expect("set until forwarding ends"),
                        ids.clone(),
                        order.clone(),
                        protocol,
                        spec.take().expect("taken once"),
                    )));
                }
            }
            Frame::Data {
                stream_id,
                flags,
                data,
            } => {
                if !data.is_empty() {
                    // Grant the window back at once: input is handed on as it arrives.
                    let _ = control_tx.send(Frame::WindowUpdate {
                        stream_id,
                        delta: data.len() as u32,
                    });
                }
                match streams.get(&stream_id) {
                    Some(StreamType::Stdin) => {
                        if !data.is_empty() {
                            events.push(Inbound::Stdin(Bytes::from(data)));
                        }
                        if flags & frame::FLAG_FIN != 0 {
                            events.push(Inbound::StdinEof);
                        }
                    }
                    Some(StreamType::Resize) => {
                        resize_buf.extend_from_slice(&data);
                        events.extend(session::parse_resizes(&mut resize_buf));
                    }
                    _ => {}
                }
            }
            Frame::RstStream { stream_id, .. } => {
                if streams.get(&stream_id) == Some(&StreamType::Stdin) {
                    events.push(Inbound::StdinEof);
                }
            }
            Frame::Ping { id } => {
                // Odd ids are the client's pings; even ones would be answers to ours.
                if id % 2 == 1 {
                    let _ = control_tx.send(Frame::Ping { id });
                }
            }
            Frame::GoAway { .. } => break,
            Frame::SynReply { .. }
            | Frame::Headers { .. }
            | Frame::Settings { .. }
            | Frame::WindowUpdate { .. }
            | Frame::Unknown { .. } => {}
        }
        match &inbound {
            Some(tx) => {
                for e in pending.drain(..).chain(events) {
                    let _ = tx.send(e).await;
                }
            }
            None => pending.extend(events),
        }
    }
    // Dropping the input channel tells a still-running session that the client is gone.
    drop(inbound);
    drop(data_tx);
    drop(control_tx);
    if let Some(f) = forwarder {
        let _ = f.await;
    }
    let _ = writer.await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime_api::ExecOptions;
    use crate::stream::status::Operation;

    fn spec(stdin: bool, stderr: bool, tty: bool) -> SessionSpec {
        SessionSpec {
            op: Operation::Exec,
            command: vec!["sh".into()],
            opts: ExecOptions {
                stdin,
                stdout: true,
                stderr,
                tty,
            },
        }
    }

    #[test]
    fn expected_streams_follow_the_query_and_version() {
        assert_eq!(
            expected_streams(Protocol::V4, &spec(false, true, false)),
            vec![StreamType::Error, StreamType::Stdout, StreamType::Stderr]
        );
        assert_eq!(
            expected_streams(Protocol::V4, &spec(true, false, true)),
            vec![
                StreamType::Error,
                StreamType::Stdin,
                StreamType::Stdout,
                StreamType::Resize
            ]
        );
        // v2 has no resize stream.
        assert_eq!(
            expected_streams(Protocol::V2, &spec(true, false, true)),
            vec![StreamType::Error, StreamType::Stdin, StreamType::Stdout]
        );
    }
}
