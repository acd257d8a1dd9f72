//! Resolving a route and opening a TCP (and TLS) connection along it, directly or through a
//! proxy, with what each step measured folded into the upload's record. Shared by HTTP/1.1,
//! HTTP/2 and (for resolution) HTTP/3.
//!
//! Through a proxy, the name resolved (and recorded as `domainLookUp*`) is the proxy's; with
//! `socks4://` and `socks5://` the origin's name is resolved here too, right after, and the
//! DNS phase spans both (`dnsSource` is the origin's when the proxy is an IP literal). Every other kind of proxy resolves the origin's name itself
//! (`profileExtensions.originResolvedBy`).

use std::net::SocketAddr;
use std::sync::Arc;

use super::context::Context;
use crate::error::{ErrorKind, UploadError};
use crate::measure::{DnsSource, ResolveStamps, UploadRecord};
use crate::proxy::{Proxy, ProxyScheme};
use crate::transport::proxy_tunnel::{self, ProxyPlan, ProxyTarget};
use crate::transport::route::Route;
use crate::transport::{connect, ConnectParams, Connection, Origin};

/// Resolve `origin`'s host (recorded) into the addresses to connect to.
pub(crate) async fn resolve(
    ctx: &Context,
    origin: &Origin,
    record: &mut UploadRecord,
) -> Result<Vec<SocketAddr>, UploadError> {
    let (addrs, stamps, source) = lookup(ctx, &origin.host, origin.port).await?;
    record.resolved(&stamps, source);
    Ok(addrs)
}

/// Resolve `host` (not recorded): its addresses at `port`, the stamps, and which step answered.
async fn lookup(
    ctx: &Context,
    host: &str,
    port: u16,
) -> Result<(Vec<SocketAddr>, ResolveStamps, DnsSource), UploadError> {
    let resolved = ctx
        .resolver
        .resolve(host, &ctx.tls, &ctx.config.user_agent)
        .await?;
    let addrs = resolved
        .ips
        .iter()
        .map(|ip| SocketAddr::new(*ip, port))
        .collect();
    Ok((addrs, resolved.stamps, resolved.source))
}

/// Resolve and open a new connection along `route`, with the TLS configuration `tls` for the
/// origin (recorded).
pub(crate) async fn open(
    ctx: &Context,
    route: &Route,
    tls: &Arc<rustls::ClientConfig>,
    record: &mut UploadRecord,
) -> Result<Connection, UploadError> {
    let (proxy, target) = match route {
        Route::Direct(origin) => {
            let addrs = resolve(ctx, origin, record).await?;
            let (conn, stamps) =
                connect(origin, &addrs, tls, ctx.next_connection_id(), params(ctx)).await?;
            record.connected(&stamps);
            return Ok(conn);
        }
        Route::Forward { proxy } => (proxy, None),
        Route::Tunnel { proxy, origin } => (proxy, Some(origin)),
    };
    let (proxy_addrs, mut stamps, mut source) = lookup(ctx, proxy.host(), proxy.port())
        .await
        .map_err(|e| proxy_tunnel::about_proxy(e, proxy))?;
    let target = match target {
        None => ProxyTarget::Forward,
        Some(origin) if proxy.scheme().proxy_resolves_origin() => ProxyTarget::Name(origin),
        Some(origin) => {
            let (addrs, origin_stamps, origin_source) =
                lookup(ctx, &origin.host, origin.port).await?;
            stamps = spanning(stamps, origin_stamps);
            if source == DnsSource::Literal {
                // The proxy is an IP literal: the lookup made was the origin's.
                source = origin_source;
            }
            let addr = pick_origin_address(proxy, origin, &addrs)?;
            ProxyTarget::Addr(origin, addr)
        }
    };
    record.resolved(&stamps, source);
    let plan = ProxyPlan {
        proxy,
        target,
        proxy_addrs: &proxy_addrs,
        proxy_tls: &ctx.tls,
        origin_tls: tls,
        user_agent: &ctx.config.user_agent,
    };
    let (conn, stamps) = proxy_tunnel::connect(plan, ctx.next_connection_id(), params(ctx)).await?;
    record.connected(&stamps);
    Ok(conn)
}

/// One DNS phase over two lookups made one after the other (the proxy's name, then the
/// origin's): from the first's start to the last's end.
fn spanning(first: ResolveStamps, then: ResolveStamps) -> ResolveStamps {
    ResolveStamps {
        domain_look_up_start: first.domain_look_up_start.or(then.domain_look_up_start),
        domain_look_up_end: then.domain_look_up_end.or(first.domain_look_up_end),
        http_dns_domain_look_up_start: first
            .http_dns_domain_look_up_start
            .or(then.http_dns_domain_look_up_start),
        http_dns_domain_look_up_end: then
            .http_dns_domain_look_up_end
            .or(first.http_dns_domain_look_up_end),
    }
}

/// The origin address a `socks4://` or `socks5://` proxy is asked to connect to: the first the
/// resolver gave (SOCKS4 has room for IPv4 only).
fn pick_origin_address(
    proxy: &Proxy,
    origin: &Origin,
    addrs: &[SocketAddr],
) -> Result<SocketAddr, UploadError> {
    let usable = |a: &&SocketAddr| proxy.scheme() != ProxyScheme::Socks4 || a.is_ipv4();
    addrs.iter().find(usable).copied().ok_or_else(|| {
        UploadError::new(
            ErrorKind::Dns,
            format!(
                "{} has no IPv4 address, and {} (SOCKS4) carries IPv4 only; use socks4a:// \
                 or socks5h:// to let the proxy resolve it",
                origin.host,
                proxy.url()
            ),
        )
    })
}

/// How this client opens TCP connections.
pub(crate) fn params(ctx: &Context) -> ConnectParams {
    ConnectParams {
        attempt_delay: ctx.config.happy_eyeballs_delay,
        notsent_lowat: ctx.config.notsent_lowat,
    }
}
