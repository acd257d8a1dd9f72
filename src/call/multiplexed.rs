//! The one send loop of the multiplexed protocols (HTTP/2 and HTTP/3).
//!
//! Both protocols carry an upload the same way: take the origin's pooled connection, or make
//! one under the origin's connect lock (checking the pool again once the lock is held: a
//! concurrent upload may have made it meanwhile), open a stream on it, and exchange. A stream
//! the server refused unprocessed, or a connection found going away before the stream started,
//! is retried once on a connection that takes it. What differs is only the wire, behind
//! [`MuxProtocol`]: how a connection is made (and when the protocol declines the hop: a server
//! that chose HTTP/1.1 by ALPN, a QUIC handshake that failed), how a stream is opened, and the
//! exchange itself (`h2_stream`, `h3_stream`).

use std::sync::Arc;

use super::context::Context;
use super::file_source::FileSource;
use super::outcome::{Failure, Response};
use super::prepare::Upload;
use super::redirect::{Hop, Method};
use crate::error::{ErrorKind, UploadError};
use crate::events::TaskShared;
use crate::measure::{ConnectionInfo, ConnectionUse, Protocol, UploadRecord};
use crate::proto::multipart::BodyPlan;
use crate::transport::mux_pool::{Multiplexed, MuxPool};

/// One multiplexed protocol, as the send loop needs it.
pub(crate) trait MuxProtocol {
    /// What the pool keys connections by.
    type Key: std::hash::Hash + Eq + Clone;
    /// A pooled connection.
    type Conn: Multiplexed;
    /// A stream slot on a connection, ready to carry one request.
    type Stream;
    /// What the hop gets when the protocol declines to carry it.
    type Declined;
    /// How the profile names the protocol.
    const PROTOCOL: Protocol;
    /// The HTTP version of its requests.
    const VERSION: http::Version;

    /// The client's pool of these connections.
    fn pool(ctx: &Context) -> &MuxPool<Self::Key, Self::Conn>;

    /// The pool key of `hop`'s connection.
    fn key(hop: &Hop) -> Self::Key;

    /// Make a new connection for `key` (resolve, connect, handshake: recorded), or decline
    /// the hop. Called with the key's connect lock held.
    async fn connect(
        ctx: &Context,
        key: &Self::Key,
        record: &mut UploadRecord,
    ) -> Result<Result<Arc<Self::Conn>, Self::Declined>, UploadError>;

    /// What the profile reports of the connection.
    fn info(conn: &Self::Conn) -> &Arc<ConnectionInfo>;

    /// A stream slot on `conn`, and the number of streams started on it before this one. A
    /// failure here is retryable: the stream never started.
    async fn open_stream(conn: &Self::Conn) -> Result<(Self::Stream, u64), Failure>;

    /// The request as a stream on `conn`.
    async fn exchange(
        ctx: &Context,
        conn: &Self::Conn,
        stream: Self::Stream,
        input: StreamInput<'_>,
    ) -> Result<Response, Failure>;
}

/// How a hop sent over a multiplexed protocol ended.
// Returned once per hop and moved straight on: boxing the response would only add an
// allocation per upload.
#[allow(clippy::large_enum_variant)]
pub(crate) enum MuxOutcome<D> {
    Done(Response),
    /// The protocol declined the hop (see [`MuxProtocol::Declined`]).
    Declined(D),
}

/// Send the hop as a stream of protocol `P` on the origin's shared connection (made if there is
/// none). `fresh`: a connection just made for this hop (already pooled, its connect already
/// recorded), tried first.
pub(crate) async fn send<P: MuxProtocol>(
    ctx: &Context,
    upload: &Upload,
    hop: &Hop,
    task: &TaskShared,
    record: &mut UploadRecord,
    mut fresh: Option<Arc<P::Conn>>,
) -> Result<MuxOutcome<P::Declined>, UploadError> {
    let key = &P::key(hop);
    let pool = P::pool(ctx);
    let mut retried = false;
    loop {
        let (conn, reused) = match (fresh.take(), pool.get(key)) {
            (Some(conn), _) => (conn, false),
            (None, Some(conn)) => (conn, true),
            (None, None) => {
                let lock = pool.connect_lock(key);
                let _connecting = lock.lock().await;
                match pool.get(key) {
                    // Made by a concurrent upload while this one waited for the lock.
                    Some(conn) => (conn, true),
                    None => match P::connect(ctx, key, record).await? {
                        Ok(conn) => {
                            pool.insert(key.clone(), conn.clone());
                            (conn, false)
                        }
                        Err(declined) => return Ok(MuxOutcome::Declined(declined)),
                    },
                }
            }
        };
        let (stream, streams_before) = match P::open_stream(&conn).await {
            Ok(opened) => opened,
            Err(failure) if failure.retryable && !retried => {
                // The connection failed or is going away before this stream started: once
                // more, on a connection that takes it.
                retried = true;
                record.forget_connection();
                continue;
            }
            Err(failure) => return Err(failure.error),
        };
        record.uses_connection(
            ConnectionUse {
                info: P::info(&conn).clone(),
                protocol: P::PROTOCOL,
                reused,
                requests_before: streams_before,
                idle_before_reuse_ms: 0.0,
            },
            u32::from(retried),
        );
        let input = stream_input(ctx, upload, hop, task, P::VERSION)?;
        match P::exchange(ctx, &conn, stream, input).await {
            Ok(response) => return Ok(MuxOutcome::Done(response)),
            Err(failure) if failure.retryable && !retried => {
                // Refused unprocessed, or the connection is going away: once more, on a
                // connection that takes it (the pool drops one that is going away).
                retried = true;
                record.forget_connection();
            }
            Err(failure) => return Err(failure.error),
        }
    }
}

/// What one request over a multiplexed protocol needs from the upload.
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
    /// Track what the peer acknowledged (the profile is on and the client tracks).
    pub track_acks: bool,
}

/// The hop's request for a multiplexed protocol of `version`.
fn stream_input<'a>(
    ctx: &Context,
    upload: &'a Upload,
    hop: &Hop,
    task: &'a TaskShared,
    version: http::Version,
) -> Result<StreamInput<'a>, UploadError> {
    let with_body = hop.method == Method::Post;
    Ok(StreamInput {
        request: request(upload, hop, version)?,
        body: with_body.then_some((&upload.plan, &upload.file)),
        max_response_body: ctx.config.max_response_body,
        // h2 writes one DATA frame per flush, and h3 hands each piece to quinn as one buffer:
        // pieces as large as the stream's send buffer measured best (docs/performance.md,
        // HTTP/2).
        chunk_size: ctx
            .config
            .chunk_size
            .max(ctx.config.h2_max_send_buffer_size),
        task,
        profile: upload.profile,
        track_acks: upload.profile && ctx.config.track_acknowledgements,
    })
}

/// The HTTP/2 or HTTP/3 request for `hop` (no body: it streams separately; the host goes as
/// `:authority`).
pub(crate) fn request(
    upload: &Upload,
    hop: &Hop,
    version: http::Version,
) -> Result<http::Request<()>, UploadError> {
    let bad = |e: &dyn std::fmt::Display| UploadError::new(ErrorKind::InvalidHeader, e.to_string());
    let mut builder = http::Request::builder()
        .method(hop.method.as_str())
        .uri(hop.url.as_str())
        .version(version);
    let mut failed = None;
    upload.visit_header_fields(hop, |name, value| {
        let name = http::header::HeaderName::from_bytes(name.as_bytes());
        let value = http::header::HeaderValue::from_str(value);
        match (name, value) {
            (Ok(name), Ok(value)) => {
                if let Some(headers) = builder.headers_mut() {
                    headers.append(name, value);
                }
            }
            (Err(e), _) => failed = failed.take().or_else(|| Some(bad(&e))),
            (_, Err(e)) => failed = failed.take().or_else(|| Some(bad(&e))),
        }
    });
    if let Some(e) = failed {
        return Err(e);
    }
    builder.body(()).map_err(|e| bad(&e))
}
