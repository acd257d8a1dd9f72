//! The one response tail of the multiplexed protocols: once a stream's final response head is
//! in, check it against the cap, read the transport's RTT (profile on), tell the headers
//! listeners, and read the body under the cap. HTTP/2 and HTTP/3 differ only in how a body
//! chunk arrives ([`ResponseBody`]).

use std::time::Instant;

use bytes::Bytes;

use super::outcome::{Failure, Response};
use crate::error::{ErrorKind, UploadError};
use crate::events::{HeadersReceived, TaskShared};
use crate::headers::ResponseHeaders;
use crate::measure::{ExchangeReport, StreamStamps};
use crate::proto::response::ResponseHead;

/// A stream's response body, one chunk at a time.
pub(crate) trait ResponseBody {
    /// The next chunk, or `None` at the end of the stream.
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, Failure>;
}

/// The response as the tail received it.
pub(crate) struct Received {
    pub head: ResponseHead,
    pub body: Vec<u8>,
    /// When the tail began (the head was in): `responseStart` where the stream's tap saw no
    /// better instant.
    pub head_at: Instant,
    /// The transport's smoothed RTT when the head arrived, in ms (profile on).
    pub rtt_ms: Option<f64>,
}

/// Read the rest of a response whose head (`parts`, HTTP `version` 2 or 3) has arrived.
pub(crate) async fn receive_response<B: ResponseBody>(
    parts: &http::response::Parts,
    version: u8,
    body: &mut B,
    max_response_body: usize,
    task: &TaskShared,
    rtt: Option<impl FnOnce() -> Option<f64>>,
) -> Result<Received, Failure> {
    let head_at = Instant::now();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let status = parts.status.as_u16();
    if let Some(len) = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
    {
        if len > max_response_body as u64 {
            return Err(too_large(format!(
                "Content-Length {len} exceeds the cap of {max_response_body} bytes"
            )));
        }
    }
    let rtt_ms = rtt.and_then(|read| read());
    task.emit_headers(&HeadersReceived {
        header: ResponseHeaders::new(headers.clone()),
        status_code: status,
    });
    let mut data = Vec::new();
    while let Some(chunk) = body.next_chunk().await? {
        if data.len() + chunk.len() > max_response_body {
            return Err(too_large(format!(
                "the body exceeds the cap of {max_response_body} bytes"
            )));
        }
        data.extend_from_slice(&chunk);
    }
    Ok(Received {
        head: ResponseHead {
            status,
            reason: String::new(),
            version,
            headers,
        },
        body: data,
        head_at,
        rtt_ms,
    })
}

impl Received {
    /// The complete response, with the stream's stamps folded into `report`: the request ended
    /// only if it was completely sent (`request_complete`; an early answer has no `requestEnd`),
    /// and where the tap saw no response start or end, the tail's own instants stand in.
    pub(crate) fn into_response(
        self,
        mut report: ExchangeReport,
        taps: StreamStamps,
        request_complete: bool,
        now: Instant,
    ) -> Response {
        let s = &mut report.stamps;
        s.request_start = taps.request_start;
        s.request_head_end = taps.request_head_end;
        s.request_end = if request_complete {
            taps.request_end
        } else {
            None
        };
        s.response_start = taps.response_start.or(Some(self.head_at));
        s.response_end = taps.response_end.or(Some(now));
        report.send_bytes_count = taps.send_bytes_count;
        report.body_bytes_sent = taps.body_bytes_sent;
        report.received_byted_count = taps.received_byted_count;
        report.response_body_bytes = self.body.len() as u64;
        report.request_header_bytes = taps.request_header_bytes;
        report.request_framing_bytes = taps.request_framing_bytes;
        report.response_header_bytes = taps.response_header_bytes;
        report.response_framing_bytes = taps.response_framing_bytes;
        report.rtt_ms = self.rtt_ms;
        Response {
            head: self.head,
            body: self.body,
            reusable: true,
            report,
        }
    }
}

fn too_large(detail: String) -> Failure {
    Failure::fatal(UploadError::new(ErrorKind::ResponseTooLarge, detail))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn received(head_at: Instant) -> Received {
        Received {
            head: ResponseHead {
                status: 200,
                reason: String::new(),
                version: 2,
                headers: Vec::new(),
            },
            body: b"ok".to_vec(),
            head_at,
            rtt_ms: Some(1.5),
        }
    }

    #[test]
    fn a_stream_s_stamps_and_counts_become_the_report() {
        let t0 = Instant::now();
        let at = |ms| Some(t0 + Duration::from_millis(ms));
        let taps = StreamStamps {
            request_start: at(1),
            request_head_end: at(2),
            request_end: at(3),
            response_start: at(4),
            response_end: at(5),
            send_bytes_count: 100,
            body_bytes_sent: 80,
            received_byted_count: 40,
            request_header_bytes: 12,
            request_framing_bytes: 8,
            response_header_bytes: 20,
            response_framing_bytes: 18,
        };
        let r = received(t0 + Duration::from_millis(9)).into_response(
            ExchangeReport::default(),
            taps,
            true,
            t0 + Duration::from_millis(10),
        );
        let s = r.report.stamps;
        assert_eq!(
            (s.request_start, s.request_head_end, s.request_end),
            (at(1), at(2), at(3))
        );
        assert_eq!((s.response_start, s.response_end), (at(4), at(5)));
        assert_eq!(
            (
                r.report.send_bytes_count,
                r.report.body_bytes_sent,
                r.report.received_byted_count,
                r.report.response_body_bytes
            ),
            (100, 80, 40, 2)
        );
        assert_eq!(r.report.rtt_ms, Some(1.5));
        assert_eq!(
            (
                r.report.request_header_bytes,
                r.report.request_framing_bytes,
                r.report.response_header_bytes,
                r.report.response_framing_bytes
            ),
            (12, 8, 20, 18)
        );
        assert!(r.reusable);
    }

    #[test]
    fn an_early_answer_has_no_request_end_and_missing_taps_take_the_tail_s_instants() {
        let t0 = Instant::now();
        let head_at = t0 + Duration::from_millis(7);
        let now = t0 + Duration::from_millis(8);
        let taps = StreamStamps {
            request_end: Some(t0),
            ..StreamStamps::default()
        };
        let r = received(head_at).into_response(ExchangeReport::default(), taps, false, now);
        let s = r.report.stamps;
        assert_eq!(s.request_end, None);
        assert_eq!(
            (s.response_start, s.response_end),
            (Some(head_at), Some(now))
        );
    }
}
