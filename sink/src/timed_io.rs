//! The raw-socket wrapper of each accepted TCP connection (under TLS, when
//! there is TLS): notes when reads returned and writes completed in the
//! connection's [`IoTimer`], can hold the first write, and writes the
//! response stamps those notes yield into the request's record in
//! [`StatsInner`]. Above both: `timing` knows no records, `stats` no sockets.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::stats::StatsInner;
use crate::timing::{Deadline, IoTimer};

/// The raw-socket wrapper: times reads and writes into an [`IoTimer`], and
/// can hold the first write (the TLS server's first handshake flight).
pub(crate) struct TimedIo<S> {
    inner: S,
    timer: Arc<IoTimer>,
    stats: Arc<StatsInner>,
    hold: Option<Duration>,
    holding: Option<Deadline>,
}

impl<S> TimedIo<S> {
    pub fn new(inner: S, timer: Arc<IoTimer>, stats: Arc<StatsInner>) -> Self {
        TimedIo {
            inner,
            timer,
            stats,
            hold: None,
            holding: None,
        }
    }

    /// Delays the first write until `delay` after the read that preceded it
    /// (for a TLS server: the read that completed the ClientHello), or after
    /// the first write attempt if nothing was read.
    pub fn hold_first_write(mut self, delay: Duration) -> Self {
        self.hold = Some(delay).filter(|d| !d.is_zero());
        self
    }

    /// `Pending` while the first write is held.
    fn poll_hold(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(delay) = self.hold.take() {
            let from = self.timer.last_read().map_or_else(Instant::now, |r| r.at);
            self.holding = Some(Deadline::new(from + delay));
        }
        if let Some(deadline) = self.holding.as_mut() {
            if Pin::new(deadline).poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.holding = None;
        }
        Poll::Ready(())
    }

    fn wrote(&self, n: usize) {
        if n == 0 {
            return;
        }
        if let Some((slot, stamp)) = self.timer.on_write(n) {
            self.stats.update_timing(slot, |t| {
                t.response_head_written_at = Some(stamp.at);
                t.response_head_written_ms = Some(stamp.wall_ms);
            });
        }
    }

    fn flushed(&self) {
        if let Some((slot, stamp)) = self.timer.on_flush() {
            self.stats.update_timing(slot, |t| {
                t.response_end_written_at = Some(stamp.at);
                t.response_end_written_ms = Some(stamp.wall_ms);
            });
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for TimedIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            let n = buf.filled().len() - before;
            if n > 0 {
                self.timer.on_read(n);
            }
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for TimedIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.poll_hold(cx).is_pending() {
            return Poll::Pending;
        }
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            self.wrote(n);
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.poll_hold(cx).is_pending() {
            return Poll::Pending;
        }
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = r {
            self.wrote(n);
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        if let Poll::Ready(Ok(())) = r {
            self.flushed();
        }
        r
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
