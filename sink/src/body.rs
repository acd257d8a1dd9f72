//! Request-body reading (counted, chunk by chunk, no copies) and the
//! response body (JSON bytes or `'x'` padding) that notes when it was sent.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use crate::stats::StatsInner;

/// A request body that counts the data bytes it yields.
pub(crate) struct CountedBody {
    body: Incoming,
    received: u64,
    ended: bool,
    stats: Arc<StatsInner>,
}

impl CountedBody {
    pub fn new(body: Incoming, stats: Arc<StatsInner>) -> Self {
        CountedBody {
            body,
            received: 0,
            ended: false,
            stats,
        }
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
    pub fn poll_chunk(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, hyper::Error>>> {
        loop {
            if self.ended {
                return Poll::Ready(None);
            }
            match ready!(Pin::new(&mut self.body).poll_frame(cx)) {
                None => {
                    self.ended = true;
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
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, hyper::Error> {
        std::future::poll_fn(|cx| self.poll_chunk(cx))
            .await
            .transpose()
    }

    /// Reads (and drops) the rest of the body.
    pub async fn drain(&mut self) -> Result<(), hyper::Error> {
        while self.chunk().await?.is_some() {}
        Ok(())
    }

    /// Reads until at least `n` bytes were read in total, or the body ends.
    pub async fn read_at_least(&mut self, n: u64) -> Result<(), hyper::Error> {
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
    pub async fn drain(&self) -> Result<(), hyper::Error> {
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
    type Item = Result<Bytes, hyper::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.lock().poll_chunk(cx)
    }
}

/// 64 KiB of padding, sliced without copying.
static PAD: [u8; 64 * 1024] = [b'x'; 64 * 1024];

/// Called once the response body is done: with `true` if it was handed to
/// the connection in full, `false` if it was dropped before.
pub(crate) type OnDone = Box<dyn FnOnce(bool) + Send + Sync>;

enum Content {
    Bytes(Option<Bytes>),
    Padding(usize),
}

/// The sink's response body.
pub(crate) struct ResponseBody {
    content: Content,
    on_done: Option<OnDone>,
}

impl ResponseBody {
    /// A body with the given bytes.
    pub fn bytes(data: impl Into<Bytes>) -> Self {
        let data: Bytes = data.into();
        ResponseBody {
            content: Content::Bytes(Some(data).filter(|d| !d.is_empty())),
            on_done: None,
        }
    }

    /// A body of exactly `n` bytes of `'x'`.
    pub fn padding(n: usize) -> Self {
        ResponseBody {
            content: Content::Padding(n),
            on_done: None,
        }
    }

    /// Sets the callback run when the body is done.
    pub fn on_done(mut self, f: OnDone) -> Self {
        self.on_done = Some(f);
        self
    }

    fn remaining(&self) -> u64 {
        match &self.content {
            Content::Bytes(b) => b.as_ref().map_or(0, |b| b.len() as u64),
            Content::Padding(n) => *n as u64,
        }
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
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let chunk = match &mut self.content {
            Content::Bytes(b) => b.take(),
            Content::Padding(n) => {
                let take = (*n).min(PAD.len());
                *n -= take;
                Some(Bytes::from_static(&PAD[..take])).filter(|c| !c.is_empty())
            }
        };
        if self.remaining() == 0 {
            self.finish(true);
        }
        Poll::Ready(chunk.map(|c| Ok(Frame::data(c))))
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
}
