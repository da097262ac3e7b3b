//! The wire side: hickory-server carries UDP (with truncation to the client's buffer size)
//! and TCP; every question goes to the [`Resolver`] with the current [`Snapshot`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Edns, Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode};
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use hickory_server::Server;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;

use crate::resolver::{Answer, Resolver};
use crate::snapshot::Snapshot;

/// The largest UDP response sent whatever the client advertises: 1232 bytes fits any path
/// MTU without fragmentation (the DNS flag day 2020 value). Larger answers set TC and the
/// client retries over TCP.
const MAX_UDP_PAYLOAD: u16 = 1232;
/// How long an idle TCP connection is kept.
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// The current snapshot; `None` until the caches have been listed once.
pub type SnapshotReceiver = watch::Receiver<Option<Arc<Snapshot>>>;

/// Answers requests from the snapshot published on a watch channel.
pub struct DnsHandler {
    resolver: Arc<Resolver>,
    snapshots: SnapshotReceiver,
}

impl DnsHandler {
    pub fn new(resolver: Resolver, snapshots: SnapshotReceiver) -> Self {
        DnsHandler {
            resolver: Arc::new(resolver),
            snapshots,
        }
    }

    /// The answer to `request`, or the response code of a refusal to answer it at all.
    fn answer(&self, request: &Request) -> Result<Answer, ResponseCode> {
        if request.metadata.op_code != OpCode::Query {
            return Err(ResponseCode::NotImp);
        }
        let [query] = request.queries.queries() else {
            return Err(ResponseCode::FormErr);
        };
        let original = query.original();
        if !self.resolver.owns(original.name()) {
            return Err(ResponseCode::Refused);
        }
        let snapshot = self.snapshots.borrow().clone();
        // Until the caches are listed every name would look absent; a negative answer would
        // be cached by clients, a failure is retried.
        let snapshot = snapshot.ok_or(ResponseCode::ServFail)?;
        Ok(self.resolver.resolve(
            &snapshot,
            original.name(),
            original.query_type(),
            original.query_class(),
        ))
    }
}

#[async_trait::async_trait]
impl RequestHandler for DnsHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let response_edns = request.edns.as_ref().map(|edns| {
            let mut response = Edns::new();
            response.set_max_payload(edns.max_payload().clamp(512, MAX_UDP_PAYLOAD));
            response.set_version(0);
            response
        });
        let builder = MessageResponseBuilder::new(&request.queries, response_edns.as_ref());
        let mut metadata = Metadata::response_from_request(&request.metadata);
        let result = if request.edns.as_ref().is_some_and(|edns| edns.version() > 0) {
            Err(ResponseCode::BADVERS)
        } else {
            self.answer(request)
        };
        let sent = match result {
            Ok(answer) => {
                metadata.response_code = answer.response_code;
                metadata.authoritative = answer.authoritative;
                // As CoreDNS does: answers from the cluster's data are complete (aliases are
                // followed inside the zone), which is what stub resolvers check RA for.
                metadata.recursion_available = answer.authoritative;
                let response = builder.build(
                    metadata,
                    answer.answers.iter(),
                    answer.authorities.iter(),
                    std::iter::empty(),
                    answer.additionals.iter(),
                );
                response_handle.send_response(response).await
            }
            Err(code) => {
                let mut edns_with_code = response_edns.clone();
                if let Some(edns) = edns_with_code.as_mut() {
                    edns.set_rcode_high(code.high());
                }
                let builder =
                    MessageResponseBuilder::new(&request.queries, edns_with_code.as_ref());
                metadata.response_code = code;
                response_handle
                    .send_response(builder.build_no_records(metadata))
                    .await
            }
        };
        match sent {
            Ok(info) => info,
            Err(error) => {
                tracing::debug!(%error, "failed to send a DNS response");
                let mut metadata =
                    Metadata::new(request.metadata.id, MessageType::Response, OpCode::Query);
                metadata.response_code = ResponseCode::ServFail;
                ResponseInfo::from(Header {
                    metadata,
                    counts: HeaderCounts::default(),
                })
            }
        }
    }
}

/// A DNS server listening on UDP and TCP on one address.
pub struct DnsServer {
    local_addr: SocketAddr,
    server: Server<DnsHandler>,
}

impl DnsServer {
    /// Binds `listen` on UDP and TCP (port 0: one free port for both) and serves.
    pub async fn bind(
        listen: SocketAddr,
        resolver: Resolver,
        snapshots: SnapshotReceiver,
    ) -> anyhow::Result<DnsServer> {
        let (udp, tcp) = bind_pair(listen).await?;
        let local_addr = udp.local_addr()?;
        let mut server = Server::new(DnsHandler::new(resolver, snapshots));
        server.register_socket(udp);
        server.register_listener(tcp, TCP_IDLE_TIMEOUT, 64);
        tracing::info!(%local_addr, "serving cluster DNS on UDP and TCP");
        Ok(DnsServer { local_addr, server })
    }

    /// The bound address (UDP and TCP share it).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops listening and waits for in-flight requests.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        self.server
            .shutdown_gracefully()
            .await
            .map_err(|err| anyhow::anyhow!("stopping the DNS server: {err}"))
    }
}

/// UDP and TCP sockets on the same address. With port 0 the UDP port is chosen first and TCP
/// takes the same number; if that TCP port is taken, try another.
async fn bind_pair(listen: SocketAddr) -> anyhow::Result<(UdpSocket, TcpListener)> {
    let attempts = if listen.port() == 0 { 20 } else { 1 };
    let mut last_error = None;
    for _ in 0..attempts {
        let udp = UdpSocket::bind(listen)
            .await
            .map_err(|err| anyhow::anyhow!("binding UDP {listen}: {err}"))?;
        let addr = udp.local_addr()?;
        match TcpListener::bind(addr).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(err) => last_error = Some(anyhow::anyhow!("binding TCP {addr}: {err}")),
        }
    }
    Err(last_error.unwrap_or_else(|| anyhow::anyhow!("binding {listen}")))
}
