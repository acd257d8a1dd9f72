//! One upload from start to finish: check, queue, connect (or reuse), exchange, result.
//!
//! This is where the [`Timeline`] lives. The whole call runs under the options' timeout and can
//! be aborted at any await point; either way the future is dropped, and with it the connection
//! (a connection is only ever returned to the pool by a clean, complete exchange).

mod acks;
mod body_pieces;
mod exchange;
mod file_source;
mod h2_exchange;
#[cfg(feature = "quic")]
mod h3_exchange;
mod prepare;
#[cfg(feature = "quic")]
mod quic;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::client::ClientInner;
use crate::error::{ErrorKind, UploadError};
use crate::headers::ResponseHeaders;
use crate::network_quality::QualityEstimate;
use crate::options::UploadOptions;
use crate::profile::{DnsSource, ExchangeFacts, Protocol, Timeline};
use crate::proto::multipart::BodyPlan;
use crate::success::UploadSuccess;
use crate::task::TaskShared;
use crate::transport::h2_pool::{H2Connection, H2Settings};
use crate::transport::{connect, ConnectParams, Connection, ConnectionInfo, Origin};

pub(crate) use acks::AckSource;
use exchange::{exchange, ExchangeInput, ExchangeOutput};
use file_source::FileSource;
use h2_exchange::h2_exchange;
use prepare::{Method, Prepared};

/// Run one upload under its timeout and abort signal.
pub(crate) async fn run(
    client: Arc<ClientInner>,
    options: UploadOptions,
    task: Arc<TaskShared>,
    invoke: Instant,
) -> Result<UploadSuccess, UploadError> {
    if task.is_aborted() {
        return Err(UploadError::abort());
    }
    let deadline = tokio::time::Instant::from_std(invoke + options.timeout_duration());
    tokio::select! {
        biased;
        _ = task.aborted() => Err(UploadError::abort()),
        r = tokio::time::timeout_at(deadline, upload(&client, &options, &task, invoke)) => {
            r.unwrap_or_else(|_| Err(UploadError::timeout()))
        }
    }
}

async fn upload(
    client: &ClientInner,
    options: &UploadOptions,
    task: &TaskShared,
    invoke: Instant,
) -> Result<UploadSuccess, UploadError> {
    let mut timeline = Timeline {
        invoke_start: Some(invoke),
        ..Timeline::default()
    };
    let mut prepared = prepare::prepare(options, &client.config).await?;

    timeline.queue_start = Some(Instant::now());
    let _permit = client
        .queue
        .acquire()
        .await
        .map_err(|_| UploadError::new(ErrorKind::ClientClosed, "the client was shut down"))?;
    timeline.queue_end = Some(Instant::now());

    let first_origin = prepared.target.origin.clone();
    let mut method = Method::Post;
    let mut redirects = 0u32;
    let mut left_origin = false;
    let mut redirect_start = None;
    let mut redirect_end = None;
    loop {
        timeline.fetch_start = Some(Instant::now());
        let mut facts = ExchangeFacts {
            tls: prepared.target.origin.tls,
            protocol: Protocol::Http11,
            ..ExchangeFacts::default()
        };
        let hop = Hop {
            method,
            drop_credentials: left_origin,
            profile: options.enable_profile,
            http2: options.enable_http2,
            quic: options.enable_quic,
        };
        let out = send_once(client, &mut prepared, hop, task, &mut timeline, &mut facts).await?;
        let location = out.head.header("location").map(str::to_string);
        let status = out.head.status;
        let redirect =
            matches!(status, 301 | 302 | 303 | 307 | 308) && client.config.max_redirects > 0;
        if let (true, Some(location)) = (redirect, location) {
            if redirects >= client.config.max_redirects {
                return Err(UploadError::new(
                    ErrorKind::TooManyRedirects,
                    format!("more than {} redirects", client.config.max_redirects),
                ));
            }
            redirects += 1;
            if redirect_start.is_none() {
                redirect_start = timeline.fetch_start;
            }
            redirect_end = timeline.response_end;
            prepared.follow(&location)?;
            if prepared.target.origin != first_origin {
                left_origin = true;
            }
            // 307/308 repeat the request, body and all (re-read from disk); 301/302/303 turn a
            // POST into a GET without a body, as browsers do.
            if matches!(status, 301..=303) {
                method = Method::Get;
            }
            reset_connection_phases(&mut timeline);
            continue;
        }
        if !left_origin {
            timeline.redirect_start = redirect_start;
            timeline.redirect_end = redirect_end;
        }
        let header = ResponseHeaders::new(out.head.headers);
        let (profile, profile_extensions) = if options.enable_profile {
            facts.redirects = redirects;
            facts.quality = observe_quality(client, &timeline, &facts);
            (
                Some(timeline.profile(&facts)),
                Some(timeline.extensions(&facts)),
            )
        } else {
            (None, None)
        };
        return Ok(UploadSuccess {
            data: String::from_utf8_lossy(&out.body).into_owned(),
            status_code: status,
            header,
            request_header: prepared.request_headers(method, left_origin, facts.expect_continue),
            profile,
            profile_extensions,
        });
    }
}

/// One request of the upload (the upload itself, or a redirect hop) on a pooled or new
/// connection; a pooled connection found dead before any response byte is replaced once.
/// What differs between the hops of one upload.
#[derive(Debug, Clone, Copy)]
struct Hop {
    method: Method,
    /// The chain has left the first origin: credentials stay behind.
    drop_credentials: bool,
    /// The profile is on: track acknowledgements and read TCP_INFO.
    profile: bool,
    /// `enableHttp2`: HTTP/2 where the server agrees (ALPN) or prior knowledge is configured.
    http2: bool,
    /// `enableQuic`: HTTP/3 over QUIC first, TCP if that fails.
    quic: bool,
}

async fn send_once(
    client: &ClientInner,
    prepared: &mut Prepared,
    hop: Hop,
    task: &TaskShared,
    timeline: &mut Timeline,
    facts: &mut ExchangeFacts,
) -> Result<ExchangeOutput, UploadError> {
    let Hop {
        method,
        drop_credentials,
        profile: track_acks,
        ..
    } = hop;
    let origin = prepared.target.origin.clone();
    if hop.quic {
        // HTTP/3 over QUIC when asked for; any reason not to (or a failed handshake) is recorded
        // and the hop goes over TCP.
        match try_quic(client, prepared, hop, task, timeline, facts).await? {
            Some(out) => return Ok(out),
            None => reset_connect_phases(timeline),
        }
    }
    // HTTP/2 when asked for and possible; a TLS server that answers ALPN with HTTP/1.1 hands
    // its fresh connection back for an HTTP/1.1 exchange.
    let mut fresh = None;
    if hop.http2
        && (origin.tls || client.config.http2_prior_knowledge)
        && !client.h2.is_http1_only(&origin)
    {
        match send_h2(client, prepared, hop, task, timeline, facts).await? {
            H2Result::Done(out) => return Ok(out),
            H2Result::Http1(conn) => fresh = Some(conn),
        }
    }
    let head = prepared.head(method, drop_credentials);
    let mut stale_retries = 0;
    loop {
        let pooled = if fresh.is_none() {
            client.pool.checkout(&origin)
        } else {
            None
        };
        let (mut conn, reused) = match fresh
            .take()
            .map(|c| (c, false))
            .or(pooled.map(|c| (c, true)))
        {
            Some((conn, true)) => {
                facts.dns_source = DnsSource::None;
                (conn, true)
            }
            Some((conn, false)) => (conn, false),
            None => (
                open_connection(client, &origin, &client.tls, timeline, facts).await?,
                false,
            ),
        };
        describe_connection(facts, &conn, reused);
        facts.stale_connection_retries = stale_retries;
        let with_body = method == Method::Post;
        let input = ExchangeInput {
            head: &head,
            body: with_body.then_some((&prepared.plan, &prepared.file)),
            expect_continue: (with_body && prepared.expect_continue)
                .then_some(client.config.expect_continue_timeout),
            max_response_body: client.config.max_response_body,
            chunk_size: client.config.chunk_size,
            zero_copy: client.config.zero_copy,
            tls_buffer_limit: client.config.tls_buffer_limit,
            task,
            track_acks,
        };
        match exchange(&mut conn.stream, input, timeline, facts).await {
            Ok(out) => {
                conn.requests += 1;
                if out.reusable {
                    client.pool.checkin(origin, conn);
                }
                return Ok(out);
            }
            Err(failure) => {
                let stale = reused
                    && stale_retries == 0
                    && !failure.response_seen
                    && matches!(
                        failure.error.kind(),
                        ErrorKind::ConnectionClosed | ErrorKind::Network
                    );
                if !stale {
                    return Err(failure.error);
                }
                // The pooled connection was closed by the server while idle: the request
                // cannot have been processed. Replace it, once, and time the new one.
                stale_retries += 1;
                reset_connection_phases(timeline);
            }
        }
    }
}

/// Feed this upload's observations to the client's network quality estimator and read the
/// estimates back (`docs/profile.md`, "Network quality", defines each observation):
///
/// - HTTP RTT: `100 Continue` − head written, when the server sent one (a pure round trip plus
///   the server's reaction, no body in between); otherwise `responseStart − requestEnd`, the
///   wait for the answer after the last body byte was written (server time included, as
///   Chromium's HTTP RTT includes it);
/// - transport RTT: the kernel's smoothed RTT when the response arrived (`rtt`);
/// - downstream throughput: response bodies of at least 32 KiB, over
///   `responseEnd − responseStart`.
fn observe_quality(client: &ClientInner, t: &Timeline, facts: &ExchangeFacts) -> QualityEstimate {
    let now = Instant::now();
    let mut q = client.quality.lock().unwrap_or_else(|p| p.into_inner());
    let http_rtt = match (
        t.request_head_end,
        t.first_interim,
        t.request_end,
        t.response_start,
    ) {
        (Some(head), Some(interim), _, _)
            if facts.first_interim_status == 100 && interim >= head =>
        {
            Some(interim - head)
        }
        (_, _, Some(end), Some(start)) if start >= end => Some(start - end),
        _ => None,
    };
    if let Some(rtt) = http_rtt {
        q.add_http_rtt(rtt.as_secs_f64() * 1000.0, now);
    }
    if let Some(rtt) = facts.rtt_ms {
        q.add_transport_rtt(rtt, now);
    }
    if let (Some(start), Some(end)) = (t.response_start, t.response_end) {
        q.add_downstream(
            facts.response_body_bytes,
            end.saturating_duration_since(start),
            now,
        );
    }
    q.current(now)
}

/// Resolve `origin`'s host (timed into the timeline; `facts.dns_source` says how) into the
/// addresses to connect to.
async fn resolve(
    client: &ClientInner,
    origin: &Origin,
    timeline: &mut Timeline,
    facts: &mut ExchangeFacts,
) -> Result<Vec<SocketAddr>, UploadError> {
    let (ips, source) = client
        .resolver
        .resolve(
            &origin.host,
            &client.tls,
            &client.config.user_agent,
            timeline,
        )
        .await?;
    facts.dns_source = source;
    Ok(ips
        .iter()
        .map(|ip| SocketAddr::new(*ip, origin.port))
        .collect())
}

/// Resolve (timed) and open a new connection to `origin`.
async fn open_connection(
    client: &ClientInner,
    origin: &Origin,
    tls: &Arc<rustls::ClientConfig>,
    timeline: &mut Timeline,
    facts: &mut ExchangeFacts,
) -> Result<Connection, UploadError> {
    let addrs = resolve(client, origin, timeline, facts).await?;
    let params = ConnectParams {
        attempt_delay: client.config.happy_eyeballs_delay,
        notsent_lowat: client.config.notsent_lowat,
    };
    connect(
        origin,
        &addrs,
        tls,
        client.next_connection_id(),
        params,
        timeline,
    )
    .await
}

enum H2Result {
    Done(ExchangeOutput),
    /// The server chose HTTP/1.1: here is the fresh connection for it.
    Http1(Connection),
}

/// The hop as an HTTP/2 stream on the origin's shared connection (made if there is none).
async fn send_h2(
    client: &ClientInner,
    prepared: &mut Prepared,
    hop: Hop,
    task: &TaskShared,
    timeline: &mut Timeline,
    facts: &mut ExchangeFacts,
) -> Result<H2Result, UploadError> {
    let origin = prepared.target.origin.clone();
    let mut retried = false;
    loop {
        let (conn, reused) = match client.h2.get(&origin) {
            Some(conn) => (conn, true),
            None => {
                let lock = client.h2.connect_lock(&origin);
                let _connecting = lock.lock().await;
                match client.h2.get(&origin) {
                    // Made by a concurrent upload while this one waited for the lock.
                    Some(conn) => (conn, true),
                    None => {
                        let tls = if origin.tls {
                            &client.tls_h2
                        } else {
                            &client.tls
                        };
                        let conn = open_connection(client, &origin, tls, timeline, facts).await?;
                        if origin.tls && conn.info.alpn != "h2" {
                            client.h2.mark_http1_only(&origin);
                            return Ok(H2Result::Http1(conn));
                        }
                        let settings = H2Settings {
                            initial_window_size: client.config.h2_initial_window_size,
                            initial_connection_window_size: client
                                .config
                                .h2_initial_connection_window_size,
                            max_send_buffer_size: client.config.h2_max_send_buffer_size,
                            tls_buffer_limit: client.config.tls_buffer_limit,
                        };
                        let conn = H2Connection::handshake(conn, settings).await?;
                        client.h2.insert(origin.clone(), conn.clone());
                        (conn, false)
                    }
                }
            }
        };
        if reused {
            facts.dns_source = DnsSource::None;
        }
        facts.protocol = Protocol::H2;
        record_connection(facts, &conn.info, reused);
        facts.stale_connection_retries = u32::from(retried);

        // A stream slot: the server's SETTINGS_MAX_CONCURRENT_STREAMS may make this wait, which
        // is queue time.
        let (send, _slot, streams_before) = match conn.ready().await {
            Ok(ready) => ready,
            Err(_) if !retried => {
                // The connection failed or is going away before this stream started: once more,
                // on a connection that takes it.
                retried = true;
                reset_connection_phases(timeline);
                continue;
            }
            Err(e) => {
                let reason = conn.close_reason().unwrap_or_else(|| e.to_string());
                let detail = crate::transport::h2_pool::connection_failure(&conn.book, reason);
                return Err(UploadError::new(ErrorKind::ConnectionClosed, detail));
            }
        };
        if reused {
            stream_slot_waited(timeline, Instant::now());
        }
        facts.connection_requests_before = streams_before;
        let input = stream_input(client, prepared, hop, task, http::Version::HTTP_2)?;
        match h2_exchange(&conn, send, input, timeline, facts).await {
            Ok(out) => return Ok(H2Result::Done(out)),
            Err(failure) if failure.retryable && !retried => {
                // REFUSED_STREAM, or a GOAWAY that left this stream unprocessed: once more,
                // on a connection that takes it (the pool drops one that is going away).
                retried = true;
                reset_connection_phases(timeline);
            }
            Err(failure) => return Err(failure.error),
        }
    }
}

/// What one request over a multiplexed protocol (HTTP/2, HTTP/3) needs from the upload.
pub(crate) struct StreamInput<'a> {
    pub request: http::Request<()>,
    /// The body, or `None` for a body-less GET (after a 303).
    pub body: Option<(&'a BodyPlan, &'a FileSource)>,
    pub max_response_body: usize,
    /// File bytes read per piece of the body.
    pub chunk_size: usize,
    pub task: &'a TaskShared,
    /// The profile is on: read the transport's RTT.
    pub profile: bool,
}

/// The hop as a request for a multiplexed protocol of `version`.
fn stream_input<'a>(
    client: &ClientInner,
    prepared: &'a Prepared,
    hop: Hop,
    task: &'a TaskShared,
    version: http::Version,
) -> Result<StreamInput<'a>, UploadError> {
    let request = prepared.multiplexed_request(hop.method, hop.drop_credentials, version)?;
    let with_body = hop.method == Method::Post;
    Ok(StreamInput {
        request,
        body: with_body.then_some((&prepared.plan, &prepared.file)),
        max_response_body: client.config.max_response_body,
        // h2 writes one DATA frame per flush, and h3 hands each piece to quinn as one buffer:
        // pieces as large as the stream's send buffer measured best (docs/performance.md,
        // HTTP/2).
        chunk_size: client
            .config
            .chunk_size
            .max(client.config.h2_max_send_buffer_size),
        task,
        profile: hop.profile,
    })
}

/// A stream on a reused connection that became available at `ready`: if it had to wait for a
/// slot under the server's stream limit, that wait is queue time, and the request's fetch
/// starts when the stream is there.
fn stream_slot_waited(timeline: &mut Timeline, ready: Instant) {
    if timeline
        .fetch_start
        .is_some_and(|f| ready.saturating_duration_since(f).as_micros() > 50)
    {
        timeline.queue_end = Some(ready);
        timeline.fetch_start = Some(ready);
    }
}

/// What the profile reports of the connection that carries the request (HTTP/1.1 or HTTP/2).
fn record_connection(facts: &mut ExchangeFacts, info: &ConnectionInfo, reused: bool) {
    facts.peer = Some(info.peer);
    facts.reused = reused;
    facts.connection_id = info.id;
    facts.connect_attempts = if reused { 0 } else { info.attempts };
    facts.tls_version = info.tls_version.clone();
    facts.cipher_suite = info.cipher_suite.clone();
    facts.alpn = info.alpn.clone();
}

/// The same for a pooled HTTP/1.1 connection, with its reuse history.
fn describe_connection(facts: &mut ExchangeFacts, conn: &Connection, reused: bool) {
    record_connection(facts, &conn.info, reused);
    facts.connection_requests_before = conn.requests;
    facts.idle_before_reuse_ms = if reused {
        conn.idle_since.elapsed().as_secs_f64() * 1000.0
    } else {
        0.0
    };
}

/// HTTP/3 over QUIC for this hop: `Some` with the result, or `None` (the reason recorded in
/// `facts.quic_fallback`) to go over TCP instead.
#[cfg(feature = "quic")]
async fn try_quic(
    client: &ClientInner,
    prepared: &mut Prepared,
    hop: Hop,
    task: &TaskShared,
    timeline: &mut Timeline,
    facts: &mut ExchangeFacts,
) -> Result<Option<ExchangeOutput>, UploadError> {
    quic::send_h3(client, prepared, hop, task, timeline, facts).await
}

#[cfg(not(feature = "quic"))]
async fn try_quic(
    _client: &ClientInner,
    _prepared: &mut Prepared,
    _hop: Hop,
    _task: &TaskShared,
    _timeline: &mut Timeline,
    facts: &mut ExchangeFacts,
) -> Result<Option<ExchangeOutput>, UploadError> {
    facts.quic_fallback = Some("this build has no QUIC (cargo feature `quic` off)".into());
    Ok(None)
}

/// Forget the phases of a connection that proved dead, so the profile shows the one that
/// carried the request.
fn reset_connection_phases(t: &mut Timeline) {
    t.httpdns_start = None;
    t.httpdns_end = None;
    t.domain_lookup_start = None;
    t.domain_lookup_end = None;
    reset_connect_phases(t);
}

/// Forget the connect phases of a transport that was not used (a QUIC attempt that failed):
/// the name resolution it made stands, the TCP connection that follows records its own.
fn reset_connect_phases(t: &mut Timeline) {
    t.connect_start = None;
    t.connect_end = None;
    t.ssl_start = None;
    t.ssl_end = None;
    t.request_start = None;
    t.request_head_end = None;
    t.request_end = None;
    t.body_acked_end = None;
    t.first_interim = None;
    t.response_start = None;
    t.response_end = None;
}
