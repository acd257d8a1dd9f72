//! The QUIC leg of an upload (`enableQuic`): HTTP/3 on the origin's shared QUIC connection, made
//! if there is none, or the reason to go over TCP instead.

use std::time::Instant;

use super::h3_exchange::h3_exchange;
use super::{
    record_connection, reset_connection_phases, stream_input, ExchangeOutput, Hop, Prepared,
};
use crate::client::ClientInner;
use crate::error::UploadError;
use crate::profile::{DnsSource, ExchangeFacts, Protocol, Timeline};
use crate::task::TaskShared;
use crate::transport::quic_pool::{connection_info, QuicConnection, QuicSettings};

/// Send the hop as an HTTP/3 request. `Ok(None)`: QUIC is not possible for it now, and
/// `facts.quic_fallback` says why; the caller goes over TCP.
pub(super) async fn send_h3(
    client: &ClientInner,
    prepared: &mut Prepared,
    hop: Hop,
    task: &TaskShared,
    timeline: &mut Timeline,
    facts: &mut ExchangeFacts,
) -> Result<Option<ExchangeOutput>, UploadError> {
    let origin = prepared.target.origin.clone();
    if !origin.tls {
        facts.quic_fallback =
            Some("QUIC needs an https:// URL (it always runs TLS); plain TCP instead".into());
        return Ok(None);
    }
    let mut retried = false;
    loop {
        let (conn, reused) = match client.quic.get(&origin) {
            Some(conn) => (conn, true),
            None => {
                let lock = client.quic.connect_lock(&origin);
                let _connecting = lock.lock().await;
                match client.quic.get(&origin) {
                    Some(conn) => (conn, true),
                    None => {
                        if let Some(why) = client.quic.broken(&origin) {
                            facts.quic_fallback = Some(why);
                            return Ok(None);
                        }
                        match connect(client, &origin, timeline, facts).await? {
                            Ok(conn) => (conn, false),
                            Err(why) => {
                                client.quic.mark_broken(
                                    &origin,
                                    client.config.quic_broken_for,
                                    &why,
                                );
                                facts.quic_fallback = Some(why);
                                return Ok(None);
                            }
                        }
                    }
                }
            }
        };
        if reused {
            facts.dns_source = DnsSource::None;
        }
        facts.protocol = Protocol::Quic;
        record_connection(facts, &conn.info, reused);
        facts.stale_connection_retries = u32::from(retried);
        let (sender, before) = conn.sender();
        facts.connection_requests_before = before;
        let input = stream_input(client, prepared, hop, task, http::Version::HTTP_3)?;
        let zero_copy = client.config.quic_zero_copy;
        match h3_exchange(&conn, sender, input, zero_copy, timeline, facts).await {
            Ok(out) => return Ok(Some(out)),
            Err(failure) if failure.retryable && !retried => {
                // Rejected unprocessed, or the connection is going away: once more, on a
                // connection that takes it.
                retried = true;
                reset_connection_phases(timeline);
            }
            Err(failure) => return Err(failure.error),
        }
    }
}

/// Resolve (timed), connect over QUIC within the fallback delay, and start HTTP/3. The inner
/// `Err` is the reason to fall back to TCP; the outer one fails the upload (a name that does not
/// resolve fails over TCP just the same).
async fn connect(
    client: &ClientInner,
    origin: &crate::transport::Origin,
    timeline: &mut Timeline,
    facts: &mut ExchangeFacts,
) -> Result<Result<std::sync::Arc<QuicConnection>, String>, UploadError> {
    let addrs = super::resolve(client, origin, timeline, facts).await?;
    let settings = QuicSettings {
        send_window: client.config.quic_send_window,
        max_udp_payload: client.config.quic_max_udp_payload,
        idle_timeout: client.config.pool_idle_timeout,
    };
    let started = Instant::now();
    let connected = client
        .quic
        .connect(
            origin,
            &addrs,
            &client.tls_h3,
            settings,
            client.config.quic_fallback_after,
            timeline,
        )
        .await;
    let (qconn, peer, attempts) = match connected {
        Ok(c) => c,
        Err(why) => {
            return Ok(Err(format!(
                "{why}; fell back to TCP after {:.1} ms",
                started.elapsed().as_secs_f64() * 1000.0
            )))
        }
    };
    let alpn = qconn
        .handshake_data()
        .and_then(|d| d.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|d| d.protocol);
    if alpn.as_deref() != Some(b"h3".as_slice()) {
        qconn.close(0u8.into(), b"no h3");
        return Ok(Err(format!(
            "the QUIC server at {peer} did not agree to h3 by ALPN; fell back to TCP"
        )));
    }
    let info = connection_info(client.next_connection_id(), peer, attempts);
    let conn = match QuicConnection::start(qconn, info).await {
        Ok(conn) => conn,
        Err(e) => return Ok(Err(format!("{}; fell back to TCP", e.detail()))),
    };
    client.quic.insert(origin.clone(), conn.clone());
    client.quic.mark_working(origin);
    Ok(Ok(conn))
}
