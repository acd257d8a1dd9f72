//! HTTP/2 for the send loop: connections made by the usual TCP (and TLS with ALPN `h2`)
//! connect, streams opened under the server's stream limit, the exchange in `h2_stream`.

use std::sync::Arc;
use std::time::Instant;

use super::connection;
use super::context::Context;
use super::h2_stream::H2Stream;
use super::multiplexed::{MuxProtocol, StreamInput};
use super::outcome::{Failure, Response};
use super::redirect::Hop;
use crate::error::{ErrorKind, UploadError};
use crate::measure::{ConnectionInfo, Protocol, UploadRecord};
use crate::transport::h2_conn::{connection_failure, H2Connection, H2Settings};
use crate::transport::mux_pool::MuxPool;
use crate::transport::route::Route;
use crate::transport::{Connection, Origin};

/// HTTP/2 (h2 over TLS by ALPN, or h2c with prior knowledge).
pub(crate) struct H2;

impl MuxProtocol for H2 {
    type Key = Route;
    type Conn = H2Connection;
    type Stream = H2Stream;
    /// The server chose HTTP/1.1 by ALPN: the fresh connection, for an HTTP/1.1 exchange.
    type Declined = Connection;
    const PROTOCOL: Protocol = Protocol::H2;
    const VERSION: http::Version = http::Version::HTTP_2;

    fn pool(ctx: &Context) -> &MuxPool<Route, H2Connection> {
        &ctx.h2.conns
    }

    /// Direct, or through a proxy's tunnel (never in absolute form: `tcp::wants_h2`).
    fn key(hop: &Hop) -> Route {
        hop.route.clone()
    }

    async fn connect(
        ctx: &Context,
        route: &Route,
        record: &mut UploadRecord,
    ) -> Result<Result<Arc<H2Connection>, Connection>, UploadError> {
        let origin = route_origin(route)?;
        let conn = connection::open(ctx, route, tls_config(ctx, origin), record).await?;
        start(ctx, origin, conn).await
    }

    fn info(conn: &H2Connection) -> &Arc<ConnectionInfo> {
        &conn.info
    }

    async fn open_stream(conn: &H2Connection) -> Result<(H2Stream, u64), Failure> {
        // A stream slot: the server's SETTINGS_MAX_CONCURRENT_STREAMS may make this wait, which
        // is queue time.
        match conn.ready().await {
            Ok((send, slot, before)) => {
                let ready_at = Instant::now();
                Ok((
                    H2Stream {
                        send,
                        slot,
                        ready_at,
                    },
                    before,
                ))
            }
            Err(e) => {
                let reason = conn.close_reason().unwrap_or_else(|| e.to_string());
                Err(Failure {
                    error: UploadError::new(
                        ErrorKind::ConnectionClosed,
                        connection_failure(&conn.book, reason),
                    ),
                    retryable: true,
                })
            }
        }
    }

    async fn exchange(
        _ctx: &Context,
        conn: &H2Connection,
        stream: H2Stream,
        input: StreamInput<'_>,
    ) -> Result<Response, Failure> {
        super::h2_stream::exchange(conn, stream, input).await
    }
}

/// The origin at the end of an HTTP/2 route (absolute-form requests to a proxy are HTTP/1.1,
/// and never get here).
fn route_origin(route: &Route) -> Result<&Origin, UploadError> {
    match route {
        Route::Direct(origin) | Route::Tunnel { origin, .. } => Ok(origin),
        Route::Forward { proxy } => Err(UploadError::new(
            ErrorKind::InvalidOptions,
            format!("HTTP/2 cannot go in absolute form to the HTTP proxy {proxy}"),
        )),
    }
}

/// The TLS configuration of a new HTTP/2 connection to `origin` (ALPN `h2`; none for h2c).
pub(crate) fn tls_config<'c>(ctx: &'c Context, origin: &Origin) -> &'c Arc<rustls::ClientConfig> {
    if origin.tls {
        &ctx.tls_h2
    } else {
        &ctx.tls
    }
}

/// HTTP/2 on a connection just opened for it: the handshake, or the connection back (`Err`)
/// when its server chose HTTP/1.1 by ALPN (remembered for the origin).
pub(crate) async fn start(
    ctx: &Context,
    origin: &Origin,
    conn: Connection,
) -> Result<Result<Arc<H2Connection>, Connection>, UploadError> {
    if origin.tls && conn.info.alpn != "h2" {
        ctx.h2.mark_http1_only(origin);
        return Ok(Err(conn));
    }
    let settings = H2Settings {
        initial_window_size: ctx.config.h2_initial_window_size,
        initial_connection_window_size: ctx.config.h2_initial_connection_window_size,
        max_send_buffer_size: ctx.config.h2_max_send_buffer_size,
        tls_buffer_limit: ctx.config.tls_buffer_limit,
        track_acks: ctx.config.track_acknowledgements,
    };
    Ok(Ok(H2Connection::handshake(conn, settings).await?))
}
