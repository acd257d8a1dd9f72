//! One upload from start to finish: check, queue, connect (or reuse), exchange, result.
//!
//! This is where the [`Timeline`] lives. The whole call runs under the options' timeout and can
//! be aborted at any await point; either way the future is dropped, and with it the connection
//! (a connection is only ever returned to the pool by a clean, complete exchange).

mod exchange;
mod prepare;

use std::sync::Arc;
use std::time::Instant;

use crate::client::ClientInner;
use crate::error::{ErrorKind, UploadError};
use crate::headers::ResponseHeaders;
use crate::options::UploadOptions;
use crate::profile::{ExchangeFacts, Protocol, Timeline};
use crate::success::UploadSuccess;
use crate::task::TaskShared;
use crate::transport::{connect, Connection};

use exchange::{exchange, ExchangeInput};

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
    timeline.fetch_start = Some(Instant::now());

    let mut facts = ExchangeFacts {
        tls: prepared.origin.tls,
        protocol: Protocol::Http11,
        ..ExchangeFacts::default()
    };
    let mut stale_retries = 0;
    loop {
        let (mut conn, reused) = match client.pool.checkout(&prepared.origin) {
            Some(conn) => (conn, true),
            None => {
                let id = client.next_connection_id();
                let conn = connect(&prepared.origin, &client.tls, id, &mut timeline).await?;
                (conn, false)
            }
        };
        describe_connection(&mut facts, &conn, reused);
        facts.stale_connection_retries = stale_retries;
        let input = ExchangeInput {
            head: &prepared.head,
            plan: &prepared.plan,
            file: &mut prepared.file,
            expect_continue: prepared
                .expect_continue
                .then_some(client.config.expect_continue_timeout),
            max_response_body: client.config.max_response_body,
            chunk_size: client.config.chunk_size,
            task,
        };
        match exchange(&mut conn.stream, input, &mut timeline, &mut facts).await {
            Ok(out) => {
                conn.requests += 1;
                if out.reusable {
                    client.pool.checkin(prepared.origin.clone(), conn);
                }
                let header = ResponseHeaders::new(out.head.headers);
                let (profile, profile_extensions) = if options.enable_profile {
                    (
                        Some(timeline.profile(&facts)),
                        Some(timeline.extensions(&facts)),
                    )
                } else {
                    (None, None)
                };
                return Ok(UploadSuccess {
                    data: String::from_utf8_lossy(&out.body).into_owned(),
                    status_code: out.head.status,
                    header,
                    profile,
                    profile_extensions,
                });
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
                reset_connection_phases(&mut timeline);
            }
        }
    }
}

fn describe_connection(facts: &mut ExchangeFacts, conn: &Connection, reused: bool) {
    facts.peer = Some(conn.peer);
    facts.reused = reused;
    facts.connection_id = conn.id;
    facts.connection_requests_before = conn.requests;
    facts.idle_before_reuse_ms = if reused {
        conn.idle_since.elapsed().as_secs_f64() * 1000.0
    } else {
        0.0
    };
    facts.connect_attempts = if reused { 0 } else { conn.attempts };
    facts.tls_version = conn.tls_version.clone();
    facts.cipher_suite = conn.cipher_suite.clone();
    facts.alpn = conn.alpn.clone();
}

/// Forget the phases of a connection that proved dead, so the profile shows the one that
/// carried the request.
fn reset_connection_phases(t: &mut Timeline) {
    t.domain_lookup_start = None;
    t.domain_lookup_end = None;
    t.connect_start = None;
    t.connect_end = None;
    t.ssl_start = None;
    t.ssl_end = None;
    t.request_start = None;
    t.request_head_end = None;
    t.request_end = None;
    t.first_interim = None;
    t.response_start = None;
    t.response_end = None;
}
