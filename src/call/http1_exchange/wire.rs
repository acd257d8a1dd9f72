//! The two halves of a connection during an exchange, and the write primitives the request
//! writer needs beyond `AsyncWrite`: `sendfile` and `send(MSG_MORE)` on plain TCP.
//!
//! Plain TCP is split into tokio's borrowed halves (no lock; the write half still reaches the
//! socket for readiness and raw calls); TLS goes through `tokio::io::split`, since a TLS session
//! is one state machine for both directions.

use std::io;
use std::os::fd::AsFd;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWriteExt, Interest, ReadBuf, Ready};
use tokio::net::{tcp, TcpStream};

use crate::sys;
use crate::transport::stream::Stream;

/// The read half.
pub(crate) enum WireRead<'a> {
    Plain(tcp::ReadHalf<'a>),
    Tls(tokio::io::ReadHalf<&'a mut Stream>),
}

/// The write half.
pub(crate) enum WireWrite<'a> {
    /// `stamped`: every write asks the kernel for an acknowledgement stamp of its last byte
    /// (`SOF_TIMESTAMPING_TX_ACK` per call, [`WireWrite::stamp_writes`]).
    Plain {
        half: tcp::WriteHalf<'a>,
        stamped: bool,
    },
    Tls(tokio::io::WriteHalf<&'a mut Stream>),
}

/// Split a connection for one exchange.
pub(crate) fn split(stream: &mut Stream) -> (WireRead<'_>, WireWrite<'_>) {
    match stream {
        Stream::Plain(socket) => {
            let (r, w) = socket.tcp_mut().split();
            (
                WireRead::Plain(r),
                WireWrite::Plain {
                    half: w,
                    stamped: false,
                },
            )
        }
        // TLS (inside a proxy's TLS or not): one session for both directions.
        tls => {
            let (r, w) = tokio::io::split(tls);
            (WireRead::Tls(r), WireWrite::Tls(w))
        }
    }
}

impl WireWrite<'_> {
    /// Whether `sendfile` and `MSG_MORE` are available (plain TCP).
    pub(crate) fn is_plain(&self) -> bool {
        matches!(self, WireWrite::Plain { .. })
    }

    /// Plain TCP: from now on, each write (not `sendfile`) asks for a stamp of the moment the
    /// peer acknowledges its last byte, in the same system call. Stamp reporting must be on
    /// for the socket (`sys::enable_ack_reporting`). No effect on TLS.
    pub(crate) fn stamp_writes(&mut self) {
        if let WireWrite::Plain { stamped, .. } = self {
            *stamped = true;
        }
    }

    /// Write some of `buf`. With `more` on plain TCP, `MSG_MORE` keeps a partial segment back
    /// until the next write (the preamble waits for the file's first bytes); a stamped write
    /// never holds back.
    pub(crate) async fn write(&mut self, buf: &[u8], more: bool) -> io::Result<usize> {
        match self {
            WireWrite::Plain { half, stamped } => {
                let tcp: &TcpStream = half.as_ref();
                if *stamped {
                    let one = [io::IoSlice::new(buf)];
                    raw_write(tcp, || sys::send_stamped(tcp, &one)).await
                } else if more {
                    raw_write(tcp, || sys::send_more(tcp, buf)).await
                } else {
                    raw_write(tcp, || tcp.try_write(buf)).await
                }
            }
            WireWrite::Tls(w) => w.write(buf).await,
        }
    }

    /// Write some of `bufs`, in order, in one system call where the transport allows.
    pub(crate) async fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match self {
            WireWrite::Plain { half, stamped } => {
                let tcp: &TcpStream = half.as_ref();
                if *stamped {
                    raw_write(tcp, || sys::send_stamped(tcp, bufs)).await
                } else {
                    raw_write(tcp, || tcp.try_write_vectored(bufs)).await
                }
            }
            WireWrite::Tls(w) => w.write_vectored(bufs).await,
        }
    }

    /// `sendfile` up to `len` bytes of `file` from `offset` (plain TCP only; `Unsupported` on
    /// TLS). `Ok(0)`: the file ends before `offset`.
    pub(crate) async fn sendfile(
        &mut self,
        file: impl AsFd,
        offset: u64,
        len: usize,
    ) -> io::Result<usize> {
        match self {
            WireWrite::Plain { half, .. } => {
                let tcp: &TcpStream = half.as_ref();
                let file = file.as_fd();
                raw_write(tcp, || sys::sendfile(tcp, file, offset, len)).await
            }
            WireWrite::Tls(_) => Err(io::ErrorKind::Unsupported.into()),
        }
    }

    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        match self {
            WireWrite::Plain { half, .. } => half.flush().await,
            WireWrite::Tls(w) => w.flush().await,
        }
    }
}

/// A non-blocking write system call driven by tokio's readiness: wait until writable, try, and
/// on `WouldBlock` (readiness cleared by `try_io`) wait again. Cancel-safe: nothing is written
/// unless the call returns it.
///
/// Readiness that says only "write closed" is the sticky state an error-queue timestamp leaves
/// (transport::stream's module docs): it no longer tells when the socket drains, so after a
/// `WouldBlock` in that state the writer waits a short, growing pause (1 to 4 ms) instead of
/// asking again at once, which would spin a core until the timeout. This happens within one
/// exchange only (a reused connection is registered afresh first), when an ack timestamp
/// arrives before the last of the body is written.
async fn raw_write(
    tcp: &TcpStream,
    mut call: impl FnMut() -> io::Result<usize>,
) -> io::Result<usize> {
    let mut pause = STALE_READINESS_FIRST_PAUSE;
    loop {
        let ready = tcp.ready(Interest::WRITABLE).await?;
        match tcp.try_io(Interest::WRITABLE, &mut call) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // `Ready::is_writable` is also true for "write closed": test the bit alone.
                let writable_bit = (ready - Ready::WRITE_CLOSED).is_writable();
                if ready.is_write_closed() && !writable_bit {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(STALE_READINESS_MAX_PAUSE);
                } else {
                    // Spend the task's cooperative budget, as tokio's own I/O does (its
                    // `ready()` does not): whatever readiness claims, a worker is never held.
                    tokio::task::consume_budget().await;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

const STALE_READINESS_FIRST_PAUSE: std::time::Duration = std::time::Duration::from_millis(1);
const STALE_READINESS_MAX_PAUSE: std::time::Duration = std::time::Duration::from_millis(4);

impl AsyncRead for WireRead<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WireRead::Plain(r) => Pin::new(r).poll_read(cx, buf),
            WireRead::Tls(r) => Pin::new(r).poll_read(cx, buf),
        }
    }
}
