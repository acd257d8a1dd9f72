//! What one exchange ends with, whatever the protocol: a complete [`Response`] with what it
//! measured, or a [`Failure`] that says whether the request may go again.

use crate::error::UploadError;
use crate::measure::ExchangeReport;
use crate::proto::response::ResponseHead;

/// A complete response, and what the exchange measured.
pub(crate) struct Response {
    pub head: ResponseHead,
    pub body: Vec<u8>,
    /// The connection may carry another request (HTTP/1.1; multiplexed connections always can
    /// take more streams unless they say otherwise).
    pub reusable: bool,
    pub report: ExchangeReport,
}

/// A failed exchange.
#[derive(Debug)]
pub(crate) struct Failure {
    pub error: UploadError,
    /// The request was certainly not processed and may go again on another connection:
    /// HTTP/1.1, a connection closed before any response byte (a stale pooled connection);
    /// h2, a refused stream (REFUSED_STREAM) or a GOAWAY before the stream was processed;
    /// HTTP/3, `H3_REQUEST_REJECTED` or a GOAWAY before the request went. Whether it *does* go
    /// again is the send loop's rule (once, and over HTTP/1.1 only for a reused connection).
    pub retryable: bool,
}

impl Failure {
    /// A failure after which the request must not go again.
    pub(crate) fn fatal(error: UploadError) -> Failure {
        Failure {
            error,
            retryable: false,
        }
    }
}

impl From<UploadError> for Failure {
    fn from(error: UploadError) -> Self {
        Failure::fatal(error)
    }
}
