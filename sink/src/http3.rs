//! HTTP/3: a quinn endpoint on the TCP listener's port number (over UDP),
//! the `h3` crate for HTTP/3 framing and QPACK, `h3-quinn` between them.
//!
//! Each QUIC connection is one task (accepting request streams, and
//! closing the connection for the `close` knob, on shutdown or when idle
//! connections are asked to close); each request stream is one task that
//! resolves the head, hands the request to the shared handler
//! ([`crate::service::handle`]) with the stream's receiving half as its body
//! ([`H3Body`]), and streams the handler's response back with
//! `send_response` / `send_data` / `finish`.
//!
//! # Timestamps
//!
//! There is no timed socket under a QUIC stream (one UDP socket carries every
//! connection, and quinn reassembles streams from packets), so a request's
//! head is stamped when `resolve_request` returned it, and its body's end in
//! the poll in which the stream delivered the end (FIN, or trailers). Those
//! are [`RequestTiming::head_parsed_at`](crate::RequestTiming::head_parsed_at)
//! and [`RequestTiming::body_end_at`](crate::RequestTiming::body_end_at), and
//! the verdict's `serverTiming` (`headReceivedMs`, `bodyReceivedMs`); the
//! socket-level fields stay `None`, as on h2. A connection's
//! [`ConnectionTiming`](crate::ConnectionTiming) has `accepted` (the endpoint
//! handed over the client's first Initial) and `tls_done` (quinn finished the
//! handshake); its byte counts stay 0.
//!
//! # Transport settings, and why
//!
//! The sink's job is to take bulk uploads (a client pushes up to 1 GiB over
//! loopback) without being the bottleneck and without losing datagrams.
//! Measured with the ignored test `h3_throughput` in `tests/suite/h3.rs` (release
//! build, one process holding both the sink and a quinn + h3 client, two
//! worker threads, on a two-core machine that was busy with other builds, so
//! single runs scatter by ±30 %). With the settings below, 1 GiB uploads in
//! five interleaved runs: 735-1120 MiB/s (median 869) when the sink only
//! counts (`discard=1`), 592-1052 MiB/s (median 777) when it hashes every
//! byte, and 523-647 MiB/s (median 563) from a client left at quinn's
//! 1452-byte MTU bound with segmentation offload; no datagram lost in any.
//!
//! - **MTU: discovery up to 65527, `max_udp_payload_size` 65527, GSO off.**
//!   This is what matters. Allowing 64 KiB datagrams (loopback's MTU is
//!   65536) needs both the discovery bound (quinn's default stops at 1452)
//!   and the transport parameter `max_udp_payload_size` (quinn advertises
//!   1472 by default, which caps the *client's* discovery). Then
//!   segmentation offload must be off on the sending side: quinn batches up
//!   to ten MTU-sized segments into one GSO `sendmsg`, which the kernel
//!   refuses once the batch passes 64 KiB (`EMSGSIZE`, which quinn-udp drops
//!   silently, as for a failed probe); the losses look like a black hole and
//!   quinn falls back to 1200-byte datagrams for a minute (290-460 MiB/s).
//!   A 256 MiB download from the sink ran at 270-280 MiB/s with the sink's
//!   GSO on and 490-830 MiB/s with it off. `initial_mtu` stays at QUIC's
//!   safe 1200: the sink also runs in network namespaces behind veth links
//!   and shaped paths, where a larger first guess would be lost; on loopback
//!   discovery reaches 65495 within a few round trips, and on a 1500-byte
//!   link the probes that do not fit are simply lost. A client should do the
//!   same for its own direction (each side discovers its own path MTU).
//! - **Stream receive window 4 MiB, connection receive window 6 MiB**
//!   (quinn's defaults: 1.25 MiB per stream, no connection limit). 16 MiB /
//!   64 MiB, 8 / 8 MiB, 4 / 6 MiB and quinn's defaults all measured the same
//!   within the scatter, with the sink only counting or hashing every byte;
//!   but windows larger than the UDP receive buffer (8 MiB, below) let the
//!   client outrun the sink's packet reader whenever it is descheduled, and
//!   16 / 64 MiB lost 70-300 64 KiB datagrams per GiB (retransmitted, and
//!   read as congestion) where 4 / 6 MiB lost none. So the connection window
//!   stays below the socket buffer: flow control, not loss, paces the
//!   client. 4 MiB still covers the bandwidth-delay product of 3 Gbit/s at
//!   10 ms, far beyond any shaped link the tests use.
//! - **UDP receive buffer: 4 MiB asked** (`SO_RCVBUF`; the kernel clamps
//!   it to `net.core.rmem_max` and doubles it: 8 MiB on the machine
//!   measured, 416 KiB where `rmem_max` is left at Linux's default, and then
//!   bursts are lost and retransmitted, slower but correct). With the
//!   default ~208 KiB (a handful of 64 KiB datagrams) the same upload lost
//!   1,000-6,000 datagrams per GiB.
//! - **Max concurrent bidirectional streams**:
//!   [`SinkConfig::h3_max_concurrent_streams`](crate::SinkConfig::h3_max_concurrent_streams),
//!   default 100 (the usual HTTP/3 server default, and the h2 limit clients
//!   are used to).
//! - **Max idle timeout 30 s**: a client that keeps a connection between
//!   uploads, or a test that pauses, does not find it gone; a vanished
//!   client is forgotten after half a minute.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use h3::error::Code;
use http::header::{HeaderValue, CONTENT_LENGTH};
use http::{Method, Request, Response};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use quinn::crypto::rustls::QuicServerConfig;
use quinn::{EndpointConfig, IdleTimeout, MtuDiscoveryConfig, TransportConfig, VarInt};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::body::{BoxError, ResponseBody};
use crate::service::{handle, Arrival, ConnCtx, Shared};
use crate::timing::{IoTimer, Stamp};
use crate::tls::{self, TlsMaterial};

/// Per-stream receive window (see the module docs).
pub(crate) const STREAM_RECEIVE_WINDOW: u32 = 4 << 20;
/// Per-connection receive window (see the module docs).
pub(crate) const CONNECTION_RECEIVE_WINDOW: u32 = 6 << 20;
/// Idle timeout of a QUIC connection.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// The first guess of the path's UDP payload size (QUIC's minimum).
pub(crate) const INITIAL_MTU: u16 = 1200;
/// How far MTU discovery searches: the largest UDP payload.
pub(crate) const MTU_UPPER_BOUND: u16 = 65527;
/// The largest UDP payload the sink accepts (QUIC's `max_udp_payload_size`
/// transport parameter, which bounds the client's MTU discovery): 65527, the
/// most UDP allows (quinn's default is 1472).
pub(crate) const MAX_UDP_PAYLOAD: u16 = 65527;
/// `SO_RCVBUF` asked for the endpoint's UDP socket.
pub(crate) const UDP_RECV_BUFFER: usize = 4 << 20;

/// How long a QUIC handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// After a GOAWAY to an idle connection, how long the client has to close
/// it by itself before the sink closes it.
const GOAWAY_GRACE: Duration = Duration::from_millis(500);
/// On shutdown, how long to wait for the connections' close to be sent.
const CLOSE_GRACE: Duration = Duration::from_millis(200);

/// The QUIC error code of every close the sink initiates: `H3_NO_ERROR`.
fn no_error() -> VarInt {
    VarInt::from_u32(0x100)
}

/// The transport settings of the module docs.
fn transport_config(max_streams: u32) -> TransportConfig {
    let mut t = TransportConfig::default();
    t.stream_receive_window(VarInt::from_u32(STREAM_RECEIVE_WINDOW))
        .receive_window(VarInt::from_u32(CONNECTION_RECEIVE_WINDOW))
        .max_concurrent_bidi_streams(VarInt::from_u32(max_streams))
        .max_idle_timeout(IdleTimeout::try_from(IDLE_TIMEOUT).ok())
        .initial_mtu(INITIAL_MTU)
        // One datagram per send: quinn would batch up to ten MTU-sized
        // segments into one GSO send, which the kernel refuses (EMSGSIZE,
        // dropped silently) once the MTU has grown past 6.5 KiB.
        .enable_segmentation_offload(false);
    let mut mtu = MtuDiscoveryConfig::default();
    mtu.upper_bound(MTU_UPPER_BOUND);
    t.mtu_discovery_config(Some(mtu));
    t
}

/// Binds the UDP socket at `addr` and makes the endpoint serving `h3` with
/// the sink's certificate.
pub(crate) fn bind(
    addr: SocketAddr,
    material: &TlsMaterial,
    max_streams: u32,
) -> io::Result<quinn::Endpoint> {
    let crypto = QuicServerConfig::try_from(tls::quic_config(material)?)
        .map_err(|e| io::Error::other(format!("QUIC TLS setup: {e}")))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    server.transport_config(Arc::new(transport_config(max_streams)));
    let socket = std::net::UdpSocket::bind(addr)?;
    // Best effort: the kernel clamps the size, and a smaller buffer only
    // costs speed.
    if let Ok(state) = quinn::udp::UdpSocketState::new((&socket).into()) {
        let _ = state.set_recv_buffer_size((&socket).into(), UDP_RECV_BUFFER);
    }
    let mut endpoint_config = EndpointConfig::default();
    endpoint_config
        .max_udp_payload_size(MAX_UDP_PAYLOAD)
        .map_err(|e| io::Error::other(format!("QUIC endpoint setup: {e}")))?;
    quinn::Endpoint::new(
        endpoint_config,
        Some(server),
        socket,
        Arc::new(quinn::TokioRuntime),
    )
}

/// Everything the QUIC accept loop needs.
pub(crate) struct H3Server {
    pub endpoint: quinn::Endpoint,
    pub shared: Arc<Shared>,
    pub shutdown: CancellationToken,
    pub idle: watch::Receiver<u64>,
}

impl H3Server {
    /// Accepts until `shutdown`; then closes the endpoint (every connection
    /// with it), aborts the connection tasks and gives the closes a moment
    /// to be sent.
    pub async fn run(self) {
        let mut conns = JoinSet::new();
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                incoming = self.endpoint.accept() => match incoming {
                    Some(incoming) => {
                        let accepted = Stamp::now();
                        let stats = &self.shared.stats;
                        let id = stats.connection_accepted();
                        let timer = Arc::new(IoTimer::new(id, accepted));
                        stats.add_connection_timer(timer.clone());
                        let peer = incoming.remote_address();
                        let ctx = Arc::new(ConnCtx::new(id, peer, self.shared.clone(), timer));
                        let token = self.shutdown.child_token();
                        conns.spawn(serve_connection(incoming, ctx, token, self.idle.clone()));
                    }
                    // The endpoint was closed.
                    None => break,
                },
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
        self.endpoint.close(no_error(), b"sink shut down");
        conns.shutdown().await;
        let _ = tokio::time::timeout(CLOSE_GRACE, self.endpoint.wait_idle()).await;
    }
}

/// One QUIC connection: the handshake, then HTTP/3 requests, each in a task
/// of its own.
async fn serve_connection(
    incoming: quinn::Incoming,
    ctx: Arc<ConnCtx>,
    token: CancellationToken,
    mut idle: watch::Receiver<u64>,
) {
    let connecting = match incoming.accept() {
        Ok(c) => c,
        Err(_) => return,
    };
    let conn = tokio::select! {
        r = tokio::time::timeout(HANDSHAKE_TIMEOUT, connecting) => match r {
            Ok(Ok(conn)) => conn,
            _ => return,
        },
        _ = token.cancelled() => return,
    };
    ctx.io.tls_done();
    let builder = h3::server::builder();
    let built = tokio::select! {
        r = builder.build::<_, Bytes>(h3_quinn::Connection::new(conn.clone())) => r,
        _ = token.cancelled() => return,
        _ = ctx.abort.cancelled() => return,
    };
    let Ok(mut h3_conn) = built else {
        return;
    };
    let mut requests = JoinSet::new();
    idle.mark_unchanged();
    let mut watching_idle = true;
    let mut goaway_deadline: Option<tokio::time::Instant> = None;
    let graceful = loop {
        let goaway_over = async {
            match goaway_deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            accepted = h3_conn.accept() => match accepted {
                Ok(Some(resolver)) => {
                    requests.spawn(serve_request(resolver, ctx.clone()));
                }
                // The client said GOAWAY and every request is done.
                Ok(None) => break true,
                // The connection is gone (closed by the client, timed out,
                // or a protocol error h3 already closed it for).
                Err(_) => break false,
            },
            // The `close` knob: the whole connection, at once.
            _ = ctx.abort.cancelled() => {
                conn.close(no_error(), b"sink: close knob");
                break false;
            }
            _ = token.cancelled() => {
                conn.close(no_error(), b"sink shut down");
                break false;
            }
            changed = idle.changed(), if watching_idle && goaway_deadline.is_none() => match changed {
                Ok(()) => {
                    if ctx.in_flight() == 0 {
                        // GOAWAY first (no new requests), then close unless
                        // the client does so itself.
                        let _ = tokio::time::timeout(GOAWAY_GRACE, h3_conn.shutdown(0)).await;
                        goaway_deadline = Some(tokio::time::Instant::now() + GOAWAY_GRACE);
                    }
                }
                Err(_) => watching_idle = false,
            },
            _ = goaway_over => {
                conn.close(no_error(), b"sink: idle connection closed");
                break false;
            }
            Some(_) = requests.join_next(), if !requests.is_empty() => {}
        }
    };
    if graceful {
        // Let the last responses finish being handed to quinn.
        loop {
            tokio::select! {
                next = requests.join_next() => if next.is_none() { break },
                _ = token.cancelled() => break,
            }
        }
    }
    requests.shutdown().await;
    // Dropping `h3_conn` closes the connection (H3_NO_ERROR) if it is not
    // closed yet.
}

/// The sending half of a request stream.
type SendHalf = h3::server::RequestStream<h3_quinn::SendStream<Bytes>, Bytes>;
/// The receiving half of a request stream.
type RecvHalf = h3::server::RequestStream<h3_quinn::RecvStream, Bytes>;

/// One request stream: head, handler, response.
async fn serve_request(
    resolver: h3::server::RequestResolver<h3_quinn::Connection, Bytes>,
    ctx: Arc<ConnCtx>,
) {
    let Ok((req, stream)) = resolver.resolve_request().await else {
        return;
    };
    let head = Stamp::now();
    let (mut send, recv) = stream.split();
    let head_only = req.method() == Method::HEAD;
    let req: Request<_> = req.map(|()| H3Body::new(recv).boxed_unsync());
    match handle(req, ctx.clone(), Arrival::H3 { head }).await {
        Ok(res) => {
            if send_response(&mut send, res, head_only).await.is_err() {
                send.stop_stream(Code::H3_INTERNAL_ERROR);
            }
        }
        // `close`: the connection task closes the whole connection.
        Err(_) if ctx.abort.is_cancelled() => {}
        // Reading the body failed (e.g. the client reset the stream): no
        // answer, as hyper resets an h2 stream whose service failed.
        Err(_) => send.stop_stream(Code::H3_INTERNAL_ERROR),
    }
}

/// Sends the handler's response: the head (with a `content-length` when the
/// body's size is known, as hyper adds on HTTP/1.1 and h2), the body as it
/// comes (trickled bodies arrive in pieces), then the end of the stream.
async fn send_response(
    send: &mut SendHalf,
    res: Response<ResponseBody>,
    head_only: bool,
) -> Result<(), h3::error::StreamError> {
    let (mut parts, mut body) = res.into_parts();
    if let Some(n) = body.size_hint().exact() {
        parts
            .headers
            .entry(CONTENT_LENGTH)
            .or_insert_with(|| HeaderValue::from(n));
    }
    send.send_response(Response::from_parts(parts, ())).await?;
    if !head_only {
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame;
            if let Ok(data) = frame.into_data() {
                if !data.is_empty() {
                    send.send_data(data).await?;
                }
            }
        }
    }
    send.finish().await
}

/// The body of an h3 request: the request stream's receiving half, as an
/// [`http_body::Body`] for the shared handler.
///
/// Dropped before its end (an answer given before the body was read, a
/// refused knob, `close_after`), the stream is dropped with it, and quinn
/// asks the client to stop sending (`STOP_SENDING`, code 0, which RFC 9114
/// §9 has a peer treat as `H3_NO_ERROR`: §4.1's "complete response to an
/// incomplete request"). It is not stopped explicitly with `H3_NO_ERROR`:
/// h3-quinn panics when asked to stop a stream while a read of it is in
/// flight inside h3's buffering, which the body cannot see from outside.
pub(crate) struct H3Body {
    stream: RecvHalf,
    ended: bool,
}

impl H3Body {
    fn new(stream: RecvHalf) -> Self {
        H3Body {
            stream,
            ended: false,
        }
    }
}

impl Body for H3Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match ready!(self.stream.poll_recv_data(cx)) {
            Ok(Some(mut buf)) => {
                // h3-quinn's chunks are `Bytes`: this takes them, no copy.
                let data = buf.copy_to_bytes(buf.remaining());
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Ok(None) => {
                self.ended = true;
                Poll::Ready(None)
            }
            Err(e) => {
                self.ended = true;
                Poll::Ready(Some(Err(Box::new(e))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }
}
