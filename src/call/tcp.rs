//! A hop over TCP: HTTP/2 when asked for and possible, else HTTP/1.1; used by every hop without
//! `enableQuic`, and by the race (`race`) when TCP carries the hop.

use super::context::Context;
use super::h2;
use super::http1;
use super::multiplexed::{self, MuxOutcome};
use super::outcome::Response;
use super::prepare::Upload;
use super::redirect::Hop;
use crate::error::UploadError;
use crate::events::TaskShared;
use crate::measure::UploadRecord;
use crate::transport::{Connection, Origin};

/// The hop over TCP: HTTP/2 when asked for and possible, else HTTP/1.1. `fresh`: a connection
/// just opened for it (by the race against QUIC), its connect already recorded. A TLS server
/// that answers ALPN with HTTP/1.1 hands its fresh connection on to an HTTP/1.1 exchange.
pub(crate) async fn send(
    ctx: &Context,
    upload: &Upload,
    hop: &Hop,
    task: &TaskShared,
    record: &mut UploadRecord,
    mut fresh: Option<Connection>,
) -> Result<Response, UploadError> {
    let origin = &hop.target.origin;
    // Absolute-form requests to an HTTP proxy are HTTP/1.1.
    if wants_h2(ctx, upload, origin) && !hop.route.is_forward() {
        let first = match fresh.take() {
            None => None,
            Some(conn) => match h2::start(ctx, origin, conn).await? {
                Ok(conn) => {
                    ctx.h2.conns.insert(hop.route.clone(), conn.clone());
                    Some(conn)
                }
                Err(http1) => {
                    return http1::send(ctx, upload, hop, task, record, Some(http1)).await
                }
            },
        };
        match multiplexed::send::<h2::H2>(ctx, upload, hop, task, record, first).await? {
            MuxOutcome::Done(response) => return Ok(response),
            MuxOutcome::Declined(conn) => fresh = Some(conn),
        }
    }
    http1::send(ctx, upload, hop, task, record, fresh).await
}

/// HTTP/2 is asked for and possible for `origin`: over TLS (ALPN decides), or h2c with prior
/// knowledge, and the origin did not answer ALPN with HTTP/1.1 before.
pub(crate) fn wants_h2(ctx: &Context, upload: &Upload, origin: &Origin) -> bool {
    upload.http2
        && (origin.tls || ctx.config.http2_prior_knowledge)
        && !ctx.h2.is_http1_only(origin)
}
