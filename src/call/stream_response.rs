//! The one response tail of the multiplexed protocols: once a stream's final response head is
//! in, check it against the cap, read the transport's RTT (profile on), tell the headers
//! listeners, and read the body under the cap. HTTP/2 and HTTP/3 differ only in how a body
//! chunk arrives ([`ResponseBody`]).

use std::time::Instant;

use bytes::Bytes;

use super::outcome::Failure;
use crate::error::{ErrorKind, UploadError};
use crate::events::{HeadersReceived, TaskShared};
use crate::headers::ResponseHeaders;
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

fn too_large(detail: String) -> Failure {
    Failure::fatal(UploadError::new(ErrorKind::ResponseTooLarge, detail))
}
