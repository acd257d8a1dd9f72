//! Request-body reading (counted, chunk by chunk, no copies) and the
//! response body (JSON bytes or `'x'` padding) that notes when it was sent.
//!
//! The request body is any [`Body`] of [`Bytes`] behind a box
//! ([`RequestBody`]): hyper's `Incoming` for HTTP/1.1 and h2, the h3 request
//! stream's receiving half for HTTP/3 (`crate::http3::H3Body`), so that one
//! service serves all three.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::{Body, Frame, SizeHint};

use crate::stats::StatsInner;
use crate::timing::Deadline;

/// Called once, when a request body ends.
pub(crate) type OnEnd = Box<dyn FnOnce() + Send>;

/// The error of a request body, whatever its protocol.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request body, whatever its protocol.
pub(crate) type RequestBody = UnsyncBoxBody<Bytes, BoxError>;

/// A request body that counts the data bytes it yields.
pub(crate) struct CountedBody {
    body: RequestBody,
    received: u64,
    ended: bool,
    stats: Arc<StatsInner>,
    on_end: Option<OnEnd>,
}

impl CountedBody {
    pub fn new(body: RequestBody, stats: Arc<StatsInner>) -> Self {
        CountedBody {
            body,
            received: 0,
            ended: false,
            stats,
            on_end: None,
        }
    }

    /// Sets the callback run right when the body's end is seen.
    pub fn on_end(mut self, f: OnEnd) -> Self {
        self.on_end = Some(f);
        self
    }

    /// Body bytes read so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Whether the body was read to its end.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Polls the next non-empty data chunk; trailers are skipped.
    pub fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, BoxError>>> {
        loop {
            if self.ended {
                return Poll::Ready(None);
            }
            match ready!(Pin::new(&mut self.body).poll_frame(cx)) {
                None => {
                    self.ended = true;
                    if let Some(f) = self.on_end.take() {
                        f();
                    }
                    return Poll::Ready(None);
                }
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        if data.is_empty() {
                            continue;
                        }
                        let n = data.len() as u64;
                        self.received += n;
                        self.stats.add_body_bytes(n);
                        return Poll::Ready(Some(Ok(data)));
                    }
                }
            }
        }
    }

    /// The next non-empty data chunk, or `None` at the end of the body.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, BoxError> {
        std::future::poll_fn(|cx| self.poll_chunk(cx))
            .await
            .transpose()
    }

    /// Reads (and drops) the rest of the body.
    pub async fn drain(&mut self) -> Result<(), BoxError> {
        while self.chunk().await?.is_some() {}
        Ok(())
    }

    /// Reads until at least `n` bytes were read in total, or the body ends.
    pub async fn read_at_least(&mut self, n: u64) -> Result<(), BoxError> {
        while self.received < n {
            if self.chunk().await?.is_none() {
                break;
            }
        }
        Ok(())
    }
}

/// A [`CountedBody`] shared between multer (as a `Stream`) and the service,
/// which drains whatever multer left unread (the epilogue).
#[derive(Clone)]
pub(crate) struct SharedBody(Arc<Mutex<CountedBody>>);

impl SharedBody {
    pub fn new(body: CountedBody) -> Self {
        SharedBody(Arc::new(Mutex::new(body)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CountedBody> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Body bytes read so far.
    pub fn received(&self) -> u64 {
        self.lock().received()
    }

    /// Whether the body was read to its end.
    pub fn ended(&self) -> bool {
        self.lock().ended()
    }

    /// Reads (and drops) the rest of the body.
    pub async fn drain(&self) -> Result<(), BoxError> {
        loop {
            match std::future::poll_fn(|cx| self.lock().poll_chunk(cx)).await {
                None => return Ok(()),
                Some(Err(e)) => return Err(e),
                Some(Ok(_)) => {}
            }
        }
    }
}

impl futures_util::Stream for SharedBody {
    type Item = Result<Bytes, BoxError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.lock().poll_chunk(cx)
    }
}

/// 64 KiB of padding, sliced without copying.
static PAD: [u8; 64 * 1024] = [b'x'; 64 * 1024];

/// Called once the response body is done: with `true` if it was handed to
/// the connection in full, `false` if it was dropped before.
pub(crate) type OnDone = Box<dyn FnOnce(bool) + Send + Sync>;

/// Into how many pieces a trickled body is cut (fewer if it is shorter).
pub(crate) const TRICKLE_PIECES: u64 = 10;

enum Content {
    Bytes(Bytes),
    Padding(usize),
}

impl Content {
    fn remaining(&self) -> u64 {
        match self {
            Content::Bytes(b) => b.len() as u64,
            Content::Padding(n) => *n as u64,
        }
    }

    /// Up to `max` bytes off the front.
    fn take(&mut self, max: u64) -> Bytes {
        let max = usize::try_from(max).unwrap_or(usize::MAX);
        match self {
            Content::Bytes(b) => b.split_to(max.min(b.len())),
            Content::Padding(n) => {
                let take = (*n).min(PAD.len()).min(max);
                *n -= take;
                Bytes::from_static(&PAD[..take])
            }
        }
    }
}

/// The schedule of a trickled body: piece `i` of `pieces` covers bytes
/// `total*i/pieces ..total*(i+1)/pieces` and is due `over*i/(pieces-1)`
/// after the first poll (the first piece at once, the last at `over`), each
/// on a precise [`Deadline`].
struct Trickle {
    over: Duration,
    total: u64,
    pieces: u64,
    /// The piece being sent.
    piece: u64,
    sent: u64,
    started: Option<Instant>,
    sleep: Option<Deadline>,
}

impl Trickle {
    fn piece_end(&self) -> u64 {
        self.total * (self.piece + 1) / self.pieces
    }

    fn due(&self, piece: u64, started: Instant) -> Instant {
        if self.pieces <= 1 {
            return started;
        }
        let nanos = self.over.as_nanos() * u128::from(piece) / u128::from(self.pieces - 1);
        started + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// How many bytes may be sent now (`Pending` until the next piece is
    /// due). Only called while bytes remain.
    fn poll_allowance(&mut self, cx: &mut Context<'_>) -> Poll<u64> {
        let started = *self.started.get_or_insert_with(Instant::now);
        if self.sent >= self.piece_end() {
            self.piece += 1;
            let due = self.due(self.piece, started);
            self.sleep = Some(Deadline::new(due));
        }
        if let Some(sleep) = self.sleep.as_mut() {
            ready!(Pin::new(sleep).poll(cx));
            self.sleep = None;
        }
        Poll::Ready(self.piece_end() - self.sent)
    }
}

/// The sink's response body.
pub(crate) struct ResponseBody {
    content: Content,
    trickle: Option<Trickle>,
    on_done: Option<OnDone>,
}

impl ResponseBody {
    /// A body with the given bytes.
    pub fn bytes(data: impl Into<Bytes>) -> Self {
        ResponseBody {
            content: Content::Bytes(data.into()),
            trickle: None,
            on_done: None,
        }
    }

    /// A body of exactly `n` bytes of `'x'`.
    pub fn padding(n: usize) -> Self {
        ResponseBody {
            content: Content::Padding(n),
            trickle: None,
            on_done: None,
        }
    }

    /// Sends the body in [`TRICKLE_PIECES`] pieces spread evenly over
    /// `over`: the first as soon as the body is first polled (right after
    /// the head), the last `over` later. A zero `over` changes nothing.
    pub fn trickle(mut self, over: Duration) -> Self {
        let total = self.content.remaining();
        if !over.is_zero() && total > 0 {
            self.trickle = Some(Trickle {
                over,
                total,
                pieces: total.min(TRICKLE_PIECES),
                piece: 0,
                sent: 0,
                started: None,
                sleep: None,
            });
        }
        self
    }

    /// Sets the callback run when the body is done.
    pub fn on_done(mut self, f: OnDone) -> Self {
        self.on_done = Some(f);
        self
    }

    fn remaining(&self) -> u64 {
        self.content.remaining()
    }

    fn finish(&mut self, sent: bool) {
        if let Some(f) = self.on_done.take() {
            f(sent);
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.remaining() == 0 {
            self.finish(true);
            return Poll::Ready(None);
        }
        let allowance = match self.trickle.as_mut() {
            Some(t) => ready!(t.poll_allowance(cx)),
            None => u64::MAX,
        };
        let chunk = self.content.take(allowance);
        if let Some(t) = self.trickle.as_mut() {
            t.sent += chunk.len() as u64;
        }
        if self.remaining() == 0 {
            self.finish(true);
        }
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining() == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining())
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        // An empty body may never be polled: it is complete all the same.
        let sent = self.remaining() == 0;
        self.finish(sent);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn padding_is_exact_and_marks_done() {
        let done = Arc::new(Mutex::new(None));
        let d = done.clone();
        let body = ResponseBody::padding(200_000).on_done(Box::new(move |sent| {
            *d.lock().unwrap() = Some(sent);
        }));
        assert_eq!(body.size_hint().exact(), Some(200_000));
        let all = body.collect().await.unwrap().to_bytes();
        assert_eq!(all.len(), 200_000);
        assert!(all.iter().all(|&b| b == b'x'));
        assert_eq!(*done.lock().unwrap(), Some(true));
    }

    #[tokio::test]
    async fn dropped_early_is_not_sent() {
        let done = Arc::new(Mutex::new(None));
        let d = done.clone();
        let body = ResponseBody::bytes(&b"hello"[..]).on_done(Box::new(move |sent| {
            *d.lock().unwrap() = Some(sent);
        }));
        drop(body);
        assert_eq!(*done.lock().unwrap(), Some(false));
        let empty = ResponseBody::bytes(Bytes::new());
        assert!(empty.is_end_stream());
    }

    #[tokio::test]
    async fn trickle_spreads_ten_pieces() {
        let started = Instant::now();
        let mut body = ResponseBody::padding(1000).trickle(Duration::from_millis(90));
        let mut pieces = Vec::new();
        while let Some(frame) = body.frame().await {
            let data = frame.unwrap().into_data().unwrap();
            pieces.push((started.elapsed(), data.len()));
        }
        assert_eq!(pieces.len(), 10, "{pieces:?}");
        assert!(pieces.iter().all(|&(_, n)| n == 100));
        assert!(pieces[0].0 < Duration::from_millis(5), "{pieces:?}");
        assert!(pieces[9].0 >= Duration::from_millis(90), "{pieces:?}");
        for (i, &(at, _)) in pieces.iter().enumerate() {
            assert!(at >= Duration::from_millis(10 * i as u64), "{pieces:?}");
        }
        // Shorter than ten bytes: one byte a piece.
        let body = ResponseBody::bytes(&b"abc"[..]).trickle(Duration::from_millis(10));
        let all = body.collect().await.unwrap().to_bytes();
        assert_eq!(&all[..], b"abc");
    }
}
