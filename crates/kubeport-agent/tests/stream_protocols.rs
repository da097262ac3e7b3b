//! The agent's log/exec/attach server driven by protocol clients written here: WebSocket
//! (tungstenite) and SPDY/3.1 (the crate's own framing in client mode), directly and through
//! `proxy::splice_upgrade`.

mod stream_support;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use kubeport_agent::stream::spdy::{header, Frame, FrameReader, FrameWriter, FLAG_FIN};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use stream_support::{start_agent, FakeRuntime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

const LIMIT: Duration = Duration::from_secs(20);

const EXIT3_QUERY: &str =
    "command=sh&command=-c&command=echo+out%3B+echo+err+%3E%262%3B+exit+3&stdout=true&stderr=true";
const EXIT3_STATUS: &str = r#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c echo out; echo err >&2; exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#;
const SUCCESS: &str = r#"{"metadata":{},"status":"Success"}"#;

// ---------------------------------------------------------------- WebSocket client

#[derive(Debug, Default)]
struct WsResult {
    /// Messages as (channel, payload), in order.
    messages: Vec<(u8, Vec<u8>)>,
    close_code: Option<CloseCode>,
}

impl WsResult {
    fn channel(&self, ch: u8) -> String {
        let bytes: Vec<u8> = self
            .messages
            .iter()
            .filter(|(c, _)| *c == ch)
            .flat_map(|(_, d)| d.clone())
            .collect();
        String::from_utf8(bytes).unwrap()
    }
}

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

async fn ws_connect(addr: SocketAddr, path_and_query: &str, protocol: &str) -> Ws {
    let mut req = format!("ws://{addr}{path_and_query}")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", protocol.parse().unwrap());
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (ws, resp) = tokio_tungstenite::client_async(req, tcp).await.unwrap();
    assert_eq!(
        resp.headers().get("sec-websocket-protocol").unwrap(),
        protocol
    );
    ws
}

async fn ws_collect(mut ws: Ws) -> WsResult {
    let mut r = WsResult::default();
    tokio::time::timeout(LIMIT, async {
        while let Some(msg) = ws.next().await {
            match msg.unwrap() {
                Message::Binary(b) => r.messages.push((b[0], b[1..].to_vec())),
                Message::Close(c) => {
                    r.close_code = c.map(|c| c.code);
                    break;
                }
                _ => {}
            }
        }
    })
    .await
    .expect("the session ends");
    r
}

#[tokio::test]
async fn websocket_v5_exec_reports_output_and_exit_code() {
    let addr = start_agent(Arc::new(FakeRuntime::new())).await;
    let ws = ws_connect(
        addr,
        &format!("/exec/default/p/c?{EXIT3_QUERY}"),
        "v5.channel.k8s.io",
    )
    .await;
    let r = ws_collect(ws).await;
    // kubelet's "streams ready" message: empty, on the lowest output channel.
    assert_eq!(r.messages[0], (1, vec![]));
    assert_eq!(r.channel(1), "out\n");
    assert_eq!(r.channel(2), "err\n");
    assert_eq!(r.channel(3), EXIT3_STATUS);
    // The status is the last message, then a normal close.
    assert_eq!(r.messages.last().unwrap().0, 3);
    assert_eq!(r.close_code, Some(CloseCode::Normal));
}

#[tokio::test]
async fn websocket_v5_stdin_and_close_signal() {
    let addr = start_agent(Arc::new(FakeRuntime::new())).await;
    let mut ws = ws_connect(
        addr,
        "/exec/default/p/c?command=cat&stdin=true&stdout=true&stderr=true",
        "v5.channel.k8s.io",
    )
    .await;
    ws.send(Message::binary(b"\x00hello ".to_vec()))
        .await
        .unwrap();
    ws.send(Message::binary(b"\x00world\n".to_vec()))
        .await
        .unwrap();
    // v5 close signal for stdin: cat sees EOF and exits 0.
    ws.send(Message::binary(vec![255, 0])).await.unwrap();
    let r = ws_collect(ws).await;
    assert_eq!(r.channel(1), "hello world\n");
    assert_eq!(r.channel(3), SUCCESS);
}

#[tokio::test]
async fn websocket_resize_messages_reach_the_runtime() {
    let runtime = Arc::new(FakeRuntime::new());
    let addr = start_agent(runtime.clone()).await;
    let mut ws = ws_connect(
        addr,
        "/exec/default/p/c?command=cat&stdin=true&stdout=true&tty=true",
        "v5.channel.k8s.io",
    )
    .await;
    ws.send(Message::binary(
        b"\x04{\"Width\":80,\"Height\":24}".to_vec(),
    ))
    .await
    .unwrap();
    ws.send(Message::binary(
        b"\x04{\"Width\":120,\"Height\":40}".to_vec(),
    ))
    .await
    .unwrap();
    ws.send(Message::binary(vec![255, 0])).await.unwrap();
    let r = ws_collect(ws).await;
    assert_eq!(r.channel(3), SUCCESS);
    assert_eq!(*runtime.resizes.lock().unwrap(), vec![(80, 24), (120, 40)]);
}

#[tokio::test]
async fn websocket_pings_are_answered_while_the_command_runs() {
    let addr = start_agent(Arc::new(FakeRuntime::new())).await;
    let mut ws = ws_connect(
        addr,
        "/exec/default/p/c?command=sleep&command=2&stdout=true",
        "v5.channel.k8s.io",
    )
    .await;
    ws.send(Message::Ping(Bytes::from_static(b"hb")))
        .await
        .unwrap();
    let pong = tokio::time::timeout(Duration::from_secs(1), async {
        loop {
            match ws.next().await.unwrap().unwrap() {
                Message::Pong(p) => return p,
                _ => continue,
            }
        }
    })
    .await
    .expect("a pong within a second");
    assert_eq!(&pong[..], b"hb");
    let r = ws_collect(ws).await;
    assert_eq!(r.channel(3), SUCCESS);
}

#[tokio::test]
async fn websocket_v4_base64_uses_text_messages() {
    let addr = start_agent(Arc::new(FakeRuntime::new())).await;
    let mut ws = ws_connect(
        addr,
        &format!("/exec/default/p/c?{EXIT3_QUERY}"),
        "v4.base64.channel.k8s.io",
    )
    .await;
    let mut texts = Vec::new();
    while let Some(msg) = ws.next().await {
        match msg.unwrap() {
            Message::Text(t) => texts.push(t.to_string()),
            Message::Close(_) => break,
            _ => {}
        }
    }
    assert_eq!(texts[0], "1");
    assert!(texts.contains(&"1b3V0Cg==".to_string()), "{texts:?}"); // "out\n"
    assert!(texts.contains(&"2ZXJyCg==".to_string()), "{texts:?}"); // "err\n"
    let status = texts.iter().find(|t| t.starts_with('3')).unwrap();
    use base64::Engine;
    let json = base64::engine::general_purpose::STANDARD
        .decode(&status[1..])
        .unwrap();
    assert_eq!(String::from_utf8(json).unwrap(), EXIT3_STATUS);
}

#[tokio::test]
async fn websocket_attach_streams_the_main_process() {
    let addr = start_agent(Arc::new(FakeRuntime::new())).await;
    let mut ws = ws_connect(
        addr,
        "/attach/default/p/c?stdin=true&stdout=true&stderr=true",
        "v5.channel.k8s.io",
    )
    .await;
    ws.send(Message::binary(b"\x00attached\n".to_vec()))
        .await
        .unwrap();
    ws.send(Message::binary(vec![255, 0])).await.unwrap();
    let r = ws_collect(ws).await;
    assert_eq!(r.channel(1), "attached\n");
    assert_eq!(r.channel(3), SUCCESS);
}

#[tokio::test]
async fn websocket_with_an_unknown_subprotocol_is_refused() {
    let addr = start_agent(Arc::new(FakeRuntime::new())).await;
    let mut req = format!("ws://{addr}/exec/default/p/c?command=true&stdout=true")
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "v9.channel.k8s.io".parse().unwrap(),
    );
    let tcp = TcpStream::connect(addr).await.unwrap();
    match tokio_tungstenite::client_async(req, tcp).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 400);
        }
        other => panic!("expected an HTTP error, got {other:?}"),
    }
}

// ---------------------------------------------------------------- plain HTTP

async fn http_request(addr: SocketAddr, raw: String) -> (u16, String, String) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(raw.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(LIMIT, tcp.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let code = head[9..12].parse().unwrap();
    (code, head.to_string(), body.to_string())
}

/// A chunked body's payload.
fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    loop {
        let (size, tail) = rest.split_once("\r\n").unwrap();
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.push_str(&tail[..n]);
        rest = &tail[n + 2..];
    }
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n")
}

#[tokio::test]
async fn logs_are_plain_text_and_honour_tail_lines() {
    let addr = start_agent(Arc::new(FakeRuntime::new())).await;
    let (code, head, body) = http_request(addr, get("/containerLogs/default/p/c")).await;
    assert_eq!(code, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain"),
        "{head}"
    );
    assert_eq!(dechunk(&body), "first line\nsecond line\nthird line\n");
    let (_, _, body) = http_request(addr, get("/containerLogs/default/p/c?tailLines=1")).await;
    assert_eq!(dechunk(&body), "third line\n");
}

#[tokio::test]
async fn following_logs_arrive_as_they_are_produced() {
    let addr = start_agent(Arc::new(FakeRuntime::new())).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(get("/containerLogs/default/p/c?follow=true&tailLines=1").as_bytes())
        .await
        .unwrap();
    // The tail arrives on its own, before the follower produces its next line (the fake
    // runtime waits 300 ms): nothing is held back until the stream ends.
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains("third line") {
        let n = tcp.read(&mut buf).await.unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    assert!(!String::from_utf8_lossy(&got).contains("followed 1"));
    let mut rest = Vec::new();
    tcp.read_to_end(&mut rest).await.unwrap();
    got.extend(rest);
    let text = String::from_utf8(got).unwrap();
    let body = text.split_once("\r\n\r\n").unwrap().1;
    assert_eq!(dechunk(body), "third line\nfollowed 1\nfollowed 2\n");
}

#[tokio::test]
async fn errors_are_status_objects_with_matching_codes() {
    let addr = start_agent(Arc::new(FakeRuntime::new())).await;
    let (code, _, body) = http_request(addr, get("/containerLogs/default/nope/c")).await;
    assert_eq!(code, 404);
    assert_eq!(
        body,
        r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"pod \"nope\" not found in namespace \"default\"","reason":"NotFound","code":404}"#
    );
    let (code, _, body) = http_request(addr, get("/containerLogs/default/p/c?tailLines=x")).await;
    assert_eq!(code, 400);
    assert!(body.contains(r#""reason":"BadRequest""#), "{body}");
    let (code, _, body) = http_request(addr, get("/exec/default/p/c?command=ls&stdout=true")).await;
    assert_eq!(code, 400);
    assert!(body.contains("Upgrade request required"), "{body}");
    let (code, _, _) = http_request(addr, get("/portForward/default/p")).await;
    assert_eq!(code, 404);
    // An exec for an unknown container is refused before the upgrade.
    let raw = "POST /exec/default/p/zz?command=ls&stdout=true HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\nContent-Length: 0\r\n\r\n";
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(raw.as_bytes()).await.unwrap();
    let head = read_head(&mut tcp).await;
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
}

// ---------------------------------------------------------------- SPDY client

async fn read_head(tcp: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tcp.read(&mut b).await.unwrap();
        assert_eq!(n, 1, "connection closed in the response head");
        head.push(b[0]);
    }
    String::from_utf8(head).unwrap()
}

struct SpdyClient {
    reader: FrameReader<tokio::net::tcp::OwnedReadHalf>,
    writer: FrameWriter<tokio::net::tcp::OwnedWriteHalf>,
    next_id: u32,
    /// Frames read while waiting for something else.
    backlog: Vec<Frame>,
}

impl SpdyClient {
    /// Upgrades `path` with the given protocol versions; returns the response head too.
    async fn connect(addr: SocketAddr, path: &str, versions: &[&str]) -> (SpdyClient, String) {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let mut raw = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nContent-Length: 0\r\n"
        );
        for v in versions {
            raw.push_str(&format!("X-Stream-Protocol-Version: {v}\r\n"));
        }
        raw.push_str("\r\n");
        tcp.write_all(raw.as_bytes()).await.unwrap();
        let head = read_head(&mut tcp).await;
        let (rd, wr) = tcp.into_split();
        (
            SpdyClient {
                reader: FrameReader::new(rd),
                writer: FrameWriter::new(wr),
                next_id: 1,
                backlog: Vec::new(),
            },
            head,
        )
    }

    async fn send(&mut self, f: Frame) {
        self.writer.write_frame(&f).await.unwrap();
        self.writer.flush().await.unwrap();
    }

    /// Opens a stream like spdystream's CreateStream + Wait: SYN_STREAM, then SYN_REPLY.
    async fn open(&mut self, stream_type: &str) -> u32 {
        let id = self.next_id;
        self.next_id += 2;
        self.send(Frame::SynStream {
            stream_id: id,
            associated_to: 0,
            priority: 0,
            flags: 0,
            headers: vec![("streamtype".into(), stream_type.into())],
        })
        .await;
        loop {
            let f = self.reader.read_frame().await.unwrap().expect("a reply");
            match f {
                Frame::SynReply { stream_id, .. } if stream_id == id => return id,
                other => self.backlog.push(other),
            }
        }
    }

    /// Reads until every stream in `ids` is half-closed by the server; returns the data
    /// per stream and every frame seen.
    async fn collect(&mut self, ids: &[u32]) -> (HashMap<u32, Vec<u8>>, Vec<Frame>) {
        let mut data: HashMap<u32, Vec<u8>> = HashMap::new();
        let mut open: Vec<u32> = ids.to_vec();
        let mut seen = std::mem::take(&mut self.backlog);
        let mut i = 0;
        tokio::time::timeout(LIMIT, async {
            loop {
                while i < seen.len() {
                    if let Frame::Data {
                        stream_id,
                        flags,
                        data: d,
                    } = &seen[i]
                    {
                        data.entry(*stream_id).or_default().extend_from_slice(d);
                        if flags & FLAG_FIN != 0 {
                            open.retain(|x| x != stream_id);
                        }
                    }
                    i += 1;
                }
                if open.is_empty() {
                    return;
                }
                let f = self
                    .reader
                    .read_frame()
                    .await
                    .unwrap()
                    .expect("the server keeps the connection open until the client closes it");
                seen.push(f);
            }
        })
        .await
        .expect("all streams are closed by the server");
        (data, seen)
    }
}

fn text(data: &HashMap<u32, Vec<u8>>, id: u32) -> String {
    String::from_utf8(data.get(&id).cloned().unwrap_or_default()).unwrap()
}

#[tokio::test]
async fn spdy_v4_exec_reports_output_and_exit_code() {
    let addr = start_agent(Arc::new(FakeRuntime::new())).await;
    let (mut c, head) = SpdyClient::connect(
        addr,
        &format!("/exec/default/p/c?{EXIT3_QUERY}"),
        &[
            "v5.channel.k8s.io",
            "v4.channel.k8s.io",
            "v3.channel.k8s.io",
            "v2.channel.k8s.io",
            "channel.k8s.io",
        ],
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("upgrade: spdy/3.1"), "{head}");
    assert!(
        lower.contains("x-stream-protocol-version: v4.channel.k8s.io"),
        "{head}"
    );
    // client-go's order: error, (stdin), stdout, stderr.
    let error = c.open("error").await;
    let stdout = c.open("stdout").await;
    let stderr = c.open("stderr").await;
    let (data, _) = c.collect(&[error, stdout, stderr]).await;
    assert_eq!(text(&data, stdout), "out\n");
    assert_eq!(text(&data, stderr), "err\n");
    assert_eq!(text(&data, error), EXIT3_STATUS);
}

#[tokio::test]
async fn spdy_stdin_fin_ends_the_input_and_window_is_granted_back() {
    let addr = start_agent(Arc::new(FakeRuntime::new())).await;
    let (mut c, head) = SpdyClient::connect(
        addr,
        "/exec/default/p/c?command=cat&stdin=true&stdout=true&stderr=true",
        &["v4.channel.k8s.io"],
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let error = c.open("error").await;
    let stdin = c.open("stdin").await;
    let stdout = c.open("stdout").await;
    let stderr = c.open("stderr").await;
    // More than a default 64 KiB window, to see the grants and large transfers both ways.
    let payload: Vec<u8> = (0..100_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    for chunk in payload.chunks(30_000) {
        c.send(Frame::data(stdin, chunk.to_vec(), false)).await;
    }
    c.send(Frame::data(stdin, Vec::new(), true)).await;
    let (data, seen) = c.collect(&[error, stdout, stderr, stdin]).await;
    assert_eq!(data.get(&stdout).map(|d| d.len()), Some(payload.len()));
    assert_eq!(data[&stdout], payload);
    assert_eq!(text(&data, error), SUCCESS);
    let granted: u32 = seen
        .iter()
        .filter_map(|f| match f {
            Frame::WindowUpdate { stream_id, delta } if *stream_id == stdin => Some(*delta),
            _ => None,
        })
        .sum();
    assert_eq!(granted as usize, payload.len());
}

#[tokio::test]
async fn spdy_v2_reports_failures_as_text_and_answers_pings() {
    let addr = start_agent(Arc::new(FakeRuntime::new())).await;
    let (mut c, head) = SpdyClient::connect(
        addr,
        &format!("/exec/default/p/c?{EXIT3_QUERY}"),
        &["v2.channel.k8s.io"],
    )
    .await;
    assert!(head
        .to_ascii_lowercase()
        .contains("x-stream-protocol-version: v2.channel.k8s.io"));
    c.send(Frame::Ping { id: 1 }).await;
    let error = c.open("error").await;
    let stdout = c.open("stdout").await;
    let stderr = c.open("stderr").await;
    let (data, seen) = c.collect(&[error, stdout, stderr]).await;
    assert!(seen.contains(&Frame::Ping { id: 1 }));
    assert_eq!(
        text(&data, error),
        "command terminated with non-zero exit code: error executing command [sh -c echo out; echo err >&2; exit 3], exit code 3"
    );
}

#[tokio::test]
async fn spdy_tty_session_needs_and_uses_the_resize_stream() {
    let runtime = Arc::new(FakeRuntime::new());
    let addr = start_agent(runtime.clone()).await;
    let (mut c, _) = SpdyClient::connect(
        addr,
        "/exec/default/p/c?command=cat&stdin=true&stdout=true&stderr=true&tty=true",
        &["v4.channel.k8s.io"],
    )
    .await;
    let error = c.open("error").await;
    let stdin = c.open("stdin").await;
    let stdout = c.open("stdout").await;
    let resize = c.open("resize").await;
    // json.Encoder output: one object per line, here split across frames.
    c.send(Frame::data(resize, b"{\"Width\":100,".to_vec(), false))
        .await;
    c.send(Frame::data(resize, b"\"Height\":30}\n".to_vec(), false))
        .await;
    c.send(Frame::data(stdin, b"typed\n".to_vec(), true)).await;
    let (data, _) = c.collect(&[error, stdout]).await;
    assert_eq!(text(&data, stdout), "typed\n");
    assert_eq!(text(&data, error), SUCCESS);
    assert_eq!(*runtime.resizes.lock().unwrap(), vec![(100, 30)]);
}

#[tokio::test]
async fn spdy_without_a_common_version_is_forbidden() {
    let addr = start_agent(Arc::new(FakeRuntime::new())).await;
    let (_, head) = SpdyClient::connect(
        addr,
        "/exec/default/p/c?command=true&stdout=true",
        &["v9.channel.k8s.io"],
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    assert!(head
        .to_ascii_lowercase()
        .contains("x-accepted-stream-protocol-versions: v4.channel.k8s.io"));
}

// ---------------------------------------------------------------- through the proxy

/// A front like the API server's: every request is forwarded to the agent with
/// `/front/...` replaced by `/...`.
async fn start_front(agent: SocketAddr) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let svc =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let pq = req
                            .uri()
                            .path_and_query()
                            .map(|p| p.as_str().trim_start_matches("/front").to_string())
                            .unwrap_or_default();
                        async move {
                            Ok::<_, std::convert::Infallible>(
                                kubeport_agent::stream::proxy::splice_upgrade(req, agent, &pq)
                                    .await,
                            )
                        }
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

#[tokio::test]
async fn proxy_splices_websocket_and_spdy_and_streams_logs() {
    let agent = start_agent(Arc::new(FakeRuntime::new())).await;
    let front = start_front(agent).await;

    let ws = ws_connect(
        front,
        &format!("/front/exec/default/p/c?{EXIT3_QUERY}"),
        "v5.channel.k8s.io",
    )
    .await;
    let r = ws_collect(ws).await;
    assert_eq!(r.channel(1), "out\n");
    assert_eq!(r.channel(3), EXIT3_STATUS);

    let (mut c, head) = SpdyClient::connect(
        front,
        &format!("/front/exec/default/p/c?{EXIT3_QUERY}"),
        &["v4.channel.k8s.io"],
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let error = c.open("error").await;
    let stdout = c.open("stdout").await;
    let stderr = c.open("stderr").await;
    let (data, _) = c.collect(&[error, stdout, stderr]).await;
    assert_eq!(text(&data, stderr), "err\n");
    assert_eq!(text(&data, error), EXIT3_STATUS);

    let (code, _, body) =
        http_request(front, get("/front/containerLogs/default/p/c?tailLines=2")).await;
    assert_eq!(code, 200);
    assert_eq!(dechunk(&body), "second line\nthird line\n");
    let (code, _, _) = http_request(front, get("/front/containerLogs/default/nope/c")).await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn proxy_reports_an_unreachable_agent() {
    // A port nothing listens on: bind, read the port, close.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = l.local_addr().unwrap();
    drop(l);
    let req = http::Request::builder()
        .uri("/containerLogs/default/p/c")
        .body(http_body_util::Empty::<Bytes>::new())
        .unwrap();
    let resp =
        kubeport_agent::stream::proxy::splice_upgrade(req, dead, "/containerLogs/default/p/c")
            .await;
    assert_eq!(resp.status(), 503);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["reason"], "ServiceUnavailable");
    assert!(v["message"]
        .as_str()
        .unwrap()
        .starts_with(&format!("error dialing backend: dial tcp {dead}: ")));
}

#[test]
fn header_lookup_is_case_insensitive() {
    let h = vec![("streamtype".to_string(), "stdout".to_string())];
    assert_eq!(header(&h, "StreamType"), Some("stdout"));
}
