//! HTTP/3 over QUIC for the send loop (`enableQuic`): connections made within the fallback
//! delay (or the reason to go over TCP instead, remembered per origin), a request sender per
//! stream, the exchange in `h3_stream`.

use std::sync::Arc;
use std::time::Instant;

use super::connection;
use super::context::Context;
use super::multiplexed::{MuxProtocol, StreamInput};
use super::outcome::{Failure, Response};
use crate::error::UploadError;
use crate::measure::{ConnectionInfo, Protocol, UploadRecord};
use crate::transport::mux_pool::MuxPool;
use crate::transport::quic_conn::{connection_info, H3Sender, QuicConnection, QuicSettings};
use crate::transport::Origin;

/// HTTP/3 over QUIC.
pub(crate) struct H3;

impl MuxProtocol for H3 {
    type Conn = QuicConnection;
    type Stream = H3Sender;
    /// Why QUIC cannot carry the hop now (the profile's `quicFallback`); it goes over TCP.
    type Declined = String;
    const PROTOCOL: Protocol = Protocol::Quic;
    const VERSION: http::Version = http::Version::HTTP_3;

    fn pool(ctx: &Context) -> &MuxPool<QuicConnection> {
        &ctx.quic.conns
    }

    /// Resolve (recorded), connect over QUIC within the fallback delay, and start HTTP/3. The
    /// inner `Err` is the reason to fall back to TCP (and the origin is then remembered as
    /// broken); the outer one fails the upload (a name that does not resolve fails over TCP just
    /// the same).
    async fn connect(
        ctx: &Context,
        origin: &Origin,
        record: &mut UploadRecord,
    ) -> Result<Result<Arc<QuicConnection>, String>, UploadError> {
        if let Some(why) = ctx.quic.broken(origin) {
            return Ok(Err(why));
        }
        let addrs = connection::resolve(ctx, origin, record).await?;
        let settings = QuicSettings {
            send_window: ctx.config.quic_send_window,
            max_udp_payload: ctx.config.quic_max_udp_payload,
            idle_timeout: ctx.config.pool_idle_timeout,
        };
        let started = Instant::now();
        let connected = ctx
            .quic
            .connect(
                origin,
                &addrs,
                &ctx.tls_h3,
                settings,
                ctx.config.quic_fallback_after,
            )
            .await;
        let outcome = match connected {
            Err(why) => Err(format!(
                "{why}; fell back to TCP after {:.1} ms",
                started.elapsed().as_secs_f64() * 1000.0
            )),
            Ok(connected) => {
                record.connected(&connected.stamps);
                start_h3(ctx, connected).await
            }
        };
        match &outcome {
            Ok(_) => ctx.quic.mark_working(origin),
            Err(why) => ctx
                .quic
                .mark_broken(origin, ctx.config.quic_broken_for, why),
        }
        Ok(outcome)
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
        super::h3_stream::exchange(conn, sender, input, ctx.config.quic_zero_copy).await
    }
}

/// HTTP/3 on a completed QUIC handshake, if the server agreed to `h3` by ALPN.
async fn start_h3(
    ctx: &Context,
    connected: crate::transport::quic_conn::QuicConnected,
) -> Result<Arc<QuicConnection>, String> {
    let qconn = connected.conn;
    let peer = connected.peer;
    let alpn = qconn
        .handshake_data()
        .and_then(|d| d.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|d| d.protocol);
    if alpn.as_deref() != Some(b"h3".as_slice()) {
        qconn.close(0u8.into(), b"no h3");
        return Err(format!(
            "the QUIC server at {peer} did not agree to h3 by ALPN; fell back to TCP"
        ));
    }
    let info = connection_info(ctx.next_connection_id(), peer, connected.attempts);
    QuicConnection::start(qconn, info)
        .await
        .map_err(|e| format!("{}; fell back to TCP", e.detail()))
}
