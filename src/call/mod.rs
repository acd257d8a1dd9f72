//! One upload from start to finish: check, queue, the redirect loop, and each hop's send over
//! the protocol that carries it.
//!
//! ```text
//! run            timeout and abort around the whole upload
//!  └ upload      prepare (validate once) → queue → hops until a final response → result
//!     └ send_hop enableQuic: HTTP/3 (multiplexed::send::<H3>), else TCP;
//!                enableHttp2: HTTP/2 (multiplexed::send::<H2>), else / declined: HTTP/1.1
//!                (http1::send, with its stale-connection retry)
//! ```
//!
//! The upload's [`UploadRecord`] goes down with each call, and every layer below returns what
//! it measured for the record to fold in (see `measure`). The whole call runs under the
//! options' timeout and can be aborted at any await point; either way the future is dropped,
//! and with it the connection (a connection is only ever returned to the pool by a clean,
//! complete exchange).

mod acks;
mod body_pieces;
mod connection;
mod context;
mod file_source;
mod h2;
mod h2_stream;
#[cfg(feature = "quic")]
mod h3;
#[cfg(feature = "quic")]
mod h3_stream;
mod http1;
mod http1_exchange;
mod multiplexed;
mod outcome;
mod prepare;
mod redirect;
mod stream_response;

use std::sync::Arc;
use std::time::Instant;

pub(crate) use context::Context;

use crate::error::{ErrorKind, UploadError};
use crate::events::TaskShared;
use crate::headers::ResponseHeaders;
use crate::measure::{UploadRecord, UploadTrace};
use crate::options::UploadOptions;
use crate::success::UploadSuccess;
use multiplexed::MuxOutcome;
use outcome::Response;
use prepare::Upload;
use redirect::Hop;

/// Run one upload under its timeout and abort signal.
pub(crate) async fn run(
    ctx: Arc<Context>,
    options: UploadOptions,
    task: Arc<TaskShared>,
    invoke: Instant,
    trace: UploadTrace,
) -> Result<UploadSuccess, UploadError> {
    if task.is_aborted() {
        return Err(UploadError::abort());
    }
    let deadline = tokio::time::Instant::from_std(invoke + options.timeout_duration());
    tokio::select! {
        biased;
        _ = task.aborted() => Err(UploadError::abort()),
        r = tokio::time::timeout_at(deadline, upload(&ctx, &options, &task, invoke, trace)) => {
            r.unwrap_or_else(|_| Err(UploadError::timeout()))
        }
    }
}

/// Prepare, queue, and send hops until the final response.
async fn upload(
    ctx: &Context,
    options: &UploadOptions,
    task: &TaskShared,
    invoke: Instant,
    trace: UploadTrace,
) -> Result<UploadSuccess, UploadError> {
    let mut record = UploadRecord::new(invoke).traced(trace);
    let (upload, mut hop) = prepare::prepare(options, &ctx.config).await?;

    let queue_start = Instant::now(); // queueStart
    let _permit = ctx
        .queue
        .acquire()
        .await
        .map_err(|_| UploadError::new(ErrorKind::ClientClosed, "the client was shut down"))?;
    record.queued(queue_start, Instant::now()); // queueEnd

    loop {
        record.fetch_started(Instant::now(), hop.target.origin.tls); // fetchStart
        let response = send_hop(ctx, &upload, &hop, task, &mut record).await?;
        record.exchanged(response.report);
        let status = response.head.status;
        let location = response.head.header("location");
        let max_redirects = ctx.config.max_redirects;
        if let (true, Some(location)) = (
            Hop::is_followed_redirect(status, location, max_redirects),
            location,
        ) {
            if record.redirects() >= max_redirects {
                return Err(UploadError::new(
                    ErrorKind::TooManyRedirects,
                    format!("more than {max_redirects} redirects"),
                ));
            }
            let next = hop.follow(status, location)?;
            record.redirect_followed();
            hop = next;
            continue;
        }
        record.redirects_done(!hop.left_origin);
        let (profile, profile_extensions) = if upload.profile {
            let quality = {
                let mut estimator = ctx.quality.lock().unwrap_or_else(|p| p.into_inner());
                record.observe_quality(&mut estimator, Instant::now())
            };
            (Some(record.profile(&quality)), Some(record.extensions()))
        } else {
            (None, None)
        };
        return Ok(UploadSuccess {
            data: String::from_utf8_lossy(&response.body).into_owned(),
            status_code: status,
            header: ResponseHeaders::new(response.head.headers),
            request_header: upload.request_headers(&hop, record.expect_continue()),
            profile,
            profile_extensions,
        });
    }
}

/// One request of the upload (the upload itself, or a redirect hop), over the protocol that
/// takes it.
async fn send_hop(
    ctx: &Context,
    upload: &Upload,
    hop: &Hop,
    task: &TaskShared,
    record: &mut UploadRecord,
) -> Result<Response, UploadError> {
    let origin = &hop.target.origin;
    if upload.quic {
        // HTTP/3 over QUIC when asked for; any reason not to (or a failed handshake) is
        // recorded and the hop goes over TCP.
        match send_h3(ctx, upload, hop, task, record).await? {
            MuxOutcome::Done(response) => return Ok(response),
            MuxOutcome::Declined(why) => {
                record.quic_fell_back(why);
                record.forget_connect();
            }
        }
    }
    // HTTP/2 when asked for and possible; a TLS server that answers ALPN with HTTP/1.1 hands
    // its fresh connection back for an HTTP/1.1 exchange.
    let mut fresh = None;
    if upload.http2
        && (origin.tls || ctx.config.http2_prior_knowledge)
        && !ctx.h2.is_http1_only(origin)
    {
        match multiplexed::send::<h2::H2>(ctx, upload, hop, task, record).await? {
            MuxOutcome::Done(response) => return Ok(response),
            MuxOutcome::Declined(conn) => fresh = Some(conn),
        }
    }
    http1::send(ctx, upload, hop, task, record, fresh).await
}

/// HTTP/3 for the hop, or why not.
#[cfg(feature = "quic")]
async fn send_h3(
    ctx: &Context,
    upload: &Upload,
    hop: &Hop,
    task: &TaskShared,
    record: &mut UploadRecord,
) -> Result<MuxOutcome<String>, UploadError> {
    if !hop.target.origin.tls {
        return Ok(MuxOutcome::Declined(
            "QUIC needs an https:// URL (it always runs TLS); plain TCP instead".into(),
        ));
    }
    multiplexed::send::<h3::H3>(ctx, upload, hop, task, record).await
}

#[cfg(not(feature = "quic"))]
async fn send_h3(
    _ctx: &Context,
    _upload: &Upload,
    _hop: &Hop,
    _task: &TaskShared,
    _record: &mut UploadRecord,
) -> Result<MuxOutcome<String>, UploadError> {
    Ok(MuxOutcome::Declined(
        "this build has no QUIC (cargo feature `quic` off)".into(),
    ))
}
