//! HTTP/3 over QUIC for the send loop (`enableQuic`): QUIC connections (Happy Eyeballs over the
//! origin's addresses, HTTP/3 started on the completed handshake), made by the race against TCP
//! (`race`) or, when a pooled connection failed under a stream, by the send loop itself; a
//! request sender per stream, the exchange in `h3_stream`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::connection;
use super::context::Context;
use super::multiplexed::{MuxProtocol, StreamInput};
use super::outcome::{Failure, Response};
use super::redirect::Hop;
use crate::error::UploadError;
use crate::measure::{ConnectStamps, ConnectionInfo, Protocol, UploadRecord};
use crate::transport::mux_pool::MuxPool;
use crate::transport::quic_conn::{
    connection_info, Attempt, H3Sender, OnAnswer, QuicConnected, QuicConnection, QuicSettings,
};
use crate::transport::Origin;

/// HTTP/3 over QUIC.
pub(crate) struct H3;

impl MuxProtocol for H3 {
    type Key = Origin;
    type Conn = QuicConnection;
    type Stream = H3Sender;
    /// Why QUIC cannot carry the hop now (the profile's `quicFallback`); it goes over TCP.
    type Declined = String;
    const PROTOCOL: Protocol = Protocol::Quic;
    const VERSION: http::Version = http::Version::HTTP_3;

    fn pool(ctx: &Context) -> &MuxPool<Origin, QuicConnection> {
        &ctx.quic.conns
    }

    /// QUIC never goes through a proxy: the origin itself.
    fn key(hop: &Hop) -> Origin {
        hop.target.origin.clone()
    }

    /// A new connection when the hop's pooled or raced one could not take its stream: resolve
    /// (recorded), connect over QUIC within `quic_fallback_after`, and start HTTP/3, without a
    /// race (the hop already chose QUIC). The inner `Err` is the reason to go over TCP after all
    /// (and the origin is then remembered as broken); the outer one fails the upload.
    async fn connect(
        ctx: &Context,
        origin: &Origin,
        record: &mut UploadRecord,
    ) -> Result<Result<Arc<QuicConnection>, String>, UploadError> {
        if let Some(why) = ctx.quic.broken(origin) {
            return Ok(Err(why));
        }
        let addrs = connection::resolve(ctx, origin, record).await?;
        let started = Instant::now();
        let within = ctx.config.quic_fallback_after;
        match connect_h3(ctx, origin, &addrs, within, Arc::new(|_| {})).await {
            Ok((conn, stamps)) => {
                record.connected(&stamps);
                ctx.quic.mark_working(origin);
                Ok(Ok(conn))
            }
            Err(why) => {
                ctx.quic
                    .mark_broken(origin, ctx.config.quic_broken_for, &why);
                Ok(Err(format!(
                    "{why}; fell back to TCP after {:.1} ms",
                    started.elapsed().as_secs_f64() * 1000.0
                )))
            }
        }
    }

    fn info(conn: &QuicConnection) -> &Arc<ConnectionInfo> {
        &conn.info
    }

    async fn open_stream(conn: &QuicConnection) -> Result<(H3Sender, u64), Failure> {
        Ok(conn.sender())
    }

    async fn exchange(
        ctx: &Context,
        conn: &QuicConnection,
        sender: H3Sender,
        input: StreamInput<'_>,
    ) -> Result<Response, Failure> {
        let sending = super::h3_stream::BodySending {
            zero_copy: ctx.config.quic_zero_copy,
            budget_ceiling: ctx.config.quic_send_window,
        };
        super::h3_stream::exchange(conn, sender, input, sending).await
    }
}

/// Connect over QUIC to the first of `addrs` that completes the handshake (Happy Eyeballs,
/// `within` in all) and start HTTP/3 on it: the connection and its connect stamps, or why not.
async fn connect_h3(
    ctx: &Context,
    origin: &Origin,
    addrs: &[SocketAddr],
    within: Duration,
    on_answer: OnAnswer,
) -> Result<(Arc<QuicConnection>, ConnectStamps), String> {
    let settings = QuicSettings {
        send_window: ctx.config.quic_send_window,
        max_udp_payload: ctx.config.quic_max_udp_payload,
        idle_timeout: ctx.config.pool_idle_timeout,
    };
    let connected = ctx
        .quic
        .connect(
            origin,
            addrs,
            &ctx.tls_h3,
            settings,
            within,
            ctx.config.happy_eyeballs_delay,
            on_answer,
        )
        .await?;
    let stamps = connected.stamps;
    Ok((start_h3(ctx, connected).await?, stamps))
}

/// Run the QUIC side of a race for `origin` in the background, for `within` at most: the
/// attempt the caller was told to start by `QuicPool::join_or_start`. It runs to its end
/// whether or not the uploads watching it are still there: a connection it makes is pooled (and
/// the origin marked working) even after TCP won, a failure marks the origin broken (once per
/// attempt).
pub(crate) fn spawn_attempt(
    ctx: Arc<Context>,
    origin: Origin,
    addrs: Vec<SocketAddr>,
    attempt: Arc<Attempt>,
    within: Duration,
) {
    tokio::spawn(async move {
        // One connect per origin at a time: also the send loop's own (H3::connect).
        let lock = ctx.quic.conns.connect_lock(&origin);
        let connecting = lock.lock_owned().await;
        let result = if let Some(conn) = ctx.quic.conns.get(&origin) {
            Ok((conn, None))
        } else if let Some(why) = ctx.quic.broken(&origin) {
            Err(why)
        } else {
            attempt.update(|s| s.started = Some(Instant::now()));
            let watched = attempt.clone();
            let on_answer: OnAnswer = Arc::new(move |at| {
                watched.update(|s| {
                    s.answered.get_or_insert(at);
                })
            });
            match connect_h3(&ctx, &origin, &addrs, within, on_answer).await {
                Ok((conn, stamps)) => {
                    ctx.quic.conns.insert(origin.clone(), conn.clone());
                    ctx.quic.mark_working(&origin);
                    ctx.quic.note_rtt(&origin, conn.conn.rtt());
                    Ok((conn, Some(stamps)))
                }
                Err(why) => {
                    if attempt.claim_broken_mark() {
                        ctx.quic
                            .mark_broken(&origin, ctx.config.quic_broken_for, &why);
                    }
                    Err(why)
                }
            }
        };
        drop(connecting);
        ctx.quic.attempt_done(&origin, &attempt);
        attempt.update(|s| {
            s.end = Some(Instant::now());
            s.result = Some(result);
        });
    });
}

/// HTTP/3 on a completed QUIC handshake, if the server agreed to `h3` by ALPN.
async fn start_h3(ctx: &Context, connected: QuicConnected) -> Result<Arc<QuicConnection>, String> {
    let qconn = connected.conn;
    let peer = connected.peer;
    let alpn = qconn
        .handshake_data()
        .and_then(|d| d.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|d| d.protocol);
    if alpn.as_deref() != Some(b"h3".as_slice()) {
        qconn.close(0u8.into(), b"no h3");
        return Err(format!(
            "the QUIC server at {peer} did not agree to h3 by ALPN"
        ));
    }
    let info = connection_info(
        ctx.next_connection_id(),
        peer,
        connected.local,
        connected.attempts,
        connected.cipher_suite,
    );
    QuicConnection::start(qconn, info, connected.ack_log)
        .await
        .map_err(|e| e.detail().to_string())
}
