//! One upload as an HTTP/3 request stream over QUIC.
//!
//! The body goes out as DATA frames from large `Bytes` (the preamble, file chunks read straight
//! into buffers, the epilogue: [`BodyPieces`]), each announced to the glue so that quinn takes
//! the very buffer without a copy. The response is awaited at the same time: a final response
//! before the body ends is the result (an early response), as over HTTP/1.1 and HTTP/2.
//!
//! Timing comes from the stream's record in the connection's
//! [`QuicTapBook`](crate::transport::quic_glue::QuicTapBook), filled by the glue where bytes
//! cross into and out of quinn:
//!
//! - `requestStart`: quinn accepted the first bytes of the HEADERS frame;
//! - `requestEnd`: the stream was finished after quinn accepted its last DATA byte;
//! - `responseStart`: quinn delivered the first bytes of the response stream (its HEADERS);
//! - `responseEnd`: quinn delivered the end of the response stream;
//! - `sendBytesCount` / `receivedBytedCount`: the stream's bytes at HTTP/3 level (frame headers,
//!   QPACK blocks, payloads), and of them the header blocks, the DATA payloads (`bodyBytesSent`)
//!   and the framing (`proto::h3_frames`);
//! - `bodyAckedEnd` (extension): when quinn received the ACK that completed the finished stream
//!   (`ackSource: "quic"`; how, and what quinn cannot tell, in `transport::quic_acks`).
//!
//! A file of more than one chunk is read into recycled buffers, at most a budget of them out at
//! once, the budget following the path's bandwidth-delay product ([`ChunkPool`], [`Budget`]):
//! quinn holds each chunk until the peer acknowledged it, so this bounds the upload's memory
//! (docs/performance.md, "HTTP/3 peak RSS (issue 15)").
//!
//! Progress counts body bytes quinn accepted (`progressBasis: "written"`): quinn's API has no
//! acknowledged offset per stream, and its congestion controller sees packets, not streams.

use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use h3::error::{Code, StreamError};

use super::body_pieces::BodyPieces;
use super::chunk_pool::{Budget, ChunkPool, Rtts, BUDGET_FLOOR};
use super::file_source::FileSource;
use super::multiplexed::StreamInput;
use super::outcome::{Failure, Response};
use super::stream_response::{receive_response, ResponseBody};
use crate::error::{ErrorKind, UploadError};
use crate::events::TaskShared;
use crate::measure::{AckSource, BodyTransfer, ExchangeReport};
use crate::proto::multipart::BodyPlan;
use crate::transport::quic_acks::StreamAcked;
use crate::transport::quic_conn::{connection_failure, H3Sender, QuicConnection};
use crate::transport::quic_glue::{QuicRecv, StreamRecord};

/// How the body goes to quinn, from the client's configuration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodySending {
    /// Hand quinn the chunks themselves (`quic_zero_copy`).
    pub zero_copy: bool,
    /// The most the chunks out at once may grow to (`quic_send_window`).
    pub budget_ceiling: u64,
}

/// The request as a stream on `conn`, opened with `sender`.
pub(crate) async fn exchange(
    conn: &QuicConnection,
    mut sender: H3Sender,
    input: StreamInput<'_>,
    sending: BodySending,
) -> Result<Response, Failure> {
    let StreamInput {
        request,
        body,
        max_response_body,
        chunk_size,
        task,
        profile,
        track_acks: _,
    } = input;
    let stream = sender
        .send_request(request)
        .await
        .map_err(|e| h3_failure(e, true, "sending the request headers", conn))?;
    let record = conn.book.take(stream.id().into_inner()).ok_or_else(|| {
        UploadError::new(
            ErrorKind::Network,
            "HTTP/3: the request stream was not opened by this client's glue",
        )
    })?;
    let head_written = record.taps();
    let mut report = ExchangeReport {
        // The server's stream limit (MAX_STREAMS) may have made the stream wait.
        stream_ready_at: head_written.opened_at,
        ..ExchangeReport::default()
    };
    let (mut tx, mut rx) = stream.split();
    let total_body = body.as_ref().map_or(0, |(plan, _)| plan.content_length());

    let mut body_done = false;
    let mut send_failure: Option<Failure> = None;
    let mut acked = None;
    let head = {
        let mut response = std::pin::pin!(rx.recv_response());
        let mut sending = std::pin::pin!(async {
            match body {
                Some((plan, file)) => {
                    let body = BodyToSend {
                        plan,
                        file,
                        chunk_size,
                        sending,
                        total: total_body,
                    };
                    send_body(&mut tx, &record, body, task, conn).await
                }
                None => tx
                    .finish()
                    .await
                    .map(|()| (BodyTransfer::default(), 0))
                    .map_err(|e| h3_failure(e, false, "finishing the request", conn)),
            }
        });
        loop {
            tokio::select! {
                biased;
                r = &mut response => break r,
                b = &mut sending, if !body_done => {
                    body_done = true;
                    match b {
                        Ok((transfer, sent)) => {
                            report.body = transfer;
                            report.body_bytes_sent = sent;
                            acked = record.take_ack_watch();
                        }
                        // The server stopped reading the body: its response may still come
                        // (an early answer). Wait for it; without one this is the failure.
                        Err(f) if stopped_by_peer(&f) => send_failure = Some(f),
                        Err(f) => return Err(f),
                    }
                }
                done = async {
                    match acked.as_mut() {
                        Some(watch) => watch.await,
                        None => std::future::pending().await,
                    }
                }, if acked.is_some() => {
                    acked_end(&mut report, done);
                    acked = None;
                }
            }
        }
    };
    // The server answered before the whole body went out: the answer stands.
    report.early_response = !body_done || send_failure.is_some();
    let head = match head {
        Ok(head) => head,
        Err(e) => {
            return Err(send_failure
                .unwrap_or_else(|| h3_failure(e, true, "waiting for the response", conn)))
        }
    };
    let (parts, ()) = head.into_parts();
    let rtt = || Some(conn.rtt_ms()).filter(|r| *r > 0.0);
    let mut body = H3Body { rx: &mut rx, conn };
    let received = receive_response(
        &parts,
        3,
        &mut body,
        max_response_body,
        task,
        profile.then_some(rtt),
    )
    .await?;
    let now = Instant::now();
    if let Some(mut watch) = acked {
        // The acknowledgement usually rides in the response's first packet: take it if it is
        // already in, without waiting for it.
        if let Ok(done) = tokio::time::timeout(Duration::ZERO, &mut watch).await {
            acked_end(&mut report, done);
        }
    }
    let taps = record.taps().stamps(head_written.last_write_at);
    let request_complete = !report.early_response;
    Ok(received.into_response(report, taps, request_complete, now))
}

/// The stream's last byte was acknowledged at `done` (if it was): `bodyAckedEnd`.
fn acked_end(report: &mut ExchangeReport, done: Option<StreamAcked>) {
    if let Some(done) = done {
        report.stamps.body_acked_end = Some(done.at); // bodyAckedEnd
        report.ack_source = Some(if done.from_ack {
            AckSource::Quic
        } else {
            AckSource::Poll
        });
    }
}

/// The response body as h3 delivers it.
struct H3Body<'a> {
    rx: &'a mut h3::client::RequestStream<QuicRecv, Bytes>,
    conn: &'a QuicConnection,
}

impl ResponseBody for H3Body<'_> {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, Failure> {
        match self.rx.recv_data().await {
            Ok(Some(mut chunk)) => Ok(Some(chunk.copy_to_bytes(chunk.remaining()))),
            Ok(None) => Ok(None),
            Err(e) => Err(h3_failure(e, false, "reading the response body", self.conn)),
        }
    }
}

/// The body of one request, and how to read it.
struct BodyToSend<'a> {
    plan: &'a BodyPlan,
    file: &'a FileSource,
    chunk_size: usize,
    sending: BodySending,
    total: u64,
}

type RequestSend = h3::client::RequestStream<crate::transport::quic_glue::QuicSend, Bytes>;

/// Stream the multipart body as DATA frames, then finish the stream. Returns how the file was
/// read and the body bytes sent.
async fn send_body(
    tx: &mut RequestSend,
    record: &StreamRecord,
    body: BodyToSend<'_>,
    task: &TaskShared,
    conn: &QuicConnection,
) -> Result<(BodyTransfer, u64), Failure> {
    let BodyToSend {
        plan,
        file,
        chunk_size,
        sending,
        total,
    } = body;
    let chunk_size = chunk_size.max(1);
    // At its ceiling the budget must not hold quinn below its send window: two chunks more, the
    // one being read and the one partly acknowledged (a chunk comes back only when all of it
    // was).
    let ceiling = sending.budget_ceiling.saturating_add(2 * chunk_size as u64);
    let mut budget = Budget::new(BUDGET_FLOOR, ceiling, Instant::now());
    // A file of one chunk has nothing to recycle and nothing to bound.
    let pool =
        (plan.file_len() > chunk_size as u64).then(|| ChunkPool::new(chunk_size, budget.current()));
    let mut pieces = match &pool {
        Some(pool) => BodyPieces::pooled(plan, file, pool),
        None => BodyPieces::new(plan, file, chunk_size),
    };
    let mut sent = 0u64;
    while let Some((piece, _last)) = pieces.next().await? {
        if piece.is_empty() {
            continue;
        }
        let len = piece.len() as u64;
        if let Some(pool) = &pool {
            let rtts = || {
                let path = conn.conn.stats().path;
                Rtts {
                    smoothed: path.rtt,
                    min: path.min_rtt,
                }
            };
            if let Some(next) = budget.update(Instant::now(), || pool.delivery(), rtts) {
                pool.set_budget(next);
            }
        }
        if sending.zero_copy {
            // The glue hands quinn this very buffer (no copy) when the frame's payload is it.
            record.offer(&piece);
        }
        tx.send_data(piece)
            .await
            .map_err(|e| h3_failure(e, false, "sending the body", conn))?;
        sent += len;
        task.emit_progress(sent.min(total), total);
    }
    tx.finish()
        .await
        .map_err(|e| h3_failure(e, false, "finishing the request", conn))?;
    Ok((pieces.transfer, sent))
}

/// The server stopped our sending side (STOP_SENDING): it may still answer.
fn stopped_by_peer(f: &Failure) -> bool {
    f.error.kind() == ErrorKind::StreamReset
}

/// What an h3 error is called, and its kind.
fn describe(e: &StreamError, doing: &str) -> (ErrorKind, String) {
    match e {
        StreamError::RemoteTerminate { code } => (
            ErrorKind::StreamReset,
            format!("the server reset the stream with {code} while {doing}"),
        ),
        StreamError::RemoteClosing => (
            ErrorKind::ConnectionClosed,
            format!("the server is closing the connection (GOAWAY) while {doing}"),
        ),
        StreamError::HeaderTooBig {
            actual_size,
            max_size,
        } => (
            ErrorKind::InvalidResponse,
            format!(
                "header section of {actual_size} bytes over the limit of {max_size} while {doing}"
            ),
        ),
        StreamError::StreamError { code, reason } => (
            ErrorKind::InvalidResponse,
            format!("HTTP/3 error {code} while {doing}: {reason}"),
        ),
        other => (ErrorKind::Network, format!("HTTP/3 while {doing}: {other}")),
    }
}

/// Map an h3 error to the upload's error, and say whether the request may go again.
fn h3_failure(e: StreamError, response_seen: bool, doing: &str, conn: &QuicConnection) -> Failure {
    let retryable = !response_seen
        && match &e {
            StreamError::RemoteTerminate { code } => *code == Code::H3_REQUEST_REJECTED,
            StreamError::RemoteClosing => true,
            _ => false,
        };
    let (kind, detail) = match &e {
        StreamError::ConnectionError(c) => (
            ErrorKind::ConnectionClosed,
            connection_failure(conn, doing, &c.to_string()),
        ),
        _ => describe(&e, doing),
    };
    Failure {
        error: UploadError::new(kind, detail),
        retryable,
    }
}
