//! One upload from start to finish: check, queue, the redirect loop, and each hop's send over
//! the protocol that carries it.
//!
//! ```text
//! run            timeout and abort around the whole upload
//!  └ upload      prepare (validate once) → queue → hops until a final response → result
//!     └ send_hop enableQuic: QUIC raced against TCP (race::send), the winner carries the hop;
//!                over TCP (tcp::send): enableHttp2: HTTP/2 (multiplexed::send::<H2>), else /
//!                declined: HTTP/1.1 (http1::send, with its stale-connection retry)
//! ```
//!
//! The upload's [`UploadRecord`] goes down with each call, and every layer below returns what
//! it measured for the record to fold in (see `measure`). The whole call runs under the
//! options' timeout and can be aborted at any await point; either way the future is dropped,
//! and with it the connection (a connection is only ever returned to the pool by a clean,
//! complete exchange).

mod acks;
mod body_pieces;
#[cfg(feature = "quic")]
mod chunk_pool;
mod connection;
mod context;
mod file_open;
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
#[cfg(feature = "quic")]
mod race;
mod redirect;
mod stream_response;
mod tcp;

use std::sync::Arc;
use std::time::Instant;

pub(crate) use context::Context;

use crate::error::{ErrorKind, UploadError};
use crate::events::TaskShared;
use crate::headers::ResponseHeaders;
use crate::measure::{UploadRecord, UploadTrace};
use crate::options::UploadOptions;
use crate::success::UploadSuccess;
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
    ctx: &Arc<Context>,
    options: &UploadOptions,
    task: &TaskShared,
    invoke: Instant,
    trace: UploadTrace,
) -> Result<UploadSuccess, UploadError> {
    let mut record = UploadRecord::new(invoke).traced(trace);
    let (upload, mut hop) = prepare::prepare(options, &ctx.config, &ctx.files).await?;

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
        #[cfg(feature = "quic")]
        if let Some(rtt) = response.report.rtt_ms {
            // For the head start of the origin's next race (`race::rule`).
            if let Ok(rtt) = std::time::Duration::try_from_secs_f64(rtt / 1000.0) {
                ctx.quic.note_rtt(&hop.target.origin, rtt);
            }
        }
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
            let next = hop.follow(
                status,
                location,
                prepare::routing(&ctx.config, upload.http2),
            )?;
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
    ctx: &Arc<Context>,
    upload: &Upload,
    hop: &Hop,
    task: &TaskShared,
    record: &mut UploadRecord,
) -> Result<Response, UploadError> {
    if upload.quic {
        if let Some(proxy) = hop.route.proxy() {
            use crate::measure::{RaceReason, RaceReport, RaceWinner};
            record.raced(RaceReport::without_race(
                RaceWinner::Tcp,
                RaceReason::Proxied,
            ));
            record.quic_fell_back(format!(
                "a proxy is in force ({}), and QUIC cannot go through it (no MASQUE here); TCP \
                 through the proxy instead",
                proxy.url()
            ));
            return tcp::send(ctx, upload, hop, task, record, None).await;
        }
        #[cfg(feature = "quic")]
        return race::send(ctx, upload, hop, task, record).await;
        #[cfg(not(feature = "quic"))]
        {
            use crate::measure::{RaceReason, RaceReport, RaceWinner};
            record.raced(RaceReport::without_race(
                RaceWinner::Tcp,
                RaceReason::Unavailable,
            ));
            record.quic_fell_back("this build has no QUIC (cargo feature `quic` off)".into());
        }
    }
    tcp::send(ctx, upload, hop, task, record, None).await
}
