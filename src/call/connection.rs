//! Resolving an origin and opening a TCP (and TLS) connection to it, with what each step
//! measured folded into the upload's record. Shared by HTTP/1.1, HTTP/2 and (for resolution)
//! HTTP/3.

use std::net::SocketAddr;
use std::sync::Arc;

use super::context::Context;
use crate::error::UploadError;
use crate::measure::UploadRecord;
use crate::transport::{connect, ConnectParams, Connection, Origin};

/// Resolve `origin`'s host (recorded) into the addresses to connect to.
pub(crate) async fn resolve(
    ctx: &Context,
    origin: &Origin,
    record: &mut UploadRecord,
) -> Result<Vec<SocketAddr>, UploadError> {
    let resolved = ctx
        .resolver
        .resolve(&origin.host, &ctx.tls, &ctx.config.user_agent)
        .await?;
    record.resolved(&resolved.stamps, resolved.source);
    Ok(resolved
        .ips
        .iter()
        .map(|ip| SocketAddr::new(*ip, origin.port))
        .collect())
}

/// Resolve and open a new connection to `origin` with the TLS configuration `tls` (recorded).
pub(crate) async fn open(
    ctx: &Context,
    origin: &Origin,
    tls: &Arc<rustls::ClientConfig>,
    record: &mut UploadRecord,
) -> Result<Connection, UploadError> {
    let addrs = resolve(ctx, origin, record).await?;
    let (conn, stamps) =
        connect(origin, &addrs, tls, ctx.next_connection_id(), params(ctx)).await?;
    record.connected(&stamps);
    Ok(conn)
}

/// How this client opens TCP connections.
pub(crate) fn params(ctx: &Context) -> ConnectParams {
    ConnectParams {
        attempt_delay: ctx.config.happy_eyeballs_delay,
        notsent_lowat: ctx.config.notsent_lowat,
    }
}
